"""The CC-MEM weight codec: bit-exact round trips, exact byte counts, padding, ratios, decoder."""

from __future__ import annotations

import dataclasses
import math

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from chipletcloud import sparsity
from chipletcloud.errors import InputError
from chipletcloud.sparsity import (
    FORMATS,
    Compressed,
    decode,
    decoder_words_per_cycle,
    encode,
    storage_ratio,
)
from chipletcloud.sparsity.formats import stream_bits_per_weight

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# float16, bfloat16 (as uint16 bit patterns) and int8 are the weight formats that matter; the
# others check that any 1/2/4/8-byte numeric array works.
DTYPES = [np.float16, np.uint16, np.int8, np.float32, np.uint8, np.int16]

# special bit patterns: -0.0, +-inf, and NaNs with a few payloads (sign set and clear)
SPECIALS = {
    np.dtype(np.float16): [0x8000, 0x7C00, 0xFC00, 0x7C01, 0x7E00, 0xFFFF, 0x7D55],
    np.dtype(np.uint16): [0x8000, 0x7F80, 0xFF80, 0x7F81, 0x7FC0, 0xFFFF, 0xFFC1],  # bf16
    np.dtype(np.float32): [0x80000000, 0x7F800000, 0xFF800000, 0x7FC00001, 0xFFFFFFFF],
}


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return (
        a.dtype == b.dtype
        and a.shape == b.shape
        and np.array_equal(a.reshape(-1).view(np.uint8), b.reshape(-1).view(np.uint8))
    )


def random_words(rng: np.random.Generator, dtype: np.dtype, shape: tuple[int, ...], s: float):
    """Random bit patterns (specials mixed in), a fraction ``s`` of them zeroed i.i.d."""
    dtype = np.dtype(dtype)
    udt = np.dtype(f"u{dtype.itemsize}")
    words = rng.integers(0, np.iinfo(udt).max, size=shape, dtype=udt, endpoint=True)
    specials = SPECIALS.get(dtype)
    if specials and words.size:
        pick = rng.random(shape) < 0.2
        words[pick] = rng.choice(np.array(specials, dtype=udt), size=int(pick.sum()))
    words[words == 0] = 1  # zeros only where the mask says
    words[rng.random(shape) < s] = 0
    return words.view(dtype)


@st.composite
def weights(draw, dtypes=DTYPES):
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=12))
    kind = draw(st.sampled_from(["iid", "iid", "iid", "all_zero", "no_zero"]))
    s = {"all_zero": 1.0, "no_zero": 0.0}[kind] if kind != "iid" else draw(st.floats(0.0, 1.0))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return random_words(rng, dtype, shape, s)


def hand_count_value_index(x: np.ndarray, index_bits: int) -> tuple[int, int]:
    """(padding entries, bytes) counted one weight at a time, independently of the codec."""
    v = 8 * x.dtype.itemsize
    entries = padding = gap = 0
    for word in x.view(f"u{x.dtype.itemsize}").ravel().tolist():
        if word == 0:
            gap += 1
            continue
        while gap > 2**index_bits - 1:  # a padding entry spends the widest gap and its zero
            padding += 1
            gap -= 2**index_bits
        entries += 1
        gap = 0
    entries += padding
    return padding, math.ceil(entries * (v + index_bits) / 8)


def hand_count(x: np.ndarray, fmt: str, index_bits: int = 8) -> int:
    v = 8 * x.dtype.itemsize
    nnz = int(np.count_nonzero(x.view(f"u{x.dtype.itemsize}")))
    if fmt == "value_index":
        return hand_count_value_index(x, index_bits)[1]
    if fmt == "bitmask":
        return math.ceil(x.size / 8) + nnz * v // 8
    if fmt == "nm24":
        kept = x.size // 2
        return kept * v // 8 + math.ceil(kept * 2 / 8)
    return x.nbytes


def check_round_trip(x: np.ndarray, c: Compressed) -> None:
    assert same_bits(decode(c), x)
    streams = c.to_streams()
    assert sum(len(b) for b in streams.values()) == c.nbytes
    again = Compressed.from_streams(
        streams, c.fmt, c.shape, c.dtype, index_bits=c.index_bits, n=c.n, m=c.m
    )
    assert same_bits(decode(again), x)
    assert again.num_padding == c.num_padding


# --- round trips ---------------------------------------------------------------------------


@FAST
@given(x=weights(), fmt=st.sampled_from(["value_index", "bitmask", "dense"]), b=st.integers(1, 16))
def test_round_trip_is_bit_exact_and_nbytes_is_exact(x, fmt, b):
    c = encode(x, fmt, index_bits=b)
    check_round_trip(x, c)
    assert c.nbytes == hand_count(x, fmt, b)
    assert c.dense_nbytes == x.nbytes
    if fmt == "value_index":
        assert c.num_padding == hand_count_value_index(x, b)[0]


@st.composite
def nm24_weights(draw):
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=6))
    shape = shape[:-1] + (4 * shape[-1],)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = random_words(rng, dtype, shape, draw(st.floats(0.0, 1.0)))
    words = x.view(f"u{dtype.itemsize}").reshape(-1, 4)
    for row in words:  # keep at most 2 non-zeros per group, at random positions
        nz = np.flatnonzero(row)
        row[rng.permutation(nz)[2:]] = 0
    return x


@FAST
@given(x=nm24_weights())
def test_nm24_round_trip(x):
    c = encode(x, "nm24")
    check_round_trip(x, c)
    assert c.nbytes == hand_count(x, "nm24")
    assert c.values.shape == (x.size // 4, 2)
    # fillers are stored zeros; every stored non-zero is a weight
    assert c.num_padding == x.size // 2 - np.count_nonzero(x.view(f"u{x.dtype.itemsize}"))


@FAST
@given(x=weights(dtypes=[np.float16, np.uint16]))
def test_negative_zero_is_a_value_and_nan_payloads_survive(x):
    words = x.view(np.uint16)
    c = encode(x, "bitmask")
    assert np.count_nonzero(c.index) == np.count_nonzero(words)  # -0.0 (0x8000) counts
    for fmt in ("value_index", "bitmask", "dense"):
        assert same_bits(decode(encode(x, fmt)), x)


def test_specials_explicitly():
    x = np.array([0.0, -0.0, np.nan, -np.inf, np.inf, 0.0], dtype=np.float16)
    x.view(np.uint16)[2] = 0x7D55  # a NaN with a payload
    for fmt in ("value_index", "bitmask", "dense"):
        assert same_bits(decode(encode(x, fmt)), x)
    c = encode(x, "value_index")
    assert c.num_entries == 4  # -0.0, NaN, -inf, inf; the +0.0 at both ends is not stored
    assert c.index.tolist() == [1, 0, 0, 0]
    y = np.array([[0, 0x8000, 0x7FC1, 0]], dtype=np.uint16)  # bf16: 0, -0, NaN, 0
    assert same_bits(decode(encode(y, "nm24")), y)


def test_empty_zero_d_and_non_contiguous():
    for shape in [(0,), (3, 0), (0, 4), (2, 0, 5)]:
        x = np.zeros(shape, np.float16)
        for fmt in FORMATS:
            if fmt == "nm24" and shape[-1] % 4:
                continue
            c = encode(x, fmt)
            assert c.nbytes == 0
            check_round_trip(x, c)
    scalar = np.array(np.float16(-0.0))
    for fmt in ("value_index", "bitmask", "dense"):
        assert same_bits(decode(encode(scalar, fmt)), scalar)
    base = np.arange(40, dtype=np.int8).reshape(5, 8) % 3
    view = base[:, ::2]
    assert same_bits(decode(encode(view)), np.ascontiguousarray(view))
    big_endian = np.array([1.5, 0, -0.0, 2], dtype=">f2")
    assert same_bits(decode(encode(big_endian)), big_endian)


# --- padding -------------------------------------------------------------------------------

GAPS = [0, 1, 2, 254, 255, 256, 257, 511, 512, 65534, 65535, 65536, 65537, 140_000]


def runs(gaps: list[int], tail: int, dtype) -> tuple[np.ndarray, list[int]]:
    """Non-zeros after runs of ``gaps`` zeros, then ``tail`` zeros."""
    dtype = np.dtype(dtype)
    x = np.zeros(sum(gaps) + len(gaps) + tail, dtype=f"u{dtype.itemsize}")
    x[np.cumsum(np.array(gaps, dtype=np.int64) + 1) - 1] = 0x8001 if dtype.itemsize == 2 else 0x81
    return x.view(dtype), gaps


@st.composite
def long_runs(draw):
    gaps = draw(st.lists(st.sampled_from(GAPS), min_size=0, max_size=4))
    tail = draw(st.sampled_from([0, 3, 300, 70_000]))
    return runs(gaps, tail, draw(st.sampled_from([np.float16, np.uint16, np.int8])))


@SLOW
@given(case=long_runs(), b=st.integers(1, 16))
@example(case=runs([65535, 65536, 140_000], 70_000, np.float16), b=16)
@example(case=runs([254, 255, 256, 257, 511, 512], 300, np.int8), b=8)
@example(case=runs([65536, 0, 1], 0, np.uint16), b=1)
def test_padding_entries_exactly_when_gaps_exceed_the_index_range(case, b):
    x, gaps = case
    c = encode(x, "value_index", index_bits=b)
    widest = 2**b - 1
    expected_padding = sum(g // 2**b for g in gaps)  # each padding entry covers 2^b zeros
    assert c.num_padding == expected_padding
    assert (c.num_padding > 0) == any(g > widest for g in gaps)
    assert c.num_entries == len(gaps) + expected_padding
    padding = c.values == 0
    assert np.all(c.index[padding] == widest)  # a padding entry: a stored zero, the widest gap
    assert np.all(c.index <= widest)
    v = 8 * x.dtype.itemsize
    assert c.nbytes == math.ceil(c.num_entries * (v + b) / 8)
    assert same_bits(decode(c), x)
    # the trailing zeros are implied by the shape: every stored entry emits gap + 1 words
    assert int((c.index.astype(np.int64) + 1).sum()) == sum(gaps) + len(gaps)


def test_padding_boundary_for_every_width():
    for b in range(1, 17):
        k = 2**b
        for gap, pads in [(k - 1, 0), (k, 1), (2 * k - 1, 1), (2 * k, 2)]:
            x = np.zeros(gap + 1, np.float16)
            x[-1] = 1.0
            c = encode(x, index_bits=b)
            assert c.num_padding == pads, (b, gap)
            assert c.index.tolist() == [k - 1] * pads + [gap - pads * k]
            assert same_bits(decode(c), x)


# --- hand-checked byte counts ----------------------------------------------------------------


def test_hand_checked_nbytes():
    # [1, 0, 0, 2] fp16, value_index, 8-bit index: entries (1, gap 0) and (2, gap 2):
    # 2 entries x (16 + 8) bits = 48 bits = 6 bytes (dense: 8 bytes)
    c = encode(np.array([1, 0, 0, 2], np.float16))
    assert c.nbytes == 6 and c.index.tolist() == [0, 2]

    # int8: 300 zeros then 5, 8-bit index: the gap 300 > 255 needs 300 // 256 = 1 padding
    # entry (a zero with gap 255: 256 words), then (5, gap 300 - 256 = 44):
    # 2 entries x (8 + 8) bits = 32 bits = 4 bytes
    x = np.zeros(301, np.int8)
    x[-1] = 5
    c = encode(x)
    assert (c.nbytes, c.num_padding, c.index.tolist(), c.values.tolist()) == (
        4,
        1,
        [255, 44],
        [0, 5],
    )

    # fp16 [7, 10 zeros, -0.0], 3-bit index (gaps up to 7): entries (7, 0), padding (0, 7)
    # covering 8 zeros, (-0.0, 2): 3 entries x (16 + 3) bits = 57 bits -> 8 bytes
    x = np.zeros(12, np.float16)
    x[0], x[-1] = 7, -0.0
    c = encode(x, index_bits=3)
    assert (c.nbytes, c.num_padding, c.index.tolist()) == (8, 1, [0, 7, 2])

    # bitmask, fp16 3x3 with 2 non-zeros: mask 9 bits -> 2 bytes, values 2 x 2 bytes = 4:
    # 6 bytes (dense 18)
    x = np.zeros((3, 3), np.float16)
    x[0, 1], x[2, 2] = 1, -3
    assert encode(x, "bitmask").nbytes == 6

    # nm24, fp16 2x8: 4 groups x 2 kept values x 16 bits = 128 bits = 16 bytes, positions
    # 8 x 2 bits = 16 bits = 2 bytes: 18 bytes of 32 dense = 0.5625
    x = np.zeros((2, 8), np.float16)
    x[0, 1], x[0, 3], x[1, 4] = 1, 2, 3
    c = encode(x, "nm24")
    assert c.nbytes == 18 and c.nbytes / x.nbytes == 0.5625
    assert c.index.tolist() == [[1, 3], [0, 1], [0, 1], [0, 1]]  # a lone 3 at 0 + filler at 1

    # dense: the raw bytes
    assert encode(np.ones((5, 3), np.int8), "dense").nbytes == 15


# --- ratios and the analytic model ---------------------------------------------------------


def test_ratios_at_60_percent_sparsity():
    rng = np.random.default_rng(60)
    x16 = random_words(rng, np.float16, (400_000,), 0.6)
    x8 = random_words(rng, np.int8, (400_000,), 0.6)

    def ratio(x, fmt):
        return encode(x, fmt).nbytes / x.nbytes

    # 1.67x capacity (docs/sparsity.md)
    assert ratio(x16, "value_index") == pytest.approx(0.60, rel=0.01)
    assert 1 / ratio(x16, "value_index") == pytest.approx(1.67, abs=0.02)
    assert ratio(x16, "bitmask") == pytest.approx(0.4625, rel=0.01)  # 2.16x
    assert 1 / ratio(x16, "bitmask") == pytest.approx(2.16, abs=0.03)
    assert ratio(x8, "value_index") == pytest.approx(0.80, rel=0.01)  # 0.4 x 16 / 8
    assert ratio(x8, "bitmask") == pytest.approx(0.525, rel=0.01)  # 0.4 + 1 / 8
    assert ratio(x16, "dense") == 1.0
    nm16 = np.zeros((1000, 64), np.float16)
    nm16[:, ::2] = 1.0
    assert ratio(nm16, "nm24") == 0.5625  # 0.5 x (16 + 2) / 16, exactly
    assert ratio((nm16 != 0).astype(np.int8), "nm24") == 0.625  # 0.5 x (8 + 2) / 8


@pytest.mark.parametrize("dtype", [np.int8, np.float16, np.uint16, np.float32])
@pytest.mark.parametrize("s", [0.0, 0.05, 0.3, 0.6, 0.8, 0.95])
def test_codec_agrees_with_storage_ratio(dtype, s):
    rng = np.random.default_rng(int(s * 100) + np.dtype(dtype).itemsize)
    x = random_words(rng, dtype, (300_000,), s)
    v = 8 * x.dtype.itemsize
    for fmt, b in [("value_index", 8), ("value_index", 4), ("value_index", 2), ("bitmask", 8)]:
        measured = encode(x, fmt, index_bits=b).nbytes / x.nbytes
        expected = stream_bits_per_weight(s, fmt, v, b) / v
        assert measured == pytest.approx(expected, rel=0.02), (fmt, b)
        if s > 0:
            assert measured == pytest.approx(storage_ratio(s, fmt, v, b), rel=0.02), (fmt, b)
        else:  # the performance model's convention: without zeros the weights are stored dense
            assert storage_ratio(s, fmt, v, b) == 1.0 == encode(x, "dense").nbytes / x.nbytes
    assert encode(x, "dense").nbytes / x.nbytes == storage_ratio(s, "dense", v) == 1.0


@pytest.mark.parametrize("dtype", [np.int8, np.float16, np.uint16, np.float32])
def test_nm24_agrees_with_storage_ratio(dtype):
    rng = np.random.default_rng(24)
    x = random_words(rng, dtype, (500, 64), 0.0)
    words = x.view(f"u{x.dtype.itemsize}").reshape(-1, 4)
    drop = np.argsort(rng.random(words.shape), axis=1)[:, :2]  # 2 random zeros per group
    np.put_along_axis(words, drop, 0, axis=1)
    v = 8 * x.dtype.itemsize
    assert encode(x, "nm24").nbytes / x.nbytes == pytest.approx(storage_ratio(0.5, "nm24", v))


# --- decoder throughput model --------------------------------------------------------------


@pytest.mark.parametrize("s", [0.1, 0.6, 0.9])
@pytest.mark.parametrize("dtype", [np.float16, np.int8])
def test_decoder_model_matches_counted_streams(s, dtype):
    rng = np.random.default_rng(7)
    x = random_words(rng, dtype, (200_000,), s)
    v = 8 * x.dtype.itemsize
    read = 128
    for b in (2, 4, 8):
        c = encode(x, "value_index", index_bits=b)
        bits_read = c.num_entries * (v + b)  # every entry read once
        words = int((c.index.astype(np.int64) + 1).sum())  # each entry emits gap + 1 words
        trailing = x.size - (int(np.flatnonzero(x.view(f"u{v // 8}"))[-1]) + 1)
        assert words + trailing == x.size
        counted = read * words / bits_read
        model = decoder_words_per_cycle("value_index", s, index_bits=b, value_bits=v)
        assert counted == pytest.approx(model, rel=0.02), b
    c = encode(x, "bitmask")
    counted = read * x.size / sum(c.stream_bits.values())
    assert counted == pytest.approx(decoder_words_per_cycle("bitmask", s, value_bits=v), rel=0.02)
    assert decoder_words_per_cycle("dense", s, value_bits=v) == read / v


def test_decoder_model_padding_and_cap():
    # s = 0.9 with a 2-bit index: s^4 = 0.656, 1.91 padding entries per non-zero
    no_padding = 128 / (16 + 2) / 0.1
    with_padding = decoder_words_per_cycle("value_index", 0.9, index_bits=2)
    assert with_padding == pytest.approx(no_padding / (1 + 0.9**4 / (1 - 0.9**4)))
    # 60% fp16 with 8-bit index: 128 / 24 / 0.4 = 13.33 words per cycle, capped by the port
    assert decoder_words_per_cycle("value_index", 0.6) == pytest.approx(128 / 24 / 0.4)
    assert decoder_words_per_cycle("value_index", 0.6, max_dense_words_per_cycle=8) == 8
    assert decoder_words_per_cycle("value_index", 0.6, max_dense_words_per_cycle=64) < 64
    assert decoder_words_per_cycle("bitmask", 0.6) == pytest.approx(128 / (0.4 * 16 + 1))
    # nm24: 4 words per 2 x (16 + 2) bits, whatever the sparsity (>= 0.5)
    assert decoder_words_per_cycle("nm24", 0.5) == pytest.approx(128 * 4 / 36)
    assert decoder_words_per_cycle("nm24", 0.8) == decoder_words_per_cycle("nm24", 0.5)
    x = np.zeros((100, 64), np.float16)
    x[:, 1::4] = 1.0
    c = encode(x, "nm24")
    assert 128 * x.size / (8 * c.nbytes) == pytest.approx(decoder_words_per_cycle("nm24", 0.75))


# --- bad input and the value type ----------------------------------------------------------

BAD_CALLS = [
    (lambda: encode(np.ones(4, np.float16), "csr"), "sparse_format"),
    (lambda: encode(np.ones(4, np.float16), index_bits=0), "index_bits"),
    (lambda: encode(np.ones(4, np.float16), index_bits=17), "index_bits"),
    (lambda: encode(np.ones(4, np.float16), index_bits=8.0), "index_bits"),
    (lambda: encode(np.array(["a", "b"])), "weights"),
    (lambda: encode(np.array([object()])), "weights"),
    (lambda: encode(np.ones(3, bool)), "weights"),
    (lambda: encode(np.ones(3, np.complex64)), "weights"),
    (lambda: encode(np.ones((2, 6), np.float16), "nm24"), "weights"),
    (lambda: encode(np.array(1.0, np.float16), "nm24"), "weights"),
    (lambda: encode(np.ones(4, np.float16), "nm24", n=5), "n"),
    (lambda: encode(np.ones(4, np.float16), "nm24", m=1), "m"),
    (lambda: decoder_words_per_cycle("rle", 0.5), "sparse_format"),
    (lambda: decoder_words_per_cycle("value_index", 1.0), "sparsity"),
    (lambda: decoder_words_per_cycle("value_index", 0.5, read_bits_per_cycle=0), "read_bits"),
    (lambda: decoder_words_per_cycle("bitmask", 0.5, max_dense_words_per_cycle=-1), "max_dense"),
    (lambda: decoder_words_per_cycle("nm24", 0.3), "sparsity"),
    (lambda: decode("not compressed"), "compressed"),
]


@pytest.mark.parametrize(("call", "field"), BAD_CALLS)
def test_bad_input_raises_one_line_input_error(call, field):
    with pytest.raises(InputError) as err:
        call()
    assert isinstance(err.value, ValueError)
    assert str(err.value).startswith(field)
    assert "\n" not in str(err.value) and "; allowed: " in str(err.value)


def test_nm24_pattern_violation_message():
    x = np.zeros((2, 8), np.float16)
    x[1, 4:7] = 1.0  # 3 non-zeros in the second group of row 1
    with pytest.raises(InputError) as err:
        encode(x, "nm24")
    assert err.value.field == "weights"
    assert err.value.allowed == (
        "a 2:4 sparse matrix: at most 2 non-zeros in every group of 4 along the last axis"
    )
    assert "(1, 4)" in str(err.value)


def test_compressed_is_frozen_and_exported():
    c = encode(np.array([1, 0, 2], np.int8))
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.fmt = "dense"  # type: ignore[misc]
    with pytest.raises(ValueError):
        c.values[0] = 3
    assert sparsity.FORMATS == ("value_index", "bitmask", "nm24", "dense")
    assert {"encode", "decode", "Compressed", "FORMATS", "storage_ratio"} <= set(sparsity.__all__)
    assert "decoder_words_per_cycle" in sparsity.__all__
