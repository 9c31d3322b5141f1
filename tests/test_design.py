"""Design-file validation: every bad design fails in ``load_design`` with one message that
names the file, the key path, the offending value and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from codesign import build
from codesign.design import Design, load_design
from codesign.errors import DesignError

DESIGNS = Path(__file__).resolve().parents[1] / "designs"
WORKLOAD = '[workload]\nnetwork = "resnet18"\n'


def _write(tmp_path: Path, text: str, name: str = "bad.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _error(path: Path) -> str:
    with pytest.raises(DesignError) as info:
        load_design(path)
    return str(info.value)


def _assert_names(message: str, path: Path, key: str, value: str, expected: str) -> None:
    """The documented shape: ``<file>: <key.path> = <value>: <expected>``, on one line."""
    assert "\n" not in message, message
    assert message.startswith(f"{path}: {key}"), message
    assert value in message, message
    assert expected in message, message
    assert message.index(value) < message.rindex(expected), message  # file: key = value: expected


# (id, TOML text, key path, value as shown, phrase saying what was expected)
CASES = [
    ("unknown-top-level-key", 'colour = "red"\n' + WORKLOAD, "colour", "'red'", "no such key"),
    ("unknown-top-level-table", WORKLOAD + "[serch]\npopulation = 4\n", "serch", "{'population': 4}", "no such key"),
    ("unknown-nested-key", WORKLOAD + "[hardware]\npe_rowz = [8, 16]\n", "hardware.pe_rowz", "[8, 16]", "no such key"),
    ("unknown-workload-key", WORKLOAD + "batchsize = 4\n", "workload.batchsize", "4", "no such key"),
    ("wrong-type-scalar", WORKLOAD + '[hardware]\npe_rows = "big"\n', "hardware.pe_rows", "'big'", "valid integer"),
    ("wrong-type-in-list", WORKLOAD + '[hardware]\npe_rows = [8, "big"]\n', "hardware.pe_rows[1]", "'big'", "valid integer"),
    ("wrong-type-bool", WORKLOAD + "[hardware]\npe_cols = true\n", "hardware.pe_cols", "True", "valid integer"),
    ("wrong-type-float-for-int", WORKLOAD + "[hardware]\nsram_kib = 64.0\n", "hardware.sram_kib", "64.0", "valid integer"),
    ("wrong-type-number", WORKLOAD + '[hardware]\ndram_gbps = "fast"\n', "hardware.dram_gbps", "'fast'", "valid number"),
    ("wrong-type-section", WORKLOAD + "hardware = 3\n", "workload.hardware", "3", "no such key"),
    ("zero-scalar", WORKLOAD + "[hardware]\npe_rows = 0\n", "hardware.pe_rows", "= 0", "greater than 0"),
    ("negative-scalar", WORKLOAD + "[hardware]\nsram_kib = -64\n", "hardware.sram_kib", "-64", "greater than 0"),
    ("negative-in-list", WORKLOAD + "[hardware]\npe_rows = [8, -4, 16]\n", "hardware.pe_rows[1]", "-4", "greater than 0"),
    ("zero-in-list", WORKLOAD + "[hardware]\nsram_kib = [64, 0, 128]\n", "hardware.sram_kib[1]", "= 0", "greater than 0"),
    ("negative-float-in-list", WORKLOAD + "[hardware]\ndram_gbps = [12.8, -1.5]\n", "hardware.dram_gbps[1]", "-1.5", "greater than 0"),
    ("zero-float", WORKLOAD + "[hardware]\nclock_ghz = 0.0\n", "hardware.clock_ghz", "0.0", "greater than 0"),
    ("zero-batch", '[workload]\nnetwork = "resnet18"\nbatch = 0\n', "workload.batch", "= 0", "greater than 0"),
    ("zero-group-size", WORKLOAD + "[schedule]\ngroup_size = 0\n", "schedule.group_size", "= 0", "greater than 0"),
    ("negative-constraint", WORKLOAD + "[constraints]\nlatency_s = -1e-3\n", "constraints.latency_s", "-0.001", "greater than 0"),
    ("population-one", WORKLOAD + "[search]\npopulation = 1\n", "search.population", "= 1", "greater than or equal to 2"),
    ("empty-range", WORKLOAD + "[hardware]\npe_rows = []\n", "hardware.pe_rows", "[]", "at least 1 item"),
    ("repeated-choices", WORKLOAD + "[hardware]\npe_rows = [8, 16, 8]\n", "hardware.pe_rows", "[8, 16, 8]", "must not repeat"),
    ("repeated-objectives", WORKLOAD + '[objectives]\nminimize = ["latency_s", "latency_s"]\n', "objectives.minimize", "['latency_s', 'latency_s']", "must not repeat"),
    ("unknown-dataflow", WORKLOAD + '[hardware]\ndataflows = ["ws", "xs"]\n', "hardware.dataflows[1]", "'xs'", "'ws', 'os' or 'is'"),
    ("unknown-schedule-dataflow", WORKLOAD + '[schedule]\ndataflow = ["ws", "rs"]\n', "schedule.dataflow[1]", "'rs'", "'ws', 'os' or 'is'"),
    ("unknown-mode", WORKLOAD + '[schedule]\nmode = "streaming"\n', "schedule.mode", "'streaming'", "'layer_by_layer' or 'pipelined'"),
    ("unknown-mapping", WORKLOAD + '[schedule]\nmapping = "random"\n', "schedule.mapping", "'random'", "'search', 'round_robin' or 'single_core'"),
    ("unknown-dram-kind", WORKLOAD + '[hardware]\ndram_kind = "ddr5"\n', "hardware.dram_kind", "'ddr5'", "'ddr4', 'lpddr4' or 'hbm2'"),
    ("bad-precision", '[workload]\nnetwork = "resnet18"\nprecision_bytes = 3\n', "workload.precision_bytes", "= 3", "1, 2 or 4"),
    ("unknown-network", '[workload]\nnetwork = "resnet19"\n', "workload.network", "'resnet19'", "not a zoo network (bert_base"),
    ("missing-workload", "[hardware]\npe_rows = 8\n", "workload", "", "required"),
    ("non-positive-workload-param", '[workload]\nnetwork = "bert_base"\nparams = { seq_len = -1 }\n', "workload.params.seq_len", "-1", "greater than 0"),
    ("unknown-node", WORKLOAD + '[hardware]\nnode = ["7nm", "3nm"]\n', "hardware.node[1]", "'3nm'", "'45nm', '28nm', '16nm', '7nm' or '5nm'"),
    ("unknown-node-scalar", WORKLOAD + '[hardware]\nnode = "3nm"\n', "hardware.node", "'3nm'", "'45nm', '28nm', '16nm', '7nm' or '5nm'"),
    ("sram-split-sum", WORKLOAD + "[hardware]\nsram_split = [0.5, 0.5, 0.5]\n", "hardware.sram_split", "[0.5, 0.5, 0.5]", "must sum to 1"),
    ("sram-split-zero", WORKLOAD + "[hardware]\nsram_split = [0.5, 0.5, 0]\n", "hardware.sram_split[2]", "= 0", "greater than 0"),
    ("empty-objectives", WORKLOAD + "[objectives]\nminimize = []\n", "objectives.minimize", "[]", "at least 1 item"),
    ("bad-workload-param", '[workload]\nnetwork = "resnet18"\nparams = { seq_len = 128 }\n',
     "workload.params.seq_len", "128", "no parameter 'seq_len'"),
    ("workload-param-clash", '[workload]\nnetwork = "resnet18"\nparams = { batch = 2 }\n',
     "workload.params.batch", "2", "keys of [workload] itself"),
    ("schedule-dataflow-not-in-hardware", WORKLOAD + '[hardware]\ndataflows = ["ws"]\n[schedule]\ndataflow = ["ws", "os"]\n',
     "schedule.dataflow[1]", "'os'", "not supported by the cores"),
]


@pytest.mark.parametrize(
    ("case", "text", "key", "value", "expected"), [c if hasattr(c, "marks") else pytest.param(*c, id=c[0]) for c in CASES]
)
def test_bad_design_is_named(tmp_path, case, text, key, value, expected):
    path = _write(tmp_path, text, f"{case}.toml")
    _assert_names(_error(path), path, key, value, expected)


def test_schedule_dataflow_not_in_hardware_is_rejected(tmp_path):
    """Whatever the shape of the message, the mismatch is caught and the key and value appear in it."""
    path = _write(tmp_path, WORKLOAD + '[hardware]\ndataflows = ["ws"]\n[schedule]\ndataflow = ["ws", "os"]\n')
    message = _error(path)
    assert str(path) in message and "schedule.dataflow" in message and "'os'" in message and "not supported" in message


def test_unknown_workload_param_is_rejected(tmp_path):
    path = _write(tmp_path, '[workload]\nnetwork = "resnet18"\nparams = { seq_len = 128 }\n')
    message = _error(path)
    assert message.startswith(f"{path}: workload.params.seq_len = 128") and "has no parameter 'seq_len'" in message


def test_invalid_toml(tmp_path):
    path = _write(tmp_path, WORKLOAD + "[hardware\npe_rows = 8\n")
    message = _error(path)
    assert message.startswith(f"{path}: not valid TOML") and "line 3" in message and "\n" not in message


def test_invalid_toml_value(tmp_path):
    path = _write(tmp_path, WORKLOAD + "[hardware]\npe_rows = [8, 16\n")
    message = _error(path)
    assert message.startswith(f"{path}: not valid TOML")


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere" / "design.toml"
    assert _error(path) == f"{path}: no such design file"


def test_directory_instead_of_file(tmp_path):
    message = _error(tmp_path)
    assert message.startswith(f"{tmp_path}: cannot read design file")


def test_not_utf8(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[workload]\nnetwork = "r\xe9snet18"\n')
    assert _error(path).startswith(f"{path}: ")


def test_several_errors_each_on_their_own_line(tmp_path):
    path = _write(tmp_path, WORKLOAD + "[hardware]\npe_rows = [8, -4]\npe_colz = 3\n")
    lines = _error(path).splitlines()
    assert len(lines) == 2
    assert all(line.startswith(f"{path}: hardware.pe_") for line in lines)


def test_valid_design_with_scalars_and_lists(tmp_path):
    path = _write(tmp_path, WORKLOAD + "[hardware]\npe_rows = 8\ndram_gbps = [12, 25.6]\n[constraints]\narea_mm2 = 50\n")
    design = load_design(path)
    assert design.hardware.pe_rows == [8]
    assert design.hardware.dram_gbps == [12.0, 25.6]
    assert design.constraints == {"area_mm2": 50.0}
    assert design.source == str(path)


SHIPPED = sorted(DESIGNS.glob("*.toml"))


def test_there_are_shipped_designs():
    names = {p.name for p in SHIPPED}
    assert {"edge_resnet18.toml", "edge_resnet18_chiplet_cost.toml"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_design_loads_and_builds(path):
    design = load_design(path)
    assert isinstance(design, Design)
    space, evaluator = build(design)  # plug-ins import, objectives and budgets name known metrics
    assert space.dimension > 0
    assert set(design.objectives.minimize) <= set(evaluator.metric_names)
