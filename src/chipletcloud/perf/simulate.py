"""The inference simulator, numpy reference: a mapped system of identical chips serving one LLM.

Every argument is a numpy array (broadcast together): one element per (design, mapping) point.
Formulas (REFERENCE.md s6 [A], with the defects listed there fixed [D]):

* Mapping. ``servers`` x ``chips_per_server`` chips; pipeline degree ``pp`` (divides the layers);
  tensor degree ``tp = floor(chips / pp)`` (all chips of a stage, Megatron partitioning); batch
  ``batch`` split into ``batch / micro_batch`` micro-batches of ``micro_batch`` sequences.
* Per layer and chip (Megatron): QKV (d -> (q + 2 kv) / tp), attention over the local KV cache, the
  output projection, the MLP, and two ring all-reduces. Every matmul takes
  ``max(FLOPs / achievable FLOP/s, weight bytes / achievable memory bandwidth)``; attention takes
  ``max(FLOPs / FLOP/s, KV bytes / bandwidth)``. KV heads are split across the tensor group and
  replicated when there are fewer KV heads than the group needs, so GQA/MQA cut both KV capacity
  and KV read traffic (fixes the authors' capacity-only GQA).
* Ring all-reduce of n bytes on t chips: ``2 (t - 1) (n / t / BW + alpha)`` on the slowest link of
  the group (chip link inside a server, server link once the group spans servers). Stage to stage:
  ``rows x d x bytes / BW + alpha`` on the server link once the system spans servers.
* Stage time ``T_s`` = layers/pp x layer time (+ LM head on the last stage) + transfer. Decode
  (DeepSpeed-Inference schedule): ``tau = max(pp, n_mb) x T_s`` per generated token for the batch;
  prefill: ``(pp + n_mb - 1) x T_s(prefill)``, attention FLOPs counted over the causal
  ``P (P + 1) / 2`` pairs (fixes the authors' under-count by a factor of the prompt length).
* Capacity: the weights of a stage and the KV cache of all ``batch`` sequences at the full context
  must fit the memory of each chip.
* Energy (REFERENCE.md s6 constants): FMAs, weight and KV reads (KV reads counted for every
  sequence, i.e. multiplied by the micro-batch: fixes the authors' defect), activation reads, plus
  the chips' static power over the run.
"""

from __future__ import annotations

import numpy as np

from chipletcloud.perf.workload import LayerShape, System, Workload

OPS = ("qkv", "attention", "out_proj", "norms", "mlp", "allreduce", "lm_head", "stage_transfer")


def stage_layers(num_layers, pp, units_per_layer=1):
    """Layers the slowest pipeline stage holds. A layer is cut into ``units_per_layer`` pieces
    (1: whole layers; 3: attention, MLP-in, MLP-out as in the v1 model) and ``pp`` stages take
    ceil(units / pp) pieces each at most; with pp dividing the layers this is layers / pp."""
    units = num_layers * units_per_layer
    return np.ceil(units / np.asarray(pp, float) - 1e-9) / units_per_layer


def tensor_degree(servers, chips_per_server, pp):
    """Chips per pipeline stage: all chips of the system split evenly over the stages."""
    return np.floor_divide(np.asarray(servers) * np.asarray(chips_per_server), np.asarray(pp))


def kv_heads_per_chip(shape: LayerShape, tp):
    """KV heads each chip of a tensor group of ``tp`` holds and reads: ``kv / tp``, replicated up to
    one head per query-head group when ``tp`` exceeds the KV heads (MQA/GQA). Beyond ``heads``
    chips, heads are split along the head dimension."""
    tp = np.asarray(tp, float)
    rep = np.maximum(1.0, np.minimum(tp, shape.heads) / shape.kv_heads)
    return shape.kv_heads / tp * rep


def experts_touched(shape: LayerShape, rows):
    """Expected distinct routed experts a batch of ``rows`` tokens sends work to (uniform routing):
    E (1 - (1 - k/E)^rows). Equals k for one token."""
    if shape.experts == 0:
        return np.zeros_like(np.asarray(rows, float))
    e, k = shape.experts, shape.experts_per_tok
    return e * (1.0 - (1.0 - k / e) ** np.asarray(rows, float))


def mlp_params_read(shape: LayerShape, rows):
    """MLP weights read for ``rows`` tokens in one layer (MoE: only the experts touched)."""
    extra = (experts_touched(shape, rows) - shape.experts_per_tok) * shape.expert_params
    return shape.mlp_params_per_token + shape.moe_layer_share * extra


def ring_allreduce_s(nbytes, n, bw, alpha, dims=1.0):
    """All-reduce of ``nbytes`` over ``n`` chips as a ring (``dims`` = 1): 2 (n - 1) steps of n-th
    chunks, i.e. 2 (n - 1) / n x nbytes / bw + 2 (n - 1) alpha. On a ``dims``-dimensional torus
    (reduce-scatter then all-gather along each dimension in turn) the bytes moved are the same and
    the start-ups fall to 2 dims (n^(1/dims) - 1)."""
    n = np.asarray(n, float)
    dims = np.asarray(dims, float)
    steps = 2.0 * dims * (n ** (1.0 / dims) - 1.0)
    return np.where(n > 1, 2.0 * (n - 1.0) / n * nbytes / bw + steps * alpha, 0.0)


def links(system: System, servers, tp, pp=1, latency_model: str = "isca24"):
    """(tensor-group link bandwidth, stage-transfer link bandwidth) in B/s.

    Chips are numbered server by server and stage s holds chips s tp .. s tp + tp - 1. A group
    that fits whole in a server (tp divides the chips of a server, or all stages fit one server)
    rings over chip links; a group of whole servers rings over the server link; a group that
    straddles a server boundary rings over a server uplink it shares with the neighbouring
    group's ring, so at half the server link (found by the event-level simulation, perf/des.py).
    A stage transfer takes the server link once the system has more than one server (the
    slowest stage, which sets the pace, is the one whose successor is in the next server).

    ``latency_model="v1"`` keeps the v1 model's coarser rule (the authors' v1-era mapping code,
    [A1]): a group larger than a server rings over the server link, any other over chip links;
    stage transfers take the server link when a stage fills one server or more, and chip links
    when a server holds several stages, so the one hop per server into the next server is
    charged at chip-link speed (optimistic; kept to reproduce the v1 results).
    """
    cps = system.chips_per_server
    tp = np.asarray(tp, float)
    server = np.minimum(system.chip_link_bw, system.server_link_bw)
    if latency_model == "v1":
        tp_bw = np.where(tp > cps, server, system.chip_link_bw)
        pp_bw = np.where(tp >= cps, server, system.chip_link_bw)
        return tp_bw, pp_bw
    inside = (tp <= cps) & ((np.mod(cps, tp) == 0) | (tp * np.asarray(pp, float) <= cps))
    whole = (tp > cps) & (np.mod(tp, cps) == 0)
    tp_bw = np.where(inside, system.chip_link_bw, np.where(whole, server, server / 2.0))
    pp_bw = np.where(
        np.asarray(servers) > 1,
        np.minimum(system.chip_link_bw, system.server_link_bw),
        system.chip_link_bw,
    )
    return tp_bw, pp_bw


def systolic_side(flops):
    """v1 [A1]: side of a square systolic array of the chip's MACs at 1 GHz,
    round(sqrt(TFLOPS / 2 x 1000))."""
    return np.round(np.sqrt(np.asarray(flops, float) / 1e12 / 2.0 * 1000.0))


#: Per-layer ops of :func:`layer_ops` with the number of kernels each launches (for the fixed
#: per-kernel overhead of GPUs/TPUs; 0 s on the ASIC): attention is QK^T and AV.
LAYER_OPS = {
    "qkv": 1,
    "attention": 2,
    "softmax": 1,
    "out_proj": 1,
    "norms": 2,
    "mlp_in": 1,
    "activation": 1,
    "mlp_out": 1,
}


def phase_rows(wl: Workload, micro_batch, phase: str):
    """(matmul rows, query-key pairs, KV tokens read) of one micro-batch in ``phase``: decode is
    one new token per sequence at the mean context; prefill is the whole prompt with the causal
    P (P + 1) / 2 pairs."""
    m = np.asarray(micro_batch, float)
    if phase == "decode":
        return m, m * wl.mean_decode_context, m * wl.mean_decode_context
    if phase == "prefill":
        p = float(wl.prompt_tokens)
        return m * p, m * p * (p + 1.0) / 2.0, m * p
    raise ValueError(phase)  # pragma: no cover - internal


def layer_ops(
    system: System,
    shape: LayerShape,
    wl: Workload,
    *,
    tp,
    micro_batch,
    phase: str,
    latency_model: str = "isca24",
) -> dict[str, np.ndarray]:
    """Seconds each op of ONE layer takes on one chip of a tensor group of ``tp`` chips, for one
    micro-batch, with its compute and memory parts (``<op>_compute``, ``<op>_memory``), and the
    bytes of each of the layer's two all-reduces (``allreduce_bytes``).

    Matmuls (``qkv``, ``out_proj``, ``mlp_in``, ``mlp_out``) take max(FLOPs / FLOP/s, weight bytes
    / bandwidth); ``attention`` max(FLOPs, KV bytes); the element-wise ops (``softmax`` over the
    local scores, the two ``norms``, the MLP ``activation``) read and write activations at the
    memory bandwidth. Every op adds ``op_overhead_s`` per kernel it launches (:data:`LAYER_OPS`).
    ``latency_model="v1"`` (REFERENCE.md s7): matmuls take compute time only, at a systolic-array
    utilisation min(rows x columns / side^2, 1) (the MACs a matmul of ``rows`` inputs and the
    chip's slice of output columns can keep busy); attention, element-wise ops and memory traffic
    are ignored.
    """
    tp = np.asarray(tp, float)
    f = system.flops * system.flops_eff
    bw = system.mem_bw * system.mem_eff
    d, hd, q, kvw = shape.hidden, shape.head_dim, shape.q_width, shape.kv_width
    wb, kvb, ab = wl.weight_bytes, wl.kv_bytes, wl.act_bytes
    rows, pairs, kv_tokens = phase_rows(wl, micro_batch, phase)
    v1 = latency_model == "v1"
    side = systolic_side(system.flops)
    zero = 0.0 * rows * tp * f

    def mm(flops, nbytes, cols):
        if v1:  # busy MACs: rows x output columns of the chip's slice, out of side^2
            t = flops / (f * np.minimum(rows * cols / side**2, 1.0))
            return t, t, zero
        return np.maximum(flops / f, nbytes / bw), flops / f, nbytes / bw

    def elementwise(nbytes):
        if v1:
            return zero, zero, zero
        return nbytes / bw, zero, nbytes / bw

    qkv_p = d * (q + 2 * kvw) / tp
    o_p = q * d / tp
    mlp_tok = shape.mlp_params_per_token / tp
    mlp_rd = mlp_params_read(shape, rows) / tp
    s_in = shape.mlp_in_share
    local_heads = shape.heads / tp
    att_flops = 4.0 * hd * local_heads * pairs
    att_bytes = 2.0 * kv_tokens * hd * kv_heads_per_chip(shape, tp) * kvb
    parts = {
        "qkv": mm(2 * rows * qkv_p, qkv_p * wb, (q + 2 * kvw) / tp),
        "attention": (zero, zero, zero)
        if v1
        else (np.maximum(att_flops / f, att_bytes / bw), att_flops / f, att_bytes / bw),
        "softmax": elementwise(2.0 * pairs * local_heads * ab),
        "out_proj": mm(2 * rows * o_p, o_p * wb, d),
        "norms": elementwise(2.0 * 2.0 * rows * d * ab),
        "mlp_in": mm(2 * rows * mlp_tok * s_in, mlp_rd * s_in * wb, mlp_tok * s_in / d),
        "activation": elementwise(rows * shape.mlp_params_per_token / d / tp * ab),
        "mlp_out": mm(2 * rows * mlp_tok * (1 - s_in), mlp_rd * (1 - s_in) * wb, d),
    }
    out: dict[str, np.ndarray] = {}
    for op, (t, c, mem) in parts.items():
        overhead = 0.0 if v1 else LAYER_OPS[op] * system.op_overhead_s
        out[op] = t + overhead
        out[f"{op}_compute"] = c
        out[f"{op}_memory"] = mem
    out["allreduce_bytes"] = rows * d * ab
    return out


def stage_ops(
    system: System,
    shape: LayerShape,
    wl: Workload,
    *,
    servers,
    pp,
    tp,
    micro_batch,
    phase: str,
    latency_model: str = "isca24",
) -> dict[str, np.ndarray]:
    """Seconds per op for one micro-batch through the slowest pipeline stage: the layers/pp
    layers of :func:`layer_ops`, two ring all-reduces a layer, the LM head on the last stage and
    the transfer to the next stage. Keys: the ops of :data:`OPS` (``mlp`` = in + activation + out,
    ``attention`` includes the softmax, ``norms`` apart) with ``_compute``/``_memory`` parts where
    they apply, and ``stage`` (the total)."""
    tp = np.asarray(tp, float)
    lo = layer_ops(
        system, shape, wl, tp=tp, micro_batch=micro_batch, phase=phase, latency_model=latency_model
    )
    layers = stage_layers(shape.num_layers, pp, wl.units_per_layer)
    tp_bw, pp_bw = links(system, servers, tp, pp, latency_model)
    rows, _, _ = phase_rows(wl, micro_batch, phase)
    out: dict[str, np.ndarray] = {}
    groups = {
        "qkv": ("qkv",),
        "attention": ("attention", "softmax"),
        "out_proj": ("out_proj",),
        "norms": ("norms",),
        "mlp": ("mlp_in", "activation", "mlp_out"),
    }
    for name, members in groups.items():
        out[name] = layers * sum(lo[m] for m in members)
        out[f"{name}_compute"] = layers * sum(lo[f"{m}_compute"] for m in members)
        out[f"{name}_memory"] = layers * sum(lo[f"{m}_memory"] for m in members)
    ar = ring_allreduce_s(
        lo["allreduce_bytes"], tp, tp_bw, system.link_startup_s, system.collective_dims
    )
    out["allreduce"] = layers * 2.0 * ar
    m = np.asarray(micro_batch, float)  # logits for the last position of each sequence only
    head_p = shape.head_matmul_params / tp
    f = system.flops * system.flops_eff
    if latency_model == "v1":
        cols = shape.head_matmul_params / shape.hidden / tp
        util = np.clip(m * cols / systolic_side(system.flops) ** 2, 1e-30, 1.0)
        t_head = 2 * m * head_p / (f * util)
    else:
        t_head = np.maximum(
            2 * m * head_p / f, head_p * wl.weight_bytes / (system.mem_bw * system.mem_eff)
        )
        t_head = t_head + system.op_overhead_s
    out["lm_head"] = np.where(shape.head_matmul_params > 0, t_head, 0.0)
    out["stage_transfer"] = np.where(
        np.asarray(pp) > 1, rows * shape.hidden * wl.act_bytes / pp_bw + system.link_startup_s, 0.0
    )
    out["stage"] = sum(out[op] for op in OPS)
    return out


def memory_per_chip(system: System, shape: LayerShape, wl: Workload, *, pp, tp, batch):
    """(weight bytes, KV bytes) the busiest chip holds: its stage's layers / tp (plus the
    embedding or LM-head matrix on the first/last stage) and the KV of all ``batch`` sequences at
    the full context."""
    pp = np.asarray(pp, float)
    tp = np.asarray(tp, float)
    layers = stage_layers(shape.num_layers, pp, wl.units_per_layer)
    head = np.where(pp > 1, shape.head_matmul_params, shape.head_params)
    w = (layers * shape.layer_params + head) / tp * wl.weight_storage_bytes
    kv = (
        (1.0 if wl.kv_in_capacity else 0.0)
        * layers
        * np.asarray(batch, float)
        * wl.max_context
        * 2.0
        * shape.head_dim
        * kv_heads_per_chip(shape, tp)
        * wl.kv_bytes
    )
    return w, kv


def simulate(
    system: System,
    shape: LayerShape,
    wl: Workload,
    *,
    servers,
    pp,
    batch,
    micro_batch,
    latency_model: str = "isca24",
    tp=None,
) -> dict[str, np.ndarray]:
    """Latency, throughput, capacity and energy of every (design, mapping) point.

    ``tp`` defaults to all chips of the system split over the stages (:func:`tensor_degree`);
    pass it to use fewer (a device count that is not a whole number of scale-up domains).

    Returns arrays: ``tp``, ``feasible`` (mapping valid and memory fits), ``stage_decode_s``,
    ``tpot_s`` (= tau, the per-token latency a user sees), ``prefill_s`` (= TTFT), ``e2e_s``,
    ``throughput_tokens_per_s`` (output tokens over a whole batch: prefill + decode, or decode only
    when the workload does not count the prefill),
    ``weight_bytes_per_chip``, ``kv_bytes_per_chip``, ``flop_utilisation``, ``energy_j_per_token``
    (chips only) and ``chip_power_w`` (mean per chip while serving), and the decode breakdown
    ``decode_<op>`` in seconds per token step.
    """
    servers = np.asarray(servers, float)
    pp = np.asarray(pp, float)
    batch = np.asarray(batch, float)
    m = np.asarray(micro_batch, float)
    if tp is None:
        tp = tensor_degree(servers, system.chips_per_server, pp)
    tp = np.asarray(tp, float)
    ok_map = (tp >= 1) & (pp <= shape.num_layers * wl.units_per_layer) & (np.mod(batch, m) == 0)
    tp_safe = np.maximum(tp, 1.0)
    n_mb = batch / m
    kw = dict(servers=servers, pp=pp, tp=tp_safe, micro_batch=m, latency_model=latency_model)
    dec = stage_ops(system, shape, wl, phase="decode", **kw)
    pre = stage_ops(system, shape, wl, phase="prefill", **kw)
    tau = np.maximum(pp, n_mb) * dec["stage"]
    prefill = (pp + n_mb - 1.0) * pre["stage"]
    g = float(wl.output_tokens)
    e2e = prefill + (g - 1.0) * tau
    cp = 1.0 if wl.count_prefill else 0.0  # the run a TCO divides by: prefill + decode, or decode
    run = cp * prefill + (g - cp) * tau
    thr = batch * g / run
    w_chip, kv_chip = memory_per_chip(system, shape, wl, pp=pp, tp=tp_safe, batch=batch)
    fits = w_chip + kv_chip <= system.mem_bytes
    chips = pp * tp_safe

    # FLOPs and bytes of one decode step of the whole batch, and of the prefill of the batch
    c = wl.mean_decode_context
    p = float(wl.prompt_tokens)
    L = shape.num_layers
    mat_tok = L * (shape.attn_params + shape.mlp_params_per_token) + shape.head_matmul_params
    att_pairs_dec = batch * c
    att_pairs_pre = batch * p * (p + 1.0) / 2.0
    att = 0.0 if latency_model == "v1" else 4.0 * L * shape.q_width  # v1 times no attention
    flops_dec = 2.0 * batch * mat_tok + att * att_pairs_dec
    flops_pre = (
        2.0 * batch * p * (mat_tok - shape.head_matmul_params)
        + 2.0 * batch * shape.head_matmul_params
        + att * att_pairs_pre
    )
    w_read_dec = (
        n_mb
        * (L * (shape.attn_params + mlp_params_read(shape, m)) + shape.head_matmul_params)
        * wl.weight_bytes
    )
    w_read_pre = (
        n_mb
        * (L * (shape.attn_params + mlp_params_read(shape, m * p)) + shape.head_matmul_params)
        * wl.weight_bytes
    )
    kv_replicas = kv_heads_per_chip(shape, tp_safe) * tp_safe / shape.kv_heads
    kv_read_dec = batch * c * L * 2.0 * shape.kv_width * wl.kv_bytes * kv_replicas
    kv_read_pre = batch * p * L * 2.0 * shape.kv_width * wl.kv_bytes * kv_replicas
    act_per_tok = (
        L
        * (2 * shape.hidden + shape.q_width + shape.mlp_params_per_token / shape.hidden)
        * wl.act_bytes
    )
    flops_run = cp * flops_pre + (g - cp) * flops_dec
    e_dyn = (
        flops_run / 2.0 * system.fma_j
        + (cp * (w_read_pre + kv_read_pre) + (g - cp) * (w_read_dec + kv_read_dec))
        * system.mem_j_per_byte
        + batch * (cp * p + g - cp) * act_per_tok * system.act_j_per_byte
    )
    e_static = chips * system.static_w_per_chip * run
    energy_per_tok = (e_dyn + e_static) / (batch * g)
    util = flops_run / (run * chips * system.flops)
    out = {
        "tp": tp,
        "chips": chips,
        "feasible": ok_map & fits,
        "fits": fits,
        "stage_decode_s": dec["stage"],
        "tpot_s": tau,
        "prefill_s": prefill,
        "e2e_s": e2e,
        "throughput_tokens_per_s": thr,
        "weight_bytes_per_chip": w_chip,
        "kv_bytes_per_chip": kv_chip,
        "flop_utilisation": util,
        "energy_j_per_token": energy_per_tok,
        "chip_power_w": (e_dyn + e_static) / run / chips,
    }
    for op in OPS:
        out[f"decode_{op}"] = dec[op] * np.maximum(pp, n_mb)
    return out
