"""The self-contained offline HTML report of ``chipletcloud reproduce``.

:func:`write_report` turns the run's ``summary.json`` (as a dict) and its ``fronts/*.parquet`` into
one ``report.html``: plotly.js inlined once in the page head, every plot a plotly figure drawn
from inline JSON (:mod:`.plotly_figures`), the text from :mod:`.sections`, plain CSS, and no URL
to anything outside the file (no CDN, web font or MathJax), so the report opens offline from
disk. Sections missing from the summary are skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import plotly.graph_objects as go
from markupsafe import Markup
from plotly.offline import get_plotlyjs

from chipletcloud.report import sections
from chipletcloud.report.formats import FORMATS
from chipletcloud.report.plotdata import PLOT_DATA
from chipletcloud.report.plotly_figures import plotly_figures
from chipletcloud.report.results import dict_rows, model_order, section

PLOT_CONFIG = {"displaylogo": False, "responsive": True}


def interactive_plot_ids(summary: dict, out_dir: Path) -> list[str]:
    """The element ids of the report's plotly plots."""
    return [f"plot-{name}" for name in plotly_figures(summary, out_dir)]


def _plot_html(fig: go.Figure, name: str) -> Markup:
    """A plot as an HTML fragment (a div and the script drawing it; plotly.js not included)."""
    html = fig.to_html(
        include_plotlyjs=False,
        include_mathjax=False,
        full_html=False,
        div_id=f"plot-{name}",
        config=PLOT_CONFIG,
        default_width="100%",
        default_height=f"{fig.layout.height or 440}px",
    )
    return Markup(html)


def context(summary: dict, out_dir: Path) -> dict:
    """Everything the template shows, formatted, by the template's names."""
    out_dir = Path(out_dir)
    manifest = section(summary, "manifest") or {}
    figs = plotly_figures(summary, out_dir)
    plots = {name: _plot_html(fig, name) for name, fig in figs.items()}
    folder = out_dir / "figures"
    static = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    portfolio = section(summary, "portfolio")
    return {
        "manifest": manifest,
        "created": sections.created(manifest),
        "versions": manifest.get("versions") or {},
        "headline": sections.headline(summary),
        "has_headline": bool(section(summary, "compare", "summary")),
        "compare": sections.compare_table(summary),
        "glance": sections.glance(summary),
        "designs": sections.design_rows(summary),
        "card_headers": [h for _, h, _ in sections.CARD_COLUMNS],
        "portfolio": portfolio if isinstance(portfolio, dict) else None,
        "capacity": section(summary, "sparsity", "capacity"),
        "capacity_items": sections.capacity_items(summary),
        "manifest_extra": sections.manifest_extra(manifest),
        "portfolio_rows": [
            (m, (section(portfolio, "per_model") or {})[m])
            for m in model_order(summary)
            if isinstance(portfolio, dict) and m in (section(portfolio, "per_model") or {})
        ],
        "sparsity_table": sections.sparsity_table(summary),
        "hop_latency_table": sections.hop_latency_table(summary),
        "hop_latency_file": (out_dir / "tables" / "study_hop_latency.parquet").is_file(),
        "model_set_tables": sections.model_set_tables(summary),
        "model_sets_files": sorted(p.name for p in (out_dir / "tables").glob("compare_*.parquet")),
        "context_lines": sections.context_lines(summary),
        "context_table": sections.context_table(summary),
        "context_file": (out_dir / "tables" / "study_context.parquet").is_file(),
        "attribution_tables": sections.attribution_tables(summary),
        "attribution_headers": sections.ATTRIBUTION_HEADERS,
        "attribution_file": (out_dir / "tables" / "study_attribution.parquet").is_file(),
        "sparsity_rows": dict_rows(section(summary, "sparsity", "tco_vs_sparsity")),
        "validation": sections.validation(summary),
        "serving": sections.serving(summary),
        "plots": plots,
        "captions": sections.captions(summary),
        "static_figures": [n for n in static if n.rsplit(".", 1)[0] in PLOT_DATA],
        "n_models": len(model_order(summary, out_dir)),
        "plotly_js": Markup(get_plotlyjs()),
    }


def _defined(f):
    """A formatter that takes a missing value (jinja2's Undefined) as None."""

    def wrapped(x: Any, *args: Any, **kwargs: Any) -> str:
        return f(None if isinstance(x, jinja2.Undefined) else x, *args, **kwargs)

    return wrapped


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("chipletcloud.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.ChainableUndefined,
    )
    env.filters.update({k: _defined(f) for k, f in FORMATS.items()})
    return env


def render_report(summary: dict, out_dir: Path) -> str:
    """The report's HTML text."""
    return _environment().get_template("report.html.j2").render(**context(summary, out_dir))


def write_report(summary: dict, out_dir: Path) -> Path:
    """Write ``out_dir/report.html``: one self-contained file that works offline."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "report.html"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(render_report(summary, out_dir), encoding="utf-8")
    tmp.replace(path)
    return path
