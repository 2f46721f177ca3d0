"""An experiment is resolved once, when it is read: its problems, its optimizers' flags and (on
first use) its device; what the store keeps of it is the JSON it always kept."""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path

import pytest

import descentlab.problems
from descentlab.lab import default_experiment, load, parse
from descentlab.lab import spec as spec_module
from descentlab.lab.sweep import document
from descentlab.lab.tuning import plan_final, plan_initial
from descentlab.store import StoredExperiment

ROOT = Path(__file__).resolve().parents[2]
TINY = "tests.lab.tiny:problem"

# sha256 of the stored JSON (sort_keys, as Store.save_experiment writes it) of each frozen spec,
# as the sweep wrote it before the experiment was typed (commit 6dab51b): the same bytes now.
STORED = {
    "adam-fixes.toml": "f3266503bb163f956efc67bcc1271f26ab90d47c9a1dce3fe2e71abac9725d1d",
    "charlm-transformer.toml": "3560be52e50fcc9a8589a29ecdd444f76c18ff894dbc7b5b2c8981d06e87528f",
    "default.toml": "ee499268f680ca02ab471e97fadfece3b538403633ee5ca4277fd14907a8bbdf",
    "team-sgd-vs-team-adam-sitting1.toml": (
        "7b3ac9bc5de9096f801f6c9cdaffb03e359bf239f6921f5346cdb090c90f774e"
    ),
    "team-sgd-vs-team-adam.toml": "89517974753d15080fb466b07289bcfb6281e707a67ca4525ade3024e7c87ced",
    "tricks.toml": "9a410fd7348aa1993fc82577c2cbcce9789216df1904161863c9203d6eca86b1",
}


@pytest.mark.parametrize("name", sorted(STORED))
def test_the_stored_experiment_keeps_its_json(name):
    doc = document(load(Path(__file__).parent / "frozen_specs" / name))
    blob = json.dumps(doc, sort_keys=True, default=str)
    assert hashlib.sha256(blob.encode()).hexdigest() == STORED[name]


def test_the_document_reads_back_typed():
    exp = load(ROOT / "tests" / "fixtures" / "store-0.1.0.toml")
    back = StoredExperiment.from_json(exp.name, json.loads(json.dumps(document(exp))))
    assert back.tuning == exp.tuning and back.seeds == exp.seeds
    assert back.problem_labels == tuple(p.label for p in exp.problems)
    assert back.optimizers == tuple(o.label for o in exp.optimizers)
    assert [r.label for r in back.rows] == back.labels and back.rows[1].changed == ("weight_decay",)


def test_problems_and_optimizer_flags_are_resolved_when_read():
    exp = parse(
        {
            "problems": [TINY, "digits-mlp"],
            "optimizers": ["adamw", {"name": "sgdm", "hparams": {"lr": 0.5}}],
        }
    )
    assert [p.problem.name for p in exp.problems] == ["tiny", "digits-mlp"]
    adamw, sgdm = exp.optimizers
    assert adamw.decoupled and not sgdm.decoupled
    assert adamw.lr0 == pytest.approx(1e-3) and sgdm.lr0 == 0.5


def test_planning_loads_no_problem_and_resolves_the_device_once(monkeypatch):
    exp = default_experiment()  # 14 optimizers: 42 search runs, 70 reruns
    calls = {"get": 0, "resolve": 0}
    real_get, real_resolve = descentlab.problems.get, spec_module.resolve

    def get(name):
        calls["get"] += 1
        return real_get(name)

    def resolve(name):
        calls["resolve"] += 1
        return real_resolve(name)

    monkeypatch.setattr(descentlab.problems, "get", get)
    monkeypatch.setattr(spec_module, "resolve", resolve)
    initial = plan_initial(exp)
    final = plan_final(exp, initial, lambda t: (True, (0.5, 1.0)))
    assert (len(initial), len(final)) == (42, 70)
    assert calls == {"get": 0, "resolve": 1}


def test_tricks_do_not_import_the_axes():
    """axes.py imports tricks.py (its hooks); the other way would be a circle."""
    tree = ast.parse((ROOT / "descentlab" / "lab" / "tricks.py").read_text())
    imported = {
        node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
    } | {a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for a in node.names}
    assert "axes" not in imported and ".axes" not in imported
