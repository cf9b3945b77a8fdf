"""The context-length study: USD per million tokens against the context a request reaches.

For each model and context (``data/studies/context.yaml``: a prompt of context - output tokens,
then the output), phase 2 finds the TCO-optimal Chiplet Cloud system of the whole servers table
(:func:`chipletcloud.explore.software.tco_optimum`: exact, designs searched in order of a cost
lower bound until no further design can be cheaper), and every device with a price card
(rented and fabricated, :func:`chipletcloud.baselines.compare.compare_model`) serves the same
requests. An all-SRAM
system must hold every sequence's KV cache on chip: as the context grows it needs more chips
for the KV than for the weights, which the rows state (``kv_share_of_sram``) with the context a
system can still hold one sequence of (``kv_limit_tokens``, KV bytes from the model card,
:meth:`chipletcloud.models.llm.ModelSpec.kv_bytes`, an independent count of the cache).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib import resources

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from chipletcloud.config import Params, read_yaml
from chipletcloud.errors import InputError
from chipletcloud.explore import software
from chipletcloud.models.catalogue import load_model
from chipletcloud.models.llm import ModelSpec


class ContextStudySpec(BaseModel):
    """``data/studies/context.yaml``: the study's models, contexts and output length."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(min_length=1)
    output_tokens: int = Field(ge=1, le=1_000_000)
    contexts: list[int] = Field(min_length=1)
    models: list[str] = Field(min_length=1)

    @field_validator("contexts")
    @classmethod
    def _increasing(cls, v: list[int]) -> list[int]:
        if any(b <= a for a, b in zip(v, v[1:], strict=False)) or v[0] < 2:
            raise ValueError("must be increasing token counts of at least 2")
        return v


def default_spec() -> ContextStudySpec:
    """The study as ``data/studies/context.yaml`` states it."""
    path = resources.files("chipletcloud") / "data" / "studies" / "context.yaml"
    return ContextStudySpec.model_validate(read_yaml(path, "context study"))


def check_context(spec: ModelSpec, context: int, output_tokens: int) -> None:
    """One line (exit 2) for a context the model cannot serve: beyond its positions
    (``max_position_embeddings``), or not longer than the output."""
    if context <= output_tokens:
        raise InputError("context", context, f"more than the {output_tokens} output tokens")
    spec.check_context(context - output_tokens, output_tokens)


def kv_limit_tokens(spec: ModelSpec, free_bytes: float, kv_bytes: float = 2.0) -> int:
    """The longest context one sequence's KV cache (:meth:`ModelSpec.kv_bytes`) reaches in
    ``free_bytes`` of memory: the largest c with kv_bytes(c) <= free (0 if not even one token)."""
    if free_bytes < spec.kv_bytes(1, kv_bytes):
        return 0
    lo, hi = 1, 2
    while spec.kv_bytes(hi, kv_bytes) <= free_bytes and hi < 10**12:
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if spec.kv_bytes(mid, kv_bytes) <= free_bytes else (lo, mid)
    return lo


def _cheapest(baselines: dict, kind: str) -> dict | None:
    rows = [b for b in baselines.values() if b["kind"] == kind]
    if not rows:
        return None
    b = min(rows, key=lambda r: r["usd_per_million_tokens"])
    return {
        "device": b["device"],
        "usd_per_million_tokens": b["usd_per_million_tokens"],
        "devices": b["devices"],
        "batch": b["batch"],
    }


def context_point(
    table: dict, spec: ModelSpec, params: Params, context: int, output_tokens: int, devices
) -> dict:
    """One row of the study: the Chiplet Cloud optimum and the cheapest devices at ``context``."""
    from chipletcloud.baselines.compare import compare_model

    check_context(spec, context, output_tokens)
    p = software.params_for(
        spec,
        params.with_workload(prompt_tokens=context - output_tokens, output_tokens=output_tokens),
    )
    card, searched = software.tco_optimum(table, spec, p)
    inp = software.search_inputs(table, spec, p)
    kvb = p.preset.workload.kv_bytes
    row: dict = {
        "model": spec.name,
        "context": int(context),
        "kv_bytes_per_sequence": spec.kv_bytes(context, kvb),
        "cc_usd_per_million_tokens": None,
        "designs_searched": searched,
    }
    stub = {"usd_per_million_tokens": float("nan"), "latency_s_per_token": float("nan")}
    baselines = compare_model(card or stub, inp.shape, inp.wl, p, devices)
    if card is not None:
        memory, kv = software.system_memory(card, inp.shape, inp.wl)
        weights = inp.shape.weight_params * inp.wl.weight_storage_bytes
        row.update(
            cc_usd_per_million_tokens=card["usd_per_million_tokens"],
            servers=card["servers"],
            chips=card["servers"] * card["chips_per_server"],
            die_area_mm2=card["die_area_mm2"],
            sram_mb_per_chip=card["sram_mb_per_chip"],
            batch=card["batch"],
            tp=card["tp"],
            pp=card["pp"],
            latency_s_per_token=card["latency_s_per_token"],
            sram_bytes=memory,
            kv_share_of_sram=kv / memory,
            weight_share_of_sram=weights / memory,
            kv_limit_tokens=kv_limit_tokens(spec, memory - weights, kvb),
        )
    for kind in ("rented", "fabricated"):
        row[f"cheapest_{kind}"] = _cheapest(baselines, kind)
    fab = row["cheapest_fabricated"]
    cc = row["cc_usd_per_million_tokens"]
    row["fabricated_over_cc"] = fab["usd_per_million_tokens"] / cc if fab and cc else None
    return row


def context_study(
    table: dict,
    params: Params,
    models: Sequence[str] | None = None,
    contexts: Sequence[int] | None = None,
    output_tokens: int | None = None,
    devices: Sequence[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """The study (module docstring) over ``table``: ``rows`` (one a model and context) and per
    model ``summary``: the shortest context's optimum's ``kv_limit_tokens`` (the context its
    SRAM stops holding one sequence's KV beside the weights) and ``crossover_context`` (the
    first context where a fabricated device is cheaper than Chiplet Cloud, None if none is).
    Every context is checked against every model before any search."""
    from chipletcloud.baselines.devices import list_price_cards

    base = default_spec()
    models = list(models or base.models)
    contexts = sorted(set(contexts or base.contexts))
    g = int(output_tokens or base.output_tokens)
    devices = list(devices) if devices is not None else list_price_cards()
    specs = [load_model(m) for m in models]
    for spec in specs:
        for c in contexts:
            check_context(spec, c, g)
    step = progress or (lambda _msg: None)
    rows, summary = [], {}
    for spec in specs:
        mine = []
        for c in contexts:
            mine.append(context_point(table, spec, params, c, g, devices))
            step(f"context {spec.name} {c}")
        first = next((r for r in mine if r.get("kv_limit_tokens") is not None), None)
        cross = next(
            (r["context"] for r in mine if (r["fabricated_over_cc"] or float("inf")) < 1.0), None
        )
        summary[spec.name] = {
            "kv_limit_tokens": first["kv_limit_tokens"] if first else None,
            "kv_limit_of_context": first["context"] if first else None,
            "crossover_context": cross,
        }
        rows += mine
    return {
        "output_tokens": g,
        "contexts": contexts,
        "models": [s.name for s in specs],
        "devices": devices,
        "rows": rows,
        "summary": summary,
        "source": base.source,
    }


def context_columns(study: dict) -> dict:
    """The study's rows as Parquet columns (nested devices flattened)."""
    flat = []
    for r in study["rows"]:
        row = {k: v for k, v in r.items() if not isinstance(v, dict)}
        for kind in ("rented", "fabricated"):
            b = r.get(f"cheapest_{kind}") or {}
            row[f"cheapest_{kind}_device"] = b.get("device", "")
            row[f"cheapest_{kind}_usd_per_million_tokens"] = b.get(
                "usd_per_million_tokens", float("nan")
            )
        flat.append(row)
    keys = list(dict.fromkeys(k for r in flat for k in r))
    cols = {}
    for k in keys:
        v = [r.get(k) for r in flat]
        if all(isinstance(x, str) for x in v):
            cols[k] = np.asarray(v, dtype=str)
        else:
            cols[k] = np.asarray([float("nan") if x is None else float(x) for x in v])
    return cols
