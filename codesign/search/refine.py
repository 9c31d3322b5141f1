"""Gradient refinement of front designs on a continuous relaxation of the analytical model.

The search spaces are discrete; the model is not far from differentiable. The relaxation:

* every numeric hardware knob the design searches (PE rows and columns, SRAM, DRAM and NoC
  bandwidth, clock) becomes a continuous variable, its logarithm, bounded by the knob's
  smallest and largest choice; the model's ceilings are straight-through (exact forward
  value, the gradient of plain division), so cycle counts have useful gradients;
* every dataflow knob becomes a softmax over its choices, and each layer's costs are the
  softmax-weighted mixture of its costs under each dataflow (the continuous relaxation of a
  categorical choice of DARTS: Liu, Simonyan & Yang, "DARTS: Differentiable Architecture
  Search", ICLR 2019);
* the technology node, the floorplan, the layer-to-core mapping and the mode stay those of
  the starting design.

From each starting design (members of the current front), torch computes the gradient of
every objective's logarithm (scale-free, so no objective drowns the others) and combines
them into one step:

* ``mgda`` — the multiple-gradient descent algorithm: the minimum-norm point of the convex
  hull of the gradients is a direction that decreases every objective at once, or zero at
  a Pareto-stationary point (Désidéri, "Multiple-gradient descent algorithm (MGDA) for
  multiobjective optimization", C. R. Acad. Sci. Paris 350, 2012; its min-norm problem is
  solved exactly over the active sets; used for learning by Sener & Koltun, "Multi-Task
  Learning as Multi-Objective Optimization", NeurIPS 2018);
* ``pcgrad`` — projecting conflicting gradients: each gradient loses its component along
  any other gradient it conflicts with (negative inner product), in random order, and the
  projected gradients are summed (Yu et al., "Gradient Surgery for Multi-Task Learning",
  NeurIPS 2020).

A design over a budget first takes steps that reduce its largest relative violation. After
every step the relaxed point is projected back to a valid discrete design (each numeric
knob to its nearest choice in log space, each dataflow to its largest weight); the distinct
projected designs are evaluated exactly, and those not dominated by their starting design
(and not equal to it) are returned, to be stored as trials of the study.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import optuna
import torch

from codesign.errors import ArgumentError, UserError
from codesign.knobs import hardware_knob, knob_names
from codesign.model.evaluator import Evaluator
from codesign.search.batch import BatchLoop
from codesign.search.pareto import dominates, feasible_mask, spread_front
from codesign.search.strategies import REFINED_PREFIX, STRATEGY_KEY
from codesign.space import DesignSpace
from codesign.vocab import DATAFLOWS, REFINE_METHODS

RELAXED_FIELDS = knob_names(relaxable=True)  # the numeric hardware knobs refinement treats as continuous
REFINE_KEY = "codesign:refined_from"  # trial system attribute: the trial a refined design started from


@dataclass
class RefineStats:
    """What one refinement cost and found."""

    method: str
    starts: int = 0
    steps: int = 0
    relaxed_evaluations: int = 0  # forward + backward passes of the relaxed model, per design
    exact_evaluations: int = 0  # distinct projected designs evaluated by the exact model
    returned: int = 0  # designs not dominated by their start (what goes to the study)
    wall_s: float = 0.0
    trials_added: int = 0
    history: list = field(default_factory=list)

    def as_dict(self) -> dict:
        out = asdict(self)
        out.pop("history")
        return out


def check_refinable(space: DesignSpace, evaluator: Evaluator) -> None:
    """Refinement differentiates the built-in model: its objectives must come from it, and a knob must relax."""
    design = space.design
    provided = evaluator.model.provides
    for name in design.objectives.minimize:
        plugin = next((type(p).__name__ for p in evaluator.plugins if name in p.provides), None)
        if name not in provided or plugin is not None:
            raise UserError(
                f"{design.source}: objectives.minimize: {name!r} comes from the plug-in {plugin}; refinement (search.refine) differentiates the "
                f"built-in model, so every objective must be one of its metrics ({', '.join(provided)}) that no plug-in replaces"
            )
    if not relaxed_columns(space) and not dataflow_columns(space):
        raise UserError(f"{design.source}: search.refine: the design searches no numeric hardware knob and no dataflow; nothing to relax")


def relaxed_columns(space: DesignSpace) -> dict[str, int]:
    """Row column of each searched numeric hardware knob, by field name."""
    return {k.name[3:]: i for i, k in enumerate(space.knobs) if k.name.startswith("hw.") and k.name[3:] in RELAXED_FIELDS}


def dataflow_columns(space: DesignSpace) -> list[int]:
    """Row columns of the dataflow knobs, in the order of their units."""
    return sorted({c for c in space.dataflow_col if c >= 0})


class Relaxation:
    """The relaxed model of a design space around a batch of starting rows."""

    def __init__(self, space: DesignSpace, evaluator: Evaluator) -> None:
        self.space, self.model = space, evaluator.model
        self.device, self.dtype = evaluator.model.device, evaluator.model.dtype
        self.numeric = relaxed_columns(space)
        self.choices = {
            name: torch.tensor([float(v) for v in space.knobs[col].choices], dtype=self.dtype, device=self.device)
            for name, col in self.numeric.items()
        }
        self.log_choices = {name: values.log() for name, values in self.choices.items()}
        if self.numeric:  # bounds of the relaxed variables: the smallest and largest choice
            self.low = torch.stack([v.min() for v in self.log_choices.values()])
            self.high = torch.stack([v.max() for v in self.log_choices.values()])
        self.df_cols = dataflow_columns(space)
        choices = space.design.schedule.dataflow
        self.df_index = torch.tensor([DATAFLOWS.index(d) for d in choices], device=self.device)  # choice → ws/os/is
        self.n_df = len(choices)
        # per layer: which dataflow knob (position in df_cols) it follows, or -1 (fixed)
        self.layer_knob = torch.tensor([self.df_cols.index(c) if c >= 0 else -1 for c in space.dataflow_col], device=self.device)
        objectives = space.design.objectives.minimize
        self.objectives = objectives
        self.budgets = [(name, float(bound)) for name, bound in space.design.constraints.items() if name in self.model.provides]

    def start(self, rows: torch.Tensor, temperature: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Relaxed variables of ``rows``: log values ``[P, H]`` and dataflow logits ``[P, K, C]``."""
        P = rows.shape[0]
        u = torch.stack([self.log_choices[n][rows[:, c]] for n, c in self.numeric.items()], dim=1) if self.numeric else torch.zeros(P, 0, dtype=self.dtype, device=self.device)
        if self.df_cols:
            codes = rows[:, torch.tensor(self.df_cols, device=rows.device)]
            logits = temperature * torch.nn.functional.one_hot(codes, self.n_df).to(self.dtype)
        else:
            logits = torch.zeros(P, 0, max(1, self.n_df), dtype=self.dtype, device=self.device)
        return u, logits

    def objectives_of(self, rows: torch.Tensor, u: torch.Tensor, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log objectives ``[P, M]`` and the largest relative budget violation ``[P]`` of the relaxed designs."""
        c = self.space.decode(rows, dtype=self.dtype)
        for j, name in enumerate(self.numeric):
            setattr(c, name, self.values(name, u[:, j]))
        weights = None
        if self.df_cols:
            P, L = rows.shape[0], self.layer_knob.shape[0]
            soft = torch.softmax(logits, dim=-1)  # [P, K, C]
            per_layer = torch.zeros(P, L, len(DATAFLOWS), dtype=self.dtype, device=self.device)
            fixed = self.layer_knob < 0
            knob_layers = (~fixed).nonzero().squeeze(1)
            mixed = torch.zeros(P, len(knob_layers), len(DATAFLOWS), dtype=self.dtype, device=self.device)
            mixed = mixed.index_add(2, self.df_index, soft[:, self.layer_knob[knob_layers], :])
            per_layer = per_layer.index_copy(1, knob_layers, mixed)
            if fixed.any():
                one_hot = torch.nn.functional.one_hot(c.dataflow[:, fixed], len(DATAFLOWS)).to(self.dtype)
                per_layer = per_layer.index_copy(1, fixed.nonzero().squeeze(1), one_hot)
            weights = per_layer
        metrics = self.model.evaluate(c, dataflow_weights=weights).metrics
        logs = torch.stack([metrics[name].log() for name in self.objectives], dim=1)
        if self.budgets:
            violation = torch.stack([(metrics[name] / bound).log() for name, bound in self.budgets], dim=1).amax(dim=1)
        else:
            violation = torch.full((rows.shape[0],), -1.0, dtype=self.dtype, device=self.device)
        return logs, violation

    def values(self, name: str, u: torch.Tensor) -> torch.Tensor:
        """The knob's value ``exp(u)``, straight-through: forward a choice exactly where ``u`` is on one
        (``exp(log(16))`` is not 16, and the model's ceilings would notice), PE counts as whole numbers."""
        value = u.exp()
        nearest = self.choices[name][(u[:, None] - self.log_choices[name][None, :]).abs().argmin(dim=1)]
        forward = torch.where((value - nearest).abs() <= 1e-9 * nearest, nearest, value)
        if hardware_knob(name).whole:
            forward = forward.round().clamp_min(1.0)
        return value + (forward - value).detach()

    def project(self, rows: torch.Tensor, u: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """The nearest valid discrete designs: rows with the relaxed knobs rounded."""
        out = rows.clone()
        for j, (name, col) in enumerate(self.numeric.items()):
            out[:, col] = (u[:, j, None] - self.log_choices[name][None, :]).abs().argmin(dim=1)
        if self.df_cols:
            out[:, torch.tensor(self.df_cols, device=rows.device)] = logits.argmax(dim=-1)
        return out

    def clamp(self, u: torch.Tensor) -> torch.Tensor:
        if not self.numeric:
            return u
        return torch.maximum(torch.minimum(u, self.high), self.low)


def min_norm_weights(gram: torch.Tensor) -> torch.Tensor:
    """Weights ``[P, K]`` on the simplex minimising ``‖Σ w_k g_k‖²``, given the Gram matrices ``[P, K, K]``.

    Exact, by enumerating the active sets: for each subset ``S`` of the gradients, the minimum
    of ``wᵀGw`` on the affine hull ``Σ w = 1`` solves the KKT system ``[G_SS 1; 1ᵀ 0]``; the
    best solution with ``w ≥ 0`` is the minimum over the simplex. ``K`` is the number of
    objectives (and a budget), so the ``2^K − 1`` subsets are few.
    """
    P, K, _ = gram.shape
    best_w = torch.zeros(P, K, dtype=gram.dtype, device=gram.device)
    best_v = torch.full((P,), math.inf, dtype=gram.dtype, device=gram.device)
    scale = gram.diagonal(dim1=1, dim2=2).amax(dim=1).clamp_min(1e-300)  # conditioning: solve on G / max ‖g‖²
    g = gram / scale[:, None, None]
    for mask in range(1, 2**K):
        idx = torch.tensor([k for k in range(K) if mask >> k & 1], device=gram.device)
        n = len(idx)
        kkt = torch.zeros(P, n + 1, n + 1, dtype=gram.dtype, device=gram.device)
        kkt[:, :n, :n] = g[:, idx][:, :, idx]
        kkt[:, :n, n] = 1.0
        kkt[:, n, :n] = 1.0
        rhs = torch.zeros(P, n + 1, dtype=gram.dtype, device=gram.device)
        rhs[:, n] = 1.0
        sol = (torch.linalg.pinv(kkt) @ rhs[:, :, None])[:, :n, 0]
        w = torch.zeros(P, K, dtype=gram.dtype, device=gram.device).index_copy(1, idx, sol)
        ok = (sol >= -1e-12).all(dim=1) & ((sol.sum(dim=1) - 1).abs() < 1e-9)
        value = torch.einsum("pk,pkj,pj->p", w, g, w)
        better = ok & (value < best_v)
        best_w = torch.where(better[:, None], w.clamp_min(0.0), best_w)
        best_v = torch.where(better, value, best_v)
    return best_w / best_w.sum(dim=1, keepdim=True)


def combine(grads: torch.Tensor, method: str, gen: torch.Generator) -> torch.Tensor:
    """One descent direction ``[P, N]`` from per-objective gradients ``[P, K, N]`` (MGDA or PCGrad)."""
    if method == "mgda":
        w = min_norm_weights(torch.einsum("pkn,pjn->pkj", grads, grads))
        return torch.einsum("pk,pkn->pn", w, grads)
    K = grads.shape[1]
    projected = grads.clone()
    for i in range(K):
        for j in torch.randperm(K, generator=gen).tolist():
            if j == i:
                continue
            g_j = grads[:, j]
            dot = (projected[:, i] * g_j).sum(dim=1, keepdim=True)
            norm = (g_j * g_j).sum(dim=1, keepdim=True).clamp_min(1e-300)
            projected[:, i] = projected[:, i] - torch.where(dot < 0, dot / norm, 0.0) * g_j
    return projected.sum(dim=1)


def refine_rows(space: DesignSpace, evaluator: Evaluator, start: torch.Tensor, *, method: str = "mgda", steps: int = 20,
                step_size: float = 0.3, seed: int = 0, stop=None) -> tuple[np.ndarray, np.ndarray, RefineStats]:
    """Refine the designs ``start`` (integer rows ``[P, D]``); returns ``(rows, origin, stats)``.

    ``rows`` are the distinct projected designs that are feasible, differ from their
    starting design and are not dominated by it (objectives of the exact model, budgets
    as constrained domination: a feasible start dominates an infeasible design);
    ``origin[i]`` is the index in ``start`` that ``rows[i]`` came from. ``stop()``, checked
    before each step, ends the steps early (a signal): what the steps so far found is kept.
    """
    if method not in REFINE_METHODS or method == "none":
        raise ArgumentError("refine", method, f"expected {' or '.join(m for m in REFINE_METHODS if m != 'none')}")
    t0 = time.perf_counter()
    stats = RefineStats(method=method, starts=int(start.shape[0]), steps=steps)
    relax = Relaxation(space, evaluator)
    start = start.to(relax.device, torch.long)
    gen = torch.Generator().manual_seed(seed)
    u, logits = relax.start(start)
    shape_u, shape_l = u.shape, logits.shape
    candidates, origin = [], []
    for step in range(steps):
        if stop is not None and stop() and candidates:
            break
        u = u.detach().requires_grad_(bool(relax.numeric))
        logits = logits.detach().requires_grad_(bool(relax.df_cols))
        params = [p for p in (u, logits) if p.requires_grad]
        logs, violation = relax.objectives_of(start, u, logits)
        stats.relaxed_evaluations += int(start.shape[0])
        grads = []
        for k in range(logs.shape[1] + 1):
            target = logs[:, k] if k < logs.shape[1] else violation
            if not target.requires_grad:  # no budget on a model metric: nothing to restore
                grads.append(torch.zeros_like(grads[0]))
                continue
            g = torch.autograd.grad(target.sum(), params, retain_graph=True, allow_unused=True)
            g = [torch.zeros_like(p) if gi is None else gi for p, gi in zip(params, g)]
            grads.append(torch.cat([gi.reshape(gi.shape[0], -1) for gi in g], dim=1))
        grads = torch.nan_to_num(torch.stack(grads, dim=1).detach())  # [P, M + 1, N]
        over = (violation.detach() > 0)[:, None]
        direction = torch.where(over, grads[:, -1], combine(grads[:, :-1], method, gen))
        norm = direction.norm(dim=1, keepdim=True)
        move = torch.where(norm > 1e-12, direction / norm.clamp_min(1e-12), 0.0) * step_size
        flat = torch.cat([u.detach().reshape(len(start), -1), logits.detach().reshape(len(start), -1)], dim=1) - move
        u = relax.clamp(flat[:, : shape_u[1]].reshape(shape_u))
        logits = flat[:, shape_u[1]:].reshape(shape_l)
        stats.history.append(float(norm.median()))
        candidates.append(relax.project(start, u, logits))
        origin.append(torch.arange(len(start), device=relax.device))
    rows = torch.cat(candidates).cpu() if candidates else torch.zeros(0, space.dimension, dtype=torch.long)
    origin_t = torch.cat(origin).cpu() if origin else torch.zeros(0, dtype=torch.long)
    keys = space.canonical(rows).numpy()
    _, first = np.unique(np.concatenate([keys, origin_t.numpy()[:, None]], axis=1), axis=0, return_index=True)
    first = np.sort(first)
    rows, origin_t = rows[first], origin_t[first]
    start_cpu = start.cpu()
    same = (space.canonical(rows) == space.canonical(start_cpu)[origin_t]).all(dim=1)
    rows, origin_t = rows[~same], origin_t[~same]
    kept = np.zeros(len(rows), dtype=bool)
    if len(rows):
        values, _ = evaluator.evaluate_rows(rows)
        start_values, _ = evaluator.evaluate_rows(start_cpu)
        stats.exact_evaluations = len(rows) + len(start_cpu)
        names = evaluator.metric_names
        obj = [names.index(o) for o in space.design.objectives.minimize]
        feasible = feasible_mask(values, names, space.design.constraints)
        start_feasible = feasible_mask(start_values, names, space.design.constraints)
        o = origin_t.numpy()
        dominated = dominates(start_values[o][:, obj], values[:, obj]) | (start_feasible[o] & ~feasible)
        kept = feasible & ~dominated
    stats.returned = int(kept.sum())
    stats.wall_s = time.perf_counter() - t0
    return rows.numpy()[kept], origin_t.numpy()[kept], stats


def front_starts(space: DesignSpace, trials, k: int) -> tuple[torch.Tensor, list[int]]:
    """Rows and trial numbers of up to ``k`` feasible front trials, spread along the front."""
    stored = [(t, space.packed.row(t)) for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    usable = [t for t, row in stored if row is not None]
    if not usable:
        return torch.zeros(0, space.dimension, dtype=torch.long), []
    rows = np.array([row for _, row in stored if row is not None], dtype=np.int64)
    picked = spread_front(usable, rows, list(range(space.dimension)), k)
    index = {r.tobytes(): t.number for r, t in zip(rows, usable)}
    return torch.tensor(np.stack(picked), dtype=torch.long), [index[p.tobytes()] for p in picked]


def refine_reserve(design, trials: int) -> int:
    """Trials a run of ``trials`` keeps for refinement: what it could return at most
    (``refine_starts × refine_steps``), but never more than a quarter of the run."""
    return min(design.search.refine_starts * design.search.refine_steps, trials // 4)


def refine_front(space: DesignSpace, evaluator: Evaluator, persistent: optuna.Study, *, method: str, seed: int = 0,
                 starts: int = 32, steps: int = 20, say=print, max_trials: int | None = None, stop=None) -> RefineStats:
    """Refine the study's front and add the refined designs to it as trials (``codesign:refined_from``):
    at most ``max_trials`` of them (the first found), so that a run stays within its total."""
    rows, numbers = front_starts(space, persistent.get_trials(deepcopy=False), starts)
    if not numbers:
        say("refine: no feasible trial to start from; nothing refined")
        return RefineStats(method=method)
    found, origin, stats = refine_rows(space, evaluator, rows, method=method, steps=steps, seed=seed, stop=stop)
    if max_trials is not None:
        found, origin = found[: max(max_trials, 0)], origin[: max(max_trials, 0)]
    if len(found):
        loop = BatchLoop(space, evaluator, persistent, fast_storage=True, say=say)
        attrs = [{STRATEGY_KEY: f"{REFINED_PREFIX}{method}", REFINE_KEY: numbers[i]} for i in origin]
        loop.run(found, t0=time.perf_counter(), system_attrs=attrs, study_attrs={})
        stats.trials_added = len(found)
    say(f"refine ({method}): {stats.starts} front designs, {steps} steps → {stats.returned} refined designs not dominated by their start")
    return stats
