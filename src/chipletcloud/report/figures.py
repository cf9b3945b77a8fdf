"""Static figures of ``chipletcloud reproduce`` (matplotlib, no display).

Each ``*_figure`` function takes the run's ``summary.json`` as a dict and the run folder, writes
``<out_dir>/figures/<name>.png`` and ``.svg`` and returns the two paths, or an empty list when the
summary has no such section. :func:`write_all_figures` writes every figure it can.

Figures are drawn on :class:`matplotlib.figure.Figure` objects directly (no pyplot, no global
backend state); PNG goes through Agg and SVG through the SVG backend, both without a display.
The data helpers here (model order, colours, fronts) are shared with :mod:`.html`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from chipletcloud.report.store import read_parquet

# Tableau-10: the same model gets the same colour in every figure, static or interactive.
PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)
# The baselines marked on the Pareto plots: device prefix -> (label, marker).
BASELINE_DEVICES = {
    "a100": ("A100", "o"),
    "h100": ("H100", "s"),
    "tpu": ("TPU v4", "D"),
}
STUDIES = ("die_size", "batch", "pipeline", "design_choice", "nre", "sensitivity")
FRONT_COLUMNS = (
    "usd_per_million_tokens",
    "tpot_s",
    "die_area_mm2",
    "servers",
    "tp",
    "pp",
    "batch",
    "micro_batch",
    "server_id",
    "sram_mb_per_chip",
    "tflops_per_chip",
    "throughput_tokens_per_s",
)
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


# --------------------------------------------------------------------------- shared data helpers


def section(summary: dict, *keys: str) -> Any:
    """``summary[k0][k1]...`` or None when a level is missing or not a mapping."""
    node: Any = summary
    for k in keys:
        if not isinstance(node, dict) or k not in node:
            return None
        node = node[k]
    return node


def num(x: Any) -> float:
    """A float, NaN for None or anything not a finite number."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return math.nan
    return v if math.isfinite(v) else math.nan


def safe_name(name: str) -> str:
    """The file-name form of a model name (as the run writer uses)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"


def model_cost(summary: dict, model: str) -> float:
    """A model's Chiplet Cloud cost per token at its TCO optimum (NaN when unknown)."""
    card = section(summary, "optimal", model, "tco_optimal") or {}
    v = num(card.get("usd_per_million_tokens")) if isinstance(card, dict) else math.nan
    if math.isnan(v):
        v = num(
            section(summary, "compare", "models", model, "chiplet_cloud_usd_per_million_tokens")
        )
    return v


def model_order(summary: dict, out_dir: Path | None = None) -> list[str]:
    """Every model named anywhere in the summary (or with a front file), cheapest first (by the
    TCO-optimal cost per token; roughly smallest model first), then the rest by name. The order
    does not depend on the key order of the summary, so it survives a JSON round trip."""
    names: list[str] = []

    def add(seq: Iterable[Any]) -> None:
        for n in seq:
            if isinstance(n, str) and n not in names:
                names.append(n)

    add((section(summary, "compare", "models") or {}).keys())
    add((section(summary, "optimal") or {}).keys())
    add((section(summary, "portfolio", "per_model") or {}).keys())
    for rows in (
        section(summary, "studies", "batch", "rows"),
        section(summary, "studies", "pipeline", "rows"),
        section(summary, "studies", "design_choice", "rows"),
        section(summary, "sparsity", "tco_vs_sparsity"),
    ):
        add(r.get("model") for r in rows or [] if isinstance(r, dict))
    if out_dir is not None:
        add(front_files(summary, out_dir))

    def key(m: str) -> tuple:
        c = model_cost(summary, m)
        return (math.isnan(c), 0.0 if math.isnan(c) else c, m)

    return sorted(names, key=key)


def model_colours(summary: dict, out_dir: Path | None = None) -> dict[str, str]:
    """Model -> colour, stable across figures."""
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(model_order(summary, out_dir))}


def front_files(summary: dict, out_dir: Path) -> dict[str, Path]:
    """The Pareto front files under ``out_dir/fronts`` by model (files named by the model or its
    file-name form; other Parquet files there are taken by their stem)."""
    folder = Path(out_dir) / "fronts"
    if not folder.is_dir():
        return {}
    files = {p.stem: p for p in sorted(folder.glob("*.parquet"))}
    known = list((section(summary, "compare", "models") or {}).keys())
    known += [m for m in (section(summary, "optimal") or {}) if m not in known]
    out: dict[str, Path] = {}
    for m in known:
        p = files.pop(m, None) or files.pop(safe_name(m), None)
        if p is not None:
            out[m] = p
    out.update(files)
    return out


def fronts(summary: dict, out_dir: Path) -> dict[str, dict[str, np.ndarray]]:
    """The Pareto fronts under ``out_dir/fronts`` by model, as numpy columns sorted by latency
    (rows with a non-positive or non-finite cost or latency dropped)."""
    out = {m: _read_front(p) for m, p in front_files(summary, out_dir).items()}
    return {m: t for m, t in out.items() if t}


def _read_front(path: Path) -> dict[str, np.ndarray]:
    table = read_parquet(path)
    if "usd_per_million_tokens" not in table or "tpot_s" not in table:
        return {}
    cost = np.asarray(table["usd_per_million_tokens"], dtype=float)
    tpot = np.asarray(table["tpot_s"], dtype=float)
    ok = np.isfinite(cost) & np.isfinite(tpot) & (cost > 0) & (tpot > 0)
    order = np.argsort(tpot[ok], kind="stable")
    return {k: np.asarray(v)[ok][order] for k, v in table.items()}


def device_label(device: str) -> str:
    """A short label for a baseline device card name (``a100-80gb`` -> ``A100``)."""
    d = device.lower()
    for prefix, (label, _) in BASELINE_DEVICES.items():
        if d.startswith(prefix):
            return label if prefix != "tpu" or "v4" in d else device
    return device


def baseline_points(summary: dict) -> list[dict]:
    """The baselines of the comparison, one row per (model, baseline) with a finite cost and
    latency: model, name, device label, marker, kind, usd_per_million_tokens, latency_s, ratio."""
    out = []
    for model, m in (section(summary, "compare", "models") or {}).items():
        for name, b in (m.get("baselines") or {}).items():
            if not isinstance(b, dict):
                continue
            cost, lat = num(b.get("usd_per_million_tokens")), num(b.get("latency_s_per_token"))
            if not (cost > 0 and lat > 0):
                continue
            device = str(b.get("device") or name)
            label = device_label(device)
            marker = next(
                (mk for p, (_, mk) in BASELINE_DEVICES.items() if device.lower().startswith(p)),
                "P",
            )
            kind = str(b.get("kind") or ("rented" if "rented" in name else "fabricated"))
            out.append(
                {
                    "model": model,
                    "name": name,
                    "device": label,
                    "marker": marker,
                    "kind": kind,
                    "usd_per_million_tokens": cost,
                    "latency_s": lat,
                    "ratio": num(b.get("ratio")),
                    "devices": b.get("devices"),
                    "tp": b.get("tp"),
                    "pp": b.get("pp"),
                    "batch": b.get("batch"),
                }
            )
    return out


def rows_by(rows: Iterable[dict], key: str) -> dict[Any, list[dict]]:
    """Group dict rows by ``row[key]``, keeping first-seen order."""
    out: dict[Any, list[dict]] = {}
    for r in rows:
        if isinstance(r, dict):
            out.setdefault(r.get(key), []).append(r)
    return out


def bin_label(b: dict) -> str:
    lo, hi = num(b.get("lo_mm2")), num(b.get("hi_mm2"))
    return f"{lo:g}-{hi:g}"


def pair(x: Any) -> tuple[float, float] | None:
    """A (lo, hi) range from a two-item list, tuple or array; None otherwise."""
    if isinstance(x, list | tuple | np.ndarray) and len(x) == 2:
        lo, hi = num(x[0]), num(x[1])
        if not (math.isnan(lo) or math.isnan(hi)):
            return lo, hi
    return None


def in_optimum(b: dict, optimum: Any) -> bool:
    """Whether a die-size bin is the reported optimum range."""
    rng = pair(optimum)
    if rng is None:
        return False
    lo, hi = rng
    return num(b.get("lo_mm2")) >= lo - 1e-9 and num(b.get("hi_mm2")) <= hi + 1e-9


# --------------------------------------------------------------------------------- file output


def _save(fig: Figure, out_dir: Path, name: str) -> list[Path]:
    folder = Path(out_dir) / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    png, svg = folder / f"{name}.png", folder / f"{name}.svg"
    with matplotlib.rc_context(RC):
        fig.savefig(png, dpi=150, bbox_inches="tight", metadata={"Software": None})
        fig.savefig(svg, bbox_inches="tight", metadata={"Date": None, "Creator": None})
    return [png, svg]


def _figure(width: float, height: float, ncols: int = 1, **kw) -> tuple[Figure, Any]:
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


def _log2_ticks(ax, values: Iterable[float]) -> None:
    vals = sorted({v for v in values if v > 0})
    if vals and len(vals) <= 14:
        ax.set_xticks(vals)
        ax.set_xticklabels([f"{v:g}" for v in vals])
        ax.minorticks_off()


# ------------------------------------------------------------------------------------- figures


def pareto_figure(summary: dict, out_dir: Path) -> list[Path]:
    """TCO per 1K tokens against per-token latency, log-log: every model's front, its TCO- and
    latency-optimal designs, and the baselines at their latency and cost."""
    fr = fronts(summary, out_dir)
    optimal = section(summary, "optimal") or {}
    base = baseline_points(summary)
    if not fr and not optimal and not base:
        return []
    colours = model_colours(summary, out_dir)
    with matplotlib.rc_context(RC):
        fig, (ax,) = _figure(8.0, 5.2)
        for model in model_order(summary, out_dir):
            c = colours[model]
            if model in fr:
                t = fr[model]
                ax.plot(
                    t["tpot_s"] * 1e3,
                    t["usd_per_million_tokens"] / 1e3,
                    "-",
                    marker=".",
                    ms=3,
                    lw=1.4,
                    color=c,
                    label=f"{model} (Chiplet Cloud)",
                )
            for which, mk in (("tco_optimal", "*"), ("latency_optimal", "^")):
                card = (optimal.get(model) or {}).get(which) or {}
                x, y = num(card.get("latency_s_per_token")), num(card.get("usd_per_million_tokens"))
                if x > 0 and y > 0:
                    ax.plot(x * 1e3, y / 1e3, mk, ms=11 if mk == "*" else 7, color=c, mec="k")
        for b in base:
            filled = b["kind"] == "rented"
            ax.plot(
                b["latency_s"] * 1e3,
                b["usd_per_million_tokens"] / 1e3,
                b["marker"],
                ms=7,
                color=colours.get(b["model"], "0.4"),
                mfc=colours.get(b["model"], "0.4") if filled else "white",
                mew=1.5,
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        _log_ticks(ax.xaxis)
        _log_ticks(ax.yaxis)
        ax.set_xlabel("latency (ms per output token)")
        ax.set_ylabel("TCO (USD per 1K tokens)")
        ax.set_title("Pareto fronts: cost per token vs latency, with GPU/TPU baselines")
        handles, _ = ax.get_legend_handles_labels()
        extra = [
            Line2D([], [], ls="", marker="*", ms=11, color="0.5", mec="k", label="TCO-optimal"),
            Line2D([], [], ls="", marker="^", ms=7, color="0.5", mec="k", label="latency-optimal"),
        ]
        seen = set()
        for b in base:
            if b["device"] not in seen:
                seen.add(b["device"])
                extra.append(
                    Line2D([], [], ls="", marker=b["marker"], color="0.3", label=b["device"])
                )
        if base:
            extra += [
                Line2D([], [], ls="", marker="o", color="0.3", label="rented (filled)"),
                Line2D([], [], ls="", marker="o", color="0.3", mfc="white", label="fabricated"),
            ]
        ax.legend(handles=handles + extra, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _save(fig, out_dir, "pareto")


def die_size_figure(summary: dict, out_dir: Path) -> list[Path]:
    """Stacked capex/opex per token per die-size bin, the latency-optimal design's latency on a
    twin axis, the optimum bin marked."""
    study = section(summary, "studies", "die_size")
    bins = [b for b in (study or {}).get("bins") or [] if isinstance(b, dict)]
    if not bins:
        return []
    x = np.arange(len(bins))
    capex = np.array([num(b.get("capex_usd_per_million_tokens")) for b in bins])
    opex = np.array([num(b.get("opex_usd_per_million_tokens")) for b in bins])
    total = np.array([num(b.get("usd_per_million_tokens")) for b in bins])
    lat = np.array([num(b.get("latency_opt_s_per_token")) * 1e3 for b in bins])
    optimum = study.get("optimum_mm2")
    with matplotlib.rc_context(RC):
        fig, (ax,) = _figure(8.0, 4.6)
        ax.bar(x, np.nan_to_num(capex), color="#4e79a7", label="capex")
        ax.bar(x, np.nan_to_num(opex), bottom=np.nan_to_num(capex), color="#f28e2b", label="opex")
        for i, b in enumerate(bins):
            if in_optimum(b, optimum) and np.isfinite(total[i]):
                ax.annotate(
                    "optimum",
                    (x[i], total[i]),
                    xytext=(0, 10),
                    textcoords="offset points",
                    ha="center",
                    fontweight="bold",
                    arrowprops={"arrowstyle": "->"},
                )
                ax.bar(x[i], total[i], fill=False, edgecolor="k", lw=2)
        top = np.nanmax(total) if np.isfinite(total).any() else 1.0
        ax.set_ylim(0, top * 1.25)
        ax.set_xticks(x)
        ax.set_xticklabels([bin_label(b) for b in bins], rotation=30, ha="right")
        ax.set_xlabel("die area bin (mm²)")
        ax.set_ylabel("TCO-optimal cost (USD per 1M tokens)")
        ax.set_title(f"Die size study ({study.get('model', '')})")
        ax2 = ax.twinx()
        ax2.plot(x, lat, "k-o", ms=4, lw=1.3, label="latency-optimal latency")
        ax2.set_ylabel("latency-optimal design (ms per token)")
        ax2.grid(False)
        ax2.spines["right"].set_visible(True)
        if np.isfinite(lat).any():
            ax2.set_ylim(0, np.nanmax(lat) * 1.25)
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = ax2.get_legend_handles_labels()
        ax.legend(h1 + h2, l1 + l2, loc="upper left")
    return _save(fig, out_dir, "die_size")


def batch_figure(summary: dict, out_dir: Path) -> list[Path]:
    """Cost per token (and latency) against batch size per model, each model's optimum marked."""
    study = section(summary, "studies", "batch")
    groups = rows_by((study or {}).get("rows") or [], "model")
    if not groups:
        return []
    optimum = study.get("optimum") or {}
    colours = model_colours(summary, out_dir)
    with matplotlib.rc_context(RC):
        fig, (ax, axl) = _figure(10.0, 4.4, ncols=2)
        batches = set()
        for model, rows in groups.items():
            rows = sorted(rows, key=lambda r: num(r.get("batch")))
            b = np.array([num(r.get("batch")) for r in rows])
            cost = np.array([num(r.get("usd_per_million_tokens")) for r in rows])
            lat = np.array([num(r.get("latency_s_per_token")) * 1e3 for r in rows])
            batches.update(b[np.isfinite(b)].tolist())
            c = colours.get(model, "0.3")
            ax.plot(b, cost, "-o", ms=3.5, color=c, label=model)
            axl.plot(b, lat, "-o", ms=3.5, color=c, label=model)
            opt = num(optimum.get(model))
            hit = np.flatnonzero(b == opt)
            if hit.size:
                ax.plot(opt, cost[hit[0]], "*", ms=14, color=c, mec="k", zorder=5)
        for a in (ax, axl):
            a.set_xscale("log", base=2)
            a.set_yscale("log")
            a.set_xlabel("batch size (sequences)")
            _log2_ticks(a, batches)
        ax.set_ylabel("TCO (USD per 1M tokens)")
        axl.set_ylabel("latency (ms per token)")
        _log_ticks(ax.yaxis)
        _log_ticks(axl.yaxis)
        ax.set_title("Cost per token vs batch (★ optimum)")
        axl.set_title("Latency vs batch")
        ax.legend(loc="best")
    return _save(fig, out_dir, "batch")


def pipeline_figure(summary: dict, out_dir: Path) -> list[Path]:
    """Cost per token and utilisation against pipeline stages for each (model, batch)."""
    rows = [r for r in section(summary, "studies", "pipeline", "rows") or [] if isinstance(r, dict)]
    if not rows:
        return []
    colours = model_colours(summary, out_dir)
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r.get("model"), r.get("batch")), []).append(r)
    styles = ("-", "--", ":", "-.")
    batch_style: dict[Any, str] = {}
    with matplotlib.rc_context(RC):
        fig, (ax, axu) = _figure(10.0, 4.4, ncols=2)
        pps = set()
        for (model, batch), rs in groups.items():
            rs = sorted(rs, key=lambda r: num(r.get("pp")))
            pp = np.array([num(r.get("pp")) for r in rs])
            pps.update(pp[np.isfinite(pp)].tolist())
            ls = batch_style.setdefault(batch, styles[len(batch_style) % len(styles)])
            c = colours.get(model, "0.3")
            label = f"{model}, batch {batch}"
            ax.plot(
                pp,
                [num(r.get("usd_per_million_tokens")) for r in rs],
                ls,
                marker="o",
                ms=3.5,
                color=c,
                label=label,
            )
            axu.plot(
                pp,
                [num(r.get("utilisation")) * 100 for r in rs],
                ls,
                marker="o",
                ms=3.5,
                color=c,
                label=label,
            )
        for a in (ax, axu):
            a.set_xscale("log", base=2)
            a.set_xlabel("pipeline stages (PP)")
            _log2_ticks(a, pps)
        ax.set_yscale("log")
        _log_ticks(ax.yaxis)
        ax.set_ylabel("TCO (USD per 1M tokens)")
        axu.set_ylabel("pipeline utilisation (%)")
        axu.set_ylim(0, 105)
        ax.set_title("Cost per token vs pipeline stages")
        axu.set_title("Utilisation vs pipeline stages")
        axu.legend(loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _save(fig, out_dir, "pipeline")


def design_choice_figure(summary: dict, out_dir: Path) -> list[Path]:
    """Grouped bars of the normalised cost per token of each design, per model and geomean."""
    study = section(summary, "studies", "design_choice")
    rows = [r for r in (study or {}).get("rows") or [] if isinstance(r, dict)]
    if not rows:
        return []
    models = list(rows_by(rows, "model"))
    designs = list(rows_by(rows, "design"))
    value = {(r.get("model"), r.get("design")): num(r.get("normalised")) for r in rows}
    geo = study.get("geomean") or {}
    groups = models + (["geomean"] if geo else [])
    with matplotlib.rc_context(RC):
        fig, (ax,) = _figure(max(6.5, 1.1 * len(groups) + 3), 4.3)
        width = 0.8 / max(len(designs), 1)
        x = np.arange(len(groups))
        for j, d in enumerate(designs):
            ys = [value.get((m, d), math.nan) for m in models]
            if geo:
                ys.append(num(geo.get(d)))
            ax.bar(
                x + (j - (len(designs) - 1) / 2) * width,
                np.nan_to_num(ys),
                width,
                color=PALETTE[j % len(PALETTE)],
                label=str(d),
            )
        ax.axhline(1.0, color="k", lw=0.8, ls="--")
        ax.set_xticks(x)
        ax.set_xticklabels(groups)
        ax.set_ylabel("TCO per token (normalised)")
        ax.set_title("Design choice: cost per token of each memory/chip design")
        ax.legend(loc="best")
    return _save(fig, out_dir, "design_choice")


def nre_figure(summary: dict, out_dir: Path) -> list[Path]:
    """Cost per 1K tokens against served tokens/s: Chiplet Cloud with its NRE against the rented
    A100, with the break-even and the ChatGPT/Bing/Google traffic marked."""
    study = section(summary, "studies", "nre")
    curve = sorted(
        (r for r in (study or {}).get("curve") or [] if isinstance(r, dict)),
        key=lambda r: num(r.get("tokens_per_s")),
    )
    if not curve:
        return []
    x = np.array([num(r.get("tokens_per_s")) for r in curve])
    cc = np.array([num(r.get("chiplet_cloud_usd_per_1k_tokens")) for r in curve])
    gpu = np.array([num(r.get("rented_a100_usd_per_1k_tokens")) for r in curve])
    with matplotlib.rc_context(RC):
        fig, (ax,) = _figure(8.0, 4.6)
        ax.plot(x, cc, "-", lw=2, color="#4e79a7", label="Chiplet Cloud (incl. NRE)")
        ax.plot(x, gpu, "-", lw=2, color="#e15759", label="rented A100")
        ax.set_xscale("log")
        ax.set_yscale("log")
        be = num(study.get("breakeven_tokens_per_s"))
        if be > 0:
            ax.axvline(be, color="k", lw=1.2)
            ax.annotate(
                f"break-even\n{be:,.0f} tokens/s",
                (be, 0.97),
                xycoords=("data", "axes fraction"),
                xytext=(4, 0),
                textcoords="offset points",
                va="top",
                fontsize=9,
            )
        for i, (name, tps) in enumerate((study.get("markers") or {}).items()):
            v = num(tps)
            if v > 0:
                ax.axvline(v, color="0.45", lw=1, ls=":")
                ax.annotate(
                    str(name),
                    (v, 0.05 + 0.09 * (i % 3)),
                    xycoords=("data", "axes fraction"),
                    xytext=(3, 0),
                    textcoords="offset points",
                    fontsize=9,
                    color="0.25",
                )
        ax.set_xlabel("served traffic (tokens per second)")
        ax.set_ylabel("cost (USD per 1K tokens)")
        nre = num(study.get("nre_usd"))
        title = "NRE amortisation vs rented GPUs"
        if nre > 0:
            title += f" (NRE ${nre / 1e6:,.1f}M)"
        ax.set_title(title)
        ax.legend(loc="upper right")
    return _save(fig, out_dir, "nre")


def sensitivity_figure(summary: dict, out_dir: Path) -> list[Path]:
    """Tornado: the change of the cost per token when each parameter goes to its low/high value."""
    study = section(summary, "studies", "sensitivity")
    rows = [r for r in (study or {}).get("rows") or [] if isinstance(r, dict)]
    base = num((study or {}).get("base_usd_per_million_tokens"))
    if not rows or not base > 0:
        return []

    def impact(r: dict) -> float:
        ds = (num(r.get(f"{k}_usd_per_million_tokens")) - base for k in ("low", "high"))
        return sum(abs(d) for d in ds if not math.isnan(d))

    rows = sorted(rows, key=impact)  # biggest at the top (last on the y axis)
    y = np.arange(len(rows))
    lo = np.array([num(r.get("low_usd_per_million_tokens")) / base * 100 - 100 for r in rows])
    hi = np.array([num(r.get("high_usd_per_million_tokens")) / base * 100 - 100 for r in rows])
    with matplotlib.rc_context(RC):
        fig, (ax,) = _figure(8.0, max(3.0, 0.45 * len(rows) + 1.4))
        ax.barh(y + 0.2, np.nan_to_num(lo), 0.4, color="#4e79a7", label="low value")
        ax.barh(y - 0.2, np.nan_to_num(hi), 0.4, color="#f28e2b", label="high value")
        for i, r in enumerate(rows):
            labels = ((lo[i], r.get("low_label"), 0.2), (hi[i], r.get("high_label"), -0.2))
            for v, lab, off in labels:
                if np.isfinite(v) and lab is not None:
                    ax.annotate(
                        str(lab),
                        (v, i + off),
                        xytext=(4 if v >= 0 else -4, 0),
                        textcoords="offset points",
                        va="center",
                        ha="left" if v >= 0 else "right",
                        fontsize=8,
                    )
        ax.axvline(0, color="k", lw=1)
        ax.set_yticks(y)
        ax.set_yticklabels([str(r.get("parameter")) for r in rows])
        span = np.nanmax(np.abs(np.concatenate([lo, hi, [1.0]])))
        ax.set_xlim(-span * 1.45, span * 1.45)
        ax.set_xlabel(f"change of cost per token (%; base ${base:,.3g} per 1M tokens)")
        ax.set_title(f"Sensitivity ({study.get('model', '')})")
        ax.legend(loc="lower right")
    return _save(fig, out_dir, "sensitivity")


def sparsity_figure(summary: dict, out_dir: Path) -> list[Path]:
    """Cost per token against weight sparsity, one panel per sparse format, models as lines."""
    rows = [r for r in section(summary, "sparsity", "tco_vs_sparsity") or [] if isinstance(r, dict)]
    if not rows:
        return []
    formats = rows_by(rows, "sparse_format")
    colours = model_colours(summary, out_dir)
    with matplotlib.rc_context(RC):
        fig, axes = _figure(min(4.2 * len(formats) + 1.5, 14), 4.2, ncols=len(formats), sharey=True)
        for ax, (fmt, rs) in zip(axes, formats.items(), strict=True):
            for model, mr in rows_by(rs, "model").items():
                mr = sorted(mr, key=lambda r: num(r.get("sparsity")))
                ax.plot(
                    [num(r.get("sparsity")) * 100 for r in mr],
                    [num(r.get("usd_per_million_tokens")) for r in mr],
                    "-o",
                    ms=3.5,
                    color=colours.get(model, "0.3"),
                    label=model,
                )
            ax.set_title(f"format: {fmt}")
            ax.set_xlabel("weight sparsity (%)")
            ax.set_xlim(-5, 100)
            ax.set_yscale("log")
            _log_ticks(ax.yaxis)
        axes[0].set_ylabel("TCO (USD per 1M tokens)")
        axes[-1].legend(loc="best")
        fig.suptitle("Cost per token vs weight sparsity")
    return _save(fig, out_dir, "sparsity")


FIGURES: dict[str, Callable[[dict, Path], list[Path]]] = {
    "pareto": pareto_figure,
    "die_size": die_size_figure,
    "batch": batch_figure,
    "pipeline": pipeline_figure,
    "design_choice": design_choice_figure,
    "nre": nre_figure,
    "sensitivity": sensitivity_figure,
    "sparsity": sparsity_figure,
}


def write_all_figures(summary: dict, out_dir: Path) -> list[Path]:
    """Write every figure the summary has data for under ``out_dir/figures``; return the paths
    (PNG and SVG of each)."""
    paths: list[Path] = []
    for fn in FIGURES.values():
        paths += fn(summary, Path(out_dir))
    return paths
