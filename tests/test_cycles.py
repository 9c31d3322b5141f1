"""``codesign cycles``: output formats, flags, config files, bad input, speed."""

import csv
import io
import json
import time
from pathlib import Path

import pytest

from codesign.cli import main
from codesign.cycles import COLUMNS, CyclesSetup, cycles_table

TOPOLOGIES = Path(__file__).resolve().parent.parent / "data" / "scalesim" / "topologies"
RESNET = str(TOPOLOGIES / "resnet18_convs.csv")


def run(capsys, *args):
    code = main(["cycles", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_csv_output_one_row_per_layer(capsys):
    code, out, err = run(capsys, "--topology", RESNET, "--array-h", "32", "--array-w", "32", "--dataflow", "os",
                         "--ifmap-sram-kb", "64", "--filter-sram-kb", "64", "--ofmap-sram-kb", "32", "--bandwidth", "10")
    assert code == 0 and err == ""
    rows = list(csv.DictReader(io.StringIO(out)))
    assert tuple(rows[0]) == COLUMNS and len(rows) == 20
    for row in rows:
        c, s, t = int(row["compute_cycles"]), int(row["stall_cycles"]), int(row["total_cycles"])
        assert c + s == t and s >= 0 and 0 < float(row["utilization"]) <= 1
    # OS: ⌈12544/32⌉·⌈64/32⌉ = 784 folds of K + H + W − 2 = 209 cycles, minus one.
    assert rows[0]["layer"] == "conv1" and rows[0]["compute_cycles"] == "163855"


def test_json_output_and_no_bandwidth_means_no_stalls(capsys):
    code, out, _ = run(capsys, "--topology", str(TOPOLOGIES / "gemm_mnk.csv"), "--array-h", "64", "--array-w", "64",
                       "--dataflow", "os", "--format", "json")
    assert code == 0
    rows = json.loads(out)
    assert [r["layer"] for r in rows][:2] == ["rn18_fc_M1_N1000_K512", "bert_M512_N768_K768"]
    assert all(r["stall_cycles"] == 0 for r in rows)
    # SCALE-Sim 3.0.0 CALC mode (reference rows): bert_M512_N3072_K768 on 64×64 OS.
    assert rows[2]["compute_cycles"] == 343295 and rows[2]["total_cycles"] == 343295


def test_config_file_sets_hardware_and_flags_override(capsys, tmp_path):
    template = (TOPOLOGIES / "config_template.cfg").read_text()
    values = dict(run_name="r", ah=64, aw=64, isz=64, fsz=64, osz=32, bw=10, df="os", bwmode="USER")
    for key, value in values.items():
        template = template.replace("{" + key + "}", str(value))
    cfg = tmp_path / "a.cfg"
    cfg.write_text(template)
    topo = str(TOPOLOGIES / "resnet18_distinct_convs.csv")
    code, out, _ = run(capsys, "--topology", topo, "--config", str(cfg))
    assert code == 0
    by_cfg = list(csv.DictReader(io.StringIO(out)))
    code, out, _ = run(capsys, "--topology", topo, "--array-h", "64", "--array-w", "64", "--dataflow", "os",
                       "--ifmap-sram-kb", "64", "--filter-sram-kb", "64", "--ofmap-sram-kb", "32", "--bandwidth", "10")
    assert by_cfg == list(csv.DictReader(io.StringIO(out)))
    code, out, _ = run(capsys, "--topology", topo, "--config", str(cfg), "--dataflow", "ws")
    assert list(csv.DictReader(io.StringIO(out)))[0]["compute_cycles"] == "38201"  # SCALE-Sim: conv1, 64×64 WS


@pytest.mark.parametrize(
    "args, message",
    [
        (["--topology", "/no/such.csv", "--array-h", "8", "--array-w", "8", "--dataflow", "os"], "no such topology file"),
        (["--topology", RESNET, "--array-w", "8", "--dataflow", "os"], "--array-h required"),
        (["--topology", RESNET, "--array-h", "8", "--array-w", "8", "--dataflow", "os", "--config", "/no/such.cfg"],
         "no such config file"),
    ],
)
def test_user_errors_exit_2_without_traceback(capsys, args, message):
    code, out, err = run(capsys, *args)
    assert code == 2 and out == ""
    assert message in err and "Traceback" not in err and err.startswith("codesign: error:")


@pytest.mark.parametrize("flag, value", [("--array-h", "0"), ("--bandwidth", "-1"), ("--bandwidth", "inf"),
                                         ("--dataflow", "xs"), ("--format", "xml")])
def test_bad_flag_values_are_argparse_errors(capsys, flag, value):
    with pytest.raises(SystemExit) as info:
        main(["cycles", "--topology", RESNET, "--array-h", "8", "--array-w", "8", "--dataflow", "os", flag, value])
    assert info.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_bad_topology_line_is_reported(capsys, tmp_path):
    topo = tmp_path / "t.csv"
    topo.write_text("Layer, M, N, K,\nok, 4, 4, 4,\nbad, 4, -4, 4,\n")
    code, _, err = run(capsys, "--topology", str(topo), "--array-h", "8", "--array-w", "8", "--dataflow", "ws")
    assert code == 2 and f"{topo}:3: N = '-4': expected a positive integer" in err


def test_twenty_layers_in_under_a_second():
    setup = CyclesSetup(array_h=32, array_w=32, dataflow="ws", sram_kb=(64, 64, 32), bandwidth=10.0)
    cycles_table(RESNET, setup)  # warm: imports
    start = time.perf_counter()
    rows = cycles_table(RESNET, setup)
    assert len(rows) == 20 and time.perf_counter() - start < 1.0


def test_more_bandwidth_or_sram_never_slows_a_layer_down_here():
    base = cycles_table(RESNET, CyclesSetup(array_h=32, array_w=32, dataflow="os", sram_kb=(64, 64, 32), bandwidth=10.0))
    fast = cycles_table(RESNET, CyclesSetup(array_h=32, array_w=32, dataflow="os", sram_kb=(64, 64, 32), bandwidth=40.0))
    assert all(f["total_cycles"] <= b["total_cycles"] for f, b in zip(fast, base))
    assert all(f["compute_cycles"] == b["compute_cycles"] for f, b in zip(fast, base))
