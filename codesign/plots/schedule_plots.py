"""Per-candidate plots: the floorplan of a design graph and the Gantt chart of its schedule.

Both functions draw with the headless Agg backend, write a PNG at ``path``
(parent folders are created), close their figure and return the path. Layers are
colour-coded by dataflow (``ws``/``os``/``is``) with the same colours in both.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from codesign.plots._style import (
    DATAFLOW_NAMES,
    check_path,
    closing_on_error,
    dataflow_color,
    plt,
    save_figure,
)
from codesign.plots._units import axis_label, format_value

__all__ = ["plot_floorplan", "plot_gantt"]

_TILE = 0.84  # tile box side, in tile pitches
_PORT_LONG, _PORT_SHORT = 0.30, 0.12


def _dataflow_handles(dataflows) -> list:
    order = list(DATAFLOW_NAMES)
    tags = sorted({str(d).lower() for d in dataflows},
                  key=lambda d: (order.index(d) if d in order else len(order), d))
    return [Patch(color=dataflow_color(d), label=f"{d} ({DATAFLOW_NAMES[d]})" if d in DATAFLOW_NAMES else d)
            for d in tags]


def _node_label(node) -> str:
    return f"core {node}" if isinstance(node, (int, np.integer)) else str(node)


def _ellipsize(text: str, n: int) -> str:
    return text if len(text) <= n else text[: max(n - 1, 1)] + "…"


#: Width of one character of the in-bar labels (6.5 pt bold sans), in points.
CHAR_PT = 6.5 * 0.62


def gantt_labels(names: list[str], widths_pt) -> tuple[list[str], list[tuple[int, int]]]:
    """The text inside each bar of a Gantt chart, and the key of the rest.

    A bar ``widths_pt[i]`` points wide holds ``names[i]`` in full when it fits, else its key
    number (``"7"``) when that fits, else nothing; ``key`` lists ``(number, i)`` for every bar
    without its full name, numbered 1, 2, ... in the order of ``names``. No name is shortened.
    """
    inside, key = [], []
    for i, (name, width) in enumerate(zip(names, widths_pt)):
        room = int((float(width) - 4) / CHAR_PT)
        if len(name) <= room:
            inside.append(name)
            continue
        number = len(key) + 1
        key.append((number, i))
        inside.append(str(number) if len(str(number)) <= room else "")
    return inside, key


def _draw_key(ax, lines: list[str]) -> None:
    """The numbered layers under the chart, in columns (monospace, so the numbers line up)."""
    if not lines:
        return
    widest = max(len(line) for line in lines)
    columns = max(1, min(3, 150 // max(widest, 1)))
    per_column = -(-len(lines) // columns)
    for c in range(columns):
        chunk = lines[c * per_column : (c + 1) * per_column]
        ax.text(c / columns, -0.32, "\n".join(chunk), transform=ax.transAxes, ha="left", va="top",
                fontsize=6.5, family="monospace")


def _parse_design_graph(g: nx.Graph):
    """Split ``g`` into cores, DRAM ports, links, layer mappings and data edges (validated)."""
    cores, ports = {}, {}
    for node, d in g.nodes(data=True):
        kind = d.get("kind")
        if kind not in ("core", "dram_port", "layer"):
            raise ValueError(f"design_graph: node {node!r} has kind {kind!r}, expected core/dram_port/layer")
        if kind in ("core", "dram_port"):
            try:
                xy = (int(d["x"]), int(d["y"]))
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"design_graph: {kind} node {node!r} needs integer x and y") from exc
            (cores if kind == "core" else ports)[node] = xy
    if not cores:
        raise ValueError("design_graph: no core node")
    by_xy = Counter(cores.values())
    clash = [xy for xy, n in by_xy.items() if n > 1]
    if clash:
        raise ValueError(f"design_graph: several cores on tile(s) {clash}")

    kind = nx.get_node_attributes(g, "kind")
    links, mapped, data_edges = [], defaultdict(list), []
    links_seen: set = set()
    layer_core = {}
    for u, v, d in g.edges(data=True):
        ek = d.get("kind")
        if ek == "link":
            if kind[u] == "layer" or kind[v] == "layer":
                raise ValueError(f"design_graph: link edge {u!r}-{v!r} touches a layer node")
            if (v, u) not in links_seen:
                links.append((u, v))
                links_seen.add((u, v))
        elif ek == "mapping":
            pair = {kind[u]: u, kind[v]: v}
            if set(pair) != {"layer", "core"}:
                raise ValueError(f"design_graph: mapping edge {u!r}-{v!r} must join a layer and a core")
            layer, core = pair["layer"], pair["core"]
            if layer in layer_core:
                raise ValueError(f"design_graph: layer {layer!r} is mapped to more than one core")
            layer_core[layer] = core
            flow = d.get("dataflow", g.nodes[layer].get("dataflow", "?"))
            mapped[core].append((layer, str(flow).lower()))
        elif ek == "data":
            data_edges.append((u, v))
    layers = [n for n, k in kind.items() if k == "layer"]
    unmapped = [n for n in layers if n not in layer_core]
    cross = sum(1 for u, v in data_edges if u in layer_core and v in layer_core and layer_core[u] != layer_core[v])
    return cores, ports, links, mapped, layers, unmapped, len(data_edges), cross


_SIDES = {"west": "left", "east": "right", "north": "top", "south": "bottom",
          "left": "left", "right": "right", "top": "top", "bottom": "bottom"}


def _port_boxes(cores: dict, ports: dict, sides: dict) -> dict:
    """Port node -> (cx, cy, w, h, side): a box just outside the edge of the tile nearest to it (plot coordinates)."""
    xs = [x for x, _ in cores.values()]
    ys = [y for _, y in cores.values()]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    tiles = list(cores.values())
    per_side = defaultdict(list)
    for node, (px, py) in ports.items():
        tx, ty = min(tiles, key=lambda t: (abs(t[0] - px) + abs(t[1] - py), t[1], t[0]))
        if sides.get(node) in _SIDES:  # an explicit side attribute wins
            side = _SIDES[sides[node]]
        elif (px, py) != (tx, ty):  # outside the tile: the side facing the port
            dx, dy = px - tx, py - ty
            side = ("right" if dx > 0 else "left") if abs(dx) >= abs(dy) else ("bottom" if dy > 0 else "top")
        else:  # on the tile: its outer edge, else its bottom edge
            side = "left" if tx == x0 else "right" if tx == x1 else "top" if ty == y0 else "bottom" \
                if ty == y1 else "bottom"
        per_side[(tx, ty, side)].append(node)
    boxes = {}
    half = _TILE / 2
    for (tx, ty, side), nodes in per_side.items():
        cx, cy = tx, -ty  # tile row 0 on top
        for k, node in enumerate(nodes):
            shift = (k - (len(nodes) - 1) / 2) * (_PORT_LONG + 0.04)
            if side in ("left", "right"):
                bx = cx - half - _PORT_SHORT / 2 - 0.01 if side == "left" else cx + half + _PORT_SHORT / 2 + 0.01
                boxes[node] = (bx, cy + shift, _PORT_SHORT, _PORT_LONG, side)
            else:
                by = cy + half + _PORT_SHORT / 2 + 0.01 if side == "top" else cy - half - _PORT_SHORT / 2 - 0.01
                boxes[node] = (cx + shift, by, _PORT_LONG, _PORT_SHORT, side)
    return boxes


def stack_color(i: int):
    """The colour of fused stack number ``i`` (0-based) in the floorplan and the Gantt chart."""
    return plt.get_cmap("tab10")(i % 10)


def stack_outlines(stacks: dict, nodes: dict) -> list[tuple[str, object, int]]:
    """The outlines the floorplan draws for fused stacks: ``(stack, node, depth)`` for every core a
    stack's layers run on (``stacks``: stack → its core numbers; ``nodes``: core number → its node
    in the design graph), ``depth`` counting the stacks drawn on that core before it (each one inset
    inside the last); cores not in ``nodes`` are left out."""
    depth: Counter = Counter()
    out = []
    for stack, on in stacks.items():
        for core in dict.fromkeys(on):
            if core in nodes:
                out.append((stack, nodes[core], depth[core]))
                depth[core] += 1
    return out


def plot_floorplan(design_graph: nx.Graph, path, *, title: str | None = None, stacks: dict | None = None) -> Path:
    """Floorplan of one candidate: tiles, DRAM ports, mesh links and the layers on each core.

    Args:
        design_graph: graph with nodes of ``kind`` ``"core"`` (``x``, ``y`` tile
            coordinates, ``pe_rows``, ``pe_cols``, ``sram_kib``), ``"dram_port"``
            (``x``, ``y``, optional ``side`` west/east/north/south; drawn just
            outside that side of the nearest tile, else its outer edge) and
            ``"layer"``; edges of ``kind`` ``"link"`` (mesh links between tile
            nodes), ``"mapping"`` (layer -- core, with ``dataflow``
            ``"ws"``/``"os"``/``"is"``) and ``"data"`` (layer -- layer).
            Tile row ``y = 0`` is drawn at the top.
        path: PNG file to write.
        title: first title line (default ``"Floorplan"``); a summary (grid size,
            layer and data-edge counts) follows it.

    Each core box shows its PE array and SRAM, then the layers mapped to it (in
    graph order) with their dataflow, colour-coded; when they do not fit, the
    number of layers per dataflow instead. ``stacks`` (fused stack → the cores its
    layers run on, :func:`~codesign.runs.evaluate.stack_cores`) outlines each stack's
    cores in the stack's colour (:func:`stack_outlines`), with a legend entry per stack.
    """
    path = check_path(path)
    if not isinstance(design_graph, nx.Graph):
        raise ValueError(f"design_graph: expected a networkx graph, got {type(design_graph).__name__}")
    cores, ports, links, mapped, layers, unmapped, n_data, cross = _parse_design_graph(design_graph)
    sides = {n: str(design_graph.nodes[n].get("side", "")).lower() for n in ports}
    boxes = _port_boxes(cores, ports, sides)
    xs = [x for x, _ in cores.values()]
    ys = [y for _, y in cores.values()]
    ncols, nrows = max(xs) - min(xs) + 1, max(ys) - min(ys) + 1

    tile_in = 2.3
    fig, ax = plt.subplots(figsize=(ncols * tile_in + 0.8, nrows * tile_in + 1.3))
    with closing_on_error(fig):
        ax.set_xlim(min(xs) - 0.65, max(xs) + 0.65)
        ax.set_ylim(-max(ys) - 0.65, -min(ys) + 0.65)
        ax.set_aspect("equal")
        ax.set_axis_off()
        ax.apply_aspect()
        pts_per_unit = (ax.transData.transform((1, 0))[0] - ax.transData.transform((0, 0))[0]) * 72 / fig.dpi

        def centre(node):
            if node in cores:
                return cores[node][0], -cores[node][1]
            return boxes[node][0], boxes[node][1]

        for u, v in links:
            (ux, uy), (vx, vy) = centre(u), centre(v)
            ax.plot([ux, vx], [uy, vy], color="0.45", lw=3, solid_capstyle="butt", zorder=0)

        line_pt, header_pt = 8.5, 24.0
        fit = int((_TILE * pts_per_unit - header_pt - 8) // line_pt)
        max_chars = max(int(_TILE * pts_per_unit / 4.3) - 5, 6)
        for node, (x, y) in cores.items():
            d = design_graph.nodes[node]
            cx, cy = x, -y
            ax.add_patch(Rectangle((cx - _TILE / 2, cy - _TILE / 2), _TILE, _TILE, fc="#F5F5F5", ec="0.15",
                                   lw=1.2, zorder=1))
            top = (cx - _TILE / 2 + 0.04, cy + _TILE / 2 - 0.03)
            ax.annotate(_node_label(node), top, xytext=(0, 0), textcoords="offset points", va="top",
                        fontsize=8.5, fontweight="bold", zorder=3)
            pe = f"PE {d.get('pe_rows', '?')}×{d.get('pe_cols', '?')}"
            sram = d.get("sram_kib")
            hw = pe + (f" · {format_value(float(sram), 'sram_kib', digits=4)} SRAM" if sram is not None else "")
            ax.annotate(hw, top, xytext=(0, -11), textcoords="offset points", va="top", fontsize=7, zorder=3)
            on_core = mapped.get(node, [])
            if len(on_core) <= fit:
                lines = [(f"{_ellipsize(str(layer), max_chars)} ({flow})", flow) for layer, flow in on_core]
            else:
                counts = Counter(flow for _, flow in on_core)
                lines = [(f"{len(on_core)} layers:", None)] + [(f"  {n} × {flow}", flow) for flow, n in
                                                               sorted(counts.items())]
            if not on_core:
                lines = [("(idle)", None)]
            for k, (text, flow) in enumerate(lines):
                ax.annotate(text, top, xytext=(0, -header_pt - k * line_pt), textcoords="offset points",
                            va="top", fontsize=6.5, zorder=3,
                            color=dataflow_color(flow) if flow else "0.3",
                            fontweight="bold" if flow else "normal")

        outlines = stack_outlines(stacks or {}, {design_graph.nodes[n].get("core", n): n for n in cores})
        order = {stack: i for i, stack in enumerate(stacks or {})}
        for stack, node, depth in outlines:
            cx, cy = cores[node][0], -cores[node][1]
            side = _TILE + 0.07 - 0.05 * depth
            ax.add_patch(Rectangle((cx - side / 2, cy - side / 2), side, side, fill=False, ec=stack_color(order[stack]), lw=2.0,
                                   zorder=2))

        for node, (bx, by, w, h, side) in boxes.items():
            ax.add_patch(Rectangle((bx - w / 2, by - h / 2), w, h, fc="#CC79A7", ec="black", lw=0.8,
                                   hatch="///", zorder=4))
            ax.text(bx, by, "DRAM", ha="center", va="center", fontsize=5.5, color="black", zorder=5,
                    rotation=90 if side in ("left", "right") else 0,
                    bbox=dict(boxstyle="square,pad=0.05", fc="white", ec="none", alpha=0.8))

        handles = _dataflow_handles(f for lst in mapped.values() for _, f in lst)
        handles += [Patch(fc="#CC79A7", ec="black", hatch="///", label="DRAM port"),
                    Line2D([], [], color="0.45", lw=3, label="mesh link")]
        handles += [Patch(fill=False, ec=stack_color(order[stack]), lw=2.0, label=f"fused stack {stack}")
                    for stack in order if any(o[0] == stack for o in outlines)]
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(len(handles), 3),
                  fontsize=7.5, frameon=False)
        summary = (f"{nrows} rows × {ncols} columns of tiles, {len(cores)} cores, {len(ports)} DRAM ports\n"
                   f"{len(layers)} layers, {cross} of {n_data} data edges cross cores")
        if unmapped:
            summary += f", {len(unmapped)} unmapped"
        if stacks:
            summary += f", {len(stacks)} fused stacks"
        ax.set_title(f"{title or 'Floorplan'}\n{summary}", fontsize=9)
    return save_figure(fig, path)


def plot_gantt(schedule: pd.DataFrame, path, *, title: str | None = None, tiles: pd.DataFrame | None = None) -> Path:
    """Gantt chart of a schedule: one row per core, one bar per layer, coloured by dataflow.

    Args:
        schedule: ``[L, 5+]`` table with ``layer``, ``core`` (int), ``start_s``,
            ``end_s`` (seconds, ``end_s >= start_s``) and ``dataflow``; ``L >= 1``.
        path: PNG file to write.
        title: figure title (default: layer and core counts, makespan).

    Every layer's name is given in full, never cut: in its bar when the bar is wide enough,
    else the bar carries a number and the key under the chart gives the number's layer, core
    and start time. The makespan is marked. With a ``stack`` column (fused stacks,
    :func:`~codesign.runs.evaluate.layer_schedule`) a fused layer's bar is outlined and cut into its
    ``tiles`` (evenly over its span); with ``parts`` (split layers: their cores, ``"4,5"``) a split
    layer is drawn, hatched, on every core it runs on.

    With ``tiles`` (:func:`~codesign.runs.evaluate.tile_schedule`: a row per tile of each layer and
    core, ``layer``, ``core``, ``part``, ``start_s``, ``end_s``, ``stack``) the chart is drawn tile by
    tile: every tile its own bar (a split layer's other parts hatched), a fused layer's span
    outlined in its stack's colour, so that the waits between tiles show.
    """
    path = check_path(path)
    cols = ["layer", "core", "start_s", "end_s", "dataflow"]
    if not isinstance(schedule, pd.DataFrame):
        raise ValueError(f"schedule: expected a pandas DataFrame, got {type(schedule).__name__}")
    missing = [c for c in cols if c not in schedule.columns]
    if missing:
        raise ValueError(f"schedule: missing column(s) {missing}")
    if len(schedule) == 0:
        raise ValueError("schedule: empty, nothing to plot")
    try:
        start = schedule["start_s"].to_numpy(dtype=float)
        end = schedule["end_s"].to_numpy(dtype=float)
        core_f = schedule["core"].to_numpy(dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"schedule: core, start_s and end_s must be numeric ({exc})") from exc
    if not (np.isfinite(start).all() and np.isfinite(end).all()):
        raise ValueError("schedule: start_s and end_s must be finite")
    if (end < start).any():
        bad = schedule.loc[end < start, "layer"].tolist()[:5]
        raise ValueError(f"schedule: end_s < start_s for layer(s) {bad}")
    if not (np.isfinite(core_f).all() and (core_f == np.round(core_f)).all()):
        raise ValueError("schedule: core must hold integers")
    core = core_f.astype(int)
    if "parts" in schedule.columns:  # a split layer's other cores: hatched copies of its bar
        extra = [(i, int(c)) for i, parts in enumerate(schedule["parts"].astype(str)) for c in parts.split(",")[1:] if c]
        copies = np.array([i for i, _ in extra], dtype=int)
        part_core, part_start, part_end = np.array([c for _, c in extra], dtype=int), start[copies], end[copies]
    else:
        copies = part_core = np.zeros(0, dtype=int)

    cores = sorted(set(core.tolist()) | set(part_core.tolist()))
    row = {c: i for i, c in enumerate(cores)}
    t0 = min(0.0, float(start.min()))
    makespan = float(end.max())
    label, factor = axis_label("time_s", [makespan])
    fig, ax = plt.subplots(figsize=(10.0, 1.2 + 0.55 * len(cores)))
    with closing_on_error(fig):
        ys = np.array([row[c] for c in core])
        flows = schedule["dataflow"].astype(str).str.lower().to_numpy()
        stack = schedule["stack"].astype(str).to_numpy() if "stack" in schedule.columns else np.full(len(schedule), "")
        fused = stack != ""
        if tiles is not None:
            _draw_tiles(ax, tiles, row, factor, stack, ys, start, end)
        else:
            ax.barh(ys, (end - start) * factor, left=start * factor, height=0.62,
                    color=[dataflow_color(f) for f in flows], edgecolor=np.where(fused, "black", "white"),
                    linewidth=np.where(fused, 1.0, 0.6))
        if len(copies) and tiles is None:
            ax.barh([row[c] for c in part_core], (part_end - part_start) * factor, left=part_start * factor, height=0.62,
                    color=[dataflow_color(flows[i]) for i in copies], alpha=0.55, hatch="///", edgecolor="white", linewidth=0.6)
        if fused.any() and tiles is None:  # tile boundaries inside each fused layer's bar
            tiles = schedule["tiles"].to_numpy(dtype=float) if "tiles" in schedule.columns else np.ones(len(schedule))
            for i in np.flatnonzero(fused):
                n = int(min(tiles[i], 64))
                xs = (start[i] + (end[i] - start[i]) * np.arange(1, n) / n) * factor
                ax.vlines(xs, ys[i] - 0.31, ys[i] + 0.31, colors="white", linewidth=0.4)
        ax.set_xlim(t0 * factor, makespan * factor * 1.02 if makespan > t0 else 1.0)
        ax.set_ylim(len(cores) - 0.5, -0.5)
        fig.canvas.draw()  # fixes the layout so that bar widths in points are known
        bbox = ax.get_window_extent()
        x_lo, x_hi = ax.get_xlim()
        pts_per_unit = bbox.width * 72 / fig.dpi / (x_hi - x_lo)
        names = schedule["layer"].astype(str).tolist()
        inside, key = gantt_labels(names, (end - start) * factor * pts_per_unit)
        for text, s, e, y in zip(inside, start, end, ys):
            if text:
                ax.text((s + e) / 2 * factor, y, text, ha="center", va="center", fontsize=6.5,
                        color="white", fontweight="bold", clip_on=True)
        _draw_key(ax, [f"{number:>3}  {names[i]}  (core {core[i]}, from {format_value(start[i], 'time_s')})"
                       for number, i in key])
        ax.axvline(makespan * factor, color="black", ls="--", lw=1)
        ax.text(makespan * factor, -0.5, f" makespan {format_value(makespan, 'time_s')}",
                ha="right", va="bottom", fontsize=8)
        ax.set_yticks(range(len(cores)), [f"core {c}" for c in cores])
        ax.set_xlabel(label)
        ax.grid(True, axis="x", alpha=0.3)
        ax.set_axisbelow(True)
        handles = _dataflow_handles(flows)
        if fused.any() and tiles is None:
            handles.append(Patch(facecolor="lightgrey", edgecolor="black", label="fused stack (tiles)"))
        elif fused.any():
            order = list(dict.fromkeys(stack[fused]))
            handles += [Patch(fill=False, ec=stack_color(i), lw=1.5, label=f"fused stack {s} (tiles)") for i, s in enumerate(order[:10])]
        if len(copies):
            handles.append(Patch(facecolor="lightgrey", hatch="///", edgecolor="white", label="split layer's part"))
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
        if title is None:
            title = f"Schedule: {len(schedule)} layers on {len(cores)} cores"
        ax.set_title(title, fontsize=10, pad=14)
    return save_figure(fig, path)


def _draw_tiles(ax, tiles: pd.DataFrame, row: dict, factor: float, stack, ys, start, end) -> None:
    """:func:`plot_gantt`'s bars tile by tile: one per tile and core (a split layer's other parts
    hatched), each fused layer's span on its core outlined in its stack's colour."""
    missing = [c for c in ("layer", "core", "part", "start_s", "end_s", "dataflow") if c not in tiles.columns]
    if missing:
        raise ValueError(f"tiles: missing column(s) {missing}")
    ts, te = tiles["start_s"].to_numpy(dtype=float), tiles["end_s"].to_numpy(dtype=float)
    ty = np.array([row[int(c)] for c in tiles["core"]])
    part = tiles["part"].to_numpy(dtype=int) > 0
    colors = [dataflow_color(str(f).lower()) for f in tiles["dataflow"]]
    for mask, extra in ((~part, {}), (part, dict(alpha=0.55, hatch="///"))):
        if mask.any():
            ax.barh(ty[mask], (te[mask] - ts[mask]) * factor, left=ts[mask] * factor, height=0.62,
                    color=[c for c, m in zip(colors, mask) if m], linewidth=0, **extra)
    order = {s: i for i, s in enumerate(dict.fromkeys(s for s in stack if s))}
    for i in np.flatnonzero(stack != ""):
        ax.add_patch(Rectangle((start[i] * factor, ys[i] - 0.36), (end[i] - start[i]) * factor, 0.72, fill=False,
                               ec=stack_color(order[stack[i]]), lw=1.2, zorder=3))
