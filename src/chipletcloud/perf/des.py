"""Event-level (discrete-event) simulation of ONE mapped Chiplet Cloud design point, to check the
analytic inference model (:mod:`chipletcloud.perf.analytic`, docs/inference-model.md) against a
finer one.

No Chiplet Cloud exists to measure
(docs/validation.md#the-asic-side-against-an-event-level-simulation), so the analytic
latency and throughput are compared with this slower, more detailed model of the same mapped
system, built on ``simpy``. The per-op compute and memory costs are the analytic ones
(:func:`~chipletcloud.perf.analytic.layer_ops`); the collectives are not: every all-reduce and
stage transfer is timed by the link-level simulation of :mod:`chipletcloud.perf.linksim` on the
system's topology (messages over the links of the chips' fabric and the servers' NICs), which
shares no formula with the analytic model. What is added on top is where the chips sit, who
shares a server uplink, and the actual timing of the pipeline.

What is modelled
----------------
* **Placement.** Chips are numbered server by server (chip ``c`` sits in server
  ``c // chips_per_server``); pipeline stage ``s`` owns chips ``s tp .. s tp + tp - 1`` (``tp`` as
  in :func:`~chipletcloud.perf.analytic.tensor_degree`; left-over chips idle). A tensor group can
  straddle a server boundary even when ``tp <= chips_per_server``, and a stage boundary may or may
  not be a server boundary: both follow from ``tp`` and ``chips_per_server``.
* **Collectives** (:class:`_Links`). The all-reduce of stage ``s`` is
  :func:`chipletcloud.perf.linksim.allreduce` of the chips ``s tp ..`` at their places in their
  servers' fabric (``topology``, ``collective_dims``): the best algorithm of the system's mask
  (``algorithms``), + ``sync_s``. A group that is part of a server runs over the links its chips
  have in the server's fabric; a group over several servers through the NICs. The transfer from
  the last chip of stage ``s`` to the first of stage ``s + 1`` (after the last stage: the next
  tokens' embeddings, ``micro_batch x hidden`` values, back to stage 0, the analytic model's
  ``pp``-th transfer) is :func:`chipletcloud.perf.linksim.transfer_s`: over the fabric inside a
  server, through the NICs between servers, + ``sync_s``. Each collective is simulated alone on
  its links, once per bytes and placement (cached). A group whose fastest schedule may be one
  too large to simulate (thousands of chips over many servers) takes the analytic formula's
  all-reduce instead (:class:`_Links`), counted in :attr:`DesResult.collectives_from_formula`.
* **Contention between groups.** Every server has ONE uplink to the server network with an egress
  and an ingress direction ("ports"). A ring of ``tp`` chips in chip order crosses servers at
  every server change along the ring plus the closing hop (last chip back to the first); each
  crossing uses the source server's egress and the destination's ingress (the ports of every
  server the group spans: those any of its algorithms uses); a stage transfer that
  crosses servers uses the source's egress and the destination's ingress. A port used by two
  flows that can be active at the same time (the all-reduces of two stages whose chips share a
  server, or an all-reduce and a stage transfer) is shared. ``port_policy``: ``"ordered"``
  (default) = one flow at a time per port direction, FIFO (a capacity-1 resource): a flow takes
  its shared ports one by one in a global order (no deadlock) and holds them for its whole
  duration (its linksim time); ``"fair"`` = processor sharing: a port's bandwidth is split equally
  among the flows crossing it, a flow runs at its smallest share, the latency part of a flow (its
  linksim time for 0 bytes) is not shared. Ports used by a single flow are never waited for. This
  is coarser than linksim (a whole collective is one flow): linksim times each collective on an
  empty network, the ports add the waits between different groups.
* **Work.** A stage serves one micro-batch at a time, FIFO. Inside a stage, layer by layer, the ops
  of :func:`~chipletcloud.perf.analytic.layer_ops` in Megatron order: norm, QKV, attention,
  softmax, output projection, all-reduce; norm, MLP in, activation, MLP out, all-reduce. Each op's
  compute and memory phases run on two overlapped engines and the op ends when both are done, i.e.
  ``max(compute, memory)`` + kernel overhead (no double-buffered tiles). The LM head runs on the
  last stage only.
* **Transfers** overlap the stage's next micro-batch (``overlap_transfers=True``, default: the
  link's DMA engine sends while the chips compute) or hold the stage's chips until sent (``False``:
  the analytic model's serial ``T_s`` = compute + transfer).
* **Schedule.** Prefill of all micro-batches first (``micro_batch x prompt`` rows, causal
  attention), then decode token by token at the actual context: the step producing token ``t + 1``
  attends ``prompt + t`` keys, ``t = 1 .. output_tokens - 1``. Micro-batches cycle through the
  pipeline in the DeepSpeed-Inference order: micro-batch k's next token enters stage 0 only after
  its previous token left the last stage and came back to stage 0.

Measured: ``prefill_s`` (the last micro-batch's first token leaves the last stage), ``tpot_s`` (the
decode time after that over ``output_tokens - 1``: the mean time per generated token of the batch)
and ``throughput_tokens_per_s`` = batch x output_tokens / (prefill + decode).

Aggregation and sampling (about 1 s per design point; up to about 15 s for tensor groups of
thousands of chips, whose all-reduces linksim takes seconds to simulate)
-------------------------------------------------------------------------------------------
* A stage whose all-reduce ports are shared with no other flow can be delayed by nothing but its
  own FIFO, so its visit is ONE timeout of the exact summed duration (layers/pp x (the two compute
  segments + the two all-reduces) + LM head). Stages with a shared port run layer by layer, each
  all-reduce taking its ports; between two all-reduces the ops are one timeout (nothing inside a
  chip is shared). A ring is one flow for its whole all-reduce, not one per ring step.
* Decode steps: when the estimated events of all ``output_tokens - 1`` steps exceed
  ``event_budget``, windows of ``w`` (3..8) consecutive steps are simulated, in sequence and each at
  its true context (the pipeline carries its state from window to window): the first ``3 + w``
  steps (the refill after the prefill is transient), evenly spaced middle windows and the last
  ``w + 1`` (the final step drains the pipeline). Skipped steps are interpolated linearly between
  the windows' mean step times; exact when the step time is affine in the context (attention and
  softmax are linear in it) and the pattern of waits repeats.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, fields, replace

import numpy as np
import simpy

from chipletcloud.perf import formulas as fm
from chipletcloud.perf import linksim
from chipletcloud.perf.analytic import collectives, layer_ops, simulate, stage_ops
from chipletcloud.perf.workload import LayerShape, System, Workload

SOURCE = "event-level simulation (perf/des.py)"

#: Default event budget of one design point (about 1 s of simpy on one core).
EVENT_BUDGET = 400_000

_SEG1 = ("qkv", "attention", "softmax", "out_proj")
_SEG2 = ("mlp_in", "activation", "mlp_out")


def _one_row(system: System) -> System:
    """``system`` as a one-row System (accepts a ``take`` row or plain floats)."""
    vals = {f.name: np.asarray(getattr(system, f.name), float).reshape(-1) for f in fields(system)}
    sizes = {v.size for v in vals.values()}
    if sizes != {1}:
        raise ValueError("the event-level simulation takes one design point (a one-row System)")
    return System(**vals)


def _f(x) -> float:
    return float(np.asarray(x, float).reshape(-1)[0])


# --------------------------------------------------------------------------------------------------
# placement


@dataclass(frozen=True)
class Layout:
    """Where every stage sits and which ports its flows use.

    ``ring_crossings[s]`` = the (source server, destination server) hops of stage ``s``'s ring that
    cross servers; ``tx_crossing[s]`` = the (source, destination) servers of the transfer leaving
    stage ``s`` (to ``s + 1``, or back to stage 0 from the last) or None when it stays in a server
    (or ``pp == 1``). ``ring_shared[s]`` / ``tx_shared[s]`` = the ports (``(server, "out"|"in")``)
    of that flow that another flow may use at the same time."""

    pp: int
    tp: int
    chips_per_server: int
    ring_crossings: tuple[tuple[tuple[int, int], ...], ...]
    tx_crossing: tuple[tuple[int, int] | None, ...]
    ring_shared: tuple[tuple[tuple[int, str], ...], ...]
    tx_shared: tuple[tuple[tuple[int, str], ...], ...]

    @property
    def contended_stages(self) -> int:
        return sum(1 for p in self.ring_shared if p)


def _ports(hops) -> set[tuple[int, str]]:
    out: set[tuple[int, str]] = set()
    for a, b in hops:
        out.add((a, "out"))
        out.add((b, "in"))
    return out


def layout(
    pp: int, tp: int, chips_per_server: int, overlap_transfers: bool = True, contention: bool = True
) -> Layout:
    """Placement of ``pp`` stages of ``tp`` chips on servers of ``chips_per_server`` chips.
    ``contention=False`` marks no port as shared (every flow runs at its link's speed)."""
    cps = int(chips_per_server)

    def server(c: int) -> int:
        return c // cps

    rings, txs = [], []
    for s in range(pp):
        a, b = s * tp, s * tp + tp - 1
        sa, sb = server(a), server(b)
        hops = [(i, i + 1) for i in range(sa, sb)] + ([(sb, sa)] if sb > sa else [])
        rings.append(tuple(hops))
        if pp > 1:
            dst = 0 if s == pp - 1 else (s + 1) * tp
            txs.append((server(b), server(dst)) if server(b) != server(dst) else None)
        else:
            txs.append(None)
    # owners of each port; ("ar", s) and ("tx", s) exclude each other when a stage holds its chips
    # during its own transfer
    owners: dict[tuple[int, str], set[tuple[str, int]]] = {}
    for s in range(pp):
        for p in _ports(rings[s]):
            owners.setdefault(p, set()).add(("ar", s))
        if txs[s] is not None:
            for p in _ports([txs[s]]):
                owners.setdefault(p, set()).add(("tx", s))

    def shared(p, me) -> bool:
        if not contention:
            return False
        for o in owners[p]:
            if o == me:
                continue
            if not overlap_transfers and o[1] == me[1]:
                continue  # the same stage's ring and transfer never overlap
            return True
        return False

    ring_shared = tuple(
        tuple(sorted(p for p in _ports(rings[s]) if shared(p, ("ar", s)))) for s in range(pp)
    )
    tx_shared = tuple(
        tuple(sorted(p for p in _ports([txs[s]]) if shared(p, ("tx", s))))
        if txs[s] is not None
        else ()
        for s in range(pp)
    )
    return Layout(pp, tp, cps, tuple(rings), tuple(txs), ring_shared, tx_shared)


# --------------------------------------------------------------------------------------------------
# durations


def _phase_times(system, shape, wl, *, tp, micro_batch, contexts, latency_model):
    """Per phase index j (0 = prefill, 1.. = decode at ``contexts``): (segment 1, segment 2,
    all-reduce bytes, stage-transfer rows) of one layer on one chip."""
    pre = layer_ops(
        system,
        shape,
        wl,
        tp=tp,
        micro_batch=micro_batch,
        phase="prefill",
        latency_model=latency_model,
    )
    out = [_segments(pre, 0) + (micro_batch * wl.prompt_tokens,)]
    if len(contexts):
        # decode at context c: a workload whose mean decode context is c (prompt c - 1/2, 1 token)
        wl_c = replace(wl, prompt_tokens=np.asarray(contexts, float) - 0.5, output_tokens=1)
        dec = layer_ops(
            system,
            shape,
            wl_c,
            tp=tp,
            micro_batch=micro_batch,
            phase="decode",
            latency_model=latency_model,
        )
        for j in range(len(contexts)):
            out.append(_segments(dec, j) + (float(micro_batch),))
    return out


def _segments(ops, j):
    def v(key):
        a = np.asarray(ops[key], float).reshape(-1)
        return float(a[j] if a.size > 1 else a[0])

    seg1 = 0.5 * v("norms") + sum(v(k) for k in _SEG1)
    seg2 = 0.5 * v("norms") + sum(v(k) for k in _SEG2)
    return seg1, seg2, v("allreduce_bytes")


# --------------------------------------------------------------------------------------------------
# the simulation


class _Inbox:
    """FIFO of work items for one process; wakes it when an item arrives."""

    __slots__ = ("items", "waiter")

    def __init__(self):
        self.items: deque = deque()
        self.waiter = None

    def put(self, item):
        self.items.append(item)
        if self.waiter is not None:
            w, self.waiter = self.waiter, None
            w.succeed()


class _Port:
    """One direction of a server's uplink under the ``ordered`` policy: one flow at a time, FIFO
    (a capacity-1 resource that, unlike ``simpy.Resource``, costs no event when it is free)."""

    __slots__ = ("busy", "queue")

    def __init__(self):
        self.busy = False
        self.queue: deque = deque()


class _Flow:
    __slots__ = ("ports", "left", "rate", "since", "done", "version")

    def __init__(self, ports, work, done):
        self.ports = ports
        self.left = work  # seconds of transmission left at the full port bandwidth
        self.rate = 0.0  # share of the port bandwidth it gets now
        self.since = 0.0
        self.done = done
        self.version = 0


class _FairNetwork:
    """Processor sharing of the shared ports: a port's bandwidth is split equally among the flows
    crossing it and a flow runs at its smallest share, min over its ports of 1 / (flows on the
    port). At every flow arrival and departure the rates of the flows sharing a port with it are
    updated (their remaining work carried over) and their completions rescheduled."""

    def __init__(self, env: simpy.Environment):
        self.env = env
        self.users: dict[object, set[_Flow]] = {}

    def start(self, ports, work: float) -> simpy.Event:
        f = _Flow(ports, work, self.env.event())
        f.since = self.env.now
        for p in ports:
            self.users.setdefault(p, set()).add(f)
        self._rebalance(f.ports)
        return f.done

    def _rebalance(self, ports) -> None:
        now = self.env.now
        flows = set().union(*(self.users[p] for p in ports))
        for f in flows:
            f.left = max(f.left - f.rate * (now - f.since), 0.0)
            f.since = now
            f.rate = min(1.0 / len(self.users[p]) for p in f.ports)
            f.version += 1
            ev = self.env.timeout(f.left / f.rate)
            ev.callbacks.append(lambda _e, f=f, v=f.version: self._maybe_finish(f, v))

    def _maybe_finish(self, f: _Flow, version: int) -> None:
        if version != f.version:
            return  # rescheduled since
        f.left, f.rate = 0.0, 0.0
        for p in f.ports:
            self.users[p].discard(f)
        f.done.succeed()
        self._rebalance(f.ports)


class _Links:
    """The seconds of one point's collectives, simulated link by link on the system's topology
    (:mod:`chipletcloud.perf.linksim`, each on an otherwise empty network) and cached per bytes
    and placement: the all-reduce of the tensor group that starts at chip ``start`` and the
    transfer between two chips.

    linksim leaves out the schedules that would take more than ``max_events`` link events
    (groups of thousands of chips over many servers). When one it left out might have been the
    fastest (its lower bound is below the best simulated, :class:`linksim.Collective`
    ``skipped`` / ``hierarchical_skipped``), the all-reduce takes the analytic model's time
    instead (:func:`chipletcloud.perf.analytic.collectives`), counted in ``fallbacks``.
    ``chosen`` collects the algorithms linksim found fastest for the others."""

    def __init__(self, system, servers, tp, pp, latency_model, max_events):
        self.system, self.servers, self.tp, self.pp = system, servers, tp, pp
        self.latency_model, self.max_events = latency_model, max_events
        self.fabric = linksim.Fabric.from_system(system)
        self.cps = self.fabric.chips_per_server
        self.mask = _f(system.algorithms)
        self.cache: dict = {}
        self.fallbacks = 0
        self.chosen: set[str] = set()

    def allreduce(self, nbytes: float, start: int) -> float:
        key = ("ar", float(nbytes), start % self.cps)
        if key not in self.cache:
            group = linksim.stage_group(start % self.cps, self.tp)
            r = linksim.allreduce(self.fabric, nbytes, group, self.mask, self.max_events)
            if math.isnan(r.best_s) or r.skipped or r.hierarchical_skipped:
                self.fallbacks += 1
                ar, _ = collectives(
                    self.system, nbytes, self.servers, self.tp, self.pp, self.latency_model
                )
                self.cache[key] = _f(ar)
            else:
                if r.best is not None:  # None: one chip, nothing to reduce
                    self.chosen.add(r.best)
                self.cache[key] = r.best_s
        return self.cache[key]

    def transfer(self, nbytes: float, src: int, dst: int) -> float:
        cps = self.cps
        a, b = src % cps, dst % cps + (cps if src // cps != dst // cps else 0)
        key = ("tx", float(nbytes), a, b)
        if key not in self.cache:
            self.cache[key] = linksim.transfer_s(self.fabric, nbytes, a, b)
        return self.cache[key]


@dataclass
class DesResult:
    """What one event-level run measured. ``collectives_from_formula``: the (bytes, placement)
    all-reduces that took the analytic formula's time (see :class:`_Links`; 0 when every
    collective was simulated link by link); ``allreduce_algorithms``: the algorithms linksim found
    fastest for the others."""

    prefill_s: float
    tpot_s: float
    total_s: float
    throughput_tokens_per_s: float
    decode_steps: int
    steps_simulated: int
    events: int
    wall_s: float
    port_wait_s: float
    contended_stages: int
    step_times_s: np.ndarray
    step_index: np.ndarray
    collectives_from_formula: int = 0
    allreduce_algorithms: tuple = ()

    @property
    def exact(self) -> bool:
        """Every decode step simulated (no interpolation)."""
        return self.steps_simulated == self.decode_steps


#: Decode steps after the prefill that are still transient (pipeline refilling after the prefill).
_TRANSIENT = 3


def _pick_steps(n_steps: int, per_step: float, budget: float) -> np.ndarray:
    """Decode steps (1-based) to simulate: all when affordable, else windows of ``w`` consecutive
    steps: the head (the transient + ``w``), evenly spaced middle windows and the tail (``w`` + the
    final step, which drains the pipeline)."""
    if n_steps <= 0:
        return np.zeros(0, int)
    affordable = int(budget // max(per_step, 1.0)) - 1
    if affordable >= n_steps:
        return np.arange(1, n_steps + 1)
    w = min(max(affordable // 8, 3), 8)
    head = np.arange(1, _TRANSIENT + w + 1)
    tail = np.arange(n_steps - w, n_steps + 1)
    k = max((affordable - len(head) - len(tail)) // w, 1)
    centers = np.round(np.linspace(head[-1], tail[0], k + 2)[1:-1]).astype(int)
    mids = [np.arange(c - w // 2, c - w // 2 + w) for c in centers]
    steps = np.unique(np.concatenate([head, *mids, tail]))
    return steps[(steps >= 1) & (steps <= n_steps)]


def _decode_total(steps: np.ndarray, dt: np.ndarray, n_steps: int) -> float:
    """Decode time of all ``n_steps`` steps from the simulated ones: their own times, plus the
    skipped steps linearly interpolated between anchors (the mean step and mean time of each run of
    consecutive simulated steps, leaving out the head's transient and the final draining step)."""
    if len(steps) == n_steps:
        return float(dt.sum())
    breaks = np.flatnonzero(np.diff(steps) > 1) + 1
    at, ad = [], []
    for run in np.split(np.arange(len(steps)), breaks):
        t, d = steps[run], dt[run]
        if t[0] == 1 and len(t) > _TRANSIENT:
            t, d = t[_TRANSIENT:], d[_TRANSIENT:]
        if t[-1] == n_steps and len(t) > 1:
            t, d = t[:-1], d[:-1]
        at.append(t.mean())
        ad.append(d.mean())
    skipped = np.setdiff1d(np.arange(1, n_steps + 1), steps)
    return float(dt.sum() + np.interp(skipped, at, ad).sum())


@dataclass(frozen=True)
class DesOptions:
    """How the event-level simulation runs a point: ``overlap_transfers`` (a stage transfer
    overlaps the stage's next micro-batch), ``contention`` (False: every flow uses its links as
    if alone, to isolate the effect of shared server ports), ``port_policy`` (``ordered`` or
    ``fair``), ``event_budget`` (events before decode steps are sampled in windows), the
    ``latency_model`` of the per-op costs and ``link_events``, the most link events one
    collective's schedule may take in :func:`chipletcloud.perf.linksim.allreduce` (larger groups
    fall back to the analytic formula, counted in :attr:`DesResult.collectives_from_formula`)."""

    overlap_transfers: bool = True
    contention: bool = True
    port_policy: str = "ordered"
    event_budget: float = EVENT_BUDGET
    latency_model: str = "isca24"
    link_events: float = linksim.MAX_EVENTS

    def __post_init__(self) -> None:
        if self.port_policy not in ("ordered", "fair"):
            raise ValueError(f"port_policy must be 'ordered' or 'fair', got {self.port_policy!r}")


#: The keywords of :func:`simulate_des` that place the point (the rest are :class:`DesOptions`).
MAPPING_KEYS = ("servers", "pp", "batch", "micro_batch")


def simulate_des(system: System, shape: LayerShape, wl: Workload, **kw) -> DesResult:
    """Event-level run of one design point (see the module docstring). Keywords: the mapping
    (``servers``, ``pp``, ``batch``, ``micro_batch``, as :func:`chipletcloud.perf.analytic.
    simulate` takes them) and any field of :class:`DesOptions`."""
    t_wall = time.perf_counter()
    missing = [k for k in MAPPING_KEYS if k not in kw]
    if missing:
        raise TypeError(f"simulate_des() missing keyword arguments: {', '.join(missing)}")
    servers, pp, batch, micro_batch = (kw.pop(k) for k in MAPPING_KEYS)
    opt = DesOptions(**kw)
    overlap_transfers, contention = opt.overlap_transfers, opt.contention
    port_policy, event_budget, latency_model = opt.port_policy, opt.event_budget, opt.latency_model
    system = _one_row(system)
    servers, pp, batch, m = int(_f(servers)), int(_f(pp)), int(_f(batch)), int(_f(micro_batch))
    cps = int(_f(system.chips_per_server))
    tp = int(_f(fm.tensor_degree(servers, cps, pp)))
    if tp < 1 or shape.num_layers % pp or batch % m:
        raise ValueError(f"invalid mapping: servers={servers} pp={pp} batch={batch} mb={m}")
    n_mb = batch // m
    g = int(wl.output_tokens)
    lay = layout(pp, tp, cps, overlap_transfers, contention)
    layers = shape.num_layers // pp
    act = wl.act_bytes * shape.hidden

    # events per step, to pick the decode steps to simulate
    ev_stage = []
    for s in range(pp):
        ev = 2 + (2 if pp > 1 else 0)
        if lay.ring_shared[s]:
            ev += layers * 4
        ev_stage.append(ev)
    per_step = n_mb * sum(ev_stage)
    steps = _pick_steps(g - 1, per_step, event_budget)
    contexts = wl.prompt_tokens + steps
    seg = _phase_times(
        system,
        shape,
        wl,
        tp=float(tp),
        micro_batch=float(m),
        contexts=contexts,
        latency_model=latency_model,
    )
    head = _f(
        stage_ops(
            system,
            shape,
            wl,
            servers=servers,
            pp=pp,
            tp=float(tp),
            micro_batch=float(m),
            phase="decode",
            latency_model=latency_model,
        )["lm_head"]
    )
    nj = len(seg)
    links = _Links(system, servers, tp, pp, latency_model, opt.link_events)
    # all-reduce of each stage's group and transfer to the next stage, per phase; their latency
    # parts (the time of 0 bytes), which the fair port policy does not share, only when it needs
    fair = port_policy == "fair"
    ar_t, ar_lat = [], []
    for s in range(pp):
        ar_t.append([links.allreduce(seg[j][2], s * tp) for j in range(nj)])
        ar_lat.append(links.allreduce(0.0, s * tp) if fair and lay.ring_shared[s] else 0.0)
    tx_t, tx_lat = [], []
    for s in range(pp):
        src, dst = s * tp + tp - 1, (0 if s == pp - 1 else (s + 1) * tp)
        if pp == 1:
            tx_t.append([0.0] * nj)
        elif s == pp - 1:  # the next tokens back to stage 0: micro_batch rows in every phase
            tx_t.append([links.transfer(m * act, src, dst)] * nj)
        else:
            tx_t.append([links.transfer(seg[j][3] * act, src, dst) for j in range(nj)])
        tx_lat.append(links.transfer(0.0, src, dst) if fair and lay.tx_shared[s] else 0.0)
    visit_t = [
        [
            layers * (seg[j][0] + seg[j][1] + 2 * ar_t[s][j]) + (head if s == pp - 1 else 0.0)
            for j in range(nj)
        ]
        for s in range(pp)
    ]

    env = simpy.Environment()
    ports = {p: _Port() for ps in lay.ring_shared + lay.tx_shared for p in ps}
    ring_ports = [[ports[p] for p in ps] for ps in lay.ring_shared]
    tx_ports = [[ports[p] for p in ps] for ps in lay.tx_shared]
    stats = {"wait": 0.0}
    finish = np.zeros(nj)  # last micro-batch leaving the last stage, per phase index
    stage_in = [_Inbox() for _ in range(pp)]
    link_in = [_Inbox() for _ in range(pp)]

    network = _FairNetwork(env)

    def hold(plist, dur, lat):
        """A flow through shared ports: ``dur`` alone, of which ``lat`` is startup latency."""
        t0 = env.now
        if port_policy == "fair":
            if dur > lat:
                yield network.start(plist, dur - lat)
            if lat > 0:
                yield env.timeout(lat)
            stats["wait"] += env.now - t0 - dur
            return
        # ordered: take the ports one by one in a global order (no deadlock), FIFO per port,
        # holding those already taken while waiting for the next; hold them for the whole flow
        for port in plist:
            if port.busy:
                ev = env.event()
                port.queue.append(ev)
                yield ev  # the releasing flow hands the port over
            else:
                port.busy = True
        stats["wait"] += env.now - t0
        yield env.timeout(dur)
        for port in plist:
            if port.queue:
                port.queue.popleft().succeed()
            else:
                port.busy = False

    def deliver(s, mb, j):
        if s < pp - 1:
            stage_in[s + 1].put((mb, j))
        elif j + 1 < nj:
            stage_in[0].put((mb, j + 1))

    def transfer(s, mb, j):
        if tx_ports[s]:
            yield from hold(tx_ports[s], tx_t[s][j], tx_lat[s])
        else:
            yield env.timeout(tx_t[s][j])
        deliver(s, mb, j)

    def stage(s):
        box = stage_in[s]
        rp = ring_ports[s]
        last = s == pp - 1
        while True:
            while not box.items:
                box.waiter = env.event()
                yield box.waiter
            mb, j = box.items.popleft()
            if rp:
                a, s1, s2 = ar_t[s][j], seg[j][0], seg[j][1]
                for _ in range(layers):
                    yield env.timeout(s1)
                    yield from hold(rp, a, ar_lat[s])
                    yield env.timeout(s2)
                    yield from hold(rp, a, ar_lat[s])
                if last and head:
                    yield env.timeout(head)
            else:
                yield env.timeout(visit_t[s][j])
            if last:
                finish[j] = max(finish[j], env.now)
            if pp == 1:
                deliver(s, mb, j)
            elif overlap_transfers:
                link_in[s].put((mb, j))
            else:
                yield from transfer(s, mb, j)

    def link(s):
        box = link_in[s]
        while True:
            while not box.items:
                box.waiter = env.event()
                yield box.waiter
            mb, j = box.items.popleft()
            yield from transfer(s, mb, j)

    for s in range(pp):
        env.process(stage(s))
        if pp > 1 and overlap_transfers:
            env.process(link(s))
    for k in range(n_mb):
        stage_in[0].put((k, 0))
    events = 0
    while True:  # env.run(), counting the events processed
        try:
            env.step()
        except simpy.core.EmptySchedule:
            break
        events += 1

    prefill = float(finish[0])
    dt = np.diff(finish)  # batch time of each simulated decode step
    if g > 1:
        decode = _decode_total(steps, dt, g - 1)
        tpot = decode / (g - 1)
    else:
        decode, tpot = 0.0, math.nan
    total = prefill + decode
    return DesResult(
        prefill_s=prefill,
        tpot_s=tpot,
        total_s=total,
        throughput_tokens_per_s=batch * g / total,
        decode_steps=max(g - 1, 0),
        steps_simulated=len(steps),
        events=events,
        wall_s=time.perf_counter() - t_wall,
        port_wait_s=stats["wait"],
        contended_stages=lay.contended_stages,
        step_times_s=dt,
        step_index=steps,
        collectives_from_formula=links.fallbacks,
        allreduce_algorithms=tuple(sorted(links.chosen)),
    )


def compare_point(system: System, shape: LayerShape, wl: Workload, **kw) -> dict:
    """The analytic model and the event-level simulation of one point: ``analytic_<q>``,
    ``des_<q>`` and ``error_<q>`` (= analytic / DES - 1) for ``q`` in ``tpot_s``, ``prefill_s``,
    ``throughput_tokens_per_s``; ``analytic_tpot_at_des_context_s`` (the analytic tau at the DES's
    mean decode context prompt + output/2, which isolates the half-token convention of
    :attr:`Workload.mean_decode_context`); and the mapping and run statistics. ``kw``: the
    keyword arguments of :func:`simulate_des` (the mapping and the simulation's options)."""
    system = _one_row(system)
    point = {k: kw[k] for k in MAPPING_KEYS}
    lm = kw.get("latency_model", "isca24")
    servers, pp, batch, micro_batch = point.values()
    ana = simulate(system, shape, wl, latency_model=lm, **point)
    g = wl.output_tokens
    wl_mid = replace(wl, prompt_tokens=wl.prompt_tokens + g / 2.0 - 0.5, output_tokens=1)
    ana_mid = simulate(system, shape, wl_mid, latency_model=lm, **point)
    des = simulate_des(system, shape, wl, **kw)
    out = {
        "servers": int(_f(servers)),
        "chips_per_server": int(_f(system.chips_per_server)),
        "tp": int(_f(ana["tp"])),
        "pp": int(_f(pp)),
        "batch": int(_f(batch)),
        "micro_batch": int(_f(micro_batch)),
    }
    for q, dv in (
        ("tpot_s", des.tpot_s),
        ("prefill_s", des.prefill_s),
        ("throughput_tokens_per_s", des.throughput_tokens_per_s),
    ):
        av = _f(ana[q])
        out[f"analytic_{q}"] = av
        out[f"des_{q}"] = dv
        out[f"error_{q}"] = av / dv - 1.0 if dv and math.isfinite(dv) else math.nan
    out["analytic_tpot_at_des_context_s"] = _f(ana_mid["tpot_s"])
    out.update(
        des_exact=des.exact,
        des_steps_simulated=des.steps_simulated,
        des_events=des.events,
        des_wall_s=des.wall_s,
        des_port_wait_s=des.port_wait_s,
        contended_stages=des.contended_stages,
        des_collectives_from_formula=des.collectives_from_formula,
        des_allreduce_algorithms=",".join(des.allreduce_algorithms),
    )
    return out
