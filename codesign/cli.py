"""The shell entry point: ``codesign explore | report | show | dashboard | repair | evaluate | workload | cycles | surrogate``
(also ``python -m codesign``).

User errors (bad design file, bad flag, failing plug-in, wrong run folder) and OS errors (a
read-only or full disk, a path that is not a folder) print one message and exit with code 2;
nothing is left half-written. A run stopped by SIGINT or SIGTERM exits with 130 or 143 after
writing its outputs (a second signal: at once, with one line).
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys

from codesign.argtypes import non_negative_int, positive_float, positive_int, toml_value
from codesign.errors import ArgumentError, UserError
from codesign.search.guards import Aborted
from codesign.vocab import DEVICES, FORMATS, PRECISIONS, REFINE_METHODS, SAMPLERS, STRATEGIES, UNSUPPORTED


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one ``codesign: error:`` line and exit code 2."""

    def error(self, message: str):
        self.exit(2, f"codesign: error: {self.prog}: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="codesign", description="Joint hardware/schedule co-design of DNN accelerators.")
    sub = parser.add_subparsers(dest="command", required=True)

    ex = sub.add_parser("explore", help="search a design file's space; write trials, front, plot and summary")
    ex.add_argument("design", help="design file (TOML)")
    ex.add_argument("--trials", type=positive_int, help="total trials the run should hold (default: the design's search.trials)")
    ex.add_argument("--seed", type=non_negative_int, help="random seed (default: the design's search.seed)")
    ex.add_argument("--out", default="runs/latest", help="run folder (default: runs/latest); an existing run resumes")
    ex.add_argument("--storage", help="Optuna storage URL instead of the run folder's journal file")
    ex.add_argument("--device", default="auto", choices=DEVICES, help="where the model runs (default: auto)")
    ex.add_argument("--no-progress", action="store_true", help="no progress bar")
    ex.add_argument("--oracle", help="slow trusted oracle (emulated, scalesim, package.module:attr): surrogate-assisted search")
    ex.add_argument("--oracle-budget", type=positive_int, help="designs the oracle may evaluate (with --oracle)")
    ex.add_argument("--oracle-deadline", type=positive_float, metavar="SECONDS",
                    help="stop asking the oracle after this many seconds; keep and report what it verified (with --oracle)")
    ex.add_argument("--strategy", choices=STRATEGIES,
                    help="joint NSGA-II over hardware and schedule (default), sequential (hardware first, then schedule), random")
    ex.add_argument("--sampler", choices=SAMPLERS, help="the joint strategy's Optuna sampler (default: nsga2)")
    ex.add_argument("--refine", choices=REFINE_METHODS,
                    help="after the search, gradient steps on the relaxed model from the front (MGDA or PCGrad) add refined designs")
    ex.add_argument("--cluster", metavar="ADDRESS",
                    help="run oracle jobs and slow plug-ins on a Dask cluster: tcp://HOST:8786 (`dask scheduler`) or local:N worker processes")

    rp = sub.add_parser("report", help="regenerate a run's plots (front, hypervolume history, parallel coordinates)")
    rp.add_argument("run", help="run folder")

    rr = sub.add_parser("repair", help="make a run's journal readable again after a kill or a full disk; say what was dropped")
    rr.add_argument("run", help="run folder")

    db = sub.add_parser("dashboard", help="optuna-dashboard on a run's study, its Pareto front the run's (feasible, each design once)")
    db.add_argument("run", help="run folder")
    db.add_argument("--host", default="127.0.0.1", help="address to serve on (default: 127.0.0.1)")
    db.add_argument("--port", type=non_negative_int, default=8080, help="port (default: 8080; 0: any free port)")

    sh = sub.add_parser("show", help="floorplan, Gantt chart and GraphML of one trial's design")
    sh.add_argument("run", help="run folder")
    sh.add_argument("--trial", type=non_negative_int, required=True, help="trial number")

    ev = sub.add_parser("evaluate", help="metrics and per-layer schedule of one exact design (ranges at --set values or first choices)")
    ev.add_argument("design", help="design file (TOML)")
    ev.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="take a range at this value, e.g. --set hardware.pe_rows=32 --set schedule.dataflow=os (repeatable)")
    ev.add_argument("--format", choices=FORMATS, default="table", help="output (default: table)")
    ev.add_argument("--device", default="cpu", choices=DEVICES, help="where the model runs (default: cpu)")

    wl = sub.add_parser("workload", help="import a network (zoo, torchvision:NAME, file.py:Name, .onnx, .csv) and list its layers")
    wl.add_argument("spec", help="zoo name, torchvision:NAME, path/file.py:Name, package.module:Name, model.onnx or topology.csv")
    wl.add_argument("--input-shape", type=_shape, help="one sample's input shape without the batch, e.g. 3,224,224")
    wl.add_argument("--batch", type=positive_int, default=1, help="batch (default: 1)")
    wl.add_argument("--precision-bytes", type=int, choices=PRECISIONS, default=1, help="bytes per operand (default: 1)")
    wl.add_argument("--param", action="append", default=[], type=_key_value, metavar="KEY=VALUE",
                    help="keyword argument of the module's constructor or the zoo builder (repeatable)")
    wl.add_argument("--unsupported", choices=UNSUPPORTED, default="error",
                    help="an operator the importer cannot map: stop (error, default) or skip it and list it")
    wl.add_argument("--format", choices=FORMATS, default="json", help="output (default: json)")
    wl.add_argument("--plot", metavar="FILE", help="also draw the layer graph to FILE (.png, .pdf or .svg)")

    from codesign.cycles import add_cycles_parser

    add_cycles_parser(sub)
    from codesign.surrogate_cli import add_surrogate_parser

    add_surrogate_parser(sub)
    return parser


def _shape(text: str) -> tuple[int, ...]:
    parts = text.replace("x", ",").split(",")
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas (3,224,224), got {text!r}") from None
    if not dims or min(dims) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas (3,224,224), got {text!r}")
    return dims


def _key_value(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), toml_value(value)


def _print_table(frame, head: list[str], fmt: str) -> None:
    if fmt == "csv":
        print(frame.to_csv(index=False), end="")
        return
    for line in head:
        print(line)
    print(frame.to_string(index=False))


def _workload(args) -> None:
    import json

    from codesign import api
    from codesign.runs.workloads import layers_frame, summary_lines

    info = api.describe_workload(args.spec, batch=args.batch, precision_bytes=args.precision_bytes, params=dict(args.param),
                                 input_shape=args.input_shape, unsupported=args.unsupported)
    if args.plot:
        from codesign.plots import plot_workload_graph
        from codesign.runs.tables import write_atomic

        write_atomic(args.plot, lambda p: plot_workload_graph(info, p))
    if args.format == "json":
        print(json.dumps(info, indent=1))
    else:
        _print_table(layers_frame(info), summary_lines(info), args.format)


def _evaluate(args) -> None:
    import json

    import pandas as pd

    from codesign import api

    result = api.evaluate(args.design, settings=args.set, device=args.device)
    if args.format == "json":
        print(json.dumps(result, indent=1))
        return
    head = [f"design: {result['design']} ({result['workload']})",
            "hardware: " + ", ".join(f"{k}={v}" for k, v in result["hardware"].items()),
            "schedule: " + ", ".join(f"{k}={v}" for k, v in result["schedule"].items()),
            "metrics: " + ", ".join(f"{k}={v:.6g}" for k, v in result["metrics"].items())]
    if result["energy_parts"]:
        head.append("energy by component: " + ", ".join(f"{k}={v:.6g}" for k, v in result["energy_parts"].items()))
    if result["failed"]:
        head.append(f"failed: {result['failed']}")
    _print_table(pd.DataFrame(result["layers"]), head, args.format)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command in ("explore", "report", "show"):
            from codesign import api  # after parsing, and only here: `--help` and `cycles` start fast
        if args.command == "explore":
            run = api.explore(
                args.design, trials=args.trials, seed=args.seed, out=args.out, storage=args.storage,
                device=args.device, progress=not args.no_progress and sys.stderr.isatty(),
                oracle=args.oracle, oracle_budget=args.oracle_budget, oracle_deadline=args.oracle_deadline, strategy=args.strategy, sampler=args.sampler,
                refine=args.refine, cluster=args.cluster,
            )
            return _explored(run)
        elif args.command == "report":
            for path in api.report(args.run):
                print(path)
        elif args.command == "repair":
            from codesign.runs.repair import repair_run

            done, n_trials = repair_run(args.run)
            print(f"{done.describe()}; Optuna reads {n_trials} trials")
        elif args.command == "dashboard":
            from codesign.runs.dashboard import serve

            serve(args.run, host=args.host, port=args.port, say=lambda msg: print(msg, file=sys.stderr, flush=True))
        elif args.command == "show":
            for path in api.show(args.run, args.trial).values():
                print(path)
        elif args.command == "workload":
            _workload(args)
        elif args.command == "evaluate":
            _evaluate(args)
        elif args.command == "cycles":
            from codesign.cycles import run_cycles

            run_cycles(args)
        elif args.command == "surrogate":
            from codesign.surrogate_cli import run_surrogate

            run_surrogate(args)
    except UserError as error:
        message = error.words("cli") if isinstance(error, ArgumentError) else str(error)
        print(f"codesign: error: {message}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `codesign workload ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes stdout
        return 128 + signal.SIGPIPE
    except OSError as error:
        print(f"codesign: error: {os_error_words(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as error:  # a second signal during explore, or one anywhere else
        signum = error.signum if isinstance(error, Aborted) else signal.SIGINT
        print(f"codesign: stopped by {signal.Signals(signum).name} (anything already stored is kept; run the same command to "
              "resume)", file=sys.stderr)
        return 128 + signum
    return 0


def _explored(run) -> int:
    """The result line of ``explore``; its exit code: 0, or 128 + the signal that stopped it."""
    s = run.summary
    print(
        f"{s['n_trials']} trials ({s['trials_added']} new, {s['n_feasible']} feasible), "
        f"{s['n_front']} on the front, hypervolume {s['hypervolume']:.6g}, "
        f"{s['wall_s']:.1f} s wall → {run.out}"
    )
    if not s.get("signal"):
        return 0
    if s.get("status") == "interrupted":
        print(f"codesign: interrupted by {s['signal']}: the study holds {s['n_trials']} of {s.get('trials_requested')} trials; "
              "run the same command to resume", file=sys.stderr)
    else:
        print(f"codesign: {s['signal']} received after the search; the run folder is complete", file=sys.stderr)
    return 128 + signal.Signals[s["signal"]].value


def os_error_words(error: OSError) -> str:
    """An OS error as one line: the path(s), what the errno means, and its name (``ENOSPC``)."""
    paths = " → ".join(str(p) for p in (error.filename, error.filename2) if p is not None)
    meaning = os.strerror(error.errno) if error.errno else str(error)
    name = f" ({errno.errorcode[error.errno]})" if error.errno in errno.errorcode else ""
    return f"{paths}: {meaning}{name}" if paths else f"{meaning}{name}"


def _raise_on_sigterm(signum, frame):
    raise Aborted(signum)


def entry() -> None:
    signal.signal(signal.SIGTERM, _raise_on_sigterm)  # one line and exit 143, not a silent death (explore handles it itself)
    sys.exit(main())


if __name__ == "__main__":
    entry()
