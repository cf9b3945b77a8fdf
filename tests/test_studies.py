"""The design studies on a small table, and `chipletcloud query` over a run directory."""

from __future__ import annotations

import json

import numpy as np
import pytest

from chipletcloud.cli import main
from chipletcloud.config import HardwareSpace
from chipletcloud.explore import software
from chipletcloud.explore.hardware import explore_hardware
from chipletcloud.models.catalogue import load_model
from chipletcloud.studies import core as studies

SPACE = HardwareSpace(
    die_area_mm2=[60, 120, 160, 300, 760],
    mac_ratio=[0.05, 0.12, 0.28],
    operational_intensity=[4, 16],
    packages_per_lane=[6, 12, 19],
)


@pytest.fixture(scope="module")
def run(isca24):
    table = explore_hardware(SPACE, isca24).table
    results = {}
    for name in ("gpt3", "llama2-70b"):
        spec = load_model(name)
        results[name] = (spec, software.search(table, spec, isca24))
    return table, results


def test_die_size_bins_split_and_optimum(run, isca24):
    table, results = run
    spec, _ = results["gpt3"]
    d = studies.die_size_study(table, spec, isca24)
    assert d["bins"]
    for b in d["bins"]:
        # capital + operating = the TCO per token of the bin's optimum (same TCO model)
        assert b["capex_usd_per_million_tokens"] + b[
            "opex_usd_per_million_tokens"
        ] == pytest.approx(b["usd_per_million_tokens"], rel=1e-9)
        assert b["lo_mm2"] < b["die_area_mm2"] <= b["hi_mm2"]
        assert b["latency_opt_s_per_token"] <= b["latency_s_per_token"] + 1e-15
    best = min(b["usd_per_million_tokens"] for b in d["bins"])
    overall = results["gpt3"][1].card("tco", table)["usd_per_million_tokens"]
    assert best == pytest.approx(overall, rel=1e-9)


def test_batch_and_pipeline(run, isca24):
    table, results = run
    b = studies.batch_study(table, results, isca24, k=8)
    for name in results:
        rows = [r for r in b["rows"] if r["model"] == name]
        assert (
            rows
            and b["optimum"][name] == min(rows, key=lambda r: r["usd_per_million_tokens"])["batch"]
        )
    p = studies.pipeline_study(table, results, isca24)
    assert p["rows"] and all(0 < r["utilisation"] <= 1 for r in p["rows"])


def test_design_choice_and_sensitivity(run, isca24):
    table, results = run
    d = studies.design_choice_study(table, results, isca24)
    assert d["geomean"]["sram_chiplets"] == 1.0
    assert {"hbm_large_chip", "hbm_small_chiplet"} <= set(d["geomean"])
    spec, res = results["gpt3"]
    s = studies.sensitivity_study(SPACE, table, spec, res, isca24, k=16)
    labels = {r["parameter"] for r in s["rows"]}
    assert {"wafer cost", "electricity price", "PUE", "server life"} <= labels
    wafer = next(r for r in s["rows"] if r["parameter"] == "wafer cost")
    # cheaper wafers never make a token dearer
    assert wafer["low_usd_per_million_tokens"] <= s["base_usd_per_million_tokens"] + 1e-12
    assert wafer["high_usd_per_million_tokens"] >= s["base_usd_per_million_tokens"] - 1e-12


def test_nre_breakeven(run, isca24):
    table, results = run
    card = results["gpt3"][1].card("tco", table)
    rented = 1.4  # USD per million tokens
    n = studies.nre_study(card, rented, isca24)
    r = n["breakeven_tokens_per_s"]
    curve = {round(c["tokens_per_s"]): c["chiplet_cloud_usd_per_1k_tokens"] for c in n["curve"]}
    assert r is not None and r > 0
    # far below break-even the NRE ($49M, data/nre/7nm.yaml) dominates; far above, Chiplet
    # Cloud is cheaper
    assert n["nre_usd"] == isca24.nre.total_usd
    assert min(curve.values()) < rented / 1e3 < max(curve.values())
    assert set(n["markers"]) == {"ChatGPT", "Bing", "Google"}
    assert n["markers"]["Google"] > n["markers"]["Bing"]


def test_sparsity_sweep_falls_with_sparsity(run, isca24):
    table, results = run
    rows = studies.sparsity_sweep(
        table, {"gpt3": results["gpt3"]}, isca24, k=8, levels=(0.0, 0.6, 0.9)
    )
    vi = {
        r["sparsity"]: r["usd_per_million_tokens"]
        for r in rows
        if r["sparse_format"] == "value_index"
    }
    assert vi[0.9] <= vi[0.6] <= vi[0.0] * (1 + 1e-12)


def test_query_cli(tmp_path, capsys, small_space):
    assert (
        main(["hardware", "--space", str(small_space), "--out", str(tmp_path / "hw"), "--json"])
        == 0
    )
    n = json.loads(capsys.readouterr().out)["valid"]
    assert (
        main(
            [
                "query",
                "SELECT count(*) AS n, min(die_area_mm2) AS a FROM servers",
                "--results",
                str(tmp_path / "hw"),
                "--json",
            ]
        )
        == 0
    )
    d = json.loads(capsys.readouterr().out)
    assert d["columns"] == ["n", "a"] and d["rows"][0][0] == n
    assert main(["query", "SELECT * FROM nowhere", "--results", str(tmp_path / "hw")]) == 2
    e = capsys.readouterr().err
    assert e.startswith("error: sql:") and len(e.strip().splitlines()) == 1
    assert main(["query", "SELECT 1", "--results", str(tmp_path / "missing")]) == 2


def test_top_designs_are_cheapest(run):
    table, results = run
    _, res = results["gpt3"]
    idx = studies.top_designs(res, 5)
    rest = np.setdiff1d(np.flatnonzero(np.isfinite(res.best_per_design)), idx)
    assert res.best_per_design[idx].max() <= res.best_per_design[rest].min()


def test_hop_latency_study(run, isca24):
    table, results = run
    specs = {n: s for n, (s, _) in results.items()}
    st = studies.hop_latency_study(
        table, specs, isca24, hops_s=(1e-8, 3e-7, 1e-6), op_latency_s=4e-6, results=results
    )
    default = isca24.link.chip_hop_latency_s
    n = len(table["server_id"])
    assert st["hop_latencies_s"] == sorted({1e-8, 3e-7, 1e-6, default})
    for name in specs:
        rows = sorted(
            (r for r in st["rows"] if r["model"] == name and r["op_latency_s"] == 0.0),
            key=lambda r: r["hop_latency_s"],
        )
        assert [r["hop_latency_s"] for r in rows] == st["hop_latencies_s"]
        # a slower hop never makes any point faster, so the optimum never gets cheaper
        costs = [r["usd_per_million_tokens"] for r in rows]
        assert costs == sorted(costs)
        # the default row is the main run's optimum (reused, not searched again)
        d = next(r for r in rows if r["preset_default"])
        main_card = results[name][1].card("tco", table)
        assert d["usd_per_million_tokens"] == main_card["usd_per_million_tokens"]
        # every row, pruned or not, is the optimum of a search of the whole table
        for r in rows:
            t = dict(table, hop_latency_s=np.full(n, r["hop_latency_s"]))
            full = software.search(t, specs[name], isca24).card("tco", t)
            assert r["usd_per_million_tokens"] == pytest.approx(full["usd_per_million_tokens"])
            assert r["die_area_mm2"] == full["die_area_mm2"]
        assert any(r["designs"] < n for r in rows)  # the pruning did something
        # a fixed latency on every on-chip operation costs more; and it is the whole optimum
        op = next(r for r in st["rows"] if r["model"] == name and r["op_latency_s"] > 0)
        assert op["usd_per_million_tokens"] > d["usd_per_million_tokens"]
        assert op["ms_per_token"] > d["ms_per_token"]
        t = dict(table, hop_latency_s=np.full(n, default), op_overhead_s=np.full(n, 4e-6))
        full = software.search(t, specs[name], isca24).card("tco", t)
        assert op["usd_per_million_tokens"] == pytest.approx(full["usd_per_million_tokens"])
