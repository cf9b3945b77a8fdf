"""Decoder-only LLM shapes: exact parameter counts, KV-cache size, FLOPs and per-layer matmuls.

A :class:`ModelSpec` describes the real shape of one model. It is read from a Hugging Face style
``config.json`` (:meth:`ModelSpec.from_hf_config`, no ``transformers`` needed) or from a built-in
catalogue card (``chipletcloud/data/models/<name>.json``, see :func:`load_model`).

Units: parameter counts are plain integers; bytes are bytes; FLOPs count one multiply-accumulate as
two floating-point operations.

Two parameter counts are offered, as REFERENCE.md section 6 asks:

- :attr:`ModelSpec.params`, the exact count of the real model (embeddings, untied LM head,
  learned position table, attention with GQA/MQA-sized K and V, gated or plain MLP, biases, norms,
  MoE experts and router);
- :attr:`ModelSpec.params_12ld2`, the authors' ``12 L d^2`` (no embeddings, 4d plain MLP) of the
  paper shape (REFERENCE.md section 9) where the card has one, else of the real shape.

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

import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from numbers import Integral
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from chipletcloud.errors import InputError

__all__ = [
    "ModelCard",
    "ModelSpec",
    "PaperShape",
    "list_models",
    "load_model",
]

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


class _Strict(BaseModel):
    """Base of the validated records: unknown keys are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise _input_error(exc) from None


class PaperShape(_Strict):
    """The simplified shape the Chiplet Cloud authors configured (REFERENCE.md section 9)."""

    num_layers: LayerCount
    hidden_size: PositiveInt
    num_attention_heads: PositiveInt
    num_key_value_heads: PositiveInt
    source: str

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


class ModelSpec(_Strict):
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
        raw, where = _read_config(config)
        parsed, origin = _parse_hf(raw)
        if name is None:
            name = _default_name(raw, where)
        if source is None:
            source = f"Hugging Face config.json ({where})" if where else "Hugging Face config.json"
        try:
            return cls.model_validate({"name": name, "source": source, **parsed})
        except ValidationError as exc:
            raise _input_error(exc, origin) from None

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
    def q_width(self) -> int:
        """Output width of the query projection: heads x head_dim."""
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
        d, q, kv = self.hidden_size, self.q_width, self.kv_width
        n = d * q + 2 * d * kv + q * d
        if self.attention_bias:
            n += q + 2 * kv + d
        if self.position == "relative":
            n += d * q + 2 * q  # Transformer-XL W_R and the u, v biases
        return n

    def _layer_params(self, moe: bool, active: bool) -> int:
        n = self._attention_params() + self.norms_per_layer * self._norm_params(self.hidden_size)
        if not moe:
            return n + self._mlp_params(self.intermediate_size)
        routed = self.num_experts_per_tok if active else self.num_experts
        experts = routed + self.num_shared_experts
        router = self.hidden_size * self.num_experts  # no bias
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
    def params_12ld2(self) -> int:
        """The authors' ``12 L d^2`` of the paper shape if the card has one, else of this shape."""
        shape = self.paper_shape or self
        return 12 * shape.num_layers * shape.hidden_size**2

    def weight_bytes(self, bytes_per_param: float = 2.0) -> float:
        """Bytes to store all parameters at ``bytes_per_param`` bytes each (2 = fp16/bf16)."""
        _check_positive("bytes_per_param", bytes_per_param)
        return float(self.params * bytes_per_param)

    def kv_bytes_per_token(self, bytes_per_elem: float = 2.0) -> float:
        """KV-cache bytes per token of context: 2 (K and V) x L x KV heads x head_dim x bytes."""
        _check_positive("bytes_per_elem", bytes_per_elem)
        return float(2 * self.num_layers * self.kv_width * bytes_per_elem)

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
        out: list[tuple[str, int, int]] = [
            ("qkv", d, self.q_width + 2 * self.kv_width),
            ("o", self.q_width, d),
        ]

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
        terms = 3 if self.position == "relative" else 2
        return terms * 2 * self.q_width * self.num_layers

    def flops_prefill(self, prompt_tokens: int, logits_for_all_tokens: bool = True) -> float:
        """FLOPs to process a prompt of ``prompt_tokens`` tokens (one sequence).

        ``2 x active_matmul_params x n`` plus causal attention counted exactly: the query at
        position i (1-based) attends to i keys (itself and the i-1 before it), so the scores and
        the weighted sum cover ``n (n + 1) / 2`` query-key pairs per head, neither ``n^2`` nor the
        authors' under-count (REFERENCE.md section 6). Softmax, norms and other element-wise work
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
        """The authors' simplified shape of this model (REFERENCE.md section 9).

        ``num_layers, hidden_size, num_attention_heads, num_key_value_heads`` from the paper shape;
        ``head_dim = d / heads``, a plain (ungated) MLP of ``4 d``, dense; vocabulary, embeddings,
        norms and biases as in the real model. The authors' block has no relative-position
        projection, so Gopher's ``relative`` becomes the parameter-free ``rotary``. Raises
        InputError when the card carries no paper shape.
        """
        ps = self.paper_shape
        if ps is None:
            raise InputError(
                "paper_shape", None, "a model with a paper shape: " + ", ".join(PAPER_MODELS)
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


# ====================================================================== Hugging Face config reader


def _fam(
    gated: bool,
    norm: str,
    position: str,
    tie: bool,
    bias: tuple[bool, bool],
    ffn_mult: int | None = None,
    norms_per_layer: int | None = None,
) -> dict[str, Any]:
    """Defaults of one model family, used where its config.json leaves a choice implicit.

    ``tie`` is the family's default ``tie_word_embeddings``; ``bias`` the default (attention, MLP)
    biases; ``ffn_mult`` the MLP width in units of d when no width key is given (else required).
    """
    fam: dict[str, Any] = dict(gated=gated, norm=norm, position=position, tie=tie, bias=bias)
    if ffn_mult is not None:
        fam["ffn_mult"] = ffn_mult
    if norms_per_layer is not None:
        fam["norms_per_layer"] = norms_per_layer
    return fam


_LLAMA_LIKE = _fam(True, "rmsnorm", "rotary", False, (False, False))
_FAMILIES: dict[str, dict[str, Any]] = {
    **dict.fromkeys(
        "llama mistral mixtral qwen3 qwen3_moe deepseek deepseek_v2 deepseek_v3 phi3 internlm2 "
        "yi baichuan granite granitemoe olmo2 olmoe exaone minicpm".split(),
        _LLAMA_LIKE,
    ),
    **dict.fromkeys(["qwen2", "qwen2_moe"], {**_LLAMA_LIKE, "bias": (True, False)}),  # qkv bias
    **dict.fromkeys(["gemma", "gemma2", "gemma3_text"], {**_LLAMA_LIKE, "tie": True}),
    "gpt2": _fam(False, "layernorm", "learned", True, (True, True), ffn_mult=4),
    "gpt_bigcode": _fam(False, "layernorm", "learned", True, (True, True), ffn_mult=4),
    "opt": _fam(False, "layernorm", "learned", True, (True, True)),
    "bloom": _fam(False, "layernorm", "alibi", True, (True, True), ffn_mult=4),
    "falcon": _fam(False, "layernorm", "rotary", True, (False, False), ffn_mult=4),
    "mpt": _fam(False, "layernorm", "learned", True, (True, True)),
    "gpt_neox": _fam(False, "layernorm", "rotary", False, (True, True)),
    "gptj": _fam(False, "layernorm", "rotary", False, (False, True), 4, norms_per_layer=1),
    "phi": _fam(False, "layernorm", "rotary", False, (True, True), norms_per_layer=1),
    "starcoder2": _fam(False, "layernorm", "rotary", True, (True, True)),
    "dbrx": _fam(True, "layernorm", "rotary", False, (False, False)),
}

_MODEL_TYPE_ALIASES = {"RefinedWeb": "falcon", "RefinedWebModel": "falcon", "gpt-j": "gptj"}
_GATED_ACTS = ("silu", "swish", "swiglu", "geglu", "reglu", "glu")
_NESTED_TEXT = ("text_config", "llm_config", "language_config")

_LAYER_KEYS = ("num_hidden_layers", "n_layer", "n_layers", "num_layers")
_HIDDEN_KEYS = ("hidden_size", "n_embd", "d_model")
_HEAD_KEYS = ("num_attention_heads", "n_head", "n_heads", "num_heads")
_FFN_KEYS = ("intermediate_size", "ffn_dim", "n_inner", "ffn_hidden_size", "d_ff")
_POS_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "n_ctx")
_ACT_KEYS = ("hidden_act", "activation_function", "hidden_activation")


def _read_config(config: dict | str | Path) -> tuple[dict[str, Any], str | None]:
    """Return the config as a dict and where it came from (a path string, or None for a dict)."""
    if isinstance(config, Mapping):
        return dict(config), None
    if not isinstance(config, str | Path):
        raise InputError("config", config, "a dict or a path to a config.json file")
    path = Path(config)
    if path.is_dir():
        path = path / "config.json"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise InputError("config", str(config), "a path to a readable config.json file") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            "config", str(path), f"valid JSON ({exc.msg} at line {exc.lineno})"
        ) from None
    if not isinstance(data, dict):
        raise InputError("config", str(path), "a JSON object")
    return data, str(path)


def _default_name(raw: Mapping[str, Any], where: str | None) -> str:
    if isinstance(raw.get("_name_or_path"), str) and raw["_name_or_path"]:
        return raw["_name_or_path"]
    if where:
        path = Path(where)
        return path.parent.name if path.name == "config.json" and path.parent.name else path.stem
    return str(raw.get("model_type") or "custom")


class _Config:
    """Look-ups in one flattened HF config that remember which key supplied each value."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        cfg = dict(raw)
        for key in _NESTED_TEXT:
            nested = raw.get(key)
            if isinstance(nested, Mapping):
                top = {k: v for k, v in raw.items() if not isinstance(v, Mapping)}
                cfg = {**top, **nested}
                break
        self.cfg = cfg
        self.origin: dict[str, str] = {}

    def has(self, key: str) -> bool:
        return self.get(key) is not None

    def get(self, key: str, default: Any = None) -> Any:
        node: Any = self.cfg
        for part in key.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return default
            node = node[part]
        return default if node is None else node

    def first(self, keys: tuple[str, ...]) -> tuple[str | None, Any]:
        for key in keys:
            value = self.get(key)
            if value is not None:
                return key, value
        return None, None

    def int_of(self, field: str, keys: tuple[str, ...], required: bool = True) -> int | None:
        key, value = self.first(keys)
        if key is None:
            if required:
                also = f" (also read from {', '.join(keys[1:])})" if len(keys) > 1 else ""
                raise InputError(keys[0], None, "an integer; the key is required" + also)
            return None
        self.origin[field] = key
        return _as_int(key, value)

    def bool_of(self, key: str, default: bool) -> bool:
        value = self.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise InputError(key, value, "true or false")
        return value


def _required(value: int | None) -> int:
    assert value is not None  # int_of(..., required=True) raises instead of returning None
    return value


def _as_int(key: str, value: Any) -> int:
    if isinstance(value, bool):
        raise InputError(key, value, "an integer")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, int):
        raise InputError(key, value, "an integer")
    return value


def _parse_hf(raw: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Map an HF config to ModelSpec fields; also return field -> config key for error messages."""
    c = _Config(raw)
    model_type = str(c.get("model_type", ""))
    model_type = _MODEL_TYPE_ALIASES.get(model_type, model_type)
    fam = _FAMILIES.get(model_type, {})
    if c.has("kv_lora_rank"):
        raise InputError(
            "kv_lora_rank",
            c.get("kv_lora_rank"),
            "null: multi-head latent attention (DeepSeek-V2/V3) is not modelled",
        )

    out: dict[str, Any] = {}
    out["num_layers"] = _required(c.int_of("num_layers", _LAYER_KEYS))
    d = _required(c.int_of("hidden_size", _HIDDEN_KEYS))
    h = _required(c.int_of("num_attention_heads", _HEAD_KEYS))
    out["hidden_size"], out["num_attention_heads"] = d, h
    out["num_key_value_heads"] = _kv_heads(c, model_type, h)
    head_dim = c.int_of("head_dim", ("head_dim", "d_head", "kv_channels"), required=False)
    if head_dim is not None:
        out["head_dim"] = head_dim
    out["vocab_size"] = c.int_of("vocab_size", ("vocab_size", "padded_vocab_size", "n_vocab"))
    out["max_position_embeddings"] = c.int_of("max_position_embeddings", _POS_KEYS, required=False)

    out["intermediate_size"] = _ffn_width(c, model_type, fam, d)
    out["gated_mlp"] = _gated(c, model_type, fam)
    out["norm"], out["norm_bias"] = _norm(c, model_type, fam)
    out["position"] = _position(c, model_type, fam)
    out["tie_word_embeddings"] = c.bool_of("tie_word_embeddings", fam.get("tie", True))
    out["attention_bias"], out["mlp_bias"] = _biases(c, model_type, fam)
    if c.bool_of("no_bias", False):
        out["norm_bias"] = False
    out.update(_layout(c, model_type, d))
    out.update(_moe(c, model_type))
    out.update(_sparsity(c))
    return out, c.origin


#: compressed-tensors sparsity formats -> chipletcloud.sparsity formats
_CT_FORMATS = {"sparse-bitmask": "bitmask", "sparse-24-bitmask": "nm24", "dense": None}


def _sparsity(c: _Config) -> dict[str, Any]:
    """Weight sparsity from a compressed-tensors ``sparsity_config`` (top level, or inside
    ``quantization_config`` / ``compression_config``): ``sparsity_structure`` "2:4" -> the 2:4
    format at 50%; "unstructured" with ``format`` "sparse-bitmask" -> the bitmask format at
    ``global_sparsity``. Absent or dense: no sparsity."""
    for prefix in (
        "sparsity_config",
        "quantization_config.sparsity_config",
        "compression_config.sparsity_config",
    ):
        if c.has(f"{prefix}.format") or c.has(f"{prefix}.sparsity_structure"):
            break
    else:
        return {}
    fmt = c.get(f"{prefix}.format", "dense")
    structure = str(c.get(f"{prefix}.sparsity_structure", "unstructured"))
    if fmt not in _CT_FORMATS:
        raise InputError(f"{prefix}.format", fmt, ", ".join(_CT_FORMATS))
    if _CT_FORMATS[fmt] is None or structure == "0:0":
        return {}
    if structure == "2:4" or _CT_FORMATS[fmt] == "nm24":
        c.origin["weight_sparsity"] = f"{prefix}.sparsity_structure"
        return {"weight_sparsity": 0.5, "sparse_format": "nm24"}
    value = c.get(f"{prefix}.global_sparsity")
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise InputError(f"{prefix}.global_sparsity", value, "a fraction in [0, 1)")
    c.origin["weight_sparsity"] = f"{prefix}.global_sparsity"
    return {"weight_sparsity": float(value), "sparse_format": _CT_FORMATS[fmt]}


def _kv_heads(c: _Config, model_type: str, heads: int) -> int:
    if model_type == "falcon":
        if c.bool_of("new_decoder_architecture", False):
            kv = c.int_of("num_key_value_heads", ("num_kv_heads", "n_head_kv"), required=False)
            return heads if kv is None else kv
        if c.bool_of("multi_query", True):
            c.origin["num_key_value_heads"] = "multi_query"
            return 1
        return heads
    if model_type == "mpt":
        attn_type = c.get("attn_config.attn_type", "multihead_attention")
        if attn_type == "multiquery_attention":
            return 1
        if attn_type == "grouped_query_attention":
            return _required(c.int_of("num_key_value_heads", ("attn_config.kv_n_heads",)))
        return heads
    kv = c.int_of(
        "num_key_value_heads",
        ("num_key_value_heads", "num_kv_heads", "n_head_kv", "attn_config.kv_n_heads"),
        required=False,
    )
    if kv is not None:
        return kv
    if c.bool_of("multi_query", False):
        c.origin["num_key_value_heads"] = "multi_query"
        return 1
    return heads


def _ffn_width(c: _Config, model_type: str, fam: Mapping[str, Any], d: int) -> int:
    if model_type == "mpt" or c.has("expansion_ratio"):
        ratio = c.get("expansion_ratio", 4)
        width = c.get("ffn_config.ffn_hidden_size")
        if width is not None:
            c.origin["intermediate_size"] = "ffn_config.ffn_hidden_size"
            return _as_int("ffn_config.ffn_hidden_size", width)
        if isinstance(ratio, bool) or not isinstance(ratio, int | float) or ratio <= 0:
            raise InputError("expansion_ratio", ratio, "a positive number")
        if not float(d * ratio).is_integer():
            raise InputError(
                "expansion_ratio", ratio, f"a ratio making d_model {d} x it an integer"
            )
        c.origin["intermediate_size"] = "expansion_ratio"
        return int(d * ratio)
    keys = _FFN_KEYS + ("ffn_config.ffn_hidden_size",)
    if model_type == "bloom":  # BLOOM's n_inner is unused: the MLP is always 4 d
        keys = ()
    width = c.int_of("intermediate_size", keys, required=False) if keys else None
    if width is not None:
        return width
    if "ffn_mult" in fam:
        return fam["ffn_mult"] * d
    raise InputError(
        "intermediate_size",
        None,
        "an integer; the key is required (also read from " + ", ".join(_FFN_KEYS[1:]) + ")",
    )


def _gated(c: _Config, model_type: str, fam: Mapping[str, Any]) -> bool:
    ffn_type = c.get("ffn_config.ffn_type")
    if isinstance(ffn_type, str):
        return "glu" in ffn_type.lower()
    if "gated" in fam:
        return fam["gated"]
    _, act = c.first(_ACT_KEYS)
    if act is None:
        raise InputError("hidden_act", None, "an activation name, e.g. silu (gated) or gelu")
    return any(g in str(act).lower() for g in _GATED_ACTS)


def _norm(c: _Config, model_type: str, fam: Mapping[str, Any]) -> tuple[str, bool | None]:
    norm_type = c.get("norm_type")
    if isinstance(norm_type, str):
        return ("rmsnorm" if "rms" in norm_type.lower() else "layernorm"), None
    if "norm" in fam:
        return fam["norm"], (False if model_type == "dbrx" else None)
    if c.has("rms_norm_eps"):
        return "rmsnorm", None
    if any(c.has(k) for k in ("layer_norm_eps", "layer_norm_epsilon", "layernorm_epsilon")):
        return "layernorm", None
    raise InputError("norm_type", None, "layernorm or rmsnorm (or rms_norm_eps / layer_norm_eps)")


# Words in an explicit ``position_embedding_type`` and the scheme they name (first match wins).
_POSITION_WORDS = (
    ("alibi", "alibi"),
    ("rot", "rotary"),
    ("rope", "rotary"),
    ("relative", "relative"),
    ("absolute", "learned"),
    ("learned", "learned"),
)


def _position(c: _Config, model_type: str, fam: Mapping[str, Any]) -> str:
    explicit = c.get("position_embedding_type")
    if isinstance(explicit, str):
        text = explicit.lower()
        for word, kind in _POSITION_WORDS:
            if word in text:
                return kind
        raise InputError("position_embedding_type", explicit, "learned, rotary, alibi or relative")
    if c.bool_of("alibi", False) or c.bool_of("attn_config.alibi", False):
        return "alibi"
    if model_type == "mpt" and c.bool_of("attn_config.rope", False):
        return "rotary"
    if "position" in fam:
        return fam["position"]
    if any(c.has(k) for k in ("rope_theta", "rotary_dim", "rotary_pct", "rope_scaling")):
        return "rotary"
    if c.has("n_positions"):
        return "learned"
    raise InputError(
        "position_embedding_type", None, "learned, rotary, alibi or relative (could not infer it)"
    )


def _biases(c: _Config, model_type: str, fam: Mapping[str, Any]) -> tuple[bool, bool]:
    attn, mlp = fam.get("bias", (False, False))
    if model_type == "mpt" or c.has("no_bias"):
        flag = not c.bool_of("no_bias", False)
        attn = mlp = flag
    for key in ("bias", "enable_bias", "use_bias"):  # Falcon, OPT, StarCoder2
        if c.has(key):
            attn = mlp = c.bool_of(key, attn)
    attn = c.bool_of("attention_bias", attn)
    mlp = c.bool_of("mlp_bias", mlp)
    return attn, mlp


def _layout(c: _Config, model_type: str, d: int) -> dict[str, Any]:
    """Norm count per layer, embedding width and norms, final norm."""
    out: dict[str, Any] = {}
    if model_type == "falcon":
        if c.bool_of("new_decoder_architecture", False):
            out["norms_per_layer"] = _as_int(
                "num_ln_in_parallel_attn", c.get("num_ln_in_parallel_attn", 2)
            )
        elif c.bool_of("parallel_attn", True):
            out["norms_per_layer"] = 1
    elif "norms_per_layer" in _FAMILIES.get(model_type, {}):
        out["norms_per_layer"] = _FAMILIES[model_type]["norms_per_layer"]
    elif model_type not in _FAMILIES and c.bool_of("parallel_attn", False):
        out["norms_per_layer"] = 1  # one shared norm, as in PaLM's parallel block
    if model_type == "bloom":
        out["embedding_norm"] = True
    if model_type == "opt":
        proj = c.int_of("embedding_dim", ("word_embed_proj_dim",), required=False)
        if proj is not None and proj != d:
            out["embedding_dim"] = proj
        if not c.bool_of("do_layer_norm_before", True) or c.bool_of(
            "_remove_final_layer_norm", False
        ):
            out["final_norm"] = False
    return out


def _moe(c: _Config, model_type: str) -> dict[str, Any]:
    key, experts = c.first(
        ("num_local_experts", "n_routed_experts", "num_experts", "ffn_config.moe_num_experts")
    )
    if key is None:
        return {}
    experts = _as_int(key, experts)
    if experts <= 1:
        return {}
    c.origin["num_experts"] = key
    out: dict[str, Any] = {"num_experts": experts}
    out["num_experts_per_tok"] = c.int_of(
        "num_experts_per_tok", ("num_experts_per_tok", "moe_top_k", "ffn_config.moe_top_k")
    )
    moe_width = c.int_of("moe_intermediate_size", ("moe_intermediate_size",), required=False)
    out["moe_intermediate_size"] = moe_width
    dense = c.int_of("num_dense_layers", ("first_k_dense_replace",), required=False)
    if dense:
        out["num_dense_layers"] = dense
    for key in ("moe_layer_freq", "decoder_sparse_step"):
        if c.get(key, 1) != 1:
            raise InputError(key, c.get(key), "1 (MoE in every layer after the dense ones)")
    if c.get("mlp_only_layers"):
        raise InputError("mlp_only_layers", c.get("mlp_only_layers"), "[] (not modelled)")
    shared = c.int_of("num_shared_experts", ("n_shared_experts",), required=False)
    shared_width = c.get("shared_expert_intermediate_size")
    if shared_width:
        shared_width = _as_int("shared_expert_intermediate_size", shared_width)
        unit = moe_width or c.get("intermediate_size")
        if not isinstance(unit, int) or unit <= 0 or shared_width % unit:
            raise InputError(
                "shared_expert_intermediate_size",
                shared_width,
                f"a multiple of moe_intermediate_size ({unit})",
            )
        shared = shared_width // unit
        c.origin["num_shared_experts"] = "shared_expert_intermediate_size"
    if shared:
        out["num_shared_experts"] = shared
    return out


# ====================================================================== built-in catalogue

PAPER_MODELS = ("gpt2", "megatron", "gpt3", "gopher", "mtnlg", "bloom", "palm", "llama2-70b")


class ModelCard(_Strict):
    """A catalogue card: ``{"name", "source", "config": {HF config.json keys}, "paper_shape"}``."""

    name: str
    source: str
    config: dict[str, Any]
    paper_shape: PaperShape | None = None

    def spec(self) -> ModelSpec:
        """The ModelSpec this card describes (the real shape, with the paper shape attached)."""
        spec = ModelSpec.from_hf_config(self.config, name=self.name, source=self.source)
        if self.paper_shape is None:
            return spec
        return spec.model_copy(update={"paper_shape": self.paper_shape})


def _catalogue_dir() -> Any:
    return resources.files("chipletcloud").joinpath("data", "models")


@cache
def _catalogue_names() -> tuple[str, ...]:
    return tuple(
        sorted(
            entry.name[: -len(".json")]
            for entry in _catalogue_dir().iterdir()
            if entry.name.endswith(".json")
        )
    )


def list_models() -> list[str]:
    """Names of the built-in models, sorted."""
    return list(_catalogue_names())


def _card_from_dict(data: Mapping[str, Any], where: str) -> ModelSpec:
    try:
        return ModelCard(**data).spec()
    except InputError as exc:
        raise InputError(f"{where}: {exc.field}", exc.value, exc.allowed) from None


@cache
def _builtin(name: str) -> ModelSpec:
    text = _catalogue_dir().joinpath(f"{name}.json").read_text(encoding="utf-8")
    return _card_from_dict(json.loads(text), f"card {name}")


def load_model(name_or_path: str | Path) -> ModelSpec:
    """A built-in model by name (:func:`list_models`), or a path to a ``config.json`` or a card.

    A JSON file holding ``name`` and ``config`` keys is read as a catalogue card, any other JSON
    object as a Hugging Face config. Unknown names raise InputError listing the allowed ones.
    """
    key = str(name_or_path)
    if key in _catalogue_names():
        return _builtin(key)
    path = Path(key)
    if path.is_file() or (path.is_dir() and (path / "config.json").is_file()):
        data, where = _read_config(path)
        if "config" in data and "name" in data:
            return _card_from_dict(data, str(where))
        return ModelSpec.from_hf_config(path)
    raise InputError(
        "model", key, "one of " + ", ".join(list_models()) + ", or a path to a config.json"
    )
