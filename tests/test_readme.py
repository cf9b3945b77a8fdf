"""README claims are tests: the tables of measured all-SRAM machines and the hop latencies the
README quotes are recomputed here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chipletcloud.baselines import asic_measured as am
from chipletcloud.config import preset_constants, resolve

README = Path(__file__).resolve().parents[1] / "README.md"


def _table_after(heading: str) -> list[list[str]]:
    text = README.read_text(encoding="utf-8")
    start = text.index(heading)
    rows = []
    for line in text[start:].splitlines()[1:]:
        if line.startswith("|"):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif rows:
            break
    return rows[2:]  # skip the header and the rule


def test_readme_asic_measured_table_matches_validate():
    rows = {r["id"]: r for r in am.asic_measured_cases()}
    table = _table_after("<!-- asic_measured -->")
    assert {r[0] for r in table} == set(rows)
    for case, split, measured, predicted, error, *_ in table:
        r = rows[case]
        assert split == r["split"]
        assert float(measured.replace(",", "")) == r["measured"]
        if r["predicted"] is None:
            assert predicted == "refused"
            continue
        assert float(predicted.replace(",", "")) == pytest.approx(r["predicted"], abs=0.5)
        assert float(error.rstrip("%")) == pytest.approx(100 * r["error"], abs=0.05)


def test_readme_hop_latencies_match_the_preset():
    text = README.read_text(encoding="utf-8")
    c = preset_constants(resolve("isca24"))
    chip_ns = float(re.search(r"chip-to-chip hop of ([\d.]+) ns", text).group(1))
    server_us = float(re.search(r"server-to-server traversal of ([\d.]+) us", text).group(1))
    assert chip_ns == pytest.approx(c["link.chip.hop_latency_s"]["value"] * 1e9, abs=0.05)
    assert server_us == pytest.approx(c["link.server.hop_latency_s"]["value"] * 1e6, abs=0.005)


def test_readme_reproduction_points_match_the_authors_preset():
    # the README's reproduction table: the authors' designs and mappings under the `authors`
    # preset (studies.attribution.evaluate_point), recomputed
    from chipletcloud.studies.attribution import authors_optima, evaluate_point

    table = _table_after("<!-- authors_reproduction -->")
    points = {p["model"]: p for p in authors_optima()}
    assert {r[0] for r in table} == set(points)
    for model, authors, here, *_ in table:
        p = points[model]
        assert float(authors.split(",")[0]) == p["usd_per_million_tokens"]
        usd, ratio = here.split(",")[0].split()
        got = evaluate_point(p)
        assert float(usd) == pytest.approx(got["usd_per_million_tokens"], abs=5e-6)
        assert float(ratio.strip("()")) == pytest.approx(
            got["usd_per_million_tokens"] / p["usd_per_million_tokens"], abs=5e-4
        )
