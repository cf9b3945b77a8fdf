"""Request workloads: what users send (input and output lengths) and when (arrivals).

A workload is a data file (``data/workloads/<name>.yaml``, or a path to one) or a request trace
(CSV or Parquet with the columns ``input_tokens``, ``output_tokens``, ``arrival_s``). Lengths are
distributions of whole tokens:

* ``fixed`` (``value``);
* ``uniform`` (``low`` .. ``high``, inclusive);
* ``lognormal`` from two of a published mean, median and log-spread (``mean`` and ``p50``:
  sigma = sqrt(2 ln(mean / p50)), mu = ln p50; ``mean`` and ``sigma``: mu = ln mean - sigma^2/2;
  ``p50`` and ``sigma``: mu = ln p50), clipped to [``min``, ``max``];
* ``empirical``: the lengths of a trace.

Arrivals are ``poisson`` (exponential gaps) or ``gamma`` with a coefficient of variation ``cv``
of the gaps (``cv`` > 1: bursty; BurstGPT-style), or the trace's own times. Every statistic
carries its source in the file (docs/workloads.md).

Until the serving model schedules requests one by one (continuous batching), the static-batch
simulator runs a workload at its mean input and output lengths
(:meth:`RequestWorkload.mean_lengths`).
"""

from __future__ import annotations

import math
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from chipletcloud.config import read_yaml, validate_as, yaml_names
from chipletcloud.errors import InputError

DATA = resources.files("chipletcloud") / "data" / "workloads"
TRACE_COLUMNS = ("input_tokens", "output_tokens", "arrival_s")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Lengths(_Strict):
    """A distribution of token counts (module docstring)."""

    distribution: Literal["fixed", "uniform", "lognormal", "empirical"]
    value: int | None = Field(default=None, ge=1)
    low: int | None = Field(default=None, ge=1)
    high: int | None = Field(default=None, ge=1)
    mean: float | None = Field(default=None, gt=0)
    p50: float | None = Field(default=None, gt=0)
    sigma: float | None = Field(default=None, gt=0, le=5)
    min: int = Field(default=1, ge=1)
    max: int = Field(default=1_000_000, ge=1)
    source: str = Field(min_length=1)

    @model_validator(mode="after")
    def _fields(self) -> Lengths:
        need = {
            "fixed": ("value",),
            "uniform": ("low", "high"),
            "lognormal": (),
            "empirical": (),
        }[self.distribution]
        for key in need:
            if getattr(self, key) is None:
                raise ValueError(f"{self.distribution} needs {', '.join(need)}")
        if self.distribution == "lognormal":
            given = [k for k in ("mean", "p50", "sigma") if getattr(self, k) is not None]
            if len(given) != 2:
                raise ValueError("lognormal needs exactly two of mean, p50, sigma")
        if self.distribution == "uniform" and self.low > self.high:
            raise ValueError(f"low {self.low} above high {self.high}")
        if (
            self.distribution == "lognormal"
            and None not in (self.mean, self.p50)
            and self.mean < self.p50
        ):
            raise ValueError(
                f"a lognormal's mean ({self.mean}) is at least its median ({self.p50})"
            )
        if self.min > self.max:
            raise ValueError(f"min {self.min} above max {self.max}")
        return self

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` whole token counts."""
        if self.distribution == "fixed":
            return np.full(n, self.value, dtype=np.int64)
        if self.distribution == "uniform":
            return rng.integers(self.low, self.high + 1, size=n)
        if self.distribution == "lognormal":
            mu, sigma = self.log_params()
            x = rng.lognormal(mu, sigma, size=n)
            return np.clip(np.rint(x), self.min, self.max).astype(np.int64)
        raise InputError("lengths", "empirical", "a trace's lengths (load the trace file)")

    def log_params(self) -> tuple[float, float]:
        """A lognormal's mu and sigma (module docstring)."""
        if self.sigma is None:
            return math.log(self.p50), math.sqrt(2.0 * math.log(self.mean / self.p50))
        if self.p50 is not None:
            return math.log(self.p50), self.sigma
        return math.log(self.mean) - self.sigma**2 / 2.0, self.sigma

    def expected(self) -> float:
        """The mean token count: the stated mean, or exp(mu + sigma^2 / 2) for a lognormal
        given by its median and spread (before clipping to [min, max])."""
        if self.distribution == "fixed":
            return float(self.value)
        if self.distribution == "uniform":
            return (self.low + self.high) / 2.0
        if self.mean is not None:
            return float(self.mean)
        mu, sigma = self.log_params()
        return math.exp(mu + sigma**2 / 2.0)


class Arrivals(_Strict):
    """How requests arrive: a Poisson process, or gamma-distributed gaps with coefficient of
    variation ``cv`` (1 is Poisson)."""

    process: Literal["poisson", "gamma"] = "poisson"
    cv: float = Field(default=1.0, gt=0, le=100)
    source: str = Field(min_length=1)

    def gaps(self, n: int, rate_per_s: float, rng: np.random.Generator) -> np.ndarray:
        """``n`` gaps in seconds at a mean rate of ``rate_per_s`` requests a second."""
        if rate_per_s <= 0:
            raise InputError("arrival rate", rate_per_s, "a rate > 0 requests/s")
        if self.process == "poisson":
            return rng.exponential(1.0 / rate_per_s, size=n)
        shape = 1.0 / self.cv**2
        return rng.gamma(shape, 1.0 / (rate_per_s * shape), size=n)


class RequestWorkload(_Strict):
    """A named workload: input and output lengths and arrivals, each sourced."""

    name: str = Field(min_length=1)
    description: str = Field(min_length=1)
    input_tokens: Lengths
    output_tokens: Lengths
    arrivals: Arrivals
    #: a trace's requests (input tokens, output tokens, arrival seconds), when loaded from one
    trace: tuple[tuple[int, ...], tuple[int, ...], tuple[float, ...]] | None = None

    def mean_lengths(self) -> tuple[int, int]:
        """Mean input and output tokens, rounded to whole tokens (at least 1)."""
        if self.trace is not None:
            return (
                max(1, round(float(np.mean(self.trace[0])))),
                max(1, round(float(np.mean(self.trace[1])))),
            )
        return (
            max(1, round(self.input_tokens.expected())),
            max(1, round(self.output_tokens.expected())),
        )

    def applied_to(self, params):
        """``params`` (:class:`chipletcloud.config.Params`) with the preset workload's prompt and
        output lengths set to this workload's means (what the static-batch model runs)."""
        mean_in, mean_out = self.mean_lengths()
        return params.with_workload(prompt_tokens=mean_in, output_tokens=mean_out)

    def requests(
        self, n: int, rate_per_s: float | None = None, seed: int = 0
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``n`` requests: input tokens, output tokens and arrival times (seconds). A trace
        replays its first ``n`` requests (and its own arrival times); a distribution samples
        with ``seed`` at ``rate_per_s``."""
        if self.trace is not None:
            ins, outs, arr = (np.asarray(c) for c in self.trace)
            return ins[:n], outs[:n], arr[:n]
        rng = np.random.default_rng(seed)
        ins = self.input_tokens.sample(n, rng)
        outs = self.output_tokens.sample(n, rng)
        arr = np.cumsum(self.arrivals.gaps(n, rate_per_s or 1.0, rng))
        return ins, outs, arr

    def describe(self) -> dict:
        """What every output that uses the workload states: name, mean lengths, arrivals."""
        i, o = self.mean_lengths()
        return {
            "name": self.name,
            "mean_input_tokens": i,
            "mean_output_tokens": o,
            "arrivals": self.arrivals.process,
            "arrival_cv": self.arrivals.cv,
            "from_trace": self.trace is not None,
        }


def fixed_workload(input_tokens: int, output_tokens: int, source: str) -> RequestWorkload:
    """Every request ``input_tokens`` in and ``output_tokens`` out, Poisson arrivals: a preset's
    static request as a workload (what serving runs when no ``--workload`` is given)."""
    return RequestWorkload(
        name=f"fixed-{input_tokens}-{output_tokens}",
        description=f"every request {input_tokens} tokens in, {output_tokens} out",
        input_tokens=Lengths(distribution="fixed", value=input_tokens, source=source),
        output_tokens=Lengths(distribution="fixed", value=output_tokens, source=source),
        arrivals=Arrivals(process="poisson", source="[assumption] Poisson arrivals"),
    )


def preset_workload(params) -> RequestWorkload:
    """The preset's static request (``params``: :class:`chipletcloud.config.Params`) as a
    workload: what serving runs when no ``--workload`` is given."""
    wl = params.preset.workload
    return fixed_workload(wl.prompt_tokens, wl.output_tokens, f"preset {params.preset.name}")


def list_workloads() -> list[str]:
    """Names of the built-in workloads, sorted."""
    return yaml_names(DATA)


@cache
def _builtin(name: str) -> RequestWorkload:
    return _parse(read_yaml(DATA / f"{name}.yaml", "workload"), f"workloads/{name}.yaml")


def _parse(raw, where: str) -> RequestWorkload:
    return validate_as(RequestWorkload, raw, where)


def _read_trace(path: Path) -> dict[str, np.ndarray]:
    import pyarrow as pa

    try:
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
        else:
            import pyarrow.csv as pcsv

            table = pcsv.read_csv(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise InputError("trace", str(path), f"a readable CSV or Parquet file ({exc})") from None
    missing = [c for c in TRACE_COLUMNS if c not in table.column_names]
    if missing:
        raise InputError(
            "trace", str(path), "columns " + ", ".join(TRACE_COLUMNS) + f" (missing {missing})"
        )
    if table.num_rows == 0:
        raise InputError("trace", str(path), "at least one request")
    out = {}
    for c in TRACE_COLUMNS:
        try:
            out[c] = np.asarray(table.column(c).to_numpy(zero_copy_only=False), dtype=float)
        except (TypeError, ValueError, pa.ArrowInvalid):
            raise InputError(f"trace.{c}", str(path), "numbers") from None
    return out


def load_trace(path: str | Path) -> RequestWorkload:
    """A request trace (CSV or Parquet, :data:`TRACE_COLUMNS`) as a workload. Refused in one
    line: missing columns, lengths that are not whole numbers >= 1, NaN, negative or unsorted
    arrival times."""
    path = Path(path)
    cols = _read_trace(path)
    for c in ("input_tokens", "output_tokens"):
        x = cols[c]
        bad = ~np.isfinite(x) | (x < 1) | (x != np.round(x))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(f"trace.{c}", x[i], f"whole numbers >= 1 (row {i + 1})")
    arr = cols["arrival_s"]
    if not np.isfinite(arr).all() or (arr < 0).any():
        i = int(np.flatnonzero(~np.isfinite(arr) | (arr < 0))[0])
        raise InputError("trace.arrival_s", arr[i], f"finite seconds >= 0 (row {i + 1})")
    if (np.diff(arr) < 0).any():
        i = int(np.flatnonzero(np.diff(arr) < 0)[0]) + 1
        raise InputError("trace.arrival_s", arr[i], f"non-decreasing times (row {i + 1})")
    src = f"[trace] {path.name}: {len(arr)} requests"
    ins, outs = cols["input_tokens"].astype(np.int64), cols["output_tokens"].astype(np.int64)
    gaps = np.diff(arr)
    cv = float(np.std(gaps) / np.mean(gaps)) if len(gaps) > 1 and np.mean(gaps) > 0 else 1.0
    return RequestWorkload(
        name=path.stem,
        description=f"request trace {path.name}",
        input_tokens=Lengths(distribution="empirical", mean=float(ins.mean()), source=src),
        output_tokens=Lengths(distribution="empirical", mean=float(outs.mean()), source=src),
        arrivals=Arrivals(process="gamma", cv=min(max(cv, 1e-6), 100.0), source=src),
        trace=(tuple(ins.tolist()), tuple(outs.tolist()), tuple(arr.tolist())),
    )


def load_workload(name_or_path: str | Path) -> RequestWorkload:
    """A built-in workload by name (:func:`list_workloads`), a workload YAML, or a request trace
    (``.csv``/``.parquet``)."""
    key = str(name_or_path)
    if key in list_workloads():
        return _builtin(key)
    path = Path(key)
    if path.suffix.lower() in (".csv", ".parquet"):
        if not path.is_file():
            raise InputError("workload", key, "an existing trace file")
        return load_trace(path)
    if path.suffix.lower() in (".yaml", ".yml", ".json") and path.is_file():
        return _parse(read_yaml(path, "workload"), str(path))
    raise InputError(
        "workload",
        key,
        "one of " + ", ".join(list_workloads()) + ", a workload YAML or a CSV/Parquet trace",
    )
