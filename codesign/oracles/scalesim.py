"""SCALE-Sim (Samajdar et al., ISPASS 2020; PyPI ``scalesim``) as an oracle.

Each job (one GEMM of a layer on one array) is one SCALE-Sim run through its Python API
(``scalesim(save_disk_space=True, verbose=False, ...).run_scale(...)``), in its own
process: SCALE-Sim 3.0.0 needs ``numpy<2.3`` and leaks memory across runs, so it lives in
a separate interpreter. Results are cached on disk by job (see
:class:`~codesign.oracles.base.Oracle`); ``workers`` runs go at once.

Setting it up (SCALE-Sim is an optional dependency, in its own virtual environment)::

    python3 -m venv ~/scalesim-venv
    ~/scalesim-venv/bin/pip install scalesim==3.0.0 "numpy<2.3"
    export CODESIGN_SCALESIM_PYTHON=~/scalesim-venv/bin/python

(or install it in the project's environment if its numpy is older than 2.3).

How a job becomes a SCALE-Sim run (the configuration of the 114 reference rows in
``tests/data/scalesim_3.0.0_reference.csv``):

* topology: a convolution in SCALE-Sim's conv form (ifmap as its padded extent, one
  group's channels and filters), anything else in GEMM form (``-i gemm``);
* SRAM sizes in kB of words: each partition's bytes / 1024 / word size, rounded to an
  integer ≥ 1 (SCALE-Sim reads integers), word size = the operand precision;
* ``InterfaceBandwidth: USER`` with the DRAM bandwidth in words per cycle, rounded to an
  integer ≥ 1, set for the ifmap, filter and ofmap interfaces alike (in 3.0.0 the first
  two come from ``[layout] *SRAMBankBandwidth``); an unlimited bandwidth is ``CALC`` mode;
* the oracle's answer is SCALE-Sim's ``Total Cycles`` (compute + stalls, without the
  initial prefetch) and ``Stall Cycles``.

The job is rounded before its cache key is taken (:meth:`ScaleSimOracle.prepare`), so two
designs whose SRAM differs by less than a kB share one run.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from codesign.errors import UserError
from codesign.oracles.base import Oracle, OracleStopped
from codesign.oracles.jobs import UNLIMITED_BANDWIDTH, LayerJob
from codesign.oracles.process import JobTimeout, run_job_process, scaled_timeout

PYTHON_ENV = "CODESIGN_SCALESIM_PYTHON"
CONFIG_VERSION = "cfg1"  # bump when the configuration below changes: it is part of the cache key

_CONFIG = """[general]
run_name = {run_name}

[architecture_presets]
ArrayHeight:    {ah}
ArrayWidth:     {aw}
IfmapSramSzkB:   {isz}
FilterSramSzkB:  {fsz}
OfmapSramSzkB:   {osz}
IfmapOffset:    0
FilterOffset:   10000000
OfmapOffset:    20000000
Bandwidth : {bw}
Dataflow : {df}
MemoryBanks:   1
ReadRequestBuffer: 32
WriteRequestBuffer: 32

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: {bw}
IfmapSRAMBankNum: 1
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: {bw}
FilterSRAMBankNum: 1
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40

[run_presets]
InterfaceBandwidth: {bwmode}
UseRamulatorTrace: False
"""

LAYOUT = (
    "Layer name, IFMAP Height Intraline Factor, IFMAP Width Intraline Factor, Filter Height Intraline Factor, "
    "Filter Width Intraline Factor, Channel Intraline Factor, Num Filter Intraline Factor, IFMAP Height Intraline Order, "
    "IFMAP Width Intraline Order, Channel Intraline Order, IFMAP Height Interline Order, IFMAP Width Interline Order, "
    "Channel Interline Order, Num Filter Intraline Order, Channel Intraline Order, Filter Height Intraline Order, "
    "Filter Width Intraline Order, Num Filter Interline Order, Channel Interline Order, Filter Height Interline Order, "
    "Filter Width Interline Order,\n"
    "dummy, 1, 1, 1, 1, 1, 1,     0, 1, 2,     4, 5, 3,     3, 2, 1, 0,     4, 5, 6, 7,\n"
)


def config_text(*, array_h: int, array_w: int, dataflow: str, ifmap_kb: int, filter_kb: int, ofmap_kb: int,
                bandwidth: int, mode: str = "USER", run_name: str = "run") -> str:
    """SCALE-Sim's ``.cfg`` for one array: SRAM sizes in kB of words, the DRAM bandwidth in words
    per cycle (also each SRAM bank's), ``mode`` ``USER`` (that bandwidth) or ``CALC`` (no DRAM bound).
    The one template of the project: the oracle and ``scripts/validate_scalesim.py`` both write it."""
    return _CONFIG.format(run_name=run_name, ah=array_h, aw=array_w, isz=ifmap_kb, fsz=filter_kb, osz=ofmap_kb,
                          bw=bandwidth, df=dataflow, bwmode=mode)


def gemm_topology(name: str, M: int, N: int, K: int) -> str:
    """A one-layer SCALE-Sim topology in GEMM form."""
    return f"Layer, M, N, K,\n{name}, {M}, {N}, {K},\n"


def conv_topology(name: str, *, ifmap_h: int, ifmap_w: int, filt_h: int, filt_w: int, channels: int, num_filters: int,
                  stride: int) -> str:
    """A one-layer SCALE-Sim topology in convolution form (ifmap = padded extent)."""
    return ("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n"
            f"{name}, {ifmap_h}, {ifmap_w}, {filt_h}, {filt_w}, {channels}, {num_filters}, {stride},\n")

#: Runs in the SCALE-Sim interpreter (stdlib + scalesim only): argv[1] = a folder holding
#: run.cfg, topo.csv, layout.csv and job.json; writes result.json there.
WORKER = r"""
import json, os, sys, time, contextlib, io
folder = sys.argv[1]
job = json.load(open(os.path.join(folder, "job.json")))
from scalesim.scale_sim import scalesim
t0 = time.process_time()
with contextlib.redirect_stdout(io.StringIO()):
    sim = scalesim(save_disk_space=True, verbose=False, config=os.path.join(folder, "run.cfg"),
                   topology=os.path.join(folder, "topo.csv"), layout=os.path.join(folder, "layout.csv"),
                   input_type_gemm=job["kind"] == "gemm")
    sim.run_scale(top_path=os.path.join(folder, "out"))
lines = [l for l in open(os.path.join(folder, "out", "run", "COMPUTE_REPORT.csv")).read().splitlines() if l.strip()]
values = [float(x) for x in lines[1].split(",")[1:] if x.strip()]
json.dump({"total_cycles": values[1], "stall_cycles": values[2], "compute_cycles": values[1] - values[2],
           "total_cycles_incl_prefetch": values[0], "cpu_s": time.process_time() - t0},
          open(os.path.join(folder, "result.json"), "w"))
"""

INSTALL_HINT = (
    "install it in its own virtual environment (SCALE-Sim 3.0.0 needs numpy<2.3): "
    "python3 -m venv ~/scalesim-venv && ~/scalesim-venv/bin/pip install scalesim==3.0.0 'numpy<2.3', "
    f"then set {PYTHON_ENV}=~/scalesim-venv/bin/python"
)


def find_python(python: str | None = None) -> tuple[str, str]:
    """``(interpreter, scalesim version)`` of an interpreter that can import SCALE-Sim, or UserError."""
    candidates = [python] if python else []
    if os.environ.get(PYTHON_ENV):
        candidates.append(os.environ[PYTHON_ENV])
    if importlib.util.find_spec("scalesim") is not None:
        candidates.append(sys.executable)
    if not candidates:
        raise UserError(f"oracle scalesim: SCALE-Sim is not installed; {INSTALL_HINT}")
    errors = []
    for exe in candidates:
        exe = os.path.expanduser(exe)
        try:
            probe = subprocess.run(
                [exe, "-c", "import importlib.metadata as m, scalesim.scale_sim; print(m.version('scalesim'))"],
                capture_output=True, text=True, timeout=120,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            errors.append(f"{exe}: {error}")
            continue
        if probe.returncode == 0:
            return exe, probe.stdout.strip().splitlines()[-1]
        errors.append(f"{exe}: {(probe.stderr.strip().splitlines() or ['import failed'])[-1]}")
    raise UserError(f"oracle scalesim: cannot import SCALE-Sim ({'; '.join(errors)}); {INSTALL_HINT}")


class ScaleSimOracle(Oracle):
    """SCALE-Sim, one job per run in a separate interpreter.

    Args:
        python: interpreter with SCALE-Sim (default ``$CODESIGN_SCALESIM_PYTHON``, else this
            one if it can import ``scalesim``).
        timeout_s: give up on one run after this many seconds (the job fails; the run's process
            group is killed); default ``None``: :func:`~codesign.oracles.process.scaled_timeout`
            of the job (60 s to 1 h, growing with the trace SCALE-Sim generates).
        cache_dir, workers, retry_failed: see :class:`~codesign.oracles.base.Oracle` (default: the
            on-disk cache; one run at a time; cached failures are not run again).
    """

    name = "scalesim"
    parallel = "threads"  # each job is its own process; threads only wait on them

    def __init__(self, *, python: str | None = None, timeout_s: float | None = None, cache_dir=None,
                 workers: int | None = None, retry_failed: bool = False) -> None:
        self.python, self.scalesim_version = find_python(python)
        self.version = f"{self.scalesim_version}-{CONFIG_VERSION}"
        self.timeout_s = None if timeout_s is None else float(timeout_s)
        super().__init__(cache_dir=cache_dir, workers=workers, retry_failed=retry_failed)

    def describe(self) -> dict:
        timeout = "scaled (codesign.oracles.process.scaled_timeout)" if self.timeout_s is None else self.timeout_s
        return {"name": self.name, "version": self.version, "scalesim": self.scalesim_version, "python": self.python,
                "timeout_s": timeout}

    def job_timeout(self, job: LayerJob) -> float:
        return self.timeout_s if self.timeout_s is not None else scaled_timeout(job)

    @staticmethod
    def settings(job: LayerJob) -> dict:
        """SCALE-Sim's integer settings for a job: kB of words per SRAM, words per cycle, mode."""
        p = job.precision_bytes
        kb = lambda b: max(1, round(b / 1024.0 / p))  # noqa: E731
        calc = job.bandwidth >= UNLIMITED_BANDWIDTH / 10
        return {
            "isz": kb(job.ifmap_sram_bytes), "fsz": kb(job.filter_sram_bytes), "osz": kb(job.ofmap_sram_bytes),
            "bw": 10 if calc else max(1, round(job.bandwidth / p)), "bwmode": "CALC" if calc else "USER",
        }

    def prepare(self, job: LayerJob) -> LayerJob:
        s, p = self.settings(job), job.precision_bytes
        return dataclasses.replace(
            job, ifmap_sram_bytes=float(s["isz"] * 1024 * p), filter_sram_bytes=float(s["fsz"] * 1024 * p),
            ofmap_sram_bytes=float(s["osz"] * 1024 * p),
            bandwidth=UNLIMITED_BANDWIDTH if s["bwmode"] == "CALC" else float(s["bw"] * p),
        )

    def simulate(self, job: LayerJob) -> dict:
        s = self.settings(job)
        with tempfile.TemporaryDirectory(prefix="codesign-scalesim-") as tmp:
            folder = Path(tmp)
            (folder / "run.cfg").write_text(config_text(array_h=job.array_h, array_w=job.array_w, dataflow=job.dataflow,
                                                        ifmap_kb=s["isz"], filter_kb=s["fsz"], ofmap_kb=s["osz"],
                                                        bandwidth=s["bw"], mode=s["bwmode"]))
            (folder / "layout.csv").write_text(LAYOUT)
            if job.kind == "gemm":
                topo = gemm_topology("job", job.M, job.N, job.K)
            else:
                topo = conv_topology("job", ifmap_h=job.ifmap_h, ifmap_w=job.ifmap_w, filt_h=job.filt_h, filt_w=job.filt_w,
                                     channels=job.channels, num_filters=job.num_filters, stride=job.stride)
            (folder / "topo.csv").write_text(topo)
            (folder / "job.json").write_text(json.dumps(job.to_dict()))
            limit, by_deadline = self.time_limit(job)
            try:
                done = run_job_process([self.python, "-c", WORKER, str(folder)], input=None, timeout_s=limit)
            except JobTimeout:
                if by_deadline:
                    raise OracleStopped("deadline") from None
                raise
            if done.returncode != 0 or not (folder / "result.json").exists():
                self.check_running()  # killed because the run was stopped: not the job's failure
                tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
                raise RuntimeError(f"SCALE-Sim failed on {job.canonical()}: {tail}")
            return json.loads((folder / "result.json").read_text())
