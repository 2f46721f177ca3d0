"""A new optimizer from its elementwise rule: Lion (Chen et al. 2023), in descentlab.

The class below is all there is: descentlab derives the readable path, the fused CPU kernel
(generated C++, built once per machine), the ``torch.compile`` operator, the foreach path for
other devices, GradScaler support, the non-finite policy, state dicts and the hyperparameter
checks. See docs/custom.md. Run ``python examples/custom_optimizer.py`` to train a small model.
"""

from __future__ import annotations

import torch

from descentlab.optim.elementwise import Elementwise, checks, lerp, sign


class Lion(Elementwise):
    r"""Lion, "Symbolic Discovery of Optimization Algorithms" (Chen et al. 2023), Algorithm 2.

    .. math::
        c_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t                                  \tag{1}
        \theta_t = \theta_{t-1} - \eta (\mathrm{sign}(c_t) + \lambda \theta_{t-1})   \tag{2}
        m_t = \beta_2 m_{t-1} + (1 - \beta_2) g_t                                  \tag{3}

    Defaults as the paper's: ``betas=(0.9, 0.99)``, a learning rate 3-10x smaller than AdamW's.
    """

    hyperparameters = {"lr": 1e-4, "betas": (0.9, 0.99), "weight_decay": 0.0}
    checks = {"lr": checks.nonnegative, "betas": checks.betas, "weight_decay": checks.nonnegative}
    state_tensors = ("exp_avg",)

    def update(x, h):
        c = lerp(x.exp_avg, x.grad, 1 - h.betas[0])  # (1)
        x.param = x.param * (1 - h.lr * h.weight_decay) - h.lr * sign(c)  # (2)
        x.exp_avg = lerp(x.exp_avg, x.grad, 1 - h.betas[1])  # (3)


def main() -> None:
    """Fit a small regression with Lion and print the loss."""
    torch.manual_seed(0)
    x = torch.randn(256, 8)
    y = x @ torch.randn(8, 1) + 0.1 * torch.randn(256, 1)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
    opt = Lion(model.parameters(), lr=3e-3, weight_decay=0.1)
    for step in range(201):
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0:
            print(f"step {step:3d}  loss {loss.item():.4f}")


if __name__ == "__main__":
    main()
