"""The shared vocabularies: every name a user writes or a column carries, written once.

The design schema's literals, the shell's ``choices=`` and every string ↔ integer code in the
model, the oracles and the surrogate come from here. A value's position in its tuple is its
integer code where one is needed (``DATAFLOWS.index("os") == 1``), so codes are stable.
"""

from __future__ import annotations

#: Metrics the built-in model reports; every one of them is minimised (SI units in the names).
#: ``carbon_kg`` is the embodied carbon of one good packaged die and ``carbon_operational_kg`` the
#: carbon of the energy it spends over its lifetime (``[carbon]`` of the design file; ACT, ISCA 2022).
METRICS = ("latency_s", "energy_j", "area_mm2", "cost_usd", "power_w", "carbon_kg", "carbon_operational_kg")

#: The components a design's energy is split into, in joules (``docs/model.md``, "Energy by
#: component"): the MACs, their register-file traffic, each SRAM partition (the vector unit's SRAM
#: reads and writes included), the vector unit's operations, the NoC (DRAM traffic to and from the
#: ports, and transfers between layers), die-to-die links, DRAM and leakage over the run. They sum
#: to ``energy_j``. Reported per design in detail (:func:`energy_column` names the columns).
ENERGY_PARTS = ("mac", "rf", "sram_ifmap", "sram_filter", "sram_ofmap", "vector", "noc", "d2d", "dram", "leakage")


def energy_column(part: str) -> str:
    """The column (and JSON key) of an energy part: ``"mac"`` → ``"energy_mac_j"``."""
    return f"energy_{part}_j"


#: The energy parts' columns, in :data:`ENERGY_PARTS` order (``front.csv``, ``codesign evaluate``).
ENERGY_COLUMNS = tuple(energy_column(part) for part in ENERGY_PARTS)

#: Metrics of an LLM workload (``codesign.model.llm``), besides :data:`METRICS`: time to first token,
#: time per output token, tokens per second, energy per output token, the bytes of the weights and of
#: the KV cache, and DRAM use (weights + KV cache over ``hardware.dram_gib``; above 1 does not fit).
#: All are minimised or bounded above like the others, except ``tokens_per_s`` (reported; minimise ``tpot_s``).
LLM_METRICS = ("ttft_s", "tpot_s", "tokens_per_s", "energy_per_token_j", "weight_bytes", "kv_cache_bytes", "dram_use")

#: Phases of LLM inference: the prompt, one decode step, or a request (prefill + output tokens).
PHASES = ("prefill", "decode", "serve")

#: Where an LLM's KV cache lives during decode: DRAM (read every step), or SRAM when it fits.
KV_HOMES = ("dram", "sram")

#: Systolic dataflows: weight-, output- and input-stationary (SCALE-Sim's ``ws``/``os``/``is``).
#: Their codes 0, 1, 2 are what the model's ``[P, L]`` dataflow tensors hold.
DATAFLOWS = ("ws", "os", "is")
WS, OS, IS = range(3)

#: Execution modes of a whole network: each layer runs the whole batch, or samples stream through the cores.
MODES = ("layer_by_layer", "pipelined")

#: Layer-to-core mapping policies of the schedule.
MAPPINGS = ("search", "round_robin", "single_core")

#: How many layers share one dataflow/core knob.
GRANULARITIES = ("layer", "group", "network")

#: Layer fusion of a layer-by-layer schedule: none (every layer's result goes through SRAM/DRAM
#: whole), every fusable boundary fused, or a fuse-or-not knob per fusable boundary.
FUSIONS = ("none", "all", "search")

#: How a layer split over several cores divides its work: by output channels or by output rows.
SPLIT_AXES = ("channels", "rows")

#: DRAM interface kinds the model prices (energy per byte, PHY area per port).
DRAM_KINDS = ("ddr4", "lpddr4", "hbm2")

#: Sources of the technology constants (``hardware.tech``): the built-in tables of
#: codesign.hardware.tech, or the tables generated with hwcomponents (CACTI) in data/hwcomponents/.
TECH_SOURCES = ("builtin", "cacti")

#: Package types of a design's dies (:mod:`codesign.hardware.package`): one die, or several on an organic
#: substrate, an integrated fan-out (InFO) redistribution layer, or a 2.5D silicon interposer.
PACKAGES = ("monolithic", "organic", "info", "interposer_2_5d")

#: Operand widths in bytes: int8, fp16/bf16, fp32.
PRECISIONS = (1, 2, 4)

#: Search strategies (:mod:`codesign.search.strategies`).
STRATEGIES = ("joint", "sequential", "random")

#: Samplers of the joint strategy: the engine's generation-level NSGA-II, Optuna's NSGA-III and TPE.
SAMPLERS = ("nsga2", "nsga3", "tpe")

#: Gradient refinement of the front after the search (:mod:`codesign.search.refine`).
REFINE_METHODS = ("none", "mgda", "pcgrad")

#: What an importer does with an operator it cannot map: stop naming it, or skip it and list it.
UNSUPPORTED = ("error", "skip")

#: Output formats of ``codesign workload`` and ``codesign evaluate``.
FORMATS = ("json", "csv", "table")

#: Where the model runs.
DEVICES = ("auto", "cpu", "cuda")


def dataflow_code(name: str) -> int:
    """The integer code of a dataflow name (``"os"`` → 1)."""
    return DATAFLOWS.index(name)


def one_of(values: tuple) -> str:
    """``a, b or c``: the allowed values, as error messages list them."""
    names = [str(v) for v in values]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
