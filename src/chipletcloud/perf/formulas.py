"""The inference model's small formulas, each written once.

Every function here takes plain numbers or numpy arrays (broadcast together) and returns the same,
using only arithmetic and numpy ufuncs. The numpy reference (:mod:`chipletcloud.perf.analytic`)
calls them on arrays of design points; the numba fast path (:mod:`chipletcloud.perf.fast`) compiles
the very same source and calls it on scalars, one point at a time. Branches are written with
:func:`select`, which is ``numpy.where`` on arrays and a scalar conditional once compiled.
``tests/perf/test_equivalence.py`` checks each function, compiled and not, on random inputs.

Units: seconds, bytes, bytes/s, FLOP/s, USD, watts. The equations are documented in
``docs/inference-model.md`` and ``docs/tco.md``.
"""

from __future__ import annotations

import numpy as np


def select(cond, a, b):
    """``a`` where ``cond`` holds, else ``b`` (``numpy.where``; a scalar ``a if cond else b`` in
    the compiled fast path)."""
    return np.where(cond, a, b)


# --------------------------------------------------------------------------------- mapping


def stage_layers(num_layers, pp, units_per_layer):
    """Layers the slowest of ``pp`` pipeline stages holds. A layer is cut into ``units_per_layer``
    pieces (1: whole layers; 3: attention, MLP-in, MLP-out as in the v1 model) and each stage
    takes ceil(units / pp) pieces at most; with pp dividing the layers this is layers / pp."""
    units = num_layers * units_per_layer
    return np.ceil(units / pp - 1e-9) / units_per_layer


def tensor_degree(servers, chips_per_server, pp):
    """Chips per pipeline stage: all chips of the system split evenly over the ``pp`` stages,
    floor(servers x chips per server / pp) (Megatron: every chip of a stage in its tensor
    group)."""
    return np.floor(servers * chips_per_server / pp)


def servers_for(nmin, multiplier):
    """Servers of a mapping: ceil(N_min x multiplier), rounded at 1e-9 to absorb float noise
    (N_min: the fewest servers whose memory holds the weights)."""
    return np.ceil(nmin * multiplier - 1e-9)


def kv_heads_per_chip(heads, kv_heads, tp):
    """KV heads each chip of a tensor group of ``tp`` holds and reads: ``kv / tp``, replicated up
    to one head per query-head group when ``tp`` exceeds the KV heads (MQA/GQA); beyond ``heads``
    chips, heads are split along the head dimension."""
    return kv_heads / tp * np.maximum(1.0, np.minimum(tp, heads) / kv_heads)


def mlp_params_read(mlp_params_per_token, moe_layer_share, expert_params, experts, top_k, rows):
    """MLP weights one layer reads for ``rows`` tokens. A mixture of experts reads only the
    experts touched: E (1 - (1 - k/E)^rows) of them under uniform routing (k for one token),
    weighted by the share of MoE layers. Dense models (``experts`` = 0) read the per-token MLP."""
    e = np.maximum(experts, 1.0)
    touched = e * (1.0 - (1.0 - top_k / e) ** rows)
    return mlp_params_per_token + moe_layer_share * ((touched - top_k) * expert_params)


# --------------------------------------------------------------------------------- memory


def weight_bytes_per_chip(
    layers, layer_params, head_params, head_matmul_params, pp, tp, storage_bytes
):
    """Weight bytes the busiest chip stores: its stage's ``layers`` / tp, plus the embedding and
    LM head (``head_params``) when one stage holds the whole model, or the larger of the two
    matrices (the LM head, ``head_matmul_params``) on the first or last stage otherwise.
    ``storage_bytes`` per weight (compressed for sparse models)."""
    head = select(pp > 1, head_matmul_params, head_params)
    return (layers * layer_params + head) / tp * storage_bytes


def kv_bytes_per_chip(layers, batch, context, head_dim, kv_heads_chip, kv_bytes, in_capacity):
    """KV-cache bytes one chip holds: keys and values of ``kv_heads_chip`` heads for ``layers``
    layers, ``batch`` sequences of ``context`` tokens each. ``in_capacity`` (1 or 0) says whether
    the KV must fit memory at all."""
    return in_capacity * layers * batch * context * 2.0 * head_dim * kv_heads_chip * kv_bytes


# --------------------------------------------------------------------------------- links


def link_bandwidths(chips_per_server, chip_link_bw, server_link_bw, servers, tp, pp, v1):
    """(tensor-group link bandwidth, stage-transfer link bandwidth) in B/s.

    Chips are numbered server by server and stage s holds chips s tp .. s tp + tp - 1. A group
    that fits whole in a server (tp divides the chips of a server, or all stages fit one server)
    rings over chip links; a group of whole servers rings over the server link; a group that
    straddles a server boundary rings over a server uplink it shares with the neighbouring
    group's ring, so at half the server link (found by the event-level simulation). A stage
    transfer takes the server link once the system has more than one server.

    ``v1`` (true for the v1 latency model) keeps the v1 model's coarser rule: a group larger
    than a server rings over the server link, any other over chip links; stage transfers take
    the server link when a stage fills one server or more, else chip links.
    """
    cps = chips_per_server
    server = np.minimum(chip_link_bw, server_link_bw)
    inside = (tp <= cps) & ((np.mod(cps, tp) == 0) | (tp * pp <= cps))
    whole = (tp > cps) & (np.mod(tp, cps) == 0)
    tp_bw = select(inside, chip_link_bw, select(whole, server, server / 2.0))
    pp_bw = select(servers > 1, server, chip_link_bw)
    tp_bw_v1 = select(tp > cps, server, chip_link_bw)
    pp_bw_v1 = select(tp >= cps, server, chip_link_bw)
    return select(v1, tp_bw_v1, tp_bw), select(v1, pp_bw_v1, pp_bw)


def allreduce_s(nbytes, n, bw, startup_s, dims):
    """All-reduce of ``nbytes`` over ``n`` chips on links of ``bw`` B/s with ``startup_s`` per
    step. As a ring (``dims`` = 1): 2 (n - 1) steps of n-th chunks, 2 (n - 1) / n x nbytes / bw +
    2 (n - 1) startup. On a ``dims``-dimensional torus (reduce-scatter then all-gather along each
    dimension in turn) the bytes moved are the same and the steps fall to 2 dims (n^(1/dims) - 1).
    Zero for one chip."""
    steps = 2.0 * dims * (n ** (1.0 / dims) - 1.0)
    return 2.0 * (n - 1.0) / n * nbytes / bw + steps * startup_s


def stage_transfer_s(nbytes, bw, startup_s, pp):
    """Moving ``nbytes`` of activations to the next pipeline stage (none with one stage)."""
    return select(pp > 1, nbytes / bw + startup_s, 0.0)


# --------------------------------------------------------------------------------- compute


def systolic_side(flops, clock_hz):
    """v1: side of the square systolic array holding the chip's MACs,
    round(sqrt(FLOP/s / 2 / clock)) (a MAC is two FLOPs a cycle)."""
    return np.round(np.sqrt(flops / 2.0 / clock_hz))


def systolic_utilisation(rows, cols, side):
    """v1: fraction of a side x side systolic array that a matmul of ``rows`` inputs and ``cols``
    output columns keeps busy, min(rows x cols / side^2, 1)."""
    return np.minimum(rows * cols / side**2, 1.0)


def matmul_s(flops, nbytes, flops_per_s, bytes_per_s, utilisation, v1):
    """One matmul: max(FLOPs / FLOP/s, weight bytes / bandwidth) (roofline); the v1 model times
    compute only, at the systolic ``utilisation``."""
    return select(
        v1,
        flops / (flops_per_s * utilisation),
        np.maximum(flops / flops_per_s, nbytes / bytes_per_s),
    )


def flop_utilisation(flops, seconds, chips, peak_flops_per_chip):
    """Fraction of the peak FLOP/s of ``chips`` chips that ``flops`` in ``seconds`` use."""
    return flops / (seconds * chips * peak_flops_per_chip)


# --------------------------------------------------------------------------------- cost


def server_tco_usd(power_code, cost_usd, tdp_w, wall_w, utilisation, a_per_usd, b_per_w, fixed):
    """TCO of one server over its life, TCO = a C + b P (docs/tco.md), with the server power P
    chosen by ``power_code`` (:data:`chipletcloud.perf.codes.POWER_SOURCES`): 0, the wall power
    ``wall_w`` from the energy model capped at the TDP; 1, the TDP; 2 (v1), fixed + U (TCO at TDP
    - fixed) with ``fixed`` = capex and its interest (USD) and U the FLOP ``utilisation`` (capped
    at 1)."""
    full = a_per_usd * cost_usd + b_per_w * tdp_w
    energy = a_per_usd * cost_usd + b_per_w * np.minimum(wall_w, tdp_w)
    scaled = fixed + np.minimum(utilisation, 1.0) * (full - fixed)
    return select(power_code == 0, energy, select(power_code == 1, full, scaled))


def server_power_w(power_code, tdp_w, wall_w, utilisation):
    """The server power a TCO is charged at (see :func:`server_tco_usd`): the capped wall power,
    the TDP, or U x TDP (v1)."""
    scaled = np.minimum(utilisation, 1.0) * tdp_w
    return select(
        power_code == 0, np.minimum(wall_w, tdp_w), select(power_code == 1, tdp_w, scaled)
    )


def usd_per_million_tokens(units, tco_usd_per_unit, life_s, tokens_per_s):
    """TCO per million generated tokens: ``units`` (servers or devices) x TCO of one over its
    life / the life in seconds / throughput x 1e6 (docs/tco.md). A rented device is one with
    ``tco_usd_per_unit`` = its price per second and ``life_s`` = 1."""
    return units * tco_usd_per_unit / life_s / tokens_per_s * 1e6
