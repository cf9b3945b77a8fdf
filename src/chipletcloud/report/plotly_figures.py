"""The report's interactive figures (plotly), drawn from :mod:`.plotdata`.

Each ``*_plot`` function takes the run's ``summary.json`` as a dict and the run folder and returns
a :class:`plotly.graph_objects.Figure`, or None when the summary has no such section;
:func:`plotly_figures` returns every figure the summary has data for, by name.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from chipletcloud.report import plotdata
from chipletcloud.report.plotdata import DESIGN_FIELDS, LinesData

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
MAX_FRONT_POINTS = 3000  # per model in the interactive Pareto plot
DESIGN_HOVER = {  # design field: hover label, d3 format, unit
    "die_area_mm2": ("die", ".0f", " mm²"),
    "sram_mb_per_chip": ("SRAM", ".3~g", " MB/chip"),
    "tflops_per_chip": ("compute", ".3~g", " TFLOPS/chip"),
    "servers": ("servers", ".0f", ""),
    "tp": ("TP", ".0f", ""),
    "pp": ("PP", ".0f", ""),
    "batch": ("batch", ".0f", ""),
    "micro_batch": ("micro-batch", ".0f", ""),
}
OPTIMUM_SYMBOLS = {"tco_optimal": ("star", 16), "latency_optimal": ("triangle-up", 11)}
DASHES = ("solid", "dash", "dot", "dashdot")
NO_COLOUR = "#555"  # a line of no known model
CAPEX, OPEX = "#4e79a7", "#f28e2b"


def _layout(fig: go.Figure, title: str, height: int = 440, **kw) -> go.Figure:
    """The report's common layout (template, title, font, margins) applied; returns ``fig``."""
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


def _design_hover(title: str) -> str:
    """A hover template for a design row of :mod:`.plotdata` (``DESIGN_FIELDS``, cost, latency)."""
    lines = [f"<b>{title}</b>"]
    for i, field in enumerate(DESIGN_FIELDS):
        label, f, unit = DESIGN_HOVER[field]
        lines.append(f"{label} %{{customdata[{i}]:{f}}}{unit}")
    k = len(DESIGN_FIELDS)
    lines.append(f"<b>$%{{customdata[{k}]:.4~g}} per 1M tokens</b>")
    lines.append(f"%{{customdata[{k + 1}]:.3~g}} ms/token")
    return "<br>".join(lines) + "<extra></extra>"


def pareto_plot(summary: dict, out_dir: Path) -> go.Figure | None:
    """Every model's front (hover: the design), its optimal designs and the baselines."""
    d = plotdata.pareto_data(summary, out_dir, max_front_points=MAX_FRONT_POINTS)
    if d is None:
        return None
    fig = go.Figure()
    for m in d.models:
        if m.front is not None:
            fig.add_scatter(
                x=m.front.latency_ms,
                y=m.front.usd_per_1k,
                mode="lines+markers",
                name=m.model,
                legendgroup=m.model,
                line={"color": m.colour, "width": 2},
                marker={"size": 5},
                customdata=m.front.designs,
                hovertemplate=_design_hover(f"{m.model}: Pareto design"),
            )
        for p in m.optima:
            symbol, size = OPTIMUM_SYMBOLS[p.which]
            fig.add_scatter(
                x=[p.latency_ms],
                y=[p.usd_per_1k],
                mode="markers",
                name=f"{m.model} {p.label}",
                legendgroup=m.model,
                showlegend=False,
                marker={
                    "symbol": symbol,
                    "size": size,
                    "color": m.colour,
                    "line": {"color": "black", "width": 1},
                },
                customdata=[p.design],
                hovertemplate=_design_hover(f"{m.model}: {p.label} design"),
            )
    for (device, kind), bs in d.baseline_groups.items():
        rented = kind == "rented"
        fig.add_scatter(
            x=[b.latency_ms for b in bs],
            y=[b.usd_per_1k for b in bs],
            mode="markers",
            name=f"{device} {kind}",
            legendgroup="baselines",
            legendgrouptitle={"text": "baselines"},
            marker={
                "symbol": bs[0].shape + ("" if rented else "-open"),
                "size": 11,
                "color": [b.colour or NO_COLOUR for b in bs],
                "line": {"color": "#222", "width": 1.5 if rented else 0},
            },
            customdata=[[b.model, b.devices, b.tp, b.pp, b.batch, b.ratio] for b in bs],
            hovertemplate=(
                f"<b>{device} {kind}</b> (%{{customdata[0]}})<br>"
                "%{customdata[1]} devices · TP %{customdata[2]} · PP %{customdata[3]}<br>"
                "batch %{customdata[4]}<br>$%{y:.4~g} per 1K tokens<br>%{x:.3~g} ms/token<br>"
                "%{customdata[5]:.3~g}× Chiplet Cloud's cost<extra></extra>"
            ),
        )
    _layout(fig, d.interactive_title, height=560)
    fig.update_xaxes(type="log", title=d.x_label)
    fig.update_yaxes(type="log", title=d.y_label)
    fig.update_layout(legend={"groupclick": "toggleitem"})
    return fig


def die_size_plot(summary: dict, out_dir: Path) -> go.Figure | None:
    """Stacked capex/opex per die-area bin, the latency-optimal latency on a second axis."""
    d = plotdata.die_size_data(summary, out_dir)
    if d is None:
        return None
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for ys, name, colour in ((d.capex, "capex", CAPEX), (d.opex, "opex", OPEX)):
        fig.add_bar(
            x=d.bins,
            y=ys,
            name=name,
            marker={
                "color": colour,
                "line": {"color": ["black" if o else colour for o in d.optimum], "width": 2},
            },
            hovertemplate=f"{name}: $%{{y:.4~g}} per 1M tokens<br>die %{{x}} mm²<extra></extra>",
            secondary_y=False,
        )
    fig.add_scatter(
        x=d.bins,
        y=d.latency_ms,
        customdata=d.latency_usd,
        mode="lines+markers",
        name="latency-optimal design",
        line={"color": "black"},
        hovertemplate="latency-optimal: %{y:.3~g} ms/token, $%{customdata:.4~g} per 1M tokens"
        "<extra></extra>",
        secondary_y=True,
    )
    for label, total, optimum in zip(d.bins, d.total, d.optimum, strict=True):
        if optimum:
            fig.add_annotation(
                x=label,
                y=total,
                text="<b>optimum</b>",
                showarrow=True,
                arrowhead=2,
                ay=-50,
                bgcolor="rgba(255,255,255,0.85)",
            )
    _layout(fig, d.interactive_title)
    fig.update_layout(
        barmode="stack",
        legend={"orientation": "h", "y": 1.02, "x": 1, "xanchor": "right", "yanchor": "bottom"},
    )
    fig.update_xaxes(title=d.x_label, type="category")
    fig.update_yaxes(title=d.y_label, secondary_y=False)
    fig.update_yaxes(
        title="latency-optimal (ms/token)",
        secondary_y=True,
        showgrid=False,
        tickmode="auto",
        range=[0, d.latency_max * 1.25 or 1],
    )
    fig.update_yaxes(range=[0, d.total_max * 1.3 or 1], secondary_y=False)
    return fig


def _lines_plot(d: LinesData, x_name: str) -> go.Figure:
    """One subplot per panel of ``d``, lines coloured by model, dashed by ``Line.dash``; the
    markers as stars on the first panel."""
    fig = make_subplots(rows=1, cols=len(d.y_labels), horizontal_spacing=0.1)
    for line in d.lines:
        for col, ys in enumerate(line.ys, start=1):
            fig.add_scatter(
                x=line.x,
                y=ys,
                mode="lines+markers",
                name=line.name,
                legendgroup=line.name,
                showlegend=col == 1,
                line={
                    "color": line.colour or NO_COLOUR,
                    "dash": DASHES[line.dash % len(DASHES)],
                },
                hovertemplate=f"<b>{line.name}</b><br>{x_name} %{{x}}<br>%{{y:.4~g}}"
                "<extra></extra>",
                row=1,
                col=col,
            )
    for col, (ytitle, log) in enumerate(zip(d.y_labels, d.y_log, strict=True), start=1):
        fig.update_xaxes(type="log", title=d.x_label, dtick=math.log10(2), row=1, col=col)
        fig.update_yaxes(type="log" if log else "linear", title=ytitle, row=1, col=col)
    _layout(fig, d.interactive_title)
    for m in d.markers:
        fig.add_scatter(
            x=[m.x],
            y=[m.y],
            mode="markers",
            marker={
                "symbol": "star",
                "size": 16,
                "color": m.colour or NO_COLOUR,
                "line": {"color": "black", "width": 1},
            },
            name=f"{m.model} optimum",
            legendgroup=m.model,
            showlegend=False,
            hovertemplate=f"<b>{m.model} optimum</b>: {x_name} %{{x}}<br>$%{{y:.4~g}} per 1M tokens"
            "<extra></extra>",
            row=1,
            col=1,
        )
    return fig


def batch_plot(summary: dict, out_dir: Path) -> go.Figure | None:
    """Cost per token and latency against batch per model, each model's optimum starred."""
    d = plotdata.batch_data(summary, out_dir)
    return None if d is None else _lines_plot(d, "batch")


def pipeline_plot(summary: dict, out_dir: Path) -> go.Figure | None:
    """Cost per token and utilisation against pipeline stages per (model, batch)."""
    d = plotdata.pipeline_data(summary, out_dir)
    return None if d is None else _lines_plot(d, "pp")


def design_choice_plot(summary: dict, out_dir: Path) -> go.Figure | None:
    """Grouped bars of each design's normalised cost per model and the geomean."""
    d = plotdata.design_choice_data(summary, out_dir)
    if d is None:
        return None
    fig = go.Figure()
    for s in d.designs:
        fig.add_bar(
            x=d.groups,
            y=s.normalised,
            name=s.name,
            marker_color=s.colour,
            customdata=s.usd,
            hovertemplate=f"<b>{s.name}</b> · %{{x}}<br>%{{y:.3~g}}× the best design"
            "<br>$%{customdata:.4~g} per 1M tokens<extra></extra>",
        )
    fig.add_hline(y=1.0, line={"dash": "dash", "color": "black", "width": 1})
    _layout(fig, d.interactive_title, barmode="group")
    fig.update_yaxes(title=d.y_label)
    return fig


def nre_plot(summary: dict, out_dir: Path) -> go.Figure | None:
    """Cost per 1K tokens against served traffic, the break-even and traffic levels marked."""
    d = plotdata.nre_data(summary, out_dir)
    if d is None:
        return None
    fig = go.Figure()
    for ys, name, colour in (
        (d.chiplet_cloud, "Chiplet Cloud (incl. NRE)", "#4e79a7"),
        (d.rented_a100, "rented A100", "#e15759"),
    ):
        fig.add_scatter(
            x=d.tokens_per_s,
            y=ys,
            mode="lines",
            name=name,
            line={"color": colour, "width": 3},
            hovertemplate=f"<b>{name}</b><br>%{{x:,.3~s}} tokens/s<br>$%{{y:.4~g}} per 1K tokens"
            "<extra></extra>",
        )
    if d.breakeven > 0:
        fig.add_vline(x=d.breakeven, line={"color": "black", "width": 1.5})
        fig.add_annotation(
            x=math.log10(d.breakeven),  # annotations on a log axis take log10 coordinates
            y=1,
            yref="paper",
            yanchor="top",
            xanchor="left",
            showarrow=False,
            text=f"<b>break-even</b><br>{d.breakeven_label}",
        )
    for m in d.marks:
        fig.add_vline(x=m.tokens_per_s, line={"color": "#777", "width": 1, "dash": "dot"})
        fig.add_annotation(
            x=math.log10(m.tokens_per_s),
            y=0.04 + 0.09 * m.slot,
            yref="paper",
            xanchor="left",
            showarrow=False,
            text=m.name,
            bgcolor="rgba(255,255,255,0.85)",
        )
    _layout(fig, d.interactive_title)
    fig.update_xaxes(type="log", title=d.x_label)
    fig.update_yaxes(type="log", title=d.y_label)
    return fig


def sensitivity_plot(summary: dict, out_dir: Path) -> go.Figure | None:
    """Tornado of the change of the cost per token, biggest change on top."""
    d = plotdata.sensitivity_data(summary, out_dir)
    if d is None:
        return None
    fig = go.Figure()
    for pct, labels, usd, name, colour in (
        (d.low_pct, d.low_labels, d.low_usd, "low value", CAPEX),
        (d.high_pct, d.high_labels, d.high_usd, "high value", OPEX),
    ):
        fig.add_bar(
            y=d.parameters,
            x=pct,
            orientation="h",
            name=name,
            marker_color=colour,
            text=["" if lab is None else lab for lab in labels],
            textposition="outside",
            cliponaxis=False,
            customdata=usd,
            hovertemplate="<b>%{y}</b>: %{text}<br>%{x:+.1f}% · $%{customdata:.4~g} per 1M tokens"
            "<extra></extra>",
        )
    _layout(
        fig,
        d.interactive_title,
        height=max(320, 48 * len(d.parameters) + 140),
        barmode="group",
        bargap=0.25,
    )
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(
        title=d.interactive_x_label,
        zeroline=True,
        zerolinecolor="black",
        range=[-d.span_pct * 1.4, d.span_pct * 1.4],
    )
    return fig


def sparsity_plot(summary: dict, out_dir: Path) -> go.Figure | None:
    """Cost per token against weight sparsity, a subplot per sparse format."""
    d = plotdata.sparsity_data(summary, out_dir)
    if d is None:
        return None
    fig = make_subplots(
        rows=1, cols=len(d.panels), shared_yaxes=True, subplot_titles=d.panel_titles
    )
    seen = set()
    for col, lines in enumerate(d.panels.values(), start=1):
        for line in lines:
            fig.add_scatter(
                x=line.sparsity_pct,
                y=line.usd,
                customdata=line.relative,
                mode="lines+markers",
                name=str(line.model),
                legendgroup=str(line.model),
                showlegend=line.model not in seen,
                line={"color": line.colour or NO_COLOUR},
                hovertemplate=f"<b>{line.model}</b><br>sparsity %{{x:.0f}}%<br>"
                "$%{y:.4~g} per 1M tokens<br>%{customdata:.3~g}× dense<extra></extra>",
                row=1,
                col=col,
            )
            seen.add(line.model)
        fig.update_xaxes(title=d.x_label, range=[-5, 100], row=1, col=col)
    fig.update_yaxes(type="log")
    fig.update_yaxes(title=d.y_label, row=1, col=1)
    return _layout(fig, d.title)


def _hop_hover(title: str, first: int) -> str:
    """A hover template for a point of the hop-latency study: x the hop latency (ns), its cost
    and die area and design in ``customdata`` (from index ``first``: cost, die area, then
    :data:`.plotdata.HOP_DETAILS`)."""
    c = [f"customdata[{first + i}]" for i in range(2 + len(plotdata.HOP_DETAILS))]
    return (
        f"<b>{title}</b><br>hop %{{x:.4~g}} ns<br>"
        f"<b>$%{{{c[0]}:.4~g}} per 1M tokens</b><br>die %{{{c[1]}:.0f}} mm²<br>"
        f"%{{{c[2]}:.3~g}} ms/token<br>%{{{c[4]}:.0f}} servers × %{{{c[3]}:.0f}} chips<br>"
        f"TP %{{{c[5]}:.0f}} · PP %{{{c[6]}:.0f}} · batch %{{{c[7]}:.0f}}<br>"
        f"all-reduce %{{{c[8]}:.1%}} of decode<extra></extra>"
    )


def hop_latency_plot(summary: dict, out_dir: Path) -> go.Figure | None:
    """Cost per token and die area of each model's TCO-optimal design against the chip-to-chip
    hop latency, the preset's hop latency dashed, the op-latency variants as open diamonds."""
    d = plotdata.hop_latency_data(summary, out_dir)
    if d is None:
        return None
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1)
    for line in d.lines:
        custom = [[line.ys[0][i], line.ys[1][i], *line.details[i]] for i in range(len(line.hop_ns))]
        for col, ys in enumerate(line.ys, start=1):
            fig.add_scatter(
                x=line.hop_ns,
                y=ys,
                mode="lines+markers",
                name=str(line.model),
                legendgroup=str(line.model),
                showlegend=col == 1,
                line={"color": line.colour, "width": 2},
                marker={"size": 6},
                customdata=custom,
                hovertemplate=_hop_hover(f"{line.model}: TCO-optimal", 0),
                row=1,
                col=col,
            )
    for k, v in enumerate(d.variants):
        for col, y in enumerate(v.ys, start=1):
            fig.add_scatter(
                x=[v.hop_ns],
                y=[y],
                mode="markers",
                name=d.variant_label,
                legendgroup="op-latency",
                showlegend=k == 0 and col == 1,
                marker={
                    "symbol": "diamond-open",
                    "size": 12,
                    "color": v.colour,
                    "line": {"width": 2},
                },
                customdata=[[v.op_latency_ns, *v.ys, *v.details]],
                hovertemplate=_hop_hover(
                    f"{v.model}: {d.variant_label} (%{{customdata[0]:.3~g}} ns per operation)", 1
                ),
                row=1,
                col=col,
            )
    _layout(fig, d.interactive_title)
    lo, hi = d.x_range
    for col, (ytitle, log) in enumerate(zip(d.y_labels, d.y_log, strict=True), start=1):
        fig.update_xaxes(
            type="log",
            title=d.x_label,
            range=[math.log10(lo), math.log10(hi)],
            tickvals=d.x_ticks,
            ticktext=[f"{v:g}" for v in d.x_ticks],
            row=1,
            col=col,
        )
        fig.update_yaxes(type="log" if log else "linear", title=ytitle, row=1, col=col)
        if d.default_ns > 0:
            fig.add_vline(
                x=d.default_ns,
                line={"dash": "dash", "color": "#555", "width": 1.2},
                row=1,
                col=col,
            )
            axis = "" if col == 1 else str(col)
            fig.add_annotation(
                x=math.log10(d.default_ns),  # annotations on a log axis take log10 coordinates
                y=1,
                xref=f"x{axis}",
                yref=f"y{axis} domain",
                xanchor="left",
                yanchor="top",
                showarrow=False,
                text=d.default_label,
                font={"size": 11, "color": "#333"},
                bgcolor="rgba(255,255,255,0.85)",
            )
    fig.update_xaxes(matches="x", row=1, col=2)  # zooming one panel zooms both
    return fig


def _log_tickvals(lo: float, hi: float) -> list[float]:
    """Ticks at 1, 2 and 5 times the powers of ten between ``lo`` and ``hi`` (both > 0)."""
    out = []
    for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        out += [float(f"{k}e{e}") for k in (1, 2, 5) if lo <= k * 10.0**e <= hi]
    return out


def _attribution_hover() -> str:
    """The hover of a waterfall bar: the step, its summary, its cost and factor, the design
    (customdata: summary, factor, cost, then :data:`plotdata.ATTRIBUTION_DETAILS`)."""
    return (
        "<b>%{x}</b><br>%{customdata[0]}<br>"
        "<b>$%{customdata[2]:.4~g} per 1M tokens</b> %{customdata[1]}<br>"
        "die %{customdata[3]:.0f} mm² · %{customdata[4]:.0f} chips/server · "
        "%{customdata[5]:.0f} servers<br>"
        "TP %{customdata[6]:.0f} · PP %{customdata[7]:.0f} · batch %{customdata[8]:.0f}<br>"
        "%{customdata[9]:.3~g} ms/token<extra></extra>"
    )


def attribution_plot(summary: dict, out_dir: Path) -> go.Figure | None:
    """A waterfall per model (one row each): the authors' behaviour, each switch flipped back
    (floating bars, red dearer, green cheaper) and the preset's cost."""
    d = plotdata.attribution_data(summary, out_dir)
    if d is None:
        return None
    n = len(d.panels)
    height, top, bottom = 150 + 400 * n, 120, 60
    fig = make_subplots(
        rows=n,
        cols=1,
        subplot_titles=[p.title for p in d.panels],
        vertical_spacing=150 / (height - top - bottom),  # the tick labels and the next title
    )
    shown: set[str] = set()
    names = dict(d.legend)
    legend_of = {c: label for label, c in d.legend}
    for row, panel in enumerate(d.panels, start=1):
        labels = [b.label for b in panel.bars]
        for colour in dict.fromkeys(b.colour for b in panel.bars if b.kind != "missing"):
            bars = [b for b in panel.bars if b.colour == colour and b.kind != "missing"]
            name = legend_of.get(colour, "")
            fig.add_bar(
                x=[b.label for b in bars],
                y=[abs(b.top - b.bottom) for b in bars],
                base=[min(b.bottom, b.top) for b in bars],
                marker={"color": colour},
                text=[b.text for b in bars],
                textposition="outside",
                cliponaxis=False,
                name=name,
                legendgroup=name,
                showlegend=name in names and name not in shown,
                customdata=[
                    [b.summary, "" if b.kind in ("start", "end") else b.text, b.usd, *b.details]
                    for b in bars
                ],
                hovertemplate=_attribution_hover(),
                row=row,
                col=1,
            )
            shown.add(name)
        axis = "" if row == 1 else str(row)
        for i, b in enumerate(panel.bars):
            if b.kind == "missing":
                fig.add_annotation(
                    x=b.label,
                    y=0.03,
                    xref=f"x{axis}",
                    yref=f"y{axis} domain",
                    yanchor="bottom",
                    textangle=-90,
                    showarrow=False,
                    text=b.text,
                    font={"size": 11, "color": "#666"},
                )
            elif i > 0 and panel.bars[i - 1].usd > 0:  # the connector from the previous bar
                fig.add_shape(
                    type="line",
                    x0=i - 1 + 0.35,
                    x1=i - 0.35,
                    y0=panel.bars[i - 1].usd,
                    y1=panel.bars[i - 1].usd,
                    xref=f"x{axis}",
                    yref=f"y{axis}",
                    line={"color": "#666", "width": 1},
                )
        lo, hi = panel.y_range
        fig.update_xaxes(
            type="category",
            categoryorder="array",
            categoryarray=labels,
            tickangle=-35,
            row=row,
            col=1,
        )
        if panel.y_log:
            ticks = _log_tickvals(lo, hi)
            axis_kw = {
                "type": "log",
                "range": [math.log10(lo), math.log10(hi)],
                "tickvals": ticks,
                "ticktext": [f"{v:g}" for v in ticks],
            }
        else:
            axis_kw = {"type": "linear", "range": [lo, hi]}
        fig.update_yaxes(
            **axis_kw,
            title=d.y_label,
            row=row,
            col=1,
        )
    _layout(fig, d.interactive_title, height=height, bargap=0.3)
    fig.update_layout(margin={"t": top, "b": bottom})
    # the legend in one row between the title and the first panel's title
    y = 1 + 32 / (height - top - bottom)
    fig.update_layout(legend={"orientation": "h", "x": 0, "y": y, "yanchor": "bottom"})
    return fig


def serving_fronts_plot(summary: dict, out_dir: Path) -> go.Figure | None:
    """USD per 1M tokens against tokens/s per user, a subplot per model, a line per system."""
    d = plotdata.serving_fronts_data(summary, out_dir)
    if d is None:
        return None
    fig = make_subplots(rows=1, cols=len(d.panels), subplot_titles=list(d.panels))
    seen = set()
    for col, lines in enumerate(d.panels.values(), start=1):
        for line in lines:
            fig.add_scatter(
                x=line.tokens_per_s_per_user,
                y=line.usd,
                mode="lines+markers",
                name=line.system,
                legendgroup=line.system,
                showlegend=line.system not in seen,
                line={
                    "dash": "solid" if line.system == "chiplet-cloud" else "dash",
                    "color": d.colours[line.system],
                },
                hovertemplate=f"<b>{line.system}</b><br>%{{x:~g}} tokens/s per user<br>"
                "$%{y:.4~g} per 1M tokens<extra></extra>",
                row=1,
                col=col,
            )
            seen.add(line.system)
        fig.update_xaxes(title=d.x_label, type="log", row=1, col=col)
    fig.update_yaxes(type="log")
    fig.update_yaxes(title=d.y_label, row=1, col=1)
    return _layout(fig, d.interactive_title)


SYSTEM_SYMBOLS = {"cc": "circle", "fabricated": "square", "rented": "diamond-open"}


def _system_hover(label: str, x_name: str) -> str:
    """The hover of a system's point: its label, x, USD per 1M tokens and the device behind it
    (``customdata``: the device, "" for Chiplet Cloud)."""
    return (
        f"<b>{label}</b> %{{customdata}}<br>{x_name}<br>$%{{y:.4~g}} per 1M tokens<extra></extra>"
    )


def model_sets_plot(summary: dict, out_dir: Path) -> go.Figure | None:
    """USD per 1M tokens (log) of each model of the other model sets, a subplot per set:
    Chiplet Cloud's TCO-optimal design and the cheapest fabricated and rented GPU/TPU."""
    d = plotdata.model_sets_data(summary, out_dir)
    if d is None:
        return None
    fig = make_subplots(rows=1, cols=len(d.panels), subplot_titles=[p.title for p in d.panels])
    for col, panel in enumerate(d.panels, start=1):
        for sr in panel.series:
            marker = {"symbol": SYSTEM_SYMBOLS[sr.key], "size": 11, "color": sr.colour}
            fig.add_scatter(
                x=sr.x,
                y=[v if v > 0 else None for v in sr.usd],
                mode="markers",
                name=sr.label,
                legendgroup=sr.key,
                showlegend=col == 1,
                marker={**marker, "line": {"width": 2, "color": sr.colour}},
                customdata=sr.devices,
                hovertemplate=_system_hover(sr.label, "%{x}"),
                row=1,
                col=col,
            )
        fig.update_xaxes(type="category", row=1, col=col)
    fig.update_yaxes(type="log")
    fig.update_yaxes(title=d.y_label, row=1, col=1)
    return _layout(fig, d.interactive_title, scattermode="group")


def context_plot(summary: dict, out_dir: Path) -> go.Figure | None:
    """USD per 1M tokens (log) against the context (log), a subplot per model: Chiplet Cloud's
    TCO-optimal design (solid; skipped where no design fits, said in the subplot's title) and the
    cheapest fabricated and rented device (dashed; the device on hover)."""
    d = plotdata.context_data(summary, out_dir)
    if d is None:
        return None
    fig = make_subplots(
        rows=1,
        cols=len(d.panels),
        subplot_titles=[p.title for p in d.panels],
        horizontal_spacing=0.06,
    )
    seen = set()
    for col, panel in enumerate(d.panels, start=1):
        for sr in panel.series:
            fig.add_scatter(
                x=sr.x,
                y=sr.usd,
                mode="lines+markers",
                name=sr.label,
                legendgroup=sr.key,
                showlegend=sr.key not in seen,
                line={"color": sr.colour, "dash": "dash" if sr.dashed else "solid", "width": 2},
                marker={"size": 7, "symbol": SYSTEM_SYMBOLS[sr.key].removesuffix("-open")},
                customdata=sr.devices,
                hovertemplate=_system_hover(f"{panel.model}: {sr.label}", "context %{x:,} tokens"),
                row=1,
                col=col,
            )
            seen.add(sr.key)
        fig.update_xaxes(
            type="log",
            title=d.x_label,
            tickvals=d.x_ticks,
            ticktext=d.x_tick_labels,
            row=1,
            col=col,
        )
    fig.update_yaxes(type="log")
    fig.update_yaxes(title=d.y_label, row=1, col=1)
    return _layout(fig, d.interactive_title)


PLOTS: dict[str, Callable[[dict, Path], go.Figure | None]] = {
    "pareto": pareto_plot,
    "die_size": die_size_plot,
    "batch": batch_plot,
    "pipeline": pipeline_plot,
    "design_choice": design_choice_plot,
    "nre": nre_plot,
    "sensitivity": sensitivity_plot,
    "sparsity": sparsity_plot,
    "hop_latency": hop_latency_plot,
    "attribution": attribution_plot,
    "serving_fronts": serving_fronts_plot,
    "model_sets": model_sets_plot,
    "context": context_plot,
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
