"""A hardware knob is one row of codesign.knobs.HARDWARE_KNOBS: the schema field, the search knob,
the population's tensor and the run's columns all follow from it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from codesign.design import HardwareSpec, parse_design
from codesign.knobs import HARDWARE_KNOBS, hardware_knob, knob_names
from codesign.space import Candidates, DesignSpace

ROOT = Path(__file__).resolve().parents[1]


def test_every_registered_knob_is_a_schema_field_and_a_candidates_field():
    fields = set(Candidates.__dataclass_fields__)
    for knob in HARDWARE_KNOBS:
        assert knob.name in HardwareSpec.model_fields
        assert HardwareSpec().model_dump()[knob.name] == list(knob.default)
        assert knob.name in fields


def test_registry_queries():
    assert hardware_knob("node").tensor == "index"
    assert "node" not in knob_names(tabulated=True)
    assert set(knob_names(relaxable=True)) == {"pe_rows", "pe_cols", "sram_kib", "dram_gbps", "noc_link_gbps", "clock_ghz",
                                                      "vector_lanes"}
    with pytest.raises(KeyError):
        hardware_knob("no_such_knob")


def test_a_listed_knob_is_searched_and_a_scalar_is_fixed():
    design = parse_design({"workload": {"network": "resnet18"}, "hardware": {"pe_rows": [8, 16], "clock_ghz": 2}}, source="<test>")
    space = DesignSpace.from_design(design)
    assert [k.name for k in space.knobs if k.name.startswith("hw.")] == ["hw.pe_rows"]
    rows = torch.zeros(2, space.dimension, dtype=torch.long)
    rows[1, 0] = 1  # hw.pe_rows is the first column
    c = space.decode(rows)
    assert c.pe_rows.tolist() == [8.0, 16.0]
    assert c.clock_ghz.tolist() == [2.0, 2.0]  # an integer in TOML is a float knob's float
    assert c.grid_rows.dtype == torch.long and c.node.tolist() == [0, 0]


# A new knob, added as a user would: one registry row (before the package builds its schema) plus
# its formula, here a plug-in cost model. Run in a fresh interpreter, since the schema and the
# population's fields are built from the registry when the package is first imported.
TOY_KNOB_RUN = textwrap.dedent(
    """
    import json, sys
    import codesign.knobs as knobs

    # The one row: a supply voltage, searched over the design's choices, carried as a float tensor.
    knobs.HARDWARE_KNOBS = knobs.HARDWARE_KNOBS + (
        knobs.HardwareKnob("vdd_v", float, (0.8,), "core supply voltage, V", tabulated=False),
    )

    import torch
    import codesign

    class VoltageScaling:
        '''Its formula: dynamic energy scales as V^2 (CV^2 switching), speed roughly as V (alpha-power law, alpha ~ 1).'''
        provides = ("energy_j", "latency_s")

        def evaluate(self, candidates, metrics):
            v = candidates.vdd_v / 0.8
            return {"energy_j": metrics["energy_j"] * v**2, "latency_s": metrics["latency_s"] / v}

    sys.modules["toy_voltage"] = type(sys)("toy_voltage")
    sys.modules["toy_voltage"].VoltageScaling = VoltageScaling

    design = codesign.parse_design({
        "workload": {"network": "resnet18"},
        "hardware": {"pe_rows": [16, 32], "pe_cols": [16, 32], "vdd_v": [0.6, 0.8, 1.0]},
        "schedule": {"dataflow": ["ws", "os"]},
        "objectives": {"minimize": ["latency_s", "energy_j"]},
        "cost_model": {"plugins": ["toy_voltage:VoltageScaling"]},
        "search": {"population": 16},
    }, source="<toy>")
    run = codesign.explore(design, trials=160, seed=3, out=sys.argv[1])
    print(json.dumps({
        "columns": list(run.trials.columns),
        "searched": sorted(set(run.trials["hw.vdd_v"].astype(float))),
        "front": sorted(set(run.front["hw.vdd_v"].astype(float))),
        "n_front": len(run.front),
    }))
    """
)


def test_a_toy_knob_added_as_one_registry_row_is_searched(tmp_path):
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-c", TOY_KNOB_RUN, str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert "hw.vdd_v" in result["columns"]
    assert result["searched"] == [0.6, 0.8, 1.0]
    # Energy falls and latency rises with the voltage: the front holds more than one voltage.
    assert len(result["front"]) >= 2, result
    stored = json.loads((out / "run.json").read_text())
    assert stored["design"]["hardware"]["vdd_v"] == [0.6, 0.8, 1.0]
