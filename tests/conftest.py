"""Shared fixtures: small design spaces built in memory."""

from __future__ import annotations

import pytest
import torch

from codesign.design import parse_design
from codesign.space import DesignSpace


def make_space(**overrides) -> DesignSpace:
    """A small but complete design space (ResNet-18 on up to 2×2 cores) with overrides per section."""
    raw = {
        "workload": {"network": "resnet18", "batch": 1},
        "hardware": {
            "grid_rows": [1, 2],
            "grid_cols": [1, 2],
            "pe_rows": [4, 8, 16, 32],
            "pe_cols": [4, 8, 16, 32],
            "sram_kib": [16, 64, 256, 1024],
            "dram_gbps": [6.4, 25.6, 102.4],
            "noc_link_gbps": [8.0, 64.0],
            "clock_ghz": [0.5, 1.0],
            "node": ["28nm", "7nm"],
        },
        "schedule": {"dataflow": ["ws", "os", "is"], "mapping": "search"},
    }
    for section, values in overrides.items():
        raw[section] = {**raw.get(section, {}), **values} if isinstance(values, dict) and section != "constraints" else values
    return DesignSpace.from_design(parse_design(raw, source="<test>"))


def random_rows(space: DesignSpace, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` random integer rows of ``space``."""
    gen = torch.Generator().manual_seed(seed)
    cols = []
    for knob in space.knobs:
        high = len(knob.choices) if knob.choices is not None else knob.high + 1
        cols.append(torch.randint(0, high, (n,), generator=gen))
    return torch.stack(cols, dim=1)


@pytest.fixture(scope="session")
def small_space() -> DesignSpace:
    return make_space()
