"""``chipletcloud reproduce``: the whole evaluation on defaults, its studies, figures and report.

Phase 1 on the default space (``--quick``: ``data/spaces/quick.yaml``), phase 2 for the eight
paper models, the GPU/TPU comparison, the one shared design, the sparsity study, the design
studies, the attribution walk from the authors' code's behaviour to the preset
(:mod:`chipletcloud.studies.attribution`), the validation suite, then ``summary.json``, the Pareto
tables, figures and ``report.html`` in the output directory.

Beside the paper's models, every other model set (``model_sets``; by default the 2026 set,
:data:`chipletcloud.models.catalogue.MODELS_2026`) is searched on the same table (a model of two
sets once), compared with the GPU/TPU baselines and given its own shared design:
``summary["model_sets"][SET]`` = ``{"models", "optimal", "compare", "portfolio"}`` (the paper
set's stay ``summary["optimal"]``, ``["compare"]`` and ``["portfolio"]``), its fronts in
``fronts/`` and its comparison in ``tables/compare_<SET>.parquet``. The context-length study
(:mod:`chipletcloud.studies.context`, on the run's table) is ``summary["studies"]["context"]``
and ``tables/study_context.parquet`` (docs/studies.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from chipletcloud.config import (
    DATA,
    HardwareSpace,
    Params,
    config_hash,
    load_space,
    resolve,
    switch_names,
)
from chipletcloud.explore import software
from chipletcloud.explore.hardware import explore_hardware
from chipletcloud.models.catalogue import MODEL_SETS, PAPER_MODELS, load_model
from chipletcloud.report.store import manifest, write_json, write_parquet
from chipletcloud.studies.context import check_context, context_columns
from chipletcloud.studies.context import default_spec as context_spec

#: the models of the attribution walk by default (``reproduce --attribute``)
ATTRIBUTE_MODELS = ("gpt3",)
#: the model sets evaluated by default: the paper's eight (``summary["optimal"]`` and
#: ``["compare"]``), then every other set of the catalogue (``summary["model_sets"]``)
MODEL_SETS_DEFAULT = {
    "paper": PAPER_MODELS,
    **{k: v for k, v in MODEL_SETS.items() if k != "paper"},
}
_EXTRA_MODELS = {m for k, v in MODEL_SETS_DEFAULT.items() if k != "paper" for m in v}
#: steps reported to a progress callback (with the default attribution walk: one a step of it;
#: with the default model sets: one a model searched beyond the paper's and one a set's
#: comparison; with the default context study: one a model and context, and one at its end)
STEPS = (
    8
    + 13  # phase 1, baselines, sparsity, 6 studies, hop latency, attribution, validation, report
    + len(ATTRIBUTE_MODELS) * (1 + len(switch_names()))
    + len(_EXTRA_MODELS - set(PAPER_MODELS))
    + (len(MODEL_SETS_DEFAULT) - 1)
    + len(context_spec().models) * len(context_spec().contexts)
    + 1
)


def reproduce(
    out_dir: Path,
    preset: str = "isca24",
    quick: bool = False,
    models=PAPER_MODELS,
    progress: Callable[[str], None] | None = None,
    workload: dict | None = None,
    attribute_models=ATTRIBUTE_MODELS,
    request_workload=None,
    slo=None,
    model_sets=None,
    context_models=None,
    context_contexts=None,
) -> dict:
    """Run everything; write the outputs under ``out_dir``; return the summary. ``workload``
    changes workload fields of the preset (e.g. a weight sparsity for every model).
    ``attribute_models`` are the models of the attribution walk (none: no walk, no study).
    ``request_workload``: every model and baseline serves its mean input and output lengths
    (:mod:`chipletcloud.models.requests`), named in the summary; with it or an ``slo``
    (:class:`chipletcloud.models.slo.Slo`) the comparison also serves it under continuous
    batching (``compare.serving``, ``compare.bands``, ``compare.summary.headline``).
    ``model_sets``: ``{SET: models}`` (default: the sets of :data:`MODEL_SETS_DEFAULT` but the
    paper's); its ``paper`` entry, if any, replaces ``models``; each other set goes to
    ``summary["model_sets"][SET]``.
    ``context_models`` and ``context_contexts``: the context-length study's models and contexts
    (default ``data/studies/context.yaml``; ``context_models=()``: no study)."""
    from chipletcloud.baselines.asic_validation import validation_report
    from chipletcloud.baselines.compare import compare_results
    from chipletcloud.baselines.devices import list_price_cards
    from chipletcloud.sparsity.capacity import capacity_study
    from chipletcloud.studies import core as studies

    step = progress or (lambda _msg: None)
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    if model_sets is None:
        model_sets = {k: v for k, v in MODEL_SETS_DEFAULT.items() if k != "paper"}
    sets = {k: list(dict.fromkeys(v)) for k, v in model_sets.items()}
    models = sets.pop("paper", list(models))
    for name in [*models, *(m for v in sets.values() for m in v)]:
        load_model(name)  # bad names fail before the run, not after phase 2
    ctx = context_spec()
    ctx_models = list(dict.fromkeys(ctx.models if context_models is None else context_models))
    ctx_contexts = sorted(set(context_contexts or ctx.contexts))
    for name in ctx_models:
        for c in ctx_contexts:  # and contexts a model cannot serve
            check_context(load_model(name), c, ctx.output_tokens)
    params = resolve(preset).with_workload(**(workload or {}))
    if request_workload is not None:  # a request workload's mean lengths, stated in the summary
        params = request_workload.applied_to(params)
    attribute_models = list(dict.fromkeys(attribute_models or ()))
    for name in attribute_models:
        load_model(name)  # bad names fail before the run, not after phase 2
    # models whose positions cannot hold the run's requests are left out, with a warning each
    # (software.servable); the paper set must keep one
    left_out: dict[str, str] = {}

    def servable(names: list[str], refuse: bool) -> list[str]:
        specs = [load_model(n) for n in names]
        kept = {id(x) for x in software.servable(specs, params, refuse)}
        for n, x in zip(names, specs, strict=True):
            if id(x) not in kept:
                left_out[n] = "the run's requests pass its max_position_embeddings"
        return [n for n, x in zip(names, specs, strict=True) if id(x) in kept]

    models = servable(list(models), refuse=True)
    sets = {k: servable(v, refuse=False) for k, v in sets.items()}
    space = load_space(DATA / "spaces" / "quick.yaml") if quick else load_space()
    hw = explore_hardware(space, params)
    table = hw.table
    cfg = {
        "space": space.model_dump(),
        "models": list(models),
        "model_sets": sets,
        "context_study": {
            "models": ctx_models,
            "contexts": ctx_contexts,
            "output_tokens": ctx.output_tokens,
        },
        "quick": quick,
        **params.config_dict(),
    }
    if request_workload is not None:
        cfg["request_workload"] = request_workload.describe()
    h = config_hash(cfg)
    write_parquet(table, out_dir / "servers.parquet")
    step("phase 1")

    searched: dict = {}  # model -> (spec, result, optimal entry), each model searched once

    def search(name: str) -> tuple:
        if name not in searched:
            spec = load_model(name)
            res = software.search(table, spec, software.params_for(spec, params))
            run = software.EvaluationRun(table, params, [res], {})
            write_parquet(
                run.front_table(res), out_dir / "fronts" / f"{software.model_dirname(name)}.parquet"
            )
            opt = {
                "tco_optimal": res.card("tco", table),
                "latency_optimal": res.card("latency", table),
                "pareto_points": int(len(res.front["design"])),
                "evaluated_points": int(res.evaluated),
            }
            searched[name] = (spec, res, opt)
        return searched[name]

    results, optimal = {}, {}
    for name in models:
        spec, res, optimal[name] = search(name)
        results[name] = (spec, res)
        step(f"phase 2: {name}")

    ordered = [r for _, r in results.values()]
    compare = compare_results(ordered, table, params)
    if request_workload is not None or slo:
        from chipletcloud.baselines.serving import attach_serving

        attach_serving(compare, ordered, table, params, request_workload, slo)
    step("baselines")
    portfolio = software.portfolio(ordered, table)

    other_sets = {}
    for set_name, names in sets.items():
        for name in names:
            if name not in searched:
                search(name)
                step(f"phase 2 ({set_name}): {name}")
        mine = [searched[n][1] for n in names]
        other_sets[set_name] = {
            "models": list(names),
            "optimal": {n: searched[n][2] for n in names},
            # every device with a price card: the set is today's models, so today's devices
            "compare": compare_results(mine, table, params, devices=list_price_cards()),
            "portfolio": software.portfolio(mine, table),
        }
        step(f"baselines ({set_name})")

    gpt3_spec, gpt3 = results.get("gpt3", next(iter(results.values())))
    gpt3_card = gpt3.card("tco", table)
    wl = software.workload(params.preset.workload)
    memory, kv = software.system_memory(gpt3_card, gpt3.shape, wl)
    sparsity = {
        "capacity": {"model": gpt3_spec.name, **capacity_study(memory, kv, 0.6, "value_index")},
        "capacity_by_format": {
            fmt: capacity_study(memory, kv, s, fmt)["capacity_gain"]
            for fmt, s in (("value_index", 0.6), ("bitmask", 0.6), ("nm24", 0.5))
        },
        "tco_vs_sparsity": studies.sparsity_sweep(table, results, params, k=24 if quick else 64),
    }
    step("sparsity")

    st = {}
    st["die_size"] = studies.die_size_study(table, gpt3_spec, params)
    step("die size study")
    st["batch"] = studies.batch_study(table, results, params, k=32 if quick else 128)
    step("batch study")
    st["pipeline"] = studies.pipeline_study(table, results, params)
    step("pipeline study")
    st["design_choice"] = studies.design_choice_study(table, results, params)
    step("design choice study")
    rented = compare["models"].get(gpt3_spec.name, {}).get("baselines", {}).get("a100-80gb-rented")
    if rented is not None:
        st["nre"] = studies.nre_study(gpt3_card, rented["usd_per_million_tokens"], params)
    step("NRE study")
    st["sensitivity"] = studies.sensitivity_study(
        space, table, gpt3_spec, gpt3, params, k=64 if quick else 256
    )
    step("sensitivity study")
    hop_specs = {n: results[n][0] for n in studies.HOP_LATENCY_MODELS if n in results}
    if hop_specs:
        from chipletcloud.baselines.sram import latency_set

        st["hop_latency"] = studies.hop_latency_study(
            table,
            hop_specs,
            params,
            op_latency_s=float(latency_set("sram_machines")["op_latency_s"].value),
            results=results,
        )
    step("hop latency study")
    if attribute_models:
        st["attribution"] = attribution_study(attribute_models, params, space, table, step)
    step("attribution study")
    if ctx_models:
        from chipletcloud.studies.context import context_study

        st["context"] = context_study(
            table,
            params,
            models=ctx_models,
            contexts=ctx_contexts,
            output_tokens=ctx.output_tokens,
            progress=step,
        )
    step("context study")

    validation = validation_report(
        table,
        params,
        n_points=1 if quick else 3,
        results={name: res for name, (_, res) in results.items()},
    )
    step("validation")

    wall = time.perf_counter() - t0
    summary = {
        "manifest": manifest(
            "reproduce",
            cfg,
            h,
            preset=params.preset.name,
            quick=quick,
            counts={"candidates": hw.candidates, "valid": hw.valid, "rejected": hw.rejected},
            wall_time_s=round(wall, 2),
        ),
        "compare": compare,
        "optimal": optimal,
        "portfolio": portfolio,
        "model_sets": other_sets,
        "sparsity": sparsity,
        "studies": st,
        "validation": validation,
        "left_out": left_out,
    }
    if request_workload is not None:
        summary["request_workload"] = request_workload.describe()
    summary["manifest"].pop("config", None)
    write_json(
        manifest(
            "reproduce", cfg, h, preset=params.preset.name, quick=quick, wall_time_s=round(wall, 2)
        ),
        out_dir / "manifest.json",
    )
    _write_tables(summary, out_dir)
    _presentation(summary, out_dir)
    step("report")
    summary["manifest"]["wall_time_s"] = round(time.perf_counter() - t0, 2)
    write_json(summary, out_dir / "summary.json")
    return summary


def attribution_study(
    models: list[str],
    params: Params,
    space: HardwareSpace,
    table: dict[str, np.ndarray],
    progress: Callable[[str], None] | None = None,
) -> dict:
    """The attribution walk (:func:`chipletcloud.studies.attribution.attribute`) of each model
    from the authors' code's behaviour to the run's preset (with the run's workload changes) on
    the run's space: ``{"models": {MODEL: result}}``. The phase-1 tables are shared between the
    models; the run's own table serves the walk's last step (the preset itself)."""
    from chipletcloud.studies.attribution import attribute, hardware_key, walk

    tick = progress or (lambda _msg: None)
    tables: dict = {}
    last = resolve(walk(params.preset)[-1].preset)
    a, b = last.config_dict(), params.config_dict()
    if all(a[k] == b[k] for k in a if k not in ("preset", "workload", "search")):
        tables[hardware_key(last)] = table  # the same hardware model under the walk's name
    out = {}
    for name in models:
        out[name] = attribute(
            name,
            params.preset,
            space=space,
            tables=tables,
            progress=lambda m: tick(f"attribution {m}"),
        )
    return {"models": out}


def attribution_rows(study: dict | None) -> list[dict]:
    """The attribution study as table rows: one per model and step (``step`` counts from 0, the
    authors' behaviour), the step's design card and ``change``; missing values as NaN."""
    from chipletcloud.studies.attribution import STEP_FIELDS

    rows = []
    for key, res in ((study or {}).get("models") or {}).items():
        for i, r in enumerate(res.get("steps") or []):
            row = {
                "model": str(res.get("model") or key),
                "base": str(res.get("base") or ""),
                "step": i,
                "switch": str(r.get("switch")),
                "summary": str(r.get("summary") or ""),
            }
            for f in (*STEP_FIELDS, "change"):
                v = r.get(f)
                row[f] = float("nan") if v is None else float(v)
            rows.append(row)
    return rows


def _write_tables(summary: dict, out_dir: Path) -> None:
    """The study results as Parquet tables too (queryable with ``chipletcloud query``)."""
    st = summary["studies"]
    tables = {
        "study_die_size": st.get("die_size", {}).get("bins", []),
        "study_batch": st.get("batch", {}).get("rows", []),
        "study_pipeline": st.get("pipeline", {}).get("rows", []),
        "study_design_choice": st.get("design_choice", {}).get("rows", []),
        "study_sensitivity": st.get("sensitivity", {}).get("rows", []),
        "study_nre": st.get("nre", {}).get("curve", []),
        "study_hop_latency": st.get("hop_latency", {}).get("rows", []),
        "study_attribution": attribution_rows(st.get("attribution")),
        "sparsity": summary["sparsity"]["tco_vs_sparsity"],
        "study_context": st.get("context"),
        "validation": summary["validation"]["cases"],
        "asic_validation": summary["validation"]["asic_cases"],
        "asic_measured": summary["validation"]["asic_measured"],
    }
    for name, rows in tables.items():
        if name == "study_context":
            if rows and rows.get("rows"):
                write_parquet(context_columns(rows), out_dir / "tables" / f"{name}.parquet")
        elif rows:
            cols = {k: np.asarray([r.get(k) for r in rows]) for k in rows[0]}
            cols = {k: (v.astype(str) if v.dtype == object else v) for k, v in cols.items()}
            write_parquet(cols, out_dir / "tables" / f"{name}.parquet")
    _write_compare(summary["compare"], out_dir / "tables" / "compare.parquet")
    for set_name, s in (summary.get("model_sets") or {}).items():
        name = f"compare_{software.model_dirname(set_name)}.parquet"
        _write_compare(s["compare"], out_dir / "tables" / name)


def _write_compare(compare: dict, path: Path) -> None:
    """A comparison's baselines as a table: one row per model and baseline."""
    rows = [
        {
            "model": m,
            "baseline": n,
            **{k: b[k] for k in ("usd_per_million_tokens", "ratio", "kind", "device")},
        }
        for m, v in compare["models"].items()
        for n, b in v["baselines"].items()
    ]
    if rows:
        cols = {k: np.asarray([r[k] for r in rows]) for k in rows[0]}
        cols = {k: (v.astype(str) if v.dtype == object else v) for k, v in cols.items()}
        write_parquet(cols, path)


def _presentation(summary: dict, out_dir: Path) -> None:
    """Figures and the HTML report (report/figures.py, report/html.py)."""
    from chipletcloud.report.figures import write_all_figures
    from chipletcloud.report.html import write_report

    write_all_figures(summary, out_dir)
    write_report(summary, out_dir)
