"""The fast paths of the optimizers, apart from the readable per-tensor one.

* ``csrc/kernels.cpp`` and :mod:`.cpu`: descentlab's compiled CPU kernels, built on first use;
* :mod:`.ops`: those kernels registered as ``torch.library`` operators (``descentlab::*``), so
  that ``torch.compile`` traces through them;
* ``triton/``: the GPU kernels;
* :mod:`.foreach`: the same kernels as ``torch._foreach_*`` ops, for any other device;
* :mod:`._scalars`: the step-dependent scalars that all of them take, computed on the device.

Every kernel takes the same keyword arguments on every path. Nothing here is imported with
``descentlab``: a path's module is imported when a step first needs it.
"""
