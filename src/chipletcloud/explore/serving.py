"""The service-level search: the cheapest system and mapping that serves a workload at an SLO.

A *candidate* is a mapped system (a design or a device group, its servers, pipeline and tensor
degrees, KV mode) with its cost per second. The scheduler's max batch is not a search axis: a
larger cap never serves less at a given rate (its KV budget still binds, :mod:`chipletcloud.
perf.iteration`), so every candidate runs with the largest batch of the grid. For each candidate
the analytic serving model (:mod:`chipletcloud.perf.serving`) gives the highest arrival rate that
meets the SLO (its goodput, requests/s); its cost per million output tokens at that rate is
``usd_per_s / (rate x E[output tokens]) x 1e6``. The cost per second is the system's TCO over
its life (or a rented price) at the mean power of its full-batch mapping, the same rule for every
system (docs/serving.md#what-a-candidate-costs).

Interactivity bands: a band of ``X`` tokens/s per user (1 / the mean time per output token)
adds ``mean TPOT <= 1 / X`` to the SLO. Both limits fall as the rate rises, so a candidate's best
rate in a band is the smaller of its SLO rate and its band rate.

Chiplet Cloud candidates are phase 2's designs on the static front plus the designs with the
lowest static cost (``max_designs`` in all), each with every server multiplier, pipeline degree
and KV mode of the mapping grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from chipletcloud.models.slo import Slo
from chipletcloud.perf import formulas as fm
from chipletcloud.perf.iteration import IterationCosts, LengthStats, iteration_costs
from chipletcloud.perf.serving import ServingModel

#: Interactivity bands, output tokens/s per user (issue 15; the market's reading).
BANDS = (10, 25, 50, 100, 200, 500, 1000)


@dataclass
class Candidates:
    """Mapped systems of one kind (``system``: "chiplet-cloud", "a100-80gb-rented", ...):
    their machines, cost per second and a description of each (a dict of mapping columns)."""

    system: str
    costs: IterationCosts
    usd_per_s: np.ndarray
    columns: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.usd_per_s)

    def describe(self, i: int) -> dict:
        out = {}
        for k, v in self.columns.items():
            x = v[i]
            out[k] = int(x) if float(x).is_integer() else float(x)
        return out


def usd_per_million(usd_per_s, rate, mean_g):
    """USD per million output tokens at ``rate`` requests/s of ``mean_g`` tokens (inf at 0):
    :func:`chipletcloud.perf.formulas.usd_per_million_tokens` of one system at its price a
    second."""
    with np.errstate(divide="ignore", invalid="ignore"):
        cost = fm.usd_per_million_tokens(1.0, usd_per_s, 1.0, rate * mean_g)
    return np.where(rate > 0, cost, np.inf)


@dataclass
class ServingAnswer:
    """One candidate set's answer: goodput and cost per candidate, the best one, and the
    cheapest cost per band (inf where out of reach)."""

    system: str
    rate: np.ndarray
    usd_per_million_tokens: np.ndarray
    tokens_per_s_per_user: np.ndarray
    best: dict | None
    bands: dict[int, float]
    band_points: dict[int, dict | None]
    best_achievable: dict


def serve(
    cands: Candidates,
    stats: LengthStats,
    slo: Slo,
    bands=BANDS,
    chunk_tokens: int | None = None,
    prices: dict[str, np.ndarray] | None = None,
) -> dict[str, ServingAnswer]:
    """The SLO search over ``cands`` (module docstring), priced at ``prices`` (system name ->
    USD per second of each candidate; default ``{cands.system: cands.usd_per_s}``): the rates
    are searched once, whatever the prices."""
    prices = prices or {cands.system: cands.usd_per_s}
    if not len(cands):
        inf = {x: float("inf") for x in bands}
        z = np.zeros(0)
        return {
            k: ServingAnswer(k, z, z, z, None, dict(inf), dict.fromkeys(bands), {}) for k in prices
        }
    model = ServingModel(cands.costs, stats, chunk_tokens)
    mean_g = model.w.mean_g
    rate, at = model.max_rate(slo)
    tpu = np.where(rate > 0, 1.0 / at["tpot_mean_s"], 0.0)
    # the best each metric of the SLO achieves at the lightest load (for "nobody can meet it")
    light = model.metrics(model.rate_sat * 1e-6)
    achievable = {}
    for (metric, pct), _ in slo.limits:
        key = f"{metric}_p{pct}_s"
        v = np.where(model.ok, light[key], np.inf)
        achievable[key] = float(v.min())
    by_band = {}
    for x in bands:  # a band: mean TPOT <= 1 / x on top of the SLO (the smaller rate)
        r_x = model.max_rate_interval(1.0 / x)
        r_b = np.where((rate > 0) & (r_x > 0), np.minimum(rate, r_x), 0.0)
        by_band[x] = (r_b, _LazyMetrics(model, r_b))
    out = {}
    for name, usd_s in prices.items():
        view = Candidates(name, cands.costs, np.asarray(usd_s, float), cands.columns)
        cost = usd_per_million(view.usd_per_s, rate, mean_g)
        best = _cheapest(view, rate, cost, at)
        band_cost, band_pts = {}, {}
        for x, (r_band, at_b) in by_band.items():
            c = usd_per_million(view.usd_per_s, r_band, mean_g)
            band_pts[x] = _cheapest(view, r_band, c, at_b)
            band_cost[x] = band_pts[x]["usd_per_million_tokens"] if band_pts[x] else float("inf")
        out[name] = ServingAnswer(name, rate, cost, tpu, best, band_cost, band_pts, achievable)
    return out


class _LazyMetrics:
    """The metrics of a model's points at given rates, computed for a point when first asked
    (a band needs them for its cheapest point per price only)."""

    def __init__(self, model: ServingModel, rate: np.ndarray):
        self.model, self.rate, self.cache = model, rate, {}

    def row(self, i: int) -> dict:
        if i not in self.cache:
            sub = self.model.subset(np.array([i]))
            r = self.rate[i] if self.rate[i] > 0 else self.model.rate_sat[i] * 1e-6
            self.cache[i] = {k: np.asarray(v)[0] for k, v in sub.metrics(np.array([r])).items()}
        return self.cache[i]


def _cheapest(cands: Candidates, rate, cost, at) -> dict | None:
    if not np.isfinite(cost).any():
        return None
    i = int(np.nanargmin(np.where(np.isfinite(cost), cost, np.nan)))
    return _point(cands, i, rate, cost, at)


def _point(cands: Candidates, i: int, rate, cost, at) -> dict:
    if isinstance(at, _LazyMetrics):
        one = at.row(i)
        at = {k: np.full(i + 1, v) for k, v in one.items()}
    out = {
        "system": cands.system,
        "usd_per_million_tokens": float(cost[i]),
        "goodput_requests_per_s": float(rate[i]),
        "output_tokens_per_s": float(at["output_tokens_per_s"][i]),
        "tokens_per_s_per_user": float(1.0 / at["tpot_mean_s"][i]),
        "usd_per_hour": float(cands.usd_per_s[i] * 3600.0),
        "max_running_sequences": int(at["max_batch"][i]),
    }
    for k in ("ttft_p50_s", "ttft_p99_s", "tpot_p50_s", "tpot_p99_s", "e2e_p99_s"):
        out[k] = float(at[k][i])
    out["mapping"] = cands.describe(i)
    return out


# -- Chiplet Cloud candidates ----------------------------------------------------------------
def asic_candidates(result, inp, stats: LengthStats, max_designs: int = 12) -> Candidates:
    """Chiplet Cloud candidates of one model: ``result`` (:class:`software.ModelResult`) picks
    the designs, ``inp`` (:class:`software.SearchInputs`) gives the grid and the prices."""
    from chipletcloud.explore.software import INVALID_MAPPING

    grid = inp.grid
    front_d = np.unique(np.asarray(result.front["design"], np.int64))
    best = np.asarray(result.best_per_design)
    order = np.argsort(best)
    order = order[np.isfinite(best[order])]
    designs = list(dict.fromkeys([*front_d.tolist(), *order.tolist()]))[:max_designs]
    if not designs:
        return _empty("chiplet-cloud")
    bmax = int(grid.batches.max())
    nk, npp = len(grid.multipliers), len(grid.pp)
    # per pipeline degree, the pair (bmax, micro) whose micro-batch count is closest to pp
    pair_for = []
    for pp in grid.pp:
        want = max(1, int(np.ceil(bmax / min(int(pp), bmax))))
        cands = [
            c
            for c in range(len(grid.pair_batch))
            if grid.pair_batch[c] == bmax and grid.batches[grid.pair_micro[c]] >= want
        ]
        pair_for.append(min(cands, key=lambda c: grid.batches[grid.pair_micro[c]]))
    npair = len(grid.pair_batch)
    k, a = np.meshgrid(np.arange(nk), np.arange(npp), indexing="ij")
    mapping = (k.ravel() * npp + a.ravel()) * npair + np.asarray(pair_for)[a.ravel()]
    d = np.repeat(np.asarray(designs, np.int64), len(mapping))
    j = np.tile(mapping, len(designs))
    pts = inp.reference(d, j)
    keep = (pts["status"] != INVALID_MAPPING) & np.isfinite(pts["servers"])
    idx = np.flatnonzero(keep)
    if not len(idx):
        return _empty("chiplet-cloud")
    sys_rows = inp.system.take(d[idx])
    costs = iteration_costs(
        sys_rows,
        inp.shape,
        inp.wl,
        stats,
        servers=pts["servers"][idx],
        pp=pts["pp"][idx],
        tp=pts["tp"][idx],
        kv_split=inp.grid.split_of(j[idx]),
        max_batch=np.full(len(idx), bmax, float),
        latency_model=inp.latency_model,
    )
    usd_s = pts["system_tco_usd"][idx] / inp.pricing.life_s
    cols = {
        "design": d[idx],
        "servers": pts["servers"][idx],
        "chips": pts["chips"][idx],
        "tp": pts["tp"][idx],
        "pp": pts["pp"][idx],
        "kv_split": inp.grid.split_of(j[idx]),
    }
    ok = costs.feasible
    return Candidates(
        "chiplet-cloud",
        costs.take(np.flatnonzero(ok)),
        usd_s[ok],
        {c: v[ok] for c, v in cols.items()},
    )


def _empty(system: str) -> Candidates:
    z = np.zeros(0)
    costs = IterationCosts(
        batch_grid=np.array([1.0, 2.0]),
        decode_s=np.zeros((0, 2)),
        token_grid=np.array([1.0, 2.0]),
        prefill_stage_s=np.zeros((0, 2)),
        pp=z,
        request_overhead_s=z,
        max_batch=z,
        kv_tokens=z,
        feasible=np.zeros(0, bool),
    )
    return Candidates(system, costs, z, {})


def serve_models(run, specs, request_workload, slo: Slo) -> dict:
    """The SLO search for every model of a phase-2 ``run`` (:class:`software.EvaluationRun`):
    per model the cheapest design and mapping meeting ``slo`` (``best``, None when no design
    does, with ``best_achievable``) and the cheapest cost per interactivity band. The workload
    is ``request_workload`` or the preset's fixed request; ``specs`` are the run's model
    specs (matched to its results by name)."""
    from chipletcloud.explore import software
    from chipletcloud.models.requests import preset_workload

    rw = request_workload or preset_workload(run.params)
    stats = LengthStats.of(rw)
    by_name = {s.name: s for s in specs}
    models = {}
    for res in run.results:
        spec = by_name[res.model]
        p = software.params_for(spec, run.params)
        inp = software.search_inputs(run.table, spec, p)
        a = serve(asic_candidates(res, inp, stats), stats, slo)["chiplet-cloud"]
        models[res.model] = {
            "best": a.best,
            "best_achievable": a.best_achievable,
            "bands": [
                {"tokens_per_s_per_user": x, "usd_per_million_tokens": finite_or_none(a.bands[x])}
                for x in a.bands
            ],
        }
    return {"workload": rw.describe(), "slo": slo.describe(), "models": models}


def finite_or_none(x: float) -> float | None:
    """``x`` as a float, None when infinite (a band out of reach, in JSON)."""
    return float(x) if np.isfinite(x) else None
