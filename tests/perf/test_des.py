"""The event-level simulation (perf/des.py) against the analytic model and hand calculations."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from tiny import tiny_shape, tiny_system  # tests/perf/tiny.py

from chipletcloud.perf import des, linksim
from chipletcloud.perf.analytic import collectives, simulate, stage_ops
from chipletcloud.perf.codes import ALGORITHMS, TOPOLOGIES
from chipletcloud.perf.workload import System, Workload


def analytic_at(system, shape, wl, context, **kw):
    """The analytic tau at an explicit decode context (a workload whose mean context is it)."""
    wl_c = replace(wl, prompt_tokens=context - 0.5, output_tokens=1)  # mean = prompt + 1/2
    return float(simulate(system, shape, wl_c, **kw)["tpot_s"][0])


def with_fabric(system: System, **fields) -> System:
    """``system`` (one row) with some interconnect fields replaced."""
    return replace(system, **{k: np.asarray([float(v)]) for k, v in fields.items()})


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
    assert row["des_collectives_from_formula"] == 0 and row["des_allreduce_algorithms"] == ""
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


@pytest.mark.parametrize("overlap", [True, False])
def test_a_fabric_where_linksim_is_exact_gives_the_analytic_model(overlap):
    # 2 servers of 4 chips on a switch, ring and one-shot allowed, a fixed cost per collective:
    # each stage is one whole server (tp = 4), where the simulated ring and one-shot on a switch
    # are what the formula says, and the transfers go through the NICs (bytes / server link +
    # one server traversal + the fixed cost), as the formula's. pp = n_mb, so the decode step is
    # pp x the stage time in both models
    sys_ = with_fabric(
        tiny_system(chips_per_server=4, chip_bw=1e9, server_bw=1e8),
        topology=TOPOLOGIES["switch"],
        algorithms=ALGORITHMS["ring"] | ALGORITHMS["one_shot"],
        sync_s=5e-7,
        net_hop_s=2e-6,
    )
    shape, wl = tiny_shape(), Workload(prompt_tokens=3, output_tokens=2)
    kw = dict(servers=2, pp=2, batch=2, micro_batch=1)
    r = des.simulate_des(sys_, shape, wl, overlap_transfers=overlap, **kw)
    assert r.collectives_from_formula == 0 and r.allreduce_algorithms
    assert r.contended_stages == 0
    tau = analytic_at(sys_, shape, wl, des_mean_context(wl), **kw)
    assert r.tpot_s == pytest.approx(tau, rel=1e-12)
    # the same point on a ring fabric: the transfers are the same, the all-reduce of 4 chips on
    # a 4-ring is not the one on a switch
    ring = des.simulate_des(
        with_fabric(sys_, topology=TOPOLOGIES["ring"]), shape, wl, overlap_transfers=overlap, **kw
    )
    assert ring.tpot_s != pytest.approx(r.tpot_s, rel=1e-6)


def test_a_group_too_large_to_simulate_takes_the_formula():
    # a budget of a few link events: the all-reduce cannot be simulated and takes the analytic
    # model's time, flagged; with pp = 1 the two models then agree exactly
    sys_, shape = tiny_system(), tiny_shape()
    wl = Workload(prompt_tokens=3, output_tokens=4)
    kw = dict(servers=1, pp=1, batch=1, micro_batch=1)
    r = des.simulate_des(sys_, shape, wl, link_events=5, **kw)
    assert r.collectives_from_formula == 2  # the prefill's bytes and the decode's
    assert r.tpot_s == pytest.approx(float(simulate(sys_, shape, wl, **kw)["tpot_s"][0]), 1e-12)
    ok = des.simulate_des(sys_, shape, wl, **kw)
    assert ok.collectives_from_formula == 0 and ok.allreduce_algorithms == ("ring",)


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


def test_contention_between_a_transfer_and_an_all_reduce():
    # 2 servers of 5 chips, pp=3 -> tp=3: stage 1 (chips 3, 4 | 5) straddles servers and its
    # all-reduce crosses 1 -> 0, as does the return transfer from chip 8 to chip 0. A slow server
    # link makes both the straddling all-reduce and the return long
    sys_ = tiny_system(chips_per_server=5, chip_bw=1e9, server_bw=1e6)
    shape = tiny_shape(layers=3)
    wl = Workload(prompt_tokens=3, output_tokens=2)
    # serial transfers, pp = n_mb, one decode step: contention can only slow the DES down
    kw = dict(servers=2, pp=3, batch=3, micro_batch=1)
    free = des.simulate_des(sys_, shape, wl, overlap_transfers=False, contention=False, **kw)
    shared = des.simulate_des(sys_, shape, wl, overlap_transfers=False, **kw)
    assert free.port_wait_s == 0 and free.contended_stages == 0
    assert shared.contended_stages == 1
    assert shared.tpot_s > free.tpot_s * 1.2
    wl = Workload(prompt_tokens=3, output_tokens=8)
    # more micro-batches than stages, overlapped transfers: the return transfer of one
    # micro-batch runs while stage 1 all-reduces the next one on the same ports -> slower
    kw = dict(servers=2, pp=3, batch=6, micro_batch=1)
    free = des.simulate_des(sys_, shape, wl, contention=False, **kw)
    shared = des.simulate_des(sys_, shape, wl, **kw)
    assert shared.port_wait_s > 0
    assert shared.tpot_s > free.tpot_s * 1.2
    assert shared.prefill_s >= free.prefill_s
    # a fast server link: the same ports are shared but the waits no longer cost a thing
    fast = tiny_system(chips_per_server=5, chip_bw=1e9, server_bw=1e9)
    a = des.simulate_des(fast, shape, wl, contention=False, **kw)
    b = des.simulate_des(fast, shape, wl, **kw)
    assert b.tpot_s == pytest.approx(a.tpot_s, rel=1e-12)


@pytest.mark.parametrize("policy", ["ordered", "fair"])
def test_two_groups_sharing_a_server_uplink_wait_for_each_other(policy):
    # 3 servers of 2 chips, pp=2 -> tp=3: group 0 spans servers 0-1 (chips 0, 1 | 2), group 1
    # servers 1-2 (3 | 4, 5); both stages all-reduce at the same time through server 1's uplink.
    # Slow links, tiny hop latency: the all-reduces dominate and their bandwidth is what is shared
    sys_ = tiny_system(chips_per_server=2, chip_bw=1e6, server_bw=1e6, alpha=1e-10)
    shape = tiny_shape()
    wl = Workload(prompt_tokens=3, output_tokens=2)
    kw = dict(servers=3, pp=2, batch=2, micro_batch=1)
    free = des.simulate_des(sys_, shape, wl, contention=False, port_policy=policy, **kw)
    shared = des.simulate_des(sys_, shape, wl, port_policy=policy, **kw)
    assert shared.contended_stages == 2
    assert shared.tpot_s > free.tpot_s * 1.2
    # each of the 4 all-reduces of a token (2 a stage) waits at most one all-reduce of the other
    # group: linksim's time of a group (1 row x 4 values x 2 bytes)
    fabric = linksim.Fabric.from_system(sys_)
    ar = max(linksim.allreduce(fabric, 8.0, g, 1).best_s for g in ([0, 1, 2], [3, 4, 5]))
    assert shared.tpot_s <= free.tpot_s + 4 * ar


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


def test_a_group_straddling_servers_uses_the_server_link():
    # 2 servers of 3 chips on a ring fabric, pp=3 -> tp=2: stage 1 = chips 2 | 3 straddles
    # servers although tp <= chips_per_server. One micro-batch, serial transfers: the DES step is
    # the sum over the stages of 2 layers x (compute + 2 all-reduces) + the transfer, the analytic
    # tau 3 x the same with its own (worst-placed group's) collectives. By hand, for the 8 bytes
    # of a decode all-reduce or transfer (hop = server traversal = 1 us, no fixed cost):
    sys_, shape = tiny_system(chips_per_server=3), tiny_shape(layers=6)
    wl = Workload(prompt_tokens=3, output_tokens=2)
    kw = dict(servers=2, pp=3, batch=1, micro_batch=1)
    r = des.simulate_des(sys_, shape, wl, overlap_transfers=False, contention=False, **kw)
    tau = analytic_at(sys_, shape, wl, des_mean_context(wl), **kw)
    b, hop = 8.0, 1e-6
    # stages 0 and 2: two neighbours of a 3-chip ring, links of 1e10 / 2; both halves of the ring
    # take the same link each way: 2 steps, the second half a quarter behind the first
    ar_in = 2 * hop + 3 * b / 4 / 5e9
    # stage 1: the same through the NICs, at the 1e9 server link
    ar_across = 2 * hop + 3 * b / 4 / 1e9
    # transfers 1 -> 2 and 3 -> 4 stay in a server (one ring link), 5 -> 0 crosses servers
    x_in, x_across = hop + b / 5e9, hop + b / 1e9
    ar_a, x_a = (float(v[0]) for v in collectives(sys_, b, 2, 2, 3))
    des_links = 2 * (4 * ar_in + x_in) + 4 * ar_across + x_across
    assert r.tpot_s - tau == pytest.approx(des_links - 3 * (4 * ar_a + x_a), rel=1e-9)
    assert ar_across > ar_in
    # the contended run adds nothing here: stage 1's ports carry no other flow at the same time
    # (one micro-batch)
    assert des.simulate_des(sys_, shape, wl, overlap_transfers=False, **kw).tpot_s == (
        pytest.approx(r.tpot_s, rel=1e-12)
    )


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
    keys = {"id", "source", "quantity", "unit", "measured", "predicted", "error", "note"}
    assert recs and all(set(r) == keys for r in recs)
    assert len({r["id"] for r in recs}) == len(recs)
    for r in recs:
        assert r["source"] == des.SOURCE and r["note"] == ""
        assert r["quantity"] in ("tpot_s", "throughput_tokens_per_s")
        assert r["measured"] > 0 and r["predicted"] > 0
        assert r["error"] == pytest.approx(r["predicted"] / r["measured"] - 1)
        assert abs(r["error"]) < 1.0
    assert {d["model"] for d in details} == {"gpt2", "llama2-70b"}
    assert {d["point"] for d in details} >= {"tco"}
    assert len(recs) == 2 * len(details)
