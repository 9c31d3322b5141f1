"""Where a run's trials live: the run folder's embedded Optuna storage, or any Optuna URL.

The default storage is Optuna's journal file ``DIR/study.journal``: appending a
finished trial costs about a millisecond there against tens of milliseconds in its
SQLite storage (``scripts/bench_storage.py`` measures both), and optuna-dashboard
opens it directly (``optuna-dashboard DIR/study.journal``). ``--storage URL`` takes
any Optuna storage URL instead (``sqlite:///...``, ``postgresql://...`` for many
workers).
"""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from codesign.errors import UserError

STUDY_NAME = "codesign"
JOURNAL_FILE = "study.journal"


def open_storage(out: Path, url: str | None) -> tuple[optuna.storages.BaseStorage, str]:
    """The storage of a run and a description of it (its URL or file)."""
    if url is None:
        path = out / JOURNAL_FILE
        return JournalStorage(JournalFileBackend(str(path))), str(path)
    try:
        return optuna.storages.get_storage(url), url
    except Exception as error:  # bad scheme, missing driver, unreachable server
        raise UserError(f"--storage {url!r}: cannot open this Optuna storage: {type(error).__name__}: {error}") from None


def load_or_create_study(storage: optuna.storages.BaseStorage, directions: list[str], study_name: str = STUDY_NAME) -> optuna.Study:
    """The run's study, created on first use; its directions must match the objectives."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=storage, study_name=study_name, directions=directions, load_if_exists=True)
    found = [d.name.lower() for d in study.directions]
    if found != directions:
        raise UserError(
            f"study {study_name!r} in this storage has {len(found)} objective(s) {found}; the design asks for {directions}: use another --out or --storage"
        )
    return study
