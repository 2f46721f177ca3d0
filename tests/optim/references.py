"""Independent references written from the papers' equations (not from descentlab's code).

Each is a minimal torch.optim.Optimizer whose state uses the same key names as descentlab's, so the
case table can compare every state tensor.
"""

from __future__ import annotations

import math

import adopt
import schedulefree
import torch


class SGDWReference(torch.optim.Optimizer):
    """Loshchilov & Hutter 2019, Algorithm 1, with torch's momentum buffer:
    b_1 = g_1, b_t = mu b_{t-1} + g_t;  p <- p - lr*wd*p - lr*b_t."""

    def __init__(self, params, lr, momentum=0.0, weight_decay=5e-4):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                d = p.grad.clone()
                if group["momentum"]:
                    st = self.state[p]
                    if "momentum_buffer" not in st:
                        st["momentum_buffer"] = d.clone()
                    else:
                        st["momentum_buffer"] = group["momentum"] * st["momentum_buffer"] + d
                    d = st["momentum_buffer"]
                p.copy_(p - group["lr"] * group["weight_decay"] * p - group["lr"] * d)


class SWATSReference(torch.optim.Optimizer):
    """Keskar & Socher 2017, Algorithm 1, per parameter tensor, constant learning rate."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-9, switch_tol=1e-9):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, switch_tol=switch_tol))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            a, (b1, b2), eps = group["lr"], group["betas"], group["eps"]
            for x in group["params"]:
                if x.grad is None:
                    continue
                g = x.grad
                st = self.state[x]
                if not st:
                    st.update(k=0, exp_avg=torch.zeros_like(x), exp_avg_sq=torch.zeros_like(x))
                    st.update(lam=0.0, sgd_lr=0.0, switch_step=0)
                st["k"] += 1
                k = st["k"]
                if st["switch_step"]:
                    st["momentum_buffer"] = b1 * st["momentum_buffer"] + g
                    x.copy_(x - (1 - b1) * st["sgd_lr"] * st["momentum_buffer"])
                    continue
                st["exp_avg"] = b1 * st["exp_avg"] + (1 - b1) * g
                st["exp_avg_sq"] = b2 * st["exp_avg_sq"] + (1 - b2) * g * g
                pk = (
                    -a
                    * math.sqrt(1 - b2**k)
                    / (1 - b1**k)
                    * st["exp_avg"]
                    / (st["exp_avg_sq"].sqrt() + eps)
                )
                x.copy_(x + pk)
                pg = float((pk * g).sum())
                if pg != 0:
                    gamma = float((pk * pk).sum()) / -pg
                    st["lam"] = b2 * st["lam"] + (1 - b2) * gamma
                    if k > 1 and abs(st["lam"] / (1 - b2**k) - gamma) < group["switch_tol"]:
                        st["momentum_buffer"] = torch.zeros_like(x)
                        st["sgd_lr"] = st["lam"] / (1 - b2**k)
                        st["switch_step"] = k


def lookahead_reference(fast_opt, params, k, alpha, grad_fn, steps):
    """Zhang et al. 2019, Algorithm 1: yields the parameters after every inner step."""
    slow = [p.detach().clone() for p in params]
    for t in range(1, steps + 1):
        for p, g in zip(params, grad_fn(params, t)):
            p.grad = g
        fast_opt.step()
        if t % k == 0:
            with torch.no_grad():
                for p, s in zip(params, slow):
                    s.add_(alpha * (p - s))
                    p.copy_(s)
        yield [p.detach().clone() for p in params]


class AuthorsADOPT(adopt.ADOPT):
    """The authors' ADOPT (``torch-adopt``, per-tensor loop) under descentlab's names: a group's
    ``decoupled_weight_decay`` is their ``decouple``; ``clip=False`` is their
    ``clip_lambda=None``."""

    def __init__(self, params, decoupled_weight_decay=False, clip=True, **kwargs):
        kwargs.setdefault("clip_lambda", (lambda step: step**0.25) if clip else None)
        super().__init__(params, decouple=decoupled_weight_decay, foreach=False, **kwargs)

    def add_param_group(self, param_group):
        group = dict(param_group)  # (the test's dict: descentlab's optimizer reads it too)
        if "decoupled_weight_decay" in group:
            group["decouple"] = group.pop("decoupled_weight_decay")
        super().add_param_group(group)


class AdEMAMixReference(torch.optim.Optimizer):
    """Pagliardini et al. 2024, Algorithm 1, per parameter tensor, with the warm-ups of alpha and
    beta3 (their Section 3: linear in alpha, linear in the half-life of beta3) when T > 0."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999, 0.9999), alpha=5.0, t_alpha_beta3=0,
                 eps=1e-8, weight_decay=0.0, maximize=False):  # fmt: skip
        defaults = dict(lr=lr, betas=betas, alpha=alpha, t_alpha_beta3=t_alpha_beta3, eps=eps,
                        weight_decay=weight_decay, maximize=maximize)  # fmt: skip
        super().__init__(params, defaults)

    @staticmethod
    def warmed_up(t, b1, b3, alpha, big_t):
        """alpha(t) and beta3(t): linear warm-up of alpha; of beta3, linear in the half-life
        ln(0.5) / ln(beta) (the authors' scheduler), from beta1 to beta3, over T steps."""
        if big_t <= 0 or t >= big_t:
            return alpha, b3
        a = t / big_t

        def half_life(beta):
            return math.log(0.5) / math.log(beta)

        return a * alpha, 0.5 ** (1 / ((1 - a) * half_life(b1) + a * half_life(b3)))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            b1, b2, b3 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = -p.grad if group["maximize"] else p.grad
                st = self.state[p]
                if not st:
                    st["step"] = torch.tensor(0.0)
                    for key in ("exp_avg", "exp_avg_sq", "exp_avg_slow"):
                        st[key] = torch.zeros_like(p)
                st["step"] += 1
                t = int(st["step"])
                alpha, beta3 = self.warmed_up(t, b1, b3, group["alpha"], group["t_alpha_beta3"])
                st["exp_avg"] = b1 * st["exp_avg"] + (1 - b1) * g
                st["exp_avg_slow"] = beta3 * st["exp_avg_slow"] + (1 - beta3) * g
                st["exp_avg_sq"] = b2 * st["exp_avg_sq"] + (1 - b2) * g * g
                m_hat = st["exp_avg"] / (1 - b1**t)
                nu_hat = st["exp_avg_sq"] / (1 - b2**t)
                update = (m_hat + alpha * st["exp_avg_slow"]) / (nu_hat.sqrt() + group["eps"])
                p.sub_(group["lr"] * (update + group["weight_decay"] * p))


class LionReference(torch.optim.Optimizer):
    """Chen et al. 2023, Algorithm 2, per parameter tensor, in the paper's variables."""

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0, maximize=False):
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay,
                                      maximize=maximize))  # fmt: skip

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            b1, b2 = group["betas"]
            lr, lam = group["lr"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = -p.grad if group["maximize"] else p.grad
                m = self.state[p].setdefault("exp_avg", torch.zeros_like(p))
                c = b1 * m + (1 - b1) * g  # update = interp(g_t, m_{t-1}, beta1)
                p.sub_(
                    lr * (torch.sign(c) + lam * p)
                )  # theta_t = theta_{t-1} - lr (sign + lam theta)
                m.copy_(b2 * m + (1 - b2) * g)  # m_t = interp(g_t, m_{t-1}, beta2)


class _TrainMode:
    """The authors' Schedule-Free optimizer in train mode from the start (descentlab's starts
    there; theirs starts in eval mode and refuses a step there), on its per-tensor path, with
    ``maximize`` (which they lack) as a negated gradient of its own (theirs is changed in place:
    ``grad.div_``)."""

    def __init__(self, params, maximize=False, **kwargs):
        self._maximize = maximize
        super().__init__(params, foreach=False, **kwargs)
        self.train()

    def add_param_group(self, param_group):
        group = dict(param_group)
        group.setdefault("maximize", self._maximize)
        super().add_param_group(group)

    @torch.no_grad()
    def step(self, closure=None):
        grads = {}
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    grads[p] = p.grad
                    p.grad = -p.grad if group["maximize"] else p.grad.clone()
        try:
            return super().step(closure)
        finally:
            for p, g in grads.items():
                p.grad = g


class AuthorsScheduleFreeAdamW(_TrainMode, schedulefree.AdamWScheduleFree):
    """``schedulefree.AdamWScheduleFree`` (Defazio et al. 2024)."""


class AuthorsScheduleFreeSGD(_TrainMode, schedulefree.SGDScheduleFree):
    """``schedulefree.SGDScheduleFree`` (Defazio et al. 2024)."""
