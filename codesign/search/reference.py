"""One hypervolume reference point per design, so that two runs of the same design compare.

:func:`codesign.search.pareto.reference_point` of a run's own feasible trials moves with the
run: a second seed that finds a worse nadir gets a larger box, and its hypervolume is not
comparable with the first run's (nor with an oracle run's, nor with a run resumed to more
trials). The rule here depends on the design file only:

* an objective the design **budgets** (``constraints.<metric>``) has the budget as its
  reference: every feasible design is within it, and a design at the budget adds nothing;
* any other objective has ``nadir + 0.1·(nadir − ideal)`` (:func:`~codesign.search.pareto.reference_point`)
  of a **fixed sample of the design space**: ``REFERENCE_SAMPLE`` designs drawn uniformly
  from every knob's choices with the fixed seed ``REFERENCE_SEED`` (not the run's), evaluated
  by the design's model and plug-ins; the sample's feasible designs when it has any, else
  all of its finite ones.

A point beyond the reference in some objective adds no volume (the usual convention); the
sample is broad, so in practice only designs worse than most random ones fall there.
"""

from __future__ import annotations

import numpy as np
import torch

from codesign.model.evaluator import Evaluator
from codesign.model.plugins import load_plugins
from codesign.search.pareto import feasible_mask, reference_point

REFERENCE_SAMPLE = 1024
REFERENCE_SEED = 20240601
REFERENCE_RULE = (f"budget where the design has one, else nadir + 0.1·(nadir − ideal) of {REFERENCE_SAMPLE} designs drawn "
                  f"uniformly from the design space with seed {REFERENCE_SEED} (the design's own sample, not the run's)")


def sample_rows(space, n: int = REFERENCE_SAMPLE, seed: int = REFERENCE_SEED) -> torch.Tensor:
    """``n`` rows ``[n, D]`` drawn uniformly from every knob's codes with a fixed generator."""
    generator = torch.Generator().manual_seed(seed)
    sizes = [len(k.choices) if k.choices is not None else k.high + 1 for k in space.knobs]
    if not sizes:
        return torch.zeros(n, 0, dtype=torch.long)
    return torch.stack([torch.randint(0, size, (n,), generator=generator) for size in sizes], dim=1)


def design_reference_point(space, evaluator=None, objectives: list[str] | None = None) -> np.ndarray:
    """The reference point ``[m]`` of ``space``'s design for ``objectives`` (default: the design's).

    ``evaluator``: the design's :class:`~codesign.model.evaluator.Evaluator` (built-in model and
    plug-ins; default: built here on the cpu); its metric names must include every objective and budget.
    """
    design = space.design
    if evaluator is None:
        evaluator = Evaluator(space, load_plugins(design.cost_model.plugins, source=design.source))
    objectives = list(design.objectives.minimize if objectives is None else objectives)
    names = evaluator.metric_names
    values, _ = evaluator.evaluate_rows(sample_rows(space))
    objs = values[:, [names.index(o) for o in objectives]]
    finite = np.isfinite(objs).all(axis=1)
    feasible = feasible_mask(values, names, dict(design.constraints)) & finite
    pool = objs[feasible] if feasible.any() else objs[finite]
    ref = reference_point(pool) if len(pool) else np.ones(len(objectives))
    for j, name in enumerate(objectives):
        if name in design.constraints:
            ref[j] = float(design.constraints[name])
    return ref
