"""``codesign dashboard RUN``: optuna-dashboard on a run's study, with the run's own Pareto front.

optuna-dashboard (0.21) reads a codesign study as it is: metric names, the constraints list, the
scalar knobs as parameters, the per-layer knobs and metrics as user attributes. Two things it does
with the front do not fit a co-design run:

* it finds the Pareto front of three or more objectives by comparing each complete trial with
  every other until one dominates it (``optuna_dashboard._pareto_front``, which notes there that
  NSGA-II's fast non-dominated sort would do better): tens of millions of Python comparisons at
  10,000 trials, minutes for every load of the study page;
* that front ignores the budgets, so infeasible designs sit on it.

This command serves the same application with that one function replaced by the run's front:
complete, feasible trials (every constraint ≤ 0, Optuna's constrained domination), non-dominated
(:func:`codesign.search.pareto.nondominated_mask`), each design once — the trials of ``front.csv``.
``scripts/bench_storage.py --dashboard-trials N`` times one study-page request both ways.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from codesign.errors import UserError
from codesign.runs.folder import RUN_FILE
from codesign.search.pareto import nondominated_mask
from codesign.search.storage import open_storage

#: The name optuna-dashboard's study-page handler calls for the Pareto front (``optuna_dashboard._app``).
_FRONT_FUNCTION = "get_pareto_front_trials"


def run_front(trials: Sequence[FrozenTrial], directions: Sequence[StudyDirection]) -> list[FrozenTrial]:
    """The feasible non-dominated trials, each design once (``duplicate_of`` left out), by number."""
    kept = [t for t in trials if t.state == TrialState.COMPLETE and t.values is not None and "duplicate_of" not in t.user_attrs
            and all(v <= 0 for v in t.constraints.values())]
    if not kept:
        return []
    sign = np.array([-1.0 if d == StudyDirection.MAXIMIZE else 1.0 for d in directions])
    mask = nondominated_mask(np.array([t.values for t in kept], dtype=np.float64) * sign)
    return sorted((t for t, on in zip(kept, mask) if on), key=lambda t: t.number)


def dashboard_app(out: str | Path):
    """optuna-dashboard's WSGI application over the run folder ``out``'s study (opened read-only)."""
    try:
        import optuna_dashboard
        from optuna_dashboard import _app
    except ImportError:
        raise UserError("codesign dashboard needs optuna-dashboard: pip install 'codesign[dashboard]'") from None
    out = Path(out)
    if not (out / RUN_FILE).is_file():
        raise UserError(f"{out}: not a codesign run folder (no {RUN_FILE}); run `codesign explore` first")
    try:
        url = json.loads((out / RUN_FILE).read_text()).get("storage_url")
    except (OSError, ValueError, AttributeError) as error:
        raise UserError(f"{out / RUN_FILE}: unreadable ({error}); is this a codesign run folder?") from None
    storage, _ = open_storage(out, url, read_only=True)
    if not callable(getattr(_app, _FRONT_FUNCTION, None)):
        raise UserError(f"optuna-dashboard {optuna_dashboard.__version__} has no optuna_dashboard._app.{_FRONT_FUNCTION}: "
                        "codesign dashboard needs optuna-dashboard 0.15-0.21 (or run optuna-dashboard on the study itself)")
    setattr(_app, _FRONT_FUNCTION, run_front)
    return optuna_dashboard.wsgi(storage)


def serve(out: str | Path, *, host: str, port: int, say) -> None:
    """Serve the run's dashboard at ``http://host:port/`` until Ctrl-C (then return: nothing to keep or resume)."""
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args) -> None:  # one line per request is noise here
            pass

    app = dashboard_app(out)
    try:
        server = make_server(host, port, app, handler_class=Quiet)
    except OSError as error:
        raise UserError(f"{host}:{port}: cannot serve the dashboard there: {error.strerror or error}") from None
    say(f"optuna-dashboard of {out} at http://{host}:{server.server_port}/dashboard (Ctrl-C stops it)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        say("dashboard stopped")
    finally:
        server.server_close()
