"""Service-level objectives: percentile limits on time to first token, time per output token and
end-to-end latency.

A spec is comma-separated ``METRIC_PCT=VALUE``: METRIC one of ``ttft``, ``tpot``, ``e2e``; PCT one
of ``p50``, ``p90``, ``p99``; VALUE a positive number with the unit ``s`` or ``ms``
(``ttft_p99=2s,tpot_p50=50ms``). A request meets the SLO when every limit holds; a system meets
it at an arrival rate when every stated percentile over its requests is within its limit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from chipletcloud.errors import InputError

METRICS = ("ttft", "tpot", "e2e")
PERCENTILES = (50, 90, 99)
_TERM = re.compile(r"^(ttft|tpot|e2e)_p(50|90|99)=([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)(ms|s)$")
ALLOWED = "METRIC_PCT=VALUE[,...] with METRIC ttft|tpot|e2e, PCT p50|p90|p99, VALUE in s or ms"


@dataclass(frozen=True)
class Slo:
    """Limits in seconds, keyed ``(metric, percentile)``: ``(("ttft", 99), 2.0)``, ..."""

    limits: tuple[tuple[tuple[str, int], float], ...] = ()

    @classmethod
    def parse(cls, spec: str | None) -> Slo:
        """Parse a spec (module docstring); an empty or None spec is no SLO. A term that does
        not parse, a repeated term or a limit <= 0 is refused in one line."""
        if spec is None or not spec.strip():
            return cls()
        out: dict[tuple[str, int], float] = {}
        for raw in spec.split(","):
            term = raw.strip().lower()
            m = _TERM.match(term)
            if not m:
                raise InputError("slo", raw.strip() or spec, ALLOWED)
            key = (m.group(1), int(m.group(2)))
            value = float(m.group(3)) * (1e-3 if m.group(4) == "ms" else 1.0)
            if value <= 0:
                raise InputError("slo", raw.strip(), "a limit > 0 " + m.group(4))
            if key in out:
                raise InputError("slo", raw.strip(), f"each metric once ({key[0]}_p{key[1]})")
            out[key] = value
        return cls(tuple(sorted(out.items())))

    def __bool__(self) -> bool:
        return bool(self.limits)

    def limit(self, metric: str, pct: int) -> float | None:
        return dict(self.limits).get((metric, pct))

    def with_limit(self, metric: str, pct: int, value: float) -> Slo:
        """This SLO with one more limit (the tighter of the two if it is already set)."""
        d = dict(self.limits)
        d[(metric, pct)] = min(value, d.get((metric, pct), value))
        return Slo(tuple(sorted(d.items())))

    def text(self) -> str:
        """The spec, normalised (``ttft_p99=2s,tpot_p50=50ms``); "none" when empty."""
        if not self.limits:
            return "none"
        parts = []
        for (metric, pct), v in self.limits:
            unit = f"{v:g}s" if v >= 1 else f"{v * 1e3:g}ms"
            parts.append(f"{metric}_p{pct}={unit}")
        return ",".join(parts)

    def describe(self) -> dict:
        return {f"{m}_p{p}_s": v for (m, p), v in self.limits} | {"spec": self.text()}
