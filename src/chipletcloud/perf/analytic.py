"""The inference simulator, numpy reference: a mapped system of identical chips serving one LLM.

Every argument is a numpy array (broadcast together): one element per (design, mapping) point.
Formulas (docs/inference-model.md; [A], with the defects listed there fixed [D]):

* Mapping. ``servers`` x ``chips_per_server`` chips; pipeline degree ``pp`` (divides the layers);
  tensor degree ``tp = floor(chips / pp)`` (all chips of a stage, Megatron partitioning); batch
  ``batch`` split into ``batch / micro_batch`` micro-batches of ``micro_batch`` sequences.
* Per layer and chip (Megatron): QKV (d -> (q + 2 kv) / tp), attention over the local KV cache, the
  output projection, the MLP, and two ring all-reduces. Every matmul takes
  ``max(FLOPs / achievable FLOP/s, weight bytes / achievable memory bandwidth)``; attention takes
  ``max(FLOPs / FLOP/s, KV bytes / bandwidth)``. KV heads are split across the tensor group and
  replicated when there are fewer KV heads than the group needs, so GQA/MQA cut both KV capacity
  and KV read traffic (fixes the authors' capacity-only GQA).
* Collectives (docs/interconnect.md, :func:`chipletcloud.perf.formulas.collectives_s`): the
  all-reduce of ``rows x d x bytes`` over the tensor group takes the fastest algorithm the system
  allows (ring/bucket, recursive doubling, one-shot, two-shot, hierarchical) on its fabric's hop
  latency and bandwidth, plus a fixed synchronisation cost; stage to stage: bytes / bandwidth + one
  hop + the fixed cost, on the server network once the system spans servers.
* Stage time ``T_s`` = layers/pp x layer time (+ LM head on the last stage) + transfer. Decode
  (DeepSpeed-Inference schedule): ``tau = max(pp, n_mb) x T_s`` per generated token for the batch;
  prefill: ``(pp + n_mb - 1) x T_s(prefill)``, attention FLOPs counted over the causal
  ``P (P + 1) / 2`` pairs (fixes the authors' under-count by a factor of the prompt length).
* Capacity: the weights of a stage and the KV cache of all ``batch`` sequences at the full context
  must fit the memory of each chip.
* Energy (docs/inference-model.md constants): FMAs, weight and KV reads (KV reads counted for every
  sequence, i.e. multiplied by the micro-batch: fixes the authors' defect), activation reads, plus
  the chips' static power over the run.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from chipletcloud.perf import formulas as fm
from chipletcloud.perf.codes import OP_GROUPS, OPS, POWER_SOURCES
from chipletcloud.perf.workload import LayerShape, System, Workload


def fabric(system: System) -> tuple:
    """The fabric columns every collective formula takes, in their order: chips a server,
    chip-link and server-link bandwidth, NICs a server, chip hop, server hop, fixed cost a
    collective, topology and its dimensions (docs/interconnect.md)."""
    return (
        system.chips_per_server,
        system.chip_link_bw,
        system.server_link_bw,
        system.nics_per_server,
        system.hop_latency_s,
        system.net_hop_s,
        system.sync_s,
        system.topology,
        system.collective_dims,
    )


def stage_layout(shape: LayerShape, wl: Workload, pp):
    """(layers of the fullest stage, layers of the last stage) for ``pp`` stages
    (:func:`chipletcloud.perf.formulas.balanced_stage_layers`, balanced per
    ``Workload.balance_stages``)."""
    return fm.balanced_stage_layers(
        shape.num_layers,
        pp,
        wl.units_per_layer,
        shape.head_layers,
        1.0 if wl.balance_stages else 0.0,
    )


def collectives(system: System, nbytes, servers, tp, pp=1, latency_model: str = "isca24"):
    """(seconds of one all-reduce of ``nbytes`` over the tensor group, seconds of one
    stage-to-stage transfer of ``nbytes``) for ``system``'s rows
    (:func:`chipletcloud.perf.formulas.collectives_s`, docs/interconnect.md)."""
    if latency_model == "v1":
        return fm.v1_collectives_s(
            np.asarray(nbytes, float),
            np.asarray(tp, float),
            np.asarray(pp, float),
            system.chips_per_server,
            system.chip_link_bw,
            system.server_link_bw,
            system.hop_latency_s,
        )
    return fm.collectives_s(
        np.asarray(nbytes, float),
        np.asarray(servers, float),
        np.asarray(tp, float),
        np.asarray(pp, float),
        *fabric(system),
        system.algorithms,
        latency_model == "v1",
        system.packet_bytes,
        system.net_radix,
        system.net_tier_s,
    )


def mlp_read(shape: LayerShape, rows):
    """MLP weights one layer reads for ``rows`` tokens
    (:func:`chipletcloud.perf.formulas.mlp_params_read` of ``shape``)."""
    return fm.mlp_params_read(
        shape.mlp_params_per_token,
        shape.moe_layer_share,
        shape.expert_params,
        shape.experts,
        shape.experts_per_tok,
        rows,
    )


def phase_rows(shape: LayerShape, wl: Workload, micro_batch, phase: str):
    """(matmul rows, query-key pairs, KV tokens read) of one micro-batch in ``phase``: decode is
    one new token per sequence at the mean context (:meth:`LayerShape.decode_context`: prompt +
    output / 2, windowed layers their window); prefill is the whole prompt with the causal
    P (P + 1) / 2 pairs (:meth:`LayerShape.prefill_pairs`; divided by P with the authors'
    ``prefill_attention_authors``)."""
    m = np.asarray(micro_batch, float)
    if phase == "decode":
        c = shape.decode_context(wl.prompt_tokens, wl.output_tokens)
        return m, m * c, m * c
    if phase == "prefill":
        p = float(wl.prompt_tokens)
        pairs = shape.prefill_pairs(p, wl.prefill_attention_authors)
        return m * p, m * pairs, m * p
    raise ValueError(phase)  # pragma: no cover - internal


def kernel_overhead_s(system: System, phase: str):
    """Fixed seconds a kernel launch costs in ``phase``: ``op_overhead_s`` (a decode kernel,
    inside a CUDA graph where the stack captures one), and for a prefill kernel the eager launch
    ``eager_overhead_s`` where the system states one (docs/validation.md#software-stacks)."""
    if phase == "prefill":
        eager = np.asarray(system.eager_overhead_s, float)
        return np.where(np.isnan(eager), system.op_overhead_s, eager)
    return system.op_overhead_s


def layer_ops(
    system: System,
    shape: LayerShape,
    wl: Workload,
    *,
    tp,
    micro_batch,
    phase: str,
    latency_model: str = "isca24",
    kv_split=0.0,
) -> dict[str, np.ndarray]:
    """Seconds each op of ONE layer takes on one chip of a tensor group of ``tp`` chips, for one
    micro-batch, with its compute and memory parts (``<op>_compute``, ``<op>_memory``), and the
    bytes of each of the layer's two all-reduces (``allreduce_bytes``) and, with a split KV
    cache, of each of its two all-to-alls (``kv_all_to_all_bytes``).

    KV heads (docs/inference-model.md#kv-heads): a chip holds and reads
    :func:`chipletcloud.perf.formulas.chip_kv_heads` (whole KV heads with
    ``Workload.whole_heads``); with ``kv_split`` (1) and a group wider than the KV heads, the r
    chips sharing a KV head each attend ceil(m / r) of the sequences for the query heads of all r
    (:func:`chipletcloud.perf.formulas.kv_split_chips`).

    Matmuls (``qkv``, ``out_proj``, ``mlp_in``, ``mlp_out``) take max(FLOPs / FLOP/s, weight bytes
    / bandwidth); ``attention`` max(FLOPs, KV bytes); the element-wise ops (``softmax`` over the
    local scores, the two ``norms``, the MLP ``activation``) read and write activations at the
    memory bandwidth. Every op adds ``op_overhead_s`` per kernel it launches
    (``Workload.layer_kernels``). ``latency_model="v1"`` (docs/inference-model.md): matmuls take
    compute time only, at a systolic-array utilisation min(rows x columns / side^2, 1) (the MACs
    a matmul of ``rows`` inputs and the chip's slice of output columns can keep busy); attention,
    element-wise ops and memory traffic are ignored.
    """
    tp = np.asarray(tp, float)
    f = system.flops * system.flops_eff
    f_att = f * system.attn_eff
    bw = system.mem_bw * system.mem_eff
    d, q = shape.hidden, shape.q_width
    wb, kvb, ab = wl.weight_bytes, wl.kv_bytes, wl.act_bytes
    rows, pairs, kv_tokens = phase_rows(shape, wl, micro_batch, phase)
    v1 = latency_model == "v1"
    side = fm.systolic_side(system.flops, system.clock_hz)
    zero = 0.0 * rows * tp * f

    def mm(flops, nbytes, cols):
        t = fm.matmul_s(flops, nbytes, f, bw, fm.systolic_utilisation(rows, cols, side), v1)
        if v1:
            return t, t, zero
        return t, flops / f, nbytes / bw

    def elementwise(nbytes):
        if v1:
            return zero, zero, zero
        return nbytes / bw, zero, nbytes / bw

    qkv_p = shape.qkv_params / tp  # d (q + 2 kv): K, V at d wide in a paper shape
    o_p = shape.o_params / tp
    mlp_tok = shape.mlp_params_per_token / tp
    mlp_rd = mlp_read(shape, rows) / tp
    s_in = shape.mlp_in_share
    r = fm.kv_split_chips(shape.heads, shape.kv_heads, tp, np.asarray(kv_split, float))
    seq_share = fm.sequences_per_chip(np.asarray(micro_batch, float), r) / micro_batch
    local_heads = shape.heads / tp * r  # query heads a chip attends for, its sequences only
    att_flops = 2.0 * shape.score_dim(phase) * local_heads * pairs * seq_share
    per_q = 1.0 if wl.kv_reads_per_query_head else 0.0
    whole = 1.0 if wl.whole_heads else 0.0
    kvh = fm.kv_read_heads_per_chip(shape.heads, shape.kv_heads, tp, per_q, whole, r)
    att_bytes = kv_tokens * seq_share * shape.kv_values * kvh * kvb
    parts = {
        "qkv": mm(2 * rows * qkv_p, qkv_p * wb, qkv_p / d),
        "attention": (zero, zero, zero)
        if v1
        else (
            np.maximum(att_flops / f_att, att_bytes / bw),
            att_flops / f_att,
            att_bytes / bw,
        ),
        # a fused (FlashAttention-style) kernel keeps the scores on chip: no softmax pass
        "softmax": elementwise(
            0.0 if wl.fused_attention else 2.0 * pairs * seq_share * local_heads * ab
        ),
        "out_proj": mm(2 * rows * o_p, o_p * wb, d),
        "norms": elementwise(2.0 * 2.0 * rows * d * ab),
        "mlp_in": mm(2 * rows * mlp_tok * s_in, mlp_rd * s_in * wb, mlp_tok * s_in / d),
        "activation": elementwise(rows * shape.mlp_params_per_token / d / tp * ab),
        "mlp_out": mm(2 * rows * mlp_tok * (1 - s_in), mlp_rd * (1 - s_in) * wb, d),
    }
    out: dict[str, np.ndarray] = {}
    per_kernel = kernel_overhead_s(system, phase)
    for op, (t, c, mem) in parts.items():
        overhead = 0.0 if v1 else wl.layer_kernels[op] * per_kernel
        out[op] = t + overhead
        out[f"{op}_compute"] = c
        out[f"{op}_memory"] = mem
    out["allreduce_bytes"] = rows * d * ab
    out["kv_all_to_all_bytes"] = rows * q / tp * ab
    out["kv_split_chips"] = r
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
    kv_split=0.0,
) -> dict[str, np.ndarray]:
    """Seconds per op for one micro-batch through the slowest pipeline stage: its layers of
    :func:`layer_ops`, two all-reduces a layer (and with a split KV cache two all-to-alls,
    counted in ``attention``), the LM head if the slowest stage is the last, and the transfer to
    the next stage. The stages hold :func:`chipletcloud.perf.formulas.balanced_stage_layers`
    (L / pp each, the LM head on a full last stage; with ``Workload.balance_stages`` fewer
    layers on the last). Keys: the ops of :data:`chipletcloud.perf.codes.OPS` (``mlp`` = in +
    activation + out, ``attention`` includes the softmax, ``norms`` apart) with
    ``_compute``/``_memory`` parts where they apply, ``stage`` (the total) and ``layers`` (those
    of the slowest stage)."""
    tp = np.asarray(tp, float)
    pp = np.asarray(pp, float)
    lo = layer_ops(
        system,
        shape,
        wl,
        tp=tp,
        micro_batch=micro_batch,
        phase=phase,
        latency_model=latency_model,
        kv_split=kv_split,
    )
    full, last = stage_layout(shape, wl, pp)
    ar, transfer = collectives(system, lo["allreduce_bytes"], servers, tp, pp, latency_model)
    a2a = 0.0
    if latency_model != "v1":  # v1 times no attention
        a2a = fm.kv_all_to_all_s(
            lo["kv_all_to_all_bytes"],
            lo["kv_split_chips"],
            tp,
            pp,
            *fabric(system),
            system.packet_bytes,
        )
    m = np.asarray(micro_batch, float)  # logits for the last position of each sequence only
    head_p = shape.head_matmul_params / tp
    f = system.flops * system.flops_eff
    v1 = latency_model == "v1"
    with np.errstate(divide="ignore", invalid="ignore"):  # no LM head: the utilisation is 0
        util = fm.systolic_utilisation(
            m,
            shape.head_matmul_params / shape.hidden / tp,
            fm.systolic_side(system.flops, system.clock_hz),
        )
        t_head = fm.matmul_s(
            2 * m * head_p,
            head_p * wl.weight_bytes,
            f,
            system.mem_bw * system.mem_eff,
            util,
            v1,
        )
    if not v1:
        t_head = t_head + wl.layer_kernels["lm_head"] * kernel_overhead_s(system, phase)
    t_head = np.where(shape.head_matmul_params > 0, t_head, 0.0)
    # the slowest stage: the last (its layers and the LM head) or a full one
    per_layer = sum(lo[m] for ms in OP_GROUPS.values() for m in ms) + 2.0 * ar + 2.0 * a2a
    on_last = last * per_layer + t_head >= full * per_layer
    layers = np.where(on_last, last, full)
    out: dict[str, np.ndarray] = {}
    for name, members in OP_GROUPS.items():
        out[name] = layers * sum(lo[m] for m in members)
        out[f"{name}_compute"] = layers * sum(lo[f"{m}_compute"] for m in members)
        out[f"{name}_memory"] = layers * sum(lo[f"{m}_memory"] for m in members)
    out["attention"] = out["attention"] + layers * 2.0 * a2a
    out["allreduce"] = layers * 2.0 * ar
    out["lm_head"] = np.where(on_last, t_head, 0.0)
    out["stage_transfer"] = transfer * (1.0 if wl.stage_transfer else 0.0)
    out["stage"] = sum(out[op] for op in OPS)
    out["layers"] = layers
    return out


def memory_per_chip(
    system: System, shape: LayerShape, wl: Workload, *, pp, tp, batch, kv_split=0.0
):
    """(weight bytes, KV bytes) the busiest chip holds: its stage's layers / tp (plus the
    embedding or LM-head matrix on the first/last stage; with ``Workload.balance_stages`` the
    stages as :func:`chipletcloud.perf.formulas.balanced_stage_layers` fills them) and the KV of
    its sequences at the full context: all ``batch`` of them, or ceil(batch / r) with a split KV
    cache, for the KV heads it holds (:mod:`chipletcloud.perf.formulas`)."""
    pp = np.asarray(pp, float)
    tp = np.asarray(tp, float)
    full, last = stage_layout(shape, wl, pp)
    r = fm.kv_split_chips(shape.heads, shape.kv_heads, tp, np.asarray(kv_split, float))
    kv_layer = fm.kv_bytes_per_chip(
        1.0,
        fm.sequences_per_chip(np.asarray(batch, float), r),
        shape.kv_context(wl.max_context),
        shape.kv_values,
        fm.chip_kv_heads(shape.heads, shape.kv_heads, tp, 1.0 if wl.whole_heads else 0.0),
        wl.kv_bytes,
        1.0 if wl.kv_in_capacity else 0.0,
    )
    return fm.stage_memory(
        full,
        last,
        shape.layer_params,
        shape.head_params,
        shape.head_matmul_params,
        shape.embed_params,
        pp,
        tp,
        wl.weight_storage_bytes,
        kv_layer,
        1.0 if wl.balance_stages else 0.0,
    )


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
    kv_split=0.0,
) -> dict[str, np.ndarray]:
    """Latency, throughput, capacity and energy of every (design, mapping) point.

    ``tp`` defaults to all chips of the system split over the stages
    (:func:`chipletcloud.perf.formulas.tensor_degree`); pass it to use fewer (a device count that
    is not a whole number of scale-up domains). ``kv_split`` (1 or 0 per point): a tensor group
    wider than the KV heads shards the KV cache by sequence instead of replicating it
    (docs/inference-model.md#kv-heads).

    Returns arrays: ``tp``, ``feasible`` (mapping valid and memory fits), ``stage_decode_s``,
    ``tpot_s`` (= tau, the per-token latency a user sees), ``prefill_s`` (= TTFT), ``e2e_s``,
    ``throughput_tokens_per_s`` (output tokens over a whole batch: prefill + decode, or decode only
    when the workload does not count the prefill),
    ``weight_bytes_per_chip``, ``kv_bytes_per_chip``, ``flop_utilisation``, ``energy_j_per_token``
    (chips only) and ``chip_power_w`` (mean per chip while serving), ``kv_split_chips`` (r: 1
    when the KV heads are replicated), ``stage_layers`` and ``last_stage_layers`` (the layers of
    a full stage and of the last one), and the decode breakdown ``decode_<op>`` in seconds per
    token step.
    """
    servers = np.asarray(servers, float)
    pp = np.asarray(pp, float)
    batch = np.asarray(batch, float)
    m = np.asarray(micro_batch, float)
    if tp is None:
        tp = fm.tensor_degree(servers, system.chips_per_server, pp)
    tp = np.asarray(tp, float)
    # balanced stages may give the LM head a stage of its own: up to L + 1 stages
    most = shape.num_layers * wl.units_per_layer + (1 if wl.balance_stages else 0)
    ok_map = (tp >= 1) & (pp <= most) & (np.mod(batch, m) == 0)
    tp_safe = np.maximum(tp, 1.0)
    n_mb = batch / m
    kv_split = np.asarray(kv_split, float)
    kw = dict(
        servers=servers,
        pp=pp,
        tp=tp_safe,
        micro_batch=m,
        latency_model=latency_model,
        kv_split=kv_split,
    )
    dec = stage_ops(system, shape, wl, phase="decode", **kw)
    pre = stage_ops(system, shape, wl, phase="prefill", **kw)
    # the runtime's host work: a decode step's unoverlapped scheduling, and a request's fixed
    # cost before its first token (0 on the ASIC; a GPU's software stack, baselines/stacks.py)
    tau = np.maximum(pp, n_mb) * dec["stage"] + system.step_overhead_s
    prefill = (pp + n_mb - 1.0) * pre["stage"] + system.request_overhead_s
    g = float(wl.output_tokens)
    e2e = prefill + (g - 1.0) * tau
    cp = 1.0 if wl.count_prefill else 0.0  # the run a TCO divides by: prefill + decode, or decode
    run = cp * prefill + (g - cp) * tau
    thr = batch * g / run
    w_chip, kv_chip = memory_per_chip(
        system, shape, wl, pp=pp, tp=tp_safe, batch=batch, kv_split=kv_split
    )
    fits = w_chip + kv_chip <= system.mem_bytes
    chips = pp * tp_safe

    # FLOPs and bytes of one decode step of the whole batch, and of the prefill of the batch
    p = float(wl.prompt_tokens)
    c = shape.decode_context(p, wl.output_tokens)
    L = shape.num_layers
    mat_tok = L * (shape.attn_params + shape.mlp_params_per_token) + shape.head_matmul_params
    att_pairs_dec = batch * c
    att_pairs_pre = batch * shape.prefill_pairs(p, wl.prefill_attention_authors)
    att = 0.0 if latency_model == "v1" else 2.0 * L * shape.heads  # v1 times no attention
    flops_dec = 2.0 * batch * mat_tok + att * shape.score_dim("decode") * att_pairs_dec
    flops_pre = (
        2.0 * batch * p * (mat_tok - shape.head_matmul_params)
        + 2.0 * batch * shape.head_matmul_params
        + att * shape.score_dim("prefill") * att_pairs_pre
    )

    def weights_read(rows):  # weights one micro-batch pass of ``rows`` tokens reads
        return L * (shape.attn_params + mlp_read(shape, rows)) + shape.head_matmul_params

    w_read_dec = n_mb * weights_read(m) * wl.weight_bytes
    w_read_pre = n_mb * weights_read(m * p) * wl.weight_bytes
    # KV heads read a sequence, all chips (replicated heads: every copy is read), and the share
    # of the KV reads that energy is charged for (all; the authors: one sequence a micro-batch)
    # (a split KV cache: each sequence on one of the r chips sharing its KV head)
    per_q = 1.0 if wl.kv_reads_per_query_head else 0.0
    whole = 1.0 if wl.whole_heads else 0.0
    r = fm.kv_split_chips(shape.heads, shape.kv_heads, tp_safe, kv_split)
    kv_heads_read = fm.kv_read_heads_per_chip(shape.heads, shape.kv_heads, tp_safe, per_q, whole, r)
    kv_heads_read = kv_heads_read * tp_safe / r
    kv_share = fm.kv_energy_share(m, 1.0 if wl.kv_read_energy_per_micro_batch else 0.0)
    kv_head_bytes = L * shape.kv_values * wl.kv_bytes * kv_heads_read * kv_share
    kv_read_dec = batch * c * kv_head_bytes
    kv_read_pre = batch * p * kv_head_bytes
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
        "flop_utilisation": fm.flop_utilisation(flops_run, run, chips, system.flops),
        "energy_j_per_token": energy_per_tok,
        "chip_power_w": (e_dyn + e_static) / run / chips,
        "kv_split_chips": r,
    }
    out["stage_layers"], out["last_stage_layers"] = fm.balanced_stage_layers(
        shape.num_layers,
        pp,
        wl.units_per_layer,
        shape.head_layers,
        1.0 if wl.balance_stages else 0.0,
    )
    for op in OPS:
        out[f"decode_{op}"] = dec[op] * np.maximum(pp, n_mb)
    return out


@dataclass(frozen=True)
class Pricing:
    """Per-design economics (arrays): server cost (USD), server TDP (W), fixed wall power of
    fans and host (W), conversion efficiency, TCO coefficients (TCO = a C + b P; ``fixed`` = C +
    its interest per USD of C, for the v1 utilisation-scaled TCO), life in seconds, and the
    server power the TCO is charged at (:data:`chipletcloud.perf.codes.POWER_SOURCES`); the
    electricity part of b (USD per W of mean power, :func:`chipletcloud.models.tco.
    tco_coefficients_split`), each server's share of the NRE (USD) and the PUE."""

    server_cost_usd: np.ndarray
    server_tdp_w: np.ndarray
    overhead_w: np.ndarray
    efficiency: float
    a_per_usd: float
    b_per_w: float
    fixed_per_usd: float
    life_s: float
    power_source: str
    b_energy_per_w: float = 0.0
    nre_usd_per_server: float = 0.0
    pue: float = 1.0

    def take(self, idx) -> Pricing:
        return replace(
            self,
            server_cost_usd=self.server_cost_usd[idx],
            server_tdp_w=self.server_tdp_w[idx],
            overhead_w=self.overhead_w[idx],
        )


def price(pricing: Pricing, sim: dict[str, np.ndarray], servers, chips_per_server):
    """USD per million tokens, system capex and wall power for simulated points (arrays aligned
    with ``sim``). Server power by ``power_source`` (:func:`chipletcloud.perf.formulas.
    server_tco_usd`): ``energy`` = the energy model's mean chip power plus fans and host through
    the conversion losses, capped at the server TDP; ``tdp``; ``tdp_utilisation`` (v1: TCO =
    fixed + U x (TCO at TDP - fixed), U the FLOP utilisation of all the servers' chips, which
    the TDP counts, not only the pp x tp chips the mapping uses: the authors' v1-era code); or
    ``tdp_capacity`` (datacentre capacity at the TDP, electricity at the mean wall power).

    Energy per generated token at three boundaries (J): ``joules_per_token_chip`` (every chip of
    the servers at the energy model's mean power), ``joules_per_token_wall`` (the servers' mean
    wall power: chips, fans and host through the conversion losses, capped at the TDP) and
    ``joules_per_token_facility`` (wall x PUE). ``joules_per_token`` is the power the TCO's
    energy is charged at, per token (:func:`chipletcloud.perf.formulas.server_power_w`)."""
    servers = np.asarray(servers, float)
    c = pricing.server_cost_usd
    tdp = pricing.server_tdp_w
    code = POWER_SOURCES[pricing.power_source]
    wall = (sim["chip_power_w"] * chips_per_server + pricing.overhead_w) / pricing.efficiency
    share = sim["chips"] / (servers * np.asarray(chips_per_server, float))
    u = sim["flop_utilisation"] * share
    server_tco = fm.server_tco_usd(
        code,
        c,
        tdp,
        wall,
        u,
        pricing.a_per_usd,
        pricing.b_per_w,
        pricing.b_energy_per_w,
        pricing.fixed_per_usd * c,
        pricing.nre_usd_per_server,
    )
    p = fm.server_power_w(code, tdp, wall, u)
    thr = sim["throughput_tokens_per_s"]
    wall_mean = servers * np.minimum(wall, tdp)
    return {
        "usd_per_million_tokens": fm.usd_per_million_tokens(
            servers, server_tco, pricing.life_s, thr
        ),
        "nre_usd_per_million_tokens": fm.usd_per_million_tokens(
            servers, pricing.nre_usd_per_server, pricing.life_s, thr
        ),
        "capex_usd": servers * c,
        "power_w": servers * p,
        "provisioned_w": servers * tdp,
        "system_tco_usd": servers * server_tco,
        "joules_per_token": servers * p / thr,
        "joules_per_token_chip": servers * sim["chip_power_w"] * chips_per_server / thr,
        "joules_per_token_wall": wall_mean / thr,
        "joules_per_token_facility": wall_mean * pricing.pue / thr,
    }
