"""The report's text: the headline ratios, the comparison and design tables, the key numbers,
captions, the sparsity, validation and manifest sections, read from ``summary.json`` and
formatted for the template (:mod:`.html`)."""

from __future__ import annotations

import math
from datetime import datetime
from importlib import metadata
from typing import Any

from chipletcloud.report.formats import (
    FORMATS,
    fmt_int,
    fmt_money,
    fmt_num,
    fmt_params,
    fmt_pct,
    fmt_ratio,
    fmt_si,
    fmt_usd,
)
from chipletcloud.report.plotdata import (
    attribution_walks,
    cheapest_baseline,
    fmt_context,
    fmt_factor,
    fmt_latency,
    model_sets,
)
from chipletcloud.report.results import (
    device_label,
    dict_rows,
    model_order,
    num,
    pair,
    rows_by,
    section,
)

HEADLINE = (  # summary key, label
    ("rented_gpu", "Rented GPU (A100)"),
    ("rented_tpu", "Rented TPU (TPU v4)"),
    ("fabricated_gpu", "Fabricated GPU (A100)"),
    ("fabricated_tpu", "Fabricated TPU (TPU v4)"),
)
PAPER = {"rented_gpu": 97.0, "rented_tpu": 18.0, "fabricated_gpu": 8.3, "fabricated_tpu": 3.7}
CARD_COLUMNS = (  # key, header, formatter
    ("die_area_mm2", "die mm²", "int"),
    ("sram_mb_per_chip", "SRAM MB/chip", "num"),
    ("tflops_per_chip", "TFLOPS/chip", "num"),
    ("chips_per_server", "chips/server", "int"),
    ("servers", "servers", "int"),
    ("tp", "TP", "int"),
    ("pp", "PP", "int"),
    ("batch", "batch", "int"),
    ("micro_batch", "micro-batch", "int"),
    ("latency_s_per_token", "ms/token", "ms"),
    ("throughput_tokens_per_s", "tokens/s", "int"),
    ("usd_per_million_tokens", "$/1M tokens", "usd"),
    ("capex_usd", "capex $", "int"),
    ("power_w", "power kW", "kw"),
    ("joules_per_token", "J/token", "num"),
)


def headline(summary: dict) -> list[dict]:
    """The headline rows (rented/fabricated GPU/TPU): label, best and geomean cost ratio, the
    paper's ratio and best / paper."""
    s = section(summary, "compare", "summary") or {}
    geo = s.get("geomean") if isinstance(s.get("geomean"), dict) else {}
    rows = []
    for key, label in HEADLINE:
        best = num(s.get(key))
        paper = num(s.get(f"{key}_paper"))
        paper = PAPER[key] if math.isnan(paper) else paper
        g = num(s.get(f"{key}_geomean"))
        if math.isnan(g):
            g = num(geo.get(key))
        rows.append(
            {
                "label": label,
                "best": best,
                "geomean": g,
                "paper": paper,
                "vs_paper": best / paper if best > 0 and paper > 0 else math.nan,
            }
        )
    return rows


def compare_table(summary: dict) -> dict:
    """The comparison table: the baseline names, the rented ones' device labels, and per model
    (in model order) its Chiplet Cloud cost and latency and its baseline cells."""
    models = section(summary, "compare", "models") or {}
    names: list[str] = []
    for m in models.values():
        for n in (m.get("baselines") or {}) if isinstance(m, dict) else ():
            if n not in names:
                names.append(n)
    rented = [n for n in names if n.endswith("-rented")]
    rows = []
    for model in model_order(summary):
        m = models.get(model)
        if not isinstance(m, dict):
            continue
        base = m.get("baselines") or {}
        rows.append(
            {
                "model": model,
                "cc": m.get("chiplet_cloud_usd_per_million_tokens"),
                "cc_ms": ((m.get("chiplet_cloud_design") or {}).get("latency_s_per_token")),
                "note": m.get("note"),
                "cells": [base.get(n) or {} for n in names],
                "rented_cells": [base.get(n) or {} for n in rented],
            }
        )
    return {
        "baselines": names,
        "rented": [device_label(n.removesuffix("-rented")) for n in rented],
        "rows": rows,
    }


def glance(summary: dict) -> list[tuple[str, str]]:
    """A few key numbers for the first screen as (label, text)."""
    out = []
    wl = (section(summary, "compare") or {}).get("workload")
    if isinstance(wl, dict) and wl.get("prompt_tokens"):
        rw = summary.get("request_workload")
        name = f"{rw['name']} (its mean lengths), " if isinstance(rw, dict) else ""
        out.append(
            (
                "workload",
                f"{name}{fmt_num(wl['prompt_tokens'])} prompt and "
                f"{fmt_num(wl['output_tokens'])} generated tokens a request, static batches; "
                "no service level",
            )
        )
    st = section(summary, "studies") or {}
    opt = pair((st.get("die_size") or {}).get("optimum_mm2"))
    if opt is not None:
        out.append(("cheapest die size", f"{fmt_num(opt[0])}–{fmt_num(opt[1])} mm²"))
    p = section(summary, "portfolio") or {}
    if p.get("geomean_efficiency") is not None:
        out.append(
            (
                "one shared server",
                f"{fmt_pct(p['geomean_efficiency'], False)} geomean efficiency "
                f"({fmt_num(p.get('die_area_mm2'))} mm² die)",
            )
        )
    nre = st.get("nre") or {}
    if nre.get("breakeven_tokens_per_s") is not None:
        out.append(
            (
                "NRE break-even vs rented A100",
                f"{fmt_int(nre['breakeven_tokens_per_s'])} tokens/s "
                f"(NRE {fmt_money(nre.get('nre_usd'))})",
            )
        )
    cap = section(summary, "sparsity", "capacity") or {}
    if cap.get("capacity_gain") is not None:
        out.append(
            (
                "sparse capacity gain",
                f"{fmt_ratio(cap['capacity_gain'])} at {fmt_pct(cap.get('sparsity'), False)} "
                f"sparsity ({cap.get('sparse_format', '')})",
            )
        )
    v = section(summary, "validation") or {}
    split = v.get("split")
    if isinstance(split, dict) and split.get("test", {}).get("median_abs_error") is not None:
        tr, te = split["train"], split["test"]
        out.append(
            (
                "GPU/TPU validation, median |error|",
                f"train {fmt_pct(tr['median_abs_error'], False)} ({tr['cases']} cases), test "
                f"{fmt_pct(te['median_abs_error'], False)} ({te['cases']} cases)",
            )
        )
    elif v.get("median_abs_error") is not None:
        out.append(
            (
                "validation, median |error|",
                f"{fmt_pct(v['median_abs_error'], False)} over {len(v.get('cases') or [])} "
                "GPU cases",
            )
        )
    if v.get("asic_median_abs_error") is not None:
        out.append(("vs event simulation", f"{fmt_pct(v['asic_median_abs_error'], False)}"))
    return out


def design_rows(summary: dict) -> list[dict]:
    """The optimal-design table: per model and optimum its formatted :data:`CARD_COLUMNS`."""
    out = []
    optimal = section(summary, "optimal") or {}
    for model in model_order(summary):
        o = optimal.get(model)
        if not isinstance(o, dict):
            continue
        for which, label in (("tco_optimal", "TCO-optimal"), ("latency_optimal", "latency-opt.")):
            card = o.get(which)
            if isinstance(card, dict):
                out.append(
                    {
                        "model": model,
                        "which": label,
                        "points": o.get("pareto_points"),
                        "cells": [FORMATS[f](card.get(k)) for k, _, f in CARD_COLUMNS],
                    }
                )
    return out


def captions(summary: dict) -> dict[str, str]:
    """Captions of the plots by plot name."""
    st = section(summary, "studies") or {}
    cap: dict[str, str] = {}
    ds = st.get("die_size") or {}
    opt = pair(ds.get("optimum_mm2"))
    if opt is not None:
        cap["die_size"] = f"Cheapest die-area bin: {fmt_num(opt[0])}–{fmt_num(opt[1])} mm²."
    bo = (st.get("batch") or {}).get("optimum") or {}
    if bo:
        cap["batch"] = "Cheapest batch: " + ", ".join(f"{m} {fmt_int(b)}" for m, b in bo.items())
    geo = (st.get("design_choice") or {}).get("geomean") or {}
    if geo:
        cap["design_choice"] = "Geomean over models: " + ", ".join(
            f"{d} {fmt_num(v)}×" for d, v in geo.items()
        )
    nre = st.get("nre") or {}
    if nre:
        parts = []
        if nre.get("nre_usd") is not None:
            parts.append(f"NRE {fmt_money(nre.get('nre_usd'))}")
        if nre.get("breakeven_tokens_per_s") is not None:
            parts.append(f"break-even {fmt_int(nre.get('breakeven_tokens_per_s'))} tokens/s")
        for k, v in (nre.get("markers") or {}).items():
            parts.append(f"{k} {fmt_si(v)} tokens/s")
        cap["nre"] = "; ".join(parts) + "."
    sens = st.get("sensitivity") or {}
    if sens.get("base_usd_per_million_tokens") is not None:
        cap["sensitivity"] = (
            f"Base: {fmt_usd(sens['base_usd_per_million_tokens'])} per 1M tokens "
            f"({sens.get('model', '')}); bars show each parameter at its low and high value."
        )
    hop = hop_latency_caption(summary)
    if hop:
        cap["hop_latency"] = hop
    attribution = attribution_caption(summary)
    if attribution:
        cap["attribution"] = attribution
    context = context_caption(summary)
    if context:
        cap["context"] = context
    cap["pareto"] = (
        "Each line is a model's Pareto front of Chiplet Cloud designs; hover a point for its "
        "design. Filled baseline markers are rented, open ones fabricated; they take the colour "
        "of their model. Click legend entries to hide or show them."
    )
    return cap


def _times(x: float) -> str:
    """A growth factor to three significant figures (``2.1×``, ``1.04×``); an em dash for none."""
    return "—" if math.isnan(x) else f"{x:.3g}×"


def _hop_rows(summary: dict) -> tuple[dict, list, dict[Any, list[dict]], dict[Any, list[dict]]]:
    """The hop-latency study, its models (the study's, then any other in its rows), and per
    model its rows without op latency (by hop latency) and those with."""
    study = section(summary, "studies", "hop_latency")
    study = study if isinstance(study, dict) else {}
    rows = [r for r in dict_rows(study.get("rows")) if num(r.get("hop_latency_s")) > 0]
    groups = rows_by(rows, "model")
    models = [m for m in study.get("models") or [] if m is not None]
    models += [m for m in groups if m not in models]
    plain, ops = {}, {}
    for m in models:
        rs = sorted(groups.get(m) or [], key=lambda r: num(r.get("hop_latency_s")))
        plain[m] = [r for r in rs if not num(r.get("op_latency_s")) > 0]
        ops[m] = [r for r in rs if num(r.get("op_latency_s")) > 0]
    return study, models, plain, ops


def _at_hop(rows: list[dict], hop: float) -> dict | None:
    """The row at hop latency ``hop`` (relative tolerance 1e-6), None for none."""
    for r in rows:
        if math.isclose(num(r.get("hop_latency_s")), hop, rel_tol=1e-6):
            return r
    return None


def hop_latency_lines(summary: dict) -> list[str]:
    """Per model of the hop-latency study, how its TCO-optimal design moves from the shortest to
    the longest hop latency it is feasible at: the cost growth and the die area before and after
    (``gpt3: cost 2.1× from 10 ns to 2 µs, optimal die 120 → 320 mm²``)."""
    study, models, plain, ops = _hop_rows(summary)
    out = []
    for m in models:
        rs = plain[m]
        if not rs:
            out.append(f"{m}: no feasible design" if not ops[m] else f"{m}: only with op latency")
            continue
        first, last = rs[0], rs[-1]
        if len(rs) == 1:
            out.append(
                f"{m}: feasible only at {fmt_latency(first.get('hop_latency_s'))} "
                f"({fmt_usd(first.get('usd_per_million_tokens'))} per 1M tokens, "
                f"{fmt_num(first.get('die_area_mm2'))} mm² die)"
            )
            continue
        c0, c1 = num(first.get("usd_per_million_tokens")), num(last.get("usd_per_million_tokens"))
        growth = c1 / c0 if c0 > 0 else math.nan
        out.append(
            f"{m}: cost {_times(growth)} from {fmt_latency(first.get('hop_latency_s'))} to "
            f"{fmt_latency(last.get('hop_latency_s'))}, optimal die "
            f"{fmt_num(first.get('die_area_mm2'))} → {fmt_num(last.get('die_area_mm2'))} mm²"
        )
    return out


def hop_latency_caption(summary: dict) -> str | None:
    """The hop-latency study's caption: the preset's hop latency (and server hop and fixed
    collective cost), each model's cost growth and die-area move over the hop latencies, and the
    op-latency variant against the preset's hop latency alone; None without the study's rows."""
    study, models, plain, ops = _hop_rows(summary)
    if not any(plain[m] or ops[m] for m in models):
        return None
    default = num(study.get("default_hop_latency_s"))
    parts = []
    if default > 0:
        extra = []
        if num(study.get("server_hop_latency_s")) > 0:
            extra.append(f"server hop {fmt_latency(study['server_hop_latency_s'])}")
        if num(study.get("collective_sync_s")) > 0:
            extra.append(f"{fmt_latency(study['collective_sync_s'])} fixed per collective")
        more = f"; {', '.join(extra)}" if extra else ""
        parts.append(f"Preset chip-to-chip hop latency (dashed): {fmt_latency(default)}{more}.")
    parts.append(
        "TCO-optimal design per model from the shortest to the longest hop latency: "
        + "; ".join(hop_latency_lines(summary))
        + "."
    )
    variants = []
    for m in models:
        for r in ops[m]:
            base = _at_hop(plain[m], num(r.get("hop_latency_s")))
            c0 = num((base or {}).get("usd_per_million_tokens"))
            c1 = num(r.get("usd_per_million_tokens"))
            text = f"{m} {fmt_usd(c1)} per 1M tokens, {fmt_num(r.get('die_area_mm2'))} mm² die"
            if c0 > 0 and c1 > 0:
                text += f" ({_times(c1 / c0)} the cost without)"
            variants.append((num(r.get("op_latency_s")), text))
    if variants:
        ops_s = sorted({op for op, _ in variants})
        op_text = " / ".join(fmt_latency(op) for op in ops_s)
        parts.append(
            f"Open diamonds: at the preset hop latency with the measured SRAM machines' fixed "
            f"latency of {op_text} per operation: " + "; ".join(t for _, t in variants) + "."
        )
    return " ".join(parts)


def hop_latency_table(summary: dict) -> dict | None:
    """The hop-latency study pivoted: one row per model, one column per hop latency (the
    preset's marked) and one for the op-latency variant; cells (USD per 1M tokens, die mm²)."""
    study, models, plain, ops = _hop_rows(summary)
    if not any(plain[m] or ops[m] for m in models):
        return None
    default = num(study.get("default_hop_latency_s"))
    levels: list[float] = []
    for h in sorted(
        {num(h) for h in study.get("hop_latencies_s") or [] if num(h) > 0}
        | {num(r.get("hop_latency_s")) for m in models for r in plain[m]}
    ):
        if not any(math.isclose(h, v, rel_tol=1e-6) for v in levels):
            levels.append(h)
    op_values = sorted({num(r.get("op_latency_s")) for m in models for r in ops[m]})

    def cell(r: dict | None) -> tuple[str, str]:
        if r is None:
            return ("—", "")
        return (fmt_usd(r.get("usd_per_million_tokens")), fmt_num(r.get("die_area_mm2")))

    return {
        "levels": [
            fmt_latency(h) + (" (preset)" if math.isclose(h, default, rel_tol=1e-6) else "")
            for h in levels
        ],
        "variant": (
            f"{fmt_latency(default) if default > 0 else 'preset'} + "
            + " / ".join(fmt_latency(v) for v in op_values)
            + " per op"
            if op_values
            else None
        ),
        "rows": [
            {
                "model": m,
                "cells": [cell(_at_hop(plain[m], h)) for h in levels],
                "variant": cell(ops[m][0] if ops[m] else None),
            }
            for m in models
        ],
    }


SET_COLUMNS = (  # key of the TCO-optimal card, header, formatter
    ("die_area_mm2", "die mm²", "int"),
    ("chips_per_server", "chips/server", "int"),
    ("servers", "servers", "int"),
    ("tp", "TP", "int"),
    ("pp", "PP", "int"),
    ("batch", "batch", "int"),
    ("usd_per_million_tokens", "$ / 1M tokens", "usd"),
    ("latency_s_per_token", "ms/token", "ms"),
)


def _device_cell(b: dict | None) -> dict:
    """A cheapest device as table text: its cost, name and ratio over Chiplet Cloud's."""
    if not b:
        return {"usd": "—", "device": "", "ratio": ""}
    return {
        "usd": fmt_usd(b.get("usd_per_million_tokens")),
        "device": str(b.get("device") or ""),
        "ratio": fmt_ratio(b.get("ratio")) if b.get("ratio") is not None else "",
    }


def model_set_tables(summary: dict) -> list[dict] | None:
    """Each model set beyond the paper's (``summary["model_sets"]``): a row per model (its
    TCO-optimal design, :data:`SET_COLUMNS`, and the cheapest rented and fabricated device of
    the comparison with its cost over Chiplet Cloud's) and its shared design (the portfolio and
    its rows per model); None without such a set."""
    out = []
    for name, st in model_sets(summary).items():
        per_model = section(st, "compare", "models") or {}
        rows = []
        for m in st.get("models") or []:
            card = section(st, "optimal", m, "tco_optimal")
            entry = per_model.get(m) if isinstance(per_model.get(m), dict) else {}
            base = entry.get("baselines")
            rows.append(
                {
                    "model": m,
                    "cells": [
                        FORMATS[f](card.get(k)) if isinstance(card, dict) else "—"
                        for k, _, f in SET_COLUMNS
                    ],
                    "note": entry.get("note") or ("" if card else "fits no Chiplet Cloud design"),
                    "rented": _device_cell(cheapest_baseline(base, "rented")),
                    "fabricated": _device_cell(cheapest_baseline(base, "fabricated")),
                }
            )
        p = st.get("portfolio") if isinstance(st.get("portfolio"), dict) else {}
        per = p.get("per_model") if isinstance(p.get("per_model"), dict) else {}
        out.append(
            {
                "name": name,
                "id": "model-set-" + "".join(c if c.isalnum() else "-" for c in name),
                "models": list(st.get("models") or []),
                "headers": [h for _, h, _ in SET_COLUMNS],
                "rows": rows,
                "portfolio": p if p.get("best_server_id") is not None else None,
                "portfolio_reason": p.get("reason"),
                "portfolio_rows": [(m, per[m]) for m in st.get("models") or [] if m in per],
            }
        )
    return out or None


def _context_rows(summary: dict) -> tuple[dict, list, dict[Any, list[dict]]]:
    """The context-length study, its models (the study's, then any other in its rows) and per
    model its rows by context."""
    study = section(summary, "studies", "context")
    study = study if isinstance(study, dict) else {}
    rows = [r for r in dict_rows(study.get("rows")) if num(r.get("context")) > 0]
    groups = rows_by(rows, "model")
    models = [m for m in study.get("models") or [] if m in groups]
    models += [m for m in groups if m not in models]
    by_model = {m: sorted(groups[m], key=lambda r: num(r.get("context"))) for m in models}
    return study, models, by_model


def _cc(r: dict) -> float:
    return num(r.get("cc_usd_per_million_tokens"))


def _device_usd(r: dict, kind: str) -> float:
    b = r.get(f"cheapest_{kind}")
    return num(b.get("usd_per_million_tokens")) if isinstance(b, dict) else math.nan


def context_lines(summary: dict) -> list[str]:
    """One sentence per model of the context-length study, from its ``summary``: the longest
    context the shortest context's optimum's SRAM holds one sequence of beside the weights, and
    the first context where a fabricated device is cheaper (or that Chiplet Cloud stays the
    cheapest, or cheaper than every fabricated device)."""
    study, models, rows = _context_rows(summary)
    per = study.get("summary") if isinstance(study.get("summary"), dict) else {}
    out = []
    for m in models:
        s = per.get(m) if isinstance(per.get(m), dict) else {}
        rs = rows[m]
        fits = [r for r in rs if _cc(r) > 0]
        if not fits:
            out.append(f"{m}: no Chiplet Cloud design fits at any context")
            continue
        limit, of = s.get("kv_limit_tokens"), s.get("kv_limit_of_context")
        if limit is None:
            limit, of = fits[0].get("kv_limit_tokens"), fits[0].get("context")
        text = (
            f"{m}: the {fmt_context(of)}-context optimum's SRAM holds one sequence's KV cache "
            f"beside the weights up to {fmt_int(limit)} tokens"
        )
        cross = s.get("crossover_context")
        at = next((r for r in rs if num(r.get("context")) == num(cross)), None)
        last = fmt_context(fits[-1].get("context"))
        if cross is not None and at is not None:
            b = at.get("cheapest_fabricated") or {}
            text += (
                f"; a fabricated device is first cheaper at {fmt_context(cross)} "
                f"({b.get('device', '?')}, {fmt_usd(b.get('usd_per_million_tokens'))} against "
                f"Chiplet Cloud's {fmt_usd(_cc(at))} per 1M tokens)"
            )
        else:
            rented = next((r for r in fits if _device_usd(r, "rented") < _cc(r)), None)
            if rented is None:
                text += f"; Chiplet Cloud stays the cheapest up to {last}"
            else:
                text += (
                    f"; no fabricated device is cheaper than Chiplet Cloud up to {last}, a rented "
                    f"one is first at {fmt_context(rented.get('context'))}"
                )
        gaps = [fmt_context(r.get("context")) for r in rs if not _cc(r) > 0]
        if gaps:
            text += f" (no Chiplet Cloud design fits at {', '.join(gaps)})"
        out.append(text)
    return out


def context_caption(summary: dict) -> str | None:
    """The context-length study's caption: what a request is, which devices are compared;
    None without the study's rows."""
    study, models, _ = _context_rows(summary)
    if not models:
        return None
    g = study.get("output_tokens")
    req = (
        f"a prompt of (context − {fmt_int(g)}) tokens, then {fmt_int(g)} generated tokens"
        if g is not None
        else "a prompt, then the generated tokens"
    )
    devices = ", ".join(str(d) for d in study.get("devices") or [])
    return (
        f"Each request: {req}. For each model and context, the whole servers table is searched "
        "again for the TCO-optimal Chiplet Cloud system (solid), and every device with a price "
        f"card{f' ({devices})' if devices else ''} serves the same requests, rented and "
        "fabricated; the dashed lines are the cheapest of each kind (hover for the device). "
        "An all-SRAM system keeps every sequence's KV cache on chip."
    )


def context_table(summary: dict) -> dict | None:
    """The context-length study's rows as table text: per model and context, Chiplet Cloud's
    cost and design, the KV cache's share of the SRAM, the longest context one sequence fits in
    beside the weights, the cheapest rented and fabricated device and the fabricated device's
    cost over Chiplet Cloud's; None without rows."""
    study, models, rows = _context_rows(summary)
    if not models:
        return None
    out = []
    for m in models:
        for r in rows[m]:
            fits = _cc(r) > 0
            tp, pp = num(r.get("tp")), num(r.get("pp"))
            out.append(
                {
                    "model": m,
                    "context": fmt_context(r.get("context")),
                    "cc": fmt_usd(r.get("cc_usd_per_million_tokens")) if fits else "no design",
                    "die": fmt_int(r.get("die_area_mm2")),
                    "chips": fmt_int(r.get("chips")),
                    "tp_pp": "—" if math.isnan(tp + pp) else f"{tp:.0f} × {pp:.0f}",
                    "batch": fmt_int(r.get("batch")),
                    "ms": FORMATS["ms"](r.get("latency_s_per_token")),
                    "kv_share": fmt_pct(r.get("kv_share_of_sram"), False),
                    "kv_limit": fmt_int(r.get("kv_limit_tokens")),
                    "rented": _device_cell(r.get("cheapest_rented")),
                    "fabricated": _device_cell(r.get("cheapest_fabricated")),
                    "ratio": fmt_ratio(r.get("fabricated_over_cc")),
                }
            )
    return {"rows": out}


def largest_steps(steps: list[dict], k: int = 3) -> list[dict]:
    """The ``k`` steps of an attribution walk that move the cost most, largest first (by the
    rule of :func:`chipletcloud.studies.attribution.biggest_steps`), among those with a change."""
    from chipletcloud.studies.attribution import biggest_steps

    rows = [r for r in steps[1:] if num(r.get("change")) > -1]
    return biggest_steps({"steps": [{}, *rows]}, k)


def attribution_lines(summary: dict) -> list[str]:
    """Per model of the attribution study: the cost with every switch at the authors' code's
    behaviour, the preset's, the factor between them and the three largest steps with their
    factors (``gpt3: $0.0928 per 1M tokens at the authors' code's behaviour, $0.277 at isca24
    (×2.99 in all); largest steps prefill_charged ×1.61, ...``)."""
    out = []
    for w in attribution_walks(summary):
        steps, base = w["steps"], w.get("base") or "the preset"
        c0 = num(steps[0].get("usd_per_million_tokens"))
        c1 = num(steps[-1].get("usd_per_million_tokens"))
        text = (
            f"{w['model']}: {fmt_usd(c0)} per 1M tokens at the authors' code's behaviour, "
            f"{fmt_usd(c1)} at {base}"
        )
        if c0 > 0 and c1 > 0:
            text += f" ({fmt_factor(c1 / c0 - 1.0)} in all)"
        big = largest_steps(steps)
        if big:
            text += "; largest steps " + ", ".join(
                f"{r.get('switch')} {fmt_factor(r.get('change'))}" for r in big
            )
        none = [str(r.get("switch")) for r in steps if not num(r.get("usd_per_million_tokens")) > 0]
        if none:
            text += f"; no design holds it at {', '.join(none)}"
        out.append(text)
    return out


def attribution_caption(summary: dict) -> str | None:
    """The attribution study's caption: what the waterfall shows, then per model
    :func:`attribution_lines`; None without the study."""
    lines = attribution_lines(summary)
    if not lines:
        return None
    return (
        "The TCO-optimal cost per 1M tokens with every switch at the authors' code's behaviour "
        "(first bar), after each switch is flipped back to the preset (red: dearer, green: "
        "cheaper, labelled with the factor; both phases searched again at each step) and at the "
        "preset (last bar). The order of the switches is part of the result. "
        + ". ".join(lines)
        + "."
    )


ATTRIBUTION_HEADERS = (
    "step",
    "$ / 1M tokens",
    "change",
    "die mm²",
    "chips/server",
    "TP × PP",
    "batch",
)


def attribution_tables(summary: dict) -> list[dict] | None:
    """The attribution study as one table per model: a row per step (its switch, what it
    changes, the cost, the change over the previous step and the TCO-optimal design); the last
    row is the preset itself. None without the study."""
    out = []
    for w in attribution_walks(summary):
        rows = []
        for i, r in enumerate(w["steps"]):
            tp, pp = num(r.get("tp")), num(r.get("pp"))
            rows.append(
                {
                    "step": str(r.get("switch")),
                    "summary": str(r.get("summary") or ""),
                    "usd": fmt_usd(r.get("usd_per_million_tokens")),
                    "change": fmt_pct(r.get("change")) if i > 0 else "",
                    "die": fmt_int(r.get("die_area_mm2")),
                    "chips": fmt_int(r.get("chips_per_server")),
                    "tp_pp": "—" if math.isnan(tp + pp) else f"{tp:.0f} × {pp:.0f}",
                    "batch": fmt_int(r.get("batch")),
                    "last": i == len(w["steps"]) - 1,
                }
            )
        out.append({"model": w["model"], "base": w.get("base") or "preset", "rows": rows})
    return out or None


def sparsity_table(summary: dict) -> dict | None:
    """Cost per token vs sparsity pivoted: one row per (model, format), one column per sparsity."""
    rows = [r for r in section(summary, "sparsity", "tco_vs_sparsity") or [] if isinstance(r, dict)]
    if not rows:
        return None
    levels = sorted(
        {num(r.get("sparsity")) for r in rows if not math.isnan(num(r.get("sparsity")))}
    )
    table: dict[tuple, dict[float, dict]] = {}
    for r in rows:
        table.setdefault((r.get("model"), r.get("sparse_format")), {})[num(r.get("sparsity"))] = r
    return {
        "levels": [f"{v * 100:.0f}%" for v in levels],
        "rows": [
            {
                "model": m,
                "format": f,
                "cells": [
                    (
                        fmt_usd(cells[v].get("usd_per_million_tokens")),
                        fmt_num(cells[v].get("relative_to_dense")),
                    )
                    if v in cells
                    else ("—", "")
                    for v in levels
                ],
            }
            for (m, f), cells in table.items()
        ],
    }


def validation(summary: dict) -> dict | None:
    """The validation section: cases, counts within tolerance, tolerances and median errors;
    None without validation."""
    v = section(summary, "validation")
    if not isinstance(v, dict):
        return None
    cases = [c for c in v.get("cases") or [] if isinstance(c, dict)]
    tol = v.get("tolerance")
    split = v.get("split")
    return {
        "cases": cases,
        "has_level": any("level" in c for c in cases),
        "has_tolerance": any("within_tolerance" in c for c in cases),
        "n_within": sum(bool(c.get("within_tolerance")) for c in cases),
        "tolerance": (
            ", ".join(f"{k} {fmt_pct(t, False)}" for k, t in tol.items())
            if isinstance(tol, dict)
            else None
        ),
        "median": v.get("median_abs_error"),
        "max": v.get("max_abs_error"),
        "asic": [c for c in v.get("asic_cases") or [] if isinstance(c, dict)],
        "asic_median": v.get("asic_median_abs_error"),
        "has_split": isinstance(split, dict),
        "train_median": (split or {}).get("train", {}).get("median_abs_error"),
        "train_cases": (split or {}).get("train", {}).get("cases"),
        "test_median": (split or {}).get("test", {}).get("median_abs_error"),
        "test_cases": (split or {}).get("test", {}).get("cases"),
    }


CAPACITY = (  # key, label, format
    ("model", "model", None),
    ("sparsity", "sparsity", "pct"),
    ("sparse_format", "sparse format", None),
    ("storage_ratio", "storage, relative to dense", "num"),
    ("capacity_gain", "capacity gain", "ratio"),
    ("memory_bytes", "on-chip memory", "bytes"),
    ("kv_bytes", "KV cache", "bytes"),
    ("weight_budget_bytes", "weight budget", "bytes"),
    ("largest_model_params_dense", "largest model, dense", "params"),
    ("largest_model_params_sparse", "largest model, sparse", "params"),
)


def capacity_items(summary: dict) -> list[tuple[str, str]]:
    """The sparse capacity study as (label, text) items."""
    cap = section(summary, "sparsity", "capacity")
    if not isinstance(cap, dict):
        return []
    out = []
    for key, label, f in CAPACITY:
        if cap.get(key) is None:
            continue
        v = cap[key]
        if f == "pct":
            text = fmt_pct(v, False)
        elif f == "bytes":
            text = f"{fmt_num(num(v) / 1e9)} GB"
        elif f == "params":
            text = f"{fmt_params(v)} parameters"
        elif f:
            text = FORMATS[f](v)
        else:
            text = str(v)
        out.append((label, text))
    by_format = section(summary, "sparsity", "capacity_by_format")
    if isinstance(by_format, dict) and by_format:
        out.append(
            (
                "capacity gain by format",
                ", ".join(f"{k} {fmt_ratio(v)}" for k, v in by_format.items()),
            )
        )
    return out


def manifest_extra(manifest: dict) -> list[tuple[str, str]]:
    """Manifest entries beyond the ones shown by name (command, counts, ...) and the versions of
    the libraries writing the report, as (label, text)."""
    shown = {"config_hash", "preset", "versions", "created_utc", "wall_time_s", "quick", "config"}

    def text(v: Any) -> str:
        if isinstance(v, dict):
            return ", ".join(
                f"{k} ({text(x)})" if isinstance(x, dict) else f"{k} {text(x)}"
                for k, x in v.items()
            )
        if isinstance(v, list | tuple):
            return ", ".join(text(x) for x in v)
        if isinstance(v, bool) or not isinstance(v, int | float):
            return str(v)
        return fmt_int(v) if float(v).is_integer() else fmt_num(v)

    out = [(k.replace("_", " "), text(v)) for k, v in manifest.items() if k not in shown]
    libs = []
    for name in ("plotly", "matplotlib", "jinja2"):
        try:
            libs.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    if libs:
        out.append(("report written with", ", ".join(libs)))
    return out


def created(manifest: dict) -> str:
    """The run's creation time as ``YYYY-MM-DD HH:MM UTC`` (the raw text if unparseable)."""
    raw = str(manifest.get("created_utc") or "")
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return raw


def serving(summary: dict) -> dict | None:
    """The serving comparison (``compare.serving`` and ``compare.summary.headline``), formatted;
    None when the run has none."""
    sv = section(summary, "compare", "serving")
    if not isinstance(sv, dict):
        return None

    def usd(v):
        return "not reachable" if v is None else fmt_usd(v)

    def ratio(v):
        return "-" if v is None else f"{v:.1f}x"

    rows = []
    for h in section(summary, "compare", "summary", "headline") or []:
        m, s = h["rented_measured_deployment"], h["rented_simulated_at_slo"]
        rows.append(
            {
                "model": h["model"],
                "device": h["device"],
                "cc": usd(h["chiplet_cloud_usd_per_million_tokens"]),
                "measured": usd(m["usd_per_million_tokens"]),
                "measured_ratio": ratio(m["ratio"]),
                "simulated": usd(s["usd_per_million_tokens"]),
                "simulated_ratio": ratio(s["ratio"]),
            }
        )
    return {
        "workload": (sv.get("workload") or {}).get("name", "?"),
        "slo": (sv.get("slo") or {}).get("spec", "none"),
        "headline": rows,
    }
