"""``reproduce --preset v1``: the steps that failed on the v1 preset, run on a small table.

The event-level check (:func:`chipletcloud.baselines.asic_validation.asic_cases`, the
``validation`` step) simulated the phase-2 front points of v1's own search, whose stages hold
thirds of layers unevenly (``units_per_layer: 3``, ``uneven_pipeline``): pipeline degrees such as
144 for GPT-3's 96 layers, which :mod:`chipletcloud.perf.des` cannot place (``invalid mapping``).
The hop-latency study pruned every design away on v1, which times no operation latency (the
bound equal to the optimum but for rounding).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from chipletcloud.baselines import asic_validation as av
from chipletcloud.config import HardwareSpace
from chipletcloud.explore import software
from chipletcloud.explore.hardware import explore_hardware
from chipletcloud.models.catalogue import load_model
from chipletcloud.perf import des

#: 16 candidates, 2 valid servers under v1 (both with 152+ chips a server)
SPACE = HardwareSpace(
    die_area_mm2=[140, 300],
    mac_ratio=[0.05, 0.1],
    operational_intensity=[2, 8],
    packages_per_lane=[6, 12],
)


@pytest.fixture(scope="module")
def table(v1):
    t = explore_hardware(SPACE, v1).table
    assert len(t["server_id"]) >= 1
    return t


def _row(table, v1, d):
    system, _ = software.system_from_servers(table, v1)
    return system.take(np.array([d]))


def test_v1_front_holds_points_the_event_simulation_cannot_place(table, v1):
    """The cause: v1's own front for GPT-3 has pipeline degrees not dividing its 96 layers, and
    the simulation refuses them (the traceback of the issue)."""
    res = software.search(table, load_model("gpt3"), v1, fast=False)
    f = res.front
    assert res.shape.num_layers == 96
    bad = []
    for _label, i in av.pick_front_points(f, 3):
        point = {k: int(f[k][i]) for k in des.MAPPING_KEYS}
        system = _row(table, v1, int(f["design"][i]))
        reason = av.des_mapping_issue(system, res.shape, **point)
        if reason is not None:
            bad.append((point, reason))
            with pytest.raises(ValueError, match="invalid mapping"):
                des.simulate_des(system, res.shape, software.workload(v1.preset.workload), **point)
    assert bad, "the v1 front no longer has uneven stages: the regression case is gone"
    for point, reason in bad:
        assert 96 % point["pp"] != 0
        assert reason == f"pp={point['pp']} does not divide the 96 layers into equal stages"


def test_des_search_params_cuts_v1_to_equal_whole_layer_stages(v1):
    p, unchanged = av.des_search_params(v1)
    assert unchanged is False
    s = p.preset.search
    assert (s.units_per_layer, s.uneven_pipeline, s.balance_stages) == (1, False, False)
    assert s.kv_modes == ["replicate"]
    assert s.batch_sizes == v1.preset.search.batch_sizes  # the rest as the preset has it
    assert p.choices.latency_model == "v1" and p.preset.name == "v1"
    again, unchanged = av.des_search_params(p)
    assert unchanged is True and again is p


def test_event_level_check_runs_on_v1(table, v1):
    """The validation step's check on the v1 preset: every picked point simulated, on a mapping
    the simulation places, and the analytic and event-level time per token equal where no link
    is involved (GPT-2's latency optimum: one server, one stage)."""
    details: list = []
    recs = av.asic_cases(
        table, v1, models=("gpt3", "gpt2"), n_points=3, details=details, fast=False
    )
    assert len(recs) == 2 * len(details) and len(details) >= 4
    for r in recs:
        assert r["note"] == ""
        assert r["measured"] > 0 and r["predicted"] > 0
        assert r["error"] == pytest.approx(r["predicted"] / r["measured"] - 1)
    layers = {"gpt3": 96, "gpt2": 48}
    for d in details:
        assert layers[d["model"]] % d["pp"] == 0
        assert d["tp"] == d["servers"] * d["chips_per_server"] // d["pp"] >= 1
    lat = next(d for d in details if d["model"] == "gpt2" and d["point"] == "latency")
    assert (lat["servers"], lat["pp"]) == (1, 1)
    assert abs(lat["error_tpot_s"]) < 1e-9


def test_a_point_the_simulation_cannot_run_is_a_table_row_not_a_traceback(
    table, v1, monkeypatch, tmp_path
):
    """With v1's uneven search let through, the points the simulation cannot place come back as
    records whose ``note`` gives the reason (NaN measured and error), the median skips them, and
    the validation table of ``reproduce`` carries the note."""
    from chipletcloud.report.reproduce import _write_tables
    from chipletcloud.report.store import read_parquet

    monkeypatch.setattr(av, "des_search_params", lambda p: (p, True))
    recs = av.asic_cases(table, v1, models=("gpt3",), n_points=3, fast=False)
    skipped = [r for r in recs if r["note"]]
    run = [r for r in recs if not r["note"]]
    assert skipped and run
    for r in skipped:
        assert r["note"].startswith("not simulated at event level: pp=")
        assert r["note"].endswith("does not divide the 96 layers into equal stages")
        assert math.isnan(r["measured"]) and math.isnan(r["error"])
    monkeypatch.setattr(av, "asic_cases", lambda *a, **k: recs)
    median = av.asic_validation(table, v1)["asic_median_abs_error"]
    assert median == pytest.approx(float(np.median([abs(r["error"]) for r in run])))

    summary = {
        "studies": {},
        "sparsity": {"tco_vs_sparsity": []},
        "validation": {"cases": [], "asic_cases": recs, "asic_measured": []},
        "compare": {"models": {}},
    }
    _write_tables(summary, tmp_path)
    t = read_parquet(tmp_path / "tables" / "asic_validation.parquet")
    assert list(t["note"]) == [r["note"] for r in recs]


def test_des_mapping_issue_reasons(table, v1):
    shape = software.model_shape(load_model("gpt2"), v1.preset.workload)
    system = _row(table, v1, 0)
    cps = int(system.chips_per_server[0])
    ok = {"servers": 1, "pp": 1, "batch": 8, "micro_batch": 2}
    assert av.des_mapping_issue(system, shape, **ok) is None
    assert av.des_mapping_issue(system, shape, **{**ok, "pp": cps + 1}) == (
        f"1 servers x {cps} chips give no chip to each of {cps + 1} pipeline stages"
    )
    assert av.des_mapping_issue(system, shape, **{**ok, "pp": 5}) == (
        "pp=5 does not divide the 48 layers into equal stages"
    )
    assert av.des_mapping_issue(system, shape, **{**ok, "micro_batch": 3}) == (
        "micro-batch 3 does not divide batch 8"
    )
    assert av.des_mapping_issue(system, shape, **{**ok, "servers": 0}) == (
        f"0 servers x {cps} chips give no chip to each of 1 pipeline stages"
    )


def test_hop_latency_study_on_v1_keeps_the_optimum(table, v1):
    """v1 times no operation latency, so the row with the measured SRAM machines' latency has
    the preset's optimum; its pruning bound (the reference's card) fell one rounding below the
    numba search's best of that design and left no design to search (``a servers table with at
    least one valid server``: GPT-3 on this table)."""
    from chipletcloud.studies import core as studies

    st = studies.hop_latency_study(table, {"gpt3": load_model("gpt3")}, v1, op_latency_s=4.31e-6)
    rows = st["rows"]
    op = [r for r in rows if r["op_latency_s"] > 0]
    base = [r for r in rows if r["preset_default"] and r["op_latency_s"] == 0]
    assert len(op) == 1 and len(base) == 1
    assert op[0]["designs"] >= 1
    assert op[0]["usd_per_million_tokens"] == pytest.approx(
        base[0]["usd_per_million_tokens"], rel=1e-9
    )
