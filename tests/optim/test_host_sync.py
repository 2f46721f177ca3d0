"""No step reads the value of a parameter-device tensor on the host: nothing would stall a GPU.

Tensors on PyTorch's ``meta`` device have shapes and dtypes but no data, so ``.item()``,
``bool()`` or ``float()`` of one raises. Every optimizer steps here on meta parameters and
gradients, with ``impl="auto"``: the foreach path (what a device without descentlab's kernels
takes; the step-dependent scalars come from the step counters, which live on the parameters'
device as on a GPU), and with torch's fused Adam where it has a meta kernel (the CUDA path of
Adam, AdamW and AMSGrad). A tensor learning rate may live on the CPU (as torch.optim's). The
one documented exception is SWATS's switch test on the foreach and CPU paths, which reads two
dot products per tensor and step during its Adam phase (its SGD phase reads nothing).

The GPU path's Python side (what ``_fused`` does around descentlab's Triton kernels: scalars,
SWATS's device phase, GradScaler's flags handed to the kernels) runs here too, with the Triton
functions replaced by recorders (meta tensors have no data for a kernel to read).
"""

from __future__ import annotations

import pytest
import torch

import descentlab

from .cases import CASES

WRAPPED = ["lookahead(adam)", "noisy(sgdm)", "lookahead(noisy(radam))"]


def _meta_groups(hparams: tuple[dict, ...]) -> list[dict]:
    shapes = [[(), (5, 4)], [(3, 6), (7,)]]
    groups = []
    for group_shapes, h in zip(shapes, hparams):
        params = [torch.nn.Parameter(torch.empty(s, device="meta")) for s in group_shapes]
        for p in params:
            p.grad = torch.empty_like(p)
        groups.append({"params": params, **h})
    return groups


@pytest.mark.parametrize("lr", ["float", "cpu-tensor"])
@pytest.mark.parametrize("case", [c for c in CASES if c.name != "swats"], ids=str)
def test_steps_read_no_device_values(case, lr):
    groups = _meta_groups(case.groups)
    if lr == "cpu-tensor":
        for group in groups:
            group["lr"] = torch.tensor(group["lr"])
    opt = descentlab.create(case.name, groups, **case.fixed)
    for _ in range(3):
        opt.step()
    _on_the_fast_path_with_meta_counters(opt)


def _on_the_fast_path_with_meta_counters(opt):
    for group in opt.param_groups:
        plan = opt._plans[id(group)]
        assert not plan.slow and plan.buckets, "every tensor on the foreach path"
        assert all(opt.state[p]["step"].device.type == "meta" for p in group["params"])


@pytest.mark.parametrize("name", ["adam", "amsgrad", "adamw"])
def test_torch_fused_adam_path_reads_no_device_values(name, monkeypatch):
    from descentlab.optim.kernels import rules

    monkeypatch.setattr(rules, "select", lambda rule, device, **kwargs: None)  # torch's kernel
    calls = []
    fused = torch._fused_adam_
    monkeypatch.setattr(torch, "_fused_adam_", lambda *a, **k: calls.append(1) or fused(*a, **k))
    monkeypatch.setattr(torch, "_fused_adamw_", lambda *a, **k: calls.append(1) or fused(*a, **k))
    opt = descentlab.create(name, _meta_groups(({"lr": 0.01}, {"lr": 0.02})))
    for _ in range(3):
        opt.step()
    assert len(calls) == 6


@pytest.mark.parametrize("capturable", [False, True], ids=["host-count", "device-count"])
@pytest.mark.parametrize("name", WRAPPED)
def test_wrapped_steps_read_no_device_values(name, capturable):
    """Both counts: the host one (Lookahead decides on the host, GradientNoise's std is a
    float) and the device one of a capturable inner optimizer (a meta counter, read nowhere)."""
    groups = _meta_groups(({"lr": 0.01}, {"lr": 0.02}))
    options = {"k": 2} if "lookahead" in name else {}
    opt = descentlab.create(name, groups, capturable=capturable, **options)
    if capturable:
        assert (opt.inner_steps if "lookahead" in name else opt.noise_steps).device.type == "meta"
    for _ in range(5):  # two Lookahead synchronizations
        opt.step()
    while not hasattr(opt, "_plans"):  # the innermost optimizer
        opt = opt.base_optimizer
    _on_the_fast_path_with_meta_counters(opt)


def test_swats_sgd_phase_reads_no_device_values():
    groups = _meta_groups(({"lr": 0.01}, {"lr": 0.02, "weight_decay": 0.1}))
    opt = descentlab.create("swats", groups)
    for group in opt.param_groups:
        for p in group["params"]:
            state = opt.state[p]
            state["step"] = torch.tensor(10.0)
            opt._init_state(group, p, state)
            state.update(switch_step=5, sgd_lr=0.3, switch_lr=group["lr"])
    for _ in range(3):
        opt.step()
    assert float(opt.state[groups[1]["params"][0]]["step"]) == 13


def test_swats_adam_phase_reads_its_dot_products():
    opt = descentlab.create("swats", _meta_groups(({"lr": 0.01}, {"lr": 0.02})))
    with pytest.raises(RuntimeError, match="meta"):
        opt.step()


class _Recorder:
    """The Triton kernels' module as the GPU path calls it: each function records its call."""

    AMP = True

    def __init__(self):
        from descentlab.optim.kernels import triton as tk

        self.calls: list[tuple[str, dict]] = []
        for name in tk.__all__:
            if callable(getattr(tk, name)):
                setattr(self, name, self._record(name))

    def _record(self, name):
        def kernel(**kwargs):
            self.calls.append((name, kwargs))
            params = kwargs.get("params") or kwargs.get("fast")
            return params[0].new_zeros((len(params), 2), dtype=torch.float64)

        return kernel

    def step(self, rule, setting, params, grads, lists, vectors, **amp):
        """A rule optimizer's kernels (kernels.rules.Compiled.step)."""
        self.calls.append((rule.name, amp))


@pytest.mark.parametrize("case", CASES, ids=str)
def test_gpu_path_reads_no_device_values_under_grad_scaler(case, monkeypatch):
    """descentlab's kernels (Triton, the rules' included: every kernel call is recorded); the
    scale and the inf flag are device tensors that go to the kernels unread."""
    from descentlab.optim import kernels
    from descentlab.optim.kernels import rules

    recorder = _Recorder()
    monkeypatch.setattr(
        kernels, "select", lambda device, torch_fused, **kw: None if torch_fused else recorder
    )
    monkeypatch.setattr(rules, "select", lambda rule, device, **kw: recorder)
    for name in ("_fused_sgd_", "_fused_adagrad_"):
        monkeypatch.setattr(torch, name, lambda *a, _n=name, **kw: recorder.calls.append((_n, kw)))
    opt = descentlab.create(case.name, _meta_groups(case.groups), **case.fixed)
    opt.grad_scale = torch.ones((), device="meta")
    opt.found_inf = torch.zeros((), device="meta")
    for _ in range(3):
        opt.step()
    _on_the_fast_path_with_meta_counters(opt)
    assert len(recorder.calls) >= 6, recorder.calls
    assert all(kw["found_inf"] is opt.found_inf for _, kw in recorder.calls)
    assert all(kw["grad_scale"] is opt.grad_scale for _, kw in recorder.calls)
