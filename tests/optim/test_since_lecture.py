"""The optimizers since the lecture (issue 25) beyond the case table (tests/optim/cases.py): a
peer package as a second reference, the warm-up schedules' values, and their own bad input."""

from __future__ import annotations

import math

import pytest
import torch

import descentlab
from descentlab.optim import AdEMAMix, HyperparameterError

from .references import AdEMAMixReference


def _twins(seed: int = 0) -> tuple[list, list, torch.Generator]:
    """Two float64 tensors (7x3 and 5), a copy of each, and the generator of their gradients."""
    gen = torch.Generator().manual_seed(seed)
    ps = [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=torch.float64))
          for s in [(7, 3), (5,)]]  # fmt: skip
    return ps, [torch.nn.Parameter(p.detach().clone()) for p in ps], gen


def _lock_step(ours, theirs, ps, qs, gen, steps: int, key: str | None = None) -> None:
    """``steps`` steps of both on the same random gradients; then the parameters (and the state
    ``key``) agree to 1e-12."""
    for _ in range(steps):
        for p, q in zip(ps, qs):
            p.grad = torch.randn(p.shape, generator=gen, dtype=torch.float64)
            q.grad = p.grad.clone()
        ours.step()
        theirs.step()
    for p, q in zip(ps, qs):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-12, atol=1e-14)
        if key is not None:
            torch.testing.assert_close(ours.state[p][key], theirs.state[q][key])


@pytest.mark.parametrize("t_alpha_beta3", [0, 40])
def test_ademamix_agrees_with_pytorch_optimizer(t_alpha_beta3):
    """pytorch-optimizer's AdEMAMix (decoupled decay; its T=None is our 0), 100 float64 steps."""
    peer = pytest.importorskip("pytorch_optimizer").AdEMAMix
    ps, qs, gen = _twins()
    hp = dict(lr=0.01, betas=(0.8, 0.99, 0.999), alpha=3.0, weight_decay=0.05)
    ours = descentlab.create("ademamix", ps, t_alpha_beta3=t_alpha_beta3, **hp)
    theirs = peer(qs, t_alpha_beta3=t_alpha_beta3 or None, weight_decouple=True, foreach=False,
                  **hp)  # fmt: skip
    _lock_step(ours, theirs, ps, qs, gen, 100, key="exp_avg_slow")


def test_ademamix_warm_ups_start_at_beta1_and_zero_and_end_at_their_values():
    """alpha(t) rises linearly from 0 to alpha over T steps; beta3(t) from beta1 to beta3,
    linearly in its half-life (the reference's formula, another form of the paper's)."""
    h = type("H", (), dict(betas=(0.9, 0.999, 0.9999), alpha=5.0, t_alpha_beta3=100.0))
    t = torch.tensor([1e-9, 25.0, 50.0, 100.0, 400.0], dtype=torch.float64)
    out = AdEMAMix.scalars(h, t)
    alpha, beta3 = out["alpha_t"].tolist(), out["beta3_t"].tolist()
    assert alpha == pytest.approx([5e-11, 1.25, 2.5, 5.0, 5.0])
    assert beta3[0] == pytest.approx(0.9) and beta3[3:] == pytest.approx([0.9999, 0.9999])
    assert beta3 == sorted(beta3)
    for t_, b in zip(t.tolist()[1:3], beta3[1:3]):
        assert b == pytest.approx(AdEMAMixReference.warmed_up(t_, 0.9, 0.9999, 5.0, 100)[1])
    assert out["bc1"][3].item() == pytest.approx(1 - 0.9**100)
    assert out["sqrt_bc2"][3].item() == pytest.approx(math.sqrt(1 - 0.999**100))


def test_ademamix_refuses_what_it_cannot_run():
    p = [torch.nn.Parameter(torch.zeros(2))]
    with pytest.raises(HyperparameterError, match=r"betas\[2\]"):
        AdEMAMix(p, betas=(0.9, 0.999, 1.0))
    with pytest.raises(HyperparameterError, match="beta1, beta2, beta3"):
        AdEMAMix(p, betas=(0.9, 0.999))
    with pytest.raises(HyperparameterError, match="needs beta1 in"):
        AdEMAMix(p, betas=(0.0, 0.999, 0.9999), t_alpha_beta3=10)
    AdEMAMix(p, betas=(0.0, 0.999, 0.9999))  # without a warm-up beta1 = 0 is fine


def _eight_steps(betas) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    p = torch.nn.Parameter(torch.randn(6, generator=gen))
    opt = AdEMAMix([p], lr=0.01, betas=betas, t_alpha_beta3=5)
    for _ in range(8):
        p.grad = torch.randn(6, generator=gen)
        opt.step()
    return p.detach()


def test_ademamix_takes_tensor_betas():
    """Tensor betas (so that a compiled step with a schedule on them does not recompile) give
    the float betas' result, all three of them."""
    values = (0.8, 0.99, 0.999)
    tensors = _eight_steps(tuple(torch.tensor(b) for b in values))
    floats32 = tuple(float(torch.tensor(b)) for b in values)  # the tensors' float32 values
    assert torch.equal(_eight_steps(floats32), tensors)
    torch.testing.assert_close(_eight_steps(values), tensors)


def test_lion_agrees_with_lion_pytorch():
    """lion-pytorch (the paper's Algorithm 2 as its authors' colleague wrote it), 100 float64
    steps with decoupled decay, two groups."""
    peer = pytest.importorskip("lion_pytorch").Lion
    ps, qs, gen = _twins()
    ours = descentlab.create("lion", [{"params": ps[:1]}, {"params": ps[1:], "lr": 3e-3}],
                             lr=1e-3, betas=(0.9, 0.99), weight_decay=0.3)  # fmt: skip
    theirs = peer([{"params": qs[:1]}, {"params": qs[1:], "lr": 3e-3}], lr=1e-3,
                  betas=(0.9, 0.99), weight_decay=0.3)  # fmt: skip
    _lock_step(ours, theirs, ps, qs, gen, 100, key="exp_avg")


def _schedule_free_pair(name, authors, seed=0, **hp):
    ps, qs, gen = _twins(seed)
    return ps, qs, descentlab.create(name, ps, **hp), authors(qs, **hp), gen


@pytest.mark.parametrize("name", ["schedule-free-adamw", "schedule-free-sgd"])
def test_schedule_free_modes_swap_the_weights_as_the_authors(name):
    """After 30 steps, ``eval()`` puts the average x in the parameters and ``train()`` puts y
    back, as the authors' optimizer does; evaluating between steps changes nothing after."""
    from .references import AuthorsScheduleFreeAdamW, AuthorsScheduleFreeSGD

    authors = AuthorsScheduleFreeAdamW if name.endswith("adamw") else AuthorsScheduleFreeSGD
    hp = {"lr": 0.01, "weight_decay": 0.01, "warmup_steps": 5}
    ps, qs, ours, theirs, gen = _schedule_free_pair(name, authors, **hp)
    for t in range(30):
        for p, q in zip(ps, qs):
            p.grad = torch.randn(p.shape, generator=gen, dtype=torch.float64)
            q.grad = p.grad.clone()
        ours.step()
        theirs.step()
        if t % 10 == 9:
            ours.eval()
            theirs.eval()
            for p, q in zip(ps, qs):
                torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-12, atol=1e-14)
            assert all(not g["train_mode"] for g in ours.param_groups)
            ours.train()
            theirs.train()
    for p, q in zip(ps, qs):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(ours.state[p]["z"], theirs.state[q]["z"], rtol=1e-12, atol=1e-14)


def test_schedule_free_refuses_a_step_in_eval_mode():
    p = torch.nn.Parameter(torch.ones(3))
    opt = descentlab.create("schedule-free-adamw", [p])
    p.grad = torch.ones(3)
    opt.step()
    opt.eval()
    before = p.detach().clone()
    with pytest.raises(RuntimeError, match=r"eval mode: call optimizer.train\(\)"):
        opt.step()
    assert torch.equal(p.detach(), before)
    opt.eval()  # a second eval() changes nothing
    assert torch.equal(p.detach(), before)


@pytest.mark.parametrize("name", ["schedule-free-adamw", "schedule-free-sgd"])
def test_schedule_free_checkpoint_saved_in_eval_mode_resumes_exactly(name, tmp_path):
    """A checkpoint of the model and the optimizer, saved in eval mode (the average in the
    weights), loads into a fresh model and optimizer that continue as the original: bit for
    bit after train() and 10 more steps."""

    def run(model, opt, steps, seed):
        gen = torch.Generator().manual_seed(seed)
        for _ in range(steps):
            x = torch.randn(8, 4, generator=gen)
            opt.zero_grad()
            model(x).square().mean().backward()
            opt.step()

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1))
    opt = descentlab.create(name, model.parameters(), lr=0.01, warmup_steps=3)
    run(model, opt, 20, seed=1)
    opt.eval()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, tmp_path / "ckpt.pt")
    opt.train()
    run(model, opt, 10, seed=2)

    torch.manual_seed(1)
    twin = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1))
    again = descentlab.create(name, twin.parameters(), lr=0.01, warmup_steps=3)
    saved = torch.load(tmp_path / "ckpt.pt")
    twin.load_state_dict(saved["model"])
    again.load_state_dict(saved["opt"])
    assert not again.param_groups[0]["train_mode"]
    assert again.state[next(twin.parameters())]["weight_sum"].dtype == torch.float64
    again.train()
    run(twin, again, 10, seed=2)
    for a, b in zip(model.parameters(), twin.parameters()):
        assert torch.equal(a, b)


def test_the_training_loop_evaluates_the_average():
    """``descentlab.problems.train`` evaluates in eval mode and trains in train mode; an
    optimizer without modes is left alone."""
    from descentlab.optim.schedule_free import evaluating

    p = torch.nn.Parameter(torch.ones(2))
    sf = descentlab.create("schedule-free-sgd", [p], lr=0.1)
    plain = torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=0.1)
    for g in (1.0, -2.0, 0.5):  # after one step x = y = z: three, so that they differ
        p.grad = torch.full((2,), g)
        sf.step()
    y = p.detach().clone()
    with evaluating(sf, plain):
        assert not sf.param_groups[0]["train_mode"]
        assert not torch.equal(p.detach(), y)  # x, the average
    assert sf.param_groups[0]["train_mode"]
    torch.testing.assert_close(p.detach(), y)


def test_the_training_loop_and_the_range_test_evaluate_in_eval_mode():
    """``problems.train`` evaluates each epoch and at the end with the average in the weights
    (eval mode) and steps in train mode; the LR range test evaluates its validation loss in
    eval mode too. Every evaluation is recorded with the mode it saw."""
    from torch import nn

    from descentlab import problems
    from descentlab.schedules import lr_range_test

    task = problems.get("digits-mlp").build(0, n_train=64)
    opts = problems.optimizers_for(task, "schedule-free-sgd", lr=0.05)
    (opt,) = opts.values()
    seen = []
    evaluate = task.evaluate
    task.evaluate = lambda split: seen.append(opt.param_groups[0]["train_mode"]) or evaluate(split)
    history = problems.train(task, opts, 2, eval_splits=("val",))
    assert history.steps > 0 and seen == [False] * (2 + 3)  # 2 epochs' val, then 3 splits
    assert opt.param_groups[0]["train_mode"]

    model = nn.Linear(3, 1)
    x, y = torch.randn(16, 3), torch.randn(16, 1)
    sf = descentlab.create("schedule-free-adamw", model.parameters())
    modes = []

    def loss_fn(out, target):
        if not torch.is_grad_enabled():  # the validation pass
            modes.append(sf.param_groups[0]["train_mode"])
        return nn.functional.mse_loss(out, target)

    lr_range_test(model, sf, loss_fn, [(x, y)], val_loader=[(x, y)], num_steps=5)
    assert modes == [False] * 5 and sf.param_groups[0]["train_mode"]


def test_wrappers_pass_the_modes_to_the_optimizer_they_wrap():
    """``lookahead(schedule-free-sgd).eval()`` is the inner optimizer's (the groups are
    shared); a wrapped optimizer without modes is left as it is."""
    p = torch.nn.Parameter(torch.ones(3))
    opt = descentlab.create("lookahead(schedule-free-sgd)", [p], lr=0.1)
    for g in (1.0, -2.0, 0.5):
        p.grad = torch.full((3,), g)
        opt.step()
    y = p.detach().clone()
    opt.eval()
    assert not opt.base_optimizer.param_groups[0]["train_mode"]
    assert not torch.equal(p.detach(), y)
    opt.train()
    torch.testing.assert_close(p.detach(), y)
    q = torch.nn.Parameter(torch.ones(3))
    plain = descentlab.create("lookahead(adam)", [q])
    plain.eval()
    assert torch.equal(q.detach(), torch.ones(3))
