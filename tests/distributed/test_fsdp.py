"""FSDP2 (``fully_shard``, DTensor parameters, CPU + gloo): equal to the unsharded run.

SWATS's projection (dot products over the whole tensor) and GradientNoise's noise (drawn for
the whole tensor from the shared seed) must not depend on the sharding.
"""

from __future__ import annotations

import pytest

from ._jobs import fsdp_job
from ._setup import (
    NAMES,
    assert_every_rank_matches_reference,
    rank_result,
    reference,
    spawn,
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return spawn(fsdp_job, tmp_path_factory.mktemp("fsdp"))


@pytest.mark.parametrize("name", NAMES)
def test_fsdp2_equals_unsharded(runs, name):
    assert_every_rank_matches_reference(runs, name, "FSDP2")


def test_fsdp2_swats_switches_where_the_unsharded_run_does(runs):
    want = reference("swats")["switch"]
    assert any(want), "the test's switch_tol should make SWATS switch"
    for rank in range(len(runs)):
        assert rank_result(runs, rank, "swats")["switch"] == want, f"rank {rank}"
