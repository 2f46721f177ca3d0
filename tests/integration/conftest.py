"""Shared by the integration tests: tiny models, one intra-op thread."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models: a second intra-op thread only waits on the first (measured on 2 loaded
    cores: 11 s for a Trainer run with 2 threads, 0.5 s with 1). Results do not depend on it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
