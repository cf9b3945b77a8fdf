"""The attribution study in the report: its waterfall data, static and interactive figures,
caption, tables, place in ``report.html`` and Parquet rows, from a small hand-made study (no
search); and ``reproduce --attribute`` passed through to the run."""

from __future__ import annotations

import math

import numpy as np
import pytest

from chipletcloud.cli import main
from chipletcloud.errors import InputError
from chipletcloud.report import plotdata, sections
from chipletcloud.report import reproduce as reproduce_module
from chipletcloud.report.figures import attribution_figure, write_all_figures
from chipletcloud.report.html import write_report
from chipletcloud.report.plotly_figures import attribution_plot, plotly_figures
from chipletcloud.report.reproduce import attribution_rows
from chipletcloud.report.store import read_parquet, write_parquet

SWITCHES = (
    "server_grid",
    "stage_transfer",
    "link_latency",
    "collectives",
    "prefill_charged",
    "sram_area_model",
    "host_cost",
    "power_provisioning",
    "chip_power",
)
# gpt3: from $0.09, each switch's cost factor (None: no design holds the model after it)
GPT3 = (1.10, 1.10, 1.50, 0.90, 1.60, 0.85, 1.02, 1.40, 1.00)
# llama2-70b: a shorter walk (five switches), a step without a design, then a fresh cost
LLAMA = (0.50, None, 0.04, 1.20, 1.30)


def _step(switch, usd, change, i):
    held = usd is not None
    return {
        "switch": switch,
        "summary": f"what {switch} changes",
        "usd_per_million_tokens": usd,
        "die_area_mm2": 100.0 + 20 * i if held else None,
        "chips_per_server": 64 + 8 * i if held else None,
        "mac_ratio": 0.2 if held else None,
        "operational_intensity": 1.0 if held else None,
        "servers": 48 if held else None,
        "tp": 64 if held else None,
        "pp": 96 if held else None,
        "batch": 512 if held else None,
        "micro_batch": 4 if held else None,
        "latency_s_per_token": 0.005 if held else None,
        "throughput_tokens_per_s": 1e5 if held else None,
        "server_cost_usd": 5000.0 if held else None,
        "change": change,
    }


def _walk(model, start, factors):
    """A walk as ``attribute`` returns it; a factor below 0.1 is taken as a fresh cost (the
    step after one without a design, whose change is None)."""
    steps = [_step("authors", start, None, 0)]
    cost = start
    for i, (name, f) in enumerate(zip(SWITCHES, factors, strict=False), start=1):
        if f is None:
            cost, change = None, None
        elif cost is None:
            cost, change = f, None
        else:
            cost, change = cost * f, f - 1.0
        steps.append(_step(name, cost, change, i))
    return {"model": model, "base": "isca24", "steps": steps}


def make_study() -> dict:
    return {
        "models": {
            "gpt3": _walk("gpt3", 0.09, GPT3),
            "llama2-70b": _walk("llama2-70b", 0.05, LLAMA),
        }
    }


def make_summary() -> dict:
    return {"studies": {"attribution": make_study()}}


# ------------------------------------------------------------------------------------- absence

EMPTY_WALK = {"models": {"gpt3": {"model": "gpt3", "base": "isca24", "steps": []}}}


@pytest.mark.parametrize(
    "summary",
    [
        {},
        {"studies": {}},
        {"studies": {"attribution": None}},
        {"studies": {"attribution": {"models": {}}}},
        {"studies": {"attribution": EMPTY_WALK}},
    ],
)
def test_nothing_without_the_study(summary, tmp_path):
    assert plotdata.attribution_data(summary, tmp_path) is None
    assert attribution_figure(summary, tmp_path) == []
    assert not (tmp_path / "figures" / "attribution.png").exists()
    assert attribution_plot(summary, tmp_path) is None
    assert "attribution" not in sections.captions(summary)
    assert sections.attribution_tables(summary) is None
    html = write_report(summary, tmp_path).read_text(encoding="utf-8")
    assert 'id="attribution"' not in html and 'href="#attribution"' not in html
    assert attribution_rows(summary.get("studies", {}).get("attribution")) == []


# ------------------------------------------------------------------------------------ plot data


def test_waterfall_bars(tmp_path):
    d = plotdata.attribution_data(make_summary(), tmp_path)
    gpt3, llama = d.panels
    assert (gpt3.model, gpt3.base, llama.model) == ("gpt3", "isca24", "llama2-70b")
    assert [b.label for b in gpt3.bars] == ["authors", *SWITCHES, "isca24"]
    kinds = [b.kind for b in gpt3.bars]
    assert kinds == ["start", "up", "up", "up", "down", "up", "down", "up", "up", "up", "end"]
    costs = np.cumprod([0.09, *GPT3])
    first, last = gpt3.bars[0], gpt3.bars[-1]
    assert (first.bottom, first.top, first.text) == (0.0, 0.09, "$0.09")
    assert (last.bottom, last.text) == (0.0, "$0.286") and last.top == pytest.approx(costs[-1])
    link = gpt3.bars[3]  # floats from the previous cost to its own
    assert (link.bottom, link.top) == pytest.approx((costs[2], costs[3]))
    assert link.text == "×1.50" and link.change == pytest.approx(0.5)
    assert gpt3.bars[4].text == "×0.90" and gpt3.bars[4].colour != link.colour
    assert gpt3.bars[9].text == "×1.00"
    assert link.details[:2] == [160.0, 88.0] and link.details[-1] == pytest.approx(5.0)  # ms
    assert not gpt3.y_log and gpt3.y_range[0] == 0.0 and gpt3.y_range[1] > costs.max()
    # llama2-70b: no design after stage_transfer, link_latency starts again from the floor
    assert [b.kind for b in llama.bars] == [
        "start",
        "down",
        "missing",
        "restart",
        "up",
        "up",
        "end",
    ]
    missing, restart = llama.bars[2], llama.bars[3]
    assert missing.text == "no design" and math.isnan(missing.top)
    assert (restart.bottom, restart.top, restart.text) == (0.0, 0.04, "$0.04")
    assert math.isnan(restart.change)
    assert [label for label, _ in d.legend][-1] == "after a step without a design"
    assert d.missing == []


def test_log_axis_for_a_wide_span(tmp_path):
    study = {"models": {"palm": _walk("palm", 0.01, (4.0, 5.0))}}  # 0.01 -> 0.2: 20x
    (panel,) = plotdata.attribution_data({"studies": {"attribution": study}}, tmp_path).panels
    assert panel.y_log and panel.floor == pytest.approx(0.005)
    assert panel.bars[0].bottom == panel.bars[-1].bottom == panel.floor
    assert panel.y_range[0] == panel.floor and panel.y_range[1] > 0.2


def test_a_model_without_any_design(tmp_path):
    study = make_study()
    study["models"]["palm"] = _walk("palm", None, (None, None))
    d = plotdata.attribution_data({"studies": {"attribution": study}}, tmp_path)
    assert [p.model for p in d.panels] == ["gpt3", "llama2-70b"] and d.missing == ["palm"]


# -------------------------------------------------------------------------------------- figures


def test_static_figure_written(tmp_path):
    paths = attribution_figure(make_summary(), tmp_path)
    assert [p.name for p in paths] == ["attribution.png", "attribution.svg"]
    png = paths[0].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert b"<svg" in paths[1].read_bytes()[:1000]
    names = [p.name for p in write_all_figures(make_summary(), tmp_path / "all")]
    assert names == ["attribution.png", "attribution.svg"]


def test_interactive_waterfalls(tmp_path):
    fig = attribution_plot(make_summary(), tmp_path)
    assert [a.text for a in fig.layout.annotations if "→" in (a.text or "")] == [
        "gpt3: the authors' code → isca24",
        "llama2-70b: the authors' code → isca24",
    ]
    row1 = [t for t in fig.data if t.xaxis == "x"]
    bars = {
        x: (b, y, t) for tr in row1 for x, b, y, t in zip(tr.x, tr.base, tr.y, tr.text, strict=True)
    }
    assert set(bars) == {"authors", *SWITCHES, "isca24"}
    costs = np.cumprod([0.09, *GPT3])
    b, y, t = bars["link_latency"]
    assert (b, b + y, t) == pytest.approx((costs[2], costs[3], "×1.50"))
    b, y, t = bars["collectives"]  # a decrease: from its own cost up to the previous one
    assert (b, b + y) == pytest.approx((costs[4], costs[3]))
    assert bars["authors"][:2] == (0.0, 0.09)
    assert list(fig.layout.xaxis.categoryarray) == ["authors", *SWITCHES, "isca24"]
    assert sum(t.showlegend for t in fig.data) == 4  # start/end, up, down, restart
    assert [a.text for a in fig.layout.annotations if a.text == "no design"] == ["no design"]
    assert fig.layout.yaxis.type == fig.layout.yaxis2.type == "linear"
    assert len([s for s in fig.layout.shapes if s.xref == "x"]) == 10  # connectors
    assert "attribution" in plotly_figures(make_summary(), tmp_path)


# ---------------------------------------------------------------------------- caption and table


def test_caption_names_the_three_largest_steps():
    cap = sections.captions(make_summary())["attribution"]
    # by hand: gpt3 0.09 x 1.1 x 1.1 x 1.5 x 0.9 x 1.6 x 0.85 x 1.02 x 1.4 x 1.0: 0.099, 0.1089,
    # 0.16335, 0.14702, 0.23522, 0.19994, 0.20394, 0.28551, 0.28551 (x3.17 in all);
    # largest |log factor|: prefill_charged 1.6 (0.47), link_latency 1.5 (0.41),
    # power_provisioning 1.4 (0.34), then sram_area_model 0.85 (0.16)
    assert (
        "gpt3: $0.09 per 1M tokens at the authors' code's behaviour, $0.286 at isca24 "
        "(×3.17 in all); largest steps prefill_charged ×1.60, link_latency ×1.50, "
        "power_provisioning ×1.40." in cap
    )
    # llama2-70b 0.05 -> 0.025 (x0.5), none, 0.04, 0.048 (x1.2), 0.0624 (x1.3): the halving
    # is the largest; the restart has no factor
    assert (
        "llama2-70b: $0.05 per 1M tokens at the authors' code's behaviour, $0.0624 at isca24 "
        "(×1.25 in all); largest steps server_grid ×0.50, prefill_charged ×1.30, "
        "collectives ×1.20; no design holds it at stage_transfer." in cap
    )


def test_table_rows_are_the_steps():
    summary = make_summary()
    tables = sections.attribution_tables(summary)
    assert [t["model"] for t in tables] == ["gpt3", "llama2-70b"]
    for t, walk in zip(tables, make_study()["models"].values(), strict=True):
        assert [r["step"] for r in t["rows"]] == [s["switch"] for s in walk["steps"]]
        assert [r["last"] for r in t["rows"]] == [False] * (len(t["rows"]) - 1) + [True]
    gpt3 = tables[0]["rows"]
    assert gpt3[0]["usd"] == "$0.09" and gpt3[0]["change"] == ""
    assert gpt3[3] == {
        "step": "link_latency",
        "summary": "what link_latency changes",
        "usd": "$0.163",
        "change": "+50.0%",
        "die": "160",
        "chips": "88",
        "tp_pp": "64 × 96",
        "batch": "512",
        "last": False,
    }
    llama = tables[1]["rows"]
    assert (llama[2]["usd"], llama[2]["tp_pp"], llama[3]["change"]) == ("—", "—", "—")
    assert len(sections.ATTRIBUTION_HEADERS) == 7


def test_in_the_report(tmp_path):
    summary = make_summary()
    write_all_figures(summary, tmp_path)
    html = write_report(summary, tmp_path).read_text(encoding="utf-8")
    assert 'id="plot-attribution"' in html and 'href="#attribution"' in html
    assert 'id="attribution-table-1"' in html and 'id="attribution-table-2"' in html
    assert "largest steps prefill_charged ×1.60" in html
    assert "attribution.png" in html  # listed among the static figures
    assert "study_attribution.parquet" not in html
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "study_attribution.parquet").write_bytes(b"")
    assert "study_attribution.parquet" in write_report(summary, tmp_path).read_text("utf-8")


# ------------------------------------------------------------------------- table file and CLI


def test_parquet_rows(tmp_path):
    rows = attribution_rows(make_study())
    assert len(rows) == 10 + 6
    assert [r["step"] for r in rows[:3]] == [0, 1, 2] and rows[10]["model"] == "llama2-70b"
    cols = {k: np.asarray([r[k] for r in rows]) for k in rows[0]}
    back = read_parquet(write_parquet(cols, tmp_path / "study_attribution.parquet"))
    assert back["switch"][3] == "link_latency" and back["change"][3] == pytest.approx(0.5)
    assert back["usd_per_million_tokens"].dtype == float
    assert math.isnan(back["change"][0]) and math.isnan(back["usd_per_million_tokens"][12])


@pytest.mark.parametrize(
    "args, models",
    [
        ([], ("gpt3",)),
        (["--attribute", "none"], ()),
        (["--attribute", "gpt3", "--attribute", "palm"], ("gpt3", "palm")),
    ],
)
def test_cli_passes_attribute_through(args, models, tmp_path, monkeypatch):
    seen = {}

    def fake(out_dir, **kw):
        seen.update(kw)
        raise InputError("stop", "here", "nothing")  # the run itself is not under test

    monkeypatch.setattr(reproduce_module, "reproduce", fake)
    assert main(["reproduce", "--quick", "--out", str(tmp_path / "r"), *args]) == 2
    assert seen["attribute_models"] == models
