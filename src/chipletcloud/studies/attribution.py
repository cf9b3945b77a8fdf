"""Attribution: from the authors' code's behaviour to this project's defaults, one switch a step.

Every modelling difference between the authors' ISCA-era code and a preset is a named switch
(``data/attribution/switches.yaml``, :func:`chipletcloud.config.switches`). The walk starts with
every switch at the authors' behaviour (the ``authors`` preset when the base is ``isca24``),
flips them back to the base preset one at a time in the registry's order (or the order asked
for), and records the TCO-optimal point of the model after each step: phase 1 re-run whenever a
step changes the hardware model, phase 2 over all of its valid servers. The last step is the
base preset itself, so the steps add up exactly to the difference between the two ends
(docs/attribution.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

import numpy as np

from chipletcloud.config import (
    HardwareSpace,
    Preset,
    check_switch_names,
    config_hash,
    load_preset,
    load_space,
    resolve,
    restore_switch,
    switches,
    with_switches,
)
from chipletcloud.explore import software
from chipletcloud.explore.hardware import explore_hardware
from chipletcloud.models.catalogue import load_model
from chipletcloud.models.chip import area_split
from chipletcloud.perf.analytic import price, simulate

DATA = resources.files("chipletcloud") / "data" / "attribution"

#: Fields of the TCO-optimal design card each step reports.
STEP_FIELDS = (
    "usd_per_million_tokens",
    "die_area_mm2",
    "chips_per_server",
    "mac_ratio",
    "operational_intensity",
    "servers",
    "tp",
    "pp",
    "batch",
    "micro_batch",
    "latency_s_per_token",
    "throughput_tokens_per_s",
    "server_cost_usd",
)


@dataclass(frozen=True)
class Step:
    """One preset of the walk: ``switch`` is the switch just flipped back (``authors`` for the
    start), ``preset`` the preset evaluated."""

    switch: str
    summary: str
    preset: Preset


def walk(base: str | Preset = "isca24", order: list[str] | None = None) -> list[Step]:
    """The presets of the walk from the authors' behaviour to ``base``. ``order`` names the
    switches to flip first, in that order; the rest follow in registry order. A switch that
    ``base`` itself sets to the authors' behaviour does not change anything and is skipped."""
    base_p = load_preset(base) if isinstance(base, str) else base
    if base_p.authors:
        base_p = with_switches(base_p, [])
    check_switch_names(order or [], "switch")
    first = [n for n in dict.fromkeys(order or []) if n != "all"]  # the caller's order
    by_name = {s.name: s for s in switches()}
    names = first + [n for n in by_name if n not in first]
    start = with_switches(base_p, ["all"], name=f"{base_p.name}+authors")
    steps = [Step("authors", "every switch at the authors' code's behaviour", start)]
    cur = start
    for n in names:
        nxt = restore_switch(cur, base_p, by_name[n])
        if nxt.model_dump() == cur.model_dump():
            continue
        steps.append(Step(n, by_name[n].summary, nxt))
        cur = nxt
    return steps


def hardware_key(params) -> str:
    """A hash of everything in ``params`` that phase 1 depends on (all but workload and search)."""
    cfg = params.config_dict()
    cfg.pop("workload")
    cfg.pop("search")
    return config_hash(cfg)


def attribute(
    model: str,
    base: str | Preset = "isca24",
    *,
    order: list[str] | None = None,
    space: HardwareSpace | None = None,
    progress: Callable[[str], None] | None = None,
    tables: dict | None = None,
) -> dict:
    """The walk for ``model`` (a name or config.json path): ``{model, base, steps}``, each step
    ``{switch, summary, usd_per_million_tokens, die_area_mm2, chips_per_server, ...}`` (the
    TCO-optimal point; ``None`` fields when no design holds the model) and ``change`` (this
    step's cost over the previous step's, minus 1). ``tables`` caches phase-1 tables between
    calls (key: the hardware-relevant configuration)."""
    tick = progress or (lambda _msg: None)
    space = space or load_space()
    spec = load_model(model)
    tables = {} if tables is None else tables
    out = []
    prev = None
    for step in walk(base, order):
        tick(f"{spec.name}: {step.switch}")
        params = software.params_for(spec, resolve(step.preset))
        key = hardware_key(params)
        if key not in tables:
            tables[key] = explore_hardware(space, params).table
        table = tables[key]
        card, searched = software.tco_optimum(table, spec, params)
        row = {"switch": step.switch, "summary": step.summary}
        row["designs_searched"] = searched
        row.update({f: (card or {}).get(f) for f in STEP_FIELDS})
        cost = row["usd_per_million_tokens"]
        row["change"] = cost / prev - 1.0 if (cost is not None and prev) else None
        prev = cost
        out.append(row)
    name = base if isinstance(base, str) else base.name
    return {"model": spec.name, "base": name, "steps": out}


def biggest_steps(result: dict, k: int = 3) -> list[dict]:
    """The ``k`` steps that move the cost most (by |log ratio|), largest first."""
    rows = [r for r in result["steps"][1:] if r.get("change") is not None]
    rows.sort(key=lambda r: -abs(np.log1p(r["change"])))
    return rows[:k]


def to_json(result: dict) -> str:
    return json.dumps(result, indent=2, sort_keys=True)


# ------------------------------------------------------------------------ the authors' optima


def authors_optima() -> list[dict]:
    """The authors' code's TCO-optimal points (``data/attribution/authors_optima.json``), each
    with its design's ``mac_ratio`` and ``operational_intensity`` derived by the authors' area
    rules (:func:`derived_design`)."""
    raw = json.loads((DATA / "authors_optima.json").read_text())
    return [{**p, **derived_design(p)} for p in raw["points"]]


def derived_design(point: dict, tech=None) -> dict:
    """``mac_ratio`` and ``operational_intensity`` of a published design: usable area = (sqrt(A)
    - pad ring)^2 x core fraction - IO cells (docs/hardware-model.md#chip-area), MAC area =
    TOPS x rho_mac, OI = TOPS / SRAM TB/s (bandwidth = FLOP/s / OI in 2-byte words: B/s =
    FLOP/s / OI). ``mac_ratio`` is rounded to the space's 0.01 grid and ``packages_per_lane``
    is chips a server / 8 lanes."""
    t = tech or resolve("authors").tech
    usable = float(area_split(point["die_area_mm2"], 1.0, t)["mac_area_mm2"])
    mac = point["tops"] * t.mac_density_mm2_per_tflops
    return {
        "mac_ratio": round(mac / usable, 2),
        "operational_intensity": round(point["tops"] / point["sram_tbps"], 2),
        "packages_per_lane": int(point["chips_per_server"]) // 8,
    }


def evaluate_point(point: dict, preset: str | Preset = "authors") -> dict | None:
    """The authors' design and mapping ``point`` (one of :func:`authors_optima`) under
    ``preset``: its $/M tokens, tokens/s and ms/token by this project's models, or None when the
    design is not a valid server here."""
    params = resolve(preset)
    space = HardwareSpace.model_validate(
        {
            "die_area_mm2": [point["die_area_mm2"]],
            "mac_ratio": [point["mac_ratio"]],
            "operational_intensity": [point["operational_intensity"]],
            "packages_per_lane": [point["packages_per_lane"]],
        }
    )
    table = explore_hardware(space, params).table
    if len(table["server_id"]) == 0:
        return None
    spec = load_model(point["model"])
    params = software.params_for(spec, params)
    inp = software.search_inputs(table, spec, params)
    one = np.ones(1)
    best = None
    for split in sorted(set(np.asarray(inp.grid.kv_split).tolist())):  # the preset's KV modes
        sim = simulate(
            inp.system,
            inp.shape,
            inp.wl,
            servers=one * point["servers"],
            pp=one * point["pp"],
            batch=one * point["batch"],
            micro_batch=one * point["micro_batch"],
            latency_model=inp.latency_model,
            kv_split=float(split),
        )
        money = price(inp.pricing, sim, one * point["servers"], inp.system.chips_per_server)
        key = (not bool(sim["feasible"][0]), float(money["usd_per_million_tokens"][0]))
        if best is None or key < best[0]:
            best = (key, sim, money, split)
    _, sim, money, split = best
    return {
        "kv_mode": "split" if split else "replicate",
        "usd_per_million_tokens": float(money["usd_per_million_tokens"][0]),
        "tokens_per_s": float(sim["throughput_tokens_per_s"][0]),
        "ms_per_token": float(sim["tpot_s"][0]) * 1e3,
        "tp": int(sim["tp"][0]),
        "feasible": bool(sim["feasible"][0]),
        "server_cost_usd": float(table["server_cost_usd"][0]),
        "tflops_per_chip": float(table["tflops_per_chip"][0]),
    }


def reproduction(
    models: list[str] | None = None,
    preset: str | Preset = "authors",
    space: HardwareSpace | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[dict]:
    """For each of the authors' optima: the published point, the same design and mapping under
    ``preset`` (``point``), and ``preset``'s own TCO-optimal point over ``space`` (``search``,
    :func:`chipletcloud.explore.software.tco_optimum`), with the cost ratios to the published
    one and whether die area and chips a server agree."""
    tick = progress or (lambda _msg: None)
    params0 = resolve(preset)
    table = explore_hardware(space or load_space(), params0).table
    rows = []
    for p in authors_optima():
        if models and p["model"] not in models:
            continue
        tick(p["model"])
        spec = load_model(p["model"])
        card, _ = software.tco_optimum(table, spec, software.params_for(spec, params0))
        pt = evaluate_point(p, preset)
        row = {"model": p["model"], "authors": p, "point": pt, "search": None}
        if card is not None:
            row["search"] = {f: card.get(f) for f in STEP_FIELDS}
            c = card["usd_per_million_tokens"]
            row["search_ratio"] = c / p["usd_per_million_tokens"]
            row["same_die"] = card["die_area_mm2"] == p["die_area_mm2"]
            row["same_chips_per_server"] = card["chips_per_server"] == p["chips_per_server"]
        if pt is not None:
            row["point_ratio"] = pt["usd_per_million_tokens"] / p["usd_per_million_tokens"]
            row["point_tokens_per_s_ratio"] = pt["tokens_per_s"] / p["tokens_per_s"]
        rows.append(row)
    return rows
