"""A learned latency surrogate of an oracle: a deep ensemble that corrects the analytical model.

The surrogate learns a **residual**, per layer: for one layer on one hardware
configuration, its input is the layer's loop bounds, the hardware and schedule knobs the
layer sees (array, dataflow, SRAM partitions, DRAM bandwidth) and the analytical model's
own per-layer outputs (compute, total and stall cycles, DRAM bytes), log-scaled
(:data:`FEATURES`, from the layer tables of :mod:`codesign.model.layer_table`); its target
is ``ln(oracle cycles / analytical cycles)``. The physics (folds, fill and drain, refetch)
stays in the analytical model; the network only learns where the oracle disagrees with it,
which takes hundreds of oracle calls, not hundreds of thousands.

:class:`LatencySurrogate` is a ``torch.nn.Module`` holding ``E`` small MLPs (default 5,
two hidden layers of 64) as batched weight tensors, so the whole ensemble trains and
predicts in one batched call (``torch.baddbmm``), on cuda when present. Each member
starts from its own initialisation and sees its own bootstrap weights of the data (per row,
or per group: per design in the loop, per layer and array shape for recorded results); the
members' spread is the uncertainty. Each member has two heads: a *gate* (is the analytical
model off here at all?) and the *residual*; where the gate is closed the member returns the
analytical value exactly, so a surrogate never blurs what the analytical model already
gets right; when the training data show the analytical model exact on (nearly) every row
it predicts no stall for, as on SCALE-Sim's, such rows get no correction whatever the gate
says (the *structural gate*). After training, ``alpha`` — how much of the learned residual
to apply — is chosen on the out-of-bag rows (rows of groups a member never saw): 1 when the
correction generalises, 0 when the data show no learnable signal (no gain over the
analytical model beyond one standard error; the surrogate is then the analytical model).
A design's latency is predicted member by member: the analytical per-layer cycles ×
``exp(residual)`` (MAC layers only: the residual corrects the array's cycles, a fused
epilogue's vector cycles bound them from below, and a vector layer keeps the analytical
cycles), scheduled like the analytical model's
(:func:`codesign.model.schedule.schedule_latency`), so the ensemble's spread of design
latencies carries the schedule's own structure (a layer off the critical path does not
move the latency).

Saved as ``surrogate.pt`` (weights and normalisation) and ``surrogate.json`` (metadata:
the feature schema, the oracle's name and version, a hash of the training data, the
training settings and fit statistics); :meth:`LatencySurrogate.load` refuses a file whose
feature schema differs from this code's.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from codesign.errors import UserError
from codesign.model.analytical import AnalyticalModel
from codesign.model.layer_table import FEATURE_VERSION, FEATURES, STALL_COL, TABLE_COLUMNS, design_table, features, job_table
from codesign.model.schedule import check_layer_by_layer, schedule_latency, with_vector_unit

__all__ = [
    "FEATURES", "TABLE_COLUMNS", "DesignPrediction", "LatencySurrogate", "SurrogateCostModel",
    "design_table", "features", "job_table", "training_metadata",
]

FORMAT = "codesign-latency-surrogate"
FORMAT_VERSION = 1
TARGET = "ln(oracle total cycles / analytical total cycles) of one layer"
ZERO_TOL = 1e-4  # ln units: a residual this small counts as "the analytical model is exact here"
EXACT_SHARE = 0.8  # share of no-stall training rows that must be exact for the structural gate
RESIDUAL_MARGIN = 0.5  # ln units: predictions stay within e^±0.5 of the training residuals' range


def _distinct_rows(x: torch.Tensor, chunk: int = 1 << 18):
    """``(first, inverse)`` with ``x[first][inverse] == x`` (rows), or None on a hash collision."""
    bits = x.to(torch.float64).contiguous().view(torch.int64)
    gen = torch.Generator().manual_seed(0x5EED)
    mult = (torch.randint(1, 2**62, (x.shape[1],), generator=gen, dtype=torch.int64) | 1).to(x.device)
    key = (bits * mult).sum(dim=1)  # wraps modulo 2⁶⁴
    uniq, inverse = torch.unique(key, return_inverse=True)
    first = torch.empty(uniq.numel(), dtype=torch.long, device=x.device).scatter_(0, inverse, torch.arange(x.shape[0], device=x.device))
    for s in range(0, x.shape[0], chunk):
        if not torch.equal(bits[first[inverse[s : s + chunk]]], bits[s : s + chunk]):
            return None
    return first, inverse


def data_hash(x: torch.Tensor, y: torch.Tensor) -> str:
    h = hashlib.sha256()
    for a in (x, y):
        arr = np.ascontiguousarray(a.detach().to("cpu", torch.float64).numpy())
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()


# --- the model ---------------------------------------------------------------------------------
@dataclass
class DesignPrediction:
    """Predicted latency of ``P`` designs: ensemble mean, spread, members, per-layer cycles."""

    latency_s: torch.Tensor  # [P] mean over members
    latency_std_s: torch.Tensor  # [P]
    members_s: torch.Tensor  # [E, P]
    layer_cycles: torch.Tensor  # [E, P, L]
    analytical_latency_s: torch.Tensor  # [P]


class LatencySurrogate(nn.Module):
    """A deep ensemble of small MLPs mapping layer features to ``ln(oracle / analytical)`` cycles.

    Args:
        n_features: input width (``len(FEATURES)``).
        members: ensemble size ``E``.
        hidden: width of each hidden layer.
        depth: hidden layers per member.
    """

    def __init__(self, n_features: int = len(FEATURES), *, members: int = 5, hidden: int = 64, depth: int = 2) -> None:
        super().__init__()
        self.n_features, self.members, self.hidden, self.depth = n_features, members, hidden, depth
        widths = [n_features] + [hidden] * depth + [2]  # outputs: residual, gate logit
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(widths[:-1], widths[1:]):
            self.weights.append(nn.Parameter(torch.empty(members, fan_in, fan_out)))
            self.biases.append(nn.Parameter(torch.zeros(members, 1, fan_out)))
        self.register_buffer("x_mean", torch.zeros(n_features))
        self.register_buffer("x_std", torch.ones(n_features))
        self.register_buffer("y_mean", torch.zeros(()))
        self.register_buffer("y_std", torch.ones(()))
        # Range of the training residuals: predictions are clamped to it, widened by
        # RESIDUAL_MARGIN, so that a design far outside the data cannot be predicted
        # e^10 times off the analytical model (an MLP extrapolates linearly).
        self.register_buffer("y_low", torch.full((), -math.inf))
        self.register_buffer("y_high", torch.full((), math.inf))
        # Shrinkage of the learned residual toward the analytical model (1: none, 0: the
        # analytical model alone), calibrated on out-of-bag rows by :meth:`fit`.
        self.register_buffer("alpha", torch.ones(()))
        # 1 when the training data show the analytical model exact wherever it predicts no
        # stall: the surrogate then returns the analytical value on such rows, whatever the gate.
        self.register_buffer("no_stall_exact", torch.zeros(()))
        self.metadata: dict = {}
        self.reset(0)

    def reset(self, seed: int) -> None:
        gen = torch.Generator().manual_seed(seed)
        for w, b in zip(self.weights, self.biases):
            bound = 1.0 / math.sqrt(w.shape[1])
            with torch.no_grad():
                w.copy_((torch.rand(w.shape, generator=gen) * 2 - 1) * bound * math.sqrt(3.0))
                b.zero_()

    @property
    def device(self) -> torch.device:
        return self.x_mean.device

    def _raw(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[R, F]`` features → standardised residuals and gate logits, each ``[E, R]``."""
        h = ((x.to(self.device, torch.float32) - self.x_mean) / self.x_std).unsqueeze(0).expand(self.members, -1, -1)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h, w)
            if i < last:
                h = torch.nn.functional.silu(h)
        return h[..., 0], h[..., 1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[R, F]`` features → ``[E, R]`` residuals (natural log), each member's gate applied."""
        res, gate = self._raw(x)
        out = torch.clamp(res * self.y_std + self.y_mean, self.y_low - RESIDUAL_MARGIN, self.y_high + RESIDUAL_MARGIN)
        open_ = gate > 0
        if bool(self.no_stall_exact > 0):  # the structural gate (see fit): no analytical stall, no correction
            open_ = open_ & (x[:, STALL_COL].to(self.device) > 0)[None]
        return torch.where(open_, out * self.alpha, torch.zeros_like(out))

    @torch.no_grad()
    def predict(self, x: torch.Tensor, *, batch: int = 1 << 20, dedupe: bool = True) -> torch.Tensor:
        """Member residuals ``[E, R]`` for features ``[R, F]``.

        A population's layer rows repeat (the same layer on the same core configuration
        in many designs): with ``dedupe`` the distinct rows are found first (a 64-bit hash
        of each row's bits, checked for collisions) and the ensemble runs on those only.
        """
        self.eval()
        R = x.shape[0]
        if dedupe and R > 4096:
            unique = _distinct_rows(x)
            if unique is not None:
                first, inverse = unique
                return self.predict(x[first], batch=batch, dedupe=False)[:, inverse]
        parts = [self(x[s : s + batch]) for s in range(0, max(1, R), batch)]
        return torch.cat(parts, dim=1)

    # --- training -------------------------------------------------------------------------
    def fit(self, x: torch.Tensor, y: torch.Tensor, *, steps: int = 1000, lr: float = 1e-2, weight_decay: float = 1e-2,
            bootstrap: bool = True, seed: int = 0, batch_size: int = 4096, zero_tol: float = ZERO_TOL,
            groups: Sequence | None = None, calibrate: bool = True, structural_gate: bool = True) -> dict:
        """Train every member on features ``x [R, F]`` and residuals ``y [R]`` (natural log).

        Each member has two outputs: a gate (is the analytical model off here by more than
        ``zero_tol``? binary cross-entropy on every row) and the residual (Huber loss on the
        rows where it is). Full-batch AdamW (mini-batches of ``batch_size`` rows above that),
        cosine learning rate; each member gets Poisson(1) bootstrap weights when
        ``bootstrap``: per row, or per group of rows when ``groups`` gives one or more label
        arrays ``[R]`` (e.g. the layer and the array shape of each row, or the design it came
        from): a member then never sees a group whose weight is 0. Rows that some members never
        saw (out of bag: all their groups dropped) calibrate ``alpha``, the shrinkage of the
        learned residual toward the analytical model that minimises their mean absolute log
        error, or 0 when that gain over the analytical model is within one standard error
        (``calibrate``; 1 when fewer than 10 such rows). With ``structural_gate``, when at
        least :data:`EXACT_SHARE` of the (at least 5) training rows without analytical stall
        cycles have a zero residual, every such row is predicted exactly (residual 0).
        Returns fit statistics.
        """
        device = self.device
        x = x.to(device, torch.float32)
        y = y.to(device, torch.float32)
        if x.shape[0] < 2:
            raise ValueError("need at least two rows to fit a surrogate")
        self.reset(seed)
        off = (y.abs() > zero_tol).to(torch.float32)
        no_stall = x[:, STALL_COL] <= 0
        exact_share = float((off[no_stall] == 0).float().mean()) if bool(no_stall.any()) else 0.0
        exact_rule = structural_gate and int(no_stall.sum()) >= 5 and exact_share >= EXACT_SHARE
        moved = y[off > 0] if int(off.sum()) >= 2 else y
        with torch.no_grad():
            self.no_stall_exact.fill_(1.0 if exact_rule else 0.0)
            self.x_mean.copy_(x.mean(dim=0))
            self.x_std.copy_(x.std(dim=0).clamp(min=1e-3))
            self.y_mean.copy_(moved.mean())
            self.y_std.copy_(moved.std().clamp(min=1e-2) if moved.numel() > 1 else torch.tensor(1.0))
            self.y_low.copy_(y.min())
            self.y_high.copy_(y.max())
        gen = torch.Generator(device="cpu").manual_seed(seed + 1)
        R = x.shape[0]
        weights = self._bootstrap_weights(R, groups, gen) if bootstrap else torch.ones(self.members, R)
        weights = weights.to(device)
        with torch.no_grad():
            self.alpha.fill_(1.0)
        target = (y - self.y_mean) / self.y_std
        opt = torch.optim.AdamW(self.parameters(), lr=lr, weight_decay=weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=lr * 0.02)
        t0 = time.perf_counter()
        self.train()
        last = math.nan
        for step in range(steps):
            if R > batch_size:
                idx = torch.randint(0, R, (batch_size,), generator=gen).to(device)
                xb, tb, ob, wb = x[idx], target[idx], off[idx], weights[:, idx]
            else:
                xb, tb, ob, wb = x, target, off, weights
            res, gate = self._raw(xb)  # [E, B] each
            reg = torch.nn.functional.huber_loss(res, tb[None].expand_as(res), reduction="none", delta=0.5)
            cls = torch.nn.functional.binary_cross_entropy_with_logits(gate, ob[None].expand_as(gate), reduction="none")
            w_reg = wb * ob[None]
            value = (reg * w_reg).sum() / w_reg.sum().clamp(min=1.0) + (cls * wb).sum() / wb.sum().clamp(min=1.0)
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()
            sched.step()
            last = float(value.detach())
        seconds = time.perf_counter() - t0
        calibration = self._calibrate(x, y, weights) if (calibrate and bootstrap) else {"alpha": 1.0, "oob_rows": 0}
        pred = self.predict(x).median(dim=0).values
        err = (torch.exp(pred - y) - 1.0).abs()
        return {"final_loss": last, "train_median_abs_err_pct": float(err.median()) * 100, "rows": R, "steps": steps,
                "off_fraction": float(off.mean()), "no_stall_exact": bool(exact_rule), "no_stall_exact_share": exact_share,
                **calibration, "fit_s": seconds, "device": str(device)}

    def _bootstrap_weights(self, R: int, groups, gen: torch.Generator) -> torch.Tensor:
        """Poisson(1) weights ``[E, R]``, drawn per row or per group (product over label arrays)."""
        if not groups:
            return torch.poisson(torch.ones(self.members, R), generator=gen)
        weights = torch.ones(self.members, R)
        for labels in groups:
            _, codes = np.unique(np.asarray(labels), return_inverse=True)
            draw = torch.poisson(torch.ones(self.members, int(codes.max()) + 1), generator=gen)
            weights = weights * draw[:, torch.from_numpy(codes.reshape(-1))]
        empty = weights.sum(dim=1) == 0  # a member that drew nothing: give it every row
        weights[empty] = 1.0
        return weights

    @torch.no_grad()
    def _calibrate(self, x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor) -> dict:
        """Set ``alpha`` from the out-of-bag rows (see :meth:`fit`)."""
        oob = weights == 0  # [E, R]
        has = oob.any(dim=0)
        if int(has.sum()) < 10:
            return {"alpha": 1.0, "oob_rows": int(has.sum())}
        members = self.predict(x[has])  # [E, R'] with alpha = 1
        mask = oob[:, has].to(members.dtype)
        pred = (members * mask).sum(dim=0) / mask.sum(dim=0)
        target = y[has].to(pred.dtype)
        grid = torch.linspace(0.0, 1.0, 21, device=pred.device)
        errors = (grid[:, None] * pred[None] - target[None]).abs()  # [G, R']
        loss = errors.mean(dim=1)
        best = int(torch.argmin(loss))
        # A correction is switched on only if it beats the analytical model (alpha = 0) on the
        # out-of-bag rows by more than one standard error of the paired difference: a gain within
        # the rows' noise keeps the analytical model.
        gain = errors[0] - errors[best]
        if best > 0 and float(gain.mean()) <= float(gain.std()) / math.sqrt(gain.numel()):
            best = 0
        self.alpha.fill_(float(grid[best]))
        return {"alpha": float(grid[best]), "oob_rows": int(has.sum()), "oob_mean_abs_log_err": float(loss[best]),
                "oob_mean_abs_log_err_analytical": float(loss[0])}

    # --- prediction of cycles and designs ----------------------------------------------------
    @torch.no_grad()
    def predict_cycles(self, table: dict[str, torch.Tensor]) -> torch.Tensor:
        """Member predictions ``[E, *shape]`` of a layer table's oracle cycles (per layer)."""
        x = features(table)
        shape = x.shape[:-1]
        res = self.predict(x.reshape(-1, x.shape[-1])).reshape(self.members, *shape)
        return table["an_total"].to(res.device, torch.float64)[None] * torch.exp(res.to(torch.float64))

    @torch.no_grad()
    def predict_designs(self, model, candidates) -> DesignPrediction:
        """Latency of ``P`` layer-by-layer designs, one batched call: the analytical model
        (per-layer detail), the ensemble on every ``[P, L]`` layer, and the schedule per member."""
        check_layer_by_layer(candidates, model.space)
        ev = model.evaluate(candidates, detail=True)
        table = design_table(model, candidates, ev.layers)
        # The residual corrects the array's cycles of MAC layers; a vector layer keeps the model's
        # cycles (residual 0) and a fused epilogue bounds its MAC layer from below.
        cycles = with_vector_unit(model, self.predict_cycles(table).to(model.device, model.dtype), ev.layers)  # [E, P, L]
        members = schedule_latency(model, candidates, cycles, ev.layers["dram_bytes"])  # [E, P]
        return DesignPrediction(latency_s=members.mean(dim=0), latency_std_s=members.std(dim=0) if self.members > 1 else torch.zeros_like(members[0]),
                                members_s=members, layer_cycles=cycles, analytical_latency_s=ev.metrics["latency_s"])

    # --- files ---------------------------------------------------------------------------------
    def save(self, folder: str | Path, metadata: dict | None = None) -> Path:
        """``folder/surrogate.pt`` and ``folder/surrogate.json``; returns the folder."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": FORMAT, "format_version": FORMAT_VERSION,
            "feature_schema": {"version": FEATURE_VERSION, "names": list(FEATURES)},
            "target": TARGET,
            "architecture": {"members": self.members, "hidden": self.hidden, "depth": self.depth, "activation": "silu",
                             "outputs": ["residual", "gate"]},
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "torch": torch.__version__,
            **self.metadata, **(metadata or {}),
        }
        state = {k: v.detach().cpu() for k, v in self.state_dict().items()}
        torch.save(state, folder / "surrogate.pt")
        (folder / "surrogate.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
        self.metadata = meta
        return folder

    @classmethod
    def load(cls, folder: str | Path, *, device: str | torch.device = "cpu") -> "LatencySurrogate":
        folder = Path(folder)
        meta_path, weights_path = folder / "surrogate.json", folder / "surrogate.pt"
        if not meta_path.is_file() or not weights_path.is_file():
            raise UserError(f"{folder}: not a saved surrogate (expected surrogate.json and surrogate.pt)")
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != FORMAT:
            raise UserError(f"{meta_path}: not a codesign latency surrogate (format {meta.get('format')!r})")
        schema = meta.get("feature_schema", {})
        if schema.get("version") != FEATURE_VERSION or schema.get("names") != list(FEATURES):
            raise UserError(f"{meta_path}: feature schema v{schema.get('version')} does not match this codesign's v{FEATURE_VERSION}; retrain it")
        arch = meta["architecture"]
        model = cls(len(FEATURES), members=arch["members"], hidden=arch["hidden"], depth=arch["depth"])
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
        state.setdefault("no_stall_exact", torch.zeros(()))  # saved before the structural gate existed
        model.load_state_dict(state)
        model.metadata = meta
        return model.to(device)


def training_metadata(*, oracle: dict, x: torch.Tensor, y: torch.Tensor, fit: dict, **extra) -> dict:
    """The metadata block of a trained surrogate."""
    return {"oracle": oracle, "data": {"rows": int(x.shape[0]), "sha256": data_hash(x, y)}, "training": fit, **extra}


class SurrogateCostModel:
    """A trained surrogate as a plug-in cost model: ``latency_s`` (ensemble mean) and
    ``latency_std_s`` (its spread); everything else stays analytical. Layer-by-layer designs only."""

    provides = ("latency_s", "latency_std_s")

    def __init__(self, surrogate: LatencySurrogate, space, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float64) -> None:
        self.surrogate = surrogate
        self.model = AnalyticalModel(space, device=device, dtype=dtype)

    def evaluate(self, candidates, metrics) -> dict[str, torch.Tensor]:
        pred = self.surrogate.predict_designs(self.model, candidates)
        return {"latency_s": pred.latency_s, "latency_std_s": pred.latency_std_s}
