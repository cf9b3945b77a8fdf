"""The ASIC side against real machines: measured per-user speed of all-SRAM inference systems.

Cases (``data/validation/asic_measured.json``): a built-in SRAM card
(:mod:`chipletcloud.baselines.sram`), a model, the weight format and, where published, the chip
count; otherwise the fewest whole servers whose SRAM holds the weights and one sequence's KV.
Each case is predicted at batch 1 with the same analytic model as every Chiplet Cloud design,
taking the split (tensor x pipeline degree over the chips) the machine's compiler would: the
fastest. Cases the model cannot express carry a ``refused`` reason and are reported, not
predicted.

The latency set's one fitted constant, the fixed latency of a dependent on-chip operation
(``op_latency_s`` of ``data/calibration/sram_machines.yaml``), is fitted here on the ``train``
cases only (:func:`fit_latency_set`: least squares on the log error, bounded to 0-5 us); the
``test`` cases, from other sources, only judge it.
"""

from __future__ import annotations

import json
import math
import statistics
from functools import cache
from importlib import resources

from scipy.optimize import minimize_scalar

from chipletcloud.baselines.hbm import DTYPE_BYTES, run
from chipletcloud.baselines.sram import SramCard, load_sram_card
from chipletcloud.errors import InputError
from chipletcloud.models.catalogue import load_model

DATA = resources.files("chipletcloud") / "data"
#: Bounds of the fitted per-operation latency (s): a dependent operation cannot take less than
#: nothing nor more than 5 us (4,500 cycles at 900 MHz).
OP_LATENCY_BOUNDS_S = (0.0, 5e-6)


@cache
def load_cases() -> tuple[dict, ...]:
    doc = json.loads((DATA / "validation" / "asic_measured.json").read_text())
    return tuple(doc["cases"])


def _splits(layers: int, chips: int) -> list[tuple[int, int]]:
    """(tp, pp): every pipeline degree dividing the layers, all chips of a stage in its tensor
    group."""
    return [(chips // pp, pp) for pp in range(1, layers + 1) if layers % pp == 0 and chips >= pp]


def case_chips(case: dict, card: SramCard) -> int:
    """The case's chip count: published, or the fewest whole servers whose SRAM holds the
    weights and one sequence's KV at the full context."""
    if case.get("chips"):
        return int(case["chips"])
    spec = load_model(case["model"])
    wb = DTYPE_BYTES[case["weight_dtype"]]
    context = case["input_tokens"] + case["output_tokens"]
    need = spec.weight_bytes(wb) + spec.kv_bytes_per_token(2.0) * context
    chips = math.ceil(need / (card.sram_mb * 1e6))
    return card.chips_per_server * math.ceil(chips / card.chips_per_server)


@cache
def _card(name: str) -> SramCard:
    return load_sram_card(name)


def predict(case: dict, op_latency_s: float | None = None) -> dict:
    """Predicted per-user decode speed (tokens/s) of ``case`` at its fastest split that fits,
    adding servers (up to 4x) when no split fits the minimum; ``op_latency_s`` in place of the
    card's latency set (the fit varies it)."""
    card = _card(case["system"])
    if op_latency_s is not None:
        card = card.model_copy(update={"op_latency_us": op_latency_s * 1e6})
    spec = load_model(case["model"])
    chips = case_chips(case, card)
    for extra in range(0, 4 * chips // card.chips_per_server + 1):
        n = chips + extra * card.chips_per_server
        best = None
        for tp, pp in _splits(spec.num_layers, n):
            r = run(
                card,
                n,
                spec,
                tp=tp,
                pp=pp,
                batch=1,
                input_tokens=case["input_tokens"],
                output_tokens=case["output_tokens"],
                weight_dtype=case["weight_dtype"],
                kv_dtype="bf16",
            )
            if not r.fits:
                continue
            speed = 1.0 / r.summary()["tpot_s"]
            if best is None or speed > best["predicted"]:
                best = {"predicted": speed, "chips": n, "tp": tp, "pp": pp}
        if best is not None:
            return best
        if case.get("chips"):
            break
    raise InputError("chips", chips, f"enough SRAM for {case['model']} on {card.name}")


def _log_error(case: dict, op_latency_s: float) -> float:
    return math.log(predict(case, op_latency_s)["predicted"] / case["measured"])


def fit_latency_set(split: str = "train") -> dict:
    """Fit ``op_latency_s`` on the cases of ``split`` (module docstring): the value, the
    training cases' ids and their median |error| at the fit."""
    cases = [c for c in load_cases() if c["split"] == split and not c.get("refused")]
    lo, hi = OP_LATENCY_BOUNDS_S
    res = minimize_scalar(
        lambda us: sum(_log_error(c, us * 1e-6) ** 2 for c in cases),
        bounds=(lo * 1e6, hi * 1e6),
        method="bounded",
        options={"xatol": 1e-4},
    )
    op = float(res.x) * 1e-6
    errs = [abs(math.expm1(_log_error(c, op))) for c in cases]
    return {
        "op_latency_s": op,
        "cases": [c["id"] for c in cases],
        "median_abs_error": statistics.median(errs),
    }


def asic_measured_cases() -> list[dict]:
    """Every case with its prediction and error (``validate --json``'s ``asic_measured``; the
    fields of ``cases`` plus ``split``, ``chips``, ``tp``, ``pp`` and, for cases the model
    cannot express, ``refused``)."""
    rows = []
    for c in load_cases():
        row = {
            "id": c["id"],
            "source": c["source"],
            "split": c["split"],
            "system": c["system"],
            "model": c["model"],
            "quantity": c["quantity"],
            "unit": c["unit"],
            "measured": c["measured"],
        }
        if c.get("refused"):
            row.update(predicted=None, error=None, refused=c["refused"])
        else:
            p = predict(c)  # the card's latency set
            row.update(
                predicted=p["predicted"],
                error=p["predicted"] / c["measured"] - 1.0,
                chips=p["chips"],
                tp=p["tp"],
                pp=p["pp"],
            )
        rows.append(row)
    return rows


def summary(rows: list[dict]) -> dict:
    """Median and maximum |error| of the predicted cases, per split and overall."""
    out = {}
    for split in ("train", "test", "all"):
        errs = [
            abs(r["error"]) for r in rows if r["error"] is not None and split in (r["split"], "all")
        ]
        out[split] = {
            "cases": len(errs),
            "median_abs_error": statistics.median(errs) if errs else None,
            "max_abs_error": max(errs) if errs else None,
        }
    return out
