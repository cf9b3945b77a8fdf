"""The capacity study: 1.7x larger models at 60% sparsity (the paper) and the sparsity CLI."""

from __future__ import annotations

import json

import pytest

from chipletcloud.cli import main
from chipletcloud.sparsity.capacity import capacity_study, effective_ratio


def test_sixty_percent_value_index_gain_in_paper_range():
    # docs/hardware-model.md: 0.4 x (16 + 8) / 16 = 0.60 of dense -> 1.67x; the paper reports 1.7x
    s = capacity_study(1e12, 0.0, 0.6)
    assert s["storage_ratio"] == pytest.approx(0.6)
    assert 1.6 <= s["capacity_gain"] <= 1.8
    assert s["largest_model_params_sparse"] == pytest.approx(5e11 / 0.6)


def test_formats_and_kv_reserve():
    # bitmask at 60%: 0.4 + 1/16 = 0.4625 -> 2.16x; 2:4 at 50%: 0.5 x 18 / 16 = 0.5625 -> 1.78x
    assert capacity_study(1e12, 0, 0.6, "bitmask")["capacity_gain"] == pytest.approx(1 / 0.4625)
    assert capacity_study(1e12, 0, 0.5, "nm24")["capacity_gain"] == pytest.approx(16 / 9)
    s = capacity_study(1e12, 4e11, 0.6)
    assert s["largest_model_params_dense"] == pytest.approx(3e11)  # 600 GB / 2 B


def test_low_sparsity_falls_back_to_dense():
    # value_index costs 1.5x dense at s = 0 and 1.425x at 5%: keep the weights dense
    assert effective_ratio(0.05) == 1.0
    assert effective_ratio(0.0) == 1.0


def test_sparsity_cli(tmp_path, capsys, small_hardware_dir):
    assert (
        main(
            [
                "sparsity",
                "--model",
                "gpt2",
                "--sparsity",
                "0.6",
                "--hardware",
                str(small_hardware_dir),
                "--json",
            ]
        )
        == 0
    )
    d = json.loads(capsys.readouterr().out)
    for k in (
        "dense_bytes",
        "compressed_bytes",
        "capacity_gain",
        "largest_model_params_dense",
        "largest_model_params_sparse",
    ):
        assert k in d
    assert 1.6 <= d["capacity_gain"] <= 1.8
    assert "0.6000" in d["arithmetic"]
    for bad, frag in (
        (["--sparsity", "1.0"], "sparsity: got 1.0"),
        (["--sparsity", "0.5", "--sparse-format", "lz4"], "sparse_format"),
        (["--sparsity", "0.6", "--sparse-format", "nm24"], "2:4"),
    ):
        assert (
            main(["sparsity", "--model", "gpt2", *bad, "--hardware", str(small_hardware_dir)]) == 2
        )
        e = capsys.readouterr().err
        assert frag in e and len(e.strip().splitlines()) == 1


def test_decoder_never_bounds_the_dense_stream_when_compression_pays():
    # Load-as-Dense: a bank group reads at least one 16-bit port's worth of compressed stream a
    # cycle and its decoder emits 1 dense word a cycle (ccmem card). Whenever the format stores
    # less than dense (ratio < 1), 16 bits of stream hold more than one dense word, so the
    # decoder keeps the port full: the weight bandwidth stays the chip's design bandwidth.
    from chipletcloud.sparsity import decoder_words_per_cycle

    for fmt, levels in (
        ("value_index", (0.35, 0.5, 0.6, 0.8, 0.9)),
        ("bitmask", (0.1, 0.6, 0.9)),
        ("nm24", (0.5,)),
    ):
        for s in levels:
            if effective_ratio(s, fmt) < 1.0:
                w = decoder_words_per_cycle(
                    fmt, s, read_bits_per_cycle=16, max_dense_words_per_cycle=1
                )
                assert w == pytest.approx(1.0), (fmt, s)
    # at 20% value_index would store 1.2x dense: not used (the weights stay dense)
    assert effective_ratio(0.2, "value_index") == 1.0
    assert decoder_words_per_cycle("value_index", 0.2, read_bits_per_cycle=16) < 1.0
