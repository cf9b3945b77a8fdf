"""The event-level simulation (perf/des.py) against the analytic model and hand calculations."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from tiny import tiny_shape, tiny_system  # tests/perf/tiny.py

from chipletcloud.perf import des
from chipletcloud.perf.analytic import simulate, stage_ops
from chipletcloud.perf.workload import System, Workload


def analytic_at(system, shape, wl, context, **kw):
    """The analytic tau at an explicit decode context (a workload whose mean context is it)."""
    wl_c = replace(wl, prompt_tokens=context - 0.5, output_tokens=1)  # mean = prompt + 1/2
    return float(simulate(system, shape, wl_c, **kw)["tpot_s"][0])


@pytest.fixture
def naive_links(monkeypatch):
    """The analytic model's link rule before it learnt from this simulation about groups that
    straddle servers (chip link whenever tp <= chips per server): these tests isolate what the
    event-level model adds on its own."""
    import chipletcloud.perf.analytic as sim_mod

    def links(system, servers, tp, pp=1, latency_model="isca24"):
        tp = np.asarray(tp, float)
        server = np.minimum(system.chip_link_bw, system.server_link_bw)
        tp_bw = np.where(tp <= system.chips_per_server, system.chip_link_bw, server)
        pp_bw = np.where(np.asarray(servers) > 1, server, system.chip_link_bw)
        return tp_bw, pp_bw

    monkeypatch.setattr(sim_mod, "links", links)


def kw_one():
    return dict(servers=1, pp=1, batch=1, micro_batch=1)


def des_mean_context(wl):
    # the decode steps producing tokens 2..g attend prompt + 1 .. prompt + g - 1 keys
    return wl.prompt_tokens + wl.output_tokens / 2.0


# ------------------------------------------------------------------------------------------------
# exact agreement without contention


@pytest.mark.parametrize("overlap", [True, False])
def test_pp1_equals_the_analytic_model(overlap):
    # 1 server of 2 chips, pp=1 -> tp=2, 2 micro-batches: no transfers, no shared ports
    sys_, shape = tiny_system(), tiny_shape()
    kw = dict(servers=1, pp=1, batch=2, micro_batch=1)
    wl1 = Workload(prompt_tokens=3, output_tokens=1)
    ana = simulate(sys_, shape, wl1, **kw)
    r = des.simulate_des(sys_, shape, wl1, overlap_transfers=overlap, **kw)
    assert r.prefill_s == pytest.approx(float(ana["prefill_s"][0]), rel=1e-12)
    assert r.throughput_tokens_per_s == pytest.approx(
        float(ana["throughput_tokens_per_s"][0]), rel=1e-12
    )
    assert math.isnan(r.tpot_s) and r.decode_steps == 0
    # with decode steps: tau equals the analytic one at the same mean context
    wl = Workload(prompt_tokens=3, output_tokens=6)
    r = des.simulate_des(sys_, shape, wl, overlap_transfers=overlap, **kw)
    assert r.exact
    assert r.prefill_s == pytest.approx(float(simulate(sys_, shape, wl, **kw)["prefill_s"][0]))
    assert r.tpot_s == pytest.approx(
        analytic_at(sys_, shape, wl, des_mean_context(wl), **kw), 1e-12
    )


@pytest.mark.parametrize("overlap", [True, False])
def test_pp2_two_microbatches_by_hand(overlap):
    # 1 server of 2 chips, pp=2 -> tp=1 (no all-reduce), 2 micro-batches of 1, chip links only.
    # Decode: each micro-batch cycles stage 0, transfer, stage 1, transfer back: tau = 2 (C + X),
    # exactly the analytic max(pp, n_mb) T_s (one decode step: a single context).
    sys_, shape = tiny_system(), tiny_shape()
    wl = Workload(prompt_tokens=3, output_tokens=2)
    kw = dict(servers=1, pp=2, batch=2, micro_batch=1)
    r = des.simulate_des(sys_, shape, wl, overlap_transfers=overlap, **kw)
    tau = analytic_at(sys_, shape, wl, des_mean_context(wl), **kw)
    assert r.tpot_s == pytest.approx(tau, rel=1e-12)
    # Prefill, by hand: C = prefill compute of a stage, X = its transfer (3 rows), x = the return
    # of one token (1 row). Serial: mb0 s0 [0, C+X], s1 [C+X, 2C+X] + x; mb1 s0 [C+X, 2C+2X],
    # s1 [2C+2X, 3C+2X]. Overlapped: s0 frees at C and the link sends, mb0 s1 [C+X, 2C+X], mb1
    # link [max(2C, C+X), .. + X], s1 ends at 2C + X + max(C, X) (here the link is the slower).
    pre = stage_ops(sys_, shape, wl, servers=1, pp=2, tp=1, micro_batch=1, phase="prefill")
    big_x = float(pre["stage_transfer"][0])
    c = float(pre["stage"][0]) - big_x
    assert big_x == pytest.approx(3 * 4 * 2 / 1e10 + 1e-6)
    assert big_x > c
    expected = 2 * c + big_x + max(c, big_x) if overlap else 3 * c + 2 * big_x
    assert r.prefill_s == pytest.approx(expected, rel=1e-12)
    # the analytic prefill counts one more transfer (the return) for the last micro-batch
    ana = simulate(sys_, shape, wl, **kw)
    assert float(ana["prefill_s"][0]) == pytest.approx(3 * (c + big_x), rel=1e-12)
    total = r.prefill_s + r.tpot_s
    assert r.throughput_tokens_per_s == pytest.approx(2 * 2 / total, rel=1e-12)


def test_pp2_growing_context():
    # more steps: with overlapped transfers every step equals the analytic tau at its context.
    # With serial transfers pp = n_mb is critical in both bounds, and micro-batch 1 waits for
    # micro-batch 0's one-token-longer visit: each step after the first is longer by one token's
    # growth of a stage (bounded by half the analytic per-token growth of tau)
    sys_, shape = tiny_system(), tiny_shape()
    wl = Workload(prompt_tokens=3, output_tokens=6)
    kw = dict(servers=1, pp=2, batch=2, micro_batch=1)
    per_step = [analytic_at(sys_, shape, wl, 3.0 + t, **kw) for t in range(1, 6)]
    r = des.simulate_des(sys_, shape, wl, **kw)
    np.testing.assert_allclose(r.step_times_s, per_step, rtol=1e-12)
    growth = per_step[1] - per_step[0]
    r = des.simulate_des(sys_, shape, wl, overlap_transfers=False, **kw)
    np.testing.assert_allclose(r.step_times_s[0], per_step[0], rtol=1e-12)
    np.testing.assert_allclose(r.step_times_s[1:], np.array(per_step[1:]) + growth / 2, rtol=1e-9)


def test_compare_point_fields_and_errors():
    sys_, shape = tiny_system(), tiny_shape()
    wl = Workload(prompt_tokens=3, output_tokens=4)
    row = des.compare_point(sys_, shape, wl, servers=1, pp=2, batch=2, micro_batch=1)
    for q in ("tpot_s", "prefill_s", "throughput_tokens_per_s"):
        assert row[f"error_{q}"] == pytest.approx(row[f"analytic_{q}"] / row[f"des_{q}"] - 1)
    assert row["tp"] == 1 and row["pp"] == 2 and row["des_exact"]
    assert row["analytic_tpot_at_des_context_s"] == pytest.approx(row["des_tpot_s"], rel=1e-12)
    with pytest.raises(ValueError, match="port_policy"):
        des.simulate_des(sys_, shape, wl, port_policy="lifo", **kw_one())
    with pytest.raises(ValueError, match="one design point"):
        des.simulate_des(
            System.broadcast(**{k: np.repeat(v, 2) for k, v in vars(sys_).items()}),
            shape,
            wl,
            servers=1,
            pp=1,
            batch=1,
            micro_batch=1,
        )


# ------------------------------------------------------------------------------------------------
# placement and contention


def test_layout_finds_server_crossings():
    # 2 servers of 5 chips, pp=3 -> tp=3: stage 1 = chips 3,4,5 straddles servers 0|1; the
    # return transfer chip 8 -> chip 0 crosses 1 -> 0 and shares those ports with stage 1's ring
    lay = des.layout(pp=3, tp=3, chips_per_server=5)
    assert lay.ring_crossings == ((), ((0, 1), (1, 0)), ())
    assert lay.tx_crossing == (None, None, (1, 0))
    assert lay.ring_shared[1] == ((0, "in"), (1, "out"))
    assert lay.tx_shared[2] == ((0, "in"), (1, "out"))
    assert des.layout(pp=3, tp=3, chips_per_server=5, contention=False).contended_stages == 0
    # groups aligned on servers share nothing
    lay = des.layout(pp=4, tp=8, chips_per_server=16)
    assert lay.contended_stages == 0
    assert lay.tx_crossing == (None, (0, 1), None, (1, 0))


def test_contention_between_a_transfer_and_an_all_reduce(naive_links):
    # equal chip and server links, so the analytic model's link choice is right and only the
    # sharing of server 1's egress / server 0's ingress differs
    sys_ = tiny_system(chips_per_server=5, chip_bw=1e9, server_bw=1e9)
    shape = tiny_shape(layers=3)
    wl = Workload(prompt_tokens=3, output_tokens=2)
    # serial transfers, pp = n_mb, one decode step: no contention-free difference from the
    # analytic model, and contention can only slow the DES down
    kw = dict(servers=2, pp=3, batch=3, micro_batch=1)
    free = des.simulate_des(sys_, shape, wl, overlap_transfers=False, contention=False, **kw)
    tau = analytic_at(sys_, shape, wl, des_mean_context(wl), **kw)
    assert free.tpot_s == pytest.approx(tau, rel=1e-12)
    shared = des.simulate_des(sys_, shape, wl, overlap_transfers=False, **kw)
    assert shared.tpot_s >= tau * (1 - 1e-12)
    wl = Workload(prompt_tokens=3, output_tokens=8)
    # more micro-batches than stages, overlapped transfers: the return transfer of one
    # micro-batch runs while stage 1 all-reduces the next one on the same ports -> slower
    kw = dict(servers=2, pp=3, batch=6, micro_batch=1)
    free = des.simulate_des(sys_, shape, wl, contention=False, **kw)
    shared = des.simulate_des(sys_, shape, wl, **kw)
    assert shared.port_wait_s > 0
    assert shared.tpot_s > free.tpot_s * (1 + 1e-3)
    assert shared.prefill_s >= free.prefill_s


@pytest.mark.parametrize("policy", ["ordered", "fair"])
def test_two_rings_sharing_a_server_uplink_are_slower_than_the_analytic_model(policy, naive_links):
    # 3 servers of 2 chips, pp=2 -> tp=3: ring 0 spans servers 0-1, ring 1 servers 1-2; both
    # stages all-reduce at the same time through server 1's uplink
    # slow links, tiny startup: the all-reduces dominate and their bandwidth is what is shared
    sys_ = tiny_system(chips_per_server=2, chip_bw=1e6, server_bw=1e6, alpha=1e-10)
    shape = tiny_shape()
    wl = Workload(prompt_tokens=3, output_tokens=2)
    kw = dict(servers=3, pp=2, batch=2, micro_batch=1)
    tau = analytic_at(sys_, shape, wl, des_mean_context(wl), **kw)
    free = des.simulate_des(sys_, shape, wl, contention=False, port_policy=policy, **kw)
    shared = des.simulate_des(sys_, shape, wl, port_policy=policy, **kw)
    assert free.tpot_s == pytest.approx(tau, rel=1e-12)
    assert shared.contended_stages == 2
    assert shared.tpot_s > tau * 1.2
    # each of the 4 all-reduces of a token (2 a stage) waits at most one all-reduce of the other
    ar = 2 * 2 * (1 * 4 * 2 / 3 / 1e6 + 1e-10)
    assert shared.tpot_s <= tau + 4 * ar


def test_fair_sharing_splits_a_port_between_two_flows():
    # two flows of 1 s of transmission each on one port: both end at 2 s; a third flow on another
    # port of the second one only is not slowed once the first has left
    env = des.simpy.Environment()
    net = des._FairNetwork(env)
    done = {}

    def flow(name, ports, work, start):
        yield env.timeout(start)
        yield net.start(ports, work)
        done[name] = env.now

    env.process(flow("a", ("p",), 1.0, 0.0))
    env.process(flow("b", ("p", "q"), 1.0, 0.0))
    env.process(flow("c", ("q",), 0.5, 3.0))
    env.run()
    assert done["a"] == pytest.approx(2.0) and done["b"] == pytest.approx(2.0)
    assert done["c"] == pytest.approx(3.5)


def test_a_group_straddling_servers_uses_the_server_link(naive_links):
    # 2 servers of 3 chips, pp=3 -> tp=2: stage 1 = chips 2, 3 straddles servers although
    # tp <= chips_per_server; the analytic model gives it the chip link
    sys_, shape = tiny_system(chips_per_server=3), tiny_shape(layers=6)
    wl = Workload(prompt_tokens=3, output_tokens=2)
    kw = dict(servers=2, pp=3, batch=1, micro_batch=1)
    r = des.simulate_des(sys_, shape, wl, overlap_transfers=False, contention=False, **kw)
    tau = analytic_at(sys_, shape, wl, des_mean_context(wl), **kw)
    assert r.tpot_s > tau
    # the DES slowdown is stage 1's 2 x 2 all-reduces at the server instead of the chip link,
    # less the transfers that stay inside a server (the analytic model sends all over the
    # server link once the system spans servers)
    ar_bytes, alpha = 1 * 4 * 2.0, 1e-6
    ar_slow = 2 * (ar_bytes / 2 / 1e9 + alpha)
    ar_fast = 2 * (ar_bytes / 2 / 1e10 + alpha)
    x_slow, x_fast = ar_bytes / 1e9 + alpha, ar_bytes / 1e10 + alpha
    # stages 0->1 (chip 1 -> 2) and 1->2 (chip 3 -> 4) stay in a server; the return crosses
    delta = 4 * (ar_slow - ar_fast) - 2 * (x_slow - x_fast)
    assert r.tpot_s - tau == pytest.approx(delta, rel=1e-9)


# ------------------------------------------------------------------------------------------------
# context growth and sampling


@pytest.mark.parametrize("flops", [1e12, 1e9])  # memory-bound, then compute-bound attention
def test_context_growth_is_the_mean_context(flops):
    # attention and softmax are linear in the context, so the mean over the decode steps is the
    # step at the mean context prompt + g/2, which is where the analytic model evaluates it
    sys_, shape = tiny_system(flops=flops), tiny_shape()
    wl = Workload(prompt_tokens=16, output_tokens=64)
    kw = dict(servers=1, pp=2, batch=4, micro_batch=2)
    r = des.simulate_des(sys_, shape, wl, **kw)
    assert r.exact
    c = des_mean_context(wl)
    assert r.tpot_s == pytest.approx(analytic_at(sys_, shape, wl, c, **kw), rel=1e-9)
    slope = analytic_at(sys_, shape, wl, c + 1.0, **kw) - analytic_at(sys_, shape, wl, c, **kw)
    assert slope > 0
    # the analytic model evaluates the same mean context prompt + g/2: it agrees exactly
    ana = float(simulate(sys_, shape, wl, **kw)["tpot_s"][0])
    assert ana == pytest.approx(r.tpot_s, rel=1e-9)
    # sampled decode steps (small event budget): the interpolation is exact for affine steps
    s = des.simulate_des(sys_, shape, wl, event_budget=200, **kw)
    assert s.steps_simulated < wl.output_tokens - 1
    assert s.tpot_s == pytest.approx(r.tpot_s, rel=1e-9)
    assert s.prefill_s == pytest.approx(r.prefill_s, rel=1e-12)


def test_pick_steps_and_decode_total():
    steps = des._pick_steps(255, per_step=1000.0, budget=30_000)
    assert steps[0] == 1 and steps[-1] == 255 and len(steps) < 255
    assert np.all(np.diff(steps) > 0)
    dt = 2.0 + 0.01 * steps  # affine step times
    assert des._decode_total(steps, dt, 255) == pytest.approx((2.0 + 0.01 * 128) * 255)
    np.testing.assert_array_equal(des._pick_steps(10, 1.0, 1e6), np.arange(1, 11))
    assert len(des._pick_steps(0, 1.0, 1e6)) == 0


# ------------------------------------------------------------------------------------------------
# the phase-2 optima


def test_asic_cases_on_a_small_table(isca24):
    from chipletcloud.baselines.asic_validation import asic_cases
    from chipletcloud.config import HardwareSpace
    from chipletcloud.explore.hardware import explore_hardware

    sp = HardwareSpace(
        die_area_mm2=[140, 300],
        mac_ratio=[0.05, 0.1],
        operational_intensity=[2, 8],
        packages_per_lane=[6, 12],
    )
    table = explore_hardware(sp, isca24).table
    details: list = []
    recs = asic_cases(
        table, isca24, models=("gpt2", "llama2-70b"), n_points=3, details=details, fast=False
    )
    keys = {"id", "source", "quantity", "unit", "measured", "predicted", "error"}
    assert recs and all(set(r) == keys for r in recs)
    assert len({r["id"] for r in recs}) == len(recs)
    for r in recs:
        assert r["source"] == des.SOURCE
        assert r["quantity"] in ("tpot_s", "throughput_tokens_per_s")
        assert r["measured"] > 0 and r["predicted"] > 0
        assert r["error"] == pytest.approx(r["predicted"] / r["measured"] - 1)
        assert abs(r["error"]) < 1.0
    assert {d["model"] for d in details} == {"gpt2", "llama2-70b"}
    assert {d["point"] for d in details} >= {"tco"}
    assert len(recs) == 2 * len(details)
