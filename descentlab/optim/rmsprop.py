"""RMSProp (optionally centered, optionally with momentum).

Reference: Tieleman & Hinton 2012, Lecture 6.5 of "Neural Networks for Machine Learning";
Graves 2013, "Generating Sequences With Recurrent Neural Networks", eqs. (38)-(41) (centered).
"""

from __future__ import annotations

from . import _checks as c
from .elementwise import Elementwise, lerp, sqrt

__all__ = ["RMSprop"]


class RMSprop(Elementwise):
    r"""RMSProp, torch.optim's convention.

    .. math::
        v_t = \alpha v_{t-1} + (1-\alpha) g_t^2                                   \tag{1}
        \bar g_t = \alpha \bar g_{t-1} + (1-\alpha) g_t \text{ (centered)}         \tag{2}
        d_t = \sqrt{v_t - \bar g_t^2} + \epsilon \text{ (centered) or } \sqrt{v_t} + \epsilon \tag{3}
        b_t = \mu b_{t-1} + g_t / d_t,\ \theta_t = \theta_{t-1} - \eta b_t \text{ (momentum)} \tag{4}
        \theta_t = \theta_{t-1} - \eta\, g_t / d_t \text{ (no momentum)}           \tag{5}

    Epsilon is outside the square root (torch; TF puts it inside). ``weight_decay`` is L2.
    ``grad_avg`` exists only when ``centered``, ``momentum_buffer`` only when ``momentum > 0``
    (as in torch.optim's state dicts).
    """

    hyperparameters = {
        "lr": 1e-2,
        "alpha": 0.99,
        "eps": 1e-8,
        "weight_decay": 0.0,
        "momentum": 0.0,
        "centered": False,
    }
    checks = {
        "lr": c.nonnegative,
        "alpha": c.unit,
        "eps": c.nonnegative,
        "weight_decay": c.nonnegative,
        "momentum": c.fraction,
    }
    state_tensors = ("square_avg", "momentum_buffer", "grad_avg")
    derived = {"l2": lambda h: h.weight_decay != 0, "heavy_ball": lambda h: h.momentum > 0}
    state_when = {"momentum_buffer": "heavy_ball", "grad_avg": "centered"}

    def update(x, h):
        g = x.grad + h.weight_decay * x.param if h.l2 else x.grad  # L2
        v = x.square_avg * h.alpha + (1 - h.alpha) * g * g  # (1)
        x.square_avg = v
        if h.centered:
            x.grad_avg = lerp(x.grad_avg, g, 1 - h.alpha)  # (2)
            d = sqrt(v - x.grad_avg * x.grad_avg) + h.eps  # (3)
        else:
            d = sqrt(v) + h.eps  # (3)
        if h.heavy_ball:
            x.momentum_buffer = x.momentum_buffer * h.momentum + g / d  # (4)
            x.param = x.param - h.lr * x.momentum_buffer
        else:
            x.param = x.param - h.lr * (g / d)  # (5)
