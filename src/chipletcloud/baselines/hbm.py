"""GPUs and TPUs on the same inference simulator: weights and KV streamed from HBM.

A device card (``data/devices/*.json``) becomes a :class:`~chipletcloud.perf.workload.System`
row: peak FLOP/s of the compute format, HBM capacity and bandwidth, the scale-up link inside a
domain (NVLink/NVSwitch, TPU ICI) and the scale-out network beyond it, and the card's efficiency
parameters (achievable fraction of peak FLOP/s and HBM bandwidth, collective start-up time, fixed
time per kernel). A "server" of the simulator is one scale-up domain, so a tensor group that fits
the domain all-reduces on NVLink/ICI and one that spans domains on the network.

Number formats: weights and KV may be stored as bf16/fp16 (2 B), fp8/int8 (1 B) or int4 (0.5 B).
Matmuls run at the peak of the weight format when the device has units for it (fp8 on H100/H200/
B200, int8 on A100/TPU), otherwise at bf16 (weight-only quantisation: smaller reads, bf16 math).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from chipletcloud.baselines.devices import DeviceCard, load_device
from chipletcloud.baselines.sram import (
    SramCard,
    is_sram_card,
    parse_sram_card,
    read_card,
    sram_system,
)
from chipletcloud.baselines.stacks import DEFAULT_STACK, StackCard, load_stack
from chipletcloud.config import TechParams, card_params
from chipletcloud.errors import InputError
from chipletcloud.models.llm import ModelSpec
from chipletcloud.perf.analytic import memory_per_chip, simulate, stage_ops
from chipletcloud.perf.codes import OPS, TOPOLOGIES, algorithm_mask
from chipletcloud.perf.workload import LayerShape, System, Workload

DTYPE_BYTES = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5, "fp4": 0.5}


def check_dtype(field: str, dtype: str) -> float:
    if dtype not in DTYPE_BYTES:
        raise InputError(field, dtype, ", ".join(DTYPE_BYTES))
    return DTYPE_BYTES[dtype]


COMPUTE_DTYPES = ("bf16", "fp16", "fp8", "int8", "int4", "fp4")


def compute_format(card: DeviceCard, weight_dtype: str, compute_dtype: str | None = None) -> str:
    """The number format the matmuls run in.

    ``compute_dtype`` named: that format (full low-precision compute, or ``bf16`` with 8/4-bit
    weights for weight-only quantisation), refused where the device has no units for it.
    Unnamed: the weight format where the device has units for it (fp8 on Hopper/Blackwell, int8
    on A100/TPU, fp4 on Blackwell), else bf16 (weight-only quantisation: smaller reads, 16-bit
    math)."""
    if compute_dtype is not None:
        if compute_dtype not in COMPUTE_DTYPES:
            raise InputError("compute_dtype", compute_dtype, ", ".join(COMPUTE_DTYPES))
        card.peak_flops(compute_dtype)  # refuses a format the device lacks
        return compute_dtype
    if weight_dtype in ("fp8", "int8", "int4", "fp4"):
        try:
            card.peak_flops(weight_dtype)
            return weight_dtype
        except InputError:
            pass
    return "bf16"


def _optional(card: DeviceCard, key: str, default: float) -> float:
    q = card.constants.get(key)
    return float(q.value) if q is not None else default


#: A device card's scale-up topology as (fabric code of :data:`chipletcloud.perf.codes.TOPOLOGIES`,
#: dimensions of its bucket all-reduce).
SCALE_UP_FABRICS = {
    "nvswitch": (TOPOLOGIES["switch"], 1.0),
    "torus3d": (TOPOLOGIES["torus2d"], 3.0),
    "torus2d": (TOPOLOGIES["torus2d"], 2.0),
    "full": (TOPOLOGIES["full"], 1.0),
    "ring": (TOPOLOGIES["ring"], 1.0),
}


def device_stack(card: DeviceCard, stack: str | StackCard | None = None) -> StackCard:
    """The software stack a device runs: ``stack`` when named, else the card's
    ``default_stack``, else the vendor runtime of its kind (:data:`DEFAULT_STACK`)."""
    if stack is not None:
        return load_stack(stack)
    return load_stack(card.default_stack or DEFAULT_STACK[card.kind])


def device_workload(stack: StackCard | None, **kw) -> Workload:
    """A :class:`Workload` with the stack's kernels a layer, fused attention and decode KV reads
    (no stack: an SRAM machine, the simulator's defaults)."""
    if stack is None:
        return Workload(**kw)
    return Workload(
        **kw,
        layer_kernels=MappingProxyType({k: float(v) for k, v in stack.layer_kernels.items()}),
        fused_attention=stack.fused_attention,
        kv_reads_per_query_head=not stack.gqa_aware_decode,
    )


def serving_workload(
    stack: StackCard | None,
    input_tokens: int,
    output_tokens: int,
    weight_dtype: str = "bf16",
    kv_dtype: str = "bf16",
) -> Workload:
    """The workload of a request of ``input_tokens`` and ``output_tokens`` with weights and KV
    in the named formats (16-bit activations), on ``stack`` (:func:`device_workload`)."""
    return device_workload(
        stack,
        prompt_tokens=input_tokens,
        output_tokens=output_tokens,
        weight_bytes=check_dtype("weight_dtype", weight_dtype),
        kv_bytes=check_dtype("kv_dtype", kv_dtype),
        act_bytes=2.0,
    )


def device_system(
    card: DeviceCard,
    weight_dtype: str = "bf16",
    n: int = 1,
    tech: TechParams | None = None,
    stack: str | StackCard | None = None,
    compute_dtype: str | None = None,
) -> System:
    """``n`` identical rows describing one device of ``card`` (see the module docstring).

    Energies per FMA, per HBM byte read and per on-chip activation byte come from the
    technology card ``tech`` (default: ``data/tech/7nm.yaml``); the static power a device is the
    card's measured ``idle_power_w`` where it has one (A100, TPU v4), else 0.

    Links run at ``link_efficiency`` of their nominal bandwidth (NCCL/ICI protocol overheads);
    all-reduces follow the scale-up topology (a ring on NVSwitch, one ring per dimension on a
    TPU torus), with the card's ``collective_startup_s`` a step inside and across scale-up
    domains, no fixed cost per collective beyond it, and one NIC a device (``scale_out`` is per
    device). Messages are at least a packet and large groups climb switch tiers as on the ASIC
    side (the ``serdes_7nm`` link card)."""
    v = card.value
    t = tech or card_params("tech", "7nm")
    link_eff = _optional(card, "link_efficiency", 1.0)
    fabric = SCALE_UP_FABRICS.get(card.scale_up_topology, SCALE_UP_FABRICS["ring"])
    sw = device_stack(card, stack)
    fmt = compute_format(card, weight_dtype, compute_dtype)
    return System.broadcast(
        flops=np.full(n, card.peak_flops(fmt)),
        mem_bytes=v("hbm_bytes") * sw.value("memory_fraction"),
        mem_bw=v("hbm_bandwidth_bytes_per_s"),
        chip_link_bw=v("scale_up_bytes_per_s") * link_eff,
        server_link_bw=v("scale_out_bytes_per_s") * link_eff,
        chips_per_server=float(card.scale_up_domain),
        hop_latency_s=v("collective_startup_s"),
        net_hop_s=v("collective_startup_s"),
        sync_s=0.0,
        topology=float(fabric[0]),
        algorithms=algorithm_mask(sw.allreduce),
        nics_per_server=float(card.scale_up_domain),
        **card_params("link", "serdes_7nm").network_columns(),
        fma_j=t.fma_energy_pj * 1e-12,
        mem_j_per_byte=t.hbm_read_pj_per_byte * 1e-12,
        act_j_per_byte=t.sram_activation_read_pj_per_byte * 1e-12,
        static_w_per_chip=_optional(card, "idle_power_w", 0.0),
        flops_eff=card.flops_efficiency(fmt),
        mem_eff=v("hbm_efficiency"),
        op_overhead_s=sw.decode_kernel_s(),
        eager_overhead_s=sw.value("kernel_launch_s"),
        step_overhead_s=sw.value("step_overhead_s"),
        request_overhead_s=sw.value("request_overhead_s"),
        collective_dims=fabric[1],
    )


@dataclass(frozen=True)
class Run:
    """One simulated serving run on HBM devices."""

    device: str
    devices: int
    model: str
    tp: int
    pp: int
    batch: int
    micro_batch: int
    sim: dict
    decode_breakdown_s: dict
    weight_bytes_per_device: float
    kv_bytes_per_device: float
    hbm_bytes_per_device: float
    replicas: int = 1
    stack: str | None = None
    compute_dtype: str = "bf16"

    @property
    def fits(self) -> bool:
        return bool(np.ravel(self.sim["fits"])[0])

    def summary(self) -> dict:
        s = {
            k: float(np.asarray(v).ravel()[0])
            for k, v in self.sim.items()
            if not k.startswith("decode_")
        }
        return {
            "device": self.device,
            "devices": self.devices,
            "model": self.model,
            "tp": self.tp,
            "pp": self.pp,
            "batch": self.batch,
            "micro_batch": self.micro_batch,
            "replicas": self.replicas,
            "idle_devices": self.devices - self.replicas * self.tp * self.pp,
            "stack": self.stack,
            "compute_dtype": self.compute_dtype,
            "ttft_s": s["prefill_s"],
            "tpot_s": s["tpot_s"],
            "e2e_s": s["e2e_s"],
            "output_tokens_per_s": s["throughput_tokens_per_s"] * self.replicas,
            "output_tokens_per_s_per_replica": s["throughput_tokens_per_s"],
            "weight_bytes_per_device": self.weight_bytes_per_device,
            "kv_bytes_per_device": self.kv_bytes_per_device,
            "hbm_bytes_per_device": self.hbm_bytes_per_device,
            "fits": self.fits,
            "flop_utilisation": s["flop_utilisation"],
            "breakdown": {"decode_s_per_token": self.decode_breakdown_s},
        }


def load_any_device(name_or_path: str) -> DeviceCard | SramCard:
    """A built-in or file device card: an SRAM card (``kind: sram``, YAML/JSON) or an HBM/GDDR
    device card."""
    raw = read_card(name_or_path)
    if is_sram_card(raw):
        return parse_sram_card(raw)
    return load_device(name_or_path)


def run(
    device: str | DeviceCard | SramCard,
    devices: int,
    spec: ModelSpec,
    *,
    tp: int,
    pp: int,
    batch: int,
    input_tokens: int,
    output_tokens: int,
    micro_batch: int | None = None,
    weight_dtype: str = "bf16",
    kv_dtype: str = "bf16",
    compute_dtype: str | None = None,
    stack: str | StackCard | None = None,
) -> Run:
    """Simulate serving ``spec`` (its real shape, embeddings included) on ``devices`` devices of
    an HBM/GDDR device card or an SRAM card (:mod:`chipletcloud.baselines.sram`).

    ``devices`` beyond ``tp x pp`` run ``devices // (tp x pp)`` data-parallel replicas, each
    serving its own batch of ``batch`` sequences: the output tokens/s is the replicas' sum
    (``replicas``, and ``idle_devices`` for a remainder, in the summary). ``stack``: the
    software stack of a GPU/TPU (:mod:`chipletcloud.baselines.stacks`; default the card's).
    ``compute_dtype``: the matmul format (:func:`compute_format`)."""
    card = load_any_device(device) if isinstance(device, str) else device
    for field, val, lo in (
        ("devices", devices, 1),
        ("tp", tp, 1),
        ("pp", pp, 1),
        ("batch", batch, 1),
        ("input_tokens", input_tokens, 1),
        ("output_tokens", output_tokens, 1),
    ):
        if not isinstance(val, int) or val < lo:
            raise InputError(field, val, f"an integer >= {lo}")
    spec.check_context(input_tokens, output_tokens, "input_tokens + output_tokens")
    if tp * pp > devices:
        raise InputError("tp", tp, f"tp x pp <= devices ({pp} x tp <= {devices})")
    if spec.num_layers % pp:
        raise InputError("pp", pp, f"a divisor of the model's {spec.num_layers} layers")
    if micro_batch is None:  # as many micro-batches as stages when the batch allows it
        micro_batch = batch // math.gcd(batch, pp)
    if micro_batch < 1 or batch % micro_batch:
        raise InputError("micro_batch", micro_batch, f"a divisor of the batch {batch}")
    shape = LayerShape.from_spec(spec, include_embeddings=True)
    if isinstance(card, SramCard):
        sw = None
        sys_ = sram_system(card, weight_dtype)
        stack_name, fmt = None, weight_dtype
    else:
        sw = device_stack(card, stack)
        sys_ = device_system(card, weight_dtype, stack=sw, compute_dtype=compute_dtype)
        stack_name, fmt = sw.name, compute_format(card, weight_dtype, compute_dtype)
    wl = serving_workload(sw, input_tokens, output_tokens, weight_dtype, kv_dtype)
    servers = tp * pp / card.scale_up_domain  # > 1: stages talk over the scale-out network
    sim = simulate(
        sys_, shape, wl, servers=servers, pp=pp, batch=batch, micro_batch=micro_batch, tp=tp
    )
    ops = stage_ops(
        sys_, shape, wl, servers=servers, pp=pp, tp=tp, micro_batch=micro_batch, phase="decode"
    )
    steps = max(pp, batch // micro_batch)
    breakdown = {op: float(np.ravel(ops[op])[0]) * steps for op in OPS}
    w, kv = memory_per_chip(sys_, shape, wl, pp=pp, tp=tp, batch=batch)
    return Run(
        card.name,
        devices,
        spec.name,
        tp,
        pp,
        batch,
        micro_batch,
        sim,
        breakdown,
        float(np.ravel(w)[0]),
        float(np.ravel(kv)[0]),
        float(np.ravel(sys_.mem_bytes)[0]),
        replicas=devices // (tp * pp),
        stack=stack_name,
        compute_dtype=fmt,
    )
