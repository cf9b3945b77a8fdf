"""GPU and TPU candidates for the service-level search (:mod:`chipletcloud.explore.serving`).

Every device count, tensor and pipeline degree and KV mode of :func:`chipletcloud.baselines.
compare.baseline_search`'s grid, with the largest batch of the grid as the scheduler's cap (the KV
budget binds below it), priced two ways as in the static comparison: rented (devices x the price
card's USD per device-hour) and fabricated (devices x the in-house TCO per second at the
full-batch mapping's mean power, :func:`chipletcloud.baselines.compare.
fabricated_usd_per_device_s`).
"""

from __future__ import annotations

import numpy as np

from chipletcloud.baselines.compare import baseline_search, fabricated_usd_per_device_s
from chipletcloud.baselines.devices import load_device, load_prices
from chipletcloud.baselines.hbm import device_system
from chipletcloud.config import Params
from chipletcloud.explore.serving import Candidates
from chipletcloud.perf.iteration import LengthStats, iteration_costs
from chipletcloud.perf.workload import LayerShape, Workload


def device_candidates(
    name: str, shape: LayerShape, wl: Workload, params: Params, stats: LengthStats
) -> tuple[Candidates, dict[str, np.ndarray]] | None:
    """One device's candidates and their prices per second, ``{"<name>-rented": ...,
    "<name>-fabricated": ...}`` (module docstring); None when no mapping holds the model."""
    card, prices = load_device(name), load_prices(name)
    batches = params.preset.search.batch_sizes
    bmax = max(batches)
    pts = baseline_search(card, shape, wl, [bmax])
    if not len(pts["devices"]):
        return None
    # one row per (devices, tp, pp, KV mode): the micro-batch count closest to pp
    n_mb = pts["batch"] / pts["micro_batch"]
    score = np.abs(n_mb - np.minimum(pts["pp"], bmax))
    key = np.stack([pts["devices"], pts["tp"], pts["pp"], pts["kv_split"]], axis=1)
    order = np.lexsort((score, *key.T[::-1]))
    _, first = np.unique(key[order], axis=0, return_index=True)
    idx = order[first]
    sub = {k: np.asarray(v)[idx] for k, v in pts.items()}
    system = device_system(card, "bf16" if wl.weight_bytes >= 2 else "int8", len(idx))
    costs = iteration_costs(
        system,
        shape,
        wl,
        stats,
        servers=sub["tp"] * sub["pp"] / card.scale_up_domain,
        pp=sub["pp"],
        tp=sub["tp"],
        kv_split=sub["kv_split"],
        max_batch=np.full(len(idx), bmax, float),
    )
    ok = np.flatnonzero(costs.feasible)
    costs = costs.take(ok)
    sub = {k: v[ok] for k, v in sub.items()}
    cols = {k: sub[k] for k in ("devices", "tp", "pp", "kv_split")}
    rent = sub["devices"] * prices.rented_usd_per_device_hour() / 3600.0
    fab = sub["devices"] * np.broadcast_to(
        fabricated_usd_per_device_s(card, prices, params, sub), sub["devices"].shape
    )
    return Candidates(name, costs, rent, cols), {
        f"{name}-rented": rent,
        f"{name}-fabricated": np.asarray(fab, float),
    }


#: The pairs the paper's headline names (model, device).
HEADLINE_PAIRS = (("gpt3", "a100-80gb"), ("palm", "tpu-v4"))


def serving_comparison(
    results,
    table: dict,
    params: Params,
    request_workload,
    slo,
    devices=None,
    chunk_tokens: int | None = None,
    progress=None,
) -> dict:
    """Chiplet Cloud and every device with a price card (``devices``, default all of
    :func:`chipletcloud.baselines.devices.list_price_cards`), rented and fabricated, serving
    ``request_workload`` at ``slo`` for each model of ``results`` (phase-2
    ``software.ModelResult`` list over ``table``): the cheapest system meeting the SLO, the
    interactivity bands (each band also names the cheapest rented and the cheapest fabricated
    device) and the headline pairs (docs/serving.md#fronts-compared)."""
    from chipletcloud.baselines.devices import list_price_cards

    devices = list_price_cards() if devices is None else list(devices)
    from chipletcloud.baselines.compare import v1_baselines
    from chipletcloud.explore import software
    from chipletcloud.explore.serving import BANDS, asic_candidates, finite_or_none, serve

    stats = LengthStats.of(request_workload)
    models, bands = {}, {}
    for res in results:
        spec = _spec_of(res)
        inp = software.search_inputs(table, spec, software.params_for(spec, params))
        answers = serve(asic_candidates(res, inp, stats), stats, slo, chunk_tokens=chunk_tokens)
        wl = software.workload(params.preset.workload)
        for name in devices:
            got = device_candidates(name, res.shape, wl, params, stats)
            if got is None:
                continue
            cands, prices = got
            answers.update(serve(cands, stats, slo, chunk_tokens=chunk_tokens, prices=prices))
        systems = {}
        for name, a in answers.items():
            if a.best is not None:
                systems[name] = a.best
            else:
                systems[name] = {"reachable": False, "best_achievable": a.best_achievable}
        cc = answers["chiplet-cloud"].best
        for s in systems.values():
            if cc and s.get("usd_per_million_tokens") is not None:
                s["ratio_to_chiplet_cloud"] = (
                    s["usd_per_million_tokens"] / cc["usd_per_million_tokens"]
                )
        models[res.model] = {"systems": systems}
        rows = []
        for x in BANDS:
            per = {k: finite_or_none(a.bands[x]) for k, a in answers.items()}
            reach = {k: v for k, v in per.items() if v is not None}
            best = min(reach, key=reach.get) if reach else None
            cc_x = per.get("chiplet-cloud")
            cheapest = {}
            for kind in ("rented", "fabricated"):
                of = {k: v for k, v in reach.items() if k.endswith(f"-{kind}")}
                name = min(of, key=of.get) if of else None
                cheapest[kind] = {"system": name, "usd_per_million_tokens": of.get(name)}
            rows.append(
                {
                    "tokens_per_s_per_user": x,
                    "best_system": best,
                    "usd_per_million_tokens": reach.get(best) if best else None,
                    "cheapest_rented": cheapest["rented"],
                    "cheapest_fabricated": cheapest["fabricated"],
                    "systems": per,
                    "ratios_to_chiplet_cloud": {
                        k: (v / cc_x if v is not None and cc_x else None) for k, v in per.items()
                    },
                }
            )
        bands[res.model] = rows
        if progress:
            progress(res.model)
    lit = v1_baselines()
    headline = []
    for model, dev in HEADLINE_PAIRS:
        if model not in models:
            continue
        cc = models[model]["systems"].get("chiplet-cloud", {})
        cc_usd = cc.get("usd_per_million_tokens")
        sim = models[model]["systems"].get(f"{dev}-rented", {})
        sim_usd = sim.get("usd_per_million_tokens")
        meas = lit.get(model, {})
        entry = {
            "model": model,
            "device": dev,
            "chiplet_cloud_usd_per_million_tokens": cc_usd,
            "rented_measured_deployment": {
                "usd_per_million_tokens": meas.get("usd_per_million_tokens"),
                "ratio": _ratio(meas.get("usd_per_million_tokens"), cc_usd),
                "service_level": f"its own: {meas.get('latency_s_per_token', 0) * 1e3:g} ms/token, "
                "static batch (not the SLO below)",
                "source": meas.get("source"),
            },
            "rented_simulated_at_slo": {
                "usd_per_million_tokens": sim_usd,
                "ratio": _ratio(sim_usd, cc_usd),
                "service_level": slo.text(),
                "mapping": sim.get("mapping"),
            },
            "workload": request_workload.name,
            "slo": slo.text(),
        }
        headline.append(entry)
    return {
        "workload": request_workload.describe(),
        "slo": slo.describe(),
        "models": models,
        "bands": bands,
        "headline": headline,
    }


def _spec_of(res):
    """The model of a phase-2 result: its own spec, or the catalogue's card by name."""
    if getattr(res, "spec", None) is not None:
        return res.spec
    from chipletcloud.models.catalogue import load_model

    return load_model(res.model)


def _ratio(num, den):
    return num / den if num is not None and den else None


def mapping_serving(
    device: str,
    spec,
    *,
    request_workload,
    slo,
    replicas: int = 1,
    chunk_tokens: int | None = None,
    scheduler: str = "mixed",
    **mapping,
) -> dict:
    """One mapping of a device (or SRAM card) serving ``request_workload`` under continuous
    batching: ``mapping`` are :func:`mapping_costs`'s keywords (``tp``, ``pp``, ``max_batch``
    running sequences at most, the dtypes and the stack). Returns the highest arrival rate
    meeting ``slo`` (the saturation rate when no SLO is given) and the percentiles there.
    Raises :class:`~chipletcloud.errors.InputError` naming the best achievable value when no
    load meets the SLO."""
    from chipletcloud.errors import InputError
    from chipletcloud.perf.serving import ServingModel

    card, costs, stats = mapping_costs(device, spec, request_workload=request_workload, **mapping)
    tp, pp = mapping["tp"], mapping["pp"]
    model = ServingModel(costs, stats, chunk_tokens, scheduler)
    if not model.ok[0]:
        raise InputError(
            "model", spec.name, f"a mapping whose memory holds the weights and one request's KV "
            f"(TP {tp} x PP {pp} on {card.name} does not)"
        )  # fmt: skip
    rate, at = model.max_rate(slo)
    if rate[0] <= 0:
        light = model.metrics(model.rate_sat * 1e-6)
        best = ", ".join(
            f"{m}_p{p} {light[f'{m}_p{p}_s'][0] * 1e3:.1f} ms" for (m, p), _ in slo.limits
        )
        raise InputError("slo", slo.text(), f"a service level this mapping can meet (best: {best})")
    out = {k: float(v[0]) for k, v in at.items() if np.ndim(v) and k != "stable"}
    out["goodput_requests_per_s"] = float(rate[0]) * replicas
    out["output_tokens_per_s"] = float(rate[0]) * model.w.mean_g * replicas
    out["tokens_per_s_per_user"] = 1.0 / out["tpot_mean_s"]
    out["kv_budget_tokens"] = float(costs.kv_tokens[0])
    out["replicas"] = replicas
    out["slo"] = slo.describe()
    out["scheduler"] = scheduler + (f", chunks of {chunk_tokens} tokens" if chunk_tokens else "")
    return out


def mapping_costs(
    device: str,
    spec,
    *,
    tp: int,
    pp: int,
    max_batch: int,
    request_workload,
    weight_dtype: str = "bf16",
    kv_dtype: str = "bf16",
    compute_dtype: str | None = None,
    stack: str | None = None,
):
    """(card, :class:`~chipletcloud.perf.iteration.IterationCosts` of the one mapping,
    :class:`~chipletcloud.perf.iteration.LengthStats` of the workload) for a device or SRAM
    card with ``tp`` x ``pp`` of them serving ``spec``."""
    from chipletcloud.baselines.hbm import (
        compute_format,
        device_stack,
        load_any_device,
        serving_workload,
    )
    from chipletcloud.baselines.sram import SramCard, sram_system

    card = load_any_device(device)
    shape = LayerShape.from_spec(spec, include_embeddings=True)
    if isinstance(card, SramCard):
        sw, system = None, sram_system(card, weight_dtype)
    else:
        sw = device_stack(card, stack)
        system = device_system(card, weight_dtype, stack=sw, compute_dtype=compute_dtype)
        compute_format(card, weight_dtype, compute_dtype)
    mean_in, mean_out = request_workload.mean_lengths()
    wl = serving_workload(sw, mean_in, mean_out, weight_dtype, kv_dtype)
    stats = LengthStats.of(request_workload)
    costs = iteration_costs(
        system, shape, wl, stats, servers=tp * pp / card.scale_up_domain, pp=pp, tp=tp,
        kv_split=0.0, max_batch=max_batch,
    )  # fmt: skip
    return card, costs, stats


def attach_serving(
    result: dict,
    results,
    table: dict,
    params: Params,
    request_workload=None,
    slo=None,
    progress=None,
) -> dict:
    """Add ``serving``, ``bands`` and ``summary.headline`` (:func:`serving_comparison`) to a
    comparison ``result`` (:func:`chipletcloud.baselines.compare.compare_results`): the
    workload given, or the preset's fixed request, at ``slo`` (none: any stable load)."""
    from chipletcloud.models.requests import preset_workload
    from chipletcloud.models.slo import Slo

    rw = request_workload or preset_workload(params)
    sv = serving_comparison(results, table, params, rw, slo or Slo(), progress=progress)
    result["serving"] = {k: sv[k] for k in ("workload", "slo", "models")}
    result["bands"] = sv["bands"]
    result["summary"]["headline"] = sv["headline"]
    return result
