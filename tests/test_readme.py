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


def test_readme_serving_headline_and_bands_match_compare():
    # the README's SLO-first headline and GPT-3 band table: compare --workload chat
    # --slo ttft_p99=2s, recomputed for the two models they show
    from chipletcloud.baselines.compare import run_compare
    from chipletcloud.models.requests import load_workload
    from chipletcloud.models.slo import Slo

    r = run_compare(["gpt3", "palm", "llama2-70b"], request_workload=load_workload("chat"),
                    slo=Slo.parse("ttft_p99=2s"))  # fmt: skip
    assert r["serving"]["slo"]["spec"] == "ttft_p99=2s"
    table = _table_after("<!-- serving_headline -->")
    heads = {h["model"]: h for h in r["summary"]["headline"]}
    assert {row[0] for row in table} == set(heads) == {"gpt3", "palm"}
    # the sentence naming where Chiplet Cloud is not the cheapest
    text = README.read_text(encoding="utf-8")
    m = re.search(
        r"Llama-2-70B at 10-25 tokens/s per user a fabricated TPU v6e is \(\$([\d.]+) and "
        r"\$([\d.]+) against\s+\$([\d.]+)\), for PaLM at 10 a fabricated MI300X "
        r"\(\$([\d.]+) against \$([\d.]+)\)",
        text,
    )
    llama = {b["tokens_per_s_per_user"]: b for b in r["bands"]["llama2-70b"]}
    palm = {b["tokens_per_s_per_user"]: b for b in r["bands"]["palm"]}
    for band, value in ((10, m.group(1)), (25, m.group(2))):
        assert llama[band]["best_system"] == "tpu-v6e-fabricated"
        assert float(value) == pytest.approx(llama[band]["usd_per_million_tokens"], abs=5e-4)
    assert float(m.group(3)) == pytest.approx(llama[10]["systems"]["chiplet-cloud"], abs=5e-4)
    assert palm[10]["best_system"] == "mi300x-fabricated"
    assert float(m.group(4)) == pytest.approx(palm[10]["usd_per_million_tokens"], abs=5e-4)
    assert float(m.group(5)) == pytest.approx(palm[10]["systems"]["chiplet-cloud"], abs=5e-4)
    for model, device, cc, meas, meas_ratio, sim, sim_ratio in table:
        h = heads[model]
        m, s = h["rented_measured_deployment"], h["rented_simulated_at_slo"]
        assert device == h["device"]
        assert float(cc) == pytest.approx(h["chiplet_cloud_usd_per_million_tokens"], abs=5e-4)
        assert float(meas) == pytest.approx(m["usd_per_million_tokens"], abs=5e-4)
        assert float(meas_ratio.rstrip("x")) == pytest.approx(m["ratio"], abs=0.05)
        assert float(sim) == pytest.approx(s["usd_per_million_tokens"], abs=5e-4)
        assert float(sim_ratio.rstrip("x")) == pytest.approx(s["ratio"], abs=0.05)
    # the band table: its header is the line starting "| GPT-3, tokens/s per user |"
    text = README.read_text(encoding="utf-8")
    start = text.index("| GPT-3, tokens/s per user |")
    lines = [ln for ln in text[start:].splitlines()[2:] if ln.startswith("|")]
    rows = []
    for ln in lines:
        cells = [c.strip() for c in ln.strip().strip("|").split("|")]
        if not cells[0].isdigit():
            break
        rows.append(cells)
    names = ["chiplet-cloud", "a100-80gb-rented", "a100-80gb-fabricated", "h100-sxm-rented",
             "h100-sxm-fabricated", "tpu-v4-rented", "tpu-v4-fabricated"]  # fmt: skip
    got = {b["tokens_per_s_per_user"]: b for b in r["bands"]["gpt3"]}
    assert [int(c[0]) for c in rows] == sorted(got)
    for cells in rows:
        b = got[int(cells[0])]
        assert cells[1] == (b["best_system"] or "not reachable")
        for name, cell in zip(names, cells[2:9], strict=True):
            v = b["systems"][name]
            if cell == "-":
                assert v is None, (cells[0], name)
            else:
                assert float(cell) == pytest.approx(v, abs=5e-4), (cells[0], name)
        for kind, cell in zip(("cheapest_rented", "cheapest_fabricated"), cells[9:], strict=True):
            c = b[kind]
            if cell == "-":
                assert c["system"] is None, (cells[0], kind)
            else:
                system, value = cell.split()
                assert system == c["system"], (cells[0], kind)
                assert float(value) == pytest.approx(c["usd_per_million_tokens"], abs=5e-4)
