"""Every broken variant of the shipped design files stops with exit code 2, one line, no traceback, no folder.

A hypothesis strategy takes one of the project's own design files and breaks it the ways people do:
an unknown (misspelt) key, a value of the wrong type, a value out of range, a TOML syntax error.
Each broken file goes through the real shell entry point, in this process.
"""

from __future__ import annotations

import io
import json
import tomllib
from contextlib import redirect_stderr, redirect_stdout

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codesign.cli import main
from tests.helpers import DESIGNS

SHIPPED = sorted(DESIGNS.glob("*.toml"))


def _toml_value(value) -> str:
    """A TOML value for the subset design files use: strings, numbers, booleans, lists, inline tables."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return json.dumps(value)


def _toml(raw: dict) -> str:
    lines = []
    for section, body in raw.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in body.items()]
        lines.append("")
    return "\n".join(lines)


def _leaves(raw: dict) -> list[tuple[str, str]]:
    """(section, key) of every setting of a design (the dictionaries inside sections are leaves too)."""
    return [(section, key) for section, body in raw.items() for key in body]


def _wrong_type(value):
    """A value of a type the key never accepts: numbers and lists of them become text, text becomes a number."""
    if isinstance(value, str) or (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
        return 7
    if isinstance(value, dict):
        return "not a table"
    return "lots"


def _out_of_range(value):
    """Every numeric setting of a design is positive (or non-negative): a negative one is out of range."""
    if isinstance(value, list):
        return [-3 if isinstance(v, (int, float)) and not isinstance(v, bool) else v for v in value]
    if isinstance(value, dict):
        return {k: -3 for k in value}
    return -3


@st.composite
def broken_designs(draw) -> tuple[str, str, str]:
    """``(file name, text, what was broken)`` of a shipped design file broken one way."""
    path = draw(st.sampled_from(SHIPPED))
    text = path.read_text()
    raw = tomllib.loads(text)
    kind = draw(st.sampled_from(["unknown_key", "wrong_type", "out_of_range", "syntax"]))
    if kind == "syntax":
        cut = draw(st.sampled_from(["= =", "[hardware", "pe_rows = [8, 16", 'network = "resnet18', "minimize = latency_s"]))
        return path.name, text + "\n" + cut + "\n", kind
    section, key = draw(st.sampled_from(_leaves(raw)))
    if kind == "unknown_key":
        typo = key + draw(st.sampled_from(["s", "_x", "2"]))
        raw[section][typo] = raw[section][key]
        return path.name, _toml(raw), f"{section}.{typo}"
    value = raw[section][key]
    if kind == "out_of_range":
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool) or (
            isinstance(value, (list, dict)) and any(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                    for v in (value.values() if isinstance(value, dict) else value)))
        if not numeric:
            kind, value = "wrong_type", _wrong_type(value)
        else:
            value = _out_of_range(value)
    else:
        value = _wrong_type(value)
    raw[section][key] = value
    return path.name, _toml(raw), f"{section}.{key}"


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=broken_designs())
def test_a_broken_design_file_stops_with_one_line_and_no_folder(tmp_path_factory, case):
    name, text, where = case
    folder = tmp_path_factory.mktemp("broken")
    for beside in ("plugins", "models"):  # a design's plug-ins and imported networks sit beside it
        (folder / beside).symlink_to(DESIGNS / beside, target_is_directory=True)
    design = folder / name
    design.write_text(text)
    out = folder / "run"
    err, stdout = io.StringIO(), io.StringIO()
    with redirect_stderr(err), redirect_stdout(stdout):
        try:
            code = main(["explore", str(design), "--out", str(out), "--no-progress"])
        except SystemExit as exit_:
            code = exit_.code
    message = err.getvalue()
    assert code == 2, (where, message, stdout.getvalue())
    lines = [line for line in message.splitlines() if line.strip()]
    assert "Traceback" not in message
    # One message: one line per wrong key (a list knob broken item by item names each item), each naming the file.
    assert lines[0].startswith("codesign: error: ") and all(str(design) in line for line in lines), message
    if where != "syntax":  # the key path is named
        assert where in lines[0] or where.split(".")[0] in lines[0], (where, message)
    assert not out.exists()


def test_the_mutations_cover_every_shipped_design():
    assert len(SHIPPED) >= 4
    for path in SHIPPED:
        raw = tomllib.loads(path.read_text())
        assert tomllib.loads(_toml(raw)) == raw, f"{path.name} does not survive the test's TOML writer"
