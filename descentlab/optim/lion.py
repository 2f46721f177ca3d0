"""Lion: the sign of an interpolated momentum.

Reference: Chen, Liang, Huang, Real, Wang, Liu, Pham, Dong, Luong, Hsieh, Lu & Le 2023,
"Symbolic Discovery of Optimization Algorithms", Algorithm 2 (``lion-pytorch`` follows it).
"""

from __future__ import annotations

from . import _checks as c
from .elementwise import Elementwise, lerp, sign

__all__ = ["Lion"]


class Lion(Elementwise):
    r"""Lion (Chen et al. 2023, Algorithm 2).

    .. math::
        c_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t                                  \tag{1}
        \theta_t = \theta_{t-1}(1 - \eta\lambda) - \eta\, \mathrm{sign}(c_t)          \tag{2}
        m_t = \beta_2 m_{t-1} + (1 - \beta_2) g_t                                  \tag{3}

    The paper's defaults, ``betas=(0.9, 0.99)``; its learning rate is 3-10x smaller than
    AdamW's and its weight decay 3-10x larger (the update has norm :math:`\eta\sqrt{d}`).
    The decay is decoupled, scaled by ``lr`` (the paper's and ``lion-pytorch``'s); ``sign(0)
    = 0``, as ``torch.sign``. The same rule is the worked example of docs/custom.md.
    """

    hyperparameters = {"lr": 1e-4, "betas": (0.9, 0.99), "weight_decay": 0.0}
    checks = {"lr": c.nonnegative, "betas": c.betas, "weight_decay": c.nonnegative}
    state_tensors = ("exp_avg",)
    derived = {"decay": lambda h: h.weight_decay != 0}

    def update(x, h):
        if h.decay:
            x.param = x.param * (1 - h.lr * h.weight_decay)  # (2), the decay
        c = lerp(x.exp_avg, x.grad, 1 - h.betas[0])  # (1)
        x.param = x.param - h.lr * sign(c)  # (2)
        x.exp_avg = lerp(x.exp_avg, x.grad, 1 - h.betas[1])  # (3)
