"""Every use codesign makes of Optuna's private names, in one place.

The search reproduces Optuna's NSGA-II a generation at a time and writes whole generations
to a journal file; both need things Optuna does not promise to keep: the key strings its
NSGA-II sampler stores, its elite selection, its constrained-optimisation helpers, and the
inner state of ``JournalStorage`` over a ``JournalFileBackend``. Nothing else in
:mod:`codesign.search` touches an Optuna name that starts with an underscore; it goes
through this module. ``tests/test_optuna_internals.py`` checks every entry of
:data:`REQUIRED` (and the journal line format) against the installed Optuna, so a new
Optuna release that changes one of them fails that test, naming what changed.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial

from codesign.loader import load_object

#: (module, attribute, what codesign uses it for): everything below resolves one of these.
REQUIRED: tuple[tuple[str, str, str], ...] = (
    ("optuna.samplers", "NSGAIISampler._get_generation_key", "the trial system attribute holding a trial's generation"),
    ("optuna.samplers", "NSGAIISampler._get_parent_cache_key_prefix", "the study system attribute prefix of the parent cache"),
    ("optuna.samplers.nsgaii._elite_population_selection_strategy", "NSGAIIElitePopulationSelectionStrategy",
     "NSGA-II's parent selection (constrained non-dominated sort, crowding distance)"),
    ("optuna.study._constrained_optimization", "_CONSTRAINTS_KEY", "the prefix of a trial's constraint system attributes"),
    ("optuna.study._constrained_optimization", "_is_constrained_optimization", "whether NSGA-II uses constrained domination"),
    ("optuna.storages.journal._storage", "JournalOperation", "the op codes of the journal lines the fast path writes"),
    ("optuna.storages.journal._storage", "json_to_distribution", "replaying a journal with shared distribution objects"),
    ("optuna.storages.journal._file", "get_lock_file", "holding the journal file's lock while appending a generation"),
    ("optuna.distributions", "BaseDistribution._asdict", "a distribution's attributes, for its short journal JSON"),
    ("optuna.storages._rdb.models", "TrialModel", "the tables a generation is inserted into in one transaction (RDB storages)"),
    ("optuna.storages._rdb.models", "TrialValueModel.value_to_stored_repr", "an objective value as an RDB storage stores it"),
    ("optuna.storages._cached_storage", "_CachedStorage._add_trials_to_cache", "handing a written generation to the RDB cache"),
)

#: Attributes of a ``JournalStorage`` (``storage``), its ``JournalFileBackend`` (``backend``) and its
#: replay result (``replay``) that the fast path reads or updates.
JOURNAL_ATTRIBUTES: tuple[tuple[str, str], ...] = (
    ("storage", "_thread_lock"), ("storage", "_sync_with_backend"), ("storage", "_replay_result"),
    ("backend", "_lock"), ("backend", "_file_path"), ("backend", "_log_number_offset"),
    ("replay", "_trials"), ("replay", "_study_id_to_trial_ids"), ("replay", "_trial_id_to_study_id"),
    ("replay", "log_number_read"), ("replay", "worker_id"), ("replay", "apply_logs"),
)

#: Attributes of a ``_CachedStorage`` (``cached``) over an ``RDBStorage`` (``rdb``) and of its
#: per-study cache (``info``) that the batched RDB writer reads or updates.
RDB_ATTRIBUTES: tuple[tuple[str, str], ...] = (
    ("cached", "_backend"), ("cached", "_lock"), ("cached", "_studies"), ("cached", "_read_trials_from_remote_storage"),
    ("cached", "_add_trials_to_cache"), ("rdb", "engine"),
    ("info", "trials"), ("info", "unfinished_trial_ids"), ("info", "last_finished_trial_id"),
)


def resolve(module: str, attribute: str) -> Any:
    """``module.attribute`` (dotted within the module), or an ``ImportError`` naming what changed."""
    where = f"Optuna {optuna.__version__} changed (codesign/search/optuna_internals.py needs updating)"
    first, *rest = attribute.split(".")
    found = load_object(f"{module}:{first}", where=where, error=ImportError)
    for depth, part in enumerate(rest, start=1):
        if not hasattr(found, part):
            raise ImportError(f"{where}: {module}.{'.'.join([first, *rest[:depth]])} is gone")
        found = getattr(found, part)
    return found


def _required(module: str, attribute: str) -> Any:
    assert any(m == module and a == attribute for m, a, _ in REQUIRED), f"{module}.{attribute} is not declared in REQUIRED"
    return resolve(module, attribute)


# --- NSGA-II ---------------------------------------------------------------------------------
#: Trial system attribute: the trial's generation ("NSGAIISampler:generation").
GENERATION_KEY: str = _required("optuna.samplers", "NSGAIISampler._get_generation_key")()
#: Study system attribute prefix: the parents of generation ``g`` are stored under ``PREFIX + str(g)``.
PARENT_KEY_PREFIX: str = _required("optuna.samplers", "NSGAIISampler._get_parent_cache_key_prefix")()
#: ``EliteSelection(population_size=n)(study, trials)``: NSGA-II's survivors of ``trials``.
EliteSelection = _required("optuna.samplers.nsgaii._elite_population_selection_strategy", "NSGAIIElitePopulationSelectionStrategy")

# --- constraints -----------------------------------------------------------------------------
#: A trial's budgets are its system attribute ``CONSTRAINTS_KEY``: the list of their values, what
#: Optuna's samplers write (``constraints_func``) and optuna-dashboard reads. Optuna also reads named
#: ``constraints:<name>`` attributes (``Trial.set_constraint``), which the dashboard does not show.
CONSTRAINTS_KEY: str = _required("optuna.study._constrained_optimization", "_CONSTRAINTS_KEY")
_is_constrained = _required("optuna.study._constrained_optimization", "_is_constrained_optimization")


def is_constrained(trials: Sequence[FrozenTrial]) -> bool:
    """Does NSGA-II compare these trials by constrained domination (any has a constraint)?"""
    return _is_constrained(trials)


# --- studies and trials ----------------------------------------------------------------------
def study_storage(study: optuna.Study) -> tuple[optuna.storages.BaseStorage, int]:
    """The storage a study lives in and its id there."""
    return study._storage, study._study_id


def trial_id(trial: FrozenTrial) -> int:
    """The trial's id in its storage (what NSGA-II's parent cache lists)."""
    return trial._trial_id


def distribution_attributes(distribution: optuna.distributions.BaseDistribution) -> dict[str, Any]:
    """The distribution's constructor arguments (``low``, ``high``, ``step``, ``log`` or ``choices``)."""
    return _asdict(distribution)


_asdict = _required("optuna.distributions", "BaseDistribution._asdict")


def set_trial_identity(trial: FrozenTrial, trial_id: int, number: int) -> None:
    """Give a trial built by codesign its id and number in the storage that now holds it."""
    trial._trial_id = trial_id
    trial.number = number


# --- journal files ---------------------------------------------------------------------------
_JournalOperation = _required("optuna.storages.journal._storage", "JournalOperation")
#: Op codes of the journal lines the fast path writes.
OP_SET_STUDY_SYSTEM_ATTR: int = int(_JournalOperation.SET_STUDY_SYSTEM_ATTR)
OP_CREATE_TRIAL: int = int(_JournalOperation.CREATE_TRIAL)
_get_lock_file = _required("optuna.storages.journal._file", "get_lock_file")


@contextmanager
def shared_distributions() -> Iterator[None]:
    """Parse each distinct distribution JSON once while a journal file is replayed.

    Every trial line of a run repeats the same distributions; Optuna's replay parses
    them again for each trial (three quarters of the time it takes to open a journal,
    and one object per parameter per trial in memory). While this is active, equal
    JSON gives one shared, equal distribution object (Optuna never mutates them).
    """
    original = _required("optuna.storages.journal._storage", "json_to_distribution")
    journal_module = sys.modules["optuna.storages.journal._storage"]
    parsed: dict[str, Any] = {}

    def json_to_distribution(text: str):
        found = parsed.get(text)
        if found is None:
            found = parsed[text] = original(text)
        return found

    journal_module.json_to_distribution = json_to_distribution
    try:
        yield
    finally:
        journal_module.json_to_distribution = original


class JournalFile:
    """The inner state of a ``JournalStorage`` over a ``JournalFileBackend`` that appending a
    whole generation at once needs; :meth:`of` returns ``None`` for any other storage."""

    def __init__(self, storage: JournalStorage, backend: JournalFileBackend) -> None:
        self.storage, self.backend = storage, backend

    @classmethod
    def of(cls, storage: optuna.storages.BaseStorage) -> JournalFile | None:
        if type(storage) is not JournalStorage:  # a subclass may change what a write does
            return None
        backend = getattr(storage, "_backend", None)
        if type(backend) is not JournalFileBackend:
            return None
        objects = {"storage": storage, "backend": backend, "replay": getattr(storage, "_replay_result", None)}
        if not all(hasattr(objects[owner], name) for owner, name in JOURNAL_ATTRIBUTES):
            return None
        return cls(storage, backend)

    @property
    def path(self) -> str:
        return self.backend._file_path

    def thread_lock(self):
        """The storage's own lock: hold it from the write until :meth:`replayed`."""
        return self.storage._thread_lock

    @contextmanager
    def file_lock(self) -> Iterator[None]:
        """The journal file's lock, with the replay brought up to date with the file first."""
        with _get_lock_file(self.backend._lock):
            self.storage._sync_with_backend()  # whatever others appended first
            yield

    @property
    def lock(self) -> Any:
        """The backend's lock object (``acquire``/``release``)."""
        return self.backend._lock

    @property
    def worker_id(self) -> str:
        return self.storage._replay_result.worker_id

    def next_trial(self, study_id: int) -> tuple[int, int]:
        """The id and number the next trial created in ``study_id`` gets."""
        replay = self.storage._replay_result
        return len(replay._trials), len(replay._study_id_to_trial_ids[study_id])

    def replayed(self, study_id: int, before: list[dict], trials: list[FrozenTrial], after: list[dict], end: int) -> None:
        """Bring the in-memory replay up to what was just appended (the study-level lines ``before``,
        then ``trials``, then the lines ``after``, the file now ending at byte ``end``) without
        parsing the lines back. Call under :meth:`thread_lock`."""
        replay = self.storage._replay_result
        replay.apply_logs(before)
        ids = replay._study_id_to_trial_ids[study_id]
        for trial in trials:
            replay._trials[trial._trial_id] = trial
            ids.append(trial._trial_id)
            replay._trial_id_to_study_id[trial._trial_id] = study_id
        if trials:
            replay._last_created_trial_id_by_this_process = trials[-1]._trial_id
        replay.log_number_read += len(trials)
        replay.apply_logs(after)
        self.backend._log_number_offset[replay.log_number_read] = end


# --- RDB storages (SQLite, PostgreSQL, MySQL) -------------------------------------------------
_TrialModel = _required("optuna.storages._rdb.models", "TrialModel")
_value_to_stored_repr = _required("optuna.storages._rdb.models", "TrialValueModel.value_to_stored_repr")
_CachedStorage = resolve("optuna.storages._cached_storage", "_CachedStorage")
_required("optuna.storages._cached_storage", "_CachedStorage._add_trials_to_cache")


def rdb_tables() -> dict[str, Any]:
    """Optuna's RDB tables by name (``trials``, ``trial_params``, ``trial_values``, ...)."""
    return dict(_TrialModel.metadata.tables)


def stored_value(value: float) -> tuple[float | None, Any]:
    """An objective value as the ``trial_values`` table holds it: ``(value or None, value_type)``."""
    return _value_to_stored_repr(value)


class RdbStudyCache:
    """The ``_CachedStorage`` that ``optuna.storages.get_storage(url)`` wraps an ``RDBStorage`` in:
    its engine, and its per-study cache of trials; :meth:`of` returns ``None`` for any other storage."""

    def __init__(self, cached: Any) -> None:
        self.cached = cached

    @classmethod
    def of(cls, storage: optuna.storages.BaseStorage) -> RdbStudyCache | None:
        if type(storage) is not _CachedStorage:
            return None
        rdb = getattr(storage, "_backend", None)
        if not isinstance(rdb, optuna.storages.RDBStorage):
            return None
        if not all(hasattr({"cached": storage, "rdb": rdb}[owner], name) for owner, name in RDB_ATTRIBUTES if owner != "info"):
            return None
        return cls(storage)

    @property
    def engine(self) -> Any:
        return self.cached._backend.engine

    def synced_count(self, study_id: int) -> int | None:
        """Bring the cache up to the database; the number of trials it then holds, or ``None`` when
        some are unfinished (the cache cannot simply be extended)."""
        self.cached._read_trials_from_remote_storage(study_id)
        with self.cached._lock:
            info = self.cached._studies[study_id]
            return None if info.unfinished_trial_ids else len(info.trials)

    def add_finished(self, study_id: int, trials: list[FrozenTrial], held_before: int) -> None:
        """Hand just-written finished ``trials`` to the cache, if it held exactly the ``held_before``
        trials numbered before them (otherwise it reads them back from the database when asked)."""
        with self.cached._lock:
            info = self.cached._studies.get(study_id)
            if info is None or info.unfinished_trial_ids or len(info.trials) != held_before or not trials:
                return
            self.cached._add_trials_to_cache(study_id, trials)
            info.last_finished_trial_id = max(info.last_finished_trial_id, max(t._trial_id for t in trials))
