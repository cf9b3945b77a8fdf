"""The "optimum vs hop latency" study in the report: its plot data, static and interactive
figures, caption, table and place in ``report.html``, from a tiny synthetic study (no search)."""

from __future__ import annotations

import pytest

from chipletcloud.report import plotdata, sections
from chipletcloud.report.figures import hop_latency_figure, write_all_figures
from chipletcloud.report.html import write_report
from chipletcloud.report.plotly_figures import hop_latency_plot, plotly_figures

DEFAULT = 1.126e-07
HOPS = [1e-08, DEFAULT, 1e-06, 2e-06]


def _row(model, hop, usd, die, op=0.0, **kw):
    return {
        "model": model,
        "hop_latency_s": hop,
        "preset_default": hop == DEFAULT,
        "op_latency_s": op,
        "die_area_mm2": die,
        "chips_per_server": 72,
        "servers": 500,
        "tp": 24,
        "pp": 96,
        "batch": 256,
        "usd_per_million_tokens": usd,
        "ms_per_token": 4.1,
        "allreduce_share": 0.1,
        **kw,
    }


def make_study() -> dict:
    """gpt3 at every hop latency and with the op latency; llama2-70b infeasible at 2 us (and
    without an op-latency row); palm infeasible everywhere. Rows deliberately out of order."""
    rows = [
        _row("gpt3", 2e-06, 0.42, 320.0),
        _row("gpt3", DEFAULT, 0.30, 200.0, op=4e-08),  # the op-latency variant
        _row("llama2-70b", 1e-06, 0.15, 140.0),
        _row("gpt3", 1e-08, 0.20, 120.0),
        _row("gpt3", 1e-06, 0.33, 240.0),
        _row("llama2-70b", DEFAULT, 0.11, 110.0),
        _row("gpt3", DEFAULT, 0.25, 160.0),
        _row("llama2-70b", 1e-08, 0.10, 100.0),
    ]
    return {
        "models": ["gpt3", "llama2-70b", "palm"],
        "hop_latencies_s": HOPS,
        "default_hop_latency_s": DEFAULT,
        "server_hop_latency_s": 1.3e-06,
        "collective_sync_s": 5e-07,
        "rows": rows,
    }


def make_summary() -> dict:
    return {"studies": {"hop_latency": make_study()}}


# ------------------------------------------------------------------------------------ plot data


@pytest.mark.parametrize(
    "summary",
    [
        {},
        {"studies": {}},
        {"studies": {"hop_latency": None}},
        {"studies": {"hop_latency": {**make_study(), "rows": []}}},
    ],
)
def test_no_data_without_the_study(summary, tmp_path):
    assert plotdata.hop_latency_data(summary, tmp_path) is None
    assert hop_latency_figure(summary, tmp_path) == []
    assert hop_latency_plot(summary, tmp_path) is None
    assert "hop_latency" not in sections.captions(summary)
    assert sections.hop_latency_table(summary) is None


def test_lines_sorted_by_hop_latency_variant_apart(tmp_path):
    d = plotdata.hop_latency_data(make_summary(), tmp_path)
    lines = {line.model: line for line in d.lines}
    assert list(lines) == ["gpt3", "llama2-70b"]
    assert d.missing == ["palm"]
    gpt3, llama = lines["gpt3"], lines["llama2-70b"]
    assert gpt3.hop_ns == pytest.approx([10.0, 112.6, 1000.0, 2000.0])
    assert gpt3.ys[0] == [0.20, 0.25, 0.33, 0.42]  # the variant's 0.30 is not on the line
    assert gpt3.ys[1] == [120.0, 160.0, 240.0, 320.0]
    assert llama.hop_ns == pytest.approx([10.0, 112.6, 1000.0])
    assert llama.ys == [[0.10, 0.11, 0.15], [100.0, 110.0, 140.0]]
    assert len(gpt3.details) == 4 and gpt3.details[0][0] == 4.1  # ms per token first
    (v,) = d.variants
    assert (v.model, v.ys) == ("gpt3", [0.30, 200.0])
    assert v.hop_ns == pytest.approx(112.6) and v.op_latency_ns == pytest.approx(40.0)
    assert v.colour == gpt3.colour != llama.colour
    assert d.default_ns == pytest.approx(112.6)
    assert "112.6 ns" in d.default_label
    lo, hi = d.x_range
    assert lo < 10 and hi > 2000
    assert d.y_log == (True, False)
    # the preset's tick is left to the labelled line (it would collide with 100 ns) only when
    # another hop latency is that close
    assert d.x_ticks == pytest.approx([10.0, 112.6, 1000.0, 2000.0])


def test_preset_tick_dropped_next_to_another(tmp_path):
    study = make_study()
    study["hop_latencies_s"] = [*HOPS, 1e-07]
    d = plotdata.hop_latency_data({"studies": {"hop_latency": study}}, tmp_path)
    assert d.x_ticks == pytest.approx([10.0, 100.0, 1000.0, 2000.0])


# -------------------------------------------------------------------------------------- figures


def test_static_figure_written(tmp_path):
    paths = hop_latency_figure(make_summary(), tmp_path)
    assert [p.name for p in paths] == ["hop_latency.png", "hop_latency.svg"]
    png = paths[0].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert b"<svg" in paths[1].read_bytes()[:1000]
    assert [p.name for p in write_all_figures(make_summary(), tmp_path / "all")] == [
        "hop_latency.png",
        "hop_latency.svg",
    ]


def test_interactive_traces(tmp_path):
    fig = hop_latency_plot(make_summary(), tmp_path)
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    marks = [t for t in fig.data if t.mode == "markers"]
    assert [(t.name, t.xaxis) for t in lines] == [
        ("gpt3", "x"),
        ("gpt3", "x2"),
        ("llama2-70b", "x"),
        ("llama2-70b", "x2"),
    ]
    assert list(lines[0].x) == pytest.approx([10.0, 112.6, 1000.0, 2000.0])
    assert list(lines[0].y) == [0.20, 0.25, 0.33, 0.42]
    assert list(lines[1].y) == [120.0, 160.0, 240.0, 320.0]
    assert [t.showlegend for t in lines] == [True, False, True, False]
    assert lines[0].line.color == lines[1].line.color != lines[2].line.color
    assert [(t.xaxis, list(t.y)) for t in marks] == [("x", [0.30]), ("x2", [200.0])]
    assert {t.marker.symbol for t in marks} == {"diamond-open"}
    assert {t.marker.color for t in marks} == {lines[0].line.color}
    assert marks[0].name == plotdata.HOP_VARIANT_LABEL
    assert fig.layout.xaxis.type == fig.layout.xaxis2.type == "log"
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis2.type == "linear"
    assert fig.layout.xaxis2.matches == "x"
    vlines = [s for s in fig.layout.shapes if s.line.dash == "dash"]
    assert [s.xref for s in vlines] == ["x", "x2"]
    assert [s.x0 for s in vlines] == pytest.approx([112.6, 112.6])
    assert sum("112.6 ns" in (a.text or "") for a in fig.layout.annotations) == 2
    assert "hop_latency" in plotly_figures(make_summary(), tmp_path)


# ---------------------------------------------------------------------------- caption and report


def test_caption_numbers():
    cap = sections.captions(make_summary())["hop_latency"]
    # by hand: gpt3 0.42 / 0.20 = 2.1, die 120 -> 320; llama2-70b 0.15 / 0.10 = 1.5 over 10 ns to
    # 1 us (infeasible at 2 us), die 100 -> 140; the variant 0.30 / 0.25 = 1.2 at 112.6 ns
    assert "gpt3: cost 2.1× from 10 ns to 2 µs, optimal die 120 → 320 mm²" in cap
    assert "llama2-70b: cost 1.5× from 10 ns to 1 µs, optimal die 100 → 140 mm²" in cap
    assert "palm: no feasible design" in cap
    assert "Preset chip-to-chip hop latency (dashed): 112.6 ns" in cap
    assert "server hop 1.3 µs" in cap and "500 ns fixed per collective" in cap
    assert "40 ns per operation" in cap
    assert "gpt3 $0.3 per 1M tokens, 200 mm² die (1.2× the cost without)" in cap


def test_caption_single_point_and_growth_rounding():
    study = make_study()
    study["rows"] = [
        _row("gpt3", 1e-08, 0.30, 120.0),
        _row("gpt3", 3e-08, 0.3123, 125.0),
        _row("palm", 1e-08, 0.5, 200.0),
    ]
    cap = sections.captions({"studies": {"hop_latency": study}})["hop_latency"]
    assert "gpt3: cost 1.04× from 10 ns to 30 ns, optimal die 120 → 125 mm²" in cap
    assert "palm: feasible only at 10 ns ($0.5 per 1M tokens, 200 mm² die)" in cap
    assert "llama2-70b: no feasible design" in cap
    assert "Open diamonds" not in cap


def test_table():
    t = sections.hop_latency_table(make_summary())
    assert t["levels"] == ["10 ns", "112.6 ns (preset)", "1 µs", "2 µs"]
    assert t["variant"] == "112.6 ns + 40 ns per op"
    rows = {r["model"]: r for r in t["rows"]}
    assert rows["gpt3"]["cells"][0] == ("$0.2", "120")
    assert rows["gpt3"]["variant"] == ("$0.3", "200")
    assert rows["llama2-70b"]["cells"][-1] == ("—", "")
    assert rows["palm"]["cells"] == [("—", "")] * 4


def test_in_the_report(tmp_path):
    summary = make_summary()
    write_all_figures(summary, tmp_path)
    html = write_report(summary, tmp_path).read_text(encoding="utf-8")
    assert 'id="plot-hop_latency"' in html and 'href="#hop_latency"' in html
    assert "optimal die 120 → 320 mm²" in html
    assert 'id="hop-latency-table"' in html and "112.6 ns (preset)" in html
    assert "hop_latency.png" in html  # listed among the static figures
    assert "study_hop_latency.parquet" not in html  # no table file written here
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "study_hop_latency.parquet").write_bytes(b"")
    assert "study_hop_latency.parquet" in write_report(summary, tmp_path).read_text("utf-8")
    bare = write_report({}, tmp_path / "empty").read_text(encoding="utf-8")
    assert 'id="hop_latency"' not in bare
