"""Plug-in cost models: the ``CostModel`` protocol, loading, and the evaluator that chains them.

A plug-in is any Python object with

* ``provides``: a tuple of metric names it computes (``"cost_usd"``, or a new one such as
  ``"carbon_kg"``), and
* ``evaluate(candidates, metrics) -> Mapping[str, Tensor]``: given the population
  (:class:`~codesign.space.Candidates`, tensors ``[P]`` / ``[P, L]``) and the metrics
  computed so far (the built-in model's and earlier plug-ins', tensors ``[P]``), return a
  ``[P]`` tensor (or array) for every name in ``provides``. A returned metric replaces the
  built-in one of the same name.

It is named in a design file as ``package.module:attr`` (a class is instantiated with no
arguments; an instance is used as is) or by the name of an entry point in the group
``codesign.cost_models``. A plug-in that raises or returns NaN fails only the trials
concerned, with its message recorded; the search goes on.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from codesign.errors import PluginError
from codesign.loader import instantiate, load_entry_point, load_object, split_spec

if TYPE_CHECKING:
    import torch

    from codesign.space import Candidates

ENTRY_POINT_GROUP = "codesign.cost_models"


@runtime_checkable
class CostModel(Protocol):
    """What a plug-in cost model provides (see the module docstring)."""

    provides: tuple[str, ...]

    def evaluate(self, candidates: Candidates, metrics: Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]: ...


def load_plugin(spec: str, *, source: str = "<design>") -> CostModel:
    """Import the plug-in named by ``spec`` (``package.module:attr`` or an entry-point name).

    Modules are looked up on ``sys.path`` and, for a design file, in the design file's
    own folder, so a plug-in can sit next to the design that uses it.
    """
    where = f"{source}: cost_model.plugins entry {spec!r}"
    if split_spec(spec) is not None:
        design_dir = Path(source).resolve().parent if Path(source).is_file() else None
        obj = load_object(spec, where=where, search_dir=design_dir)
    else:
        obj = load_entry_point(ENTRY_POINT_GROUP, spec, where=where)
    obj = instantiate(obj, where=where)
    provides = getattr(obj, "provides", None)
    if not callable(getattr(obj, "evaluate", None)) or not isinstance(provides, (tuple, list)) or not provides or not all(isinstance(p, str) for p in provides):
        raise PluginError(f"{where}: expected an object with a non-empty tuple of metric names 'provides' and a method 'evaluate(candidates, metrics)'")
    obj.provides = tuple(provides)
    return obj


def load_plugins(specs, *, source: str) -> list[CostModel]:
    """Every plug-in a design names, in order."""
    return [load_plugin(spec, source=source) for spec in specs]
