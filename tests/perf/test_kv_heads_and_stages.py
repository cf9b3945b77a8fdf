"""Whole KV heads, KV heads split by sequence, balanced pipeline stages
(docs/inference-model.md#kv-heads, #balanced-stages): hand calculations on the tiny transformer
of tiny.py (d = 4, 2 heads of dim 2; 1 TFLOP/s, 100 GB/s, 10 GB/s chip links, 1 us a hop)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from tiny import tiny_shape, tiny_system  # tests/perf/tiny.py

from chipletcloud.config import SearchSpec
from chipletcloud.explore import software
from chipletcloud.perf import formulas as fm
from chipletcloud.perf.analytic import memory_per_chip, simulate, stage_ops
from chipletcloud.perf.workload import Workload

WL = Workload(prompt_tokens=3, output_tokens=2)  # mean decode context 4, full context 5


def one(x) -> float:
    return float(np.asarray(x).reshape(-1)[0])


@pytest.mark.parametrize(
    "heads,kv,tp,expect",
    [
        (232, 8, 29, 2),  # Falcon-180B: 8 heads a chip, groups of 29: a chip straddles two
        (64, 8, 16, 1),  # 4 heads a chip inside a group of 8
        (64, 8, 4, 2),  # 16 heads a chip: two whole groups
        (12, 4, 6, 2),  # 2 heads a chip, groups of 3: chip 1 holds heads 2, 3 (groups 0, 1)
        (48, 1, 8, 1),  # MQA: the one head
    ],
)
def test_whole_kv_heads(heads, kv, tp, expect):
    assert one(fm.chip_kv_heads(float(heads), float(kv), float(tp), 1.0)) == expect
    # without whole heads a chip holds the average share, kv / tp x the replication
    assert one(fm.chip_kv_heads(float(heads), float(kv), float(tp), 0.0)) == pytest.approx(
        one(fm.kv_heads_per_chip(float(heads), float(kv), float(tp)))
    )


def test_gcd():
    assert one(fm.gcd(232.0, 29.0)) == 29 and one(fm.gcd(8.0, 29.0)) == 1
    assert one(fm.gcd(832040.0, 514229.0)) == 1  # consecutive Fibonacci numbers


def test_split_kv_by_hand():
    # MQA (1 KV head), 2 chips a server, pp = 1 -> tp = 2; batch 4 in micro-batches of 2.
    # replicate: each chip holds the head for 4 sequences: 2 layers x 4 x 5 tokens x 2 x 2 x 2 B
    # = 320 B; split: r = floor(min(2, 2) / 1) = 2 chips share it, ceil(4 / 2) = 2 sequences
    # each: 160 B
    sys_, shape = tiny_system(), tiny_shape(kv_heads=1)
    _, kv_rep = memory_per_chip(sys_, shape, WL, pp=1, tp=2, batch=4)
    _, kv_split = memory_per_chip(sys_, shape, WL, pp=1, tp=2, batch=4, kv_split=1.0)
    assert (one(kv_rep), one(kv_split)) == (320.0, 160.0)
    # decode, micro-batch 2 at context 4, per layer: replicate reads 2 x 8 tokens x 2 x 1 x 2 B
    # = 64 B (6.4e-10 s); split reads its 1 sequence: 32 B (3.2e-10 s); softmax 2 x 8 pairs x
    # 2 B = 32 B either way (1 head x 2 sequences, or 2 heads x 1); attention FLOPs equal.
    # Two all-to-alls a layer of 2 rows x q / tp = 2 x 2 B = 8 B over the r = 2 chips of a
    # ring: (2 - 1) x 8 / 2 B / 1e10 + one hop 1e-6 s = 1.0004e-6 s each.
    kw = dict(servers=1, pp=1, tp=2, micro_batch=2, phase="decode")
    rep = stage_ops(sys_, shape, WL, **kw)
    split = stage_ops(sys_, shape, WL, kv_split=1.0, **kw)
    a2a = 1e-6 + 4e-10
    assert one(rep["attention"]) == pytest.approx(2 * (6.4e-10 + 3.2e-10), rel=1e-12)
    assert one(split["attention"]) == pytest.approx(2 * (3.2e-10 + 3.2e-10 + 2 * a2a), rel=1e-12)
    assert one(split["attention_compute"]) == pytest.approx(one(rep["attention_compute"]))
    # KV read energy: a replicated head is read by both chips, a split one by one
    a = simulate(sys_, shape, WL, servers=1, pp=1, batch=4, micro_batch=2)
    b = simulate(sys_, shape, WL, servers=1, pp=1, batch=4, micro_batch=2, kv_split=1.0)
    assert (one(a["kv_split_chips"]), one(b["kv_split_chips"])) == (1.0, 2.0)


def test_split_is_replicate_when_the_group_is_not_wider_than_the_kv_heads():
    # MHA (2 KV heads) on 2 chips: nothing to share, r = 1, the same point
    sys_, shape = tiny_system(), tiny_shape(kv_heads=2)
    kw = dict(servers=1, pp=1, batch=4, micro_batch=2)
    a, b = simulate(sys_, shape, WL, **kw), simulate(sys_, shape, WL, kv_split=1.0, **kw)
    assert one(b["kv_split_chips"]) == 1.0 and one(a["tpot_s"]) == one(b["tpot_s"])


@pytest.mark.parametrize(
    "layers,pp,e,expect",
    [
        (96, 12, 0.34, (8, 8)),  # GPT-3 true shape's LM head: 0.34 of a layer; 12 divides 96
        (96, 13, 0.34, (8, 0)),  # one more stage: the LM head alone on the last
        (96, 14, 0.34, (7, 5)),  # pp need not divide L: max(7, 96 - 91 + 0.34)
        (118, 2, 1.05, (60, 58)),  # PaLM-like: max(60, 58 + 1.05) < max(59, 59 + 1.05)
        (118, 1, 1.05, (118, 118)),  # one stage holds everything
    ],
)
def test_balanced_stage_layers(layers, pp, e, expect):
    got = fm.balanced_stage_layers(float(layers), float(pp), 1.0, e, 1.0)
    assert tuple(one(x) for x in got) == expect
    # off: every stage L / pp, the LM head on a full last stage
    even = fm.balanced_stage_layers(float(layers), float(pp), 1.0, e, 0.0)
    assert one(even[0]) == one(even[1]) == one(fm.stage_layers(float(layers), float(pp), 1.0))


def _with_head():
    """Tiny, 4 layers, with an LM head of 384 weights (2 layers' worth: a layer reads 64
    attention + 128 MLP) and an untied embedding of 384."""
    return dataclasses.replace(
        tiny_shape(layers=4), head_params=768.0, head_matmul_params=384.0, embed_params=384.0
    )


def test_balanced_stages_by_hand():
    # pp = 2 stages of tp = 1 chip (a server of 2 chips). A decode layer takes 5.76e-9 s
    # (tests/perf/test_simulate.py::test_hand_decode_pp2_two_microbatches); the LM head for one
    # sequence reads 384 x 2 B: 7.68e-9 s; the stage transfer 1.0008e-6 s.
    # even: 2 layers + the head on the last = 1.92e-8 s; balanced (e = 2): k = 3, last 1:
    # max(3 x 5.76e-9, 5.76e-9 + 7.68e-9) = 1.728e-8 s
    shape, sys_ = _with_head(), tiny_system()
    assert shape.head_layers == 2.0
    bal = dataclasses.replace(WL, balance_stages=True)
    kw = dict(servers=1, pp=2, tp=1, micro_batch=1, phase="decode")
    even = stage_ops(sys_, shape, WL, **kw)
    balanced = stage_ops(sys_, shape, bal, **kw)
    assert one(even["stage"]) == pytest.approx(2 * 5.76e-9 + 7.68e-9 + 1.0008e-6, rel=1e-12)
    assert one(balanced["stage"]) == pytest.approx(3 * 5.76e-9 + 1.0008e-6, rel=1e-12)
    assert one(balanced["layers"]) == 3 and one(balanced["lm_head"]) == 0.0
    # memory (2 B a weight): even, a full stage + the LM head: (2 x 192 + 384) x 2 = 1536 B;
    # balanced, the busiest is the first: (3 x 192 + 384 embedding) x 2 = 1920 B (the last:
    # (192 + 384) x 2 = 1152 B); KV 3 layers x 1 sequence x 5 tokens x 2 x 2 x 2 heads x 2 B
    w_even, kv_even = memory_per_chip(sys_, shape, WL, pp=2, tp=1, batch=1)
    w_bal, kv_bal = memory_per_chip(sys_, shape, bal, pp=2, tp=1, batch=1)
    assert (one(w_even), one(kv_even)) == (1536.0, 2 * 80.0)
    assert (one(w_bal), one(kv_bal)) == (1920.0, 3 * 80.0)


def test_balanced_grid_and_kv_modes():
    # L = 4, e = 2: divisors 1, 2, 4, every ceil(4 / k) and ceil(6 / k) up to L + 1 = 5
    shape = _with_head()
    grid = software.mapping_grid(shape, SearchSpec(balance_stages=True, kv_modes=["replicate"]))
    assert grid.pp.tolist() == [1, 2, 3, 4]
    # a model sharing KV heads gets each pipeline degree once per mode; MHA once
    mqa = dataclasses.replace(shape, kv_heads=1)
    grid = software.mapping_grid(mqa, SearchSpec())
    assert grid.pp.tolist() == [1, 1, 2, 2, 4, 4] and grid.kv_split.tolist() == [0, 1] * 3
    assert software.mapping_grid(shape, SearchSpec()).kv_split.tolist() == [0, 0, 0]
    j = np.arange(grid.size)
    expect = np.tile(np.repeat([0, 1] * 3, len(grid.pair_batch)), len(grid.multipliers))
    assert grid.split_of(j).tolist() == expect.tolist()
