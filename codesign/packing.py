"""How a trial's knobs are stored: scalar knobs as Optuna params, per-layer knobs packed.

Optuna stores every parameter of a trial with its distribution, in every trial: a journal line
repeats each knob's name twice and its distribution once, and an RDB storage writes a row per
knob. A design space has a few scalar knobs (``hw.pe_rows``, ``sched.mode``) and families of
per-unit schedule knobs (``sched.dataflow.<layer>``, ``sched.core.<layer>``, with fusion
``sched.fuse/tile/split/split_axis.<layer>``): on ResNet-50, 7 scalar knobs and 108 per-layer
ones, 19.6 KB of journal per trial when all are params.

So a stored trial holds its scalar knobs as Optuna params (what optuna-dashboard's parameter
plots and importances show) and each family of per-unit knobs as one list of values, in unit
order, in the trial user attribute :data:`SCHEDULE_ATTR`::

    user_attrs["schedule"] = {"sched.dataflow": ["ws", "os", ...], "sched.core": [3, 0, ...]}

and the study user attribute :data:`UNITS_ATTR` names the units of each family once. A trial
whose params hold every knob (Optuna's own samplers, runs written before this form) reads the
same: :meth:`PackedForm.row` takes each knob from the params first.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

#: Trial user attribute: the trial's per-unit schedule knobs, one list of values per family.
SCHEDULE_ATTR = "schedule"
#: Study user attribute: each family's unit names, in the order of its list.
UNITS_ATTR = "schedule_units"


class KnobLike(Protocol):
    name: str
    family: str | None
    distribution: Any

    def encode(self, value: Any) -> int: ...

    def decode(self, code: int) -> Any: ...


class TrialLike(Protocol):
    params: Mapping[str, Any]
    user_attrs: Mapping[str, Any]


class PackedForm:
    """The stored form of a space's knobs (:mod:`codesign.packing`).

    Args:
        knobs: the space's knobs in row order; a knob with a ``family`` is stored packed.
    """

    def __init__(self, knobs: Sequence[KnobLike]) -> None:
        self.knobs = list(knobs)
        self.scalar_cols = [i for i, k in enumerate(self.knobs) if k.family is None]
        self.families: dict[str, list[int]] = {}
        for i, k in enumerate(self.knobs):
            if k.family is not None:
                self.families.setdefault(k.family, []).append(i)
        self.distributions = {self.knobs[i].name: self.knobs[i].distribution for i in self.scalar_cols}
        self._decoded = [[k.decode(c) for c in range(_size(k))] for k in self.knobs]

    @property
    def units(self) -> dict[str, list[str]]:
        """Each family's unit names in list order (the study attribute :data:`UNITS_ATTR`)."""
        return {f: [self.knobs[i].name[len(f) + 1:] for i in cols] for f, cols in self.families.items()}

    def split(self, row: Sequence[int]) -> tuple[dict[str, Any], dict[str, list]]:
        """One code row → (the Optuna params of its scalar knobs, its packed families)."""
        decoded = self._decoded
        params = {self.knobs[i].name: decoded[i][row[i]] for i in self.scalar_cols}
        packed = {f: [decoded[i][row[i]] for i in cols] for f, cols in self.families.items()}
        return params, packed

    def row(self, trial: TrialLike) -> list[int] | None:
        """The code row of a stored trial (either form); ``None`` if it lacks a knob."""
        params, packed = trial.params, trial.user_attrs.get(SCHEDULE_ATTR) or {}
        row = [0] * len(self.knobs)
        for i in self.scalar_cols:
            knob = self.knobs[i]
            if knob.name not in params:
                return None
            row[i] = knob.encode(params[knob.name])
        for family, cols in self.families.items():
            values = packed.get(family)
            if values is not None and len(values) != len(cols):
                return None
            for j, i in enumerate(cols):
                knob = self.knobs[i]
                if values is not None:
                    row[i] = knob.encode(values[j])
                elif knob.name in params:
                    row[i] = knob.encode(params[knob.name])
                else:
                    return None
        return row

    def columns(self, trials: Iterable[TrialLike]) -> dict[str, list]:
        """Every knob's value over ``trials``, one list per knob in row order (``None`` where a trial
        lacks it): the knob columns of ``trials.csv``, each family's by transposing its lists."""
        trials = list(trials)
        out: dict[str, list] = {}
        for i in self.scalar_cols:
            name = self.knobs[i].name
            out[name] = [t.params.get(name) for t in trials]
        for family, cols in self.families.items():
            lists = [self._family_values(t, family, cols) for t in trials]
            transposed = zip(*lists) if lists else ([] for _ in cols)
            for i, column in zip(cols, transposed):
                out[self.knobs[i].name] = list(column)
        return {k.name: out[k.name] for k in self.knobs}

    def _family_values(self, trial: TrialLike, family: str, cols: list[int]) -> list:
        values = (trial.user_attrs.get(SCHEDULE_ATTR) or {}).get(family)
        if values is not None and len(values) == len(cols):
            return values
        return [trial.params.get(self.knobs[i].name) for i in cols]


def stored_key(trial: TrialLike) -> str:
    """A stored trial's knobs as one string (its params and packed families): equal for equal stored
    designs, whichever codesign wrote them; what a check for unmarked repeats compares."""
    return json.dumps([trial.params, trial.user_attrs.get(SCHEDULE_ATTR)], sort_keys=True)


def _size(knob: KnobLike) -> int:
    choices = getattr(knob, "choices", None)
    return len(choices) if choices is not None else int(getattr(knob, "high")) + 1
