"""The run folder's identity: which design space it holds, and whether a new run may use it.

A run folder holds ``run.json`` (the validated design, its fingerprint, the storage, the
strategy, the seed and a content hash of each plug-in's source file) and ``design.toml`` (the
file as given). :func:`space_fingerprint` hashes what makes stored trials comparable;
:func:`prepare_run_folder` refuses a folder that holds anything else before any work is done,
and creates nothing; :func:`check_resume` refuses a resume that would mix two runs in one study
(another seed, an edited plug-in).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import sys
from pathlib import Path

from codesign.design import Design
from codesign.errors import ArgumentError
from codesign.runs.tables import write_atomic, write_json
from codesign.space import DesignSpace

RUN_FILE = "run.json"
ORACLE_KIND = "surrogate_loop"  # run.json's kind of an oracle-verified run
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
    if d.carbon != type(d.carbon)():  # what the carbon metrics assume (only when set: older runs keep their fingerprint)
        payload["carbon"] = d.carbon.model_dump()
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def prepare_run_folder(out: Path, fingerprint: str, design: Design, storage_url: str | None) -> bool:
    """Check ``out`` can hold this run; returns True if it resumes an earlier one. Creates nothing."""
    run_file = out / RUN_FILE
    if run_file.exists():
        try:
            info = json.loads(run_file.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ArgumentError("out", str(out), f"its {RUN_FILE} is unreadable ({error}); use another run folder") from None
        if info.get("kind") == ORACLE_KIND:
            raise ArgumentError("out", str(out), "holds an oracle-verified run; resume it with its oracle, or use another run "
                                "folder for a search without one")
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
    if Path(design.source).is_file():
        text = Path(design.source).read_bytes()
        write_atomic(out / DESIGN_COPY, lambda p: Path(p).write_bytes(text))
    write_json({**info, "design": design.model_dump(mode="json"), "design_source": design_source(design)}, out / RUN_FILE)


def plugin_sources(specs, plugins) -> dict[str, dict]:
    """Each plug-in's source file and a content hash of it, by its name in the design file."""
    sources = {}
    for spec, plugin in zip(specs, plugins):
        plugin = getattr(plugin, "wrapped", plugin)  # a plug-in run on a cluster (codesign.cluster.DistributedPlugin)
        cls = plugin if isinstance(plugin, type) else type(plugin)
        module = sys.modules.get(cls.__module__)
        try:
            path = inspect.getsourcefile(module) if module is not None else None
        except TypeError:  # a built-in module: no source file
            path = None
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest() if path and Path(path).is_file() else None
        sources[spec] = {"file": str(Path(path).resolve()) if path else None, "sha256": digest}
    return sources


def check_resume(out: Path, info: dict, *, seed: int | None, plugins: dict[str, dict]) -> int:
    """Refuse to resume the run of ``run.json`` (``info``) with another seed or an edited plug-in;
    returns the seed to resume with (the run's own when ``seed`` is None)."""
    before_seed = info.get("seed")
    if seed is not None and before_seed is not None and seed != before_seed:
        raise ArgumentError("seed", seed, f"the run folder {out} holds a run with seed {before_seed}; resume it with that seed "
                            "(or leave {arg} out), or use another run folder for a new seed")
    for spec, now in plugins.items():
        then = info.get("plugin_sources", {}).get(spec)
        if then is not None and then.get("sha256") != now.get("sha256"):
            raise ArgumentError(
                "out", str(out), f"holds a run made with another version of the plug-in {spec} ({now.get('file') or then.get('file')} "
                "changed since: one study would mix two cost models); restore that file to resume, or use another run folder",
            )
    return before_seed if seed is None else seed

