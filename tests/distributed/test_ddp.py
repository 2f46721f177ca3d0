"""DistributedDataParallel: 2 gloo ranks on halves of a batch equal one process on all of it."""

from __future__ import annotations

import pytest

from ._jobs import ddp_job
from ._setup import NAMES, assert_trajectory, reference, spawn


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return spawn(ddp_job, tmp_path_factory.mktemp("ddp"))


@pytest.mark.parametrize("name", NAMES)
def test_ddp_equals_single_process_on_the_whole_batch(runs, name):
    for rank, results in enumerate(runs):
        got = results[name]
        assert not isinstance(got, str), f"rank {rank} failed:\n{got}"
        assert_trajectory(got, reference(name)["traj"], f"{name} DDP rank {rank}")
