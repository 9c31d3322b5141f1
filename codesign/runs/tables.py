"""Tables of a run: every trial and the Pareto front as pandas DataFrames, written atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path

import optuna
import pandas as pd


STATE_NAMES = {optuna.trial.TrialState.COMPLETE: "complete", optuna.trial.TrialState.FAIL: "fail"}


def trials_frame(trials: list[optuna.trial.FrozenTrial], metric_names: list[str], knob_columns) -> pd.DataFrame:
    """One row per finished trial: ``trial``, ``state``, ``feasible``, every metric, every knob.

    A trial is feasible when it completed and all its constraint values are ≤ 0
    (a constraint value is ``(metric − budget) / budget``). ``knob_columns(trials)`` gives every
    knob's values over the trials (``DesignSpace.packed.columns``: trials store per-layer knobs packed).

    Built column by column (one pass over the trials per group of columns, each value read with
    C-level getters) rather than a dict per trial: at 100,000 trials of 115 knobs that was most
    of the time of writing a run's tables.
    """
    kept = [t for t in trials if t.state in STATE_NAMES]
    complete = optuna.trial.TrialState.COMPLETE
    nan = float("nan")
    columns: dict[str, list] = {
        "trial": [t.number for t in kept],
        "state": [STATE_NAMES[t.state] for t in kept],
        "feasible": [
            t.state == complete and all(v <= 0 for v in t.constraints.values())
            for t in kept
        ],
    }
    metrics = [t.user_attrs.get("metrics", {}) for t in kept]
    for name in metric_names:
        columns[name] = [m.get(name, nan) for m in metrics]
    columns.update(knob_columns(kept))
    columns["duplicate_of"] = [t.user_attrs.get("duplicate_of") for t in kept]
    columns["fail_reason"] = [t.user_attrs.get("fail_reason", "") for t in kept]
    frame = pd.DataFrame(columns) if kept else pd.DataFrame([], columns=list(columns))
    frame["duplicate_of"] = frame["duplicate_of"].astype("Int64")
    return frame.sort_values("trial", kind="stable").reset_index(drop=True)


TEMP_SUFFIX = ".tmp"


def _temp_path(path: Path) -> Path:
    """Where ``path`` is written before it is renamed into place: a hidden file beside it, named
    after this process, so that two writers never share one and a stale one can be told apart."""
    return path.with_name(f".{path.name}.{os.getpid()}{TEMP_SUFFIX}")


def write_atomic(path: Path, write) -> Path:
    """Write through ``write(tmp_path)``, flush it to disk, then rename it into place: a reader, or
    the folder after a kill, sees the old file or the new one, never half of one (PNG included)."""
    path = Path(path)
    tmp = stage(path, write)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def stage(path: Path, write) -> Path:
    """Write ``path``'s new content to its temporary file (synced) and return that file; the
    caller renames it into place (:func:`os.replace`). Nothing is left behind on failure."""
    path = Path(path)
    tmp = _temp_path(path)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_temps(folder: Path) -> list[Path]:
    """Remove the temporary files that a killed writer left in ``folder`` (``.NAME.PID.tmp`` of a
    process that is gone, and the older ``.NAME.tmp``); returns what was removed."""
    removed = []
    for tmp in Path(folder).glob(f".*{TEMP_SUFFIX}"):
        pid = tmp.name[: -len(TEMP_SUFFIX)].rsplit(".", 1)[-1]
        if pid.isdigit() and (int(pid) == os.getpid() or _alive(int(pid))):
            continue  # being written, by this process or another one
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    return write_atomic(path, lambda p: frame.to_csv(p, index=False))


def write_json(data: dict, path: Path) -> Path:
    return write_atomic(path, lambda p: Path(p).write_text(json_text(data)))


def json_text(data: dict) -> str:
    return json.dumps(data, indent=2, default=float) + "\n"
