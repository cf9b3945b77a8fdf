"""SRAM device cards: loading, refusals, the System they become, and the CLI around them
(``simulate --hardware CARD``, ``evaluate --design CARD [--servers N]``, ``presets show``)."""

from __future__ import annotations

import json
import math

import pytest
import yaml

from chipletcloud.baselines.hbm import run
from chipletcloud.baselines.sram import (
    evaluate_design,
    load_sram_card,
    parse_sram_card,
    sram_system,
)
from chipletcloud.cli import main
from chipletcloud.config import resolve
from chipletcloud.errors import InputError
from chipletcloud.models.catalogue import load_model
from chipletcloud.perf.codes import TOPOLOGIES

CARD = {
    "name": "toy-sram",
    "kind": "sram",
    "peak_tflops": {"bf16": 100.0, "int8": 400.0},
    "sram_mb": 200.0,
    "sram_tbps": 50.0,
    "tdp_w": 300.0,
    "chips_per_server": 8,
    "topology": "full",
    "links": {"count": 7, "gbps_per_link": 800.0, "hop_latency_ns": 250.0},
    "network": {"gbps": 400.0, "latency_us": 2.0, "ports_per_server": 2},
    "collective_sync_us": 1.0,
    "op_latency_us": 0.5,
    "server_cost_usd": 50_000.0,
}


def _write(tmp_path, card, name="card.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(card))
    return path


def test_card_becomes_one_system_row():
    s = sram_system(parse_sram_card(CARD), "int8")
    # 7 links x 800 Gb/s = 700 GB/s injected; one 400 Gb/s port = 50 GB/s; two ports a server
    assert float(s.chip_link_bw[0]) == pytest.approx(700e9)
    assert float(s.server_link_bw[0]) == pytest.approx(50e9)
    assert float(s.nics_per_server[0]) == 2.0
    assert float(s.hop_latency_s[0]) == pytest.approx(250e-9)
    assert float(s.net_hop_s[0]) == pytest.approx(2e-6)
    assert float(s.sync_s[0]) == pytest.approx(1e-6)
    assert float(s.op_overhead_s[0]) == pytest.approx(0.5e-6)
    assert float(s.topology[0]) == TOPOLOGIES["full"]
    assert float(s.flops[0]) == pytest.approx(400e12)  # int8 weights run at the int8 peak
    assert float(sram_system(parse_sram_card(CARD), "bf16").flops[0]) == pytest.approx(100e12)
    assert float(s.mem_bytes[0]) == 200e6 and float(s.mem_bw[0]) == 50e12


def test_latency_set_applies_when_the_card_is_silent():
    card = parse_sram_card({k: v for k, v in CARD.items() if not k.endswith("_us")})
    s = sram_system(card)
    from chipletcloud.baselines.sram import latency_set

    lat = latency_set("sram_machines")
    assert float(s.op_overhead_s[0]) == float(lat["op_latency_s"].value)
    assert float(s.sync_s[0]) == float(lat["collective_sync_s"].value)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"topology": "torus2d", "chips_per_server": 7}, "topology"),  # 7 chips: no grid
        ({"topology": "full", "chips_per_server": 16}, "links.count"),  # 7 links for 16 chips
        ({"links": {"count": 7, "gbps_per_link": 800.0, "hop_latency_ns": -1.0}}, "links"),
        ({"links": {"count": 7, "gbps_per_link": 800.0, "hop_latency_ns": math.nan}}, "links"),
        ({"network": {"gbps": 400.0, "latency_us": -2.0}}, "network"),
        ({"wafer_scale": True}, "wafer_scale"),
        ({"colour": "blue"}, "colour"),
        ({"peak_tflops": {"bf16": -1.0}}, "peak_tflops"),
        ({"peak_tflops": {"tf32": 10.0}}, "peak_tflops"),
    ],
)
def test_bad_cards_are_refused_naming_the_field(change, field):
    with pytest.raises(InputError) as exc:
        parse_sram_card({**CARD, **change})
    assert field in exc.value.field


def test_simulate_an_sram_card_by_hand(tmp_path):
    # One breakdown term by hand: the layer norms, where the card's fixed time per operation
    # shows. llama2-7b on 32 chips, TP 8 x PP 4: a token passes 4 stages of 8 layers.
    card = parse_sram_card(CARD)
    spec = load_model("llama2-7b")
    r = run(card, 32, spec, tp=8, pp=4, batch=1, input_tokens=128, output_tokens=16)
    bd = r.summary()["breakdown"]["decode_s_per_token"]
    # norms: 2 kernels a layer x 32 layers x 0.5 us, plus two reads of d = 4096 activations
    # (2 B) per layer at 50 TB/s -- per token, the pipeline's 4 stages in series
    norms = 32 * (2 * 0.5e-6 + 2 * 2 * 4096 * 2 / 50e12)
    assert bd["norms"] == pytest.approx(norms, rel=1e-9)


def test_cli_simulate_accepts_an_sram_card(tmp_path, capsys):
    path = _write(tmp_path, CARD)
    rc = main(
        [
            "simulate", "--hardware", str(path), "--devices", "128", "--model", "llama2-7b",
            "--tp", "32", "--pp", "4", "--batch", "1", "--input-tokens", "128",
            "--output-tokens", "16", "--json",
        ]
    )  # fmt: skip
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["device"] == "toy-sram" and out["tpot_s"] > 0


def test_cli_refuses_a_bad_card_with_one_line(tmp_path, capsys):
    path = _write(tmp_path, {**CARD, "topology": "torus2d", "chips_per_server": 7})
    out = tmp_path / "out"
    rc = main(["evaluate", "--design", str(path), "--model", "llama2-7b", "--out", str(out)])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "topology" in err[0]
    assert not out.exists()  # nothing written


def test_evaluate_design_free_and_pinned(tmp_path, capsys):
    params = resolve("isca24")
    card = parse_sram_card(CARD)
    spec = load_model("llama2-7b")
    free = evaluate_design(card, [spec], params)
    best = free.results[0].card("tco", free.table)
    assert best is not None and best["chips_per_server"] == 8
    # pinned: every front point uses exactly that many servers
    pinned = evaluate_design(card, [spec], params, servers=20)
    assert set(pinned.results[0].front["servers"].tolist()) == {20}
    with pytest.raises(InputError) as exc:
        evaluate_design(card, [spec], params, servers=1)
    assert exc.value.field == "servers"
    path = _write(tmp_path, CARD)
    rc = main(
        ["evaluate", "--design", str(path), "--model", "llama2-7b", "--servers", "20",
         "--out", str(tmp_path / "o"), "--json"]
    )  # fmt: skip
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["models"]["llama2-7b"]["tco_optimal"]["servers"] == 20
    assert (tmp_path / "o" / "manifest.json").exists()


def test_evaluate_needs_exactly_one_source(tmp_path, capsys):
    rc = main(["evaluate", "--model", "gpt2", "--out", str(tmp_path / "o")])
    assert rc == 2
    rc = main(
        ["evaluate", "--model", "gpt2", "--hardware", str(tmp_path), "--servers", "3",
         "--out", str(tmp_path / "o")]
    )  # fmt: skip
    assert rc == 2
    assert "servers" in capsys.readouterr().err


def test_builtin_groq_card_loads():
    card = load_sram_card("groq-lpu")
    assert card.chips_per_server == 8 and card.topology == "full"
    assert card.links.count >= card.chips_per_server - 1


def test_presets_show_lists_hop_latencies(capsys):
    assert main(["presets", "show", "isca24", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    c = doc["constants"]
    # 12.4 + 88.2 + 10 + 2 ns (data/link/serdes_7nm.yaml)
    assert c["link.chip.hop_latency_s"]["value"] == pytest.approx(112.6e-9)
    # 2 x 0.3 us + 0.45 us + 2 x 0.125 us
    assert c["link.server.hop_latency_s"]["value"] == pytest.approx(1.3e-6)
    assert all({"value", "unit", "source"} <= set(q) for q in c.values())
    assert doc["choices"]["chip_topology"] == "torus2d"
    assert main(["presets", "show", "v1", "--json"]) == 0
    v1 = json.loads(capsys.readouterr().out)["constants"]
    assert v1["link.chip.hop_latency_s"]["value"] == pytest.approx(1e-10)
    assert main(["presets", "show", "nope"]) == 2
