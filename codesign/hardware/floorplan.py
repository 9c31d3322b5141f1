"""The floorplan: a mesh of tiles holding compute cores, with DRAM ports on its edge.

The floorplan is a networkx graph: one node per core tile (``kind="core"``,
with integer ``x``/``y``) and one per DRAM port (``kind="dram_port"``), mesh
links as edges. Cores are numbered row-major (``core = y·cols + x``), which is
the numbering the batched model uses, so a layer mapped to core ``i`` sits at
``(i mod cols, i div cols)``.

DRAM ports sit just outside the mesh, alternating between the west and east
edges and spread evenly along them (as the memory controllers of Simba-like
multi-chip-module floorplans do, Shao et al., MICRO 2019). A port attaches to
the boundary tile of its row; reaching DRAM from a core costs the XY hops to
that tile plus one hop into the port.

Routing is dimension-ordered XY routing, so the hop count between two tiles is
their Manhattan distance; :func:`xy_route` gives the path itself.

A design of several dies (``hardware.dies``) cuts the mesh into equal rectangles of contiguous
cores (:func:`codesign.hardware.package.die_grid_of`): every core node carries its ``die``
(row-major over the dies) and a mesh link between two dies is ``kind="d2d"``, a die-to-die link
(:func:`route_crossings` counts them on a route).
"""

from __future__ import annotations

import networkx as nx
import torch

from codesign.hardware.package import die_grid_of


def core_xy(core: int, cols: int) -> tuple[int, int]:
    """Tile coordinates ``(x, y)`` of ``core`` on a mesh with ``cols`` columns."""
    return core % cols, core // cols


def dram_port_tiles(rows: int, cols: int, n_ports: int) -> list[tuple[int, int]]:
    """Boundary tiles ``(x, y)`` to which each of ``n_ports`` DRAM ports attaches.

    Ports alternate west (``x = 0``), east (``x = cols − 1``); along each edge
    they are spread evenly over the rows.
    """
    tiles = []
    per_side = [(n_ports + 1) // 2, n_ports // 2]
    for port in range(n_ports):
        side, slot = port % 2, port // 2
        count = per_side[side]
        y = min(rows - 1, int((slot + 0.5) * rows / count))
        tiles.append((0 if side == 0 else cols - 1, y))
    return tiles


def build_floorplan(rows: int, cols: int, n_dram_ports: int, *, dies: int = 1, **core_attrs) -> nx.Graph:
    """The mesh floorplan as a graph.

    Args:
        rows, cols: mesh size in tiles; one compute core per tile.
        n_dram_ports: DRAM ports on the mesh edge.
        dies: dies the mesh is cut into (equal rectangles; must divide the mesh).
        **core_attrs: attributes copied onto every core node (``pe_rows``,
            ``pe_cols``, ``sram_kib``, ...).
    """
    if rows < 1 or cols < 1 or n_dram_ports < 1:
        raise ValueError(f"floorplan needs rows, cols, n_dram_ports ≥ 1, got {rows}, {cols}, {n_dram_ports}")
    grid = die_grid_of(rows, cols, dies)
    if grid is None:
        raise ValueError(f"{dies} dies cannot cut a {rows}×{cols} mesh into equal rectangles")
    tile_rows, tile_cols = rows // grid[0], cols // grid[1]
    g = nx.Graph(rows=rows, cols=cols, dies=dies, die_rows=grid[0], die_cols=grid[1])
    die = lambda x, y: (y // tile_rows) * grid[1] + x // tile_cols  # noqa: E731
    for core in range(rows * cols):
        x, y = core_xy(core, cols)
        g.add_node(f"core{core}", kind="core", core=core, x=x, y=y, die=die(x, y), **core_attrs)
    for core in range(rows * cols):
        x, y = core_xy(core, cols)
        if x + 1 < cols:
            g.add_edge(f"core{core}", f"core{core + 1}", kind="link" if die(x, y) == die(x + 1, y) else "d2d")
        if y + 1 < rows:
            g.add_edge(f"core{core}", f"core{core + cols}", kind="link" if die(x, y) == die(x, y + 1) else "d2d")
    for port, (x, y) in enumerate(dram_port_tiles(rows, cols, n_dram_ports)):
        g.add_node(f"dram{port}", kind="dram_port", port=port, x=x, y=y, side="west" if port % 2 == 0 else "east")
        g.add_edge(f"dram{port}", f"core{y * cols + x}", kind="link")
    return g


def xy_route(floorplan: nx.Graph, src: str, dst: str) -> list[str]:
    """Nodes on the dimension-ordered (X first, then Y) route from ``src`` to ``dst``."""
    cols = floorplan.graph["cols"]
    sx, sy = floorplan.nodes[src]["x"], floorplan.nodes[src]["y"]
    dx, dy = floorplan.nodes[dst]["x"], floorplan.nodes[dst]["y"]
    path = [src] if floorplan.nodes[src]["kind"] == "dram_port" else []
    x, y = sx, sy
    path.append(f"core{y * cols + x}")
    while x != dx:
        x += 1 if dx > x else -1
        path.append(f"core{y * cols + x}")
    while y != dy:
        y += 1 if dy > y else -1
        path.append(f"core{y * cols + x}")
    if floorplan.nodes[dst]["kind"] == "dram_port":
        path.append(dst)
    return path


def hop_count(floorplan: nx.Graph, src: str, dst: str) -> int:
    """Links crossed on the XY route from ``src`` to ``dst``."""
    return len(xy_route(floorplan, src, dst)) - 1


def route_crossings(floorplan: nx.Graph, src: str, dst: str) -> int:
    """Die-to-die links (``kind="d2d"``) crossed on the XY route from ``src`` to ``dst``."""
    path = xy_route(floorplan, src, dst)
    return sum(floorplan.edges[u, v]["kind"] == "d2d" for u, v in zip(path, path[1:]))


# --- batched forms used by the model ---------------------------------------------------------


def core_hops(a: torch.Tensor, b: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """XY hop count between cores ``a`` and ``b`` (row-major ids) on meshes ``cols`` wide.

    All arguments broadcast (typically ``[P]``); integer tensors.
    """
    return (a % cols - b % cols).abs() + (torch.div(a, cols, rounding_mode="floor") - torch.div(b, cols, rounding_mode="floor")).abs()


def dram_hops(core: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, n_ports: int) -> torch.Tensor:
    """Hops from ``core`` to its nearest DRAM port (XY hops to the port's tile, plus one).

    ``core``, ``rows`` and ``cols`` broadcast to a common shape ``[...]``; ``n_ports``
    is fixed per design space. Same placement as :func:`dram_port_tiles`.
    """
    x = core % cols
    y = torch.div(core, cols, rounding_mode="floor")
    best = None
    per_side = [(n_ports + 1) // 2, n_ports // 2]
    for port in range(n_ports):  # ports, not candidates: a handful at most
        side, slot = port % 2, port // 2
        port_y = torch.clamp(torch.floor((slot + 0.5) * rows.to(torch.float64) / per_side[side]).to(core.dtype), max=rows - 1)
        port_x = torch.zeros_like(cols) if side == 0 else cols - 1
        hops = (x - port_x).abs() + (y - port_y).abs() + 1
        best = hops if best is None else torch.minimum(best, hops)
    return best
