"""The run's results read back for the report: sections of ``summary.json``, the Pareto front
tables under ``fronts/``, the models in a stable order with stable colours, and the GPU/TPU
baseline devices' labels and marker shapes. Shared by the plot data (:mod:`.plotdata`) and the
report's text (:mod:`.sections`)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from chipletcloud.explore.software import model_dirname
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
# The baselines marked on the Pareto plots: device prefix -> (label, marker shape).
BASELINE_DEVICES = {
    "a100": ("A100", "circle"),
    "h100": ("H100", "square"),
    "tpu": ("TPU v4", "diamond"),
}
OTHER_DEVICE_SHAPE = "cross"


def section(summary: dict, *keys: str) -> Any:
    """``summary[k0][k1]...``, or None when a level is missing or not a mapping."""
    node: Any = summary
    for k in keys:
        if not isinstance(node, dict) or k not in node:
            return None
        node = node[k]
    return node


def dict_rows(rows: Any) -> list[dict]:
    """The dict items of a list of rows (an empty list for None)."""
    return [r for r in rows or [] if isinstance(r, dict)]


def num(x: Any) -> float:
    """A float; NaN for None or anything not a finite number."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return math.nan
    return v if math.isfinite(v) else math.nan


def rows_by(rows: Iterable[dict], key: str) -> dict[Any, list[dict]]:
    """Dict rows grouped by ``row[key]``, groups in first-seen order."""
    out: dict[Any, list[dict]] = {}
    for r in rows:
        if isinstance(r, dict):
            out.setdefault(r.get(key), []).append(r)
    return out


def pair(x: Any) -> tuple[float, float] | None:
    """A (lo, hi) range from a two-item list, tuple or array; None otherwise."""
    if isinstance(x, list | tuple | np.ndarray) and len(x) == 2:
        lo, hi = num(x[0]), num(x[1])
        if not (math.isnan(lo) or math.isnan(hi)):
            return lo, hi
    return None


def in_optimum(b: dict, optimum: Any) -> bool:
    """Whether a die-size bin lies in the reported optimum range."""
    rng = pair(optimum)
    if rng is None:
        return False
    lo, hi = rng
    return num(b.get("lo_mm2")) >= lo - 1e-9 and num(b.get("hi_mm2")) <= hi + 1e-9


def bin_label(b: dict) -> str:
    """A die-size bin as ``lo-hi`` (mm²)."""
    lo, hi = num(b.get("lo_mm2")), num(b.get("hi_mm2"))
    return f"{lo:g}-{hi:g}"


# ------------------------------------------------------------------------------------- models


def model_cost(summary: dict, model: str) -> float:
    """A model's Chiplet Cloud cost per 1M tokens at its TCO optimum (NaN when unknown)."""
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
        add(r.get("model") for r in dict_rows(rows))
    if out_dir is not None:
        add(front_files(summary, out_dir))

    def key(m: str) -> tuple:
        c = model_cost(summary, m)
        return (math.isnan(c), 0.0 if math.isnan(c) else c, m)

    return sorted(names, key=key)


def model_colours(summary: dict, out_dir: Path | None = None) -> dict[str, str]:
    """Model -> colour (hex), the same in every figure."""
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(model_order(summary, out_dir))}


# ------------------------------------------------------------------------------------- fronts


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
        p = files.pop(m, None) or files.pop(model_dirname(m), None)
        if p is not None:
            out[m] = p
    out.update(files)
    return out


def read_front(path: Path) -> dict[str, np.ndarray]:
    """One front table as numpy columns sorted by latency, rows with a non-positive or non-finite
    cost or latency dropped; an empty dict when it lacks ``usd_per_million_tokens``/``tpot_s``."""
    table = read_parquet(path)
    if "usd_per_million_tokens" not in table or "tpot_s" not in table:
        return {}
    cost = np.asarray(table["usd_per_million_tokens"], dtype=float)
    tpot = np.asarray(table["tpot_s"], dtype=float)
    ok = np.isfinite(cost) & np.isfinite(tpot) & (cost > 0) & (tpot > 0)
    order = np.argsort(tpot[ok], kind="stable")
    return {k: np.asarray(v)[ok][order] for k, v in table.items()}


def fronts(summary: dict, out_dir: Path) -> dict[str, dict[str, np.ndarray]]:
    """The non-empty Pareto fronts under ``out_dir/fronts`` by model (see :func:`read_front`)."""
    out = {m: read_front(p) for m, p in front_files(summary, out_dir).items()}
    return {m: t for m, t in out.items() if t}


# ---------------------------------------------------------------------------------- baselines


def device_label(device: str) -> str:
    """A short label for a baseline device card name (``a100-80gb`` -> ``A100``)."""
    d = device.lower()
    for prefix, (label, _) in BASELINE_DEVICES.items():
        if d.startswith(prefix):
            return label if prefix != "tpu" or "v4" in d else device
    return device


def device_shape(device: str) -> str:
    """The marker shape of a baseline device (circle, square, diamond; cross for others)."""
    d = device.lower()
    shapes = (s for p, (_, s) in BASELINE_DEVICES.items() if d.startswith(p))
    return next(shapes, OTHER_DEVICE_SHAPE)
