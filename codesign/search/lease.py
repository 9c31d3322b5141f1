"""One coordinator per study: a second ``codesign explore`` on a study that one is running on is refused.

Each coordinator runs its own NSGA-II, with its own population, random streams and budget count;
two on one study would double the budget, evaluate designs twice and interleave two lineages.
So the first to start holds a *lease* on the study until it ends, and a second one stops at once
(exit code 2) naming the running one (host, process id, start time, run folder, from the study's
``codesign:coordinator`` system attribute) and pointing to the way to go faster: more workers
for the one coordinator (``--cluster``).

The lease is a lock its holder's death releases, whatever kills it:

* PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) on a connection the
  coordinator holds open; the server releases it when that connection ends;
* SQLite: ``flock`` on ``<database>.coordinator`` beside the database file;
* the run folder's journal file: ``flock`` on the run folder itself.

Another kind of storage (MySQL, an in-memory one) has no lease: one coordinator at a time is
then the user's to ensure.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import zlib
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import optuna

from codesign.errors import ArgumentError
from codesign.search.optuna_internals import RdbStudyCache, study_storage

OWNER_KEY = "codesign:coordinator"  # study system attribute: who holds the lease
_PG_CLASS = 0x636F6465  # advisory lock class id ("code"): the object id is the study's name, hashed


def owner_record(out: Path) -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "run_folder": str(Path(out).resolve()),
            "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def describe_owner(owner: dict | None) -> str:
    if not owner:
        return "another coordinator"
    return (f"the coordinator started {owner.get('since', '?')} by process {owner.get('pid', '?')} on {owner.get('host', '?')} "
            f"(run folder {owner.get('run_folder', '?')})")


def _refusal(argument: str, value: str, owner: dict | None) -> ArgumentError:
    return ArgumentError(
        argument, value,
        f"{describe_owner(owner)} is running on this study; one coordinator per study (each runs its own NSGA-II and budget): "
        "wait for it to finish and run the same command to resume, or give that one more workers with {cluster}",
        related={"cluster": "cluster"},
    )


def _flock(path: str, directory: bool = False) -> int | None:
    """A file descriptor holding an exclusive ``flock`` on ``path``, or ``None`` when another holds it."""
    fd = os.open(path, (os.O_RDONLY if directory else os.O_RDWR | os.O_CREAT) | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        os.close(fd)
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return None
        raise
    return fd


def _owner(study: optuna.Study) -> dict | None:
    storage, study_id = study_storage(study)
    found = storage.get_study_system_attrs(study_id).get(OWNER_KEY)
    return found if isinstance(found, dict) else None


class Lease:
    """A held lease; :meth:`release` (or the holder's death) ends it."""

    def __init__(self, release) -> None:
        self._release = release

    def release(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()


def acquire(study: optuna.Study, *, out: Path, url: str | None) -> Lease:
    """The study's lease for this process, or :class:`~codesign.errors.ArgumentError` (on ``storage``,
    or ``out`` for the run folder's journal) naming the coordinator that holds it."""
    storage, study_id = study_storage(study)
    cache = RdbStudyCache.of(storage)
    argument, value = ("storage", url) if url is not None else ("out", str(out))
    if cache is not None and cache.engine.dialect.name == "postgresql":
        release = _postgres(cache.engine, study.study_name)
    elif cache is not None and cache.engine.dialect.name == "sqlite" and cache.engine.url.database not in (None, "", ":memory:"):
        release = _file(cache.engine.url.database + ".coordinator")
    elif url is None:
        release = _file(str(out), directory=True)
    else:
        return Lease(None)
    if release is None:
        raise _refusal(argument, value, _owner(study))
    try:
        storage.set_study_system_attr(study_id, OWNER_KEY, owner_record(out))
    except BaseException:
        release()
        raise
    return Lease(release)


def _file(path: str, directory: bool = False):
    fd = _flock(path, directory)
    return None if fd is None else (lambda: os.close(fd))


def _postgres(engine, study_name: str):
    import sqlalchemy as sa

    key = zlib.crc32(study_name.encode()) - (1 << 31)  # a signed 32-bit object id
    conn = engine.connect()
    try:
        got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:c, :k)"), {"c": _PG_CLASS, "k": key}).scalar_one()
        conn.commit()
    except BaseException:
        conn.close()
        raise
    if not got:
        conn.close()
        return None

    def release() -> None:  # the connection itself is closed, not pooled: the server drops its locks with it
        conn.invalidate()
        conn.close()

    return release


@contextmanager
def held(study: optuna.Study, *, out: Path, url: str | None) -> Iterator[Lease]:
    lease = acquire(study, out=out, url=url)
    try:
        yield lease
    finally:
        lease.release()
