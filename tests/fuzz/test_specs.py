"""Fuzzed experiment specs: ``parse`` returns an Experiment or raises a SpecError naming a key.

Documents mix plausible values with junk (wrong types, unknown keys, NaN and infinities,
negative and huge numbers, empty lists, TOML dates, nested tables); files hold random bytes or
garbled TOML. Any exception but :class:`~descentlab.lab.SpecError` is a failure, and so is a
message that does not start with a key of the document (or, for a file that is not TOML, with
the file's path). Parsing runs under a memory cap, so a spec that asks for gigabytes fails fast
(as a ``MemoryError``) instead of swapping.
"""

from __future__ import annotations

import resource
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from descentlab.lab import Experiment, SpecError, load, parse

from ._strategies import assert_raised_by_us, experiment_specs, fuzz, toml_values

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

EXAMPLES = 400  # per fuzzed test; deterministic (derandomized), reported in docs/reliability.md
# One failure is enough to report: shrinking every distinct bug of a failing run takes minutes.
FUZZ = fuzz(EXAMPLES, report_multiple_bugs=False)
CAP = 2 << 30  # bytes of address space a parse may add


@contextmanager
def _memory_cap() -> Iterator[None]:
    """Limit this process's address space to its current size plus CAP (Linux only)."""
    status = Path("/proc/self/status")
    if not sys.platform.startswith("linux") or not status.exists():
        yield
        return
    vm = next(int(line.split()[1]) * 1024 for line in status.open() if line.startswith("VmSize"))
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = vm + CAP if hard == resource.RLIM_INFINITY else min(vm + CAP, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _keys(data: Mapping[str, Any]) -> list[str]:
    return [k for k in (*data, "problems", "optimizers") if isinstance(k, str) and k]


def _check(data: Mapping[str, Any]) -> None:
    try:
        with _memory_cap():
            experiment = parse(data)
    except SpecError as e:
        assert_raised_by_us(e)
        message = str(e)
        assert any(message.startswith(k) for k in _keys(data)), f"names no key: {message!r}"
        event("SpecError")
    else:
        assert isinstance(experiment, Experiment)
        event("valid")


@FUZZ
@given(data=experiment_specs())
def test_fuzzed_specs_parse_or_name_the_key(data):
    _check(data)


@FUZZ
@given(data=st.dictionaries(st.text(min_size=1, max_size=12), toml_values, max_size=4))
def test_random_documents_parse_or_name_the_key(data):
    _check(data)


_PRECISIONS = st.sampled_from(["float32", "bf16", "fp16"])
_DEVICE_KEYS = st.fixed_dictionaries(
    {},
    optional={
        "device": st.one_of(st.sampled_from(["auto", "cpu", "cuda", "cuda:3", "mps"]), toml_values),
        "precision": st.one_of(_PRECISIONS, st.lists(_PRECISIONS, max_size=3), toml_values),
        "deterministic": st.one_of(st.booleans(), toml_values),
    },
)


@fuzz(100, report_multiple_bugs=False)
@given(data=experiment_specs(), extra=_DEVICE_KEYS)
def test_fuzzed_devices_and_precisions_parse_or_name_the_key(data, extra):
    _check({**data, **extra})  # a device is checked by name here, found when the sweep starts


BASE = {"problems": ["tests.lab.tiny:problem"], "optimizers": [{"name": "sgdm"}]}
HUGE = 10**400  # TOML integers are unbounded in Python's tomllib


# Minimal failing examples the fuzzing found, kept as named cases.
@pytest.mark.parametrize(
    "extra",
    [
        {"seeds": 10**20},  # OverflowError from range()
        {"seeds": 10**12},  # a tuple of 10**12 seeds: MemoryError
        {"tuning": {"lr_factor": HUGE}},  # OverflowError in math.isfinite
        {"dropout": HUGE},
        {"init": {"scheme": "normal", "std": HUGE}},
        {"optimizers": [{"name": "sgdm", "hparams": {"lr": HUGE}}]},
    ],
    ids=["seeds-1e20", "seeds-1e12", "lr_factor-huge", "dropout-huge", "init-std-huge", "lr-huge"],
)
def test_known_bad_specs_raise_a_spec_error(extra):
    with pytest.raises(SpecError), _memory_cap():
        parse({**BASE, **extra})


GOOD_TOML = """\
name = "fuzz"
problems = ["tests.lab.tiny:problem", { name = "tests.lab.tiny:slow", options = { width = 4 } }]
seeds = [0, 3]
epochs = 2
batch_size = [16, "full"]
[tuning]
method = "grid"
budget = 2
lr_range = [1e-3, 1.0]
[[optimizers]]
name = "adam"
hparams = { weight_decay = 0.0, betas = [0.9, 0.99] }
[[optimizers]]
name = "sgdm"
schedule = "cosine"
"""


def _check_file(path: Path, text: bytes) -> None:
    path.write_bytes(text)
    try:  # read as load() reads it (universal newlines)
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        document = None
    try:
        with _memory_cap():
            load(path)
    except SpecError as e:
        assert_raised_by_us(e)
        message = str(e)
        if document is None:  # not TOML: the message names the file
            assert message.startswith(f"{path}: "), message
            event("not TOML")
        else:
            assert any(message.startswith(k) for k in _keys(document)), message
            event("TOML, not a valid experiment")
    else:
        event("valid")


@FUZZ
@given(text=st.binary(max_size=300))
def test_random_bytes_in_a_file_name_the_file(tmp_path, text):
    _check_file(tmp_path / "exp.toml", text)


@FUZZ
@given(
    edits=st.lists(
        st.tuples(
            st.integers(0, len(GOOD_TOML)),
            st.integers(0, 3),
            st.sampled_from([*'[]{}="\n#,.=-x0', "\x00", "é", "\ufeff", '"""', "[["]),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_garbled_toml_names_the_file_or_the_key(tmp_path, edits):
    text = GOOD_TOML
    for at, cut, insert in edits:  # replace `cut` characters at `at` with `insert`
        text = text[:at] + insert + text[at + cut :]
    _check_file(tmp_path / "exp.toml", text.encode("utf-8"))


def test_the_unedited_toml_is_valid(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text(GOOD_TOML)
    experiment = load(path)
    assert len(experiment.problems) == 2 and len(experiment.variants) == 2
