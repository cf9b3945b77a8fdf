"""SRAM device cards: a fixed all-SRAM machine (``kind: sram``) as the simulator's input.

A card (YAML or JSON, docs/interconnect.md#sram-device-cards) describes a machine whose weights
and KV cache live in on-chip SRAM: per-format peak FLOP/s (``peak_tflops``), SRAM capacity and
bandwidth a chip (``sram_mb``, ``sram_tbps``), ``tdp_w``, ``chips_per_server``, the fabric inside
a server (``topology`` and ``links``: count, Gb/s a link, per-hop latency) and the network
between servers (``network``: Gb/s a port, ports a server, latency of one traversal). It becomes
one :class:`~chipletcloud.perf.workload.System` row, so the same analytic model (and the same
collective algorithms, docs/interconnect.md) that prices Chiplet Cloud designs predicts it.

Two constants are not on a datasheet and come from a *latency set*
(``data/calibration/<name>.yaml``): the fixed cost of each collective (barrier, DMA set-up) and
the fixed latency of each dependent on-chip operation. The default set, ``sram_machines``, is
fitted once on the training cases of ``data/validation/asic_measured.json``
(:mod:`chipletcloud.baselines.asic_measured`); a card may name another set or give either
constant itself.

What cannot be expressed is refused with one line: a wafer-scale engine (no die-yield, cost or
on-wafer mesh model), a topology that cannot hold the server's chips, a network without ports.
"""

from __future__ import annotations

import math
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chipletcloud.config import (
    Quantity,
    card_params,
    load_card,
    read_yaml,
    validation_to_input_error,
)
from chipletcloud.errors import InputError
from chipletcloud.perf.codes import TOPOLOGIES, TOPOLOGY_DIMS, algorithm_mask
from chipletcloud.perf.workload import System

FORMATS = ("bf16", "fp16", "fp8", "int8", "fp4")
ALGORITHM_NAMES = ("ring", "recursive_doubling", "one_shot", "two_shot", "hierarchical")
DATA = resources.files("chipletcloud") / "data"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Links(_Strict):
    """The chip-to-chip links of one chip inside its server."""

    count: int = Field(ge=1)
    gbps_per_link: float = Field(gt=0, allow_inf_nan=False)
    hop_latency_ns: float = Field(ge=0, allow_inf_nan=False)


class Network(_Strict):
    """The network between servers: ``gbps`` a port and direction, ``ports_per_server`` ports,
    ``latency_us`` for one traversal (port, switches, port)."""

    gbps: float = Field(gt=0, allow_inf_nan=False)
    latency_us: float = Field(ge=0, allow_inf_nan=False)
    ports_per_server: int = Field(default=1, ge=1)


class SramCard(_Strict):
    """An all-SRAM machine (module docstring). Units are in the field names."""

    name: str = Field(min_length=1)
    kind: Literal["sram"]
    description: str = ""
    source: str = ""
    peak_tflops: dict[
        Literal["bf16", "fp16", "fp8", "int8", "fp4"],
        Annotated[float, Field(gt=0, allow_inf_nan=False)],
    ] = Field(min_length=1)
    sram_mb: float = Field(gt=0, allow_inf_nan=False)
    sram_tbps: float = Field(gt=0, allow_inf_nan=False)
    tdp_w: float = Field(gt=0, allow_inf_nan=False)
    chips_per_server: int = Field(ge=1)
    topology: Literal["ring", "mesh2d", "torus2d", "full", "switch"]
    links: Links
    network: Network
    collective_algorithms: list[
        Literal["ring", "recursive_doubling", "one_shot", "two_shot", "hierarchical"]
    ] = Field(default=list(ALGORITHM_NAMES), min_length=1)
    latency_set: str = "sram_machines"
    collective_sync_us: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    op_latency_us: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    wafer_scale: bool = False
    die_area_mm2: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    process_nm: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    server_cost_usd: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    server_power_w: float | None = Field(default=None, gt=0, allow_inf_nan=False)

    @property
    def scale_up_domain(self) -> int:
        """Chips a server (the simulator's scale-up domain)."""
        return self.chips_per_server

    def peak_flops(self, weight_dtype: str) -> float:
        """Peak FLOP/s of the matmuls for weights stored as ``weight_dtype``: that format's peak
        when the card lists it, else the 16-bit peak (weight-only quantisation)."""
        for fmt in (weight_dtype, "bf16", "fp16"):
            if fmt in self.peak_tflops:
                return self.peak_tflops[fmt] * 1e12
        if "int4" == weight_dtype and "int8" in self.peak_tflops:
            return self.peak_tflops["int8"] * 1e12
        return max(self.peak_tflops.values()) * 1e12


def check_expressible(card: SramCard) -> None:
    """Refuse, with one line, what the model cannot express (module docstring)."""
    if card.wafer_scale:
        raise InputError(
            "wafer_scale",
            True,
            "a machine of separate dies: a wafer-scale engine has no die-yield, die-cost or "
            "on-wafer mesh model here",
        )
    n = card.chips_per_server
    if card.topology in ("mesh2d", "torus2d"):
        if n < 4 or all(n % a for a in range(2, math.isqrt(n) + 1)):
            raise InputError(
                "topology",
                card.topology,
                f"a grid of at least 2 x 2 chips; {n} chips a server form no such grid "
                "(use ring, full or switch)",
            )
        if card.links.count < 4 and card.topology == "torus2d":
            raise InputError("links.count", card.links.count, ">= 4 for a 2-D torus")
        if card.links.count < 2:
            raise InputError("links.count", card.links.count, ">= 2 for a 2-D mesh")
    if card.topology == "ring" and n > 2 and card.links.count < 2:
        raise InputError("links.count", card.links.count, ">= 2 for a ring of more than 2 chips")
    if card.topology == "full" and card.links.count < n - 1:
        raise InputError(
            "links.count",
            card.links.count,
            f">= {n - 1} for a fully connected server of {n} chips",
        )


@cache
def latency_set(name: str) -> dict[str, Quantity]:
    """The latency set ``data/calibration/<name>.yaml``: ``collective_sync_s`` and
    ``op_latency_s``, each with its unit and source (the fit that produced it)."""
    return load_card("calibration", name)


def sram_system(card: SramCard, weight_dtype: str = "bf16", *, n: int = 1) -> System:
    """``n`` identical System rows for ``card``: SRAM as the memory, the card's fabric and
    network, the latency set's fixed costs (unless the card gives them), full efficiency (a
    statically scheduled SRAM machine runs at its roofline), the packets and switch tiers every
    machine's network shares (the ``serdes_7nm`` link card), and the 7 nm technology card's
    energies per FMA and per SRAM byte."""
    check_expressible(card)
    lat = latency_set(card.latency_set)
    op_latency_s = (
        card.op_latency_us * 1e-6
        if card.op_latency_us is not None
        else float(lat["op_latency_s"].value)
    )
    collective_sync_s = (
        card.collective_sync_us * 1e-6
        if card.collective_sync_us is not None
        else float(lat["collective_sync_s"].value)
    )
    t = card_params("tech", "7nm")
    return System.broadcast(
        flops=[card.peak_flops(weight_dtype)] * n,
        mem_bytes=card.sram_mb * 1e6,
        mem_bw=card.sram_tbps * 1e12,
        chip_link_bw=card.links.count * card.links.gbps_per_link * 1e9 / 8.0,
        server_link_bw=card.network.gbps * 1e9 / 8.0,
        chips_per_server=float(card.chips_per_server),
        hop_latency_s=card.links.hop_latency_ns * 1e-9,
        net_hop_s=card.network.latency_us * 1e-6,
        sync_s=collective_sync_s,
        topology=float(TOPOLOGIES[card.topology]),
        collective_dims=TOPOLOGY_DIMS[card.topology],
        algorithms=algorithm_mask(card.collective_algorithms),
        nics_per_server=float(card.network.ports_per_server),
        **card_params("link", "serdes_7nm").network_columns(),
        fma_j=t.fma_energy_pj * 1e-12,
        mem_j_per_byte=t.sram_weight_read_pj_per_byte * 1e-12,
        act_j_per_byte=t.sram_activation_read_pj_per_byte * 1e-12,
        static_w_per_chip=0.0,
        flops_eff=1.0,
        mem_eff=1.0,
        op_overhead_s=op_latency_s,
    )


def builtin_sram_cards() -> list[str]:
    """Names of the built-in SRAM cards (``data/devices/*.yaml``)."""
    return sorted(p.name[:-5] for p in (DATA / "devices").iterdir() if p.name.endswith(".yaml"))


def read_card(name_or_path: str | Path) -> Any:
    """The raw mapping of a card path or built-in SRAM card name, or None if neither (or a JSON
    file that does not parse, left to the device-card loader's messages)."""
    if str(name_or_path) in builtin_sram_cards():
        return read_yaml(Path(str(DATA / "devices" / f"{name_or_path}.yaml")), "hardware")
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return read_yaml(path, "hardware")
    if path.suffix == ".json" and path.is_file():
        try:
            return read_yaml(path, "hardware")  # JSON is YAML
        except InputError:
            return None  # not readable as a card: the device-card loader says why
    return None


def is_sram_card(raw: Any) -> bool:
    return isinstance(raw, dict) and raw.get("kind") == "sram"


def parse_sram_card(raw: Any, label: str = "hardware") -> SramCard:
    """Validate a raw card; the first problem becomes one :class:`InputError` naming the field."""
    if not isinstance(raw, dict):
        raise InputError(label, raw, "a YAML/JSON mapping with kind: sram")
    try:
        card = SramCard.model_validate(raw)
    except ValidationError as exc:
        raise validation_to_input_error(exc, "") from exc
    check_expressible(card)
    return card


def load_sram_card(name_or_path: str | Path) -> SramCard:
    """A built-in SRAM card by name or an SRAM card file."""
    raw = read_card(name_or_path)
    if raw is None:
        allowed = ", ".join(builtin_sram_cards()) + ", or a path to a kind: sram card"
        raise InputError("hardware", str(name_or_path), allowed)
    if not is_sram_card(raw):
        raise InputError("kind", raw.get("kind") if isinstance(raw, dict) else raw, "sram")
    return parse_sram_card(raw)


# --------------------------------------------------------------------------------------------------
# A fixed design in phase 2 (``chipletcloud evaluate --design``)

#: Weight bytes -> the number formats a chip may compute them in, first listed first.
_FORMATS_BY_BYTES = {2.0: ("bf16", "fp16"), 1.0: ("fp8", "int8"), 0.5: ("fp4", "int8")}


def design_peak_tflops(card: SramCard, weight_bytes: float) -> float:
    """Peak TFLOP/s of the card for weights of ``weight_bytes`` bytes: the first listed format of
    that size, else the 16-bit peak (weight-only quantisation)."""
    for fmt in _FORMATS_BY_BYTES.get(float(weight_bytes), ()) + ("bf16", "fp16"):
        if fmt in card.peak_tflops:
            return card.peak_tflops[fmt]
    return max(card.peak_tflops.values())


def design_table(card: SramCard, params) -> dict:
    """A one-row servers table for ``card`` under ``params`` (a resolved preset): the columns
    phase 2 reads, the card's own interconnect and latency set
    (:data:`chipletcloud.explore.software.TABLE_SYSTEM_COLUMNS`), and its price: the card's
    ``server_cost_usd`` and ``server_power_w`` when given, else the preset's die-cost, package
    and server bill-of-materials models applied to ``die_area_mm2`` and ``tdp_w``."""
    import numpy as np

    from chipletcloud.models import cost, package, server

    sys_ = sram_system(card)
    tech, srv = params.tech, params.server
    n = card.chips_per_server
    power = server.server_power_w([card.tdp_w], [n], [params.server.lanes_per_server], srv)
    if card.server_cost_usd is not None:
        server_cost = card.server_cost_usd
    elif card.die_area_mm2 is not None:
        die = cost.die_cost_from_tech(
            [card.die_area_mm2], tech, params.choices.dies_per_wafer_method
        )
        pkg = package.package_cost_usd(
            [card.die_area_mm2], die, srv, params.choices.package_cost_model
        )
        bom = server.server_bom_usd(
            die_cost_usd=die,
            package_cost_usd=pkg,
            heatsink_cost_usd=[0.0],
            core_power_w=[card.tdp_w],
            chips_per_server=[n],
            packages_per_server=[n],
            lanes=[srv.lanes_per_server],
            server_tdp_w=power["server_tdp_w"],
            server=srv,
            include_host_cost=params.choices.include_host_cost,
            full_bom=params.choices.full_bom,
        )
        server_cost = float(bom["server_cost_usd"][0])
    else:
        raise InputError(
            "server_cost_usd",
            None,
            "a server price in USD, or die_area_mm2 to price the server with the preset's "
            "die-cost and bill-of-materials models",
        )
    eff = srv.psu_efficiency * srv.dcdc_efficiency
    if card.server_power_w is not None:
        tdp = card.server_power_w
        overhead = max(tdp * eff - card.tdp_w * n, 0.0)
    else:
        tdp = float(power["server_tdp_w"][0])
        overhead = float(power["fans_power_w"][0] + power["host_power_w"][0])
    wb = params.preset.workload.weight_bytes
    row = {
        "server_id": np.array([0], np.int64),
        "die_area_mm2": card.die_area_mm2 if card.die_area_mm2 is not None else np.nan,
        "mac_ratio": np.nan,
        "operational_intensity": np.nan,
        "sram_mb_per_chip": card.sram_mb,
        "sram_bytes_per_chip": card.sram_mb * 1e6,
        "sram_bandwidth_gbps_per_chip": card.sram_tbps * 1e3,
        "tflops_per_chip": design_peak_tflops(card, wb),
        "chip_link_bytes_per_s": float(sys_.chip_link_bw[0]),
        "chips_per_server": np.array([n], np.int64),
        "packages_per_lane": np.array([n], np.int64),
        "lanes_per_server": np.array([1], np.int64),
        "server_cost_usd": server_cost,
        "server_tdp_w": tdp,
        "fans_power_w": overhead,
        "host_power_w": 0.0,
        "chip_tdp_w": card.tdp_w,
        "server_link_bw": float(sys_.server_link_bw[0]),
    }
    for f in (
        "hop_latency_s",
        "net_hop_s",
        "sync_s",
        "topology",
        "collective_dims",
        "packet_bytes",
        "net_radix",
        "net_tier_s",
    ):
        row[f] = float(getattr(sys_, f)[0])
    row["algorithms"] = float(sys_.algorithms[0])
    row["nics_per_server"] = float(sys_.nics_per_server[0])
    row["op_overhead_s"] = float(sys_.op_overhead_s[0])
    return {k: np.atleast_1d(np.asarray(v)) for k, v in row.items()}


def evaluate_design(card: SramCard, specs, params, servers: int | None = None, progress=None):
    """Phase 2 on one fixed design: every model's mapping searched on ``card`` with the server
    count free (the preset's multipliers of the capacity minimum) or pinned to ``servers``."""
    from dataclasses import replace

    from chipletcloud.explore.software import (
        EvaluationRun,
        params_for,
        portfolio,
        search,
        search_inputs,
    )

    table = design_table(card, params)
    step = progress or (lambda _msg: None)
    results = []
    for spec in specs:
        p = params_for(spec, params)
        if servers is not None:
            nmin = int(search_inputs(table, spec, p).nmin[0])
            if servers < nmin:
                raise InputError(
                    "servers",
                    servers,
                    f">= {nmin}: the fewest servers of {card.name} that hold {spec.name}",
                )
            srch = p.preset.search.model_copy(update={"server_multipliers": [servers / nmin]})
            p = replace(p, preset=p.preset.model_copy(update={"search": srch}))
        results.append(search(table, spec, p))
        step(spec.name)
    return EvaluationRun(table, params, results, portfolio(results, table))
