"""CC-MEM model: the six docs/hardware-model.md calibration points, monotonicity, exact inversion,
breakdowns, the decoder and crossbar scaling, the macro table and the parameter loaders."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from importlib import resources

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chipletcloud.config import load_card
from chipletcloud.errors import InputError
from chipletcloud.models import ccmem

P = ccmem.ParamsCCMEM.default()
MIB = 2**20

# docs/hardware-model.md: (SRAM area mm2, bandwidth bits/cycle, capacity MiB) of the authors' model
# [A]
SIX_POINTS = [
    (150.0, 40_000, 352.1),
    (80.0, 22_000, 236.5),
    (30.0, 16_000, 78.1),
    (145.5, 40_000, 353.0),
    (79.0, 22_000, 236.5),
    (28.6, 16_000, 78.1),
]

# Measured with the default card (decoders included), area from (capacity, bandwidth) and
# capacity from (area, bandwidth):
#   150 / 40,000 / 352.1:  area 147.04 (-1.97%)  capacity 363.2 MiB (+3.15%)
#    80 / 22,000 / 236.5:  area  79.35 (-0.81%)  capacity 238.9 MiB (+1.02%)
#    30 / 16,000 /  78.1:  area  29.48 (-1.72%)  capacity  80.0 MiB (+2.47%)
# 145.5 / 40,000 / 353  :  area 147.28 (+1.22%)  capacity 346.3 MiB (-1.89%)
#    79 / 22,000 / 236.5:  area  79.35 (+0.45%)  capacity 235.2 MiB (-0.56%)
#  28.6 / 16,000 /  78.1:  area  29.48 (+3.09%)  capacity  74.8 MiB (-4.24%)
# Without decoders (the authors' model had none) the largest error is 3.8%. The points themselves
# disagree: 30 and 28.6 mm2 hold the same 78.1 MiB at the same bandwidth (4.9% apart), so no
# model can do better than about +-2.4% in area (+-3.3% in capacity) on that pair.
EXPECTED_ERRORS = [
    (-0.0197, 0.0315),
    (-0.0081, 0.0102),
    (-0.0172, 0.0247),
    (0.0122, -0.0189),
    (0.0045, -0.0056),
    (0.0309, -0.0424),
]


def _bw(bits_per_cycle, clock_ghz=1.0):
    return np.asarray(bits_per_cycle, float) / 8.0 * clock_ghz * 1e9


def _six_errors(params, decoders=True):
    a = np.array([p[0] for p in SIX_POINTS])
    bw = _bw([p[1] for p in SIX_POINTS])
    c = np.array([p[2] for p in SIX_POINTS]) * MIB
    fwd = ccmem.ccmem_design(c, bw, 1.0, params, decoders)["total_area_mm2"] / a - 1
    inv = ccmem.ccmem_capacity_bytes(a, bw, 1.0, params, decoders) / c - 1
    return fwd, inv


@pytest.mark.parametrize("i", range(6))
def test_six_points_within_5_percent_both_directions(i):
    fwd, inv = _six_errors(P)
    print(f"point {SIX_POINTS[i]}: area error {fwd[i]:+.2%}, capacity error {inv[i]:+.2%}")
    assert abs(fwd[i]) < 0.05
    assert abs(inv[i]) < 0.05
    assert fwd[i] == pytest.approx(EXPECTED_ERRORS[i][0], abs=5e-4)
    assert inv[i] == pytest.approx(EXPECTED_ERRORS[i][1], abs=5e-4)


def test_six_points_without_decoders():
    fwd, inv = _six_errors(P, decoders=False)
    assert np.max(np.abs(np.r_[fwd, inv])) < 0.04


def test_fit_recovers_card_values():
    # The documented fit: least squares on the 12 relative errors (both directions, decoders
    # included) over macro_periphery_factor and crossbar_area_um2_per_bit_crosspoint.
    from scipy.optimize import least_squares

    def resid(x):
        q = dataclasses.replace(
            P, macro_periphery_factor=x[0], crossbar_area_um2_per_bit_crosspoint=x[1]
        )
        return np.concatenate(_six_errors(q))

    fit = least_squares(resid, [0.7, 0.5], xtol=1e-12, ftol=1e-12)
    assert fit.x[0] == pytest.approx(P.macro_periphery_factor, rel=2e-3)
    assert fit.x[1] == pytest.approx(P.crossbar_area_um2_per_bit_crosspoint, rel=2e-3)
    # residuals documented above: the largest is the 28.6 mm2 point in the capacity direction
    assert np.max(np.abs(resid(fit.x))) == pytest.approx(0.0424, abs=5e-4)


def test_calibrated_macro_density_and_crossbar_per_port():
    # densest macro 4096 x 128: ~0.27 mm2/MiB (0.0167 mm2 per 64 KiB), 85% array efficiency;
    # the crossbar costs a_x x 16 um2 per port pair (8.4 um2)
    areas = ccmem.macro_areas_mm2()
    t = {(m.depth_words, m.width_bits): (a, m) for m, a in zip(P.macros, areas, strict=True)}
    a, m = t[(4096, 128)]
    assert a / (4096 * 128 / 8 / MIB) == pytest.approx(0.2671, abs=5e-4)
    assert m.array_area_mm2 / a == pytest.approx(0.848, abs=2e-3)
    assert a == pytest.approx(
        min(areas / np.array([m.depth_words * m.width_bits for m in P.macros])) * 4096 * 128
    )


# --------------------------------------------------------------------------------------------------
# Structure


def test_breakdown_sums_to_total():
    rng = np.random.default_rng(1)
    cap = rng.uniform(0, 500, 200) * MIB
    bw = _bw(rng.uniform(100, 50_000, 200))
    d = ccmem.ccmem_design(cap, bw, 1.0)
    parts = d["macro_area_mm2"] + d["crossbar_area_mm2"] + d["decoder_area_mm2"]
    np.testing.assert_allclose(parts, d["total_area_mm2"], rtol=1e-12)
    area = rng.uniform(1, 300, 200)
    c, br = ccmem.sram_capacity_ccmem(area, bw, 1.0)
    parts = br["macro_area_mm2"] + br["crossbar_area_mm2"] + br["decoder_area_mm2"]
    np.testing.assert_allclose(parts, area, rtol=1e-12)
    np.testing.assert_array_equal(br["feasible"], c > 0)
    np.testing.assert_array_equal(c, ccmem.ccmem_capacity_bytes(area, bw, 1.0))


def test_decoder_area_scales_with_bank_groups():
    bits = np.array([1_600, 3_200, 6_400, 12_800, 40_000])
    d = ccmem.ccmem_design(100 * MIB, _bw(bits), 1.0)
    np.testing.assert_array_equal(d["bank_groups"], bits / 16)
    np.testing.assert_allclose(d["decoder_area_mm2"], d["bank_groups"] * P.decoder_area_mm2)
    np.testing.assert_allclose(
        d["decoder_area_mm2"][1:] / d["decoder_area_mm2"][:-1], bits[1:] / bits[:-1]
    )
    off = ccmem.ccmem_design(100 * MIB, _bw(bits), 1.0, decoders=False)
    np.testing.assert_array_equal(off["decoder_area_mm2"], 0.0)
    np.testing.assert_array_equal(off["decoder_pj_per_byte"], 0.0)
    np.testing.assert_array_equal(
        off["latency_cycles"] + P.decoder_latency_cycles, d["latency_cycles"]
    )


def test_decoder_area_matches_gate_count():
    ge = P.decoder_gate_equivalents * P.gate_equivalent_area_um2 / P.logic_placement_utilisation
    assert P.decoder_area_mm2 == pytest.approx(ge * 1e-6, rel=2e-3)


def test_crossbar_is_quadratic_in_bandwidth_and_logic_limited():
    bits = np.array([1_600.0, 3_200.0, 16_000.0, 32_000.0])
    d = ccmem.ccmem_design(10 * MIB, _bw(bits), 1.0)
    np.testing.assert_allclose(
        d["crossbar_area_mm2"], P.crossbar_area_um2_per_bit_crosspoint * bits**2 / 16 * 1e-6
    )
    # the wire-grid floor is ~20x below the logic area at these constants
    pitch = P.crossbar_wire_pitch_nm * 1e-3 / P.crossbar_routing_layers_per_direction
    wire = (bits * pitch) ** 2 * 1e-6
    assert np.all(wire < d["crossbar_area_mm2"] / 10)


def test_clock_only_enters_through_bits_per_cycle():
    a = ccmem.ccmem_capacity_bytes(80.0, _bw(20_000, 1.0), 1.0)
    b = ccmem.ccmem_capacity_bytes(80.0, _bw(20_000, 2.0), 2.0)
    assert a == pytest.approx(b)


def test_shape_choice_follows_the_bank_floor():
    # capacity-bound: the densest macro; bandwidth-bound (many groups, little capacity): smaller
    d = ccmem.ccmem_design([300 * MIB, 1 * MIB], _bw([2_000, 40_000]), 1.0)
    assert (d["macro_depth"][0], d["macro_width"][0]) == (4096, 128)
    assert d["macro_depth"][1] * d["macro_width"][1] < 4096 * 128
    assert d["banks"][1] == d["bank_groups"][1]  # one bank per group: the floor
    # 80 mm2 at 40,000 bits/cycle: 52.4 mm2 of crossbar leaves 27 mm2, less than 2,500 banks of
    # 4096 x 128 (41.7 mm2): 2048 x 128 macros are chosen
    cap, br = ccmem.sram_capacity_ccmem(80.0, _bw(40_000), 1.0)
    assert (br["macro_depth"], br["macro_width"]) == (2048, 128)
    assert cap / MIB == pytest.approx(98.66, abs=0.01)


def test_infeasible_when_crossbar_does_not_fit():
    # 40,000 bits/cycle needs a 52.4 mm2 crossbar: 50 mm2 cannot hold it
    cap, br = ccmem.sram_capacity_ccmem([50.0, 60.0], _bw(40_000), 1.0)
    assert cap[0] < 0 and not br["feasible"][0]
    assert br["macro_area_mm2"][0] < 0
    # 60 mm2 leaves 7 mm2 for 2,500 banks: even 512 x 32 macros (2.29 mm2) fit
    assert cap[1] > 0 and br["feasible"][1]
    assert ccmem.ccmem_capacity_bytes(0.0, _bw(1_000), 1.0) <= 0


def test_scalar_in_scalar_shaped_out():
    d = ccmem.ccmem_design(10 * MIB, 1e12, 1.0)
    assert all(np.shape(v) == () for v in d.values())
    c = ccmem.ccmem_capacity_bytes(np.ones((3, 4)) * 50, 1e12, 1.0)
    assert c.shape == (3, 4)


def test_energy_leakage_latency_are_sane():
    d = ccmem.ccmem_design(352.1 * MIB, _bw(40_000), 1.0)
    assert 0.1 < d["read_pj_per_byte"] < 1.25  # below the authors' 45 nm-derived 1.25 pJ/B [A]
    assert d["crossbar_pj_per_byte"] > d["read_pj_per_byte"]  # ~8 mm of wire dominates
    assert 0.1 < d["leakage_w"] < 2.0
    assert 3 <= d["latency_cycles"] <= 10
    np.testing.assert_allclose(
        d["access_pj_per_byte"],
        d["read_pj_per_byte"] + d["crossbar_pj_per_byte"] + d["decoder_pj_per_byte"],
    )


# --------------------------------------------------------------------------------------------------
# Properties

caps = st.floats(0.0, 2_000.0)  # MiB
bits = st.floats(16.0, 80_000.0)  # bits per cycle
areas = st.floats(0.5, 600.0)  # mm2


@settings(max_examples=200, deadline=None)
@given(caps, caps, bits)
def test_more_capacity_never_needs_less_area(c1, c2, b):
    lo, hi = sorted((c1, c2))
    d = ccmem.ccmem_design(np.array([lo, hi]) * MIB, _bw(b), 1.0)
    assert d["total_area_mm2"][1] >= d["total_area_mm2"][0] * (1 - 1e-12)


@settings(max_examples=200, deadline=None)
@given(caps, bits, bits)
def test_more_bandwidth_never_needs_less_area(c, b1, b2):
    lo, hi = sorted((b1, b2))
    d = ccmem.ccmem_design(c * MIB, _bw(np.array([lo, hi])), 1.0)
    assert d["total_area_mm2"][1] >= d["total_area_mm2"][0] * (1 - 1e-12)


@settings(max_examples=200, deadline=None)
@given(areas, areas, bits, bits)
def test_capacity_grows_with_area_and_falls_with_bandwidth(a1, a2, b1, b2):
    alo, ahi = sorted((a1, a2))
    blo, bhi = sorted((b1, b2))
    c = ccmem.ccmem_capacity_bytes(np.array([alo, ahi]), _bw(blo), 1.0)
    assert c[1] >= c[0]
    c = ccmem.ccmem_capacity_bytes(alo, _bw(np.array([blo, bhi])), 1.0)
    assert c[0] >= c[1]


@settings(max_examples=300, deadline=None)
@given(caps, bits)
def test_inverse_of_forward_is_identity(c_mib, b):
    cap = c_mib * MIB
    d = ccmem.ccmem_design(cap, _bw(b), 1.0)
    back = ccmem.ccmem_capacity_bytes(d["total_area_mm2"], _bw(b), 1.0)
    banks_for_capacity = cap * 8 / (d["macro_depth"] * d["macro_width"])
    if banks_for_capacity > d["bank_groups"] * (1 + 1e-9):
        # the capacity, not the one-bank-per-group floor, sets the banks: exact inverse
        assert back == pytest.approx(cap, rel=1e-6)
    else:
        # on the floor the area is flat in capacity: the inverse returns the most that fits
        assert back >= cap * (1 - 1e-9)
    assert back > 0


@settings(max_examples=300, deadline=None)
@given(areas, bits)
def test_forward_of_inverse_is_identity_where_feasible(a, b):
    cap = ccmem.ccmem_capacity_bytes(a, _bw(b), 1.0)
    if cap > 0:
        d = ccmem.ccmem_design(cap, _bw(b), 1.0)
        assert d["total_area_mm2"] == pytest.approx(a, rel=1e-6)


def test_speed_of_capacity_on_5000_elements():
    rng = np.random.default_rng(0)
    area = rng.uniform(5, 500, 5_000)
    bw = rng.uniform(1e11, 1e13, 5_000)
    ccmem.ccmem_capacity_bytes(area, bw, 1.0)
    t0 = time.perf_counter()
    for _ in range(10):
        ccmem.ccmem_capacity_bytes(area, bw, 1.0)
    ms = (time.perf_counter() - t0) / 10 * 1e3
    # measured ~1 ms on the development machine (target < 50 ms); not asserted
    print(f"ccmem_capacity_bytes on 5,000 elements: {ms:.2f} ms")


# --------------------------------------------------------------------------------------------------
# Data and parameters


def test_card_is_a_valid_sourced_card_and_matches_the_dataclass():
    card = load_card("tech", "ccmem_7nm")
    assert set(card) == set(ccmem.ParamsCCMEM.scalar_names())
    for name, q in card.items():
        assert getattr(P, name) == pytest.approx(q.value)
        assert q.source.startswith("[")


def test_macro_table_is_what_the_card_derives():
    path = resources.files("chipletcloud").joinpath("data/tech/ccmem_macros_7nm.json")
    stored = json.loads(path.read_text(encoding="utf-8"))
    derived = ccmem.derive_macro_table(P)
    assert len(stored) == len(derived) == 13
    shapes = {(m["depth_words"], m["width_bits"]) for m in stored}
    assert shapes == {(d, w) for d in (512, 1024, 2048, 4096) for w in (32, 64, 128)} | {(8192, 32)}
    for s, d in zip(stored, derived, strict=True):
        assert s["source"]
        for k, v in d.items():
            assert s[k] == pytest.approx(v, rel=1e-5), (s["depth_words"], s["width_bits"], k)
        # array = bits x 0.027 um2 (docs/hardware-model.md: the 0.027 / 0.074 bit-cell scaling)
        assert s["array_area_mm2"] == pytest.approx(
            s["depth_words"] * s["width_bits"] * 0.074 * (0.027 / 0.074) * 1e-6
        )


def test_from_values_round_trip_and_errors():
    values = {n: getattr(P, n) for n in ccmem.ParamsCCMEM.scalar_names()}
    assert ccmem.ParamsCCMEM.from_values(values) == P
    with pytest.raises(InputError, match="ccmem.bogus"):
        ccmem.ParamsCCMEM.from_values({**values, "bogus": 1.0})
    missing = dict(values)
    del missing["decoder_area_mm2"]
    with pytest.raises(InputError, match="decoder_area_mm2"):
        ccmem.ParamsCCMEM.from_values(missing)
    with pytest.raises(InputError, match="decoder_output_port_bits"):
        ccmem.ParamsCCMEM.from_values({**values, "decoder_output_port_bits": 32.0})
    with pytest.raises(InputError, match="crossbar_port_bits"):
        ccmem.ParamsCCMEM.from_values({**values, "crossbar_port_bits": 0.0})
    one = [dict(P.macros[-1]._asdict())]
    q = ccmem.ParamsCCMEM.from_values({**values, "macros": one})
    assert len(q.macros) == 1
    with pytest.raises(InputError, match="macros"):
        ccmem.ParamsCCMEM.from_values({**values, "macros": []})


def test_wider_ports_shrink_the_crossbar():
    # a_x B^2 / w: 64-bit ports need a quarter of the 16-bit crossbar
    wide = dataclasses.replace(
        P,
        crossbar_port_bits=64.0,
        decoder_throughput_words_per_cycle=4.0,
        decoder_output_port_bits=64.0,
    )
    a = ccmem.ccmem_design(100 * MIB, _bw(32_000), 1.0)["crossbar_area_mm2"]
    b = ccmem.ccmem_design(100 * MIB, _bw(32_000), 1.0, wide)["crossbar_area_mm2"]
    assert b == pytest.approx(a / 4)
    assert math.isclose(float(a), P.crossbar_area_um2_per_bit_crosspoint * 32_000**2 / 16 * 1e-6)
