"""``import descentlab`` stays light: the lab's subpackages load on first use (PEP 562)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import descentlab

LAZY = ("demos", "diagnostics", "lab", "problems", "report", "store", "viz")


def test_import_loads_neither_the_lab_nor_matplotlib_until_asked():
    code = (
        "import sys, descentlab\n"
        "def heavy():\n"
        "    return sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'\n"
        "                  or m.startswith(('descentlab.lab', 'descentlab.report')))\n"
        "print(heavy())\n"
        f"print([getattr(descentlab, n).__name__ for n in {LAZY!r}])\n"
        "print('descentlab.lab' in heavy())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, resolved, after = out.stdout.splitlines()
    assert before == "[]"
    assert resolved == str([f"descentlab.{n}" for n in LAZY])
    assert after == "True"


@pytest.mark.parametrize("name", LAZY)
def test_each_subpackage_resolves_and_is_listed(name):
    module = getattr(descentlab, name)
    assert module.__name__ == f"descentlab.{name}"
    assert name in descentlab.__all__ and name in dir(descentlab)


def test_every_name_in_all_resolves_and_unknown_names_raise():
    for name in descentlab.__all__:
        getattr(descentlab, name)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        descentlab.nope  # noqa: B018
