"""Tests of chipletcloud.models.llm: parameter counts, KV bytes, FLOPs, HF configs, catalogue."""

from __future__ import annotations

import json
from importlib import resources

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chipletcloud.errors import InputError
from chipletcloud.models.catalogue import PAPER_MODELS, list_models, load_model
from chipletcloud.models.llm import ModelSpec, PaperShape

B = 1_000_000_000

# ---------------------------------------------------------------------------- published sizes

# (model, published parameter count, its source). Each computed count must be within 1%.
PUBLISHED = [
    # GPT-2 XL: 1,557,611,200 tensor elements in the released checkpoint (Hugging Face
    # openai-community/gpt2-xl); the paper's Table 2 prints 1542M, an older count.
    ("gpt2", 1_557_611_200),
    # GPT-3: Brown et al. 2020, Table 2.1, "175.0B".
    ("gpt3", 175.0 * B),
    # Gopher: Rae et al. 2021, Table 1, "280B".
    ("gopher", 280 * B),
    # MT-NLG: Smith et al. 2022, title and section 3.1, "530B".
    ("mtnlg", 530 * B),
    # BLOOM: BigScience 2022 (arXiv 2211.05100) and the bigscience/bloom checkpoint: 176,247 M.
    ("bloom", 176_247_271_424),
    # PaLM: Chowdhery et al. 2022, Table 1, "540.35B".
    ("palm", 540.35 * B),
    # Llama-2: Touvron et al. 2023; exact counts of the meta-llama/Llama-2-*-hf checkpoints.
    ("llama2-7b", 6_738_415_616),
    ("llama2-13b", 13_015_864_320),
    ("llama2-70b", 68_976_648_192),
    # Llama-3 / 3.1: Meta 2024; exact counts of the meta-llama checkpoints.
    ("llama3-8b", 8_030_261_248),
    ("llama3-70b", 70_553_706_496),
    ("llama3.1-405b", 405_853_388_800),
    # Mixtral 8x7B: Jiang et al. 2024 and mistralai/Mixtral-8x7B-v0.1: 46.7B total.
    ("mixtral-8x7b", 46_702_792_704),
    # Falcon-180B: "180B" (TII model card, Almazrouei et al. 2023). With the Hugging Face default
    # of tied embeddings the count is 178.56B; an untied LM head would add 0.97B (179.52B).
    ("falcon-180b", 180 * B),
    # OPT-175B: Zhang et al. 2022, Table 1, "175B".
    ("opt-175b", 175 * B),
]


@pytest.mark.parametrize(("name", "published"), PUBLISHED)
def test_params_match_published_within_one_percent(name, published):
    assert load_model(name).params == pytest.approx(published, rel=0.01)


def test_megatron_params_within_the_rounding_of_8_3b():
    # Shoeybi et al. 2019, Table 2: "8.3" billion, rounded to 0.1B, so the true count lies in
    # [8.25B, 8.35B). With the vocabulary padded to 51,200 and 1024 positions we get 8.317B.
    assert 8.25 * B <= load_model("megatron").params < 8.35 * B


@pytest.mark.parametrize(
    ("name", "exact"),
    [
        # Sums of the tensor sizes in the released Hugging Face checkpoints.
        ("gpt2", 1_557_611_200),
        ("bloom", 176_247_271_424),
        ("llama2-7b", 6_738_415_616),
        ("llama2-13b", 13_015_864_320),
        ("llama2-70b", 68_976_648_192),
        ("llama3-8b", 8_030_261_248),
        ("llama3-70b", 70_553_706_496),
        ("llama3.1-405b", 405_853_388_800),
        ("mixtral-8x7b", 46_702_792_704),
    ],
)
def test_params_exact_for_released_checkpoints(name, exact):
    assert load_model(name).params == exact


def test_mixtral_active_params():
    # Jiang et al. 2024: "12.9B active parameters"; exact: two of eight experts per layer.
    m = load_model("mixtral-8x7b")
    assert m.active_params == 12_879_925_248
    assert m.active_params == pytest.approx(12.9 * B, rel=0.01)


def test_dense_active_params_equal_params():
    for name in ("gpt3", "llama2-70b", "palm"):
        m = load_model(name)
        assert m.active_params == m.params


def test_palm_true_shape():
    # Chowdhery et al. 2022: SwiGLU with d_ff 73,728, head dim 256, MQA, vocab 256k, no biases,
    # shared input/output embeddings.
    m = load_model("palm")
    assert (m.num_layers, m.hidden_size, m.num_attention_heads) == (118, 18432, 48)
    assert (m.head_dim, m.num_key_value_heads, m.intermediate_size) == (256, 1, 73728)
    assert m.gated_mlp and m.tie_word_embeddings
    assert not (m.attention_bias or m.mlp_bias)
    assert m.vocab_size == 256_000


# ---------------------------------------------------------------------------- 12 L d^2

# docs/models.md#the-eight-paper-models: 12 x L x d^2 of the authors' shapes.
TWELVE_LD2 = {
    "gpt2": 12 * 48 * 1600**2,  # 1.47 B
    "megatron": 12 * 72 * 3072**2,  # 8.15 B
    "gpt3": 173_946_175_488,  # 12 * 96 * 12288^2
    "gopher": 12 * 80 * 16384**2,  # 257.7 B
    "mtnlg": 12 * 105 * 20480**2,  # 528.48 B
    "bloom": 12 * 70 * 14336**2,  # 172.64 B
    "palm": 12 * 118 * 18432**2,  # 481.07 B
    "llama2-70b": 12 * 80 * 8192**2,  # 64.42 B
}


@pytest.mark.parametrize(("name", "expected"), sorted(TWELVE_LD2.items()))
def test_params_12ld2_exact(name, expected):
    assert load_model(name).params_12ld2 == expected


def test_params_12ld2_values_as_printed_in_reference():
    printed = {
        "gpt2": 1.47,
        "megatron": 8.15,
        "gpt3": 173.95,
        "gopher": 257.7,
        "mtnlg": 528.48,
        "bloom": 172.64,
        "palm": 481.07,
        "llama2-70b": 64.42,
    }
    for name, billions in printed.items():
        assert load_model(name).params_12ld2 / B == pytest.approx(billions, abs=0.006)


def test_params_12ld2_without_paper_shape_uses_real_shape():
    m = load_model("llama3-8b")
    assert m.paper_shape is None
    assert m.params_12ld2 == 12 * 32 * 4096**2


# ---------------------------------------------------------------------------- paper shapes


def test_eight_paper_models_carry_paper_shapes():
    assert set(PAPER_MODELS) <= set(list_models())
    for name in PAPER_MODELS:
        assert isinstance(load_model(name).paper_shape, PaperShape), name
    for name in set(list_models()) - set(PAPER_MODELS):
        assert load_model(name).paper_shape is None, name


def test_paper_shapes_as_in_reference_section_9():
    expected = {  # layers, d_model, heads, KV heads
        "gpt2": (48, 1600, 25, 25),
        "megatron": (72, 3072, 32, 32),
        "gpt3": (96, 12288, 96, 96),
        "gopher": (80, 16384, 128, 128),
        "mtnlg": (105, 20480, 128, 128),
        "bloom": (70, 14336, 112, 112),
        "palm": (118, 18432, 48, 1),
        "llama2-70b": (80, 8192, 64, 8),
    }
    for name, shape in expected.items():
        ps = load_model(name).paper_shape
        assert (ps.num_layers, ps.hidden_size, ps.num_attention_heads, ps.num_key_value_heads) == (
            shape
        )


def test_paper_spec_is_the_simplified_shape():
    p = load_model("palm").paper()
    assert (p.num_layers, p.hidden_size, p.num_attention_heads) == (118, 18432, 48)
    assert p.head_dim == 18432 // 48 == 384
    assert p.num_key_value_heads == 1
    assert p.intermediate_size == 4 * 18432 and not p.gated_mlp
    assert p.params_12ld2 == TWELVE_LD2["palm"]
    # Without embeddings, norms and biases a plain MHA block is exactly 12 d^2 per layer.
    g = load_model("gopher").paper()
    d = 16384
    layer_matmul = sum(i * o for _, i, o in g.layer_matmuls())
    assert layer_matmul == 12 * d * d


def test_paper_kv_bytes_follow_reference_formula():
    # docs/inference-model.md: KV bytes per token = 2 x L x (d / H) x (H / g) x 2 B.
    for name in PAPER_MODELS:
        p = load_model(name).paper()
        ps = p.paper_shape
        L, d, H, g = (
            ps.num_layers,
            ps.hidden_size,
            ps.num_attention_heads,
            ps.num_attention_heads // ps.num_key_value_heads,
        )
        assert p.kv_bytes_per_token() == 2 * L * (d // H) * (H // g) * 2


def test_paper_without_paper_shape_is_input_error():
    with pytest.raises(InputError) as exc:
        load_model("mixtral-8x7b").paper()
    assert exc.value.field == "paper_shape"


# ---------------------------------------------------------------------------- KV bytes, bytes


def test_kv_bytes_by_hand():
    # Llama-2-70B: 2 (K, V) x 80 layers x 8 KV heads x 128 head dim x 2 B = 327,680 B.
    assert load_model("llama2-70b").kv_bytes_per_token() == 327_680
    assert load_model("llama2-70b").kv_bytes_per_token(1.0) == 163_840
    # GPT-3 (MHA): 2 x 96 x 96 x 128 x 2 B.
    assert load_model("gpt3").kv_bytes_per_token() == 2 * 96 * 96 * 128 * 2
    # PaLM (MQA, head dim 256): 2 x 118 x 1 x 256 x 2 B.
    assert load_model("palm").kv_bytes_per_token() == 120_832


def test_weight_bytes():
    m = load_model("llama2-7b")
    assert m.weight_bytes() == 2 * m.params
    assert m.weight_bytes(0.5) == m.params / 2
    with pytest.raises(InputError):
        m.weight_bytes(0)
    with pytest.raises(InputError):
        m.kv_bytes_per_token(-1)


# ---------------------------------------------------------------------------- FLOPs


def tiny(**kw) -> ModelSpec:
    base = dict(
        name="tiny",
        source="test",
        num_layers=2,
        hidden_size=8,
        num_attention_heads=2,
        num_key_value_heads=1,
        intermediate_size=16,
        gated_mlp=False,
        vocab_size=10,
        tie_word_embeddings=True,
        max_position_embeddings=None,
        attention_bias=False,
        mlp_bias=False,
        norm="rmsnorm",
        position="rotary",
    )
    return ModelSpec(**{**base, **kw})


def test_tiny_model_by_hand():
    m = tiny()
    assert m.head_dim == 4
    # Per layer: qkv 8 x (8 + 2*4) = 128, o 8x8 = 64, up 8x16 = 128, down 16x8 = 128 -> 448.
    assert m.layer_matmuls() == [
        ("qkv", 8, 16),
        ("o", 8, 8),
        ("up", 8, 16),
        ("down", 16, 8),
    ]
    # Two layers (896) plus the tied LM head 8 x 10 = 80.
    assert m.active_matmul_params == 976
    # Params: matmuls 896 + embedding 80 (tied) + RMSNorm scales 2 per layer x 8 x 2 + final 8.
    assert m.params == 896 + 80 + 2 * 2 * 8 + 8
    # Attention per attended key: (QK^T + AV) 2 x 2 x heads*head_dim(8) x 2 layers = 64 FLOPs.
    # Prefill of 3 tokens: 2 x 976 x 3 + 64 x (1 + 2 + 3) (causal: query i sees i keys).
    assert m.flops_prefill(3) == 2 * 976 * 3 + 64 * 6 == 6240
    # Decode with 3 cached tokens: 2 x 976 + 64 x 4 keys (the 3 cached and itself).
    assert m.flops_decode_per_token(3) == 2 * 976 + 64 * 4 == 2208
    assert m.flops_prefill(4) == m.flops_prefill(3) + m.flops_decode_per_token(3)
    # LM head for the last position only: 2 of the 3 head matmuls (2 x 80 FLOPs each) dropped.
    assert m.flops_prefill(3, logits_for_all_tokens=False) == 6240 - 2 * 2 * 80
    assert m.flops_prefill(0) == 0.0


def test_prefill_flops_superlinear_in_prompt():
    m = load_model("gpt3")
    f = [m.flops_prefill(n) for n in (128, 256, 512, 1024)]
    for small, big in zip(f, f[1:], strict=False):
        assert big > 2 * small
    # The excess over linear is exactly the causal attention term.
    n = 2048
    linear = 2 * m.active_matmul_params * n
    attention = 2 * 2 * 96 * 128 * 96 * n * (n + 1) // 2
    assert m.flops_prefill(n) == linear + attention


def test_decode_flops_close_to_2n_for_short_context():
    m = load_model("llama2-70b")
    # ~2 FLOPs per matmul weight; the input embedding look-up and norms are not matmuls.
    assert m.flops_decode_per_token(0) == pytest.approx(2 * m.params, rel=0.01)


def test_flops_reject_bad_counts():
    m = tiny()
    with pytest.raises(InputError):
        m.flops_prefill(-1)
    with pytest.raises(InputError):
        m.flops_decode_per_token(1.5)


@given(st.integers(min_value=0, max_value=5000))
def test_prefill_plus_decode_is_longer_prefill(n):
    m = tiny(num_layers=3)
    assert m.flops_prefill(n) + m.flops_decode_per_token(n) == m.flops_prefill(n + 1)


# ---------------------------------------------------------------------------- layer matmuls


def test_layer_matmuls_gqa_gated():
    m = load_model("llama2-70b")
    assert m.layer_matmuls() == [
        ("qkv", 8192, 8192 + 2 * 8 * 128),
        ("o", 8192, 8192),
        ("gate", 8192, 28672),
        ("up", 8192, 28672),
        ("down", 28672, 8192),
    ]


def test_layer_matmuls_moe_lists_active_experts():
    m = load_model("mixtral-8x7b")
    names = [n for n, _, _ in m.layer_matmuls()]
    assert names == [
        "qkv",
        "o",
        "router",
        "expert0.gate",
        "expert0.up",
        "expert0.down",
        "expert1.gate",
        "expert1.up",
        "expert1.down",
    ]
    assert ("router", 4096, 8) in m.layer_matmuls()
    with pytest.raises(InputError):
        m.layer_matmuls(32)


def test_matmul_params_account_for_all_weights_of_llama():
    # Llama has no biases: params = matmul weights + input embedding + RMSNorm scales.
    m = load_model("llama2-7b")
    norms = (2 * 32 + 1) * 4096
    assert m.active_matmul_params + 32000 * 4096 + norms == m.params


# ---------------------------------------------------------------------------- HF config parsing


def test_gpt2_config():
    cfg = {
        "model_type": "gpt2",
        "n_layer": 2,
        "n_embd": 16,
        "n_head": 4,
        "n_inner": None,
        "n_positions": 32,
        "vocab_size": 50,
        "activation_function": "gelu_new",
    }
    m = ModelSpec.from_hf_config(cfg, name="gpt2-mini")
    assert (m.num_layers, m.hidden_size, m.num_attention_heads) == (2, 16, 4)
    assert m.num_key_value_heads == 4 and m.head_dim == 4
    assert m.intermediate_size == 64 and not m.gated_mlp
    assert m.position == "learned" and m.max_position_embeddings == 32
    assert m.norm == "layernorm" and m.attention_bias and m.mlp_bias and m.tie_word_embeddings
    d, f = 16, 64
    layer = 4 * d * d + 4 * d + 2 * d * f + f + d + 2 * 2 * d
    assert m.params == 2 * layer + 50 * d + 32 * d + 2 * d


def test_opt_config_with_projection_and_post_layernorm():
    # facebook/opt-350m: word_embed_proj_dim 512 < hidden 1024, post-LN (no final LayerNorm).
    # Checkpoint: 331,196,416 parameters, of which 2 x 1024 are the position table's offset rows
    # that we do not count.
    cfg = {
        "model_type": "opt",
        "num_hidden_layers": 24,
        "hidden_size": 1024,
        "num_attention_heads": 16,
        "ffn_dim": 4096,
        "word_embed_proj_dim": 512,
        "vocab_size": 50272,
        "max_position_embeddings": 2048,
        "do_layer_norm_before": False,
        "activation_function": "relu",
    }
    m = ModelSpec.from_hf_config(cfg)
    assert m.embedding_dim == 512 and not m.final_norm
    assert m.params == 331_196_416 - 2 * 1024
    assert [n for n, _, _ in m._head_matmuls()] == ["project_out", "lm_head"]


def test_bloom_config():
    cfg = {
        "model_type": "bloom",
        "n_layer": 2,
        "hidden_size": 64,
        "n_head": 8,
        "n_inner": None,
        "vocab_size": 100,
        "layer_norm_epsilon": 1e-5,
    }
    m = ModelSpec.from_hf_config(cfg)
    assert m.position == "alibi" and m.max_position_embeddings is None
    assert m.intermediate_size == 256 and m.embedding_norm and m.tie_word_embeddings


def test_falcon_old_architecture_multi_query():
    # tiiuae/falcon-7b: 6,921,720,704 parameters in the checkpoint.
    cfg = {
        "model_type": "falcon",
        "hidden_size": 4544,
        "num_attention_heads": 71,
        "num_hidden_layers": 32,
        "multi_query": True,
        "new_decoder_architecture": False,
        "parallel_attn": True,
        "bias": False,
        "alibi": False,
        "vocab_size": 65024,
    }
    m = ModelSpec.from_hf_config(cfg)
    assert m.num_key_value_heads == 1 and m.norms_per_layer == 1 and m.position == "rotary"
    assert m.params == 6_921_720_704


def test_falcon_new_architecture_and_rw_names():
    # The original RefinedWeb names of Falcon-40B: n_head, n_layer, n_head_kv.
    cfg = {
        "model_type": "RefinedWeb",
        "hidden_size": 8192,
        "n_head": 128,
        "n_head_kv": 8,
        "n_layer": 60,
        "new_decoder_architecture": True,
        "parallel_attn": True,
        "bias": False,
        "alibi": False,
        "vocab_size": 65024,
    }
    m = ModelSpec.from_hf_config(cfg)
    assert (m.num_layers, m.num_attention_heads, m.num_key_value_heads) == (60, 128, 8)
    assert m.norms_per_layer == 2 and not m.attention_bias
    d, q, kv, f = 8192, 8192, 8 * 64, 4 * 8192
    layer = d * (q + 2 * kv) + q * d + 2 * d * f + 2 * 2 * d  # two LayerNorms with bias
    assert m.params == 60 * layer + 65024 * d + 2 * d  # tied embeddings, final LayerNorm
    alibi = ModelSpec.from_hf_config({**cfg, "alibi": True})
    assert alibi.position == "alibi"


def test_mpt_config():
    # mosaicml/mpt-7b: 6,649,286,656 parameters (no biases anywhere, ALiBi, tied).
    cfg = {
        "model_type": "mpt",
        "d_model": 4096,
        "n_heads": 32,
        "n_layers": 32,
        "expansion_ratio": 4,
        "max_seq_len": 2048,
        "vocab_size": 50432,
        "no_bias": True,
        "norm_type": "low_precision_layernorm",
        "attn_config": {"alibi": True, "attn_type": "multihead_attention"},
    }
    m = ModelSpec.from_hf_config(cfg)
    assert m.position == "alibi" and m.intermediate_size == 16384
    assert not (m.attention_bias or m.mlp_bias or m.norm_bias)
    assert m.params == 6_649_286_656
    gqa = {**cfg, "attn_config": {"attn_type": "grouped_query_attention", "kv_n_heads": 8}}
    assert ModelSpec.from_hf_config(gqa).num_key_value_heads == 8
    mqa = {**cfg, "attn_config": {"attn_type": "multiquery_attention"}}
    assert ModelSpec.from_hf_config(mqa).num_key_value_heads == 1


LLAMA_MINI = {
    "model_type": "llama",
    "num_hidden_layers": 2,
    "hidden_size": 64,
    "num_attention_heads": 8,
    "num_key_value_heads": 2,
    "intermediate_size": 172,
    "hidden_act": "silu",
    "vocab_size": 100,
    "max_position_embeddings": 256,
    "rms_norm_eps": 1e-5,
}


def test_llama_config():
    m = ModelSpec.from_hf_config(LLAMA_MINI)
    assert m.gated_mlp and m.norm == "rmsnorm" and m.position == "rotary"
    assert not m.tie_word_embeddings and m.num_key_value_heads == 2 and m.head_dim == 8
    d, f, kv = 64, 172, 16
    layer = d * d * 2 + 2 * d * kv + 3 * d * f + 2 * d
    assert m.params == 2 * layer + 2 * 100 * d + d
    assert m.kv_bytes_per_token() == 2 * 2 * 2 * 8 * 2


def test_explicit_head_dim_may_differ_from_hidden_over_heads():
    m = ModelSpec.from_hf_config({**LLAMA_MINI, "head_dim": 32})
    assert m.head_dim == 32 and m.q_width == 256
    assert m.layer_matmuls()[0] == ("qkv", 64, 256 + 2 * 64)


def test_mixtral_config():
    cfg = {
        **LLAMA_MINI,
        "model_type": "mixtral",
        "num_local_experts": 4,
        "num_experts_per_tok": 2,
    }
    m = ModelSpec.from_hf_config(cfg)
    assert (m.num_experts, m.num_experts_per_tok, m.moe_intermediate_size) == (4, 2, None)
    dense = ModelSpec.from_hf_config(LLAMA_MINI)
    mlp = 3 * 64 * 172
    assert m.params == dense.params + 2 * (3 * mlp + 64 * 4)
    assert m.active_params == dense.params + 2 * (mlp + 64 * 4)


def test_nested_text_config():
    # A multimodal (LLaVA-style) config: the language model sits in text_config.
    cfg = {
        "model_type": "llava",
        "text_config": LLAMA_MINI,
        "vision_config": {"hidden_size": 1024, "num_hidden_layers": 24},
        "tie_word_embeddings": False,
    }
    assert ModelSpec.from_hf_config(cfg).params == ModelSpec.from_hf_config(LLAMA_MINI).params


def test_deepseek_style_moe():
    cfg = {
        "model_type": "deepseek",
        "num_hidden_layers": 4,
        "hidden_size": 64,
        "num_attention_heads": 8,
        "num_key_value_heads": 8,
        "intermediate_size": 256,
        "moe_intermediate_size": 32,
        "n_routed_experts": 16,
        "n_shared_experts": 2,
        "num_experts_per_tok": 4,
        "first_k_dense_replace": 1,
        "moe_layer_freq": 1,
        "hidden_act": "silu",
        "vocab_size": 100,
        "max_position_embeddings": 128,
        "rms_norm_eps": 1e-6,
    }
    m = ModelSpec.from_hf_config(cfg)
    assert (m.num_experts, m.num_shared_experts, m.num_dense_layers) == (16, 2, 1)
    assert m.num_moe_layers == 3 and m.expert_intermediate_size == 32
    d = 64
    attn, norms = 4 * d * d, 2 * d
    dense_layer = attn + norms + 3 * d * 256
    moe_layer = attn + norms + (16 + 2) * 3 * d * 32 + d * 16
    active_moe_layer = attn + norms + (4 + 2) * 3 * d * 32 + d * 16
    embed = 2 * 100 * d + d
    assert m.params == embed + dense_layer + 3 * moe_layer
    assert m.active_params == embed + dense_layer + 3 * active_moe_layer
    assert [n for n, _, _ in m.layer_matmuls(0)][-3:] == ["gate", "up", "down"]
    assert sum(n.startswith("shared") for n, _, _ in m.layer_matmuls(1)) == 6
    # latent attention needs all its dims: the first missing one is named
    mla = {**cfg, "model_type": "deepseek_v3", "kv_lora_rank": 512}
    with pytest.raises(InputError) as exc:
        ModelSpec.from_hf_config(mla)
    assert exc.value.field == "qk_rope_head_dim"
    mla.update(qk_rope_head_dim=8, qk_nope_head_dim=16, v_head_dim=16)
    assert ModelSpec.from_hf_config(mla).attention == "mla"


def test_qwen2_moe_shared_expert_width():
    cfg = {
        **LLAMA_MINI,
        "model_type": "qwen2_moe",
        "num_experts": 8,
        "num_experts_per_tok": 2,
        "moe_intermediate_size": 16,
        "shared_expert_intermediate_size": 64,
    }
    m = ModelSpec.from_hf_config(cfg)
    assert m.num_shared_experts == 4 and m.attention_bias
    with pytest.raises(InputError) as exc:
        ModelSpec.from_hf_config({**cfg, "shared_expert_intermediate_size": 40})
    assert exc.value.field == "shared_expert_intermediate_size"


def test_gpt_neox_and_gptj():
    neox = {
        "model_type": "gpt_neox",
        "num_hidden_layers": 2,
        "hidden_size": 64,
        "num_attention_heads": 4,
        "intermediate_size": 256,
        "hidden_act": "gelu",
        "vocab_size": 100,
        "max_position_embeddings": 128,
        "rotary_pct": 0.25,
        "use_parallel_residual": True,
    }
    m = ModelSpec.from_hf_config(neox)
    assert m.position == "rotary" and m.attention_bias and not m.tie_word_embeddings
    assert m.norms_per_layer == 2
    gptj = {
        "model_type": "gptj",
        "n_layer": 2,
        "n_embd": 64,
        "n_head": 4,
        "n_inner": None,
        "n_positions": 128,
        "rotary_dim": 16,
        "vocab_size": 100,
        "activation_function": "gelu_new",
        "tie_word_embeddings": False,
    }
    j = ModelSpec.from_hf_config(gptj)
    assert j.norms_per_layer == 1 and not j.attention_bias and j.mlp_bias
    assert j.intermediate_size == 256 and j.position == "rotary"


def test_config_from_file_and_load_model_path(tmp_path):
    folder = tmp_path / "mini-llama"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(LLAMA_MINI))
    m = ModelSpec.from_hf_config(folder / "config.json")
    assert m.name == "mini-llama" and "config.json" in m.source
    assert load_model(str(folder / "config.json")) == m
    assert load_model(str(folder)).params == m.params
    # A path to a catalogue card works too.
    card = {"name": "mine", "source": "a test", "config": LLAMA_MINI, "paper_shape": None}
    (tmp_path / "mine.json").write_text(json.dumps(card))
    assert load_model(str(tmp_path / "mine.json")).name == "mine"


def test_unknown_keys_are_ignored():
    m = ModelSpec.from_hf_config({**LLAMA_MINI, "torch_dtype": "bfloat16", "use_cache": True})
    assert m == ModelSpec.from_hf_config(LLAMA_MINI)


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"num_hidden_layers": None}, "num_hidden_layers"),  # missing
        ({"intermediate_size": None}, "intermediate_size"),  # missing
        ({"vocab_size": None}, "vocab_size"),
        ({"num_attention_heads": 6}, "num_attention_heads"),  # 64 % 6 != 0, no head_dim
        ({"num_key_value_heads": 3}, "num_key_value_heads"),  # 8 % 3 != 0
        ({"hidden_size": -64}, "hidden_size"),
        ({"intermediate_size": -1}, "intermediate_size"),
        ({"num_hidden_layers": 0}, "num_hidden_layers"),
        ({"num_hidden_layers": "2"}, "num_hidden_layers"),
        ({"num_hidden_layers": True}, "num_hidden_layers"),
        ({"head_dim": -8}, "head_dim"),
    ],
)
def test_bad_llama_config_names_the_field(change, field):
    cfg = {k: v for k, v in {**LLAMA_MINI, **change}.items() if v is not None}
    with pytest.raises(InputError) as exc:
        ModelSpec.from_hf_config(cfg)
    assert exc.value.field == field
    assert field in str(exc.value)


def test_bad_config_uses_the_configs_own_key_names():
    gpt2 = {"model_type": "gpt2", "n_layer": 2, "n_embd": 30, "n_head": 4, "n_positions": 8}
    with pytest.raises(InputError) as exc:
        ModelSpec.from_hf_config({**gpt2, "vocab_size": 10})
    assert exc.value.field == "n_head"  # 30 % 4 != 0
    with pytest.raises(InputError) as exc:
        ModelSpec.from_hf_config({**gpt2, "n_embd": -32, "vocab_size": 10})
    assert exc.value.field == "n_embd"
    with pytest.raises(InputError) as exc:
        ModelSpec.from_hf_config({**gpt2, "n_embd": 32})
    assert exc.value.field == "vocab_size"


def test_moe_bad_experts_per_token():
    cfg = {**LLAMA_MINI, "model_type": "mixtral", "num_local_experts": 4, "num_experts_per_tok": 5}
    with pytest.raises(InputError) as exc:
        ModelSpec.from_hf_config(cfg)
    assert exc.value.field == "num_experts_per_tok"


def test_bad_paths_and_names(tmp_path):
    with pytest.raises(InputError) as exc:
        load_model("gpt-5")
    assert exc.value.field == "model" and "llama2-70b" in exc.value.allowed
    with pytest.raises(InputError):
        ModelSpec.from_hf_config(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError):
        ModelSpec.from_hf_config(tmp_path / "bad.json")


def test_direct_construction_raises_input_error():
    with pytest.raises(InputError) as exc:
        tiny(num_key_value_heads=3)
    assert exc.value.field == "num_key_value_heads"
    with pytest.raises(InputError) as exc:
        tiny(vocab_size=-5)
    assert exc.value.field == "vocab_size"
    with pytest.raises(InputError) as exc:
        tiny(num_experts=4, num_experts_per_tok=0)
    assert exc.value.field == "num_experts_per_tok"
    with pytest.raises(InputError) as exc:
        tiny(unknown_field=1)
    assert exc.value.field == "unknown_field"
    with pytest.raises(InputError) as exc:
        tiny(position="learned")  # needs max_position_embeddings
    assert exc.value.field == "max_position_embeddings"


def test_bad_card_is_rejected(tmp_path):
    card = {"name": "x", "source": "s", "config": LLAMA_MINI, "paper_shape": None, "extra": 1}
    (tmp_path / "card.json").write_text(json.dumps(card))
    with pytest.raises(InputError) as exc:
        load_model(str(tmp_path / "card.json"))
    assert "extra" in exc.value.field


# ---------------------------------------------------------------------------- catalogue


def test_catalogue_names_and_cards():
    names = list_models()
    expected = set(PAPER_MODELS) | {
        "llama2-7b",
        "llama2-13b",
        "llama3-8b",
        "llama3-70b",
        "llama3.1-70b",
        "llama3.1-405b",
        "mixtral-8x7b",
        "falcon-180b",
        "opt-175b",
        "deepseek-v3",
        "qwen3-235b-a22b",
        "mixtral-8x22b",
        "gpt-oss-120b",
    }
    assert set(names) == expected
    folder = resources.files("chipletcloud").joinpath("data", "models")
    for name in names:
        card = json.loads(folder.joinpath(f"{name}.json").read_text(encoding="utf-8"))
        assert card["name"] == name
        assert set(card) - {"published"} == {"name", "source", "config", "paper_shape"}
        assert len(card["source"]) > 20  # a citation, not a placeholder
        m = load_model(name)
        assert m.name == name and m.source == card["source"]


def test_load_model_is_cached_and_frozen():
    m = load_model("gpt3")
    assert load_model("gpt3") is m
    with pytest.raises(ValueError):
        m.num_layers = 1  # type: ignore[misc]


# ---------------------------------------------------------------------------- properties

shapes = st.fixed_dictionaries(
    {
        "num_layers": st.integers(1, 64),
        "num_key_value_heads": st.integers(1, 8),
        "group": st.integers(1, 8),
        "head_dim": st.integers(1, 128),
        "ffn": st.integers(1, 4096),
        "vocab_size": st.integers(1, 200_000),
        "gated_mlp": st.booleans(),
        "tie": st.booleans(),
        "bias": st.booleans(),
        "norm": st.sampled_from(["layernorm", "rmsnorm"]),
        "position": st.sampled_from(["learned", "rotary", "alibi", "relative"]),
    }
)


def build(s: dict, **kw) -> ModelSpec:
    heads = s["num_key_value_heads"] * s["group"]
    data = dict(
        name="h",
        source="hypothesis",
        num_layers=s["num_layers"],
        hidden_size=heads * s["head_dim"],
        num_attention_heads=heads,
        num_key_value_heads=s["num_key_value_heads"],
        intermediate_size=s["ffn"],
        gated_mlp=s["gated_mlp"],
        vocab_size=s["vocab_size"],
        tie_word_embeddings=s["tie"],
        max_position_embeddings=2048,
        attention_bias=s["bias"],
        mlp_bias=s["bias"],
        norm=s["norm"],
        position=s["position"],
    )
    data.update(kw)
    return ModelSpec(**data)


@given(shapes, st.integers(1, 16))
def test_params_monotone_in_layers(s, extra):
    m = build(s)
    more = build(s, num_layers=s["num_layers"] + extra)
    assert more.params > m.params
    # Every layer adds the same count: params are affine in the number of layers.
    per_layer = build(s, num_layers=2).params - build(s, num_layers=1).params
    assert more.params - m.params == extra * per_layer


@given(shapes, st.integers(1, 64))
def test_params_monotone_in_hidden_size(s, extra):
    # Widen d by adding to the head dimension (heads fixed), so head_dim = d / heads stays exact.
    m = build(s)
    wider = build({**s, "head_dim": s["head_dim"] + extra})
    assert wider.hidden_size > m.hidden_size
    assert wider.params > m.params
    assert wider.params_12ld2 > m.params_12ld2


@given(shapes, st.integers(2, 8))
def test_kv_bytes_scale_with_kv_heads(s, factor):
    m = build(s)
    # Multiply the KV heads (same group size and head dim, so the query heads grow with them).
    s2 = {**s, "num_key_value_heads": s["num_key_value_heads"] * factor}
    more = build(s2)
    assert more.kv_bytes_per_token() == factor * m.kv_bytes_per_token()
    assert (
        m.kv_bytes_per_token(1.0) == 2 * s["num_layers"] * s["num_key_value_heads"] * s["head_dim"]
    )


@given(shapes)
def test_active_params_never_exceed_params(s):
    m = build(s, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=8)
    assert m.active_params < m.params
    assert m.params == m.active_params + 2 * m.num_layers * m._mlp_params(8)


def test_compressed_tensors_sparsity_config():
    # Hugging Face compressed-tensors: 2:4 structure -> the nm24 format at 50%; unstructured
    # bitmask -> its global_sparsity; an unknown format is refused with the key named
    base = {
        "model_type": "llama",
        "num_hidden_layers": 2,
        "hidden_size": 64,
        "num_attention_heads": 4,
        "intermediate_size": 128,
        "vocab_size": 100,
        "hidden_act": "silu",
    }
    s = ModelSpec.from_hf_config(
        {
            **base,
            "quantization_config": {
                "sparsity_config": {
                    "format": "sparse-24-bitmask",
                    "sparsity_structure": "2:4",
                    "global_sparsity": 0.4,
                }
            },
        }
    )
    assert (s.weight_sparsity, s.sparse_format) == (0.5, "nm24")
    s = ModelSpec.from_hf_config(
        {
            **base,
            "sparsity_config": {
                "format": "sparse-bitmask",
                "sparsity_structure": "unstructured",
                "global_sparsity": 0.6,
            },
        }
    )
    assert (s.weight_sparsity, s.sparse_format) == (0.6, "bitmask")
    assert ModelSpec.from_hf_config(base).weight_sparsity == 0.0
    with pytest.raises(InputError, match="sparsity_config.global_sparsity"):
        ModelSpec.from_hf_config(
            {**base, "sparsity_config": {"format": "sparse-bitmask", "global_sparsity": 1.5}}
        )


# issue 16: the 2025 families against their published counts (each card's "published" block, with
# its source and the unit its figures are rounded to)
@pytest.mark.parametrize(
    "name, attention",
    [
        ("deepseek-v3", "mla"),
        ("qwen3-235b-a22b", "gqa"),
        ("mixtral-8x22b", "gqa"),
        ("gpt-oss-120b", "hybrid"),
        ("mixtral-8x7b", "gqa"),
        ("llama3.1-405b", "gqa"),
    ],
)
def test_frontier_cards_match_published_counts(name, attention):
    from chipletcloud.models.catalogue import published

    m, pub = load_model(name), published(name)
    assert m.attention == attention

    def close(ours, theirs):  # within 1%, or within the rounding of the published figure
        return abs(ours - theirs) <= max(0.01 * theirs, pub.precision / 2)

    assert close(m.params, pub.params), (m.params, pub.params)
    active = m.active_params if pub.active_counts_embedding else m.active_params_without_embedding
    assert close(active, pub.active_params), (active, pub.active_params)


def test_latent_attention_kv_and_windows_by_hand():
    # DeepSeek-V3: one latent of 512 + 64 rope dims a token a layer, 61 layers, 2 bytes:
    # 61 x 576 x 2 = 70,272 B a token (against 61 x 2 x 128 x 128 x 2 = 3.9 MB for MHA)
    ds = load_model("deepseek-v3")
    assert ds.kv_bytes_per_token(2.0) == 61 * 576 * 2
    assert ds.kv_bytes(1000, 1.0) == 61 * 576 * 1000
    # gpt-oss-120b: 18 full and 18 sliding (128-token window) layers of 8 KV heads x 64 dims:
    # at 131,072 tokens, (18 x 131,072 + 18 x 128) x 2 x 8 x 64 x 2 bytes
    oss = load_model("gpt-oss-120b")
    assert oss.sliding_layers == 18 and oss.sliding_window == 128
    assert oss.kv_bytes(131072, 2.0) == (18 * 131072 + 18 * 128) * 2 * 8 * 64 * 2
    assert oss.kv_bytes(100, 2.0) == 36 * 100 * 2 * 8 * 64 * 2  # inside the window: all layers
    # the multi-token-prediction module is counted apart: 11.6B of its own, 13.5B with the
    # embedding and head it shares (DeepSeek states "14B", rounded; the hub's 685B less 671B)
    assert 11e9 < ds.mtp_params < 12e9
    assert 13e9 < ds.mtp_params + 2 * ds.embedding_params < 14.5e9


def test_inconsistent_frontier_configs_are_refused():
    base = json.loads(
        resources.files("chipletcloud").joinpath("data", "models", "gpt-oss-120b.json").read_text()
    )["config"]
    bad = {**base, "layer_types": base["layer_types"][:-1]}
    with pytest.raises(InputError) as e:
        ModelSpec.from_hf_config(bad)
    assert e.value.field == "layer_types"
    with pytest.raises(InputError) as e:
        ModelSpec.from_hf_config({**base, "num_experts_per_tok": 200})
    assert e.value.field == "num_experts_per_tok"
    with pytest.raises(InputError) as e:
        ModelSpec.from_hf_config({**base, "layer_types": ["windowed"] * 36})
    assert e.value.field == "layer_types"
    # zero experts with a top-k: an MoE config without experts (gpt-oss's key: num_local_experts)
    with pytest.raises(InputError, match="at least num_experts_per_tok .4. experts") as e:
        ModelSpec.from_hf_config({**base, "num_local_experts": 0})
    assert e.value.field == "num_local_experts"
    # attention kinds not modelled: refused in one line, not timed as full attention
    for key, value in (
        ("attention_type", "linear"),
        ("attention_chunk_size", 8192),  # Llama 4's chunked attention
        ("attention_types", [[["global", "local"], 18]]),  # GPT-Neo's local layers
    ):
        with pytest.raises(InputError) as e:
            ModelSpec.from_hf_config({**base, key: value})
        assert e.value.field == key and "\n" not in str(e.value)
    # a plain kind is accepted and counted as read (no ignored-key warning)
    assert ModelSpec.from_hf_config({**base, "attention_type": "full"}).num_layers == 36


def test_context_beyond_the_positions():
    # Llama-3.1-70B: 131,072 positions (HF config.json); P + G - 1 positions for a request
    spec = load_model("llama3.1-70b")
    spec.check_context(131_072 - 255, 256)
    with pytest.raises(InputError, match="at most 131073 tokens"):
        spec.check_context(131_072 - 254, 256)
    assert load_model("palm").max_position_embeddings is None  # RoPE, no table: no limit


def test_unused_config_keys_are_named(capsys):
    from chipletcloud.models.llm import IgnoredConfigKeys

    cfg = json.loads(
        resources.files("chipletcloud").joinpath("data", "models", "llama3-8b.json").read_text()
    )["config"]
    with pytest.warns(IgnoredConfigKeys) as rec:
        ModelSpec.from_hf_config({**cfg, "mystery_width": 7, "rope_theta": 5e5})
    assert rec[0].message.keys == ["mystery_width"]  # rope_theta: no shape, not reported
