"""The ASIC side against measured all-SRAM machines (data/validation/asic_measured.json): the
fit is reproducible, it uses the training cases only, and the targets hold (median |error|
under 25%, no case off by more than 2x)."""

from __future__ import annotations

import math

import pytest

from chipletcloud.baselines import asic_measured as am
from chipletcloud.baselines.sram import latency_set, load_sram_card


def test_cases_are_sourced_and_split_by_source():
    cases = am.load_cases()
    assert len(cases) >= 6
    by_source: dict[str, set] = {}
    for c in cases:
        assert c["source"] and c["measured"] > 0 and c["split"] in ("train", "test")
        by_source.setdefault(c["source"], set()).add(c["split"])
    # a source lies wholly on one side
    assert all(len(splits) == 1 for splits in by_source.values())
    assert {c["split"] for c in cases if not c.get("refused")} == {"train", "test"}


def test_fit_is_reproducible_and_matches_the_card():
    fit = am.fit_latency_set("train")
    card = float(latency_set("sram_machines")["op_latency_s"].value)
    # the card keeps the fitted value rounded to 3 significant figures
    assert card == pytest.approx(fit["op_latency_s"], rel=5e-3)
    lo, hi = am.OP_LATENCY_BOUNDS_S
    assert lo <= fit["op_latency_s"] <= hi
    train = {c["id"] for c in am.load_cases() if c["split"] == "train" and not c.get("refused")}
    assert set(fit["cases"]) == train


def test_targets_on_measured_machines():
    rows = am.asic_measured_cases()
    s = am.summary(rows)
    assert s["all"]["median_abs_error"] < 0.25
    assert s["test"]["cases"] >= 3
    for r in rows:
        if r["predicted"] is None:
            assert r["refused"]
            continue
        assert 0.5 <= r["predicted"] / r["measured"] <= 2.0, r["id"]


def test_published_chip_count_is_used_and_others_fit():
    card = load_sram_card("groq-lpu")
    case = next(c for c in am.load_cases() if c["id"] == "groq-llama2-70b")
    assert am.case_chips(case, card) == 576
    small = next(c for c in am.load_cases() if c["id"] == "groq-llama2-7b")
    n = am.case_chips(small, card)
    # 6.7B params at 1 B + KV of 1,280 tokens, over 230 MB chips, in whole 8-chip servers
    assert n % 8 == 0 and n * 230e6 >= 6.7e9


def test_more_op_latency_is_slower():
    case = next(c for c in am.load_cases() if c["id"] == "groq-llama2-7b")
    a = am.predict(case, 1e-6)["predicted"]
    b = am.predict(case, 2e-6)["predicted"]
    assert b < a
    # per token: 32 layers x 10 operations x 1 us more
    assert 1 / b - 1 / a == pytest.approx(32 * 10 * 1e-6, rel=0.05)
    assert math.isfinite(a)
