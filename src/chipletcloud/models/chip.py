"""Chip model: area split, peak compute, CC-MEM capacity and bandwidth, power and chip checks.

All functions take numpy arrays of candidates and return arrays (areas mm2, FLOP/s, bytes, B/s, W).
Formulas: docs/hardware-model.md#chip-area-compute-memory-and-power [A]; the worked example
(docs/hardware-model.md#worked-example) is reproduced in tests.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from chipletcloud.config import TechParams

MIB = 2**20
MB = 1e6


def area_split(die_area_mm2: ArrayLike, mac_ratio: ArrayLike, tech: TechParams) -> dict:
    """Square die of area A: core side = sqrt(A) - pad ring; usable = core_ratio x core area; minus
    the chip-to-chip IO cells and other blocks; the rest split into MAC arrays and SRAM by
    ``mac_ratio`` = A_mac / (A_mac + A_sram). Areas may come out <= 0 for tiny dies (checked)."""
    a = np.asarray(die_area_mm2, dtype=float)
    r = np.asarray(mac_ratio, dtype=float)
    side = np.sqrt(a)
    core_side = np.maximum(side - tech.pad_ring_width_mm, 0.0)
    core = core_side**2
    io = tech.io_cells_per_chip * tech.io_cell_area_mm2
    logic = core * tech.core_area_ratio - io - tech.other_area_mm2
    mac = logic * r
    return {
        "die_side_mm": side,
        "core_area_mm2": core,
        "pad_ring_area_mm2": a - core,
        "unusable_core_area_mm2": core * (1 - tech.core_area_ratio),
        "io_area_mm2": np.full_like(a, io),
        "other_area_mm2": np.full_like(a, tech.other_area_mm2),
        "mac_area_mm2": mac,
        "sram_area_mm2": logic - mac,
    }


def peak_flops(mac_area_mm2: ArrayLike, tech: TechParams) -> np.ndarray:
    """Peak FLOP/s = A_mac / rho_mac x 1e12 (rho_mac in mm2 per TFLOPS)."""
    return np.asarray(mac_area_mm2, float) / tech.mac_density_mm2_per_tflops * 1e12


def sram_bandwidth_bytes_per_s(
    flops: ArrayLike, operational_intensity: ArrayLike, tech: TechParams
) -> np.ndarray:
    """Weight bandwidth needed to keep the MACs busy: FLOPS / 2 / OI words per second, x word
    bytes (OI = MACs per weight word read; docs/hardware-model.md)."""
    return (
        np.asarray(flops, float) / 2.0 / np.asarray(operational_intensity, float) * tech.word_bytes
    )


def sram_capacity_bytes_linear(sram_area_mm2: ArrayLike, tech: TechParams) -> np.ndarray:
    """Linear density: capacity = A_sram / (mm2 per MB) (0.45 mm2/MB at 7 nm [A1])."""
    return np.asarray(sram_area_mm2, float) / tech.sram_density_mm2_per_mb * MB


def sram_kbit_per_cycle(bandwidth_bytes_per_s: ArrayLike, tech: TechParams) -> np.ndarray:
    """Bandwidth in kbit per clock cycle."""
    return np.asarray(bandwidth_bytes_per_s, float) * 8.0 / (tech.clock_ghz * 1e9) / 1e3


def sram_area_bandwidth_aware(
    capacity_bytes: ArrayLike, bandwidth_bytes_per_s: ArrayLike, tech: TechParams
) -> np.ndarray:
    """Bandwidth-aware SRAM area (mm2) = a x C_MiB + b x (kbit/cycle)^2: a capacity term and a
    crossbar term growing with the square of the port count. a, b are a least-squares fit to the
    authors' six macro-model points (docs/hardware-model.md; fit and errors in
    tests/models/test_chip.py)."""
    k = sram_kbit_per_cycle(bandwidth_bytes_per_s, tech)
    c_mib = np.asarray(capacity_bytes, float) / MIB
    return tech.sram_capacity_mm2_per_mib * c_mib + tech.sram_crossbar_mm2_per_kbit2 * k**2


def sram_capacity_bytes_bandwidth_aware(
    sram_area_mm2: ArrayLike, bandwidth_bytes_per_s: ArrayLike, tech: TechParams
) -> np.ndarray:
    """Inverse of :func:`sram_area_bandwidth_aware`: the capacity left after the crossbar needed
    for the bandwidth. Negative where the crossbar alone exceeds the SRAM area (checked)."""
    k = sram_kbit_per_cycle(bandwidth_bytes_per_s, tech)
    cross = tech.sram_crossbar_mm2_per_kbit2 * k**2
    return (np.asarray(sram_area_mm2, float) - cross) / tech.sram_capacity_mm2_per_mib * MIB


def chip_power_w(flops: ArrayLike, tech: TechParams) -> dict:
    """Chip TDP = TFLOPS x W/TFLOPS (core) + IO cells x W/cell + other power
    (docs/hardware-model.md#constants-and-their-sources)."""
    core = np.asarray(flops, float) / 1e12 * tech.power_w_per_tflops
    io = tech.io_cells_per_chip * tech.io_cell_power_w
    return {
        "core_power_w": core,
        "io_power_w": np.full_like(core, io),
        "leakage_power_w": np.zeros_like(core),
        "chip_tdp_w": core + io + tech.other_power_w,
    }


def chip_power_components_w(
    flops: ArrayLike,
    bandwidth_bytes_per_s: ArrayLike,
    core_area_mm2: ArrayLike,
    sram_area_mm2: ArrayLike,
    sram_bytes: ArrayLike,
    tech: TechParams,
    decoder_power_w: ArrayLike = 0.0,
) -> dict:
    """Chip TDP from its parts (``chip_power_model = components``; docs/hardware-model.md#chip-
    power), W: every part at its full rate at once, plus what leaks.

    * MACs: F/2 FMAs a second x ``fma_energy_pj`` (the energy model's FMA, [A]);
    * SRAM: the design bandwidth x ``sram_weight_read_pj_per_byte`` (its ports move at most that
      many bytes a second, reads or writes);
    * compression decoders at the design bandwidth (``ccmem`` only, ``decoder_power_w``);
    * links: IO cells x W a cell, plus ``other_power_w`` (always on);
    * leakage: ``logic_leakage_w_per_mm2`` x (core area - SRAM area) + ``sram_leakage_w_per_mb``
      x MB held (data/tech/7nm.yaml).

    ``core_power_w`` is what the core rail carries (all but the IO cells and other blocks): the
    DC-DC converters are sized on it. The energy model's mean power (MACs, reads, leakage and IO
    over the run) cannot exceed this TDP (tests/models/test_chip.py)."""
    f = np.asarray(flops, float)
    mac = f / 2.0 * tech.fma_energy_pj * 1e-12
    sram = np.asarray(bandwidth_bytes_per_s, float) * tech.sram_weight_read_pj_per_byte * 1e-12
    dec = np.broadcast_to(np.asarray(decoder_power_w, float), f.shape)
    logic = np.maximum(np.asarray(core_area_mm2, float) - np.asarray(sram_area_mm2, float), 0.0)
    mb = np.maximum(np.asarray(sram_bytes, float), 0.0) / MB
    leak = tech.logic_leakage_w_per_mm2 * logic + tech.sram_leakage_w_per_mb * mb
    io = tech.io_cells_per_chip * tech.io_cell_power_w
    core = mac + sram + dec + leak
    return {
        "mac_power_w": mac,
        "sram_power_w": sram,
        "leakage_power_w": leak,
        "core_power_w": core,
        "io_power_w": np.full_like(core, io),
        "chip_tdp_w": core + io + tech.other_power_w,
    }


#: Chip power rules (``choices.chip_power_model``).
CHIP_POWER_MODELS = ("authors_density", "components")


CHIP_CHECKS = ("die_area", "logic_area", "sram_bandwidth", "power_density")


def evaluate_chips(
    die_area_mm2: ArrayLike,
    mac_ratio: ArrayLike,
    operational_intensity: ArrayLike,
    tech: TechParams,
    sram_area_model: str = "bandwidth_aware",
    chip_power_model: str = "authors_density",
) -> dict:
    """All chip columns for arrays of (die area, mac_ratio, OI), plus boolean ``ok_<check>`` columns
    for :data:`CHIP_CHECKS` (die within the reticle limit, positive MAC/SRAM area, SRAM able to
    deliver the bandwidth with capacity left, power density within limit). The chip TDP follows
    ``chip_power_model`` (:func:`chip_power_w` or :func:`chip_power_components_w`)."""
    a = np.asarray(die_area_mm2, float)
    oi = np.broadcast_to(np.asarray(operational_intensity, float), a.shape)
    out = area_split(a, mac_ratio, tech)
    flops = np.maximum(peak_flops(out["mac_area_mm2"], tech), 0.0)
    bw = sram_bandwidth_bytes_per_s(flops, oi, tech)
    if sram_area_model == "linear":
        cap = sram_capacity_bytes_linear(out["sram_area_mm2"], tech)
    elif sram_area_model == "bandwidth_aware":
        cap = sram_capacity_bytes_bandwidth_aware(out["sram_area_mm2"], bw, tech)
        out["sram_crossbar_area_mm2"] = (
            tech.sram_crossbar_mm2_per_kbit2 * sram_kbit_per_cycle(bw, tech) ** 2
        )
    elif sram_area_model == "ccmem":
        from chipletcloud.models.ccmem import ParamsCCMEM, sram_capacity_ccmem

        cap, parts = sram_capacity_ccmem(out["sram_area_mm2"], bw, tech.clock_ghz)
        out["sram_macro_area_mm2"] = parts["macro_area_mm2"]
        out["sram_crossbar_area_mm2"] = parts["crossbar_area_mm2"]
        out["sram_decoder_area_mm2"] = parts["decoder_area_mm2"]
        out["sram_bank_groups"] = parts["bank_groups"]
        # the decoders run on every dense byte delivered (Load-as-Dense): their power at the
        # design bandwidth is charged to the chip (ccmem card: decoder energy per dense byte)
        decoder_pj = ParamsCCMEM.default().decoder_energy_pj_per_byte
        out["decoder_power_w"] = bw * decoder_pj * 1e-12
    else:
        from chipletcloud.errors import InputError

        raise InputError("sram_area_model", sram_area_model, "linear, bandwidth_aware, ccmem")
    if chip_power_model == "components":
        out.update(
            chip_power_components_w(
                flops,
                bw,
                out["core_area_mm2"],
                out["sram_area_mm2"],
                cap,
                tech,
                out.get("decoder_power_w", 0.0),
            )
        )
    elif chip_power_model == "authors_density":
        out.update(chip_power_w(flops, tech))
        if "decoder_power_w" in out:
            out["chip_tdp_w"] = out["chip_tdp_w"] + out["decoder_power_w"]
    else:
        from chipletcloud.errors import InputError

        raise InputError("chip_power_model", chip_power_model, ", ".join(CHIP_POWER_MODELS))
    out.update(
        die_area_mm2=a,
        operational_intensity=oi.copy(),
        flops_per_chip=flops,
        tflops_per_chip=flops / 1e12,
        sram_bytes_per_chip=cap,
        sram_mb_per_chip=cap / MB,
        sram_bandwidth_bytes_per_s=bw,
        sram_bandwidth_gbps_per_chip=bw / 1e9,
        chip_link_bytes_per_s=np.full_like(
            a, tech.io_cells_per_chip * tech.io_cell_gbyte_per_s * 1e9
        ),
        power_density_w_per_mm2=out["chip_tdp_w"] / a,
    )
    out["ok_die_area"] = a <= tech.max_die_area_mm2
    out["ok_logic_area"] = (out["mac_area_mm2"] > 0) & (out["sram_area_mm2"] > 0)
    out["ok_sram_bandwidth"] = cap > 0
    out["ok_power_density"] = out["power_density_w_per_mm2"] <= tech.max_power_density_w_per_mm2
    return out
