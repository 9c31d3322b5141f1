"""codesign: joint hardware/schedule co-design of DNN accelerators.

The public API (see the README):

* :func:`load_design` — read and validate a design file;
* :func:`explore` — run the joint NSGA-II search, write the run folder, return a :class:`Run`;
* :func:`open_run`, :func:`report`, :func:`show` — read a run, redraw its plots, inspect one design;
* :func:`describe_workload` — import a network (zoo, PyTorch module, torchvision, ONNX) and describe it;
* :func:`evaluate` — the metrics and per-layer schedule of one exact design;
* :class:`DesignSpace`, :class:`AnalyticalModel`, :class:`Evaluator`, :class:`CostModel` — the pieces, for notebooks and plug-ins;
* :class:`Oracle`, :class:`LayerJob` — to wrap a slow trusted simulator as an oracle.
"""

from importlib import import_module

from codesign.errors import ArgumentError, DesignError, PluginError, UserError

__version__ = "0.1.0"

# Imported on first use, so that `codesign --help` and `codesign cycles` start without
# loading optuna, pandas and matplotlib.
_LAZY = {
    "Run": "codesign.api",
    "build": "codesign.api",
    "evaluate": "codesign.api",
    "explore": "codesign.api",
    "describe_workload": "codesign.api",
    "open_run": "codesign.api",
    "report": "codesign.api",
    "show": "codesign.api",
    "Design": "codesign.design",
    "load_design": "codesign.design",
    "parse_design": "codesign.design",
    "AnalyticalModel": "codesign.model.analytical",
    "CostModel": "codesign.model.plugins",
    "Evaluator": "codesign.model.evaluator",
    "LayerJob": "codesign.oracles.base",
    "Oracle": "codesign.oracles.base",
    "Candidates": "codesign.space",
    "DesignSpace": "codesign.space",
}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'codesign' has no attribute {name!r}")

__all__ = [
    "AnalyticalModel",
    "ArgumentError",
    "Candidates",
    "CostModel",
    "Design",
    "DesignError",
    "DesignSpace",
    "Evaluator",
    "LayerJob",
    "Oracle",
    "PluginError",
    "Run",
    "UserError",
    "build",
    "evaluate",
    "explore",
    "load_design",
    "open_run",
    "parse_design",
    "report",
    "show",
    "describe_workload",
]
