"""Request workloads (issue 15, item 1): built-in sourced workloads, traces, and --workload."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from chipletcloud.cli import main
from chipletcloud.errors import InputError
from chipletcloud.models.requests import Lengths, list_workloads, load_trace, load_workload


def test_builtin_workloads_are_sourced():
    names = list_workloads()
    assert {"chat", "summarize", "reasoning", "code"} <= set(names)
    for name in names:
        wl = load_workload(name)
        for part in (wl.input_tokens, wl.output_tokens, wl.arrivals):
            assert part.source.lstrip().startswith("["), (name, part)
        i, o = wl.mean_lengths()
        assert i >= 1 and o >= 1
    # the shapes the names promise: summarisation reads long and writes short, reasoning writes
    # long
    s, r = load_workload("summarize").mean_lengths(), load_workload("reasoning").mean_lengths()
    assert s[0] > 5 * s[1] and r[1] > r[0]


def test_lognormal_from_mean_and_median():
    # sigma = sqrt(2 ln(mean / p50)); mu = ln p50: the sample's median and mean come back
    x = Lengths(distribution="lognormal", mean=300.0, p50=200.0, max=10**7, source="[D] test")
    s = x.sample(400_000, np.random.default_rng(1))
    assert np.median(s) == pytest.approx(200, rel=0.02)
    assert s.mean() == pytest.approx(300, rel=0.02)
    assert math.sqrt(2 * math.log(1.5)) == pytest.approx(0.9005, rel=1e-3)


def test_gamma_arrivals_have_the_stated_burstiness():
    wl = load_workload("chat").model_copy(
        update={
            "arrivals": load_workload("chat").arrivals.model_copy(
                update={"process": "gamma", "cv": 3.0}
            )
        }
    )
    _, _, t = wl.requests(200_000, rate_per_s=10.0, seed=3)
    gaps = np.diff(t)
    assert gaps.mean() == pytest.approx(0.1, rel=0.03)
    assert gaps.std() / gaps.mean() == pytest.approx(3.0, rel=0.05)


def _trace(tmp_path, rows, name="t.csv"):
    p = tmp_path / name
    p.write_text("input_tokens,output_tokens,arrival_s\n" + "\n".join(rows) + "\n")
    return p


def test_trace_replays_and_states_its_means(tmp_path):
    p = _trace(tmp_path, ["100,10,0.0", "300,30,0.5", "200,20,1.0"])
    wl = load_trace(p)
    assert wl.mean_lengths() == (200, 20)
    ins, outs, arr = wl.requests(2)
    assert list(ins) == [100, 300] and list(outs) == [10, 30] and list(arr) == [0.0, 0.5]
    assert load_workload(str(p)).describe()["from_trace"] is True


@pytest.mark.parametrize(
    "rows,fragment",
    [
        (["100,10,0.0", "-3,10,1.0"], "trace.input_tokens"),
        (["100,10.5,0.0"], "trace.output_tokens"),
        (["100,10,1.0", "100,10,0.5"], "non-decreasing"),
        (["100,10,nan"], "trace.arrival_s"),
    ],
)
def test_bad_traces_are_one_line(tmp_path, rows, fragment):
    with pytest.raises(InputError, match=fragment):
        load_trace(_trace(tmp_path, rows))


def test_trace_without_a_column_is_refused(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("input_tokens,arrival_s\n10,0\n")
    with pytest.raises(InputError, match="output_tokens"):
        load_trace(p)


def test_simulate_with_a_workload(capsys):
    argv = ["simulate", "--hardware", "h100-sxm", "--devices", "8", "--model", "llama2-70b"]
    argv += ["--tp", "8", "--pp", "1", "--batch", "8", "--workload", "chat", "--json"]
    assert main(argv) == 0
    d = json.loads(capsys.readouterr().out)
    i, o = load_workload("chat").mean_lengths()
    assert d["workload"]["name"] == "chat"
    assert (d["workload"]["mean_input_tokens"], d["workload"]["mean_output_tokens"]) == (i, o)
    # the same run with the lengths spelt out gives the same numbers
    argv2 = [a for a in argv if a not in ("--workload", "chat")]
    argv2 += ["--input-tokens", str(i), "--output-tokens", str(o)]
    assert main(argv2) == 0
    e = json.loads(capsys.readouterr().out)
    assert e["tpot_s"] == d["tpot_s"] and e["ttft_s"] == d["ttft_s"]


@pytest.mark.parametrize(
    "extra,fragment",
    [([], "input_tokens"), (["--workload", "poetry"], "workload")],
)
def test_simulate_workload_bad_input(capsys, extra, fragment):
    argv = ["simulate", "--hardware", "h100-sxm", "--devices", "8", "--model", "llama2-70b"]
    argv += ["--tp", "8", "--pp", "1", "--batch", "8", *extra]
    assert main(argv) == 2
    e = capsys.readouterr().err.strip()
    assert fragment in e and len(e.splitlines()) == 1


# a small all-SRAM machine (an SRAM device card: docs/interconnect.md#sram-device-cards)
SRAM_CARD = """
name: toy-sram
kind: sram
peak_tflops: {bf16: 100.0}
sram_mb: 200.0
sram_tbps: 50.0
tdp_w: 300.0
chips_per_server: 8
topology: full
links: {count: 7, gbps_per_link: 800.0, hop_latency_ns: 250.0}
network: {gbps: 400.0, latency_us: 2.0, ports_per_server: 2}
server_cost_usd: 50000.0
"""


def test_evaluate_runs_a_workloads_mean_lengths(tmp_path, capsys):
    card = tmp_path / "card.yaml"
    card.write_text(SRAM_CARD)
    out = tmp_path / "o"
    argv = ["evaluate", "--design", str(card), "--model", "llama2-7b", "--workload", "code"]
    assert main([*argv, "--out", str(out), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    i, o = load_workload("code").mean_lengths()
    assert (d["workload"]["prompt_tokens"], d["workload"]["output_tokens"]) == (i, o)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["request_workload"]["name"] == "code"
    # an unknown workload is refused before anything is written
    assert main([*argv[:-1], "poetry", "--out", str(tmp_path / "p")]) == 2
    assert not (tmp_path / "p").exists()


def test_a_request_beyond_the_positions_is_refused_or_left_out(capsys):
    # GPT-2's learned position table has 1,024 rows (HF gpt2 config, n_positions): the code
    # workload's 2,066 + 21 mean request cannot be served by it; one model: one line, exit 2
    assert main(["compare", "--model", "gpt2", "--workload", "code", "--json"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "at most 1025 tokens" in err and "gpt2" in err
    # in a run of several, it is left out with a warning naming it; the others run
    from chipletcloud.config import resolve
    from chipletcloud.explore.software import ContextBeyondPositions, servable
    from chipletcloud.models.catalogue import load_model

    params = resolve("isca24").with_workload(prompt_tokens=2066, output_tokens=21)
    with pytest.warns(ContextBeyondPositions, match="gpt2 left out"):
        kept = servable([load_model("gpt2"), load_model("llama2-7b")], params)
    assert [s.name for s in kept] == ["llama2-7b"]
    # 1,024 positions hold a 1,000 + 25 request (the last token is never fed back), not 1,026
    ok = resolve("isca24").with_workload(prompt_tokens=1000, output_tokens=25)
    assert [s.name for s in servable([load_model("gpt2")], ok)] == ["gpt2"]
    with pytest.raises(InputError, match="at most 1025"):
        servable([load_model("gpt2")], ok.with_workload(output_tokens=26))


def test_compare_serves_the_workload_on_both_sides(capsys, tmp_path):
    # GPT-2's shape with 4,096 positions (HF gpt2 config.json, n_positions raised): a small model
    # that can hold the code workload's 2,066 + 21 tokens
    cfg = {
        "model_type": "gpt2", "n_layer": 12, "n_embd": 768, "n_head": 12, "n_inner": None,
        "vocab_size": 50257, "n_positions": 4096, "activation_function": "gelu_new",
        "layer_norm_epsilon": 1e-5, "tie_word_embeddings": True,
    }  # fmt: skip
    path = tmp_path / "gpt2-4k" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps(cfg))
    assert main(["compare", "--model", str(path), "--workload", "code", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    i, o = load_workload("code").mean_lengths()
    assert d["request_workload"]["name"] == "code"
    assert (d["workload"]["prompt_tokens"], d["workload"]["output_tokens"]) == (i, o)
    # 2,066 prompt tokens for 21 generated ones: every output token carries ~100 of prefill, so
    # a token costs more than under the paper's 128/256 workload on both sides
    assert main(["compare", "--model", str(path), "--json"]) == 0
    base = json.loads(capsys.readouterr().out)
    (name,) = d["models"]
    m, b = d["models"][name], base["models"][name]
    assert m["chiplet_cloud_usd_per_million_tokens"] > b["chiplet_cloud_usd_per_million_tokens"]
    a100 = "a100-80gb-rented"
    assert (
        m["baselines"][a100]["usd_per_million_tokens"]
        > b["baselines"][a100]["usd_per_million_tokens"]
    )
