"""Switches, the ``authors`` preset and the attribution walk (docs/attribution.md)."""

from __future__ import annotations

import json
import math

import pytest

from chipletcloud.cli import main
from chipletcloud.config import (
    InputError,
    load_preset,
    resolve,
    switch_names,
    switches,
    with_switches,
)
from chipletcloud.studies.attribution import attribute, walk

#: A 3 x 3 x 2 x 3 space around the authors' GPT-2 optimum (100 mm2, 144 chips a server) and
#: this project's: small enough for a walk of every switch in seconds.
TINY_SPACE = (
    "die_area_mm2: [80, 100, 160]\nmac_ratio: [0.2, 0.28, 0.4]\n"
    "operational_intensity: [1, 2]\npackages_per_lane: [10, 18, 19]\n"
)


def _same(a, b) -> bool:
    """Equal presets, whatever their names and descriptions."""
    da, db = a.model_dump(), b.model_dump()
    for d in (da, db):
        d.pop("name"), d.pop("description")
    return da == db


def test_registry_names_are_unique_and_every_switch_changes_isca24():
    names = switch_names()
    assert len(names) == len(set(names)) >= 7
    base = load_preset("isca24")
    for sw in switches():
        one = with_switches(base, [sw.name])
        assert one.model_dump() != base.model_dump(), sw.name
        resolve(one)  # every switch's authors' settings resolve


def test_authors_preset_is_isca24_with_every_switch():
    authors = resolve("authors").preset
    built = with_switches(load_preset("isca24"), ["all"], name="authors")
    a, b = authors.model_dump(), built.model_dump()
    a.pop("description"), b.pop("description")
    assert a == b


def test_walk_starts_at_the_authors_and_ends_at_the_base():
    steps = walk("isca24")
    assert steps[0].switch == "authors"
    assert [s.switch for s in steps[1:]] == switch_names()
    assert _same(steps[-1].preset, load_preset("isca24"))


def test_walk_takes_the_callers_order_first():
    steps = walk("isca24", ["host_cost", "stage_transfer"])
    assert [s.switch for s in steps[1:3]] == ["host_cost", "stage_transfer"]
    assert _same(steps[-1].preset, load_preset("isca24"))


def test_a_switch_the_base_already_sets_is_skipped():
    base = with_switches(load_preset("isca24"), ["host_cost"])
    names = [s.switch for s in walk(base)]
    assert "host_cost" not in names


def test_unknown_switch_is_refused(capsys):
    with pytest.raises(InputError):
        with_switches(load_preset("isca24"), ["no_such_switch"])
    assert main(["attribute", "--model", "gpt2", "--switch", "no_such_switch"]) == 2
    msg = capsys.readouterr().err
    assert "no_such_switch" in msg and "server_grid" in msg and len(msg.strip().splitlines()) == 1


def test_preset_extends_and_authors_list(tmp_path, capsys):
    p = tmp_path / "mine.yaml"
    p.write_text(
        "name: mine\nextends: isca24\nauthors: [host_cost]\nchoices: {power_source: tdp}\n"
    )
    params = resolve(load_preset(str(p)))
    assert params.choices.include_host_cost is False  # the switch
    assert params.choices.power_source == "tdp"  # the file
    assert params.choices.sram_area_model == "bandwidth_aware"  # inherited
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nextends: isca24\nauthors: [nope]\n")
    assert main(["presets", "show", str(bad)]) == 2
    assert "preset.authors" in capsys.readouterr().err


def test_authors_space_counts_match_the_authors_run(tmp_path, capsys):
    # docs/validation.md#the-authors-code-as-a-reference-point: the authors' run enumerated
    # 81,648 candidates and kept 47,034 (26,568 rejected for lane silicon, 7,803 for the 2 kW
    # chip power, 243 for the heatsink). Their die list holds 200 mm2 twice.
    from chipletcloud.config import load_space

    sp = load_space().model_dump()
    dies = sorted([*sp["die_area_mm2"], 200])
    space = tmp_path / "authors_space.yaml"
    space.write_text(
        "\n".join(f"{k}: {json.dumps(v if k != 'die_area_mm2' else dies)}" for k, v in sp.items())
    )
    out = tmp_path / "hw"
    assert main(["hardware", "--preset", "authors", "--space", str(space), "--out", str(out),
                 "--json"]) == 0  # fmt: skip
    d = json.loads(capsys.readouterr().out)
    assert d["candidates"] == 81_648
    assert d["rejected"]["lane_silicon"] == 26_568
    assert d["rejected"]["server_power"] == 7_803
    assert d["rejected"]["thermal"] == 243
    assert d["valid"] == 47_034


def test_attribution_walk_adds_up(tmp_path, capsys):
    space = tmp_path / "tiny.yaml"
    space.write_text(TINY_SPACE)
    assert main(["attribute", "--model", "gpt2", "--space", str(space), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    steps = res["steps"]
    assert res["model"] == "gpt2" and steps[0]["switch"] == "authors"
    assert [s["switch"] for s in steps[1:]] == switch_names()
    for s in steps:
        assert {"switch", "usd_per_million_tokens", "die_area_mm2", "chips_per_server"} <= set(s)
    costs = [s["usd_per_million_tokens"] for s in steps]
    assert all(c is not None and c > 0 for c in costs)
    # the changes compound to the whole difference
    total = math.prod(1 + s["change"] for s in steps[1:])
    assert total == pytest.approx(costs[-1] / costs[0], rel=1e-9)
    # the last step is the base preset: the same optimum as `evaluate` on the same space
    hw, ev = tmp_path / "hw", tmp_path / "ev"
    assert main(["hardware", "--space", str(space), "--out", str(hw), "--json"]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--hardware", str(hw), "--model", "gpt2", "--out", str(ev),
                 "--json"]) == 0  # fmt: skip
    card = json.loads(capsys.readouterr().out)["models"]["gpt2"]["tco_optimal"]
    assert costs[-1] == pytest.approx(card["usd_per_million_tokens"], rel=1e-12)
    assert steps[-1]["die_area_mm2"] == card["die_area_mm2"]
    # the first is the authors' preset
    hw2, ev2 = tmp_path / "hw2", tmp_path / "ev2"
    assert main(["hardware", "--preset", "authors", "--space", str(space), "--out", str(hw2),
                 "--json"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["evaluate", "--preset", "authors", "--hardware", str(hw2), "--model", "gpt2",
                 "--out", str(ev2), "--json"]) == 0  # fmt: skip
    card = json.loads(capsys.readouterr().out)["models"]["gpt2"]["tco_optimal"]
    assert costs[0] == pytest.approx(card["usd_per_million_tokens"], rel=1e-12)


def test_attribute_python_api_caches_phase_one(tmp_path):
    from chipletcloud.config import HardwareSpace

    space = HardwareSpace.model_validate(
        {
            "die_area_mm2": [100],
            "mac_ratio": [0.28],
            "operational_intensity": [2],
            "packages_per_lane": [18],
        }  # fmt: skip
    )
    tables: dict = {}
    res = attribute("gpt2", space=space, tables=tables, order=["stage_transfer"])
    assert res["steps"][1]["switch"] == "stage_transfer"
    # phase 1 changes only with the hardware switches (SRAM area model, host cost, ...)
    assert 1 < len(tables) < len(res["steps"])


def test_docs_list_every_switch():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "attribution.md").read_text()
    for name in switch_names():
        assert f"`{name}`" in doc, name


def test_tco_optimum_equals_the_full_search_and_the_bound_holds(isca24):
    # software.tco_optimum searches designs in order of a lower bound and stops early: it must
    # return the full search's TCO-optimal card, and the bound must not exceed any design's best
    import numpy as np

    from chipletcloud.config import HardwareSpace
    from chipletcloud.explore import software
    from chipletcloud.explore.hardware import explore_hardware
    from chipletcloud.models.catalogue import load_model

    sp = HardwareSpace(
        die_area_mm2=[60, 100, 160, 240], mac_ratio=[0.1, 0.24, 0.4],
        operational_intensity=[1, 4], packages_per_lane=[6, 12, 19],
    )  # fmt: skip
    table = explore_hardware(sp, isca24).table
    for name, preset in (("llama2-70b", isca24), ("gpt2", resolve("authors"))):
        spec = load_model(name)
        params = software.params_for(spec, preset)
        res = software.search(table, spec, params)
        card, searched = software.tco_optimum(table, spec, params, block=8)
        assert card == res.card("tco", table)
        assert 0 < searched <= len(table["server_id"])
        lb = software.cost_lower_bound(software.search_inputs(table, spec, params))
        ok = np.isfinite(res.best_per_design)
        assert np.all(lb[ok] <= res.best_per_design[ok] * (1 + 1e-12))
