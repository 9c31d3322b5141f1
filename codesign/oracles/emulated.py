"""A slow oracle that is cheap to emulate: a deterministic, structurally different cycle model.

SCALE-Sim takes seconds to minutes per layer, so tests and benchmarks of the surrogate
loop cannot call it thousands of times. :class:`EmulatedOracle` stands in for it: a
per-layer cycle model that disagrees with the analytical one the way a real simulator
does — not by a constant factor, but in structure — and that can be made as slow as
wanted (``sleep_s`` per layer) so that the loop's claims (verified-front hypervolume for
an oracle budget, front survival) can be measured without SCALE-Sim.

Where it differs from :mod:`codesign.model.systolic` / the analytical model:

* **compute**: SCALE-Sim's folds × cycles per fold plus a 16-cycle bubble between folds
  (control and drain handshakes), so many small folds cost more than the closed form;
* **ifmap footprint**: a convolution only fetches the input pixels its windows touch
  (a strided 1×1 conv reads a quarter of its padded ifmap);
* **reuse**: a streamed operand that overflows its SRAM partition is refetched in
  proportion to the part that does not fit (LRU-like: ``(size − cap/2) / size`` of it
  per extra fold), not all-or-nothing; partial sums spill likewise;
* **overlap**: double buffering hides only half of the shorter of compute and memory,
  and the first tile's fetch is never hidden.

It is deterministic (a pure function of the job), so its results are cached like a
real oracle's.
"""

from __future__ import annotations

import math
import time

from codesign.oracles.base import Oracle
from codesign.oracles.jobs import LayerJob

FOLD_BUBBLE = 16  # cycles between folds
OVERLAP = 0.5  # fraction of min(compute, memory) hidden by double buffering


def _clip01(x: float) -> float:
    return min(1.0, max(0.0, x))


def emulated_cycles(job: LayerJob) -> dict:
    """Compute, stall and total cycles of one job under the emulated model."""
    M, N, K, H, W, df = job.M, job.N, job.K, job.array_h, job.array_w, job.dataflow
    p, bw = job.precision_bytes, job.bandwidth
    cd = lambda a, b: -(-a // b)  # noqa: E731  ceil division of ints
    if df == "os":
        row_folds, col_folds, stream, fill = cd(M, H), cd(N, W), K, H + W - 2
    elif df == "ws":
        row_folds, col_folds, stream, fill = cd(K, H), cd(N, W), M, 2 * H + W - 2
    else:
        row_folds, col_folds, stream, fill = cd(K, H), cd(M, W), N, 2 * H + W - 2
    folds = row_folds * col_folds
    compute = folds * (stream + fill) - 1 + FOLD_BUBBLE * (folds - 1)
    compute = max(compute, math.ceil(M * N * K / (H * W)))

    if job.kind == "conv":
        oh, ow = (job.ifmap_h - job.filt_h) // job.stride + 1, (job.ifmap_w - job.filt_w) // job.stride + 1
        rows = min(job.ifmap_h, oh * min(job.filt_h, job.stride) + max(0, job.filt_h - job.stride))
        cols = min(job.ifmap_w, ow * min(job.filt_w, job.stride) + max(0, job.filt_w - job.stride))
        ifmap = job.channels * rows * cols * p
    else:
        ifmap = M * K * p
    filt, ofmap = K * N * p, M * N * p
    cap_i, cap_f, cap_o = job.ifmap_sram_bytes, job.filter_sram_bytes, job.ofmap_sram_bytes

    def streamed(size: float, cap: float, passes: int) -> float:
        return size * (1.0 + _clip01((size - 0.5 * cap) / size) * (passes - 1))

    if df == "os":
        traffic_i = streamed(ifmap, cap_i, cd(N, W))
        traffic_f = streamed(filt, cap_f, cd(M, H))
        traffic_o = ofmap
    else:
        psum_tile = (M * min(W, N) if df == "ws" else min(W, M) * N) * p
        spill = _clip01((psum_tile - 0.5 * cap_o) / psum_tile)
        traffic_o = ofmap * (1.0 + 2.0 * spill * (cd(K, H) - 1))
        if df == "ws":
            traffic_i, traffic_f = streamed(ifmap, cap_i, cd(N, W)), filt
        else:
            traffic_i, traffic_f = ifmap, streamed(filt, cap_f, cd(M, W))
    memory = (traffic_i + traffic_f + traffic_o) / bw
    first_tile = min(traffic_i + traffic_f, (H + W) * min(K, 256) * p) / bw
    total = max(compute, memory) + (1.0 - OVERLAP) * min(compute, memory) + first_tile
    total = float(math.ceil(total))
    return {"total_cycles": total, "compute_cycles": float(compute), "stall_cycles": total - compute}


class EmulatedOracle(Oracle):
    """The emulated simulator as an oracle.

    Args:
        sleep_s: seconds each job pretends to take (a slow simulator), spent in the worker.
        cache_dir, workers, retry_failed: as for :class:`~codesign.oracles.base.Oracle`; the default
            cache is in memory only (``cache_dir=False``), since results are free to recompute.
    """

    name = "emulated"
    version = "1"
    parallel = "threads"  # its cost is the sleep, which threads overlap like worker processes would

    def __init__(self, *, sleep_s: float = 0.0, cache_dir=False, workers: int | None = None, retry_failed: bool = False) -> None:
        super().__init__(cache_dir=cache_dir, workers=workers, retry_failed=retry_failed)
        self.sleep_s = float(sleep_s)

    def simulate(self, job: LayerJob) -> dict:
        if self.sleep_s > 0:
            time.sleep(self.sleep_s)
        return emulated_cycles(job)

    def describe(self) -> dict:
        return {"name": self.name, "version": self.version, "sleep_s": self.sleep_s, "fold_bubble": FOLD_BUBBLE, "overlap": OVERLAP}
