"""The 2026 model set and the context-length study in the report: plot data, static and
interactive figures, tables, sentences and their place in ``report.html``, from a small synthetic
summary shaped as ``reproduce`` writes it (no search)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from chipletcloud.report import plotdata, sections
from chipletcloud.report.figures import context_figure, model_sets_figure, write_all_figures
from chipletcloud.report.html import write_report
from chipletcloud.report.plotly_figures import context_plot, model_sets_plot, plotly_figures
from chipletcloud.report.reproduce import _write_tables
from chipletcloud.report.store import read_parquet, write_parquet


def _card(usd, ms, die, cps, servers, tp, pp, batch):
    return {
        "server_id": 1000 + int(die),
        "die_area_mm2": die,
        "sram_mb_per_chip": die * 1.6,
        "tflops_per_chip": die / 8,
        "chips_per_server": cps,
        "servers": servers,
        "tp": tp,
        "pp": pp,
        "batch": batch,
        "micro_batch": 1,
        "latency_s_per_token": ms / 1e3,
        "usd_per_million_tokens": usd,
    }


def _base(device, kind, usd, cc):
    return {
        "device": device,
        "kind": kind,
        "usd_per_million_tokens": usd,
        "ratio": usd / cc,
        "devices": 8,
        "tp": 8,
        "pp": 1,
        "batch": 256,
        "latency_s_per_token": 0.03,
    }


#: model -> TCO-optimal card (None: no design fits) and baselines (device, kind, USD per 1M)
SET_2026 = {
    "deepseek-v3": (
        _card(0.2677, 9.1, 200.0, 64, 40, 64, 40, 1024),
        [
            ("a100-80gb", "rented", 3.91),
            ("h100-sxm", "rented", 2.45),
            ("a100-80gb", "fabricated", 0.981),
            ("tpu-v4", "fabricated", 0.612),
        ],
    ),
    "mixtral-8x7b": (
        _card(0.0283, 3.2, 160.0, 76, 2, 38, 4, 512),
        [
            ("a100-80gb", "rented", 0.91),
            ("h100-sxm", "rented", 0.62),
            ("a100-80gb", "fabricated", 0.118),
            ("h100-sxm", "fabricated", 0.0905),
        ],
    ),
    "llama3.1-405b": (None, []),
}


def make_model_set() -> dict:
    optimal, per_model = {}, {}
    for m, (card, base) in SET_2026.items():
        optimal[m] = {
            "tco_optimal": card,
            "latency_optimal": card,
            "pareto_points": 30 if card else 0,
            "evaluated_points": 10_000,
        }
        if card is None:
            per_model[m] = {
                "chiplet_cloud_usd_per_million_tokens": None,
                "baselines": {},
                "note": "fits no Chiplet Cloud design",
            }
            continue
        cc = card["usd_per_million_tokens"]
        per_model[m] = {
            "chiplet_cloud_usd_per_million_tokens": cc,
            "chiplet_cloud_design": card,
            "baselines": {f"{d}-{k}": _base(d, k, usd, cc) for d, k, usd in base},
        }
    portfolio = {
        "best_server_id": 1160,
        "die_area_mm2": 160.0,
        "geomean_efficiency": 0.871,
        "per_model": {
            "deepseek-v3": {
                "usd_per_million_tokens": 0.301,
                "own_optimum_usd_per_million_tokens": 0.2677,
                "loss_factor": 1.124,
            },
            "mixtral-8x7b": {
                "usd_per_million_tokens": 0.0283,
                "own_optimum_usd_per_million_tokens": 0.0283,
                "loss_factor": 1.0,
            },
        },
    }
    return {
        "models": list(SET_2026),
        "optimal": optimal,
        "compare": {"preset": "isca24", "models": per_model, "summary": {}},
        "portfolio": portfolio,
    }


def _cheap(device, usd, devices=2, batch=64):
    return {"device": device, "usd_per_million_tokens": usd, "devices": devices, "batch": batch}


def _ctx_row(model, context, cc, rented, fabricated, kv_limit=None, **design):
    row = {
        "model": model,
        "context": context,
        "kv_bytes_per_sequence": context * 327_680.0,
        "cc_usd_per_million_tokens": cc,
        "designs_searched": 1024,
        "cheapest_rented": rented,
        "cheapest_fabricated": fabricated,
    }
    if cc is not None:
        row.update(
            servers=design.get("servers", 10),
            chips=design.get("chips", 640),
            die_area_mm2=design.get("die", 160.0),
            sram_mb_per_chip=256.0,
            batch=design.get("batch", 256),
            tp=design.get("tp", 64),
            pp=design.get("pp", 10),
            latency_s_per_token=design.get("ms", 7.0) / 1e3,
            sram_bytes=1.7e11,
            kv_share_of_sram=design.get("kv_share", 0.41),
            weight_share_of_sram=0.55,
            kv_limit_tokens=kv_limit,
        )
    fab = (fabricated or {}).get("usd_per_million_tokens")
    row["fabricated_over_cc"] = fab / cc if fab and cc else None
    return row


def make_context_study() -> dict:
    """llama3.1-70b: Chiplet Cloud cheapest at 2k and 8k, a fabricated B200 cheaper from 32k;
    deepseek-v3: Chiplet Cloud cheapest wherever it fits, no design at 128k. Rows out of order."""
    rows = [
        _ctx_row(
            "llama3.1-70b",
            32768,
            44.78,
            _cheap("mi325x", 52.4),
            _cheap("b200", 12.97),
            kv_limit=685_201,
            die=240.0,
            batch=16,
            kv_share=0.83,
        ),
        _ctx_row(
            "llama3.1-70b",
            2048,
            0.212,
            _cheap("mi325x", 0.839, 1, 128),
            _cheap("gb200-nvl72", 0.475, 2, 256),
            kv_limit=1_309_882,
        ),
        _ctx_row(
            "llama3.1-70b",
            8192,
            1.31,
            _cheap("mi325x", 3.99),
            _cheap("gb200-nvl72", 2.27),
            kv_limit=1_309_882,
        ),
        _ctx_row(
            "llama3.1-70b",
            131072,
            484.5,
            _cheap("mi325x", 193.6, 2, 4),
            _cheap("b200", 111.2, 2, 4),
            kv_limit=1_055_063,
        ),
        _ctx_row(
            "deepseek-v3",
            2048,
            0.301,
            _cheap("mi325x", 0.9, 8, 1024),
            _cheap("gb200-nvl72", 0.675, 16, 1024),
            kv_limit=9_695_706,
        ),
        _ctx_row(
            "deepseek-v3",
            8192,
            1.52,
            _cheap("mi325x", 4.01),
            _cheap("gb200-nvl72", 2.77),
            kv_limit=19_231_415,
        ),
        _ctx_row(
            "deepseek-v3",
            32768,
            9.8,
            _cheap("mi325x", 26.8),
            _cheap("gb200-nvl72", 17.2),
            kv_limit=38_332_978,
        ),
        _ctx_row(
            "deepseek-v3", 131072, None, _cheap("mi325x", 277.2), _cheap("gb200-nvl72", 169.4)
        ),
    ]
    return {
        "output_tokens": 256,
        "contexts": [2048, 8192, 32768, 131072],
        "models": ["llama3.1-70b", "deepseek-v3"],
        "devices": ["a100-80gb", "b200", "gb200-nvl72", "h100-sxm", "mi325x", "tpu-v4"],
        "rows": rows,
        "summary": {
            "llama3.1-70b": {
                "kv_limit_tokens": 1_309_882,
                "kv_limit_of_context": 2048,
                "crossover_context": 32768,
            },
            "deepseek-v3": {
                "kv_limit_tokens": 9_695_706,
                "kv_limit_of_context": 2048,
                "crossover_context": None,
            },
        },
        "source": "[D] test",
    }


def make_summary() -> dict:
    return {
        "model_sets": {"2026": make_model_set()},
        "studies": {"context": make_context_study()},
    }


LLAMA_LINE = (
    "llama3.1-70b: the 2k-context optimum's SRAM holds one sequence's KV cache beside the "
    "weights up to 1,309,882 tokens; a fabricated device is first cheaper at 32k (b200, $13 "
    "against Chiplet Cloud's $44.8 per 1M tokens)"
)
DEEPSEEK_LINE = (
    "deepseek-v3: the 2k-context optimum's SRAM holds one sequence's KV cache beside the "
    "weights up to 9,695,706 tokens; Chiplet Cloud stays the cheapest up to 32k (no Chiplet "
    "Cloud design fits at 128k)"
)


# ------------------------------------------------------------------------------------ plot data


def test_model_sets_data():
    d = plotdata.model_sets_data(make_summary(), None)
    (panel,) = d.panels
    assert (panel.name, panel.title) == ("2026", "2026 models")
    assert panel.models == ["deepseek-v3", "mixtral-8x7b", "llama3.1-405b"]
    series = {s.key: s for s in panel.series}
    assert [s.key for s in panel.series] == ["cc", "fabricated", "rented"]
    assert series["cc"].usd[:2] == [0.2677, 0.0283] and math.isnan(series["cc"].usd[2])
    # the cheapest of each kind among the comparison's baselines, with its device
    assert series["fabricated"].usd[:2] == [0.612, 0.0905]
    assert series["fabricated"].devices == ["tpu-v4", "h100-sxm", ""]
    assert series["rented"].usd[:2] == [2.45, 0.62]
    assert panel.missing == ["llama3.1-405b"]
    assert series["cc"].dashed is False and series["rented"].dashed is True
    assert plotdata.model_sets_data({"model_sets": {}}, None) is None


def test_context_data_lines_by_context():
    d = plotdata.context_data(make_summary(), None)
    assert d.x_ticks == [2048, 8192, 32768, 131072]
    assert d.x_tick_labels == ["2k", "8k", "32k", "128k"]
    assert "256 output tokens" in d.title
    llama, deepseek = d.panels
    assert llama.model == "llama3.1-70b" and llama.no_fit == [] and llama.title == "llama3.1-70b"
    lines = {s.key: s for s in llama.series}
    assert lines["cc"].x == [2048, 8192, 32768, 131072]  # sorted by context
    assert lines["cc"].usd == [0.212, 1.31, 44.78, 484.5]
    assert lines["fabricated"].devices == ["gb200-nvl72", "gb200-nvl72", "b200", "b200"]
    assert lines["rented"].usd == [0.839, 3.99, 52.4, 193.6]
    # Chiplet Cloud fits nothing at 128k for deepseek-v3: the point is left off its line only
    ds = {s.key: s for s in deepseek.series}
    assert ds["cc"].x == [2048, 8192, 32768] and ds["fabricated"].x[-1] == 131072
    assert deepseek.no_fit == [131072]
    assert deepseek.title == "deepseek-v3 (no Chiplet Cloud design at 128k)"


def test_context_row_without_a_chiplet_cloud_design_is_skipped(tmp_path):
    study = make_context_study()
    study["models"] = ["gpt-oss-120b"]
    study["rows"] = [
        _ctx_row("gpt-oss-120b", 4096, None, _cheap("mi325x", 0.5), None),
        _ctx_row("gpt-oss-120b", 1024, None, None, None),
    ]
    study["summary"] = {
        "gpt-oss-120b": {
            "kv_limit_tokens": None,
            "kv_limit_of_context": None,
            "crossover_context": None,
        }
    }
    summary = {"studies": {"context": study}}
    d = plotdata.context_data(summary, tmp_path)
    (panel,) = d.panels
    assert panel.no_fit == [1024, 4096]
    assert [s.key for s in panel.series] == ["rented"]  # no line without a point
    assert panel.series[0].x == [4096] and panel.series[0].devices == ["mi325x"]
    assert d.x_tick_labels == ["1k", "4k"]
    assert sections.context_lines(summary) == [
        "gpt-oss-120b: no Chiplet Cloud design fits at any context"
    ]
    rows = sections.context_table(summary)["rows"]
    assert [(r["context"], r["cc"], r["die"]) for r in rows] == [
        ("1k", "no design", "—"),
        ("4k", "no design", "—"),
    ]
    assert rows[0]["fabricated"] == {"usd": "—", "device": "", "ratio": ""}
    assert [p.name for p in context_figure(summary, tmp_path)] == ["context.png", "context.svg"]
    fig = context_plot(summary, tmp_path)
    assert [t.name for t in fig.data] == ["cheapest rented device"]


def test_no_data_without_the_sections(tmp_path):
    for summary in ({}, {"model_sets": None, "studies": {"context": {"rows": []}}}):
        assert plotdata.model_sets_data(summary, tmp_path) is None
        assert plotdata.context_data(summary, tmp_path) is None
        assert model_sets_figure(summary, tmp_path) == context_figure(summary, tmp_path) == []
        assert (
            model_sets_plot(summary, tmp_path) is None and context_plot(summary, tmp_path) is None
        )
        assert sections.model_set_tables(summary) is None
        assert sections.context_table(summary) is None and sections.context_lines(summary) == []
        assert "context" not in sections.captions(summary)


# ------------------------------------------------------------------------------------- sections


def test_context_lines_from_the_summary():
    assert sections.context_lines(make_summary()) == [LLAMA_LINE, DEEPSEEK_LINE]


def test_context_line_rented_cheaper():
    summary = make_summary()
    study = summary["studies"]["context"]
    study["summary"]["llama3.1-70b"]["crossover_context"] = None
    for r in study["rows"]:
        if r["model"] == "llama3.1-70b":
            r["cheapest_fabricated"] = None
    line = sections.context_lines(summary)[0]
    # the rented MI325X: dearer than Chiplet Cloud up to 32k (52.4 > 44.78), cheaper at 128k
    assert line.endswith(
        "; no fabricated device is cheaper than Chiplet Cloud up to 128k, a rented one is first "
        "at 128k"
    )


def test_context_table():
    rows = sections.context_table(make_summary())["rows"]
    assert [(r["model"], r["context"]) for r in rows[:4]] == [
        ("llama3.1-70b", "2k"),
        ("llama3.1-70b", "8k"),
        ("llama3.1-70b", "32k"),
        ("llama3.1-70b", "128k"),
    ]
    r = rows[2]
    assert (r["cc"], r["die"], r["chips"], r["tp_pp"], r["batch"], r["ms"]) == (
        "$44.8",
        "240",
        "640",
        "64 × 10",
        "16",
        "7",
    )
    assert (r["kv_share"], r["kv_limit"], r["ratio"]) == ("83.0%", "685,201", "0.29×")
    assert r["fabricated"]["usd"] == "$13" and r["fabricated"]["device"] == "b200"
    assert r["rented"] == {"usd": "$52.4", "device": "mi325x", "ratio": ""}
    assert rows[-1]["cc"] == "no design" and rows[-1]["ratio"] == "—"


def test_model_set_tables():
    (t,) = sections.model_set_tables(make_summary())
    assert (t["name"], t["id"]) == ("2026", "model-set-2026")
    assert t["headers"] == [
        "die mm²",
        "chips/server",
        "servers",
        "TP",
        "PP",
        "batch",
        "$ / 1M tokens",
        "ms/token",
    ]
    rows = {r["model"]: r for r in t["rows"]}
    assert rows["mixtral-8x7b"]["cells"] == ["160", "76", "2", "38", "4", "512", "$0.0283", "3.2"]
    # the cheapest of each kind and its cost over Chiplet Cloud's: 0.62 / 0.0283, 0.0905 / 0.0283
    assert rows["mixtral-8x7b"]["rented"] == {
        "usd": "$0.62",
        "device": "h100-sxm",
        "ratio": "21.9×",
    }
    assert rows["mixtral-8x7b"]["fabricated"] == {
        "usd": "$0.0905",
        "device": "h100-sxm",
        "ratio": "3.2×",
    }
    assert rows["deepseek-v3"]["fabricated"]["ratio"] == "2.3×"  # 0.612 / 0.2677
    assert rows["llama3.1-405b"]["cells"] == ["—"] * 8
    assert rows["llama3.1-405b"]["note"] == "fits no Chiplet Cloud design"
    assert t["portfolio"]["best_server_id"] == 1160
    assert [m for m, _ in t["portfolio_rows"]] == ["deepseek-v3", "mixtral-8x7b"]


# ------------------------------------------------------------------------------ figures, report


def test_figures_and_report(tmp_path):
    summary = make_summary()
    names = [p.name for p in write_all_figures(summary, tmp_path)]
    assert names == ["model_sets.png", "model_sets.svg", "context.png", "context.svg"]
    for stem in ("model_sets", "context"):
        png = (tmp_path / "figures" / f"{stem}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
        assert b"<svg" in (tmp_path / "figures" / f"{stem}.svg").read_bytes()[:1000]
    figs = plotly_figures(summary, tmp_path)
    assert set(figs) == {"model_sets", "context"}
    ctx = figs["context"]
    assert ctx.layout.xaxis.type == "log" and ctx.layout.yaxis.type == "log"
    assert list(ctx.layout.xaxis.ticktext) == ["2k", "8k", "32k", "128k"]
    dashes = {t.name: t.line.dash for t in ctx.data}
    assert dashes == {
        "Chiplet Cloud": "solid",
        "cheapest fabricated device": "dash",
        "cheapest rented device": "dash",
    }
    assert sum(t.showlegend for t in ctx.data) == 3  # one legend entry a system

    (tmp_path / "tables").mkdir()
    for name in ("study_context", "compare_2026"):
        (tmp_path / "tables" / f"{name}.parquet").write_bytes(b"")
    html = write_report(summary, tmp_path).read_text(encoding="utf-8")
    # the 2026 section: its table, the cheapest devices and the shared design
    assert "2026 models: TCO-optimal designs against the cheapest GPU/TPU" in html
    assert 'href="#model-set-2026"' in html and 'id="model-set-2026-table"' in html
    assert 'id="plot-model_sets"' in html and "model_sets.png" in html
    assert "$0.0283" in html and "<b>21.9×</b>" in html and "(h100-sxm)" in html
    assert "fits no Chiplet Cloud design" in html
    assert "One server design for the 2026 models" in html and "#1160" in html
    assert "87.1%" in html and "1.12&times;" in html
    assert "tables/compare_2026.parquet" in html
    # the context section: the sentences, the table, the figure
    assert "Cost per token against context length" in html and 'href="#context"' in html
    assert 'id="plot-context"' in html and "context.png" in html
    assert f"<li>{LLAMA_LINE}.</li>".replace("'", "&#39;") in html
    assert f"<li>{DEEPSEEK_LINE}.</li>".replace("'", "&#39;") in html
    assert 'id="context-table"' in html and "685,201" in html and "$484" in html
    assert "(gb200-nvl72)" in html and "no design" in html
    assert "a prompt of (context − 256) tokens, then 256 generated tokens" in html
    assert "tables/study_context.parquet" in html
    bare = write_report({}, tmp_path / "empty").read_text(encoding="utf-8")
    assert 'id="context"' not in bare and "model-set-" not in bare


def test_pareto_leaves_set_only_fronts_to_their_section(tmp_path):
    summary = make_summary()
    summary["optimal"] = {"gpt3": {"tco_optimal": _card(0.5, 20.0, 160.0, 72, 40, 72, 40, 512)}}
    front = {
        "usd_per_million_tokens": np.array([0.5, 0.9]),
        "tpot_s": np.array([0.02, 0.01]),
        "die_area_mm2": np.array([160.0, 200.0]),
    }
    for m in ("gpt3", "mixtral-8x7b"):
        write_parquet(front, tmp_path / "fronts" / f"{m}.parquet")
    assert plotdata.set_only_models(summary) == {"deepseek-v3", "mixtral-8x7b", "llama3.1-405b"}
    d = plotdata.pareto_data(summary, tmp_path)
    assert [(m.model, m.front is not None) for m in d.models] == [("gpt3", True)]


def test_tables_written(tmp_path):
    summary = {
        **make_summary(),
        "compare": {"models": {}},
        "sparsity": {"tco_vs_sparsity": []},
        "validation": {"cases": [], "asic_cases": [], "asic_measured": []},
    }
    _write_tables(copy.deepcopy(summary), tmp_path)
    comp = read_parquet(tmp_path / "tables" / "compare_2026.parquet")
    assert list(comp["model"]) == ["deepseek-v3"] * 4 + ["mixtral-8x7b"] * 4
    assert comp["usd_per_million_tokens"][-1] == pytest.approx(0.0905)
    assert not (tmp_path / "tables" / "compare.parquet").exists()
    ctx = read_parquet(tmp_path / "tables" / "study_context.parquet")
    assert len(ctx["model"]) == 8
    i = list(ctx["context"]).index(131072.0, 4)  # deepseek-v3 at 128k: no design, NaN
    assert ctx["model"][i] == "deepseek-v3" and math.isnan(ctx["cc_usd_per_million_tokens"][i])
    assert ctx["cheapest_fabricated_device"][i] == "gb200-nvl72"
