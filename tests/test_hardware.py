"""Phase 1 exploration: invariants on every candidate, the CLI and its bad-input paths."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chipletcloud.cli import main
from chipletcloud.config import HardwareSpace, load_space
from chipletcloud.explore.hardware import (
    REASONS,
    enumerate_space,
    evaluate_servers,
    explore_hardware,
)
from chipletcloud.report.store import read_parquet

REQUIRED = (
    "server_id die_area_mm2 mac_ratio operational_intensity packages_per_lane "
    "chips_per_server tflops_per_chip sram_mb_per_chip sram_bandwidth_gbps_per_chip "
    "die_yield die_cost_usd package_cost_usd heatsink_cost_usd server_cost_usd "
    "server_tdp_w"
).split()


@pytest.fixture(scope="module")
def default_run(isca24):
    return explore_hardware(load_space(), isca24)


def test_default_space_keeps_enough(default_run):
    assert default_run.candidates == 78_732
    assert default_run.valid >= 1000
    assert sum(default_run.rejected.values()) + default_run.valid == default_run.candidates


def test_kept_pass_every_check_and_rejected_fail_one(isca24):
    cand = enumerate_space(load_space())
    cols = evaluate_servers(cand, isca24)
    ok = np.all([cols[f"ok_{r}"] for r in REASONS], axis=0)
    res = explore_hardware(load_space(), isca24)
    assert np.array_equal(np.flatnonzero(ok), res.table["server_id"])
    t = res.table
    assert np.all(t["server_tdp_w"] > 0)
    assert np.all(t["chips_power_w"] <= isca24.server.server_max_chip_power_w)
    assert np.all(t["package_power_w"] <= t["heatsink_max_power_w"])
    lane = t["die_area_mm2"] * t["packages_per_lane"]
    assert np.all((lane >= 400) & (lane <= 6000))
    assert np.all(t["sram_bytes_per_chip"] > 0) and np.all(t["tflops_per_chip"] > 0)
    assert np.all(t["chip_tdp_w"] / t["die_area_mm2"] <= 1.0)


def test_server_cost_is_sum_of_bom(default_run):
    t = default_run.table
    parts = [
        k
        for k in t
        if k.endswith("_cost_usd")
        and k not in ("server_cost_usd", "die_cost_usd", "package_cost_usd", "heatsink_cost_usd")
    ]
    assert len(parts) == 14  # 11 items + rack, network, assembly (0 without full_bom)
    assert np.allclose(sum(t[k] for k in parts), t["server_cost_usd"])


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.sampled_from([20.0, 50, 100, 160, 300, 600, 800]), min_size=1, max_size=3, unique=True
    ),
    st.lists(st.sampled_from([0.01, 0.05, 0.1, 0.24, 0.5]), min_size=1, max_size=3, unique=True),
    st.lists(st.sampled_from([1.0, 2, 8, 32]), min_size=1, max_size=2, unique=True),
    st.lists(st.integers(3, 20), min_size=1, max_size=3, unique=True),
)
def test_property_counts_and_monotone_thermal(areas, ratios, ois, ppl):
    from chipletcloud.config import resolve

    params = resolve("isca24")
    sp = HardwareSpace(
        die_area_mm2=areas, mac_ratio=ratios, operational_intensity=ois, packages_per_lane=ppl
    )
    res = explore_hardware(sp, params)
    assert res.candidates == sp.size
    assert res.valid + sum(res.rejected.values()) == res.candidates
    cols = evaluate_servers(enumerate_space(sp), params)
    # more packages per lane never raises the allowed power per package
    for a in areas:
        sel = cols["die_area_mm2"] == a
        n, p = cols["packages_per_lane"][sel], cols["heatsink_max_power_w"][sel]
        order = np.argsort(n, kind="stable")
        assert np.all(np.diff(p[order]) <= 1e-9)


def test_cli_json(tmp_path, capsys):
    code = main(["hardware", "--out", str(tmp_path / "r"), "--json"])
    assert code == 0
    d = json.loads(capsys.readouterr().out)
    assert d["candidates"] == 78_732 and d["valid"] >= 1000
    assert set(d["rejected"]) == set(REASONS)
    assert d["out"].endswith("servers.parquet")
    table = read_parquet(d["out"])
    assert set(REQUIRED) <= set(table)
    assert len(table["server_id"]) == d["valid"]
    man = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert man["preset"] == "isca24" and man["counts"]["valid"] == d["valid"]
    assert len(man["config_hash"]) == 16 and man["versions"]["numpy"]


def test_cli_v1_preset_and_space(tmp_path, capsys):
    sp = tmp_path / "s.yaml"
    sp.write_text(
        "die_area_mm2: [100, 160]\nmac_ratio: [0.1, 0.24]\noperational_intensity: 1\n"
        "packages_per_lane: [10, 19]\n"
    )
    assert (
        main(
            [
                "hardware",
                "--space",
                str(sp),
                "--preset",
                "v1",
                "--out",
                str(tmp_path / "r"),
                "--json",
            ]
        )
        == 0
    )
    d = json.loads(capsys.readouterr().out)
    assert d["candidates"] == 8 and d["preset"] == "v1"


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["hardware", "--out", "X", "--preset", "nope"], "preset: got 'nope'"),
        (["hardware", "--out", "X", "--space", "missing.yaml"], "space: got 'missing.yaml'"),
        (["hardware"], "--out"),
        (["hardware", "--out", "X", "--bogus"], "--bogus"),
    ],
)
def test_cli_bad_input(tmp_path, capsys, monkeypatch, args, fragment):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    e = capsys.readouterr().err.strip()
    assert fragment in e and "Traceback" not in e
    assert len(e.splitlines()) == 1
    assert not (tmp_path / "X").exists()


def test_cli_bad_space_value(tmp_path, capsys):
    sp = tmp_path / "s.yaml"
    sp.write_text(
        "die_area_mm2: [100, -1]\nmac_ratio: 0.1\noperational_intensity: 1\npackages_per_lane: 10\n"
    )
    assert main(["hardware", "--space", str(sp), "--out", str(tmp_path / "r")]) == 2
    e = capsys.readouterr().err.strip()
    assert e.startswith("error: space.die_area_mm2") and "-1" in e and len(e.splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_console_script_subprocess(tmp_path):
    # the installed entry point, as a user runs it (not a terminal: no progress bar)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "chipletcloud.cli",
            "hardware",
            "--preset",
            "isca99",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    assert r.stderr.strip().startswith("error: preset:") and r.stdout == ""
