"""The design studies of the Chiplet Cloud paper, recomputed with this project's models.

Conventions: ``table`` is a phase-1 servers table (dict of arrays); ``results`` maps a model name
to ``(spec, ModelResult)`` from :func:`chipletcloud.explore.software.search`. Studies that sweep
many variants (batch, sparsity, sensitivity) search a model's ``k`` cheapest designs (by each
design's own optimum in the dense run) rather than the whole table, which is stated in their
output as ``designs_searched``; the die-size and design-choice studies search everything.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from importlib import resources

import numpy as np

from chipletcloud.config import Params, load_card
from chipletcloud.explore import kernel, software
from chipletcloud.explore.hardware import REASONS, enumerate_space, evaluate_servers
from chipletcloud.models import cost, tco
from chipletcloud.perf import formulas as fm

DATA = resources.files("chipletcloud") / "data" / "studies"


def subset(table: dict[str, np.ndarray], idx) -> dict[str, np.ndarray]:
    return {k: np.asarray(v)[idx] for k, v in table.items()}


def top_designs(result: software.ModelResult, k: int) -> np.ndarray:
    """Row indices of the ``k`` designs with the lowest own-optimum cost (finite only)."""
    best = result.best_per_design
    ok = np.flatnonzero(np.isfinite(best))
    return np.sort(ok[np.argsort(best[ok], kind="stable")[:k]])


def tco_split(card: dict, params: Params) -> tuple[float, float]:
    """(capital, operating) USD per million tokens of a design card: server price, its interest
    and the NRE share vs server opex, datacenter, electricity and PUE (docs/tco.md). Under
    ``power_source = tdp_capacity`` the datacentre is charged at the card's provisioned power and
    the electricity at its mean power, as the search priced it."""
    servers = card["servers"]
    energy_w = card["power_w"] / servers
    capacity_w = energy_w
    if params.choices.power_source == "tdp_capacity" and "provisioned_w" in card:
        capacity_w = card["provisioned_w"] / servers
    parts = tco.server_tco_breakdown(
        card["server_cost_usd"], capacity_w, params=params.tco, energy_power_w=energy_w
    )
    thr = card["throughput_tokens_per_s"]
    per = fm.usd_per_million_tokens(servers, 1.0, tco.server_life_s(params.tco), thr)
    nre = card.get("nre_usd_per_million_tokens", 0.0)
    capital = float(parts["capex"] + parts["interest"]) * per + nre
    operating = (
        float(parts["opex"] + parts["datacenter"] + parts["electricity"] + parts["pue_overhead"])
        * per
    )
    return capital, operating


# --------------------------------------------------------------------------------- die size


def die_size_study(table, spec, params: Params, edges=tuple(range(0, 801, 100))) -> dict:
    """Minimum TCO per token of ``spec`` per die-size bin, split into capital and operating
    cost, with the latency-optimal design of each bin (the paper: optimum at 100-200 mm2)."""
    bins = []
    area = table["die_area_mm2"]
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        idx = np.flatnonzero((area > lo) & (area <= hi))
        if idx.size == 0:
            continue
        sub = subset(table, idx)
        res = software.search(sub, spec, params)
        tco_card, lat_card = res.card("tco", sub), res.card("latency", sub)
        if tco_card is None:
            continue
        capital, operating = tco_split(tco_card, params)
        bins.append(
            {
                "lo_mm2": lo,
                "hi_mm2": hi,
                "designs": int(idx.size),
                "usd_per_million_tokens": tco_card["usd_per_million_tokens"],
                "capex_usd_per_million_tokens": capital,
                "opex_usd_per_million_tokens": operating,
                "die_area_mm2": tco_card["die_area_mm2"],
                "latency_s_per_token": tco_card["latency_s_per_token"],
                "latency_opt_s_per_token": lat_card["latency_s_per_token"],
                "latency_opt_usd_per_million_tokens": lat_card["usd_per_million_tokens"],
            }
        )
    best = min(bins, key=lambda b: b["usd_per_million_tokens"]) if bins else None
    return {
        "model": spec.name,
        "bins": bins,
        "optimum_mm2": [best["lo_mm2"], best["hi_mm2"]] if best else None,
        "optimum_die_area_mm2": best["die_area_mm2"] if best else None,
    }


# --------------------------------------------------------------------------------- batch


def _kernel_points(table, spec, params):
    """Every feasible (design, mapping) point from the numba kernel: design, mapping, cost,
    latency, and the grid to decode the mapping."""
    inp = software.search_inputs(table, spec, params)
    d, j, c, lat, _, _ = kernel.evaluate_points(*inp.kernel_args())
    grid = inp.grid
    return d, j, c, lat, grid


def batch_study(table, results: dict, params: Params, k: int = 128) -> dict:
    """TCO per token against the batch for each model (cheapest point of each batch over the
    model's ``k`` best designs), optimum marked."""
    rows, optimum = [], {}
    for name, (spec, res) in results.items():
        sub = subset(table, top_designs(res, k))
        if len(sub["server_id"]) == 0:
            continue
        _, j, c, lat, grid = _kernel_points(sub, spec, params)
        _, _, b, _ = grid.decode(j)
        for batch in grid.batches:
            sel = np.flatnonzero(b == batch)
            if sel.size == 0:
                continue
            i = sel[np.argmin(c[sel])]
            rows.append(
                {
                    "model": name,
                    "batch": int(batch),
                    "usd_per_million_tokens": float(c[i]),
                    "latency_s_per_token": float(lat[i]),
                }
            )
        mine = [r for r in rows if r["model"] == name]
        if mine:
            optimum[name] = min(mine, key=lambda r: r["usd_per_million_tokens"])["batch"]
    return {"rows": rows, "optimum": optimum, "designs_searched": k}


# --------------------------------------------------------------------------------- pipeline


def pipeline_study(
    table, results: dict, params: Params, models=("gpt3", "llama2-70b"), batches=(16, None)
) -> dict:
    """TCO per token and FLOP utilisation against the pipeline degree, on each model's
    TCO-optimal design, at two batches (16 and the optimum's own)."""
    rows = []
    for name in models:
        if name not in results:
            continue
        spec, res = results[name]
        card = res.card("tco", table)
        if card is None:
            continue
        d = int(np.flatnonzero(table["server_id"] == card["server_id"])[0])
        inp = software.search_inputs(table, spec, params)
        grid = inp.grid
        pts = inp.reference(np.full(grid.size, d), np.arange(grid.size))
        for batch in [b if b is not None else card["batch"] for b in batches]:
            for pp in grid.pp:
                sel = np.flatnonzero(
                    (pts["status"] == 0) & (pts["batch"] == batch) & (pts["pp"] == pp)
                )
                if sel.size == 0:
                    continue
                i = sel[np.argmin(pts["usd_per_million_tokens"][sel])]
                rows.append(
                    {
                        "model": name,
                        "batch": int(batch),
                        "pp": int(pp),
                        "usd_per_million_tokens": float(pts["usd_per_million_tokens"][i]),
                        "utilisation": float(pts["flop_utilisation"][i]),
                        "latency_s_per_token": float(pts["tpot_s"][i]),
                    }
                )
    return {"rows": rows}


# --------------------------------------------------------------------------------- design choice


def _hbm_designs(params: Params) -> list[tuple[str, object, dict]]:
    from chipletcloud.baselines.devices import DeviceCard

    raw = json.loads((DATA / "design_choice.json").read_text())
    out = []
    t = params.tech
    for name, entry in raw.items():
        if name == "note":
            continue
        card = DeviceCard.model_validate(entry["device"])
        fab = {k: v["value"] for k, v in entry["fabricated"].items()}
        fab["die_cost_usd"] = float(cost.die_cost_from_tech(card.value("die_area_mm2"), t))
        out.append((name, card, fab))
    return out


def design_choice_study(table, results: dict, params: Params, big_die_mm2: float = 700.0) -> dict:
    """Normalised TCO per token of SRAM chiplets (the optimum), SRAM dies over ``big_die_mm2``,
    an HBM large chip (A100-like) and HBM small chiplets, per model and as a geometric mean
    (docs/baselines.md [A1]). HBM designs are built in-house and priced with the same TCO model;
    their mapping is searched with the same simulator."""
    from chipletcloud.baselines.compare import (
        baseline_search,
        best_mapping,
        fabricated_usd_per_device_s,
    )

    rows = []
    designs = _hbm_designs(params)
    big = np.flatnonzero(table["die_area_mm2"] > big_die_mm2)
    wl = software.workload(params.preset.workload)
    for name, (spec, res) in results.items():
        card = res.card("tco", table)
        if card is None:
            continue
        base = card["usd_per_million_tokens"]
        rows.append(
            {
                "model": name,
                "design": "sram_chiplets",
                "usd_per_million_tokens": base,
                "normalised": 1.0,
            }
        )
        if big.size:
            sub = subset(table, big)
            c = software.search(sub, spec, params).card("tco", sub)
            if c is not None:
                rows.append(
                    {
                        "model": name,
                        "design": f"sram_over_{int(big_die_mm2)}mm2",
                        "usd_per_million_tokens": c["usd_per_million_tokens"],
                        "normalised": c["usd_per_million_tokens"] / base,
                    }
                )
        for dname, dcard, fab in designs:
            pts = baseline_search(dcard, res.shape, wl, params.preset.search.batch_sizes)
            best = best_mapping(pts, fabricated_usd_per_device_s(dcard, fab, params, pts))
            if best is not None:
                rows.append(
                    {
                        "model": name,
                        "design": dname.replace("-", "_"),
                        "usd_per_million_tokens": best["usd_per_million_tokens"],
                        "normalised": best["usd_per_million_tokens"] / base,
                    }
                )
    geomean = {}
    for d in sorted({r["design"] for r in rows}):
        vals = [r["normalised"] for r in rows if r["design"] == d]
        geomean[d] = float(np.exp(np.mean(np.log(vals))))
    return {"rows": rows, "geomean": geomean}


# --------------------------------------------------------------------------------- NRE


def traffic_markers() -> dict[str, float]:
    """Tokens per second of ChatGPT-, Bing- and Google-scale traffic (data/studies/traffic.yaml)."""
    c = {k: q.value for k, q in load_card("studies", "traffic").items()}
    tok = c["tokens_per_answer"]
    day, week = 86400.0, 7 * 86400.0
    return {
        "ChatGPT": c["chatgpt_weekly_users"] * c["chatgpt_answers_per_user_week"] * tok / week,
        "Bing": c["bing_daily_users"] * c["bing_queries_per_user"] * tok / day,
        "Google": c["google_searches_per_day"] * tok / day,
    }


def nre_study(
    card: dict, rented_usd_per_million_tokens: float, params: Params, nre_usd: float | None = None
) -> dict:
    """Cost per 1K tokens against the served rate: Chiplet Cloud pays the NRE over the server
    life plus whole systems (each one of ``card``); rented A100s cost the same per token at every
    rate. Break-even: the lowest rate where Chiplet Cloud is cheaper (docs/baselines.md [A1]:
    $35M tape-out, v1 break-even near 46,000 GPT-3 tokens/s).

    The NRE is the preset's NRE card total (data/nre/*.yaml; ``nre_usd`` overrides it), the same
    number ``include_nre`` amortises in the TCO; the card's cost is taken without its own NRE
    share (``nre_usd_per_million_tokens``) so the NRE is counted once. The deployment the TCO
    term assumes, ``tco.deployment_servers``, is marked on the curve: the rate it serves
    (``deployment_tokens_per_s`` = deployment servers / servers a system x the system's rate)
    and the cost there, which equals the card's cost with its NRE share when the deployment is
    a whole number of systems (docs/tco.md#nre)."""
    from chipletcloud.explore.software import nre_params

    if nre_usd is None:
        nre_usd = nre_params(params).total_usd
    life_s = tco.server_life_s(params.tco)
    thr = card["throughput_tokens_per_s"]
    own_nre = card.get("nre_usd_per_million_tokens", 0.0)
    system_tco = (card["usd_per_million_tokens"] - own_nre) / 1e6 * thr * life_s
    rented = rented_usd_per_million_tokens / 1e3

    def cc(rate):
        systems = np.ceil(rate / thr)
        return (nre_usd + systems * system_tco) / (rate * life_s) * 1e3

    rates = np.logspace(2, 9, 141)
    curve = [
        {
            "tokens_per_s": float(r),
            "chiplet_cloud_usd_per_1k_tokens": float(cc(r)),
            "rented_a100_usd_per_1k_tokens": rented,
        }
        for r in rates
    ]
    fine = np.logspace(2, 10, 4001)
    cheaper = fine[cc(fine) <= rented]
    deploy = params.tco.deployment_servers / card["servers"] * thr
    return {
        "nre_usd": nre_usd,
        "system_tokens_per_s": thr,
        "breakeven_tokens_per_s": float(cheaper[0]) if cheaper.size else None,
        "deployment_servers": params.tco.deployment_servers,
        "deployment_tokens_per_s": float(deploy),
        "deployment_usd_per_1k_tokens": float(cc(deploy)),
        "curve": curve,
        "markers": traffic_markers(),
    }


# --------------------------------------------------------------------------------- sensitivity


def _vary(params: Params, group: str, fields: tuple[str, ...], factor: float) -> Params:
    model = getattr(params, group)
    update = {f: getattr(model, f) * factor for f in fields}
    return replace(params, **{group: model.model_copy(update=update)})


SENSITIVITY = (
    ("wafer cost", "tech", ("wafer_cost_usd",), 0.75, 1.25),
    ("defect density", "tech", ("defect_density_per_mm2",), 0.75, 1.25),
    ("electricity price", "tco", ("electricity_usd_per_kwh",), 0.75, 1.25),
    ("PUE", "tco", ("pue",), 1.1 / 1.5, 1.25),
    ("server life", "tco", ("server_life_years",), 0.75, 1.25),
    ("interest rate", "tco", ("interest_rate_per_year",), 0.75, 1.25),
    ("MAC density (mm2/TFLOPS)", "tech", ("mac_density_mm2_per_tflops",), 0.75, 1.25),
    (
        "SRAM density (mm2/MB)",
        "tech",
        ("sram_capacity_mm2_per_mib", "sram_crossbar_mm2_per_kbit2", "sram_density_mm2_per_mb"),
        0.75,
        1.25,
    ),
)


def _reevaluate(space, server_ids: np.ndarray, params: Params) -> dict:
    """Phase 1 again, under ``params``, for the given candidates only; valid ones kept."""
    cand = {k: v[server_ids] for k, v in enumerate_space(space).items()}
    cols = evaluate_servers(cand, params)
    ok = np.all([cols[f"ok_{r}"] for r in REASONS], axis=0)
    cols["server_id"] = server_ids
    return {k: v[ok] for k, v in cols.items() if not k.startswith("ok_")}


def sensitivity_study(space, table, spec, result, params: Params, k: int = 256) -> dict:
    """TCO per token of ``spec``'s optimum with each parameter at its low and high value (the
    hardware re-evaluated and the mapping re-searched, over the model's ``k`` best designs).
    Ranges: +-25%, PUE from 1.1 (hyperscale fleets) to 1.875."""
    ids = table["server_id"][top_designs(result, k)]
    base_tab = _reevaluate(space, ids, params)
    base = software.search(base_tab, spec, params).card("tco", base_tab)
    rows = []
    for label, group, fields, lo, hi in SENSITIVITY:
        vals = []
        for factor in (lo, hi):
            p = _vary(params, group, fields, factor)
            tab = _reevaluate(space, ids, p)
            c = software.search(tab, spec, p).card("tco", tab) if len(tab["server_id"]) else None
            vals.append(c["usd_per_million_tokens"] if c else math.inf)
        rows.append(
            {
                "parameter": label,
                "low_label": f"x{lo:.2f}",
                "high_label": f"x{hi:.2f}",
                "low_usd_per_million_tokens": vals[0],
                "high_usd_per_million_tokens": vals[1],
            }
        )
    rows.sort(
        key=lambda r: -abs(r["high_usd_per_million_tokens"] - r["low_usd_per_million_tokens"])
    )
    return {
        "model": spec.name,
        "base_usd_per_million_tokens": base["usd_per_million_tokens"],
        "rows": rows,
        "designs_searched": int(len(ids)),
    }


# --------------------------------------------------------------------------------- sparsity


SPARSITY_LEVELS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def _reach_dense_servers(params: Params) -> Params:
    """``params`` with its server multipliers extended by the multipliers / the weight storage
    ratio of its workload (capped at 1000), so a sparse search reaches the dense server counts."""
    ratio = software.workload(params.preset.workload).weight_storage_ratio
    srch = params.preset.search
    if ratio >= 1.0:
        return params
    mults = sorted(
        {*srch.server_multipliers, *(min(m / ratio, 1000.0) for m in srch.server_multipliers)}
    )
    search = srch.model_copy(update={"server_multipliers": mults})
    return replace(params, preset=params.preset.model_copy(update={"search": search}))


def sparsity_sweep(
    table,
    results: dict,
    params: Params,
    k: int = 64,
    levels=SPARSITY_LEVELS,
) -> list[dict]:
    """TCO per token against weight sparsity (0..90%) for each model and format, over the
    model's ``k`` best dense designs: weights stored compressed, loaded dense. Compressed weights
    shrink the capacity minimum of servers by the storage ratio, so each sparse search also tries
    the preset's server multipliers divided by that ratio: the server counts the dense search
    tried stay in reach (otherwise a dense optimum at 4x its minimum, 96 GPT-3 servers, is out of
    a 60%-sparse grid that stops at 8 x 4)."""
    rows = []
    for name, (spec, res) in results.items():
        sub = subset(table, top_designs(res, k))
        if len(sub["server_id"]) == 0:
            continue
        dense_card = software.search(sub, spec, params).card("tco", sub)
        if dense_card is None:
            continue
        dense = dense_card["usd_per_million_tokens"]
        plan = [("value_index", s) for s in levels] + [("bitmask", s) for s in levels]
        plan.append(("nm24", 0.5))
        dense_nmin = software.search_inputs(sub, spec, params).nmin
        for fmt, s in plan:
            p = _reach_dense_servers(params.with_workload(sparsity=s, sparse_format=fmt))
            # the sparse model's own server counts, and exactly the dense search's ones (the
            # dense capacity minimum times the multipliers): compression never loses a mapping
            cards = [
                software.search(sub, spec, p).card("tco", sub),
                software.search(sub, spec, p, nmin=dense_nmin).card("tco", sub),
            ]
            cards = [x for x in cards if x is not None]
            if not cards:
                continue
            c = min(cards, key=lambda x: (x["usd_per_million_tokens"], x["latency_s_per_token"]))
            rows.append(
                {
                    "model": name,
                    "sparse_format": fmt,
                    "sparsity": s,
                    "usd_per_million_tokens": c["usd_per_million_tokens"],
                    "relative_to_dense": c["usd_per_million_tokens"] / dense,
                }
            )
    return rows


# --------------------------------------------------------------------------------- hop latency

#: Chip-to-chip hop latencies the hop-latency study sweeps (s): 10 ns to 2 us.
HOP_LATENCIES_S = (1e-8, 1e-7, 3e-7, 1e-6, 2e-6)
#: Models of the hop-latency study (issue: GPT-3, Llama-2-70B, PaLM).
HOP_LATENCY_MODELS = ("gpt3", "llama2-70b", "palm")
#: A pruning bound's relative slack: the bound (a design card, from the numpy reference) and the
#: best cost per design (from the numba search) may differ in the last bits, and under a latency
#: the preset's model ignores (v1 times no operation latency) they are the same cost, which
#: must not prune the optimum away
_BOUND_SLACK = 1.0 + 1e-9


def _optimum_row(res, table, **extra) -> dict | None:
    card = res.card("tco", table)
    if card is None:
        return None
    return {
        **extra,
        "die_area_mm2": card["die_area_mm2"],
        "chips_per_server": card["chips_per_server"],
        "servers": card["servers"],
        "tp": card["tp"],
        "pp": card["pp"],
        "batch": card["batch"],
        "usd_per_million_tokens": card["usd_per_million_tokens"],
        "ms_per_token": card["latency_s_per_token"] * 1e3,
        "allreduce_share": card["decode_breakdown_share"].get("allreduce", 0.0),
    }


def hop_latency_study(
    table,
    specs: dict,
    params: Params,
    hops_s=HOP_LATENCIES_S,
    op_latency_s: float | None = None,
    results: dict | None = None,
) -> dict:
    """The TCO-optimal design of each model (``specs``: name -> ModelSpec) with the chip-to-chip
    hop latency set to each of ``hops_s`` (everything else as in ``params``) and at the preset's
    own hop latency (taken from ``results``, name -> (spec, ModelResult) of the same table and
    parameters, when given). With ``op_latency_s``, one more row a model: the preset's hop
    latency and that fixed latency for every on-chip operation (the measured SRAM machines'
    latency set).

    Exact over the whole table, searched in full only at the shortest and the longest hop: a
    slower hop never makes a point cheaper, so a design whose own optimum at the shortest hop
    costs more than the optimum at the longest cannot be optimal at any hop between, and the
    other hops search only the remaining designs; likewise the operation-latency row searches
    the designs whose optimum without it is below an upper bound of its optimum (``designs``
    in each row)."""
    default = params.link.chip_hop_latency_s
    n = len(table["server_id"])
    hops = sorted({*hops_s, default})
    rows = []

    def run(t, spec, p, hop, op=None):
        t = dict(t)
        t["hop_latency_s"] = np.full(len(t["server_id"]), hop)
        if op is not None:
            t["op_overhead_s"] = np.full(len(t["server_id"]), op)
        return software.search(t, spec, p), t

    for name, spec in specs.items():
        p = software.params_for(spec, params)
        done = {}
        if results and name in results:
            done[default] = (results[name][1], table, n)
        lo, hi = hops[0], hops[-1]
        for h in (lo, hi):
            if h not in done:
                res, t = run(table, spec, p, h)
                done[h] = (res, t, n)
        lo_best = done[lo][0].best_per_design
        hi_card = done[hi][0].card("tco", done[hi][1])
        bound = hi_card["usd_per_million_tokens"] if hi_card else np.inf
        keep = np.flatnonzero(lo_best <= bound * _BOUND_SLACK)
        sub = subset(table, keep)
        for h in hops:
            if h not in done:
                res, t = run(sub, spec, p, h)
                done[h] = (res, t, len(keep))
            res, t, searched = done[h]
            row = _optimum_row(
                res,
                t,
                model=name,
                hop_latency_s=h,
                preset_default=bool(h == default),
                op_latency_s=0.0,
                designs=searched,
            )
            if row is not None:
                rows.append(row)
        if op_latency_s is None:
            continue
        base = results[name][1] if results and name in results else run(table, spec, p, default)[0]
        top = np.argsort(base.best_per_design, kind="stable")[:64]
        first, t_top = run(subset(table, top), spec, p, default, op_latency_s)
        ub = first.card("tco", t_top)
        bound = ub["usd_per_million_tokens"] if ub else np.inf
        keep = np.flatnonzero(base.best_per_design <= bound * _BOUND_SLACK)
        res, t = run(subset(table, keep), spec, p, default, op_latency_s)
        row = _optimum_row(
            res,
            t,
            model=name,
            hop_latency_s=default,
            preset_default=True,
            op_latency_s=op_latency_s,
            designs=len(keep),
        )
        if row is not None:
            rows.append(row)
    return {
        "models": list(specs),
        "hop_latencies_s": hops,
        "default_hop_latency_s": default,
        "server_hop_latency_s": params.link.server_hop_latency_s,
        "collective_sync_s": params.link.collective_sync_s,
        "designs": n,
        "rows": rows,
    }
