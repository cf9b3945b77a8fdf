"""Chiplet Cloud against GPU and TPU clouds, rented and fabricated, on the same workload.

For each model, the Chiplet Cloud side is phase 2's TCO-optimal design. Each baseline device is
searched with the same simulator (:func:`baseline_search`): device counts from the memory minimum
up, tensor x pipeline splits, batches and micro-batches; its cost per token is priced two ways:

* **rented**: devices x USD per device-hour / tokens per hour (the price card's default row; the
  paper's $1.10 per A100-hour and $1.45 per TPU v4 chip-hour);
* **fabricated**: what a device costs to build and run in-house, from first principles (die, HBM,
  package, board, server and network share per device, with ``full_bom`` its rack share by the
  ASIC servers' rule; device TDP plus its share of host and network power), through the same TCO
  model as Chiplet Cloud (same life, interest, electricity, PUE, datacenter) and the same
  provisioning rule: under ``power_source = tdp_capacity`` the datacentre capacity is charged at
  TDP plus overhead and the electricity at the mapping's mean device power (the simulator's) plus
  overhead (:func:`fabricated_usd_per_device_s`); under the older power sources at TDP plus
  overhead throughout.

The baseline's point is its cheapest mapping, whatever its latency (the baseline gets the same or
a looser latency than Chiplet Cloud); ``ratio_at_cc_latency`` adds the cheapest baseline mapping no
slower per token than Chiplet Cloud, where one exists.
"""

from __future__ import annotations

import json
import math
from importlib import resources

import numpy as np

from chipletcloud.baselines.devices import DeviceCard, load_device, load_prices
from chipletcloud.baselines.hbm import device_system
from chipletcloud.config import Params, load_card
from chipletcloud.models import tco
from chipletcloud.models.server import rack_share_usd
from chipletcloud.perf import formulas as fm
from chipletcloud.perf.analytic import simulate
from chipletcloud.perf.workload import LayerShape, Workload

GPU, TPU = "a100-80gb", "tpu-v4"  # the paper's baselines
#: The papers' headline ratios (data/studies/headlines.yaml): ISCA-era and arXiv v1.
_HEADLINES = {k: float(q.value) for k, q in load_card("studies", "headlines").items()}
PAPER_RATIOS = {k: v for k, v in _HEADLINES.items() if not k.startswith("v1_")}
V1_RATIOS = {k.removeprefix("v1_"): v for k, v in _HEADLINES.items() if k.startswith("v1_")}


def device_tco_usd(card: DeviceCard, fabricated, params: Params, mean_power_w=None) -> dict:
    """Capex, power and TCO over the server life of one in-house device (USD, W).

    ``fabricated`` is a price card (its ``fabricated`` items) or a plain mapping of the same keys
    to numbers: die, HBM per GB, package, board, server and network share, and the power overhead
    per device beyond its TDP. With ``full_bom`` the device also pays its rack share by the ASIC
    servers' rule (:func:`chipletcloud.models.server.rack_share_usd` of TDP + overhead; its
    network share and its package assembly are already items of the card).

    The datacentre is provisioned for ``power_w`` = TDP + overhead. Under ``power_source =
    tdp_capacity``, with ``mean_power_w`` (the device's mean power while serving, W, a number or
    an array of mappings), the electricity is billed at ``energy_power_w`` = min(mean, TDP) +
    overhead (docs/tco.md#which-power-is-charged); otherwise at ``power_w``, as before."""
    items = getattr(fabricated, "fabricated", fabricated)
    f = {k: float(getattr(v, "value", v)) for k, v in items.items()}
    hbm_gb = card.value("hbm_bytes") / 1e9
    parts = {
        "die_usd": f["die_cost_usd"],
        "hbm_usd": f["hbm_usd_per_gb"] * hbm_gb,
        "package_usd": f["package_usd"],
        "board_usd": f["board_usd"],
        "server_usd": f["server_usd_per_device"],
        "network_usd": f["network_usd_per_device"],
    }
    tdp, overhead = card.value("tdp_w"), f["server_power_overhead_w_per_device"]
    power = tdp + overhead
    if params.choices.full_bom:
        parts["rack_usd"] = float(rack_share_usd(power, params.server))
    capex = sum(parts.values())
    energy = power
    if params.choices.power_source == "tdp_capacity" and mean_power_w is not None:
        energy = np.minimum(np.asarray(mean_power_w, float), tdp) + overhead
    total = tco.server_tco_usd(
        capex, power, params.tco.server_life_years, params.tco, energy_power_w=energy
    )
    return {
        "capex_usd": capex,
        "power_w": power,
        "energy_power_w": energy,
        "overhead_w": overhead,
        "tco_usd": total,
        "parts": parts,
    }


def fabricated_usd_per_device_s(card: DeviceCard, fabricated, params: Params, pts: dict):
    """A fabricated device's TCO per second of its life for each mapping of ``pts``
    (:func:`baseline_search`'s points; its ``chip_power_w`` sets the electricity under
    ``tdp_capacity``): an array over the mappings, or one number when the power charged does
    not depend on the mapping (:func:`device_tco_usd`)."""
    fab = device_tco_usd(card, fabricated, params, pts.get("chip_power_w"))
    return fab["tco_usd"] / tco.server_life_s(params.tco)


#: The largest device count searched, as a multiple of the memory minimum rounded up to a power
#: of two (:func:`device_range`).
MAX_DEVICES_FACTOR = 16


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def tensor_degrees(heads: int, domain: int, limit: int, whole_heads: bool = True) -> list[int]:
    """Tensor degrees up to ``limit`` searched on a device with ``domain`` devices a scale-up
    domain, for a model with ``heads`` attention heads: powers of two up to the domain, multiples
    of the domain beyond it (a tensor group spanning whole domains). With ``whole_heads`` (the
    default, as GPU serving stacks require) only the divisors of ``heads``, each device computing
    whole heads; without, the powers of two up to ``limit``."""
    if whole_heads:
        cand = _divisors(max(int(heads), 1))
    else:
        cand = [2**k for k in range(max(int(limit), 1).bit_length())]
    return [
        t
        for t in cand
        if t <= limit and ((t <= domain and t & (t - 1) == 0) or (t > domain and t % domain == 0))
    ]


def device_range(card: DeviceCard, shape: LayerShape, wl: Workload) -> tuple[int, int]:
    """The device counts searched, ``(lo, hi)`` inclusive: ``lo`` = ceil(weights / HBM), below
    which the weights alone do not fit; ``hi`` = :data:`MAX_DEVICES_FACTOR` x the memory minimum
    with 10% headroom rounded up to a power of two, 2^ceil(log2(weights / (0.9 HBM)))."""
    need = shape.weight_params * wl.weight_storage_bytes / card.value("hbm_bytes")
    lo = max(1, math.ceil(need - 1e-9))
    n_pow2 = 2 ** max(0, math.ceil(math.log2(max(need / 0.9, 1.0))))
    return lo, MAX_DEVICES_FACTOR * n_pow2


def _grid(card: DeviceCard, shape: LayerShape, wl: Workload, batches, whole_heads: bool = True):
    """Device counts, tensor and pipeline degrees, batches and micro-batches to search
    (docs/baselines.md): pipeline degree ``pp`` every divisor of the layers (as the Chiplet Cloud
    search), tensor degree ``tp`` in :func:`tensor_degrees`, devices ``n = tp x pp`` within
    :func:`device_range`; each batch of ``batches`` with its micro-batches halving from the batch
    (dividing it) while batch / micro-batch <= 2 pp."""
    lo, hi = device_range(card, shape, wl)
    tps = tensor_degrees(shape.heads, card.scale_up_domain, hi, whole_heads)
    rows = []
    for pp in _divisors(shape.num_layers):
        for tp in tps:
            n = tp * pp
            if not lo <= n <= hi:
                continue
            for b in batches:
                m = b
                while m >= 1:
                    if b % m == 0 and b // m <= max(pp, 1) * 2:
                        rows.append((n, tp, pp, b, m))
                    m //= 2
    return np.array(rows, dtype=float).reshape(-1, 5).T


def baseline_search(
    card: DeviceCard, shape: LayerShape, wl: Workload, batches, whole_heads: bool = True
) -> dict:
    """Every mapping of the grid on ``card`` (arrays): devices, tp, pp, batch, micro_batch,
    feasible, tpot_s, throughput_tokens_per_s (all empty when the grid is)."""
    keys = ("feasible", "tpot_s", "throughput_tokens_per_s", "chip_power_w")
    parts = []
    # KV heads replicated over the tensor group (whole heads a device), and, for grouped or
    # multi-query attention, the KV cache split by sequence over the group (Pope et al. 2023's
    # batch-sharded multi-query attention: every device computes all heads of its sequences, so
    # any tensor degree serves): the same two modes as the Chiplet Cloud search
    # (docs/inference-model.md#kv-heads)
    for split in (0, 1) if shape.kv_heads < shape.heads else (0,):
        n, tp, pp, b, m = _grid(card, shape, wl, batches, whole_heads and not split)
        if not len(n):
            continue
        system = device_system(card, "bf16" if wl.weight_bytes >= 2 else "int8", len(n))
        servers = tp * pp / card.scale_up_domain
        with np.errstate(divide="ignore", invalid="ignore"):
            sim = simulate(
                system, shape, wl, servers=servers, pp=pp, batch=b, micro_batch=m, tp=tp,
                kv_split=split,
            )  # fmt: skip
        pts = {"devices": n, "tp": tp, "pp": pp, "batch": b, "micro_batch": m}
        pts.update({k: np.asarray(sim[k]) for k in keys})
        pts["kv_split"] = np.full(len(n), split)
        parts.append(pts)
    if not parts:
        z = np.zeros(0)
        empty = {k: (np.zeros(0, bool) if k == "feasible" else z) for k in keys}
        return {"devices": z, "tp": z, "pp": z, "batch": z, "micro_batch": z, "kv_split": z,
                **empty}  # fmt: skip
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def best_mapping(pts: dict, usd_per_device_s: float, max_tpot: float | None = None) -> dict | None:
    """The cheapest feasible mapping of :func:`baseline_search`'s points (no slower than
    ``max_tpot`` s/token when given) at ``usd_per_device_s`` (a rented device's price per second,
    or a fabricated one's TCO over its life in seconds), or None."""
    cost = fm.usd_per_million_tokens(
        pts["devices"], usd_per_device_s, 1.0, pts["throughput_tokens_per_s"]
    )
    ok = pts["feasible"] & np.isfinite(cost)
    if max_tpot is not None:
        ok &= pts["tpot_s"] <= max_tpot
    if not ok.any():
        return None
    i = int(np.flatnonzero(ok)[np.argmin(cost[ok])])
    out = {
        "usd_per_million_tokens": float(cost[i]),
        "devices": int(pts["devices"][i]),
        "tp": int(pts["tp"][i]),
        "pp": int(pts["pp"][i]),
        "batch": int(pts["batch"][i]),
        "micro_batch": int(pts["micro_batch"][i]),
        "latency_s_per_token": float(pts["tpot_s"][i]),
        "throughput_tokens_per_s": float(pts["throughput_tokens_per_s"][i]),
    }
    if "kv_split" in pts:
        out["kv_mode"] = "split" if pts["kv_split"][i] else "replicate"
    if "chip_power_w" in pts:  # the simulator's mean power a device while serving (W)
        out["mean_device_power_w"] = float(pts["chip_power_w"][i])
    return out


def compare_model(
    cc_card: dict,
    shape: LayerShape,
    wl: Workload,
    params: Params,
    devices=("a100-80gb", "h100-sxm", "tpu-v4"),
) -> dict:
    """Baselines for one model against its Chiplet Cloud TCO-optimal design card."""
    cc = cc_card["usd_per_million_tokens"]
    out = {}
    for name in devices:
        card, prices = load_device(name), load_prices(name)
        pts = baseline_search(card, shape, wl, params.preset.search.batch_sizes)
        rent_s = prices.rented_usd_per_device_hour() / 3600.0
        fab = device_tco_usd(card, prices, params)
        fab_s = fabricated_usd_per_device_s(card, prices, params, pts)
        for kind, usd_s in (("rented", rent_s), ("fabricated", fab_s)):
            best = best_mapping(pts, usd_s)
            if best is None:
                continue
            matched = best_mapping(pts, usd_s, cc_card["latency_s_per_token"])
            best.update(
                kind=kind,
                device=name,
                ratio=best["usd_per_million_tokens"] / cc,
                ratio_at_cc_latency=(matched["usd_per_million_tokens"] / cc if matched else None),
            )
            if kind == "rented":
                best["usd_per_device_hour"] = rent_s * 3600.0
            else:
                best["device_capex_usd"] = fab["capex_usd"]
                best["device_power_w"] = fab["power_w"]
            if "mean_device_power_w" in best:  # energy a token at the chip, wall and facility
                n_thr = best["devices"] / best["throughput_tokens_per_s"]
                wall = min(best["mean_device_power_w"], card.value("tdp_w")) + fab["overhead_w"]
                best["joules_per_token_chip"] = best["mean_device_power_w"] * n_thr
                best["joules_per_token_wall"] = wall * n_thr
                best["joules_per_token_facility"] = wall * n_thr * params.tco.pue
            out[f"{name}-{kind}"] = best
    return out


def v1_baselines() -> dict:
    """The literature baselines of the arXiv v1 comparison (docs/baselines.md)."""
    path = resources.files("chipletcloud") / "data" / "prices" / "v1_baselines.json"
    return json.loads(path.read_text())


def summarise(per_model: dict, gpu: str = GPU, tpu: str = TPU) -> dict:
    """The paper's four ratios: the best over the models (as the paper reports it) and the
    geometric mean, for the rented and fabricated GPU and TPU."""
    out = {}
    for key, name in (
        ("rented_gpu", f"{gpu}-rented"),
        ("rented_tpu", f"{tpu}-rented"),
        ("fabricated_gpu", f"{gpu}-fabricated"),
        ("fabricated_tpu", f"{tpu}-fabricated"),
    ):
        ratios = [
            m["baselines"][name]["ratio"] for m in per_model.values() if name in m["baselines"]
        ]
        if ratios:
            out[key] = max(ratios)
            out[f"{key}_geomean"] = float(np.exp(np.mean(np.log(ratios))))
            out[f"{key}_paper"] = PAPER_RATIOS[key]
    out["geomean"] = {
        k.removesuffix("_geomean"): v for k, v in out.items() if k.endswith("_geomean")
    }
    return out


def compare_results(results, table: dict, params: Params, progress=None, devices=None) -> dict:
    """The comparison for phase-2 results already computed (``software.ModelResult`` list),
    against ``devices`` (default :func:`compare_model`'s: A100, H100, TPU v4).

    Under a preset with the v1 latency model, the baselines are the v1 literature figures
    (GPT-3 on rented A100s, PaLM on rented TPU v4, docs/baselines.md) and the summary compares
    with the v1 headline (94x / 15x)."""
    from chipletcloud.explore import software

    v1 = params.choices.latency_model == "v1"
    lit = v1_baselines() if v1 else {}
    wl_spec = params.preset.workload
    per_model = {}
    for res in results:
        card = res.card("tco", table)
        name = res.model
        if card is None:
            per_model[name] = {
                "chiplet_cloud_usd_per_million_tokens": None,
                "baselines": {},
                "note": "fits no Chiplet Cloud design",
            }
            continue
        cc = card["usd_per_million_tokens"]
        if v1:
            base = {}
            if name in lit:
                b = lit[name]
                base[f"{b['device']}-{b['kind']}"] = {
                    "usd_per_million_tokens": b["usd_per_million_tokens"],
                    "kind": b["kind"],
                    "device": b["device"],
                    "ratio": b["usd_per_million_tokens"] / cc,
                    "latency_s_per_token": b["latency_s_per_token"],
                    "source": b["source"],
                }
        else:
            kw = {} if devices is None else {"devices": tuple(devices)}
            base = compare_model(card, res.shape, software.workload(wl_spec), params, **kw)
        per_model[name] = {
            "chiplet_cloud_usd_per_million_tokens": cc,
            "chiplet_cloud_design": card,
            "baselines": base,
        }
        if progress:
            progress(name)
    summary = summarise(per_model)
    if v1:
        for k, v in V1_RATIOS.items():
            if k in summary:
                summary[f"{k}_paper"] = v
    return {
        "preset": params.preset.name,
        "models": per_model,
        "summary": summary,
        "workload": params.preset.workload.model_dump(),
    }


def run_compare(
    models: list[str],
    preset: str = "isca24",
    progress_enabled: bool = False,
    progress=None,
    request_workload=None,
    slo=None,
    serving: bool = True,
) -> dict:
    """Phase 1 on the default space, phase 2 for each model, and the baselines of each model.
    ``request_workload`` (:class:`chipletcloud.models.requests.RequestWorkload`): both sides
    serve its mean input and output lengths, and the result names it. With ``serving`` (the
    default), every system also serves the workload (the preset's fixed request when none is
    given) under continuous batching at ``slo`` (:class:`chipletcloud.models.slo.Slo`; none:
    any stable load): ``serving``, ``bands`` and ``summary.headline``
    (:func:`chipletcloud.baselines.serving.serving_comparison`)."""
    from contextlib import nullcontext

    from chipletcloud.config import load_space, resolve
    from chipletcloud.explore import software
    from chipletcloud.explore.hardware import explore_hardware
    from chipletcloud.models.catalogue import load_model

    params = resolve(preset)
    if request_workload is not None:
        params = request_workload.applied_to(params)
    specs = software.unique_names(software.servable([load_model(m) for m in models], params))
    table = explore_hardware(load_space(), params).table
    steps = (3 if serving else 2) * len(specs)
    ctx = progress(steps, "compare", progress_enabled) if progress else nullcontext(None)
    with ctx as step:
        results = []
        for spec in specs:
            results.append(software.search(table, spec, software.params_for(spec, params)))
            if step:
                step(spec.name)
        result = compare_results(results, table, params, step)
        if serving:
            from chipletcloud.baselines.serving import attach_serving

            attach_serving(result, results, table, params, request_workload, slo, step)
    if request_workload is not None:
        result["request_workload"] = request_workload.describe()
    return result
