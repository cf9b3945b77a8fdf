"""The plot data shared by the static figures and the interactive report."""

from __future__ import annotations

import math

import pytest
from test_attribution_figure import make_study as make_attribution_study
from test_hop_latency_figure import make_study
from test_model_sets_report import make_context_study, make_model_set
from test_report_browser import MODELS, make_run

from chipletcloud.report import plotdata
from chipletcloud.report.figures import FIGURES
from chipletcloud.report.plotly_figures import MAX_FRONT_POINTS, PLOTS


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("plotdata")
    summary = make_run(root)
    summary["studies"].setdefault("hop_latency", make_study())  # every figure has data
    summary["studies"].setdefault("attribution", make_attribution_study())
    summary["compare"].setdefault("bands", BANDS)
    summary["compare"].setdefault("serving", SERVING)
    summary.setdefault("model_sets", {"2026": make_model_set()})
    summary["studies"].setdefault("context", make_context_study())
    return summary, root


# a comparison at a service level: two systems, the ASIC reaching faster bands
SERVING = {"workload": {"name": "chat"}, "slo": {"spec": "ttft_p99=2s"}, "models": {}}
BANDS = {
    "gpt3": [
        {"tokens_per_s_per_user": x, "best_system": "chiplet-cloud",
         "usd_per_million_tokens": cc, "systems": {"chiplet-cloud": cc, "a100-80gb-rented": gpu,
                                                   "b200-rented": b200},
         "cheapest_rented": {"system": "b200-rented" if b200 else None,
                             "usd_per_million_tokens": b200},
         "cheapest_fabricated": {"system": None, "usd_per_million_tokens": None}}
        for x, cc, gpu, b200 in ((10, 0.4, 1.9, 0.9), (100, 0.4, 50.0, 20.0),
                                 (1000, None, None, None))
    ]
}  # fmt: skip


def test_serving_fronts_skip_unreachable_bands(run):
    summary, root = run
    d = plotdata.serving_fronts_data(summary, root)
    lines = {ln.system: ln for ln in d.panels["gpt3"]}
    assert lines["chiplet-cloud"].tokens_per_s_per_user == [10.0, 100.0]
    assert lines["a100-80gb-rented"].usd == [1.9, 50.0]
    # devices beyond the paper's enter as the cheapest of their kind, band by band
    assert lines["cheapest rented device"].usd == [0.9, 20.0]
    assert "b200-rented" not in lines and "cheapest fabricated device" not in lines
    assert "chat" in d.title and "ttft_p99=2s" in d.title


def test_one_plot_data_function_per_figure():
    assert list(FIGURES) == list(PLOTS) == list(plotdata.PLOT_DATA)


def test_every_figure_has_data(run):
    summary, root = run
    for name, fn in plotdata.PLOT_DATA.items():
        assert fn(summary, root) is not None, name
        assert fn({}, root / "nothing") is None, name


def test_pareto_in_drawn_units(run):
    summary, root = run
    d = plotdata.pareto_data(summary, root)
    assert [m.model for m in d.models] == sorted(MODELS, key=lambda m: MODELS[m][0])
    gpt3 = next(m for m in d.models if m.model == "gpt3")
    tco = next(p for p in gpt3.optima if p.which == "tco_optimal")
    assert tco.usd_per_1k == pytest.approx(MODELS["gpt3"][0] / 1e3)
    assert tco.latency_ms == pytest.approx(MODELS["gpt3"][1])
    assert len(gpt3.front.designs) == len(gpt3.front.latency_ms) == 36
    thin = plotdata.pareto_data(summary, root, max_front_points=10)
    assert all(len(m.front.latency_ms) <= 10 for m in thin.models)
    assert MAX_FRONT_POINTS >= 1000
    assert {(b.device, b.kind) for b in d.baselines} == set(d.baseline_groups)


def test_sensitivity_biggest_change_first(run):
    summary, root = run
    d = plotdata.sensitivity_data(summary, root)
    impact = [abs(lo) + abs(hi) for lo, hi in zip(d.low_pct, d.high_pct, strict=True)]
    assert impact == sorted(impact, reverse=True)
    assert d.parameters[0] == "server life"
    assert d.span_pct == pytest.approx(max(abs(v) for v in d.low_pct + d.high_pct))


def test_batch_optimum_on_its_line(run):
    summary, root = run
    d = plotdata.batch_data(summary, root)
    lines = {line.model: line for line in d.lines}
    assert {m.model for m in d.markers} == {"gpt3", "palm", "llama2-70b"}
    for m in d.markers:
        line = lines[m.model]
        assert m.y == line.ys[0][line.x.index(m.x)]
    assert d.x_ticks == [1, 2, 4, 8, 16, 32, 64, 128, 256]


def test_nre_marks_and_breakeven(run):
    summary, root = run
    d = plotdata.nre_data(summary, root)
    assert d.breakeven == 9.3e3 and d.breakeven_label == "9,300 tokens/s"
    assert [(m.name, m.slot) for m in d.marks] == [("ChatGPT", 0), ("Bing", 1), ("Google", 2)]
    summary = {"studies": {"nre": {**summary["studies"]["nre"], "breakeven_tokens_per_s": None}}}
    assert math.isnan(plotdata.nre_data(summary, root).breakeven)


def test_hop_latency_lines_sorted_variant_apart(run):
    summary, root = run
    d = plotdata.hop_latency_data(summary, root)
    for line in d.lines:
        assert line.hop_ns == sorted(line.hop_ns)
        assert len(line.hop_ns) == len(line.ys[0]) == len(line.ys[1]) == len(line.details)
    assert [(v.model, v.op_latency_ns > 0) for v in d.variants] == [("gpt3", True)]
    gpt3 = next(line for line in d.lines if line.model == "gpt3")
    assert d.variants[0].ys[0] not in gpt3.ys[0]
    # a model keeps its colour across figures
    batch = {line.model: line.colour for line in plotdata.batch_data(summary, root).lines}
    assert {line.model: line.colour for line in d.lines} == {
        m: batch[m] for m in ("gpt3", "llama2-70b")
    }
    assert d.missing == ["palm"]
