// descentlab's fused CPU optimizer kernels: one pass over memory per step, no temporaries.
//
// Every kernel takes lists of same-dtype contiguous CPU tensors (parameters, gradients, state)
// and updates them in place. All tensors of a call are cut into one work list of chunks of
// kChunk elements, and at::parallel_for spreads the chunks over the threads, so 200 small
// tensors keep the cores as busy as one large one. Each element is read once, updated in
// registers (float for float16/bfloat16/float32, double for float64) and written once.
// Scalars that depend on a tensor's step count (bias corrections, bounds, rectification)
// are computed with tensor ops from the step counters (optim/kernels/_scalars.py) and passed
// as 1-D float64 tensors, one value per tensor, so that under torch.compile they stay tensors.
// Every argument has a name (py::arg); the Python side calls the kernels by keyword, through
// the torch.library operators of optim/kernels/ops.py.
//
// The arithmetic follows the order of the readable per-tensor path (descentlab/optim/*.py,
// torch's pointwise ops) so that both give the same results up to rounding.

#include <torch/extension.h>

#include "runtime.h"
#include "rules.h"  // the built-in rules' kernels and their bindings (generated: rules_*.cpp)

namespace {

using namespace descentlab;

// Each loop below is a function of its own whose scalars are by-value parameters: locals
// that no store through the tensor pointers can alias, so that the compiler vectorizes it
// (scalars read through a lambda's captures defeat that).

// ------------------------------------------------------------------------------- SGD(W)
template <bool L2, bool Momentum, bool Nesterov, bool First, typename S, typename T>
void momentum_loop(S* __restrict__ P, const S* __restrict__ G, S* __restrict__ B,
                   int64_t begin, int64_t end, T mu, T damp, T wd, T dec, T sign, T neg_lr) {
  for (int64_t i = begin; i < end; ++i) {
    const T p = P[i];
    T d = grad<L2>(T(G[i]), p, sign, wd);
    if constexpr (Momentum) {
      T buf;
      if constexpr (First) {
        buf = d;  // (1): b_1 = g_1
      } else {
        buf = T(B[i]) * mu + damp * d;  // (1)
      }
      B[i] = buf;
      d = Nesterov ? d + mu * buf : buf;  // (2)
    }
    P[i] = p * dec + neg_lr * d;  // (3)
  }
}

// SGD with (Nesterov) momentum and decoupled decay (SGDW; SWATS's SGD phase): per tensor a
// learning rate and whether this is the buffer's first step (b_1 = g_1).
void momentum_sgd(const TensorList& params, const TensorList& grads,
                  const TensorList& momentum_buffer, const Scalars& lr, const at::Tensor& first,
                  double momentum, double dampening, bool nesterov, double l2_weight_decay,
                  double decay, bool maximize, const Optional& grad_scale,
                  const Optional& found_inf) {
  check_lists(params, {&grads, &momentum_buffer});
  check_state(params, momentum_buffer);
  if (params.empty() || skip_step(grads, grad_scale, found_inf)) return;
  const double* rate = values(lr, params, "lr");
  const at::Tensor first_steps = first.to(at::kDouble).contiguous();  // any dtype; nonzero: b_1
  const double* is_first_step = values(first_steps, params, "first");
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, params[0].scalar_type(), "momentum_sgd", [&] {
    using T = at::opmath_type<scalar_t>;
    with_flag(l2_weight_decay != 0, [&](auto l2) {
      with_flag(!momentum_buffer.empty(), [&](auto has_momentum) {
        with_flag(nesterov, [&](auto nag) {
          for_chunks(params, [&](int64_t, int64_t t, int64_t b, int64_t end) {
            with_flag(is_first_step[t] != 0, [&](auto is_first) {
              momentum_loop<decltype(l2)::value, decltype(has_momentum)::value,
                            decltype(nag)::value, decltype(is_first)::value>(
                  ptr<scalar_t>(params, t), ptr<scalar_t>(grads, t),
                  ptr<scalar_t>(momentum_buffer, t), b, end, T(momentum), T(1.0 - dampening),
                  T(l2_weight_decay), T(decay), T(maximize ? -1.0 : 1.0), T(-rate[t]));
            });
          });
        });
      });
    });
  });
}

// ------------------------------------------------------------------------------- SWATS
// Returns the chunk's dot products p_k.g_k and p_k.p_k, accumulated in double.
template <bool L2, typename S, typename T>
std::pair<double, double> swats_loop(S* __restrict__ P, const S* __restrict__ G,
                                     S* __restrict__ M, S* __restrict__ A, int64_t begin,
                                     int64_t end, T w1, T b2, T one_b2, T e, T wd, T sign, T c) {
  double pg = 0.0, pp = 0.0;
  // The reduction may be reordered into vector lanes (without the pragma the float64 sums are
  // a serial chain: the loop ran at a third of Adam's speed); for one chunk and one build the
  // order is still fixed, so the result is deterministic.
#pragma omp simd reduction(+ : pg, pp)
  for (int64_t i = begin; i < end; ++i) {
    const T p = P[i];
    const T g = grad<L2>(T(G[i]), p, sign, wd);
    const T m = torch_lerp(T(M[i]), g, w1);  // (1)
    const T a = T(A[i]) * b2 + one_b2 * g * g;
    M[i] = m;
    A[i] = a;
    // (2): the step is rounded to the parameter dtype, as the readable path stores it
    const double step = static_cast<S>(m / (std::sqrt(a) + e) * c);
    const double gd = static_cast<S>(g);
    P[i] = p + T(step);
    pg = std::fma(step, gd, pg);  // one rounding per term (an FMA: half the float64 work)
    pp = std::fma(step, step, pp);
  }
  return {pg, pp};
}

// The Adam phase of SWATS; coef = -lr sqrt(1 - beta2^t) / (1 - beta1^t). Returns a float64
// tensor [n, 2] of the dot products p_k.g_k and p_k.p_k of each tensor's step p_k, summed
// over chunks in a fixed order (deterministic).
at::Tensor swats_adam(const TensorList& params, const TensorList& grads,
                      const TensorList& exp_avg, const TensorList& exp_avg_sq,
                      const Scalars& coef, double beta1, double beta2, double eps,
                      double l2_weight_decay, bool maximize, const Optional& grad_scale,
                      const Optional& found_inf) {
  check_lists(params, {&grads, &exp_avg, &exp_avg_sq});
  check_state(params, exp_avg);
  check_state(params, exp_avg_sq);
  auto dots = at::zeros({static_cast<int64_t>(params.size()), 2}, at::kDouble);
  // skipped (found_inf): zero dot products, which leave SWATS's switch test untouched
  if (params.empty() || skip_step(grads, grad_scale, found_inf)) return dots;
  const double* c = values(coef, params, "coef");
  std::vector<int64_t> first_chunk;  // index of each tensor's first chunk in the work list
  int64_t chunks = 0;
  for (const auto& p : params) {
    first_chunk.push_back(chunks);
    chunks += (p.numel() + kChunk - 1) / kChunk;
  }
  std::vector<std::pair<double, double>> partial(chunks);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, params[0].scalar_type(), "swats_adam", [&] {
    using T = at::opmath_type<scalar_t>;
    with_flag(l2_weight_decay != 0, [&](auto l2) {
      for_chunks(params, [&](int64_t w, int64_t t, int64_t b, int64_t end) {
        partial[w] = swats_loop<decltype(l2)::value>(
            ptr<scalar_t>(params, t), ptr<scalar_t>(grads, t), ptr<scalar_t>(exp_avg, t),
            ptr<scalar_t>(exp_avg_sq, t), b, end, T(1.0 - beta1), T(beta2), T(1.0 - beta2),
            T(eps), T(l2_weight_decay), T(maximize ? -1.0 : 1.0), T(c[t]));
      });
    });
  });
  double* out = dots.data_ptr<double>();
  for (size_t t = 0; t < params.size(); ++t) {
    const int64_t last = t + 1 < params.size() ? first_chunk[t + 1] : chunks;
    for (int64_t w = first_chunk[t]; w < last; ++w) {
      out[2 * t] += partial[w].first;
      out[2 * t + 1] += partial[w].second;
    }
  }
  return dots;
}

// SWATS's equations (3)-(4) for one tensor from p_k.g_k and p_k.p_k, in double on the host, in
// the order of SWATS._switch (optim/swats.py: the readable and foreach paths' test). Each
// product is stored before it is added (volatile), so that no fused multiply-add rounds
// differently from Python's floats: both paths take the same switch decision.
bool swats_switch(double pg, double pp, double t, double b2, double lr, double tol, double* lam,
                  double* switch_step, double* sgd_lr, double* switch_lr) {
  if (pg == 0.0) return false;
  const double gamma = pp / -pg;  // (3)
  volatile double decayed = b2 * *lam;
  volatile double added = (1.0 - b2) * gamma;
  const double lam_k = decayed + added;
  *lam = lam_k;
  const double estimate = lam_k / (1.0 - std::pow(b2, t));
  if (!(t > 1.0 && std::abs(estimate - gamma) < tol)) return false;  // (4)
  *switch_step = t;
  *sgd_lr = estimate;
  *switch_lr = lr;
  return true;
}

double* scalar(const at::Tensor& s) {
  TORCH_CHECK(s.numel() == 1 && s.scalar_type() == at::kDouble && s.device().is_cpu(),
              "descentlab kernels: SWATS's switch state must be float64 CPU scalars");
  return s.data_ptr<double>();
}

// One SWATS step, both phases in one pass over the tensors and the switch test after it: a
// tensor whose switch_step is 0 takes the Adam phase (swats_loop, its dot products summed per
// tensor in a fixed order) and then the test (3)-(4), which may switch it (switch state written,
// momentum buffer zeroed); one past its switch it takes the SGD phase, v = b1 v + g (v = g on
// its first step) and p -= (1 - b1) Lambda (lr / lr_s) v. The switch state is four lists of
// 0-d float64 tensors, as on the GPU path. Returns the [n, 2] dot products (0 in the SGD phase).
at::Tensor swats(const TensorList& params, const TensorList& grads, const TensorList& exp_avg,
                 const TensorList& exp_avg_sq, const TensorList& momentum_buffer,
                 const TensorList& switch_step, const TensorList& lam, const TensorList& sgd_lr,
                 const TensorList& switch_lr, const Scalars& coef, const Scalars& bc2,
                 const Scalars& steps, double lr, double beta1, double beta2, double eps,
                 double l2_weight_decay, double switch_tol, bool maximize,
                 const Optional& grad_scale, const Optional& found_inf) {
  check_lists(params, {&grads, &exp_avg, &exp_avg_sq, &momentum_buffer, &switch_step, &lam,
                       &sgd_lr, &switch_lr});
  check_state(params, exp_avg);
  check_state(params, exp_avg_sq);
  check_state(params, momentum_buffer);
  const auto n = static_cast<int64_t>(params.size());
  auto dots = at::zeros({n, 2}, at::kDouble);
  if (params.empty() || skip_step(grads, grad_scale, found_inf)) return dots;
  const double* c = values(coef, params, "coef");
  values(bc2, params, "bc2");  // checked: the switch test takes 1 - b2^t as the readable path
  const double* t_k = values(steps, params, "steps");
  std::vector<double*> phase(n), rate_lam(n), rate(n), rate_lr(n);
  std::vector<double> neg_rate(n, 0.0);
  std::vector<char> first(n, 0);
  std::vector<int64_t> first_chunk(n);
  int64_t chunks = 0;
  for (int64_t t = 0; t < n; ++t) {
    phase[t] = scalar(switch_step[t]);
    rate_lam[t] = scalar(lam[t]);
    rate[t] = scalar(sgd_lr[t]);
    rate_lr[t] = scalar(switch_lr[t]);
    if (*phase[t] != 0.0) {  // SGD phase: (1 - b1) Lambda lr / lr_s
      neg_rate[t] = -((1.0 - beta1) * *rate[t] * lr / *rate_lr[t]);
      first[t] = t_k[t] == *phase[t] + 1.0;
    }
    first_chunk[t] = chunks;
    chunks += (params[t].numel() + kChunk - 1) / kChunk;
  }
  std::vector<std::pair<double, double>> partial(chunks);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, params[0].scalar_type(), "swats", [&] {
    using T = at::opmath_type<scalar_t>;
    const T sign(maximize ? -1.0 : 1.0), wd(l2_weight_decay);
    with_flag(l2_weight_decay != 0, [&](auto l2) {
      constexpr bool L2 = decltype(l2)::value;
      for_chunks(params, [&](int64_t w, int64_t t, int64_t b, int64_t end) {
        if (*phase[t] == 0.0) {
          partial[w] = swats_loop<L2>(
              ptr<scalar_t>(params, t), ptr<scalar_t>(grads, t), ptr<scalar_t>(exp_avg, t),
              ptr<scalar_t>(exp_avg_sq, t), b, end, T(1.0 - beta1), T(beta2), T(1.0 - beta2),
              T(eps), wd, sign, T(c[t]));
          return;
        }
        partial[w] = {0.0, 0.0};
        with_flag(first[t] != 0, [&](auto is_first) {
          momentum_loop<L2, true, false, decltype(is_first)::value>(
              ptr<scalar_t>(params, t), ptr<scalar_t>(grads, t),
              ptr<scalar_t>(momentum_buffer, t), b, end, T(beta1), T(1), wd, T(1), sign,
              T(neg_rate[t]));
        });
      });
    });
  });
  double* out = dots.data_ptr<double>();
  for (int64_t t = 0; t < n; ++t) {
    if (*phase[t] != 0.0) continue;
    const int64_t last = t + 1 < n ? first_chunk[t + 1] : chunks;
    for (int64_t w = first_chunk[t]; w < last; ++w) {
      out[2 * t] += partial[w].first;
      out[2 * t + 1] += partial[w].second;
    }
    if (swats_switch(out[2 * t], out[2 * t + 1], t_k[t], beta2, lr, switch_tol, rate_lam[t],
                     phase[t], rate[t], rate_lr[t])) {
      momentum_buffer[t].zero_();
    }
  }
  return dots;
}

// ------------------------------------------------------------------------------- Lookahead
template <typename S, typename T>
void lookahead_loop(S* __restrict__ slow, S* __restrict__ fast, int64_t begin, int64_t end,
                    T alpha) {
  for (int64_t i = begin; i < end; ++i) {
    const S s = static_cast<S>(torch_lerp(T(slow[i]), T(fast[i]), alpha));  // (2)
    slow[i] = s;
    fast[i] = s;
  }
}

// Lookahead's synchronisation in one pass: phi <- phi + alpha (theta - phi), theta <- phi.
void lookahead_sync(const TensorList& slow, const TensorList& fast, double alpha) {
  check_lists(slow, {&fast});
  check_state(slow, fast);
  if (slow.empty()) return;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, slow[0].scalar_type(), "lookahead_sync", [&] {
    using T = at::opmath_type<scalar_t>;
    for_chunks(slow, [&](int64_t, int64_t t, int64_t b, int64_t end) {
      lookahead_loop(ptr<scalar_t>(slow, t), ptr<scalar_t>(fast, t), b, end, T(alpha));
    });
  });
}

// ------------------------------------------------------------------------------- plans
// Whether a planned bucket still fits its kernel call (optim/_plan.py): every parameter a
// contiguous CPU tensor of `dtype`, every gradient dense and contiguous. One pass in C++ over
// both lists: the same checks as C-level map passes in Python cost 0.4 us a tensor.
bool fits(const TensorList& params, const TensorList& grads, at::ScalarType dtype) {
  for (const auto& p : params) {
    if (!p.device().is_cpu() || p.scalar_type() != dtype || !p.is_contiguous()) {
      return false;
    }
  }
  for (const auto& g : grads) {
    if (g.layout() != at::kStrided || !g.is_contiguous()) {
      return false;
    }
  }
  return true;
}

// ------------------------------------------------------------------------------- steps
// Add one to each 0-d float32 CPU step counter; their new values as one float64 vector (one
// call: torch._foreach_add_ on 0-d CPU tensors dispatches per tensor, 4 us each).
at::Tensor advance_steps(const TensorList& steps) {
  auto out = at::empty({static_cast<int64_t>(steps.size())}, at::kDouble);
  double* values = out.data_ptr<double>();
  for (size_t i = 0; i < steps.size(); ++i) {
    const auto& s = steps[i];
    TORCH_CHECK(s.numel() == 1 && s.scalar_type() == at::kFloat && s.device().is_cpu(),
                "descentlab kernels: a step counter must be a float32 CPU scalar");
    float* v = s.data_ptr<float>();
    *v += 1.0f;
    values[i] = *v;
  }
  return out;
}

// The values of 0-d float32 or float64 CPU tensors of one dtype (a rule's scalar state) as one
// vector of that dtype (torch.stack of 0-d CPU tensors costs about 0.3 us each).
at::Tensor read_scalars(const TensorList& scalars) {
  TORCH_CHECK(!scalars.empty(), "descentlab kernels: no scalars to read");
  const auto dtype = scalars[0].scalar_type();
  auto out = at::empty({static_cast<int64_t>(scalars.size())}, dtype);
  for (size_t i = 0; i < scalars.size(); ++i) {
    const auto& s = scalars[i];
    TORCH_CHECK(s.numel() == 1 && s.device().is_cpu() && s.scalar_type() == dtype &&
                    (dtype == at::kFloat || dtype == at::kDouble),
                "descentlab kernels: expected float32 or float64 CPU scalars of one dtype");
    if (dtype == at::kFloat) {
      out.data_ptr<float>()[i] = *s.data_ptr<float>();
    } else {
      out.data_ptr<double>()[i] = *s.data_ptr<double>();
    }
  }
  return out;
}

// Set each 0-d float32 or float64 CPU tensor (a rule's scalar state: NAdam's mu_product) to
// its value (one call: torch._foreach_copy_ on 0-d CPU tensors dispatches per tensor).
void set_scalars(const TensorList& scalars, const Scalars& new_values) {
  const double* f = values(new_values, scalars, "values");
  for (size_t i = 0; i < scalars.size(); ++i) {
    const auto& s = scalars[i];
    TORCH_CHECK(s.numel() == 1 && s.device().is_cpu() &&
                    (s.scalar_type() == at::kFloat || s.scalar_type() == at::kDouble),
                "descentlab kernels: expected a float32 or float64 CPU scalar");
    if (s.scalar_type() == at::kFloat) {
      *s.data_ptr<float>() = static_cast<float>(f[i]);
    } else {
      *s.data_ptr<double>() = f[i];
    }
  }
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  // Tensor lists first, then keyword-only arguments: nothing can be passed by position by
  // mistake (swapping beta1 and beta2, say).
  using py::arg;
  m.doc() = "descentlab's fused CPU optimizer kernels";
  m.def("momentum_sgd", &momentum_sgd, "SGD with momentum and decoupled decay", arg("params"),
        arg("grads"), arg("momentum_buffer"), py::kw_only(), arg("lr"), arg("first"),
        arg("momentum"), arg("dampening"), arg("nesterov"), arg("l2_weight_decay"),
        arg("decay"), arg("maximize"), arg("grad_scale") = py::none(),
        arg("found_inf") = py::none());
  m.def("swats_adam", &swats_adam, "SWATS's Adam phase, returning the per-tensor dot products",
        arg("params"), arg("grads"), arg("exp_avg"), arg("exp_avg_sq"), py::kw_only(),
        arg("coef"), arg("beta1"), arg("beta2"), arg("eps"), arg("l2_weight_decay"),
        arg("maximize"), arg("grad_scale") = py::none(), arg("found_inf") = py::none());
  m.def("swats", &swats, "SWATS: both phases and the switch test, the switch state in scalars",
        arg("params"), arg("grads"), arg("exp_avg"), arg("exp_avg_sq"), arg("momentum_buffer"),
        arg("switch_step"), arg("lam"), arg("sgd_lr"), arg("switch_lr"), py::kw_only(),
        arg("coef"), arg("bc2"), arg("steps"), arg("lr"), arg("beta1"), arg("beta2"), arg("eps"),
        arg("l2_weight_decay"), arg("switch_tol"), arg("maximize"),
        arg("grad_scale") = py::none(), arg("found_inf") = py::none());
  m.def("lookahead_sync", &lookahead_sync, "Lookahead's slow-weight update and reset, one pass",
        arg("slow"), arg("fast"), py::kw_only(), arg("alpha"));
  m.def("fits", &fits, "whether a planned bucket still fits its kernel call", arg("params"),
        arg("grads"), arg("dtype"));
  m.def("advance_steps", &advance_steps, "increment the step counters, their new values",
        arg("steps"));
  m.def("read_scalars", &read_scalars, "the values of 0-d tensors of one dtype, one vector",
        arg("scalars"));
  m.def("set_scalars", &set_scalars, "set 0-d float32/float64 tensors to their values",
        arg("scalars"), arg("values"));
  descentlab::bind_rules(m);
}
