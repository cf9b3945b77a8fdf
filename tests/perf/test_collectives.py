"""The collective model (docs/interconnect.md) against hand calculations, and its invariants.

Hand calculations follow the textbook costs (Thakur, Rabenseifner and Gropp, IJHPCA 2005):
ring all-reduce 2 (n - 1) / n x B / bw + 2 (n - 1) hops; recursive doubling log2 n x (B / bw +
hop); one-shot (n - 1) x B / bw + one diameter.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chipletcloud.perf import formulas as fm
from chipletcloud.perf.codes import ALGORITHMS, TOPOLOGIES, algorithm_mask

RING, MESH, TORUS, FULL, SWITCH = (float(TOPOLOGIES[k]) for k in TOPOLOGIES)
ALL = algorithm_mask(list(ALGORITHMS))
ONLY_RING = algorithm_mask(["ring"])


def ar(nbytes, n, bw, hop, topo, dims=1.0, algs=ALL):
    return float(fm.allreduce_fabric_s(nbytes, n, bw, hop, topo, dims, algs))


def test_ring_on_a_ring_by_hand():
    # 4 chips, 1 MB, 1 GB/s, 1 us a hop: 2 x 3/4 x 1 ms + 6 x 1 us
    assert ar(1e6, 4, 1e9, 1e-6, RING, 1.0, ONLY_RING) == pytest.approx(1.5e-3 + 6e-6)


def test_small_message_on_a_switch_takes_one_shot():
    # 8 chips, 1 kB, 100 GB/s, 1 us: one-shot 7 x 10 ns + 1 us beats the ring's 14 hops and
    # recursive doubling's 3
    one_shot = 7 * 1e3 / 1e11 + 1e-6
    assert ar(1e3, 8, 1e11, 1e-6, SWITCH) == pytest.approx(one_shot)
    ring = 2 * 7 / 8 * 1e3 / 1e11 + 14e-6
    assert ar(1e3, 8, 1e11, 1e-6, SWITCH, 1.0, ONLY_RING) == pytest.approx(ring)


def test_large_message_on_a_switch_takes_two_shot():
    # 8 chips, 1 GB: bandwidth decides; the ring and two-shot both move 2 x 7/8 of the buffer
    # (one-shot 7 x), and through a switch two-shot needs 2 hops where the ring needs 14
    two_shot = 2 * 7 / 8 * 1e9 / 1e11 + 2e-6
    assert ar(1e9, 8, 1e11, 1e-6, SWITCH) == pytest.approx(two_shot)
    ring = 2 * 7 / 8 * 1e9 / 1e11 + 14e-6
    assert ar(1e9, 8, 1e11, 1e-6, SWITCH, 1.0, ONLY_RING) == pytest.approx(ring)
    assert ar(1e9, 8, 1e11, 1e-6, SWITCH, 1.0, algorithm_mask(["ring", "one_shot"])) == (
        pytest.approx(ring)
    )


def test_recursive_doubling_by_hand():
    # 16 chips, 64 kB, 50 GB/s, 0.5 us. Through a switch each exchange uses the whole port:
    # 4 x (64 kB / 50 GB/s + 0.5 us) beats the ring's 30 hops.
    algs = algorithm_mask(["ring", "recursive_doubling"])
    rd = 4 * (64e3 / 50e9 + 0.5e-6)
    ring = 2 * 15 / 16 * 64e3 / 50e9 + 30 * 0.5e-6
    assert rd < ring
    assert ar(64e3, 16, 50e9, 0.5e-6, SWITCH, 1.0, algs) == pytest.approx(rd)
    # fully connected: an exchange uses the one link to its partner, 1/15 of the injection
    rd_full = 4 * (64e3 / (50e9 / 15) + 0.5e-6)
    assert ar(64e3, 16, 50e9, 0.5e-6, FULL, 1.0, algs) == pytest.approx(min(rd_full, ring))
    # 12 chips (not a power of two): the 4 ranks beyond 8 fold in and out, 3 + 2 exchanges
    assert float(fm.rd_steps(12.0)) == 5.0 and float(fm.rd_steps(16.0)) == 4.0
    rd12 = 5 * (64e3 / 50e9 + 0.5e-6)
    assert ar(64e3, 12, 50e9, 0.5e-6, SWITCH, 1.0, algs) == pytest.approx(rd12)


def test_small_groups_and_grid_dimensions():
    # 2 or 3 chips on a 2-D torus are a ring; a 2-chip group is one hop apart, not zero
    assert float(fm.grid_dims(2.0, 2.0)) == 1.0 and float(fm.grid_dims(8.0, 3.0)) == 3.0
    assert fm.fabric_hops(2.0, TORUS, 1.0)[0] == 1.0
    two = ar(1e6, 2, 1e10, 1e-6, TORUS, 2.0, ONLY_RING)
    assert two == pytest.approx(2 * 1 / 2 * 1e6 / 1e10 + 2 * 1e-6)


def test_a_group_smaller_than_its_torus_is_a_mesh_block():
    # 16 of a server's 64 torus chips: no wrap-around links, the rings run at half bandwidth
    args = (
        1e6,
        1.0,
        16.0,
        4.0,
        64.0,
        1e10,
        1e9,
        1.0,
        1e-7,
        1e-6,
        0.0,
        TORUS,
        2.0,
        ONLY_RING,
        False,
    )
    a, _ = fm.collectives_s(*args)
    assert float(a) == pytest.approx(ar(1e6, 16, 1e10, 1e-7, MESH, 2.0, ONLY_RING))
    whole = fm.collectives_s(1e6, 1.0, 64.0, 1.0, *args[4:])[0]  # the whole server: a torus
    assert float(whole) == pytest.approx(ar(1e6, 64, 1e10, 1e-7, TORUS, 2.0, ONLY_RING))


def test_torus_and_mesh_by_hand():
    # 16 chips as 4 x 4: bucket along both dimensions 2 x 2 x 3 = 12 hops; the mesh has no
    # wrap-around links, so its rings run at half the bandwidth
    torus = 2 * 15 / 16 * 1e6 / 1e10 + 12 * 1e-7
    mesh = 2 * 15 / 16 * 1e6 / 5e9 + 12 * 1e-7
    assert ar(1e6, 16, 1e10, 1e-7, TORUS, 2.0, ONLY_RING) == pytest.approx(torus)
    assert ar(1e6, 16, 1e10, 1e-7, MESH, 2.0, ONLY_RING) == pytest.approx(mesh)
    # diameters: torus 2 x floor(4 / 2) = 4, mesh 2 x 3 = 6
    assert fm.fabric_hops(16.0, TORUS, 2.0)[0] == 4.0
    assert fm.fabric_hops(16.0, MESH, 2.0)[0] == 6.0


def test_one_chip_costs_nothing():
    assert ar(1e6, 1, 1e9, 1e-6, TORUS, 2.0) == 0.0
    a, t = fm.collectives_s(
        1e6, 1.0, 1.0, 1.0, 8.0, 1e10, 1e9, 1.0, 1e-7, 1e-6, 5e-7, 2.0, 2.0, ALL, False
    )
    assert (float(a), float(t)) == (0.0, 0.0)


def test_hierarchical_across_servers_by_hand():
    # tp 8 over 2 servers of 4 chips on a switch: inside, 4 chips; across, 2 servers through
    # one 10 GB/s NIC each (1 us a traversal); plus 0.5 us of fixed cost
    nbytes, bw_c, hop, bw_s, net, sync = 1e6, 1e11, 1e-7, 1e10, 1e-6, 5e-7
    intra = ar(nbytes, 4, bw_c, hop, SWITCH)
    across = ar(nbytes, 2, bw_s, net, SWITCH)
    flat = 2 * 7 / 8 * nbytes / bw_s + 14 * net
    a, _ = fm.collectives_s(
        nbytes, 2.0, 8.0, 1.0, 4.0, bw_c, bw_s, 1.0, hop, net, sync, SWITCH, 1.0, ALL, False
    )
    assert float(a) == pytest.approx(min(intra + across, flat) + sync)
    assert intra + across < flat
    # without the hierarchical algorithm: the flat ring
    no_h = algorithm_mask(["ring", "recursive_doubling", "one_shot", "two_shot"])
    a, _ = fm.collectives_s(
        nbytes, 2.0, 8.0, 1.0, 4.0, bw_c, bw_s, 1.0, hop, net, sync, SWITCH, 1.0, no_h, False
    )
    assert float(a) == pytest.approx(flat + sync)


def test_stage_transfer_by_hand():
    # inside one server: one chip hop; across servers: the network hop and the slower link
    _, t_in = fm.collectives_s(
        1e6, 1.0, 4.0, 2.0, 8.0, 1e10, 1e9, 1.0, 1e-7, 1e-6, 5e-7, SWITCH, 1.0, ALL, False
    )
    _, t_out = fm.collectives_s(
        1e6, 2.0, 4.0, 4.0, 8.0, 1e10, 1e9, 1.0, 1e-7, 1e-6, 5e-7, SWITCH, 1.0, ALL, False
    )
    assert float(t_in) == pytest.approx(1e6 / 1e10 + 1e-7 + 5e-7)
    assert float(t_out) == pytest.approx(1e6 / 1e9 + 1e-6 + 5e-7)


@pytest.mark.parametrize(
    ("cps", "tp", "pp", "want"),
    [
        (8.0, 4.0, 2.0, (4.0, 1.0, 1.0)),  # two groups a server
        (8.0, 16.0, 1.0, (8.0, 2.0, 1.0)),  # whole servers
        (8.0, 12.0, 2.0, (12.0 / 3.0, 3.0, 2.0)),  # straddles: 2 + 1 servers, shared uplinks
        (8.0, 3.0, 4.0, (1.5, 2.0, 2.0)),  # 3 does not divide 8 and 12 chips exceed a server
        (8.0, 3.0, 2.0, (3.0, 1.0, 1.0)),  # all stages in one server
    ],
)
def test_tensor_placement(cps, tp, pp, want):
    assert tuple(float(x) for x in fm.tensor_placement(cps, tp, pp)) == pytest.approx(want)


def test_reduce_scatter_and_all_to_all_by_hand():
    # reduce-scatter on a ring of 4: (3/4) x 1 MB / 1 GB/s + 3 hops
    rs = fm.reduce_scatter_fabric_s(1e6, 4.0, 1e9, 1e-6, RING, 1.0, ONLY_RING)
    assert float(rs) == pytest.approx(0.75e-3 + 3e-6)
    # all-to-all on a switch of 8: 7/8 x 1 MB / 100 GB/s + one hop
    a2a = fm.all_to_all_fabric_s(1e6, 8.0, 1e11, 1e-6, SWITCH, 1.0)
    assert float(a2a) == pytest.approx(7 / 8 * 1e6 / 1e11 + 1e-6)


def test_whole_heads():
    assert bool(fm.tensor_degree_valid(12.0, 96.0, 1.0))
    assert not bool(fm.tensor_degree_valid(7.0, 96.0, 1.0))
    assert bool(fm.tensor_degree_valid(7.0, 96.0, 0.0))  # fractions of a head allowed
    assert not bool(fm.tensor_degree_valid(0.0, 96.0, 0.0))


def test_v1_keeps_the_v1_ring():
    # the v1 model: rings only at 2 (n - 1) start-ups on its link rule, no fixed cost
    a, t = fm.collectives_s(
        1e6, 2.0, 4.0, 2.0, 8.0, 1e10, 1e9, 1.0, 1e-10, 5e-6, 1e-6, TORUS, 2.0, ALL, True
    )
    assert float(a) == pytest.approx(2 * 3 / 4 * 1e6 / 1e10 + 6e-10)
    assert float(t) == pytest.approx(1e6 / 1e10 + 1e-10)


sizes = st.floats(1e2, 1e9)
chips = st.integers(1, 512).map(float)
topos = st.sampled_from([RING, MESH, TORUS, FULL, SWITCH])
masks = st.integers(0, 31).map(lambda m: float(m | 1))


@settings(max_examples=200, deadline=None)
@given(b=sizes, n=chips, topo=topos, mask=masks, hop=st.floats(0, 5e-6), k=st.floats(1.0, 10.0))
def test_more_bytes_or_more_latency_is_never_faster(b, n, topo, mask, hop, k):
    dims = 2.0 if topo in (MESH, TORUS) else 1.0
    base = ar(b, n, 1e10, hop, topo, dims, mask)
    assert ar(b * k, n, 1e10, hop, topo, dims, mask) >= base * (1 - 1e-12)
    assert ar(b, n, 1e10, hop * k + 1e-9, topo, dims, mask) >= base * (1 - 1e-12)
    assert ar(b, n, 1e10 / k, hop, topo, dims, mask) >= base * (1 - 1e-12)


@settings(max_examples=200, deadline=None)
@given(b=sizes, n=chips, topo=topos, mask=masks, extra=st.sampled_from([2, 4, 8, 16]))
def test_allowing_an_algorithm_never_makes_it_slower(b, n, topo, mask, extra):
    dims = 2.0 if topo in (MESH, TORUS) else 1.0
    with_more = ar(b, n, 1e10, 1e-7, topo, dims, float(int(mask) | extra))
    assert with_more <= ar(b, n, 1e10, 1e-7, topo, dims, mask) * (1 + 1e-12)
    ring_only = ar(b, n, 1e10, 1e-7, topo, dims, ONLY_RING)
    assert with_more <= ring_only * (1 + 1e-12)
    assert math.isfinite(with_more) and with_more >= 0.0


@settings(max_examples=100, deadline=None)
@given(
    b=sizes,
    tp=st.integers(1, 600).map(float),
    pp=st.integers(1, 96).map(float),
    cps=st.sampled_from([8.0, 16.0, 36.0, 72.0, 144.0]),
    net=st.floats(0, 5e-6),
)
def test_a_slower_network_never_speeds_a_tensor_group(b, tp, pp, cps, net):
    args = dict(nbytes=b, servers=max(tp * pp / cps, 1.0), tp=tp, pp=pp, chips_per_server=cps)
    common = (1e10, 1e9, 1.0, 1e-7)
    fast_a, _ = fm.collectives_s(*args.values(), *common, net, 5e-7, TORUS, 2.0, ALL, False)
    slow_a, _ = fm.collectives_s(
        *args.values(), *common, net * 2 + 1e-7, 5e-7, TORUS, 2.0, ALL, False
    )
    assert float(slow_a) >= float(fast_a) * (1 - 1e-12)
    assert np.isfinite(float(fast_a))


def test_no_piece_is_smaller_than_a_packet():
    # 1,000 chips on a switch share a 1 kB buffer: pieces of 1 B travel as 64 B packets.
    # Two-shot: 2 x 999 x 64 B / 100 GB/s + 2 hops; without the floor it would move 2 kB only.
    want = min(
        2 * 999 * 64 / 1e11 + 2e-6,  # two-shot
        10 * (1e3 / 1e11 + 1e-6),  # recursive doubling, whole buffers of 1 kB
    )
    got = fm.allreduce_fabric_s(1e3, 1000.0, 1e11, 1e-6, SWITCH, 1.0, ALL, 64.0)
    assert float(got) == pytest.approx(want)
    assert float(fm.allreduce_fabric_s(1e3, 1000.0, 1e11, 1e-6, SWITCH, 1.0, ALL, 0.0)) < want


def test_large_groups_climb_switch_tiers():
    # 128 servers of 4 chips through one 10 GB/s NIC each: more than a 64-port switch, so each
    # traversal between servers climbs 2 more tiers of 0.5 us
    args = (1e6, 128.0, 512.0, 1.0, 4.0, 1e11, 1e10, 1.0, 1e-7, 1e-6, 0.0, SWITCH, 1.0, ALL, False)
    near, _ = fm.collectives_s(*args, 0.0, 1e9, 0.5e-6)  # a switch with enough ports
    far, _ = fm.collectives_s(*args, 0.0, 64.0, 0.5e-6)
    across_near = fm.allreduce_fabric_s(1e6, 128.0, 1e10, 1e-6, SWITCH, 1.0, ALL)
    across_far = fm.allreduce_fabric_s(1e6, 128.0, 1e10, 2e-6, SWITCH, 1.0, ALL)
    assert float(far) - float(near) == pytest.approx(float(across_far - across_near))
    assert float(far) > float(near)
