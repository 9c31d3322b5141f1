"""Wrapping any command-line simulator as an oracle.

Most in-house simulators, RTL testbenches and FPGA flows are commands: they take a layer
and a hardware configuration on the command line or in a file and print a cycle count.
:class:`CommandOracle` runs one such command per job (in parallel with ``workers``),
caches the answers on disk, and hands them to the engine like any other oracle.

The command is a list of arguments (or one string, split like a shell would, without a
shell) in which ``{placeholders}`` are replaced by the job's fields:

=====================================  =============================================================
placeholder                            value
=====================================  =============================================================
``{kind}``                             ``conv`` or ``gemm``
``{M} {N} {K}``                        GEMM rows (output pixels), columns (filters), reduction depth
``{ifmap_h} {ifmap_w} {filt_h}``       SCALE-Sim's topology fields (ifmap = padded extent; a GEMM
``{filt_w} {channels}``                is ``M, K, 1, K, 1, N, 1``)
``{num_filters} {stride}``
``{array_h} {array_w} {dataflow}``     PE rows, columns; ``ws``/``os``/``is``
``{ifmap_sram_kb}`` ...                SRAM partitions in KiB (``ifmap``, ``filter``, ``ofmap``)
``{ifmap_sram_bytes}`` ...             the same in bytes
``{bandwidth}``                        DRAM bytes per cycle
``{bandwidth_words}``                  DRAM words per cycle
``{precision_bytes}``                  bytes per word
``{job_json}``                         the whole job as one JSON object
``{workdir}``                          a fresh temporary folder for the run's files
=====================================  =============================================================

Only the names above are replaced; any other text in braces (a JSON snippet, a shell
``${VAR}``) is passed through as it is. The job's JSON is also written to the command's standard input and to
``{workdir}/job.json``. The command must exit with status 0 and print either a JSON object
with ``total_cycles`` (and optionally ``compute_cycles``, ``stall_cycles``) or a bare
number, the total cycles, as the last line of its standard output. Anything else fails
the job with the command's last line of standard error. Override :meth:`CommandOracle.parse`
for another output format.

Example — a simulator ``mysim`` with its own flags, as a plug-in module ``my_oracles.py``::

    from codesign.oracles.command import CommandOracle

    class MySim(CommandOracle):
        name = "mysim"
        version = "2.4.1"     # the simulator's version: part of the cache key

        def __init__(self, **options):
            super().__init__(
                "mysim --gemm {M}x{N}x{K} --array {array_h}x{array_w} --dataflow {dataflow} "
                "--sram-kb {ifmap_sram_kb},{filter_sram_kb},{ofmap_sram_kb} --bw {bandwidth_words} --json",
                **options,
            )

then ``codesign explore design.toml --oracle my_oracles:MySim --oracle-budget 200``
(the module must be importable: on ``PYTHONPATH``, or installed). A command's exit status,
its run time and a timeout are all handled here: each run is a process group of its own, killed
with every process the command started when it times out, on Ctrl-C and on SIGTERM (see
:mod:`codesign.oracles.process`). The default time limit grows with the job
(:func:`~codesign.oracles.process.scaled_timeout`: 60 s to 1 h); ``timeout_s`` fixes one.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import tempfile
from collections.abc import Sequence

from codesign.oracles.base import Oracle, OracleStopped
from codesign.oracles.jobs import LayerJob
from codesign.oracles.process import JobTimeout, run_job_process, scaled_timeout

PLACEHOLDER = re.compile(r"\{(\w+)\}")  # only {known_name} is replaced; other braces are left as they are


class CommandOracle(Oracle):
    """One command per job.

    Args:
        command: the command (list of arguments, or one string split with :func:`shlex.split`)
            with ``{placeholders}`` (see the module docstring).
        name, version: the oracle's name and version (both in the cache key; defaults
            ``command`` and ``0``): give the simulator's own version.
        timeout_s: seconds before a run is killed (with its children) and its job fails;
            default ``None``: :func:`~codesign.oracles.process.scaled_timeout` of the job.
        env: extra environment variables for the command.
        cache_dir, workers, retry_failed: see :class:`~codesign.oracles.base.Oracle`.
    """

    name = "command"
    version = "0"
    parallel = "threads"  # the command is its own process

    def __init__(self, command: str | Sequence[str], *, name: str | None = None, version: str | None = None,
                 timeout_s: float | None = None, env: dict | None = None, cache_dir=None, workers: int | None = None,
                 retry_failed: bool = False) -> None:
        self.command = shlex.split(command) if isinstance(command, str) else list(command)
        if not self.command:
            raise ValueError("CommandOracle: empty command")
        if name is not None:
            self.name = name
        if version is not None:
            self.version = version
        self.timeout_s = None if timeout_s is None else float(timeout_s)
        self.env = dict(env or {})
        super().__init__(cache_dir=cache_dir, workers=workers, retry_failed=retry_failed)

    def describe(self) -> dict:
        timeout = "scaled (codesign.oracles.process.scaled_timeout)" if self.timeout_s is None else self.timeout_s
        return {"name": self.name, "version": self.version, "command": self.command, "timeout_s": timeout}

    def job_timeout(self, job: LayerJob) -> float:
        return self.timeout_s if self.timeout_s is not None else scaled_timeout(job)

    @staticmethod
    def placeholders(job: LayerJob, workdir: str) -> dict:
        values = job.to_dict()
        for part in ("ifmap", "filter", "ofmap"):
            values[f"{part}_sram_kb"] = f"{values[f'{part}_sram_bytes'] / 1024:g}"
        values["bandwidth_words"] = f"{job.bandwidth / job.precision_bytes:g}"
        values["job_json"] = json.dumps(job.to_dict(), sort_keys=True)
        values["workdir"] = workdir
        return values

    def parse(self, stdout: str, workdir: str) -> dict:
        """The result from the command's standard output (last non-empty line)."""
        lines = [line for line in stdout.strip().splitlines() if line.strip()]
        if not lines:
            raise RuntimeError("no output")
        last = lines[-1].strip()
        try:
            value = json.loads(last)
        except json.JSONDecodeError:
            raise RuntimeError(f"cannot read cycles from {last[:200]!r}") from None
        if isinstance(value, (int, float)):
            return {"total_cycles": float(value)}
        if isinstance(value, dict) and "total_cycles" in value:
            return value
        raise RuntimeError(f"expected a number or an object with total_cycles, got {last[:200]!r}")

    def simulate(self, job: LayerJob) -> dict:
        with tempfile.TemporaryDirectory(prefix=f"codesign-{self.name}-") as workdir:
            values = self.placeholders(job, workdir)
            argv = [PLACEHOLDER.sub(lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0), arg) for arg in self.command]
            job_json = json.dumps(job.to_dict(), sort_keys=True)
            with open(os.path.join(workdir, "job.json"), "w") as f:
                f.write(job_json)
            limit, by_deadline = self.time_limit(job)
            try:
                done = run_job_process(argv, input=job_json, timeout_s=limit, env={**os.environ, **self.env}, cwd=workdir)
            except JobTimeout:
                if by_deadline:
                    raise OracleStopped("deadline") from None
                raise
            except OSError as error:
                raise RuntimeError(f"{self.name}: cannot run {argv[0]!r}: {error}") from None
            if done.returncode != 0:
                self.check_running()  # killed because the run was stopped: not the job's failure
                tail = (done.stderr.strip().splitlines() or ["no error output"])[-1]
                raise RuntimeError(f"{self.name}: exit status {done.returncode}: {tail}")
            return self.parse(done.stdout, workdir)
