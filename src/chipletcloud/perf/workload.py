"""What the simulator needs of a model, a workload and a system, as plain numbers and arrays.

``LayerShape`` flattens a :class:`~chipletcloud.models.llm.ModelSpec` into the per-layer matmul
sizes the inference simulator uses (one "average" layer: dense and MoE layers are mixed by their
share of the model), so the simulator never depends on the card format. ``System`` holds one row per
hardware design (arrays): per-chip compute, memory and links, and the server's chip count. The
memory tier is a parameter: SRAM for Chiplet Cloud, HBM for GPUs/TPUs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from functools import cache
from types import MappingProxyType

import numpy as np

from chipletcloud.config import load_card
from chipletcloud.models.llm import ModelSpec
from chipletcloud.perf import formulas as fm
from chipletcloud.perf.codes import OP_GROUPS


@cache
def default_layer_kernels() -> MappingProxyType:
    """Kernels one layer launches, by operation, and the LM head's (``data/workload/
    layer_kernels.yaml``): each pays the device's fixed time per kernel launch."""
    card = load_card("workload", "layer_kernels")
    return MappingProxyType({k: float(q.value) for k, q in card.items()})


@dataclass(frozen=True)
class LayerShape:
    """Per-layer sizes of a transformer, in elements (not bytes).

    ``attn_params`` = QKV + output projection weights; ``mlp_params_stored`` = MLP weights held by
    one layer (all experts), ``mlp_params_per_token`` = MLP weights one token multiplies (routed and
    shared experts only); ``experts``/``experts_per_tok``/``expert_params`` describe the routed part
    for the distinct-experts-touched estimate; ``head_params`` = embedding + LM head matrices held
    (0 when the preset counts layers only, as the authors' 12 L d^2 does), ``head_matmul_params`` =
    the LM head a token multiplies. The QKV projection holds ``attn_params - q d`` weights (a
    paper shape sizes K and V at the full width d, as the authors' 12 L d^2 does).
    ``layer_other_params``: weights a layer holds besides its matmuls (norms, biases,
    Transformer-XL's relative projection), stored but not read per token; ``embed_params``:
    what the first stage holds outside its layers (embedding table, positions).
    """

    name: str
    num_layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    attn_params: float
    mlp_params_stored: float
    mlp_params_per_token: float
    experts: int
    experts_per_tok: int
    expert_params: float
    moe_layer_share: float
    head_params: float
    head_matmul_params: float
    mlp_in_share: float = 0.5
    layer_other_params: float = 0.0
    embed_params: float = 0.0
    #: values one token leaves per KV head per layer (None: K and V, 2 x head_dim; latent
    #: attention: its one shared latent plus the rope key, kv_lora_rank + qk_rope_head_dim)
    kv_values_per_head: float | None = None
    #: query-key pair FLOPs / 2 per query head in decode and in prefill (None: 2 x head_dim,
    #: Q.K and A.V; latent attention: absorbed in decode, expanded per head in prefill)
    score_dim_decode: float | None = None
    score_dim_prefill: float | None = None
    #: output projection weights (None: q_width x hidden; latent attention: heads x v x hidden)
    out_params: float | None = None
    #: sliding-window layers: their share of the layers and their window in tokens
    window_share: float = 0.0
    window_tokens: float = float("inf")

    @property
    def q_width(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_width(self) -> int:
        return self.kv_heads * self.head_dim

    @property
    def kv_values(self) -> float:
        """Values one token leaves per KV head per layer (:attr:`kv_values_per_head`)."""
        v = self.kv_values_per_head
        return 2.0 * self.head_dim if v is None else v

    def score_dim(self, phase: str) -> float:
        """FLOPs / 2 of one query-key pair per query head in ``phase`` (``decode`` or
        ``prefill``): Q.K plus A.V, 2 x head_dim unless the card says otherwise."""
        v = self.score_dim_decode if phase == "decode" else self.score_dim_prefill
        return 2.0 * self.head_dim if v is None else v

    @property
    def o_params(self) -> float:
        """Output projection weights (:attr:`out_params`, else q_width x hidden)."""
        return self.q_width * self.hidden if self.out_params is None else self.out_params

    @property
    def qkv_params(self) -> float:
        """The QKV projection's weights (all attention matmuls but the output projection)."""
        return self.attn_params - self.o_params

    def kv_context(self, context):
        """KV tokens the average layer holds at ``context`` (windowed layers: their window)."""
        return fm.windowed_context(context, self.window_tokens, self.window_share)

    def decode_context(self, prompt, gen):
        """Mean KV tokens a decode step of the average layer attends over a request of
        ``prompt`` + ``gen`` tokens (:func:`~chipletcloud.perf.formulas.
        windowed_mean_decode_context`)."""
        return fm.windowed_mean_decode_context(prompt, gen, self.window_tokens, self.window_share)

    def prefill_pairs(self, prompt, authors: bool = False):
        """Query-key pairs per head of one prompt's prefill in the average layer."""
        a = 1.0 if authors else 0.0
        return fm.windowed_prefill_pairs(prompt, a, self.window_tokens, self.window_share)

    @property
    def layer_params(self) -> float:
        """Weights one layer stores: attention, MLP (all experts) and the rest."""
        return self.attn_params + self.mlp_params_stored + self.layer_other_params

    @property
    def layer_read_params(self) -> float:
        """Weights one token reads in one layer (dense; MoE: the routed experts only)."""
        return self.attn_params + self.mlp_params_per_token

    @property
    def head_layers(self) -> float:
        """The LM head in layers: its weights over the weights a token reads in one layer (the
        measure :func:`chipletcloud.perf.formulas.balanced_stage_layers` balances by)."""
        return self.head_matmul_params / self.layer_read_params

    def rescaled(self, hidden: float) -> LayerShape:
        """This paper shape (matmuls in d^2, embeddings in d) at another ``hidden`` size with the
        same heads: the authors' code ran Gopher at d_model 16,328 (head size 127.56)."""
        r = hidden / self.hidden
        return replace(
            self,
            hidden=hidden,
            head_dim=hidden / self.heads,
            attn_params=self.attn_params * r * r,
            mlp_params_stored=self.mlp_params_stored * r * r,
            mlp_params_per_token=self.mlp_params_per_token * r * r,
            expert_params=self.expert_params * r * r,
            layer_other_params=self.layer_other_params * r,
            head_params=self.head_params * r,
            head_matmul_params=self.head_matmul_params * r,
            embed_params=self.embed_params * r,
        )

    @property
    def weight_params(self) -> float:
        """All weights the system stores (layers + head)."""
        return self.num_layers * self.layer_params + self.head_params

    @classmethod
    def from_spec(
        cls, spec: ModelSpec, include_embeddings: bool = True, paper: bool = False
    ) -> LayerShape:
        """Flatten ``spec``. ``include_embeddings=False`` drops the embedding and LM-head matrices
        (the authors' 12 L d^2 convention). ``paper=True`` (a paper shape, docs/models.md) counts
        the authors' way: K and V projections of the full width d whatever the KV heads (MQA/GQA
        shrink the KV cache only) and no norms or biases, so the layers hold exactly 12 L d^2.
        Otherwise every parameter of the card is placed: matmuls, the per-layer rest
        (``layer_other_params``) and, with embeddings, the embedding and LM-head matrices.

        Attention variants (docs/models.md#attention-variants): latent attention keeps one
        shared latent "KV head" of ``kv_lora_rank + qk_rope_head_dim`` values a token, attended
        absorbed in decode (Q.K over latent + rope, A.V over the latent: DeepSeek-V2, arXiv
        2405.04434, appendix C) and expanded per head in prefill (nope + rope, then v);
        sliding-window layers hold and attend their last ``sliding_window`` tokens."""
        d = spec.hidden_size
        kv_proj = d if paper else spec.kv_width
        attn = d * spec.q_width + 2 * d * kv_proj + spec.q_width * d
        mla: dict = {}
        if spec.is_mla:
            mm = spec.layer_matmuls()
            attn_names = {"q", "q_a", "q_b", "kv_a", "kv_b", "o"}
            attn = sum(i * o for n, i, o in mm if n in attn_names)
            latent, rope = spec.kv_lora_rank, spec.qk_rope_head_dim
            mla = dict(
                kv_heads=1,
                kv_values_per_head=float(latent + rope),
                score_dim_decode=float(latent + rope + latent),
                score_dim_prefill=float(spec.qk_nope_head_dim + rope + spec.v_head_dim),
                out_params=float(spec.num_attention_heads * spec.v_head_dim * d),
            )
        n_mlp = 3 if spec.gated_mlp else 2
        dense_mlp = n_mlp * d * spec.intermediate_size
        share = spec.num_moe_layers / spec.num_layers
        if spec.is_moe:
            one = n_mlp * d * spec.expert_intermediate_size
            moe_stored = (spec.num_experts + spec.num_shared_experts) * one + d * spec.num_experts
            moe_tok = (spec.num_experts_per_tok + spec.num_shared_experts) * one
            stored = share * moe_stored + (1 - share) * dense_mlp
            per_tok = share * moe_tok + (1 - share) * dense_mlp
            expert_params = one
        else:
            stored = per_tok = dense_mlp
            expert_params = 0.0
        layer_all = (spec.params - spec.non_layer_params) / spec.num_layers
        other = 0.0 if paper else max(layer_all - attn - stored, 0.0)
        if include_embeddings:
            head = float(spec.non_layer_params)
            head_mm = float(spec.vocab_size * spec.hidden_size)
            embed = float(spec.embedding_params)
        else:
            head, head_mm, embed = 0.0, 0.0, 0.0
        return cls(
            name=spec.name,
            num_layers=spec.num_layers,
            hidden=d,
            heads=spec.num_attention_heads,
            kv_heads=mla.pop("kv_heads", spec.num_key_value_heads),
            head_dim=spec.q_width // spec.num_attention_heads,
            attn_params=float(attn),
            mlp_params_stored=float(stored),
            mlp_params_per_token=float(per_tok),
            experts=spec.num_experts,
            experts_per_tok=spec.num_experts_per_tok,
            expert_params=float(expert_params),
            moe_layer_share=float(share),
            head_params=float(head),
            head_matmul_params=head_mm,
            mlp_in_share=(n_mlp - 1) / n_mlp,
            layer_other_params=float(other),
            embed_params=embed,
            window_share=spec.sliding_layers / spec.num_layers,
            window_tokens=float(spec.sliding_window or np.inf),
            **mla,
        )


@dataclass(frozen=True)
class Workload:
    """Request shape and number formats. docs/inference-model.md: the ISCA-era evaluation used a
    128-token
    prompt and 256 generated tokens; v1 used a context of 2048. ``count_prefill``: the run that
    throughput, energy and TCO per token are computed over includes each batch's prefill (off:
    decode only, as the v1 model). ``kv_in_capacity``: the KV cache must fit memory (off in v1,
    which sized the system by the weights alone). ``units_per_layer``: pieces a layer may be cut
    into across pipeline stages (:func:`chipletcloud.perf.formulas.stage_layers`).
    ``layer_kernels``: kernels each op of a layer launches (:func:`default_layer_kernels`)."""

    prompt_tokens: int = 128
    output_tokens: int = 256
    weight_bytes: float = 2.0
    kv_bytes: float = 2.0
    act_bytes: float = 2.0
    weight_storage_ratio: float = 1.0
    count_prefill: bool = True
    kv_in_capacity: bool = True
    units_per_layer: int = 1
    layer_kernels: MappingProxyType = field(default_factory=default_layer_kernels)
    whole_heads: bool = False
    #: charge the stage-to-stage activation transfer (off: free, as the authors' code)
    stage_transfer: bool = True
    #: the authors' defects as switches (config.Choices; docs/inference-model.md): KV read
    #: traffic counted per query head (GQA/MQA cut the capacity only), KV read energy once per
    #: micro-batch instead of per sequence, prefill attention pairs divided by the prompt length
    kv_reads_per_query_head: bool = False
    kv_read_energy_per_micro_batch: bool = False
    prefill_attention_authors: bool = False
    #: layers assigned so the slowest stage, the LM head on the last, is shortest
    #: (:func:`chipletcloud.perf.formulas.balanced_stage_layers`)
    balance_stages: bool = False
    #: a fused attention kernel keeps the scores on chip: no softmax pass over memory
    #: (a GPU stack's ``fused_attention``; off on the ASIC, whose scores stay in SRAM anyway
    #: but are charged as the authors did)
    fused_attention: bool = False

    @property
    def kernels_per_layer(self) -> float:
        """Kernels one layer launches, all its ops together."""
        return float(sum(self.layer_kernels[op] for ops in OP_GROUPS.values() for op in ops))

    @property
    def weight_storage_bytes(self) -> float:
        """Bytes one weight occupies in memory: compressed storage (sparse models) or dense.
        Weights are loaded dense (Store-as-Compressed, Load-as-Dense), so reads use
        ``weight_bytes``."""
        return self.weight_bytes * self.weight_storage_ratio

    @property
    def mean_decode_context(self) -> float:
        """Mean keys a decode step attends: the steps after the prefill make tokens 2..output and
        the one making token t + 1 attends prompt + t keys, so the mean is prompt + output / 2.
        Per-token times are evaluated at this context (the event-level simulation, which grows
        the context step by step, agrees to within the non-linearity of max(compute, memory))."""
        return self.prompt_tokens + self.output_tokens / 2.0

    @property
    def max_context(self) -> int:
        return self.prompt_tokens + self.output_tokens


@dataclass(frozen=True)
class System:
    """One row per hardware design (numpy arrays of equal length).

    Units: FLOP/s, bytes, bytes/s, seconds, joules, watts. ``flops_eff`` and ``mem_eff`` are the
    achievable fractions of peak and ``op_overhead_s`` the fixed time of each kernel launch (1, 1
    and 0 s for the ASIC model; device cards for GPUs/TPUs). ``collective_dims`` is the number of
    torus dimensions a bucket all-reduce runs over one after the other (1: a ring, a switch or
    a fully connected fabric; 2: a 2-D mesh or torus; 3: a TPU 3-D torus). ``clock_hz`` is the
    chip clock, which the v1 latency model's systolic array needs (the tech card's
    ``clock_ghz``).

    Interconnect (docs/interconnect.md): ``chip_link_bw`` is what a chip injects into the
    server's fabric (all its links), ``server_link_bw`` one NIC's bandwidth and
    ``nics_per_server`` the NICs of a server; ``hop_latency_s`` one chip-to-chip hop (SerDes,
    FEC, router), ``net_hop_s`` one server-to-server traversal (NIC, switches, NIC), ``sync_s``
    the fixed cost of every collective (barrier, DMA set-up); ``topology`` a code of
    :data:`chipletcloud.perf.codes.TOPOLOGIES` and ``algorithms`` a bit mask of
    :data:`chipletcloud.perf.codes.ALGORITHMS`; ``packet_bytes`` the smallest message a link
    carries, ``net_radix`` the ports of a network switch and ``net_tier_s`` the latency each
    further switch tier adds (a switch and a link). ``attn_eff`` is the fraction of the
    matmuls' achievable FLOP/s that attention (QK^T and AV) reaches (1: the same; the ASIC's
    derated efficiencies, docs/inference-model.md#achieved-efficiency).

    A serving runtime's host costs (GPUs/TPUs, from the stack card; 0 and NaN on the ASIC):
    ``eager_overhead_s`` the fixed time of a prefill kernel launched eagerly (NaN: as
    ``op_overhead_s``), ``step_overhead_s`` the unoverlapped host work of each decode step,
    ``request_overhead_s`` a request's fixed cost before its first token.
    """

    flops: np.ndarray
    mem_bytes: np.ndarray
    mem_bw: np.ndarray
    chip_link_bw: np.ndarray
    server_link_bw: np.ndarray
    chips_per_server: np.ndarray
    hop_latency_s: np.ndarray
    fma_j: np.ndarray
    mem_j_per_byte: np.ndarray
    act_j_per_byte: np.ndarray
    static_w_per_chip: np.ndarray
    flops_eff: np.ndarray
    mem_eff: np.ndarray
    op_overhead_s: np.ndarray
    collective_dims: np.ndarray | float = 1.0
    clock_hz: np.ndarray | float = np.nan
    net_hop_s: np.ndarray | float = np.nan
    sync_s: np.ndarray | float = 0.0
    topology: np.ndarray | float = 0.0
    algorithms: np.ndarray | float = 1.0
    nics_per_server: np.ndarray | float = 1.0
    packet_bytes: np.ndarray | float = 0.0
    net_radix: np.ndarray | float = np.inf
    net_tier_s: np.ndarray | float = 0.0
    attn_eff: np.ndarray | float = 1.0
    eager_overhead_s: np.ndarray | float = np.nan
    step_overhead_s: np.ndarray | float = 0.0
    request_overhead_s: np.ndarray | float = 0.0

    def __len__(self) -> int:
        return len(self.flops)

    def take(self, idx: np.ndarray) -> System:
        return System(**{f.name: np.asarray(getattr(self, f.name))[idx] for f in fields(self)})

    @classmethod
    def broadcast(cls, **kw) -> System:
        """Build from scalars or arrays (broadcast together). Defaults: a ring fabric
        (``collective_dims`` 1, ``topology`` 0) running ring all-reduces only, no fixed cost per
        collective, one NIC a server, a server hop as slow as a chip hop, and ``clock_hz`` NaN
        (only the v1 latency model's systolic array needs a clock)."""
        kw.setdefault("collective_dims", 1.0)
        kw.setdefault("clock_hz", np.nan)
        kw.setdefault("net_hop_s", kw["hop_latency_s"])
        kw.setdefault("sync_s", 0.0)
        kw.setdefault("topology", 0.0)
        kw.setdefault("algorithms", 1.0)
        kw.setdefault("nics_per_server", 1.0)
        kw.setdefault("packet_bytes", 0.0)
        kw.setdefault("net_radix", np.inf)
        kw.setdefault("net_tier_s", 0.0)
        kw.setdefault("attn_eff", 1.0)
        kw.setdefault("eager_overhead_s", np.nan)
        kw.setdefault("step_overhead_s", 0.0)
        kw.setdefault("request_overhead_s", 0.0)
        arrays = np.broadcast_arrays(*[np.asarray(kw[f.name], float) for f in fields(cls)])
        return cls(
            **{f.name: np.ascontiguousarray(a) for f, a in zip(fields(cls), arrays, strict=True)}
        )
