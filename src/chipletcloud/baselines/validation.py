"""The simulator against measured hardware (``data/validation/cases.json``, from
docs/validation.md).

Each case names its source, the measured value and a setup; :func:`predict` reproduces the setup
with the same simulator phase 2 uses, on the device card's one set of efficiency parameters (no
per-case factor). Kinds of setup:

* ``layer``: one transformer layer on a tensor group (all ops of
  :func:`~chipletcloud.perf.analytic.layer_ops` plus its two all-reduces);
* ``gemm``: one matmul M x K x N: max(FLOPs / achievable FLOP/s, bytes of A, B, C / achievable
  bandwidth) + one kernel's overhead;
* ``linear``: the four weight matmuls of a layer (QKV, output, MLP in, MLP out) for one token;
* ``allreduce``: a ring all-reduce over the devices of one scale-up domain;
* ``request``: a whole request (:func:`chipletcloud.baselines.hbm.run`), metric ``ttft_s``,
  ``tpot_s`` or ``e2e_s``;
* ``throughput``: the best output tokens/s over the listed batch sizes that fit, the devices split
  into data-parallel replicas of each listed tensor-parallel size (an offline benchmark picks its
  best configuration).
"""

from __future__ import annotations

import json
import statistics
from functools import lru_cache
from importlib import resources

import numpy as np

from chipletcloud.baselines.devices import load_device
from chipletcloud.baselines.hbm import DTYPE_BYTES, device_system, run
from chipletcloud.models.catalogue import load_model
from chipletcloud.models.llm import ModelSpec
from chipletcloud.perf import formulas as fm
from chipletcloud.perf.analytic import collectives, layer_ops
from chipletcloud.perf.codes import OP_GROUPS
from chipletcloud.perf.workload import LayerShape, Workload

DATA = resources.files("chipletcloud") / "data" / "validation"
TOLERANCE = {"kernel": 0.25, "layer": 0.25, "request": 0.20}
SCALE = {"ms": 1e3, "tokens/s": 1.0}


@lru_cache(maxsize=1)
def load_cases() -> list[dict]:
    """The measured cases with their sources and setups."""
    return json.loads((DATA / "cases.json").read_text())["cases"]


def _model(name: str) -> ModelSpec:
    if name.startswith("validation:"):
        return load_model(str(DATA / f"{name.split(':', 1)[1]}.json"))
    return load_model(name)


def _layer_seconds(setup: dict, card) -> float:
    spec = _model(setup["model"])
    shape = LayerShape.from_spec(spec, include_embeddings=False)
    tokens = int(setup["tokens"])
    if setup["phase"] == "prefill":
        wl = Workload(prompt_tokens=tokens, output_tokens=1)
    else:  # decode at a KV length of ``tokens``: mean decode context = (tokens - 1) + 1
        wl = Workload(prompt_tokens=tokens - 1, output_tokens=1)
    system = device_system(card)
    tp = float(setup["tp"])
    ops = layer_ops(system, shape, wl, tp=tp, micro_batch=setup["batch"], phase=setup["phase"])
    total = sum(ops[op] for members in OP_GROUPS.values() for op in members)
    allreduce, _ = collectives(system, ops["allreduce_bytes"], 1.0, tp)
    total = total + 2.0 * allreduce
    return float(np.asarray(total).ravel()[0])


def _gemm_seconds(setup: dict, card) -> float:
    s = device_system(card)
    m, k, n = (float(setup[x]) for x in ("m", "k", "n"))
    flops = 2.0 * m * k * n
    nbytes = (k * n + m * k + m * n) * DTYPE_BYTES["fp16"]
    t = fm.matmul_s(flops, nbytes, s.flops * s.flops_eff, s.mem_bw * s.mem_eff, 1.0, False)
    return float((t + s.op_overhead_s)[0])


def _linear_seconds(setup: dict, card) -> float:
    shape = LayerShape.from_spec(_model(setup["model"]), include_embeddings=False)
    wl = Workload(prompt_tokens=1, output_tokens=1)
    ops = layer_ops(
        device_system(card),
        shape,
        wl,
        tp=float(setup["tp"]),
        micro_batch=setup["batch"],
        phase="decode",
    )
    return float(sum(ops[op] for op in ("qkv", "out_proj", "mlp_in", "mlp_out"))[0])


def _allreduce_seconds(setup: dict, card) -> float:
    t, _ = collectives(device_system(card), float(setup["bytes"]), 1.0, float(setup["devices"]))
    return float(t[0])


def _request_value(setup: dict, card) -> float:
    r = run(
        card,
        int(setup["devices"]),
        _model(setup["model"]),
        tp=int(setup["tp"]),
        pp=int(setup["pp"]),
        batch=int(setup["batch"]),
        input_tokens=int(setup["input"]),
        output_tokens=int(setup["output"]),
        weight_dtype=setup.get("weight_dtype", "bf16"),
        kv_dtype=setup.get("kv_dtype", setup.get("weight_dtype", "bf16")),
    )
    return float(r.summary()[setup["metric"]])


def _throughput_value(setup: dict, card) -> float:
    """Best output tokens/s of ``devices`` devices split into data-parallel replicas of ``tp``
    devices each (``tp_options``), over the batch sizes that fit."""
    best = 0.0
    for tp in setup.get("tp_options", [setup["tp"]]):
        replicas = int(setup["devices"]) // int(tp)
        for b in setup["batches"]:
            r = run(
                card,
                int(tp),
                _model(setup["model"]),
                tp=int(tp),
                pp=1,
                batch=int(b),
                input_tokens=int(setup["input"]),
                output_tokens=int(setup["output"]),
                weight_dtype=setup.get("weight_dtype", "bf16"),
                kv_dtype=setup.get("kv_dtype", "bf16"),
            )
            if r.fits:
                best = max(best, replicas * r.summary()["output_tokens_per_s"])
    return best


_KINDS = {
    "layer": _layer_seconds,
    "gemm": _gemm_seconds,
    "linear": _linear_seconds,
    "allreduce": _allreduce_seconds,
    "request": _request_value,
    "throughput": _throughput_value,
}


def predict(case: dict) -> float:
    """The simulator's value for a case, in the case's unit."""
    setup = case["setup"]
    card = load_device(setup["device"])
    value = _KINDS[setup["kind"]](setup, card)
    return value * SCALE[case["unit"]]


def validate(cases: list[dict] | None = None) -> dict:
    """Every case with measured, predicted and error = predicted / measured - 1, and the summary
    statistics over them."""
    rows = []
    for c in cases or load_cases():
        p = predict(c)
        err = p / c["measured"] - 1.0
        rows.append(
            {
                "id": c["id"],
                "source": c["source"],
                "level": c["level"],
                "quantity": c["quantity"],
                "unit": c["unit"],
                "measured": c["measured"],
                "predicted": p,
                "error": err,
                "within_tolerance": abs(err) <= TOLERANCE[c["level"]],
            }
        )
    errs = [abs(r["error"]) for r in rows]
    return {
        "cases": rows,
        "median_abs_error": statistics.median(errs) if errs else None,
        "max_abs_error": max(errs) if errs else None,
        "tolerance": TOLERANCE,
    }
