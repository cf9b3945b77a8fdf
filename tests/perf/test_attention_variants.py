"""Latent attention and sliding windows in the inference model: KV bytes, attention FLOPs and
contexts against hand counts and the model card's own (independent) KV count."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chipletcloud.models.catalogue import load_model
from chipletcloud.perf import formulas as fm
from chipletcloud.perf.analytic import layer_ops, memory_per_chip
from chipletcloud.perf.workload import LayerShape, System, Workload


@given(st.integers(1, 3000), st.integers(1, 5000), st.sampled_from([0.0, 0.5, 1.0]))
def test_windowed_prefill_pairs_count_every_query(prompt, window, share):
    # query t (1-based) attends min(t, W) keys in a windowed layer, t in a full one
    t = np.arange(1, prompt + 1)
    brute = (1 - share) * t.sum() + share * np.minimum(t, window).sum()
    assert fm.windowed_prefill_pairs(float(prompt), 0.0, float(window), share) == pytest.approx(
        brute, rel=1e-12
    )


@given(st.integers(0, 5000), st.integers(1, 5000), st.integers(1, 8000))
def test_windowed_decode_context_is_the_mean_over_the_request(prompt, gen, window):
    # the mean of min(prompt + t, W) for t uniform on [0, gen], by the midpoint rule
    t = (np.arange(20_000) + 0.5) / 20_000 * gen
    brute = np.minimum(prompt + t, window).mean()
    got = fm.windowed_mean_decode_context(float(prompt), float(gen), float(window), 1.0)
    assert got == pytest.approx(brute, rel=1e-4, abs=1e-6)
    # no window: prompt + gen / 2, the mean context of docs/inference-model.md
    full = fm.windowed_mean_decode_context(float(prompt), float(gen), np.inf, 0.0)
    assert full == pytest.approx(prompt + gen / 2)
    assert got <= full + 1e-9


def _system(n=1):
    return System.broadcast(
        flops=1e15,
        mem_bytes=1e12,
        mem_bw=1e12,
        chip_link_bw=1e11,
        server_link_bw=1e10,
        chips_per_server=8,
        hop_latency_s=1e-6,
        fma_j=1e-12,
        mem_j_per_byte=1e-12,
        act_j_per_byte=1e-12,
        static_w_per_chip=1.0,
        flops_eff=1.0,
        mem_eff=1.0,
        op_overhead_s=0.0,
    )


def test_deepseek_v3_latent_kv_and_absorbed_decode():
    # DeepSeek-V2 (arXiv 2405.04434) section 2.1.2: MLA caches (d_c + d_h^R) = 512 + 64 values a
    # token a layer, one latent for all 128 heads; DeepSeek-V3 has 61 layers (arXiv 2412.19437)
    spec = load_model("deepseek-v3")
    shape = LayerShape.from_spec(spec)
    assert shape.kv_heads == 1 and shape.kv_values == 576
    assert shape.num_layers * shape.kv_values * 2 == 70_272  # bytes a token at 16 bits
    # the shape's KV bytes equal the model card's own count (models/llm.py, another formula)
    wl = Workload(prompt_tokens=4000, output_tokens=96, kv_in_capacity=True)
    _, kv = memory_per_chip(_system(), shape, wl, pp=1.0, tp=1.0, batch=3.0)
    assert kv == pytest.approx(3 * spec.kv_bytes(4096, 2.0), rel=1e-12)
    # decode attention, absorbed: Q.K over latent + rope (576), A.V over the latent (512),
    # for 128 heads and every cached token: 2 x 1088 x 128 FLOPs a key
    ops = layer_ops(_system(), shape, wl, tp=1.0, micro_batch=1.0, phase="decode")
    ctx = 4000 + 96 / 2
    assert ops["attention_compute"] == pytest.approx(2 * 1088 * 128 * ctx / 1e15, rel=1e-12)
    assert ops["attention_memory"] == pytest.approx(ctx * 576 * 2 / 1e12, rel=1e-12)
    # prefill expands the latent per head: (nope 128 + rope 64) + v 128 = 320
    pre = layer_ops(_system(), shape, wl, tp=1.0, micro_batch=1.0, phase="prefill")
    pairs = 4000 * 4001 / 2
    assert pre["attention_compute"] == pytest.approx(2 * 320 * 128 * pairs / 1e15, rel=1e-12)
    # the output projection is heads x v_head_dim wide: 128 x 128 x 7168 weights
    assert shape.o_params == 128 * 128 * 7168
    assert pre["out_proj_compute"] == pytest.approx(2 * 4000 * 128 * 128 * 7168 / 1e15)


def test_gpt_oss_windows_hold_only_their_window():
    # gpt-oss-120b (OpenAI model card, 2025): 36 layers alternating a 128-token window and full
    # attention, 8 KV heads of 64 dims
    spec = load_model("gpt-oss-120b")
    shape = LayerShape.from_spec(spec)
    assert shape.window_share == pytest.approx(0.5) and shape.window_tokens == 128
    for context in (100, 2048, 131_072):
        wl = Workload(prompt_tokens=context - 1, output_tokens=1)
        _, kv = memory_per_chip(_system(), shape, wl, pp=1.0, tp=1.0, batch=1.0)
        # by hand: 18 full layers hold the context, 18 windowed ones min(context, 128)
        hand = (18 * context + 18 * min(context, 128)) * 8 * 64 * 2 * 2
        assert kv == pytest.approx(hand, rel=1e-12)
        assert kv == pytest.approx(spec.kv_bytes(context, 2.0), rel=1e-12)
    # decode at a long context reads about half the KV of the same model without windows
    wl = Workload(prompt_tokens=65_536, output_tokens=2)
    full = LayerShape.from_spec(spec.model_copy(update={"sliding_window": None}))
    a = layer_ops(_system(), shape, wl, tp=1.0, micro_batch=1.0, phase="decode")
    b = layer_ops(_system(), full, wl, tp=1.0, micro_batch=1.0, phase="decode")
    assert a["attention_memory"] / b["attention_memory"] == pytest.approx(
        (65_537 + 128) / (2 * 65_537), rel=1e-6
    )
