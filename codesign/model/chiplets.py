"""Chiplets in the analytical model: die-to-die crossings of the transfers, and the package's area and cost.

A design whose ``hardware.dies`` goes above 1 gets one :class:`Chiplets` per model
(``AnalyticalModel.chiplets``; ``enabled`` is false otherwise, and the model then computes exactly
what it computed before chiplets existed). The formulas are :mod:`codesign.hardware.package`'s;
this module applies them to a population, both ways the model evaluates one:

* the direct path (``[P, L, J]`` edges): :meth:`crossings` and :meth:`direct_terms` per candidate,
  :meth:`area_cost` per candidate;
* the tabulated path (``[E, P]`` edges): the D2D crossings of every (grid, die count, producer core,
  consumer core) and the area, cost and static power of every (per-core knobs, grid, node, die count,
  package, D2D bandwidth) are tables built once (:meth:`crossing_table`, :meth:`area_table`), gathered
  by :meth:`pay_crossings` and the tabulated path's area look-up.

A transfer crossing ``x`` D2D links of its XY route pays, instead of an on-die hop for each, the
package's latency per crossing and energy per byte, and moves at ``min(noc_link_gbps, d2d_gbps)``
(bytes / link + ``x > 0`` · bytes · (1/d2d − 1/link)⁺). Its D2D energy is kept apart from the NoC's
(``d2d_energy``, joules ``[P]``), so it can be reported as the energy's ``d2d`` part.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch

from codesign.hardware import cost as hwcost
from codesign.hardware.package import PACKAGE_TECH, boundary_links, d2d_phy_area_mm2, die_crossings, die_grid, package_cost_usd
from codesign.model.layer_costs import PJ


class Chiplets:
    """The chiplet terms of one :class:`~codesign.model.analytical.AnalyticalModel` (see the module docstring)."""

    def __init__(self, model) -> None:
        hw = model.space.design.hardware
        self.model = model
        self.enabled = max(hw.dies) > 1
        if not self.enabled:
            return
        dt, dev = model.dtype, model.device
        self.packages = list(hw.package)
        self.dies = torch.tensor(hw.dies, dtype=torch.long, device=dev)
        self.d2d = torch.tensor(hw.d2d_gbps, dtype=dt, device=dev)
        techs = [PACKAGE_TECH[p] for p in self.packages]
        self.e_d2d = torch.tensor([t.d2d_pj_per_bit * 8.0 * PJ for t in techs], dtype=dt, device=dev)  # J per byte
        self.d2d_ns = torch.tensor([t.d2d_ns for t in techs], dtype=dt, device=dev)
        self.sizes = (len(hw.dies), len(self.packages), len(hw.d2d_gbps))
        self.n_codes = self.sizes[0] * self.sizes[1] * self.sizes[2]  # chiplet codes: (die count, package, D2D bandwidth)
        knobs = [k.name for k in model.space.knobs]
        self.cols = {name: knobs.index(f"hw.{name}") if f"hw.{name}" in knobs else None for name in ("dies", "package", "d2d_gbps")}
        self._sorted = {"dies": torch.sort(self.dies), "d2d_gbps": torch.sort(self.d2d)}
        self._tables: dict = {}

    # --- per candidate (the direct path) ----------------------------------------------------------
    def crossings(self, c, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """D2D links crossed between cores ``a`` and ``b`` (``[P, ...]``, broadcast against ``[P, 1, 1]``)."""
        dr, dc = die_grid(c.grid_rows, c.grid_cols, c.dies)
        view = lambda x: x.view(-1, *([1] * (a.dim() - 1)))  # noqa: E731
        th, tw = torch.div(c.grid_rows, dr, rounding_mode="floor"), torch.div(c.grid_cols, dc, rounding_mode="floor")
        return die_crossings(a, b, view(c.grid_cols), view(th), view(tw))

    def per_candidate(self, package: torch.Tensor, clock_ghz: torch.Tensor, noc_link_gbps: torch.Tensor, d2d_gbps: torch.Tensor,
                      hop_cycles: float):
        """``[P]``: extra cycles per crossing (its latency over an on-die hop's), extra cycles per byte of a
        transfer that crosses (``(clock/d2d − clock/link)⁺``) and D2D energy per byte, J."""
        extra_latency = self.d2d_ns[package] * clock_ghz - hop_cycles
        slower = (clock_ghz / d2d_gbps - clock_ghz / noc_link_gbps).clamp_min(0.0)
        return extra_latency, slower, self.e_d2d[package]

    def direct_terms(self, c, cross: torch.Tensor, edge_bytes: torch.Tensor, hop_latency: torch.Tensor, hop_cycles: float):
        """The transfers' ``hop_latency`` ``[P, L, J]`` with the crossings ``cross`` ``[P, L, J]`` paid, the extra
        cycles of the edges that cross at the slower link ``[P, L, J]``, and their D2D energy ``[P]`` (J)."""
        extra_latency, slower, e_d2d = (x[:, None, None] for x in self.per_candidate(c.package, c.clock_ghz, c.noc_link_gbps,
                                                                                     c.d2d_gbps, hop_cycles))
        latency = hop_latency + cross * extra_latency
        return latency, torch.where(cross > 0, edge_bytes * slower, 0.0), (edge_bytes * cross).sum(dim=(1, 2)) * e_d2d[:, 0, 0]

    def area_cost(self, c, area_mono: torch.Tensor, die_cost_mono: torch.Tensor, static_mono: torch.Tensor, per_node):
        """Area (all dies, their D2D PHYs included), package cost and static power ``[P]``; one-die
        candidates keep the monolithic values (``area_mono`` …) bit for bit. ``per_node(fn)`` applies
        ``fn(tech_node)`` by each candidate's node."""
        dt = area_mono.dtype
        dr, dc = die_grid(c.grid_rows, c.grid_cols, c.dies)
        links = boundary_links(c.grid_rows, c.grid_cols, dr, dc).to(dt)
        n = c.dies.to(dt)
        area, cost = area_mono, die_cost_mono
        for i, package in enumerate(self.packages):  # packages, not candidates: a handful
            phy = d2d_phy_area_mm2(links, c.d2d_gbps, n, package)
            die_area = area_mono / n + phy
            total = area_mono + n * phy
            here = (c.package == i) & (c.dies > 1)
            area = torch.where(here, total, area)
            cost = torch.where(here, per_node(lambda t, a=die_area, p=package: package_cost_usd(t, a, n, p)), cost)
        static = torch.where(c.dies > 1, per_node(lambda t: hwcost.static_power_w(area, t)), static_mono)
        return area, cost, static

    # --- the tabulated path --------------------------------------------------------------------------
    def codes(self, column, P: int) -> SimpleNamespace:
        """The chiplet codes ``[P]`` of a population: ``column(name)`` gives a searched knob's codes
        (a fixed knob's code is 0). ``code`` indexes (die count, package, D2D bandwidth)."""
        zero = torch.zeros(P, dtype=torch.long, device=self.model.device)
        d, p, q = (column(name).long() if self.cols[name] is not None else zero for name in ("dies", "package", "d2d_gbps"))
        _, Pk, Qk = self.sizes
        return SimpleNamespace(code=(d * Pk + p) * Qk + q, dies=d, package=p, d2d_gbps=self.d2d.index_select(0, q))

    def codes_from_values(self, c) -> SimpleNamespace | None:
        """The codes of candidates' values (``None`` when a value is off the design's choices)."""
        out = {}
        for name in ("dies", "d2d_gbps"):
            values, order = self._sorted[name]
            value = getattr(c, name)
            if value.dtype != values.dtype:
                return None
            pos = torch.searchsorted(values, value.contiguous()).clamp_(max=len(values) - 1)
            if not bool((values[pos] == value).all()):
                return None
            out[name] = order[pos]
        if not bool(((c.package >= 0) & (c.package < len(self.packages))).all()):
            return None
        _, Pk, Qk = self.sizes
        d, p, q = out["dies"], c.package.long(), out["d2d_gbps"]
        return SimpleNamespace(code=(d * Pk + p) * Qk + q, dies=d, package=p, d2d_gbps=c.d2d_gbps)

    def crossing_table(self, edge_bytes: torch.Tensor, grid_rows: list, grid_cols: list, n_slots: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Two ``[G·Dk·E·S·S]`` tables per (grid, die count, edge, producer core, consumer core): the D2D
        crossings, and the edge's bytes where it crosses any; grids in the tables' order. (Two real tables,
        not one complex one: each gather then fills a contiguous buffer, which a matrix product reads
        ~20× faster than the strided half of a complex one.)"""
        if "cross" not in self._tables:
            dev = self.model.device
            gr, gc = (x.reshape(-1) for x in torch.meshgrid(torch.tensor(grid_rows, device=dev), torch.tensor(grid_cols, device=dev),
                                                            indexing="ij"))
            gr, gc, dies = gr[:, None], gc[:, None], self.dies[None, :]
            dr, dc = die_grid(gr, gc, dies)  # [G, Dk]
            th, tw = torch.div(gr, dr, rounding_mode="floor"), torch.div(gc, dc, rounding_mode="floor")
            core = torch.arange(n_slots, device=dev)
            v = lambda x: x[:, :, None, None]  # noqa: E731
            cross = die_crossings(core[:, None], core[None, :], v(gc), v(th), v(tw)).to(self.model.dtype)[:, :, None]  # [G, Dk, 1, S, S]
            crossed = torch.where(cross > 0, edge_bytes[None, None, :, None, None], 0.0)
            self._tables["cross"] = (cross.expand_as(crossed).reshape(-1).contiguous(), crossed.reshape(-1))
        return self._tables["cross"]

    def pay_crossings(self, k, index: torch.Tensor, latency: torch.Tensor, edge_bytes: torch.Tensor, buf) -> SimpleNamespace:
        """The tabulated transfers' D2D crossings: ``latency`` ``[E, P]`` gains each crossing's latency over an
        on-die hop's, in place. ``index`` ``[E·P]`` is the edges' index into the hop tables, ``edge_bytes`` ``[E]``
        their bytes, ``buf`` the path's scratch. Returns ``bytes`` (Σ bytes · crossings ``[P]``), their
        ``energy`` ``[P]`` (J), ``crossed_bytes`` ``[E, P]`` (an edge's bytes where it crosses) and ``slower``
        ``[P]`` (cycles per byte the D2D link adds, :meth:`per_candidate`)."""
        E, P = latency.shape
        hw = self.model.space.design.hardware
        S = self.model.n_slots
        cross_table, bytes_table = self.crossing_table(edge_bytes, hw.grid_rows, hw.grid_cols, S)
        chip = k.chiplet
        # The hop tables' index (grid·E + edge)·S² + pair, moved to (grid·Dk + dies)·E + edge.
        shift = ((k.grid.long() * (self.sizes[0] - 1) + chip.dies) * (E * S * S)).to(index.dtype)
        at = torch.add(index.view(E, P), shift[None, :], out=buf("edge_d2d_index", (E, P), index.dtype))
        at = at.view(-1)
        crossings = torch.index_select(cross_table, 0, at, out=buf("edge_d2d", (E * P,), cross_table.dtype)).view(E, P)
        crossed_bytes = torch.index_select(bytes_table, 0, at, out=buf("edge_d2d_bytes", (E * P,), bytes_table.dtype)).view(E, P)
        extra_latency, slower, e_d2d = self.per_candidate(chip.package, k.clock_ghz, k.noc_link_gbps, chip.d2d_gbps, self.model.hop_cycles)
        latency.addcmul_(crossings, extra_latency)
        d2d_bytes = edge_bytes[None, :].mm(crossings).view(P)
        return SimpleNamespace(bytes=d2d_bytes, energy=d2d_bytes * e_d2d, crossed_bytes=crossed_bytes, slower=slower)

    def area_table(self, area: torch.Tensor, nodes: list, grid_rows: list, grid_cols: list) -> torch.Tensor:
        """``[U·G·N·C, 3]``: area, cost and static power per (per-core knobs, grid, node, chiplet code),
        from the monolithic table ``area`` ``[U·G·N, 3]``; one-die entries are its own."""
        if "area" in self._tables:
            return self._tables["area"]
        dev, dt = self.model.device, self.model.dtype
        G, N = len(grid_rows) * len(grid_cols), len(nodes)
        Dk, Pk, Qk = self.sizes
        mono = area.view(-1, G, N, 3)
        gr, gc = (x.reshape(-1) for x in torch.meshgrid(torch.tensor(grid_rows, device=dev), torch.tensor(grid_cols, device=dev),
                                                        indexing="ij"))
        dr, dc = die_grid(gr[:, None], gc[:, None], self.dies[None, :])
        links = boundary_links(gr[:, None], gc[:, None], dr, dc).to(dt)  # [G, Dk]
        n = self.dies.to(dt)
        out = mono[:, :, :, None, None, None, :].expand(-1, G, N, Dk, Pk, Qk, 3).clone()
        for j, package in enumerate(self.packages):
            phy = d2d_phy_area_mm2(links[:, :, None], self.d2d[None, None, :], n[None, :, None], package)  # [G, Dk, Qk]
            for i, tech in enumerate(nodes):
                a = mono[:, :, i, 0][:, :, None, None]  # [U, G, 1, 1]
                total = a + n[None, None, :, None] * phy[None]
                cost = package_cost_usd(tech, a / n[None, None, :, None] + phy[None], n[None, None, :, None], package)
                parts = torch.stack([total, cost, hwcost.static_power_w(total, tech)], dim=-1)  # [U, G, Dk, Qk, 3]
                several = (self.dies > 1)[None, None, :, None, None]
                out[:, :, i, :, j, :, :] = torch.where(several, parts, out[:, :, i, :, j, :, :])
        self._tables["area"] = out.reshape(-1, 3)
        return self._tables["area"]
