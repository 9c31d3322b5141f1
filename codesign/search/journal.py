"""The journal file's crash safety: its lock, and the repair of a write cut short.

A kill (or a full disk) during an append can leave ``study.journal`` ending mid-line, or
a generation block (:class:`~codesign.search.storage.TrialWriter` frames each between two
``codesign:block`` lines, ``begin`` and ``end``) without its end. Optuna skips a torn
*last* line when it reads, but the next append would glue onto it and make the file
unreadable for good. :class:`JournalLock` is the lock every append takes (Optuna's own
appends too: it is the backend's ``lock_obj``); on acquiring it, it cuts such a tail back
to the last whole record (:func:`repair_tail`). A block is all or nothing: its complete
lines go with its torn end, so no generation is ever half stored.

The lock is ``flock`` on the journal file itself: the kernel releases it when its owner
dies, whatever the signal, and it moves with the file. For plain Optuna processes writing
the same file, it also holds Optuna's own lock file ``study.journal.lock`` (a symlink to
``./study.journal``, which still resolves after the folder is moved); one of ours left by a
killed process is removed at once (whoever holds the ``flock`` knows its maker is gone),
one of Optuna's after Optuna's own grace period.

:func:`repair_journal` (``codesign repair``) also salvages damaged lines in the middle (a
partial line a previous version glued the next block onto) and reports what it dropped.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

#: The study system attribute framing a generation block: ``begin`` before it, ``end`` after it.
BLOCK_KEY = "codesign:block"
LOCK_SUFFIX = ".lock"  # Optuna's lock file name (JournalFileSymlinkLock, JournalFileOpenLock)
GRACE_S = 30.0  # Optuna's grace period for a lock file of its own
SCAN_LIMIT = 256 << 20  # bytes a torn-tail check reads back at most (a block is far smaller)
_TRIAL = b'{"op_code":4,'
_BODY = (b'{"op_code":3,', _TRIAL)  # the lines a block holds: study system attributes and trials
_MARK = b'"system_attr":{"' + BLOCK_KEY.encode() + b'":'
log = logging.getLogger(__name__)


@dataclass
class TailRepair:
    """What cutting a journal's torn tail dropped."""

    path: str
    dropped_bytes: int = 0
    block_lines: int = 0  # complete lines of a generation block that lost its end
    trial_lines: int = 0  # of which trials
    partial_line: bytes = b""  # the line cut mid-way (its first bytes)

    def __bool__(self) -> bool:
        return self.dropped_bytes > 0

    def describe(self) -> str:
        if not self:
            return "ends on a whole record"
        parts = []
        if self.block_lines:
            parts.append(f"a generation block without its end ({self.block_lines} whole line(s), {self.trial_lines} of them trials)")
        if self.partial_line:
            what = "a trial line" if self.partial_line.startswith(_TRIAL) else "a line"
            parts.append(f"{what} cut mid-way")
        return f"dropped {self.dropped_bytes:,} bytes at the end: {'; '.join(parts)}"


def _lines_backward(fd: int, end: int, floor: int) -> Iterator[tuple[int, bytes]]:
    """The lines between bytes ``floor`` and ``end``, last first, as (offset, bytes); the last may
    lack its newline, and the first starts at ``floor`` (mid-line, unless ``floor`` is a line start)."""
    buf, pos, stop = b"", end, 0  # buf holds bytes [pos, pos + len(buf)); buf[:stop] is not yet yielded
    step = 2048
    while True:
        cut = buf.rfind(b"\n", 0, stop - 1) if stop > 1 else -1
        if cut >= 0:
            yield pos + cut + 1, buf[cut + 1 : stop]
            stop = cut + 1
            continue
        if pos <= floor:
            if stop:
                yield pos, buf[:stop]
            return
        step = min(pos - floor, max(step * 2, stop))
        pos -= step
        buf = os.pread(fd, step, pos) + buf[:stop]
        stop = len(buf)


def _block_mark(line: bytes) -> str | None:
    if _MARK not in line:
        return None
    try:
        record = json.loads(line)
    except ValueError:
        return None
    attr = record.get("system_attr") if record.get("op_code") == 3 else None
    return attr.get(BLOCK_KEY) if isinstance(attr, dict) and len(attr) == 1 else None


def _repair_tail_fd(fd: int, path: str, floor: int | None = None) -> TailRepair:
    """Cut the tail after the last whole record; ``floor``: an offset where the file is known to
    have ended on one (the check reads back no further than that, or :data:`SCAN_LIMIT`)."""
    size = os.fstat(fd).st_size
    found = TailRepair(path)
    cut, partial, body = None, None, []
    floor = max(0, size - SCAN_LIMIT) if floor is None or floor > size else floor
    for start, line in _lines_backward(fd, size, floor):
        if not line.endswith(b"\n"):
            partial = (start, line)
            continue
        mark = _block_mark(line)
        if mark == "end" or not line.startswith(_BODY):
            break  # a whole block ends here, or a line no block holds: no block is open after it
        if mark == "begin":
            cut = start
            break
        body.append(line)
    if cut is None:
        if partial is None:
            return found
        cut, body = partial[0], []
    found.dropped_bytes = size - cut
    found.block_lines = len(body)
    found.trial_lines = sum(line.startswith(_TRIAL) for line in body)
    found.partial_line = partial[1][:64] if partial else b""
    os.ftruncate(fd, cut)
    os.fsync(fd)
    log.warning("%s: %s", path, found.describe())
    return found


def repair_tail(path: str | Path) -> TailRepair:
    """Cut the journal's torn tail, if any (the caller holds the journal's lock)."""
    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    try:
        return _repair_tail_fd(fd, str(path))
    finally:
        os.close(fd)


class JournalLock:
    """The lock of a journal file's appends (Optuna's ``lock_obj`` interface: ``acquire``/``release``).

    Acquiring it waits only for a live holder, never for a dead one, and leaves the file
    ending on a whole record (:attr:`last_repair` says what was cut).
    """

    def __init__(self, path: str, grace_s: float = GRACE_S) -> None:
        self.path, self.link, self.grace_s = path, path + LOCK_SUFFIX, grace_s
        self.mark = "./" + os.path.basename(path)
        self._fd: int | None = None
        self._linked = False  # we made the lock file and have not removed it yet
        self._known: tuple[int, int, int] | None = None  # (device, inode, size) when it last ended on a whole record
        self.last_repair = TailRepair(path)

    def acquire(self) -> bool:
        fd = self._flock()
        try:
            self._take_link()
            st = os.fstat(fd)
            known = self._known
            floor = known[2] if known is not None and known[:2] == (st.st_dev, st.st_ino) else None
            self.last_repair = _repair_tail_fd(fd, self.path, floor)
            self._known = (st.st_dev, st.st_ino, st.st_size - self.last_repair.dropped_bytes)
        except BaseException:
            self._drop_own_link()
            os.close(fd)
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        self._drop_own_link()
        if fd is not None:
            os.close(fd)  # releases the flock

    def _flock(self) -> int:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                here, now = os.fstat(fd), os.stat(self.path)
            except FileNotFoundError:  # renamed away meanwhile
                os.close(fd)
                continue
            except BaseException:
                os.close(fd)
                raise
            if (here.st_dev, here.st_ino) == (now.st_dev, now.st_ino):
                return fd
            os.close(fd)  # replaced while we waited (codesign repair rewrote it): lock the new file

    def _take_link(self) -> None:
        """Optuna's lock file, for plain Optuna writers of the same journal."""
        sleep = 0.001
        while True:
            try:
                os.symlink(self.mark, self.link)
                self._linked = True
                return
            except FileExistsError:
                pass
            try:
                target = os.readlink(self.link)
            except FileNotFoundError:
                continue
            except OSError as error:  # a regular file: JournalFileOpenLock
                if error.errno != errno.EINVAL:
                    raise
                target = None
            if target == self.mark:  # ours, and we hold the flock its maker held: that process is gone
                self._drop_link()
                continue
            try:
                age = time.time() - os.lstat(self.link).st_mtime
            except FileNotFoundError:
                continue
            if age > self.grace_s:  # Optuna's, held past its grace period: Optuna would take it too
                log.warning("%s: removing a lock file %.0f s old", self.link, age)
                self._drop_link()
                continue
            time.sleep(sleep)
            sleep = min(sleep * 2, 0.1)

    def _drop_link(self) -> None:
        try:
            os.unlink(self.link)
        except FileNotFoundError:
            pass

    def _drop_own_link(self) -> None:
        if self._linked:
            self._linked = False
            self._drop_link()


# --- codesign repair ---------------------------------------------------------------------------
@dataclass
class JournalRepair:
    """What :func:`repair_journal` did."""

    path: str
    tail: TailRepair
    lines: int = 0  # whole records kept
    salvaged: list[tuple[int, int]] = field(default_factory=list)  # (line number, bytes dropped before it)
    dropped: list[tuple[int, int]] = field(default_factory=list)  # (line number, bytes) of lines dropped whole

    @property
    def changed(self) -> bool:
        return bool(self.tail or self.salvaged or self.dropped)

    def describe(self) -> str:
        parts = [f"{self.path}: {self.lines:,} records"]
        if self.tail:
            parts.append(self.tail.describe())
        for number, n in self.salvaged:
            parts.append(f"line {number}: dropped {n:,} bytes of a cut-off record glued before a whole one (kept)")
        for number, n in self.dropped:
            parts.append(f"line {number}: dropped {n:,} unreadable bytes")
        if not self.changed:
            parts.append("intact, nothing dropped")
        return "; ".join(parts)


def _salvage(line: bytes) -> tuple[bytes | None, int]:
    """A damaged line's whole record (a torn record with a whole one glued on), and the bytes before it."""
    start = line.find(b'{"op_code":', 1)
    while start > 0:
        try:
            json.loads(line[start:])
            return line[start:], start
        except ValueError:
            start = line.find(b'{"op_code":', start + 1)
    return None, len(line)


def repair_journal(path: str | Path) -> JournalRepair:
    """Make a journal readable again, under its lock: cut a torn tail; salvage or drop damaged
    lines in the middle (rewriting the file through a temporary file renamed into place)."""
    path = str(path)
    lock = JournalLock(path)
    lock.acquire()
    try:
        folder, name = os.path.split(os.path.abspath(path))
        for left in os.listdir(folder):  # a repair killed midway (only a repair, holding the lock, writes these)
            if left.startswith(name + ".repair.") and left.endswith(".tmp"):
                os.unlink(os.path.join(folder, left))
        result = JournalRepair(path, lock.last_repair)
        damaged = False
        with open(path, "rb") as f:
            for line in f:
                try:
                    json.loads(line)
                except ValueError:
                    damaged = True
                    break
                result.lines += 1
        if damaged:
            result.lines = 0
            _rewrite(path, result)
    finally:
        lock.release()
    return result


def _rewrite(path: str, result: JournalRepair) -> None:
    tmp = f"{path}.repair.{os.getpid()}.tmp"
    try:
        with open(path, "rb") as src, open(tmp, "wb") as dst:
            for number, line in enumerate(src, start=1):
                try:
                    json.loads(line)
                    kept = line
                except ValueError:
                    kept, cut = _salvage(line)
                    (result.salvaged if kept is not None else result.dropped).append((number, cut))
                if kept is not None:
                    dst.write(kept)
                    result.lines += 1
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    folder = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
