"""Real servers on 127.0.0.1 for the cluster tests, started as a user starts them: a PostgreSQL server
(``initdb`` into a temporary folder, ``pg_ctl start`` on a free port) and a Dask cluster (``dask scheduler``
and ``dask worker`` processes). Each is stopped after its tests.

``initdb`` is looked for on ``PATH``, in ``/usr/local/bin`` and in ``/usr/lib/postgresql/*/bin`` (where
Debian's ``postgresql`` package puts it; ``.ci/run`` installs that package where it is missing). PostgreSQL
refuses to run as root, so as root the server runs as the ``postgres`` user (or ``nobody``).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_initdb() -> str | None:
    """The folder holding PostgreSQL's ``initdb``, ``pg_ctl`` and ``postgres``, or ``None``."""
    found = shutil.which("initdb")
    candidates = ([found] if found else []) + ["/usr/local/bin/initdb"] + sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    for path in candidates:
        if os.access(path, os.X_OK) and os.access(os.path.join(os.path.dirname(path), "pg_ctl"), os.X_OK):
            return os.path.dirname(path)
    return None


class Postgres:
    """A PostgreSQL server of its own in a temporary folder, on a free port of 127.0.0.1 (trust auth)."""

    def __init__(self, bindir: str) -> None:
        self.bindir, self.port = bindir, free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="codesign-pg-"))
        self.data = self.folder / "data"
        self.user: str | None = None
        if os.geteuid() == 0:  # initdb and postgres refuse root
            self.user = next((u for u in ("postgres", "nobody") if _user_exists(u)), None)
            entry = pwd.getpwnam(self.user)
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
        options = f"-h 127.0.0.1 -p {self.port} -k {self.folder} -F -c fsync=off -c max_connections=60"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.folder / "log"), "-w", "-t", "60", "start")
        self._databases = 0

    def _run(self, tool: str, *args: str) -> None:
        command = [os.path.join(self.bindir, tool), *args]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=self.folder)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stdout[-2000:]} {done.stderr[-2000:]}")

    def new_database(self) -> str:
        """A fresh, empty database; its SQLAlchemy URL (what ``--storage`` takes)."""
        import psycopg

        self._databases += 1
        name = f"t{self._databases}_{os.getpid()}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


class DaskCluster:
    """``dask scheduler`` and ``n`` × ``dask worker tcp://…`` (one thread each), as a user types them."""

    def __init__(self, n_workers: int = 2, *, threads: int = 1) -> None:
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.dask = str(Path(sys.executable).parent / "dask")
        self.env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
        self.threads = threads
        self.scheduler = self._start("scheduler", "--host", "127.0.0.1", "--port", str(self.port), "--no-dashboard")
        self.workers = [self.add_worker() for _ in range(n_workers)]
        self.wait_for(n_workers)

    def _start(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([self.dask, *args], cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)

    def add_worker(self) -> subprocess.Popen:
        return self._start("worker", self.address, "--nthreads", str(self.threads), "--nworkers", "1", "--no-dashboard",
                           "--host", "127.0.0.1", "--death-timeout", "60")

    def client(self):
        from distributed import Client

        return Client(self.address, timeout=60)

    def wait_for(self, n: int, timeout: float = 120.0) -> None:
        with self.client() as client:
            client.wait_for_workers(n, timeout=timeout)

    def stop(self) -> None:
        for proc in [*self.workers, self.scheduler]:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in [*self.workers, self.scheduler]:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
