"""Heatsink + fan thermal model of one server lane (ASIC Clouds style).

A Chiplet Cloud server (docs/hardware-model.md, after the ASIC Clouds server of Magaki et al.,
"ASIC Clouds: Specializing the Datacenter", ISCA 2016) has 8 lanes (air ducts). Each lane has one
fan and a row of ``n`` packages, one die per package, each package under its own aluminium
plate-fin heatsink. Air enters the lane at ``t_ambient_c`` and is warmed by every package it passes,
so the last package of the row is the hottest. This module returns, for a square heat source (die)
of side ``s`` and ``n`` packages per lane, the largest power one package may dissipate with its die
at ``t_die_max_c``, the cost of its heatsink, the lane airflow and the heatsink geometry chosen.

Units: inputs and outputs in mm, W, K/W, m3/s, USD; internally SI (m). Temperatures in degC.

Thermal path of one package (docs/hardware-model.md#thermal-model), resistances in series, in K/W::

    R_total  = R_die + R_tim + R_spread + R_fins
    R_die    = t_die / (k_si  s^2)     one-dimensional conduction through the die
    R_tim    = t_tim / (k_tim s^2)     one-dimensional conduction through the TIM
    R_spread = Lee, Song, Au & Moran, "Constriction/spreading resistance model for electronics
               packaging", ASME/JSME Thermal Engineering Conf. 1995: a circular source of the
               die's area on a circular plate of the base's area (equivalent radii), base
               thickness t_b and a uniform film coefficient h_eff = 1 / (R_fins W L) on the far
               side. The formula's ``epsilon tau / sqrt(pi)`` term is the one-dimensional
               conduction through the base, so R_spread includes it.
    R_fins   = 1 / (h (A_base_exposed + N eta A_fin)), fin array with adiabatic-tip fin
               efficiency eta = tanh(mH)/(mH), m = sqrt(2 h / (k_al t_f))
               (e.g. Incropera & DeWitt, Fundamentals of Heat and Mass Transfer, ch. 3).

Heat-transfer coefficient in the fin channels: the composite (developing + fully developed)
laminar parallel-plate correlation of Teertstra, Yovanovich & Culham, "Analytical forced convection
modeling of plate fin heat sinks", SEMI-THERM 1999 / J. Electronics Manufacturing 10 (2000)::

    Re* = rho V b^2 / (mu L)        (channel Reynolds number on the gap b, times b / L)
    Nu  = [ (Re* Pr / 2)^-3 + (0.664 sqrt(Re*) Pr^(1/3) sqrt(1 + 3.65 / sqrt(Re*)))^-3 ]^(-1/3)
    h   = Nu k_air / b,   V = Q / ((N - 1) b H)

Pressure drop of the lane: all heatsinks of a lane abut with their fins aligned, so the fan sees
one fin channel of length n L with one contraction and one expansion. After Culham & Muzychka,
"Optimization of plate fin heat sinks using entropy generation minimization", IEEE Trans. CPT 24
(2001)::

    dP  = (K_c + 4 f_app (n L) / D_h + K_e) rho V^2 / 2,   D_h = 2 b (parallel plates)
    K_c = 0.42 (1 - sigma^2),  K_e = (1 - sigma^2)^2,  sigma = 1 - N t_f / W
          (contraction / expansion fits of Kays & London's data)
    f_app Re = sqrt((3.44 / sqrt(L+))^2 + (f Re)^2),  L+ = n L / (D_h Re)
          (developing flow, Muzychka & Yovanovich)
    f Re = 24 (1 - 1.3553 a + 1.9467 a^2 - 1.7012 a^3 + 0.9564 a^4 - 0.2537 a^5),  a = b / H
          (fully developed rectangular duct, Shah & London, "Laminar flow forced convection in
          ducts", 1978)

The lane airflow Q is where the fan's static-pressure curve (San Ace 38 GA 9GA0312P3K001, 7.4 W,
piecewise-linear through the points of the thermal card) meets dP(Q); it is found by bisection.
All of the fan's air is assumed to pass between the fins (the heatsinks fill the duct: no bypass).

Allowed power of one package (docs/hardware-model.md#thermal-model): the last of the ``n`` packages
sees air warmed by
the ``n - 1`` upstream packages, each dissipating the same power, so::

    q_max = (T_die,max - T_amb) / (R_total + (n - 1) / (c_p rho Q))

Geometry choice (what is optimised). For each (s, n) the heatsink length along the flow is the
longest whole multiple of ``heatsink_length_step_mm`` not above ``lane_length_mm / n``; it is not
capped at the 50 mm base (150 mm at n = 3, as in the authors' code). A longer heatsink raised
q_max in every case we checked (its extra area outweighs the extra pressure drop). The fins fill
the duct height: fin height = ``heatsink_max_height_mm`` - base thickness (shorter fins only lose
area and raise the channel velocity). A full grid search then maximises q_max over

* base thickness t_b from ``base_thickness_min_mm`` to ``base_thickness_max_mm`` in steps of
  ``base_thickness_step_mm`` (1..20 mm by 1 mm in the default card),
* fin thickness t_f from ``fin_thickness_min_mm`` to ``fin_thickness_max_mm`` in steps of
  ``fin_thickness_step_mm`` (0.5, 0.75, 1.0 mm),
* fin count N from 2 to the largest count whose gap is at least ``fin_gap_min_mm``
  (34 fins of 0.5 mm on a 50 mm base),

(the authors' code searched the same quantities greedily, with 0.5 mm fins only). A case is
infeasible (q_max 0, cost NaN) when the heatsink length per package is shorter than the die side
(n s does not fit in the lane) or the die is wider than the heatsink base.

Heatsink cost (docs/hardware-model.md#constants-and-their-sources), with V_al the aluminium volume
of base and fins::

    cost = heatsink_fixed_usd + aluminium_usd_per_m3 x V_al,   V_al = W L t_b + N t_f H L

``allowance_factor``: the authors' final code doubled q_max ("TODO: consider more advanced air
cooling"), i.e. it assumed a cooling solution twice as good as this plate-fin model. The factor
multiplies the physical q_max; 2.0 reproduces the authors (the default preset), 1.0 is the pure
physical answer. It does not change the geometry, airflow or cost.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import lru_cache
from importlib import resources
from typing import Any, NamedTuple

import numpy as np

from chipletcloud.config import read_yaml
from chipletcloud.errors import InputError

_N_FAN_POINTS = 14
_BISECTION_STEPS = 48
_MAX_SIDE_MM = 1.0e6  # keeps the integer memo key far from int64 overflow
_N_KEY_BASE = 1 << 20  # packages_per_lane must stay below this (memo key packing)


@dataclass(frozen=True)
class ThermalParams:
    """Every constant of the lane thermal model; one field per key of ``data/tech/thermal.yaml``.

    Names carry their unit. Construct with :meth:`from_values` (validates keys) or :meth:`default`.
    Instances are hashable and compare by value, so they can key the memo caches.
    """

    t_die_max_c: float
    t_ambient_c: float
    die_thickness_mm: float
    k_silicon_w_per_mk: float
    tim_thickness_mm: float
    k_tim_w_per_mk: float
    k_aluminium_w_per_mk: float
    heatsink_base_width_mm: float
    heatsink_max_height_mm: float
    lane_length_mm: float
    heatsink_length_step_mm: float
    base_thickness_min_mm: float
    base_thickness_max_mm: float
    base_thickness_step_mm: float
    fin_thickness_min_mm: float
    fin_thickness_max_mm: float
    fin_thickness_step_mm: float
    fin_gap_min_mm: float
    air_cp_j_per_kgk: float
    air_k_w_per_mk: float
    air_density_kg_per_m3: float
    air_viscosity_pa_s: float
    aluminium_usd_per_m3: float
    heatsink_fixed_usd: float
    fan_power_w: float
    fan_curve_flow_00_m3_per_s: float
    fan_curve_pressure_00_pa: float
    fan_curve_flow_01_m3_per_s: float
    fan_curve_pressure_01_pa: float
    fan_curve_flow_02_m3_per_s: float
    fan_curve_pressure_02_pa: float
    fan_curve_flow_03_m3_per_s: float
    fan_curve_pressure_03_pa: float
    fan_curve_flow_04_m3_per_s: float
    fan_curve_pressure_04_pa: float
    fan_curve_flow_05_m3_per_s: float
    fan_curve_pressure_05_pa: float
    fan_curve_flow_06_m3_per_s: float
    fan_curve_pressure_06_pa: float
    fan_curve_flow_07_m3_per_s: float
    fan_curve_pressure_07_pa: float
    fan_curve_flow_08_m3_per_s: float
    fan_curve_pressure_08_pa: float
    fan_curve_flow_09_m3_per_s: float
    fan_curve_pressure_09_pa: float
    fan_curve_flow_10_m3_per_s: float
    fan_curve_pressure_10_pa: float
    fan_curve_flow_11_m3_per_s: float
    fan_curve_pressure_11_pa: float
    fan_curve_flow_12_m3_per_s: float
    fan_curve_pressure_12_pa: float
    fan_curve_flow_13_m3_per_s: float
    fan_curve_pressure_13_pa: float

    def __post_init__(self) -> None:
        _validate(self)

    @classmethod
    def from_values(cls, values: Mapping[str, float]) -> ThermalParams:
        """Build from a plain ``name -> number`` mapping holding exactly the fields of this class.

        Raises :class:`InputError` for a missing or unknown key, a value that is not a finite
        number, a non-positive value where a positive one is required, or an inconsistent set (a
        grid with min > max, a fan curve that is not a falling line from shut-off to free
        delivery, ...).
        """
        if not isinstance(values, Mapping):
            raise InputError("thermal", values, "a mapping of thermal constant names to numbers")
        names = [f.name for f in fields(cls)]
        for key in values:
            if key not in names:
                raise InputError(f"thermal.{key}", values[key], "a key of the thermal card")
        clean: dict[str, float] = {}
        for name in names:
            if name not in values:
                raise InputError(f"thermal.{name}", None, "a number (required key is missing)")
            v = values[name]
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise InputError(f"thermal.{name}", v, "a finite number")
            clean[name] = float(v)
        return cls(**clean)

    @classmethod
    def default(cls) -> ThermalParams:
        """The constants of ``chipletcloud/data/tech/thermal.yaml`` (each entry's ``value``)."""
        return _default_params()

    def fan_curve(self) -> tuple[np.ndarray, np.ndarray]:
        """The fan's (airflow m3/s, static pressure Pa) points, airflow ascending."""
        q = [getattr(self, f"fan_curve_flow_{i:02d}_m3_per_s") for i in range(_N_FAN_POINTS)]
        p = [getattr(self, f"fan_curve_pressure_{i:02d}_pa") for i in range(_N_FAN_POINTS)]
        return np.array(q, float), np.array(p, float)


# Keys that may be zero (fan-curve points) or take any finite value (temperatures).
_NON_NEGATIVE = {f"fan_curve_flow_{i:02d}_m3_per_s" for i in range(_N_FAN_POINTS)} | {
    f"fan_curve_pressure_{i:02d}_pa" for i in range(_N_FAN_POINTS)
}
_ANY_FINITE = {"t_die_max_c", "t_ambient_c"}


def _validate(p: ThermalParams) -> None:
    for f in fields(p):
        v = getattr(p, f.name)
        field = f"thermal.{f.name}"
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise InputError(field, v, "a finite number")
        if f.name in _ANY_FINITE:
            continue
        if f.name in _NON_NEGATIVE:
            if v < 0:
                raise InputError(field, v, "a number >= 0")
        elif v <= 0:
            raise InputError(field, v, "a number > 0")
    if p.t_die_max_c <= p.t_ambient_c:
        raise InputError("thermal.t_die_max_c", p.t_die_max_c, f"> t_ambient_c ({p.t_ambient_c})")
    if p.base_thickness_min_mm > p.base_thickness_max_mm:
        raise InputError(
            "thermal.base_thickness_min_mm",
            p.base_thickness_min_mm,
            f"<= base_thickness_max_mm ({p.base_thickness_max_mm})",
        )
    if p.base_thickness_min_mm >= p.heatsink_max_height_mm:
        raise InputError(
            "thermal.base_thickness_min_mm",
            p.base_thickness_min_mm,
            f"< heatsink_max_height_mm ({p.heatsink_max_height_mm})",
        )
    if p.fin_thickness_min_mm > p.fin_thickness_max_mm:
        raise InputError(
            "thermal.fin_thickness_min_mm",
            p.fin_thickness_min_mm,
            f"<= fin_thickness_max_mm ({p.fin_thickness_max_mm})",
        )
    q, pr = p.fan_curve()
    if q[0] != 0.0:
        raise InputError("thermal.fan_curve_flow_00_m3_per_s", q[0], "0 (the shut-off point)")
    if pr[0] <= 0.0:
        raise InputError("thermal.fan_curve_pressure_00_pa", pr[0], "> 0 (the shut-off pressure)")
    if pr[-1] != 0.0:
        last = f"thermal.fan_curve_pressure_{_N_FAN_POINTS - 1:02d}_pa"
        raise InputError(last, pr[-1], "0 (the free-delivery point)")
    for i in range(1, _N_FAN_POINTS):
        if q[i] <= q[i - 1]:
            raise InputError(
                f"thermal.fan_curve_flow_{i:02d}_m3_per_s",
                q[i],
                f"> the previous fan-curve airflow ({q[i - 1]})",
            )
        if pr[i] > pr[i - 1]:
            raise InputError(
                f"thermal.fan_curve_pressure_{i:02d}_pa",
                pr[i],
                f"<= the previous fan-curve pressure ({pr[i - 1]})",
            )


@lru_cache(maxsize=1)
def _default_params() -> ThermalParams:
    path = resources.files("chipletcloud").joinpath("data/tech/thermal.yaml")
    raw: Any = read_yaml(path, "thermal card")
    if not isinstance(raw, dict):
        raise InputError("thermal card", str(path), "a YAML mapping name: {value, unit, source}")
    values: dict[str, float] = {}
    for key, entry in raw.items():
        if not isinstance(entry, dict) or "value" not in entry:
            raise InputError(f"thermal.{key}", entry, "a mapping {value, unit, source}")
        values[key] = entry["value"]
    return ThermalParams.from_values(values)


class ThermalResult(NamedTuple):
    """Per-candidate outputs of :func:`lane_thermal` (numpy float arrays of the broadcast shape).

    Infeasible cases have ``max_package_power_w`` 0.0 and NaN everywhere else.
    """

    max_package_power_w: np.ndarray  # W, allowed power of one package, times allowance_factor
    heatsink_cost_usd: np.ndarray  # USD per heatsink
    airflow_m3_per_s: np.ndarray  # lane airflow at the fan / fin-array operating point
    r_total_k_per_w: np.ndarray  # K/W, die junction to the air entering this heatsink
    fin_count: np.ndarray  # fins per heatsink
    fin_thickness_mm: np.ndarray
    fin_height_mm: np.ndarray  # above the base; base + fins = heatsink_max_height_mm
    heatsink_length_mm: np.ndarray  # along the flow
    base_thickness_mm: np.ndarray


_FIELDS = ThermalResult._fields
_INFEASIBLE = (0.0,) + (math.nan,) * (len(_FIELDS) - 1)


def heatsink_length_mm(packages_per_lane: int, params: ThermalParams) -> float:
    """Heatsink length along the flow (mm): the longest whole step not above lane / n."""
    step = params.heatsink_length_step_mm
    return math.floor(params.lane_length_mm / packages_per_lane / step + 1e-9) * step


def _grid(params: ThermalParams) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Geometry grid in m, shapes broadcasting to (fin thickness, base thickness, fin count).

    Returns ``(t_f, t_b, N, valid)``; ``valid`` masks fin counts whose gap is below the minimum.
    """
    p = params
    tf = np.arange(p.fin_thickness_min_mm, p.fin_thickness_max_mm + 1e-9, p.fin_thickness_step_mm)
    tb_top = min(p.base_thickness_max_mm, p.heatsink_max_height_mm - 1e-6)
    tb = np.arange(p.base_thickness_min_mm, tb_top + 1e-9, p.base_thickness_step_mm)
    tb = tb[tb < p.heatsink_max_height_mm]
    w, gmin = p.heatsink_base_width_mm, p.fin_gap_min_mm
    n_max = int(math.floor((w + gmin) / (tf[0] + gmin) + 1e-9))
    counts = np.arange(2, max(n_max, 2) + 1, dtype=float)
    tf3 = tf[:, None, None] * 1e-3
    tb3 = tb[None, :, None] * 1e-3
    n3 = counts[None, None, :]
    gap = (w * 1e-3 - n3 * tf3) / (n3 - 1.0)
    valid = np.broadcast_to(gap >= gmin * 1e-3 * (1 - 1e-9), (tf.size, tb.size, counts.size))
    return tf3, tb3, n3, valid


def _pressure_drop(
    q: np.ndarray,
    n: np.ndarray,
    tf: np.ndarray,
    h: np.ndarray,
    length: float,
    params: ThermalParams,
) -> np.ndarray:
    """Static pressure drop (Pa) of a fin array ``length`` m long at airflow ``q`` m3/s.

    Culham & Muzychka (2001) with Muzychka & Yovanovich's developing-flow apparent friction factor
    and Shah & London's fully developed rectangular-duct f Re; see the module docstring.
    """
    p = params
    w = p.heatsink_base_width_mm * 1e-3
    rho, mu = p.air_density_kg_per_m3, p.air_viscosity_pa_s
    b = (w - n * tf) / (n - 1.0)
    v = q / ((n - 1.0) * b * h)
    dh = 2.0 * b
    re = rho * v * dh / mu
    a = b / h
    f_re = 24.0 * (1 - 1.3553 * a + 1.9467 * a**2 - 1.7012 * a**3 + 0.9564 * a**4 - 0.2537 * a**5)
    l_plus = length / (dh * re)
    f_app = np.sqrt(3.44**2 / l_plus + f_re**2) / re
    open_ratio = 1.0 - n * tf / w
    k_c = 0.42 * (1.0 - open_ratio**2)
    k_e = (1.0 - open_ratio**2) ** 2
    return (k_c + 4.0 * f_app * length / dh + k_e) * rho * v**2 / 2.0


@lru_cache(maxsize=256)
def _airflow_grid(lane_fin_length_mm: float, params: ThermalParams) -> np.ndarray:
    """Lane airflow (m3/s) for every grid geometry, for fin channels ``lane_fin_length_mm`` long.

    Bisection on ``fan(Q) - dP(Q)``, which falls monotonically from the shut-off pressure at Q = 0
    to ``-dP < 0`` at free delivery. NaN where the geometry is invalid.
    """
    tf, tb, n, valid = _grid(params)
    h = params.heatsink_max_height_mm * 1e-3 - tb
    fan_q, fan_p = params.fan_curve()
    shape = valid.shape
    lo = np.zeros(shape)
    hi = np.full(shape, fan_q[-1])
    length = lane_fin_length_mm * 1e-3
    with np.errstate(divide="ignore", invalid="ignore"):
        for _ in range(_BISECTION_STEPS):
            mid = 0.5 * (lo + hi)
            ok = np.interp(mid, fan_q, fan_p) >= _pressure_drop(mid, n, tf, h, length, params)
            lo = np.where(ok, mid, lo)
            hi = np.where(ok, hi, mid)
    q = 0.5 * (lo + hi)
    q[~valid] = np.nan
    return q


def _spreading_resistance(
    src_area: float, plate_area: np.ndarray, thickness: np.ndarray, h_eff: np.ndarray, k: float
) -> np.ndarray:
    """Lee, Song, Au & Moran (1995) max spreading resistance (K/W), base conduction included."""
    r_src = math.sqrt(src_area / math.pi)
    r_plate = np.sqrt(plate_area / math.pi)
    eps = r_src / r_plate
    tau = thickness / r_plate
    biot = h_eff * r_plate / k
    lam = math.pi + 1.0 / (eps * math.sqrt(math.pi))
    th = np.tanh(lam * tau)
    phi = (th + lam / biot) / (1.0 + lam / biot * th)
    psi = (eps * tau + (1.0 - eps) * phi) / math.sqrt(math.pi)
    return psi / (k * r_src * math.sqrt(math.pi))


@lru_cache(maxsize=65536)
def _solve(side_key: int, packages_per_lane: int, params: ThermalParams) -> tuple[float, ...]:
    """Physical (allowance 1) solution for one (die side in 1e-6 mm units, n) pair.

    Returns the fields of :class:`ThermalResult` as floats (power before the allowance factor).
    """
    p = params
    side_mm = side_key * 1e-6
    n_pl = packages_per_lane
    length_mm = heatsink_length_mm(n_pl, p)
    if length_mm < side_mm or side_mm > p.heatsink_base_width_mm or length_mm <= 0:
        return _INFEASIBLE
    q = _airflow_grid(length_mm * n_pl, p)
    tf, tb, n, valid = _grid(p)
    s, length, w = side_mm * 1e-3, length_mm * 1e-3, p.heatsink_base_width_mm * 1e-3
    h = p.heatsink_max_height_mm * 1e-3 - tb
    rho, mu, cp, k_air = (
        p.air_density_kg_per_m3,
        p.air_viscosity_pa_s,
        p.air_cp_j_per_kgk,
        p.air_k_w_per_mk,
    )
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # fin array: Teertstra et al. (1999) Nusselt number, adiabatic-tip fin efficiency
        gap = (w - n * tf) / (n - 1.0)
        vel = q / ((n - 1.0) * gap * h)
        re_star = rho * vel * gap**2 / (mu * length)
        pr = mu * cp / k_air
        nu_dev = 0.664 * np.sqrt(re_star) * pr ** (1 / 3) * np.sqrt(1.0 + 3.65 / np.sqrt(re_star))
        nu = ((re_star * pr / 2.0) ** -3 + nu_dev**-3) ** (-1 / 3)
        h_conv = nu * k_air / gap
        m = np.sqrt(2.0 * h_conv / (p.k_aluminium_w_per_mk * tf))
        eta = np.tanh(m * h) / (m * h)
        area = (n - 1.0) * gap * length + n * eta * 2.0 * h * length
        r_fins = 1.0 / (h_conv * area)
        h_eff = 1.0 / (r_fins * w * length)
        r_sp = _spreading_resistance(
            s * s, np.asarray(w * length), tb, h_eff, p.k_aluminium_w_per_mk
        )
        r_die = p.die_thickness_mm * 1e-3 / (p.k_silicon_w_per_mk * s * s)
        r_tim = p.tim_thickness_mm * 1e-3 / (p.k_tim_w_per_mk * s * s)
        r_total = r_die + r_tim + r_sp + r_fins
        preheat = (n_pl - 1) / (cp * rho * q)
        power = (p.t_die_max_c - p.t_ambient_c) / (r_total + preheat)
    power = np.where(valid & np.isfinite(power) & (q > 0), power, -np.inf)
    if not np.isfinite(power.max()):
        return _INFEASIBLE
    i, j, k = np.unravel_index(int(np.argmax(power)), power.shape)
    tf_b, tb_b, n_b = float(tf[i, 0, 0]), float(tb[0, j, 0]), float(n[0, 0, k])
    h_b = p.heatsink_max_height_mm * 1e-3 - tb_b
    volume = w * length * tb_b + n_b * tf_b * h_b * length
    cost = p.heatsink_fixed_usd + p.aluminium_usd_per_m3 * volume
    return (
        float(power[i, j, k]),
        float(cost),
        float(q[i, j, k]),
        float(r_total[i, j, k]),
        n_b,
        tf_b * 1e3,
        h_b * 1e3,
        length_mm,
        tb_b * 1e3,
    )


def lane_thermal(
    die_side_mm: Any,
    packages_per_lane: Any,
    params: ThermalParams | None = None,
    allowance_factor: float = 2.0,
) -> ThermalResult:
    """Allowed power per package and heatsink of a lane, for every (die side, n) given.

    Args:
        die_side_mm: side of the square heat source in mm (array-like, > 0).
        packages_per_lane: packages in the lane's row, n >= 1 (array-like of integers); broadcast
            against ``die_side_mm``.
        params: the constants (default: :meth:`ThermalParams.default`).
        allowance_factor: multiplies the physical q_max (2.0 = the authors' final code, 1.0 = pure
            physics); see the module docstring.

    Returns:
        :class:`ThermalResult` of float arrays of the broadcast shape. Infeasible cases (the
        packages do not fit along the lane, or the die is wider than the heatsink) have power 0 and
        NaN elsewhere.

    The physics runs once per unique (side rounded to 1e-6 mm, n, params) and is memoised
    (``functools.lru_cache``); the allowance factor is applied afterwards, so it is exactly linear.
    """
    if params is None:
        params = ThermalParams.default()
    if not isinstance(params, ThermalParams):
        raise InputError("params", type(params).__name__, "a ThermalParams or None")
    if (
        isinstance(allowance_factor, bool)
        or not isinstance(allowance_factor, (int, float, np.integer, np.floating))
        or not math.isfinite(allowance_factor)
        or allowance_factor <= 0
    ):
        raise InputError("allowance_factor", allowance_factor, "a finite number > 0")
    try:
        side = np.asarray(die_side_mm, dtype=float)
        n_raw = np.asarray(packages_per_lane, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InputError("die_side_mm/packages_per_lane", die_side_mm, "numeric arrays") from exc
    try:
        side, n_raw = np.broadcast_arrays(side, n_raw)
    except ValueError as exc:
        raise InputError(
            "packages_per_lane",
            n_raw.shape,
            f"an array broadcastable with die_side_mm {side.shape}",
        ) from exc
    if side.size and not (
        np.all(np.isfinite(side)) and np.all(side > 0) and np.all(side <= _MAX_SIDE_MM)
    ):
        bad = side[~(np.isfinite(side) & (side > 0) & (side <= _MAX_SIDE_MM))].flat[0]
        raise InputError("die_side_mm", float(bad), f"finite numbers in (0, {_MAX_SIDE_MM:g}] mm")
    n_ok = np.isfinite(n_raw) & (n_raw >= 1) & (n_raw < _N_KEY_BASE) & (n_raw == np.round(n_raw))
    if side.size and not np.all(n_ok):
        bad = n_raw[~n_ok].flat[0]
        raise InputError("packages_per_lane", float(bad), f"integers in [1, {_N_KEY_BASE - 1}]")
    keys = np.rint(side * 1e6).astype(np.int64) * _N_KEY_BASE + n_raw.astype(np.int64)
    uniq, inverse = np.unique(keys.ravel(), return_inverse=True)
    table = np.empty((uniq.size, len(_FIELDS)))
    for row, key in enumerate(uniq.tolist()):
        table[row] = _solve(key // _N_KEY_BASE, key % _N_KEY_BASE, params)
    table[:, 0] *= float(allowance_factor)
    cols = table[inverse.ravel()].reshape(side.shape + (len(_FIELDS),))
    return ThermalResult(*(np.array(cols[..., i]) for i in range(len(_FIELDS))))
