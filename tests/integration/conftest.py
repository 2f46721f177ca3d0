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


@pytest.fixture(autouse=True)
def restore_deterministic():
    """Lightning's ``deterministic=True`` switches torch's deterministic algorithms on for the
    whole process (and with them NaN-filled ``torch.empty``): later tests must not see it."""
    mode = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    yield
    torch.use_deterministic_algorithms(mode, warn_only=warn_only)
