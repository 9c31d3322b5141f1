"""Shared fixtures (the helpers they use are in tests/helpers.py)."""

from __future__ import annotations

import pytest
import torch

from codesign.space import DesignSpace
from tests.helpers import make_space


@pytest.fixture(scope="session")
def small_space() -> DesignSpace:
    return make_space()


@pytest.fixture
def single_torch_thread():
    """Small tensors on a shared machine: one intra-op thread is faster and steadier than two."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
