"""The GPU/TPU mapping grid of compare.py (docs/baselines.md#baseline-mapping-search): every
divisor of the layers as a pipeline depth, whole heads a device, devices = tp x pp within the
memory range; checked against hand counts, the old power-of-two grid and random shapes."""

from __future__ import annotations

import functools
import math
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chipletcloud.baselines import compare
from chipletcloud.baselines.devices import load_device, load_prices
from chipletcloud.config import resolve
from chipletcloud.explore import software
from chipletcloud.models.catalogue import load_model
from chipletcloud.perf.workload import Workload

BATCHES = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]  # the isca24 preset's batch sizes
WL = Workload(128, 256, weight_bytes=2.0, kv_bytes=2.0, act_bytes=2.0)
PAPER_MODELS = ("gpt2", "megatron", "gpt3", "gopher", "mtnlg", "bloom", "palm", "llama2-70b")
DEVICES = ("a100-80gb", "h100-sxm", "tpu-v4")


@functools.cache
def _shape(name):
    """The paper shape, no embeddings (the shape `chipletcloud compare` simulates under the
    authors' switches; isca24 now simulates the real shapes)."""
    return software.model_shape(load_model(name), resolve("authors").preset.workload)


def _rows(card, shape, whole_heads=True):
    n, tp, pp, b, m = compare._grid(card, shape, WL, BATCHES, whole_heads)
    return [tuple(int(x) for x in r) for r in zip(n, tp, pp, b, m, strict=True)]


def _old_pairs(card, shape):
    """The (tp, pp) pairs of the grid before this change: n = n_min x 2^k (k < 5, n_min the
    power-of-two memory minimum), tp a power of two <= n, pp = n / tp dividing the layers."""
    need = shape.weight_params * WL.weight_storage_bytes / card.value("hbm_bytes")
    n_min = 2 ** max(0, math.ceil(math.log2(max(need / 0.9, 1.0))))
    out = set()
    for n in (n_min * 2**k for k in range(5)):
        tp = 1
        while tp <= n:
            if shape.num_layers % (n // tp) == 0:
                out.add((tp, n // tp))
            tp *= 2
    return out


def _is_pow2(t):
    return t >= 1 and t & (t - 1) == 0


def test_tensor_degrees_by_hand():
    # MT-NLG, 128 heads on 8-GPU NVSwitch islands: powers of two to 8, then 16..128 (all
    # multiples of 8 dividing 128), capped at the device range's top of 256.
    assert compare.tensor_degrees(128, 8, 256) == [1, 2, 4, 8, 16, 32, 64, 128]
    # GPT-3, 96 heads = 2^5 x 3: the multiples of 8 dividing 96 add 24, 48 and 96; 3, 6 and 12
    # divide 96 but are neither powers of two nor whole islands.
    assert compare.tensor_degrees(96, 8, 128) == [1, 2, 4, 8, 16, 24, 32, 48, 96]
    # BLOOM, 112 heads = 2^4 x 7: 56 and 112 span 7 and 14 islands; 32 and 64 do not divide 112.
    assert compare.tensor_degrees(112, 8, 128) == [1, 2, 4, 8, 16, 56, 112]
    # GPT-2 1.5B, 25 heads: only tp = 1 gives whole heads on a power of two.
    assert compare.tensor_degrees(25, 8, 16) == [1]
    # PaLM, 48 heads on a TPU v4 pod (domain 4096): powers of two dividing 48 -> up to 16.
    assert compare.tensor_degrees(48, 4096, 512) == [1, 2, 4, 8, 16]
    # without whole heads: every power of two up to the limit, as the old grid had
    assert compare.tensor_degrees(48, 4096, 512, whole_heads=False) == [2**k for k in range(10)]


def test_device_range_mtnlg_a100():
    shape = _shape("mtnlg")
    # paper shape: 12 L d^2 = 12 x 105 x 20480^2 = 528,482,304,000 parameters (a layer's norms
    # and biases, a few d each, add under 0.01%)
    assert shape.weight_params == pytest.approx(12 * 105 * 20480**2, rel=1e-3)
    # x 2 B = 1,056.96 GB over 80 GiB (85.90 GB) = 12.30 A100s -> lo 13; / 0.9 = 13.67 -> 16;
    # hi = 16 x 16
    assert compare.device_range(load_device("a100-80gb"), shape, WL) == (13, 256)


def test_mtnlg_grid_has_every_pipeline_divisor():
    card, shape = load_device("a100-80gb"), _shape("mtnlg")
    rows = _rows(card, shape)
    pairs = {(tp, pp) for _, tp, pp, _, _ in rows}
    # 105 = 3 x 5 x 7: eight divisors; the old grid only had pp = 1
    assert {pp for _, pp in pairs} == {1, 3, 5, 7, 15, 21, 35, 105}
    # by hand, tp in {1, 2, ..., 128} with 14 <= tp x pp <= 256:
    expected = {
        1: [16, 32, 64, 128],  # 16..128 (tp <= 128 heads)
        3: [8, 16, 32, 64],  # 24..192
        5: [4, 8, 16, 32],  # 20..160
        7: [2, 4, 8, 16, 32],  # 14..224
        15: [1, 2, 4, 8, 16],  # 15..240
        21: [1, 2, 4, 8],  # 21..168 (16 x 21 = 336 > 256)
        35: [1, 2, 4],  # 35..140
        105: [1, 2],  # 105, 210
    }
    assert pairs == {(tp, pp) for pp, tps in expected.items() for tp in tps}
    # micro-batches halve from the batch while batch / micro <= 2 pp: for batch 2^k that is
    # min(k, floor(log2 2pp)) + 1 micro-batch sizes (pp = 1, batch 1024: 1024 and 512)
    assert {m for _, tp, pp, b, m in rows if (tp, pp, b) == (16, 1, 1024)} == {1024, 512}
    assert {m for _, tp, pp, b, m in rows if (tp, pp, b) == (8, 7, 1024)} == {
        1024 >> j
        for j in range(4)  # 2^3 = 8 <= 14 < 16 micro-batches
    }
    per_pair = {
        pp: sum(min(k, int(math.log2(2 * pp))) + 1 for k in range(len(BATCHES))) for pp in expected
    }
    assert len(rows) == sum(per_pair[pp] * len(tps) for pp, tps in expected.items()) == 1263


@pytest.mark.parametrize("model", PAPER_MODELS)
def test_paper_models_grid_invariants_and_old_points_kept(model):
    shape = _shape(model)
    for name in DEVICES:
        card = load_device(name)
        rows = _rows(card, shape)
        lo, hi = compare.device_range(card, shape, WL)
        assert 0 < len(rows) < 2500  # bounded: GPT-3 on A100 is the largest with 2,006
        assert len(set(rows)) == len(rows)
        for n, tp, pp, b, m in rows:
            assert shape.num_layers % pp == 0 and shape.heads % tp == 0
            assert n == tp * pp and lo <= n <= hi
            assert b % m == 0 and b // m <= 2 * pp
        pairs = {(tp, pp) for _, tp, pp, _, _ in rows}
        # every old point whose tensor degree gives whole heads is still searched
        assert {(t, p) for t, p in _old_pairs(card, shape) if shape.heads % t == 0} <= pairs


def test_mtnlg_rented_a100_uses_a_pipeline():
    params = resolve("isca24")
    wl = software.workload(params.preset.workload)
    card, shape = load_device("a100-80gb"), _shape("mtnlg")
    usd_s = load_prices("a100-80gb").rented_usd_per_device_hour() / 3600.0  # $1.10 an hour
    pts = compare.baseline_search(card, shape, wl, params.preset.search.batch_sizes)
    best = compare.best_mapping(pts, usd_s)
    # 105 layers left the old grid pp = 1 only (tp = n = 16..256; whole heads drop 256): its
    # best is 32 GPUs as one tensor group, $5.91 per million tokens on the calibrated A100 and
    # TensorRT-LLM cards (issue 14; $6.38 before)
    old = pts["pp"] == 1
    before = compare.best_mapping({k: v[old] for k, v in pts.items()}, usd_s)
    assert (before["devices"], before["tp"], before["pp"]) == (32, 32, 1)
    assert before["usd_per_million_tokens"] == pytest.approx(5.91, rel=0.02)
    # every divisor: 40 GPUs, 5 stages of one 8-GPU NVSwitch island each (tp 8), batch 512 in 4
    # micro-batches of 128 (a full pipeline needs >= 5; 4 keeps each micro-batch large), about
    # 2,565 tokens/s: 40 x $1.10 / 3600 s = $0.012222 a second / 2,565 tokens/s = $4.765 per
    # million tokens
    assert best["pp"] > 1
    assert (best["devices"], best["tp"], best["pp"]) == (40, 8, 5)
    assert (best["batch"], best["micro_batch"]) == (512, 128)
    by_hand = 40 * 1.10 / 3600.0 / best["throughput_tokens_per_s"] * 1e6
    assert best["usd_per_million_tokens"] == pytest.approx(by_hand, rel=1e-9)
    assert best["usd_per_million_tokens"] == pytest.approx(4.765, rel=0.02)
    assert best["usd_per_million_tokens"] <= before["usd_per_million_tokens"]


def test_empty_grid_gives_no_mapping():
    # 1 layer, 1 head, 8 TB of weights on 80 GiB A100s: lo = 94 devices, but tp = pp = 1
    card = load_device("a100-80gb")
    shape = replace(_shape("gpt2"), num_layers=1, heads=1, attn_params=4e12, mlp_params_stored=0.0)
    assert compare.device_range(card, shape, WL)[0] >= 94
    pts = compare.baseline_search(card, shape, WL, BATCHES)
    assert all(len(v) == 0 for v in pts.values())
    assert compare.best_mapping(pts, 1.0) is None


@settings(max_examples=150, deadline=None)
@given(
    layers=st.integers(1, 200),
    heads=st.integers(1, 160),
    domain=st.sampled_from([1, 4, 8, 16, 64, 4096]),
    weights_gb=st.floats(0.5, 5000.0),
    whole_heads=st.booleans(),
)
def test_grid_invariants_hold_for_random_shapes(layers, heads, domain, weights_gb, whole_heads):
    card = load_device("a100-80gb").model_copy(update={"scale_up_domain": domain})
    per_layer = weights_gb * 1e9 / 2.0 / layers  # parameters a layer, 2 B each
    shape = replace(
        _shape("gpt2"),
        num_layers=layers,
        heads=heads,
        attn_params=per_layer,
        mlp_params_stored=0.0,
        head_params=0.0,
    )
    lo, hi = compare.device_range(card, shape, WL)
    need = shape.weight_params * 2.0 / card.value("hbm_bytes")  # ~ weights_gb / 85.9 GB
    assert lo == max(1, math.ceil(need - 1e-9)) and lo <= hi / compare.MAX_DEVICES_FACTOR
    assert _is_pow2(hi // compare.MAX_DEVICES_FACTOR)
    rows = _rows(card, shape, whole_heads)
    assert len(set(rows)) == len(rows)
    for n, tp, pp, b, m in rows:
        assert layers % pp == 0 and n == tp * pp and lo <= n <= hi
        assert (tp <= domain and _is_pow2(tp)) or (tp > domain and tp % domain == 0)
        assert heads % tp == 0 if whole_heads else _is_pow2(tp)
        assert b in BATCHES and b % m == 0 and b // m <= 2 * pp
    # complete: every admissible (tp, pp) appears, with every batch
    cand = [t for t in range(1, hi + 1) if (heads % t == 0 if whole_heads else _is_pow2(t))]
    tps = [t for t in cand if (t <= domain and _is_pow2(t)) or (t > domain and t % domain == 0)]
    assert compare.tensor_degrees(heads, domain, hi, whole_heads) == tps
    want = {(t, p) for p in range(1, layers + 1) if layers % p == 0 for t in tps}
    want = {(t, p) for t, p in want if lo <= t * p <= hi}
    assert {(tp, pp) for _, tp, pp, _, _ in rows} == want
    for t, p in want:
        assert {b for _, tp, pp, b, _ in rows if (tp, pp) == (t, p)} == set(BATCHES)
    # whole heads only removes tensor degrees that split a head (on power-of-two domains the
    # old tensor degrees are exactly the powers of two)
    if whole_heads and _is_pow2(domain):
        free = {(tp, pp) for _, tp, pp, _, _ in _rows(card, shape, False)}
        assert {(t, p) for t, p in free if heads % t == 0} <= want
