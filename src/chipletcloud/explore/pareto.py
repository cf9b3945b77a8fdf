"""Pareto fronts for two objectives that are both minimised (cost per token, latency per token)."""

from __future__ import annotations

import numpy as np


def pareto_mask(cost: np.ndarray, latency: np.ndarray) -> np.ndarray:
    """Boolean mask of the points on the Pareto front of (cost, latency), both minimised.

    A point is kept unless another point is no worse in both objectives and better in one; of
    several identical points only the first (lowest index) is kept. NaN or inf points are never
    kept. O(n log n): sort by cost then latency, keep the points whose latency is strictly below
    every latency seen before.
    """
    cost = np.asarray(cost, float)
    latency = np.asarray(latency, float)
    ok = np.isfinite(cost) & np.isfinite(latency)
    idx = np.flatnonzero(ok)
    if idx.size == 0:
        return np.zeros(cost.shape, bool)
    order = idx[np.lexsort((idx, latency[idx], cost[idx]))]
    lat = latency[order]
    best_before = np.minimum.accumulate(np.concatenate(([np.inf], lat[:-1])))
    keep = lat < best_before
    mask = np.zeros(cost.shape, bool)
    mask[order[keep]] = True
    return mask


def is_dominated_by(cost_a, lat_a, cost_b, lat_b) -> bool:
    """True when point b dominates a (no worse in both, better in one)."""
    return (cost_b <= cost_a and lat_b <= lat_a) and (cost_b < cost_a or lat_b < lat_a)
