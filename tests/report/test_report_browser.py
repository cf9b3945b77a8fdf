"""The figures and the offline HTML report of ``chipletcloud reproduce``, in headless Chromium.

A small but realistic run folder (``summary.json`` in the reproduce schema and one Pareto front
per model) is built in ``tmp_path``; the figures and ``report.html`` are written from it. The fast
tests check the files; the browser test opens the report from ``file://`` in the system Chromium
(Playwright with ``executable_path``, or Chromium's own ``--dump-dom`` when Playwright is
missing), checks that every interactive plot was drawn and that no network request was attempted,
and saves a screenshot of the first screen to ``tests/artifacts/report_first_screen.png``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from plotly.offline import get_plotlyjs

from chipletcloud.report.figures import write_all_figures
from chipletcloud.report.html import interactive_plot_ids, write_report
from chipletcloud.report.store import write_parquet

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
SCREENSHOT = ARTIFACTS / "report_first_screen.png"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")
VIEWPORT = {"width": 1280, "height": 800}

MODELS = {  # model: (Chiplet Cloud USD per 1M tokens at the TCO optimum, its ms per token)
    "gpt3": (0.42, 24.0),
    "palm": (1.35, 41.0),
    "llama2-70b": (0.19, 11.0),
}


# ------------------------------------------------------------------------------ the run fixture


def _card(usd: float, ms: float, die: float, servers: int, tp: int, pp: int, batch: int) -> dict:
    chips = 32
    return {
        "die_area_mm2": die,
        "sram_mb_per_chip": round(die * 0.55, 1),
        "tflops_per_chip": round(die * 0.08, 1),
        "chips_per_server": chips,
        "servers": servers,
        "tp": tp,
        "pp": pp,
        "batch": batch,
        "micro_batch": max(batch // pp, 1),
        "latency_s_per_token": ms / 1e3,
        "throughput_tokens_per_s": batch / (ms / 1e3),
        "usd_per_million_tokens": usd,
        "capex_usd": servers * 9.0e3,
        "power_w": servers * 1.9e3,
        "joules_per_token": servers * 1.9e3 / (batch / (ms / 1e3)),
    }


def _front(usd: float, ms: float, n: int = 36) -> dict[str, np.ndarray]:
    """A convex front through (ms, usd): cost falls as latency grows."""
    tpot = np.geomspace(ms / 6, ms * 4, n) / 1e3
    cost = usd * (0.82 + 0.18 * (ms / 1e3 / tpot) ** 1.3)
    idx = np.arange(n)
    return {
        "usd_per_million_tokens": cost,
        "tpot_s": tpot,
        "die_area_mm2": 120.0 + 8.0 * (idx % 12),
        "servers": (64 - idx).astype(np.int64),
        "tp": 2 ** (idx % 4 + 1),
        "pp": 2 ** (idx % 5 + 2),
        "batch": 2 ** (idx % 7 + 2),
        "micro_batch": 2 ** (idx % 3),
        "server_id": (idx * 7) % 50,
        "sram_mb_per_chip": 40.0 + idx,
        "tflops_per_chip": 8.0 + 0.5 * idx,
        "throughput_tokens_per_s": 1e3 / tpot,
    }


def make_summary() -> dict:
    compare, optimal, portfolio = {}, {}, {}
    ratios = {
        "a100-80gb": (97.0, 8.3, 1.6),
        "h100-sxm": (61.0, 6.9, 0.9),
        "tpu-v4": (18.0, 3.7, 1.2),
    }
    for k, (model, (usd, ms)) in enumerate(MODELS.items()):
        scale = 1.0 - 0.12 * k
        tco = _card(usd, ms, 140.0 + 10 * k, 48 + 16 * k, 8, 12 + 4 * k, 64)
        lat = _card(usd * 2.6, ms / 5.0, 110.0 + 10 * k, 96 + 16 * k, 16, 24, 8)
        base = {}
        for dev, (r_rent, r_fab, lat_mult) in ratios.items():
            for kind, r in (("rented", r_rent * scale), ("fabricated", r_fab * scale)):
                base[f"{dev}-{kind}"] = {
                    "usd_per_million_tokens": usd * r,
                    "ratio": r,
                    "kind": kind,
                    "device": dev,
                    "latency_s_per_token": ms * lat_mult / 1e3,
                    "devices": 16,
                    "tp": 8,
                    "pp": 2,
                    "batch": 64,
                    "ratio_at_cc_latency": r * 1.4 if lat_mult > 1 else None,
                }
        compare[model] = {
            "chiplet_cloud_usd_per_million_tokens": usd,
            "chiplet_cloud_design": tco,
            "baselines": base,
        }
        optimal[model] = {"tco_optimal": tco, "latency_optimal": lat, "pareto_points": 36}
        portfolio[model] = {
            "usd_per_million_tokens": usd * (1.0 + 0.07 * k),
            "own_optimum_usd_per_million_tokens": usd,
            "loss_factor": 1.0 + 0.07 * k,
        }

    def headline(key: str, dev: str, kind: str, paper: float) -> dict:
        rs = [m["baselines"][f"{dev}-{kind}"]["ratio"] for m in compare.values()]
        return {
            key: max(rs),
            f"{key}_paper": paper,
            f"{key}_geomean": float(np.exp(np.mean(np.log(rs)))),
        }

    summary_ratios = {
        **headline("rented_gpu", "a100-80gb", "rented", 97.0),
        **headline("rented_tpu", "tpu-v4", "rented", 18.0),
        **headline("fabricated_gpu", "a100-80gb", "fabricated", 8.3),
        **headline("fabricated_tpu", "tpu-v4", "fabricated", 3.7),
    }
    bins = []
    for i, lo in enumerate(range(40, 840, 80)):
        capex = 0.25 + 0.004 * (i - 2.2) ** 2 * 10
        bins.append(
            {
                "lo_mm2": float(lo),
                "hi_mm2": float(lo + 80),
                "usd_per_million_tokens": capex + 0.12,
                "capex_usd_per_million_tokens": capex,
                "opex_usd_per_million_tokens": 0.12,
                "latency_opt_s_per_token": (4.0 + 0.9 * i) / 1e3,
                "latency_opt_usd_per_million_tokens": 2.0 * capex,
            }
        )
    batch_rows = []
    for model, (usd, ms) in MODELS.items():
        for b in (1, 2, 4, 8, 16, 32, 64, 128, 256):
            batch_rows.append(
                {
                    "model": model,
                    "batch": b,
                    "usd_per_million_tokens": usd * (1 + 40 / b + b / 200),
                    "latency_s_per_token": ms * (0.5 + b / 64) / 1e3,
                }
            )
    pipe_rows = []
    for model in ("gpt3", "palm"):
        for b in (16, 64):
            for pp in (1, 2, 4, 8, 16, 32, 48, 96):
                util = min(1.0, b / pp / 2) if pp > 1 else 1.0
                pipe_rows.append(
                    {
                        "model": model,
                        "batch": b,
                        "pp": pp,
                        "usd_per_million_tokens": MODELS[model][0] * (1 + 8 / pp) / max(util, 0.1),
                        "utilisation": util,
                    }
                )
    designs = ("sram-chiplet", "hbm-large-chip", "hbm-small-chiplet")
    dc_rows = [
        {
            "model": m,
            "design": d,
            "usd_per_million_tokens": MODELS[m][0] * (1 + 1.5 * j),
            "normalised": 1 + (1.5 + 0.3 * k) * j,
        }
        for k, m in enumerate(MODELS)
        for j, d in enumerate(designs)
    ]
    curve = [
        {
            "tokens_per_s": float(t),
            "chiplet_cloud_usd_per_1k_tokens": 0.0004 + 35e6 / (t * 3 * 365 * 86400) * 1e3,
            "rented_a100_usd_per_1k_tokens": 0.041,
        }
        for t in np.geomspace(1e2, 1e8, 25)
    ]
    sens = [
        ("electricity price", "$0.03/kWh", "$0.12/kWh", 0.40, 0.47),
        ("server life", "5 years", "1.5 years", 0.37, 0.55),
        ("wafer price", "-30%", "+30%", 0.36, 0.49),
        ("interest rate", "0%", "10%", 0.39, 0.46),
        ("SRAM density", "+20%", "-20%", 0.38, 0.48),
    ]
    spars = [
        {
            "model": m,
            "sparse_format": f,
            "sparsity": s,
            "usd_per_million_tokens": MODELS[m][0] * (1 - s * g),
            "relative_to_dense": 1 - s * g,
        }
        for m in ("gpt3", "palm")
        for f, g in (("csr", 0.5), ("bitmask", 0.7))
        for s in (0.0, 0.25, 0.5, 0.6, 0.75, 0.9)
    ]
    cases = [
        {
            "id": f"a100-{q}-{i}",
            "source": "MLPerf v3.1" if i % 2 else "NVIDIA FasterTransformer",
            "quantity": q,
            "unit": u,
            "measured": v,
            "predicted": v * (1 + e),
            "error": e,
        }
        for i, (q, u, v, e) in enumerate(
            [
                ("throughput", "tokens/s", 2450.0, -0.08),
                ("latency", "ms/token", 31.0, 0.12),
                ("linear", "us", 410.0, 0.05),
                ("throughput", "tokens/s", 9800.0, -0.15),
                ("latency", "ms/token", 18.5, 0.03),
            ]
        )
    ]
    asic = [
        {
            "id": f"asic-{m}",
            "source": "event simulation",
            "quantity": "latency",
            "unit": "ms/token",
            "measured": MODELS[m][1],
            "predicted": MODELS[m][1] * (1 + e),
            "error": e,
        }
        for m, e in zip(MODELS, (0.02, -0.04, 0.01), strict=True)
    ]
    return {
        "manifest": {
            "config_hash": "9f3c2ab41d07e6a8",
            "preset": "isca24",
            "versions": {"python": "3.11.9", "chipletcloud": "0.1.0", "numpy": "2.1.0"},
            "created_utc": "2025-01-01T12:00:00Z",
            "wall_time_s": 412.7,
            "quick": True,
        },
        "compare": {"models": compare, "summary": summary_ratios},
        "optimal": optimal,
        "portfolio": {
            "best_server_id": 17,
            "die_area_mm2": 150.0,
            "geomean_efficiency": 0.93,
            "per_model": portfolio,
        },
        "sparsity": {
            "capacity": {
                "sparsity": 0.6,
                "sparse_format": "bitmask",
                "storage_ratio": 0.525,
                "capacity_gain": 1.9,
                "largest_model_params_dense": 1.75e11,
                "largest_model_params_sparse": 3.33e11,
                "arithmetic": "0.4 x 16 bit + 1 bit mask = 7.4 bit per weight; 16 / 8.4 = 1.9x",
            },
            "tco_vs_sparsity": spars,
        },
        "studies": {
            "die_size": {"model": "gpt3", "bins": bins, "optimum_mm2": [200.0, 280.0]},
            "batch": {"rows": batch_rows, "optimum": {"gpt3": 64, "palm": 64, "llama2-70b": 128}},
            "pipeline": {"rows": pipe_rows},
            "design_choice": {
                "rows": dc_rows,
                "geomean": {d: 1 + 1.8 * j for j, d in enumerate(designs)},
            },
            "nre": {
                "nre_usd": 35e6,
                "breakeven_tokens_per_s": 9.3e3,
                "curve": curve,
                "markers": {"ChatGPT": 2.0e6, "Bing": 6.0e6, "Google": 3.5e7},
            },
            "sensitivity": {
                "model": "gpt3",
                "base_usd_per_million_tokens": 0.42,
                "rows": [
                    {
                        "parameter": p,
                        "low_label": lo,
                        "high_label": hi,
                        "low_usd_per_million_tokens": a,
                        "high_usd_per_million_tokens": b,
                    }
                    for p, lo, hi, a, b in sens
                ],
            },
        },
        "validation": {
            "cases": cases,
            "median_abs_error": 0.08,
            "max_abs_error": 0.15,
            "asic_cases": asic,
            "asic_median_abs_error": 0.02,
        },
        "an_extra_key_from_a_newer_writer": {"ignored": True},
    }


def make_run(root: Path) -> dict:
    """Write ``summary.json`` and ``fronts/<model>.parquet`` under ``root``; return the summary."""
    summary = make_summary()
    (root / "fronts").mkdir(parents=True, exist_ok=True)
    (root / "summary.json").write_text(json.dumps(summary, indent=2))
    for model, (usd, ms) in MODELS.items():
        write_parquet(_front(usd, ms), root / "fronts" / f"{model}.parquet")
    return json.loads((root / "summary.json").read_text())


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("reproduce")
    summary = make_run(root)
    write_all_figures(summary, root)
    write_report(summary, root)
    return root


# ---------------------------------------------------------------------------------- fast checks


class _Attrs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str, str]] = []
        self.scripts_with_src = 0

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href", "srcset", "action", "poster", "data") and value:
                self.urls.append((tag, name, value))
            if tag == "script" and name == "src":
                self.scripts_with_src += 1


def test_figures_written(run_dir):
    names = {p.name for p in (run_dir / "figures").iterdir()}
    for stem in ("pareto", "die_size", "batch", "pipeline", "design_choice", "nre"):
        assert {f"{stem}.png", f"{stem}.svg"} <= names, stem
    assert {"sensitivity.png", "sparsity.png"} <= names
    png = (run_dir / "figures" / "pareto.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000


def test_figures_tolerate_missing_sections(tmp_path):
    summary = make_summary()
    for key in ("studies", "sparsity", "portfolio", "validation"):
        summary.pop(key)
    paths = write_all_figures(summary, tmp_path)
    assert [p.name for p in paths] == ["pareto.png", "pareto.svg"]
    assert write_report(summary, tmp_path).is_file()
    assert write_report({}, tmp_path / "empty").is_file()


def test_raw_summary_values(tmp_path):
    """The summary as ``reproduce`` hands it over before writing JSON: numpy numbers, NaN and None
    where a study found nothing, a model that fits no design."""
    summary = make_run(tmp_path)
    summary["studies"]["die_size"]["optimum_mm2"] = np.array([200.0, 280.0])
    summary["studies"]["die_size"]["bins"][0]["usd_per_million_tokens"] = float("nan")
    summary["studies"]["nre"]["breakeven_tokens_per_s"] = None
    summary["studies"]["batch"]["rows"][0]["usd_per_million_tokens"] = np.float64(3.5)
    summary["studies"]["sensitivity"]["rows"][0]["low_usd_per_million_tokens"] = None
    summary["optimal"]["palm"]["latency_optimal"] = None
    summary["compare"]["models"]["bloom"] = {
        "chiplet_cloud_usd_per_million_tokens": None,
        "baselines": {},
        "note": "fits no Chiplet Cloud design",
    }
    summary["validation"]["asic_cases"] = []
    summary["validation"]["asic_median_abs_error"] = None
    paths = write_all_figures(summary, tmp_path)
    assert len(paths) == 16 and all(p.stat().st_size > 0 for p in paths)
    html = write_report(summary, tmp_path).read_text(encoding="utf-8")
    assert "fits no Chiplet Cloud design" in html
    assert "200–280 mm²" in html


def test_report_is_self_contained(run_dir):
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    assert html.count("* plotly.js v") == 1, "plotly.js must be inlined exactly once"
    parser = _Attrs()
    parser.feed(html)
    assert parser.scripts_with_src == 0
    remote = [u for u in parser.urls if re.match(r"\s*(https?:)?//", u[2], re.I)]
    assert not remote, remote
    # Outside the plotly.js library (whose code holds attribution links it never shows here),
    # no src/href names a remote URL, not even in a plot's inline script.
    rest = html.replace(get_plotlyjs(), "")
    assert len(rest) < len(html) - 1_000_000
    assert not re.search(r"""(src|href)\s*[=:]\s*\\?["']?\s*(https?:)?//""", rest, re.I)
    assert "@import" not in html and "MathJax.js" not in html
    for text in ("97", "18", "8.3", "3.7", "isca24", "9f3c2ab41d07e6a8", "llama2-70b"):
        assert text in html, text


# ------------------------------------------------------------------------------- browser check


def _chromium() -> str | None:
    for cand in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if cand and Path(cand).is_file() and os.access(cand, os.X_OK):
            return cand
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _check_with_playwright(exe: str, report: Path, n_plots: int) -> None:
    from playwright.sync_api import sync_playwright

    requests: list[str] = []
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.on("request", lambda r: requests.append(r.url))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(report.as_uri(), wait_until="load")
            page.wait_for_function(
                "n => document.querySelectorAll('.js-plotly-plot svg.main-svg').length >= n",
                arg=n_plots,
                timeout=30_000,
            )
            stats = page.evaluate(
                r"""() => {
                  const plots = [...document.querySelectorAll('.js-plotly-plot')];
                  return {
                    plots: plots.length,
                    withSvg: plots.filter(p => p.querySelector('svg.main-svg')).length,
                    ids: plots.map(p => p.id),
                    title: document.querySelector('h1')?.innerText || '',
                    headline: document.querySelectorAll('#headline tbody tr').length,
                    remote: [...document.querySelectorAll('[src], [href]')]
                      .map(e => e.getAttribute('src') || e.getAttribute('href'))
                      .filter(u => /^\s*(https?:)?\/\//i.test(u)),
                  };
                }"""
            )
            page.evaluate("() => window.scrollTo(0, 0)")
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT))
        finally:
            browser.close()
    remote = [u for u in requests if not u.startswith(LOCAL_SCHEMES)]
    assert not remote, f"network requests attempted: {remote}"
    assert any(u.startswith("file:") for u in requests)
    assert not errors, errors
    assert stats["plots"] >= n_plots and stats["withSvg"] == stats["plots"], stats
    assert not stats["remote"], f"remote URLs in the rendered DOM: {stats['remote']}"
    assert "Chiplet Cloud" in stats["title"]
    assert stats["headline"] == 4


def _page_urls(netlog: Path) -> set[str]:
    """The URLs of the requests a page made, from a Chromium net log: those started on behalf of
    a ``file://`` page (its network isolation key), not the browser's own background requests."""
    text = netlog.read_text(errors="replace") if netlog.is_file() else ""
    try:
        log = json.loads(text)
    except json.JSONDecodeError:  # a log cut short: close the event list
        log = json.loads(text.rstrip().rstrip(",") + "]}")
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return {
        e["params"]["url"]
        for e in log.get("events", [])
        if e.get("type") == start
        and "url" in e.get("params", {})
        and str(e["params"].get("network_isolation_key", "")).startswith("file://")
    }


def _check_with_cli(exe: str, report: Path, n_plots: int, tmp: Path) -> None:
    """Chromium's own headless mode: the DOM after scripts ran, a screenshot, and net logs in which
    every request of the page is local (host names also resolve to nothing)."""

    def run(*extra: str, log: str) -> subprocess.CompletedProcess:
        cmd = [
            exe,
            *CHROMIUM_ARGS,
            f"--user-data-dir={tmp / 'profile'}",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            f"--log-net-log={tmp / log}",
            "--virtual-time-budget=8000",
            f"--window-size={VIEWPORT['width']},{VIEWPORT['height']}",
            *extra,
            report.as_uri(),
        ]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    dom = run("--dump-dom", log="dom.netlog.json").stdout
    assert len(re.findall(r'class="[^"]*js-plotly-plot', dom)) >= n_plots, "plots not drawn"
    assert len(re.findall(r'<svg class="main-svg"', dom)) >= n_plots
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    run(f"--screenshot={SCREENSHOT}", log="shot.netlog.json")
    assert SCREENSHOT.is_file()
    urls = _page_urls(tmp / "dom.netlog.json") | _page_urls(tmp / "shot.netlog.json")
    remote = sorted(u for u in urls if not u.startswith(LOCAL_SCHEMES))
    assert not remote, f"network requests attempted: {remote}"


def test_report_in_headless_chromium(run_dir, tmp_path):
    exe = _chromium()
    if exe is None:
        pytest.skip("no Chromium found (apt-get install chromium); the report was not opened")
    report = run_dir / "report.html"
    n_plots = len(interactive_plot_ids(json.loads((run_dir / "summary.json").read_text()), run_dir))
    assert n_plots >= 8
    t0 = time.perf_counter()
    try:
        import playwright.sync_api  # noqa: F401

        driver = os.environ.get("REPORT_BROWSER_DRIVER", "playwright")
    except ImportError:
        driver = "cli"
    if driver == "cli":
        _check_with_cli(exe, report, n_plots, tmp_path)
    else:
        _check_with_playwright(exe, report, n_plots)
    assert SCREENSHOT.stat().st_size > 10_000
    assert time.perf_counter() - t0 < 120, "the report took too long to open and draw"
