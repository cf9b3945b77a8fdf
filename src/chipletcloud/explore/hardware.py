"""Phase 1: bottom-up, LLM-agnostic exploration of the hardware space.

Enumerates every (die area, mac_ratio, OI) chip and every server built from it (packages per lane,
lanes, chips per package), evaluates the chip, die cost, package, heatsink, server BOM, power and
TCO at TDP, applies every check, and keeps the realizable servers. Fully vectorised: the chip model
runs once per unique chip, die cost once per unique area, the thermal model once per unique
(package side, packages per lane).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from chipletcloud.config import HardwareSpace, Params
from chipletcloud.models import chip as chipm
from chipletcloud.models import cost, package, server, tco
from chipletcloud.models.thermal import ThermalParams, lane_thermal

#: Rejection reasons, in the order they are attributed (a candidate counts under its first failure).
REASONS = tuple(chipm.CHIP_CHECKS) + tuple(server.SERVER_CHECKS)


@dataclass
class HardwareResult:
    """The servers table (valid rows only) and the exploration counters."""

    table: dict[str, np.ndarray]
    candidates: int
    rejected: dict[str, int]
    failures: dict[str, int] = field(default_factory=dict)

    @property
    def valid(self) -> int:
        return int(len(self.table["server_id"]))


def enumerate_space(space: HardwareSpace) -> dict[str, np.ndarray]:
    """Every candidate as columns, in a fixed order (server_id = row index): die area slowest,
    then mac_ratio, OI, packages per lane, lanes, chips per package."""
    axes = [
        np.asarray(space.die_area_mm2, float),
        np.asarray(space.mac_ratio, float),
        np.asarray(space.operational_intensity, float),
        np.asarray(space.packages_per_lane, np.int64),
        np.asarray(space.lanes_per_server, np.int64),
        np.asarray(space.chips_per_package, np.int64),
    ]
    grids = np.meshgrid(*axes, indexing="ij")
    names = (
        "die_area_mm2",
        "mac_ratio",
        "operational_intensity",
        "packages_per_lane",
        "lanes_per_server",
        "chips_per_package",
    )
    return {n: g.ravel() for n, g in zip(names, grids, strict=True)}


def evaluate_servers(cand: dict[str, np.ndarray], params: Params) -> dict[str, np.ndarray]:
    """Evaluate every column of every candidate server (valid or not), with ``ok_*`` checks."""
    tech, srv, ch = params.tech, params.server, params.choices
    n = len(cand["die_area_mm2"])
    # chip model once per unique chip
    keys = np.stack([cand["die_area_mm2"], cand["mac_ratio"], cand["operational_intensity"]], 1)
    uniq, inv = np.unique(keys, axis=0, return_inverse=True)
    inv = inv.ravel()
    chips = chipm.evaluate_chips(
        uniq[:, 0], uniq[:, 1], uniq[:, 2], tech, ch.sram_area_model, ch.chip_power_model
    )
    out: dict[str, np.ndarray] = {"server_id": np.arange(n, dtype=np.int64)}
    out.update(cand)
    for k, v in chips.items():
        if k not in out:
            out[k] = v[inv]
    a = cand["die_area_mm2"]
    # die cost
    out["dies_per_wafer"] = cost.dies_per_wafer(
        a, tech.wafer_diameter_mm, tech.dicing_gap_mm, ch.dies_per_wafer_method
    )
    out["die_yield"] = cost.die_yield(a, tech.defect_density_per_mm2, tech.yield_cluster_alpha)
    out["die_cost_usd"] = cost.die_cost_from_tech(a, tech, ch.dies_per_wafer_method)
    k = cand["chips_per_package"].astype(float)
    out["package_cost_usd"] = package.package_cost_usd(
        a, out["die_cost_usd"], srv, ch.package_cost_model, k
    )
    # thermal: heat source of one package = its dies side by side
    th = lane_thermal(
        np.sqrt(a * k),
        cand["packages_per_lane"],
        ThermalParams.from_values(params.thermal),
        ch.heatsink_allowance_factor,
    )
    out["heatsink_max_power_w"] = th.max_package_power_w
    out["heatsink_cost_usd"] = np.nan_to_num(th.heatsink_cost_usd, nan=0.0)
    out["lane_airflow_m3_per_s"] = th.airflow_m3_per_s
    out["package_power_w"] = out["chip_tdp_w"] * k
    lanes = cand["lanes_per_server"]
    out["packages_per_server"] = cand["packages_per_lane"] * lanes
    out["chips_per_server"] = out["packages_per_server"] * cand["chips_per_package"]
    out.update(server.server_power_w(out["chip_tdp_w"], out["chips_per_server"], lanes, srv))
    out.update(
        server.server_bom_usd(
            die_cost_usd=out["die_cost_usd"],
            package_cost_usd=out["package_cost_usd"],
            heatsink_cost_usd=out["heatsink_cost_usd"],
            core_power_w=out["core_power_w"],
            chips_per_server=out["chips_per_server"],
            packages_per_server=out["packages_per_server"],
            lanes=lanes,
            server_tdp_w=out["server_tdp_w"],
            server=srv,
            include_host_cost=ch.include_host_cost,
            full_bom=ch.full_bom,
        )
    )
    out.update(
        server.server_checks(
            die_area_mm2=a,
            chips_per_package=k,
            packages_per_lane=cand["packages_per_lane"],
            package_power_w=out["package_power_w"],
            max_package_power_w=th.max_package_power_w,
            chips_power_w=out["chips_power_w"],
            server=srv,
        )
    )
    out["tflops_per_server"] = out["tflops_per_chip"] * out["chips_per_server"]
    out["sram_gb_per_server"] = out["sram_bytes_per_chip"] * out["chips_per_server"] / 1e9
    parts = tco.server_tco_breakdown(out["server_cost_usd"], out["server_tdp_w"], params=params.tco)
    out["server_tco_at_tdp_usd"] = parts["total"]
    return out


def explore_hardware(
    space: HardwareSpace, params: Params, progress: Callable[[str], None] | None = None
) -> HardwareResult:
    """Run phase 1 on ``space`` under ``params``; return the valid servers and the counters.
    ``progress`` is told each part when it is done (enumerate, evaluate, check)."""
    step = progress or (lambda _msg: None)
    cand = enumerate_space(space)
    step("enumerate")
    cols = evaluate_servers(cand, params)
    step("evaluate")
    ok = np.ones(len(cand["die_area_mm2"]), bool)
    rejected: dict[str, int] = {}
    failures: dict[str, int] = {}
    for reason in REASONS:
        passed = cols[f"ok_{reason}"]
        failures[reason] = int((~passed).sum())
        rejected[reason] = int((ok & ~passed).sum())
        ok &= passed
    table = {k: v[ok] for k, v in cols.items() if not k.startswith("ok_")}
    step("check")
    return HardwareResult(
        table=table, candidates=int(ok.size), rejected=rejected, failures=failures
    )
