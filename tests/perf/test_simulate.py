"""The inference simulator (numpy reference) against hand calculations and invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tiny import tiny_shape, tiny_system  # tests/perf/tiny.py

from chipletcloud.perf import formulas as fm
from chipletcloud.perf.analytic import collectives, layer_ops, memory_per_chip, simulate, stage_ops
from chipletcloud.perf.workload import Workload

WL = Workload(prompt_tokens=3, output_tokens=2)  # mean decode context 3 + 2/2 = 4


def test_hand_decode_tp2():
    # 2 chips, 1 server, pp=1 -> tp=2, one sequence. Per layer and chip (F 1e12, BW 1e11 B/s):
    #   QKV 4*12/2 = 24 weights: max(48 FLOP / F, 48 B / BW)          = 4.8e-10 s
    #   attention: 4 keys, 1 head/chip: max(4*2*1*4 / F, 2*4*2*1*2 B / BW)     = 3.2e-10 s
    #   out proj 16/2 = 8 weights: 16 B / BW                           = 1.6e-10 s
    #   MLP 128/2 = 64 weights: 128 B / BW                             = 1.28e-9 s
    #   softmax over 4 scores x 1 head, read + write 2 B: 16 B / BW     = 1.6e-10 s
    #   two norms, 1 x 4 x 2 B read + write each: 32 B / BW            = 3.2e-10 s
    #   activation, 1 x (128 / 4) / 2 x 2 B: 32 B / BW                 = 3.2e-10 s
    #   => 3.04e-9 s a layer, 6.08e-9 s for 2 layers
    #   all-reduce of 1 x 4 x 2 B on 2 chips: 2 (2-1) (8/2/1e10 + 1e-6) = 2.0008e-6 s, two a layer
    #   => 4 x 2.0008e-6 = 8.0032e-6 s; no stage transfer (pp = 1)
    sim = simulate(tiny_system(), tiny_shape(), WL, servers=1, pp=1, batch=1, micro_batch=1)
    assert sim["tp"] == 2
    assert sim["stage_decode_s"] == pytest.approx(6.08e-9 + 8.0032e-6, rel=1e-12)
    assert sim["tpot_s"] == pytest.approx(6.08e-9 + 8.0032e-6, rel=1e-12)


def test_hand_decode_pp2_two_microbatches():
    # pp=2 -> tp=1, one layer a stage; KV heads per chip 2 (no split)
    #   QKV 48 weights 96 B: 9.6e-10; attention 2*4*2*2*2 = 64 B: 6.4e-10 (64 FLOP: 6.4e-11)
    #   out 32 B: 3.2e-10; MLP 256 B: 2.56e-9; softmax 2 x 4 x 2 heads x 2 B = 32 B: 3.2e-10;
    #   norms 32 B: 3.2e-10; activation 1 x 32 x 2 B = 64 B: 6.4e-10  => 5.76e-9 s a layer
    #   stage transfer 8 B on the chip link: 8/1e10 + 1e-6 = 1.0008e-6 s
    #   batch 2 in 2 micro-batches of 1: tau = max(pp, n_mb) x T_s = 2 x 1.00656e-6
    sim = simulate(tiny_system(), tiny_shape(), WL, servers=1, pp=2, batch=2, micro_batch=1)
    assert sim["tp"] == 1
    assert sim["stage_decode_s"] == pytest.approx(5.76e-9 + 1.0008e-6, rel=1e-12)
    assert sim["tpot_s"] == pytest.approx(2 * (5.76e-9 + 1.0008e-6), rel=1e-12)
    # throughput: 2 sequences x 2 tokens over prefill + 1 decode step
    assert sim["throughput_tokens_per_s"] == pytest.approx(4 / (sim["prefill_s"] + sim["tpot_s"]))


def test_gqa_cuts_kv_traffic_and_capacity():
    sys_ = tiny_system()
    mha = layer_ops(sys_, tiny_shape(kv_heads=2), WL, tp=1, micro_batch=8, phase="decode")
    mqa = layer_ops(sys_, tiny_shape(kv_heads=1), WL, tp=1, micro_batch=8, phase="decode")
    assert mqa["attention_memory"] == pytest.approx(mha["attention_memory"] / 2)
    _, kv_mha = memory_per_chip(sys_, tiny_shape(kv_heads=2), WL, pp=1, tp=1, batch=8)
    _, kv_mqa = memory_per_chip(sys_, tiny_shape(kv_heads=1), WL, pp=1, tp=1, batch=8)
    assert kv_mqa == pytest.approx(kv_mha / 2)


def test_mqa_kv_is_replicated_across_the_tensor_group():
    # 1 KV head on tp=2 chips: each chip keeps (and reads) the whole head
    sys_ = tiny_system()
    _, kv_tp1 = memory_per_chip(sys_, tiny_shape(kv_heads=1), WL, pp=1, tp=1, batch=4)
    _, kv_tp2 = memory_per_chip(sys_, tiny_shape(kv_heads=1), WL, pp=1, tp=2, batch=4)
    assert kv_tp2 == pytest.approx(kv_tp1)


def test_prefill_attention_counts_causal_pairs():
    # prompt 3: 3 x 4 / 2 = 6 query-key pairs per head, not 3 (the authors' under-count)
    ops = stage_ops(
        tiny_system(), tiny_shape(), WL, servers=1, pp=1, tp=1, micro_batch=1, phase="prefill"
    )
    flops = 4 * 2 * 2 * 6 * 2  # 4 x head_dim x heads x pairs, 2 layers
    assert ops["attention_compute"] == pytest.approx(flops / 1e12)


def test_capacity_rejects_oversized_batch():
    sys_ = tiny_system(mem=1000.0)
    small = simulate(sys_, tiny_shape(), WL, servers=1, pp=1, batch=1, micro_batch=1)
    big = simulate(sys_, tiny_shape(), WL, servers=1, pp=1, batch=64, micro_batch=1)
    assert small["fits"] and not big["fits"]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 64), st.sampled_from([1, 2, 4, 8]), st.integers(1, 6))
def test_more_servers_never_reduce_capacity(servers, batch, extra):
    sys_ = tiny_system(chips_per_server=4.0)
    shape = tiny_shape(layers=4)
    tp1 = servers * 4 // 2
    tp2 = (servers + extra) * 4 // 2
    w1, kv1 = memory_per_chip(sys_, shape, WL, pp=2, tp=tp1, batch=batch)
    w2, kv2 = memory_per_chip(sys_, shape, WL, pp=2, tp=tp2, batch=batch)
    assert w2 + kv2 <= w1 + kv1 + 1e-12
    # and a larger batch never reduces KV demand
    _, kv3 = memory_per_chip(sys_, shape, WL, pp=2, tp=tp1, batch=batch * 2)
    assert kv3 >= kv1


def test_energy_counts_kv_reads_per_sequence():
    # doubling the batch at a fixed micro-batch doubles KV read energy (fixes the authors' defect)
    sys_ = tiny_system()
    a = simulate(sys_, tiny_shape(), WL, servers=1, pp=1, batch=1, micro_batch=1)
    b = simulate(sys_, tiny_shape(), WL, servers=1, pp=1, batch=2, micro_batch=1)
    assert b["energy_j_per_token"] > 0 and a["energy_j_per_token"] > 0
    assert np.isfinite(b["chip_power_w"])


def test_v1_latency_model_is_compute_only():
    sys_ = tiny_system()
    v1 = stage_ops(
        sys_,
        tiny_shape(),
        WL,
        servers=1,
        pp=1,
        tp=1,
        micro_batch=1,
        phase="decode",
        latency_model="v1",
    )
    # systolic side round(sqrt(1 TFLOPS / 2 x 1000)) = 22 (484 MACs); one row against the QKV
    # slice's 4 + 2 x 4 = 12 output columns keeps 12 of them busy
    qkv_flops = 2 * 48 * 2  # 2 layers
    assert v1["qkv"] == pytest.approx(qkv_flops / (1e12 * 12 / 484))
    assert v1["attention"] == 0.0


@pytest.mark.parametrize(
    ("tp", "pp", "servers", "ring", "hop"),
    [
        # tiny system: 2 chips a server, 10 GB/s chip links, 1 GB/s server link
        (1, 4, 2, 1e10, 1e10),  # two stages a server: chip links for both (v1 [A1] code)
        (2, 2, 2, 1e10, 1e9),  # a stage fills a server: its ring on chip links, the hop on 10 GbE
        (4, 1, 2, 1e9, 1e9),  # a group larger than a server: the server link for both
    ],
)
def test_v1_link_rule(tp, pp, servers, ring, hop):
    s = tiny_system()
    tp_bw, pp_bw = fm.v1_link_bandwidths(s.chips_per_server, s.chip_link_bw, s.server_link_bw, tp)
    assert (tp_bw.item(), pp_bw.item()) == (ring, hop)
    # and the v1 collectives use them: a ring of 2 (tp - 1) steps of 1 us, 1 MB
    ar, tx = collectives(s, 1e6, servers, tp, pp, latency_model="v1")
    want_ar = 2 * (tp - 1) / tp * 1e6 / ring + 2 * (tp - 1) * 1e-6
    assert ar.item() == pytest.approx(want_ar)
    assert tx.item() == pytest.approx(1e6 / hop + 1e-6 if pp > 1 else 0.0)


def test_v1_link_rule_is_kinder_than_the_default_to_stage_hops():
    # 2 servers, 2 stages each: the default charges the critical hop the server link (1 GB/s)
    _, tx = collectives(tiny_system(), 1e6, 2, 1, 4)
    _, tx1 = collectives(tiny_system(), 1e6, 2, 1, 4, latency_model="v1")
    assert tx.item() == pytest.approx(1e6 / 1e9 + 1e-6)
    assert tx1.item() == pytest.approx(1e6 / 1e10 + 1e-6)


def test_v1_utilisation_counts_only_the_timed_matmul_flops():
    # v1 ignores attention in time, so its FLOPs do not count towards the utilisation either.
    # Decode only, batch 1, one server of 2 chips (tp 2): each of the 2 generated tokens costs
    # 2 x 2 layers x (64 + 128) = 768 matmul FLOPs (tiny model), over a run of 2 / throughput
    # seconds on 2 chips of 1 TFLOP/s.
    wl = Workload(prompt_tokens=3, output_tokens=2, count_prefill=False)
    kw = dict(servers=1, pp=1, batch=1, micro_batch=1)
    v1 = simulate(tiny_system(), tiny_shape(), wl, latency_model="v1", **kw)
    run = 2 / float(v1["throughput_tokens_per_s"][0])
    assert float(v1["flop_utilisation"][0]) == pytest.approx(2 * 768 / (run * 2e12))
    iso = simulate(tiny_system(), tiny_shape(), wl, **kw)
    run_iso = 2 / float(iso["throughput_tokens_per_s"][0])
    # the default also counts attention: 4 x 2 layers x q 4 x mean context (3 + 1) per token
    att = 2 * 4 * 2 * 4 * 4
    assert float(iso["flop_utilisation"][0]) == pytest.approx((2 * 768 + att) / (run_iso * 2e12))
