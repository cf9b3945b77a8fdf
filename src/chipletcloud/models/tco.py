"""ASIC-Clouds / Barroso-Hoelzle total cost of ownership of one server over its life.

Formula (docs/tco.md [A]), for a server of cost C (USD) drawing P (W) over a life of L years:

    TCO = C + interest(C, r, L) + opex_fraction C
        + P [ dc_capex L / dc_life + interest(dc_capex, r, dc_life) L / dc_life
              + dc_opex 12 L + price / 1000 x hours_per_year L x PUE ]

with interest(X, r, Y) = 12 Y x payment - X of a monthly amortised loan (payment = X m (1+m)^N /
((1+m)^N - 1), m = r / 12, N = 12 Y). Electricity is billed over 24 x 30 x 12 hours a year, as the
authors did. With the ISCA-era constants, TCO = 1.1145 C + 3.9709 P, and C = $10,000, P = 1 kW
gives $15,116.

Which power P is charged (TDP, TDP x utilisation, or the energy model's average power) is the
caller's choice (preset ``power_source``). The per-watt coefficient splits in two
(:func:`tco_coefficients_split`): the datacentre *capacity* (its capex, interest and opex), paid
on the power provisioned, and the *electricity* (with the PUE overhead), paid on the power drawn;
``power_source = tdp_capacity`` charges the first at TDP and the second at the mean power.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from chipletcloud.config import TcoParams, card_params


def _default() -> TcoParams:
    """The ISCA-era TCO card (data/tco/asic_clouds.yaml)."""
    return card_params("tco", "asic_clouds")


def loan_interest_usd(principal_usd: ArrayLike, rate_per_year: float, years: float):
    """Total interest paid on a loan of ``principal_usd`` repaid monthly over ``years``."""
    x = np.asarray(principal_usd, dtype=float)
    m = rate_per_year / 12.0
    n = 12.0 * years
    if m == 0:
        return x * 0.0
    payment = x * m * (1 + m) ** n / ((1 + m) ** n - 1)
    return n * payment - x


def server_tco_breakdown(
    server_cost_usd: ArrayLike,
    power_w: ArrayLike,
    life_years: float | None = None,
    params: TcoParams | None = None,
    energy_power_w: ArrayLike | None = None,
) -> dict[str, np.ndarray]:
    """TCO components in USD over the server life: ``capex`` (server price), ``interest`` (on it),
    ``opex`` (server maintenance), ``datacenter`` (capex + its interest + opex of the datacenter
    power capacity), ``electricity`` (energy at PUE 1), ``pue_overhead`` (the extra PUE - 1) and
    ``total``. The datacentre is charged at ``power_w`` (the power provisioned) and the energy at
    ``energy_power_w`` (the mean power drawn; default ``power_w``, one power for both as in the
    authors' model)."""
    p = params or _default()
    life = p.server_life_years if life_years is None else life_years
    c = np.asarray(server_cost_usd, dtype=float)
    w = np.asarray(power_w, dtype=float)
    e = w if energy_power_w is None else np.asarray(energy_power_w, dtype=float)
    dc_per_w = (
        p.datacenter_capex_usd_per_w * life / p.datacenter_life_years
        + loan_interest_usd(
            p.datacenter_capex_usd_per_w, p.interest_rate_per_year, p.datacenter_life_years
        )
        * life
        / p.datacenter_life_years
        + p.datacenter_opex_usd_per_w_month * 12.0 * life
    )
    energy_per_w = p.electricity_usd_per_kwh / 1000.0 * p.billing_hours_per_year * life
    out = {
        "capex": c,
        "interest": loan_interest_usd(c, p.interest_rate_per_year, life),
        "opex": p.server_opex_fraction * c,
        "datacenter": dc_per_w * w,
        "electricity": energy_per_w * e,
        "pue_overhead": energy_per_w * (p.pue - 1.0) * e,
    }
    out["total"] = sum(out.values())
    return out


def server_tco_usd(
    server_cost_usd: ArrayLike,
    power_w: ArrayLike,
    life_years: float | None = None,
    params: TcoParams | None = None,
    energy_power_w: ArrayLike | None = None,
):
    """Total cost of ownership (USD) of one server over ``life_years`` (default: the card's server
    life; ISCA-era constants by default). ``server_tco_usd(10000, 1000)`` is $15,116
    (docs/tco.md). ``energy_power_w``: the mean power electricity is billed at, when it differs
    from the provisioned ``power_w`` (:func:`server_tco_breakdown`)."""
    total = server_tco_breakdown(server_cost_usd, power_w, life_years, params, energy_power_w)[
        "total"
    ]
    return float(total) if np.ndim(total) == 0 else total


def tco_coefficients(params: TcoParams | None = None, life_years: float | None = None):
    """(USD per USD of server cost, USD per W) so that TCO = a C + b P (both linear)."""
    b = server_tco_breakdown(1.0, 0.0, life_years, params)["total"]
    w = server_tco_breakdown(0.0, 1.0, life_years, params)["total"]
    return float(b), float(w)


def tco_coefficients_split(params: TcoParams | None = None, life_years: float | None = None):
    """(USD per USD of server cost, USD per W of datacentre capacity, USD per W of mean power
    drawn) so that TCO = a C + b_capacity P_provisioned + b_energy P_mean; b_capacity + b_energy
    is the ``b`` of :func:`tco_coefficients`. ISCA-era constants: 1.1145, 2.6684 (datacentre
    capex, its interest and opex) and 1.3025 (electricity 0.8683 + PUE overhead 0.4342)
    (docs/tco.md)."""
    a = server_tco_breakdown(1.0, 0.0, life_years, params)["total"]
    cap = server_tco_breakdown(0.0, 1.0, life_years, params, energy_power_w=0.0)["total"]
    energy = server_tco_breakdown(0.0, 0.0, life_years, params, energy_power_w=1.0)["total"]
    return float(a), float(cap), float(energy)


def nre_usd_per_server(total_usd: float, deployment_servers: float) -> float:
    """The NRE one server carries: the tape-out's NRE over the servers deployed from it (USD;
    docs/tco.md#nre). ``deployment_servers`` must be > 0 (the TCO card validates it)."""
    return float(total_usd) / float(deployment_servers)


def server_life_s(params: TcoParams | None = None) -> float:
    """The server life in seconds (life in years x seconds a year; 365-day years)."""
    p = params or _default()
    return p.server_life_years * p.seconds_per_year
