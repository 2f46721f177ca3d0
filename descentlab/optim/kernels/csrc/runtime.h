// The runtime that every descentlab CPU kernel shares: the hand-written ones (kernels.cpp)
// and those generated from an optimizer's rule (optim/_rules/cpp.py). Lists of same-dtype
// contiguous CPU tensors, cut into one work list of fixed chunks shared between threads;
// the per-tensor scalar vectors; GradScaler's arguments.

#pragma once

// ATen's headers only (torch/extension.h, which the bindings need, takes half a minute to
// compile: the generated rules' sources do without it).
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/_foreach_div.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

namespace descentlab {


using TensorList = std::vector<at::Tensor>;
using Scalars = at::Tensor;  // 1-D float64, one value per tensor of the call
using Optional = c10::optional<at::Tensor>;

constexpr int64_t kChunk = 1 << 16;  // 64K elements: 256 KiB of float32 per stream
constexpr int64_t kSerial = 1 << 17;  // fewer elements in a call: one thread does them all

struct Work {
  int64_t tensor;
  int64_t begin;
  int64_t end;
};

inline void check_lists(const TensorList& params, std::initializer_list<const TensorList*> others) {
  for (const TensorList* other : others) {
    TORCH_CHECK(other->empty() || other->size() == params.size(),
                "descentlab kernels: tensor lists of different lengths");
  }
  for (const auto& p : params) {
    TORCH_CHECK(p.device().is_cpu() && p.is_contiguous() && p.scalar_type() == params[0].scalar_type(),
                "descentlab kernels: tensors must be contiguous CPU tensors of one dtype");
  }
}

inline void check_state(const TensorList& params, const TensorList& state) {
  for (size_t i = 0; i < state.size(); ++i) {
    TORCH_CHECK(state[i].is_contiguous() && state[i].numel() == params[i].numel() &&
                    state[i].scalar_type() == params[i].scalar_type(),
                "descentlab kernels: a state tensor does not match its parameter");
  }
}

// Run body(chunk, tensor_index, begin, end) over every chunk of every tensor, in parallel.
// The chunks are fixed (kChunk elements of one tensor), so a per-chunk reduction sums in the
// same order on any number of threads; each thread takes the chunks that start in its equal
// share of all the elements (a share by chunk count would give one thread the large tensors).
template <typename Body>
void for_chunks(const TensorList& params, const Body& body) {
  std::vector<Work> work;
  std::vector<int64_t> start;  // where each chunk starts in the concatenation of the tensors
  int64_t total = 0;
  for (size_t t = 0; t < params.size(); ++t) {
    const int64_t n = params[t].numel();
    for (int64_t b = 0; b < n; b += kChunk) {
      work.push_back({static_cast<int64_t>(t), b, std::min(n, b + kChunk)});
      start.push_back(total + b);
    }
    total += n;
  }
  const auto run = [&](int64_t lo, int64_t hi) {  // the chunks that start in [lo, hi)
    auto w = std::lower_bound(start.begin(), start.end(), lo) - start.begin();
    for (const auto n = static_cast<int64_t>(work.size()); w < n && start[w] < hi; ++w) {
      body(w, work[w].tensor, work[w].begin, work[w].end);
    }
  };
  if (total < kSerial) {
    run(0, total);  // not worth waking the threads (a busy machine makes that cost milliseconds)
  } else {
    at::parallel_for(0, total, kChunk, run);
  }
}

// The values of a per-tensor scalar vector (read on the host: the tensors are on the CPU).
inline const double* values(const Scalars& s, const TensorList& params, const char* name) {
  TORCH_CHECK(s.device().is_cpu() && s.scalar_type() == at::kDouble && s.dim() == 1 &&
                  s.is_contiguous() && s.numel() == static_cast<int64_t>(params.size()),
              "descentlab kernels: ", name,
              " must be a 1-D float64 CPU tensor with one value per tensor");
  return s.data_ptr<double>();
}

// AMP, as torch's fused optimizers take it from GradScaler: true when found_inf is nonzero
// (then the call changes nothing); else the gradients are divided by grad_scale in place
// (one more pass over them; the GPU kernels divide in their single pass).
inline bool skip_step(const TensorList& grads, const Optional& grad_scale, const Optional& found_inf) {
  if (found_inf.has_value() && found_inf->item<double>() != 0.0) {
    return true;
  }
  if (grad_scale.has_value() && !grads.empty()) {
    at::_foreach_div_(grads, *grad_scale);
  }
  return false;
}

template <typename T>
T* ptr(const TensorList& list, int64_t t) {
  return list.empty() ? nullptr : list[t].data_ptr<T>();
}

// Call f with std::true_type or std::false_type, so that flags become compile-time constants
// and the inner loops stay branch-free (and vectorized).
template <typename F>
void with_flag(bool flag, const F& f) {
  if (flag) {
    f(std::true_type{});
  } else {
    f(std::false_type{});
  }
}

// torch's lerp: self + w (end - self) for |w| < 0.5, else end - (end - self)(1 - w). Not named
// lerp: C++20 puts std::lerp (other rounding, branches that stop vectorization) in the global
// namespace, and a non-template overload wins over this template.
template <typename T>
inline T torch_lerp(T self, T end, T w) {
  return std::abs(w) < T(0.5) ? self + w * (end - self) : end - (end - self) * (T(1) - w);
}

// g <- -g (maximize), then + wd p (L2 weight decay), as the readable path does.
template <bool L2, typename T>
inline T grad(T g, T p, T sign, T wd) {
  g = sign * g;
  if constexpr (L2) {
    g = g + wd * p;
  }
  return g;
}

// torch's sign (0 for 0 and NaN), maximum and minimum (NaN from either side), branch-free so
// that the loops that use them vectorize.
template <typename T>
inline T sign_of(T a) {
  return T((a > T(0)) - (a < T(0)));
}

template <typename T>
inline T maximum(T a, T b) {
  return (a > b || a != a) ? a : b;
}

template <typename T>
inline T minimum(T a, T b) {
  return (a < b || a != a) ? a : b;
}

}  // namespace descentlab
