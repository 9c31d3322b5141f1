"""The per-layer cost formulas of the analytical model, over tensors of any broadcast shape.

Every function here takes the array (``H``, ``W``), the SRAM and the dataflow as tensors that
broadcast against the layer vectors ``[L]`` of the lowered workload: ``[P, 1]``/``[P, L]`` per
candidate (the model's direct path, :mod:`codesign.model.analytical`), or a grid of every
choice of a design (the tables of the tabulated path, :mod:`codesign.model.tables`). Elementwise
arithmetic does not depend on the shape, so a table entry is bit-identical to what the direct
path computes for the same values: the tables are a memo of these formulas, not a second
implementation of them.

Steps 1–3 of the model (``docs/model.md``): compute cycles from the systolic closed form
(:mod:`codesign.model.systolic`); DRAM traffic from SRAM capacity, tiling and dataflow; stall
cycles from SCALE-Sim 3.0.0's memory system in closed form. Plus the energy of the MACs, their
register traffic and the SRAM.

The vector unit (``docs/model.md``, "Vector unit"): a vector layer runs ``⌈work / lanes⌉`` cycles
against the streaming bound of its DRAM bytes over the bytes per cycle, and has no systolic
cycles; a MAC layer's epilogue runs in pipeline with the array's output, so the layer takes the
longest of the array (with its stalls), the epilogue's ``⌈work / lanes⌉`` and the channel time of
the epilogue's side inputs. A workload with no vector work skips these terms (its numbers are
those of the formulas without them, bit for bit).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from codesign.model.systolic import compute_cycles, refetch_factors, sram_accesses, st_ceil, stall_bound_cycles, stall_terms

PJ = 1e-12

#: The two kinds of run of a layer: the whole batch at once (layer by layer), or one sample
#: (pipelined: samples stream through the cores).
KINDS = ("batch", "sample")


@dataclass
class LayerCosts:
    """Per-layer results ``[P, L]`` of one execution of every layer."""

    compute_cycles: torch.Tensor
    total_cycles: torch.Tensor
    dram_bytes: torch.Tensor
    energy_j: torch.Tensor  # dynamic energy of the layer, without NoC transfers between layers
    vector_cycles: torch.Tensor | None = None  # ⌈vector work / lanes⌉ (a vector layer's, or an epilogue's)
    array_cycles: torch.Tensor | None = None  # the PE array's cycles with stalls, without the epilogue (0: vector layer)
    energy_parts: dict | None = None  # energy_j by component [P, L] (ENERGY_PARTS but d2d and leakage), when asked for

    @property
    def stall_cycles(self) -> torch.Tensor:
        return self.total_cycles - self.compute_cycles


class LayerFormulas:
    """The cost formulas of the layers of one lowered workload on one hardware template.

    Args:
        lw: the lowered workload (:class:`~codesign.space.LoweredWorkload`), on the model's
            device and in its dtype.
        layers: the :class:`~codesign.workload.layer.Layer` of each row of ``lw``, in order
            (the stall model needs their convolution geometry).
        split: the template's SRAM split (ifmap, filter, ofmap fractions).
    """

    def __init__(self, lw, layers: list, split: tuple[float, float, float]) -> None:
        dtype, device = lw.gemm_m.dtype, lw.gemm_m.device
        self.lw = lw
        self.split = split
        # Convolution geometry the stall model needs (output columns; kernel taller than stride).
        self.out_cols = torch.tensor([float(layer.Q) for layer in layers], dtype=dtype, device=device)
        self.overlap = torch.tensor([layer.op == "conv" and layer.R > layer.stride for layer in layers], device=device)
        self.stride = torch.tensor([float(layer.stride) for layer in layers], dtype=dtype, device=device)
        # Output pixels between two im2col reads of one input word, at most (0 for a GEMM).
        self.reach = torch.tensor([float((layer.R - 1) // layer.stride * layer.Q + (layer.S - 1) // layer.stride)
                                   if layer.op == "conv" else 0.0 for layer in layers], dtype=dtype, device=device)
        self.precision = int(lw.precision_bytes.max().item())
        # One word size for all layers (the usual case) keeps the stall model's buffer terms [P, 1].
        uniform = bool((lw.precision_bytes == self.precision).all())
        self.word_bytes = float(self.precision) if uniform else lw.precision_bytes
        # Whether any layer has vector work (a vector layer, an epilogue, side inputs): without,
        # the vector unit's terms are skipped.
        self.has_vector = bool(lw.is_vector.any() or (lw.vector_work > 0).any() or (lw.side_bytes > 0).any())

    def inputs(self, kind: str) -> dict:
        """GEMM rows, groups and operand bytes of each layer ``[L]``: the whole batch, or one sample."""
        lw = self.lw
        if kind == "batch":
            return dict(m=lw.gemm_m, n=lw.gemm_n, groups=lw.groups, ifmap_bytes=lw.ifmap_bytes, ofmap_bytes=lw.ofmap_bytes,
                        filter_bytes=lw.filter_bytes, vector_work=lw.vector_work, side_bytes=lw.side_bytes)
        B = lw.batch
        # One sample reads its share of the activations but all the weights (a matmul's second
        # operand is an activation, so it is shared out too); its vector work is the batch's / B.
        return dict(m=lw.gemm_m1, n=lw.gemm_n, groups=lw.groups1, ifmap_bytes=lw.ifmap_bytes / B, ofmap_bytes=lw.ofmap_bytes / B,
                    filter_bytes=torch.where(lw.has_weights, lw.filter_bytes, lw.filter_bytes / B),
                    vector_work=lw.vector_work / B, side_bytes=lw.side_bytes / B)

    def traffic(self, H, W, sram_kib, df, *, m, n, groups, ifmap_bytes, ofmap_bytes, filter_bytes, vector_work=None,
                side_bytes=None, lanes=None, filter_resident=None, fused_in=None, fused_out=None) -> dict:
        """Compute cycles, SRAM capacities, DRAM bytes per operand and which operands cross the DRAM
        interface; with vector work, the vector unit's cycles (``lanes`` lanes) and operands too.

        ``fused_in`` / ``fused_out`` (bool, optional) mark a layer whose input / output is a fused
        boundary: the tensor stays in SRAM tile by tile and never crosses the DRAM interface."""
        lw = self.lw
        k, prec = lw.gemm_k, lw.precision_bytes
        compute = groups * compute_cycles(m, n, k, H, W, df)
        sram_bytes = sram_kib * 1024.0
        # Double buffering: half of each partition holds the tile in use, half the next.
        cap_i, cap_f, cap_o = (sram_bytes * s / 2 for s in self.split)
        fi, ff, fo = refetch_factors(
            m, n, k, H, W, df,
            ifmap_bytes=ifmap_bytes / groups,
            filter_bytes=filter_bytes / groups,
            psum_tile_bytes_ws=m * torch.minimum(W, n) * prec,
            psum_tile_bytes_is=torch.minimum(W, m) * n * prec,
            ifmap_cap=cap_i, filter_cap=cap_f, ofmap_cap=cap_o,
        )
        # Activations stay on chip between layers when they fit; the network's input and output,
        # and weights, always cross the DRAM interface.
        ifmap_moved = lw.is_source | (ifmap_bytes > cap_i)
        filter_moved = lw.has_weights | (filter_bytes > cap_f)
        ofmap_moved = lw.is_sink | (ofmap_bytes > cap_o)
        if fused_in is not None:
            ifmap_moved, ofmap_moved = ifmap_moved & ~fused_in, ofmap_moved & ~fused_out
        if self.has_vector:  # a vector layer streams its operands once (no GEMM, no refetch)
            fi, fo = torch.where(lw.is_vector, 1.0, fi), torch.where(lw.is_vector, 1.0, fo)
        ifmap_dram = torch.where(ifmap_moved, ifmap_bytes * fi, 0.0)
        filter_dram = torch.where(filter_moved, filter_bytes * ff, 0.0)
        if filter_resident is not None:  # weights kept in SRAM across a pipelined batch
            filter_dram = torch.where(filter_resident & lw.has_weights, filter_dram / lw.batch, filter_dram)
            # loaded once for the whole batch: no stall per sample
            filter_moved = filter_moved & ~(filter_resident & lw.has_weights)
        ofmap_dram = torch.where(ofmap_moved, ofmap_bytes * fo, 0.0)
        t = dict(compute=compute, caps=(cap_i, cap_f, cap_o), fills=(ifmap_dram, filter_dram, ofmap_dram),
                 dram=ifmap_dram + filter_dram + ofmap_dram, moved=(ifmap_moved, filter_moved, ofmap_moved))
        if self.has_vector:
            self._vector_traffic(t, ifmap_bytes=ifmap_bytes, ofmap_bytes=ofmap_bytes, vector_work=vector_work,
                                 side_bytes=side_bytes, lanes=lanes)
        return t

    def _vector_traffic(self, t: dict, *, ifmap_bytes, ofmap_bytes, vector_work, side_bytes, lanes) -> None:
        """The vector unit's part of :meth:`traffic`, added to ``t``: its cycles ``⌈work / lanes⌉``
        (a vector layer's compute cycles; no systolic cycles), the epilogue's side inputs (moved to
        and from DRAM by the ifmap's rule: the network input, or larger than the ifmap partition),
        and the bytes its operands read from and write to the SRAM."""
        lw = self.lw
        vector = st_ceil(vector_work / lanes)
        side_moved = (side_bytes > 0) & (lw.is_source | (side_bytes > t["caps"][0]))
        side_dram = torch.where(side_moved, side_bytes, 0.0)
        t["compute"] = torch.where(lw.is_vector, vector, t["compute"])
        t["vector"], t["side"], t["dram"] = vector, side_dram, t["dram"] + side_dram
        # SRAM traffic of the vector unit: a vector layer reads its inputs and writes its output;
        # an epilogue reads its side inputs (its own operand leaves the array, counted there).
        t["vector_reads"] = torch.where(lw.is_vector, ifmap_bytes, side_bytes) + side_dram
        t["vector_writes"] = torch.where(lw.is_vector, ofmap_bytes, 0.0)
        t["vector_work"] = vector_work

    def stall_terms(self, H, W, sram_kib, df, m, n=None) -> tuple:
        """:func:`~codesign.model.systolic.stall_terms` of every layer (they do not depend on
        bandwidth or clock, so the tables compute them once per array and SRAM)."""
        lw = self.lw
        words = sram_kib * 1024.0 / lw.precision_bytes
        return stall_terms(m, lw.gemm_n if n is None else n, lw.gemm_k, H, W, df, ifmap_words=words * self.split[0],
                           filter_words=words * self.split[1], out_cols=self.out_cols, overlap=self.overlap,
                           stride=self.stride, reach=self.reach)

    def total_cycles(self, t: dict, H, W, df, *, m, groups, bytes_per_cycle, terms, n=None) -> torch.Tensor:
        """Cycles of each layer: :meth:`array_cycles`, bounded by the vector unit (:meth:`with_vector`)."""
        array = self.array_cycles(t, H, W, df, m=m, n=n, groups=groups, bytes_per_cycle=bytes_per_cycle, terms=terms)
        return self.with_vector(t, array, bytes_per_cycle) if self.has_vector else array

    def with_vector(self, t: dict, array, bytes_per_cycle) -> torch.Tensor:
        """A layer's cycles from its array's (:meth:`array_cycles`) and its vector work: a vector
        layer takes ``max(⌈work / lanes⌉, DRAM bytes / bytes per cycle)`` (it streams its operands);
        a MAC layer ``max(array, ⌈epilogue work / lanes⌉, side-input DRAM bytes / bytes per cycle)``
        (the epilogue runs in pipeline with the array's output; its side inputs have a channel)."""
        lw = self.lw
        vector = t["vector"]
        mac = torch.maximum(torch.maximum(array, vector), t["side"] / bytes_per_cycle)
        return torch.where(lw.is_vector, torch.maximum(vector, t["dram"] / bytes_per_cycle), mac)

    def array_cycles(self, t: dict, H, W, df, *, m, groups, bytes_per_cycle, terms, n=None) -> torch.Tensor:
        """Cycles with memory stalls: SCALE-Sim's memory system, one DRAM channel of this bandwidth
        per operand, for the operands that cross the DRAM interface (docs/model.md, "Memory traffic
        and stalls"). ``t`` is :meth:`traffic`'s result, ``terms`` :meth:`stall_terms`'. A vector
        layer has no array cycles (0)."""
        lw = self.lw
        cap_i, cap_f, cap_o = t["caps"]
        moved_i, moved_f, moved_o = t["moved"]
        per_gemm = stall_bound_cycles(
            m, lw.gemm_n if n is None else n, lw.gemm_k, H, W, df, compute=t["compute"] / groups,
            ifmap_words=2 * cap_i / self.word_bytes, filter_words=2 * cap_f / self.word_bytes,
            ofmap_words=2 * cap_o / self.word_bytes, bw_words=bytes_per_cycle / self.word_bytes,
            ifmap_from_dram=moved_i, filter_from_dram=moved_f, ofmap_to_dram=moved_o, terms=terms,
        )
        array = groups * per_gemm.to(t["compute"].dtype)  # (the stall model counts in float64 whatever the model's dtype)
        return torch.where(lw.is_vector, 0.0, array) if self.has_vector else array

    def core_energy(self, t: dict, H, W, df, *, m, groups, e_sram, e_mac, e_reg, e_vec=None, n=None) -> torch.Tensor:
        """Energy of the MACs, their register traffic and the SRAM (array reads/writes + DRAM fills),
        and of the vector unit: its operations (``e_vec`` J each) and the SRAM bytes it reads
        (ifmap partition) and writes (ofmap partition).

        ``e_sram(share)`` gives J per byte of the SRAM partition holding ``share`` of the SRAM.
        :meth:`core_energy_parts` splits the same sum by component."""
        macs, prec, sram, vector_sram = self._energy_terms(t, H, W, df, m=m, groups=groups, e_sram=e_sram, n=n)
        sram_energy = 0.0
        for part in sram:
            sram_energy = sram_energy + part
        energy = macs * (e_mac + 3 * prec * e_reg) + sram_energy
        if self.has_vector:
            energy = energy + t["vector_work"] * e_vec + vector_sram[0] + vector_sram[1]
        return energy

    def core_energy_parts(self, t: dict, H, W, df, *, m, groups, e_sram, e_mac, e_reg, e_vec=None, n=None) -> dict[str, torch.Tensor]:
        """:meth:`core_energy` by component (``[P, L]`` each; :data:`~codesign.vocab.ENERGY_PARTS`):
        ``mac``, ``rf`` (3 operand bytes of register traffic per MAC), ``sram_ifmap``, ``sram_filter``,
        ``sram_ofmap`` (array reads/writes and DRAM fills of each partition; the vector unit's reads
        are the ifmap partition's, its writes the ofmap partition's) and ``vector`` (its operations).
        They sum to :meth:`core_energy` (to rounding)."""
        macs, prec, (si, sf, so), vector_sram = self._energy_terms(t, H, W, df, m=m, groups=groups, e_sram=e_sram, n=n)
        zero = torch.zeros_like(si)
        parts = {"mac": macs * e_mac + zero, "rf": macs * (3 * prec * e_reg) + zero, "sram_ifmap": si, "sram_filter": sf,
                 "sram_ofmap": so, "vector": zero}
        if self.has_vector:
            parts.update(sram_ifmap=si + vector_sram[0], sram_ofmap=so + vector_sram[1], vector=t["vector_work"] * e_vec + zero)
        return parts

    def _energy_terms(self, t: dict, H, W, df, *, m, groups, e_sram, n=None) -> tuple:
        """What :meth:`core_energy` sums: MACs, operand bytes, the energy of each SRAM partition
        (ifmap, filter, ofmap: array traffic + DRAM fills) and of the vector unit's SRAM reads and
        writes (``None`` without vector work)."""
        lw = self.lw
        n, k, prec = lw.gemm_n if n is None else n, lw.gemm_k, lw.precision_bytes
        macs = groups * m * n * k
        si, sf, so = sram_accesses(m, n, k, H, W, df)
        if self.has_vector:  # a vector layer's GEMM view (1 × 1 × 1) is not run
            macs, si, sf, so = (torch.where(lw.is_vector, 0.0, x) for x in (macs, si, sf, so))
        sram = tuple((groups * words * prec + fill) * e_sram(share) for words, fill, share in zip((si, sf, so), t["fills"], self.split))
        vector_sram = None
        if self.has_vector:
            vector_sram = (t["vector_reads"] * e_sram(self.split[0]), t["vector_writes"] * e_sram(self.split[2]))
        return macs, prec, sram, vector_sram
