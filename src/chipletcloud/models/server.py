"""Server model: bill of materials, power with conversion losses, and the server checks.

After the ASIC Clouds server (Magaki et al., ISCA 2016) as configured by the Chiplet Cloud authors
(docs/hardware-model.md [A]): ``lanes`` air ducts, each with one fan and a row of
``packages_per_lane``
packages under their own heatsinks; PSU and DC-DC converters; a host processor, NIC, PCBs, parts
and chassis. All inputs and outputs are numpy arrays over server candidates (USD, W, mm2).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from chipletcloud.config import ServerParams

SERVER_CHECKS = ("lane_silicon", "thermal", "server_power")


def server_power_w(
    chip_tdp_w: ArrayLike, chips_per_server: ArrayLike, lanes: ArrayLike, server: ServerParams
) -> dict:
    """Wall power at TDP: (chips + fans + host) / (PSU efficiency x DC-DC efficiency).
    docs/hardware-model.md#worked-example: 1949.5 W of chips -> 2281.08 W at the wall."""
    chips = np.asarray(chip_tdp_w, float) * np.asarray(chips_per_server, float)
    fans = np.asarray(lanes, float) * server.fan_power_w
    host = np.full_like(chips, server.host_power_w)
    eff = server.psu_efficiency * server.dcdc_efficiency
    total = (chips + fans + host) / eff
    return {
        "chips_power_w": chips,
        "fans_power_w": fans,
        "host_power_w": host,
        "conversion_loss_w": total - chips - fans - host,
        "server_tdp_w": total,
    }


def server_bom_usd(
    *,
    die_cost_usd: ArrayLike,
    package_cost_usd: ArrayLike,
    heatsink_cost_usd: ArrayLike,
    core_power_w: ArrayLike,
    chips_per_server: ArrayLike,
    packages_per_server: ArrayLike,
    lanes: ArrayLike,
    server_tdp_w: ArrayLike,
    server: ServerParams,
    include_host_cost: bool = True,
    full_bom: bool = False,
) -> dict:
    """Server bill of materials (USD per server).

    DC-DC converters are sized by current: the host at ``host_rail_voltage_v`` plus every chip's
    core power at ``core_voltage_v`` (the authors size them on core power only, leaving IO power
    out; docs/hardware-model.md#worked-example, $789.31). The PSU is priced per watt of wall power.
    The host's cost is added only with ``include_host_cost`` (the authors' code never added it).
    ``full_bom`` adds what a deployed server also pays (docs/hardware-model.md#server-bill-of-
    materials; 0 otherwise, as in the authors' code): its share of a rack by power,
    :func:`rack_share_usd`; its share of the network (``network_usd_per_server``); and the
    assembly of each package (``package_assembly_usd_per_package``).
    """
    n_chips = np.asarray(chips_per_server, float)
    n_pkg = np.asarray(packages_per_server, float)
    lanes = np.asarray(lanes, float)
    silicon = n_chips * np.asarray(die_cost_usd, float)
    ones = np.ones_like(silicon)
    amps = (
        server.host_power_w / server.host_rail_voltage_v
        + n_chips * np.asarray(core_power_w, float) / server.core_voltage_v
    )
    bom = {
        "silicon_cost_usd": silicon,
        "packages_cost_usd": n_pkg * np.asarray(package_cost_usd, float),
        "heatsinks_cost_usd": n_pkg * np.asarray(heatsink_cost_usd, float),
        "fans_cost_usd": lanes * server.fan_cost_usd,
        "nic_cost_usd": ones * server.nic_usd,
        "dcdc_cost_usd": server.dcdc_usd_per_a * amps,
        "psu_cost_usd": server.psu_usd_per_w * np.asarray(server_tdp_w, float),
        "pcb_cost_usd": ones * server.pcb_count * server.pcb_usd,
        "parts_cost_usd": ones * server.parts_usd,
        "chassis_cost_usd": ones * server.chassis_usd,
        "host_cost_usd": ones * (server.host_cost_usd if include_host_cost else 0.0),
    }
    extra = 1.0 if full_bom else 0.0
    bom["rack_cost_usd"] = extra * rack_share_usd(server_tdp_w, server)
    bom["network_cost_usd"] = extra * ones * server.network_usd_per_server
    bom["assembly_cost_usd"] = extra * n_pkg * server.package_assembly_usd_per_package
    bom["server_cost_usd"] = sum(bom.values())
    return bom


def rack_share_usd(power_w: ArrayLike, server: ServerParams) -> np.ndarray:
    """A server's (or a device's) share of a rack, by the power it is provisioned for:
    ``rack_usd`` x power / ``rack_power_w`` (USD). One rule for the ASIC servers and the
    fabricated GPUs/TPUs (docs/baselines.md#rented-and-fabricated-pricing)."""
    return server.rack_usd * np.asarray(power_w, float) / server.rack_power_w


def server_checks(
    *,
    die_area_mm2: ArrayLike,
    chips_per_package: ArrayLike,
    packages_per_lane: ArrayLike,
    package_power_w: ArrayLike,
    max_package_power_w: ArrayLike,
    chips_power_w: ArrayLike,
    server: ServerParams,
) -> dict:
    """Boolean arrays ``ok_<check>`` for :data:`SERVER_CHECKS`: lane silicon within
    [min, max] mm2, package power within what its heatsink can remove, summed chip power within
    the server limit (docs/hardware-model.md)."""
    lane_si = (
        np.asarray(die_area_mm2, float)
        * np.asarray(chips_per_package, float)
        * np.asarray(packages_per_lane, float)
    )
    return {
        "lane_silicon_mm2": lane_si,
        "ok_lane_silicon": (lane_si >= server.lane_silicon_min_mm2)
        & (lane_si <= server.lane_silicon_max_mm2),
        "ok_thermal": np.asarray(package_power_w, float) <= np.asarray(max_package_power_w, float),
        "ok_server_power": np.asarray(chips_power_w, float) <= server.server_max_chip_power_w,
    }
