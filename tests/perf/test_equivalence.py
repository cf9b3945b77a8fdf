"""The numba fast path against the numpy reference, formula by formula and switch by switch.

Every formula of :mod:`chipletcloud.perf.formulas` is compiled by :mod:`chipletcloud.perf.fast`;
here each compiled formula, called one point at a time on scalars, must give what the numpy
version gives on arrays, on random inputs that cover every branch (latency model, power source,
one or several servers and stages, straddling tensor groups, ring or torus collectives, MoE or
dense, KV in capacity or not). The whole search point is compared in ``tests/test_software.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chipletcloud.perf import fast
from chipletcloud.perf import formulas as fm


def _args(name: str, rng: np.random.Generator, n: int) -> tuple:
    """Random arguments (arrays of ``n``) for formula ``name``, with every switch exercised."""
    u = lambda lo, hi: rng.uniform(lo, hi, n)  # noqa: E731
    ints = lambda lo, hi: rng.integers(lo, hi, n).astype(float)  # noqa: E731
    flag = lambda: rng.integers(0, 2, n).astype(bool)  # noqa: E731
    cps = rng.choice([8.0, 16.0, 24.0, 36.0, 144.0], n)
    tp = np.where(flag(), rng.choice([1.0, 2.0, 4.0, 8.0, 16.0], n), ints(1, 600))
    pp = np.where(flag(), 1.0, ints(2, 97))
    experts = np.where(flag(), 0.0, rng.choice([8.0, 64.0, 256.0], n))
    top_k = np.where(experts == 0, 0.0, rng.choice([1.0, 2.0, 8.0], n))
    dims = lambda: rng.choice([1.0, 2.0, 3.0], n)  # noqa: E731
    packets = lambda: rng.choice([0.0, 64.0, 1e5], n)  # noqa: E731

    def fabric(chips_hi=300):
        """(chips, injection bandwidth, hop, topology, dimensions) of one fabric."""
        return (
            np.where(flag(), 1.0, ints(2, chips_hi)),
            u(1e9, 1e11),
            u(0, 5e-6),
            ints(0, 5),
            dims(),
        )

    def network():
        """The interconnect columns of a collective plan, servers to algorithms."""
        return (
            np.where(flag(), 1.0, ints(2, 200)), tp, pp, cps, u(1e9, 1e11), u(1e9, 1e11),
            rng.choice([1.0, 8.0], n), u(0, 5e-6), u(0, 5e-6), u(0, 2e-6), ints(0, 5), dims(),
            ints(1, 32),
        )  # fmt: skip

    table = {
        "stage_layers": (ints(1, 128), pp, rng.choice([1.0, 3.0], n)),
        "tensor_degree": (ints(1, 200), cps, pp),
        "servers_for": (ints(1, 500), rng.choice([1.0, 1.25, 1.5, 3.0, 8.0], n)),
        "kv_heads_per_chip": (ints(1, 129), rng.choice([1.0, 2.0, 8.0, 96.0], n), tp),
        "kv_read_heads_per_chip": (
            rng.choice([8.0, 48.0, 96.0, 232.0], n),
            rng.choice([1.0, 8.0], n),
            tp,
            flag().astype(float),
            flag().astype(float),
            rng.choice([1.0, 2.0, 12.0], n),
        ),
        "gcd": (ints(1, 300), ints(1, 300)),
        "chip_kv_heads": (
            rng.choice([12.0, 48.0, 64.0, 232.0], n),
            rng.choice([1.0, 4.0, 8.0], n),
            rng.choice([1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 16.0, 29.0, 58.0], n),
            flag().astype(float),
        ),
        "kv_split_chips": (
            rng.choice([48.0, 64.0, 96.0], n),
            rng.choice([1.0, 8.0, 96.0], n),
            tp,
            flag().astype(float),
        ),
        "sequences_per_chip": (ints(1, 1025), rng.choice([1.0, 3.0, 8.0, 22.0], n)),
        "balanced_stage_layers": (
            ints(1, 128),
            np.where(flag(), pp, ints(1, 130)),
            rng.choice([1.0, 3.0], n),
            rng.choice([0.0, 0.34, 1.05, 2.5], n),
            flag().astype(float),
        ),
        "stage_memory": (
            u(1, 50),
            u(0, 50),
            u(1e6, 1e10),
            u(0, 1e9),
            u(0, 5e8),
            u(0, 5e8),
            pp,
            tp,
            u(0.3, 2),
            u(0, 1e8),
            flag().astype(float),
        ),
        "kv_all_to_all_s": (
            u(1e2, 1e7),
            rng.choice([1.0, 2.0, 8.0, 48.0, 160.0], n),
            tp,
            pp,
            cps,
            u(1e9, 1e11),
            u(1e9, 1e11),
            rng.choice([1.0, 8.0], n),
            u(0, 5e-6),
            u(0, 5e-6),
            u(0, 2e-6),
            ints(0, 5),
            dims(),
            packets(),
        ),
        "prefill_pairs": (ints(1, 4096), flag().astype(float)),
        "kv_energy_share": (rng.choice([1.0, 4.0, 64.0], n), flag().astype(float)),
        "mlp_params_read": (
            u(1e6, 1e9),
            np.where(flag(), 0.0, u(0.1, 1.0)),
            u(1e5, 1e8),
            experts,
            top_k,
            ints(1, 100_000),
        ),
        "weight_bytes_per_chip": (u(1, 50), u(1e6, 1e10), u(0, 1e9), u(0, 5e8), pp, tp, u(0.3, 2)),
        "kv_bytes_per_chip": (
            u(1, 50),
            ints(1, 1025),
            ints(1, 8192),
            ints(16, 257),
            u(0.01, 96),
            u(0.5, 2),
            rng.choice([0.0, 1.0], n),
        ),  # fmt: skip
        "allreduce_fabric_s": (u(1e3, 1e9), *fabric(), ints(1, 32), packets()),
        "tensor_placement": (cps, tp, pp),
        "group_links": (cps, tp, pp, u(1e9, 1e11), rng.choice([1.0, 8.0], n), ints(0, 5), dims()),
        "fabric_plan": (*fabric(), ints(1, 32)),
        "collective_plan": (*network(), rng.choice([4.0, 64.0, np.inf], n), u(0, 1e-6)),
        "v1_collectives_s": (u(1e3, 1e9), tp, pp, cps, u(1e9, 1e11), u(1e9, 1e11), u(0, 5e-6)),
        "grid_dims": (np.where(flag(), 1.0, ints(2, 300)), dims()),
        "rd_steps": (np.where(flag(), rng.choice([1.0, 2.0, 64.0], n), ints(2, 300)),),
        "tensor_degree_valid": (tp, rng.choice([8.0, 12.0, 96.0, 128.0], n), flag()),
        "reduce_scatter_fabric_s": (u(1e3, 1e9), *fabric(), ints(1, 32), packets()),
        "all_to_all_fabric_s": (u(1e3, 1e9), *fabric(), packets()),
        "has_algorithm": (ints(0, 32), rng.choice([1.0, 2.0, 4.0, 8.0, 16.0], n)),
        "fabric_hops": (np.where(flag(), 1.0, ints(2, 300)), ints(0, 5), dims()),
        "v1_link_bandwidths": (cps, u(1e9, 1e11), u(1e9, 1e11), tp),
        "collectives_s": (
            u(1e3, 1e9),
            *network(),
            flag(),
            rng.choice([0.0, 64.0, 4096.0], n),
            rng.choice([4.0, 64.0, np.inf], n),
            u(0, 1e-6),
        ),
        "systolic_side": (u(1e12, 1e15), rng.choice([0.5e9, 1e9, 1.4e9], n)),
        "systolic_utilisation": (ints(1, 5000), u(1, 1e5), ints(10, 800)),
        "matmul_s": (u(1e6, 1e14), u(1e3, 1e10), u(1e12, 1e15), u(1e11, 1e14), u(1e-3, 1), flag()),
        "flop_utilisation": (u(1e10, 1e18), u(1e-3, 1e3), ints(1, 10_000), u(1e12, 1e15)),
        "server_tco_usd": (
            rng.choice([0.0, 1.0, 2.0, 3.0], n),  # every power source, tdp_capacity included
            u(1e3, 5e4),
            u(200, 3000),
            u(100, 4000),
            u(0, 1.5),
            u(1, 1.3),
            u(3, 5),
            u(0.5, 2),  # the electricity part of b
            u(1, 1.2) * 1e4,
            np.where(flag(), 0.0, u(0, 5e3)),  # NRE share: off or on
        ),  # fmt: skip
        "server_power_w": (
            rng.choice([0.0, 1.0, 2.0, 3.0], n),
            u(200, 3000),
            u(100, 4000),
            u(0, 1.5),
        ),
        "usd_per_million_tokens": (ints(1, 5000), u(1e3, 1e5), u(1e7, 1e8), u(1, 1e6)),
    }
    return table[name]


#: Formulas the fast path compiles (the reference calls them all on arrays).
COMPILED = dict(fast.COMPILED, server_power_w=None)


def test_every_formula_is_compiled_and_covered():
    public = {
        name
        for name, obj in vars(fm).items()
        if callable(obj)
        and not name.startswith("_")
        and getattr(obj, "__module__", "") == fm.__name__
    }
    public -= {"select", "server_power_w"}  # the branch primitive; a reference-only price column
    # take a plan tuple: compiled inside (and covered by) allreduce_fabric_s and collectives_s
    public -= {"fabric_time", "collective_times"}
    # a model's contexts under sliding windows: evaluated once per (model, workload) by
    # fast.pack and handed to the kernel as scalars, so both paths share the one numpy version
    public -= {"windowed_context", "windowed_mean_decode_context", "windowed_prefill_pairs"}
    assert public == set(fast.COMPILED)
    rng = np.random.default_rng(0)
    for name in COMPILED:
        assert len(_args(name, rng, 2)) > 0


@pytest.mark.parametrize("name", sorted(fast.COMPILED))
@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_compiled_formula_equals_numpy(name, seed):
    rng = np.random.default_rng(seed)
    n = 64
    args = _args(name, rng, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        ref = getattr(fm, name)(*[np.asarray(a) for a in args])
    refs = ref if isinstance(ref, tuple) else (ref,)
    jit = fast.COMPILED[name]
    for i in range(n):
        got = jit(*[a[i].item() for a in args])
        gots = got if isinstance(got, tuple) else (got,)
        for g, r in zip(gots, refs, strict=True):
            want = float(np.broadcast_to(r, (n,))[i])
            assert g == pytest.approx(want, rel=1e-12, abs=0.0), (name, i, args)


@pytest.mark.parametrize("v1", [False, True])
@pytest.mark.parametrize("servers", [1.0, 3.0])
def test_link_rule_switches(v1, servers):
    # every branch of the placement and collective rules, compiled and not: inside a server,
    # whole servers, straddling
    cps, chip, server = 16.0, 50e9, 12.5e9
    for tp, pp in ((4.0, 2.0), (16.0, 1.0), (32.0, 1.0), (24.0, 2.0), (12.0, 3.0)):
        args = (1e6, servers, tp, pp, cps, chip, server, 1.0, 1e-7, 1e-6, 5e-7, 2.0, 2.0, 31.0, v1)
        args = (*args, 64.0, 2.0, 5e-7)  # packets, a 2-port switch: tiers from 3 servers
        want = fm.collectives_s(*args)
        got = fast.collectives_s(*args)
        assert got == pytest.approx((float(want[0]), float(want[1])), rel=1e-12)
        assert fast.tensor_placement(cps, tp, pp) == tuple(
            float(x) for x in fm.tensor_placement(cps, tp, pp)
        )


def test_collective_on_a_torus_takes_fewer_steps():
    # 64 chips: a ring pays 2 x 63 = 126 hops, a 3-D torus of 4 x 4 x 4 pays 2 x 3 x 3 = 18
    ring = fm.allreduce_fabric_s(0.0, 64.0, 1e9, 1e-6, 0.0, 1.0, 1.0)
    torus = fast.allreduce_fabric_s(0.0, 64.0, 1e9, 1e-6, 2.0, 3.0, 1.0)
    assert ring == pytest.approx(126e-6) and torus == pytest.approx(18e-6)
    assert fast.allreduce_fabric_s(1e6, 1.0, 1e9, 1e-6, 2.0, 2.0, 31.0) == 0.0  # one chip


def test_compiled_engine_cache_follows_all_its_sources():
    # numba stamps a cached function with its own file only; the engine's functions are stamped
    # with one digest of every file it is compiled from, so editing a formula recompiles the
    # search loop that calls it (perf/jitcache.py)
    import hashlib

    from chipletcloud.explore import kernel
    from chipletcloud.perf import jitcache

    h = hashlib.sha256()
    for rel in jitcache.ENGINE_FILES:
        h.update(rel.encode() + b"\0" + (jitcache.ROOT / rel).read_bytes() + b"\0")
    assert jitcache.engine_stamp() == h.hexdigest()
    for dispatcher in (fast.stage_s, fast.collectives_s, fast.point_cost, kernel._chunk):
        locator = dispatcher._cache._impl.locator
        assert isinstance(locator, jitcache.EngineLocator)
        assert locator.get_source_stamp() == ("chipletcloud-engine", h.hexdigest())
    assert "perf/formulas.py" in jitcache.ENGINE_FILES
