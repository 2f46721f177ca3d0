"""Devices without a GPU: names, resolution and its one-line errors, GPU slots of the pool and Ray
(torch.cuda monkeypatched), mixed precision and deterministic trials on the CPU."""

from __future__ import annotations

import math
import sys
import types
from concurrent.futures import Future

import pytest
import torch

from descentlab.lab import SpecError, parse, run_experiment, run_trial
from descentlab.lab import _backends as backends
from descentlab.lab.devices import DeviceError, check_name, resolve, slots
from descentlab.lab.tuning import plan_initial

from .test_loop import _config

TINY = "tests.lab.tiny:problem"


@pytest.fixture
def two_gpus(monkeypatch):
    """torch says it sees two CUDA GPUs (nothing may touch them)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


def _no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.mark.parametrize("name", ["auto", "cpu", "cuda", "cuda:0", "cuda:12", "mps"])
def test_device_names(name):
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["gpu", "cuda:", "cpu:0", "mps:1", "CUDA", 0, None])
def test_bad_device_names_say_what_is_allowed(name):
    with pytest.raises(DeviceError, match=r"device: .*; allowed: 'auto', 'cpu', 'cuda', 'cuda:N'"):
        check_name(name)


def test_without_a_gpu_auto_is_the_cpu_and_cuda_is_one_clear_error(monkeypatch):
    _no_gpu(monkeypatch)
    assert resolve("auto") == torch.device("cpu") == resolve("cpu")
    for name in ("cuda", "cuda:1"):
        with pytest.raises(DeviceError) as info:
            resolve(name)
        message = str(info.value)
        assert message.startswith(f"device {name!r}: torch ") and "sees no CUDA GPU" in message
        assert "\n" not in message
    with pytest.raises(DeviceError, match="no Apple MPS device"):
        resolve("mps")


def test_gpu_indices_are_checked_and_slots_share_each_gpu(two_gpus):
    assert resolve("auto") == torch.device("cuda") and resolve("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(DeviceError, match=r"has 2 CUDA GPU\(s\), cuda:0 to cuda:1"):
        resolve("cuda:2")
    every = [torch.device("cuda", i) for i in (0, 0, 0, 1, 1, 1)]
    assert slots(torch.device("cuda"), 3) == every
    assert slots(torch.device("cuda", 1), 2) == [torch.device("cuda", 1)] * 2
    assert slots(torch.device("cpu"), 4) == [torch.device("cpu")]
    with pytest.raises(ValueError, match="trials_per_gpu: 0"):
        slots(torch.device("cuda"), 0)


def test_the_experiment_file_takes_a_device_and_determinism():
    doc = {"problems": [TINY], "optimizers": ["sgd"]}
    assert parse(doc).device == "auto" and not parse(doc).deterministic
    exp = parse({**doc, "device": "cpu", "deterministic": True})
    assert exp.device == "cpu" and exp.deterministic
    assert {p.trial.deterministic for p in plan_initial(exp)} == {True}
    with pytest.raises(SpecError, match=r"^device: 'gpu'; allowed"):
        parse({**doc, "device": "gpu"})
    with pytest.raises(SpecError, match=r"^deterministic: 'yes'; expected true or false"):
        parse({**doc, "deterministic": "yes"})


def test_cuda_without_a_gpu_fails_before_anything_is_written(tmp_path, monkeypatch):
    _no_gpu(monkeypatch)
    exp = parse({"problems": [TINY], "optimizers": ["sgd"]})
    with pytest.raises(DeviceError, match="sees no CUDA GPU"):
        run_experiment(exp, db=tmp_path / "runs.db", device="cuda", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_cpu_trials_keep_their_keys_and_gpu_trials_get_others(two_gpus):
    doc = {"problems": [TINY], "optimizers": ["sgd"], "tuning": {"method": "defaults"}}
    on_cpu = plan_initial(parse({**doc, "device": "cpu"}))[0].trial
    on_gpu = plan_initial(parse({**doc, "device": "cuda:1"}))[0].trial
    assert "device" not in on_cpu.config() and on_gpu.config()["device"] == "cuda"
    assert on_gpu.key() != on_cpu.key()
    assert plan_initial(parse({**doc, "device": "auto"}))[0].trial.key() == on_gpu.key()


class _InProcess:
    """A stand-in for ProcessPoolExecutor that runs each call when submitted."""

    def __init__(self, workers, mp_context=None):
        self.workers = workers

    def submit(self, fn, *args, **kwargs):
        future = Future()
        future.set_result(fn(*args, **kwargs))
        return future

    def shutdown(self, **kwargs):
        pass


def test_the_pool_runs_a_worker_per_gpu_slot_and_hands_each_trial_a_free_one(two_gpus, monkeypatch):
    monkeypatch.setattr(backends, "ProcessPoolExecutor", _InProcess)
    seen = []

    def fake_run(trial, *, data_dir, device):
        seen.append(device)
        return backends.TrialResult("finished", summary={"device": device})

    monkeypatch.setattr(backends, "run_trial", fake_run)
    pool = backends.open_backend(
        "pool", workers=None, address=None, data_dir=None, device=torch.device("cuda"),
        trials_per_gpu=2,
    )  # fmt: skip
    assert isinstance(pool, backends.Pool) and pool.slots == 4
    trial = parse({"problems": [TINY], "optimizers": ["sgd"], "device": "cpu"})
    trial = plan_initial(trial)[0].trial
    for i in range(4):
        pool.submit(f"k{i}", trial)
    assert sorted(seen) == ["cuda:0", "cuda:0", "cuda:1", "cuda:1"]
    _, result = pool.wait()
    pool.submit("k4", trial)  # takes the slot just freed
    assert seen[-1] == result.summary["device"]
    pool.close()
    capped = backends.open_backend(
        "pool", workers=1, address=None, data_dir=None, device=torch.device("cuda", 1)
    )
    assert isinstance(capped, backends.Serial) and capped._device == torch.device("cuda", 1)


def test_ray_asks_for_a_fraction_of_a_gpu_per_trial(monkeypatch):
    asked = {}

    def remote(**options):
        asked.update(options)
        return lambda fn: types.SimpleNamespace(remote=fn)

    fake = types.SimpleNamespace(
        is_initialized=lambda: True,
        cluster_resources=lambda: {"CPU": 16.0, "GPU": 2.0},
        remote=remote,
    )
    monkeypatch.setitem(sys.modules, "ray", fake)
    ray = backends.Ray(None, None, None, torch.device("cuda"), trials_per_gpu=3)
    assert ray.slots == 6 and asked == {"num_cpus": 1, "num_gpus": 1 / 3, "max_retries": 3}
    assert backends.Ray(4, None, None, torch.device("cuda"), trials_per_gpu=3).slots == 4
    assert backends.Ray(None, None, None, torch.device("cpu"), trials_per_gpu=3).slots == 16
    assert asked["num_gpus"] == 0.0
    fake.cluster_resources = lambda: {"CPU": 4.0}
    with pytest.raises(RuntimeError, match="the Ray cluster has no GPU"):
        backends.Ray(None, None, None, torch.device("cuda"), trials_per_gpu=1)


def test_a_trial_on_another_device_type_fails_clearly():
    r = run_trial(_config(), device="meta")
    assert r.status == "failed" and "device meta: the trial is a cpu trial" in r.error


def _curves(result):
    assert result.status == "finished", result.error
    return {(c.split, c.metric): c.values for c in result.curves if c.split != "time"}


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("problem", [TINY, "gan-mog"])
def test_mixed_precision_trials_run_on_the_cpu(precision, problem):
    over = {"precision": precision, "problem": problem}
    if problem == "gan-mog":
        over.update(options={"steps_per_epoch": 4, "n_eval": 64, "width": 16}, batch_size=32)
    mixed, full = run_trial(_config(**over)), run_trial(_config(**{**over, "precision": "float32"}))
    a, b = _curves(mixed), _curves(full)
    assert a.keys() == b.keys() and a != b  # other arithmetic: other numbers
    assert all(math.isfinite(x) for values in a.values() for x in values)
    loss, ref = a["train", "step_loss"][0], b["train", "step_loss"][0]
    assert loss == pytest.approx(ref, rel=0.05)  # the same model, the same first batch
    assert mixed.placement.precision == precision and mixed.placement.label.endswith(precision)


def test_fp16_scales_the_loss_and_skips_overflowing_steps():
    from descentlab.problems import Amp

    amp = Amp("cpu", "fp16")
    w = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([w], lr=0.1)
    with amp.autocast():
        loss = (w * torch.tensor([1.0, 2.0, 3.0])).sum()
    amp.backward(loss)
    assert w.grad.tolist() == [amp.scaler.get_scale() * g for g in (1.0, 2.0, 3.0)]
    amp.step(opt)
    amp.update()
    assert w.tolist() == pytest.approx([0.9, 0.8, 0.7])  # stepped on unscaled gradients
    w.grad = torch.full((3,), math.inf)
    amp.step(opt)
    assert w.tolist() == pytest.approx([0.9, 0.8, 0.7])  # skipped
    with pytest.raises(ValueError, match="precision: 'fp8'"):
        Amp("cpu", "fp8")


def test_a_deterministic_trial_reproduces_its_curves_and_restores_torch():
    before = torch.are_deterministic_algorithms_enabled()
    config = _config(deterministic=True, tricks={"gradient_noise": {"eta": 0.01, "gamma": 0.55}})
    a, b = run_trial(config), run_trial(config)
    assert _curves(a) == _curves(b)
    assert torch.are_deterministic_algorithms_enabled() == before
    plain = run_trial({k: v for k, v in config.items() if k != "deterministic"})
    assert _curves(plain) == _curves(a)  # on the CPU, the same algorithms


def test_placement_is_recorded():
    r = run_trial(_config())
    p = r.placement
    assert (p.device_type, p.precision, p.torch) == ("cpu", "float32", torch.__version__)
    assert p.cuda == torch.version.cuda and p.device_name
