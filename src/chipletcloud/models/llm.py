"""Decoder-only LLM shapes: exact parameter counts, KV-cache size, FLOPs and per-layer matmuls.

A :class:`ModelSpec` describes the real shape of one model. It is read from a Hugging Face style
``config.json`` (:meth:`ModelSpec.from_hf_config`, the reader in
:mod:`chipletcloud.models.hf_config`, no ``transformers`` needed) or from a built-in catalogue
card (``chipletcloud/data/models/<name>.json``, see :func:`chipletcloud.models.catalogue.
load_model`).

Units: parameter counts are plain integers; bytes are bytes; FLOPs count one multiply-accumulate as
two floating-point operations.

Two parameter counts are offered, as docs/inference-model.md asks:

- :attr:`ModelSpec.params`, the exact count of the real model (embeddings, untied LM head,
  learned position table, attention with GQA/MQA-sized K and V, gated or plain MLP, biases, norms,
  MoE experts and router);
- :attr:`ModelSpec.params_12ld2`, the authors' ``12 L d^2`` (no embeddings, 4d plain MLP) of the
  paper shape (docs/models.md#the-eight-paper-models) where the card has one, else of the real
  shape.

Modelling choices (stated once here, repeated where they are used):

- A LayerNorm has a scale and a bias (2d parameters) unless ``norm_bias`` is False; an RMSNorm has a
  scale only (d).
- ``position="relative"`` means Transformer-XL relative encodings (Dai et al. 2019) as used by
  Gopher (Rae et al. 2021): each layer holds a projection W_R of the sinusoidal relative-position
  table (d x heads*head_dim) and two bias vectors u, v (heads*head_dim each). W_R acts on a fixed
  table, so ``W_R R`` can be precomputed once and is not a per-token matmul; the extra
  ``q . W_R R`` score term is counted in the attention FLOPs. Without W_R, Gopher's Table 1 shape
  would hold 258 B parameters, not 280 B.
- "Active" parameters (MoE): all non-expert parameters, including both embedding matrices (the
  convention behind Mixtral's published 12.9 B), plus the ``num_experts_per_tok`` routed experts and
  the shared experts of each MoE layer.
- Not counted: OPT's two spare rows of its position table (offset 2), GPT-J's LM-head bias, the
  one-output gate of Qwen2-MoE's shared expert, DeepSeek-V3's routing-score bias. Each is < 1e-4 of
  the model.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from numbers import Integral
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from chipletcloud.errors import InputError
from chipletcloud.models.hf_config import (
    default_name,
    parse_hf_config_keys,
    read_config,
)


class IgnoredConfigKeys(UserWarning):
    """A config.json with keys the model does not use (their names in ``keys``)."""

    def __init__(self, keys: list[str]):
        self.keys = list(keys)
        super().__init__("config keys not modelled (ignored): " + ", ".join(self.keys))


__all__ = ["ModelSpec", "PaperShape", "StrictModel"]

#: Upper bounds of the shape counts: far beyond any real model, low enough that every count and
#: product stays a finite float and the mapping search stays small (its pipeline degrees are the
#: divisors of the layer count).
MAX_COUNT = 10**12
MAX_LAYERS = 100_000
PositiveInt = Annotated[int, Field(gt=0, le=MAX_COUNT)]
LayerCount = Annotated[int, Field(gt=0, le=MAX_LAYERS)]


def _input_error(exc: ValidationError, rename: Mapping[str, str] | None = None) -> InputError:
    """Turn the first error of a pydantic ValidationError into an InputError.

    A validator that raised an InputError itself keeps its field, value and allowed text. ``rename``
    maps ModelSpec field names to the user's own key names (e.g. ``hidden_size`` -> ``n_embd``).
    """
    rename = rename or {}
    err = exc.errors()[0]
    inner = (err.get("ctx") or {}).get("error")
    if isinstance(inner, InputError):
        return InputError(rename.get(inner.field, inner.field), inner.value, inner.allowed)
    field = ".".join(str(part) for part in err["loc"]) or "model"
    field = rename.get(field, field)
    if err["type"] == "missing":
        return InputError(field, None, "a value (the field is required)")
    return InputError(field, err.get("input"), err["msg"].removeprefix("Input should be "))


class StrictModel(BaseModel):
    """Base of the validated records: unknown keys are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise _input_error(exc) from None


class PaperShape(StrictModel):
    """The simplified shape the Chiplet Cloud authors configured
    (docs/models.md#the-eight-paper-models)."""

    num_layers: LayerCount
    hidden_size: PositiveInt
    num_attention_heads: PositiveInt
    num_key_value_heads: PositiveInt
    source: str
    #: d_model as the authors' code has it where that differs from the paper (a typo: Gopher's
    #: 16,328); used only with the preset's ``workload.authors_gopher_typo``
    authors_code_hidden_size: PositiveInt | None = None

    @model_validator(mode="after")
    def _consistent(self) -> PaperShape:
        if self.hidden_size % self.num_attention_heads:
            raise InputError(
                "paper_shape.num_attention_heads",
                self.num_attention_heads,
                f"a divisor of hidden_size {self.hidden_size}",
            )
        if self.num_attention_heads % self.num_key_value_heads:
            raise InputError(
                "paper_shape.num_key_value_heads",
                self.num_key_value_heads,
                f"a divisor of num_attention_heads {self.num_attention_heads}",
            )
        return self


class ModelSpec(StrictModel):
    """The shape of one decoder-only transformer LLM.

    Required shape fields follow Hugging Face names. ``head_dim`` may be omitted, in which case it
    is ``hidden_size / num_attention_heads`` and must divide exactly; given explicitly it may
    differ (PaLM 540B: 48 heads of 256 in a d_model of 18,432).

    MoE: ``num_experts`` routed experts (0 = dense), ``num_experts_per_tok`` of them per token,
    ``num_shared_experts`` always-on experts, each of width ``moe_intermediate_size`` (or
    ``intermediate_size`` when None, as in Mixtral); the first ``num_dense_layers`` layers are dense
    with width ``intermediate_size`` (DeepSeek's ``first_k_dense_replace``).

    Refinements beyond the contract (all defaulted) make the counts exact for more families:
    ``embedding_dim`` (OPT-350m's ``word_embed_proj_dim``: a narrower token table plus
    project-in/out matrices), ``embedding_norm`` (BLOOM's LayerNorm after the embedding),
    ``norms_per_layer`` (1 for GPT-J, Falcon-7B and PaLM, whose parallel blocks share one norm),
    ``final_norm`` and ``norm_bias`` (None: LayerNorm has a bias, RMSNorm has none).

    Attention variants: multi-head latent attention (DeepSeek-V2/V3) when ``kv_lora_rank`` is
    set, with ``q_lora_rank`` (None: a full-rank query projection), ``qk_rope_head_dim``,
    ``qk_nope_head_dim`` and ``v_head_dim``; its KV cache is one latent vector of
    ``kv_lora_rank + qk_rope_head_dim`` values a token a layer. Sliding-window attention:
    ``sliding_window`` keys, in the layers ``layer_types`` marks ``sliding_attention`` (every layer
    when ``layer_types`` is None), the others full. ``qk_norm`` (Qwen3: an RMSNorm of head_dim on
    queries and keys), ``attention_sinks`` (gpt-oss: a learned logit a head), ``router_bias`` (a
    bias a routed expert in the router), ``num_nextn_predict_layers`` (DeepSeek-V3's
    multi-token-prediction modules, counted apart in :attr:`mtp_params`).
    """

    name: str
    source: str
    num_layers: LayerCount
    hidden_size: PositiveInt
    num_attention_heads: PositiveInt
    num_key_value_heads: PositiveInt
    head_dim: PositiveInt
    intermediate_size: PositiveInt
    gated_mlp: bool
    vocab_size: PositiveInt
    tie_word_embeddings: bool
    max_position_embeddings: int | None = Field(default=None, gt=0, le=MAX_COUNT)
    num_experts: int = Field(default=0, ge=0, le=MAX_COUNT)
    num_experts_per_tok: int = Field(default=0, ge=0, le=MAX_COUNT)
    moe_intermediate_size: int | None = Field(default=None, gt=0, le=MAX_COUNT)
    num_dense_layers: int = Field(default=0, ge=0, le=MAX_LAYERS)
    num_shared_experts: int = Field(default=0, ge=0, le=MAX_COUNT)
    attention_bias: bool
    mlp_bias: bool
    norm: Literal["layernorm", "rmsnorm"]
    position: Literal["learned", "rotary", "alibi", "relative"]
    paper_shape: PaperShape | None = None
    # Weight sparsity the model ships with (Hugging Face compressed-tensors sparsity_config).
    weight_sparsity: float = Field(default=0.0, ge=0.0, lt=1.0)
    sparse_format: Literal["value_index", "bitmask", "nm24", "dense"] | None = None
    # Refinements for exact counts (see the class docstring).
    embedding_dim: int | None = Field(default=None, gt=0, le=MAX_COUNT)
    embedding_norm: bool = False
    norms_per_layer: int = Field(default=2, ge=0, le=3)
    final_norm: bool = True
    norm_bias: bool | None = None
    # Attention variants and the 2025 families (docs/models.md#attention-variants).
    q_lora_rank: int | None = Field(default=None, gt=0, le=MAX_COUNT)
    kv_lora_rank: int | None = Field(default=None, gt=0, le=MAX_COUNT)
    qk_rope_head_dim: int | None = Field(default=None, ge=0, le=MAX_COUNT)
    qk_nope_head_dim: int | None = Field(default=None, gt=0, le=MAX_COUNT)
    v_head_dim: int | None = Field(default=None, gt=0, le=MAX_COUNT)
    sliding_window: int | None = Field(default=None, gt=0, le=MAX_COUNT)
    layer_types: list[Literal["full_attention", "sliding_attention"]] | None = None
    qk_norm: bool = False
    attention_sinks: bool = False
    router_bias: bool = False
    num_nextn_predict_layers: int = Field(default=0, ge=0, le=MAX_LAYERS)

    @model_validator(mode="before")
    @classmethod
    def _derive_head_dim(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("head_dim") is not None:
            return data
        d, h = data.get("hidden_size"), data.get("num_attention_heads")
        if isinstance(d, int) and isinstance(h, int) and d > 0 and h > 0:
            if d % h:
                raise InputError(
                    "num_attention_heads",
                    h,
                    f"a divisor of hidden_size {d} (or give head_dim explicitly)",
                )
            return {**data, "head_dim": d // h}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        if self.num_attention_heads % self.num_key_value_heads:
            raise InputError(
                "num_key_value_heads",
                self.num_key_value_heads,
                f"a divisor of num_attention_heads {self.num_attention_heads}",
            )
        if self.num_experts == 0:
            for field in ("num_experts_per_tok", "num_shared_experts", "num_dense_layers"):
                if getattr(self, field):
                    raise InputError(field, getattr(self, field), "0 for a dense model")
            if self.moe_intermediate_size is not None:
                raise InputError(
                    "moe_intermediate_size", self.moe_intermediate_size, "null for a dense model"
                )
        else:
            if not 1 <= self.num_experts_per_tok <= self.num_experts:
                raise InputError(
                    "num_experts_per_tok",
                    self.num_experts_per_tok,
                    f"1 to num_experts ({self.num_experts}) for an MoE model",
                )
            if self.num_dense_layers >= self.num_layers:
                raise InputError(
                    "num_dense_layers",
                    self.num_dense_layers,
                    f"fewer than num_layers ({self.num_layers})",
                )
        mla = (self.kv_lora_rank, self.qk_rope_head_dim, self.qk_nope_head_dim, self.v_head_dim)
        if self.kv_lora_rank is not None and None in mla:
            names = ("kv_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim")
            missing = [n for n, v in zip(names, mla, strict=True) if v is None]
            raise InputError(missing[0], None, "a positive integer for latent attention")
        if self.kv_lora_rank is None and self.q_lora_rank is not None:
            raise InputError("q_lora_rank", self.q_lora_rank, "null without kv_lora_rank")
        if self.layer_types is not None:
            if len(self.layer_types) != self.num_layers:
                raise InputError(
                    "layer_types",
                    f"{len(self.layer_types)} entries",
                    f"one per layer ({self.num_layers})",
                )
            if "sliding_attention" in self.layer_types and self.sliding_window is None:
                raise InputError("sliding_window", None, "a window for the sliding layers")
        if self.num_nextn_predict_layers and not self.is_moe:
            raise InputError(
                "num_nextn_predict_layers", self.num_nextn_predict_layers, "0 for a dense model"
            )
        if self.position == "learned" and self.max_position_embeddings is None:
            raise InputError(
                "max_position_embeddings", None, "a positive integer for learned positions"
            )
        return self

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_hf_config(
        cls,
        config: dict | str | Path,
        name: str | None = None,
        source: str | None = None,
    ) -> ModelSpec:
        """Read a Hugging Face ``config.json`` (a dict, or a path to the file) without transformers.

        Understands the Llama/Mistral/Qwen/Gemma names, GPT-2 (``n_layer, n_embd, n_head, n_inner,
        n_positions``), OPT (``ffn_dim, word_embed_proj_dim, do_layer_norm_before``), BLOOM, Falcon
        (old ``n_head_kv``/``multi_query`` and ``new_decoder_architecture``), MPT (``d_model,
        n_heads, n_layers, expansion_ratio, attn_config``), GPT-NeoX, GPT-J, GPT-BigCode, DBRX,
        multimodal configs (nested ``text_config``) and MoE keys (``num_local_experts``,
        ``num_experts``, ``n_routed_experts``, ``num_experts_per_tok``, ``moe_intermediate_size``,
        ``first_k_dense_replace``, ``n_shared_experts``, ``shared_expert_intermediate_size``).

        Unknown keys are ignored. A missing required key, or a bad value, raises InputError naming
        the key as the config spells it.
        """
        raw, where = read_config(config)
        parsed, origin, ignored = parse_hf_config_keys(raw)
        if name is None:
            name = default_name(raw, where)
        if source is None:
            source = f"Hugging Face config.json ({where})" if where else "Hugging Face config.json"
        try:
            spec = cls.model_validate({"name": name, "source": source, **parsed})
        except ValidationError as exc:
            raise _input_error(exc, origin) from None
        if ignored:  # a valid model only: bad input gets its one line
            warnings.warn(IgnoredConfigKeys(ignored), stacklevel=2)
        return spec

    # ------------------------------------------------------------------ parameter counts

    @property
    def is_moe(self) -> bool:
        """True when some layers route tokens to experts."""
        return self.num_experts > 0

    @property
    def num_moe_layers(self) -> int:
        """Layers whose MLP is a mixture of experts (0 for a dense model)."""
        return self.num_layers - self.num_dense_layers if self.is_moe else 0

    @property
    def expert_intermediate_size(self) -> int:
        """Width of one expert's MLP (``moe_intermediate_size`` or ``intermediate_size``)."""
        return self.moe_intermediate_size or self.intermediate_size

    @property
    def is_mla(self) -> bool:
        """True for multi-head latent attention."""
        return self.kv_lora_rank is not None

    @property
    def sliding_layers(self) -> int:
        """Layers attending a sliding window of ``sliding_window`` keys."""
        if self.sliding_window is None:
            return 0
        if self.layer_types is None:
            return self.num_layers
        return sum(t == "sliding_attention" for t in self.layer_types)

    @property
    def attention(self) -> str:
        """``mla``; ``hybrid`` (sliding-window and full layers); else by the KV heads: ``mha``
        (as many as query heads), ``mqa`` (one) or ``gqa``."""
        if self.is_mla:
            return "mla"
        if 0 < self.sliding_layers < self.num_layers:
            return "hybrid"
        if self.num_key_value_heads == self.num_attention_heads:
            return "mha"
        return "mqa" if self.num_key_value_heads == 1 else "gqa"

    @property
    def kv_values_per_token_layer(self) -> int:
        """Values one token leaves in one layer's KV cache: K and V of the KV heads, or the
        latent vector of latent attention (``kv_lora_rank + qk_rope_head_dim``)."""
        if self.is_mla:
            return self.kv_lora_rank + self.qk_rope_head_dim
        return 2 * self.kv_width

    @property
    def q_width(self) -> int:
        """Output width of the query projection: heads x head_dim (latent attention: heads x
        (nope + rope) dims)."""
        if self.is_mla:
            return self.num_attention_heads * (self.qk_nope_head_dim + self.qk_rope_head_dim)
        return self.num_attention_heads * self.head_dim

    @property
    def kv_width(self) -> int:
        """Output width of the key (and of the value) projection: KV heads x head_dim."""
        return self.num_key_value_heads * self.head_dim

    @property
    def _embed_width(self) -> int:
        return self.embedding_dim or self.hidden_size

    def _norm_params(self, width: int) -> int:
        has_bias = self.norm == "layernorm" if self.norm_bias is None else self.norm_bias
        return width * (2 if has_bias else 1)

    def _mlp_params(self, width: int) -> int:
        d = self.hidden_size
        n = (3 if self.gated_mlp else 2) * d * width
        if self.mlp_bias:
            n += (2 * width if self.gated_mlp else width) + d
        return n

    def _attention_params(self) -> int:
        if self.is_mla:
            return self._mla_params()
        d, q, kv = self.hidden_size, self.q_width, self.kv_width
        n = d * q + 2 * d * kv + q * d
        if self.attention_bias:
            n += q + 2 * kv + d
        if self.position == "relative":
            n += d * q + 2 * q  # Transformer-XL W_R and the u, v biases
        if self.qk_norm:
            n += 2 * self._norm_params(self.head_dim)
        if self.attention_sinks:
            n += self.num_attention_heads
        return n

    def _mla_params(self) -> int:
        """Latent attention (DeepSeek-V2, arXiv 2405.04434, section 2.1): the query through a
        rank-``q_lora_rank`` bottleneck with its norm (or one full projection), the KV latent and
        the shared rope key from d, the latent's norm, its up-projection to the heads' nope keys
        and values, and the output projection."""
        d, h = self.hidden_size, self.num_attention_heads
        nope, rope, v, r = (
            self.qk_nope_head_dim,
            self.qk_rope_head_dim,
            self.v_head_dim,
            self.kv_lora_rank,
        )
        if self.q_lora_rank:
            n = d * self.q_lora_rank + self._norm_params(self.q_lora_rank)
            n += self.q_lora_rank * h * (nope + rope)
        else:
            n = d * h * (nope + rope)
        n += d * (r + rope) + self._norm_params(r) + r * h * (nope + v) + h * v * d
        return n

    def _layer_params(self, moe: bool, active: bool) -> int:
        n = self._attention_params() + self.norms_per_layer * self._norm_params(self.hidden_size)
        if not moe:
            return n + self._mlp_params(self.intermediate_size)
        routed = self.num_experts_per_tok if active else self.num_experts
        experts = routed + self.num_shared_experts
        router = (self.hidden_size + (1 if self.router_bias else 0)) * self.num_experts
        return n + experts * self._mlp_params(self.expert_intermediate_size) + router

    def _non_layer_params(self) -> int:
        d, e = self.hidden_size, self._embed_width
        n = self.vocab_size * e
        if not self.tie_word_embeddings:
            n += self.vocab_size * e
        if e != d:
            n += 2 * e * d  # OPT's project_in and project_out
        if self.position == "learned":
            assert self.max_position_embeddings is not None
            n += self.max_position_embeddings * d
        if self.embedding_norm:
            n += self._norm_params(e)
        if self.final_norm:
            n += self._norm_params(d)
        return n

    def _count(self, active: bool) -> int:
        dense_layers = self.num_layers - self.num_moe_layers
        return (
            self._non_layer_params()
            + dense_layers * self._layer_params(moe=False, active=active)
            + self.num_moe_layers * self._layer_params(moe=True, active=active)
        )

    @property
    def non_layer_params(self) -> int:
        """Parameters outside the transformer layers: token embeddings, an untied LM head,
        learned positions, OPT's projections and the embedding and final norms."""
        return self._non_layer_params()

    @property
    def embedding_params(self) -> int:
        """Parameters the first pipeline stage holds outside its layers: the token embedding
        table, learned positions, OPT's project-in and an embedding norm (a tied LM head shares
        the table, but the last stage needs its own copy)."""
        d, e = self.hidden_size, self._embed_width
        n = self.vocab_size * e + (e * d if e != d else 0)
        if self.position == "learned":
            assert self.max_position_embeddings is not None
            n += self.max_position_embeddings * d
        if self.embedding_norm:
            n += self._norm_params(e)
        return n

    @property
    def params(self) -> int:
        """Exact total parameter count of the real model (all experts, embeddings, LM head)."""
        return self._count(active=False)

    @property
    def active_params(self) -> int:
        """Parameters a token touches: MoE layers count only routed-to and shared experts.

        Embedding and LM-head matrices are counted in full (the published-number convention).
        Equal to :attr:`params` for a dense model.
        """
        return self._count(active=True)

    @property
    def active_params_without_embedding(self) -> int:
        """:attr:`active_params` less the input embedding table (a token reads one row of it;
        the convention of some publishers, gpt-oss's)."""
        return self.active_params - self.embedding_params

    @property
    def params_12ld2(self) -> int:
        """The authors' ``12 L d^2`` of the paper shape if the card has one, else of this shape."""
        shape = self.paper_shape or self
        return 12 * shape.num_layers * shape.hidden_size**2

    def weight_bytes(self, bytes_per_param: float = 2.0) -> float:
        """Bytes to store all parameters at ``bytes_per_param`` bytes each (2 = fp16/bf16)."""
        _check_positive("bytes_per_param", bytes_per_param)
        return float(self.params * bytes_per_param)

    @property
    def mtp_params(self) -> int:
        """Parameters of the multi-token-prediction modules (DeepSeek-V3, arXiv 2412.19437,
        section 2.2), outside :attr:`params` as the published count has them: each an RMSNorm of
        the hidden state and of the next token's embedding, a 2d x d projection, one MoE
        transformer layer and the shared head's norm (embedding and head are shared)."""
        d = self.hidden_size
        one = 3 * self._norm_params(d) + 2 * d * d + self._layer_params(moe=True, active=False)
        return self.num_nextn_predict_layers * one

    def kv_bytes_per_token(self, bytes_per_elem: float = 2.0) -> float:
        """KV-cache bytes per token of context while every layer still holds it (a context
        within the sliding window): L x :attr:`kv_values_per_token_layer` x bytes."""
        _check_positive("bytes_per_elem", bytes_per_elem)
        return float(self.num_layers * self.kv_values_per_token_layer * bytes_per_elem)

    def check_context(self, prompt_tokens: int, output_tokens: int, field: str = "context") -> None:
        """One line (exit 2) for a request longer than the model's positions
        (``max_position_embeddings``; no limit when the card states none). A request of P prompt
        and G generated tokens takes P + G - 1 positions: the last token is never fed back."""
        limit = self.max_position_embeddings
        if limit is not None and prompt_tokens + output_tokens - 1 > limit:
            raise InputError(
                field,
                prompt_tokens + output_tokens,
                f"at most {limit + 1} tokens, prompt + output (max_position_embeddings "
                f"{limit} of {self.name}; the last generated token takes no position)",
            )

    def kv_bytes(self, context_tokens: int, bytes_per_elem: float = 2.0) -> float:
        """KV-cache bytes of one sequence of ``context_tokens`` tokens: full layers hold every
        token, sliding-window layers the last ``sliding_window``."""
        c = _check_count("context_tokens", context_tokens)
        _check_positive("bytes_per_elem", bytes_per_elem)
        per = self.kv_values_per_token_layer * bytes_per_elem
        windowed = self.sliding_layers * min(c, self.sliding_window or c)
        return float(per * ((self.num_layers - self.sliding_layers) * c + windowed))

    # ------------------------------------------------------------------ work per token

    def layer_matmuls(self, layer: int | None = None) -> list[tuple[str, int, int]]:
        """The weight matmuls one token goes through in one layer: ``(name, in, out)`` features.

        Names: ``qkv`` (fused, GQA/MQA-sized), ``o``, then ``gate``/``up``/``down`` (``gate`` only
        for a gated MLP). In an MoE layer: ``router``, then ``expert{j}.gate|up|down`` for each of
        the ``num_experts_per_tok`` routed experts the token is sent to and ``shared{j}.…`` for each
        shared expert; the other experts hold weights (see :attr:`params`) but do no work for this
        token. ``layer`` defaults to the first MoE layer of an MoE model, else layer 0. Biases,
        norms and attention over the KV cache are not matmuls with weights and are not listed.
        """
        if layer is None:
            layer = self.num_dense_layers if self.is_moe else 0
        bad = isinstance(layer, bool) or not isinstance(layer, Integral)
        if bad or not 0 <= layer < self.num_layers:
            raise InputError("layer", layer, f"an integer from 0 to {self.num_layers - 1}")
        layer = int(layer)
        d = self.hidden_size
        if self.is_mla:
            h, r, rope = self.num_attention_heads, self.kv_lora_rank, self.qk_rope_head_dim
            q = (
                [("q_a", d, self.q_lora_rank), ("q_b", self.q_lora_rank, self.q_width)]
                if self.q_lora_rank
                else [("q", d, self.q_width)]
            )
            out = [
                *q,
                ("kv_a", d, r + rope),
                ("kv_b", r, h * (self.qk_nope_head_dim + self.v_head_dim)),
                ("o", h * self.v_head_dim, d),
            ]
        else:
            out = [("qkv", d, self.q_width + 2 * self.kv_width), ("o", self.q_width, d)]

        def mlp(prefix: str, width: int) -> list[tuple[str, int, int]]:
            gate = [(f"{prefix}gate", d, width)] if self.gated_mlp else []
            return [*gate, (f"{prefix}up", d, width), (f"{prefix}down", width, d)]

        if self.is_moe and layer >= self.num_dense_layers:
            out.append(("router", d, self.num_experts))
            width = self.expert_intermediate_size
            for j in range(self.num_experts_per_tok):
                out += mlp(f"expert{j}.", width)
            for j in range(self.num_shared_experts):
                out += mlp(f"shared{j}.", width)
        else:
            out += mlp("", self.intermediate_size)
        return out

    def _head_matmuls(self) -> list[tuple[str, int, int]]:
        """Matmuls outside the layers, per token: OPT's project-out and the LM head."""
        d, e = self.hidden_size, self._embed_width
        head = [("lm_head", e, self.vocab_size)]
        return [("project_out", d, e), *head] if e != d else head

    @property
    def active_matmul_params(self) -> int:
        """Weights multiplied per token: all layers' :meth:`layer_matmuls` plus the LM head.

        Excludes embedding look-ups (no arithmetic), biases and norms. OPT's project-in is counted.
        """
        total = sum(i * o for _, i, o in self._head_matmuls())
        if self._embed_width != self.hidden_size:
            total += self._embed_width * self.hidden_size  # project_in
        dense_layers = self.num_layers - self.num_moe_layers
        if dense_layers:
            total += dense_layers * sum(i * o for _, i, o in self.layer_matmuls(0))
        if self.num_moe_layers:
            total += self.num_moe_layers * sum(i * o for _, i, o in self.layer_matmuls())
        return total

    @property
    def _attention_flops_per_key(self) -> int:
        """FLOPs one query spends per attended key, summed over layers.

        QK^T and AV are each 2 x heads x head_dim per key per layer; Transformer-XL relative
        attention adds the ``q . W_R R`` score term (another 2 x heads x head_dim).
        """
        if self.is_mla:  # QK^T over nope + rope dims, AV over v dims, a head
            h = self.num_attention_heads
            return 2 * (self.q_width + h * self.v_head_dim) * self.num_layers
        terms = 3 if self.position == "relative" else 2
        return terms * 2 * self.q_width * self.num_layers

    def flops_prefill(self, prompt_tokens: int, logits_for_all_tokens: bool = True) -> float:
        """FLOPs to process a prompt of ``prompt_tokens`` tokens (one sequence).

        ``2 x active_matmul_params x n`` plus causal attention counted exactly: the query at
        position i (1-based) attends to i keys (itself and the i-1 before it), so the scores and
        the weighted sum cover ``n (n + 1) / 2`` query-key pairs per head, neither ``n^2`` nor the
        authors' under-count (docs/inference-model.md). Softmax, norms and other element-wise work
        are not counted. With ``logits_for_all_tokens=False`` the LM head runs for the last
        position only (what a server needs); the default runs it for every position, which keeps
        ``flops_prefill(n) + flops_decode_per_token(n) == flops_prefill(n + 1)``.
        """
        n = _check_count("prompt_tokens", prompt_tokens)
        if n == 0:
            return 0.0
        matmul = self.active_matmul_params
        flops = 2 * matmul * n
        if not logits_for_all_tokens:
            head = sum(i * o for _, i, o in self._head_matmuls())
            flops -= 2 * head * (n - 1)
        return float(flops + self._attention_flops_per_key * n * (n + 1) // 2)

    def flops_decode_per_token(self, context_tokens: int) -> float:
        """FLOPs to generate one token when the KV cache already holds ``context_tokens`` tokens.

        ``2 x active_matmul_params`` (LM head included) plus attention over ``context_tokens + 1``
        keys (the cached ones and the new token itself).
        """
        c = _check_count("context_tokens", context_tokens)
        return float(2 * self.active_matmul_params + self._attention_flops_per_key * (c + 1))

    # ------------------------------------------------------------------ paper shape

    def paper(self) -> ModelSpec:
        """The authors' simplified shape of this model (docs/models.md#the-eight-paper-models).

        ``num_layers, hidden_size, num_attention_heads, num_key_value_heads`` from the paper shape;
        ``head_dim = d / heads``, a plain (ungated) MLP of ``4 d``, dense; vocabulary, embeddings,
        norms and biases as in the real model. The authors' block has no relative-position
        projection, so Gopher's ``relative`` becomes the parameter-free ``rotary``. Raises
        InputError when the card carries no paper shape.
        """
        ps = self.paper_shape
        if ps is None:
            raise InputError(
                "paper_shape", None, "a model card with a paper shape (the paper's eight)"
            )
        data = self.model_dump(exclude={"paper_shape"})
        data.update(
            source=ps.source,
            num_layers=ps.num_layers,
            hidden_size=ps.hidden_size,
            num_attention_heads=ps.num_attention_heads,
            num_key_value_heads=ps.num_key_value_heads,
            head_dim=ps.hidden_size // ps.num_attention_heads,
            intermediate_size=4 * ps.hidden_size,
            gated_mlp=False,
            num_experts=0,
            num_experts_per_tok=0,
            moe_intermediate_size=None,
            num_dense_layers=0,
            num_shared_experts=0,
            embedding_dim=None,
            position="rotary" if self.position == "relative" else self.position,
        )
        return ModelSpec(**data, paper_shape=ps)


def _check_positive(field: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InputError(field, value, "a positive number")


def _check_count(field: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 0:
        raise InputError(field, value, "a non-negative integer")
    return int(value)
