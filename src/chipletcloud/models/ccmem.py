"""CC-MEM: the Chiplet Cloud chip's on-chip memory system (SRAM banks, crossbar, decoders).

The memory is all SRAM (docs/hardware-model.md [P]): single-port macros, organised in *bank groups*
that
are joined to the compute units by a pipelined crossbar; each bank group has a compression decoder
that expands the stored (compressed) weights back into dense words ("Store-as-Compressed,
Load-as-Dense" [P]). This module sizes that memory for arrays of (capacity, bandwidth) pairs, or
finds the capacity that fits an area budget. All arrays are numpy, broadcast together; units are
in the names (mm2, bytes, B/s, GHz, pJ, W, cycles). Constants: ``data/tech/ccmem_7nm.yaml`` and the
macro table ``data/tech/ccmem_macros_7nm.json``, each entry with its unit and source.

Architecture and sizing rules
-----------------------------
* Bandwidth ``B`` bits per cycle = bytes/s x 8 / clock. The crossbar has ``P = ceil(B / w)``
  compute-side ports of ``w`` = 16 bits ([A]: one bf16 word per port per cycle).
* Grouping rule [D]: one bank group per crossbar memory-side port, so ``G = P`` groups and the
  crossbar is a square ``G x P`` switch. Each group needs at least ``ceil(w / W)`` macros of width
  ``W`` to supply its port (one, for every shape of the table), so the bank count is
  ``N = max(C_bits / (D W), G ceil(w / W))`` for a macro of ``D`` words x ``W`` bits: the banks
  cover the capacity and, since ``N W >= G w >= B``, the bandwidth. ``N`` is kept continuous in
  the area (the last macro of a group is a shorter one; compilers step depth in a few rows), which
  makes the model exactly invertible; ``banks`` reports ``ceil(N)``.
* Macro shape: per element, the table shape of least macro area ``N x A_macro``. Crossbar and
  decoders do not depend on the shape, so this minimises the total area. Large macros are densest;
  small ones win when the bank floor ``G`` (bandwidth) rather than the capacity sets ``N``.
* Macro area = array + ``macro_periphery_factor`` x periphery (both columns of the table).
* Crossbar area = ``max(G P w a_x, (G w p)(P w p))``: a mux-tree crossbar with ``a_x`` um2 per bit
  crosspoint, floored by the wire grid at effective pitch ``p`` (pitch / routing layers per
  direction; the floor never binds for the 7 nm constants). With ``G = P = B / w`` this is
  ``a_x B^2 / w``: the quadratic bandwidth term of the authors' model.
* Decoders: ``G ceil(w / decoder_output_port_bits)`` of ``decoder_area_mm2`` each (one per group
  for the default 16-bit ports); ``decoders=False`` leaves them out.

Calibration (docs/hardware-model.md, six [A] points at 7 nm / 1 GHz)
------------------------------------------------------------
Two physical constants are fitted, by least squares on the 12 relative errors (area from capacity
and bandwidth, capacity from area and bandwidth, for all six points), with the decoders included:
``macro_periphery_factor`` (periphery of the logic-scaled 16 nm compiler-like estimate) and
``crossbar_area_um2_per_bit_crosspoint``. The largest error is 4.2% (the six points are not
mutually consistent to better than about +-2.5% in area: the forward and inverse pairs differ by
up to 4.9% in area at equal capacity). The errors of every point are listed in
``tests/models/test_ccmem.py``.

Energy and latency (order-of-magnitude, [D] constants)
------------------------------------------------------
Read energy per byte = macro access energy / (W / 8). Crossbar energy per byte = 8 x (wire energy
per bit-mm x L + mux levels x mux energy + stages x register energy), with
``L = wire_length_factor x sqrt(total area)`` (bank group -> crossbar -> compute port). Pipeline
stages = ``ceil((L t_wire + ceil(log2 G) t_mux) / (usable fraction x clock period))``; latency =
macro read + crossbar stages + decoder stages.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import lru_cache
from importlib import resources
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from chipletcloud.config import read_yaml
from chipletcloud.errors import InputError

MIB = 2**20
_CARD_PATH = "data/tech/ccmem_7nm.yaml"
_MACROS_PATH = "data/tech/ccmem_macros_7nm.json"


class MacroShape(NamedTuple):
    """One SRAM macro of the table (7 nm). Areas mm2, energy pJ per read access, leakage mW."""

    depth_words: int
    width_bits: int
    column_mux: int
    array_area_mm2: float  # bit cells only: depth x width x bit-cell area
    periphery_area_mm2: float  # before ``macro_periphery_factor``
    read_pj: float  # energy of one read access of ``width_bits``
    leakage_mw: float
    source: str = ""


_MACRO_KEYS = tuple(f for f in MacroShape._fields if f != "source")


@dataclass(frozen=True)
class ParamsCCMEM:
    """Constants of the CC-MEM model; see ``data/tech/ccmem_7nm.yaml`` for units and sources.

    ``macros`` is the SRAM macro table (``data/tech/ccmem_macros_7nm.json``). The fields from
    ``bitcell_area_7nm_um2`` to ``periphery_leakage_mw_per_mm2`` are the constants the table was
    derived from (:func:`derive_macro_table`); the model itself reads the table.
    """

    bitcell_area_7nm_um2: float
    bitcell_area_16nm_um2: float
    logic_area_scale_16_to_7: float
    macro_max_rows: float
    macro_min_column_mux: float
    macro_max_column_mux: float
    macro_row_periphery_um2_16nm: float
    macro_column_periphery_um2_16nm: float
    macro_control_area_um2_16nm: float
    supply_voltage_v: float
    bitline_cap_per_cell_ff: float
    bitline_read_swing_v: float
    wordline_cap_per_cell_ff: float
    sense_io_energy_fj_per_bit: float
    macro_control_energy_pj: float
    bitcell_leakage_pa: float
    periphery_leakage_mw_per_mm2: float
    macro_periphery_factor: float
    crossbar_port_bits: float
    word_bits: float
    crossbar_area_um2_per_bit_crosspoint: float
    crossbar_wire_pitch_nm: float
    crossbar_routing_layers_per_direction: float
    wire_energy_pj_per_bit_mm: float
    wire_delay_ps_per_mm: float
    wire_length_factor: float
    crossbar_mux_delay_ps_per_level: float
    crossbar_mux_energy_fj_per_bit_level: float
    pipeline_register_energy_fj_per_bit: float
    cycle_usable_fraction: float
    sram_read_latency_cycles: float
    logic_leakage_mw_per_mm2: float
    gate_equivalent_area_um2: float
    logic_placement_utilisation: float
    decoder_gate_equivalents: float
    decoder_area_mm2: float
    decoder_energy_pj_per_byte: float
    decoder_throughput_words_per_cycle: float
    decoder_output_port_bits: float
    decoder_latency_cycles: float
    macros: tuple[MacroShape, ...] = ()

    @classmethod
    def scalar_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls) if f.name != "macros")

    @classmethod
    def default(cls) -> ParamsCCMEM:
        """The 7 nm card and macro table shipped in ``chipletcloud/data/tech``."""
        return _default_params()

    @classmethod
    def from_values(cls, mapping: Mapping[str, Any]) -> ParamsCCMEM:
        """Build from ``name -> number`` (or ``name -> {value, unit, source}``) for every scalar
        field; an optional ``macros`` entry (a list of mappings with the :class:`MacroShape` keys)
        replaces the default macro table. Unknown or missing names raise :class:`InputError`."""
        if not isinstance(mapping, Mapping):
            raise InputError("ccmem", mapping, "a mapping name -> value")
        names = cls.scalar_names()
        unknown = sorted(set(mapping) - set(names) - {"macros"})
        if unknown:
            raise InputError(f"ccmem.{unknown[0]}", mapping[unknown[0]], "a known CC-MEM constant")
        missing = [n for n in names if n not in mapping]
        if missing:
            raise InputError(f"ccmem.{missing[0]}", None, "a value (required field is missing)")
        values: dict[str, Any] = {}
        for n in names:
            v = mapping[n]
            if isinstance(v, Mapping):
                v = v.get("value")
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise InputError(f"ccmem.{n}", v, "a finite number")
            values[n] = float(v)
        raw_macros = mapping.get("macros")
        if raw_macros is None:
            macros = _default_macros()
        else:
            macros = _parse_macros(raw_macros)
        params = cls(**values, macros=macros)
        _check(params)
        return params


def _parse_macros(raw: Any) -> tuple[MacroShape, ...]:
    if isinstance(raw, Mapping) or not hasattr(raw, "__iter__"):
        raise InputError("ccmem.macros", raw, "a list of macro shapes")
    out = []
    for i, m in enumerate(raw):
        if isinstance(m, MacroShape):
            out.append(m)
            continue
        if not isinstance(m, Mapping):
            raise InputError(f"ccmem.macros[{i}]", m, "a mapping with " + ", ".join(_MACRO_KEYS))
        miss = [k for k in _MACRO_KEYS if k not in m]
        if miss:
            raise InputError(f"ccmem.macros[{i}].{miss[0]}", None, "a value (required)")
        vals = {}
        for k in _MACRO_KEYS:
            v = m[k]
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise InputError(f"ccmem.macros[{i}].{k}", v, "a finite number")
            vals[k] = v
        out.append(
            MacroShape(
                depth_words=int(vals["depth_words"]),
                width_bits=int(vals["width_bits"]),
                column_mux=int(vals["column_mux"]),
                array_area_mm2=float(vals["array_area_mm2"]),
                periphery_area_mm2=float(vals["periphery_area_mm2"]),
                read_pj=float(vals["read_pj"]),
                leakage_mw=float(vals["leakage_mw"]),
                source=str(m.get("source", "")),
            )
        )
    if not out:
        raise InputError("ccmem.macros", raw, "at least one macro shape")
    return tuple(out)


_POSITIVE = (
    "crossbar_port_bits",
    "word_bits",
    "crossbar_routing_layers_per_direction",
    "wire_length_factor",
    "cycle_usable_fraction",
    "decoder_throughput_words_per_cycle",
    "decoder_output_port_bits",
    "macro_max_rows",
    "macro_min_column_mux",
    "macro_max_column_mux",
    "bitcell_area_7nm_um2",
    "bitcell_area_16nm_um2",
    "logic_area_scale_16_to_7",
    "supply_voltage_v",
    "gate_equivalent_area_um2",
    "logic_placement_utilisation",
)


def _check(p: ParamsCCMEM) -> None:
    for n in p.scalar_names():
        v = getattr(p, n)
        if n in _POSITIVE and not v > 0:
            raise InputError(f"ccmem.{n}", v, "> 0")
        if v < 0:
            raise InputError(f"ccmem.{n}", v, ">= 0")
    if p.cycle_usable_fraction > 1:
        raise InputError("ccmem.cycle_usable_fraction", p.cycle_usable_fraction, "<= 1")
    expect = p.decoder_throughput_words_per_cycle * p.word_bits
    if abs(p.decoder_output_port_bits - expect) > 1e-9:
        raise InputError(
            "ccmem.decoder_output_port_bits",
            p.decoder_output_port_bits,
            f"decoder_throughput_words_per_cycle x word_bits = {expect:g}",
        )
    for i, m in enumerate(p.macros):
        if m.depth_words <= 0 or m.width_bits <= 0 or m.column_mux <= 0:
            raise InputError(f"ccmem.macros[{i}]", m[:3], "positive depth, width and mux")
        if m.array_area_mm2 <= 0 or m.periphery_area_mm2 < 0 or m.read_pj < 0 or m.leakage_mw < 0:
            raise InputError(f"ccmem.macros[{i}]", m[3:7], "positive areas, energy and leakage")


@lru_cache(maxsize=1)
def _default_macros() -> tuple[MacroShape, ...]:
    path = resources.files("chipletcloud").joinpath(_MACROS_PATH)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError("ccmem macro table", str(path), "a readable JSON list") from exc
    return _parse_macros(raw)


@lru_cache(maxsize=1)
def _default_params() -> ParamsCCMEM:
    path = resources.files("chipletcloud").joinpath(_CARD_PATH)
    raw: Any = read_yaml(path, "ccmem card")
    if not isinstance(raw, dict):
        raise InputError("ccmem card", str(path), "a YAML mapping name: {value, unit, source}")
    for key, entry in raw.items():
        if not isinstance(entry, dict) or not {"value", "unit", "source"} <= set(entry):
            raise InputError(f"ccmem.{key}", entry, "a mapping {value, unit, source}")
    return ParamsCCMEM.from_values(raw)


# --------------------------------------------------------------------------------------------------
# The macro table


def derive_macro_table(params: ParamsCCMEM | None = None) -> list[dict]:
    """Recompute the macro table from the card's constants (how ccmem_macros_7nm.json was made).

    For ``D`` words x ``W`` bits: column mux ``m = clip(D / max_rows, min_mux, max_mux)``, physical
    rows ``R = D / m``, columns ``K = W m``.

    * array area = ``D W`` x 0.027 um2 (7 nm bit cell [A][L]);
    * periphery = (``R`` x row periphery + ``K`` x column periphery + control) of a 16 nm
      compiler-like macro [D], x 0.3167 (16 -> 7 nm logic density ratio [L]); the model multiplies
      it by the fitted ``macro_periphery_factor``;
    * read energy per access = ``R K`` C_bl V dV (every column of the row swings) + ``K`` C_wl V^2
      + ``W`` x sense/IO energy + control energy;
    * leakage = ``D W`` x I_cell x V + periphery area x periphery leakage density.
    """
    p = params or ParamsCCMEM.default()
    shapes = [(d, w) for d in (512, 1024, 2048, 4096) for w in (32, 64, 128)] + [(8192, 32)]
    out = []
    for d, w in shapes:
        mux = int(min(max(d / p.macro_max_rows, p.macro_min_column_mux), p.macro_max_column_mux))
        rows, cols = d // mux, w * mux
        array = d * w * p.bitcell_area_7nm_um2 * 1e-6
        periph_16 = (
            rows * p.macro_row_periphery_um2_16nm
            + cols * p.macro_column_periphery_um2_16nm
            + p.macro_control_area_um2_16nm
        )
        periph = periph_16 * p.logic_area_scale_16_to_7 * 1e-6
        v = p.supply_voltage_v
        read_fj = (
            rows * cols * p.bitline_cap_per_cell_ff * v * p.bitline_read_swing_v
            + cols * p.wordline_cap_per_cell_ff * v * v
            + w * p.sense_io_energy_fj_per_bit
        )
        read_pj = read_fj * 1e-3 + p.macro_control_energy_pj
        leak_mw = d * w * p.bitcell_leakage_pa * 1e-12 * v * 1e3 + periph * (
            p.periphery_leakage_mw_per_mm2
        )
        out.append(
            {
                "depth_words": d,
                "width_bits": w,
                "column_mux": mux,
                "array_area_mm2": array,
                "periphery_area_mm2": periph,
                "read_pj": read_pj,
                "leakage_mw": leak_mw,
            }
        )
    return out


@lru_cache(maxsize=16)
def _table(params: ParamsCCMEM) -> dict[str, np.ndarray]:
    m = params.macros
    depth = np.array([s.depth_words for s in m], float)
    width = np.array([s.width_bits for s in m], float)
    area = np.array(
        [s.array_area_mm2 + params.macro_periphery_factor * s.periphery_area_mm2 for s in m]
    )
    return {
        "depth": depth,
        "width": width,
        "bits": depth * width,
        "area_mm2": area,
        "read_pj": np.array([s.read_pj for s in m], float),
        "leakage_mw": np.array([s.leakage_mw for s in m], float),
        "min_banks_per_group": np.ceil(params.crossbar_port_bits / width - 1e-9),
    }


def macro_areas_mm2(params: ParamsCCMEM | None = None) -> np.ndarray:
    """Calibrated area (mm2) of each macro of the table: array + factor x periphery."""
    return _table(params or ParamsCCMEM.default())["area_mm2"].copy()


# --------------------------------------------------------------------------------------------------
# Crossbar and decoders


def _fabric(
    bandwidth_bytes_per_s: np.ndarray, clock_ghz: np.ndarray, p: ParamsCCMEM, decoders: bool
) -> dict[str, np.ndarray]:
    """Ports, bank groups, crossbar and decoder areas (mm2) for a bandwidth (B/s) and clock."""
    bits = bandwidth_bytes_per_s * 8.0 / (clock_ghz * 1e9)
    ports = np.maximum(np.ceil(bits / p.crossbar_port_bits - 1e-9), 1.0)
    groups = ports
    w = p.crossbar_port_bits
    logic = groups * ports * w * p.crossbar_area_um2_per_bit_crosspoint * 1e-6
    pitch_um = p.crossbar_wire_pitch_nm * 1e-3 / p.crossbar_routing_layers_per_direction
    wire = (groups * w * pitch_um) * (ports * w * pitch_um) * 1e-6
    per_group = math.ceil(w / p.decoder_output_port_bits - 1e-9) if decoders else 0
    return {
        "bits_per_cycle": bits,
        "ports": ports,
        "groups": groups,
        "crossbar_area_mm2": np.maximum(logic, wire),
        "decoders_per_group": per_group,
        "decoder_area_mm2": groups * per_group * p.decoder_area_mm2,
    }


def _broadcast(*arrays: ArrayLike) -> tuple[tuple[int, ...], list[np.ndarray]]:
    arrs = np.broadcast_arrays(*[np.asarray(a, dtype=float) for a in arrays])
    shape = arrs[0].shape
    return shape, [a.reshape(-1) for a in arrs]


def _timing_energy(
    total_mm2: np.ndarray,
    groups: np.ndarray,
    clock: np.ndarray,
    p: ParamsCCMEM,
    decoders: bool,
) -> dict[str, np.ndarray]:
    length_mm = p.wire_length_factor * np.sqrt(np.maximum(total_mm2, 0.0))
    levels = np.ceil(np.log2(np.maximum(groups, 1.0)) - 1e-9)
    path_ps = length_mm * p.wire_delay_ps_per_mm + levels * p.crossbar_mux_delay_ps_per_level
    budget_ps = p.cycle_usable_fraction * 1e3 / clock
    stages = np.maximum(np.ceil(path_ps / budget_ps - 1e-9), 1.0)
    xbar_pj_per_bit = (
        p.wire_energy_pj_per_bit_mm * length_mm
        + levels * p.crossbar_mux_energy_fj_per_bit_level * 1e-3
        + stages * p.pipeline_register_energy_fj_per_bit * 1e-3
    )
    latency = p.sram_read_latency_cycles + stages
    if decoders:
        latency = latency + p.decoder_latency_cycles
    return {
        "wire_length_mm": length_mm,
        "crossbar_stages": stages,
        "crossbar_pj_per_byte": 8.0 * xbar_pj_per_bit,
        "latency_cycles": latency,
    }


# --------------------------------------------------------------------------------------------------
# Forward and inverse models


def ccmem_design(
    capacity_bytes: ArrayLike,
    bandwidth_bytes_per_s: ArrayLike,
    clock_ghz: ArrayLike = 1.0,
    params: ParamsCCMEM | None = None,
    decoders: bool = True,
) -> dict[str, np.ndarray]:
    """Size a CC-MEM for a stored capacity (bytes) and a read bandwidth (B/s) at a clock (GHz).

    Returns arrays of the broadcast shape:

    * ``macro_area_mm2``, ``crossbar_area_mm2``, ``decoder_area_mm2``, ``total_area_mm2`` (the sum);
    * ``banks`` (integer count, ceil of the continuous bank count used for area), ``bank_groups``,
      ``crossbar_ports`` (= bank groups), ``macro_depth`` (words), ``macro_width`` (bits);
    * ``read_pj_per_byte`` (SRAM macro read), ``crossbar_pj_per_byte``, ``decoder_pj_per_byte``,
      ``access_pj_per_byte`` (their sum: energy per byte delivered to a compute port);
    * ``leakage_w`` (macros + crossbar + decoders), ``latency_cycles`` (macro read + crossbar
      pipeline + decoder), ``crossbar_stages``, ``wire_length_mm``.

    Rules and constants: module docstring and ``data/tech/ccmem_7nm.yaml``.
    """
    p = params or ParamsCCMEM.default()
    t = _table(p)
    shape, (cap, bw, clk) = _broadcast(capacity_bytes, bandwidth_bytes_per_s, clock_ghz)
    fab = _fabric(bw, clk, p, decoders)
    groups = fab["groups"]
    floor = groups[:, None] * t["min_banks_per_group"][None, :]
    banks = np.maximum(np.maximum(cap, 0.0)[:, None] * 8.0 / t["bits"][None, :], floor)
    macro_k = banks * t["area_mm2"][None, :]
    k = np.argmin(macro_k, axis=1)
    rows = np.arange(k.size)
    nb = banks[rows, k]
    macro = macro_k[rows, k]
    total = macro + fab["crossbar_area_mm2"] + fab["decoder_area_mm2"]
    te = _timing_energy(total, groups, clk, p, decoders)
    read = t["read_pj"][k] / (t["width"][k] / 8.0)
    dec_e = np.full_like(total, p.decoder_energy_pj_per_byte if decoders else 0.0)
    leak_mw = (
        nb * t["leakage_mw"][k]
        + (fab["crossbar_area_mm2"] + fab["decoder_area_mm2"]) * p.logic_leakage_mw_per_mm2
    )
    out = {
        "macro_area_mm2": macro,
        "crossbar_area_mm2": fab["crossbar_area_mm2"],
        "decoder_area_mm2": fab["decoder_area_mm2"],
        "total_area_mm2": total,
        "banks": np.ceil(nb - 1e-9),
        "bank_groups": groups,
        "crossbar_ports": fab["ports"],
        "macro_depth": t["depth"][k],
        "macro_width": t["width"][k],
        "read_pj_per_byte": read,
        "crossbar_pj_per_byte": te["crossbar_pj_per_byte"],
        "decoder_pj_per_byte": dec_e,
        "access_pj_per_byte": read + te["crossbar_pj_per_byte"] + dec_e,
        "leakage_w": leak_mw * 1e-3,
        "latency_cycles": te["latency_cycles"],
        "crossbar_stages": te["crossbar_stages"],
        "wire_length_mm": te["wire_length_mm"],
    }
    return {name: v.reshape(shape) for name, v in out.items()}


def _inverse(
    sram_area_mm2: ArrayLike,
    bandwidth_bytes_per_s: ArrayLike,
    clock_ghz: ArrayLike,
    p: ParamsCCMEM,
    decoders: bool,
) -> tuple[tuple[int, ...], dict[str, np.ndarray]]:
    t = _table(p)
    shape, (area, bw, clk) = _broadcast(sram_area_mm2, bandwidth_bytes_per_s, clock_ghz)
    fab = _fabric(bw, clk, p, decoders)
    budget = area - fab["crossbar_area_mm2"] - fab["decoder_area_mm2"]  # for the macros
    floor_mm2 = fab["groups"][:, None] * t["min_banks_per_group"][None, :] * t["area_mm2"][None, :]
    fits = budget[:, None] >= floor_mm2 * (1.0 - 1e-12)
    bytes_per_mm2 = t["bits"] / 8.0 / t["area_mm2"]
    cap_k = np.where(fits, budget[:, None] * bytes_per_mm2[None, :], -np.inf)
    k = np.argmax(cap_k, axis=1)
    rows = np.arange(k.size)
    cap = cap_k[rows, k]
    bad = ~np.isfinite(cap)
    if np.any(bad):
        # No shape fits: the shortfall against the smallest bank floor, in bytes of that shape
        # (<= 0), so that "capacity > 0" is the feasibility test.
        j = np.argmin(floor_mm2[bad], axis=1)
        short = budget[bad] - floor_mm2[bad][np.arange(j.size), j]
        cap[bad] = np.minimum(short, 0.0) * bytes_per_mm2[j]
        k[bad] = j
    nan = np.isnan(budget)
    cap[nan] = np.nan
    out = {
        "capacity_bytes": cap,
        "macro_area_mm2": budget,
        "crossbar_area_mm2": fab["crossbar_area_mm2"],
        "decoder_area_mm2": fab["decoder_area_mm2"],
        "bank_groups": fab["groups"],
        "macro_depth": t["depth"][k],
        "macro_width": t["width"][k],
        "feasible": ~bad & ~nan,
    }
    return shape, out


def ccmem_capacity_bytes(
    sram_area_mm2: ArrayLike,
    bandwidth_bytes_per_s: ArrayLike,
    clock_ghz: ArrayLike = 1.0,
    params: ParamsCCMEM | None = None,
    decoders: bool = True,
) -> np.ndarray:
    """Largest stored capacity (bytes) whose CC-MEM fits ``sram_area_mm2`` at the bandwidth.

    Closed form, the exact inverse of :func:`ccmem_design`: the macro budget (area minus crossbar
    minus decoders) is filled with the densest macro whose bank floor (one bank per group) fits.
    Where no shape fits (crossbar and decoders too big, or the bank floor not reachable) the result
    is <= 0: the shortfall in macro area expressed in bytes. Vectorised over (elements x shapes);
    about 1 ms for 5,000 elements.
    """
    p = params or ParamsCCMEM.default()
    shape, out = _inverse(sram_area_mm2, bandwidth_bytes_per_s, clock_ghz, p, decoders)
    return out["capacity_bytes"].reshape(shape)


def sram_capacity_ccmem(
    sram_area_mm2: ArrayLike,
    bandwidth_bytes_per_s: ArrayLike,
    clock_ghz: ArrayLike = 1.0,
    params: ParamsCCMEM | None = None,
    decoders: bool = True,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Third SRAM area model for the chip model: (capacity bytes, breakdown).

    ``capacity_bytes`` is :func:`ccmem_capacity_bytes` (<= 0 where infeasible). The breakdown has
    ``macro_area_mm2`` (the area left for macros: sram area - crossbar - decoders; negative where
    even the crossbar and decoders do not fit), ``crossbar_area_mm2``, ``decoder_area_mm2``
    (macro + crossbar + decoder = ``sram_area_mm2``), ``bank_groups``, ``macro_depth``,
    ``macro_width`` and the boolean ``feasible``.
    """
    p = params or ParamsCCMEM.default()
    shape, out = _inverse(sram_area_mm2, bandwidth_bytes_per_s, clock_ghz, p, decoders)
    cap = out.pop("capacity_bytes").reshape(shape)
    return cap, {name: v.reshape(shape) for name, v in out.items()}
