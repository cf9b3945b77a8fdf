"""The analytic serving model (perf/serving.py), the SLO grammar (models/slo.py), the SLO search
and its command-line faces (docs/serving.md)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chipletcloud.cli import main
from chipletcloud.errors import InputError
from chipletcloud.models.slo import Slo
from chipletcloud.perf.iteration import IterationCosts, LengthStats
from chipletcloud.perf.serving import ServingModel

GRID_B = np.array([1.0, 2.0, 4.0, 8.0, 16.0, 64.0, 256.0, 1024.0])
GRID_T = np.array([1.0, 16.0, 256.0, 4096.0])


def machine(d0=0.01, d1=0.0, stage=0.0, pp=1, overhead=0.0, max_batch=64, kv=math.inf, n=1):
    """n identical points: decode step d0 + d1 b seconds, prefill stage ``stage`` s a token."""
    return IterationCosts(
        batch_grid=GRID_B,
        decode_s=np.tile(d0 + d1 * GRID_B, (n, 1)),
        token_grid=GRID_T,
        prefill_stage_s=np.tile(stage * GRID_T, (n, 1)),
        pp=np.full(n, float(pp)),
        request_overhead_s=np.full(n, overhead),
        max_batch=np.full(n, float(max_batch)),
        kv_tokens=np.full(n, kv),
        feasible=np.ones(n, bool),
    )


def fixed(p=100, g=51):
    return LengthStats(np.full(1000, p), np.full(1000, g), 1.0)


# ------------------------------------------------------------------------------- the SLO grammar
def test_slo_parses_and_normalises():
    s = Slo.parse("ttft_p99=2s, tpot_p50=50ms")
    assert s.limit("ttft", 99) == 2.0 and s.limit("tpot", 50) == pytest.approx(0.05)
    assert s.text() == "tpot_p50=50ms,ttft_p99=2s"
    assert not Slo.parse(None) and not Slo.parse("")
    assert s.with_limit("tpot", 50, 0.02).limit("tpot", 50) == pytest.approx(0.02)
    assert s.with_limit("tpot", 50, 0.2).limit("tpot", 50) == pytest.approx(0.05)  # tighter kept


@pytest.mark.parametrize(
    "spec", ["ttft=2s", "ttft_p95=2s", "ttft_p99=2", "latency_p50=1s", "ttft_p99=0s",
             "ttft_p99=2s,ttft_p99=3s", "ttft_p99=-1s", "ttft_p99=2h"],
)  # fmt: skip
def test_slo_refuses_in_one_line(spec):
    with pytest.raises(InputError) as e:
        Slo.parse(spec)
    assert "slo" in str(e.value) and len(str(e.value).splitlines()) == 1


# ------------------------------------------------------------------- hand values of the model
def test_light_load_is_one_request_alone():
    # decode 10 ms + 10 us a row, prefill 2 us a token a stage over 4 stages, 1 ms overhead.
    # Alone (nothing decoding), both schedulers: TTFT = 4 stages x 100 tokens x 2 us + 1 ms =
    # 1.8 ms; TPOT = D(1) = 10.01 ms.
    costs = machine(d0=0.010, d1=1e-5, stage=2e-6, pp=4, overhead=1e-3)
    ttft = 4 * 100 * 2e-6 + 1e-3
    for sched in ("mixed", "prefill-first"):
        m = ServingModel(costs, fixed(), scheduler=sched)
        r = m.metrics(m.rate_sat * 1e-6)
        assert r["tpot_p50_s"][0] == pytest.approx(0.01001, rel=1e-3)
        assert r["ttft_p50_s"][0] == pytest.approx(ttft, rel=1e-2), sched
        assert r["e2e_p50_s"][0] == pytest.approx(ttft + 50 * 0.01001, rel=1e-2)


def test_mixed_step_hand_values():
    from chipletcloud.perf.iteration import mixed_step_s

    # decode step 10 ms with 3 ms of memory slack, 4 stages, 1 ms overhead; the prompt's
    # compute 1 ms a stage (5 ms in the last case), its prefill 2 ms a stage
    def step(b, cx=0.001, x=100):
        return float(mixed_step_s(0.010, 0.003, cx, 0.002, 4, b, x, 0.001))

    assert step(2) == pytest.approx(0.011)  # 2 micro-batches: 4/2 x 1 ms = 2 ms, hidden
    assert step(8, cx=0.005) == pytest.approx(0.010 + (0.005 - 0.003) + 0.001)
    assert step(1, cx=0.005) == pytest.approx(0.010 + (4 * 0.005 - 0.003) + 0.001)
    assert step(0) == pytest.approx(4 * 0.002 + 0.001)  # alone: the whole pipeline
    assert step(3, x=0) == pytest.approx(0.010)  # no prompt: the decode step


def test_saturation_with_free_prefill_is_the_decode_bound():
    # free prefill: 64 sequences a 10 ms step, 50 decode steps a request:
    # rate_sat = 64 / (50 x 10 ms) = 128 requests/s, 6,528 output tokens/s at 51 tokens each
    m = ServingModel(machine(max_batch=64), fixed())
    assert m.rate_sat[0] == pytest.approx(128.0, rel=1e-6)
    r = m.metrics(64.0)  # half load: T = 10 ms, B = 64 x 50 x 0.01 = 32
    assert r["tpot_mean_s"][0] == pytest.approx(0.010, rel=1e-6)
    assert r["batch"][0] == pytest.approx(32.0, rel=1e-6)
    assert r["output_tokens_per_s"][0] == pytest.approx(64.0 * 51)


def test_kv_budget_caps_the_batch():
    # 10,000 KV tokens over a mean in-flight context of 100 + 51 / 2 = 125.5 tokens: 79 running
    stats = fixed()
    assert stats.decode_context == pytest.approx(100 + 51 / 2)
    m = ServingModel(machine(max_batch=1024, kv=10_000.0), stats)
    assert m.bcap[0] == 79


def test_unstable_load_is_infinite():
    m = ServingModel(machine(), fixed())
    r = m.metrics(m.rate_sat * 1.01)
    assert not r["stable"][0] and math.isinf(r["ttft_p99_s"][0])


machines = st.builds(
    lambda d0, d1, stage, pp, ovh, mb: machine(d0, d1, stage, pp, ovh, mb),
    st.floats(1e-3, 0.05), st.floats(0.0, 1e-4), st.floats(0.0, 1e-5),
    st.integers(1, 96), st.floats(0.0, 0.05), st.sampled_from([8, 64, 256, 1024]),
)  # fmt: skip


@settings(max_examples=40, deadline=None)
@given(machines, st.floats(0.05, 0.9))
def test_latencies_grow_with_the_rate(costs, f):
    stats = LengthStats(np.arange(20, 2020, 2), np.arange(2, 1002), 1.0)
    m = ServingModel(costs, stats)
    lo, hi = m.metrics(m.rate_sat * f * 0.5), m.metrics(m.rate_sat * f)
    for k in ("tpot_p50_s", "tpot_mean_s", "e2e_p99_s"):
        assert hi[k][0] >= lo[k][0] * (1 - 1e-6), k
    # with a pipeline, a prompt riding with more decode micro-batches fills it better (the
    # mixed step's pp / n factor), so a first token may come sooner at a higher load; without
    # one, the first token only waits longer
    if costs.pp[0] == 1:
        for k in ("ttft_p50_s", "ttft_p99_s"):
            assert hi[k][0] >= lo[k][0] * (1 - 1e-6), k
    for pct in ("ttft", "tpot", "e2e"):
        assert lo[f"{pct}_p50_s"][0] <= lo[f"{pct}_p90_s"][0] <= lo[f"{pct}_p99_s"][0] * (1 + 1e-9)


@settings(max_examples=30, deadline=None)
@given(machines, st.floats(0.005, 0.2), st.floats(0.05, 5.0))
def test_max_rate_meets_the_slo_and_is_the_highest(costs, tpot, ttft):
    stats = LengthStats(np.arange(20, 2020, 2), np.arange(2, 1002), 1.0)
    m = ServingModel(costs, stats)
    slo = Slo.parse(f"tpot_p50={tpot}s,ttft_p99={ttft}s")
    rate, at = m.max_rate(slo)
    if rate[0] > 0:
        assert m.meets(at, slo)[0]
        if rate[0] < m.rate_sat[0] * (1 - 1e-5):  # a little more load misses it
            assert not m.meets(m.metrics(rate * 1.02), slo)[0]
    else:  # not even the lightest load meets it
        assert not m.meets(m.metrics(m.rate_sat * 1e-6), slo)[0]


# ---------------------------------------------------------- analytic vs the event simulation
def test_serving_cases_meet_the_target():
    from chipletcloud.baselines.serving_validation import CHECKED, serving_cases

    r = serving_cases()
    assert len(r["cases"]) >= 20
    loads = {c["load"] for c in r["cases"]}
    assert any("closed" in x for x in loads) and "load 0.10" in loads  # light to saturated
    for k in CHECKED:  # issue 15: median |error| < 10% for each checked metric
        assert r["median_abs_error"][k] < 0.10, (k, r["median_abs_error"][k])
    for c in r["cases"]:
        assert {"ttft_p90_s", "ttft_p99_s", "tpot_p99_s"} <= set(c)


# ------------------------------------------------------------------------------- the CLI faces
SIM = ["simulate", "--hardware", "h100-sxm", "--devices", "8", "--model", "llama2-70b",
       "--tp", "8", "--pp", "1", "--batch", "256", "--workload", "chat"]  # fmt: skip


def test_simulate_reports_goodput_at_the_slo(capsys):
    assert main([*SIM, "--slo", "ttft_p99=2s,tpot_p50=50ms", "--json"]) == 0
    sv = json.loads(capsys.readouterr().out)["serving"]
    assert sv["tpot_p50_s"] <= 0.050 * (1 + 1e-6) and sv["ttft_p99_s"] <= 2.0
    assert sv["goodput_requests_per_s"] > 0 and sv["workload"]["name"] == "chat"
    assert sv["output_tokens_per_s"] == pytest.approx(
        sv["goodput_requests_per_s"] * LengthStats.of_name("chat").mean_g, rel=1e-9
    )


@pytest.mark.parametrize(
    "slo,fragment", [("ttft_p99=1ms", "best: ttft_p99"), ("ttft_p99=2", "METRIC_PCT")]
)
def test_simulate_refuses_an_slo_in_one_line(capsys, slo, fragment):
    assert main([*SIM, "--slo", slo]) == 2
    e = capsys.readouterr().err.strip()
    assert fragment in e and len(e.splitlines()) == 1


def test_compare_bands_and_headline(capsys):
    assert main(["compare", "--model", "gpt2", "--workload", "chat", "--slo", "ttft_p99=2s",
                 "--json"]) == 0  # fmt: skip
    d = json.loads(capsys.readouterr().out)
    assert d["serving"]["slo"]["spec"] == "ttft_p99=2s"
    assert d["serving"]["workload"]["name"] == "chat"
    rows = d["bands"]["gpt2"]
    assert [r["tokens_per_s_per_user"] for r in rows] == [10, 25, 50, 100, 200, 500, 1000]
    systems = set(rows[0]["systems"])
    assert {"chiplet-cloud", "a100-80gb-rented", "tpu-v4-fabricated"} <= systems
    for name in systems:  # a faster band never costs less; once out of reach, out of reach
        v = [r["systems"][name] for r in rows]
        reach = [x for x in v if x is not None]
        assert reach == sorted(reach) and v[: len(reach)] == reach
    assert {"b200-rented", "tpu-v6e-fabricated", "mi300x-rented"} <= systems  # every device
    for r in rows:
        vals = {k: v for k, v in r["systems"].items() if v is not None}
        rented = {k: v for k, v in vals.items() if k.endswith("-rented")}
        if rented:
            assert r["cheapest_rented"]["system"] == min(rented, key=rented.get)
        else:
            assert r["cheapest_rented"]["system"] is None
        if vals:
            assert r["best_system"] == min(vals, key=vals.get)
            assert r["usd_per_million_tokens"] == min(vals.values())
        else:
            assert r["best_system"] is None
    assert d["summary"]["headline"] == []  # the paper's pairs need GPT-3 or PaLM


def test_compare_refuses_a_bad_slo_before_work(capsys):
    assert main(["compare", "--model", "gpt2", "--slo", "ttft_p99=fast"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


@settings(max_examples=10, deadline=None)
@given(st.lists(machines, min_size=2, max_size=4), st.floats(0.1, 0.9))
def test_points_are_independent_of_their_neighbours(ms, f):
    # vectorised over points: each point's metrics are those it has alone
    stats = LengthStats(np.arange(20, 2020, 2), np.arange(2, 1002), 1.0)
    many = IterationCosts(
        batch_grid=GRID_B,
        decode_s=np.vstack([m.decode_s for m in ms]),
        token_grid=GRID_T,
        prefill_stage_s=np.vstack([m.prefill_stage_s for m in ms]),
        pp=np.concatenate([m.pp for m in ms]),
        request_overhead_s=np.concatenate([m.request_overhead_s for m in ms]),
        max_batch=np.concatenate([m.max_batch for m in ms]),
        kv_tokens=np.concatenate([m.kv_tokens for m in ms]),
        feasible=np.ones(len(ms), bool),
    )
    for sched in ("mixed", "prefill-first"):
        together = ServingModel(many, stats, scheduler=sched)
        both = together.metrics(together.rate_sat * f)
        for i, m in enumerate(ms):
            alone = ServingModel(m, stats, scheduler=sched)
            one = alone.metrics(alone.rate_sat * f)
            for k in ("ttft_p99_s", "tpot_p50_s", "e2e_p50_s", "output_tokens_per_s"):
                assert both[k][i] == pytest.approx(one[k][0], rel=1e-9), (sched, k)


def test_evaluate_slo_search_and_an_slo_nobody_meets(small_hardware_dir, tmp_path, capsys):
    base = ["evaluate", "--hardware", str(small_hardware_dir), "--model", "gpt2",
            "--workload", "chat"]  # fmt: skip
    assert main([*base, "--slo", "ttft_p99=2s,tpot_p50=50ms", "--out", str(tmp_path / "a"),
                 "--json"]) == 0  # fmt: skip
    sv = json.loads(capsys.readouterr().out)["serving"]
    best = sv["models"]["gpt2"]["best"]
    assert best["ttft_p99_s"] <= 2.0 and best["tpot_p50_s"] <= 0.050 * (1 + 1e-6)
    assert best["usd_per_million_tokens"] > 0 and best["goodput_requests_per_s"] > 0
    assert json.loads((tmp_path / "a" / "serving.json").read_text())["slo"]["spec"] == (
        "tpot_p50=50ms,ttft_p99=2s"
    )
    # nobody serves a first token in a microsecond: said, with the best achievable, exit 0
    assert main([*base, "--slo", "ttft_p50=0.001ms", "--out", str(tmp_path / "b")]) == 0
    text = capsys.readouterr().out
    assert "no design meets the SLO" in text and "best achievable: ttft_p50" in text
    assert main([*base, "--slo", "ttft_p50=0.001ms", "--out", str(tmp_path / "c"), "--json"]) == 0
    m = json.loads(capsys.readouterr().out)["serving"]["models"]["gpt2"]
    assert m["best"] is None and m["best_achievable"]["ttft_p50_s"] > 1e-6
    # a bad SLO is refused before anything is written
    assert main([*base, "--slo", "ttft=1s", "--out", str(tmp_path / "d")]) == 2
    assert not (tmp_path / "d").exists()


def test_simulate_schedulers(capsys):
    got = {}
    for sched in ("mixed", "prefill-first"):
        assert main([*SIM, "--scheduler", sched, "--json"]) == 0
        got[sched] = json.loads(capsys.readouterr().out)["serving"]
        assert got[sched]["scheduler"] == sched
    # no SLO: the saturation rate. Mixed steps let the prompt rows share the decode step's
    # weight reads; prefill-first stops the decodes for every prefill: mixed serves more
    a, b = (got[k]["output_tokens_per_s"] for k in ("mixed", "prefill-first"))
    assert a > b > 0
    assert main([*SIM, "--scheduler", "fifo"]) == 2
    assert "scheduler" in capsys.readouterr().err
    assert main([*SIM, "--scheduler", "prefill-first", "--chunk-tokens", "512"]) == 2
    assert "chunk_tokens" in capsys.readouterr().err
