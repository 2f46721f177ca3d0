"""Triton reads ``TRITON_INTERPRET`` when it is imported, and creating any torch optimizer
imports it (through torch._dynamo): set it before any test module is collected (this is the
first conftest pytest loads; tests/optim's own was too late once an earlier directory's
modules had created an optimizer), so that test_triton.py's kernels run under the interpreter on CPU tensors whatever
the order of collection (its compile check's subprocess sets DESCENTLAB_TRITON_COMPILE)."""

import os

if os.environ.get("DESCENTLAB_TRITON_COMPILE") != "1":
    os.environ.setdefault("TRITON_INTERPRET", "1")
