"""TCO model against docs/tco.md (worked example) and s2 (server worked example)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chipletcloud import tco
from chipletcloud.perf import formulas


def test_worked_example():
    # docs/tco.md: C = $10,000, P = 1,000 W, L = 1.5 y -> $15,116
    assert tco.server_tco_usd(10000, 1000) == pytest.approx(15116, abs=1)


def test_coefficients():
    # docs/tco.md: TCO = 1.1145 C + 3.9709 $/W x P
    a, b = tco.tco_coefficients()
    assert a == pytest.approx(1.1145, abs=5e-5)
    assert b == pytest.approx(3.9709, abs=5e-5)


def test_breakdown_sums_and_parts():
    parts = tco.server_tco_breakdown(10000.0, 1000.0)
    assert parts["capex"] == 10000
    assert parts["opex"] == pytest.approx(500)
    # hand calc: 18 monthly payments at 8%/12 on $10,000 minus the principal
    m = 0.08 / 12
    pay = 10000 * m * (1 + m) ** 18 / ((1 + m) ** 18 - 1)
    assert parts["interest"] == pytest.approx(18 * pay - 10000)
    # electricity at PUE 1: 1 kW x 24 x 30 x 12 x 1.5 h x $0.067/kWh = $868.32; PUE 1.5 adds half
    assert parts["electricity"] == pytest.approx(868.32)
    assert parts["pue_overhead"] == pytest.approx(434.16)
    total = sum(v for k, v in parts.items() if k != "total")
    assert parts["total"] == pytest.approx(total)


def test_server_worked_example_tco():
    # docs/hardware-model.md#constants-and-their-sources: server cost $7,008.73 at 2,281.08 W ->
    # $16,869.34
    assert tco.server_tco_usd(7008.73, 2281.08) == pytest.approx(16869.34, abs=0.05)


def test_usd_per_million_tokens():
    # 10 servers of $15,116 TCO over 1.5 y (365-day) at 1,000 tokens/s: $3.1956 per M tokens
    life_s = 1.5 * 365 * 86400
    got = formulas.usd_per_million_tokens(10, 15116.0, life_s, 1000.0)
    assert got == pytest.approx(10 * 15116 / 47_304_000 / 1000 * 1e6)
    assert got == pytest.approx(3.19550, abs=1e-5)


@given(
    st.floats(0, 1e6, allow_subnormal=False),
    st.floats(0, 1e5, allow_subnormal=False),
    st.floats(0.5, 10),
)
def test_linear_and_monotone(c, p, life):
    t = tco.server_tco_usd(c, p, life)
    assert t >= c
    assert tco.server_tco_usd(c + 1, p, life) > t
    assert tco.server_tco_usd(c, p + 1, life) > t
    a, b = tco.tco_coefficients(life_years=life)
    assert t == pytest.approx(a * c + b * p, rel=1e-9, abs=1e-6)


def test_vectorised():
    got = tco.server_tco_usd(np.array([10000.0, 20000.0]), np.array([1000.0, 0.0]))
    assert got.shape == (2,)
    assert got[0] == pytest.approx(15116, abs=1)
