"""descentlab's Triton kernels: one multi-tensor launch per step for the optimizers torch has no
fused CUDA kernel for (issue 14).

Each function mirrors the C++ CPU kernel of the same name in ``optim/csrc/kernels.cpp`` (the
same arguments and math; the readable ``_reference`` methods of ``optim/*.py`` are the spec) and
is called **by keyword**. The contract, for every function:

* **Tensor lists** (``params``, ``grads``, state) hold contiguous tensors of one device and one
  dtype (float16, bfloat16, float32 or float64), sized like their parameter; an optional state
  list is empty when unused (``grad_avg``: not centered; ``momentum_buffer``: no momentum;
  ``max_exp_avg_sq``: AdaBound rather than AMSBound). All are updated in place.
* **Per-tensor scalars** (the C++ ``Scalars``: bias corrections, bounds, rectification, SWATS's
  ``coef``, the SGD family's ``lr``) are 1-D float64 tensors of ``len(params)`` values on the
  parameters' device, computed by the caller with torch ops from the device step counters, so
  nothing syncs. ``momentum_sgd``'s ``first`` is a 1-D tensor of any dtype (nonzero: b_1 = g_1).
* **Global hyperparameters** (lr, betas, eps, weight decay, decay, alpha, ...) are Python floats
  or 0-d tensors (a scheduler's tensor ``lr``); no kernel calls ``.item()``. A tensor weight
  decay is taken as possibly nonzero.
* **AMP**: ``grad_scale`` (0-d float32 device tensor or None) divides the gradients in the
  kernel and stores them unscaled (``grads`` is a mutated list, as in torch's fused optimizers
  and the C++ kernels: ``p.grad`` is left as ``GradScaler.unscale_`` leaves it); ``found_inf`` (0-d float32 or None)
  nonzero means the call changes nothing at all (the caller reverts its step counters, as torch
  does). ``lookahead_sync`` takes ``found_inf`` only; ``noise_add`` neither.
* **Precision**: the math is float32 for float16/bfloat16/float32 parameters and float64 for
  float64 ones (torch's opmath); each value is read once and written once; no full-size
  temporaries; float32 division and square root correctly rounded.
* **Launches**: at most two Triton launches per call (SWATS: three), whatever the number of
  tensors: the tensors' addresses and their (tensor, start, end) work items go to the kernel as
  tables, built once per list of tensors and cached (:mod:`._table`; a cache miss costs one
  small non-blocking host-to-device copy). Where every address is 16-byte aligned the tensors'
  whole blocks take one launch without masks (128-bit loads and stores) and their tails a
  masked one; ``_table.LAUNCHES`` counts the launches. Beyond them a call issues no
  torch op when its hyperparameters are Python floats (their vector is cached by value), one
  small stack (and a cast per tensor hyperparameter) otherwise; SWATS allocates its two small
  float64 buffers. A call never reads a device value on the host.
* **Operators**: every function calls ``torch.ops.descentlab.triton_<name>`` (an opaque
  ``torch.library.custom_op`` with a fake implementation, :mod:`.ops`), so ``torch.compile``
  traces it without a graph break and a tensor ``lr`` changed in place does not recompile.

The functions and their per-tensor scalars (see each docstring):

* ``momentum_sgd(params, grads, momentum_buffer, lr, first, momentum, dampening, nesterov,
  l2_weight_decay, decay, maximize)`` (SGD, SGDM, NAG, SGDW; SWATS's SGD phase)
* ``swats_adam(params, grads, exp_avg, exp_avg_sq, coef, beta1, beta2, eps, l2_weight_decay,
  maximize) -> dots`` (the C++ kernel's Adam phase; ``dots``: float64 ``[n, 2]`` on the device)
* ``swats(params, grads, exp_avg, exp_avg_sq, momentum_buffer, switch_step, lam, sgd_lr,
  switch_lr, coef, bc2, steps, lr, beta1, beta2, eps, l2_weight_decay, switch_tol, maximize)
  -> dots``: a whole SWATS step with the phase on the device. Its extra **state**, per
  parameter, is four 0-d float64 tensors on the parameter's device: ``switch_step`` (0 in the
  Adam phase, else the step of the switch), ``lam``, ``sgd_lr``, ``switch_lr`` (the readable
  path keeps them as Python numbers of the same names); ``steps`` is this step's count t per
  tensor and ``bc2 = 1 - beta2^t``.
* ``lookahead_sync(slow, fast, alpha)``
* ``noise_add(noise, grads, std)`` and ``noise_views(noise, grads)``: GradientNoise with one
  ``torch.randn(total)`` draw (see :mod:`.noise` for how that stream relates to per-tensor
  draws).

Triton reads ``TRITON_INTERPRET`` when the kernels are defined: set ``TRITON_INTERPRET=1``
before importing this package to run the kernels on CPU tensors (how the tests run them).
Not yet done: the kernels have run only under the interpreter (no GPU so far: the first
``benchmarks/gpu.py`` run compiles them), and the chunk and block sizes are not tuned.
"""

from ._table import LAUNCHES, configure
from .lookahead import lookahead_sync
from .momentum_sgd import momentum_sgd
from .noise import noise_add, noise_views
from .swats import swats, swats_adam

AMP = True  # every kernel here takes GradScaler's grad_scale and found_inf (see optim.base)

__all__ = [
    "AMP",
    "LAUNCHES",
    "configure",
    "lookahead_sync",
    "momentum_sgd",
    "noise_add",
    "noise_views",
    "swats",
    "swats_adam",
]
