"""Issue 14: software stacks, per-format efficiency, data-parallel replicas, the train/test split
and the calibration command."""

from __future__ import annotations

import json
import math

import pytest

from chipletcloud.baselines import calibrate as cal
from chipletcloud.baselines import hbm
from chipletcloud.baselines.devices import load_device
from chipletcloud.baselines.stacks import list_stacks, load_stack
from chipletcloud.baselines.validation import load_cases, predict, validate
from chipletcloud.cli import main
from chipletcloud.errors import InputError
from chipletcloud.models.catalogue import load_model

LLAMA70 = load_model("llama2-70b")


def _run(**kw):
    args = dict(tp=8, pp=1, batch=1, input_tokens=128, output_tokens=16)
    args.update(kw)
    device = args.pop("device", "h100-sxm")
    devices = args.pop("devices", args["tp"] * args["pp"])
    return hbm.run(device, devices, LLAMA70, **args)


def test_every_stack_loads_and_is_sourced():
    names = list_stacks()
    for era in ("fastertransformer", "tensorrt-llm", "vllm", "sglang", "jax-xla", "deepspeed"):
        assert era in names
    for name in names:
        card = load_stack(name)
        for key, q in card.constants.items():
            assert q.source.lstrip().startswith("["), (name, key)
        for key, (lo, hi) in card.fit.items():
            assert lo <= card.value(key) <= hi


def test_unknown_stack_is_one_line(capsys):
    with pytest.raises(InputError, match="stack"):
        load_stack("tensorflow-serving")
    argv = ["simulate", "--hardware", "h100-sxm", "--devices", "8", "--model", "llama2-70b"]
    argv += ["--tp", "8", "--pp", "1", "--batch", "1", "--input-tokens", "128"]
    argv += ["--output-tokens", "8", "--stack", "tensorflow-serving"]
    assert main(argv) == 2
    e = capsys.readouterr().err.strip()
    assert "stack" in e and "tensorflow-serving" in e and len(e.splitlines()) == 1


def test_request_and_step_overheads_add_exactly():
    # a stack's fixed costs: the request's once to the first token, the step's once a decode step
    base = load_stack("tensorrt-llm").with_values(
        {"request_overhead_s": 0.0, "step_overhead_s": 0.0}
    )
    more = base.with_values({"request_overhead_s": 0.040, "step_overhead_s": 0.002})
    a, b = _run(stack=base).summary(), _run(stack=more).summary()
    assert b["ttft_s"] - a["ttft_s"] == pytest.approx(0.040, rel=1e-9)
    assert b["tpot_s"] - a["tpot_s"] == pytest.approx(0.002, rel=1e-9)
    assert b["e2e_s"] - a["e2e_s"] == pytest.approx(0.040 + 15 * 0.002, rel=1e-9)


def test_cuda_graphs_charge_decode_kernels_at_the_graph_cost():
    # decode pays graph_kernel_s a kernel, prefill the eager launch: with nothing else changed,
    # one more microsecond a graph kernel adds (kernels a layer x 80 layers + LM head) us a step
    base = load_stack("tensorrt-llm").with_values({"graph_kernel_s": 1e-6})
    slower = base.with_values({"graph_kernel_s": 2e-6})
    a, b = _run(stack=base).summary(), _run(stack=slower).summary()
    kernels = sum(v for k, v in base.layer_kernels.items() if k != "lm_head")
    assert b["tpot_s"] - a["tpot_s"] == pytest.approx(1e-6 * (80 * kernels + 1), rel=1e-6)
    assert b["ttft_s"] == pytest.approx(a["ttft_s"], rel=1e-12)  # prefill launches eagerly


def test_gqa_aware_decode_reads_each_kv_head_once():
    # Llama-2-70B: 64 query heads share 8 KV heads; on one GPU a kernel that is not GQA-aware
    # reads each KV head once per query head, 8 x the KV bytes of the attention
    aware = load_stack("vllm")
    naive = aware.model_copy(update={"gqa_aware_decode": False})
    kw = dict(tp=2, batch=32, input_tokens=2048, output_tokens=64, weight_dtype="fp8")
    a = _run(stack=aware, **kw).summary()["breakdown"]["decode_s_per_token"]["attention"]
    b = _run(stack=naive, **kw).summary()["breakdown"]["decode_s_per_token"]["attention"]
    # memory-bound: 8 x the bytes, less the fixed kernel cost and the compute both pay alike
    assert 7.0 < b / a <= 8.0


def test_format_efficiency_and_weight_only_quantisation():
    card = load_device("h100-sxm")
    fp8 = hbm.device_system(card, "fp8")
    assert fp8.flops[0] == card.peak_flops("fp8")
    assert fp8.flops_eff[0] == card.value("flops_efficiency_fp8")
    # int4 weights with 16-bit math: bf16 peak and bf16 efficiency, half-byte weight reads
    w4 = hbm.device_system(card, "int4", compute_dtype="bf16")
    assert w4.flops[0] == card.peak_flops("bf16")
    assert w4.flops_eff[0] == card.value("flops_efficiency")
    r = _run(weight_dtype="int4", compute_dtype="bf16").summary()
    assert r["compute_dtype"] == "bf16"
    assert r["weight_bytes_per_device"] == pytest.approx(
        _run().summary()["weight_bytes_per_device"] / 4, rel=1e-9
    )
    # a format the device has no units for is refused, never silently run at another rate
    with pytest.raises(InputError, match="dtype"):
        hbm.device_system(load_device("a100-80gb"), "bf16", compute_dtype="fp8")
    assert hbm.device_system(load_device("b200"), "fp4").flops[0] == 9e15


def test_devices_beyond_tp_run_replicas(capsys):
    one = _run(tp=2, devices=2, batch=16, weight_dtype="fp8").summary()
    four = _run(tp=2, devices=8, batch=16, weight_dtype="fp8").summary()
    assert four["replicas"] == 4 and four["idle_devices"] == 0
    assert four["output_tokens_per_s"] == pytest.approx(4 * one["output_tokens_per_s"])
    assert four["tpot_s"] == one["tpot_s"]
    argv = ["simulate", "--hardware", "h100-sxm", "--devices", "7", "--model", "llama2-70b"]
    argv += ["--tp", "2", "--pp", "1", "--batch", "16", "--input-tokens", "128"]
    argv += ["--output-tokens", "8", "--weight-dtype", "fp8", "--json"]
    assert main(argv) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["replicas"] == 3 and d["idle_devices"] == 1
    argv.remove("--json")
    assert main(argv) == 0
    assert "3 data-parallel replicas" in capsys.readouterr().err


def _synthetic(cases, values):
    """The cases with 'measured' replaced by the simulator's value at known device values."""
    card = load_device(cases[0]["setup"]["device"]).with_values(values)
    return [dict(c, measured=predict(c, card)) for c in cases]


def test_fit_recovers_known_parameters():
    # A100 GEMMs and the GPT-3 layers (LLMCompass) made from known efficiencies: the least
    # squares on log error finds them again
    cases = [c for c in load_cases("train") if c["source_key"] == "llmcompass-isca24"]
    truth = {"flops_efficiency": 0.61, "hbm_efficiency": 0.67}
    result = cal.fit(_synthetic(cases, truth))
    fitted = {(r["owner"], r["parameter"]): r["value"] for r in result.table()}
    for key, v in truth.items():
        assert fitted[("a100-80gb", key)] == pytest.approx(v, rel=2e-3)
    assert result.train_median_abs_error < 1e-3


def test_fit_warns_at_a_bound():
    cases = [c for c in load_cases("train") if c["id"].startswith("llmcompass-a100-gemm")]
    fast = [dict(c, measured=c["measured"] / 3.0) for c in cases]  # 3x faster than any A100
    lines: list[str] = []
    result = cal.fit(fast, warn=lines.append)
    assert "a100-80gb.flops_efficiency" in result.at_bound
    assert any("a100-80gb.flops_efficiency" in x and "upper bound" in x for x in lines)


def test_a_device_without_training_cases_is_refused():
    with pytest.raises(InputError, match="tpu-v6e"):
        cal.fit(device="tpu-v6e")


def test_shipped_cards_are_the_fit():
    # the built-in MI300X and vLLM cards are what `chipletcloud calibrate` gives (reproducible)
    result = cal.fit(device="mi300x")
    devs, stacks = result.cards()
    for r in result.table():
        card = load_device(r["owner"]) if r["kind"] == "device" else load_stack(r["owner"])
        assert card.constants[r["parameter"]].value == pytest.approx(r["value"], rel=2e-3)
    assert "mi325x" in devs  # tied: the same CDNA 3 compute dies share the fit


def test_leave_one_source_out_and_split(tmp_path):
    cases = [
        c
        for c in load_cases()
        if c["source_key"] in ("llmcompass-isca24", "vidur-mlsys24", "llm-analysis-readme")
    ]
    report = validate(cases, leave_one_out=True)
    assert report["split"]["test"]["cases"] == 4 and report["split"]["train"]["cases"] == 15
    loso = report["leave_one_source_out"]
    assert set(loso["per_source"]) == {"llmcompass-isca24", "vidur-mlsys24"}
    assert report["leave_one_source_out_median_abs_error"] == loso["median_abs_error"]
    assert len(loso["cases"]) == 15 and math.isfinite(loso["median_abs_error"])
    assert set(loso["per_device"]) == {"a100-80gb", "h100-sxm"}


def test_calibrate_cli(tmp_path, capsys):
    assert main(["calibrate", "--device", "mi300x", "--json", "--out", str(tmp_path)]) == 0
    d = json.loads(capsys.readouterr().out)
    assert {"parameters", "split", "train_ids", "at_bound", "written"} <= set(d)
    assert all(r["low"] <= r["value"] <= r["high"] for r in d["parameters"])
    card = load_device(str(tmp_path / "devices" / "mi300x.json"))
    assert "calibrate" in card.constants["hbm_efficiency"].source
    assert load_stack(str(tmp_path / "stacks" / "vllm.yaml")).name == "vllm"
    assert main(["calibrate", "--device", "tpu-v6e"]) == 2
    e = capsys.readouterr().err.strip()
    assert "tpu-v6e" in e and len(e.splitlines()) == 1
