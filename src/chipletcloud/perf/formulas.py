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

from chipletcloud.perf.codes import (
    FULL,
    HIERARCHICAL,
    MESH2D,
    ONE_SHOT,
    RECURSIVE_DOUBLING,
    RING,
    SWITCH,
    TORUS,
    TWO_SHOT,
)


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


def balanced_stage_layers(num_layers, pp, units_per_layer, head_layers, balance):
    """(layers of the fullest stage, layers of the last stage). Without ``balance`` (0) both are
    :func:`stage_layers` (the LM head sits on a full last stage). With ``balance`` (1) the first
    pp - 1 stages hold k layers and the last L - (pp - 1) k, with k chosen to minimise the
    slowest stage max(k, L - (pp - 1) k + e), e = ``head_layers`` (the LM head in layers; in
    units of a layer with ``units_per_layer``): k is floor or ceil of (L + e) / pp, at least 1
    and at most L / (pp - 1) so that the last stage holds 0 or more. One stage holds all."""
    units = num_layers * units_per_layer
    even = stage_layers(num_layers, pp, units_per_layer)
    e = head_layers * units_per_layer
    rest = np.maximum(pp - 1.0, 1.0)
    kmax = np.floor(units / rest + 1e-9)
    x = (units + e) / pp
    kf = np.minimum(np.maximum(np.floor(x), 1.0), kmax)
    kc = np.minimum(np.maximum(np.ceil(x), 1.0), kmax)
    tf = np.maximum(kf, units - (pp - 1.0) * kf + e)
    tc = np.maximum(kc, units - (pp - 1.0) * kc + e)
    k = select(tc < tf, kc, kf)
    k = select(pp > 1.0, k, units)
    last = units - (pp - 1.0) * k
    on = balance == 1.0
    return select(on, k / units_per_layer, even), select(on, last / units_per_layer, even)


def tensor_degree(servers, chips_per_server, pp):
    """Chips per pipeline stage: all chips of the system split evenly over the ``pp`` stages,
    floor(servers x chips per server / pp) (Megatron: every chip of a stage in its tensor
    group)."""
    return np.floor(servers * chips_per_server / pp)


def tensor_degree_valid(tp, heads, whole_heads):
    """Whether a tensor degree is admissible: at least one chip, and with ``whole_heads`` (1 or
    0) a divisor of the attention heads, so that each chip computes whole heads."""
    return (tp >= 1.0) & ((whole_heads == 0.0) | (np.mod(heads, np.maximum(tp, 1.0)) == 0.0))


def servers_for(nmin, multiplier):
    """Servers of a mapping: ceil(N_min x multiplier), rounded at 1e-9 to absorb float noise
    (N_min: the fewest servers whose memory holds the weights)."""
    return np.ceil(nmin * multiplier - 1e-9)


def kv_heads_per_chip(heads, kv_heads, tp):
    """KV heads each chip of a tensor group of ``tp`` holds and reads: ``kv / tp``, replicated up
    to one head per query-head group when ``tp`` exceeds the KV heads (MQA/GQA); beyond ``heads``
    chips, heads are split along the head dimension."""
    return kv_heads / tp * np.maximum(1.0, np.minimum(tp, heads) / kv_heads)


def gcd(a, b):
    """Greatest common divisor of two whole numbers (floats), by Euclid's algorithm: 64 steps
    cover every pair below 10^13 (consecutive Fibonacci numbers are the slowest pairs)."""
    for _ in range(64):
        r = select(b > 0.0, np.mod(a, np.maximum(b, 1.0)), 0.0)
        a = select(b > 0.0, b, a)
        b = r
    return a


def chip_kv_heads(heads, kv_heads, tp, whole_heads):
    """KV heads the busiest chip of a tensor group of ``tp`` holds: :func:`kv_heads_per_chip`,
    or with ``whole_heads`` (1 or 0; ``tp`` divides the heads, each chip computes n = heads / tp
    whole query heads, k = heads / kv_heads of them share a KV head) every KV head whose query
    heads the chip computes. A run of n heads starting at a multiple of n touches at most
    floor((k - gcd(n, k) + n - 1) / k) + 1 groups (n / k when k divides n, 1 when n divides k):
    e.g. Falcon-180B, 232 heads in groups of 29, on 29 chips of 8 heads: 2 KV heads a chip."""
    n = heads / np.maximum(tp, 1.0)
    k = heads / kv_heads
    whole = np.floor((k - gcd(n, k) + n - 1.0) / k) + 1.0
    use = (whole_heads == 1.0) & (tp <= heads) & (np.mod(heads, np.maximum(tp, 1.0)) == 0.0)
    return select(use, whole, kv_heads_per_chip(heads, kv_heads, tp))


def kv_split_chips(heads, kv_heads, tp, split):
    """Chips that share one KV head's cache by sequence (``split`` 1; Pope et al., MLSys 2023,
    for multi-query attention): when a tensor group is wider than the KV heads, the
    r = floor(min(tp, heads) / kv_heads) chips computing one KV head's queries each hold and
    read the KV of ceil(B / r) of the sequences instead of all of them (``replicate``, split 0,
    or no wider group: r = 1)."""
    r = np.floor(np.minimum(tp, heads) / kv_heads)
    return select((split == 1.0) & (r > 1.0), r, 1.0)


def sequences_per_chip(batch, split_chips):
    """Sequences whose KV cache one chip holds and reads: ceil(batch / r) of a batch sharded
    over ``split_chips`` r chips (all of them when r = 1)."""
    return np.ceil(batch / split_chips - 1e-9)


def kv_read_heads_per_chip(heads, kv_heads, tp, per_query_head, whole_heads=0.0, split_chips=1.0):
    """KV heads each chip reads for each of its sequences: those it holds (:func:`chip_kv_heads`),
    or with ``per_query_head`` (1 or 0; the authors' defect) one per query head it computes,
    heads / tp x ``split_chips`` (its own heads, or with a split KV cache those of the r chips
    sharing its KV head, for a share of the sequences), as if GQA/MQA had not shared them."""
    held = chip_kv_heads(heads, kv_heads, tp, whole_heads)
    return select(per_query_head == 1.0, heads / tp * split_chips, held)


def prefill_pairs(prompt, authors):
    """Query-key pairs of one sequence's prefill, per head: causal attention, P (P + 1) / 2; with
    ``authors`` (1 or 0; the authors' defect) that count divided by the prompt length."""
    causal = prompt * (prompt + 1.0) / 2.0
    return select(authors == 1.0, causal / prompt, causal)


def windowed_context(context, window, window_share):
    """KV tokens the average layer holds or reads at ``context``: full-attention layers all of
    them, the ``window_share`` of layers with a sliding window of ``window`` keys (Mistral,
    arXiv 2310.06825; gpt-oss alternates the two) the last ``window`` only."""
    return (1.0 - window_share) * context + window_share * np.minimum(context, window)


def windowed_mean_decode_context(prompt, gen, window, window_share):
    """Mean KV tokens a decode step of the average layer attends over a request: the context
    runs from ``prompt`` to ``prompt + gen`` (mean ``prompt + gen / 2``, the full layers); a
    windowed layer attends min(context, W), whose mean over that range is
    ((W'^2 - P^2) / 2 + W' (P + G - W')) / G with W' = min(W, P + G), or W once P >= W."""
    prompt = np.asarray(prompt, float)
    gen = np.asarray(gen, float)
    full = prompt + gen / 2.0
    w = np.minimum(window, prompt + gen)
    with np.errstate(divide="ignore", invalid="ignore"):
        ramp = ((w * w - prompt * prompt) / 2.0 + w * (prompt + gen - w)) / gen
    win = np.where(prompt >= w, np.minimum(window, prompt), np.where(gen > 0, ramp, prompt))
    return (1.0 - window_share) * full + window_share * win


def windowed_prefill_pairs(prompt, authors, window, window_share):
    """Query-key pairs of one sequence's prefill, per head, in the average layer: causal
    :func:`prefill_pairs` in full layers; with a window of W keys, query t attends min(t, W):
    W' (W' + 1) / 2 + (P - W') W' with W' = min(W, P). ``authors`` divides by P as there."""
    prompt = np.asarray(prompt, float)
    w = np.minimum(window, prompt)
    win = w * (w + 1.0) / 2.0 + (prompt - w) * w
    pairs = (1.0 - window_share) * prefill_pairs(prompt, 0.0) + window_share * win
    return select(authors == 1.0, pairs / prompt, pairs)


def kv_energy_share(micro_batch, per_micro_batch):
    """Share of the KV read traffic that energy is charged for: all of it, or with
    ``per_micro_batch`` (1 or 0; the authors' defect) one sequence per micro-batch,
    1 / micro-batch."""
    return select(per_micro_batch == 1.0, 1.0 / micro_batch, 1.0)


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


def stage_memory(
    layers, last_layers, layer_params, head_params, head_matmul_params, embed_params, pp, tp,
    storage_bytes, kv_bytes_per_layer, balance,
):  # fmt: skip
    """(weight bytes, KV bytes) of the busiest chip. Without ``balance``:
    :func:`weight_bytes_per_chip` and ``layers`` x ``kv_bytes_per_layer``. With ``balance`` the
    stages as they are (:func:`balanced_stage_layers`): the first holds ``layers`` and the
    embedding (``embed_params``), the last ``last_layers`` and the LM head, the others
    ``layers``; one stage holds everything. The stage with the most bytes is reported."""
    sb = storage_bytes / tp
    w_even = weight_bytes_per_chip(
        layers, layer_params, head_params, head_matmul_params, pp, tp, storage_bytes
    )
    w_first = (layers * layer_params + select(pp > 1.0, embed_params, head_params)) * sb
    w_last = (last_layers * layer_params + head_matmul_params) * sb
    kv_first = layers * kv_bytes_per_layer
    kv_last = last_layers * kv_bytes_per_layer
    first_busier = (pp <= 1.0) | (w_first + kv_first >= w_last + kv_last)
    on = balance == 1.0
    w = select(on, select(first_busier, w_first, w_last), w_even)
    kv = select(on, select(first_busier, kv_first, kv_last), layers * kv_bytes_per_layer)
    return w, kv


def kv_bytes_per_chip(layers, batch, context, kv_values, kv_heads_chip, kv_bytes, in_capacity):
    """KV-cache bytes one chip holds: ``kv_values`` per token per KV head (K and V: 2 x head
    dim; latent attention: the latent and rope key of its one shared "head") of
    ``kv_heads_chip`` heads for ``layers`` layers, ``batch`` sequences of ``context`` tokens each
    (windowed layers: :func:`windowed_context`). ``in_capacity`` (1 or 0) says whether the KV
    must fit memory at all."""
    return in_capacity * layers * batch * context * kv_values * kv_heads_chip * kv_bytes


# --------------------------------------------------------------------------------- links


def has_algorithm(algorithms, bit):
    """Whether the bit mask ``algorithms`` (:data:`chipletcloud.perf.codes.ALGORITHMS`) allows the
    collective algorithm ``bit``."""
    return np.mod(np.floor(algorithms / bit), 2.0) == 1.0


def grid_dims(n, dims):
    """Dimensions ``n`` chips can fill on a ``dims``-dimensional mesh or torus: at most
    floor(log2 n), so that every dimension has at least 2 chips (2 or 3 chips form a ring)."""
    return np.minimum(dims, np.maximum(np.floor(np.log2(np.maximum(n, 1.0))), 1.0))


def rd_steps(n):
    """Exchanges of a recursive-doubling all-reduce of ``n`` chips: log2 n for a power of two;
    otherwise the ranks beyond the largest power of two fold in and out, floor(log2 n) + 2."""
    lg = np.floor(np.log2(np.maximum(n, 1.0)))
    return select(2.0**lg == n, lg, lg + 2.0)


def fabric_hops(n, topology, dims):
    """(diameter, hops a recursive-doubling exchange walks in all) of ``n`` chips on one fabric
    (:data:`chipletcloud.perf.codes.TOPOLOGIES`). A ring or torus of ``dims`` dimensions of side
    k = n^(1/dims) has diameter dims floor(k / 2) and a 2-D mesh dims (k - 1), at least one hop;
    partners 1, 2, 4 .. hops apart along each dimension sum to dims (k - 1) hops. On a fully
    connected fabric or a switch every exchange is one hop: diameter 1, :func:`rd_steps` hops."""
    k = n ** (1.0 / dims)
    direct = topology >= FULL
    grid = select(topology == MESH2D, dims * (k - 1.0), dims * np.floor(k / 2.0))
    diameter = select(direct, 1.0, np.maximum(grid, 1.0))
    rd_hops = select(direct, rd_steps(n), np.maximum(dims * (k - 1.0), 1.0))
    return diameter, rd_hops


def fabric_plan(n, bw, hop_s, topology, dims, algorithms):
    """The all-reduce algorithms of ``n`` chips on one fabric as (latency, seconds a byte) pairs,
    (ring, recursive doubling, one-shot, two-shot): an algorithm takes latency + slope x bytes,
    the ring and two-shot counting pieces of nbytes / n, the others whole messages
    (:func:`allreduce_fabric_s` gives the algorithms; :func:`fabric_time` evaluates them). An
    algorithm ``algorithms`` does not allow has infinite latency. Everything here is independent
    of the message, so the search computes it once a mapping."""
    direct = topology >= FULL
    dims = grid_dims(n, dims)
    ring_bw = select(topology == MESH2D, bw / 2.0, bw)
    steps = 2.0 * dims * (n ** (1.0 / dims) - 1.0)
    diameter, rd_hops = fabric_hops(n, topology, dims)
    spread = select(direct, 1.0, np.maximum(diameter / 2.0, 1.0))
    link_bw = select(topology == FULL, bw / np.maximum(n - 1.0, 1.0), bw / (2.0 * dims))
    rd_bw = select(topology == SWITCH, bw, link_bw)
    inf = np.inf
    return (
        select(has_algorithm(algorithms, RING), steps * hop_s, inf),
        2.0 * (n - 1.0) / ring_bw,
        select(has_algorithm(algorithms, RECURSIVE_DOUBLING), rd_hops * hop_s, inf),
        rd_steps(n) / rd_bw,
        select(has_algorithm(algorithms, ONE_SHOT), diameter * hop_s, inf),
        (n - 1.0) / bw * spread,
        select(has_algorithm(algorithms, TWO_SHOT), 2.0 * diameter * hop_s, inf),
        2.0 * (n - 1.0) / bw * spread,
    )


def fabric_time(plan, nbytes, n, packet_bytes):
    """The fastest algorithm of a :func:`fabric_plan` for ``nbytes`` (s): pieces of nbytes / n
    (ring, two-shot) or whole messages (recursive doubling, one-shot), none smaller than
    ``packet_bytes``. Zero for one chip."""
    l_ring, c_ring, l_rd, c_rd, l_one, c_one, l_two, c_two = plan
    piece = np.maximum(nbytes / n, packet_bytes)
    whole = np.maximum(nbytes, packet_bytes)
    best = np.minimum(l_ring + c_ring * piece, l_rd + c_rd * whole)
    best = np.minimum(best, np.minimum(l_one + c_one * whole, l_two + c_two * piece))
    return select(n > 1.0, best, 0.0)


def allreduce_fabric_s(nbytes, n, bw, hop_s, topology, dims, algorithms, packet_bytes=0.0):
    """The fastest allowed all-reduce of ``nbytes`` over ``n`` chips on one fabric, chips injecting
    ``bw`` B/s each (all their links together) and every hop costing ``hop_s`` (SerDes, FEC,
    router). Zero for one chip. The candidates (Thakur, Rabenseifner and Gropp, IJHPCA 2005;
    Patarasuk and Yuan, JPDC 2009):

    * ring / bucket (``RING``): reduce-scatter then all-gather along each of ``dims`` dimensions,
      2 (n - 1) / n x nbytes / bw + 2 dims (n^(1/dims) - 1) hops (one hop a step); a 2-D mesh
      has no wrap-around links, so its rings run both ways over each link: half the bandwidth;
    * recursive doubling (``RECURSIVE_DOUBLING``): :func:`rd_steps` exchanges of the whole
      message over one link (bw / 2 dims on a ring or torus, bw / (n - 1) on a fully connected
      fabric, bw through a switch), partners up to the diameter apart;
    * one-shot (``ONE_SHOT``): every chip sends its message to all others at once and reduces
      locally: one diameter of hops, (n - 1) x nbytes injected; on a multi-hop fabric every byte
      crosses the mean distance, half the diameter, in links (``spread``: the load on each of a
      chip's links is spread x its share of the injection);
    * two-shot (``TWO_SHOT``): direct reduce-scatter then all-gather, two diameters of hops and
      2 (n - 1) / n x nbytes x spread.

    No message is smaller than ``packet_bytes`` (a link-layer packet or minimum frame): a piece of
    nbytes / n costs max(nbytes / n, packet_bytes) on the wire, so thousands of tiny pieces are
    not free.
    """
    return fabric_time(
        fabric_plan(n, bw, hop_s, topology, dims, algorithms), nbytes, n, packet_bytes
    )


def reduce_scatter_fabric_s(nbytes, n, bw, hop_s, topology, dims, algorithms, packet_bytes=0.0):
    """Reduce-scatter of an ``nbytes`` buffer over ``n`` chips on one fabric (all-gather, its
    mirror image, costs the same): half of the bucket all-reduce, (n - 1) / n x nbytes / bw +
    dims (n^(1/dims) - 1) hops, or, with ``TWO_SHOT`` allowed, one direct round (one diameter of
    hops, (n - 1) / n x nbytes x spread, as in :func:`allreduce_fabric_s`; pieces of at least
    ``packet_bytes``). Zero for one chip."""
    direct = topology >= FULL
    dims = grid_dims(n, dims)
    piece = np.maximum(nbytes / n, packet_bytes)
    ring_bw = select(topology == MESH2D, bw / 2.0, bw)
    ring = (n - 1.0) * piece / ring_bw + dims * (n ** (1.0 / dims) - 1.0) * hop_s
    diameter, _ = fabric_hops(n, topology, dims)
    spread = select(direct, 1.0, np.maximum(diameter / 2.0, 1.0))
    one_round = (n - 1.0) * piece / bw * spread + diameter * hop_s
    best = np.minimum(ring, select(has_algorithm(algorithms, TWO_SHOT), one_round, np.inf))
    return select(n > 1.0, best, 0.0)


def all_to_all_fabric_s(nbytes, n, bw, hop_s, topology, dims, packet_bytes=0.0):
    """All-to-all of an ``nbytes`` buffer a chip over ``n`` chips on one fabric (MoE dispatch
    and combine): each chip sends nbytes / n to every other at once, (n - 1) / n x nbytes / bw
    injected, every byte crossing the mean distance (half the diameter) in links on a multi-hop
    fabric, one diameter of hops; pieces of at least ``packet_bytes``. Zero for one chip."""
    direct = topology >= FULL
    dims = grid_dims(n, dims)
    piece = np.maximum(nbytes / n, packet_bytes)
    diameter, _ = fabric_hops(n, topology, dims)
    spread = select(direct, 1.0, np.maximum(diameter / 2.0, 1.0))
    return select(n > 1.0, (n - 1.0) * piece / bw * spread + diameter * hop_s, 0.0)


def kv_all_to_all_s(
    nbytes, split_chips, tp, pp, chips_per_server, chip_link_bw, server_link_bw,
    nics_per_server, hop_s, net_hop_s, sync_s, topology, dims, packet_bytes=0.0,
):  # fmt: skip
    """One all-to-all of ``nbytes`` a chip among the ``split_chips`` r chips that share a KV head
    by sequence (a split KV cache: the queries, then the attention outputs, change hands between
    the head layout of the projections and the sequence layout of the cache; Pope et al., MLSys
    2023). The r chips are neighbours in the tensor group (placed as in
    :func:`tensor_placement`, g of its chips a server): :func:`all_to_all_fabric_s` over
    min(r, g) chips on the server's fabric (a block of a 2-D torus has no wrap-around links, as
    in :func:`collective_plan`); when r > g each server's g chips also send the share 1 - g / r
    of their bytes to other servers through their uplinks (``min(nics, g)`` NICs shared by
    ``share`` groups; one server hop). Plus the fixed cost of a collective. Zero when r = 1."""
    g, _, share, fabric, uplink = group_links(
        chips_per_server, tp, pp, server_link_bw, nics_per_server, topology, dims
    )
    n_in = np.minimum(split_chips, g)
    inside = all_to_all_fabric_s(nbytes, n_in, chip_link_bw, hop_s, fabric, dims, packet_bytes)
    spill = g * nbytes * (1.0 - g / split_chips)
    across = select(split_chips > g, spill / uplink + net_hop_s, 0.0)
    return select(split_chips > 1.0, inside + across + sync_s, 0.0)


def group_links(chips_per_server, tp, pp, server_link_bw, nics_per_server, topology, dims):
    """(chips a server ``g``, servers ``s``, uplink ``share``, the fabric the group's chips in a
    server form, the bandwidth of each server's share of the uplinks) of the worst-placed tensor
    group (:func:`tensor_placement`). A group smaller than its server's 2-D torus is a block of it,
    without wrap-around links (a TPU pod's optical switches give every 3-D slice its own
    wrap-around: it stays a torus); the group's ``min(nics, g)`` NICs are shared by ``share``
    groups."""
    g, s, share = tensor_placement(chips_per_server, tp, pp)
    block = (topology == TORUS) & (dims == 2.0) & (g < chips_per_server)
    fabric = select(block, MESH2D, topology)
    uplink = server_link_bw * np.minimum(nics_per_server, g) / share
    return g, s, share, fabric, uplink


def tensor_placement(chips_per_server, tp, pp):
    """(chips a server ``g``, servers ``s``, uplink ``share``) of the worst-placed tensor group.

    Chips are numbered server by server and stage i holds chips i tp .. i tp + tp - 1. A group
    inside one server (tp divides the chips of a server, or all stages fit one server) has
    g = tp, s = 1; a group of whole servers g = chips a server, s = tp / that; any other group
    straddles a server boundary: it spans ceil(tp / chips a server) + 1 servers at tp / s chips
    each and shares each boundary server's uplink with the neighbouring group (share 2)."""
    cps = chips_per_server
    inside = (tp <= cps) & ((np.mod(cps, tp) == 0) | (tp * pp <= cps))
    whole = (tp > cps) & (np.mod(tp, cps) == 0)
    s = select(inside, 1.0, select(whole, tp / cps, np.ceil(tp / cps) + 1.0))
    share = select(inside | whole, 1.0, 2.0)
    return tp / s, s, share


def v1_link_bandwidths(chips_per_server, chip_link_bw, server_link_bw, tp):
    """The v1 model's link rule [A1]: (tensor-group, stage-transfer) bandwidth in B/s. A group
    larger than a server rings over the server link, any other over chip links; stage transfers
    take the server link when a stage fills one server or more, else chip links."""
    server = np.minimum(chip_link_bw, server_link_bw)
    return (
        select(tp > chips_per_server, server, chip_link_bw),
        select(tp >= chips_per_server, server, chip_link_bw),
    )


def collective_plan(
    servers,
    tp,
    pp,
    chips_per_server,
    chip_link_bw,
    server_link_bw,
    nics_per_server,
    hop_s,
    net_hop_s,
    sync_s,
    topology,
    dims,
    algorithms,
    net_radix,
    net_tier_s,
):
    """Everything of :func:`collectives_s` that does not depend on the message: the placement of
    the tensor group, the :func:`fabric_plan` inside a server and between servers, the flat
    ring's latency and slope, and the transfer's latency and bandwidth. Computed once a mapping
    and evaluated for each message by :func:`collective_times`."""
    g, s, share, fabric, uplink = group_links(
        chips_per_server, tp, pp, server_link_bw, nics_per_server, topology, dims
    )
    intra = fabric_plan(g, chip_link_bw, hop_s, fabric, dims, algorithms)
    tiers = select(s <= net_radix, 0.0, select(s <= net_radix * net_radix / 2.0, 2.0, 4.0))
    net_hop = net_hop_s + tiers * net_tier_s
    across = fabric_plan(s, uplink, net_hop, SWITCH, 1.0, algorithms)
    hier = select(has_algorithm(algorithms, HIERARCHICAL), 1.0, 0.0)
    ring_bw = np.minimum(chip_link_bw, server_link_bw / share)
    net = servers > 1.0
    return (
        (
            g,
            s,
            tp,
            pp,
            hier,
            2.0 * (tp - 1.0) * np.maximum(hop_s, net_hop),
            2.0 * (tp - 1.0) / ring_bw,
            select(net, net_hop_s, hop_s) + sync_s,
            select(net, np.minimum(chip_link_bw, server_link_bw), chip_link_bw),
            sync_s,
        )
        + intra
        + across
    )


def collective_times(plan, nbytes, packet_bytes):
    """(all-reduce, stage transfer) of ``nbytes`` (s) from a :func:`collective_plan`."""
    g, s, tp, pp, hier, l_flat, c_flat, l_tx, bw_tx, sync = plan[:10]
    intra = fabric_time(plan[10:18], nbytes, g, packet_bytes)
    across = fabric_time(plan[18:26], nbytes, s, packet_bytes)
    flat = l_flat + c_flat * np.maximum(nbytes / tp, packet_bytes)
    multi = np.minimum(select(hier == 1.0, intra + across, np.inf), flat)
    allreduce = select(tp > 1.0, select(s > 1.0, multi, intra) + sync, 0.0)
    transfer = select(pp > 1.0, np.maximum(nbytes, packet_bytes) / bw_tx + l_tx, 0.0)
    return allreduce, transfer


def v1_collectives_s(nbytes, tp, pp, chips_per_server, chip_link_bw, server_link_bw, hop_s):
    """The v1 model's collectives [A1] (docs/inference-model.md#the-v1-latency-model): a ring
    all-reduce, 2 (tp - 1) / tp x nbytes / bw + 2 (tp - 1) start-ups, and a transfer of nbytes /
    bw + one start-up, on :func:`v1_link_bandwidths`; no fixed cost, no packets."""
    tp_bw, pp_bw = v1_link_bandwidths(chips_per_server, chip_link_bw, server_link_bw, tp)
    ring = 2.0 * (tp - 1.0) / tp * nbytes / tp_bw + 2.0 * (tp - 1.0) * hop_s
    return select(tp > 1.0, ring, 0.0), select(pp > 1.0, nbytes / pp_bw + hop_s, 0.0)


def collectives_s(
    nbytes,
    servers,
    tp,
    pp,
    chips_per_server,
    chip_link_bw,
    server_link_bw,
    nics_per_server,
    hop_s,
    net_hop_s,
    sync_s,
    topology,
    dims,
    algorithms,
    v1,
    packet_bytes=0.0,
    net_radix=np.inf,
    net_tier_s=0.0,
):
    """(one all-reduce of ``nbytes`` over the tensor group, one stage-to-stage transfer of
    ``nbytes``) in seconds (docs/interconnect.md).

    All-reduce: inside one server, :func:`allreduce_fabric_s` on the server's fabric. A group
    over s servers may also run hierarchically (``HIERARCHICAL``): the in-server all-reduce
    (reduce-scatter + all-gather) plus an all-reduce of the whole message between the servers
    through their uplinks (``server_link_bw`` a NIC, ``min(nics, g)`` NICs, shared by ``share``
    groups; one ``net_hop_s`` a step: NIC, switch, NIC); or as one flat ring whose every step
    waits for the slower hop. Each collective pays the fixed ``sync_s`` once (barrier, DMA
    set-up). Between more servers than a switch has ports (``net_radix``) a traversal climbs a
    leaf-spine tree: 2 more switch tiers (``net_tier_s`` each: a switch and a link), 4 beyond
    radix^2 / 2 servers. No message is smaller than ``packet_bytes``. Transfer: bytes /
    bandwidth + one hop + ``sync_s``, over the server network once the system has more than one
    server (neighbouring stages share a top-of-rack switch). ``v1`` keeps the v1 model: rings
    only, its link rule
    (:func:`v1_link_bandwidths`), no fixed cost."""
    plan = collective_plan(
        servers,
        tp,
        pp,
        chips_per_server,
        chip_link_bw,
        server_link_bw,
        nics_per_server,
        hop_s,
        net_hop_s,
        sync_s,
        topology,
        dims,
        algorithms,
        net_radix,
        net_tier_s,
    )
    allreduce, transfer = collective_times(plan, nbytes, packet_bytes)
    allreduce1, transfer1 = v1_collectives_s(
        nbytes, tp, pp, chips_per_server, chip_link_bw, server_link_bw, hop_s
    )
    return select(v1, allreduce1, allreduce), select(v1, transfer1, transfer)


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


def server_tco_usd(
    power_code, cost_usd, tdp_w, wall_w, utilisation, a_per_usd, b_per_w, b_energy_per_w, fixed,
    nre_usd,
):  # fmt: skip
    """TCO of one server over its life, TCO = a C + b P + NRE share (docs/tco.md), with the server
    power P chosen by ``power_code`` (:data:`chipletcloud.perf.codes.POWER_SOURCES`): 0, the wall
    power ``wall_w`` from the energy model capped at the TDP; 1, the TDP; 2 (v1), fixed + U (TCO
    at TDP - fixed) with ``fixed`` = capex and its interest (USD) and U the FLOP ``utilisation``
    (capped at 1); 3 (``tdp_capacity``), the datacentre capacity part of b (b - ``b_energy_per_w``)
    at the TDP and the electricity part ``b_energy_per_w`` at the capped wall power. ``nre_usd``
    is the server's share of the tape-out's NRE (0 unless ``include_nre``)."""
    mean = np.minimum(wall_w, tdp_w)
    full = a_per_usd * cost_usd + b_per_w * tdp_w
    energy = a_per_usd * cost_usd + b_per_w * mean
    scaled = fixed + np.minimum(utilisation, 1.0) * (full - fixed)
    split = a_per_usd * cost_usd + (b_per_w - b_energy_per_w) * tdp_w + b_energy_per_w * mean
    tco = select(
        power_code == 0,
        energy,
        select(power_code == 1, full, select(power_code == 2, scaled, split)),
    )
    return tco + nre_usd


def server_power_w(power_code, tdp_w, wall_w, utilisation):
    """The server power a TCO's energy is charged at (see :func:`server_tco_usd`): the capped
    wall power (``energy`` and ``tdp_capacity``), the TDP, or U x TDP (v1)."""
    scaled = np.minimum(utilisation, 1.0) * tdp_w
    mean = np.minimum(wall_w, tdp_w)
    return select(power_code == 1, tdp_w, select(power_code == 2, scaled, mean))


def usd_per_million_tokens(units, tco_usd_per_unit, life_s, tokens_per_s):
    """TCO per million generated tokens: ``units`` (servers or devices) x TCO of one over its
    life / the life in seconds / throughput x 1e6 (docs/tco.md). A rented device is one with
    ``tco_usd_per_unit`` = its price per second and ``life_s`` = 1."""
    return units * tco_usd_per_unit / life_s / tokens_per_s * 1e6
