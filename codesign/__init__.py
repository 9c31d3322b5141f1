"""codesign: joint hardware/schedule co-design of DNN accelerators.

The public API (see the README):

* :func:`load_design` — read and validate a design file;
* :func:`explore` — run the joint NSGA-II search, write the run folder, return a :class:`Run`;
* :func:`open_run`, :func:`report`, :func:`show` — read a run, redraw its plots, inspect one design;
* :class:`DesignSpace`, :class:`AnalyticalModel`, :class:`CostModel` — the pieces, for notebooks and plug-ins.
"""

from codesign.api import Run, build, explore, open_run, report, show
from codesign.design import Design, load_design, parse_design
from codesign.errors import DesignError, PluginError, UserError
from codesign.model.analytical import AnalyticalModel
from codesign.model.plugins import CostModel, Evaluator
from codesign.space import Candidates, DesignSpace

__version__ = "0.1.0"

__all__ = [
    "AnalyticalModel",
    "Candidates",
    "CostModel",
    "Design",
    "DesignError",
    "DesignSpace",
    "Evaluator",
    "PluginError",
    "Run",
    "UserError",
    "build",
    "explore",
    "load_design",
    "open_run",
    "parse_design",
    "report",
    "show",
]
