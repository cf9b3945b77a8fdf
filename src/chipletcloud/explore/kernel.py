"""The fast path of the phase-2 search: a numba kernel over (design x mapping).

It evaluates, one point at a time and designs in parallel, exactly the formulas of the numpy
reference (:mod:`chipletcloud.perf.simulate` and :func:`chipletcloud.explore.software.price`);
``tests/test_software.py`` checks that both agree on random inputs. Designs are processed in chunks
(memory: chunk x mappings x 17 bytes); a running global Pareto front of (USD per million tokens,
latency per token) filters each chunk, so only a handful of points ever leave the kernel.

Inputs are packed: per-design columns in a 2-D array (``D_*`` column indices) and the model,
workload and pricing scalars in one vector (``S_*`` indices).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from chipletcloud.explore.pareto import pareto_mask

# floating-point licences: reassociation, reciprocals, fused multiply-add; no nan/inf assumptions
FM = {"reassoc", "arcp", "contract"}
_CODES = {"energy": 0, "tdp": 1, "tdp_utilisation": 2}
LATENCY_MODELS = {"isca24": 0, "v1": 1}

# per-design columns
DESIGN_COLUMNS = (
    "flops",
    "mem_bytes",
    "mem_bw",
    "chip_link_bw",
    "server_link_bw",
    "chips_per_server",
    "link_startup_s",
    "fma_j",
    "mem_j_per_byte",
    "act_j_per_byte",
    "static_w_per_chip",
    "flops_eff",
    "mem_eff",
    "op_overhead_s",
)
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
    D_COST,
    D_TDP,
    D_OVER,
    D_NMIN,
) = range(18)
# scalars
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
    "collective_dims",
    "units_per_layer",
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
    S_DIMS,
    S_UNITS,
) = range(33)


@njit(cache=True, fastmath=FM)
def _mlp_read(rows, s):
    """MLP weights read for ``rows`` tokens (perf.simulate.mlp_params_read)."""
    e = s[S_E]
    touched = 0.0 if e == 0 else e * (1.0 - (1.0 - s[S_K] / e) ** rows)
    return s[S_MLPT] + s[S_SHARE] * (touched - s[S_K]) * s[S_EP]


@njit(cache=True, fastmath=FM)
def _mm(flops, nbytes, f, bw, util, v1):
    """One matmul: max(compute, memory); v1: compute at the systolic utilisation only."""
    if v1:
        return flops / (f * util)
    return max(flops / f, nbytes / bw)


@njit(cache=True, fastmath=FM)
def _stage(
    s, f, bw, side, rows, pairs, kv_tokens, m, layers, tp, tp_bw, pp_bw, alpha, pp, kvh, ovh
):
    """Seconds of one micro-batch through the slowest stage (perf.simulate.stage_ops)."""
    v1 = s[S_LAT] == 1
    d, hd, heads, ab = s[S_D], s[S_HD], s[S_H], s[S_AB]
    q = heads * hd
    kvw = s[S_KV] * hd
    wb = s[S_WB]
    sq = side * side
    qkv_p = d * (q + 2 * kvw) / tp
    o_p = q * d / tp
    mlp_t = s[S_MLPT] / tp
    mlp_r = _mlp_read(rows, s) / tp
    s_in = s[S_SIN]
    t = _mm(2 * rows * qkv_p, qkv_p * wb, f, bw, min(rows * (q + 2 * kvw) / tp / sq, 1.0), v1)
    t += _mm(2 * rows * o_p, o_p * wb, f, bw, min(rows * d / sq, 1.0), v1)
    t += _mm(
        2 * rows * mlp_t * s_in,
        mlp_r * s_in * wb,
        f,
        bw,
        min(rows * mlp_t * s_in / d / sq, 1.0),
        v1,
    )
    t += _mm(
        2 * rows * mlp_t * (1 - s_in), mlp_r * (1 - s_in) * wb, f, bw, min(rows * d / sq, 1.0), v1
    )
    if not v1:
        t += max(4.0 * hd * (heads / tp) * pairs / f, 2.0 * kv_tokens * hd * kvh * s[S_KVB] / bw)
        t += 2.0 * pairs * (heads / tp) * ab / bw  # softmax
        t += 2.0 * 2.0 * rows * d * ab / bw  # two norms
        t += rows * s[S_MLPT] / d / tp * ab / bw  # activation
        t += 10.0 * ovh  # kernels a layer (perf.simulate.LAYER_OPS)
    ar = 0.0
    if tp > 1:
        dims = s[S_DIMS]
        ar = (
            2.0 * (tp - 1.0) / tp * rows * d * ab / tp_bw
            + 2.0 * dims * (tp ** (1.0 / dims) - 1.0) * alpha
        )
    t_head = 0.0
    if s[S_HEADMM] > 0:
        hp = s[S_HEADMM] / tp
        t_head = _mm(2 * m * hp, hp * wb, f, bw, min(m * hp / d / sq, 1.0), v1)
        if not v1:
            t_head += ovh
    t_x = 0.0
    if pp > 1:
        t_x = rows * d * ab / pp_bw + alpha
    return layers * t + layers * 2.0 * ar + t_head + t_x


@njit(cache=True, fastmath=FM)
def _links(tp, pp, n_srv, cps, chip_bw, server_bw, v1):
    """(tensor-group, stage-transfer) link bandwidth of one mapping, as perf.simulate.links."""
    srv_bw = min(chip_bw, server_bw)
    if v1:  # by the group's size against a server
        return (srv_bw if tp > cps else chip_bw), (srv_bw if tp >= cps else chip_bw)
    if tp <= cps and (cps % tp == 0 or tp * pp <= cps):  # inside a server
        tp_bw = chip_bw
    elif tp > cps and tp % cps == 0:  # whole servers
        tp_bw = srv_bw
    else:  # straddling a server boundary: a shared uplink
        tp_bw = srv_bw / 2.0
    return tp_bw, (srv_bw if n_srv > 1 else chip_bw)


@njit(cache=True, fastmath=FM)
def _per_sequence(s):
    """FLOPs and activation bytes one sequence costs over prefill + decode (B- and m-free parts of
    perf.simulate.simulate's energy and utilisation), and its KV bytes before replication; the
    prefill counts when the workload does (``S_CP``)."""
    L, q, prompt, gen = s[S_L], s[S_H] * s[S_HD], s[S_P], s[S_G]
    c = prompt + gen / 2.0
    head_mm = s[S_HEADMM]
    mat_tok = L * (s[S_ATTN] + s[S_MLPT]) + head_mm
    att = 0.0 if s[S_LAT] == 1 else 4.0 * L * q  # v1 times no attention, so counts no FLOPs
    fl_dec = 2.0 * mat_tok + att * c
    fl_pre = (
        2.0 * prompt * (mat_tok - head_mm) + 2.0 * head_mm + att * (prompt * (prompt + 1.0) / 2.0)
    )
    cp = s[S_CP]
    kv = (cp * prompt + (gen - cp) * c) * L * 2.0 * s[S_KV] * s[S_HD] * s[S_KVB]
    act = (cp * prompt + gen - cp) * L * (2 * s[S_D] + q + s[S_MLPT] / s[S_D]) * s[S_AB]
    return cp * fl_pre + (gen - cp) * fl_dec, kv, act


@njit(cache=True, fastmath=FM)
def _weights_per_pass(s, rows):
    """Weight bytes one micro-batch pass of ``rows`` tokens reads, all chips together."""
    return (s[S_L] * (s[S_ATTN] + _mlp_read(rows, s)) + s[S_HEADMM]) * s[S_WB]


@njit(cache=True, fastmath=FM)
def _point(s, des, i, n_srv, pp, chips, B, m, dec, pre, w_run, seq_fl, seq_kv, seq_act):
    """(USD per million tokens, latency per token) of one feasible point, given its decode and
    prefill stage times, the weight bytes of one micro-batch over the run (``w_run``: prefill pass
    + (gen - 1) decode passes) and the per-sequence FLOPs, KV and activation bytes
    (perf.simulate.simulate + explore.software.price, regrouped by B and n_mb)."""
    gen = s[S_G]
    n_mb = B / m
    tau = max(pp, n_mb) * dec
    prefill = (pp + n_mb - 1.0) * pre
    run = s[S_CP] * prefill + (gen - s[S_CP]) * tau
    thr = B * gen / run
    e_dyn = (
        B * (seq_fl / 2.0 * des[i, D_FMA] + seq_kv * des[i, D_MEMJ] + seq_act * des[i, D_ACTJ])
        + n_mb * w_run * des[i, D_MEMJ]
    )
    e_static = chips * des[i, D_STATIC] * run
    chip_power = (e_dyn + e_static) / run / chips
    cost, tdp = des[i, D_COST], des[i, D_TDP]
    code = s[S_POWER]
    if code == 0:
        p = min((chip_power * des[i, D_CPS] + des[i, D_OVER]) / s[S_EFF], tdp)
        srv_tco = s[S_A] * cost + s[S_B] * p
    elif code == 1:
        srv_tco = s[S_A] * cost + s[S_B] * tdp
    else:
        u = min(B * seq_fl / (run * n_srv * des[i, D_CPS] * des[i, D_F]), 1.0)
        fixed = s[S_FIXED] * cost
        srv_tco = fixed + u * (s[S_A] * cost + s[S_B] * tdp - fixed)
    return n_srv * srv_tco / s[S_LIFE] / thr * 1e6, tau


@njit(cache=True, parallel=True, fastmath=FM)
def _chunk(
    des,
    s,
    mults,
    pps,
    batches,
    pair_b,
    pair_m,
    front_cost,
    front_lat,
    cand_j,
    cand_cost,
    cand_lat,
    n_cand,
    best,
    counts,
):
    """Evaluate every (design, mapping) point of the designs in ``des``.

    Writes out only the *candidates*: feasible points that no point of the given front
    (``front_*``: sorted by cost, latency strictly falling) strictly dominates; row i's candidates
    are ``cand_*[i, :n_cand[i]]`` in mapping order. Also the cheapest cost of each design and the
    status counts per design (feasible, invalid mapping, does not fit).
    """
    nd = des.shape[0]
    nb = batches.shape[0]
    npair = pair_b.shape[0]
    npp = pps.shape[0]
    nf = front_cost.shape[0]
    L, heads, kv_heads, hd = s[S_L], s[S_H], s[S_KV], s[S_HD]
    prompt, gen = s[S_P], s[S_G]
    c = prompt + gen / 2.0
    max_ctx = prompt + gen
    layer_p = s[S_ATTN] + s[S_MLPS]
    seq_fl, seq_kv1, seq_act = _per_sequence(s)
    w_run = np.empty(nb)  # weight bytes of one micro-batch over the run, by micro-batch size
    for cc in range(nb):
        m = batches[cc]
        w_run[cc] = s[S_CP] * _weights_per_pass(s, m * prompt) + (gen - s[S_CP]) * (
            _weights_per_pass(s, m)
        )
    for i in prange(nd):
        dec = np.empty(nb)
        pre = np.empty(nb)
        f = des[i, D_F] * des[i, D_FEFF]
        bw = des[i, D_BW] * des[i, D_MEFF]
        side = float(round(math.sqrt(des[i, D_F] / 1e12 / 2.0 * 1000.0)))
        cps = des[i, D_CPS]
        nc = 0
        n_ok = 0
        n_bad = 0
        n_full = 0
        bi = np.inf
        for kk in range(mults.shape[0]):
            n_srv = math.ceil(des[i, D_NMIN] * mults[kk] - 1e-9)
            for a in range(npp):
                pp = pps[a]
                tp = math.floor(n_srv * cps / pp)
                base = (kk * npp + a) * npair
                if n_srv > s[S_MAXS] or tp < 1:
                    n_bad += npair
                    continue
                layers = math.ceil(L * s[S_UNITS] / pp - 1e-9) / s[S_UNITS]
                kvh = kv_heads / tp * max(1.0, min(tp, heads) / kv_heads)
                head = s[S_HEADMM] if pp > 1 else s[S_HEADP]
                w_chip = (layers * layer_p + head) / tp * s[S_WSTORE]
                tp_bw, pp_bw = _links(
                    tp, pp, n_srv, cps, des[i, D_CBW], des[i, D_SBW], s[S_LAT] == 1
                )
                alpha = des[i, D_ALPHA]
                ovh = des[i, D_OVH]
                # batch sizes whose KV fits (KV grows with the batch: a prefix of ``batches``)
                nfit = 0
                for cc in range(nb):
                    kv_chip = (
                        s[S_KVCAP] * layers * batches[cc] * max_ctx * 2.0 * hd * kvh * s[S_KVB]
                    )
                    if w_chip + kv_chip > des[i, D_MEM]:
                        break
                    nfit += 1
                # stage times depend on the micro-batch only: once per micro-batch size
                for cc in range(nfit):
                    m = batches[cc]
                    dec[cc] = _stage(
                        s,
                        f,
                        bw,
                        side,
                        m,
                        m * c,
                        m * c,
                        m,
                        layers,
                        tp,
                        tp_bw,
                        pp_bw,
                        alpha,
                        pp,
                        kvh,
                        ovh,
                    )
                    pre[cc] = _stage(
                        s,
                        f,
                        bw,
                        side,
                        m * prompt,
                        m * prompt * (prompt + 1.0) / 2.0,
                        m * prompt,
                        m,
                        layers,
                        tp,
                        tp_bw,
                        pp_bw,
                        alpha,
                        pp,
                        kvh,
                        ovh,
                    )
                chips = pp * tp
                seq_kv = seq_kv1 * kvh * tp / kv_heads  # replicated KV heads: each copy is read
                for pi in range(npair):
                    B = pair_b[pi]
                    cc = pair_m[pi]
                    if nfit == 0 or B > batches[nfit - 1]:
                        n_full += npair - pi  # pairs are sorted by batch
                        break
                    cost, lat = _point(
                        s,
                        des,
                        i,
                        n_srv,
                        pp,
                        chips,
                        B,
                        batches[cc],
                        dec[cc],
                        pre[cc],
                        w_run[cc],
                        seq_fl,
                        seq_kv,
                        seq_act,
                    )
                    n_ok += 1
                    if cost < bi:
                        bi = cost
                    if nf > 0:
                        k = np.searchsorted(front_cost, cost, side="right") - 1
                        if k >= 0 and (
                            front_lat[k] < lat or (front_lat[k] == lat and front_cost[k] < cost)
                        ):
                            continue
                    cand_j[i, nc] = base + pi
                    cand_cost[i, nc] = cost
                    cand_lat[i, nc] = lat
                    nc += 1
        n_cand[i] = nc
        best[i] = bi
        counts[i, 0] = n_ok
        counts[i, 1] = n_bad
        counts[i, 2] = n_full


def _args(
    system, pricing, shape, wl, grid, nmin, max_servers, latency_model="isca24", sl=slice(None)
):
    """The kernel's inputs for the designs in ``sl``: (design columns, scalars, grid axes)."""
    n = len(system)
    cols = [np.broadcast_to(np.asarray(getattr(system, c), float), (n,)) for c in DESIGN_COLUMNS]
    cols += [
        np.broadcast_to(np.asarray(x, float), (n,))
        for x in (pricing.server_cost_usd, pricing.server_tdp_w, pricing.overhead_w, nmin)
    ]
    des = np.ascontiguousarray(np.stack(cols, axis=1)[sl])
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
            _CODES[pricing.power_source],
            max_servers,
            LATENCY_MODELS[latency_model],
            wl.weight_storage_bytes,
            shape.mlp_in_share,
            1.0 if wl.count_prefill else 0.0,
            1.0 if wl.kv_in_capacity else 0.0,
            float(np.ravel(system.collective_dims)[0]),
            wl.units_per_layer,
        ],
        dtype=float,
    )
    assert s.shape == (len(SCALARS),)
    return (
        des,
        s,
        grid.multipliers.astype(float),
        grid.pp.astype(np.int64),
        grid.batches.astype(np.int64),
        grid.pair_batch.astype(np.int64),
        grid.pair_micro.astype(np.int64),
    )


def _run(args, sl, front_cost, front_lat):
    """Run the kernel on the designs ``sl``; return (design rows, mapping indices, costs,
    latencies) of the candidates, the cheapest cost per design and the status counts."""
    des, rest = np.ascontiguousarray(args[0][sl]), args[1:]
    n = des.shape[0]
    npoints = len(args[2]) * len(args[3]) * len(args[5])
    cand_j = np.empty((n, npoints), np.int64)  # touched only where written
    cand_c = np.empty((n, npoints))
    cand_l = np.empty((n, npoints))
    n_cand = np.zeros(n, np.int64)
    best = np.empty(n)
    counts = np.zeros((n, 3), np.int64)
    _chunk(des, *rest, front_cost, front_lat, cand_j, cand_c, cand_l, n_cand, best, counts)
    rows = np.repeat(np.arange(n), n_cand)
    cols = np.arange(rows.size) - np.repeat(np.cumsum(n_cand) - n_cand, n_cand)
    return rows, cand_j[rows, cols], cand_c[rows, cols], cand_l[rows, cols], best, counts


def evaluate_points(system, pricing, shape, wl, grid, nmin, max_servers, latency_model="isca24"):
    """Every feasible (design, mapping) point from the kernel (for tests and small tables):
    (design indices, mapping indices, USD per million tokens, latency per token), the cheapest
    cost of each design and the status counts (feasible, invalid mapping, does not fit)."""
    args = _args(
        system, pricing, shape, wl, grid, np.asarray(nmin, float), max_servers, latency_model
    )
    d, j, c, lat, best, counts = _run(args, slice(None), np.zeros(0), np.zeros(0))
    return d, j, c, lat, best, counts.sum(axis=0)


def merge_front(d, j, c, lat, nmap: int):
    """The Pareto front of points (design, mapping, cost, latency): ties keep the lowest
    (design, mapping) index, as :func:`chipletcloud.explore.pareto.pareto_mask` does; returned
    sorted by cost."""
    order = np.argsort(d * nmap + j, kind="stable")
    d, j, c, lat = d[order], j[order], c[order], lat[order]
    idx = np.flatnonzero(pareto_mask(c, lat))
    idx = idx[np.argsort(c[idx], kind="stable")]
    return d[idx], j[idx], c[idx], lat[idx]


def chunk_ranges(n: int, chunk: int, first: int = 16) -> list[tuple[int, int]]:
    """Design chunks: ``first`` designs, then doubling up to ``chunk``. Small first chunks build
    a running front early, so few points of the later chunks survive the filter (any partition
    gives the same front)."""
    out, lo, size = [], 0, max(1, min(first, chunk))
    while lo < n:
        out.append((lo, min(n, lo + size)))
        lo += size
        size = min(2 * size, max(1, chunk))
    return out


def front_with_costs(
    system, pricing, shape, wl, grid, nmin, max_servers, latency_model="isca24", chunk: int = 512
):
    """Run the kernel over all designs in chunks (:func:`chunk_ranges`), keeping a running global
    Pareto front.

    Each chunk returns only the points that the front of the chunks before it does not strictly
    dominate; they are merged into the front. Exact: a point of the final front is never strictly
    dominated by any front built along the way.

    Returns the front's (design indices, mapping indices, costs, latencies), the minimum USD per
    million tokens of every design and the status counts (feasible, invalid mapping, does not
    fit) as an array."""
    nd, nmap = len(system), grid.size
    args = _args(
        system, pricing, shape, wl, grid, np.asarray(nmin, float), max_servers, latency_model
    )
    best = np.full(nd, np.inf)
    counts = np.zeros(3, np.int64)
    f_d, f_j = np.zeros(0, np.int64), np.zeros(0, np.int64)
    f_c, f_l = np.zeros(0), np.zeros(0)
    for lo, hi in chunk_ranges(nd, chunk):
        sl = slice(lo, hi)
        d, j, c, lat, b, cnt = _run(args, sl, f_c, f_l)
        best[sl] = b
        counts += cnt.sum(axis=0)
        f_d, f_j, f_c, f_l = merge_front(
            np.concatenate([f_d, d + lo]),
            np.concatenate([f_j, j]),
            np.concatenate([f_c, c]),
            np.concatenate([f_l, lat]),
            nmap,
        )
    return f_d, f_j, f_c, f_l, best, counts


STATUS_NAMES = ("feasible", "invalid_mapping", "does_not_fit")


def search_fronts(
    system, pricing, shape, wl, grid, nmin, max_servers, latency_model="isca24", chunk: int = 512
):
    """:func:`front_with_costs` as (design indices, mapping indices) of the global front, the
    minimum USD per million tokens of every design and the status counts by name."""
    f_d, f_j, _, _, best, counts = front_with_costs(
        system, pricing, shape, wl, grid, nmin, max_servers, latency_model, chunk
    )
    return f_d, f_j, best, {k: int(v) for k, v in zip(STATUS_NAMES, counts, strict=True)}
