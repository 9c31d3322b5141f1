"""Exhaustive enumeration: every point once, and the exact front equals the brute-force one."""

import itertools

import numpy as np
import torch

from codesign.model.evaluator import Evaluator
from codesign.search.exhaustive import exhaustive_front, rows_of, space_size
from tests.helpers import make_space


def tiny_space():
    return make_space(
        hardware={"grid_rows": 1, "grid_cols": [1, 2], "pe_rows": [4, 16], "pe_cols": [8, 32], "sram_kib": [16, 256],
                  "dram_gbps": [6.4, 51.2], "noc_link_gbps": 64.0, "clock_ghz": 1.0, "node": "7nm"},
        schedule={"granularity": "network"},
        constraints={"area_mm2": 6.0},
    )


def test_rows_enumerate_every_point_once():
    space = tiny_space()
    n = space_size(space)
    rows = rows_of(space, torch.arange(n))
    assert len({tuple(r) for r in rows.tolist()}) == n
    ranges = [range(len(k.choices)) if k.choices else range(k.high + 1) for k in space.knobs]
    assert {tuple(r) for r in rows.tolist()} == set(itertools.product(*ranges))


def test_exact_front_equals_brute_force_non_dominated_set():
    space = tiny_space()
    evaluator = Evaluator(space)
    exact = exhaustive_front(space, evaluator, chunk=7)  # several chunks, ragged last one
    rows = rows_of(space, torch.arange(space_size(space)))
    values, _ = evaluator.evaluate_rows(rows)
    names = evaluator.metric_names
    obj = values[:, [names.index("latency_s"), names.index("cost_usd")]]
    feasible = values[:, names.index("area_mm2")] <= 6.0
    pts = obj[feasible]
    dominated = [any(np.all(q <= p) and np.any(q < p) for q in pts) for p in pts]
    brute = {tuple(r) for r, d in zip(rows.numpy()[feasible], dominated) if not d}
    assert exact.n_feasible == int(feasible.sum()) > 0
    assert {tuple(r) for r in exact.rows.tolist()} == brute
