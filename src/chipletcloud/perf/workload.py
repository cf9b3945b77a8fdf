"""What the simulator needs of a model, a workload and a system, as plain numbers and arrays.

``LayerShape`` flattens a :class:`~chipletcloud.models.llm.ModelSpec` into the per-layer matmul
sizes the inference simulator uses (one "average" layer: dense and MoE layers are mixed by their
share of the model), so the simulator never depends on the card format. ``System`` holds one row per
hardware design (arrays): per-chip compute, memory and links, and the server's chip count. The
memory tier is a parameter: SRAM for Chiplet Cloud, HBM for GPUs/TPUs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from functools import cache
from types import MappingProxyType

import numpy as np

from chipletcloud.config import load_card
from chipletcloud.models.llm import ModelSpec
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
    the LM head a token multiplies.
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

    @property
    def q_width(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_width(self) -> int:
        return self.kv_heads * self.head_dim

    @property
    def layer_params(self) -> float:
        return self.attn_params + self.mlp_params_stored

    @property
    def weight_params(self) -> float:
        """All weights the system stores (layers + head)."""
        return self.num_layers * self.layer_params + self.head_params

    @classmethod
    def from_spec(cls, spec: ModelSpec, include_embeddings: bool = True) -> LayerShape:
        """Flatten ``spec``. ``include_embeddings=False`` drops the embedding and LM-head matrices
        (the authors' 12 L d^2 convention)."""
        d = spec.hidden_size
        attn = d * spec.q_width + 2 * d * spec.kv_width + spec.q_width * d
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
        if include_embeddings:
            layer_total = spec.num_layers * (attn + stored)
            head = max(float(spec.params) - layer_total, 0.0)
            head_mm = float(spec.vocab_size * spec.hidden_size)
        else:
            head, head_mm = 0.0, 0.0
        return cls(
            name=spec.name,
            num_layers=spec.num_layers,
            hidden=d,
            heads=spec.num_attention_heads,
            kv_heads=spec.num_key_value_heads,
            head_dim=spec.head_dim,
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
    further switch tier adds (a switch and a link).
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
        arrays = np.broadcast_arrays(*[np.asarray(kw[f.name], float) for f in fields(cls)])
        return cls(
            **{f.name: np.ascontiguousarray(a) for f, a in zip(fields(cls), arrays, strict=True)}
        )
