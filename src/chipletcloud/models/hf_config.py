"""The Hugging Face ``config.json`` reader: maps the config keys of the common decoder-only
families (GPT-2, OPT, BLOOM, Falcon, MPT, GPT-J, Llama, Mistral/Mixtral, Qwen, Gemma, DeepSeek, ...,
with their aliases and nested ``text_config``) to the fields of
:class:`chipletcloud.models.llm.ModelSpec`, remembering which key supplied each value so that a bad
value is reported under its own name. No ``transformers`` needed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chipletcloud.errors import InputError


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
_QK_NORM = ("qwen3", "qwen3_moe")  # an RMSNorm of head_dim on queries and keys
_SINKS = ("gpt_oss",)  # a learned attention-sink logit a head, and a router bias
_FAMILIES: dict[str, dict[str, Any]] = {
    **dict.fromkeys(
        "llama mistral mixtral qwen3 qwen3_moe deepseek deepseek_v2 deepseek_v3 phi3 internlm2 "
        "yi baichuan granite granitemoe olmo2 olmoe exaone minicpm".split(),
        _LLAMA_LIKE,
    ),
    **dict.fromkeys(["qwen2", "qwen2_moe"], {**_LLAMA_LIKE, "bias": (True, False)}),  # qkv bias
    "gpt_oss": {**_LLAMA_LIKE, "bias": (True, True)},
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

#: Config keys that say nothing about the shape or the cost of serving (token ids, numerics,
#: initialisation, bookkeeping): read by nobody, reported by nobody. Every other key the reader
#: does not use is listed by :func:`parse_hf_config_keys` (``models show`` warns).
NOT_SHAPE = frozenset(
    """architectures model_type torch_dtype dtype transformers_version bos_token_id eos_token_id
    pad_token_id decoder_start_token_id initializer_range initializer_factor rms_norm_eps
    layer_norm_eps layer_norm_epsilon use_cache attention_dropout hidden_dropout dropout
    embd_pdrop resid_pdrop attn_pdrop summary_type summary_use_proj summary_activation
    summary_proj_to_labels summary_first_dropout _name_or_path auto_map rope_theta rope_scaling
    tokenizer_class output_attentions output_hidden_states return_dict id2label label2id
    task_specific_params scale_attn_weights use_return_dict pretraining_tp router_aux_loss_coef
    output_router_logits router_jitter_noise aux_loss_alpha seq_aux norm_topk_prob
    routed_scaling_factor scoring_func n_group topk_group ep_size swiglu_limit""".split()
)

_MODEL_TYPE_ALIASES = {"RefinedWeb": "falcon", "RefinedWebModel": "falcon", "gpt-j": "gptj"}
_GATED_ACTS = ("silu", "swish", "swiglu", "geglu", "reglu", "glu")
_NESTED_TEXT = ("text_config", "llm_config", "language_config")

_LAYER_KEYS = ("num_hidden_layers", "n_layer", "n_layers", "num_layers")
_HIDDEN_KEYS = ("hidden_size", "n_embd", "d_model")
_HEAD_KEYS = ("num_attention_heads", "n_head", "n_heads", "num_heads")
_FFN_KEYS = ("intermediate_size", "ffn_dim", "n_inner", "ffn_hidden_size", "d_ff")
_POS_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "n_ctx")
_ACT_KEYS = ("hidden_act", "activation_function", "hidden_activation")


def read_config(config: dict | str | Path) -> tuple[dict[str, Any], str | None]:
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


def default_name(raw: Mapping[str, Any], where: str | None) -> str:
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
        self.read: set[str] = set()  # top-level keys looked at

    def has(self, key: str) -> bool:
        return self.get(key) is not None

    def ignored(self) -> list[str]:
        """Top-level keys nobody read, less :data:`NOT_SHAPE` (sorted)."""
        return sorted(k for k in self.cfg if k not in self.read and k not in NOT_SHAPE)

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key.split(".", 1)[0])
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


def parse_hf_config(
    raw: Mapping[str, Any], c: _Config | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """Map an HF config to ModelSpec fields; also return field -> config key for error messages."""
    c = c or _Config(raw)
    model_type = str(c.get("model_type", ""))
    model_type = _MODEL_TYPE_ALIASES.get(model_type, model_type)
    fam = _FAMILIES.get(model_type, {})
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
    out.update(_attention_variant(c, model_type))
    out.update(_sparsity(c))
    return out, c.origin


def parse_hf_config_keys(
    raw: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """:func:`parse_hf_config` and the keys of the config.json the model does not use (less
    :data:`NOT_SHAPE`): what a warning names, never dropped silently. One parse."""
    c = _Config(raw)
    parsed, origin = parse_hf_config(raw, c)
    return parsed, origin, c.ignored()


#: attention kinds a config may name that mean full causal attention
_PLAIN_ATTENTION = {"full_attention", "full", "global", "causal", "multihead", "mha", "gqa"}


def _refuse_unmodelled_attention(c: _Config) -> None:
    """One line (exit 2) for an attention kind the model does not time, rather than a warning
    that times it as full attention: an unknown ``attention_type``, GPT-Neo's local layers
    (``attention_types`` / ``attention_layers``), Llama 4's chunked attention
    (``attention_chunk_size``) and a window pattern without ``layer_types``."""
    kind = c.get("attention_type")
    if kind is not None and str(kind).lower() not in _PLAIN_ATTENTION:
        raise InputError("attention_type", kind, ", ".join(sorted(_PLAIN_ATTENTION)))
    for key in ("attention_types", "attention_layers"):
        value = c.get(key)
        if value is not None and "local" in json.dumps(value):
            raise InputError(
                key, value, "global attention only (local attention layers are not modelled)"
            )
    if c.get("attention_chunk_size") is not None:
        raise InputError(
            "attention_chunk_size",
            c.get("attention_chunk_size"),
            "null (chunked attention is not modelled)",
        )
    if c.get("sliding_window_pattern") is not None and c.get("layer_types") is None:
        raise InputError(
            "sliding_window_pattern",
            c.get("sliding_window_pattern"),
            "a config that lists its layer_types (full_attention / sliding_attention)",
        )


def _attention_variant(c: _Config, model_type: str) -> dict[str, Any]:
    """Latent attention (``kv_lora_rank`` and its dims), sliding windows (``sliding_window``
    with ``layer_types``; Qwen's ``use_sliding_window: false`` turns the window off), query/key
    norms (Qwen3), attention sinks and router bias (gpt-oss; DeepSeek-V3's ``noaux_tc`` router
    carries a bias an expert), multi-token prediction (``num_nextn_predict_layers``)."""
    out: dict[str, Any] = {}
    _refuse_unmodelled_attention(c)
    if c.has("kv_lora_rank"):
        for field in ("kv_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim"):
            out[field] = c.int_of(field, (field,))
        q = c.int_of("q_lora_rank", ("q_lora_rank",), required=False)
        if q:
            out["q_lora_rank"] = q
    window = c.int_of("sliding_window", ("sliding_window",), required=False)
    on = c.bool_of("use_sliding_window", True)
    below = c.get("max_window_layers")  # Qwen2/3: layers from this index on use the window
    if window is not None and on:
        out["sliding_window"] = window
        types = c.get("layer_types")
        if types is None and below is not None:
            n = c.int_of("num_layers", _LAYER_KEYS)
            first = min(_as_int("max_window_layers", below), n)
            types = ["full_attention"] * first + ["sliding_attention"] * (n - first)
            if first >= n:
                del out["sliding_window"]
                types = None
        if types is not None:
            if not isinstance(types, list) or any(
                t not in ("full_attention", "sliding_attention") for t in types
            ):
                raise InputError(
                    "layer_types", types, "a list of full_attention / sliding_attention"
                )
            out["layer_types"] = list(types)
    if model_type in _QK_NORM:
        out["qk_norm"] = True
    if model_type in _SINKS:
        out["attention_sinks"] = True
        out["router_bias"] = True
    if c.get("topk_method") == "noaux_tc":
        out["router_bias"] = True
    mtp = c.int_of("num_nextn_predict_layers", ("num_nextn_predict_layers",), required=False)
    if mtp:
        out["num_nextn_predict_layers"] = mtp
    return out


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
        c.get("multi_query")  # consulted: the new decoder architecture overrides it
        c.get("parallel_attn")
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
    c.first(_ACT_KEYS)  # consulted even where the family fixes the MLP
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
        _, top_k = c.first(
            ("num_experts_per_tok", "experts_per_token", "moe_top_k", "ffn_config.moe_top_k")
        )
        if isinstance(top_k, int) and not isinstance(top_k, bool) and top_k > experts:
            raise InputError(
                key, experts, f"at least num_experts_per_tok ({top_k}) experts for an MoE model"
            )
        return {}
    c.origin["num_experts"] = key
    out: dict[str, Any] = {"num_experts": experts}
    out["num_experts_per_tok"] = c.int_of(
        "num_experts_per_tok",
        ("num_experts_per_tok", "experts_per_token", "moe_top_k", "ffn_config.moe_top_k"),
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
