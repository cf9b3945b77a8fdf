"""The names and integer codes the inference model's two implementations share.

The numpy reference (:mod:`chipletcloud.perf.analytic`) switches on names; the numba fast path
(:mod:`chipletcloud.perf.fast`) on the integer codes below. Both read them from here, so a new
latency model, power source or point status is added in one place.
"""

from __future__ import annotations

#: Latency models: ``isca24`` (the default analytic model) and ``v1`` (the arXiv v1 model:
#: compute only, systolic-array utilisation, the v1 link rule; docs/inference-model.md).
LATENCY_MODELS = {"isca24": 0, "v1": 1}
V1 = LATENCY_MODELS["v1"]

#: Server power a TCO is charged at (docs/tco.md): ``energy`` (mean power from the energy model,
#: capped at the server TDP), ``tdp``, ``tdp_utilisation`` (v1: fixed + U x (TCO at TDP -
#: fixed)), or ``tdp_capacity`` (datacentre capacity at the TDP, electricity at the mean power:
#: the one rule for every machine).
POWER_SOURCES = {"energy": 0, "tdp": 1, "tdp_utilisation": 2, "tdp_capacity": 3}
POWER_ENERGY = POWER_SOURCES["energy"]
POWER_TDP = POWER_SOURCES["tdp"]
POWER_TDP_UTILISATION = POWER_SOURCES["tdp_utilisation"]
POWER_TDP_CAPACITY = POWER_SOURCES["tdp_capacity"]

#: Status of a (design, mapping) point, in code order.
STATUS_NAMES = ("feasible", "invalid_mapping", "does_not_fit")
FEASIBLE, INVALID_MAPPING, DOES_NOT_FIT = range(len(STATUS_NAMES))

#: The per-token operations a stage time is broken down into (``decode_<op>`` columns).
OPS = ("qkv", "attention", "out_proj", "norms", "mlp", "allreduce", "lm_head", "stage_transfer")

#: The kernels of one transformer layer, grouped into the breakdown's operations.
OP_GROUPS = {
    "qkv": ("qkv",),
    "attention": ("attention", "softmax"),
    "out_proj": ("out_proj",),
    "norms": ("norms",),
    "mlp": ("mlp_in", "activation", "mlp_out"),
}

#: Chip-to-chip fabrics inside a server (docs/interconnect.md), in code order: a ring, a 2-D mesh
#: (no wrap-around links), a torus (``collective_dims`` dimensions: 2 for ``torus2d``, 3 for a
#: TPU pod), every chip linked to every other, and one switch hop between any two chips.
TOPOLOGIES = {"ring": 0, "mesh2d": 1, "torus2d": 2, "full": 3, "switch": 4}
RING_TOPOLOGY, MESH2D, TORUS, FULL, SWITCH = (TOPOLOGIES[k] for k in TOPOLOGIES)
#: Dimensions the bucket (ring) algorithm runs over on each fabric.
TOPOLOGY_DIMS = {"ring": 1.0, "mesh2d": 2.0, "torus2d": 2.0, "full": 1.0, "switch": 1.0}

#: Collective algorithms a runtime may choose from, as bits of one mask (docs/interconnect.md):
#: ring/bucket, recursive doubling (tree-like, log steps), one-shot and two-shot (direct,
#: latency-bound), and hierarchical (inside the server, then between servers).
ALGORITHMS = {
    "ring": 1,
    "recursive_doubling": 2,
    "one_shot": 4,
    "two_shot": 8,
    "hierarchical": 16,
}
RING, RECURSIVE_DOUBLING, ONE_SHOT, TWO_SHOT, HIERARCHICAL = (ALGORITHMS[k] for k in ALGORITHMS)


def algorithm_mask(names) -> float:
    """The bit mask of a list of algorithm names (the ring is always allowed)."""
    return float(RING | sum(ALGORITHMS[n] for n in set(names) - {"ring"}))
