"""Phase 2: for every server design from phase 1 and an LLM, search the software mapping, price
each point with the TCO model and keep the Pareto front of (USD per million tokens, latency per
token).

Two implementations of the same search:

* :func:`reference_points` builds the whole (design x mapping) grid as numpy arrays and calls the
  readable simulator :func:`chipletcloud.perf.analytic.simulate` and
  :func:`chipletcloud.perf.analytic.price`. Memory grows
  with the grid: for tests and small tables.
* :func:`search` runs the numba search loop :mod:`chipletcloud.explore.kernel` over chunks of
  designs (the fast path :mod:`chipletcloud.perf.fast`: the same formulas, one point at a time,
  in parallel), keeps each design's local Pareto front
  and its TCO-optimal point, then recomputes the kept points with the reference for their full
  metrics. The global front is exact: it is the front of the union of the local fronts.

The mapping grid per design: servers = ceil(N_min x multiplier) (N_min from the weights alone),
pipeline degree in the divisors of the layers, batch and micro-batch in the preset's batch sizes
(micro-batch <= batch and dividing it).
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field, replace

import numpy as np

from chipletcloud.config import Params, SearchSpec, WorkloadSpec
from chipletcloud.errors import InputError
from chipletcloud.explore.pareto import pareto_mask
from chipletcloud.models import tco
from chipletcloud.models.llm import ModelSpec
from chipletcloud.perf import formulas as fm
from chipletcloud.perf.analytic import Pricing, price, simulate
from chipletcloud.perf.codes import (
    DOES_NOT_FIT,
    FEASIBLE,
    INVALID_MAPPING,
    POWER_SOURCES,
    STATUS_NAMES,
    TOPOLOGIES,
    TOPOLOGY_DIMS,
    algorithm_mask,
)
from chipletcloud.perf.workload import LayerShape, System, Workload
from chipletcloud.sparsity.capacity import effective_ratio


def model_shape(spec: ModelSpec, wl: WorkloadSpec) -> LayerShape:
    """The shape the preset evaluates: the paper's simplified one (when the card has one and the
    preset asks for it; counted the authors' way, 12 L d^2 in the layers; embeddings per
    ``include_embeddings``, off for the authors' 12 L d^2; with ``authors_gopher_typo`` at the
    card's ``authors_code_hidden_size``), or the real one with all its parameters."""
    ps = spec.paper_shape
    if wl.model_shape == "paper" and ps is not None:
        shape = LayerShape.from_spec(
            spec.paper(), include_embeddings=wl.include_embeddings, paper=True
        )
        if wl.authors_gopher_typo and ps.authors_code_hidden_size is not None:
            shape = shape.rescaled(ps.authors_code_hidden_size)
        return shape
    return LayerShape.from_spec(spec, include_embeddings=True)


def workload(wl: WorkloadSpec, units_per_layer: int = 1, whole_heads: bool = False) -> Workload:
    """The simulator's workload: request shape, number formats, sparse storage of the weights,
    how finely the mapping may cut layers across pipeline stages, and whether a tensor group
    must give each chip whole attention heads."""
    ratio = effective_ratio(
        wl.sparsity, wl.sparse_format, value_bits=int(wl.weight_bytes * 8), index_bits=wl.index_bits
    )
    return Workload(
        wl.prompt_tokens,
        wl.output_tokens,
        wl.weight_bytes,
        wl.kv_bytes,
        wl.act_bytes,
        ratio,
        wl.count_prefill,
        wl.kv_in_capacity,
        units_per_layer,
        whole_heads=whole_heads,
    )


#: System fields a servers table may set per row, overriding the preset's link card and choices
#: (a fixed design's own fabric and latency set: :mod:`chipletcloud.baselines.sram`).
TABLE_SYSTEM_COLUMNS = (
    "server_link_bw",
    "hop_latency_s",
    "net_hop_s",
    "sync_s",
    "topology",
    "collective_dims",
    "algorithms",
    "nics_per_server",
    "op_overhead_s",
    "packet_bytes",
    "net_radix",
    "net_tier_s",
)


def asic_efficiency(params: Params) -> dict[str, float]:
    """The ASIC's achieved fractions of peak as :class:`System` fields
    (docs/inference-model.md#achieved-efficiency): all 1 with ``asic_efficiency: ideal`` (the
    authors' assumption); with ``derated`` the tech card's matmul FLOP/s and SRAM bandwidth
    fractions, and attention at the card's attention fraction of peak (``attn_eff`` is relative
    to the matmuls')."""
    t = params.tech
    if params.choices.asic_efficiency == "ideal":
        return {"flops_eff": 1.0, "mem_eff": 1.0, "attn_eff": 1.0}
    return {
        "flops_eff": t.asic_matmul_flops_efficiency,
        "mem_eff": t.asic_sram_bandwidth_efficiency,
        "attn_eff": t.asic_attention_flops_efficiency / t.asic_matmul_flops_efficiency,
    }


def system_from_servers(table: dict[str, np.ndarray], params: Params) -> tuple[System, Pricing]:
    """Simulator and pricing inputs for every row of a phase-1 servers table (the interconnect
    from the preset's link card and choices, unless the table has
    :data:`TABLE_SYSTEM_COLUMNS`). A chip's static power is its IO cells and other blocks plus
    the table's ``leakage_power_w`` (0 under ``chip_power_model = authors_density``; none at all
    without ``static_power``, as in the authors' energy model); the
    pricing carries the TCO's electricity coefficient (for ``power_source = tdp_capacity``), the
    PUE and, with ``include_nre``, each server's share of the NRE (docs/tco.md)."""
    t = params.tech
    n = len(table["server_id"])
    io_w = t.io_cells_per_chip * t.io_cell_power_w + t.other_power_w
    leak = np.asarray(table.get("leakage_power_w", np.zeros(n)), float)
    kw = dict(
        flops=table["tflops_per_chip"] * 1e12,
        mem_bytes=table["sram_bytes_per_chip"],
        mem_bw=table["sram_bandwidth_gbps_per_chip"] * 1e9,
        chip_link_bw=table["chip_link_bytes_per_s"],
        server_link_bw=np.full(n, t.server_link_gbyte_per_s * 1e9),
        chips_per_server=table["chips_per_server"].astype(float),
        hop_latency_s=params.link.chip_hop_latency_s,
        net_hop_s=params.link.server_hop_latency_s,
        sync_s=params.link.collective_sync_s,
        topology=float(TOPOLOGIES[params.choices.chip_topology]),
        collective_dims=TOPOLOGY_DIMS[params.choices.chip_topology],
        algorithms=algorithm_mask(params.choices.collective_algorithms),
        nics_per_server=1.0,
        **params.link.network_columns(),
        fma_j=t.fma_energy_pj * 1e-12,
        mem_j_per_byte=t.sram_weight_read_pj_per_byte * 1e-12,
        act_j_per_byte=t.sram_activation_read_pj_per_byte * 1e-12,
        static_w_per_chip=(io_w + leak) if params.choices.static_power else np.zeros(n),
        **asic_efficiency(params),
        op_overhead_s=0.0,
        clock_hz=t.clock_ghz * 1e9,
    )
    # a table may carry its own interconnect (a fixed design: chipletcloud.baselines.sram)
    kw.update({f: np.asarray(table[f], float) for f in TABLE_SYSTEM_COLUMNS if f in table})
    system = System.broadcast(**kw)
    a, b = tco.tco_coefficients(params.tco)
    _, _, b_energy = tco.tco_coefficients_split(params.tco)
    nre = 0.0
    if params.choices.include_nre:
        nre = tco.nre_usd_per_server(nre_params(params).total_usd, params.tco.deployment_servers)
    life = params.tco.server_life_years
    interest = float(tco.loan_interest_usd(1.0, params.tco.interest_rate_per_year, life))
    pricing = Pricing(
        server_cost_usd=np.asarray(table["server_cost_usd"], float),
        server_tdp_w=np.asarray(table["server_tdp_w"], float),
        overhead_w=np.asarray(table["fans_power_w"] + table["host_power_w"], float),
        efficiency=params.server.psu_efficiency * params.server.dcdc_efficiency,
        a_per_usd=a,
        b_per_w=b,
        fixed_per_usd=1.0 + interest,
        life_s=tco.server_life_s(params.tco),
        power_source=params.choices.power_source,
        b_energy_per_w=b_energy,
        nre_usd_per_server=nre,
        pue=params.tco.pue,
    )
    return system, pricing


def nre_params(params: Params):
    """The NRE card of ``params`` (data/nre/<preset.nre>.yaml)."""
    from chipletcloud.config import card_params

    return params.nre if params.nre is not None else card_params("nre", params.preset.nre)


@dataclass(frozen=True)
class MappingGrid:
    """The mapping axes shared by all designs for one model: server multipliers, pipeline degrees
    and the (batch, micro-batch) pairs with the micro-batch dividing the batch. ``kv_split``
    (1 or 0, aligned with ``pp``) is the KV mode of each pipeline entry: a model with fewer KV
    heads than query heads has each pipeline degree once per searched mode
    (``SearchSpec.kv_modes``)."""

    multipliers: np.ndarray
    pp: np.ndarray
    batches: np.ndarray
    pair_batch: np.ndarray
    pair_micro: np.ndarray  # index into ``batches``
    kv_split: np.ndarray | None = None

    def __post_init__(self):
        if self.kv_split is None:
            object.__setattr__(self, "kv_split", np.zeros(len(self.pp), np.int64))

    @property
    def size(self) -> int:
        return len(self.multipliers) * len(self.pp) * len(self.pair_batch)

    def decode(self, j: np.ndarray):
        """Mapping index -> (multiplier index, pp, batch, micro-batch)."""
        npair = len(self.pair_batch)
        j = np.asarray(j)
        c = j % npair
        a = (j // npair) % len(self.pp)
        k = j // npair // len(self.pp)
        return k, self.pp[a], self.pair_batch[c], self.batches[self.pair_micro[c]]

    def split_of(self, j: np.ndarray) -> np.ndarray:
        """Mapping index -> KV mode (1: the KV cache split by sequence, 0: replicated)."""
        return self.kv_split[(np.asarray(j) // len(self.pair_batch)) % len(self.pp)]


def mapping_grid(shape: LayerShape, search: SearchSpec) -> MappingGrid:
    """The :class:`MappingGrid` of ``shape`` under ``search``: pipeline degrees dividing the
    layers (every distinct ceil(units / k) with ``uneven_pipeline``; with ``balance_stages``
    also every divisor of units + round(e), e the LM head in layers, up to units + 1: equal
    stages with the head's stage that many layers short), each once per KV mode when the model
    shares KV heads."""
    units = shape.num_layers * search.units_per_layer
    if search.uneven_pipeline:  # every distinct ceil(units / k): the slowest stage holds k units
        divisors = sorted({-(-units // k) for k in range(1, units + 1)})
    else:
        divisors = [p for p in range(1, units + 1) if units % p == 0]
    if search.balance_stages:  # docs/inference-model.md#balanced-stages
        # the LM head counts as round(e) more layers: every divisor of units + round(e) splits
        # the model into equal stages with the head's stage holding that many fewer layers
        e = round(shape.head_layers * search.units_per_layer)
        more = {p for p in range(1, units + e + 1) if (units + e) % p == 0} if e >= 1 else set()
        divisors = sorted(p for p in set(divisors) | more if 1 <= p <= units + 1)
    modes = search.kv_modes if shape.kv_heads < shape.heads else search.kv_modes[:1]
    split = [1 if mode == "split" else 0 for _ in divisors for mode in modes]
    divisors = [p for p in divisors for _ in modes]
    batches = np.asarray(search.batch_sizes, np.int64)
    pairs = [(b, i) for b in batches for i, m in enumerate(batches) if m <= b and b % m == 0]
    mult = search.server_multipliers
    if search.server_count_range is not None:  # every count, applied to N_min = 1
        mult = list(range(search.server_count_range[0], search.server_count_range[1] + 1))
    return MappingGrid(
        np.asarray(mult, float),
        np.asarray(divisors, np.int64),
        batches,
        np.asarray([b for b, _ in pairs], np.int64),
        np.asarray([i for _, i in pairs], np.int64),
        np.asarray(split, np.int64),
    )


def min_servers(system: System, shape: LayerShape, wl: Workload) -> np.ndarray:
    """Fewest servers whose memory holds the weights (no KV): ceil(W / (bytes per chip x chips))."""
    w = shape.weight_params * wl.weight_storage_bytes
    return np.maximum(np.ceil(w / (system.mem_bytes * system.chips_per_server)), 1.0)


def servers_for(nmin: np.ndarray, mult: np.ndarray, max_servers: int) -> np.ndarray:
    """Servers for a multiplier: ceil(N_min x mult) (rounded at 1e-9 to absorb float noise)."""
    n = fm.servers_for(np.asarray(nmin, float), np.asarray(mult, float))
    return np.where(n <= max_servers, n, np.nan)


def reference_points(
    system: System,
    pricing: Pricing,
    shape: LayerShape,
    wl: Workload,
    grid: MappingGrid,
    max_servers: float,
    latency_model: str = "isca24",
    design: np.ndarray | None = None,
    mapping: np.ndarray | None = None,
    nmin: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The numpy reference over (design, mapping) pairs: the full grid by default, or the given
    ``design`` (row indices) and ``mapping`` (grid indices). Returns every simulator and price
    column plus ``design``, ``mapping``, ``servers``, ``pp``, ``batch``, ``micro_batch`` and
    ``status`` (0 feasible, 1 invalid mapping, 2 does not fit)."""
    if design is None:
        design = np.repeat(np.arange(len(system)), grid.size)
        mapping = np.tile(np.arange(grid.size), len(system))
    k, pp, b, m = grid.decode(mapping)
    split = grid.split_of(mapping)
    if nmin is None:
        nmin = min_servers(system, shape, wl)
    servers = servers_for(np.asarray(nmin, float)[design], grid.multipliers[k], max_servers)
    sys_pts = system.take(design)
    safe = np.nan_to_num(servers, nan=1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        sim = simulate(
            sys_pts,
            shape,
            wl,
            servers=safe,
            pp=pp,
            batch=b,
            micro_batch=m,
            latency_model=latency_model,
            kv_split=split,
        )
        money = price(pricing.take(design), sim, safe, sys_pts.chips_per_server)
    # whole heads a chip, unless attention is split by sequence (every head of its sequences)
    whole = (1.0 if wl.whole_heads else 0.0) * (1.0 - np.asarray(split, float))
    valid_map = np.isfinite(servers) & fm.tensor_degree_valid(sim["tp"], shape.heads, whole)
    status = np.where(
        ~valid_map, INVALID_MAPPING, np.where(sim["fits"], FEASIBLE, DOES_NOT_FIT)
    ).astype(np.int8)
    out = {
        "design": design,
        "mapping": mapping,
        "servers": servers,
        "pp": pp,
        "batch": b,
        "micro_batch": m,
        "status": status,
    }
    out.update(sim)
    out.update(money)
    return out


@dataclass(frozen=True)
class SearchInputs:
    """Everything the phase-2 search of one model over one table needs: the simulator's system
    and pricing rows, the model shape, the workload, the mapping grid, the capacity minimum of
    servers per design, the server cap and the latency model."""

    system: System
    pricing: Pricing
    shape: LayerShape
    wl: Workload
    grid: MappingGrid
    nmin: np.ndarray
    max_servers: int
    latency_model: str

    def kernel_args(self) -> tuple:
        """The positional arguments of the numba kernel drivers (``kernel.search_fronts``,
        ``kernel.evaluate_points``)."""
        return (
            self.system,
            self.pricing,
            self.shape,
            self.wl,
            self.grid,
            self.nmin,
            self.max_servers,
            self.latency_model,
        )

    def reference(self, design=None, mapping=None) -> dict[str, np.ndarray]:
        """:func:`reference_points` over the whole grid or the given (design, mapping) pairs."""
        return reference_points(
            self.system,
            self.pricing,
            self.shape,
            self.wl,
            self.grid,
            self.max_servers,
            self.latency_model,
            design,
            mapping,
            self.nmin,
        )


def search_inputs(
    table: dict[str, np.ndarray], spec: ModelSpec, params: Params, nmin: np.ndarray | None = None
) -> SearchInputs:
    """The :class:`SearchInputs` of ``spec`` over ``table`` under ``params`` (``nmin``: the
    capacity minimum of servers per design the multipliers apply to, default the model's own)."""
    wl_spec, srch = params.preset.workload, params.preset.search
    shape = model_shape(spec, wl_spec)
    wl = workload(wl_spec, srch.units_per_layer, srch.whole_heads)
    wl = replace(wl, stage_transfer=params.choices.stage_transfer == "serial")
    ch = params.choices
    wl = replace(
        wl,
        kv_reads_per_query_head=ch.gqa_kv_reads == "per_query_head",
        kv_read_energy_per_micro_batch=ch.kv_read_energy == "per_micro_batch",
        prefill_attention_authors=ch.prefill_attention_flops == "authors",
        balance_stages=srch.balance_stages,
    )
    system, pricing = system_from_servers(table, params)
    if ch.latency_model == "v1":  # v1 times no attention, so a split KV cache would cost nothing
        srch = srch.model_copy(update={"kv_modes": ["replicate"]})
    grid = mapping_grid(shape, srch)
    if nmin is None:
        nmin = min_servers(system, shape, wl)
    if srch.server_count_range is not None:  # absolute counts: servers = ceil(1 x count)
        nmin = np.ones_like(nmin)
    return SearchInputs(
        system,
        pricing,
        shape,
        wl,
        grid,
        nmin,
        srch.max_servers,
        params.choices.latency_model,
    )


# --------------------------------------------------------------------------------------------------


@dataclass
class ModelResult:
    """What phase 2 found for one model."""

    model: str
    shape: LayerShape
    front: dict[str, np.ndarray]
    best_per_design: np.ndarray  # min USD per million tokens of each design (inf if none fits)
    evaluated: int
    counts: dict[str, int] = field(default_factory=dict)
    #: the model searched (a config.json's model has no catalogue name to reload it by)
    spec: ModelSpec | None = field(default=None, compare=False, repr=False)

    def card(self, which: str, table: dict[str, np.ndarray]) -> dict | None:
        """The TCO-optimal (``which="tco"``) or latency-optimal design card."""
        f = self.front
        if len(f["design"]) == 0:
            return None
        key = "usd_per_million_tokens" if which == "tco" else "tpot_s"
        other = "tpot_s" if which == "tco" else "usd_per_million_tokens"
        i = int(np.lexsort((f[other], f[key]))[0])
        return design_card(f, i, table)


def design_card(f: dict[str, np.ndarray], i: int, table: dict[str, np.ndarray]) -> dict:
    """One point as the docs/architecture.md#public-interface design card (plus a few explanatory
    fields)."""
    d = int(f["design"][i])
    card = {
        "server_id": int(table["server_id"][d]),
        "die_area_mm2": float(table["die_area_mm2"][d]),
        "mac_ratio": float(table["mac_ratio"][d]),
        "operational_intensity": float(table["operational_intensity"][d]),
        "sram_mb_per_chip": float(table["sram_mb_per_chip"][d]),
        "tflops_per_chip": float(table["tflops_per_chip"][d]),
        "chips_per_server": int(table["chips_per_server"][d]),
        "server_cost_usd": float(table["server_cost_usd"][d]),
        "servers": int(f["servers"][i]),
        "tp": int(f["tp"][i]),
        "pp": int(f["pp"][i]),
        "batch": int(f["batch"][i]),
        "micro_batch": int(f["micro_batch"][i]),
        "latency_s_per_token": float(f["tpot_s"][i]),
        "ttft_s": float(f["prefill_s"][i]),
        "throughput_tokens_per_s": float(f["throughput_tokens_per_s"][i]),
        "usd_per_million_tokens": float(f["usd_per_million_tokens"][i]),
        "capex_usd": float(f["capex_usd"][i]),
        "power_w": float(f["power_w"][i]),
        "joules_per_token": float(f["joules_per_token"][i]),
        "joules_per_token_chip": float(f["joules_per_token_chip"][i]),
        "joules_per_token_wall": float(f["joules_per_token_wall"][i]),
        "joules_per_token_facility": float(f["joules_per_token_facility"][i]),
        "provisioned_w": float(f["provisioned_w"][i]),
        "nre_usd_per_million_tokens": float(f["nre_usd_per_million_tokens"][i]),
        "flop_utilisation": float(f["flop_utilisation"][i]),
        # docs/inference-model.md#kv-heads, #balanced-stages
        "kv_mode": "split" if f["kv_split_chips"][i] > 1 else "replicate",
        "stage_layers": float(f["stage_layers"][i]),
        "last_stage_layers": float(f["last_stage_layers"][i]),
    }
    parts = {k.removeprefix("decode_"): float(f[k][i]) for k in f if k.startswith("decode_")}
    total = sum(parts.values()) or 1.0
    card["decode_breakdown_share"] = {k: v / total for k, v in parts.items()}
    return card


def system_memory(card: dict, shape: LayerShape, wl: Workload) -> tuple[float, float]:
    """(memory bytes, KV-cache bytes) of a design card's whole system: every chip's SRAM, and
    the KV of the card's batch at the full context over all layers and KV heads
    (:func:`chipletcloud.perf.formulas.kv_bytes_per_chip` of the whole model)."""
    memory = card["servers"] * card["chips_per_server"] * card["sram_mb_per_chip"] * 1e6
    kv = fm.kv_bytes_per_chip(
        shape.num_layers, card["batch"], shape.kv_context(wl.max_context), shape.kv_values,
        shape.kv_heads,
        wl.kv_bytes, 1.0,
    )  # fmt: skip
    return memory, float(kv)


def front_from_points(pts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Keep the feasible points on the Pareto front, sorted by cost."""
    ok = pts["status"] == FEASIBLE
    mask = pareto_mask(
        np.where(ok, pts["usd_per_million_tokens"], np.nan), np.where(ok, pts["tpot_s"], np.nan)
    )
    idx = np.flatnonzero(mask)
    idx = idx[np.argsort(pts["usd_per_million_tokens"][idx], kind="stable")]
    return {k: np.asarray(v)[idx] for k, v in pts.items()}


def model_dirname(name: str) -> str:
    """A safe folder name for a model's results."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"


def check_table(table: dict[str, np.ndarray] | None, where: str) -> None:
    if table is None or "server_id" not in table:
        raise InputError(
            "hardware", where, "a directory with a servers.parquet from `chipletcloud hardware`"
        )
    if len(table["server_id"]) == 0:
        raise InputError("hardware", where, "a servers table with at least one valid server")


def search(
    table: dict[str, np.ndarray],
    spec: ModelSpec,
    params: Params,
    *,
    fast: bool = True,
    chunk: int = 512,
    nmin: np.ndarray | None = None,
) -> ModelResult:
    """Phase 2 for one model over every design of ``table``: the numba fast path (default) or
    the numpy reference over the whole grid (``fast=False``; memory grows with the grid).
    ``nmin`` replaces the capacity minimum the server multipliers apply to (per design)."""
    check_table(table, "table")
    inp = search_inputs(table, spec, params, nmin)
    nd = len(inp.system)
    if fast:
        from chipletcloud.explore import kernel  # numba: imported only when searching

        keep_d, keep_j, best, counts = kernel.search_fronts(*inp.kernel_args(), chunk=chunk)
        # the front's points again through the reference, for all their metrics
        pts = inp.reference(keep_d, keep_j)
    else:
        pts = inp.reference()
        ok = pts["status"] == FEASIBLE
        best = np.full(nd, np.inf)
        np.minimum.at(best, pts["design"][ok], pts["usd_per_million_tokens"][ok])
        counts = {n: int((pts["status"] == c).sum()) for c, n in enumerate(STATUS_NAMES)}
    shape, grid = inp.shape, inp.grid
    return ModelResult(
        spec.name,
        shape,
        front_from_points(pts),
        best,
        evaluated=nd * grid.size,
        counts=counts,
        spec=spec,
    )


def cost_lower_bound(inp: SearchInputs) -> np.ndarray:
    """A lower bound on every mapping's USD per million tokens, per design (array).

    Throughput: a run of ``B`` sequences makes ``B g`` tokens and does ``B W`` FLOPs, ``W`` a
    sequence's matmuls and attention over the run (prefill, when counted, and decode:
    :func:`chipletcloud.perf.fast.per_sequence`, the reference's own count); every stage time is
    at least its FLOPs over the fastest FLOP/s of its chips (F = peak x max(1, its achievable
    shares)), and a mapping uses at most ``servers x chips_per_server`` chips, so tokens/s <=
    servers x chips x F x g / W. At long contexts the attention FLOPs dominate W. TCO: the
    server's TCO (:func:`chipletcloud.perf.formulas.server_tco_usd`) never falls as its wall
    power or utilisation rise, so it is at least its value at utilisation 0 and the wall power of
    fans and host alone. The servers cancel: the bound is TCO_min / (life x chips x F x g / W)."""
    from chipletcloud.perf import fast as pf

    pr, sysm, shape = inp.pricing, inp.system, inp.shape
    one = np.zeros(1, np.int64)  # the scalars are the model's and workload's: any row serves
    _, s = pf.pack(sysm.take(one), pr.take(one), shape, inp.wl, 1.0, 1, inp.latency_model)
    seq_flops = pf.per_sequence(s)[0]
    wall = pr.overhead_w / pr.efficiency
    tco_min = fm.server_tco_usd(
        POWER_SOURCES[pr.power_source],
        pr.server_cost_usd,
        pr.server_tdp_w,
        wall,
        0.0,
        pr.a_per_usd,
        pr.b_per_w,
        pr.b_energy_per_w,
        pr.fixed_per_usd * pr.server_cost_usd,
        pr.nre_usd_per_server,
    )
    share = np.maximum(1.0, np.maximum(sysm.flops_eff, sysm.flops_eff * sysm.attn_eff))
    tokens_per_s = sysm.chips_per_server * sysm.flops * share * inp.wl.output_tokens / seq_flops
    return fm.usd_per_million_tokens(1.0, tco_min, pr.life_s, tokens_per_s)


def tco_optimum(
    table: dict[str, np.ndarray], spec: ModelSpec, params: Params, block: int = 1024
) -> tuple[dict | None, int]:
    """The TCO-optimal design card of :func:`search` (the same point), without the whole front:
    designs are searched in blocks in order of :func:`cost_lower_bound`, and the search stops at
    the first block whose smallest bound is no lower than the best cost found (no design of it or
    after it can be cheaper). Returns (card or None, designs searched)."""
    check_table(table, "table")
    lb = cost_lower_bound(search_inputs(table, spec, params))
    order = np.argsort(lb, kind="stable")
    best: tuple[float, float] | None = None
    card = None
    searched = 0
    for start in range(0, len(order), block):
        idx = np.sort(order[start : start + block])
        if best is not None and lb[order[start]] >= best[0]:
            break
        sub = {k: np.asarray(v)[idx] for k, v in table.items()}
        c = search(sub, spec, params).card("tco", sub)
        searched += len(idx)
        if c is not None:
            key = (c["usd_per_million_tokens"], c["latency_s_per_token"])
            if best is None or key < best:
                best, card = key, c
    return card, searched


def portfolio(results: list[ModelResult], table: dict[str, np.ndarray]) -> dict:
    """One design for a collection of models: rank designs by the geometric mean over models of
    (model's own optimum / its TCO per token on that design); 1.0 means every model is served at
    its own optimum. Designs that cannot serve every model are excluded."""
    if not results:
        return {}
    best = np.vstack([r.best_per_design for r in results])  # models x designs
    optimum = best.min(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = optimum / best
    ok = np.all(np.isfinite(best), axis=0)
    if not ok.any():
        return {"best_server_id": None, "reason": "no design serves every model"}
    score = np.where(ok, np.exp(np.mean(np.log(np.where(ok, ratio, 1.0)), axis=0)), -np.inf)
    i = int(np.argmax(score))
    order = np.argsort(-score)[:10]
    return {
        "best_server_id": int(table["server_id"][i]),
        "die_area_mm2": float(table["die_area_mm2"][i]),
        "mac_ratio": float(table["mac_ratio"][i]),
        "operational_intensity": float(table["operational_intensity"][i]),
        "packages_per_lane": int(table["packages_per_lane"][i]),
        "geomean_efficiency": float(score[i]),
        "per_model": {
            r.model: {
                "usd_per_million_tokens": float(best[m, i]),
                "own_optimum_usd_per_million_tokens": float(optimum[m, 0]),
                "loss_factor": float(best[m, i] / optimum[m, 0]),
            }
            for m, r in enumerate(results)
        },
        "top10_server_ids": [int(table["server_id"][j]) for j in order if math.isfinite(score[j])],
    }


@dataclass
class EvaluationRun:
    """Phase 2 over several models: per-model results and the shared-design ranking."""

    table: dict[str, np.ndarray]
    params: Params
    results: list[ModelResult]
    portfolio: dict

    @property
    def evaluated(self) -> int:
        return sum(r.evaluated for r in self.results)

    def front_table(self, r: ModelResult) -> dict[str, np.ndarray]:
        """The Pareto front of one model with the server columns of each point joined."""
        f = dict(r.front)
        d = f["design"]
        for col in (
            "server_id",
            "die_area_mm2",
            "mac_ratio",
            "operational_intensity",
            "packages_per_lane",
            "chips_per_server",
            "tflops_per_chip",
            "sram_mb_per_chip",
            "server_cost_usd",
            "server_tdp_w",
        ):
            f[col] = self.table[col][d]
        return f

    def summary(self) -> dict:
        """JSON-able summary: per model the optimal design cards, counts and front size."""
        models = {}
        for r in self.results:
            models[r.model] = {
                "tco_optimal": r.card("tco", self.table),
                "latency_optimal": r.card("latency", self.table),
                "pareto_points": int(len(r.front["design"])),
                "evaluated_points": int(r.evaluated),
                "counts": r.counts,
                "fits_any_design": bool(np.isfinite(r.best_per_design).any()),
                "shape": {
                    "num_layers": r.shape.num_layers,
                    "hidden_size": r.shape.hidden,
                    "num_attention_heads": r.shape.heads,
                    "num_key_value_heads": r.shape.kv_heads,
                    "weight_params": r.shape.weight_params,
                },
            }
        out = {
            "models": models,
            "evaluated_points": int(self.evaluated),
            "preset": self.params.preset.name,
            "workload": self.params.preset.workload.model_dump(),
        }
        if len(self.results) > 1:
            out["portfolio"] = self.portfolio
        return out


def params_for(spec: ModelSpec, params: Params) -> Params:
    """The run's parameters for one model: a model card's own weight sparsity (Hugging Face
    compressed-tensors) applies unless the run set a sparsity of its own. A request longer than
    the model's positions is refused (:meth:`ModelSpec.check_context`)."""
    wl = params.preset.workload
    spec.check_context(wl.prompt_tokens, wl.output_tokens, "prompt_tokens + output_tokens")
    if spec.weight_sparsity > 0 and wl.sparsity == 0:
        return params.with_workload(
            sparsity=spec.weight_sparsity, sparse_format=spec.sparse_format or wl.sparse_format
        )
    return params


class RenamedModel(UserWarning):
    """Two models of one run with the same name: the later one renamed."""


def unique_names(specs: list[ModelSpec]) -> list[ModelSpec]:
    """``specs`` with distinct names, so no two share a result folder or table: a name seen
    before gets ``-2``, ``-3``... (two config.json files in folders of the same name derive the
    same name), with a :class:`RenamedModel` warning naming the change."""
    seen: set[str] = set()
    out = []
    for spec in specs:
        name, k = spec.name, 1
        while model_dirname(name) in seen:
            k += 1
            name = f"{spec.name}-{k}"
        if name != spec.name:
            warnings.warn(
                RenamedModel(f"a second model named {spec.name} is reported as {name}"),
                stacklevel=2,
            )
            spec = spec.model_copy(update={"name": name})
        seen.add(model_dirname(name))
        out.append(spec)
    return out


class ContextBeyondPositions(UserWarning):
    """A model left out of a run of several: the run's requests pass its positions."""


def servable(specs: list[ModelSpec], params: Params, refuse: bool = True) -> list[ModelSpec]:
    """The models whose positions hold the run's requests (:meth:`ModelSpec.check_context`):
    in a run of several, the others are left out with a :class:`ContextBeyondPositions` warning
    naming each; a run of one model, or where no model is left, is refused in one line (with
    ``refuse``; without, those are left out with a warning too)."""
    wl = params.preset.workload
    kept, refused = [], []
    for spec in specs:
        try:
            spec.check_context(wl.prompt_tokens, wl.output_tokens, "prompt_tokens + output_tokens")
            kept.append(spec)
        except InputError as exc:
            refused.append((spec, exc))
    if refuse and refused and (len(specs) == 1 or not kept):
        raise refused[0][1]
    for spec, exc in refused:
        warnings.warn(ContextBeyondPositions(f"{spec.name} left out: {exc}"), stacklevel=2)
    return kept


def evaluate_models(
    table: dict[str, np.ndarray],
    specs: list[ModelSpec],
    params: Params,
    progress=None,
    fast: bool = True,
) -> EvaluationRun:
    """Phase 2 for each model, then the one-design-for-all ranking."""
    check_table(table, "table")
    step = progress or (lambda _msg: None)
    results = []
    for spec in specs:
        results.append(search(table, spec, params_for(spec, params), fast=fast))
        step(spec.name)
    return EvaluationRun(table, params, results, portfolio(results, table))
