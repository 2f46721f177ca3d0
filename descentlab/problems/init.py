"""Weight initialization schemes for a built model: :func:`initialize` and :data:`INITS`.

A scheme is applied to every layer that has a weight matrix or kernel: every parameter named
``weight*`` with at least two dimensions (``nn.Linear``, convolutions, ``nn.Embedding``,
``nn.LSTM``'s ``weight_ih_l*`` and ``weight_hh_l*``), and the ``bias*`` parameters of those same
layers are set to zero. Normalization layers (whose weights are vectors) keep their own
initialization. The schemes, with ``fan_in`` and ``fan_out`` as ``torch.nn.init`` computes them
(inputs and outputs of a linear layer, times the kernel size for a convolution):

* ``"default"``: nothing changes (the framework's default of each layer).
* ``"zeros"``, ``"constant"`` (every weight ``value``): every unit of a layer computes the same
  function and receives the same gradient, so the units stay identical during training (the
  symmetry a random initialization breaks).
* ``"normal"``: :math:`w \\sim N(0, \\sigma^2)` with ``std`` :math:`\\sigma`.
* ``"xavier_uniform"``, ``"xavier_normal"`` (Glorot & Bengio 2010, "Understanding the difficulty
  of training deep feedforward neural networks", eq. 16): variance
  :math:`2 / (\\text{fan\\_in} + \\text{fan\\_out})`, i.e. uniform on :math:`\\pm\\sqrt{6 /
  (\\text{fan\\_in} + \\text{fan\\_out})}` or normal with that variance (gain 1).
* ``"kaiming_uniform"``, ``"kaiming_normal"`` (He, Zhang, Ren & Sun 2015, "Delving Deep into
  Rectifiers: Surpassing Human-Level Performance on ImageNet Classification", eq. 10): variance
  :math:`2 / \\text{fan\\_in}` for ReLU networks, i.e. uniform on :math:`\\pm\\sqrt{6 /
  \\text{fan\\_in}}` or normal with standard deviation :math:`\\sqrt{2 / \\text{fan\\_in}}`.
  (torch's own ``kaiming_uniform_`` default for ``nn.Linear`` uses ``a = sqrt(5)``, a different
  gain: ``"default"`` keeps that.)

An ``nn.LSTM``'s weight matrices stack the four gates, so its ``fan_out`` is four times the hidden
size. The random schemes draw from torch's global generator: seed it first
(``torch.manual_seed``) for a reproducible initialization.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Real

import torch
from torch import nn

__all__ = ["INITS", "initialize"]

# scheme -> fills a weight tensor in place, given (weight, std, value)
_SCHEMES: dict[str, Callable[[torch.Tensor, float, float], object]] = {
    "zeros": lambda w, std, value: nn.init.zeros_(w),
    "constant": lambda w, std, value: nn.init.constant_(w, value),
    "normal": lambda w, std, value: nn.init.normal_(w, 0.0, std),
    "xavier_uniform": lambda w, std, value: nn.init.xavier_uniform_(w, gain=1.0),
    "xavier_normal": lambda w, std, value: nn.init.xavier_normal_(w, gain=1.0),
    "kaiming_uniform": lambda w, std, value: nn.init.kaiming_uniform_(
        w, mode="fan_in", nonlinearity="relu"
    ),
    "kaiming_normal": lambda w, std, value: nn.init.kaiming_normal_(
        w, mode="fan_in", nonlinearity="relu"
    ),
}
INITS = ("default", *_SCHEMES)


def _finite(x: object) -> bool:
    return isinstance(x, Real) and not isinstance(x, bool) and math.isfinite(x)


@torch.no_grad()
def initialize(
    model: nn.Module, scheme: str, *, std: float = 0.01, value: float = 0.1
) -> nn.Module:
    """Re-initialize ``model``'s weight matrices and kernels with ``scheme``, zero their biases.

    Args:
        model: any module; changed in place.
        scheme: one of :data:`INITS` (see the module's documentation).
        std: the standard deviation of ``"normal"`` (>= 0).
        value: every weight of ``"constant"``.

    Returns:
        ``model``.

    Raises:
        ValueError: an unknown scheme, a negative or non-finite ``std``, a non-finite ``value``,
            or a model without a weight the scheme applies to.

    Example:
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> net = initialize(nn.Linear(100, 10), "kaiming_normal")
        >>> bool(net.bias.eq(0).all())
        True
    """
    if scheme not in INITS:
        raise ValueError(f"init scheme must be one of {', '.join(INITS)}, got {scheme!r}")
    if not _finite(std) or std < 0:
        raise ValueError(f"init std must be a finite number >= 0, got {std!r}")
    if not _finite(value):
        raise ValueError(f"init value must be a finite number, got {value!r}")
    if scheme == "default":
        return model
    fill = _SCHEMES[scheme]
    found = False
    for module in model.modules():
        own = list(module.named_parameters(recurse=False))
        weights = [p for name, p in own if name.startswith("weight") and p.dim() >= 2]
        if not weights:
            continue
        found = True
        for w in weights:
            fill(w, std, value)
        for name, p in own:
            if name.startswith("bias"):
                p.zero_()
    if not found:
        raise ValueError(
            f"init {scheme!r}: {type(model).__name__} has no weight matrix or kernel "
            "(a parameter weight* with 2 or more dimensions) to initialize"
        )
    return model
