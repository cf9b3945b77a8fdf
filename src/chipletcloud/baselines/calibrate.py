"""Calibration of the GPU/TPU device cards and software stacks on the training cases.

One reproducible fit replaces the hand fit (docs/validation.md#calibration): starting from the
priors of ``data/calibration/priors.yaml`` (the values before any fit, with their sources), it
minimises the sum of squared log errors log(predicted / measured) of the ``train`` cases
(:func:`chipletcloud.baselines.validation.load_cases`), each source weighted equally (a case's
residual is divided by the square root of its source's training cases), with
:func:`scipy.optimize.least_squares` (trust-region reflective, bounds that keep every parameter
physical: efficiencies in (0, 1], times within a microsecond scale).

Parameters fitted:

* per device: ``flops_efficiency`` (bf16/fp16 matmuls), ``hbm_efficiency``, ``link_efficiency``,
  ``collective_startup_s``, and ``flops_efficiency_<fmt>`` for each low-precision format that
  training cases run in;
* per software stack: the constants its card lists under ``fit`` (per-kernel cost of an eager
  or a graph launch, a request's fixed cost).

A parameter no training case depends on (its residuals move less than 1e-4 when it changes by
5%) keeps its prior and is reported as ``identified: false``. A fit that ends on a bound is
reported with a warning naming it.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from importlib import resources

import numpy as np
from scipy.optimize import least_squares

from chipletcloud.baselines.devices import DeviceCard, load_device
from chipletcloud.baselines.stacks import StackCard, load_stack
from chipletcloud.baselines.validation import load_cases, predict
from chipletcloud.config import read_yaml
from chipletcloud.errors import InputError

DATA = resources.files("chipletcloud") / "data" / "calibration"

#: Bounds of the device parameters (units of the card: fractions of peak, seconds).
#: Upper bounds: a dense matmul reaches at most ~95% of the tensor units' peak, HBM streaming
#: ~95% of its pin bandwidth (refresh and bank conflicts), a link ~98% of its line rate after
#: encoding; start-up from 0.1 to 30 us (a GPU/TPU collective's launch and first hop).
DEVICE_BOUNDS: dict[str, tuple[float, float]] = {
    "flops_efficiency": (0.2, 0.95),
    "hbm_efficiency": (0.4, 0.95),
    "link_efficiency": (0.3, 0.98),
    "collective_startup_s": (1.0e-7, 3.0e-5),
    "flops_efficiency_fp8": (0.2, 0.95),
    "flops_efficiency_int8": (0.2, 0.95),
    "flops_efficiency_fp4": (0.2, 0.95),
}
#: The compute formats that bring their own efficiency parameter.
_FORMAT_PARAM = {
    "fp8": "flops_efficiency_fp8",
    "int8": "flops_efficiency_int8",
    "int4": "flops_efficiency_int8",
    "fp4": "flops_efficiency_fp4",
}


@cache
def load_priors() -> dict:
    """``data/calibration/priors.yaml``: device -> parameter -> {value, source}, and the same for
    stacks: where each fit starts, and what an unidentified parameter keeps."""
    return read_yaml(DATA / "priors.yaml", "calibration priors")


@dataclass(frozen=True)
class Param:
    """One fitted parameter: a device's (``owner_kind`` ``device``) or a stack's constant."""

    owner_kind: str
    owner: str
    key: str
    prior: float
    low: float
    high: float


@dataclass
class Fit:
    """A calibration: fitted values, which parameters were identified, the training cases and
    the errors at the fit."""

    params: list[Param]
    values: np.ndarray
    identified: list[bool]
    train_ids: list[str]
    sources: list[str]
    train_median_abs_error: float
    at_bound: list[str] = field(default_factory=list)
    cost: float = 0.0
    nfev: int = 0

    def cards(self) -> tuple[dict[str, DeviceCard], dict[str, StackCard]]:
        """The fitted device and stack cards (every owner of a parameter), with provenance."""
        stacks: dict[str, dict[str, float]] = {}
        for p, v in zip(self.params, self.values, strict=True):
            if p.owner_kind == "stack":
                stacks.setdefault(p.owner, {})[p.key] = v
        dev_cards = {
            t: _prior_device(t)
            for p in self.params
            if p.owner_kind == "device"
            for t in [p.owner, *tied_to(p.owner, p.key)]
        }
        stack_cards = {s: _prior_stack(s).with_values(vals, None) for s, vals in stacks.items()}
        for p, v, ok in zip(self.params, self.values, self.identified, strict=True):
            src = self.provenance(p, ok)
            if p.owner_kind == "device":
                for t in [p.owner, *tied_to(p.owner, p.key)]:
                    dev_cards[t] = dev_cards[t].with_values({p.key: v}, src)
            else:
                stack_cards[p.owner] = stack_cards[p.owner].with_values({p.key: v}, src)
        return dev_cards, stack_cards

    def provenance(self, p: Param, identified: bool) -> str:
        if not identified:
            prior = _prior_entry(p)["source"]
            return f"{prior} (not identified by the train split of `chipletcloud calibrate`: kept)"
        return (
            f"[D] fitted by `chipletcloud calibrate` ({date.today().isoformat()}): least squares "
            f"on log error over the train split, {len(self.train_ids)} cases from "
            f"{', '.join(self.sources)}; bounds [{p.low:g}, {p.high:g}]; start {p.prior:g}; "
            f"train median |error| {self.train_median_abs_error:.1%}"
        )

    def table(self) -> list[dict]:
        """One row a parameter: owner, key, prior, value, bounds, identified, at bound."""
        return [
            {
                "owner": p.owner,
                "kind": p.owner_kind,
                "parameter": p.key,
                "prior": p.prior,
                "value": float(v),
                "low": p.low,
                "high": p.high,
                "identified": ok,
                "at_bound": f"{p.owner}.{p.key}" in self.at_bound,
            }
            for p, v, ok in zip(self.params, self.values, self.identified, strict=True)
        ]


def owner(device: str, key: str | None = None) -> str:
    """The device whose parameter ``key`` ``device`` uses: its silicon twin (``tied`` in the
    priors, for every parameter or the listed ``params``) or itself. Without ``key``: the twin
    of a full tie."""
    tie = load_priors().get("tied", {}).get(device)
    if tie and ("params" not in tie if key is None else key in tie.get("params", [key])):
        return tie["to"]
    return device


def tied_to(device: str, key: str | None = None) -> list[str]:
    """Devices that share ``device``'s fitted parameter ``key`` (any key: full ties)."""
    return sorted(
        d
        for d, t in load_priors().get("tied", {}).items()
        if t["to"] == device and owner(d, key) == device
    )


def _family(device: str) -> set[str]:
    """``device`` and every device it shares a parameter with."""
    tied = load_priors().get("tied", {})
    out = {device}
    for d, t in tied.items():
        if d == device:
            out.add(t["to"])
    for d, t in tied.items():
        if t["to"] in out:
            out.add(d)
    return out


def _prior_entry(p: Param) -> dict:
    group = "devices" if p.owner_kind == "device" else "stacks"
    return load_priors()[group][p.owner][p.key]


def _prior_device(name: str) -> DeviceCard:
    """The device card at its priors (the fit's starting point)."""
    card = load_device(name)
    pri = load_priors()["devices"].get(name, {})
    return card.with_values({k: v["value"] for k, v in pri.items()}, None)


def _prior_stack(name: str) -> StackCard:
    card = load_stack(name)
    pri = load_priors()["stacks"].get(name, {})
    return card.with_values({k: v["value"] for k, v in pri.items()}, None)


def _case_format(case: dict) -> str:
    s = case["setup"]
    return s.get("compute_dtype") or s.get("weight_dtype", "bf16")


def _default_start(card: DeviceCard, pri: dict, key: str) -> float:
    """Where a parameter without a prior starts: a format's matmul efficiency at the bf16 one
    (the value the simulator uses when the card does not state one)."""
    return float(pri.get("flops_efficiency", {}).get("value", card.flops_efficiency("bf16")))


def parameters(cases: list[dict], device: str | None = None) -> list[Param]:
    """The parameters a calibration on ``cases`` may fit: those of each device with cases (or of
    ``device`` alone) and of the stacks those cases ran."""
    devices = sorted({c["setup"]["device"] for c in cases})
    if device is not None:
        devices = [d for d in devices if d in _family(device)]
    params: list[Param] = []
    seen: set[tuple[str, str]] = set()
    for d in devices:
        card = load_device(d)
        mine = [c for c in cases if c["setup"]["device"] == d]
        keys = [
            "flops_efficiency",
            "hbm_efficiency",
            "link_efficiency",
            "collective_startup_s",
        ]
        for c in mine:
            fmt = _case_format(c)
            key = _FORMAT_PARAM.get(fmt)
            if key and key not in keys:
                try:
                    card.peak_flops(fmt)
                except InputError:
                    continue  # weight-only: runs at the bf16 rate
                if fmt != "int4" or "peak_int4_ops" not in card.constants:
                    keys.append(key)
        for k in keys:
            own = owner(d, k)
            if (own, k) in seen:
                continue
            seen.add((own, k))
            pri = load_priors()["devices"].get(own, {})
            lo, hi = DEVICE_BOUNDS[k]
            start = pri[k]["value"] if k in pri else _default_start(load_device(own), pri, k)
            params.append(Param("device", own, k, float(start), lo, hi))
    for s in sorted({c["stack"] for c in cases if c["setup"]["device"] in devices}):
        card = load_stack(s)
        pri = load_priors()["stacks"].get(s, {})
        for k, (lo, hi) in card.fit.items():
            start = pri[k]["value"] if k in pri else card.value(k)
            params.append(Param("stack", s, k, float(start), lo, hi))
    return params


class _Model:
    """Residuals of the training cases as a function of the parameter vector, with a cache per
    case keyed on the parameters it depends on (so a finite-difference column that moves one
    device's parameters re-simulates that device's cases only)."""

    def __init__(self, cases: list[dict], params: list[Param]):
        self.cases = cases
        self.params = params
        counts: dict[str, int] = {}
        for c in cases:
            counts[c["source_key"]] = counts.get(c["source_key"], 0) + 1
        self.weights = np.array([1.0 / math.sqrt(counts[c["source_key"]]) for c in cases])
        self.deps = []
        for c in cases:
            dev, st = c["setup"]["device"], c["stack"]
            self.deps.append(
                [
                    i
                    for i, p in enumerate(params)
                    if (p.owner_kind == "device" and p.owner == owner(dev, p.key))
                    or (p.owner_kind == "stack" and p.owner == st)
                ]
            )
        self.cache: dict = {}
        self.base_dev = {d: _prior_device(d) for d in {c["setup"]["device"] for c in cases}}
        self.base_stack = {s: _prior_stack(s) for s in {c["stack"] for c in cases}}

    def log_errors(self, x: np.ndarray) -> np.ndarray:
        out = np.empty(len(self.cases))
        for j, c in enumerate(self.cases):
            key = (c["id"], tuple(float(x[i]) for i in self.deps[j]))
            if key not in self.cache:
                dev_vals = {}
                st_vals = {}
                for i in self.deps[j]:
                    p = self.params[i]
                    (dev_vals if p.owner_kind == "device" else st_vals)[p.key] = float(x[i])
                card = self.base_dev[c["setup"]["device"]].with_values(dev_vals, "trial")
                stack = self.base_stack[c["stack"]].with_values(st_vals, "trial")
                self.cache[key] = math.log(predict(c, card, stack) / c["measured"])
            out[j] = self.cache[key]
        return out

    def residuals(self, x: np.ndarray) -> np.ndarray:
        return self.log_errors(x) * self.weights

    def sparsity(self) -> np.ndarray:
        m = np.zeros((len(self.cases), len(self.params)), dtype=int)
        for j, deps in enumerate(self.deps):
            m[j, deps] = 1
        return m


def _blocks(model: _Model, free: list[int]) -> list[list[int]]:
    """The free parameters in connected blocks: two parameters are linked when a case depends
    on both (a device and the stacks its cases ran, and through a stack every device using it)."""
    parent = {i: i for i in free}

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for deps in model.deps:
        mine = [i for i in deps if i in parent]
        for i in mine[1:]:
            parent[root(i)] = root(mine[0])
    groups: dict[int, list[int]] = {}
    for i in free:
        groups.setdefault(root(i), []).append(i)
    return [sorted(g) for g in groups.values()]


def training_cases(device: str | None = None) -> list[dict]:
    """The train split's cases (those of ``device``'s family with ``device``); an unknown device,
    or one without a training case, is one :class:`InputError` line."""
    cases = load_cases("train")
    if device is not None:
        load_device(device)  # an unknown device is one clear line
        mine = [c for c in cases if c["setup"]["device"] in _family(device)]
        if not mine:
            raise InputError(
                "device",
                device,
                "a device with training cases: "
                + ", ".join(sorted({c["setup"]["device"] for c in cases})),
            )
        cases = mine
    if not cases:
        raise InputError("training set", "empty", "at least one training case")
    return cases


def fit(cases: list[dict] | None = None, device: str | None = None, warn=None) -> Fit:
    """Fit the parameters of :func:`parameters` on ``cases`` (default: the train split).

    ``device``: fit that device (and its cases' stacks) only; a device with no training case is
    an :class:`InputError`. ``warn``: called with one line for each parameter that ends on a
    bound."""
    if cases is None:
        cases = training_cases(device)
    elif device is not None:
        load_device(device)
        cases = [c for c in cases if c["setup"]["device"] in _family(device)]
        if not cases:
            raise InputError("device", device, "a device with cases in the given set")
    if not cases:
        raise InputError("training set", "empty", "at least one training case")
    params = parameters(cases, device)
    model = _Model(cases, params)
    x0 = np.array([p.prior for p in params])
    lo = np.array([p.low for p in params])
    hi = np.array([p.high for p in params])
    x0 = np.clip(x0, lo, hi)
    # identifiability: a parameter no residual responds to keeps its prior
    base = model.log_errors(x0)
    identified = []
    for i, p in enumerate(params):
        x = x0.copy()
        x[i] = x0[i] * 1.05 if x0[i] * 1.05 <= p.high else x0[i] * 0.95
        if x[i] == x0[i]:
            x[i] = p.low + 0.05 * (p.high - p.low)
        identified.append(bool(np.max(np.abs(model.log_errors(x) - base)) > 1e-4))
    free = [i for i, ok in enumerate(identified) if ok]
    values = x0.copy()
    cost, nfev = 0.0, 0
    # independent blocks (devices and stacks no training case links) are fitted apart, so a
    # device's fit does not depend on which other devices are calibrated with it
    for block in _blocks(model, free):
        rows = sorted({j for j, deps in enumerate(model.deps) if set(deps) & set(block)})

        def fun(z, block=block, rows=rows):
            x = values.copy()
            x[block] = z
            return model.residuals(x)[rows]

        res = least_squares(
            fun,
            x0[block],
            bounds=(lo[block], hi[block]),
            jac_sparsity=model.sparsity()[np.ix_(rows, block)],
            x_scale=(hi - lo)[block],
            diff_step=1e-3,
            ftol=1e-8,
            xtol=1e-8,
            max_nfev=200,
            method="trf",
        )
        values[block] = res.x
        cost += float(res.cost)
        nfev += int(res.nfev)
    at_bound = []
    for i in free:
        p = params[i]
        span = p.high - p.low
        if values[i] <= p.low + 1e-3 * span or values[i] >= p.high - 1e-3 * span:
            at_bound.append(f"{p.owner}.{p.key}")
            if warn is not None:
                side = "lower" if values[i] <= p.low + 1e-3 * span else "upper"
                warn(
                    f"warning: {p.owner}.{p.key} = {values[i]:.4g} ends on its {side} bound "
                    f"[{p.low:g}, {p.high:g}]: the training cases pull it beyond what is physical"
                )
    errs = np.abs(np.expm1(model.log_errors(values)))
    return Fit(
        params=params,
        values=values,
        identified=identified,
        train_ids=[c["id"] for c in cases],
        sources=sorted({c["source_key"] for c in cases}),
        train_median_abs_error=float(np.median(errs)),
        at_bound=at_bound,
        cost=cost,
        nfev=nfev,
    )


def _held_out_rows(fold: tuple[list[dict], list[dict]]) -> list[dict]:
    """One fold: fit on ``rest``, predict ``held`` (devices and stacks the fit did not reach keep
    their priors)."""
    from chipletcloud.baselines.validation import case_rows

    held, rest = fold
    devs, stacks = fit(rest).cards() if rest else ({}, {})
    devs = {d: devs.get(d) or _prior_device(d) for d in {c["setup"]["device"] for c in held}}
    stacks = {k: stacks.get(k) or _prior_stack(k) for k in {c["stack"] for c in held}}
    return case_rows(held, devs, stacks)


def leave_one_source_out(cases: list[dict] | None = None, workers: int = 2) -> dict:
    """Each training source left out in turn: calibrate on the other training sources, predict
    the left-out source's cases. Returns each case's held-out error, per source, and the median
    |error| over all of them (``median_abs_error``).

    A device whose only training source is left out keeps its priors for that fold (nothing
    else could be fitted), which is what a new device would face."""

    cases = load_cases("train") if cases is None else cases
    sources = sorted({c["source_key"] for c in cases})
    folds = [
        (
            [c for c in cases if c["source_key"] == s],
            [c for c in cases if c["source_key"] != s],
        )
        for s in sources
    ]
    if workers > 1 and len(folds) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=min(workers, len(folds))) as pool:
            results = list(pool.map(_held_out_rows, folds))
    else:
        results = [_held_out_rows(f) for f in folds]
    rows = []
    per_source = {}
    for s, r in zip(sources, results, strict=True):
        rows.extend(r)
        per_source[s] = statistics.median(abs(x["error"]) for x in r)
    errs = [abs(r["error"]) for r in rows]
    return {
        "median_abs_error": statistics.median(errs) if errs else None,
        "max_abs_error": max(errs) if errs else None,
        "per_source": per_source,
        "per_device": {
            d: statistics.median(abs(r["error"]) for r in rows if r["device"] == d)
            for d in sorted({r["device"] for r in rows})
        },
        "cases": [
            {
                "id": r["id"],
                "source_key": r["source_key"],
                "device": r["device"],
                "error": r["error"],
            }
            for r in rows
        ],
    }


def write_cards(result: Fit, out_dir) -> list:
    """Write the fitted cards: ``out_dir/devices/<name>.json`` (the device card with its
    efficiency block replaced, each value's source naming the fit) and
    ``out_dir/stacks/<name>.yaml``. Returns the paths written."""
    import json
    from pathlib import Path

    import yaml

    out = Path(out_dir)
    devs, stacks = result.cards()
    written = []
    for kind, cards in (("devices", devs), ("stacks", stacks)):
        folder = out / kind
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError("--out", str(out), f"a writable folder ({exc.strerror})") from None
        for name, card in sorted(cards.items()):
            data = card.model_dump(mode="json", exclude_none=True)
            if kind == "devices":
                path = folder / f"{name}.json"
                text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
            else:
                path = folder / f"{name}.yaml"
                text = yaml.safe_dump(data, sort_keys=False, width=100, allow_unicode=True)
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written
