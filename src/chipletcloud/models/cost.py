"""Die cost: dies per wafer, negative-binomial yield and cost per good, tested die.

Sources: docs/hardware-model.md#constants-and-their-sources [A] (the authors' constants and
reference table); the negative-binomial
yield model is the standard clustered-defect model (Stapper, IBM J. R&D 1983). All areas in mm2,
lengths in mm, defect densities per mm2, money in USD. A constant left as None is read from the
7 nm technology card (``data/tech/7nm.yaml``).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from chipletcloud.config import card_params


def _card(value: float | None, name: str) -> float:
    """``value``, or the 7 nm technology card's ``name`` when it is None."""
    return getattr(card_params("tech", "7nm"), name) if value is None else value


def _scalar_or_array(x: np.ndarray, like: ArrayLike):
    return x.item() if np.ndim(like) == 0 else x


def die_yield(area_mm2: ArrayLike, d0_per_mm2: float | None = None, alpha: float | None = None):
    """Negative-binomial die yield Y = (1 + D0 A / alpha) ** -alpha.

    ``d0_per_mm2`` and ``alpha`` default to the tech card's (0.1 defects/cm2 and 10,
    docs/hardware-model.md#constants-and-their-sources [A]).
    """
    d0_per_mm2 = _card(d0_per_mm2, "defect_density_per_mm2")
    alpha = _card(alpha, "yield_cluster_alpha")
    a = np.asarray(area_mm2, dtype=float)
    y = (1.0 + d0_per_mm2 * a / alpha) ** (-alpha)
    return _scalar_or_array(y, area_mm2)


def _rows_count(side: float, radius: float, centre_on_row: bool) -> int:
    """Dies in horizontal rows of pitch ``side``; each row holds floor(chord / side) dies, where
    the chord is taken at the row's edge farther from the wafer centre (so every die lies wholly
    inside the wafer). Rows are laid either with a row edge or a row centre on the wafer
    diameter."""
    n = 0
    k = 0
    if centre_on_row:
        while side / 2 + k * side <= radius:
            y = side / 2 + k * side
            n += (1 if k == 0 else 2) * math.floor(2 * math.sqrt(radius * radius - y * y) / side)
            k += 1
    else:
        while (k + 1) * side <= radius:
            y = (k + 1) * side
            n += 2 * math.floor(2 * math.sqrt(radius * radius - y * y) / side)
            k += 1
    return n


def _grid_count(side: float, radius: float, steps: int = 16) -> int:
    """Exact count of a fixed stepper grid (common columns for all rows), best of ``steps``^2 grid
    offsets: every die's four corners inside the wafer circle."""
    m = int(math.ceil(radius / side)) + 2
    idx = np.arange(-m, m + 1)
    best = 0
    for ox in np.arange(steps) * side / steps:
        xs = ox + idx * side
        xfar = np.maximum(np.abs(xs), np.abs(xs + side))
        for oy in np.arange(steps) * side / steps:
            ys = oy + idx * side
            yfar = np.maximum(np.abs(ys), np.abs(ys + side))
            best = max(best, int(((xfar[None, :] ** 2 + yfar[:, None] ** 2) <= radius**2).sum()))
    return best


def dies_per_wafer(
    area_mm2: ArrayLike,
    wafer_diameter_mm: float | None = None,
    dicing_gap_mm: float | None = None,
    method: str = "rows",
):
    """Whole square dies of ``area_mm2`` (plus the dicing gap on each side length) on a round wafer.

    ``method="rows"`` (default) is the ASIC-Clouds style square packing used by the authors: rows of
    dies at a pitch of side + gap, each row shifted independently so that it holds
    floor(chord / pitch) dies, best of two row alignments (a row edge or a row centre on the wafer
    diameter). It reproduces docs/hardware-model.md#constants-and-their-sources exactly (100 mm2:
    651, 200: 316, 400: 154, 800: 72).
    Because each row is shifted on its own, it counts a few more dies than a real stepper grid with
    common columns: ``method="grid"`` gives that exact fits-inside-the-circle count (100 mm2: 640,
    about 2% fewer). Neither applies an edge exclusion. The wafer diameter and dicing gap default
    to the tech card's (300 mm, 0.1 mm).
    """
    wafer_diameter_mm = _card(wafer_diameter_mm, "wafer_diameter_mm")
    dicing_gap_mm = _card(dicing_gap_mm, "dicing_gap_mm")
    if method not in ("rows", "grid"):
        from chipletcloud.errors import InputError

        raise InputError("dies_per_wafer_method", method, "rows, grid")
    a = np.atleast_1d(np.asarray(area_mm2, dtype=float))
    radius = wafer_diameter_mm / 2.0
    uniq, inv = np.unique(a, return_inverse=True)
    counts = np.empty(uniq.shape, dtype=np.int64)
    for i, area in enumerate(uniq):
        side = math.sqrt(area) + dicing_gap_mm
        if method == "rows":
            counts[i] = max(_rows_count(side, radius, False), _rows_count(side, radius, True))
        else:
            counts[i] = _grid_count(side, radius)
    out = counts[inv].reshape(np.shape(a))
    return int(out[0]) if np.ndim(area_mm2) == 0 else out.reshape(np.shape(area_mm2))


def die_cost_usd(
    area_mm2: ArrayLike,
    wafer_cost_usd: float | None = None,
    d0_per_mm2: float | None = None,
    alpha: float | None = None,
    test_cost_fraction: float | None = None,
    wafer_diameter_mm: float | None = None,
    dicing_gap_mm: float | None = None,
    method: str = "rows",
):
    """Cost of one good, tested die: wafer / DPW / yield x (1 + test overhead)
    (docs/hardware-model.md#constants-and-their-sources); constants left None from the tech card."""
    wafer_cost_usd = _card(wafer_cost_usd, "wafer_cost_usd")
    test_cost_fraction = _card(test_cost_fraction, "test_cost_fraction")
    dpw = np.asarray(dies_per_wafer(area_mm2, wafer_diameter_mm, dicing_gap_mm, method), float)
    y = np.asarray(die_yield(area_mm2, d0_per_mm2, alpha), float)
    with np.errstate(divide="ignore"):
        cost = np.where(dpw > 0, wafer_cost_usd / np.maximum(dpw, 1) / y, np.inf)
    cost = cost * (1.0 + test_cost_fraction)
    return _scalar_or_array(cost, area_mm2)


def die_cost_from_tech(area_mm2: ArrayLike, tech, method: str = "rows"):
    """:func:`die_cost_usd` with every constant from a tech card (``TechParams``)."""
    return die_cost_usd(
        area_mm2,
        tech.wafer_cost_usd,
        tech.defect_density_per_mm2,
        tech.yield_cluster_alpha,
        tech.test_cost_fraction,
        tech.wafer_diameter_mm,
        tech.dicing_gap_mm,
        method,
    )
