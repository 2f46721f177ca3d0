"""``descentlab.testing.check_optimizer`` passes a correct optimizer of any origin, and each broken
variant fails with a message that names the check, the step, the parameter and the state key."""

from __future__ import annotations

import math
from functools import partial

import pytest
import torch

from descentlab.testing import CHECKS, ConformanceError, check_optimizer

from . import _toys as toys

HPARAMS = ({"lr": 0.01, "betas": (0.8, 0.99)}, {"lr": 0.003, "eps": 1e-6})


def _only(*names: str) -> set[str]:
    return set(CHECKS) - set(names)


def _fails(cls, *checks: str, **options) -> ConformanceError:
    with pytest.raises(ConformanceError) as info:
        check_optimizer(cls, toys.adam_reference, HPARAMS, steps=10, skip=_only(*checks), **options)
    err = info.value
    assert err.check == checks[0] and str(err).startswith(f"check_optimizer({cls.__name__}):")
    return err


def test_a_correct_optimizer_passes_every_check():
    report = check_optimizer(toys.ToyAdam, toys.adam_reference, HPARAMS, steps=20)
    assert report.passed == [c for c in CHECKS if c not in ("paths", "compile")]
    assert report.paths == ["default"]
    assert set(report.skipped) == {"paths", "paths: fused=True", "compile"}  # no fused= here
    assert "one path only" in report.skipped["paths"]


def test_the_reference_catches_a_missing_bias_correction():
    err = _fails(toys.NoBiasCorrection, "reference")
    assert (err.step, err.group, err.param, err.key) == (1, 0, 0, None)
    assert "float64" in err.label and "parameter differs" in str(err)


def test_a_step_must_not_change_the_gradient():
    err = _fails(toys.GradInPlace, "reference")
    assert (err.step, err.group, err.param) == (1, 0, 0)
    assert "changed p.grad in place" in str(err)


def test_a_fast_path_that_differs_from_the_readable_one():
    err = _fails(toys.FastPathDiffers, "paths")
    assert "impl='foreach' vs impl='forloop'" in err.label
    assert (err.step, err.group, err.param) == (1, 0, 0)


def test_fast_paths_compare_every_state_entry():
    """A state entry that differs while the parameters agree (here: eps does not reach v)."""

    class Drifts(toys.FastPathDiffers):
        def _eps(self, eps):
            return eps

        def _update(self, p, g, state, group):
            super()._update(p, g, state, group)
            if self.impl == "foreach":
                state["exp_avg"].mul_(1 + 1e-6)

    err = _fails(
        Drifts, "paths", paths={"forloop": {"impl": "forloop"}, "foreach": {"impl": "foreach"}}
    )
    assert (err.step, err.group, err.param, err.key) == (1, 0, 0, "exp_avg")
    assert str(err).startswith(
        "check_optimizer(Drifts): check 'paths' (foreach vs forloop, float64)"
    )


def test_a_state_dict_that_drops_a_key():
    err = _fails(toys.DropsAKey, "state_dict")
    assert (err.step, err.group, err.param, err.key) == (5, 0, 0, "exp_avg_sq")
    assert "missing from the resumed run" in str(err)


def test_a_step_that_reads_a_device_value_on_the_host():
    err = _fails(toys.ReadsTheStep, "meta")
    assert err.step == 1 and "item() cannot be called on meta tensors" in str(err)


def test_a_step_that_recompiles():
    err = _fails(toys.FloatStep, "compile", compile=True, compile_steps=5)
    assert err.step == 4 and "recompiled after the warm-up" in str(err)
    assert "['step']" in str(err)  # the guard that failed


def test_an_lr_captured_at_construction_ignores_the_scheduler():
    err = _fails(toys.CapturesLR, "scheduler")
    assert err.step == 4 and "parameter differs" in str(err)  # StepLR halved lr after step 3


def test_a_parameter_without_gradient_must_not_move():
    err = _fails(toys.StepsWithoutGrad, "no_grad")
    assert (err.step, err.group, err.param) == (3, 0, 1) and "parameter changed" in str(err)


def test_float64_parameters_keep_float64_state():
    err = _fails(toys.Float32State, "float64")
    assert (err.group, err.param, err.key) == (0, 1, "exp_avg_sq")
    assert "torch.float32, not torch.float64" in str(err)


def test_a_copy_that_loses_an_attribute():
    err = _fails(toys.LosesACounter, "copies")
    assert err.label == "deepcopy" and err.step == 5 and "AttributeError" in str(err)


def test_torch_adam_against_the_papers_algorithm():
    """As a user would: torch's own Adam, its foreach and fused paths, against Algorithm 1."""

    def adam(param, grad, state, step, lr, betas, eps, weight_decay, maximize):
        g = (-grad if maximize else grad) + weight_decay * param
        toys.adam_reference(param, g, state, step, lr, betas, eps)

    hparams = ({"lr": 0.01, "weight_decay": 0.01}, {"lr": 0.003, "maximize": True})
    report = check_optimizer(torch.optim.Adam, adam, hparams)
    assert report.paths == ["foreach=False", "foreach=True", "fused=True"]
    assert set(report.skipped) == {"compile"}


def test_complex_parameters():
    def sgd(param, grad, state, step, lr):
        param.sub_(lr * grad)

    report = check_optimizer(
        torch.optim.SGD, sgd, dtypes=(torch.complex128, torch.complex64), steps=5, skip={"meta"}
    )
    assert report.passed[:2] == ["reference", "paths"]
    assert "floating point" in report.skipped["paths: fused=True, complex64"]


def test_an_optimizer_class_as_the_reference():
    """descentlab's SGD with momentum against torch's (a partial fixes the shared option)."""
    from descentlab.optim import SGD

    report = check_optimizer(
        partial(SGD, momentum=0.9),
        partial(torch.optim.SGD, momentum=0.9, foreach=False),
        ({"lr": 0.05}, {"lr": 0.02, "nesterov": True}, {"lr": 0.01, "dampening": 0.5}),
        steps=10,
        dtypes=(torch.float32,),
        skip={"meta", "paths"},
    )
    assert "reference" in report.passed and "scheduler" in report.passed


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match=r"unknown checks.*'typo'"):
        check_optimizer(toys.ToyAdam, skip={"typo"})
    with pytest.raises(ValueError, match="steps"):
        check_optimizer(toys.ToyAdam, steps=1)


def test_without_a_reference_the_rest_still_runs():
    report = check_optimizer(toys.ToyAdam, steps=4)
    assert report.skipped["reference"] == "no reference given"
    assert math.isclose(torch.get_default_dtype().itemsize, 4)
