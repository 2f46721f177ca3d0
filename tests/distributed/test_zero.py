"""ZeroRedundancyOptimizer(optimizer_class=...): equal to the unsharded run; resumes exactly.

The wrappers go around the ZeRO optimizer (``Lookahead(ZeroRedundancyOptimizer(..., Adam))``):
ZeRO builds its local optimizer from a class and keyword arguments, which a wrapper, taking an
optimizer instance, is not.
"""

from __future__ import annotations

import pytest

from ._jobs import RESUME_AT, zero_job
from ._setup import (
    NAMES,
    assert_every_rank_matches_reference,
    assert_trajectory,
    rank_result,
    reference,
    spawn,
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return spawn(zero_job, tmp_path_factory.mktemp("zero"))


@pytest.mark.parametrize("name", NAMES)
def test_zero_equals_unsharded(runs, name):
    assert_every_rank_matches_reference(runs, name, "ZeRO")


@pytest.mark.parametrize("name", NAMES)
def test_zero_consolidated_state_dict_resumes_exactly(runs, name):
    for rank in range(len(runs)):
        got = rank_result(runs, rank, name)
        assert_trajectory(
            got["resumed"], got["traj"], f"{name} ZeRO resumed after step {RESUME_AT}, rank {rank}"
        )


def test_zero_swats_switches_on_the_rank_that_owns_the_tensor(runs):
    # ZeRO keeps whole tensors on one rank, so the per-tensor switch needs no reduction: the
    # switch steps of both ranks' local optimizers together are those of the unsharded run.
    want = reference("swats")["switch"]
    assert any(want), "the test's switch_tol should make SWATS switch"
    got = sorted(s for rank in range(len(runs)) for s in rank_result(runs, rank, "swats")["switch"])
    assert got == sorted(want)
