"""The request-level event simulation of continuous batching (chipletcloud.perf.serving_des),
against hand-computed timings on hand-built machines."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chipletcloud.errors import InputError
from chipletcloud.perf.iteration import Machine
from chipletcloud.perf.serving_des import ServingDesResult, simulate_requests


def machine(
    max_batch=4,
    d0=0.01,
    d1=0.0,
    stage_per_token=1e-4,
    pp=1,
    overhead=0.0,
    kv_tokens=math.inf,
) -> Machine:
    """Decode step ``d0 + d1 b`` seconds; one stage's prefill ``stage_per_token x`` seconds
    (linear through the origin on the grid 1 .. 2^20 tokens)."""
    b = np.arange(1, max_batch + 1, dtype=float)
    grid = np.array([1.0, 2.0**20])
    return Machine(
        decode_s=d0 + d1 * b,
        token_grid=grid,
        prefill_stage_s=stage_per_token * grid,
        pp=pp,
        request_overhead_s=overhead,
        max_batch=max_batch,
        kv_tokens=kv_tokens,
    )


def test_one_request_alone():
    m = machine(pp=2, overhead=0.003, d0=0.02, d1=0.001)
    p, g = 100, 7
    r = simulate_requests(m, [p], [g], [0.5], scheduler="prefill-first")
    ttft = m.prefill_time([p])
    assert ttft == pytest.approx(2 * 100 * 1e-4 + 0.003)
    assert r.ttft_s == pytest.approx([ttft])
    assert r.tpot_s == pytest.approx([m.decode_time(1)])
    assert r.e2e_s == pytest.approx([ttft + (g - 1) * m.decode_time(1)])
    assert r.completed == 1 and r.preemptions == 0
    assert r.total_output_tokens == g
    assert r.output_tokens_per_s == pytest.approx(g / r.e2e_s[0])
    assert r.requests_per_s == pytest.approx(1 / r.e2e_s[0])
    assert r.mean_running == pytest.approx(1.0)
    assert r.percentile("e2e", 50) == pytest.approx(r.e2e_s[0])
    s = r.summary()
    assert s["ttft_p99_s"] == pytest.approx(ttft) and s["completed"] == 1


def test_single_output_token_finishes_after_prefill():
    m = machine(overhead=0.001)
    r = simulate_requests(m, [50], [1], [0.0], scheduler="prefill-first")
    assert r.ttft_s == pytest.approx(r.e2e_s) and r.tpot_s.size == 0
    assert math.isnan(r.percentile("tpot", 50))


def test_two_requests_arriving_together():
    m = machine(pp=3, overhead=0.002, d0=0.01, d1=0.004)
    p, g = [40, 90], [3, 6]
    r = simulate_requests(m, p, g, [1.0, 1.0], warmup=0.0, scheduler="prefill-first")
    pre = m.prefill_time(p)
    # pipeline fill by the largest, then one stage slot each
    assert pre == pytest.approx((40 + 90) * 1e-4 + 2 * 90 * 1e-4 + 0.002)
    assert r.ttft_s == pytest.approx([pre, pre])
    d1, d2 = m.decode_time(1), m.decode_time(2)
    e2e0 = pre + 2 * d2
    e2e1 = pre + 2 * d2 + 3 * d1
    assert r.e2e_s == pytest.approx([e2e0, e2e1])
    assert r.tpot_s == pytest.approx([d2, (2 * d2 + 3 * d1) / 5])
    # window (1.0, 1.0 + e2e1]: all 9 tokens emitted inside it
    assert r.output_tokens_per_s == pytest.approx(9 / e2e1)
    assert r.mean_running == pytest.approx((2 * (pre + 2 * d2) + 3 * d1) / e2e1)


def test_arrival_during_decode_waits_for_iteration_boundary_and_prefill_has_priority():
    m = machine(d0=0.01, overhead=0.001, stage_per_token=0.0)
    # request 1 arrives mid-way through request 0's first decode step
    r = simulate_requests(
        m, [10, 10], [4, 2], [0.0, 0.001 + 0.005], warmup=0.0, scheduler="prefill-first"
    )
    pre = m.prefill_time([10])
    d = m.decode_time(1)
    # boundary at pre + d: prefill of request 1 (request 0 stalls), then decode at b = 2
    assert r.ttft_s[1] == pytest.approx(pre + d + pre - 0.006)
    assert r.e2e_s[1] == pytest.approx(pre + d + pre + m.decode_time(2) - 0.006)
    assert r.e2e_s[0] == pytest.approx(pre + d + pre + m.decode_time(2) + m.decode_time(1))


def test_closed_loop_saturates_max_batch():
    M, N, d, g, n = 4, 8, 0.01, 10, 400
    m = machine(max_batch=M, d0=d, stage_per_token=0.0, overhead=0.0)
    r = simulate_requests(
        m, np.full(n, 16), np.full(n, g), concurrency=N, scheduler="prefill-first"
    )
    assert r.max_running <= M
    assert r.mean_running == pytest.approx(M)
    # steady state: M sequences per cycle of g - 1 decode steps (prefill is free), g tokens each
    assert r.output_tokens_per_s == pytest.approx(M * g / ((g - 1) * d))
    assert r.requests_per_s == pytest.approx(M / ((g - 1) * d))
    # each request waits exactly one cycle behind the M ahead of it
    assert r.ttft_s == pytest.approx(np.full(r.completed, (g - 1) * d))
    assert r.tpot_s == pytest.approx(np.full(r.completed, d))
    assert r.completed == n - 40 - 40 and r.total_output_tokens == n * g


def test_closed_loop_one_client_is_serial():
    m = machine(overhead=0.002, d0=0.01)
    p, g = np.array([10, 20, 30, 40]), np.array([2, 3, 4, 5])
    r = simulate_requests(m, p, g, concurrency=1, warmup=0.0, scheduler="prefill-first")
    e2e = np.array([m.prefill_time([x]) for x in p]) + (g - 1) * 0.01
    assert r.e2e_s == pytest.approx(e2e)
    assert r.ttft_s == pytest.approx([m.prefill_time([x]) for x in p])
    assert r.max_running == 1


def test_kv_budget_forces_preemption_and_everything_completes():
    # 4 prompts of 10 admitted (40 <= 60), then the KV grows by 4 per step until it overflows
    m = machine(max_batch=4, kv_tokens=60, overhead=0.001)
    n, g = 12, 20
    r = simulate_requests(
        m, np.full(n, 10), np.full(n, g), np.zeros(n), warmup=0.0, scheduler="prefill-first"
    )
    assert r.preemptions > 0
    assert r.total_output_tokens == n * g
    assert r.peak_kv_tokens <= 60
    assert np.all(np.isfinite(r.e2e_s)) and r.completed == n - 1
    assert np.all(r.ttft_s >= m.prefill_time([10]) - 1e-12)
    # the first preemption happens at the 5th decode step (44 + 4 k > 60 for k = 5)
    m_big = machine(max_batch=4, kv_tokens=math.inf, overhead=0.001)
    free = simulate_requests(
        m_big, np.full(n, 10), np.full(n, g), np.zeros(n), warmup=0.0, scheduler="prefill-first"
    )
    assert free.preemptions == 0 and free.peak_kv_tokens > 60
    # preemption costs time
    assert r.e2e_s.max() > free.e2e_s.max()


def test_preempted_request_goes_to_front_and_is_recomputed():
    # two requests of prompt 10, g = 5, KV budget 25 (hand trace):
    m = machine(max_batch=2, kv_tokens=25, overhead=0.001, stage_per_token=1e-3, d0=0.01)
    r = simulate_requests(m, [10, 10], [5, 5], [0.0, 0.0], warmup=0.0, scheduler="prefill-first")
    d = m.decode_time(1)
    assert m.decode_time(2) == d
    t = m.prefill_time([10, 10])  # both admitted (20 <= 25); hold 11 each after their 1st token
    t += d  # 22 + 2 <= 25: decode at b = 2 -> hold 12 each
    # 24 + 2 > 25: request 1 preempted (holds 12, 2 tokens generated); request 0 decodes alone
    t += d  # request 0 holds 13
    t += m.prefill_time([12])  # 25 - 13 = 12 free: request 1 recomputed, emits its 3rd token
    # 13 + 13 + 2 > 25: request 1 preempted again (holds 13); request 0 decodes its 4th, 5th
    t += 2 * d
    assert r.e2e_s[0] == pytest.approx(t)
    t += m.prefill_time([13])  # request 1 recomputed alone, emits its 4th token, then decodes
    t += d
    assert r.e2e_s[1] == pytest.approx(t)
    assert r.ttft_s == pytest.approx([m.prefill_time([10, 10])] * 2)
    assert r.preemptions == 2
    assert r.total_output_tokens == 10


def test_chunked_prefill_long_prompt_takes_ceil_p_over_c_iterations():
    m = machine(overhead=0.002, pp=2, d0=0.01)
    p, g, C = 100, 4, 32
    r = simulate_requests(m, [p], [g], [0.0], chunk_tokens=C)
    ttft = 3 * m.chunked_time(0, C) + m.chunked_time(0, p - 3 * C)
    assert math.ceil(p / C) == 4
    assert r.ttft_s == pytest.approx([ttft])
    assert r.tpot_s == pytest.approx([m.chunked_time(1, 0)])
    assert r.e2e_s == pytest.approx([ttft + (g - 1) * m.decode_time(1)])
    assert r.iterations == 4 + g - 1


def test_chunked_prefill_rides_along_with_decodes():
    m = machine(max_batch=4, overhead=0.001, d0=0.01)
    C = 16
    # request 0 (prompt 8) prefills in one iteration; request 1 (prompt 30) arrives right after,
    # its prompt rides with request 0's decode: C - 1 = 15 tokens per iteration, 2 iterations
    t_first = m.chunked_time(0, 8)
    r = simulate_requests(m, [8, 30], [10, 3], [0.0, t_first / 2], chunk_tokens=C, warmup=0.0)
    assert r.ttft_s[0] == pytest.approx(t_first)
    it = m.chunked_time(1, 15)
    assert r.ttft_s[1] == pytest.approx(t_first + 2 * it - t_first / 2)
    # request 1 then decodes with request 0 at b = 2
    assert r.e2e_s[1] == pytest.approx(t_first + 2 * it + 2 * m.chunked_time(2, 0) - t_first / 2)


def test_chunk_budget_smaller_than_batch_starves_prefill_until_decodes_finish():
    m = machine(max_batch=4, overhead=0.0, d0=0.01)
    r = simulate_requests(m, [1, 1, 5], [3, 3, 2], [0.0, 0.0, 0.0], chunk_tokens=2, warmup=0.0)
    # iteration 1: prompts of 0 and 1 (2 tokens); then b = 2 = C: no prompt tokens until both
    # finish after 2 decode steps; then request 2's 5 tokens in 3 iterations
    assert r.total_output_tokens == 8
    t0 = m.chunked_time(0, 2)
    t2 = t0 + 2 * m.chunked_time(2, 0)
    ttft2 = t2 + 2 * m.chunked_time(0, 2) + m.chunked_time(0, 1)
    assert r.ttft_s[2] == pytest.approx(ttft2)


def test_chunked_with_preemption_completes():
    m = machine(max_batch=8, kv_tokens=120, overhead=0.001)
    n = 30
    rng = np.random.default_rng(1)
    p, g = rng.integers(5, 40, n), rng.integers(2, 60, n)
    r = simulate_requests(m, p, g, np.sort(rng.uniform(0, 0.1, n)), chunk_tokens=24)
    assert r.total_output_tokens == int(g.sum())
    assert r.preemptions > 0 and r.peak_kv_tokens <= 120


def test_idle_gap_jumps_to_next_arrival():
    m = machine(overhead=0.001)
    r = simulate_requests(m, [10, 10], [3, 3], [0.0, 100.0], warmup=0.0, scheduler="prefill-first")
    assert r.ttft_s == pytest.approx([m.prefill_time([10])] * 2)
    assert r.e2e_s[0] == pytest.approx(r.e2e_s[1])


def test_warmup_and_tail_are_dropped():
    m = machine()
    n = 50
    r = simulate_requests(
        m, np.full(n, 10), np.full(n, 5), np.arange(n) * 1.0, warmup=0.2, scheduler="prefill-first"
    )
    assert r.completed == n - 10 - 5 == r.e2e_s.size


def test_large_run_at_batch_256():
    m = machine(max_batch=256, d0=0.02, d1=1e-4, stage_per_token=1e-5, pp=4, overhead=1e-3)
    rng = np.random.default_rng(0)
    n = 3000
    p, g = rng.integers(100, 1500, n), rng.integers(20, 500, n)
    r = simulate_requests(m, p, g, np.cumsum(rng.exponential(1 / 12, n)))
    assert r.total_output_tokens == int(g.sum()) and r.max_running <= 256


def _check(m: Machine, p, g, r: ServingDesResult, lo: int, hi: int, sched="mixed", chunk=None):
    assert r.total_output_tokens == int(np.sum(g))
    assert r.completed == hi - lo
    assert r.max_running <= m.max_batch
    assert r.peak_kv_tokens <= m.kv_tokens
    assert np.all(np.isfinite(r.e2e_s))
    pm, gm = np.asarray(p)[lo:hi], np.asarray(g)[lo:hi]
    # the first token needs at least the prompt's own iteration: a prefill (prefill-first) or a
    # step its first chunk rides in, at least the chunk's slot on one stage and the overhead
    # (mixed; a pipeline full of decode micro-batches hides the rest of the fill)
    if sched == "prefill-first":
        pre = np.array([m.prefill_time([x]) for x in pm])
    else:
        pre = np.array([m.stage_prefill(min(x, chunk or x)) + m.request_overhead_s for x in pm])
    assert np.all(r.ttft_s >= pre * (1 - 1e-9))
    assert np.all(r.e2e_s >= r.ttft_s + (gm - 1) * m.decode_time(1) * (1 - 1e-9))
    # no iteration emits more than max_batch tokens, nor faster than the full-batch decode rate
    # (the overhead of a prefill is at least a full decode step): the window holds at most one
    # iteration that started before it
    rate = m.max_batch / m.decode_time(m.max_batch)
    if r.window_s > 0:
        bound = rate + m.max_batch / r.window_s
        assert r.output_tokens_per_s <= bound * (1 + 1e-9)
        assert r.mean_running <= m.max_batch * (1 + 1e-9)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    n=st.integers(1, 40),
    max_batch=st.integers(1, 8),
    chunk=st.one_of(st.none(), st.integers(1, 64)),
    closed=st.booleans(),
    tight_kv=st.booleans(),
    sched=st.sampled_from(["mixed", "prefill-first"]),
)
def test_property_every_request_completes_within_the_machine_limits(
    data, n, max_batch, chunk, closed, tight_kv, sched
):
    if sched == "prefill-first":
        chunk = None
    p = data.draw(st.lists(st.integers(1, 50), min_size=n, max_size=n))
    g = data.draw(st.lists(st.integers(1, 30), min_size=n, max_size=n))
    d0, d1 = 0.01, 0.002
    kv = math.inf
    if tight_kv:
        kv = float(
            max(pi + gi for pi, gi in zip(p, g, strict=True)) + data.draw(st.integers(0, 60))
        )
    m = machine(
        max_batch=max_batch,
        d0=d0,
        d1=d1,
        stage_per_token=data.draw(st.sampled_from([0.0, 1e-4, 1e-3])),
        pp=data.draw(st.integers(1, 4)),
        overhead=d0 + d1 * max_batch,
        kv_tokens=kv,
    )
    warmup = data.draw(st.sampled_from([0.0, 0.1, 0.3]))
    if closed:
        conc = data.draw(st.integers(1, 12))
        r = simulate_requests(
            m, p, g, concurrency=conc, chunk_tokens=chunk, warmup=warmup, scheduler=sched
        )
    else:
        gaps = data.draw(st.lists(st.floats(0.0, 0.2), min_size=n, max_size=n))
        r = simulate_requests(
            m, p, g, np.cumsum(gaps), chunk_tokens=chunk, warmup=warmup, scheduler=sched
        )
    lo, hi = int(math.floor(warmup * n)), n - int(math.floor(0.1 * n))
    _check(m, p, g, r, lo, hi, sched, chunk)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        (dict(input_tokens=[1, 2], output_tokens=[1], arrival_s=[0, 1]), "output_tokens"),
        (dict(input_tokens=[0], output_tokens=[1], arrival_s=[0]), "input_tokens"),
        (dict(input_tokens=[1], output_tokens=[0], arrival_s=[0]), "output_tokens"),
        (dict(input_tokens=[1.5], output_tokens=[1], arrival_s=[0]), "input_tokens"),
        (dict(input_tokens=[], output_tokens=[], arrival_s=[]), "input_tokens"),
        (dict(input_tokens=[1, 1], output_tokens=[1, 1], arrival_s=[1, 0]), "arrival_s"),
        (dict(input_tokens=[1, 1], output_tokens=[1, 1], arrival_s=[0]), "arrival_s"),
        (dict(input_tokens=[1], output_tokens=[1], arrival_s=[math.nan]), "arrival_s"),
        (dict(input_tokens=[1], output_tokens=[1]), "arrival_s/concurrency"),
        (
            dict(input_tokens=[1], output_tokens=[1], arrival_s=[0], concurrency=2),
            "arrival_s/concurrency",
        ),
        (dict(input_tokens=[1], output_tokens=[1], concurrency=0), "concurrency"),
        (dict(input_tokens=[1], output_tokens=[1], concurrency=1.5), "concurrency"),
        (dict(input_tokens=[1], output_tokens=[1], concurrency="x"), "concurrency"),
        (
            dict(input_tokens=[1], output_tokens=[1], arrival_s=[0], chunk_tokens=2.5),
            "chunk_tokens",
        ),
        (dict(input_tokens=[1], output_tokens=[1], arrival_s=[0], chunk_tokens=0), "chunk_tokens"),
        (dict(input_tokens=[1], output_tokens=[1], arrival_s=[0], warmup=0.95), "warmup"),
        (
            dict(input_tokens=[90], output_tokens=[20], arrival_s=[0]),
            "input_tokens+output_tokens",
        ),
    ],
)
def test_bad_input_raises_input_error(kwargs, field):
    m = machine(kv_tokens=100)
    with pytest.raises(InputError) as e:
        simulate_requests(m, **kwargs)
    assert e.value.field == field


def test_bad_metric_raises_input_error():
    r = simulate_requests(machine(), [1], [2], [0.0])
    with pytest.raises(InputError):
        r.percentile("latency", 50)
    with pytest.raises(InputError):
        r.percentile("ttft", 101)


def test_mixed_lone_prompt_runs_alone():
    # decode 10 ms + 1 ms a sequence, prefill 0.1 ms a token on the one stage, 2 ms overhead:
    # a lone 20-token prompt is a prefill of its own, 2 ms + 2 ms = 4 ms; then 4 decode steps of
    # one sequence, 11 ms each
    m = machine(max_batch=4, d0=0.010, d1=0.001, overhead=0.002)
    r = simulate_requests(m, [20], [5], [0.0], warmup=0.0)
    assert r.ttft_s[0] == pytest.approx(0.004)
    assert r.e2e_s[0] == pytest.approx(0.004 + 4 * 0.011)


def test_mixed_prompt_rides_with_the_decode_step():
    # request 0 (3 tokens in, 4 out): alone 0.3 + 2 ms = 2.3 ms, then decode steps of 11 ms
    # ending at 13.3 and 24.3 ms. Request 1 (5 tokens in, 2 out) arrives at 20 ms and rides with
    # the next step: 11 ms + its compute 0.5 ms (no memory slack on this machine) + 2 ms =
    # 13.5 ms, to 37.8 ms: request 0's last token and request 1's first; then one 11 ms step.
    m = machine(max_batch=4, d0=0.010, d1=0.001, overhead=0.002)
    r = simulate_requests(m, [3, 5], [4, 2], [0.0, 0.020], warmup=0.0)
    assert r.ttft_s[0] == pytest.approx(0.0023)
    assert r.e2e_s[0] == pytest.approx(0.0378)
    assert r.ttft_s[1] == pytest.approx(0.0378 - 0.020)
    assert r.e2e_s[1] == pytest.approx(0.0488 - 0.020)
