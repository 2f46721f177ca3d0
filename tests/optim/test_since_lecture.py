"""The optimizers since the lecture (issue 25) beyond the case table (tests/optim/cases.py): a
peer package as a second reference, the warm-up schedules' values, and their own bad input."""

from __future__ import annotations

import math

import pytest
import torch

import descentlab
from descentlab.optim import AdEMAMix, HyperparameterError

from .references import AdEMAMixReference


@pytest.mark.parametrize("t_alpha_beta3", [0, 40])
def test_ademamix_agrees_with_pytorch_optimizer(t_alpha_beta3):
    """pytorch-optimizer's AdEMAMix (decoupled decay; its T=None is our 0), 100 float64 steps."""
    peer = pytest.importorskip("pytorch_optimizer").AdEMAMix
    gen = torch.Generator().manual_seed(0)
    ps = [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=torch.float64))
          for s in [(7, 3), (5,)]]  # fmt: skip
    qs = [torch.nn.Parameter(p.detach().clone()) for p in ps]
    hp = dict(lr=0.01, betas=(0.8, 0.99, 0.999), alpha=3.0, weight_decay=0.05)
    ours = descentlab.create("ademamix", ps, t_alpha_beta3=t_alpha_beta3, **hp)
    theirs = peer(qs, t_alpha_beta3=t_alpha_beta3 or None, weight_decouple=True, foreach=False,
                  **hp)  # fmt: skip
    for _ in range(100):
        for p, q in zip(ps, qs):
            p.grad = torch.randn(p.shape, generator=gen, dtype=torch.float64)
            q.grad = p.grad.clone()
        ours.step()
        theirs.step()
    for p, q in zip(ps, qs):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(ours.state[p]["exp_avg_slow"], theirs.state[q]["exp_avg_slow"])


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
