"""Energy by component of chosen designs: ``front.csv``'s ``energy_*_j`` columns, ``energy.png``, and
the parts ``codesign evaluate`` and ``codesign show`` list.

The parts (:data:`codesign.vocab.ENERGY_PARTS`) are the built-in model's, computed in detail for the
designs asked about only (the search's evaluations never pay for them); they sum to the model's
``energy_j``. A plug-in that replaces ``energy_j`` does not change them. A model without them (an LLM
design's) gives none: no columns, no plot.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch

from codesign.model.analytical import AnalyticalModel
from codesign.space import DesignSpace
from codesign.vocab import ENERGY_PARTS, energy_column


def trial_params(space: DesignSpace, record) -> dict[str, Any]:
    """A stored trial's knob values (a row of ``trials.csv`` / ``front.csv``) as the space's params."""
    params = {}
    for knob in space.knobs:
        value = record[knob.name]
        params[knob.name] = type(knob.choices[0])(value) if knob.choices else int(value)
    return params


def energy_parts(model, space: DesignSpace, rows: torch.Tensor) -> dict[str, torch.Tensor] | None:
    """Energy by component ``[P]`` of the integer rows ``[P, D]``, from the analytical model's direct path
    (no tables to build for a few designs); ``None`` for a model without them (an LLM's), unevaluated."""
    if not isinstance(model, AnalyticalModel):
        return None
    return model.evaluate_direct(space.decode(rows.to(model.device), dtype=model.dtype), detail=True).energy_parts


def design_energy_parts(model, space: DesignSpace, row: torch.Tensor) -> dict[str, float]:
    """One design's parts (``row`` ``[1, D]``) by column name (``energy_mac_j``, ...); empty when none."""
    parts = energy_parts(model, space, row)
    return {} if parts is None else {energy_column(name): float(parts[name][0]) for name in ENERGY_PARTS}


def with_energy_parts(space: DesignSpace, front: pd.DataFrame, model=None) -> pd.DataFrame:
    """``front`` with one column per energy part (its designs evaluated in detail by ``model``, by
    default the space's built-in model); unchanged when the model has no parts."""
    if "llm" in space.workload.graph:  # an LLM's model (codesign.model.llm) has no parts: nothing to build
        return front
    if front.empty:
        return front.assign(**{energy_column(name): pd.Series(dtype=float) for name in ENERGY_PARTS})
    model = AnalyticalModel(space) if model is None else model
    rows = torch.tensor([space.encode(trial_params(space, record)) for _, record in front.iterrows()], dtype=torch.long)
    parts = energy_parts(model, space, rows.reshape(len(front), space.dimension))
    if parts is None:
        return front
    return front.assign(**{energy_column(name): parts[name].detach().cpu().double().numpy() for name in ENERGY_PARTS})
