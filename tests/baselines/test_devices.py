"""Device and price cards of the GPU/TPU baselines: sourced, exact where docs/baselines.md is exact,
and bad cards fail with one InputError that names the field."""

from __future__ import annotations

import copy
import json
import math

import pytest

from chipletcloud.baselines.devices import (
    DTYPE_CONSTANTS,
    OPTIONAL_CONSTANTS,
    REQUIRED_CONSTANTS,
    REQUIRED_FABRICATED,
    DeviceCard,
    PriceCard,
    list_devices,
    list_price_cards,
    load_device,
    load_prices,
)
from chipletcloud.errors import InputError

DEVICES = (
    "a100-80gb",
    "a100-40gb",
    "h100-sxm",
    "tpu-v4",
    "h200",
    "b200",
    "tpu-v5p",
    "mi300x",
    "mi325x",
    "tpu-v5e",
    "tpu-v6e",
    "gb200-nvl72",
)


def test_builtin_names():
    assert set(list_devices()) == set(DEVICES)
    # the 40 GB A100 is a validation device only (no price card)
    assert set(list_price_cards()) == set(DEVICES) - {"a100-40gb"}


@pytest.mark.parametrize("name", DEVICES)
def test_every_card_loads_and_every_constant_is_sourced(name):
    card = load_device(name)
    assert isinstance(card, DeviceCard) and card.name == name
    assert set(REQUIRED_CONSTANTS) <= set(card.constants)
    assert set(card.constants) <= set(REQUIRED_CONSTANTS + OPTIONAL_CONSTANTS)
    for key, q in card.constants.items():
        assert q.unit.strip() and q.source.strip(), key
        assert q.value > 0 and math.isfinite(q.value), key
        assert q.source.lstrip().startswith("["), key  # a provenance tag: [A], [A1], [L], [D]
    for key in ("flops_efficiency", "hbm_efficiency"):
        assert 0 < card.value(key) <= 1
    assert card.kind == ("tpu" if name.startswith("tpu") else "gpu")
    # NVLink switches on NVIDIA, Infinity Fabric all-to-all on AMD, a 3-D torus on TPU v4/v5p
    # and a 2-D torus on the inference TPUs (v5e, v6e)
    expected = {"mi300x": "full", "mi325x": "full", "tpu-v5e": "torus2d", "tpu-v6e": "torus2d"}
    default = "torus3d" if card.kind == "tpu" else "nvswitch"
    assert card.scale_up_topology == expected.get(name, default)


@pytest.mark.parametrize("name", [d for d in DEVICES if d != "a100-40gb"])
def test_every_price_card_loads_and_is_sourced(name):
    prices = load_prices(name)
    assert isinstance(prices, PriceCard) and prices.name == name
    assert prices.rented_usd_per_device_hour() > 0
    for row in prices.rented:
        assert row.provider and row.date and row.terms and row.source.startswith("[")
    assert set(REQUIRED_FABRICATED) <= set(prices.fabricated)
    for key, q in prices.fabricated.items():
        assert q.value > 0 and q.unit.strip() and q.source.lstrip().startswith("["), key
    has_v1 = "v1_inhouse_usd_per_device_hour" in prices.fabricated
    assert has_v1 == (name in ("a100-80gb", "tpu-v4"))


def test_reference_s8_device_facts_exactly():
    a100 = load_device("a100-80gb")
    assert a100.peak_flops("bf16") == 312e12
    assert a100.value("hbm_bandwidth_bytes_per_s") == 2039e9
    assert a100.value("hbm_bytes") == 80 * 2**30  # 80 GiB: HBM dies have binary capacities
    assert a100.value("scale_up_bytes_per_s") == 300e9
    assert a100.value("tdp_w") == 400
    assert a100.value("die_area_mm2") == 826
    assert a100.value("process_nm") == 7

    h100 = load_device("h100-sxm")
    assert h100.peak_flops("bf16") == 989e12
    assert h100.value("hbm_bandwidth_bytes_per_s") == 3350e9
    assert h100.value("hbm_bytes") == 80 * 2**30
    assert h100.value("scale_up_bytes_per_s") == 450e9
    assert h100.value("tdp_w") == 700
    assert h100.value("die_area_mm2") == 814

    v4 = load_device("tpu-v4")
    assert v4.peak_flops("bf16") == 275e12
    assert v4.value("hbm_bandwidth_bytes_per_s") == 1200e9
    assert v4.value("hbm_bytes") == 32e9
    assert 170 <= v4.value("tdp_w") <= 192


def test_other_datasheet_facts():
    h200, b200, v5p = load_device("h200"), load_device("b200"), load_device("tpu-v5p")
    assert (h200.value("hbm_bytes"), h200.value("hbm_bandwidth_bytes_per_s")) == (141e9, 4.8e12)
    assert h200.peak_flops("bf16") == load_device("h100-sxm").peak_flops("bf16")
    assert b200.peak_flops("bf16") == 2.25e15 and b200.peak_flops("fp8") == 4.5e15
    assert b200.value("scale_up_bytes_per_s") == 900e9 and b200.value("tdp_w") == 1000
    assert v5p.peak_flops("bf16") == 459e12 and v5p.peak_flops("int8") == 918e12
    assert v5p.value("hbm_bandwidth_bytes_per_s") == 2765e9
    assert v5p.value("scale_up_bytes_per_s") == 600e9  # 4,800 Gbps per chip


def test_paper_rented_prices_are_the_defaults():
    assert load_prices("a100-80gb").rented_usd_per_device_hour() == 1.10
    v4 = load_prices("tpu-v4")
    assert v4.rented_usd_per_device_hour() == 1.45
    assert "3-year" in v4.rented[v4.default_rented_index].terms
    assert load_prices("a100-80gb").fabricated["v1_inhouse_usd_per_device_hour"].value == 1.67
    assert v4.fabricated["v1_inhouse_usd_per_device_hour"].value == 0.31
    rows = load_prices("a100-80gb").rented
    assert load_prices("a100-80gb").rented_usd_per_device_hour(1) == rows[1].usd_per_device_hour


def test_peak_flops_formats():
    a100, h100, v4 = load_device("a100-80gb"), load_device("h100-sxm"), load_device("tpu-v4")
    assert a100.peak_flops("fp16") == a100.peak_flops("bf16")
    assert a100.peak_flops("int8") == 624e12 and a100.peak_flops("int4") == 1248e12
    assert h100.peak_flops("int4") == h100.peak_flops("int8")  # no int4 rate: int8 units
    assert v4.peak_flops("int8") == v4.peak_flops("bf16")  # v4: "275 teraflops (bf16 or int8)"
    for card in (a100, v4):
        with pytest.raises(InputError) as e:
            card.peak_flops("fp8")  # no silent fallback to bf16
        assert e.value.field == f"{card.name}.dtype" and "fp8" not in card.dtypes()
    with pytest.raises(InputError) as e:
        a100.peak_flops("fp32")
    assert e.value.field == "dtype" and all(d in e.value.allowed for d in DTYPE_CONSTANTS)


def test_unknown_names_list_the_choices():
    with pytest.raises(InputError) as e:
        load_device("v100")
    assert e.value.field == "device" and "a100-80gb" in e.value.allowed
    with pytest.raises(InputError) as e:
        load_prices("v1_baselines")  # not a device: not a price card
    assert e.value.field == "prices" and "tpu-v4" in e.value.allowed
    with pytest.raises(InputError) as e:
        load_device("h100-sxm").value("sram_bytes")
    assert e.value.field == "h100-sxm.constants" and "tdp_w" in e.value.allowed
    with pytest.raises(InputError) as e:
        load_prices("h100-sxm").rented_usd_per_device_hour(99)
    assert e.value.field == "h100-sxm.rented"


def test_builtin_cards_are_not_shared_mutable_state():
    load_device("a100-80gb").constants.pop("tdp_w")
    assert load_device("a100-80gb").value("tdp_w") == 400


# ---------------------------------------------------------------------------- bad cards from files


def _raw(kind: str, name: str) -> dict:
    from importlib import resources

    path = resources.files("chipletcloud").joinpath("data", kind, f"{name}.json")
    return json.loads(path.read_text(encoding="utf-8"))


def _write(tmp_path, data) -> str:
    path = tmp_path / "card.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return str(path)


def test_a_good_card_loads_from_a_path(tmp_path):
    raw = _raw("devices", "h100-sxm")
    raw["name"] = "my-h100"
    card = load_device(_write(tmp_path, raw))
    assert card.name == "my-h100" and card.peak_flops("bf16") == 989e12


DEL = object()


def _set(data: dict, keys: tuple, value) -> None:
    for k in keys[:-1]:
        data = data[k]
    if value is DEL:
        data.pop(keys[-1])
    else:
        data[keys[-1]] = value


SRAM = {"value": 1, "unit": "B", "source": "[D]"}


@pytest.mark.parametrize(
    "keys,value,field,allowed",
    [
        (("constants", "tdp_w"), DEL, "constants.tdp_w", "missing"),
        (("constants", "hbm_bytes", "value"), -80e9, "constants.hbm_bytes", "positive"),
        (("constants", "hbm_efficiency", "value"), 1.2, "constants.hbm_efficiency", "(0, 1]"),
        (("constants", "flops_efficiency", "value"), 0.0, "constants.flops_efficiency", "positive"),
        (("constants", "sram_bytes"), SRAM, "constants.sram_bytes", "known"),
        (("constants", "tdp_w", "source"), DEL, "constants.tdp_w.source", "missing"),
        (("constants", "tdp_w", "unit"), "", "constants.tdp_w.unit", "at least 1"),
        (("kind",), "npu", "kind", "gpu"),
        (("scale_up_domain",), 0, "scale_up_domain", "greater than or equal to 1"),
        (("colour",), "green", "colour", "not a known key"),
    ],
)
def test_bad_device_cards_name_the_field(tmp_path, keys, value, field, allowed):
    raw = copy.deepcopy(_raw("devices", "a100-80gb"))
    _set(raw, keys, value)
    path = _write(tmp_path, raw)
    with pytest.raises(InputError) as e:
        load_device(path)
    assert e.value.field == f"{path}: {field}"
    assert allowed in e.value.allowed
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "mutate,field",
    [
        (lambda p: p["fabricated"].pop("die_cost_usd"), "fabricated.die_cost_usd"),
        (lambda p: p["fabricated"]["board_usd"].update(value=-1), "fabricated.board_usd"),
        (lambda p: p.update(default_rented_index=len(p["rented"])), "default_rented_index"),
        (lambda p: p["rented"][0].update(usd_per_device_hour=0), "rented.0.usd_per_device_hour"),
        (lambda p: p["rented"][0].update(date="last year"), "rented.0.date"),
        (lambda p: p.update(rented=[]), "rented"),
    ],
)
def test_bad_price_cards_name_the_field(tmp_path, mutate, field):
    raw = copy.deepcopy(_raw("prices", "tpu-v4"))
    mutate(raw)
    path = _write(tmp_path, raw)
    with pytest.raises(InputError) as e:
        load_prices(path)
    assert e.value.field == f"{path}: {field}"


def test_unreadable_files(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(InputError) as e:
        load_device(str(bad))
    assert e.value.field == "device card" and "valid JSON" in e.value.allowed
    with pytest.raises(InputError) as e:
        load_prices(str(tmp_path / "missing.json"))
    assert e.value.field == "prices card" and "existing" in e.value.allowed
