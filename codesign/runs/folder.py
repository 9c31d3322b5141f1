"""The run folder's identity: which design space it holds, and whether a new run may use it.

A run folder holds ``run.json`` (the validated design, its fingerprint, the storage and the
strategy) and ``design.toml`` (the file as given). :func:`space_fingerprint` hashes what makes
stored trials comparable; :func:`prepare_run_folder` refuses a folder that holds anything else
before any work is done, and creates nothing.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from codesign.design import Design
from codesign.errors import ArgumentError, UserError
from codesign.runs.tables import write_json
from codesign.space import DesignSpace

RUN_FILE = "run.json"
DESIGN_COPY = "design.toml"  # the design file as given, for people; run.json holds the validated design


def space_fingerprint(space: DesignSpace) -> str:
    """A hash of what makes stored trials comparable: knobs, objectives, budgets, workload."""
    d = space.design
    payload = {
        "knobs": {k.name: repr(k.distribution) for k in space.knobs},
        "objectives": d.objectives.minimize,
        "constraints": d.constraints,
        "workload": d.workload.model_dump(),
        "hardware": d.hardware.model_dump(mode="json"),
        "schedule": d.schedule.model_dump(mode="json"),
        "plugins": d.cost_model.plugins,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def prepare_run_folder(out: Path, fingerprint: str, design: Design, storage_url: str | None) -> bool:
    """Check ``out`` can hold this run; returns True if it resumes an earlier one. Creates nothing."""
    run_file = out / RUN_FILE
    if run_file.exists():
        try:
            info = json.loads(run_file.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise UserError(f"{run_file}: unreadable run file ({error}); use another --out") from None
        if info.get("fingerprint") != fingerprint:
            raise ArgumentError(
                "out", str(out), f"holds a run of a different design space (its design is {out / DESIGN_COPY}); "
                "use another run folder to start a new run"
            )
        if info.get("storage_url") != storage_url:
            raise ArgumentError("storage", storage_url, f"the run folder {out} keeps its study in "
                                f"{info.get('storage_url') or 'the run folder'}; pass the same {{arg}} to resume it")
        return True
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ArgumentError("out", str(out), "exists and is not a codesign run folder; choose a new or empty folder")
    return False


def design_source(design: Design) -> str:
    """Where the design came from: the file's absolute path, or the label of an in-memory design."""
    return str(Path(design.source).resolve()) if Path(design.source).is_file() else design.source


def write_identity(out: Path, design: Design, info: dict) -> None:
    """``run.json`` (the validated design and ``info``) and ``design.toml`` (the file as given)."""
    write_json({**info, "design": design.model_dump(mode="json"), "design_source": design_source(design)}, out / RUN_FILE)
    if Path(design.source).is_file():
        shutil.copyfile(design.source, out / DESIGN_COPY)

