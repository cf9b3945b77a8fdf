"""Lane heatsink + fan thermal model against docs/hardware-model.md#thermal-model (table and worked
example)."""

from __future__ import annotations

import dataclasses
import math
import time
from importlib import resources

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from chipletcloud.errors import InputError
from chipletcloud.models.thermal import (
    ThermalParams,
    ThermalResult,
    heatsink_length_mm,
    lane_thermal,
)

PARAMS = ThermalParams.default()

# docs/hardware-model.md#thermal-model: allowed power per package INCLUDING the authors' x2, for
# (die mm2, n per lane);
# None = infeasible (20 x 28.3 mm does not fit in the 450 mm lane)
TABLE = {
    50: {3: 87.0, 10: 53.2, 20: 34.6},
    100: {3: 124.7, 10: 65.0, 20: 39.4},
    200: {3: 163.3, 10: 74.4, 20: 42.7},
    800: {3: 230.7, 10: 86.9, 20: None},
}
CELLS = [(a, n, w) for a, row in TABLE.items() for n, w in row.items()]
FEASIBLE = [(a, n, w) for a, n, w in CELLS if w is not None]

sides = st.floats(1.0, 30.0, allow_nan=False)
counts = st.integers(1, 25)


def _power(side, n, allowance=2.0, params=PARAMS):
    return float(lane_thermal(side, n, params, allowance).max_package_power_w)


@pytest.mark.parametrize(("area", "n", "watts"), FEASIBLE)
def test_reference_table_within_10_percent(area, n, watts):
    # docs/hardware-model.md#thermal-model table, heat-source side = sqrt(area), allowance x2 (the
    # authors' final code)
    assert _power(math.sqrt(area), n) == pytest.approx(watts, rel=0.10)


def test_reference_table_tight():
    # regression guard: this implementation reproduces every feasible cell within 1%
    errs = [abs(_power(math.sqrt(a), n) / w - 1) for a, n, w in FEASIBLE]
    assert max(errs) < 0.01, errs


def test_reference_table_infeasible_cell():
    # docs/hardware-model.md#thermal-model: 800 mm2, 20 per lane: 20 x 28.3 mm > 450 mm
    r = lane_thermal(math.sqrt(800), 20)
    assert float(r.max_package_power_w) == 0.0
    assert math.isnan(float(r.heatsink_cost_usd)) and math.isnan(float(r.fin_count))


def test_worked_example():
    # docs/hardware-model.md#worked-example: side 12.649 mm (160 mm2), 19 per lane
    # -> 43.54 W allowed (after the x2), heatsink $1.056
    r = lane_thermal(12.649, 19)
    assert float(r.max_package_power_w) == pytest.approx(43.54, rel=0.10)
    assert float(r.heatsink_cost_usd) == pytest.approx(1.056, rel=0.10)
    assert float(r.max_package_power_w) == pytest.approx(43.54, rel=0.01)
    assert float(r.heatsink_cost_usd) == pytest.approx(1.056, rel=0.01)
    # the heatsink takes the longest whole-mm share of the lane: floor(450 / 19) = 23 mm
    assert float(r.heatsink_length_mm) == 23.0
    assert float(r.fin_height_mm) + float(r.base_thickness_mm) == pytest.approx(35.0)


def test_geometry_is_physical():
    a = np.sqrt(np.array([20.0, 100, 400, 800]))[:, None]
    n = np.arange(3, 21)[None, :]
    r = lane_thermal(a, n)
    ok = r.max_package_power_w > 0
    assert ok.any()
    w = PARAMS.heatsink_base_width_mm
    gap = (w - r.fin_count * r.fin_thickness_mm) / (r.fin_count - 1)
    assert np.all(gap[ok] >= PARAMS.fin_gap_min_mm - 1e-9)
    assert np.all(r.fin_height_mm[ok] + r.base_thickness_mm[ok] <= 35.0 + 1e-9)
    assert np.all(r.heatsink_length_mm[ok] * n.repeat(4, 0)[ok] <= 450.0 + 1e-9)
    # the fan's free delivery is 0.60 m3/min = 0.01 m3/s
    assert np.all((r.airflow_m3_per_s[ok] > 0) & (r.airflow_m3_per_s[ok] < 0.01))
    # cost: $1 + aluminium; a 50 mm wide heatsink at most 150 mm x 35 mm solid
    assert np.all(
        (r.heatsink_cost_usd[ok] > 1.0)
        & (r.heatsink_cost_usd[ok] < 1.0 + 4122.68 * 0.05 * 0.15 * 0.035)
    )


@settings(max_examples=60, deadline=None)
@given(sides, counts, counts)
def test_more_packages_never_raise_power(side, n1, n2):
    lo, hi = sorted((n1, n2))
    assert _power(side, hi) <= _power(side, lo) + 1e-9


@settings(max_examples=60, deadline=None)
@given(sides, sides, counts)
def test_larger_die_never_lowers_power_while_it_fits(s1, s2, n):
    # Holds physically at fixed n: every resistance falls with the die side on the same geometry
    # grid. It stops holding at the fit limit, where the power drops to 0 (infeasible).
    lo, hi = sorted((s1, s2))
    length = heatsink_length_mm(n, PARAMS)
    p_lo, p_hi = _power(lo, n), _power(hi, n)
    if hi <= length:
        assert p_lo <= p_hi + 1e-9
    assert (p_hi == 0.0) == (hi > length)
    assert (p_lo == 0.0) == (lo > length)


@settings(max_examples=40, deadline=None)
@given(sides, counts, st.floats(0.1, 10.0))
def test_allowance_scales_power_linearly(side, n, factor):
    base = lane_thermal(side, n, PARAMS, 1.0)
    scaled = lane_thermal(side, n, PARAMS, factor)
    assert float(scaled.max_package_power_w) == pytest.approx(
        factor * float(base.max_package_power_w), rel=1e-12, abs=1e-12
    )
    for name in ThermalResult._fields[1:]:
        np.testing.assert_array_equal(getattr(scaled, name), getattr(base, name))


@settings(max_examples=40, deadline=None)
@given(counts, st.floats(0.0, 1.0))
def test_infeasible_when_row_longer_than_lane(n, frac):
    side = 450.0 / n * (1.0 + 1e-6) + frac * 5.0  # n x side > 450 mm
    r = lane_thermal(side, n)
    assert float(r.max_package_power_w) == 0.0
    assert math.isnan(float(r.heatsink_cost_usd))


def test_broadcasting_and_memoised_uniques():
    s = np.array([7.0, 10.0, 12.649])[:, None]
    n = np.array([3, 10, 19, 3])
    r = lane_thermal(s, n)
    assert all(getattr(r, f).shape == (3, 4) for f in ThermalResult._fields)
    assert all(getattr(r, f).dtype == np.float64 for f in ThermalResult._fields)
    np.testing.assert_array_equal(r.max_package_power_w[:, 0], r.max_package_power_w[:, 3])
    one = lane_thermal(12.649, 19)
    assert one.max_package_power_w.shape == ()
    assert float(one.max_package_power_w) == r.max_package_power_w[2, 2]
    # sides within the 1e-6 mm memo rounding give identical answers
    assert _power(12.649 + 1e-8, 19) == _power(12.649, 19)


def test_many_candidates_fast_when_warm():
    # phase 1 calls it on ~80,000 candidates with ~27 x 18 unique pairs
    # (docs/design-space.md#phase-1-hardware-space)
    areas = np.array(
        [20, 30, 40, 50, 60, 80] + list(range(100, 201, 20)) + list(range(240, 801, 40)), float
    )
    rng = np.random.default_rng(1)
    side = np.sqrt(rng.choice(areas, 80_000))
    n = rng.integers(3, 21, 80_000)
    lane_thermal(side, n)
    t0 = time.perf_counter()
    r = lane_thermal(side, n)
    assert time.perf_counter() - t0 < 1.0
    assert r.max_package_power_w.shape == (80_000,)


def test_yaml_card_matches_params():
    text = resources.files("chipletcloud").joinpath("data/tech/thermal.yaml").read_text()
    card = yaml.safe_load(text)
    assert set(card) == {f.name for f in dataclasses.fields(ThermalParams)}
    for key, entry in card.items():
        assert set(entry) == {"value", "unit", "source"}, key
        assert isinstance(entry["value"], (int, float)), key
        assert str(entry["unit"]).strip() and str(entry["source"]).strip(), key
        assert getattr(PARAMS, key) == float(entry["value"])


def _values(**changes):
    v = dataclasses.asdict(PARAMS)
    v.update(changes)
    return v


def test_from_values_round_trip():
    assert ThermalParams.from_values(dataclasses.asdict(PARAMS)) == PARAMS


_POSITIVE = sorted(
    f.name for f in dataclasses.fields(ThermalParams) if not f.name.startswith(("fan_curve_", "t_"))
)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(_POSITIVE), st.sampled_from([0.0, -1.0, math.nan, math.inf]))
def test_non_positive_params_raise(name, bad):
    with pytest.raises(InputError) as exc:
        ThermalParams.from_values(_values(**{name: bad}))
    assert name in exc.value.field


def test_bad_params_raise():
    v = _values()
    del v["lane_length_mm"]
    with pytest.raises(InputError, match="lane_length_mm"):
        ThermalParams.from_values(v)
    with pytest.raises(InputError, match="not_a_key"):
        ThermalParams.from_values(_values(not_a_key=1.0))
    with pytest.raises(InputError, match="k_tim_w_per_mk"):
        ThermalParams.from_values(_values(k_tim_w_per_mk="4"))
    with pytest.raises(InputError, match="t_die_max_c"):
        ThermalParams.from_values(_values(t_die_max_c=25.0))
    with pytest.raises(InputError, match="fan_curve_pressure_05_pa"):
        ThermalParams.from_values(_values(fan_curve_pressure_05_pa=900.0))
    with pytest.raises(InputError, match="fan_curve_flow_03_m3_per_s"):
        ThermalParams.from_values(_values(fan_curve_flow_03_m3_per_s=0.0015))
    with pytest.raises(InputError, match="fan_curve_pressure_13_pa"):
        ThermalParams.from_values(_values(fan_curve_pressure_13_pa=10.0))
    with pytest.raises(InputError, match="base_thickness_min_mm"):
        ThermalParams.from_values(_values(base_thickness_min_mm=25.0))
    with pytest.raises(InputError):
        ThermalParams.from_values([1.0, 2.0])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("side", "n", "allowance"),
    [
        (-1.0, 10, 2.0),
        (0.0, 10, 2.0),
        (math.nan, 10, 2.0),
        (10.0, 0, 2.0),
        (10.0, 2.5, 2.0),
        (10.0, 10, 0.0),
        (10.0, 10, -2.0),
        (10.0, 10, math.inf),
    ],
)
def test_bad_inputs_raise(side, n, allowance):
    with pytest.raises(InputError):
        lane_thermal(side, n, PARAMS, allowance)


def test_v1_base_width_lowers_power():
    # docs/hardware-model.md#constants-and-their-sources: v1 used a 40 x 40 mm base; a narrower
    # heatsink cools less
    narrow = dataclasses.replace(PARAMS, heatsink_base_width_mm=40.0)
    assert 0 < _power(10.0, 10, params=narrow) < _power(10.0, 10)


def test_physical_answer_is_half_the_default():
    # allowance 1 = pure physics; the default preset's 2.0 is the authors' doubling
    assert _power(10.0, 10, 1.0) == pytest.approx(_power(10.0, 10) / 2, rel=1e-12)
