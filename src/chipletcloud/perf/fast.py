"""The fast path of the inference model: the numba twin of :mod:`chipletcloud.perf.analytic`.

It evaluates one (design, mapping) point at a time with the formulas of
:mod:`chipletcloud.perf.formulas`, compiled from the same source the numpy reference calls (the
stage time, the capacity, the collective plan and its times, the per-token TCO), so a formula
changed there changes both paths. What is written here is only the per-point arrangement: the
stage time summed op by op, and the energy and FLOPs regrouped per sequence so that the search
(:mod:`chipletcloud.explore.kernel`) can reuse them across batches.
``tests/perf/test_equivalence.py`` checks every compiled formula and the whole point against the
reference on random inputs, every switch included.

Inputs are packed: per-design columns in a 2-D array (``D_*`` column indices) and the model,
workload and pricing scalars in one vector (``S_*`` indices), built by :func:`pack`.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numba.extending import overload, register_jitable

from chipletcloud.perf import formulas as fm
from chipletcloud.perf import jitcache
from chipletcloud.perf.codes import LATENCY_MODELS, POWER_SOURCES, V1

jitcache.install()  # the cache of every compiled function follows all the engine's sources

# floating-point licences: reassociation, reciprocals, fused multiply-add; no nan/inf assumptions;
# division by zero gives inf/nan as in numpy (the reference) instead of raising
FM = {"reassoc", "arcp", "contract"}
JIT = dict(cache=True, fastmath=FM, error_model="numpy")


@overload(fm.select, jit_options=dict(fastmath=FM, error_model="numpy"))
def _select_scalar(cond, a, b):
    """Compiled :func:`chipletcloud.perf.formulas.select`: a scalar conditional."""

    def impl(cond, a, b):
        return a if cond else b

    return impl


# formulas other formulas call: compiled where they are called from compiled code
for _helper in (
    fm.fabric_plan,
    fm.fabric_time,
    fm.collective_plan,
    fm.collective_times,
    fm.v1_collectives_s,
    fm.grid_dims,
    fm.rd_steps,
    fm.has_algorithm,
    fm.fabric_hops,
    fm.allreduce_fabric_s,
    fm.tensor_placement,
    fm.group_links,
    fm.v1_link_bandwidths,
    fm.kv_heads_per_chip,
    fm.gcd,
    fm.chip_kv_heads,
    fm.stage_layers,
    fm.weight_bytes_per_chip,
    fm.all_to_all_fabric_s,
):
    register_jitable(fastmath=FM, error_model="numpy")(_helper)

# the shared formulas, compiled
stage_layers = njit(**JIT)(fm.stage_layers)
tensor_degree = njit(**JIT)(fm.tensor_degree)
servers_for = njit(**JIT)(fm.servers_for)
tensor_degree_valid = njit(**JIT)(fm.tensor_degree_valid)
kv_heads_per_chip = njit(**JIT)(fm.kv_heads_per_chip)
kv_read_heads_per_chip = njit(**JIT)(fm.kv_read_heads_per_chip)
gcd = njit(**JIT)(fm.gcd)
chip_kv_heads = njit(**JIT)(fm.chip_kv_heads)
kv_split_chips = njit(**JIT)(fm.kv_split_chips)
sequences_per_chip = njit(**JIT)(fm.sequences_per_chip)
balanced_stage_layers = njit(**JIT)(fm.balanced_stage_layers)
stage_memory = njit(**JIT)(fm.stage_memory)
kv_all_to_all_s = njit(**JIT)(fm.kv_all_to_all_s)
prefill_pairs = njit(**JIT)(fm.prefill_pairs)
kv_energy_share = njit(**JIT)(fm.kv_energy_share)
mlp_params_read = njit(**JIT)(fm.mlp_params_read)
weight_bytes_per_chip = njit(**JIT)(fm.weight_bytes_per_chip)
kv_bytes_per_chip = njit(**JIT)(fm.kv_bytes_per_chip)
grid_dims = njit(**JIT)(fm.grid_dims)
rd_steps = njit(**JIT)(fm.rd_steps)
has_algorithm = njit(**JIT)(fm.has_algorithm)
fabric_hops = njit(**JIT)(fm.fabric_hops)
fabric_plan = njit(**JIT)(fm.fabric_plan)
allreduce_fabric_s = njit(**JIT)(fm.allreduce_fabric_s)
collective_plan = njit(**JIT)(fm.collective_plan)
collective_times = njit(**JIT)(fm.collective_times)
v1_collectives_s = njit(**JIT)(fm.v1_collectives_s)
v1_link_bandwidths = njit(**JIT)(fm.v1_link_bandwidths)
reduce_scatter_fabric_s = njit(**JIT)(fm.reduce_scatter_fabric_s)
all_to_all_fabric_s = njit(**JIT)(fm.all_to_all_fabric_s)
tensor_placement = njit(**JIT)(fm.tensor_placement)
group_links = njit(**JIT)(fm.group_links)
collectives_s = njit(**JIT)(fm.collectives_s)
systolic_side = njit(**JIT)(fm.systolic_side)
systolic_utilisation = njit(**JIT)(fm.systolic_utilisation)
matmul_s = njit(**JIT)(fm.matmul_s)
flop_utilisation = njit(**JIT)(fm.flop_utilisation)
server_tco_usd = njit(**JIT)(fm.server_tco_usd)
usd_per_million_tokens = njit(**JIT)(fm.usd_per_million_tokens)

#: Every compiled formula by name (the equivalence test walks this table).
COMPILED = {
    name: globals()[name]
    for name in (
        "stage_layers",
        "tensor_degree",
        "servers_for",
        "tensor_degree_valid",
        "kv_heads_per_chip",
        "kv_read_heads_per_chip",
        "gcd",
        "chip_kv_heads",
        "kv_split_chips",
        "sequences_per_chip",
        "balanced_stage_layers",
        "stage_memory",
        "kv_all_to_all_s",
        "prefill_pairs",
        "kv_energy_share",
        "mlp_params_read",
        "weight_bytes_per_chip",
        "kv_bytes_per_chip",
        "grid_dims",
        "rd_steps",
        "has_algorithm",
        "fabric_hops",
        "fabric_plan",
        "allreduce_fabric_s",
        "collective_plan",
        "v1_collectives_s",
        "v1_link_bandwidths",
        "reduce_scatter_fabric_s",
        "all_to_all_fabric_s",
        "tensor_placement",
        "group_links",
        "collectives_s",
        "systolic_side",
        "systolic_utilisation",
        "matmul_s",
        "flop_utilisation",
        "server_tco_usd",
        "usd_per_million_tokens",
    )
}

# per-design columns: the System fields, then the pricing columns and the capacity minimum
SYSTEM_COLUMNS = (
    "flops",
    "mem_bytes",
    "mem_bw",
    "chip_link_bw",
    "server_link_bw",
    "chips_per_server",
    "hop_latency_s",
    "fma_j",
    "mem_j_per_byte",
    "act_j_per_byte",
    "static_w_per_chip",
    "flops_eff",
    "mem_eff",
    "op_overhead_s",
    "collective_dims",
    "clock_hz",
    "net_hop_s",
    "sync_s",
    "topology",
    "algorithms",
    "nics_per_server",
    "packet_bytes",
    "net_radix",
    "net_tier_s",
    "attn_eff",
)
PRICING_COLUMNS = ("server_cost_usd", "server_tdp_w", "overhead_w")
DESIGN_COLUMNS = SYSTEM_COLUMNS + PRICING_COLUMNS + ("nmin",)
(
    D_F,
    D_MEM,
    D_BW,
    D_CBW,
    D_SBW,
    D_CPS,
    D_ALPHA,
    D_FMA,
    D_MEMJ,
    D_ACTJ,
    D_STATIC,
    D_FEFF,
    D_MEFF,
    D_OVH,
    D_DIMS,
    D_CLOCK,
    D_NET,
    D_SYNC,
    D_TOPO,
    D_ALGS,
    D_NICS,
    D_PACKET,
    D_RADIX,
    D_TIER,
    D_AEFF,
    D_COST,
    D_TDP,
    D_OVER,
    D_NMIN,
) = range(len(DESIGN_COLUMNS))

# model, workload and pricing scalars
SCALARS = (
    "layers",
    "hidden",
    "heads",
    "kv_heads",
    "head_dim",
    "attn_params",
    "mlp_stored",
    "mlp_tok",
    "experts",
    "experts_per_tok",
    "expert_params",
    "moe_share",
    "head_params",
    "head_mm",
    "prompt",
    "gen",
    "wb",
    "kvb",
    "ab",
    "efficiency",
    "a_per_usd",
    "b_per_w",
    "fixed_per_usd",
    "life_s",
    "power_code",
    "max_servers",
    "latency_model",
    "weight_storage_bytes",
    "mlp_in_share",
    "count_prefill",
    "kv_in_capacity",
    "units_per_layer",
    "layer_kernels",
    "head_kernels",
    "whole_heads",
    "stage_transfer",
    "kv_reads_per_query_head",
    "kv_read_energy_per_micro_batch",
    "prefill_attention_authors",
    "balance_stages",
    "head_layers",
    "embed_params",
    "layer_params",
    "b_energy_per_w",
    "nre_usd_per_server",
    "o_params",
    "kv_values",
    "score_decode",
    "score_prefill",
    "context_decode",
    "context_max",
    "pairs_prefill",
)
(
    S_L,
    S_D,
    S_H,
    S_KV,
    S_HD,
    S_ATTN,
    S_MLPS,
    S_MLPT,
    S_E,
    S_K,
    S_EP,
    S_SHARE,
    S_HEADP,
    S_HEADMM,
    S_P,
    S_G,
    S_WB,
    S_KVB,
    S_AB,
    S_EFF,
    S_A,
    S_B,
    S_FIXED,
    S_LIFE,
    S_POWER,
    S_MAXS,
    S_LAT,
    S_WSTORE,
    S_SIN,
    S_CP,
    S_KVCAP,
    S_UNITS,
    S_KERNELS,
    S_HEADK,
    S_WHOLE,
    S_TX,
    S_KVQ,
    S_KVE,
    S_PREATT,
    S_BAL,
    S_HEADL,
    S_EMBED,
    S_LAYERP,
    S_BE,
    S_NRE,
    S_OP,
    S_KVV,
    S_SCD,
    S_SCP,
    S_CDEC,
    S_CMAX,
    S_PAIRS,
) = range(len(SCALARS))


def pack(system, pricing, shape, wl, nmin, max_servers, latency_model="isca24"):
    """(design columns, scalars) of ``system`` rows priced by ``pricing``
    (:class:`chipletcloud.perf.analytic.Pricing`) serving ``shape`` under ``wl``."""
    n = len(system)
    cols = [np.broadcast_to(np.asarray(getattr(system, c), float), (n,)) for c in SYSTEM_COLUMNS]
    cols += [np.broadcast_to(np.asarray(getattr(pricing, c), float), (n,)) for c in PRICING_COLUMNS]
    cols.append(np.broadcast_to(np.asarray(nmin, float), (n,)))
    des = np.ascontiguousarray(np.stack(cols, axis=1))
    s = np.array(
        [
            shape.num_layers,
            shape.hidden,
            shape.heads,
            shape.kv_heads,
            shape.head_dim,
            shape.attn_params,
            shape.mlp_params_stored,
            shape.mlp_params_per_token,
            shape.experts,
            shape.experts_per_tok,
            shape.expert_params,
            shape.moe_layer_share,
            shape.head_params,
            shape.head_matmul_params,
            wl.prompt_tokens,
            wl.output_tokens,
            wl.weight_bytes,
            wl.kv_bytes,
            wl.act_bytes,
            pricing.efficiency,
            pricing.a_per_usd,
            pricing.b_per_w,
            pricing.fixed_per_usd,
            pricing.life_s,
            POWER_SOURCES[pricing.power_source],
            max_servers,
            LATENCY_MODELS[latency_model],
            wl.weight_storage_bytes,
            shape.mlp_in_share,
            1.0 if wl.count_prefill else 0.0,
            1.0 if wl.kv_in_capacity else 0.0,
            wl.units_per_layer,
            wl.kernels_per_layer,
            wl.layer_kernels["lm_head"],
            1.0 if wl.whole_heads else 0.0,
            1.0 if wl.stage_transfer else 0.0,
            1.0 if wl.kv_reads_per_query_head else 0.0,
            1.0 if wl.kv_read_energy_per_micro_batch else 0.0,
            1.0 if wl.prefill_attention_authors else 0.0,
            1.0 if wl.balance_stages else 0.0,
            shape.head_layers,
            shape.embed_params,
            shape.layer_params,
            pricing.b_energy_per_w,
            pricing.nre_usd_per_server,
            shape.o_params,
            shape.kv_values,
            shape.score_dim("decode"),
            shape.score_dim("prefill"),
            shape.decode_context(wl.prompt_tokens, wl.output_tokens),
            shape.kv_context(wl.max_context),
            shape.prefill_pairs(wl.prompt_tokens, wl.prefill_attention_authors),
        ],
        dtype=float,
    )
    return des, s


@njit(**JIT)
def plan_collectives(net, n_srv, tp, pp):
    """The :func:`chipletcloud.perf.formulas.collective_plan` of one mapping (``net`` as in
    :func:`stage_s`): computed once a mapping, evaluated for each micro-batch."""
    cps, cbw, sbw, nics, hop, net_hop, sync, topo, dims, algs, pkt, radix, tier = net
    return collective_plan(
        n_srv, tp, pp, cps, cbw, sbw, nics, hop, net_hop, sync, topo, dims, algs, radix, tier
    )


@njit(**JIT)
def stage_s(s, chip, net, plan, mp, rows, pairs, kv_tokens, m, score):
    """Seconds of one micro-batch of ``m`` sequences (``rows`` matmul rows, ``pairs`` query-key
    pairs of ``score`` FLOPs / 2 a query head, ``kv_tokens`` KV tokens read) through the slowest
    stage
    (:func:`chipletcloud.perf.analytic.stage_ops`). ``chip`` = (achievable FLOP/s, achievable
    memory bandwidth, systolic side, fixed time per kernel, attention's share of the FLOP/s);
    ``net`` = the interconnect columns
    of :func:`chipletcloud.perf.formulas.collectives_s` (chips a server, chip-link, server-link
    bandwidth, NICs a server, chip hop, server hop, fixed cost a collective, topology,
    dimensions, algorithms, smallest message, switch ports, latency of a further switch tier);
    ``plan`` = the mapping's :func:`plan_collectives`; ``mp`` = the mapping's (layers of a full
    stage, layers of the last stage, tensor degree, KV heads a chip reads, servers, pipeline
    degree, chips sharing a KV head by sequence). The slowest stage is a full one or the last
    with the LM head, whichever takes longer."""
    f, bw, side, ovh, aeff = chip
    cps, cbw, sbw, nics, hop, net_hop, sync, topo, dims, algs, pkt, radix, tier = net
    full, last, tp, kvh, n_srv, pp, r = mp
    seq_share = sequences_per_chip(m, r) / m  # a split KV cache: a share of the sequences
    v1 = s[S_LAT] == V1
    d, hd, heads, ab, wb = s[S_D], s[S_HD], s[S_H], s[S_AB], s[S_WB]
    q = heads * hd
    qkv_p = (s[S_ATTN] - s[S_OP]) / tp
    o_p = s[S_OP] / tp
    mlp_t = s[S_MLPT] / tp
    mlp_r = mlp_params_read(s[S_MLPT], s[S_SHARE], s[S_EP], s[S_E], s[S_K], rows) / tp
    s_in = s[S_SIN]
    util = systolic_utilisation(rows, qkv_p / d, side)
    t = matmul_s(2 * rows * qkv_p, qkv_p * wb, f, bw, util, v1)
    t += matmul_s(2 * rows * o_p, o_p * wb, f, bw, systolic_utilisation(rows, d, side), v1)
    util = systolic_utilisation(rows, mlp_t * s_in / d, side)
    t += matmul_s(2 * rows * mlp_t * s_in, mlp_r * s_in * wb, f, bw, util, v1)
    util = systolic_utilisation(rows, d, side)
    t += matmul_s(2 * rows * mlp_t * (1 - s_in), mlp_r * (1 - s_in) * wb, f, bw, util, v1)
    if not v1:
        att_c = 2.0 * score * (heads / tp * r) * pairs * seq_share / (f * aeff)
        t += max(att_c, kv_tokens * seq_share * s[S_KVV] * kvh * s[S_KVB] / bw)
        t += 2.0 * pairs * seq_share * (heads / tp * r) * ab / bw  # softmax
        a2a = kv_all_to_all_s(
            rows * q / tp * ab, r, tp, pp, cps, cbw, sbw, nics, hop, net_hop, sync, topo, dims, pkt
        )
        t += 2.0 * a2a  # a split KV cache: queries and attention outputs change hands
        t += 2.0 * 2.0 * rows * d * ab / bw  # two norms
        t += rows * s[S_MLPT] / d / tp * ab / bw  # activation
        t += s[S_KERNELS] * ovh  # fixed time of the layer's kernels
    if v1:
        ar, t_x = v1_collectives_s(rows * d * ab, tp, pp, cps, cbw, sbw, hop)
    else:
        ar, t_x = collective_times(plan, rows * d * ab, pkt)
    t_head = 0.0
    if s[S_HEADMM] > 0:
        hp = s[S_HEADMM] / tp
        util = systolic_utilisation(m, s[S_HEADMM] / d / tp, side)
        t_head = matmul_s(2 * m * hp, hp * wb, f, bw, util, v1)
        if not v1:
            t_head += s[S_HEADK] * ovh
    per_layer = t + 2.0 * ar
    return max(full * per_layer, last * per_layer + t_head) + t_x * s[S_TX]


@njit(**JIT)
def per_sequence(s):
    """FLOPs and activation bytes one sequence costs over the run (prefill + decode, or decode
    only), and the KV bytes it reads of one KV head (all layers; times the heads read on all
    chips gives its KV reads): the batch- and micro-batch-free parts of the energy and
    utilisation of :func:`chipletcloud.perf.analytic.simulate`."""
    L, q, prompt, gen = s[S_L], s[S_H] * s[S_HD], s[S_P], s[S_G]
    c = s[S_CDEC]
    head_mm = s[S_HEADMM]
    mat_tok = L * (s[S_ATTN] + s[S_MLPT]) + head_mm
    att = 0.0 if s[S_LAT] == V1 else 2.0 * L * s[S_H]  # v1 times no attention: no FLOPs
    fl_dec = 2.0 * mat_tok + att * s[S_SCD] * c
    fl_pre = 2.0 * prompt * (mat_tok - head_mm) + 2.0 * head_mm + att * s[S_SCP] * s[S_PAIRS]
    cp = s[S_CP]
    kv = (cp * prompt + (gen - cp) * c) * L * s[S_KVV] * s[S_KVB]
    act = (cp * prompt + gen - cp) * L * (2 * s[S_D] + q + s[S_MLPT] / s[S_D]) * s[S_AB]
    return cp * fl_pre + (gen - cp) * fl_dec, kv, act


@njit(**JIT)
def weights_per_pass(s, rows):
    """Weight bytes one micro-batch pass of ``rows`` tokens reads, all chips together."""
    mlp = mlp_params_read(s[S_MLPT], s[S_SHARE], s[S_EP], s[S_E], s[S_K], rows)
    return (s[S_L] * (s[S_ATTN] + mlp) + s[S_HEADMM]) * s[S_WB]


@njit(**JIT)
def point_cost(s, des, i, n_srv, pp, chips, B, m, dec, pre, w_run, seq_fl, seq_kv, seq_act):
    """(USD per million tokens, latency per token) of one feasible point, given its decode and
    prefill stage times, the weight bytes of one micro-batch over the run (``w_run``: prefill pass
    + (gen - 1) decode passes) and the per-sequence FLOPs, KV and activation bytes
    (:func:`chipletcloud.perf.analytic.simulate` and :func:`chipletcloud.perf.analytic.price`,
    regrouped by batch and micro-batches)."""
    gen = s[S_G]
    n_mb = B / m
    tau = max(pp, n_mb) * dec
    prefill = (pp + n_mb - 1.0) * pre
    run = s[S_CP] * prefill + (gen - s[S_CP]) * tau
    thr = B * gen / run
    e_dyn = (
        B * (seq_fl / 2.0 * des[i, D_FMA] + seq_act * des[i, D_ACTJ])
        + B * seq_kv * kv_energy_share(m, s[S_KVE]) * des[i, D_MEMJ]
        + n_mb * w_run * des[i, D_MEMJ]
    )
    e_static = chips * des[i, D_STATIC] * run
    chip_power = (e_dyn + e_static) / run / chips
    cps = des[i, D_CPS]
    cost = des[i, D_COST]
    wall = (chip_power * cps + des[i, D_OVER]) / s[S_EFF]
    util = flop_utilisation(B * seq_fl, run, chips, des[i, D_F]) * (chips / (n_srv * cps))
    tco = server_tco_usd(
        s[S_POWER],
        cost,
        des[i, D_TDP],
        wall,
        util,
        s[S_A],
        s[S_B],
        s[S_BE],
        s[S_FIXED] * cost,
        s[S_NRE],
    )
    return usd_per_million_tokens(n_srv, tco, s[S_LIFE], thr), tau
