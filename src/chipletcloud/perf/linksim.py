"""Link-level discrete-event simulation of one collective on an explicit topology graph.

This module is a check of the analytic collective model (:func:`chipletcloud.perf.formulas.
allreduce_fabric_s` and :func:`~chipletcloud.perf.formulas.collectives_s`), written without it:
no closed form of a collective appears here. An all-reduce is a schedule of messages with
dependencies (a chip forwards a chunk only after it has received what it reduces into it), and its
time is when the last message arrives after moving over the links of the graph.

Units: seconds, bytes, bytes/s.

The graph (:class:`Network`)
----------------------------
* **Chips of one server** (``chips_per_server`` of them) on the server's fabric, a code of
  :data:`chipletcloud.perf.codes.TOPOLOGIES`:

  - ``ring``: chip ``c`` linked to ``c - 1`` and ``c + 1`` (mod n), 2 links a chip;
  - ``mesh2d`` / ``torus2d``: a grid of ``dims`` dimensions (``collective_dims``, 2 for these
    fabrics) with sides as equal as the chip count allows (:func:`grid_sides`; a prime count is a
    1 x n grid), local index ``c`` at coordinates ``c`` in mixed radix, the first (longest) side
    varying fastest; one link a direction a dimension, with wrap-around links on the torus only.
    A chip has 2 ``dims`` ports (fewer are connected at mesh edges or along a side of 1);
  - ``full``: a direct link from every chip to every other, n - 1 links a chip;
  - ``switch``: chip -> switch -> chip; one uplink and one downlink a chip.

  Each link of a chip carries ``chip_link_bw`` (what the chip injects, all its links together)
  divided by its port count: / 2 on a ring, / (2 dims) on a mesh or torus (a port's bandwidth does
  not grow at a mesh edge), / (n - 1) on a full fabric, the whole of it into a switch. Every hop
  costs ``hop_s``; through a switch, chip -> switch -> chip is one hop (the uplink carries the
  latency, the downlink none).
* **Servers** hang off one network switch through ``nics_per_server`` NICs each, chip ``c`` of a
  server using NIC ``c mod nics``. A message between servers takes chip -> NIC (``chip_link_bw``),
  NIC -> network switch (``server_link_bw``, the traversal latency ``net_hop_s``: NIC, switch,
  NIC), switch -> NIC (``server_link_bw``) and NIC -> chip (``chip_link_bw``). A server's uplink
  is thus ``server_link_bw`` x NICs in all, of which a group of g chips of the server reaches
  min(g, NICs) NICs. The chip -> NIC link is separate from the chip's fabric links.

Message model
-------------
Routes are minimal and dimension-ordered (first dimension first; on a ring or torus the shorter
way round, a tie broken by the sender's preferred direction); between servers through the NICs.
A message of B bytes is virtual cut-through at chunk granularity (no packets): it occupies each
link of its path for B / link bandwidth (and no less than its tail takes to arrive from the
previous link); a link serves one message at a time and the others wait, in the order of
:data:`ARBITRATIONS` (default: by logical step); a waiting message sits in the router's buffer
(infinite buffers, no back-pressure on the links behind it). Uncontended, a message starting at t
arrives at t + hops x hop latency + B / bandwidth. A message starts when every message it depends
on has arrived; reductions and copies inside a chip take no time.

Algorithms (the bits of :data:`chipletcloud.perf.codes.ALGORITHMS`)
--------------------------------------------------------------------
* ``ring``: reduce-scatter then all-gather, 2 (k - 1) steps of k-th chunks to the ring
  neighbour. The data is split into two halves that rotate in opposite directions (one direction
  through a switch, where both would share the chip's one uplink). A group that is a whole
  server's mesh or torus runs the rings dimension by dimension, and its data is also split into
  one part a dimension, part p taking the dimensions in the order p, p + 1, ... so that the parts
  use different links at the same time. Each (part, direction) is an independent stream that
  moves on to its next dimension as soon as its own data is reduced. A line of a mesh has no
  wrap-around link: the ring's closing message walks back over the line. Any other group (part of
  a server, or several servers) runs one ring over its chips in chip order, each step routed over
  the graph.
* ``recursive_doubling``: ceil/floor log2 exchanges of the whole message with partner
  rank xor 2^k; for a group that is not a power of two, the ranks beyond the largest power of two
  p first send their data to rank - p and get the result back at the end (Thakur, Rabenseifner
  and Gropp, IJHPCA 2005).
* ``one_shot``: every chip sends its whole message to every other at once (to rank + 1, + 2, ...
  in that order) and reduces locally.
* ``two_shot``: direct reduce-scatter (chunk j to chip j) then direct all-gather.
* ``hierarchical`` (groups over several servers with as many chips in each): a reduce-scatter
  inside each server (ring or direct), an all-reduce of each chip's shard with the chips of the
  same rank in the other servers (ring, recursive doubling, one-shot or two-shot, all shards at
  once through the NICs), and an all-gather inside each server, a chip moving on to the next
  phase as soon as its data is ready (one simulation of the whole); the best of the allowed
  combinations.

The collective's time is the best allowed algorithm plus the fixed ``sync_s`` once.

What this captures that the analytic formula does not
-----------------------------------------------------
* contention where multi-hop paths share links: recursive-doubling partners 2^k hops apart on a
  ring or torus (2^k messages on a link at once), one-shot and two-shot traffic on multi-hop
  fabrics, the closing message of a ring along a mesh line, a server's NICs shared by the shards
  (unevenly when the NICs do not divide the chips);
* the real grid: uneven sides (n not a square, or prime: a 1 x n grid), a group that is only a
  part of a server's fabric (its ring runs over the links its chips actually have), mesh edges,
  the per-link bandwidth of a full fabric (1 / (n - 1) of the chip's);
* non-power-of-two recursive doubling (two extra one-way steps);
* asynchronous progress: a step starts when its data arrives, not in lock-step (a flat ring over
  servers pays the server traversal only on the steps that cross servers, where the formula makes
  every step wait for the slower hop), and the two directions of a ring overlap;
* a point-to-point transfer over the fabric's links, striped over the minimal routes and, when
  that is faster, the source's other links (:func:`transfer_s`), rather than at the whole
  injection bandwidth.

What it leaves out: packets, flow control and back-pressure, adaptive or non-minimal routing
(but for the stripes of a transfer), the time of the reduction arithmetic, several edge-disjoint
rings (a ring over a full fabric uses 2 of its n - 1 links a chip), the switch's internal
contention (it is non-blocking), and other traffic (each collective runs on an empty network;
:mod:`chipletcloud.perf.des` adds the sharing of server uplinks between groups).

Cost: one event per message per hop and one per join, in pure Python (about 1-2 us each). A
schedule whose estimated events exceed ``max_events`` (default :data:`MAX_EVENTS`) is not
simulated, nor any once all together would exceed four times that; nor one over several servers
whose lower bound (:func:`_flat_lower_bound`, :func:`_across_lower_bound`: its chain of steps
and the bytes its busiest NIC must carry) exceeds the best simulated, since it cannot win. The
schedules left out that might have won are reported (:class:`Collective`).
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from itertools import permutations

from chipletcloud.perf.codes import ALGORITHMS, FULL, MESH2D, RING_TOPOLOGY, SWITCH, TOPOLOGIES

#: The algorithms in code order (names of :data:`chipletcloud.perf.codes.ALGORITHMS`).
ALGORITHM_NAMES = tuple(ALGORITHMS)
#: The algorithms a group inside one server or a flat group over several servers can run.
FLAT_ALGORITHMS = ("ring", "recursive_doubling", "one_shot", "two_shot")
#: How a link orders the messages that want it (:meth:`_Sim.run`): ``step`` (default) serves
#: them in a fixed order, by logical arrival time (the hops along the longest chain of
#: dependencies and links before the message reaches the link: the order they would arrive in
#: with zero bytes and equal hop latencies), then by the order the schedule issued them; a message
#: waits for its turn even when the link is idle. Every time is then a max-plus expression of
#: the sizes and latencies, so the simulation is deterministic and monotone (more bytes or
#: latency never make it faster).
#: ``fifo``: first come first served by the arrival of the message's head (an event queue), which
#: fills idle links greedily but, like any greedy list schedule, can finish earlier when a message
#: is slowed (a ring all-reduce of 1 MB on a 4 x 4 mesh is 6% faster with twice the hop latency;
#: up to a quarter in random cases), and whose order hangs on ties in floating point. Both agree
#: wherever every link's messages arrive in that order, as in the cases the analytic formula
#: claims exact; on 300 random cases the best algorithm's time differs by -13% .. +30%, the
#: median 0.
ARBITRATIONS = ("step", "fifo")
#: Default bound on the link events (message hops and joins) of one schedule :func:`allreduce`
#: simulates (about 2 s of Python); all its schedules together may take four times that.
MAX_EVENTS = 1_500_000


def grid_sides(n: int, dims: int) -> tuple[int, ...]:
    """Sides of a grid of ``n`` chips in ``dims`` dimensions, as equal as possible (the smallest
    largest side, then the largest smallest side), longest first: 8 -> (4, 2), 12 -> (4, 3),
    7 -> (7, 1), 64 in 3-D -> (4, 4, 4)."""
    n, dims = int(n), max(int(dims), 1)

    def factorings(m, k, lo):
        if k == 1:
            if m >= lo:
                yield (m,)
            return
        f = lo
        while f**k <= m:
            if m % f == 0:
                for rest in factorings(m // f, k - 1, f):
                    yield (f, *rest)
            f += 1

    best = min(factorings(n, dims, 1), key=lambda s: (max(s), -min(s)))
    return tuple(sorted(best, reverse=True))


# --------------------------------------------------------------------------------------------------
# the graph


@dataclass(frozen=True)
class Fabric:
    """The parameters of the graph (see the module docstring). ``topology`` a code or name of
    :data:`chipletcloud.perf.codes.TOPOLOGIES`, ``dims`` the grid dimensions of a mesh or torus
    (ignored otherwise), ``chip_link_bw`` a chip's injection bandwidth in B/s (all its fabric
    links), ``server_link_bw`` one NIC's in B/s, ``hop_s`` one chip hop, ``net_hop_s`` one
    server-to-server traversal and ``sync_s`` the fixed cost of a collective, in seconds."""

    chips_per_server: int
    topology: int = RING_TOPOLOGY
    dims: int = 1
    chip_link_bw: float = 1.0
    server_link_bw: float = 1.0
    nics_per_server: int = 1
    hop_s: float = 0.0
    net_hop_s: float = 0.0
    sync_s: float = 0.0

    def __post_init__(self) -> None:
        topo = self.topology
        topo = TOPOLOGIES[topo] if isinstance(topo, str) else int(round(float(topo)))
        if topo not in TOPOLOGIES.values():
            raise ValueError(f"unknown topology code {self.topology!r}")
        object.__setattr__(self, "topology", topo)
        object.__setattr__(self, "chips_per_server", int(self.chips_per_server))
        object.__setattr__(self, "nics_per_server", max(int(self.nics_per_server), 1))
        dims = 1 if topo == RING_TOPOLOGY else max(int(round(float(self.dims))), 1)
        object.__setattr__(self, "dims", dims)
        if self.chips_per_server < 1:
            raise ValueError("chips_per_server must be at least 1")

    @property
    def grid(self) -> bool:
        """A ring, mesh or torus (the fabrics with coordinates)."""
        return self.topology < FULL

    @property
    def sides(self) -> tuple[int, ...]:
        if self.topology == RING_TOPOLOGY:
            return (self.chips_per_server,)
        return grid_sides(self.chips_per_server, self.dims)

    @classmethod
    def from_system(cls, system) -> Fabric:
        """The fabric of a one-row :class:`chipletcloud.perf.workload.System`."""

        def f(name):
            v = getattr(system, name)
            try:
                return float(v.reshape(-1)[0])
            except AttributeError:
                return float(v)

        return cls(
            chips_per_server=int(f("chips_per_server")),
            topology=int(f("topology")),
            dims=int(round(f("collective_dims"))),
            chip_link_bw=f("chip_link_bw"),
            server_link_bw=f("server_link_bw"),
            nics_per_server=int(f("nics_per_server")),
            hop_s=f("hop_latency_s"),
            net_hop_s=f("net_hop_s"),
            sync_s=f("sync_s"),
        )


class Network:
    """The directed links of ``servers`` servers of ``fabric`` (chips ``0 .. servers x cps - 1``,
    server by server): per link its bandwidth (B/s), latency (s) and end nodes; and minimal
    routes (tuples of link ids) between chips."""

    def __init__(self, fabric: Fabric, servers: int):
        self.fabric = fab = fabric
        self.servers = servers = int(servers)
        cps = fab.chips_per_server
        self.n_chips = n = servers * cps
        self.bw: list[float] = []
        self.lat: list[float] = []
        self.dst: list[int] = []
        self.ports: list[dict] = [{} for _ in range(n)]  # chip -> {port key: link}
        self._routes: dict = {}
        nodes = n
        if fab.grid:
            self.sides = fab.sides
            self.wrap = fab.topology != MESH2D
            per = fab.chip_link_bw / (2 * len(self.sides))
            for c in range(n):
                base, x = c - c % cps, self.coords(c % cps)
                for d, k in enumerate(self.sides):
                    if k == 1:
                        continue
                    for step in (1, -1):
                        y = x[d] + step
                        if not 0 <= y < k:
                            if not self.wrap:
                                continue
                            y %= k
                        nb = base + self.local(x[:d] + (y,) + x[d + 1 :])
                        self.ports[c][(d, step)] = self._link(c, nb, per, fab.hop_s)
        elif fab.topology == FULL:
            per = fab.chip_link_bw / max(cps - 1, 1)
            for c in range(n):
                base = c - c % cps
                for j in range(cps):
                    if base + j != c:
                        self.ports[c][j] = self._link(c, base + j, per, fab.hop_s)
        else:  # switch
            self.down = [0] * n
            for s in range(servers):
                sw = nodes
                nodes += 1
                for c in range(s * cps, (s + 1) * cps):
                    self.ports[c]["up"] = self._link(c, sw, fab.chip_link_bw, fab.hop_s)
                    self.down[c] = self._link(sw, c, fab.chip_link_bw, 0.0)
        if servers > 1:
            nics = fab.nics_per_server
            net = nodes
            nodes += 1
            self.nic_up, self.nic_down = [], []
            self.to_nic, self.from_nic = [0] * n, [0] * n
            for s in range(servers):
                ups, downs = [], []
                for i in range(nics):
                    nic = nodes
                    nodes += 1
                    ups.append(self._link(nic, net, fab.server_link_bw, fab.net_hop_s))
                    downs.append(self._link(net, nic, fab.server_link_bw, 0.0))
                    for c in range(s * cps + i, (s + 1) * cps, nics):
                        self.to_nic[c] = self._link(c, nic, fab.chip_link_bw, 0.0)
                        self.from_nic[c] = self._link(nic, c, fab.chip_link_bw, 0.0)
                self.nic_up.append(ups)
                self.nic_down.append(downs)

    def _link(self, a: int, b: int, bw: float, lat: float) -> int:
        self.bw.append(float(bw))
        self.lat.append(float(lat))
        self.dst.append(b)
        return len(self.bw) - 1

    def coords(self, local: int) -> tuple[int, ...]:
        out = []
        for k in self.sides:
            out.append(local % k)
            local //= k
        return tuple(out)

    def local(self, x) -> int:
        c, m = 0, 1
        for xi, k in zip(x, self.sides, strict=True):
            c += xi * m
            m *= k
        return c

    def route(self, a: int, b: int, prefer: int = 1, order=None) -> tuple[int, ...]:
        """Link ids from chip ``a`` to chip ``b``: through the NICs between servers, else the
        minimal route of the fabric, dimensions in ``order`` (default 0, 1, ..), a tie between
        the two ways round a ring or torus dimension taken in direction ``prefer`` (+1 or -1)."""
        key = (a, b, prefer, order)
        r = self._routes.get(key)
        if r is None:
            r = self._routes[key] = self._route(a, b, prefer, order)
        return r

    def _route(self, a, b, prefer, order):
        cps = self.fabric.chips_per_server
        sa, sb = divmod(a, cps)[0], divmod(b, cps)[0]
        if a == b:
            return ()
        if sa != sb:
            na, nb = a % cps % self.fabric.nics_per_server, b % cps % self.fabric.nics_per_server
            return (self.to_nic[a], self.nic_up[sa][na], self.nic_down[sb][nb], self.from_nic[b])
        topo = self.fabric.topology
        if topo == SWITCH:
            return (self.ports[a]["up"], self.down[b])
        if topo == FULL:
            return (self.ports[a][b % cps],)
        path = []
        cur = a
        x, y = self.coords(a % cps), self.coords(b % cps)
        for d in order if order is not None else range(len(self.sides)):
            k = self.sides[d]
            if self.wrap:
                fwd = (y[d] - x[d]) % k
                bwd = k - fwd
                if fwd == 0:
                    continue
                step = 1 if fwd < bwd else -1 if bwd < fwd else prefer
                count = min(fwd, bwd)
            else:
                step = 1 if y[d] > x[d] else -1
                count = abs(y[d] - x[d])
            for _ in range(count):
                link = self.ports[cur][(d, step)]
                path.append(link)
                cur = self.dst[link]
        return tuple(path)

    def paths(self, a: int, b: int) -> list[tuple[int, ...]]:
        """Candidate paths from chip ``a`` to chip ``b`` of one server for a striped transfer:
        every minimal dimension-ordered route (all dimension orders, both ways round at a tie),
        then for each further port of ``a`` that port followed by the minimal route from its far
        end (when it does not come back through ``a``); shortest first."""
        if a // self.fabric.chips_per_server != b // self.fabric.chips_per_server:
            return [self.route(a, b)]
        cands = []
        if self.fabric.grid:
            for order in permutations(range(len(self.sides))):
                for prefer in (1, -1):
                    cands.append(self.route(a, b, prefer, order))
        else:
            cands.append(self.route(a, b))
        firsts = {p[0] for p in cands}
        for link in self.ports[a].values():
            if link in firsts:
                continue
            nb = self.dst[link]
            rest = () if nb == b else self.route(nb, b)
            if all(self.dst[x] != a for x in rest):
                cands.append((link, *rest))
        uniq = list(dict.fromkeys(cands))
        return sorted(uniq, key=len)


# --------------------------------------------------------------------------------------------------
# the event loop


class _Sim:
    """A message schedule on a :class:`Network` and its event loop. A message has a size, a path,
    a release time and dependencies (messages that must have arrived before it starts); a message
    with an empty path is a join (done when its dependencies are, and not before its release)."""

    def __init__(self, net: Network):
        self.net = net
        self.size: list[float] = []
        self.path: list[tuple[int, ...]] = []
        self.deps: list[tuple[int, ...]] = []
        self.release: list[float] = []
        self.done: list[float] = []

    def __len__(self) -> int:
        return len(self.size)

    def send(self, src: int, dst: int, nbytes: float, deps=(), prefer: int = 1) -> int:
        return self.send_path(self.net.route(src, dst, prefer), nbytes, deps)

    def send_path(self, path, nbytes: float, deps=(), release: float = 0.0) -> int:
        self.size.append(float(nbytes))
        self.path.append(tuple(path))
        self.deps.append(tuple(deps))
        self.release.append(float(release))
        return len(self.size) - 1

    def join(self, deps, release: float = 0.0) -> int:
        return self.send_path((), 0.0, deps, release)

    def run(self, arbitration: str = "step") -> float:
        """Seconds from 0 to the last arrival; fills ``done`` (each message's arrival). See
        :data:`ARBITRATIONS` for ``arbitration``."""
        if arbitration == "step":
            return self._run_in_step_order()
        if arbitration != "fifo":
            raise ValueError(f"arbitration must be one of {ARBITRATIONS}, got {arbitration!r}")
        return self._run_fifo()

    def _run_in_step_order(self) -> float:
        n = len(self.size)
        if n == 0:
            return 0.0
        bw, lat = self.net.bw, self.net.lat
        size, path, deps, release = self.size, self.path, self.deps, self.release
        # logical time: hops along the longest dependency chain before the message
        plen = [len(p) for p in path]
        level = [0] * n
        for i in range(n):
            lv = 0
            for d in deps[i]:
                x = level[d] + plen[d]
                if x > lv:
                    lv = x
            level[i] = lv
        top = max(level[i] + len(path[i]) for i in range(n)) + 1
        hops: list[list[int]] = [[] for _ in range(top)]  # message ids a hop at each time
        joins: list[list[int]] = [[] for _ in range(top)]
        for i in range(n):
            if path[i]:
                for h in range(len(path[i])):
                    hops[level[i] + h].append(i)
            else:
                joins[level[i]].append(i)
        done = self.done = [math.nan] * n
        head = [0.0] * n  # when the message's head reaches its next link
        tail = [0.0] * n  # when its tail does
        free = [0.0] * len(bw)

        def ready(i):
            t = release[i]
            for d in deps[i]:
                if done[d] > t:
                    t = done[d]
            return t

        for key in range(top):
            for i in joins[key]:  # in issue order: a join depends on earlier ids only
                done[i] = ready(i)
            for i in hops[key]:
                h = key - level[i]
                if h == 0:
                    head[i] = tail[i] = ready(i)
                p = path[i]
                link = p[h]
                t, f = head[i], free[link]
                start = t if t > f else f
                end = start + size[i] / bw[link]
                if tail[i] > end:
                    end = tail[i]
                free[link] = end
                head[i] = start + lat[link]
                tail[i] = end + lat[link]
                if h + 1 == len(p):
                    done[i] = tail[i]
        return max(done)

    def _run_fifo(self) -> float:
        n = len(self.size)
        if n == 0:
            return 0.0
        bw, lat = self.net.bw, self.net.lat
        size, path = self.size, self.path
        pending = [len(d) for d in self.deps]
        children: list[list[int]] = [[] for _ in range(n)]
        for i, ds in enumerate(self.deps):
            for d in ds:
                children[d].append(i)
        ready = list(self.release)
        done = self.done = [math.nan] * n
        free = [0.0] * len(bw)
        heap: list = []
        push, pop = heapq.heappush, heapq.heappop
        stack: list[int] = []

        def complete(m0, t0):
            done[m0] = t0
            stack.append(m0)
            while stack:
                m = stack.pop()
                t = done[m]
                for c in children[m]:
                    if t > ready[c]:
                        ready[c] = t
                    pending[c] -= 1
                    if pending[c] == 0:
                        if path[c]:
                            push(heap, (ready[c], c, 0, ready[c]))
                        else:
                            done[c] = ready[c]
                            stack.append(c)

        for i in [i for i in range(n) if pending[i] == 0]:
            if path[i]:
                push(heap, (ready[i], i, 0, ready[i]))
            else:
                complete(i, ready[i])
        while heap:
            t, m, h, tail = pop(heap)
            p = path[m]
            link = p[h]
            f = free[link]
            start = t if t > f else f
            end = start + size[m] / bw[link]
            if tail > end:
                end = tail
            free[link] = end
            if h + 1 < len(p):
                push(heap, (start + lat[link], m, h + 1, end + lat[link]))
            else:
                complete(m, end + lat[link])
        if any(pending):
            raise RuntimeError("the schedule has a dependency cycle")
        return max(done)


# --------------------------------------------------------------------------------------------------
# schedules

Deps = dict  # chip -> tuple of message ids its data waits for


def _ring_phase(sim, line, chunk, sigma, steps, first, every):
    """``steps`` steps of a ring over the chips ``line`` in direction ``sigma``: position i sends
    a chunk to i + sigma, after (step 0) ``first[chip]`` or (later) the chunk it received in the
    step before plus ``every[chip]``. Returns the ids each position received, step by step."""
    k = len(line)
    recv = [None] * k
    got: list[list[int]] = [[] for _ in range(k)]
    for t in range(steps):
        new = [0] * k
        for i, c in enumerate(line):
            deps = first[c] if t == 0 else (recv[i], *every.get(c, ()))
            j = (i + sigma) % k
            new[j] = sim.send(c, line[j], chunk, deps, sigma)
            got[j].append(new[j])
        recv = new
    return got


def _ring_dirs(fabric: Fabric) -> tuple[int, ...]:
    return (1,) if fabric.topology == SWITCH else (1, -1)


def _ring_plan(net: Network, chips):
    """Parts of a ring all-reduce: a list (one item a part) of lists (one a dimension, in the
    part's order) of lines (chip lists). A whole server's mesh or torus: one part a dimension of
    side > 1, part p starting at the p-th such dimension; anything else: one part, one ring over
    ``chips`` in order."""
    fab = net.fabric
    cps = fab.chips_per_server
    s0 = chips[0] // cps
    whole = len(chips) == cps and list(chips) == list(range(s0 * cps, (s0 + 1) * cps))
    if not (whole and fab.grid):
        return [[[list(chips)]]]
    active = [d for d, k in enumerate(net.sides) if k > 1]
    lines = {}
    for d in active:
        seen, ls = set(), []
        for c in chips:
            if c in seen:
                continue
            x = net.coords(c % cps)
            line = [s0 * cps + net.local(x[:d] + (i,) + x[d + 1 :]) for i in range(net.sides[d])]
            seen.update(line)
            ls.append(line)
        lines[d] = ls
    return [[lines[d] for d in active[p:] + active[:p]] for p in range(len(active))]


def _streams(plan, dirs):
    """The independent rings of a ring all-reduce: each part of ``plan`` once in each direction,
    each with an equal share of the data."""
    return [(part, sigma) for part in plan for sigma in dirs]


def _ring_sizes(plan, nbytes, dirs):
    """Per stream (:func:`_streams`), the per-chip data of each of its dimension phases (bytes)."""
    streams = _streams(plan, dirs)
    out = []
    for part, _ in streams:
        size, sizes = nbytes / len(streams), []
        for lines in part:
            sizes.append(size)
            size /= len(lines[0])
        out.append(sizes)
    return out


def _ring_rs(sim, plan, nbytes, deps: Deps, dirs):
    """Reduce-scatter phases of ``plan``, dimension by dimension, each stream on its own: per
    stream, the deps of each chip after its last phase."""
    out = []
    streams, all_sizes = _streams(plan, dirs), _ring_sizes(plan, nbytes, dirs)
    for (part, sigma), sizes in zip(streams, all_sizes, strict=True):
        cur = dict(deps)
        for lines, size in zip(part, sizes, strict=True):
            k = len(lines[0])
            nxt = {}
            for line in lines:
                got = _ring_phase(sim, line, size / k, sigma, k - 1, cur, cur)
                for i, c in enumerate(line):
                    nxt[c] = (sim.join((got[i][-1], *cur[c])),)
            cur = nxt
        out.append(cur)
    return out


def _ring_ag(sim, plan, nbytes, deps_per_stream, dirs):
    """All-gather phases of ``plan`` (the reduce-scatter's dimensions in reverse), stream i
    starting from ``deps_per_stream[i]``. Returns the chips' final deps (all streams)."""
    finals: dict[int, list[int]] = {}
    streams, all_sizes = _streams(plan, dirs), _ring_sizes(plan, nbytes, dirs)
    for (part, sigma), sizes, start in zip(streams, all_sizes, deps_per_stream, strict=True):
        cur = dict(start)
        for lines, size in zip(part[::-1], sizes[::-1], strict=True):
            k = len(lines[0])
            nxt = {}
            for line in lines:
                got = _ring_phase(sim, line, size / k, sigma, k - 1, cur, {})
                for i, c in enumerate(line):
                    nxt[c] = (sim.join(got[i] + list(cur[c])),)
            cur = nxt
        for c, d in cur.items():
            finals.setdefault(c, []).extend(d)
    return {c: tuple(d) for c, d in finals.items()}


def _ring(sim, net, chips, nbytes, deps: Deps) -> Deps:
    dirs = _ring_dirs(net.fabric)
    plan = _ring_plan(net, chips)
    return _ring_ag(sim, plan, nbytes, _ring_rs(sim, plan, nbytes, deps, dirs), dirs)


def _prefer(i: int, j: int) -> int:
    return 1 if j > i else -1


def _recursive_doubling(sim, net, chips, nbytes, deps: Deps) -> Deps:
    n = len(chips)
    p = 1 << (n.bit_length() - 1)
    cur = {i: tuple(deps[c]) for i, c in enumerate(chips)}
    for i in range(p, n):  # fold the ranks beyond the largest power of two
        m = sim.send(chips[i], chips[i - p], nbytes, cur[i], _prefer(i, i - p))
        cur[i - p] = (sim.join((m, *cur[i - p])),)
    k = 1
    while k < p:
        new = {}
        for i in range(p):
            j = i ^ k
            m = sim.send(chips[i], chips[j], nbytes, cur[i], _prefer(i, j))
            new[j] = (sim.join((m, *cur[j])),)
        cur.update(new)
        k <<= 1
    for i in range(p, n):
        cur[i] = (sim.send(chips[i - p], chips[i], nbytes, cur[i - p], _prefer(i - p, i)),)
    return {c: cur[i] for i, c in enumerate(chips)}


def _spray(sim, chips, sizes_of, deps_of):
    """Every rank i sends ``sizes_of(i, j)`` bytes to every rank j != i, to i + 1, i + 2, ... in
    that order, after ``deps_of(i)``; the ids each rank received."""
    n = len(chips)
    got: list[list[int]] = [[] for _ in range(n)]
    deps = [deps_of(i) for i in range(n)]
    for k in range(1, n):  # issued distance by distance: rank j hears from j - 1, j - 2, ...
        for i, c in enumerate(chips):
            j = (i + k) % n
            prefer = 1 if i % 2 == 0 else -1
            got[j].append(sim.send(c, chips[j], sizes_of(i, j), deps[i], prefer))
    return got


def _one_shot(sim, net, chips, nbytes, deps: Deps) -> Deps:
    got = _spray(sim, chips, lambda i, j: nbytes, lambda i: deps[chips[i]])
    return {c: (sim.join(got[i] + list(deps[c])),) for i, c in enumerate(chips)}


def _direct_phase(sim, chips, nbytes, deps: Deps) -> Deps:
    """One direct phase over ``chips``: rank i sends an n-th of ``nbytes`` to every other rank
    (reduce-scatter: chunk j to rank j; all-gather: its own chunk to all); a rank is done when all
    its n - 1 chunks have arrived."""
    n = len(chips)
    got = _spray(sim, chips, lambda i, j: nbytes / n, lambda i: deps[chips[i]])
    return {c: (sim.join(got[i] + list(deps[c])),) for i, c in enumerate(chips)}


def _two_shot(sim, net, chips, nbytes, deps: Deps) -> Deps:
    return _direct_phase(sim, chips, nbytes, _direct_phase(sim, chips, nbytes, deps))


_FLAT = {
    "ring": _ring,
    "recursive_doubling": _recursive_doubling,
    "one_shot": _one_shot,
    "two_shot": _two_shot,
}


def _hierarchical(sim, net, per_server, nbytes, intra: str, across: str) -> None:
    """A hierarchical all-reduce: reduce-scatter inside each server (``intra``: ring or
    two_shot), the ``across`` all-reduce of each rank's shard with the same rank of the other
    servers (all ranks at once, through the NICs), all-gather inside each server; a chip moves on
    to the next phase as soon as its data is ready."""
    g, dirs = len(per_server[0]), _ring_dirs(net.fabric)
    deps: Deps = {c: () for chips in per_server for c in chips}
    after: Deps = {}
    plans = [_ring_plan(net, chips) for chips in per_server] if intra == "ring" else None
    for k, chips in enumerate(per_server):
        if g == 1:
            after.update((c, ()) for c in chips)
        elif intra == "ring":
            rs = _ring_rs(sim, plans[k], nbytes, deps, dirs)
            after.update((c, (sim.join([m for r in rs for m in r[c]]),)) for c in chips)
        else:
            after.update(_direct_phase(sim, chips, nbytes, deps))
    reduced: Deps = {}
    for j in range(g):
        reduced.update(
            _FLAT[across](sim, net, [chips[j] for chips in per_server], nbytes / g, after)
        )
    for k, chips in enumerate(per_server):
        if g == 1:
            pass
        elif intra == "ring":
            _ring_ag(sim, plans[k], nbytes, [reduced] * len(_streams(plans[k], dirs)), dirs)
        else:
            _direct_phase(sim, chips, nbytes, reduced)


def _ring_messages(plan, dirs: int) -> int:
    """Messages (with joins) of a ring all-reduce over ``plan``."""
    total = 0
    for part in plan:
        for lines in part:
            k = len(lines[0])
            total += len(lines) * k * (2 * dirs * (k - 1) + 2)
    return total


def _estimate(name: str, n: int, dirs: int, plan=None, hops: float = 1.0) -> float:
    """Link events (message hops, joins counted as one) of a flat schedule over ``n`` chips, to
    skip those over the budget before building them. ``plan``: the ring's (default one ring over
    the ``n`` chips, one hop a step); ``hops``: the mean route length between the group's chips."""
    if name == "ring":
        return _ring_messages(plan or [[[range(n)]]], dirs)
    if name == "recursive_doubling":
        return n * n.bit_length() * (hops + 1)
    if name == "one_shot":
        return n * (n - 1) * hops + n
    return 2 * (n * (n - 1) * hops + n)  # two_shot


def _mean_hops(net: Network, chips) -> float:
    """Mean route length from the group's first chip to the others (an estimate for all)."""
    return sum(len(net.route(chips[0], c)) for c in chips[1:]) / max(len(chips) - 1, 1)


def _estimate_hierarchical(net, per_server, intra: str, across: str, dirs: int) -> float:
    """Link events of :func:`_hierarchical`: an all-reduce's worth inside each server, the
    shards' all-reduces across the servers (4 links a message)."""
    s, g = len(per_server), len(per_server[0])
    local = 0.0
    if g > 1:
        plan = _ring_plan(net, per_server[0]) if intra == "ring" else None
        local = s * _estimate(intra, g, dirs, plan, _mean_hops(net, per_server[0]))
    return local + g * _estimate(across, s, dirs, None, 4.0)


def _across_lower_bound(fabric: Fabric, per_server, nbytes: float, across: str) -> float:
    """A lower bound (s) on a hierarchical all-reduce whose phase between the servers runs
    ``across``, from that phase alone: its chain of one-way steps between servers, each at least
    one traversal (``net_hop_s``), and the bytes that must leave a server through its busiest NIC
    (the ranks it serves x what each sends in the schedule). Used only to leave out schedules that
    cannot be the fastest."""
    s, g = len(per_server), len(per_server[0])
    nics = fabric.nics_per_server
    p = 1 << (s.bit_length() - 1)
    rd_steps = p.bit_length() - 1
    steps = {
        "ring": 2 * (s - 1),
        # the ranks beyond a power of two fold in and out, but the schedule may overlap those
        # steps with the exchange (3 servers of 2 chips: simulated in about 2 traversals, not
        # 1 + 2), so only the exchange's chain is a safe bound
        "recursive_doubling": rd_steps,
        "one_shot": 1,
        "two_shot": 2,
    }[across]
    shard = nbytes / g
    sent = {  # bytes one rank sends to the other servers
        "ring": 2 * (s - 1) / s * shard,
        "recursive_doubling": rd_steps * shard,
        "one_shot": (s - 1) * shard,
        "two_shot": 2 * (s - 1) / s * shard,
    }[across]
    cps = fabric.chips_per_server  # the ranks on the busiest NIC (chip c uses NIC c mod nics)
    ranks = max(sum(1 for c in per_server[0] if c % cps % nics == i) for i in range(nics))
    return max(steps * fabric.net_hop_s, ranks * sent / fabric.server_link_bw)


def _flat_lower_bound(fabric: Fabric, per_server, nbytes: float, name: str) -> float:
    """A lower bound (s) on a flat all-reduce over several servers, from its schedule: the chain
    of steps of a ring or recursive doubling, each at least the smaller of a chip hop and a server
    traversal; the bytes one-shot and two-shot must send through a server's busiest NIC (each of
    its chips sends to every chip of the other servers: all its message, or twice an n-th of
    it); for a ring, the half (or all, through a switch) of 2 (n - 1) / n of the message that
    crosses each server boundary through one NIC."""
    n = sum(len(chips) for chips in per_server)
    cps, nics = fabric.chips_per_server, fabric.nics_per_server
    hop = min(fabric.hop_s, fabric.net_hop_s)
    if name == "ring":
        crossing = 2 * (n - 1) / n * nbytes / len(_ring_dirs(fabric))
        return max(2 * (n - 1) * hop, crossing / fabric.server_link_bw)
    if name == "recursive_doubling":
        return (n.bit_length() - 1) * hop
    share = nbytes if name == "one_shot" else 2 * nbytes / n
    worst = 0.0
    for chips in per_server:
        ranks = max(sum(1 for c in chips if c % cps % nics == i) for i in range(nics))
        worst = max(worst, ranks * (n - len(chips)) * share)
    return worst / fabric.server_link_bw


@dataclass(frozen=True)
class Collective:
    """One simulated all-reduce. ``times``: seconds of each simulated algorithm (``hierarchical``:
    its best intra/across combination, named in ``hierarchical_choice``) from the start to the
    last arrival, without ``sync_s``; ``best`` the fastest allowed, ``best_s`` its time + the
    fabric's ``sync_s`` (0 for one chip). ``skipped``: the allowed algorithms not simulated
    because their schedule would have taken more than ``max_events`` link events, or all
    together more than four times that, and whose lower bound does not rule them out (``best``
    None and ``best_s`` NaN when none could be simulated); ``hierarchical_skipped``: the (intra,
    across) combinations left out so when others were simulated; ``messages``: the messages (and
    joins) simulated in all. ``hierarchical`` is in neither ``times`` nor ``skipped`` for a group
    where it does not apply (one server, or unequal chips a server); no algorithm is in either
    when it was bound to be slower than the best simulated."""

    times: dict = field(default_factory=dict)
    best: str | None = None
    best_s: float = 0.0
    skipped: tuple = ()
    hierarchical_choice: tuple | None = None
    hierarchical_skipped: tuple = ()
    messages: int = 0


def allowed(algorithms) -> tuple[str, ...]:
    """Names of the algorithms a mask (:data:`chipletcloud.perf.codes.ALGORITHMS`) allows."""
    a = int(round(float(algorithms)))
    return tuple(k for k, bit in ALGORITHMS.items() if a & bit)


def mask_of(names) -> int:
    """The mask of algorithm names (the inverse of :func:`allowed`)."""
    return sum(ALGORITHMS[k] for k in set(names))


def allreduce(
    fabric: Fabric,
    nbytes: float,
    chips=None,
    algorithms=31,
    max_events: float = MAX_EVENTS,
    arbitration: str = "step",
) -> Collective:
    """Simulate an all-reduce of ``nbytes`` bytes on every chip of the group ``chips`` (global
    chip ids, server by server; default: all chips of one server) with each algorithm of the mask
    ``algorithms`` (default: all), each on an empty network. ``hierarchical`` applies to groups
    over several servers with equally many chips in each; the flat algorithms to any group. See
    :class:`Collective`."""
    cps = fabric.chips_per_server
    chips = list(range(cps)) if chips is None else [int(c) for c in chips]
    if len(chips) <= 1:
        return Collective(best_s=0.0)
    lo = min(chips) // cps * cps  # the first server of the group becomes server 0
    chips = [c - lo for c in chips]
    names = allowed(algorithms)
    n = len(chips)
    if 2 * n * n.bit_length() > max_events:  # more than any schedule may take: no graph built
        return Collective(best=None, best_s=math.nan, skipped=names)
    by_server: dict[int, list[int]] = {}
    for c in chips:
        by_server.setdefault(c // cps, []).append(c)
    per_server = list(by_server.values())
    multi = len(per_server) > 1
    even = multi and len({len(p) for p in per_server}) == 1
    net = Network(fabric, max(by_server) + 1)
    dirs = len(_ring_dirs(fabric))
    hops = _mean_hops(net, chips)
    # every schedule that applies, the flat ones cheapest first, then the hierarchical ones by a
    # lower bound on their time; one is left out when that bound already exceeds the best
    # simulated (it cannot win), or when it or all together would go over the budget
    cands = []
    for name in names:
        if name != "hierarchical":
            plan = _ring_plan(net, chips) if name == "ring" else None
            cands.append((_estimate(name, n, dirs, plan, hops), name, None))
        elif even:
            for intra in ["ring"] + (["two_shot"] if "two_shot" in names else []):
                for across in (a for a in FLAT_ALGORITHMS if a in names):
                    est = _estimate_hierarchical(net, per_server, intra, across, dirs)
                    cands.append((est, name, (intra, across)))
    times: dict[str, float] = {}
    msgs, spent, choice = 0, 0.0, None
    left_out: list[tuple] = []

    def bound(c):
        est, name, variant = c
        if variant is not None:
            lb = _across_lower_bound(fabric, per_server, nbytes, variant[1])
        else:
            lb = _flat_lower_bound(fabric, per_server, nbytes, name) if multi else 0.0
        return lb, est

    for (lb, est), (_, name, variant) in sorted(((bound(c), c) for c in cands), key=lambda x: x[0]):
        if times and lb >= min(times.values()):
            continue  # cannot be the fastest
        if est > max_events or spent + est > 4 * max_events:
            left_out.append((lb, name, variant))
            continue
        spent += est
        sim = _Sim(net)
        if variant is None:
            _FLAT[name](sim, net, chips, nbytes, {c: () for c in chips})
        else:
            _hierarchical(sim, net, per_server, nbytes, *variant)
        t = sim.run(arbitration)
        msgs += len(sim)
        if name not in times or t < times[name]:
            times[name] = t
            if variant is not None:
                choice = variant
    fastest = min(times.values(), default=math.inf)
    left_out = [(name, v) for lb, name, v in left_out if lb < fastest]  # those that might win
    skipped = list(dict.fromkeys(name for name, _ in left_out if name not in times))
    partly = tuple(v for name, v in left_out if name == "hierarchical" and name in times)
    if not times:
        return Collective(best=None, best_s=math.nan, skipped=tuple(skipped), messages=msgs)
    best = min(times, key=times.get)
    return Collective(
        times=times,
        best=best,
        best_s=times[best] + fabric.sync_s,
        skipped=tuple(skipped),
        hierarchical_choice=choice,
        hierarchical_skipped=partly,
        messages=msgs,
    )


def transfer_s(
    fabric: Fabric, nbytes: float, src: int, dst: int, arbitration: str = "step"
) -> float:
    """Seconds to send ``nbytes`` from chip ``src`` to chip ``dst`` (global ids), + ``sync_s``.
    Between servers: the NIC path. Inside a server: striped in equal parts over the first j
    candidate paths of :meth:`Network.paths` (minimal routes first), the best j; one path through
    a switch. Zero when ``src == dst``."""
    src, dst = int(src), int(dst)
    if src == dst:
        return 0.0
    cps = fabric.chips_per_server
    lo = min(src, dst) // cps
    net = Network(fabric, max(src, dst) // cps - lo + 1)
    a, b = src - lo * cps, dst - lo * cps
    cands = net.paths(a, b)
    best = math.inf
    for j in range(1, len(cands) + 1):
        sim = _Sim(net)
        for p in cands[:j]:
            sim.send_path(p, nbytes / j)
        best = min(best, sim.run(arbitration))
    return best + fabric.sync_s


def stage_group(start: int, tp: int) -> list[int]:
    """The chips of a tensor group that starts at chip ``start`` (chips numbered server by
    server, as :mod:`chipletcloud.perf.des` places the stages)."""
    return list(range(int(start), int(start) + int(tp)))
