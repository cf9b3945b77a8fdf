"""One ledger for every machine (issue 13, items 1 and 3): chip power from its components with
leakage, datacentre capacity at TDP and electricity at the mean power, the complete server bill
and the tape-out's NRE, each by hand against the worked examples of docs/hardware-model.md and
docs/tco.md."""

from __future__ import annotations

import numpy as np
import pytest

from chipletcloud.cli import main
from chipletcloud.config import DATA, HardwareSpace, resolve
from chipletcloud.errors import InputError
from chipletcloud.explore import kernel, software
from chipletcloud.explore.hardware import explore_hardware
from chipletcloud.models import chip, server, tco
from chipletcloud.models.catalogue import load_model
from chipletcloud.perf import formulas as fm
from chipletcloud.perf.analytic import Pricing, price
from chipletcloud.perf.codes import POWER_SOURCES

# ------------------------------------------------------------------------------- chip power


def test_components_tdp_of_the_worked_example(isca24):
    # docs/hardware-model.md#worked-example (160 mm2, mac_ratio 0.24, OI 1, linear SRAM), chip
    # power from its parts (docs/hardware-model.md#chip-power):
    #   MACs     9.4811 TFLOPS / 2 x 1.3 pJ an FMA                 =  6.1627 W
    #   SRAM     9.4811 TB/s x 1.25 pJ/B                            = 11.8514 W
    #   leakage  0.03 W/mm2 x (151.268 core - 79.563 SRAM) mm2      =  2.1512 W
    #            + 0.003 W/MB x 176.806 MB                          =  0.5304 W
    #   IO       4 cells x 0.125 W                                  =  0.5    W
    #   TDP                                                         = 21.1958 W (authors: 12.825)
    c = chip.evaluate_chips(np.array([160.0]), 0.24, 1.0, isca24.tech, "linear", "components")
    assert c["mac_power_w"][0] == pytest.approx(6.1627, abs=5e-4)
    assert c["sram_power_w"][0] == pytest.approx(11.8514, abs=5e-4)
    assert c["leakage_power_w"][0] == pytest.approx(2.1512 + 0.5304, abs=5e-4)
    assert c["io_power_w"][0] == 0.5
    assert c["chip_tdp_w"][0] == pytest.approx(21.1958, abs=5e-4)
    assert c["core_power_w"][0] == pytest.approx(21.1958 - 0.5, abs=5e-4)
    # 152 such chips draw 3,222 W: the server fails the 2 kW check it passed at 12.8 W a chip
    assert 152 * c["chip_tdp_w"][0] > isca24.server.server_max_chip_power_w
    # the authors' rule is unchanged and carries no leakage
    a = chip.evaluate_chips(np.array([160.0]), 0.24, 1.0, isca24.tech, "linear")
    assert a["chip_tdp_w"][0] == pytest.approx(12.825, abs=5e-4) and a["leakage_power_w"][0] == 0


def test_components_sram_term_falls_with_operational_intensity(isca24):
    # OI 4 reads a quarter of the bytes a MAC: the SRAM term is 11.8514 / 4 = 2.9629 W
    c = chip.evaluate_chips(np.array([160.0]), 0.24, 4.0, isca24.tech, "linear", "components")
    assert c["sram_power_w"][0] == pytest.approx(11.8514 / 4, abs=5e-4)


def test_unknown_chip_power_model(isca24):
    with pytest.raises(InputError) as exc:
        chip.evaluate_chips(np.array([160.0]), 0.24, 1.0, isca24.tech, "linear", "magic")
    assert exc.value.field == "chip_power_model"


def _components_params(**choices):
    p = resolve("isca24")
    preset = p.preset.model_copy(
        update={
            "choices": p.preset.choices.model_copy(
                update={"chip_power_model": "components", **choices}
            )
        }
    )
    return resolve(preset)


@pytest.fixture(scope="module")
def components_table():
    params = _components_params(power_source="tdp_capacity")
    space = HardwareSpace(
        die_area_mm2=[100, 180, 300],
        mac_ratio=[0.05, 0.15, 0.3],
        operational_intensity=[1, 4, 16],
        packages_per_lane=[8, 16],
    )
    return params, explore_hardware(space, params).table


def test_mean_chip_power_never_exceeds_the_chip_tdp(components_table):
    # under components the TDP is every part at full rate plus leakage; the energy model's mean
    # (FMAs, weight/KV/activation reads, leakage and IO over the run) stays below it on every
    # feasible point of the grid, and the 2 kW check holds on the kept servers
    params, table = components_table
    assert np.all(table["chips_power_w"] <= params.server.server_max_chip_power_w)
    assert np.all(table["leakage_power_w"] > 0)
    for name in ("gpt3", "llama2-70b"):
        inp = software.search_inputs(table, load_model(name), params)
        pts = inp.reference()
        ok = pts["status"] == 0
        assert ok.any()
        tdp = table["chip_tdp_w"][pts["design"][ok]]
        assert np.all(pts["chip_power_w"][ok] <= tdp * (1 + 1e-12))
        # leakage is part of the static power the energy model charges over the run
        static = params.tech.io_cells_per_chip * params.tech.io_cell_power_w
        leak = table["leakage_power_w"][pts["design"][ok]]
        assert np.all(pts["chip_power_w"][ok] >= static + leak - 1e-12)


def test_tdp_capacity_fast_path_equals_reference(components_table):
    # the search loop (numba) and the numpy reference price every point alike under the new
    # power source, with the NRE term on
    params, table = components_table
    params = _components_params(power_source="tdp_capacity", include_nre=True)
    inp = software.search_inputs(table, load_model("gpt3"), params)
    assert inp.pricing.power_source == "tdp_capacity" and inp.pricing.nre_usd_per_server == 4900
    ref = inp.reference()
    d, j, c, lat, best, counts = kernel.evaluate_points(*inp.kernel_args())
    ok = ref["status"] == 0
    assert np.array_equal(d * inp.grid.size + j, np.flatnonzero(ok))
    np.testing.assert_allclose(c, ref["usd_per_million_tokens"][ok], rtol=1e-9)
    np.testing.assert_allclose(lat, ref["tpot_s"][ok], rtol=1e-9)


# ------------------------------------------------------------------------------- TCO split


def test_tco_split_keeps_the_worked_example():
    # docs/tco.md: TCO = 1.1145 C + 3.9709 P, and the per-watt part splits into 2.6684 of
    # datacentre capacity (capex 1.25, its interest, opex 0.72) and 1.3025 of energy
    # (electricity 0.8683 + PUE overhead 0.4342)
    a, cap, energy = tco.tco_coefficients_split()
    assert (a, cap, energy) == pytest.approx((1.11453, 2.66841, 1.30248), abs=5e-5)
    assert cap + energy == pytest.approx(tco.tco_coefficients()[1], rel=1e-12)
    # the old rule, one power for both: $15,116.15 still
    assert tco.server_tco_usd(10_000, 1_000) == pytest.approx(15_116.15, abs=0.01)
    # capacity at 1 kW, electricity at a mean 400 W: 10,000 + 645.25 + 500 + 2,668.41
    # + 0.4 x (868.32 + 434.16) = 14,334.66
    parts = tco.server_tco_breakdown(10_000, 1_000, energy_power_w=400)
    assert float(parts["datacenter"]) == pytest.approx(2_668.41, abs=0.01)
    assert float(parts["electricity"]) == pytest.approx(347.33, abs=0.01)
    assert float(parts["total"]) == pytest.approx(14_334.66, abs=0.01)


@pytest.mark.parametrize("source", sorted(POWER_SOURCES))
def test_server_tco_formula_matches_the_tco_model(source):
    # perf/formulas.server_tco_usd (the phase-2 price) against models/tco.py, $10,000 and a 1 kW
    # TDP with a 400 W mean wall power and 30% FLOP utilisation
    a, cap, energy = tco.tco_coefficients_split()
    fixed = 10_000 * (1 + float(tco.loan_interest_usd(1.0, 0.08, 1.5)))
    code = POWER_SOURCES[source]
    got = float(fm.server_tco_usd(code, 10_000, 1_000, 400, 0.3, a, cap + energy, energy, fixed, 0))
    want = {
        "energy": tco.server_tco_usd(10_000, 400),
        "tdp": tco.server_tco_usd(10_000, 1_000),
        "tdp_utilisation": fixed + 0.3 * (tco.server_tco_usd(10_000, 1_000) - fixed),
        "tdp_capacity": tco.server_tco_usd(10_000, 1_000, energy_power_w=400),
    }[source]
    assert got == pytest.approx(want, rel=1e-12)
    nre = float(fm.server_tco_usd(code, 10_000, 1_000, 400, 0.3, a, cap + energy, energy, fixed, 7))
    assert nre == pytest.approx(want + 7, rel=1e-12)


def test_price_reports_energy_at_chip_wall_and_facility():
    # one server of 8 chips at a mean 10 W each, fans and host 60 W, conversion 0.9025, PUE 1.5,
    # 1,000 tokens/s: chip 80 W, wall (80 + 60) / 0.9025 = 155.12 W, facility 232.69 W
    a, cap, energy = tco.tco_coefficients_split()
    pricing = Pricing(
        np.array([10_000.0]),
        np.array([1_000.0]),
        np.array([60.0]),
        0.9025,
        a,
        cap + energy,
        1.0645,
        1.5 * 365 * 86400,
        "tdp_capacity",
        b_energy_per_w=energy,
        nre_usd_per_server=4_900.0,
        pue=1.5,
    )
    sim = {
        "flop_utilisation": np.array([0.5]),
        "chips": np.array([8.0]),
        "throughput_tokens_per_s": np.array([1_000.0]),
        "chip_power_w": np.array([10.0]),
    }
    out = price(pricing, sim, servers=1, chips_per_server=8)
    wall = 140 / 0.9025
    assert out["joules_per_token_chip"][0] == pytest.approx(0.08)
    assert out["joules_per_token_wall"][0] == pytest.approx(wall / 1_000)
    assert out["joules_per_token_facility"][0] == pytest.approx(1.5 * wall / 1_000)
    assert out["provisioned_w"][0] == 1_000 and out["power_w"][0] == pytest.approx(wall)
    # TCO: 1.11453 x 10,000 + 2.66841 x 1,000 W + 1.30248 x 155.12 W + the NRE share $4,900
    want = tco.server_tco_usd(10_000, 1_000, energy_power_w=wall) + 4_900
    assert out["system_tco_usd"][0] == pytest.approx(want, rel=1e-12)
    life = 1.5 * 365 * 86400
    assert out["nre_usd_per_million_tokens"][0] == pytest.approx(4_900 / life / 1_000 * 1e6)


# ------------------------------------------------------------------------------- BOM and NRE


def test_full_bom_of_the_worked_example_server(isca24):
    # docs/hardware-model.md#worked-example: 152 packages, server TDP 2,281.08 W. The full bill
    # adds a rack share by power, $4,000 x 2,281.08 / 15,000 W = $608.29; the network share,
    # $875 (2.5 x ($250 a port + $100 an optic)); and 152 package assemblies x $5 = $760
    srv = isca24.server
    kw = dict(
        die_cost_usd=[29.446],
        package_cost_usd=[3.530],
        heatsink_cost_usd=[1.056],
        core_power_w=[12.3255],
        chips_per_server=[152],
        packages_per_server=[152],
        lanes=[8],
        server_tdp_w=[2281.08],
        server=srv,
        include_host_cost=False,
    )
    base = server.server_bom_usd(**kw)
    full = server.server_bom_usd(**kw, full_bom=True)
    assert base["rack_cost_usd"][0] == base["network_cost_usd"][0] == 0
    assert base["assembly_cost_usd"][0] == 0
    assert base["server_cost_usd"][0] == pytest.approx(7_008.73, abs=0.02)
    assert full["rack_cost_usd"][0] == pytest.approx(608.29, abs=0.01)
    assert full["network_cost_usd"][0] == 875
    assert full["assembly_cost_usd"][0] == 760
    assert full["server_cost_usd"][0] == pytest.approx(7_008.73 + 2_243.29, abs=0.02)


def test_fabricated_gpu_pays_the_rack_by_the_same_rule_and_electricity_at_its_mean():
    from chipletcloud.baselines.compare import device_tco_usd
    from chipletcloud.baselines.devices import load_device, load_prices

    card, prices = load_device("a100-80gb"), load_prices("a100-80gb")
    old = device_tco_usd(
        card, prices, _components_params(power_source="energy", full_bom=False), 150.0
    )
    params = _components_params(power_source="tdp_capacity", full_bom=True)
    new = device_tco_usd(card, prices, params, mean_power_w=150.0)
    # A100: 400 W TDP + 450 W overhead; rack share $4,000 x 850 / 15,000 = $226.67
    assert new["parts"]["rack_usd"] == pytest.approx(226.67, abs=0.01)
    assert "rack_usd" not in old["parts"]
    assert new["capex_usd"] == pytest.approx(old["capex_usd"] + 226.67, abs=0.01)
    # capacity for 850 W, electricity for 150 + 450 = 600 W; the older rule charges 850 W
    assert old["tco_usd"] == pytest.approx(tco.server_tco_usd(old["capex_usd"], 850.0))
    assert new["tco_usd"] == pytest.approx(
        tco.server_tco_usd(new["capex_usd"], 850.0, energy_power_w=600.0)
    )


def test_nre_per_server_and_the_study_use_one_number(isca24, v1):
    # data/nre/7nm.yaml: masks 10 + IP 5 + EDA 4 + design 25 + validation 5 = $49M over the
    # tco card's 10,000 servers: $4,900 a server. The v1 preset keeps the paper's $35M.
    assert isca24.nre.total_usd == 49e6 and v1.nre.total_usd == 35e6
    assert tco.nre_usd_per_server(49e6, isca24.tco.deployment_servers) == 4_900
    from chipletcloud.studies import nre_study

    life = 1.5 * 365 * 86400
    card = {
        "throughput_tokens_per_s": 45_000.0,
        "servers": 50,
        "usd_per_million_tokens": 0.2 + 50 * 4_900 / life / 45_000 * 1e6,
        "nre_usd_per_million_tokens": 50 * 4_900 / life / 45_000 * 1e6,
    }
    s = nre_study(card, 1.4, isca24)
    assert s["nre_usd"] == 49e6 and s["deployment_servers"] == 10_000
    # 10,000 servers = 200 whole systems: the study's cost there is the card's, NRE included
    assert s["deployment_tokens_per_s"] == pytest.approx(200 * 45_000)
    assert s["deployment_usd_per_1k_tokens"] == pytest.approx(
        card["usd_per_million_tokens"] / 1e3, rel=1e-12
    )


@pytest.mark.parametrize("volume", ["0", "-5"])
def test_deployment_volume_must_be_positive(tmp_path, capsys, volume):
    p = tmp_path / "bad.yaml"
    p.write_text(
        "extends: isca24\nname: bad\noverrides:\n"
        f"  tco.deployment_servers: {{value: {volume}, unit: servers, source: test}}\n"
    )
    with pytest.raises(InputError) as exc:
        resolve(str(p))
    assert exc.value.field == "tco.deployment_servers"
    assert main(["hardware", "--preset", str(p), "--out", str(tmp_path / "hw")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "tco.deployment_servers" in err
    assert not (tmp_path / "hw").exists()


def test_every_new_constant_is_sourced():
    from chipletcloud.config import load_card

    for kind, name, keys in (
        ("tech", "7nm", ("logic_leakage_w_per_mm2", "sram_leakage_w_per_mb")),
        (
            "server",
            "asic_clouds",
            ("rack_usd", "rack_power_w", "network_usd_per_server"),
        ),
        ("tco", "asic_clouds", ("deployment_servers",)),
        ("nre", "7nm", ("masks_usd", "ip_usd", "eda_usd", "design_usd", "validation_usd")),
    ):
        card = load_card(kind, name)
        for k in keys:
            assert card[k].unit and card[k].source, k
    assert (DATA / "nre" / "paper.yaml").is_file()
