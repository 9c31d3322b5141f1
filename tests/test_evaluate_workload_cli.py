"""``codesign workload`` and ``codesign evaluate``: the imported network and one exact design, on
the command line and through the API, with their errors."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest
import torch

import codesign
from codesign.design import load_design
from codesign.model.evaluator import build_evaluator
from codesign.workload.zoo import resnet18
from tests.helpers import EDGE, assert_one_error, cli


def test_workload_json_lists_every_layer_with_totals(capsys):
    code, out, err = cli(capsys, "workload", "resnet18", "--batch", "2")
    assert code == 0, err
    info = json.loads(out)
    zoo = resnet18(batch=2)
    assert info["total_macs"] == zoo.total_macs
    assert info["weight_bytes"] == sum(l.filter_elems for l in zoo.layers)  # int8: one byte per weight
    assert [entry["name"] for entry in info["layers"]] == [l.name for l in zoo.layers]
    assert all({"name", "op", "macs"} <= set(entry) for entry in info["layers"])
    assert info["batch"] == 2 and info["source"] == "zoo"


def test_workload_csv_and_table_and_plot(capsys, tmp_path):
    code, out, err = cli(capsys, "workload", "mobilenet_v2", "--format", "csv")
    assert code == 0, err
    frame = pd.read_csv(io.StringIO(out))
    assert len(frame) == mobilenet_v2_layers() and frame["macs"].sum() == codesign.describe_workload("mobilenet_v2")["total_macs"]
    code, out, err = cli(capsys, "workload", "resnet18", "--format", "table", "--plot", tmp_path / "graph.png")
    assert code == 0, err
    assert out.splitlines()[0] == "network: resnet18" and "layer4.1.conv2" in out
    assert (tmp_path / "graph.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def mobilenet_v2_layers() -> int:
    return len(codesign.describe_workload("mobilenet_v2")["layers"])


def test_workload_errors_are_one_line(capsys, tmp_path):
    code, _, err = cli(capsys, "workload", "no_such_net")
    assert_one_error(code, err, "no_such_net")
    code, _, err = cli(capsys, "workload", "resnet18", "--input-shape", "3,x")
    assert code == 2 and "--input-shape" in err and "Traceback" not in err
    code, _, err = cli(capsys, "workload", "resnet18", "--plot", tmp_path / "missing" / "sub" / "g.png")
    assert code == 0 or code == 2  # parent folders are created; an unwritable place is one line
    code, _, err = cli(capsys, "workload", "resnet18", "--plot", "/proc/graph.png")
    assert_one_error(code, err, "/proc")


def test_api_checks_its_arguments():
    with pytest.raises(codesign.ArgumentError, match="batch=0"):
        codesign.describe_workload("resnet18", batch=0)
    with pytest.raises(codesign.ArgumentError, match="unsupported='ignore'"):
        codesign.describe_workload("resnet18", unsupported="ignore")


def _reference_metrics(settings: dict) -> dict:
    """The edge design's metrics at one row of its own (ranged) design space: every hardware range at
    ``settings`` or its first choice, every layer ws, layers dealt round robin over the cores."""
    design = load_design(EDGE)
    space, evaluator = build_evaluator(design)
    params = {}
    for knob in space.knobs:
        name = knob.name
        if name.startswith("hw."):
            params[name] = settings.get(name[3:], knob.choices[0])
        elif name.startswith("sched.dataflow"):
            params[name] = "ws"
    cores = settings.get("grid_rows", design.hardware.grid_rows[0]) * settings.get("grid_cols", design.hardware.grid_cols[0])
    for l, name in enumerate(space.lowered.names):
        params[f"sched.core.{name}"] = l % cores
    values, errors = evaluator.evaluate_rows(torch.tensor([space.encode(params)]))
    assert errors == [None]
    return dict(zip(evaluator.metric_names, values[0].tolist()))


def test_evaluate_matches_the_design_space_at_the_same_point(capsys):
    code, out, err = cli(capsys, "evaluate", EDGE, "--format", "json")
    assert code == 0, err
    result = json.loads(out)
    assert result["hardware"]["pe_rows"] == 8 and result["schedule"] == {"dataflow": "ws", "mode": "layer_by_layer", "mapping": "round_robin"}
    assert result["metrics"] == pytest.approx(_reference_metrics({}), rel=1e-12)
    code, out, err = cli(capsys, "evaluate", EDGE, "--set", "hardware.pe_rows=32", "--set", "hardware.grid_cols=4", "--format", "json")
    assert code == 0, err
    result = json.loads(out)
    assert result["hardware"]["pe_rows"] == 32 and result["hardware"]["grid_cols"] == 4
    assert result["metrics"] == pytest.approx(_reference_metrics({"pe_rows": 32, "grid_cols": 4}), rel=1e-12)
    layers = pd.DataFrame(result["layers"])
    assert sorted(layers["core"].unique()) == [0, 1, 2, 3]
    clock = result["hardware"]["clock_ghz"] * 1e9
    # The last layer ends at the latency unless the chip is DRAM-bound overall.
    assert layers["end_s"].max() <= result["metrics"]["latency_s"] * (1 + 1e-12)
    assert (layers["total_cycles"] == layers["compute_cycles"] + layers["stall_cycles"]).all()
    assert (layers["end_s"] - layers["start_s"]).mul(clock).round(6).tolist() == layers["total_cycles"].round(6).tolist()


def test_evaluate_table_and_plugin_metrics(capsys):
    code, out, err = cli(capsys, "evaluate", EDGE.with_name("edge_resnet18_chiplet_cost.toml"), "--set", "schedule.dataflow=os")
    assert code == 0, err
    assert "metrics: latency_s=" in out and "dataflow=os" in out and "conv1" in out


@pytest.mark.parametrize("setting, needles", [
    ("hardware.pe_rowz=32", ["hardware.pe_rowz", "no such key"]),
    ("pe_rows=32", ["--set pe_rows=32", "SECTION.KEY=VALUE"]),
    ("hardware.pe_rows=-4", ["hardware.pe_rows", "-4"]),
    ("schedule.dataflow=diagonal", ["schedule.dataflow", "diagonal"]),
])
def test_evaluate_bad_setting_is_one_line(capsys, setting, needles):
    code, out, err = cli(capsys, "evaluate", EDGE, "--set", setting)
    assert_one_error(code, err, *needles)
    assert out == ""


def _imported_design(folder, *, unsupported: str) -> "Path":
    nets = Path(__file__).resolve().parent / "data" / "import_nets.py"
    text = EDGE.read_text().replace('network = "resnet18"', f'network = "{nets}:WithCumsum"\nunsupported = "{unsupported}"')
    text = text.replace("population = 64", "population = 8")
    path = folder / "imported.toml"
    path.write_text(text)
    return path


def test_an_unsupported_operator_stops_the_run_or_is_listed_in_its_summary(capsys, tmp_path):
    code, _, err = cli(capsys, "explore", _imported_design(tmp_path, unsupported="error"), "--trials", "16", "--out", tmp_path / "r1")
    assert_one_error(code, err, "workload.network", "WithCumsum", "cumsum")
    assert not (tmp_path / "r1").exists()
    code, _, err = cli(capsys, "explore", _imported_design(tmp_path, unsupported="skip"), "--trials", "16", "--out", tmp_path / "r2",
                       "--no-progress")
    assert code == 0, err
    summary = json.loads((tmp_path / "r2" / "summary.json").read_text())
    assert [s["op"] for s in summary["skipped_nodes"]] == ["aten.cumsum.default"]
    assert summary["workload_source"] == "torch" and summary["n_layers"] >= 1
