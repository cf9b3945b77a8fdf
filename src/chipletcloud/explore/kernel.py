"""The phase-2 search loop over (design x mapping), compiled with numba.

For every design of a chunk (designs in parallel) and every mapping of the grid, it evaluates the
point with the fast path of the inference model (:mod:`chipletcloud.perf.fast`, the numba twin of
:mod:`chipletcloud.perf.analytic`) and filters it against a running global Pareto front of (USD per
million tokens, latency per token), so only a handful of points ever leave the kernel. Designs are
processed in chunks (memory: chunk x mappings x 17 bytes).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from chipletcloud.explore.pareto import pareto_mask
from chipletcloud.perf import fast as pf
from chipletcloud.perf.codes import STATUS_NAMES


@njit(cache=True, parallel=True, fastmath=pf.FM)
def _chunk(
    des,
    s,
    mults,
    pps,
    splits,
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
    status counts per design (feasible, invalid mapping, does not fit). ``splits[a]`` (1 or 0)
    says whether pipeline entry ``a`` shards the KV cache by sequence (the grid's KV mode).
    """
    nd = des.shape[0]
    nb = batches.shape[0]
    npair = pair_b.shape[0]
    npp = pps.shape[0]
    nf = front_cost.shape[0]
    L, heads, kv_heads, kvv = s[pf.S_L], s[pf.S_H], s[pf.S_KV], s[pf.S_KVV]
    prompt, gen = s[pf.S_P], s[pf.S_G]
    c = s[pf.S_CDEC]  # mean KV tokens a decode step attends (windowed layers: their window)
    max_ctx = s[pf.S_CMAX]  # KV tokens a sequence holds at its end
    layer_p = s[pf.S_LAYERP]
    whole = s[pf.S_WHOLE]
    seq_fl, seq_kv1, seq_act = pf.per_sequence(s)
    pre_pairs = s[pf.S_PAIRS]  # a prompt's query-key pairs
    w_run = np.empty(nb)  # weight bytes of one micro-batch over the run, by micro-batch size
    for cc in range(nb):
        m = batches[cc]
        w_run[cc] = s[pf.S_CP] * pf.weights_per_pass(s, m * prompt) + (gen - s[pf.S_CP]) * (
            pf.weights_per_pass(s, m)
        )
    for i in prange(nd):
        dec = np.empty(nb)
        pre = np.empty(nb)
        f = des[i, pf.D_F] * des[i, pf.D_FEFF]
        bw = des[i, pf.D_BW] * des[i, pf.D_MEFF]
        side = pf.systolic_side(des[i, pf.D_F], des[i, pf.D_CLOCK])
        cps = des[i, pf.D_CPS]
        chip = (f, bw, side, des[i, pf.D_OVH], des[i, pf.D_AEFF])
        net = (
            cps,
            des[i, pf.D_CBW],
            des[i, pf.D_SBW],
            des[i, pf.D_NICS],
            des[i, pf.D_ALPHA],
            des[i, pf.D_NET],
            des[i, pf.D_SYNC],
            des[i, pf.D_TOPO],
            des[i, pf.D_DIMS],
            des[i, pf.D_ALGS],
            des[i, pf.D_PACKET],
            des[i, pf.D_RADIX],
            des[i, pf.D_TIER],
        )
        nc = 0
        n_ok = 0
        n_bad = 0
        n_full = 0
        bi = np.inf
        for kk in range(mults.shape[0]):
            n_srv = pf.servers_for(des[i, pf.D_NMIN], mults[kk])
            for a in range(npp):
                pp = float(pps[a])
                tp = pf.tensor_degree(n_srv, cps, pp)
                base = (kk * npp + a) * npair
                # whole heads a chip, unless attention is split by sequence (each chip then
                # computes every head of its own sequences)
                whole_a = s[pf.S_WHOLE] * (1.0 - float(splits[a]))
                if n_srv > s[pf.S_MAXS] or not pf.tensor_degree_valid(tp, heads, whole_a):
                    n_bad += npair
                    continue
                full, last = pf.balanced_stage_layers(
                    L, pp, s[pf.S_UNITS], s[pf.S_HEADL], s[pf.S_BAL]
                )
                r = pf.kv_split_chips(heads, kv_heads, tp, float(splits[a]))
                kvh = pf.chip_kv_heads(heads, kv_heads, tp, whole)
                kvh_read = pf.kv_read_heads_per_chip(heads, kv_heads, tp, s[pf.S_KVQ], whole, r)
                # batch sizes whose KV fits (KV grows with the batch: a prefix of ``batches``)
                nfit = 0
                for cc in range(nb):
                    seqs = pf.sequences_per_chip(float(batches[cc]), r)
                    kv_layer = pf.kv_bytes_per_chip(
                        1.0, seqs, max_ctx, kvv, kvh, s[pf.S_KVB], s[pf.S_KVCAP]
                    )
                    w_chip, kv_chip = pf.stage_memory(
                        full, last, layer_p, s[pf.S_HEADP], s[pf.S_HEADMM], s[pf.S_EMBED],
                        pp, tp, s[pf.S_WSTORE], kv_layer, s[pf.S_BAL],
                    )  # fmt: skip
                    if w_chip + kv_chip > des[i, pf.D_MEM]:
                        break
                    nfit += 1
                # stage times depend on the micro-batch only: once per micro-batch size
                mp = (full, last, tp, kvh_read, float(n_srv), pp, r)
                plan = pf.plan_collectives(net, float(n_srv), tp, pp)
                for cc in range(nfit):
                    m = float(batches[cc])
                    dec[cc] = pf.stage_s(s, chip, net, plan, mp, m, m * c, m * c, m, s[pf.S_SCD])
                    rows = m * prompt
                    pre[cc] = pf.stage_s(
                        s, chip, net, plan, mp, rows, m * pre_pairs, rows, m, s[pf.S_SCP]
                    )
                chips = pp * tp
                # replicated KV heads: each copy is read; split: each sequence on one chip of r
                seq_kv = seq_kv1 * kvh_read * tp / r
                for pi in range(npair):
                    B = float(pair_b[pi])
                    cc = pair_m[pi]
                    if nfit == 0 or B > batches[nfit - 1]:
                        n_full += npair - pi  # pairs are sorted by batch
                        break
                    cost, lat = pf.point_cost(
                        s,
                        des,
                        i,
                        n_srv,
                        pp,
                        chips,
                        B,
                        float(batches[cc]),
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


def _args(system, pricing, shape, wl, grid, nmin, max_servers, latency_model="isca24"):
    """The kernel's inputs: (design columns, scalars, grid axes)."""
    des, s = pf.pack(system, pricing, shape, wl, nmin, max_servers, latency_model)
    return (
        des,
        s,
        grid.multipliers.astype(float),
        grid.pp.astype(np.int64),
        grid.kv_split.astype(np.int64),
        grid.batches.astype(np.int64),
        grid.pair_batch.astype(np.int64),
        grid.pair_micro.astype(np.int64),
    )


def _run(args, sl, front_cost, front_lat):
    """Run the kernel on the designs ``sl``; return (design rows, mapping indices, costs,
    latencies) of the candidates, the cheapest cost per design and the status counts."""
    des, rest = np.ascontiguousarray(args[0][sl]), args[1:]
    n = des.shape[0]
    npoints = len(args[2]) * len(args[3]) * len(args[6])
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


def search_fronts(
    system, pricing, shape, wl, grid, nmin, max_servers, latency_model="isca24", chunk: int = 512
):
    """:func:`front_with_costs` as (design indices, mapping indices) of the global front, the
    minimum USD per million tokens of every design and the status counts by name."""
    f_d, f_j, _, _, best, counts = front_with_costs(
        system, pricing, shape, wl, grid, nmin, max_servers, latency_model, chunk
    )
    return f_d, f_j, best, {k: int(v) for k, v in zip(STATUS_NAMES, counts, strict=True)}
