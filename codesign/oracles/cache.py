"""The on-disk cache of oracle results: one SQLite file per oracle name and version, keyed by job.

A result is stored under its job's key (the SHA-256 of the job's canonical JSON, see
:meth:`~codesign.oracles.jobs.LayerJob.key`), with the job itself, so that a surrogate can be
trained from an oracle's history (:meth:`OracleCache.items`).

A failed job is stored too, as ``{"failed": reason, "timeout_s": ..., "wall_s": ...}``, so that
it is not run again each time a design needs it (see :class:`~codesign.oracles.base.Oracle`'s
``retry_failed``); :meth:`OracleCache.items` leaves failures out, :meth:`OracleCache.failures`
lists them.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from codesign.oracles.jobs import LayerJob

CACHE_ENV = "CODESIGN_ORACLE_CACHE"  # folder of the oracle caches (default ~/.cache/codesign/oracles)
FAILED = "failed"  # the key of a failure's reason in a cached entry


class OracleCache:
    """Results by job key in one SQLite file (or in memory when ``path`` is None).

    Only the process that owns the oracle reads and writes it (workers return results),
    so there is one writer; SQLite's locking also makes concurrent runs sharing a cache
    folder safe.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._memory: dict[str, dict] = {}
        self._lock = threading.Lock()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                db.execute("CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, job TEXT NOT NULL, result TEXT NOT NULL, created REAL NOT NULL)")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=60.0)

    def get_many(self, keys: Sequence[str]) -> dict[str, dict]:
        found = {k: self._memory[k] for k in keys if k in self._memory}
        missing = [k for k in keys if k not in found]
        if self.path is not None and missing:
            with self._lock, self._connect() as db:
                for start in range(0, len(missing), 500):
                    chunk = missing[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    for key, result in db.execute(f"SELECT key, result FROM results WHERE key IN ({marks})", chunk):
                        found[key] = self._memory[key] = json.loads(result)
        return found

    def put_many(self, entries: Sequence[tuple[str, LayerJob, dict]]) -> None:
        for key, _, result in entries:
            self._memory[key] = result
        if self.path is not None and entries:
            now = time.time()
            with self._lock, self._connect() as db:
                db.executemany(
                    "INSERT OR REPLACE INTO results (key, job, result, created) VALUES (?, ?, ?, ?)",
                    [(key, job.canonical(), json.dumps(result), now) for key, job, result in entries],
                )

    def _entries(self) -> list[tuple[LayerJob, dict]]:
        if self.path is None:
            raise ValueError("an in-memory cache keeps no jobs")
        with self._lock, self._connect() as db:
            rows = db.execute("SELECT job, result FROM results ORDER BY created").fetchall()
        return [(LayerJob.from_dict(json.loads(j)), json.loads(r)) for j, r in rows]

    def items(self) -> list[tuple[LayerJob, dict]]:
        """Every cached (job, result) that succeeded, for training a surrogate from an oracle's history."""
        return [(job, result) for job, result in self._entries() if FAILED not in result]

    def failures(self) -> list[tuple[LayerJob, str]]:
        """Every cached failed job and its reason."""
        return [(job, result[FAILED]) for job, result in self._entries() if FAILED in result]


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "codesign" / "oracles")
