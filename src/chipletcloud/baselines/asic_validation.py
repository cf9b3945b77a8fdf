"""The analytic ASIC model against the event-level simulation, at the phase-2 optima.

No Chiplet Cloud exists to measure, so each model's TCO-optimal, latency-optimal and middle Pareto
points from the phase-2 search are re-run with the discrete-event simulation of
:mod:`chipletcloud.perf.des` and compared with the analytic model (docs/validation.md). The records
have the same fields as the measured-hardware cases of :mod:`chipletcloud.baselines.validation`.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from chipletcloud.baselines.asic_measured import asic_measured_cases
from chipletcloud.baselines.asic_measured import summary as measured_summary
from chipletcloud.baselines.validation import validate
from chipletcloud.config import load_space, resolve
from chipletcloud.explore import software
from chipletcloud.explore.hardware import explore_hardware
from chipletcloud.models.catalogue import PAPER_MODELS, load_model
from chipletcloud.perf import des


def pick_front_points(front: dict[str, np.ndarray], n_points: int = 3) -> list[tuple[str, int]]:
    """(label, index) of ``n_points`` points of a cost-sorted Pareto front: the TCO-optimal, the
    latency-optimal and evenly spaced ones in between."""
    n = len(front["design"])
    if n == 0:
        return []
    i_tco = int(np.lexsort((front["tpot_s"], front["usd_per_million_tokens"]))[0])
    i_lat = int(np.lexsort((front["usd_per_million_tokens"], front["tpot_s"]))[0])
    picks = [("tco", i_tco)]
    if n_points >= 2 and i_lat != i_tco:
        picks.append(("latency", i_lat))
    order = np.argsort(front["usd_per_million_tokens"], kind="stable")
    k = 1
    for pos in np.linspace(0, n - 1, max(n_points, 2))[1:-1]:
        i = int(order[int(round(pos))])
        if len(picks) >= n_points:
            break
        if all(i != j for _, j in picks):
            picks.append((f"mid{k}", i))
            k += 1
    return picks


def asic_cases(
    table: dict[str, np.ndarray],
    params,
    models=None,
    n_points: int = 3,
    *,
    overlap_transfers: bool = True,
    event_budget: float = des.EVENT_BUDGET,
    quantities: tuple[str, ...] = ("tpot_s", "throughput_tokens_per_s"),
    details: list | None = None,
    fast: bool = True,
    results: dict | None = None,
) -> list[dict]:
    """Validation records of the analytic model against the event-level simulation: for each model
    (default: the eight paper models) the phase-2 search over ``table``, then its TCO-optimal,
    latency-optimal and middle Pareto points. One record per point and quantity with ``id, source,
    quantity, unit, measured`` (DES), ``predicted`` (analytic), ``error`` (= predicted /
    measured - 1) and ``note`` (empty; for a point the simulation cannot run, the reason, with
    ``measured`` and ``error`` NaN: :func:`des_mapping_issue`). The search runs over the
    mappings the simulation represents (:func:`des_search_params`). ``details``, when given a
    list, receives each simulated point's :func:`chipletcloud.perf.des.compare_point` dict with
    ``model``, ``point`` and ``server_id``. ``fast=False`` searches with the numpy reference (no
    numba compilation: for small tables). ``results`` (model name -> ModelResult of the same
    table and parameters) skips the searches already done."""
    units = {"tpot_s": "s/token", "prefill_s": "s", "throughput_tokens_per_s": "tokens/s"}
    records = []
    params, even = des_search_params(params)
    if not even:  # ``results`` were searched over mappings the simulation cannot run
        results = None
    system, _ = software.system_from_servers(table, params)
    wl = software.workload(params.preset.workload)
    for name in models or PAPER_MODELS:
        spec = load_model(name)
        if results is not None and name in results:
            res = results[name]
        else:
            res = software.search(table, spec, params, fast=fast)
        f = res.front
        for label, i in pick_front_points(f, n_points):
            d = int(f["design"][i])
            point = {k: int(f[k][i]) for k in des.MAPPING_KEYS}
            reason = des_mapping_issue(system.take(np.array([d])), res.shape, **point)
            if reason is not None:  # said in the table, not a traceback
                for q in quantities:
                    records.append(
                        {
                            "id": f"des-{name}-{label}-{q}",
                            "source": des.SOURCE,
                            "quantity": q,
                            "unit": units[q],
                            "measured": float("nan"),
                            "predicted": float(f[q][i]) if q in f else float("nan"),
                            "error": float("nan"),
                            "note": f"not simulated at event level: {reason}",
                        }
                    )
                continue
            row = des.compare_point(
                system.take(np.array([d])),
                res.shape,
                wl,
                servers=f["servers"][i],
                pp=f["pp"][i],
                batch=f["batch"][i],
                micro_batch=f["micro_batch"][i],
                overlap_transfers=overlap_transfers,
                event_budget=event_budget,
                latency_model=params.choices.latency_model,
            )
            if details is not None:
                details.append(
                    {"model": name, "point": label, "server_id": int(table["server_id"][d])} | row
                )
            for q in quantities:
                meas, pred = row[f"des_{q}"], row[f"analytic_{q}"]
                records.append(
                    {
                        "id": f"des-{name}-{label}-{q}",
                        "source": des.SOURCE,
                        "quantity": q,
                        "unit": units[q],
                        "measured": meas,
                        "predicted": pred,
                        "error": pred / meas - 1.0,
                        "note": "",
                    }
                )
    return records


def des_search_params(params):
    """``(params, unchanged)``: ``params`` with the phase-2 search cut to the mappings the
    event-level simulation represents, equal stages of L / p whole layers (no ``balance_stages``,
    ``units_per_layer`` 1, no ``uneven_pipeline``) with KV heads replicated; ``unchanged`` when
    the preset already searches only those. The v1 preset's stages of parts of layers (3 units a
    layer, uneven) give pipeline degrees up to 3 L that the simulation cannot place."""
    srch = params.preset.search
    even = {
        "balance_stages": False,
        "kv_modes": ["replicate"],
        "units_per_layer": 1,
        "uneven_pipeline": False,
    }
    if all(getattr(srch, k) == v for k, v in even.items()):
        return params, True
    srch = srch.model_copy(update=even)
    return replace(params, preset=params.preset.model_copy(update={"search": srch})), False


def des_mapping_issue(system, shape, *, servers, pp, batch, micro_batch) -> str | None:
    """Why :func:`chipletcloud.perf.des.simulate_des` cannot run a mapping of a one-row
    ``system`` (None when it can): every stage needs a tensor group of at least one chip
    (servers x chips per server >= pp), the pipeline degree must divide the layers (equal stages
    of whole layers) and the micro-batch the batch."""
    cps = int(np.asarray(system.chips_per_server).reshape(-1)[0])
    if pp < 1 or servers * cps < pp:
        return f"{servers} servers x {cps} chips give no chip to each of {pp} pipeline stages"
    if shape.num_layers % pp:
        return f"pp={pp} does not divide the {shape.num_layers} layers into equal stages"
    if micro_batch < 1 or batch % micro_batch:
        return f"micro-batch {micro_batch} does not divide batch {batch}"
    return None


def asic_validation(
    table: dict[str, np.ndarray], params, n_points: int = 3, results: dict | None = None
) -> dict:
    """``asic_cases`` (:func:`asic_cases` over the paper models, reusing ``results`` where
    given) and ``asic_median_abs_error`` (the median of their absolute errors, None without
    cases): what ``validate`` and ``reproduce`` report."""
    cases = asic_cases(table, params, n_points=n_points, results=results)
    errs = [abs(c["error"]) for c in cases if np.isfinite(c["error"])]
    return {
        "asic_cases": cases,
        "asic_median_abs_error": float(np.median(errs)) if errs else None,
    }


def validation_report(
    table: dict[str, np.ndarray] | None = None,
    params=None,
    n_points=3,
    results=None,
    leave_one_out: bool = False,
) -> dict:
    """The whole validation: the simulator against measured hardware
    (:func:`chipletcloud.baselines.validation.validate`), against measured all-SRAM machines
    (``asic_measured``, :mod:`chipletcloud.baselines.asic_measured`), and the analytic ASIC model
    against the event-level simulation (:func:`asic_validation`) on ``table`` (default: phase 1
    on the default space under ``params``, default the ``isca24`` preset). What ``validate``
    prints and ``reproduce`` reports; ``leave_one_out`` adds the leave-one-source-out
    calibration (a refit a training source, about a minute on 2 cores)."""
    params = params or resolve("isca24")
    if table is None:
        table = explore_hardware(load_space(), params).table
    report = validate(leave_one_out=leave_one_out)
    report.update(asic_validation(table, params, n_points=n_points, results=results))
    rows = asic_measured_cases()
    report["asic_measured"] = rows
    report["asic_measured_summary"] = measured_summary(rows)
    from chipletcloud.baselines.serving_validation import serving_cases

    sv = serving_cases()
    report["serving_cases"] = sv["cases"]
    report["serving_summary"] = {k: v for k, v in sv.items() if k != "cases"}
    return report
