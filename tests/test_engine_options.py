"""Engine options of the fair ledger: weights counted from the shapes, the Gopher typo switch,
the ASIC's achieved efficiencies (docs/inference-model.md, docs/models.md)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from chipletcloud.cli import main
from chipletcloud.config import WorkloadSpec, load_preset, resolve
from chipletcloud.explore import software
from chipletcloud.models.catalogue import PAPER_MODELS, load_model
from chipletcloud.perf.analytic import memory_per_chip
from chipletcloud.perf.workload import System

ONE_CHIP = System.broadcast(
    flops=1e12, mem_bytes=1e12, mem_bw=1e11, chip_link_bw=1e10, server_link_bw=1e9,
    chips_per_server=1.0, hop_latency_s=1e-6, fma_j=1e-12, mem_j_per_byte=1e-12,
    act_j_per_byte=1e-12, static_w_per_chip=0.0, flops_eff=1.0, mem_eff=1.0, op_overhead_s=0.0,
)  # fmt: skip


def _simulated_weights(shape) -> float:
    """Weights the simulator stores on one chip holding the whole model (pp = tp = 1), in
    parameters (1 byte each)."""
    wl = software.workload(WorkloadSpec(weight_bytes=1.0))
    w, _ = memory_per_chip(ONE_CHIP, shape, wl, pp=1, tp=1, batch=1)
    return float(np.asarray(w).reshape(-1)[0])


@pytest.mark.parametrize("name", PAPER_MODELS)
def test_paper_shape_weights_are_12_l_d2(name):
    # docs/models.md#the-eight-paper-models: the authors count 12 L d^2 (4 d^2 attention with K
    # and V projections d wide whatever the KV heads, 8 d^2 plain 4d MLP, no embeddings), e.g.
    # PaLM 12 x 118 x 18,432^2 = 481.07 B (402.6 B when K and V were sized for one KV head)
    spec = load_model(name)
    shape = software.model_shape(spec, WorkloadSpec(model_shape="paper"))
    ps = spec.paper_shape
    assert shape.weight_params == 12 * ps.num_layers * ps.hidden_size**2 == spec.params_12ld2
    assert _simulated_weights(shape) == spec.params_12ld2


@pytest.mark.parametrize("name", PAPER_MODELS)
def test_true_shape_weights_are_the_cards_count(name, capsys):
    # the card's published count (chipletcloud models show NAME --json: params), every
    # parameter placed (layers, norms and biases, embeddings, LM head): within 0.5%
    assert main(["models", "show", name, "--json"]) == 0
    params = json.loads(capsys.readouterr().out)["params"]
    shape = software.model_shape(load_model(name), WorkloadSpec(model_shape="true"))
    assert _simulated_weights(shape) == pytest.approx(params, rel=5e-3)
    assert shape.weight_params == pytest.approx(params, rel=1e-12)


def test_paper_palm_qkv_is_3d_wide():
    # PaLM's paper shape (MQA, head 384): the QKV projection d -> 3d, 3 x 18,432^2 weights,
    # while the KV cache holds one head: 2 x 118 x 384 x 2 B a token
    spec = load_model("palm")
    shape = software.model_shape(spec, WorkloadSpec())
    d = 18_432
    assert shape.attn_params - shape.q_width * d == 3 * d * d
    assert shape.kv_width == 384


def test_gopher_typo_switch():
    # the authors' code: d_model 16,328 with 128 heads (head size 127.5625), 12 x 80 x 16,328^2
    spec = load_model("gopher")
    fixed = software.model_shape(spec, WorkloadSpec())
    typo = software.model_shape(spec, WorkloadSpec(authors_gopher_typo=True))
    assert fixed.hidden == 16_384
    assert typo.hidden == 16_328 and typo.head_dim == pytest.approx(127.5625)
    assert typo.weight_params == pytest.approx(12 * 80 * 16_328**2, rel=1e-12)
    # the switch touches only a card that records the typo, and only the paper shape
    gpt3 = load_model("gpt3")
    assert software.model_shape(gpt3, WorkloadSpec(authors_gopher_typo=True)) == (
        software.model_shape(gpt3, WorkloadSpec())
    )
    true = WorkloadSpec(model_shape="true", authors_gopher_typo=True)
    assert software.model_shape(spec, true).hidden == 16_384


def _preset(tmp_path, text: str) -> str:
    p = tmp_path / "p.yaml"
    p.write_text("name: p\nextends: isca24\n" + text)
    return str(p)


def test_asic_efficiency_choice(tmp_path):
    # ideal (the authors'): 1, 1, 1; derated: the 7 nm card's sourced fractions, attention at
    # 0.5 of peak = 0.5 / 0.76 of the matmuls' FLOP/s
    ideal = software.asic_efficiency(resolve("authors"))
    assert ideal == {"flops_eff": 1.0, "mem_eff": 1.0, "attn_eff": 1.0}
    params = resolve(load_preset(_preset(tmp_path, "choices: {asic_efficiency: derated}\n")))
    eff = software.asic_efficiency(params)
    assert eff["flops_eff"] == 0.76 and eff["mem_eff"] == 0.8
    assert eff["flops_eff"] * eff["attn_eff"] == pytest.approx(0.5)
    for key in (
        "asic_matmul_flops_efficiency",
        "asic_attention_flops_efficiency",
        "asic_sram_bandwidth_efficiency",
    ):
        q = params.sources[f"tech.{key}"]
        assert q.source.startswith(("[L]", "[D]")) and q.unit


@pytest.mark.parametrize("value", [0.0, 1.5, -0.2])
def test_efficiency_outside_0_1_is_refused(tmp_path, capsys, value):
    text = (
        "overrides:\n  tech.asic_matmul_flops_efficiency:"
        f" {{value: {value}, unit: fraction, source: test}}\n"
    )
    assert main(["presets", "show", _preset(tmp_path, text)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "asic_matmul_flops_efficiency" in err
