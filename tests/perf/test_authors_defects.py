"""The authors' model defects as switches (config.Choices, docs/inference-model.md#defects-of-the-
authors-model-fixed-here): each against a hand calculation on the tiny transformer of tiny.py
(d = 4, 2 heads of dim 2, 2 layers; 1 TFLOP/s, 100 GB/s, 1e-12 J a byte read)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from tiny import tiny_shape, tiny_system  # tests/perf/tiny.py

from chipletcloud.perf.analytic import layer_ops, memory_per_chip, simulate, stage_ops
from chipletcloud.perf.workload import Workload

WL = Workload(prompt_tokens=3, output_tokens=2)  # mean decode context 3 + 2/2 = 4


def one(x) -> float:
    """The value of a one-design result."""
    return float(np.asarray(x).reshape(-1)[0])


def _dynamic_energy(sim, batch, gen=2, static_w=0.5):
    """Joules of the run without the static part: energy a token x B G - chips x W x run (the
    run is prefill + (G - 1) decode steps; docs/inference-model.md#energy)."""
    run = sim["prefill_s"] + (gen - 1) * sim["tpot_s"]
    return one(sim["energy_j_per_token"] * batch * gen - sim["chips"] * static_w * run)


def test_gqa_kv_reads_per_query_head():
    # MQA (1 KV head), tp = 1, decode micro-batch 8 at context 4: 32 KV tokens read.
    # per KV head: 2 (K, V) x 32 x head dim 2 x 1 head x 2 B = 256 B -> 256 / 1e11 = 2.56e-9 s
    # per query head (the authors): 2 heads read -> 512 B -> 5.12e-9 s; capacity unchanged
    sys_, shape = tiny_system(), tiny_shape(kv_heads=1)
    authors = dataclasses.replace(WL, kv_reads_per_query_head=True)
    fixed = layer_ops(sys_, shape, WL, tp=1, micro_batch=8, phase="decode")
    defect = layer_ops(sys_, shape, authors, tp=1, micro_batch=8, phase="decode")
    assert one(fixed["attention_memory"]) == pytest.approx(2.56e-9, rel=1e-12)
    assert one(defect["attention_memory"]) == pytest.approx(5.12e-9, rel=1e-12)
    got = memory_per_chip(sys_, shape, authors, pp=1, tp=1, batch=8)
    ref = memory_per_chip(sys_, shape, WL, pp=1, tp=1, batch=8)
    assert [one(x) for x in got] == [one(x) for x in ref]
    # energy, one chip: one sequence reads its KV over the prefill (3 tokens) and one decode
    # step (4): (3 + 4) x 2 layers x 2 x head dim 2 x 2 B = 112 B a KV head, 112e-12 J; per
    # query head twice that. (On tp = 2 chips the MQA head is replicated: both read 2 heads.)
    sys1 = tiny_system(chips_per_server=1.0)
    a = simulate(sys1, shape, WL, servers=1, pp=1, batch=1, micro_batch=1)
    b = simulate(sys1, shape, authors, servers=1, pp=1, batch=1, micro_batch=1)
    assert _dynamic_energy(b, 1) - _dynamic_energy(a, 1) == pytest.approx(112e-12, rel=1e-9)


def test_kv_read_energy_per_micro_batch():
    # batch 4 in micro-batches of 2, MHA: KV reads of the run are 4 sequences x 112 B x 2 heads
    # = 896 B (896e-12 J); the authors charge one sequence a micro-batch: half, 448e-12 J less.
    # Times are unchanged.
    sys_, shape = tiny_system(), tiny_shape()
    authors = dataclasses.replace(WL, kv_read_energy_per_micro_batch=True)
    a = simulate(sys_, shape, WL, servers=1, pp=1, batch=4, micro_batch=2)
    b = simulate(sys_, shape, authors, servers=1, pp=1, batch=4, micro_batch=2)  # tp = 2
    assert one(b["tpot_s"]) == one(a["tpot_s"])
    assert _dynamic_energy(a, 4) - _dynamic_energy(b, 4) == pytest.approx(448e-12, rel=1e-9)


def test_prefill_attention_flops_authors():
    # prompt 3: causal 3 x 4 / 2 = 6 query-key pairs a head; the authors' count 6 / 3 = 2.
    # attention FLOPs = 4 x head dim 2 x 2 heads x pairs x 2 layers: 192 vs 64 (/ 1e12 FLOP/s)
    kw = dict(servers=1, pp=1, tp=1, micro_batch=1, phase="prefill")
    fixed = stage_ops(tiny_system(), tiny_shape(), WL, **kw)
    authors = dataclasses.replace(WL, prefill_attention_authors=True)
    defect = stage_ops(tiny_system(), tiny_shape(), authors, **kw)
    assert one(fixed["attention_compute"]) == pytest.approx(192 / 1e12, rel=1e-12)
    assert one(defect["attention_compute"]) == pytest.approx(64 / 1e12, rel=1e-12)


def test_attention_efficiency_slows_attention_only():
    # attn_eff 0.5: attention's FLOP/s are half the matmuls'; prefill attention of 192 FLOPs at
    # 1e12 x 0.5 -> 3.84e-10 s; the QKV projection keeps 1e12 (2 x 3 rows x 48 weights / 1e12)
    sys_ = dataclasses.replace(tiny_system(), attn_eff=0.5)
    ops = stage_ops(sys_, tiny_shape(), WL, servers=1, pp=1, tp=1, micro_batch=1, phase="prefill")
    assert one(ops["attention_compute"]) == pytest.approx(384 / 1e12, rel=1e-12)
    assert one(ops["qkv_compute"]) == pytest.approx(2 * 2 * 3 * 48 / 1e12, rel=1e-12)
