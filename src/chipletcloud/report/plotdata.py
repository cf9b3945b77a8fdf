"""What each figure of the report shows, as plain data: one function per figure.

Each ``*_data`` function takes the run's ``summary.json`` (as a dict) and the run folder (for the
Pareto fronts under ``fronts/``) and returns a dataclass of series (lists or numpy arrays, already
in the units drawn), colours, labels, titles and annotations, or None when the summary has no
such section. The static renderer (:mod:`.figures`, matplotlib) and the interactive one
(:mod:`.plotly_figures`) draw only what these return: every value of a figure comes from here;
the renderers add only layout (axis headroom, bar offsets, label positions, marker styles).

Figures have a ``title`` (the static figure's) and an ``interactive_title`` (the report's plot,
which says more because it has no caption of its own).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from chipletcloud.report.formats import fmt_num, fmt_usd
from chipletcloud.report.results import (
    PALETTE,
    bin_label,
    device_label,
    device_shape,
    dict_rows,
    fronts,
    in_optimum,
    model_colours,
    model_order,
    num,
    rows_by,
    section,
)

# The design columns shown for a Pareto point (front rows and optimal cards), in this order,
# followed by its cost (USD per 1M tokens) and latency (ms per token).
DESIGN_FIELDS = (
    "die_area_mm2",
    "sram_mb_per_chip",
    "tflops_per_chip",
    "servers",
    "tp",
    "pp",
    "batch",
    "micro_batch",
)
COST_AXIS = "TCO (USD per 1M tokens)"


# --------------------------------------------------------------------------------------- pareto


@dataclass(frozen=True)
class Front:
    """A Pareto front: latency (ms per token) against cost (USD per 1K tokens), and per point its
    design (:data:`DESIGN_FIELDS`, USD per 1M tokens, ms per token) as rows."""

    latency_ms: np.ndarray
    usd_per_1k: np.ndarray
    designs: np.ndarray


@dataclass(frozen=True)
class DesignPoint:
    """An optimal design (``which``: ``tco_optimal`` or ``latency_optimal``; ``label`` says so)
    at its latency (ms per token) and cost (USD per 1K tokens), its design row as in
    :class:`Front`."""

    which: str
    label: str
    latency_ms: float
    usd_per_1k: float
    design: list[float]


@dataclass(frozen=True)
class ParetoModel:
    """A model's front (None without a front file) and its optimal designs."""

    model: str
    colour: str
    front: Front | None
    optima: list[DesignPoint]


@dataclass(frozen=True)
class BaselinePoint:
    """A GPU/TPU baseline of a model: device label, marker shape, rented or fabricated, its
    latency (ms per token) and cost (USD per 1K tokens), its deployment and cost ratio."""

    model: str
    colour: str | None
    device: str
    shape: str
    kind: str
    latency_ms: float
    usd_per_1k: float
    devices: Any
    tp: Any
    pp: Any
    batch: Any
    ratio: float


@dataclass(frozen=True)
class ParetoData:
    """The Pareto plot: per model its front and optima, the baselines (flat, and grouped for
    one legend entry per device and kind), axis labels and titles."""

    models: list[ParetoModel]  # those with a front or an optimal design, in model order
    baselines: list[BaselinePoint]
    baseline_groups: dict[tuple[str, str], list[BaselinePoint]]  # by (device, kind)
    devices: list[tuple[str, str]]  # (device label, shape) of the baselines, first-seen order
    title: str
    interactive_title: str
    x_label: str = "latency (ms per output token)"
    y_label: str = "TCO (USD per 1K tokens)"


def _thin(table: dict[str, np.ndarray], limit: int | None) -> dict[str, np.ndarray]:
    """At most ``limit`` rows of a front, evenly spaced along it (all rows for no limit)."""
    n = len(table["tpot_s"])
    if limit is None or n <= limit:
        return table
    idx = np.unique(np.linspace(0, n - 1, limit).round().astype(int))
    return {k: np.asarray(v)[idx] for k, v in table.items()}


def _front(table: dict[str, np.ndarray]) -> Front:
    """A front table as drawn (ms per token, USD per 1K tokens) with its design rows."""
    n = len(table["tpot_s"])
    cols = [
        np.asarray(table[c], dtype=float) if c in table else np.full(n, np.nan)
        for c in DESIGN_FIELDS
    ]
    cols += [np.asarray(table["usd_per_million_tokens"], float), table["tpot_s"] * 1e3]
    return Front(
        latency_ms=table["tpot_s"] * 1e3,
        usd_per_1k=table["usd_per_million_tokens"] / 1e3,
        designs=np.column_stack(cols),
    )


def _optima(card_pair: Any) -> list[DesignPoint]:
    """A model's TCO- and latency-optimal designs with a positive cost and latency."""
    out = []
    for which, label in (("tco_optimal", "TCO-optimal"), ("latency_optimal", "latency-optimal")):
        card = (card_pair or {}).get(which) or {}
        design = [num(card.get(c)) for c in DESIGN_FIELDS] + [
            num(card.get("usd_per_million_tokens")),
            num(card.get("latency_s_per_token")) * 1e3,
        ]
        if design[-1] > 0 and design[-2] > 0:
            out.append(DesignPoint(which, label, design[-1], design[-2] / 1e3, design))
    return out


def _baselines(summary: dict, colours: dict[str, str]) -> list[BaselinePoint]:
    """The baselines of the comparison with a positive cost and latency, per model in the
    summary's order."""
    out = []
    for model, m in (section(summary, "compare", "models") or {}).items():
        for name, b in (m.get("baselines") or {}).items():
            if not isinstance(b, dict):
                continue
            cost, lat = num(b.get("usd_per_million_tokens")), num(b.get("latency_s_per_token"))
            if not (cost > 0 and lat > 0):
                continue
            device = str(b.get("device") or name)
            out.append(
                BaselinePoint(
                    model=model,
                    colour=colours.get(model),
                    device=device_label(device),
                    shape=device_shape(device),
                    kind=str(b.get("kind") or ("rented" if "rented" in name else "fabricated")),
                    latency_ms=lat * 1e3,
                    usd_per_1k=cost / 1e3,
                    devices=b.get("devices"),
                    tp=b.get("tp"),
                    pp=b.get("pp"),
                    batch=b.get("batch"),
                    ratio=num(b.get("ratio")),
                )
            )
    return out


def pareto_data(
    summary: dict, out_dir: Path, max_front_points: int | None = None
) -> ParetoData | None:
    """The Pareto plot as :class:`ParetoData`: every model's front (at most ``max_front_points``
    points each), its TCO- and latency-optimal designs, and the baselines; None when there is
    none of these."""
    others = set_only_models(summary)  # drawn in their set's section
    fr = {m: t for m, t in fronts(summary, out_dir).items() if m not in others}
    optimal = section(summary, "optimal") or {}
    colours = model_colours(summary, out_dir)
    base = _baselines(summary, colours)
    if not fr and not optimal and not base:
        return None
    models = []
    for model in model_order(summary, out_dir):
        front = _front(_thin(fr[model], max_front_points)) if model in fr else None
        optima = _optima(optimal.get(model))
        if front is not None or optima:
            models.append(ParetoModel(model, colours[model], front, optima))
    groups: dict[tuple[str, str], list[BaselinePoint]] = {}
    for b in base:
        groups.setdefault((b.device, b.kind), []).append(b)
    return ParetoData(
        models=models,
        baselines=base,
        baseline_groups=groups,
        devices=list(dict.fromkeys((b.device, b.shape) for b in base)),
        title="Pareto fronts: cost per token vs latency, with GPU/TPU baselines",
        interactive_title=(
            "Pareto fronts: TCO per 1K tokens vs latency (★ TCO-optimal, ▲ latency-optimal)"
        ),
    )


# ------------------------------------------------------------------------------------- die size


@dataclass(frozen=True)
class DieSizeData:
    """Per die-area bin (label ``lo-hi`` mm²): the TCO-optimal cost split in capex and opex and
    its total (USD per 1M tokens), the latency-optimal design's latency (ms per token) and cost,
    whether the bin is the reported optimum; the largest finite total and latency (0 for none)."""

    model: str
    bins: list[str]
    capex: list[float]
    opex: list[float]
    total: list[float]
    latency_ms: list[float]
    latency_usd: list[float]
    optimum: list[bool]
    total_max: float
    latency_max: float
    title: str
    interactive_title: str
    x_label: str = "die area bin (mm²)"
    y_label: str = "TCO-optimal cost (USD per 1M tokens)"


def _finite_max(values: list[float]) -> float:
    """The largest finite value, 0.0 when there is none."""
    return max([v for v in values if not math.isnan(v)] + [0.0])


def die_size_data(summary: dict, out_dir: Path) -> DieSizeData | None:
    """The die-size study as :class:`DieSizeData`; None without bins."""
    study = section(summary, "studies", "die_size")
    bins = dict_rows((study or {}).get("bins"))
    if not bins:
        return None
    model = study.get("model", "")
    total = [num(b.get("usd_per_million_tokens")) for b in bins]
    latency = [num(b.get("latency_opt_s_per_token")) * 1e3 for b in bins]
    return DieSizeData(
        model=model,
        bins=[bin_label(b) for b in bins],
        capex=[num(b.get("capex_usd_per_million_tokens")) for b in bins],
        opex=[num(b.get("opex_usd_per_million_tokens")) for b in bins],
        total=total,
        latency_ms=latency,
        latency_usd=[num(b.get("latency_opt_usd_per_million_tokens")) for b in bins],
        optimum=[in_optimum(b, study.get("optimum_mm2")) for b in bins],
        total_max=_finite_max(total),
        latency_max=_finite_max(latency),
        title=f"Die size study ({model})",
        interactive_title=f"Die size study ({model}): TCO-optimal cost per die-area bin",
    )


# ---------------------------------------------------------------------------------------- batch


@dataclass(frozen=True)
class Line:
    """One line of a study: its legend name, model (for the colour), x and y values by panel
    (``ys[i]`` for panel i), and a dash style index (lines of one index share a style)."""

    name: str
    model: Any
    colour: str | None
    x: list[float]
    ys: list[list[float]]
    dash: int = 0


@dataclass(frozen=True)
class Marker:
    """A marked point of a line (an optimum)."""

    model: Any
    colour: str | None
    x: float
    y: float


@dataclass(frozen=True)
class LinesData:
    """Lines against one x axis, in one panel per y axis (``y_labels[i]``, log or linear)."""

    lines: list[Line]
    x_label: str
    y_labels: list[str]
    y_log: list[bool]
    x_ticks: list[float]  # the distinct positive x values
    titles: list[str]  # per panel, static figure
    interactive_title: str
    markers: list[Marker]  # on the first panel


def _sorted_by(rows: list[dict], key: str) -> list[dict]:
    """Rows sorted by the number under ``key``."""
    return sorted(rows, key=lambda r: num(r.get(key)))


def _ticks(lines: list[Line]) -> list[float]:
    """The distinct positive x values of the lines, ascending."""
    return sorted({v for line in lines for v in line.x if v > 0})


def batch_data(summary: dict, out_dir: Path) -> LinesData | None:
    """The batch study as :class:`LinesData`: cost per token and latency (ms per token) against
    batch per model, each model's cheapest batch marked on the cost panel; None without rows."""
    study = section(summary, "studies", "batch")
    groups = rows_by((study or {}).get("rows") or [], "model")
    if not groups:
        return None
    colours = model_colours(summary, out_dir)
    lines = []
    for model, rows in groups.items():
        rows = _sorted_by(rows, "batch")
        cost = [num(r.get("usd_per_million_tokens")) for r in rows]
        lines.append(
            Line(
                name=str(model),
                model=model,
                colour=colours.get(model),
                x=[num(r.get("batch")) for r in rows],
                ys=[cost, [num(r.get("latency_s_per_token")) * 1e3 for r in rows]],
            )
        )
    by_model = {line.model: line for line in lines}
    markers = []
    for model, b in (study.get("optimum") or {}).items():
        line = by_model.get(model)
        hit = [i for i, x in enumerate(line.x) if x == num(b)] if line else []
        if hit:
            markers.append(Marker(model, line.colour, num(b), line.ys[0][hit[0]]))
    return LinesData(
        lines=lines,
        x_label="batch size (sequences)",
        y_labels=[COST_AXIS, "latency (ms per token)"],
        y_log=[True, True],
        x_ticks=_ticks(lines),
        titles=["Cost per token vs batch (★ optimum)", "Latency vs batch"],
        interactive_title="Batch size: cost per token and latency (★ optimum)",
        markers=markers,
    )


def pipeline_data(summary: dict, out_dir: Path) -> LinesData | None:
    """The pipeline study as :class:`LinesData`: cost per token and pipeline utilisation (%)
    against pipeline stages, one line per (model, batch), a dash style per batch; None without
    rows."""
    rows = dict_rows(section(summary, "studies", "pipeline", "rows"))
    if not rows:
        return None
    colours = model_colours(summary, out_dir)
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r.get("model"), r.get("batch")), []).append(r)
    batches = list(dict.fromkeys(batch for _, batch in groups))
    lines = []
    for (model, batch), rs in groups.items():
        rs = _sorted_by(rs, "pp")
        lines.append(
            Line(
                name=f"{model}, batch {batch}",
                model=model,
                colour=colours.get(model),
                x=[num(r.get("pp")) for r in rs],
                ys=[
                    [num(r.get("usd_per_million_tokens")) for r in rs],
                    [num(r.get("utilisation")) * 100 for r in rs],
                ],
                dash=batches.index(batch),
            )
        )
    return LinesData(
        lines=lines,
        x_label="pipeline stages (PP)",
        y_labels=[COST_AXIS, "pipeline utilisation (%)"],
        y_log=[True, False],
        x_ticks=_ticks(lines),
        titles=["Cost per token vs pipeline stages", "Utilisation vs pipeline stages"],
        interactive_title="Pipeline stages: cost per token and utilisation per (model, batch)",
        markers=[],
    )


# -------------------------------------------------------------------------------- design choice


@dataclass(frozen=True)
class BarSeries:
    """One design's bars over the groups: normalised cost per token (NaN for none) and its cost
    (USD per 1M tokens; NaN for the geomean)."""

    name: str
    colour: str
    normalised: list[float]
    usd: list[float]


@dataclass(frozen=True)
class DesignChoiceData:
    """Bars per design over the groups (models, then the geomean), axis label and titles."""

    groups: list[str]  # the models, then "geomean" when the study has one
    designs: list[BarSeries]
    title: str
    interactive_title: str
    y_label: str = "TCO per token (normalised)"


def design_choice_data(summary: dict, out_dir: Path) -> DesignChoiceData | None:
    """The design-choice study as :class:`DesignChoiceData`: each design's normalised cost per
    model and the geomean; None without rows."""
    study = section(summary, "studies", "design_choice")
    rows = dict_rows((study or {}).get("rows"))
    if not rows:
        return None
    models = list(rows_by(rows, "model"))
    geo = study.get("geomean") or {}
    value = {(r.get("model"), r.get("design")): r for r in rows}
    series = []
    for j, d in enumerate(rows_by(rows, "design")):
        norm = [num((value.get((m, d)) or {}).get("normalised")) for m in models]
        usd = [num((value.get((m, d)) or {}).get("usd_per_million_tokens")) for m in models]
        if geo:
            norm.append(num(geo.get(d)))
            usd.append(math.nan)
        series.append(BarSeries(str(d), PALETTE[j % len(PALETTE)], norm, usd))
    return DesignChoiceData(
        groups=models + (["geomean"] if geo else []),
        designs=series,
        title="Design choice: cost per token of each memory/chip design",
        interactive_title="Design choice: normalised cost per token of each design",
    )


# ------------------------------------------------------------------------------------------ NRE


@dataclass(frozen=True)
class TrafficMark:
    """A named traffic level (tokens/s) and its label slot (0-2, staggered so labels clear)."""

    name: str
    tokens_per_s: float
    slot: int


@dataclass(frozen=True)
class NreData:
    """Cost (USD per 1K tokens) against served tokens/s for Chiplet Cloud with its NRE and the
    rented A100; the break-even traffic (NaN for none) and named traffic levels."""

    tokens_per_s: list[float]
    chiplet_cloud: list[float]
    rented_a100: list[float]
    breakeven: float
    breakeven_label: str
    marks: list[TrafficMark]
    title: str
    interactive_title: str
    x_label: str = "served traffic (tokens per second)"
    y_label: str = "cost (USD per 1K tokens)"


def nre_data(summary: dict, out_dir: Path) -> NreData | None:
    """The NRE study as :class:`NreData`; None without its curve."""
    study = section(summary, "studies", "nre")
    curve = sorted(dict_rows((study or {}).get("curve")), key=lambda r: num(r.get("tokens_per_s")))
    if not curve:
        return None
    be = num(study.get("breakeven_tokens_per_s"))
    nre = num(study.get("nre_usd"))
    suffix = f" (NRE ${nre / 1e6:,.1f}M)" if nre > 0 else ""
    marks = [
        TrafficMark(str(name), num(tps), i % 3)
        for i, (name, tps) in enumerate((study.get("markers") or {}).items())
        if num(tps) > 0
    ]
    return NreData(
        tokens_per_s=[num(r.get("tokens_per_s")) for r in curve],
        chiplet_cloud=[num(r.get("chiplet_cloud_usd_per_1k_tokens")) for r in curve],
        rented_a100=[num(r.get("rented_a100_usd_per_1k_tokens")) for r in curve],
        breakeven=be if be > 0 else math.nan,
        breakeven_label=f"{be:,.0f} tokens/s" if be > 0 else "",
        marks=marks,
        title="NRE amortisation vs rented GPUs" + suffix,
        interactive_title="NRE amortisation: cost per 1K tokens vs served traffic" + suffix,
    )


# ---------------------------------------------------------------------------------- sensitivity


@dataclass(frozen=True)
class SensitivityData:
    """Tornado rows, biggest change first: each parameter's change of the cost per token (%) at
    its low and high value, the values' labels and costs (USD per 1M tokens); the base cost and
    the largest change (at least 1%)."""

    parameters: list[str]
    low_pct: list[float]
    high_pct: list[float]
    low_labels: list[str | None]
    high_labels: list[str | None]
    low_usd: list[float]
    high_usd: list[float]
    base_usd: float
    span_pct: float
    title: str
    interactive_title: str
    x_label: str
    interactive_x_label: str = "change of cost per token (%)"


def sensitivity_data(summary: dict, out_dir: Path) -> SensitivityData | None:
    """The sensitivity study as :class:`SensitivityData`; None without rows or a positive base
    cost."""
    study = section(summary, "studies", "sensitivity")
    rows = dict_rows((study or {}).get("rows"))
    base = num((study or {}).get("base_usd_per_million_tokens"))
    if not rows or not base > 0:
        return None

    def delta(r: dict, k: str) -> float:
        return num(r.get(f"{k}_usd_per_million_tokens")) / base * 100 - 100

    def impact(r: dict) -> float:
        return sum(abs(d) for d in (delta(r, "low"), delta(r, "high")) if not math.isnan(d))

    def label(r: dict, k: str) -> str | None:
        v = r.get(f"{k}_label")
        return None if v is None else str(v)

    rows = sorted(rows, key=impact, reverse=True)
    low, high = [delta(r, "low") for r in rows], [delta(r, "high") for r in rows]
    model = study.get("model", "")
    return SensitivityData(
        parameters=[str(r.get("parameter")) for r in rows],
        low_pct=low,
        high_pct=high,
        low_labels=[label(r, "low") for r in rows],
        high_labels=[label(r, "high") for r in rows],
        low_usd=[num(r.get("low_usd_per_million_tokens")) for r in rows],
        high_usd=[num(r.get("high_usd_per_million_tokens")) for r in rows],
        base_usd=base,
        span_pct=float(np.nanmax(np.abs([*low, *high, 1.0]))),
        title=f"Sensitivity ({model})",
        interactive_title=(
            f"Sensitivity ({model}): cost per token around ${fmt_num(base)} per 1M tokens"
        ),
        x_label=f"change of cost per token (%; base ${base:,.3g} per 1M tokens)",
    )


# ------------------------------------------------------------------------------------- sparsity


@dataclass(frozen=True)
class SparsityLine:
    """A model's cost per token (USD per 1M tokens, and relative to dense) against sparsity (%)."""

    model: Any
    colour: str | None
    sparsity_pct: list[float]
    usd: list[float]
    relative: list[float]


@dataclass(frozen=True)
class SparsityData:
    """One panel of lines per sparse format (panel titles in the same order), labels and title."""

    panels: dict[Any, list[SparsityLine]]  # by sparse format
    panel_titles: list[str]
    title: str = "Cost per token vs weight sparsity"
    x_label: str = "weight sparsity (%)"
    y_label: str = COST_AXIS


def sparsity_data(summary: dict, out_dir: Path) -> SparsityData | None:
    """The sparsity sweep as :class:`SparsityData`, one panel per sparse format; None without
    rows."""
    rows = dict_rows(section(summary, "sparsity", "tco_vs_sparsity"))
    if not rows:
        return None
    colours = model_colours(summary, out_dir)
    panels = {}
    for fmt, rs in rows_by(rows, "sparse_format").items():
        panels[fmt] = []
        for model, mr in rows_by(rs, "model").items():
            mr = _sorted_by(mr, "sparsity")
            panels[fmt].append(
                SparsityLine(
                    model=model,
                    colour=colours.get(model),
                    sparsity_pct=[num(r.get("sparsity")) * 100 for r in mr],
                    usd=[num(r.get("usd_per_million_tokens")) for r in mr],
                    relative=[num(r.get("relative_to_dense")) for r in mr],
                )
            )
    return SparsityData(panels=panels, panel_titles=[f"format: {f}" for f in panels])


# ---------------------------------------------------------------------------------- hop latency


@dataclass(frozen=True)
class HopLine:
    """A model's TCO-optimal design against the chip-to-chip hop latency (ns, ascending): per
    panel its values (``ys[0]`` USD per 1M tokens, ``ys[1]`` die area in mm²) and per point its
    design (:data:`HOP_DETAILS`)."""

    model: Any
    colour: str
    hop_ns: list[float]
    ys: list[list[float]]
    details: list[list[float]]


@dataclass(frozen=True)
class HopVariant:
    """A model's TCO-optimal design at ``hop_ns`` with a fixed latency (``op_latency_ns``) added to
    every on-chip operation: its value per panel as in :class:`HopLine`, and its design."""

    model: Any
    colour: str
    hop_ns: float
    op_latency_ns: float
    ys: list[float]
    details: list[float]


@dataclass(frozen=True)
class HopLatencyData:
    """The hop-latency study: per model a line of its TCO-optimal design's cost (log y) and die
    area against the chip-to-chip hop latency (log x, ns), the op-latency variants apart, the
    preset's hop latency (a labelled vertical line), and the models without any feasible design."""

    lines: list[HopLine]
    variants: list[HopVariant]
    missing: list[str]
    default_ns: float
    default_label: str
    variant_label: str
    x_range: tuple[float, float]
    x_ticks: list[float]
    title: str
    interactive_title: str
    titles: list[str]
    x_label: str = "chip-to-chip hop latency (ns)"
    y_labels: tuple[str, ...] = (COST_AXIS, "TCO-optimal die area (mm²)")
    y_log: tuple[bool, ...] = (True, False)


# The design of a point of the hop-latency study, in this order (hover and tables).
HOP_DETAILS = (
    "ms_per_token",
    "chips_per_server",
    "servers",
    "tp",
    "pp",
    "batch",
    "allreduce_share",
)
HOP_VARIANT_LABEL = "with measured SRAM-machine op latency"


def fmt_latency(seconds: Any) -> str:
    """A latency in ns below 1 µs, in µs from there (``10 ns``, ``112.6 ns``, ``2 µs``)."""
    v = num(seconds)
    if math.isnan(v):
        return "—"
    if v >= 1e-6:
        return f"{v * 1e6:.4g} µs"
    return f"{v * 1e9:.4g} ns"


def _colours(summary: dict, out_dir: Path, models: list) -> dict[Any, str]:
    """:func:`model_colours`, and the next palette colours for models named nowhere else."""
    colours: dict[Any, str] = dict(model_colours(summary, out_dir))
    for m in models:
        if m not in colours:
            colours[m] = PALETTE[len(colours) % len(PALETTE)]
    return colours


def _hop_point(r: dict) -> tuple[list[float], list[float]]:
    """A study row's panel values (cost, die area) and design (:data:`HOP_DETAILS`)."""
    ys = [num(r.get("usd_per_million_tokens")), num(r.get("die_area_mm2"))]
    return ys, [num(r.get(k)) for k in HOP_DETAILS]


def _spread_ticks(values: list[float], keep: float, factor: float = 1.5) -> list[float]:
    """``values`` without ``keep`` when another value lies within ``factor`` of it (its label
    would collide; it gets a labelled line instead)."""
    crowded = any(v != keep and max(v, keep) / min(v, keep) < factor for v in values if v > 0)
    return [v for v in values if not (crowded and v == keep)]


def hop_latency_data(summary: dict, out_dir: Path) -> HopLatencyData | None:
    """The hop-latency study as :class:`HopLatencyData`: rows with an op latency are the
    variants, the others the lines (sorted by hop latency); None without rows."""
    study = section(summary, "studies", "hop_latency")
    rows = dict_rows((study or {}).get("rows"))
    rows = [r for r in rows if num(r.get("hop_latency_s")) > 0]
    if not rows:
        return None
    groups = rows_by(rows, "model")
    models = [m for m in study.get("models") or [] if m is not None]
    models += [m for m in groups if m not in models]
    colours = _colours(summary, out_dir, models)
    lines, variants = [], []
    for model in models:
        rs = groups.get(model) or []
        plain = _sorted_by([r for r in rs if not num(r.get("op_latency_s")) > 0], "hop_latency_s")
        if plain:
            points = [_hop_point(r) for r in plain]
            lines.append(
                HopLine(
                    model=model,
                    colour=colours[model],
                    hop_ns=[num(r.get("hop_latency_s")) * 1e9 for r in plain],
                    ys=[[p[0][i] for p in points] for i in range(2)],
                    details=[p[1] for p in points],
                )
            )
        for r in _sorted_by([r for r in rs if num(r.get("op_latency_s")) > 0], "hop_latency_s"):
            ys, details = _hop_point(r)
            variants.append(
                HopVariant(
                    model=model,
                    colour=colours[model],
                    hop_ns=num(r.get("hop_latency_s")) * 1e9,
                    op_latency_ns=num(r.get("op_latency_s")) * 1e9,
                    ys=ys,
                    details=details,
                )
            )
    default = num(study.get("default_hop_latency_s"))
    default_ns = default * 1e9 if default > 0 else math.nan
    hops = sorted(
        {num(h) * 1e9 for h in study.get("hop_latencies_s") or [] if num(h) > 0}
        | {h for line in lines for h in line.hop_ns}
        | {v.hop_ns for v in variants}
    )
    lo, hi = min([*hops, 10.0]), max([*hops, 2000.0])
    return HopLatencyData(
        lines=lines,
        variants=variants,
        missing=[str(m) for m in models if m not in groups],
        default_ns=default_ns,
        default_label=f"preset hop {fmt_latency(default)}" if default > 0 else "",
        variant_label=HOP_VARIANT_LABEL,
        x_range=(lo / 1.25, hi * 1.25),
        x_ticks=_spread_ticks(hops, default_ns),
        title="TCO-optimal design vs chip-to-chip hop latency",
        interactive_title=(
            "Hop latency: cost per token and die area of each model's TCO-optimal design"
        ),
        titles=["Cost per token of the TCO-optimal design", "Die area of the TCO-optimal design"],
    )


# ---------------------------------------------------------------------------------- attribution

# The design of a step of the attribution walk, in this order (hover and tables).
ATTRIBUTION_DETAILS = (
    "die_area_mm2",
    "chips_per_server",
    "servers",
    "tp",
    "pp",
    "batch",
    "latency_s_per_token",
)
WATERFALL_COLOURS = {  # bar kind -> colour
    "start": "#4e79a7",  # the authors' behaviour and the preset: absolute
    "end": "#4e79a7",
    "up": "#e15759",  # the switch raises the cost
    "down": "#59a14f",  # the switch lowers it
    "restart": "#bab0ac",  # after a step without a design: absolute again
    "missing": "#bab0ac",
}
WATERFALL_LEGEND = (
    ("authors' code / preset", WATERFALL_COLOURS["start"]),
    ("switch raises the cost", WATERFALL_COLOURS["up"]),
    ("switch lowers the cost", WATERFALL_COLOURS["down"]),
)
RESTART_LEGEND = (("after a step without a design", WATERFALL_COLOURS["restart"]),)
LOG_SPAN = 10.0  # a waterfall's cost axis is logarithmic when its costs span more than this


def fmt_factor(change: Any) -> str:
    """A step's change as a cost factor (``×1.49``, ``×0.90``); an em dash for none."""
    v = num(change)
    if math.isnan(v):
        return "—"
    f = 1.0 + v
    return f"×{f:.2f}" if f < 10 else f"×{f:.3g}"


def attribution_walks(summary: dict) -> list[dict]:
    """The attribution study's walks that have steps, in the study's order, each as ``{model,
    base, steps}`` (the model's name from the result, else its key; steps the dict rows)."""
    models = section(summary, "studies", "attribution", "models")
    out = []
    for key, res in models.items() if isinstance(models, dict) else ():
        if not isinstance(res, dict):
            continue
        steps = dict_rows(res.get("steps"))
        if steps:
            out.append(
                {"model": str(res.get("model") or key), "base": res.get("base"), "steps": steps}
            )
    return out


@dataclass(frozen=True)
class WaterfallBar:
    """One bar of an attribution waterfall. ``kind``: ``start`` (every switch at the authors'
    behaviour) and ``end`` (the preset) stand on the axis floor; ``up`` and ``down`` (a switch
    flipped back) float from the previous step's cost to this step's; ``restart`` (a step after
    one without a design) stands on the floor; ``missing`` (no design holds the model) has no
    bar. ``usd`` is the cost after the step (USD per 1M tokens), ``text`` the bar's label (the
    cost of an absolute bar, the factor of a switch), ``details`` the design
    (:data:`ATTRIBUTION_DETAILS`, latency in ms)."""

    label: str
    kind: str
    bottom: float
    top: float
    usd: float
    change: float
    text: str
    colour: str
    summary: str
    details: list[float]


@dataclass(frozen=True)
class AttributionPanel:
    """A model's waterfall: its bars in walk order (the preset's absolute bar last), the axis
    (log when the costs span more than :data:`LOG_SPAN`) and its floor and range."""

    model: str
    base: str
    bars: list[WaterfallBar]
    y_log: bool
    floor: float
    y_range: tuple[float, float]
    title: str


@dataclass(frozen=True)
class AttributionData:
    """The attribution study: a waterfall per model with a cost in some step, and the models
    with none."""

    panels: list[AttributionPanel]
    missing: list[str]
    legend: tuple[tuple[str, str], ...]
    title: str
    interactive_title: str
    y_label: str = COST_AXIS


def _attribution_details(r: dict) -> list[float]:
    out = [num(r.get(k)) for k in ATTRIBUTION_DETAILS]
    out[-1] *= 1e3  # ms per token
    return out


def _waterfall(walk: dict) -> AttributionPanel | None:
    """A walk's waterfall panel; None when no step has a cost."""
    steps = walk["steps"]
    costs = [num(r.get("usd_per_million_tokens")) for r in steps]
    finite = [c for c in costs if c > 0]
    if not finite:
        return None
    lo, hi = min(finite), max(finite)
    y_log = hi / lo > LOG_SPAN
    floor = lo / 2.0 if y_log else 0.0
    base = str(walk.get("base") or "preset")
    bars = []
    prev = math.nan
    for i, (r, c) in enumerate(zip(steps, costs, strict=True)):
        label = str(r.get("switch") or f"step {i}")
        if not c > 0:
            kind, bottom, top, text = "missing", math.nan, math.nan, "no design"
        elif i == 0:
            kind, bottom, top, text = "start", floor, c, fmt_usd(c)
        elif not prev > 0:
            kind, bottom, top, text = "restart", floor, c, fmt_usd(c)
        else:
            kind = "up" if c >= prev else "down"
            bottom, top, text = prev, c, fmt_factor(c / prev - 1.0)
        change = c / prev - 1.0 if c > 0 and prev > 0 and i > 0 else math.nan
        bars.append(
            WaterfallBar(
                label=label,
                kind=kind,
                bottom=bottom,
                top=top,
                usd=c if c > 0 else math.nan,
                change=change,
                text=text,
                colour=WATERFALL_COLOURS[kind],
                summary=str(r.get("summary") or ""),
                details=_attribution_details(r),
            )
        )
        prev = c
    last, c = steps[-1], costs[-1]
    bars.append(
        WaterfallBar(
            label=base,
            kind="end" if c > 0 else "missing",
            bottom=floor if c > 0 else math.nan,
            top=c if c > 0 else math.nan,
            usd=c if c > 0 else math.nan,
            change=math.nan,
            text=fmt_usd(c) if c > 0 else "no design",
            colour=WATERFALL_COLOURS["end" if c > 0 else "missing"],
            summary=f"the preset {base}",
            details=_attribution_details(last),
        )
    )
    y_range = (floor, hi * 1.8) if y_log else (0.0, hi * 1.15)
    return AttributionPanel(
        model=walk["model"],
        base=base,
        bars=bars,
        y_log=y_log,
        floor=floor,
        y_range=y_range,
        title=f"{walk['model']}: the authors' code → {base}",
    )


def attribution_data(summary: dict, out_dir: Path) -> AttributionData | None:
    """The attribution study as :class:`AttributionData`: a waterfall of the TCO-optimal cost
    per model, from every switch at the authors' behaviour through each switch flipped back to
    the preset; None without walks."""
    walks = attribution_walks(summary)
    if not walks:
        return None
    panels, missing = [], []
    for w in walks:
        panel = _waterfall(w)
        if panel is None:
            missing.append(w["model"])
        else:
            panels.append(panel)
    if not panels:
        return None
    restart = any(b.kind == "restart" for p in panels for b in p.bars)
    return AttributionData(
        panels=panels,
        missing=missing,
        legend=WATERFALL_LEGEND + (RESTART_LEGEND if restart else ()),
        title="From the authors' code's behaviour to the preset, one switch a step",
        interactive_title=(
            "Attribution: cost per token of the TCO-optimal design after each switch, "
            "from the authors' code to the preset"
        ),
    )


# name -> plot data; the figure files are figures/<name>.png/.svg, the plots "plot-<name>"
# ------------------------------------------------------------------------------ serving fronts


@dataclass(frozen=True)
class FrontLine:
    """One system's front under the SLO: USD per 1M output tokens at each interactivity band it
    reaches (tokens/s per user, ascending)."""

    system: str
    tokens_per_s_per_user: list[float]
    usd: list[float]


@dataclass(frozen=True)
class ServingFrontsData:
    """One panel per model, a line per system (Chiplet Cloud and each device, rented and
    fabricated), all on the same workload and SLO."""

    panels: dict[str, list[FrontLine]]
    title: str
    interactive_title: str
    colours: dict[str, str]  # by system, the same in every panel
    x_label: str = "output tokens/s per user (interactivity band)"
    y_label: str = "USD per 1M output tokens"


#: The systems drawn by name (the paper's); every other device enters through the cheapest
#: rented and the cheapest fabricated device of each band.
FRONT_SYSTEMS = ("chiplet-cloud", "a100-80gb-rented", "a100-80gb-fabricated", "tpu-v4-rented",
                 "tpu-v4-fabricated")  # fmt: skip


def serving_fronts_data(summary: dict, out_dir: Path) -> ServingFrontsData | None:
    """The comparison's interactivity bands (``compare.bands``) as fronts; None without them."""
    bands = section(summary, "compare", "bands")
    sv = section(summary, "compare", "serving") or {}
    if not isinstance(bands, dict) or not bands:
        return None
    panels = {}
    order = [m for m in model_order(summary, out_dir) if m in bands]
    order += [m for m in bands if m not in order]
    every: list[str] = []
    for model in order:
        rows = bands[model]
        series: dict[str, list[tuple[float, float]]] = {}
        for r in rows:
            x = float(r["tokens_per_s_per_user"])
            for name in FRONT_SYSTEMS:
                v = r["systems"].get(name)
                if v is not None:
                    series.setdefault(name, []).append((x, float(v)))
            for kind in ("rented", "fabricated"):
                c = r.get(f"cheapest_{kind}") or {}
                if c.get("usd_per_million_tokens") is not None:
                    series.setdefault(f"cheapest {kind} device", []).append(
                        (x, float(c["usd_per_million_tokens"]))
                    )
        every += [s for s in series if s not in every]
        panels[model] = [
            FrontLine(name, [x for x, _ in pts], [y for _, y in pts])
            for name, pts in series.items()
        ]
    wl = (sv.get("workload") or {}).get("name", "?")
    slo = (sv.get("slo") or {}).get("spec", "none")
    title = f"Cost against interactivity ({wl} workload, SLO {slo})"
    colours = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(every)}
    return ServingFrontsData(
        panels=panels,
        title=title,
        interactive_title=title + ": the cheapest mapping of each system per band",
        colours=colours,
    )


# --------------------------------------------------------------------------- model sets, context

#: The three systems of the model-set and context figures: key, label, colour, dashed.
SYSTEMS = (
    ("cc", "Chiplet Cloud", "#4e79a7", False),
    ("fabricated", "cheapest fabricated device", "#e15759", True),
    ("rented", "cheapest rented device", "#f28e2b", True),
)
SYSTEM_USD_AXIS = "USD per 1M tokens"


def fmt_context(tokens: Any) -> str:
    """A context length in tokens: ``2k`` for 2,048 (whole multiples of 1,024), thousands
    separated otherwise (``1,000``); an em dash for none."""
    v = num(tokens)
    if math.isnan(v):
        return "—"
    if v >= 1024 and v % 1024 == 0:
        return f"{v / 1024:.0f}k"
    return f"{v:,.0f}"


def cheapest_baseline(baselines: Any, kind: str) -> dict | None:
    """The cheapest baseline of ``kind`` (rented or fabricated) with a positive cost among a
    comparison's baselines (``compare.models.<model>.baselines``), None for none."""
    rows = [b for b in (baselines or {}).values() if isinstance(b, dict) and b.get("kind") == kind]
    rows = [b for b in rows if num(b.get("usd_per_million_tokens")) > 0]
    return min(rows, key=lambda b: num(b.get("usd_per_million_tokens"))) if rows else None


def model_sets(summary: dict) -> dict[str, dict]:
    """The run's model sets beyond the paper's (``summary["model_sets"]``) that name models."""
    sets = section(summary, "model_sets") or {}
    return {str(k): v for k, v in sets.items() if isinstance(v, dict) and (v.get("models") or [])}


def set_only_models(summary: dict) -> set[str]:
    """The models of the other model sets that are not the paper set's (no ``optimal`` entry or
    comparison of their own): the Pareto plot leaves their fronts to their set's section."""
    paper = set(section(summary, "optimal") or {})
    paper |= set(section(summary, "compare", "models") or {})
    return {m for s in model_sets(summary).values() for m in s.get("models") or []} - paper


@dataclass(frozen=True)
class SystemSeries:
    """One system's cost (USD per 1M tokens, NaN where it has none) at each x of a panel, and the
    device behind each point ("" for Chiplet Cloud or none)."""

    key: str
    label: str
    colour: str
    dashed: bool
    x: list[Any]
    usd: list[float]
    devices: list[str]


@dataclass(frozen=True)
class ModelSetPanel:
    """A model set: its models, a series per system and the models no design fits."""

    name: str
    title: str
    models: list[str]
    series: list[SystemSeries]
    missing: list[str]


@dataclass(frozen=True)
class ModelSetsData:
    """Per model set beyond the paper's, each model's Chiplet Cloud cost at its TCO-optimal
    design and the cheapest fabricated and rented GPU/TPU of the comparison (log y)."""

    panels: list[ModelSetPanel]
    title: str
    interactive_title: str
    y_label: str = SYSTEM_USD_AXIS


def model_sets_data(summary: dict, out_dir: Path) -> ModelSetsData | None:
    """The other model sets' costs as :class:`ModelSetsData`; None without such a set."""
    panels = []
    for name, s in model_sets(summary).items():
        models = [str(m) for m in s.get("models") or []]
        per_model = section(s, "compare", "models") or {}
        series = []
        for key, label, colour, dashed in SYSTEMS:
            usd, devices = [], []
            for m in models:
                entry = per_model.get(m) if isinstance(per_model.get(m), dict) else {}
                if key == "cc":
                    cost = num(entry.get("chiplet_cloud_usd_per_million_tokens"))
                    card = section(s, "optimal", m, "tco_optimal")
                    if math.isnan(cost) and isinstance(card, dict):
                        cost = num(card.get("usd_per_million_tokens"))
                    usd.append(cost)
                    devices.append("")
                else:
                    b = cheapest_baseline(entry.get("baselines"), key) or {}
                    usd.append(num(b.get("usd_per_million_tokens")))
                    devices.append(str(b.get("device") or ""))
            series.append(SystemSeries(key, label, colour, dashed, models, usd, devices))
        missing = [m for m, v in zip(models, series[0].usd, strict=True) if not v > 0]
        panels.append(ModelSetPanel(name, f"{name} models", models, series, missing))
    if not panels:
        return None
    names = ", ".join(p.name for p in panels)
    return ModelSetsData(
        panels=panels,
        title=f"{names} models: cost per token, Chiplet Cloud vs the cheapest GPU/TPU",
        interactive_title=(
            f"{names} models: USD per 1M tokens at Chiplet Cloud's TCO-optimal design and the "
            "cheapest fabricated and rented device"
        ),
    )


@dataclass(frozen=True)
class ContextPanel:
    """A model of the context-length study: a series per system against the context (tokens),
    the contexts no Chiplet Cloud design fits (skipped on its line, named in the title)."""

    model: str
    title: str
    series: list[SystemSeries]
    no_fit: list[int]


@dataclass(frozen=True)
class ContextData:
    """The context-length study: one panel per model, USD per 1M tokens (log) against the
    context (log, ticks at the study's contexts)."""

    panels: list[ContextPanel]
    x_ticks: list[int]
    x_tick_labels: list[str]
    title: str
    interactive_title: str
    x_label: str = "context (tokens: prompt + output)"
    y_label: str = SYSTEM_USD_AXIS


def context_data(summary: dict, out_dir: Path) -> ContextData | None:
    """The context-length study as :class:`ContextData`: per model its rows by context, Chiplet
    Cloud where a design fits (``cc_usd_per_million_tokens`` not None), the cheapest fabricated
    and rented device where one serves; None without rows."""
    study = section(summary, "studies", "context")
    rows = [r for r in dict_rows((study or {}).get("rows")) if num(r.get("context")) > 0]
    if not rows:
        return None
    groups = rows_by(rows, "model")
    models = [m for m in study.get("models") or [] if m in groups]
    models += [m for m in groups if m not in models]
    panels = []
    for model in models:
        rs = _sorted_by(groups[model], "context")
        series = []
        for key, label, colour, dashed in SYSTEMS:
            pts = []
            for r in rs:
                if key == "cc":
                    pts.append((r["context"], num(r.get("cc_usd_per_million_tokens")), ""))
                else:
                    b = r.get(f"cheapest_{key}")
                    b = b if isinstance(b, dict) else {}
                    cost = num(b.get("usd_per_million_tokens"))
                    pts.append((r["context"], cost, str(b.get("device") or "")))
            pts = [p for p in pts if p[1] > 0]
            if pts:
                series.append(
                    SystemSeries(
                        key,
                        label,
                        colour,
                        dashed,
                        [int(num(x)) for x, _, _ in pts],
                        [y for _, y, _ in pts],
                        [d for _, _, d in pts],
                    )
                )
        no_fit = [
            int(num(r["context"])) for r in rs if not num(r.get("cc_usd_per_million_tokens")) > 0
        ]
        title = str(model)
        if no_fit:
            title += f" (no Chiplet Cloud design at {', '.join(fmt_context(c) for c in no_fit)})"
        panels.append(ContextPanel(str(model), title, series, no_fit))
    ticks = sorted({int(num(r["context"])) for r in rows})
    out = int(num((study or {}).get("output_tokens")))
    per = f", {out} output tokens a request" if out > 0 else ""
    return ContextData(
        panels=panels,
        x_ticks=ticks,
        x_tick_labels=[fmt_context(c) for c in ticks],
        title=f"Cost per token against context length{per}",
        interactive_title=(
            f"Context length: USD per 1M tokens of Chiplet Cloud's TCO-optimal design and the "
            f"cheapest fabricated and rented device{per}"
        ),
    )


PLOT_DATA: dict[str, Callable[[dict, Path], Any]] = {
    "pareto": pareto_data,
    "die_size": die_size_data,
    "batch": batch_data,
    "pipeline": pipeline_data,
    "design_choice": design_choice_data,
    "nre": nre_data,
    "sensitivity": sensitivity_data,
    "sparsity": sparsity_data,
    "hop_latency": hop_latency_data,
    "attribution": attribution_data,
    "serving_fronts": serving_fronts_data,
    "model_sets": model_sets_data,
    "context": context_data,
}
