"""Oracles: slow, trusted per-layer cycle models (SCALE-Sim, a command-line simulator, an emulated one).

See :mod:`codesign.oracles.base` for the protocol and the registry, :mod:`codesign.oracles.jobs`
and :mod:`codesign.oracles.cache` for a query and its cache (failures included), :mod:`codesign.oracles.process`
for simulator processes that are killed with their children, :mod:`codesign.oracles.designs` for the
design-level adapter, and ``docs/surrogate.md`` for the surrogate-assisted search that spends them sparingly.
"""

from codesign.oracles.base import (
    BUILTIN,
    LayerJob,
    LayerResult,
    Oracle,
    OracleCostModel,
    OracleJobError,
    OracleStopped,
    design_jobs,
    get_oracle,
    oracle_evaluate,
)
from codesign.model.schedule import schedule_latency

__all__ = [
    "BUILTIN",
    "LayerJob",
    "LayerResult",
    "Oracle",
    "OracleCostModel",
    "OracleJobError",
    "OracleStopped",
    "design_jobs",
    "get_oracle",
    "oracle_evaluate",
    "schedule_latency",
]
