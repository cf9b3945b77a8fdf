"""Data cards, presets and space files: every constant sourced; bad input is one clear line."""

from __future__ import annotations

import pytest

from chipletcloud.config import DATA, load_card, load_preset, load_space, preset_names, resolve
from chipletcloud.errors import InputError


@pytest.mark.parametrize(
    "kind,name",
    [("tech", "7nm"), ("server", "asic_clouds"), ("tco", "asic_clouds"), ("tech", "thermal")],
)
def test_every_constant_has_unit_and_source(kind, name):
    card = load_card(kind, name)
    assert card
    for key, q in card.items():
        assert q.unit.strip() and q.source.strip(), key


def test_presets_resolve_and_differ():
    assert {"isca24", "v1"} <= set(preset_names())
    a, b = resolve("isca24"), resolve("v1")
    assert a.choices.sram_area_model == "bandwidth_aware"
    assert b.tech.mac_density_mm2_per_tflops == 0.29
    assert b.sources["tech.mac_density_mm2_per_tflops"].source.startswith("[A1]")
    assert a.tech.wafer_cost_usd == 10000 and b.tech.wafer_cost_usd == 9346


def test_default_space_size():
    # docs/design-space.md#phase-1-hardware-space: 27 x 18 x 9 x 18 = 78,732 candidates
    sp = load_space()
    assert (
        len(sp.die_area_mm2),
        len(sp.mac_ratio),
        len(sp.operational_intensity),
        len(sp.packages_per_lane),
    ) == (27, 18, 9, 18)
    assert sp.size == 78_732


def _space(tmp_path, text):
    p = tmp_path / "space.yaml"
    p.write_text(text)
    return p


BASE = (
    "die_area_mm2: [100, 200]\nmac_ratio: 0.1\noperational_intensity: [4, 8]\n"
    "packages_per_lane: 10\n"
)


def test_scalars_or_lists(tmp_path):
    sp = load_space(_space(tmp_path, BASE))
    assert sp.mac_ratio == [0.1] and sp.packages_per_lane == [10] and sp.size == 4


@pytest.mark.parametrize(
    "text,field,fragment",
    [
        (BASE + "colour: red\n", "space.colour", "known key"),
        (BASE.replace("[100, 200]", "[100, -5]"), "space.die_area_mm2", "> 0"),
        (BASE.replace("[100, 200]", "0"), "space.die_area_mm2", "> 0"),
        (BASE.replace("mac_ratio: 0.1", "mac_ratio: 1.5"), "space.mac_ratio", "(0, 1)"),
        (BASE.replace("mac_ratio: 0.1", "mac_ratio: 0"), "space.mac_ratio", "(0, 1)"),
        (BASE.replace("mac_ratio: 0.1", "mac_ratio: []"), "space.mac_ratio", "non-empty"),
        (BASE.replace("packages_per_lane: 10\n", ""), "space.packages_per_lane", "missing"),
        (BASE.replace("[4, 8]", "[4, .nan]"), "space.operational_intensity", "finite"),
        ("- just\n- a list\n", "space", "mapping"),
        ("die_area_mm2: [1, 2\n", "space", "valid YAML"),
    ],
)
def test_bad_space_files(tmp_path, text, field, fragment):
    with pytest.raises(InputError) as exc:
        load_space(_space(tmp_path, text))
    msg = str(exc.value)
    assert exc.value.field.startswith(field), msg
    assert fragment in msg
    assert "\n" not in msg


def test_missing_space_file(tmp_path):
    with pytest.raises(InputError, match="existing YAML file"):
        load_space(tmp_path / "nope.yaml")


def test_unknown_preset():
    with pytest.raises(InputError) as exc:
        load_preset("isca99")
    assert exc.value.field == "preset" and "isca24" in str(exc.value)


def test_user_preset_with_override(tmp_path):
    p = tmp_path / "mine.yaml"
    p.write_text(
        (DATA / "presets" / "isca24.yaml")
        .read_text()
        .replace(
            "overrides: {}",
            "overrides:\n  tech.wafer_cost_usd: {value: 12000, unit: USD/wafer, source: quote}\n",
        )
    )
    assert resolve(str(p)).tech.wafer_cost_usd == 12000


@pytest.mark.parametrize(
    "override,field",
    [
        ("  tech.nonsense: {value: 1, unit: x, source: y}\n", "preset.overrides.tech.nonsense"),
        ("  tech.core_area_ratio: {value: 1.5, unit: x, source: y}\n", "tech.core_area_ratio"),
        ("  tech.wafer_cost_usd: {value: 1}\n", "preset.overrides"),
    ],
)
def test_bad_overrides(tmp_path, override, field):
    p = tmp_path / "bad.yaml"
    p.write_text(
        (DATA / "presets" / "isca24.yaml")
        .read_text()
        .replace("overrides: {}", "overrides:\n" + override)
    )
    with pytest.raises(InputError) as exc:
        resolve(str(p))
    assert exc.value.field.startswith(field), str(exc.value)


def test_bad_choice(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text(
        (DATA / "presets" / "isca24.yaml")
        .read_text()
        .replace("sram_area_model: bandwidth_aware", "sram_area_model: magic")
    )
    with pytest.raises(InputError) as exc:
        resolve(str(p))
    assert exc.value.field == "preset.choices.sram_area_model"
