"""Static figures of ``chipletcloud reproduce`` (matplotlib, no display).

Each ``*_figure`` function takes the run's ``summary.json`` as a dict and the run folder, draws
what the figure's function in :mod:`.plotdata` returns, writes ``<out_dir>/figures/<name>.png``
and ``.svg`` and returns the two paths, or an empty list when the summary has no such section.
:func:`write_all_figures` writes every figure it can.

Figures are drawn on :class:`matplotlib.figure.Figure` objects directly (no pyplot, no global
backend state); PNG goes through Agg and SVG through the SVG backend, both without a display.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from chipletcloud.report import plotdata
from chipletcloud.report.plotdata import LinesData

RC = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 8.5,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.hashsalt": "chipletcloud",
    "svg.fonttype": "path",
}
MARKERS = {"circle": "o", "square": "s", "diamond": "D", "cross": "P"}  # baseline shapes
OPTIMUM_MARKERS = {"tco_optimal": ("*", 11), "latency_optimal": ("^", 7)}  # marker, size
LINE_STYLES = ("-", "--", ":", "-.")
NO_COLOUR = "0.3"  # a line of no known model
CAPEX, OPEX = "#4e79a7", "#f28e2b"
CC_LABEL = "Chiplet Cloud (incl. NRE)"


# --------------------------------------------------------------------------------- file output


def _save(fig: Figure, out_dir: Path, name: str) -> list[Path]:
    """Write ``figures/<name>.png`` and ``.svg`` (no timestamps); return the two paths."""
    folder = Path(out_dir) / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    png, svg = folder / f"{name}.png", folder / f"{name}.svg"
    with matplotlib.rc_context(RC):
        fig.savefig(png, dpi=150, bbox_inches="tight", metadata={"Software": None})
        fig.savefig(svg, bbox_inches="tight", metadata={"Date": None, "Creator": None})
    return [png, svg]


def _figure(width: float, height: float, ncols: int = 1, **kw) -> tuple[Figure, Any]:
    """A figure of ``ncols`` panels in one row and its axes."""
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(width, height), layout="constrained")
        axes = fig.subplots(1, ncols, squeeze=False, **kw)[0]
    return fig, axes


def _log_ticks(axis) -> None:
    """Plain labels on a log axis at 1-2-5 steps (0.2, 0.5, 1, 2, ...) when it spans up to three
    decades, at the decades beyond; no minor labels."""
    lo, hi = sorted(axis.get_view_interval())
    decades = math.log10(hi / lo) if lo > 0 and hi > 0 else 10.0
    subs = (1.0, 2.0, 5.0) if decades <= 3 else (1.0,)
    axis.set_major_locator(LogLocator(base=10, subs=subs))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _log2_ticks(ax, ticks: Iterable[float]) -> None:
    """Ticks at the given values when there are few of them."""
    vals = list(ticks)
    if vals and len(vals) <= 14:
        ax.set_xticks(vals)
        ax.set_xticklabels([f"{v:g}" for v in vals])
        ax.minorticks_off()


# ------------------------------------------------------------------------------------- figures


def pareto_figure(summary: dict, out_dir: Path) -> list[Path]:
    """TCO per 1K tokens against per-token latency, log-log: every model's front, its TCO- and
    latency-optimal designs, and the baselines at their latency and cost."""
    d = plotdata.pareto_data(summary, out_dir)
    if d is None:
        return []
    with matplotlib.rc_context(RC):
        fig, (ax,) = _figure(8.0, 5.2)
        for m in d.models:
            if m.front is not None:
                ax.plot(
                    m.front.latency_ms,
                    m.front.usd_per_1k,
                    "-",
                    marker=".",
                    ms=3,
                    lw=1.4,
                    color=m.colour,
                    label=f"{m.model} (Chiplet Cloud)",
                )
            for p in m.optima:
                mk, ms = OPTIMUM_MARKERS[p.which]
                ax.plot(p.latency_ms, p.usd_per_1k, mk, ms=ms, color=m.colour, mec="k")
        for b in d.baselines:
            ax.plot(
                b.latency_ms,
                b.usd_per_1k,
                MARKERS[b.shape],
                ms=7,
                color=b.colour,
                mfc=b.colour if b.kind == "rented" else "white",
                mew=1.5,
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        _log_ticks(ax.xaxis)
        _log_ticks(ax.yaxis)
        ax.set_xlabel(d.x_label)
        ax.set_ylabel(d.y_label)
        ax.set_title(d.title)
        handles, _ = ax.get_legend_handles_labels()
        extra = [
            Line2D([], [], ls="", marker="*", ms=11, color="0.5", mec="k", label="TCO-optimal"),
            Line2D([], [], ls="", marker="^", ms=7, color="0.5", mec="k", label="latency-optimal"),
        ]
        for device, shape in d.devices:
            extra.append(Line2D([], [], ls="", marker=MARKERS[shape], color="0.3", label=device))
        if d.baselines:
            extra += [
                Line2D([], [], ls="", marker="o", color="0.3", label="rented (filled)"),
                Line2D([], [], ls="", marker="o", color="0.3", mfc="white", label="fabricated"),
            ]
        ax.legend(handles=handles + extra, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _save(fig, out_dir, "pareto")


def die_size_figure(summary: dict, out_dir: Path) -> list[Path]:
    """Stacked capex/opex per token per die-size bin, the latency-optimal design's latency on a
    twin axis, the optimum bin marked."""
    d = plotdata.die_size_data(summary, out_dir)
    if d is None:
        return []
    x = np.arange(len(d.bins))
    with matplotlib.rc_context(RC):
        fig, (ax,) = _figure(8.0, 4.6)
        ax.bar(x, np.nan_to_num(d.capex), color=CAPEX, label="capex")
        ax.bar(x, np.nan_to_num(d.opex), bottom=np.nan_to_num(d.capex), color=OPEX, label="opex")
        for i, total in enumerate(d.total):
            if d.optimum[i] and np.isfinite(total):
                ax.annotate(
                    "optimum",
                    (x[i], total),
                    xytext=(0, 10),
                    textcoords="offset points",
                    ha="center",
                    fontweight="bold",
                    arrowprops={"arrowstyle": "->"},
                )
                ax.bar(x[i], total, fill=False, edgecolor="k", lw=2)
        ax.set_ylim(0, (d.total_max or 1.0) * 1.25)
        ax.set_xticks(x)
        ax.set_xticklabels(d.bins, rotation=30, ha="right")
        ax.set_xlabel(d.x_label)
        ax.set_ylabel(d.y_label)
        ax.set_title(d.title)
        ax2 = ax.twinx()
        ax2.plot(x, d.latency_ms, "k-o", ms=4, lw=1.3, label="latency-optimal latency")
        ax2.set_ylabel("latency-optimal design (ms per token)")
        ax2.grid(False)
        ax2.spines["right"].set_visible(True)
        if d.latency_max > 0:
            ax2.set_ylim(0, d.latency_max * 1.25)
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = ax2.get_legend_handles_labels()
        ax.legend(h1 + h2, l1 + l2, loc="upper left")
    return _save(fig, out_dir, "die_size")


def _lines_figure(
    d: LinesData, legend_panel: int, legend: dict, minor_y: bool, ylims: tuple = (None, None)
) -> Figure:
    """Two panels of lines against a log2 x axis, the markers on the first; ``minor_y`` keeps the
    minor ticks of log y axes, ``ylims`` fixes the y range of a panel."""
    markers = {m.model: m for m in d.markers}
    with matplotlib.rc_context(RC):
        fig, axes = _figure(10.0, 4.4, ncols=2)
        for line in d.lines:
            c = line.colour or NO_COLOUR
            ls = LINE_STYLES[line.dash % len(LINE_STYLES)]
            for ax, y in zip(axes, line.ys, strict=True):
                ax.plot(line.x, y, ls, marker="o", ms=3.5, color=c, label=line.name)
            m = markers.get(line.model)
            if m is not None:
                axes[0].plot(m.x, m.y, "*", ms=14, color=c, mec="k", zorder=5)
        for ax, log in zip(axes, d.y_log, strict=True):
            ax.set_xscale("log", base=2)
            if log and not minor_y:
                ax.set_yscale("log")  # before _log2_ticks, which turns minor ticks off
            ax.set_xlabel(d.x_label)
            _log2_ticks(ax, d.x_ticks)
        panels = zip(axes, d.y_labels, d.y_log, d.titles, ylims, strict=True)
        for ax, label, log, title, ylim in panels:
            if log:
                if minor_y:
                    ax.set_yscale("log")
                _log_ticks(ax.yaxis)
            ax.set_ylabel(label)
            if ylim is not None:
                ax.set_ylim(*ylim)
            ax.set_title(title)
        axes[legend_panel].legend(**legend)
    return fig


def batch_figure(summary: dict, out_dir: Path) -> list[Path]:
    """Cost per token (and latency) against batch size per model, each model's optimum marked."""
    d = plotdata.batch_data(summary, out_dir)
    if d is None:
        return []
    return _save(_lines_figure(d, 0, {"loc": "best"}, minor_y=False), out_dir, "batch")


def pipeline_figure(summary: dict, out_dir: Path) -> list[Path]:
    """Cost per token and utilisation against pipeline stages for each (model, batch)."""
    d = plotdata.pipeline_data(summary, out_dir)
    if d is None:
        return []
    legend = {"loc": "center left", "bbox_to_anchor": (1.01, 0.5)}
    return _save(_lines_figure(d, 1, legend, True, (None, (0, 105))), out_dir, "pipeline")


def design_choice_figure(summary: dict, out_dir: Path) -> list[Path]:
    """Grouped bars of the normalised cost per token of each design, per model and geomean."""
    d = plotdata.design_choice_data(summary, out_dir)
    if d is None:
        return []
    with matplotlib.rc_context(RC):
        fig, (ax,) = _figure(max(6.5, 1.1 * len(d.groups) + 3), 4.3)
        width = 0.8 / max(len(d.designs), 1)
        x = np.arange(len(d.groups))
        for j, s in enumerate(d.designs):
            ax.bar(
                x + (j - (len(d.designs) - 1) / 2) * width,
                np.nan_to_num(s.normalised),
                width,
                color=s.colour,
                label=s.name,
            )
        ax.axhline(1.0, color="k", lw=0.8, ls="--")
        ax.set_xticks(x)
        ax.set_xticklabels(d.groups)
        ax.set_ylabel(d.y_label)
        ax.set_title(d.title)
        ax.legend(loc="best")
    return _save(fig, out_dir, "design_choice")


def nre_figure(summary: dict, out_dir: Path) -> list[Path]:
    """Cost per 1K tokens against served tokens/s: Chiplet Cloud with its NRE against the rented
    A100, with the break-even and the ChatGPT/Bing/Google traffic marked."""
    d = plotdata.nre_data(summary, out_dir)
    if d is None:
        return []
    with matplotlib.rc_context(RC):
        fig, (ax,) = _figure(8.0, 4.6)
        ax.plot(d.tokens_per_s, d.chiplet_cloud, "-", lw=2, color="#4e79a7", label=CC_LABEL)
        ax.plot(d.tokens_per_s, d.rented_a100, "-", lw=2, color="#e15759", label="rented A100")
        ax.set_xscale("log")
        ax.set_yscale("log")
        if d.breakeven > 0:
            ax.axvline(d.breakeven, color="k", lw=1.2)
            ax.annotate(
                f"break-even\n{d.breakeven_label}",
                (d.breakeven, 0.97),
                xycoords=("data", "axes fraction"),
                xytext=(4, 0),
                textcoords="offset points",
                va="top",
                fontsize=9,
            )
        for m in d.marks:
            ax.axvline(m.tokens_per_s, color="0.45", lw=1, ls=":")
            ax.annotate(
                m.name,
                (m.tokens_per_s, 0.05 + 0.09 * m.slot),
                xycoords=("data", "axes fraction"),
                xytext=(3, 0),
                textcoords="offset points",
                fontsize=9,
                color="0.25",
            )
        ax.set_xlabel(d.x_label)
        ax.set_ylabel(d.y_label)
        ax.set_title(d.title)
        ax.legend(loc="upper right")
    return _save(fig, out_dir, "nre")


def sensitivity_figure(summary: dict, out_dir: Path) -> list[Path]:
    """Tornado: the change of the cost per token when each parameter goes to its low/high value,
    the biggest change at the top."""
    d = plotdata.sensitivity_data(summary, out_dir)
    if d is None:
        return []
    # bottom to top: the y axis grows upwards
    lo, hi = np.array(d.low_pct[::-1]), np.array(d.high_pct[::-1])
    lo_labels, hi_labels = d.low_labels[::-1], d.high_labels[::-1]
    y = np.arange(len(lo))
    with matplotlib.rc_context(RC):
        fig, (ax,) = _figure(8.0, max(3.0, 0.45 * len(lo) + 1.4))
        ax.barh(y + 0.2, np.nan_to_num(lo), 0.4, color=CAPEX, label="low value")
        ax.barh(y - 0.2, np.nan_to_num(hi), 0.4, color=OPEX, label="high value")
        for i in range(len(lo)):
            for v, lab, off in ((lo[i], lo_labels[i], 0.2), (hi[i], hi_labels[i], -0.2)):
                if np.isfinite(v) and lab is not None:
                    ax.annotate(
                        lab,
                        (v, i + off),
                        xytext=(4 if v >= 0 else -4, 0),
                        textcoords="offset points",
                        va="center",
                        ha="left" if v >= 0 else "right",
                        fontsize=8,
                    )
        ax.axvline(0, color="k", lw=1)
        ax.set_yticks(y)
        ax.set_yticklabels(d.parameters[::-1])
        ax.set_xlim(-d.span_pct * 1.45, d.span_pct * 1.45)
        ax.set_xlabel(d.x_label)
        ax.set_title(d.title)
        ax.legend(loc="lower right")
    return _save(fig, out_dir, "sensitivity")


def sparsity_figure(summary: dict, out_dir: Path) -> list[Path]:
    """Cost per token against weight sparsity, one panel per sparse format, models as lines."""
    d = plotdata.sparsity_data(summary, out_dir)
    if d is None:
        return []
    n = len(d.panels)
    with matplotlib.rc_context(RC):
        fig, axes = _figure(min(4.2 * n + 1.5, 14), 4.2, ncols=n, sharey=True)
        for ax, lines, title in zip(axes, d.panels.values(), d.panel_titles, strict=True):
            for line in lines:
                ax.plot(
                    line.sparsity_pct,
                    line.usd,
                    "-o",
                    ms=3.5,
                    color=line.colour or NO_COLOUR,
                    label=line.model,
                )
            ax.set_title(title)
            ax.set_xlabel(d.x_label)
            ax.set_xlim(-5, 100)
            ax.set_yscale("log")
            _log_ticks(ax.yaxis)
        axes[0].set_ylabel(d.y_label)
        axes[-1].legend(loc="best")
        fig.suptitle(d.title)
    return _save(fig, out_dir, "sparsity")


def hop_latency_figure(summary: dict, out_dir: Path) -> list[Path]:
    """Cost per token (log) and die area of each model's TCO-optimal design against the
    chip-to-chip hop latency (log, ns), the preset's hop latency dashed, the variants with the
    measured SRAM machines' op latency as hollow markers."""
    d = plotdata.hop_latency_data(summary, out_dir)
    if d is None:
        return []
    with matplotlib.rc_context(RC):
        fig, axes = _figure(10.0, 4.4, ncols=2, sharex=True)
        for line in d.lines:
            for ax, y in zip(axes, line.ys, strict=True):
                ax.plot(line.hop_ns, y, "-o", ms=4, lw=1.6, color=line.colour, label=line.model)
        for v in d.variants:
            for ax, y in zip(axes, v.ys, strict=True):
                ax.plot(v.hop_ns, y, "D", ms=8, mfc="none", mec=v.colour, mew=1.6, zorder=5)
        for ax, label, log, title in zip(axes, d.y_labels, d.y_log, d.titles, strict=True):
            ax.set_xscale("log")
            ax.set_xlim(*d.x_range)
            if log:
                ax.set_yscale("log")
            ax.set_xlabel(d.x_label)
            ax.set_ylabel(label)
            ax.set_title(title)
            if d.default_ns > 0:
                ax.axvline(d.default_ns, color="0.3", lw=1.1, ls="--", zorder=1)
        for ax, log in zip(axes, d.y_log, strict=True):
            ax.set_xticks(d.x_ticks)
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
            if log:
                _log_ticks(ax.yaxis)
            if d.default_ns > 0:
                ax.annotate(
                    d.default_label,
                    (d.default_ns, 0.98),
                    xycoords=("data", "axes fraction"),
                    xytext=(4, 0),
                    textcoords="offset points",
                    va="top",
                    fontsize=8.5,
                    color="0.25",
                )
        handles, _ = axes[0].get_legend_handles_labels()
        if d.variants:
            handles.append(
                Line2D(
                    [], [], ls="", marker="D", ms=8, mfc="none", mec="0.3", label=d.variant_label
                )
            )
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4))
    return _save(fig, out_dir, "hop_latency")


def attribution_figure(summary: dict, out_dir: Path) -> list[Path]:
    """A waterfall per model (one panel each): the TCO-optimal cost with every switch at the
    authors' behaviour (first bar), each switch flipped back as a bar floating from the previous
    cost to the new one (red: dearer, green: cheaper; labelled with its factor) and the preset's
    cost (last bar)."""
    d = plotdata.attribution_data(summary, out_dir)
    if d is None:
        return []
    n = len(d.panels)
    ncols = 1 if n == 1 else 2
    nrows = math.ceil(n / ncols)
    nbars = max(len(p.bars) for p in d.panels)
    width = max(5.5, 0.55 * nbars + 2.0)
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(width * ncols, 4.8 * nrows + 0.4), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        for ax, panel in zip(axes, d.panels, strict=False):
            bars = panel.bars
            for i, b in enumerate(bars):
                if b.kind == "missing":
                    ax.annotate(
                        b.text,
                        (i, 0.03),
                        xycoords=("data", "axes fraction"),
                        rotation=90,
                        ha="center",
                        va="bottom",
                        fontsize=8,
                        color="0.35",
                    )
                    continue
                lo, hi = sorted((b.bottom, b.top))
                ax.bar(i, hi - lo, bottom=lo, width=0.7, color=b.colour, zorder=3)
                ax.annotate(
                    b.text,
                    (i, hi),
                    xytext=(0, 2),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize=7.5,
                    fontweight="bold" if b.kind in ("start", "end") else "normal",
                )
            for i in range(len(bars) - 1):  # the waterfall's connectors
                if bars[i].usd > 0 and bars[i + 1].kind != "missing":
                    ax.plot([i + 0.35, i + 0.65], [bars[i].usd] * 2, color="0.4", lw=0.8, zorder=4)
            ax.set_xticks(range(len(bars)), [b.label for b in bars])
            for label in ax.get_xticklabels():
                label.set_rotation(40)
                label.set_horizontalalignment("right")
                label.set_rotation_mode("anchor")
            ax.set_xlim(-0.6, len(bars) - 0.4)
            if panel.y_log:
                ax.set_yscale("log")
            ax.set_ylim(*panel.y_range)
            if panel.y_log:
                _log_ticks(ax.yaxis)
            ax.grid(axis="x", visible=False)
            ax.set_ylabel(d.y_label)
            ax.set_title(panel.title)
        for ax in axes[n:]:
            ax.set_visible(False)
        handles = [Patch(facecolor=c, label=label) for label, c in d.legend]
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles))
        fig.suptitle(d.title)
    return _save(fig, out_dir, "attribution")


def _panel_grid(n: int, max_cols: int, panel_in: tuple[float, float], pad_w_in: float):
    """A figure of ``n`` panels, at most ``max_cols`` a row, each ``panel_in`` inches (width,
    height), with ``pad_w_in`` inches beside them and an inch below for the legend: (figure,
    the ``n`` axes in reading order; the grid's unused cells are hidden)."""
    ncols = min(n, max_cols)
    nrows = -(-n // ncols)
    w, h = panel_in
    fig = Figure(figsize=(w * ncols + pad_w_in, h * nrows + 1.0), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def serving_fronts_figure(summary: dict, out_dir: Path) -> list[Path]:
    """USD per 1M tokens against tokens/s per user, one panel per model (up to four a row), a
    line per system, one legend."""
    d = plotdata.serving_fronts_data(summary, out_dir)
    if d is None:
        return []
    with matplotlib.rc_context(RC):
        fig, axes = _panel_grid(len(d.panels), 4, (3.4, 3.0), 1.0)
        for ax, (model, lines) in zip(axes, d.panels.items(), strict=False):
            for line in lines:
                style = "-o" if line.system == "chiplet-cloud" else "--s"
                ax.plot(
                    line.tokens_per_s_per_user,
                    line.usd,
                    style,
                    ms=3,
                    label=line.system,
                    color=d.colours[line.system],
                )
            ax.set_title(model)
            ax.set_xscale("log")
            ax.set_yscale("log")
        seen = {}
        for ax in axes:
            for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
                seen.setdefault(lab, h)
        fig.legend(list(seen.values()), list(seen), loc="outside right center")
        fig.supxlabel(d.x_label)
        fig.supylabel(d.y_label)
        fig.suptitle(d.title)
    return _save(fig, out_dir, "serving_fronts")


def _system_legend(fig: Figure, axes) -> None:
    """One legend for the figure: the systems drawn on any of ``axes``, first seen first."""
    seen: dict[str, Any] = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(lab, h)
    fig.legend(list(seen.values()), list(seen), loc="outside lower center", ncols=len(seen))


def model_sets_figure(summary: dict, out_dir: Path) -> list[Path]:
    """USD per 1M tokens (log) of each model of the other model sets (one panel a set): Chiplet
    Cloud's TCO-optimal design and the cheapest fabricated and rented GPU/TPU, side by side."""
    d = plotdata.model_sets_data(summary, out_dir)
    if d is None:
        return []
    widths = [max(len(p.models), 1) for p in d.panels]
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(1.0 * sum(widths) + 2.5, 4.6), layout="constrained")
        axes = fig.subplots(1, len(d.panels), squeeze=False, width_ratios=widths)[0]
        for ax, panel in zip(axes, d.panels, strict=True):
            x = np.arange(len(panel.models))
            for k, sr in enumerate(panel.series):
                y = np.asarray(sr.usd, dtype=float)
                ax.plot(
                    x + (k - 1) * 0.22,
                    y,
                    "o" if not sr.dashed else ("s" if sr.key == "fabricated" else "D"),
                    ms=8,
                    color=sr.colour,
                    mfc=sr.colour if sr.key != "rented" else "none",
                    mew=1.6,
                    ls="",
                    label=sr.label,
                )
            ax.set_xticks(x)
            ax.set_xticklabels(panel.models, rotation=30, ha="right")
            ax.set_xlim(-0.6, len(panel.models) - 0.4)
            ax.set_yscale("log")
            _log_ticks(ax.yaxis)
            if len(d.panels) > 1:  # one set: the figure's title names it
                ax.set_title(panel.title)
            for m in panel.missing:  # no Chiplet Cloud design: said at the bottom of the panel
                ax.annotate(
                    "no design",
                    (panel.models.index(m) - 0.22, 0.02),
                    xycoords=("data", "axes fraction"),
                    ha="center",
                    fontsize=8,
                    color="0.3",
                )
        axes[0].set_ylabel(d.y_label)
        _system_legend(fig, axes)
        fig.suptitle(d.title)
    return _save(fig, out_dir, "model_sets")


def context_figure(summary: dict, out_dir: Path) -> list[Path]:
    """USD per 1M tokens (log) against the context (log, ticks at the study's contexts), a panel
    per model: Chiplet Cloud's TCO-optimal design (solid; skipped where no design fits) and the
    cheapest fabricated and rented device (dashed); one legend."""
    d = plotdata.context_data(summary, out_dir)
    if d is None:
        return []
    with matplotlib.rc_context(RC):
        fig, axes = _panel_grid(len(d.panels), 3, (4.0, 3.4), 0.6)
        for ax, panel in zip(axes, d.panels, strict=False):
            for sr in panel.series:
                ax.plot(
                    sr.x,
                    sr.usd,
                    "--s" if sr.dashed else "-o",
                    ms=4,
                    lw=1.6,
                    color=sr.colour,
                    label=sr.label,
                )
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xticks(d.x_ticks)
            ax.set_xticklabels(d.x_tick_labels)
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.minorticks_off()
            _log_ticks(ax.yaxis)
            ax.set_title(panel.title, fontsize=10)
            ax.set_xlabel(d.x_label)
        _system_legend(fig, axes)
        fig.supylabel(d.y_label)
        fig.suptitle(d.title)
    return _save(fig, out_dir, "context")


FIGURES: dict[str, Callable[[dict, Path], list[Path]]] = {
    "pareto": pareto_figure,
    "die_size": die_size_figure,
    "batch": batch_figure,
    "pipeline": pipeline_figure,
    "design_choice": design_choice_figure,
    "nre": nre_figure,
    "sensitivity": sensitivity_figure,
    "sparsity": sparsity_figure,
    "hop_latency": hop_latency_figure,
    "attribution": attribution_figure,
    "serving_fronts": serving_fronts_figure,
    "model_sets": model_sets_figure,
    "context": context_figure,
}


def write_all_figures(summary: dict, out_dir: Path) -> list[Path]:
    """Write every figure the summary has data for under ``out_dir/figures``; return the paths
    (PNG and SVG of each)."""
    paths: list[Path] = []
    for fn in FIGURES.values():
        paths += fn(summary, Path(out_dir))
    return paths
