"""Phase 2: the numba fast path against the numpy reference, Pareto invariants, the CLI."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chipletcloud.cli import main
from chipletcloud.config import SearchSpec
from chipletcloud.explore import kernel, software
from chipletcloud.explore.hardware import explore_hardware
from chipletcloud.explore.pareto import is_dominated_by, pareto_mask
from chipletcloud.models.llm import ModelSpec
from chipletcloud.perf.analytic import Pricing, price
from chipletcloud.perf.workload import LayerShape, System, Workload

rng_settings = settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), min_size=1, max_size=60))
def test_pareto_mask_properties(points):
    c = np.array([p[0] for p in points], float)
    lat = np.array([p[1] for p in points], float)
    keep = pareto_mask(c, lat)
    kept = np.flatnonzero(keep)
    for i in kept:  # no kept point is dominated by any point
        assert not any(is_dominated_by(c[i], lat[i], c[j], lat[j]) for j in range(len(c)))
    for i in np.flatnonzero(~keep):  # every dropped point is dominated by or equal to a kept one
        assert any(
            is_dominated_by(c[i], lat[i], c[j], lat[j])
            or (c[i] == c[j] and lat[i] == lat[j] and j < i)
            for j in kept
        )


def test_pareto_mask_ignores_nan():
    keep = pareto_mask(np.array([1.0, np.nan, 0.5]), np.array([1.0, 0.1, np.inf]))
    assert keep.tolist() == [True, False, False]


def _random_case(seed, moe=False, latency_model="isca24", power="energy", attention="gqa"):
    rng = np.random.default_rng(seed)
    n = 7
    system = System.broadcast(
        flops=rng.uniform(0.5, 30, n) * 1e12,
        mem_bytes=rng.uniform(5, 400, n) * 1e6,
        mem_bw=rng.uniform(0.5, 20, n) * 1e12,
        chip_link_bw=rng.uniform(10, 100, n) * 1e9,
        server_link_bw=rng.uniform(1, 30, n) * 1e9,
        chips_per_server=rng.integers(8, 160, n).astype(float),
        hop_latency_s=rng.uniform(0, 1e-6, n),
        net_hop_s=rng.uniform(0, 3e-6, n),
        sync_s=rng.choice([0.0, 1e-6], n),
        topology=rng.integers(0, 5, n).astype(float),
        algorithms=rng.choice([1.0, 17.0, 31.0, 5.0, 11.0], n),
        nics_per_server=rng.choice([1.0, 8.0], n),
        packet_bytes=rng.choice([0.0, 64.0], n),
        net_radix=rng.choice([2.0, 64.0], n),
        net_tier_s=rng.uniform(0, 1e-6, n),
        fma_j=1.3e-12,
        mem_j_per_byte=1.25e-12,
        act_j_per_byte=0.94e-12,
        static_w_per_chip=rng.uniform(0, 1, n),
        # every switch of the point, per design: efficiencies, fixed kernel time, ring or torus
        flops_eff=rng.choice([1.0, 0.7], n) * rng.uniform(0.8, 1.0, n),
        mem_eff=rng.choice([1.0, 0.8], n) * rng.uniform(0.8, 1.0, n),
        op_overhead_s=rng.choice([0.0, 5e-6], n),
        collective_dims=rng.choice([1.0, 2.0, 3.0], n),
        clock_hz=rng.choice([0.8e9, 1e9, 1.2e9], n),  # the v1 systolic array's clock
        attn_eff=rng.choice([1.0, 0.5 / 0.76], n),  # attention's share of the FLOP/s
    )
    pricing = Pricing(
        server_cost_usd=rng.uniform(1e3, 2e4, n),
        server_tdp_w=rng.uniform(200, 2500, n),
        overhead_w=rng.uniform(50, 120, n),
        efficiency=0.9025,
        a_per_usd=1.1145,
        b_per_w=3.9709,
        fixed_per_usd=1.0645,
        life_s=1.5 * 365 * 86400,
        power_source=power,
        b_energy_per_w=1.3025,  # docs/tco.md: electricity + PUE overhead per W
        nre_usd_per_server=float(rng.choice([0.0, 4900.0])),  # NRE share off or on
        pue=1.5,
    )
    layers = int(rng.choice([2, 4, 6, 12]))
    heads = int(rng.choice([4, 8, 16]))
    kv = int(rng.choice([h for h in (1, 2, 4, heads) if heads % h == 0]))
    d = heads * int(rng.choice([32, 64, 128]))
    cfg = dict(
        name="rand",
        source="test",
        num_layers=layers,
        hidden_size=d,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        head_dim=d // heads,
        intermediate_size=4 * d,
        gated_mlp=bool(rng.integers(2)),
        vocab_size=1000,
        tie_word_embeddings=True,
        max_position_embeddings=None,
        attention_bias=False,
        mlp_bias=False,
        norm="rmsnorm",
        position="rotary",
    )
    if moe:
        cfg.update(num_experts=8, num_experts_per_tok=2, moe_intermediate_size=2 * d)
    if attention == "mla":  # latent attention: one shared latent, absorbed in decode
        cfg.update(
            kv_lora_rank=int(rng.choice([32, 64])),
            q_lora_rank=[None, 48][rng.integers(2)],
            qk_rope_head_dim=16,
            qk_nope_head_dim=32,
            v_head_dim=32,
        )
    elif attention == "hybrid":  # sliding-window layers among full ones
        cfg.update(
            sliding_window=int(rng.integers(8, 400)),
            layer_types=[("sliding_attention", "full_attention")[i % 2] for i in range(layers)],
        )
    shape = LayerShape.from_spec(ModelSpec(**cfg), include_embeddings=bool(rng.integers(2)))
    wl = Workload(
        prompt_tokens=int(rng.integers(1, 300)),
        output_tokens=int(rng.integers(1, 300)),
        weight_storage_ratio=float(rng.choice([1.0, 0.6])),
        count_prefill=bool(rng.integers(2)),
        kv_in_capacity=bool(rng.integers(2)),
    )
    units = int(rng.choice([1, 3]))
    wl = dataclasses.replace(
        wl,
        units_per_layer=units,
        whole_heads=bool(rng.integers(2)),
        # the authors' defects (config.Choices), each on or off
        kv_reads_per_query_head=bool(rng.integers(2)),
        kv_read_energy_per_micro_batch=bool(rng.integers(2)),
        prefill_attention_authors=bool(rng.integers(2)),
        balance_stages=bool(rng.integers(2)),  # the last stage balanced against the LM head
    )
    grid = software.mapping_grid(
        shape,
        SearchSpec(
            batch_sizes=[1, 2, 4, 16, 64],
            server_multipliers=[1, 1.5, 3],
            units_per_layer=units,
            uneven_pipeline=bool(rng.integers(2)),
            balance_stages=wl.balance_stages,
            # KV heads replicated or split by sequence, searched (a GQA/MQA model only)
            kv_modes=[["replicate", "split"], ["split"], ["replicate"]][rng.integers(3)],
        ),
    )
    return system, pricing, shape, wl, grid, latency_model


@rng_settings
@given(
    st.integers(0, 10_000),
    st.booleans(),
    st.sampled_from(["isca24", "v1"]),
    st.sampled_from(["energy", "tdp", "tdp_utilisation", "tdp_capacity"]),
    st.sampled_from(["gqa", "mla", "hybrid"]),
)
def test_fast_path_equals_reference(seed, moe, latency_model, power, attention):
    system, pricing, shape, wl, grid, lm = _random_case(seed, moe, latency_model, power, attention)
    nmin = software.min_servers(system, shape, wl)
    ref = software.reference_points(system, pricing, shape, wl, grid, 10_000, lm)
    d, j, c, lat, best, counts = kernel.evaluate_points(
        system, pricing, shape, wl, grid, nmin, 10_000, lm
    )
    ok = ref["status"] == 0
    assert counts.tolist() == [int((ref["status"] == k).sum()) for k in range(3)]
    flat = d * grid.size + j
    assert np.array_equal(flat, np.flatnonzero(ok))
    np.testing.assert_allclose(c, ref["usd_per_million_tokens"][ok], rtol=1e-9)
    np.testing.assert_allclose(lat, ref["tpot_s"][ok], rtol=1e-9)
    ref_best = np.full(len(system), np.inf)
    np.minimum.at(ref_best, ref["design"][ok], ref["usd_per_million_tokens"][ok])
    np.testing.assert_allclose(best, ref_best, rtol=1e-9)
    # the pruning bound of tco_optimum (matmul and attention FLOPs at peak) never exceeds a
    # design's own optimum, whatever the attention variant and context
    inp = software.SearchInputs(system, pricing, shape, wl, grid, nmin, 10_000, lm)
    lb = software.cost_lower_bound(inp)
    fin = np.isfinite(ref_best)
    assert np.all(lb[fin] <= ref_best[fin] * (1 + 1e-9))
    # the chunked search keeps exactly the reference's front
    fd, fj, fbest, fcounts = kernel.search_fronts(
        system, pricing, shape, wl, grid, nmin, 10_000, lm, chunk=3
    )
    front = software.front_from_points(ref)
    np.testing.assert_allclose(
        np.sort(c[np.isin(flat, fd * grid.size + fj)]),
        np.sort(front["usd_per_million_tokens"]),
        rtol=1e-9,
    )
    assert len(fd) == len(front["design"])


@pytest.mark.parametrize("seed", range(4))
def test_whole_heads_on_both_paths(seed):
    # SearchSpec.whole_heads: only tensor degrees dividing the heads, on the reference and the
    # kernel alike (with whole KV heads a chip: formulas.chip_kv_heads)
    system, pricing, shape, wl, grid, lm = _random_case(seed)
    wl = dataclasses.replace(wl, whole_heads=True)
    ref = software.reference_points(system, pricing, shape, wl, grid, 10_000, lm)
    ok = ref["status"] == 0
    # whole heads where the KV heads are replicated; with attention split by sequence every chip
    # computes all heads of its sequences, so any tensor degree serves
    rep = ok & (grid.split_of(ref["mapping"]) == 0)
    assert np.all(np.mod(shape.heads, ref["tp"][rep]) == 0)
    nmin = software.min_servers(system, shape, wl)
    d, j, c, *_ = kernel.evaluate_points(system, pricing, shape, wl, grid, nmin, 10_000, lm)
    assert np.array_equal(d * grid.size + j, np.flatnonzero(ok))
    np.testing.assert_allclose(c, ref["usd_per_million_tokens"][ok], rtol=1e-9)


@pytest.fixture(scope="module")
def small_table(isca24):
    from chipletcloud.config import HardwareSpace

    sp = HardwareSpace(
        die_area_mm2=[60, 140, 300],
        mac_ratio=[0.05, 0.1, 0.24],
        operational_intensity=[2, 8, 32],
        packages_per_lane=[6, 12, 19],
    )
    return explore_hardware(sp, isca24).table


def test_search_fast_equals_reference_on_a_table(small_table, isca24):
    from chipletcloud.models.catalogue import load_model

    for name in ("gpt3", "llama2-70b", "mixtral-8x7b", "gpt-oss-120b"):
        spec = load_model(name)
        fast = software.search(small_table, spec, isca24)
        ref = software.search(small_table, spec, isca24, fast=False)
        assert fast.counts == ref.counts
        np.testing.assert_allclose(
            fast.front["usd_per_million_tokens"], ref.front["usd_per_million_tokens"], rtol=1e-9
        )
        np.testing.assert_allclose(fast.best_per_design, ref.best_per_design, rtol=1e-9)


def test_kv_mode_is_searched_and_reported(small_table, isca24):
    # PaLM (MQA): both KV modes searched by default, the chosen one on the design card; with
    # replication only the card says so and the optimum can only be dearer
    from chipletcloud.models.catalogue import load_model

    spec = load_model("palm")
    both = software.search(small_table, spec, isca24)
    preset = isca24.preset.model_copy(
        update={"search": isca24.preset.search.model_copy(update={"kv_modes": ["replicate"]})}
    )
    rep = software.search(small_table, spec, dataclasses.replace(isca24, preset=preset))
    card_both, card_rep = both.card("tco", small_table), rep.card("tco", small_table)
    assert card_both["kv_mode"] in ("split", "replicate") and card_rep["kv_mode"] == "replicate"
    assert card_both["usd_per_million_tokens"] <= card_rep["usd_per_million_tokens"] * (1 + 1e-12)
    ref = software.search(small_table, spec, isca24, fast=False)
    np.testing.assert_allclose(
        both.front["usd_per_million_tokens"], ref.front["usd_per_million_tokens"], rtol=1e-9
    )


def test_portfolio_prefers_a_design_that_serves_all(small_table, isca24):
    from chipletcloud.models.catalogue import load_model

    run = software.evaluate_models(
        small_table, [load_model("gpt3"), load_model("llama2-70b")], isca24
    )
    p = run.portfolio
    assert 0 < p["geomean_efficiency"] <= 1
    for m in p["per_model"].values():
        assert m["loss_factor"] >= 1 - 1e-12


def test_cli_evaluate_json(tmp_path, capsys, small_hardware_dir):
    hw = small_hardware_dir
    assert (
        main(
            [
                "evaluate",
                "--model",
                "gpt2",
                "--model",
                "llama2-70b",
                "--hardware",
                str(hw),
                "--out",
                str(tmp_path / "ev"),
                "--json",
            ]
        )
        == 0
    )
    d = json.loads(capsys.readouterr().out)
    keys = (
        "die_area_mm2 sram_mb_per_chip tflops_per_chip chips_per_server servers tp pp batch "
        "micro_batch latency_s_per_token throughput_tokens_per_s usd_per_million_tokens "
        "capex_usd power_w joules_per_token"
    ).split()
    for name in ("gpt2", "llama2-70b"):
        m = d["models"][name]
        assert m["pareto_points"] >= 1
        for card in (m["tco_optimal"], m["latency_optimal"]):
            assert set(keys) <= set(card)
        assert (
            m["tco_optimal"]["usd_per_million_tokens"]
            <= m["latency_optimal"]["usd_per_million_tokens"]
        )
        assert (
            m["latency_optimal"]["latency_s_per_token"] <= m["tco_optimal"]["latency_s_per_token"]
        )
        assert (tmp_path / "ev" / name / "pareto.parquet").is_file()
        assert (tmp_path / "ev" / name / "optimal.json").is_file()
    assert "portfolio" in d and (tmp_path / "ev" / "manifest.json").is_file()


def test_cli_evaluate_model_that_fits_nowhere(tmp_path, capsys, small_hardware_dir):
    hw = small_hardware_dir
    # a limit of 1 server: GPT-3 fits on no design; not an error
    preset = tmp_path / "tiny.yaml"
    from chipletcloud.config import DATA

    preset.write_text(
        (DATA / "presets" / "isca24.yaml").read_text() + "search:\n  max_servers: 1\n"
    )
    assert (
        main(
            [
                "evaluate",
                "--model",
                "gpt3",
                "--hardware",
                str(hw),
                "--out",
                str(tmp_path / "ev"),
                "--preset",
                str(preset),
                "--json",
            ]
        )
        == 0
    )
    d = json.loads(capsys.readouterr().out)
    assert d["models"]["gpt3"]["pareto_points"] == 0
    assert d["models"]["gpt3"]["tco_optimal"] is None


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--model", "gpt99"], "model"),
        (["--model", "gpt2", "--sparsity", "1.5"], "sparsity: got 1.5"),
        (["--model", "gpt2", "--sparsity", "0.5", "--sparse-format", "zip"], "sparse_format"),
        (["--model", "gpt2", "--sparsity", "0.6", "--sparse-format", "nm24"], "sparsity"),
    ],
)
def test_cli_evaluate_bad_input(tmp_path, capsys, args, fragment, small_hardware_dir):
    hw = small_hardware_dir
    assert main(["evaluate", *args, "--hardware", str(hw), "--out", str(tmp_path / "ev")]) == 2
    e = capsys.readouterr().err.strip()
    assert fragment in e and len(e.splitlines()) == 1 and "Traceback" not in e
    assert not (tmp_path / "ev").exists()


def test_cli_evaluate_missing_or_empty_hardware(tmp_path, capsys):
    assert (
        main(
            [
                "evaluate",
                "--model",
                "gpt2",
                "--hardware",
                str(tmp_path / "none"),
                "--out",
                str(tmp_path / "ev"),
            ]
        )
        == 2
    )
    assert "hardware" in capsys.readouterr().err
    sp = tmp_path / "space.yaml"
    sp.write_text(
        "die_area_mm2: 20\nmac_ratio: 0.5\noperational_intensity: 1\npackages_per_lane: 3\n"
    )  # nothing survives: an empty table
    assert main(["hardware", "--space", str(sp), "--out", str(tmp_path / "hw"), "--json"]) == 0
    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                "--model",
                "gpt2",
                "--hardware",
                str(tmp_path / "hw"),
                "--out",
                str(tmp_path / "ev"),
            ]
        )
        == 2
    )
    assert "at least one server" in capsys.readouterr().err


def test_sparsity_shrinks_capacity_not_load(small_table, isca24):
    from chipletcloud.models.catalogue import load_model

    spec = load_model("gpt3")
    dense = software.search(small_table, spec, isca24)
    sparse = software.search(small_table, spec, isca24.with_workload(sparsity=0.6))
    # fewer servers hold the compressed weights: the cheapest point gets cheaper
    assert (
        sparse.card("tco", small_table)["usd_per_million_tokens"]
        < dense.card("tco", small_table)["usd_per_million_tokens"]
    )


def test_models_cli(capsys):
    assert main(["models", "list", "--json"]) == 0
    names = [m["name"] for m in json.loads(capsys.readouterr().out)["models"]]
    assert {
        "gpt2",
        "megatron",
        "gpt3",
        "gopher",
        "mtnlg",
        "bloom",
        "palm",
        "llama2-70b",
        "llama3-70b",
        "llama3.1-405b",
        "mixtral-8x7b",
    } <= set(names)
    assert main(["models", "show", "llama2-70b", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    for k in (
        "name num_layers hidden_size num_attention_heads num_key_value_heads "
        "intermediate_size gated_mlp vocab_size params params_12ld2 weight_bytes "
        "kv_bytes_per_token"
    ).split():
        assert k in d
    assert d["kv_bytes_per_token"] == 2 * 80 * 8 * 128 * 2  # 327,680 B by hand
    assert main(["models", "show", "nope"]) == 2
    assert "model" in capsys.readouterr().err


def test_v1_tco_scales_by_the_utilisation_of_all_the_servers_chips():
    # docs/tco.md#utilisation-scaled-tco-v1: TCO = N [fixed + U (TCO at TDP - fixed)]. The server
    # TDP counts all its
    # chips, so U is the FLOP rate over the peak of every chip of the servers (authors' v1-era
    # mapping code), not only the p x t chips the mapping keeps busy: here 6 of 8 chips run at
    # 50%, so U = 0.375. With C = $10,000, P = 1,000 W: TCO at TDP $15,116.15 (docs/tco.md),
    # fixed = C + interest(C, 8%, 1.5 y) = 18 monthly payments of $591.403 = $10,645.25.
    from chipletcloud.models import tco

    a, b = tco.tco_coefficients()
    interest = float(tco.loan_interest_usd(1.0, 0.08, 1.5))
    assert 10_000 * (1 + interest) == pytest.approx(10_645.25, abs=0.01)
    life = 1.5 * 365 * 86400
    pricing = Pricing(
        np.array([10_000.0]),
        np.array([1_000.0]),
        np.array([0.0]),
        1.0,
        a,
        b,
        1 + interest,
        life,
        "tdp_utilisation",
    )
    sim = {
        "flop_utilisation": np.array([0.5]),
        "chips": np.array([6.0]),
        "throughput_tokens_per_s": np.array([1_000.0]),
        "chip_power_w": np.array([0.0]),
    }
    out = price(pricing, sim, servers=1, chips_per_server=8)
    tco_usd = 10_645.25 + 0.375 * (15_116.15 - 10_645.25)
    assert out["system_tco_usd"][0] == pytest.approx(tco_usd, abs=0.02)
    assert out["usd_per_million_tokens"][0] == pytest.approx(tco_usd / life / 1_000 * 1e6)
