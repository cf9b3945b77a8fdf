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
#: capped at the server TDP), ``tdp``, or ``tdp_utilisation`` (v1: fixed + U x (TCO at TDP -
#: fixed)).
POWER_SOURCES = {"energy": 0, "tdp": 1, "tdp_utilisation": 2}
POWER_ENERGY = POWER_SOURCES["energy"]
POWER_TDP = POWER_SOURCES["tdp"]
POWER_TDP_UTILISATION = POWER_SOURCES["tdp_utilisation"]

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
