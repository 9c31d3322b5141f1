"""Where a run's trials live: the run folder's embedded Optuna storage, or any Optuna URL.

The default storage is Optuna's journal file ``DIR/study.journal``; optuna-dashboard
opens it directly (``optuna-dashboard DIR/study.journal``) and ``optuna.load_study``
reads it like any other storage. ``--storage URL`` takes any Optuna storage URL instead
(``sqlite:///...``, ``postgresql://...`` for many workers; the ``postgres`` extra installs
the driver). Two workers opening a fresh database at once retry Optuna's schema creation.

Trials reach the storage a generation at a time through :class:`TrialWriter`. On a
journal file it appends the whole generation as one block of journal lines (one file
lock, one ``fsync``) and hands the already built trials to the storage's in-memory
replay instead of parsing them back. The lines are those ``JournalStorage.create_new_trial``
writes, with each distribution in Optuna's short JSON form (``{"type":"int","low":0,"high":7}``,
which ``json_to_distribution`` reads back as the same object), and the block is framed by
two study system attribute lines (``codesign:block`` = ``begin`` / ``end``) so that a
block cut short is recognised whole. On an RDB storage (PostgreSQL, SQLite) a generation is one
transaction (:mod:`codesign.search.rdb`). On any other storage the writer falls back to
Optuna's public calls, trial by trial. ``scripts/bench_storage.py`` measures all of these.

Crash safety of the journal file (the lock and the repair are in :mod:`codesign.search.journal`):
every append, Optuna's own and the writer's, first takes :class:`JournalLock`, which cuts a
torn tail (a write cut short by a kill or a full disk: a line without its newline, or a
block without its ``end`` line) back to the last whole record, so the next append never
glues onto a partial line. Opening a study never writes (:func:`open_study`).
"""

from __future__ import annotations

import errno
import json
import os
import time
import warnings
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import optuna
from optuna.distributions import BaseDistribution, distribution_to_json, json_to_distribution
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial

from codesign.errors import ArgumentError, UserError
from codesign.search.journal import BLOCK_KEY, JournalLock, repair_tail
from codesign.search.optuna_internals import (
    OP_CREATE_TRIAL,
    OP_SET_STUDY_SYSTEM_ATTR,
    JournalFile,
    distribution_attributes,
    set_trial_identity,
    shared_distributions,
    study_storage,
)
from codesign.search.rdb import RdbGenerationWriter

STUDY_NAME = "codesign"
JOURNAL_FILE = "study.journal"
T = TypeVar("T")


# --- opening --------------------------------------------------------------------------------
def open_journal(path: Path, *, read_only: bool = False) -> JournalStorage:
    """Optuna's storage of a journal file, replayed with shared distributions, its appends
    under :class:`JournalLock`. ``read_only``: the file must exist; nothing is created or written."""
    path = Path(path)
    if read_only and not path.is_file():
        raise UserError(f"{path}: no journal file here (expected the study of a codesign run)")
    try:
        lock = JournalLock(str(path))
        if not read_only:
            _cut_torn_tail(lock)
        with shared_distributions():
            return JournalStorage(JournalFileBackend(str(path), lock_obj=lock))
    except OSError as error:
        raise UserError(f"{path}: cannot open the journal: {error.strerror or error}") from None
    except ValueError as error:  # a damaged line in the middle: json.JSONDecodeError or "Invalid log format."
        raise UserError(f"{path}: unreadable journal ({error}); `codesign repair` on its run folder drops the damaged bytes") from None


def _cut_torn_tail(lock: JournalLock) -> None:
    """Cut a torn tail before the journal is replayed: the whole lines of a generation block that
    lost its end must not be read into memory and then cut from the file by the first append.
    On a read-only file or folder there is nothing to cut it for (nothing can be appended)."""
    try:
        lock.acquire()
    except OSError as error:
        if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return
        raise
    lock.release()


def open_storage(out: Path, url: str | None, *, read_only: bool = False) -> tuple[optuna.storages.BaseStorage, str]:
    """The storage of a run and a description of it (its URL or file). ``read_only``: an
    existing journal only (an Optuna URL is opened as it is; opening it writes nothing once its
    tables exist)."""
    if url is None:
        path = Path(out) / JOURNAL_FILE
        return open_journal(path, read_only=read_only), str(path)
    try:
        return _retrying(lambda: optuna.storages.get_storage(url)), url
    except Exception as error:  # bad scheme, missing driver, unreachable server
        reason = (str(error).strip().splitlines() or [""])[0]  # SQLAlchemy appends a second "Background" line
        if isinstance(error, ImportError) and url.startswith("postgresql"):
            reason += " (for PostgreSQL: pip install 'codesign[postgres]', which brings psycopg)"
        raise ArgumentError("storage", url, f"cannot open this Optuna storage: {type(error).__name__}: {reason}") from None


_RACE_WORDS = ("already exists", "locked", "duplicate", "unique constraint")


def _is_schema_race(error: BaseException) -> bool:
    """An error two workers get when they create a fresh database's tables (or its study) at once."""
    if not type(error).__module__.startswith("sqlalchemy"):
        return False
    return any(word in str(error).lower() for word in _RACE_WORDS)


def _retrying(call: Callable[[], T], attempts: int = 8) -> T:
    """``call()``, tried again (after 0.05, 0.1, 0.2 … s) while it fails on a schema-creation race."""
    for attempt in range(attempts):
        try:
            return call()
        except Exception as error:
            if attempt == attempts - 1 or not _is_schema_race(error):
                raise
            time.sleep(min(0.05 * 2**attempt, 1.0))
    raise AssertionError("unreachable")


def open_study(storage: optuna.storages.BaseStorage, directions: list[str], *, study_name: str = STUDY_NAME,
               create: bool = True, objectives: list[str] | None = None, user_attrs: Mapping[str, Any] | None = None,
               where: str | None = None) -> optuna.Study:
    """The run's study; its directions must match the objectives.

    An existing study is loaded without writing anything (``optuna.load_study``). A missing one
    is created if ``create`` (then named metrics: ``objectives``, what optuna-dashboard and
    Optuna's plots label the values with, and the study's ``user_attrs``), else a
    :class:`UserError` naming ``where``.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        storage.get_study_id_from_name(study_name)
        exists = True
    except KeyError:
        exists = False
    if exists:
        study = optuna.load_study(study_name=study_name, storage=storage)
    elif not create:
        raise UserError(f"{where or 'this storage'}: holds no study {study_name!r} (expected the study of a codesign run)")
    else:
        study = _retrying(lambda: optuna.create_study(storage=storage, study_name=study_name, directions=directions, load_if_exists=True))
    found = [d.name.lower() for d in study.directions]
    if found != directions:
        raise UserError(
            f"study {study_name!r} in {where or 'this storage'} has {len(found)} objective(s) {found}; the design asks for {directions}: use another run folder or storage"
        )
    if create and objectives is not None and study.metric_names is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(objectives))
    if create:
        for key, value in (user_attrs or {}).items():
            if key not in study.user_attrs:
                study.set_user_attr(key, value)
    return study


# --- writing --------------------------------------------------------------------------------
def _iso_utc(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(timezone.utc).isoformat(timespec="microseconds")


def short_distribution_json(distribution: BaseDistribution) -> str:
    """The distribution in Optuna's short JSON form, if ``json_to_distribution`` reads it back
    as an equal distribution (else Optuna's full form): a third of the bytes per knob."""
    attrs = distribution_attributes(distribution)
    kind = {"IntDistribution": "int", "FloatDistribution": "float", "CategoricalDistribution": "categorical"}.get(type(distribution).__name__)
    if kind == "categorical":
        short: dict[str, Any] = {"type": kind, "choices": list(attrs["choices"])}
    elif kind is not None:
        short = {"type": kind, "low": attrs["low"], "high": attrs["high"]}
        if attrs.get("log"):
            short["log"] = True
        if attrs.get("step") not in (None, 1) or (kind == "float" and attrs.get("step") is not None):
            short["step"] = attrs["step"]
    else:
        return distribution_to_json(distribution)
    text = json.dumps(short, separators=(",", ":"))
    try:
        same = json_to_distribution(text) == distribution
    except Exception:  # an Optuna that no longer reads the short form
        same = False
    return text if same else distribution_to_json(distribution)


def _block_line(worker_id: str, study_id: int, mark: str) -> dict:
    return {"op_code": OP_SET_STUDY_SYSTEM_ATTR, "worker_id": worker_id, "study_id": study_id, "system_attr": {BLOCK_KEY: mark}}


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
        self._rdb = RdbGenerationWriter.of(self.storage, self.study_id, short_distribution_json) if fast and self._journal is None else None
        self._dist_json: tuple[Any, str] | None = None  # (distributions dict, its journal JSON)
        self._internal: dict[str, dict] = {}  # param name → {(type, value): internal repr}
        self._iso_memo: dict[datetime, str] = {}

    @property
    def fast(self) -> bool:
        """Whether ``params_json`` is used (the journal file's fast path)."""
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
        if self._rdb is not None:
            self._rdb.write(trials, attrs)
            return
        for key, value in attrs.items():
            self.storage.set_study_system_attr(self.study_id, key, value)
        for trial in trials:
            trial_id = self.storage.create_new_trial(self.study_id, template_trial=trial)
            set_trial_identity(trial, trial_id, self.storage.get_trial_number_from_id(trial_id))

    # --- journal file fast path -----------------------------------------------------------
    def _distributions_json(self, distributions: dict) -> str:
        if self._dist_json is None or self._dist_json[0] is not distributions:
            text = json.dumps({k: short_distribution_json(d) for k, d in distributions.items()}, separators=(",", ":"))
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
        """The journal line ``JournalStorage.create_new_trial(study_id, template_trial=trial)`` writes
        (distributions in their short form)."""
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
                if not isinstance(journal.lock, JournalLock):  # a plain Optuna lock: cut a torn tail here
                    repair_tail(journal.path)
                worker_id = journal.worker_id
                before = [_block_line(worker_id, self.study_id, "begin")] + [
                    {"op_code": OP_SET_STUDY_SYSTEM_ATTR, "worker_id": worker_id, "study_id": self.study_id, "system_attr": {k: v}}
                    for k, v in attrs.items()
                ]
                after = [_block_line(worker_id, self.study_id, "end")]
                first_id, first_number = journal.next_trial(self.study_id)
                lines = [json.dumps(log, separators=(",", ":")) for log in before]
                for i, trial in enumerate(trials):
                    set_trial_identity(trial, first_id + i, first_number + i)
                    lines.append(self._line(trial, worker_id, None if params_json is None else params_json[i]))
                lines.extend(json.dumps(log, separators=(",", ":")) for log in after)
                end = _append_synced(journal.path, ("\n".join(lines) + "\n").encode("utf-8"))
            # Bring the in-memory replay up to date without parsing our own lines back.
            journal.replayed(self.study_id, before, trials, after, end)


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
