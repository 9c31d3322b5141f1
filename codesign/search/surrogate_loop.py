"""Surrogate-assisted search: spend a slow oracle only where the Pareto front is.

``codesign explore DESIGN.toml --oracle NAME --oracle-budget N`` runs this loop instead
of the plain search. The budget counts **designs** the oracle evaluates (every layer of
each; layers already in the oracle's cache cost nothing more):

1. **Initial set.** A scrambled Sobol sample of the knob codes (space-filling in every
   knob at once), de-duplicated, of ``initial`` designs (default ``max(8, ⌈N/4⌉)``),
   all sent to the oracle.
2. **Fit.** Every layer of every verified design is one training row of the
   :class:`~codesign.model.surrogate.LatencySurrogate` (a deep ensemble learning
   ``ln(oracle / analytical)`` cycles per layer).
3. **Search.** The engine's NSGA-II (:func:`~codesign.search.driver.run_search`, the
   same loop as the plain search) on the analytical model with the
   surrogate's latency (:class:`~codesign.model.surrogate.SurrogateCostModel`):
   ``inner_trials`` trials per round, in memory, at batched-model speed.
4. **Select** a batch of unverified designs for the oracle: the predicted front (the
   constrained non-dominated set under the ensemble mean, spread evenly along the first
   objective when it is larger than its share), then the *most uncertain near-front*
   designs: those that no predicted-front point dominates once their latency is taken
   optimistically (mean − κ·spread, κ = 2), by relative spread.
5. **Verify and refit**, and repeat from 3 until the budget is spent.

The answer is the **verified front**: the constrained non-dominated set of the designs the
oracle has evaluated, with its latency (the rest is the model's and plug-ins'). Each row keeps the latency the surrogate predicted
for it when it was chosen (``predicted_latency_s``, ``predicted_latency_std_s``) and the
analytical one, beside the oracle's.

Each round ends with ``on_round(loop)`` (the run folder stores it); ``run(resume=...)`` replays
an interrupted run's designs (the oracle's cache answers; the budget counts each once) and goes
on. After ``deadline_s`` the oracle starts no job; the finished designs of the round in flight
are kept and the loop stops. Failed designs are recorded with their reason; when every initial
design fails the loop stops with one :class:`~codesign.errors.UserError`.

Each round records two honest checks: the surrogate's error on the batch it has just
chosen, before it sees the oracle's answers, and the fraction of the predicted-front
designs sent that stay non-dominated (among themselves) once the oracle has evaluated
them. A last search on the final surrogate gives ``predicted_front.csv`` (not verified).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import torch

from codesign.errors import ArgumentError, UserError
from codesign.model.evaluator import Evaluator
from codesign.model.surrogate import LatencySurrogate, SurrogateCostModel, design_table, features, training_metadata
from codesign.oracles.base import Oracle, OracleCostModel, OracleStopped
from codesign.oracles.designs import design_jobs
from codesign.search.driver import run_search
from codesign.search.pareto import dominated_by, feasible_mask, front_of, hypervolume, nondominated_mask, spread
from codesign.search.reference import design_reference_point
from codesign.space import DesignSpace

MIN_INITIAL = 8


@dataclass
class LoopSettings:
    """Knobs of the loop (defaults are what ``codesign explore --oracle`` uses).

    Args:
        budget: designs the oracle may evaluate in all.
        initial: size of the space-filling initial set (default ``max(8, ⌈budget/4⌉)``).
        batch: designs verified per round (default ``max(4, ⌈(budget − initial)/4⌉)``).
        inner_trials: NSGA-II trials per round on the surrogate (default: the design's
            ``search.trials``).
        uncertain_fraction: share of each batch kept for uncertain near-front designs.
        kappa: optimism of the near-front test (spreads below the mean).
        members, hidden, steps: the ensemble and its training.
        fit_threads: torch intra-op threads while the ensemble trains on the CPU (its
            tensors are small: one thread is faster than several on a busy machine);
            ``None`` keeps torch's setting.
        final_search: run one more search on the final surrogate (``predicted_front.csv``).
        deadline_s: seconds of loop time after which the oracle is asked nothing more (``None``:
            no limit); what was verified by then is kept and reported.
    """

    budget: int
    initial: int | None = None
    batch: int | None = None
    inner_trials: int | None = None
    uncertain_fraction: float = 0.34
    kappa: float = 2.0
    members: int = 5
    hidden: int = 64
    steps: int = 1000
    final_search: bool = True
    fit_threads: int | None = 1
    deadline_s: float | None = None

    def resolve(self, design) -> "LoopSettings":
        if self.budget < 1:
            raise ArgumentError("oracle_budget", self.budget, "expected a positive number of designs")
        deadline = self.deadline_s
        if deadline is not None and (isinstance(deadline, bool) or not isinstance(deadline, (int, float))
                                     or not math.isfinite(deadline) or deadline <= 0):
            raise ArgumentError("oracle_deadline", deadline, "expected a positive number of seconds")
        initial = self.initial if self.initial is not None else max(MIN_INITIAL, math.ceil(self.budget / 4))
        if self.budget < initial + 1:
            raise ArgumentError(
                "oracle_budget", self.budget, f"must exceed the initial space-filling set of {initial} designs "
                f"(at least {initial + 1}: the initial set plus one surrogate-guided design)"
            )
        batch = self.batch if self.batch is not None else max(4, math.ceil((self.budget - initial) / 4))
        inner = self.inner_trials if self.inner_trials is not None else design.search.trials
        return LoopSettings(**{**self.__dict__, "initial": initial, "batch": batch, "inner_trials": inner})


@dataclass
class LoopResult:
    verified: pd.DataFrame  # every design the oracle evaluated
    front: pd.DataFrame  # the verified front
    predicted_front: pd.DataFrame | None  # the final surrogate's front (not verified)
    rounds: list[dict]
    surrogate: LatencySurrogate
    summary: dict = field(default_factory=dict)


def sobol_rows(space: DesignSpace, n: int, seed: int) -> torch.Tensor:
    """``n`` distinct (canonical) rows from a scrambled Sobol sequence over the knob codes."""
    sizes = torch.tensor([len(k.choices) if k.choices is not None else k.high + 1 for k in space.knobs], dtype=torch.float64)
    engine = torch.quasirandom.SobolEngine(dimension=max(1, space.dimension), scramble=True, seed=seed)
    seen: dict[bytes, torch.Tensor] = {}
    for _ in range(50):
        u = engine.draw(max(2 * n, 16), dtype=torch.float64)[:, : space.dimension]
        rows = space.canonical(torch.minimum(torch.floor(u * sizes), sizes - 1).to(torch.long))
        for r in rows:
            seen.setdefault(r.numpy().tobytes(), r)
            if len(seen) == n:
                return torch.stack(list(seen.values()))
    return torch.stack(list(seen.values()))  # a space with fewer than n designs


def survival(values: np.ndarray, feasible: np.ndarray) -> float:
    """Fraction of points that are feasible and non-dominated among the feasible ones."""
    if len(values) == 0:
        return float("nan")
    keep = np.zeros(len(values), dtype=bool)
    if feasible.any():
        keep[feasible] = nondominated_mask(values[feasible])
    return float(keep.mean())


class SurrogateLoop:
    """The loop on one design space and one oracle (see the module docstring)."""

    def __init__(self, space: DesignSpace, oracle: Oracle, settings: LoopSettings, *, seed: int = 0,
                 device: torch.device | str = "cpu", plugins: list = (), say=print, on_round=None) -> None:
        design = space.design
        self.space, self.oracle, self.seed, self.say = space, oracle, seed, say
        self.on_round = on_round  # called with the loop after each round's designs are verified
        self.stopped_by: str | None = None  # why the loop stopped before its budget: deadline, ...
        self.settings = settings.resolve(design)
        self.device = torch.device(device)
        check_design(design)
        self.objectives = list(design.objectives.minimize)
        self.constraints = dict(design.constraints)
        self.surrogate = LatencySurrogate(members=self.settings.members, hidden=self.settings.hidden).to(self.device)
        self.oracle_cm = OracleCostModel(oracle, space, device=self.device)
        self.oracle_eval = Evaluator(space, [self.oracle_cm, *plugins], device=self.device)
        self.surrogate_cm = SurrogateCostModel(self.surrogate, space, device=self.device)
        self.surrogate_eval = Evaluator(space, [self.surrogate_cm, *plugins], device=self.device)
        self.analytic_eval = Evaluator(space, list(plugins), device=self.device)
        self.names = self.oracle_eval.metric_names
        self.pred_names = self.surrogate_eval.metric_names
        self.model = self.oracle_cm.model
        self.records: list[dict] = []  # one per verified design
        self.keys: set[bytes] = set()
        self.x_parts: list[torch.Tensor] = []
        self.y_parts: list[torch.Tensor] = []
        self.g_parts: list[np.ndarray] = []  # the verified design each row comes from
        self.rounds: list[dict] = []
        self.fit_stats: dict = {}
        self.reference = design_reference_point(space, self.analytic_eval, self.objectives)  # the design's, not the run's

    # --- oracle side ---------------------------------------------------------------------
    def _oracle_values(self, rows: torch.Tensor) -> tuple[np.ndarray, list, np.ndarray]:
        """The oracle's metrics of ``rows``, their errors, and the indices of ``rows`` they belong to:
        all of them, unless the deadline stopped the oracle, when only the designs whose every
        job had finished are kept (the others are neither recorded nor counted)."""
        self.oracle_cm.history.clear()
        try:
            values, errors = self.oracle_eval.evaluate_rows(rows)
            return values, errors, np.arange(len(rows))
        except OracleStopped as stop:
            if stop.reason != "deadline":
                raise
        self.stopped_by = "deadline"
        cands = self.space.decode(rows.to(self.device), dtype=self.model.dtype)
        dj = design_jobs(self.space, cands)
        keep = np.flatnonzero(np.asarray(self.oracle.answered(dj.jobs), dtype=bool)[dj.index].all(axis=1))
        self.oracle_cm.history.clear()
        if len(keep):
            try:  # every job of these is in the cache: no oracle time
                values, errors = self.oracle_eval.evaluate_rows(rows[torch.as_tensor(keep)])
                return values, errors, keep
            except OracleStopped:
                self.oracle_cm.history.clear()
        return np.zeros((0, len(self.names))), [], np.zeros(0, dtype=int)

    def verify(self, rows: torch.Tensor, *, round_: int, role: list[str],
               predicted: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Evaluate ``rows`` with the oracle; record them and their layers. Returns the metric values
        and the indices of ``rows`` recorded (all, unless the oracle's deadline cut the batch short)."""
        space = self.space
        rows = space.canonical(rows)
        values, errors, kept = self._oracle_values(rows)
        rows, role = rows[torch.as_tensor(kept, dtype=torch.long)], [role[i] for i in kept]
        predicted = predicted[kept] if predicted is not None else None
        history = self.oracle_cm.history
        full = [h for h in history if h.latency_s.shape[0] == len(rows)]
        per_design = full[0] if full else None
        singles = iter([h for h in history if h.latency_s.shape[0] == 1]) if per_design is None else None
        analytic, _ = self.analytic_eval.evaluate_rows(rows)
        lat = self.names.index("latency_s")
        for i, row in enumerate(rows):
            key = row.numpy().tobytes()
            self.keys.add(key)
            ok = errors[i] is None
            record = {
                "trial": len(self.records), "round": round_, "role": role[i],
                "feasible": bool(ok and feasible_mask(values[i : i + 1], self.names, self.constraints)[0]),
                **dict(zip(self.names, values[i].tolist())),
                "predicted_latency_s": float(predicted[i, 0]) if predicted is not None else math.nan,
                "predicted_latency_std_s": float(predicted[i, 1]) if predicted is not None else math.nan,
                "analytical_latency_s": float(analytic[i, lat]),
                **space.decode_params(row.tolist()),
                "fail_reason": errors[i] or "",
            }
            self.records.append(record)
            if not ok:
                continue
            if per_design is not None:
                oe, j = per_design, i
            else:
                oe, j = next(singles, None), 0
                if oe is None:
                    continue
            cand = space.decode(row[None].to(self.device), dtype=self.model.dtype)
            layers = {k: v[j : j + 1] for k, v in oe.analytical.items() if torch.is_tensor(v) and v.dim() == 2}
            table = design_table(self.model, cand, layers)
            mac = ~self.model.lw.is_vector  # the simulator's residual on MAC layers' array cycles; vector work stays the model's
            self.x_parts.append(features(table)[0][mac].cpu())
            self.y_parts.append(torch.log(oe.array_cycles[j] / layers["array_cycles"][0])[mac].cpu())
            self.g_parts.append(np.full(int(mac.sum()), record["trial"]))
        return values, kept

    def fit(self, round_: int) -> dict:
        x = torch.cat(self.x_parts)
        y = torch.cat(self.y_parts)
        g = np.concatenate(self.g_parts)
        # The same layer on the same hardware in the same context is one row, not many.
        keys = np.round(x.numpy(), 6)
        _, first = np.unique(keys, axis=0, return_index=True)
        first = np.sort(first)
        x, y, g = x[first], y[first], g[first]
        # Bootstrap by design: a member's out-of-bag rows are whole designs it never saw,
        # which calibrates how far to trust the learned correction on new designs.
        threads = torch.get_num_threads()
        if self.settings.fit_threads and self.device.type == "cpu":
            torch.set_num_threads(self.settings.fit_threads)
        try:
            stats = self.surrogate.fit(x, y, steps=self.settings.steps, seed=self.seed * 1000 + round_, groups=[g])
        finally:
            torch.set_num_threads(threads)
        self.fit_stats = {"x": x, "y": y, **stats}
        return stats

    # --- surrogate side ---------------------------------------------------------------------
    def inner_search(self, round_: int) -> tuple[torch.Tensor, np.ndarray]:
        """NSGA-II on the surrogate; returns its distinct designs and their predicted metrics."""
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(directions=["minimize"] * len(self.objectives))
        run_search(self.space, self.surrogate_eval, study, n_trials=self.settings.inner_trials,
                   seed=self.seed * 1000 + 17 * round_ + 1, say=lambda *_: None)
        seen: dict[bytes, list[int]] = {}
        for t in study.get_trials(deepcopy=False):
            row = self.space.packed.row(t) if t.state == optuna.trial.TrialState.COMPLETE else None
            if row is not None:
                seen.setdefault(np.asarray(row, dtype=np.int64).tobytes(), row)
        rows = self.space.canonical(torch.tensor(list(seen.values()), dtype=torch.long).reshape(-1, self.space.dimension))
        rows = torch.unique(rows, dim=0)
        values, errors = self.surrogate_eval.evaluate_rows(rows)
        bad = np.array([e is not None for e in errors])
        values[bad] = np.nan
        return rows, values

    def _objectives(self, values: np.ndarray, names: list[str]) -> np.ndarray:
        return values[:, [names.index(o) for o in self.objectives]]

    def select(self, rows: torch.Tensor, values: np.ndarray, k: int) -> tuple[list[int], list[str], int]:
        """Indices into ``rows`` of the designs to verify, their roles, and how many are front designs."""
        names = self.pred_names
        unverified = np.array([r.numpy().tobytes() not in self.keys for r in rows])
        feasible = feasible_mask(values, names, self.constraints)
        objs = self._objectives(values, names)
        on_front = np.zeros(len(rows), dtype=bool)
        if feasible.any():
            on_front[feasible] = nondominated_mask(objs[feasible])
        n_uncertain = int(math.floor(k * self.settings.uncertain_fraction)) if k >= 3 else 0
        front_idx = np.flatnonzero(on_front & unverified)
        take_front = front_idx[spread(objs[front_idx], k - n_uncertain)] if len(front_idx) else front_idx
        chosen = list(take_front)
        roles = ["front"] * len(chosen)
        # Optimistic latency: could the design be on the front given the ensemble's spread?
        lat, std = names.index("latency_s"), names.index("latency_std_s")
        optimistic = values.copy()
        optimistic[:, lat] = np.maximum(values[:, lat] - self.settings.kappa * values[:, std], 0.0)
        opt_feasible = feasible_mask(optimistic, names, self.constraints)
        near = unverified & opt_feasible & ~np.isin(np.arange(len(rows)), chosen)
        near &= ~dominated_by(objs[on_front], self._objectives(optimistic, names))
        idx = np.flatnonzero(near)
        rel = values[idx, std] / np.maximum(values[idx, lat], 1e-30)
        for i in idx[np.argsort(-rel, kind="stable")][: k - len(chosen)]:
            chosen.append(int(i))
            roles.append("uncertain")
        if len(chosen) < k:  # fill: the best remaining by non-dominated rank, feasible first
            rest = np.flatnonzero(unverified & ~np.isin(np.arange(len(rows)), chosen) & np.isfinite(objs).all(axis=1))
            pool = rest[np.lexsort((objs[rest, 0], ~feasible[rest]))]
            ranked, remaining = [], list(pool)
            while remaining and len(ranked) < k - len(chosen):
                layer = np.array(remaining)
                nd = nondominated_mask(objs[layer])
                ranked += list(layer[nd])
                remaining = list(layer[~nd])
            for i in ranked[: k - len(chosen)]:
                chosen.append(int(i))
                roles.append("rank")
        return chosen, roles, len(take_front)

    # --- the loop ------------------------------------------------------------------------------
    def run(self, resume: tuple[torch.Tensor, pd.DataFrame, list[dict]] | None = None) -> LoopResult:
        """The loop. ``resume``: an interrupted run's verified designs (rows ``[n, D]``), their table
        (``round``, ``role``, predictions) and its rounds; they are replayed and the loop goes on."""
        s = self.settings
        t_start = time.perf_counter()
        self.oracle.set_deadline(s.deadline_s)
        try:
            round_ = self._replay(*resume) if resume is not None and len(resume[0]) else -1
            if round_ < 0:
                init = sobol_rows(self.space, min(s.initial, s.budget), self.seed)
                self.say(f"oracle {self.oracle.name}: {len(init)} space-filling designs")
                self.verify(init, round_=0, role=["initial"] * len(init), predicted=None)
                round_ = 0
            self._round_done()  # the initial set, or the replayed rounds, stored again
            self._check_start()
            while len(self.records) < s.budget and self.stopped_by is None:
                round_ += 1
                if not self._round(round_):
                    break
        finally:
            self.oracle.set_deadline(None)
        if self.stopped_by == "deadline":
            self.say(f"oracle deadline reached: stopping with {len(self.records)}/{s.budget} designs verified")
        return self._finish(round_, time.perf_counter() - t_start)

    def _round_done(self) -> None:
        if self.on_round is not None:
            self.on_round(self)

    def _check_start(self) -> None:
        """One clear error when nothing was verified: the loop has nothing to learn from."""
        if any(not r["fail_reason"] for r in self.records):
            return
        name = self.oracle.name
        if not self.records:
            raise UserError(f"oracle {name}: its deadline ({self.settings.deadline_s or 0:g} s) passed before any design was verified")
        reasons = pd.Series([r["fail_reason"].splitlines()[0][:300] for r in self.records]).value_counts()
        raise UserError(f"oracle {name}: every one of the {len(self.records)} initial designs failed; "
                        f"most common reason ({reasons.iloc[0]} of {len(self.records)}): {reasons.index[0]}")

    def _replay(self, rows: torch.Tensor, previous: pd.DataFrame, rounds: list[dict]) -> int:
        """Verify the designs of an earlier run again, round by round, as they were chosen (the
        oracle's cache answers; the budget counts each once). Returns the last round replayed."""
        order = previous["round"].to_numpy(dtype=int)
        for r in sorted(set(order.tolist())):
            idx = np.flatnonzero(order == r)
            pred = previous.iloc[idx][["predicted_latency_s", "predicted_latency_std_s"]].to_numpy(dtype=float)
            self.verify(rows[torch.as_tensor(idx)], round_=r, role=[str(x) for x in previous["role"].iloc[idx]],
                        predicted=None if r == 0 else pred)
        last = int(order.max())
        self.rounds = [dict(x) for x in rounds if int(x["round"]) <= last]
        self.say(f"resuming: {len(self.records)} verified designs of rounds 0–{last} replayed from the cache")
        return last

    def _round(self, round_: int) -> bool:
        """Fit, search, select and verify one batch; False when there is nothing more to do."""
        s = self.settings
        t0 = time.perf_counter()
        stats = self.fit(round_)
        t1 = time.perf_counter()
        rows, values = self.inner_search(round_)
        t2 = time.perf_counter()
        if self.oracle.stopped:  # by a signal while fitting or searching (a deadline ends the round in verify)
            raise OracleStopped("interrupted")
        k = min(s.batch, s.budget - len(self.records))
        chosen, roles, n_front = self.select(rows, values, k)
        if not chosen:
            self.say("no unverified design left to send to the oracle; stopping early")
            self.stopped_by = "no unverified design left"
            return False
        names = self.pred_names
        pred = values[chosen][:, [names.index("latency_s"), names.index("latency_std_s")]]
        oracle_values, kept = self.verify(rows[chosen], round_=round_, role=roles, predicted=pred)
        t3 = time.perf_counter()
        if not len(kept):
            return False
        pred, roles, n_front = pred[kept], [roles[i] for i in kept], int((kept < n_front).sum())
        lat = self.names.index("latency_s")
        err = np.abs(pred[:, 0] / oracle_values[:, lat] - 1.0)
        front_vals = self._objectives(oracle_values[:n_front], self.names)
        front_feas = feasible_mask(oracle_values[:n_front], self.names, self.constraints)
        info = {
            "round": round_, "verified": len(self.records), "sent": len(kept), "sent_front": n_front,
            "sent_uncertain": roles.count("uncertain"), "candidates": int(len(rows)),
            "train_rows": stats["rows"], "train_median_abs_err_pct": stats["train_median_abs_err_pct"],
            "batch_median_abs_err_pct": float(np.nanmedian(err) * 100) if np.isfinite(err).any() else math.nan,
            "front_survival": survival(front_vals, front_feas),
            "verified_hypervolume": self.verified_hv(),
            "fit_s": t1 - t0, "search_s": t2 - t1, "oracle_s": t3 - t2,
        }
        self.rounds.append(info)
        self.say(
            f"round {round_}: {len(kept)} designs to the oracle ({n_front} predicted-front), "
            f"predicted latency off by {info['batch_median_abs_err_pct']:.1f} % (median), "
            f"front survival {info['front_survival']:.2f}, {len(self.records)}/{s.budget} spent"
        )
        self._round_done()
        return True

    def _finish(self, round_: int, loop_s: float) -> LoopResult:
        """The final fit, the last search on it, and the result."""
        s = self.settings
        self.fit(round_ + 1)
        predicted_front = None
        if s.final_search:
            rows, values = self.inner_search(round_ + 1)
            feasible = feasible_mask(values, self.pred_names, self.constraints)
            objs = self._objectives(values, self.pred_names)
            on = np.zeros(len(rows), dtype=bool)
            if feasible.any():
                on[feasible] = nondominated_mask(objs[feasible])
            idx = np.flatnonzero(on)
            predicted_front = pd.DataFrame(
                [{**dict(zip(self.pred_names, values[i].tolist())), "verified": rows[i].numpy().tobytes() in self.keys,
                  **self.space.decode_params(rows[i].tolist())} for i in idx]
            )
            self.predicted_front_rows = rows[idx]
        verified = pd.DataFrame(self.records)
        front = self.verified_front(verified)
        summary = {
            "oracle": self.oracle.describe(), "oracle_stats": self.oracle.stats.as_dict(),
            "budget": s.budget, "designs_verified": len(verified), "rounds": len(self.rounds),
            "stopped_by": self.stopped_by or "budget",
            "settings": {k: v for k, v in s.__dict__.items()}, "seed": self.seed,
            "verified_hypervolume": self.verified_hv(), "loop_s": loop_s,
            "front_survival_per_round": [r["front_survival"] for r in self.rounds],
            "batch_median_abs_err_pct_per_round": [r["batch_median_abs_err_pct"] for r in self.rounds],
        }
        return LoopResult(verified=verified, front=front, predicted_front=predicted_front, rounds=self.rounds,
                          surrogate=self.surrogate, summary=summary)

    def verified_front(self, verified: pd.DataFrame | None = None) -> pd.DataFrame:
        verified = pd.DataFrame(self.records) if verified is None else verified
        return front_of(verified, self.objectives) if len(verified) else verified

    def verified_hv(self) -> float:
        """Hypervolume of the verified feasible designs, against the design's reference point."""
        verified = pd.DataFrame(self.records)
        ok = verified["feasible"].to_numpy(dtype=bool) if len(verified) else np.zeros(0, dtype=bool)
        return hypervolume(verified.loc[ok, self.objectives].to_numpy(dtype=float), self.reference) if ok.any() else 0.0

    def save_surrogate(self, folder: Path) -> Path:
        x, y = self.fit_stats["x"], self.fit_stats["y"]
        fit = {k: v for k, v in self.fit_stats.items() if k not in ("x", "y")}
        return self.surrogate.save(folder, training_metadata(oracle=self.oracle.describe(), x=x, y=y, fit=fit,
                                                              design=self.space.design.source))


def check_design(design) -> None:
    """The loop replaces layer-by-layer latency; refuse designs it cannot serve."""
    if "pipelined" in design.schedule.mode and design.workload.batch > 1:
        raise UserError(
            f"{design.source}: schedule.mode includes 'pipelined': the oracle loop supports layer_by_layer designs only "
            "(an oracle simulates whole-batch layers); set schedule.mode = \"layer_by_layer\""
        )
    if "latency_s" not in design.objectives.minimize and "latency_s" not in design.constraints:
        raise UserError(
            f"{design.source}: the oracle loop corrects latency_s, which is neither an objective nor a constraint of this design"
        )
