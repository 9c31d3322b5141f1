"""Stream 0.0.8 (KU Leuven) on its own ResNet-18 example: the first eight layers of ResNet-18
(inputs.examples.workload.resnet18_few_layers) on its quad-core TPU-like chip
(inputs.examples.hardware.TPU_like_quad_core: four 32×32 cores, a pooling core, a SIMD core, a 2×2
mesh, off-chip DRAM), layer by layer (a whole layer per computation node, hint_loops = []) and fused
with one output row per tile (hint_loops = [("OY", "all")]), as stream/api.py's example runs it
but with a smaller genetic algorithm for the layer-core allocation (--individuals, --generations).
Writes data/stream/resnet18_quad_core.json.

Made in a side environment (Stream pins old numpy and pandas):

    python3 -m venv /tmp/stream-venv
    /tmp/stream-venv/bin/pip install stream-dse==0.0.8 zigzag-dse==2.4.3 plotly "pandas<2.3" "numpy<2" "ml_dtypes>=0.5.4,<0.6"
    cd /tmp/stream-run && /tmp/stream-venv/bin/python /path/to/codesign/data/stream/run_stream.py --out /path/to/codesign/data/stream/resnet18_quad_core.json
"""

import argparse
import importlib
import json
import logging
import platform
import time

from zigzag.classes.stages import *  # noqa: F403 (Stream's own example does the same)
from stream.classes.stages import *  # noqa: F403
from stream.classes.opt.allocation.genetic_algorithm.genetic_algorithm import GeneticAlgorithm

ACCELERATOR = "stream.inputs.examples.hardware.TPU_like_quad_core"
WORKLOAD = "stream.inputs.examples.workload.resnet18_few_layers"
MAPPING = "stream.inputs.examples.mapping.tpu_like_quad_core"


def _fastest_of_hall_of_fame(self):
    """InterCoreMappingStage.run, yielding the fastest allocation of the genetic algorithm's hall of
    fame (Stream 0.0.8 yields its last one, and nothing unless it plots: UnboundLocalError)."""
    if self.individual_length == 0:
        yield self.fitness_evaluator.get_fitness([], return_scme=True)[-1], None
        return
    self.genetic_algorithm = GeneticAlgorithm(self.fitness_evaluator, self.individual_length, self.valid_allocations,  # noqa: F405
                                              self.nb_generations, self.nb_individuals)
    _, hof = self.genetic_algorithm.run()
    scmes = [self.fitness_evaluator.get_fitness(allocation, return_scme=True)[-1] for allocation in hof]
    yield min(scmes, key=lambda scme: scme.latency), None


def run(hint_loops, name: str, individuals: int, generations: int) -> dict:
    started = time.perf_counter()
    importlib.reload(importlib.import_module(WORKLOAD))  # Stream rewrites the workload's dicts in place
    mainstage = MainStage(  # noqa: F405
        [AcceleratorParserStage, UserDefinedModelParserStage, GenerateCNWorkloadHybridStage,  # noqa: F405
         IntraCoreMappingStage, InterCoreMappingStage],  # noqa: F405
        accelerator=ACCELERATOR, workload_path=WORKLOAD, mapping_path=MAPPING, loma_lpf_limit=6,
        nb_ga_individuals=individuals, nb_ga_generations=generations,
        node_hw_performances_path=f"outputs/{name}.pickle", plot_hof=False, plot_file_name=False,
        plot_full_schedule=False, plot_data_transfer=False, cn_define_mode=1, hint_loops=hint_loops,
        scheduler_candidate_selection="memory", operands_to_prefetch=[],
    )
    InterCoreMappingStage.run = _fastest_of_hall_of_fame  # noqa: F405
    answers = mainstage.run()
    scme = answers[0][0]
    layers = {}
    for node in scme.workload.nodes():  # per original layer: its computation nodes' first start and last end, its core
        layer = layers.setdefault(str(node.id[0]), {"start": node.start, "end": node.end, "cores": set(), "nodes": 0})
        layer["start"], layer["end"] = min(layer["start"], node.start), max(layer["end"], node.end)
        layer["cores"].add(node.core_allocation)
        layer["nodes"] += 1
    layers = {k: {**v, "cores": sorted(v["cores"])} for k, v in sorted(layers.items(), key=lambda kv: int(kv[0]))}
    return {"hint_loops": hint_loops, "latency_cycles": float(scme.latency), "energy_pj": float(scme.energy), "layers": layers,
            "seconds": round(time.perf_counter() - started, 1),
            "computation_nodes": scme.workload.number_of_nodes()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--individuals", type=int, default=16)
    parser.add_argument("--generations", type=int, default=8)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    result = {"tool": "stream-dse 0.0.8, zigzag-dse 2.4.3", "python": platform.python_version(),
              "accelerator": ACCELERATOR, "workload": WORKLOAD, "mapping": MAPPING,
              "ga": {"individuals": args.individuals, "generations": args.generations},
              "layer_by_layer": run([], "lbl", args.individuals, args.generations),
              "fused": run([("OY", "all")], "fused", args.individuals, args.generations)}
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
