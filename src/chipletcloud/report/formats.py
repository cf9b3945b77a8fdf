"""Text forms of the report's numbers (also the template's filters, by the keys of
:data:`FORMATS`). Every formatter takes anything and returns a string, an em dash for a missing
or non-finite value."""

from __future__ import annotations

import math
from typing import Any

from chipletcloud.report.results import num


def fmt_num(x: Any, digits: int = 3) -> str:
    """A number to ``digits`` significant figures, thousands separated; an em dash for none."""
    v = num(x)
    if math.isnan(v):
        return "—" if x is None or not isinstance(x, str) else x
    if v != 0 and (abs(v) >= 10**digits or abs(v) < 1e-4):
        return f"{v:,.0f}" if abs(v) >= 10**digits else f"{v:.{digits - 1}e}"
    return f"{v:.{digits}g}"


def fmt_int(x: Any) -> str:
    """A whole number, thousands separated; an em dash for none."""
    v = num(x)
    return "—" if math.isnan(v) else f"{v:,.0f}"


def fmt_usd(x: Any) -> str:
    """Dollars to three significant figures (``$0.42``); an em dash for none."""
    v = num(x)
    return "—" if math.isnan(v) else f"${fmt_num(v, 3)}"


def fmt_ratio(x: Any) -> str:
    """A ratio with a times sign (``97×``, ``18.0×``, ``3.7×``); an em dash for none."""
    v = num(x)
    if math.isnan(v):
        return "—"
    return f"{v:,.0f}×" if v >= 100 else f"{v:.1f}×" if v >= 10 else f"{v:.2g}×"


def fmt_pct(x: Any, signed: bool = True) -> str:
    """A fraction as a percentage (``+12.0%``), signed unless ``signed`` is false; an em dash
    for none."""
    v = num(x)
    if math.isnan(v):
        return "—"
    p = v * 100
    if 0 < abs(p) < 0.05:  # tiny errors keep two significant figures, not "+0.0%"
        return f"{p:+.2g}%" if signed else f"{p:.2g}%"
    return f"{p:+.1f}%" if signed else f"{p:.1f}%"


def fmt_ms(x: Any) -> str:
    """Seconds as milliseconds (number only); an em dash for none."""
    v = num(x)
    return "—" if math.isnan(v) else fmt_num(v * 1e3, 3)


def fmt_kw(x: Any) -> str:
    """Watts as kilowatts (number only); an em dash for none."""
    v = num(x)
    return "—" if math.isnan(v) else fmt_num(v / 1e3, 3)


def fmt_duration(x: Any) -> str:
    """Seconds as ``s``, ``min`` or ``h``; an em dash for none."""
    v = num(x)
    if math.isnan(v):
        return "—"
    if v < 120:
        return f"{v:.1f} s"
    if v < 7200:
        return f"{v / 60:.1f} min"
    return f"{v / 3600:.2f} h"


def fmt_params(x: Any) -> str:
    """A parameter count with an M/B/T suffix (``175B``); an em dash for none."""
    v = num(x)
    if math.isnan(v):
        return "—"
    for scale, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M")):
        if abs(v) >= scale:
            return f"{v / scale:.3g}{unit}"
    return fmt_num(v)


def fmt_si(x: Any) -> str:
    """Large numbers with k/M/B suffixes (2.0M), small ones as :func:`fmt_num`."""
    v = num(x)
    if math.isnan(v):
        return "—"
    for scale, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= scale:
            return f"{v / scale:.3g}{unit}"
    return fmt_num(v)


def fmt_money(x: Any) -> str:
    """Dollars with a k/M/B suffix (``$35M``); an em dash for none."""
    v = num(x)
    return "—" if math.isnan(v) else f"${fmt_si(v)}"


def fmt_fixed2(x: Any) -> str:
    """A number with two decimals; an em dash for none."""
    v = num(x)
    return "—" if math.isnan(v) else f"{v:.2f}"


FORMATS = {
    "num": fmt_num,
    "fixed2": fmt_fixed2,
    "si": fmt_si,
    "money": fmt_money,
    "int": fmt_int,
    "usd": fmt_usd,
    "ratio": fmt_ratio,
    "pct": fmt_pct,
    "ms": fmt_ms,
    "kw": fmt_kw,
    "duration": fmt_duration,
    "params": fmt_params,
}
