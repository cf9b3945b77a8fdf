"""The self-contained offline HTML report of ``chipletcloud reproduce``.

:func:`write_report` turns the run's ``summary.json`` (as a dict) and its ``fronts/*.parquet`` into
one ``report.html``: plotly.js inlined once in the page head, every plot a plotly figure drawn
from inline JSON, plain CSS, and no URL to anything outside the file (no CDN, web font or
MathJax), so the report opens offline from disk. Sections missing from the summary are skipped.
"""

from __future__ import annotations

import math
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import plotly.graph_objects as go
from markupsafe import Markup
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from chipletcloud.report.figures import (
    FIGURES,
    baseline_points,
    bin_label,
    device_label,
    fronts,
    in_optimum,
    model_colours,
    model_order,
    num,
    pair,
    rows_by,
    section,
)

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
PLOT_CONFIG = {"displaylogo": False, "responsive": True}
MAX_FRONT_POINTS = 3000  # per model in the interactive Pareto plot
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
FRONT_HOVER = (  # front column, hover label, d3 format
    ("die_area_mm2", "die", ".0f", " mm²"),
    ("sram_mb_per_chip", "SRAM", ".3~g", " MB/chip"),
    ("tflops_per_chip", "compute", ".3~g", " TFLOPS/chip"),
    ("servers", "servers", ".0f", ""),
    ("tp", "TP", ".0f", ""),
    ("pp", "PP", ".0f", ""),
    ("batch", "batch", ".0f", ""),
    ("micro_batch", "micro-batch", ".0f", ""),
)


# ------------------------------------------------------------------------------------- formats


def fmt_num(x: Any, digits: int = 3) -> str:
    """A number to ``digits`` significant figures, thousands separated; an em dash for none."""
    v = num(x)
    if math.isnan(v):
        return "—" if x is None or not isinstance(x, str) else x
    if v != 0 and (abs(v) >= 10**digits or abs(v) < 1e-4):
        return f"{v:,.0f}" if abs(v) >= 10**digits else f"{v:.{digits - 1}e}"
    return f"{v:.{digits}g}"


def fmt_int(x: Any) -> str:
    v = num(x)
    return "—" if math.isnan(v) else f"{v:,.0f}"


def fmt_usd(x: Any) -> str:
    v = num(x)
    return "—" if math.isnan(v) else f"${fmt_num(v, 3)}"


def fmt_ratio(x: Any) -> str:
    v = num(x)
    if math.isnan(v):
        return "—"
    return f"{v:,.0f}×" if v >= 100 else f"{v:.1f}×" if v >= 10 else f"{v:.2g}×"


def fmt_pct(x: Any, signed: bool = True) -> str:
    v = num(x)
    if math.isnan(v):
        return "—"
    p = v * 100
    if 0 < abs(p) < 0.05:  # tiny errors keep two significant figures, not "+0.0%"
        return f"{p:+.2g}%" if signed else f"{p:.2g}%"
    return f"{p:+.1f}%" if signed else f"{p:.1f}%"


def fmt_ms(x: Any) -> str:
    v = num(x)
    return "—" if math.isnan(v) else fmt_num(v * 1e3, 3)


def fmt_kw(x: Any) -> str:
    v = num(x)
    return "—" if math.isnan(v) else fmt_num(v / 1e3, 3)


def fmt_duration(x: Any) -> str:
    v = num(x)
    if math.isnan(v):
        return "—"
    if v < 120:
        return f"{v:.1f} s"
    if v < 7200:
        return f"{v / 60:.1f} min"
    return f"{v / 3600:.2f} h"


def fmt_params(x: Any) -> str:
    v = num(x)
    if math.isnan(v):
        return "—"
    for scale, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M")):
        if abs(v) >= scale:
            return f"{v / scale:.3g}{unit}"
    return fmt_num(v)


def fmt_si(x: Any) -> str:
    """Large numbers with k/M/B suffixes (2.0M), small ones as :func:`fmt_num`."""
    v = num(x)
    if math.isnan(v):
        return "—"
    for scale, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= scale:
            return f"{v / scale:.3g}{unit}"
    return fmt_num(v)


def fmt_money(x: Any) -> str:
    v = num(x)
    return "—" if math.isnan(v) else f"${fmt_si(v)}"


def fmt_fixed2(x: Any) -> str:
    v = num(x)
    return "—" if math.isnan(v) else f"{v:.2f}"


FORMATS = {
    "num": fmt_num,
    "fixed2": fmt_fixed2,
    "si": fmt_si,
    "money": fmt_money,
    "int": fmt_int,
    "usd": fmt_usd,
    "ratio": fmt_ratio,
    "pct": fmt_pct,
    "ms": fmt_ms,
    "kw": fmt_kw,
    "duration": fmt_duration,
    "params": fmt_params,
}


# ------------------------------------------------------------------------------ plotly figures


def _layout(fig: go.Figure, title: str, height: int = 440, **kw) -> go.Figure:
    fig.update_layout(
        template="plotly_white",
        title={"text": title, "x": 0.01, "xanchor": "left", "font": {"size": 15}},
        font={"family": FONT, "size": 12},
        height=height,
        margin={"l": 70, "r": 30, "t": 60, "b": 60},
        hoverlabel={"font": {"family": FONT}},
        legend={"bgcolor": "rgba(255,255,255,0.8)"},
        **kw,
    )
    return fig


def _downsample(table: dict[str, np.ndarray], limit: int) -> dict[str, np.ndarray]:
    n = len(table["tpot_s"])
    if n <= limit:
        return table
    idx = np.unique(np.linspace(0, n - 1, limit).round().astype(int))
    return {k: np.asarray(v)[idx] for k, v in table.items()}


def _front_customdata(table: dict[str, np.ndarray]) -> np.ndarray:
    n = len(table["tpot_s"])
    cols = [
        np.asarray(table[c], dtype=float) if c in table else np.full(n, np.nan)
        for c, *_ in FRONT_HOVER
    ]
    cols += [np.asarray(table["usd_per_million_tokens"], float), table["tpot_s"] * 1e3]
    return np.column_stack(cols)


def _design_hover(title: str) -> str:
    lines = [f"<b>{title}</b>"]
    for i, (_, label, f, unit) in enumerate(FRONT_HOVER):
        lines.append(f"{label} %{{customdata[{i}]:{f}}}{unit}")
    k = len(FRONT_HOVER)
    lines.append(f"<b>$%{{customdata[{k}]:.4~g}} per 1M tokens</b>")
    lines.append(f"%{{customdata[{k + 1}]:.3~g}} ms/token")
    return "<br>".join(lines) + "<extra></extra>"


def _card_customdata(card: dict) -> list[float]:
    return [num(card.get(c)) for c, *_ in FRONT_HOVER] + [
        num(card.get("usd_per_million_tokens")),
        num(card.get("latency_s_per_token")) * 1e3,
    ]


def pareto_plot(summary: dict, out_dir: Path) -> go.Figure | None:
    fr = fronts(summary, out_dir)
    optimal = section(summary, "optimal") or {}
    base = baseline_points(summary)
    if not fr and not optimal and not base:
        return None
    colours = model_colours(summary, out_dir)
    fig = go.Figure()
    for model in model_order(summary, out_dir):
        c = colours[model]
        if model in fr:
            t = _downsample(fr[model], MAX_FRONT_POINTS)
            fig.add_scatter(
                x=t["tpot_s"] * 1e3,
                y=t["usd_per_million_tokens"] / 1e3,
                mode="lines+markers",
                name=f"{model}",
                legendgroup=model,
                line={"color": c, "width": 2},
                marker={"size": 5},
                customdata=_front_customdata(t),
                hovertemplate=_design_hover(f"{model}: Pareto design"),
            )
        for which, symbol, label in (
            ("tco_optimal", "star", "TCO-optimal"),
            ("latency_optimal", "triangle-up", "latency-optimal"),
        ):
            card = (optimal.get(model) or {}).get(which) or {}
            cd = _card_customdata(card)
            if cd[-1] > 0 and cd[-2] > 0:
                fig.add_scatter(
                    x=[cd[-1]],
                    y=[cd[-2] / 1e3],
                    mode="markers",
                    name=f"{model} {label}",
                    legendgroup=model,
                    showlegend=False,
                    marker={
                        "symbol": symbol,
                        "size": 16 if symbol == "star" else 11,
                        "color": c,
                        "line": {"color": "black", "width": 1},
                    },
                    customdata=[cd],
                    hovertemplate=_design_hover(f"{model}: {label} design"),
                )
    symbols = {"o": "circle", "s": "square", "D": "diamond", "P": "cross"}
    groups: dict[tuple[str, str], list[dict]] = {}
    for b in base:
        groups.setdefault((b["device"], b["kind"]), []).append(b)
    for (device, kind), bs in groups.items():
        sym = symbols.get(bs[0]["marker"], "cross") + ("" if kind == "rented" else "-open")
        fig.add_scatter(
            x=[b["latency_s"] * 1e3 for b in bs],
            y=[b["usd_per_million_tokens"] / 1e3 for b in bs],
            mode="markers",
            name=f"{device} {kind}",
            legendgroup="baselines",
            legendgrouptitle={"text": "baselines"},
            marker={
                "symbol": sym,
                "size": 11,
                "color": [colours.get(b["model"], "#555") for b in bs],
                "line": {"color": "#222", "width": 1.5 if kind == "rented" else 0},
            },
            customdata=[
                [b["model"], b["devices"], b["tp"], b["pp"], b["batch"], b["ratio"]] for b in bs
            ],
            hovertemplate=(
                f"<b>{device} {kind}</b> (%{{customdata[0]}})<br>"
                "%{customdata[1]} devices · TP %{customdata[2]} · PP %{customdata[3]}<br>"
                "batch %{customdata[4]}<br>$%{y:.4~g} per 1K tokens<br>%{x:.3~g} ms/token<br>"
                "%{customdata[5]:.3~g}× Chiplet Cloud's cost<extra></extra>"
            ),
        )
    _layout(
        fig,
        "Pareto fronts: TCO per 1K tokens vs latency (★ TCO-optimal, ▲ latency-optimal)",
        height=560,
    )
    fig.update_xaxes(type="log", title="latency (ms per output token)")
    fig.update_yaxes(type="log", title="TCO (USD per 1K tokens)")
    fig.update_layout(legend={"groupclick": "toggleitem"})
    return fig


def die_size_plot(summary: dict, out_dir: Path) -> go.Figure | None:
    study = section(summary, "studies", "die_size")
    bins = [b for b in (study or {}).get("bins") or [] if isinstance(b, dict)]
    if not bins:
        return None
    labels = [bin_label(b) for b in bins]
    optimum = study.get("optimum_mm2")
    opt = [in_optimum(b, optimum) for b in bins]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for key, name, colour in (
        ("capex_usd_per_million_tokens", "capex", "#4e79a7"),
        ("opex_usd_per_million_tokens", "opex", "#f28e2b"),
    ):
        fig.add_bar(
            x=labels,
            y=[num(b.get(key)) for b in bins],
            name=name,
            marker={
                "color": colour,
                "line": {"color": ["black" if o else colour for o in opt], "width": 2},
            },
            hovertemplate=f"{name}: $%{{y:.4~g}} per 1M tokens<br>die %{{x}} mm²<extra></extra>",
            secondary_y=False,
        )
    fig.add_scatter(
        x=labels,
        y=[num(b.get("latency_opt_s_per_token")) * 1e3 for b in bins],
        customdata=[num(b.get("latency_opt_usd_per_million_tokens")) for b in bins],
        mode="lines+markers",
        name="latency-optimal design",
        line={"color": "black"},
        hovertemplate="latency-optimal: %{y:.3~g} ms/token, $%{customdata:.4~g} per 1M tokens"
        "<extra></extra>",
        secondary_y=True,
    )
    for label, b, o in zip(labels, bins, opt, strict=True):
        if o:
            fig.add_annotation(
                x=label,
                y=num(b.get("usd_per_million_tokens")),
                text="<b>optimum</b>",
                showarrow=True,
                arrowhead=2,
                ay=-50,
                bgcolor="rgba(255,255,255,0.85)",
            )
    _layout(fig, f"Die size study ({study.get('model', '')}): TCO-optimal cost per die-area bin")
    fig.update_layout(
        barmode="stack",
        legend={"orientation": "h", "y": 1.02, "x": 1, "xanchor": "right", "yanchor": "bottom"},
    )
    fig.update_xaxes(title="die area bin (mm²)", type="category")
    fig.update_yaxes(title="TCO-optimal cost (USD per 1M tokens)", secondary_y=False)
    lat = [num(b.get("latency_opt_s_per_token")) * 1e3 for b in bins]
    lat_top = max([v for v in lat if not math.isnan(v)] + [0.0])
    tot = [num(b.get("usd_per_million_tokens")) for b in bins]
    tot_top = max([v for v in tot if not math.isnan(v)] + [0.0])
    fig.update_yaxes(
        title="latency-optimal (ms/token)",
        secondary_y=True,
        showgrid=False,
        tickmode="auto",
        range=[0, lat_top * 1.25 or 1],
    )
    fig.update_yaxes(range=[0, tot_top * 1.3 or 1], secondary_y=False)
    return fig


def _lines_vs(
    groups: dict[Any, list[dict]],
    x_key: str,
    panels: list[tuple[str, str, float, str]],  # y key, axis title, scale, y axis type
    colours: dict,
    title: str,
    x_title: str,
    styles: dict | None = None,
) -> go.Figure:
    fig = make_subplots(rows=1, cols=len(panels), horizontal_spacing=0.1)
    for g, rows in groups.items():
        model = g[0] if isinstance(g, tuple) else g
        name = f"{g[0]}, batch {g[1]}" if isinstance(g, tuple) else str(g)
        rows = sorted(rows, key=lambda r: num(r.get(x_key)))
        for col, (key, _, scale, _) in enumerate(panels, start=1):
            fig.add_scatter(
                x=[num(r.get(x_key)) for r in rows],
                y=[num(r.get(key)) * scale for r in rows],
                mode="lines+markers",
                name=name,
                legendgroup=name,
                showlegend=col == 1,
                line={"color": colours.get(model, "#555"), "dash": (styles or {}).get(g, "solid")},
                hovertemplate=f"<b>{name}</b><br>{x_key} %{{x}}<br>%{{y:.4~g}}<extra></extra>",
                row=1,
                col=col,
            )
    for col, (_, ytitle, _, ytype) in enumerate(panels, start=1):
        fig.update_xaxes(type="log", title=x_title, dtick=math.log10(2), row=1, col=col)
        fig.update_yaxes(type=ytype, title=ytitle, row=1, col=col)
    return _layout(fig, title)


def batch_plot(summary: dict, out_dir: Path) -> go.Figure | None:
    study = section(summary, "studies", "batch")
    groups = rows_by((study or {}).get("rows") or [], "model")
    if not groups:
        return None
    colours = model_colours(summary, out_dir)
    fig = _lines_vs(
        groups,
        "batch",
        [
            ("usd_per_million_tokens", "TCO (USD per 1M tokens)", 1.0, "log"),
            ("latency_s_per_token", "latency (ms per token)", 1e3, "log"),
        ],
        colours,
        "Batch size: cost per token and latency (★ optimum)",
        "batch size (sequences)",
    )
    for model, b in (study.get("optimum") or {}).items():
        hit = [r for r in groups.get(model, []) if num(r.get("batch")) == num(b)]
        if hit:
            fig.add_scatter(
                x=[num(b)],
                y=[num(hit[0].get("usd_per_million_tokens"))],
                mode="markers",
                marker={
                    "symbol": "star",
                    "size": 16,
                    "color": colours.get(model, "#555"),
                    "line": {"color": "black", "width": 1},
                },
                name=f"{model} optimum",
                legendgroup=model,
                showlegend=False,
                hovertemplate=f"<b>{model} optimum</b>: batch %{{x}}<br>$%{{y:.4~g}} per 1M tokens"
                "<extra></extra>",
                row=1,
                col=1,
            )
    return fig


def pipeline_plot(summary: dict, out_dir: Path) -> go.Figure | None:
    rows = [r for r in section(summary, "studies", "pipeline", "rows") or [] if isinstance(r, dict)]
    if not rows:
        return None
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r.get("model"), r.get("batch")), []).append(r)
    dashes = ("solid", "dash", "dot", "dashdot")
    batches = list(dict.fromkeys(g[1] for g in groups))
    styles = {g: dashes[batches.index(g[1]) % len(dashes)] for g in groups}
    return _lines_vs(
        groups,
        "pp",
        [
            ("usd_per_million_tokens", "TCO (USD per 1M tokens)", 1.0, "log"),
            ("utilisation", "pipeline utilisation (%)", 100.0, "linear"),
        ],
        model_colours(summary, out_dir),
        "Pipeline stages: cost per token and utilisation per (model, batch)",
        "pipeline stages (PP)",
        styles,
    )


def design_choice_plot(summary: dict, out_dir: Path) -> go.Figure | None:
    study = section(summary, "studies", "design_choice")
    rows = [r for r in (study or {}).get("rows") or [] if isinstance(r, dict)]
    if not rows:
        return None
    models = list(rows_by(rows, "model"))
    geo = study.get("geomean") or {}
    groups = models + (["geomean"] if geo else [])
    value = {(r.get("model"), r.get("design")): r for r in rows}
    fig = go.Figure()
    palette = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#b07aa1")
    for j, d in enumerate(rows_by(rows, "design")):
        ys = [num((value.get((m, d)) or {}).get("normalised")) for m in models]
        usd = [num((value.get((m, d)) or {}).get("usd_per_million_tokens")) for m in models]
        if geo:
            ys.append(num(geo.get(d)))
            usd.append(math.nan)
        fig.add_bar(
            x=groups,
            y=ys,
            name=str(d),
            marker_color=palette[j % len(palette)],
            customdata=usd,
            hovertemplate=f"<b>{d}</b> · %{{x}}<br>%{{y:.3~g}}× the best design"
            "<br>$%{customdata:.4~g} per 1M tokens<extra></extra>",
        )
    fig.add_hline(y=1.0, line={"dash": "dash", "color": "black", "width": 1})
    _layout(fig, "Design choice: normalised cost per token of each design", barmode="group")
    fig.update_yaxes(title="TCO per token (normalised)")
    return fig


def nre_plot(summary: dict, out_dir: Path) -> go.Figure | None:
    study = section(summary, "studies", "nre")
    curve = sorted(
        (r for r in (study or {}).get("curve") or [] if isinstance(r, dict)),
        key=lambda r: num(r.get("tokens_per_s")),
    )
    if not curve:
        return None
    x = [num(r.get("tokens_per_s")) for r in curve]
    fig = go.Figure()
    for key, name, colour in (
        ("chiplet_cloud_usd_per_1k_tokens", "Chiplet Cloud (incl. NRE)", "#4e79a7"),
        ("rented_a100_usd_per_1k_tokens", "rented A100", "#e15759"),
    ):
        fig.add_scatter(
            x=x,
            y=[num(r.get(key)) for r in curve],
            mode="lines",
            name=name,
            line={"color": colour, "width": 3},
            hovertemplate=f"<b>{name}</b><br>%{{x:,.3~s}} tokens/s<br>$%{{y:.4~g}} per 1K tokens"
            "<extra></extra>",
        )
    be = num(study.get("breakeven_tokens_per_s"))
    if be > 0:
        fig.add_vline(x=be, line={"color": "black", "width": 1.5})
        fig.add_annotation(
            x=math.log10(be),
            y=1,
            yref="paper",
            yanchor="top",
            xanchor="left",
            showarrow=False,
            text=f"<b>break-even</b><br>{be:,.0f} tokens/s",
        )
    for i, (name, tps) in enumerate((study.get("markers") or {}).items()):
        v = num(tps)
        if v > 0:
            fig.add_vline(x=v, line={"color": "#777", "width": 1, "dash": "dot"})
            fig.add_annotation(
                x=math.log10(v),
                y=0.04 + 0.09 * (i % 3),
                yref="paper",
                xanchor="left",
                showarrow=False,
                text=str(name),
                bgcolor="rgba(255,255,255,0.85)",
            )
    nre = num(study.get("nre_usd"))
    title = "NRE amortisation: cost per 1K tokens vs served traffic"
    if nre > 0:
        title += f" (NRE ${nre / 1e6:,.1f}M)"
    _layout(fig, title)
    fig.update_xaxes(type="log", title="served traffic (tokens per second)")
    fig.update_yaxes(type="log", title="cost (USD per 1K tokens)")
    return fig


def sensitivity_plot(summary: dict, out_dir: Path) -> go.Figure | None:
    study = section(summary, "studies", "sensitivity")
    rows = [r for r in (study or {}).get("rows") or [] if isinstance(r, dict)]
    base = num((study or {}).get("base_usd_per_million_tokens"))
    if not rows or not base > 0:
        return None

    def delta(r: dict, k: str) -> float:
        return num(r.get(f"{k}_usd_per_million_tokens")) / base * 100 - 100

    def impact(r: dict) -> float:
        return sum(abs(d) for d in (delta(r, "low"), delta(r, "high")) if not math.isnan(d))

    rows = sorted(rows, key=impact, reverse=True)  # biggest on top (the y axis is reversed)
    names = [str(r.get("parameter")) for r in rows]
    fig = go.Figure()
    for k, label, colour in (("low", "low value", "#4e79a7"), ("high", "high value", "#f28e2b")):
        fig.add_bar(
            y=names,
            x=[delta(r, k) for r in rows],
            orientation="h",
            name=label,
            marker_color=colour,
            text=[str(r.get(f"{k}_label", "")) for r in rows],
            textposition="outside",
            cliponaxis=False,
            customdata=[num(r.get(f"{k}_usd_per_million_tokens")) for r in rows],
            hovertemplate="<b>%{y}</b>: %{text}<br>%{x:+.1f}% · $%{customdata:.4~g} per 1M tokens"
            "<extra></extra>",
        )
    _layout(
        fig,
        f"Sensitivity ({study.get('model', '')}): cost per token around "
        f"${fmt_num(base)} per 1M tokens",
        height=max(320, 48 * len(rows) + 140),
        barmode="group",
        bargap=0.25,
    )
    fig.update_yaxes(autorange="reversed")
    span = max([abs(delta(r, k)) for r in rows for k in ("low", "high")] + [1.0])
    span = 1.0 if math.isnan(span) else span
    fig.update_xaxes(
        title="change of cost per token (%)",
        zeroline=True,
        zerolinecolor="black",
        range=[-span * 1.4, span * 1.4],
    )
    return fig


def sparsity_plot(summary: dict, out_dir: Path) -> go.Figure | None:
    rows = [r for r in section(summary, "sparsity", "tco_vs_sparsity") or [] if isinstance(r, dict)]
    if not rows:
        return None
    formats = rows_by(rows, "sparse_format")
    colours = model_colours(summary, out_dir)
    fig = make_subplots(
        rows=1,
        cols=len(formats),
        shared_yaxes=True,
        subplot_titles=[f"format: {f}" for f in formats],
    )
    seen = set()
    for col, rs in enumerate(formats.values(), start=1):
        for model, mr in rows_by(rs, "model").items():
            mr = sorted(mr, key=lambda r: num(r.get("sparsity")))
            fig.add_scatter(
                x=[num(r.get("sparsity")) * 100 for r in mr],
                y=[num(r.get("usd_per_million_tokens")) for r in mr],
                customdata=[num(r.get("relative_to_dense")) for r in mr],
                mode="lines+markers",
                name=str(model),
                legendgroup=str(model),
                showlegend=model not in seen,
                line={"color": colours.get(model, "#555")},
                hovertemplate=f"<b>{model}</b><br>sparsity %{{x:.0f}}%<br>"
                "$%{y:.4~g} per 1M tokens<br>%{customdata:.3~g}× dense<extra></extra>",
                row=1,
                col=col,
            )
            seen.add(model)
        fig.update_xaxes(title="weight sparsity (%)", range=[-5, 100], row=1, col=col)
    fig.update_yaxes(type="log")
    fig.update_yaxes(title="TCO (USD per 1M tokens)", row=1, col=1)
    return _layout(fig, "Cost per token vs weight sparsity")


PLOTS = {  # name (the plot element is "plot-<name>"): builder
    "pareto": pareto_plot,
    "die_size": die_size_plot,
    "batch": batch_plot,
    "pipeline": pipeline_plot,
    "design_choice": design_choice_plot,
    "nre": nre_plot,
    "sensitivity": sensitivity_plot,
    "sparsity": sparsity_plot,
}


def plotly_figures(summary: dict, out_dir: Path) -> dict[str, go.Figure]:
    """The report's interactive figures by name (those the summary has data for)."""
    out = {}
    for name, build in PLOTS.items():
        fig = build(summary, Path(out_dir))
        if fig is not None:
            # powers of ten (10⁻⁵), not SI prefixes (10µ), on axes of dollars and seconds
            fig.update_xaxes(exponentformat="power")
            fig.update_yaxes(exponentformat="power")
            out[name] = fig
    return out


def interactive_plot_ids(summary: dict, out_dir: Path) -> list[str]:
    """The element ids of the report's plotly plots."""
    return [f"plot-{name}" for name in plotly_figures(summary, out_dir)]


def _plot_html(fig: go.Figure, name: str) -> Markup:
    html = fig.to_html(
        include_plotlyjs=False,
        include_mathjax=False,
        full_html=False,
        div_id=f"plot-{name}",
        config=PLOT_CONFIG,
        default_width="100%",
        default_height=f"{fig.layout.height or 440}px",
    )
    return Markup(html)


# --------------------------------------------------------------------------------- the context


def _headline(summary: dict) -> list[dict]:
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


def _compare_table(summary: dict) -> dict:
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


def _glance(summary: dict) -> list[tuple[str, str]]:
    """A few key numbers for the first screen."""
    out = []
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
    if v.get("median_abs_error") is not None:
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


def _designs(summary: dict) -> list[dict]:
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


def _captions(summary: dict) -> dict[str, str]:
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
    cap["pareto"] = (
        "Each line is a model's Pareto front of Chiplet Cloud designs; hover a point for its "
        "design. Filled baseline markers are rented, open ones fabricated; they take the colour "
        "of their model. Click legend entries to hide or show them."
    )
    return cap


def _sparsity_table(summary: dict) -> dict | None:
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


def _validation(summary: dict) -> dict | None:
    v = section(summary, "validation")
    if not isinstance(v, dict):
        return None
    cases = [c for c in v.get("cases") or [] if isinstance(c, dict)]
    tol = v.get("tolerance")
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


def _capacity(summary: dict) -> list[tuple[str, str]]:
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


def _manifest_extra(manifest: dict) -> list[tuple[str, str]]:
    """Manifest entries beyond the ones shown by name (command, counts, ...)."""
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


def _created(manifest: dict) -> str:
    raw = str(manifest.get("created_utc") or "")
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return raw


def context(summary: dict, out_dir: Path) -> dict:
    """Everything the template shows, formatted."""
    out_dir = Path(out_dir)
    manifest = section(summary, "manifest") or {}
    figs = plotly_figures(summary, out_dir)
    plots = {name: _plot_html(fig, name) for name, fig in figs.items()}
    folder = out_dir / "figures"
    static = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    portfolio = section(summary, "portfolio")
    return {
        "manifest": manifest,
        "created": _created(manifest),
        "versions": manifest.get("versions") or {},
        "headline": _headline(summary),
        "has_headline": bool(section(summary, "compare", "summary")),
        "compare": _compare_table(summary),
        "glance": _glance(summary),
        "designs": _designs(summary),
        "card_headers": [h for _, h, _ in CARD_COLUMNS],
        "portfolio": portfolio if isinstance(portfolio, dict) else None,
        "capacity": section(summary, "sparsity", "capacity"),
        "capacity_items": _capacity(summary),
        "manifest_extra": _manifest_extra(manifest),
        "portfolio_rows": [
            (m, (section(portfolio, "per_model") or {})[m])
            for m in model_order(summary)
            if isinstance(portfolio, dict) and m in (section(portfolio, "per_model") or {})
        ],
        "sparsity_table": _sparsity_table(summary),
        "sparsity_rows": [
            r for r in section(summary, "sparsity", "tco_vs_sparsity") or [] if isinstance(r, dict)
        ],
        "validation": _validation(summary),
        "plots": plots,
        "captions": _captions(summary),
        "static_figures": [n for n in static if n.rsplit(".", 1)[0] in FIGURES],
        "n_models": len(model_order(summary, out_dir)),
        "plotly_js": Markup(get_plotlyjs()),
    }


def _defined(f):
    """A formatter that takes a missing value (jinja2's Undefined) as None."""

    def wrapped(x: Any, *args: Any, **kwargs: Any) -> str:
        return f(None if isinstance(x, jinja2.Undefined) else x, *args, **kwargs)

    return wrapped


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("chipletcloud.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.ChainableUndefined,
    )
    env.filters.update({k: _defined(f) for k, f in FORMATS.items()})
    return env


def render_report(summary: dict, out_dir: Path) -> str:
    """The report's HTML text."""
    return _environment().get_template("report.html.j2").render(**context(summary, out_dir))


def write_report(summary: dict, out_dir: Path) -> Path:
    """Write ``out_dir/report.html``: one self-contained file that works offline."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "report.html"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(render_report(summary, out_dir), encoding="utf-8")
    tmp.replace(path)
    return path
