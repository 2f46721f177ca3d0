"""The LR range test: a quadratic with a known answer, exact restore, loaders, the errors."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

import descentlab
from descentlab.schedules import LRRangeResult, lr_range_test

L = 4.0  # curvature: plain SGD on this quadratic diverges above lr = 2 / L


def quadratic(seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor, float, float]:
    """Linear least squares with Hessian L * I: loss(w) = floor + (L/2) |w - w*|^2.

    Returns the model, the design, the targets, the initial excess (L/2)|w0 - w*|^2 and the floor.
    """
    g = torch.Generator().manual_seed(seed)
    n, d = 32, 4
    q = torch.linalg.qr(torch.randn(n, d + 1, generator=g, dtype=torch.float64))[0]
    x = math.sqrt(n * L / 2) * q[:, :d]  # X^T X = (n L / 2) I, so the Hessian of the MSE is L I
    w_star = torch.randn(d, 1, generator=g, dtype=torch.float64)
    noise = 0.3 * q[:, d:]  # orthogonal to the columns of X: the floor is |noise|^2 / n
    model = nn.Linear(d, 1, bias=False).double()
    w0 = model.weight.detach().T
    excess = L / 2 * (w0 - w_star).pow(2).sum().item()
    return model, x, x @ w_star + noise, excess, noise.pow(2).sum().item() / n


def sgd_on_quadratic(**kwargs) -> tuple[LRRangeResult, float, float]:
    """The range test with plain full-batch SGD on the quadratic; also its excess and floor."""
    model, x, y, excess, floor = quadratic()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return lr_range_test(model, opt, nn.functional.mse_loss, [(x, y)], **kwargs), excess, floor


def test_quadratic_known_answer() -> None:
    res, excess, floor = sgd_on_quadratic(start_lr=1e-2 / L, end_lr=100 / L, num_steps=30)
    # the loss of step i is taken before its update; each update scales the excess by (1 - lr L)^2
    expected = []
    for lr in res.lrs:
        expected.append(floor + excess)
        excess *= (1 - lr * L) ** 2
    assert res.raw_losses == pytest.approx(expected, rel=1e-9)
    avg, best, stop = 0.0, math.inf, None
    for i, loss in enumerate(expected):  # fastai's smoothing and stop rule, written out
        avg = 0.95 * avg + 0.05 * loss
        smooth = avg / (1 - 0.95 ** (i + 1))
        assert res.losses[i] == pytest.approx(smooth, rel=1e-9)
        best = min(best, smooth)
        if smooth > 4 * best:
            stop = i
            break
    assert res.stop_reason == "diverged" and len(res.lrs) == stop + 1
    assert res.diverged_at == res.lrs[stop]
    # full-batch GD is monotone below 2/L, so the test cannot stop before; the smoothing's lag
    # (s = 0.05) lets it run a few steps past (each step multiplies the LR by 10^(4/29) = 1.37)
    first_unstable = next(i for i, lr in enumerate(res.lrs) if lr > 2 / L)
    assert first_unstable <= stop <= first_unstable + 8
    for method, lr in res.suggestions().items():
        assert 0.01 / L < lr < 2 / L, method  # every suggestion is a stable LR
    assert res.suggestion("steepest") < 1 / L  # the descent is steepest before the 1-step LR


def test_linear_mode_and_no_smoothing() -> None:
    res, *_ = sgd_on_quadratic(start_lr=0.01, end_lr=0.4, num_steps=9, mode="linear", smooth=1.0)
    assert res.lrs == pytest.approx([0.01 + i / 8 * 0.39 for i in range(9)], rel=1e-15)
    assert res.losses == res.raw_losses and res.stop_reason == "completed"
    assert res.diverged_at is None


def bn_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(3, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.1), nn.Linear(8, 2)
    )


def batches(n: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(16, 3, generator=g), torch.randint(0, 2, (16,), generator=g)) for _ in range(n)
    ]


def same(a, b) -> bool:
    """Exact equality of nested state dicts (tensors compared by value)."""
    if torch.is_tensor(a) or torch.is_tensor(b):
        return torch.is_tensor(a) and torch.is_tensor(b) and torch.equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


@pytest.mark.parametrize("optimizer", ["adam", "lookahead(sgdm)", "torch-adamw"])
def test_restores_model_and_optimizer_exactly(optimizer: str) -> None:
    model = bn_model()
    if optimizer == "torch-adamw":
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    else:
        opt = descentlab.create(optimizer, model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.StepLR(opt, 2, 0.5)  # sets initial_lr, changes the LR
    loss_fn = nn.functional.cross_entropy
    for x, y in batches(3):  # some optimizer state and BatchNorm statistics first
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
        sched.step()
    model[1].eval()  # a mixed train/eval model
    before_model = {k: v.clone() for k, v in model.state_dict().items()}
    before_grads = [p.grad.clone() for p in model.parameters()]
    before_opt = copy.deepcopy(opt.state_dict())
    res = lr_range_test(model, opt, loss_fn, batches(2), start_lr=1e-4, end_lr=10, num_steps=30)
    assert len(res.lrs) > 5 and len(set(res.raw_losses)) > 5  # it did train
    after = model.state_dict()
    assert after.keys() == before_model.keys()
    for k, v in before_model.items():
        assert torch.equal(after[k], v), k  # parameters and buffers (running stats, counts)
    for p, g in zip(model.parameters(), before_grads):
        assert torch.equal(p.grad, g)
    assert [m.training for m in model.modules()] == [True, True, False, True, True, True]
    assert same(opt.state_dict(), before_opt)  # state tensors, LRs, wrapper state
    assert opt.param_groups[0]["lr"] == sched.get_last_lr()[0]  # the scheduler's LR is back


def test_cycles_a_short_loader() -> None:
    model = bn_model()
    opt = descentlab.create("sgd", model.parameters(), lr=0.1)
    data = batches(3)
    seen = []

    def loss_fn(out, y):
        seen.append(y)
        return nn.functional.cross_entropy(out, y)

    res = lr_range_test(model, opt, loss_fn, data, start_lr=1e-6, end_lr=1e-4, num_steps=8)
    assert len(res.lrs) == 8
    assert all(torch.equal(s, data[i % 3][1]) for i, s in enumerate(seen))


def test_val_loader_gives_the_held_out_loss_after_each_step() -> None:
    model, x, y, *_ = quadratic()
    val = [(x[:10], y[:10]), (x[10:], y[10:])]  # two batches of different sizes
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    replay = nn.Linear(4, 1, bias=False).double()
    replay.load_state_dict(model.state_dict())
    res = lr_range_test(
        model,
        opt,
        nn.functional.mse_loss,
        [(x[:16], y[:16])],
        start_lr=1e-3,
        end_lr=0.3,
        num_steps=12,
        val_loader=val,
    )
    for lr, loss in zip(res.lrs, res.raw_losses):
        with torch.no_grad():
            grad = torch.autograd.functional.jacobian(
                lambda w: nn.functional.mse_loss(x[:16] @ w.T, y[:16]), replay.weight
            )
            replay.weight -= lr * grad
            full = nn.functional.mse_loss(replay(x), y).item()  # size-weighted mean = full mean
        assert loss == pytest.approx(full, rel=1e-9)


def test_stops_on_nonfinite_loss() -> None:
    model = bn_model()
    opt = descentlab.create("sgd", model.parameters(), lr=0.1)
    calls = []

    def loss_fn(out, y):
        calls.append(1)
        loss = nn.functional.cross_entropy(out, y)
        return loss * math.nan if len(calls) == 6 else loss

    res = lr_range_test(model, opt, loss_fn, batches(2), start_lr=1e-6, end_lr=1e-5, num_steps=20)
    assert res.stop_reason == "nonfinite" and len(res.lrs) == 6
    assert res.diverged_at == res.lrs[5] and math.isnan(res.raw_losses[-1])


LR_ERRORS = [
    ({"start_lr": 0.0}, "Invalid start_lr: 0.0; valid range is (0, inf)"),
    ({"start_lr": 1.0, "end_lr": 0.5}, "Invalid end_lr: 0.5; valid range is (1, inf)"),
    ({"num_steps": 1}, "Invalid num_steps: 1; valid range is integers in [2, inf)"),
    ({"mode": "log"}, "Invalid mode: 'log'"),
    ({"smooth": 0.0}, "Invalid smooth: 0.0; valid range is (0, 1]"),
    ({"smooth": 1.5}, "Invalid smooth: 1.5"),
    ({"diverge_factor": 1.0}, "Invalid diverge_factor: 1.0; valid range is (1, inf)"),
]


@pytest.mark.parametrize(("kwargs", "message"), LR_ERRORS)
def test_bad_arguments(kwargs, message) -> None:
    model = bn_model()
    opt = descentlab.create("sgd", model.parameters(), lr=0.1)
    with pytest.raises(ValueError) as err:
        lr_range_test(model, opt, nn.functional.cross_entropy, batches(1), **kwargs)
    assert message in str(err.value)


@pytest.mark.parametrize("which", ["train_loader", "val_loader"])
def test_empty_loader(which: str) -> None:
    model = bn_model()
    opt = descentlab.create("sgd", model.parameters(), lr=0.1)
    loaders = {"train_loader": batches(1), "val_loader": None, which: []}
    with pytest.raises(ValueError, match=f"Invalid {which}: it yields no batches"):
        lr_range_test(
            model,
            opt,
            nn.functional.cross_entropy,
            loaders["train_loader"],
            num_steps=3,
            val_loader=loaders["val_loader"],
        )


def test_suggestions_need_enough_points() -> None:
    res = LRRangeResult(
        [1e-3, 1e-2, 1e-1], [1.0, 0.5, 9.0], [1.0, 0.5, 9.0], 0.1, "diverged", 100, "exp"
    )
    with pytest.raises(ValueError, match="Too few points for a suggestion: 0 usable of 3"):
        res.suggestion()
    with pytest.raises(ValueError, match="Invalid method: 'best'"):
        res.suggestion("best")


def test_suggestion_rules_on_a_known_curve() -> None:
    lrs = [10 ** (i / 10 - 5) for i in range(40)]
    losses = (
        [2.0] * 12
        + [2.0 - 0.1 * i - 0.2 * (i >= 6) for i in range(1, 16)]
        + [0.5 + 0.5 * i for i in range(1, 14)]
    )
    res = LRRangeResult(lrs, losses, losses, None, "completed", 40, "exp")
    assert res.suggestion("min/10") == pytest.approx(lrs[26] / 10)
    assert res.suggestion("steepest") == lrs[16]  # the left end of the extra drop, 16 -> 17
    valley = res.suggestion("valley")
    assert lrs[12] <= valley <= lrs[26]


def test_plot_marks_the_suggestion(tmp_path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    res, *_ = sgd_on_quadratic(start_lr=1e-3, end_lr=25, num_steps=80)
    ax = res.plot(method="min/10")
    assert ax.get_xscale() == "log"
    labels = [line.get_label() for line in ax.get_lines()]
    assert f"min/10: {res.suggestion('min/10'):.3g}" in labels and "stopped" in labels
    ax.figure.savefig(tmp_path / "lr.png")
    assert (tmp_path / "lr.png").stat().st_size > 1000
