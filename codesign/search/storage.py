"""Where a run's trials live: the run folder's embedded Optuna storage, or any Optuna URL.

The default storage is Optuna's journal file ``DIR/study.journal``; optuna-dashboard
opens it directly (``optuna-dashboard DIR/study.journal``) and ``optuna.load_study``
reads it like any other storage. ``--storage URL`` takes any Optuna storage URL instead
(``sqlite:///...``, ``postgresql://...`` for many workers).

Trials reach the storage a generation at a time through :class:`TrialWriter`. On a
journal file it appends the whole generation as one block of journal lines (one file
lock, one ``fsync``) and hands the already built trials to the storage's in-memory
replay instead of parsing them back, so a finished trial costs tens of microseconds
instead of the milliseconds of one ``create_new_trial`` call (lock, ``fsync``, replay)
per trial. The lines are exactly those ``JournalStorage.create_new_trial`` writes. On
any other storage the writer falls back to Optuna's public calls, trial by trial.
``scripts/bench_storage.py`` measures all of these.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import distribution_to_json
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial

from codesign.errors import ArgumentError, UserError
from codesign.search.optuna_internals import (
    OP_CREATE_TRIAL,
    OP_SET_STUDY_SYSTEM_ATTR,
    JournalFile,
    set_trial_identity,
    shared_distributions,
    study_storage,
)

STUDY_NAME = "codesign"
JOURNAL_FILE = "study.journal"


def open_journal(path: Path) -> JournalStorage:
    """Optuna's storage of a journal file, replayed with shared distributions."""
    with shared_distributions():
        return JournalStorage(JournalFileBackend(str(path)))


def open_storage(out: Path, url: str | None) -> tuple[optuna.storages.BaseStorage, str]:
    """The storage of a run and a description of it (its URL or file)."""
    if url is None:
        path = out / JOURNAL_FILE
        return open_journal(path), str(path)
    try:
        return optuna.storages.get_storage(url), url
    except Exception as error:  # bad scheme, missing driver, unreachable server
        reason = (str(error).strip().splitlines() or [""])[0]  # SQLAlchemy appends a second "Background" line
        raise ArgumentError("storage", url, f"cannot open this Optuna storage: {type(error).__name__}: {reason}") from None


def load_or_create_study(storage: optuna.storages.BaseStorage, directions: list[str], study_name: str = STUDY_NAME) -> optuna.Study:
    """The run's study, created on first use; its directions must match the objectives."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=storage, study_name=study_name, directions=directions, load_if_exists=True)
    found = [d.name.lower() for d in study.directions]
    if found != directions:
        raise UserError(
            f"study {study_name!r} in this storage has {len(found)} objective(s) {found}; the design asks for {directions}: use another run folder or storage"
        )
    return study


def _iso_utc(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(timezone.utc).isoformat(timespec="microseconds")


class TrialWriter:
    """Appends finished trials (and study system attributes) to a study, a batch at a time.

    :meth:`write` gives each trial its ``number`` and ``_trial_id`` in the storage, in
    place. The trials must be finished (``COMPLETE``, ``FAIL`` or ``PRUNED``) and their
    attributes JSON-serialisable; the caller must not change them afterwards (on a
    journal file they *are* the storage's in-memory copies).

    Args:
        study: the persistent study.
        fast: use the journal-file fast path where possible (``False``: Optuna's
            public calls only, for comparison).
    """

    def __init__(self, study: optuna.Study, *, fast: bool = True) -> None:
        self.study = study
        self.storage, self.study_id = study_storage(study)
        self._journal = JournalFile.of(self.storage) if fast else None
        self._dist_json: tuple[Any, str] | None = None  # (distributions dict, its journal JSON)
        self._internal: dict[str, dict] = {}  # param name → {(type, value): internal repr}
        self._iso_memo: dict[datetime, str] = {}

    @property
    def fast(self) -> bool:
        return self._journal is not None

    def write(self, trials: list[FrozenTrial], study_system_attrs: Mapping[str, Any] | None = None, *, params_json: list[str] | None = None) -> None:
        """Store ``trials`` (numbering them) and ``study_system_attrs``, in one batch where the storage allows.

        ``params_json``: optional, each trial's params as the JSON object the journal holds
        (names → ``distribution.to_internal_repr(value)``), to spare serialising them here.
        """
        attrs = dict(study_system_attrs or {})
        if not trials and not attrs:
            return
        if self._journal is not None:
            self._write_journal(trials, attrs, params_json)
            return
        for key, value in attrs.items():
            self.storage.set_study_system_attr(self.study_id, key, value)
        for trial in trials:
            trial_id = self.storage.create_new_trial(self.study_id, template_trial=trial)
            set_trial_identity(trial, trial_id, self.storage.get_trial_number_from_id(trial_id))

    # --- journal file fast path -----------------------------------------------------------
    def _distributions_json(self, distributions: dict) -> str:
        if self._dist_json is None or self._dist_json[0] is not distributions:
            text = json.dumps({k: distribution_to_json(d) for k, d in distributions.items()}, separators=(",", ":"))
            self._dist_json = (distributions, text)
        return self._dist_json[1]

    def _internal_params(self, trial: FrozenTrial) -> dict[str, Any]:
        out = {}
        for name, value in trial.params.items():
            memo = self._internal.setdefault(name, {})
            key = (type(value), value)
            internal = memo.get(key)
            if internal is None:
                internal = memo[key] = trial.distributions[name].to_internal_repr(value)
            out[name] = internal
        return out

    def _iso(self, moment: datetime | None) -> str | None:
        """``_iso_utc``, remembering the last few (a generation's trials share their timestamps)."""
        if moment is None:
            return None
        text = self._iso_memo.get(moment)
        if text is None:
            if len(self._iso_memo) > 64:
                self._iso_memo.clear()
            text = self._iso_memo[moment] = _iso_utc(moment)
        return text

    def _line(self, trial: FrozenTrial, worker_id: str, params_json: str | None = None) -> str:
        """The journal line ``JournalStorage.create_new_trial(study_id, template_trial=trial)`` writes."""
        values = trial.values
        multi = values is not None and len(values) > 1
        log: dict[str, Any] = {
            "op_code": OP_CREATE_TRIAL,
            "worker_id": worker_id,
            "study_id": self.study_id,
            "datetime_start": self._iso(trial.datetime_start),
            "state": int(trial.state),
            "value": None if multi else trial.value,
            "values": list(values) if multi else None,
        }
        if trial.datetime_complete is not None:
            log["datetime_complete"] = self._iso(trial.datetime_complete)
        log["user_attrs"] = trial.user_attrs
        log["system_attrs"] = trial.system_attrs
        log["intermediate_values"] = trial.intermediate_values
        text = json.dumps(log, separators=(",", ":"))
        if params_json is None:
            params_json = json.dumps(self._internal_params(trial), separators=(",", ":"))
        # The distributions are the same for every trial of a run: serialised once, spliced in.
        return f'{text[:-1]},"params":{params_json},"distributions":{self._distributions_json(trial.distributions)}}}'

    def _write_journal(self, trials: list[FrozenTrial], attrs: dict[str, Any], params_json: list[str] | None) -> None:
        journal = self._journal
        for trial in trials:
            if not trial.state.is_finished():
                raise ValueError(f"TrialWriter writes finished trials only, got a {trial.state.name} one")
        with journal.thread_lock():
            with journal.file_lock():
                worker_id = journal.worker_id
                attr_logs = [
                    {"op_code": OP_SET_STUDY_SYSTEM_ATTR, "worker_id": worker_id, "study_id": self.study_id, "system_attr": {k: v}}
                    for k, v in attrs.items()
                ]
                first_id, first_number = journal.next_trial(self.study_id)
                lines = [json.dumps(log, separators=(",", ":")) for log in attr_logs]
                for i, trial in enumerate(trials):
                    set_trial_identity(trial, first_id + i, first_number + i)
                    lines.append(self._line(trial, worker_id, None if params_json is None else params_json[i]))
                end = _append_synced(journal.path, ("\n".join(lines) + "\n").encode("utf-8"))
            # Bring the in-memory replay up to date without parsing our own lines back.
            journal.replayed(self.study_id, attr_logs, trials, end)


def _append_synced(path: str, data: bytes) -> int:
    """Append ``data`` to the file, flushed to disk; returns the file's new length."""
    with open(path, "ab") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
        end = f.tell()
        if hasattr(os, "posix_fadvise"):
            # Written, synced and never read back by this process: let the kernel drop
            # these pages now. Otherwise gigabytes of journal fill the page cache and
            # later writes wait on its reclaim (measured: 0.7 ms → 4.4 ms per 2 MB).
            os.posix_fadvise(f.fileno(), end - len(data), len(data), os.POSIX_FADV_DONTNEED)
    return end


def study_system_attrs(study: optuna.Study) -> dict[str, Any]:
    """The study's system attributes (where NSGA-II keeps its parent caches)."""
    storage, study_id = study_storage(study)
    return dict(storage.get_study_system_attrs(study_id))

