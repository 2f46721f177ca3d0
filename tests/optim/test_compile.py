"""``torch.compile`` of a function that calls ``opt.step()`` (torch's recipe), on CPU.

For every registry optimizer and the wrappers: the compiled step equals the eager one step by
step, graph-breaks no more than ``torch.optim.Adam``'s does, and compiles nothing new over 20
steps while a scheduler changes a tensor ``lr`` in place (the step counter and everything
derived from it stay tensors in the graph). ``aot_eager`` keeps CI time low; ``inductor``
compiles two of them.

SWATS switches inside the graph too (its phase and switch test are in its operator: a switch
changes tensors, not the graph). The wrappers count on the device once compiled: Lookahead's
k-th step is a flag its kernel reads, GradientNoise's draws are one opaque operator.
"""

from __future__ import annotations

import copy

import pytest
import torch

import descentlab

# (torch._dynamo is imported in the tests, not here: collecting this file must not import Triton
# before test_triton.py sets TRITON_INTERPRET)

STEPS = 20
WRAPPED = ["lookahead(adam)", "lookahead(radam)", "noisy(sgdm)", "noisy(nadam)"]
HPARAMS = {"swats": {"switch_tol": 1e-3}}  # so that tensors switch to SGD within the run


def _model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))


def _optimizer(name, model):
    first, second = model[0], model[2]
    groups = [
        {"params": list(first.parameters()), "lr": torch.tensor(0.01)},
        {"params": list(second.parameters()), "lr": torch.tensor(0.02)},
    ]
    if name == "torch.optim.Adam":
        return torch.optim.Adam(groups)
    options = {"k": 3} if "lookahead" in name else {}
    return descentlab.create(name, groups, **options, **HPARAMS.get(name, {}))


def _run(name, backend, compare=True):
    """Eager and compiled runs side by side; the compile counters after 3 and after 20 steps."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    models = [_model(0), _model(0)]
    opts = [_optimizer(name, m) for m in models]
    scheds = [torch.optim.lr_scheduler.LambdaLR(o, lambda t: 1 / (1 + 0.1 * t)) for o in opts]
    compiled = torch.compile(opts[1].step, backend=backend)
    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(1))
    graphs = {}
    for t in range(1, STEPS + 1):
        for model, opt, step in zip(models, opts, (opts[0].step, compiled)):
            opt.zero_grad()
            model(x * t).square().mean().backward()
            step()
        for sched in scheds:
            sched.step()
        for p, q in zip(models[0].parameters(), models[1].parameters()):
            if not compare:  # torch's own compiled Adam differs from its eager one by rounding
                break
            torch.testing.assert_close(
                q, p, rtol=1e-5, atol=1e-6, msg=lambda m, t=t: f"{name} step {t}: {m}"
            )
        if t == 3:
            graphs["early"] = counters["stats"]["unique_graphs"]
    graphs["late"] = counters["stats"]["unique_graphs"]
    return sum(counters["graph_break"].values()), graphs, opts


@pytest.fixture(scope="module")
def torch_breaks():
    breaks, _, _ = _run("torch.optim.Adam", "aot_eager", compare=False)
    assert breaks > 0  # if torch's step stops breaking the graph, ours must not either
    return breaks


NAMES = descentlab.names() + WRAPPED


@pytest.mark.parametrize("name", NAMES)
def test_compiled_step_equals_eager_without_recompiles(name, torch_breaks):
    from torch._dynamo.utils import counters

    breaks, graphs, opts = _run(name, "aot_eager")
    reasons = {k[:200]: v for k, v in counters["graph_break"].items()}
    assert breaks <= torch_breaks, reasons
    assert graphs["late"] == graphs["early"], "recompiled after step 3"
    if name == "swats":
        assert any(s["switch_step"] for s in opts[1].state.values()), "no tensor switched"
    eager, compiled = opts
    copy.deepcopy(compiled)  # what the trace chose (kernel modules) is not kept
    for p, q in zip(eager.param_groups[0]["params"], compiled.param_groups[0]["params"]):
        for key, value in eager.state[p].items():
            if torch.is_tensor(value):
                torch.testing.assert_close(compiled.state[q][key], value, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["adamw", "radam"])
def test_inductor(name, torch_breaks):
    breaks, graphs, _ = _run(name, "inductor")
    assert breaks <= torch_breaks
    assert graphs["late"] == graphs["early"]
