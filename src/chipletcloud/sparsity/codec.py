"""The CC-MEM weight codec: Store-as-Compressed, Load-as-Dense.

:func:`encode` turns a dense weight array into the streams one bank group stores; :func:`decode`
is what the bank group's decoder does on the way out: it re-inserts the zeros so compute gets the
dense words back, bit for bit. :func:`decoder_words_per_cycle` is the throughput model of that
decoder.

Words and zeros
    A weight is its bit pattern: an unsigned integer as wide as the array's item (8, 16, 32 or
    64 bits). bfloat16 weights are given as ``np.uint16`` arrays of their bit patterns. Only the
    all-zero pattern is a zero: -0.0 (0x8000 in fp16/bf16) is stored as a non-zero value, so it
    and every NaN payload round-trip exactly.

Stream layout (every field MSB first, entries back to back, each stream padded with zero bits
to a whole byte; ``Compressed.nbytes`` is the sum of the stream sizes, nothing else is stored;
shape, dtype and format parameters are configuration, not data). ``v`` = value bits, ``b`` =
``index_bits``, ``N`` = number of weights, ``z`` = non-zeros:

``value_index``
    One stream ``entries`` of (value: v bits, gap: b bits) entries, row-major order of the
    flattened array. ``gap`` is the number of zeros skipped since the previous entry (since the
    start for the first). The decoder emits ``gap`` zeros then the value: gap + 1 dense words
    per entry. A gap g > 2^b - 1 is bridged by floor(g / 2^b) padding entries (value 0, gap
    2^b - 1; each emits 2^b zeros) before the real entry with gap g mod 2^b. Zeros after the
    last non-zero are implied by the shape. Bytes = ceil((z + padding) (v + b) / 8).
``bitmask``
    Stream ``mask``: one presence bit per weight (row-major); stream ``values``: the non-zero
    values in order. Bytes = ceil(N / 8) + ceil(z v / 8).
``nm24`` (N:M, default 2:4)
    The last axis is cut into groups of m consecutive weights; each group keeps exactly n
    values: its non-zeros, then (if it has fewer than n) its first zero positions as fillers,
    in ascending position order. Stream ``values``: the n values of every group; stream
    ``positions``: their in-group positions, ceil(log2 m) bits each (2 for 2:4).
    Bytes = ceil(G n v / 8) + ceil(G n ceil(log2 m) / 8) with G = N / m groups.
``dense``
    Stream ``values``: the N values. Bytes = ceil(N v / 8) = the array's nbytes.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from chipletcloud.errors import InputError
from chipletcloud.sparsity.formats import (
    FORMATS,
    check_format,
    check_index_bits,
    check_nm,
    check_sparsity,
    position_bits,
    stream_bits_per_weight,
)

__all__ = ["FORMATS", "Compressed", "decode", "decoder_words_per_cycle", "encode"]

_ALLOWED_DTYPES = (
    "a numeric array: float16, bfloat16 as uint16 bit patterns, float32, float64, "
    "int8/16/32/64 or uint8/16/32/64"
)


def _as_words(dense: object) -> tuple[np.ndarray, np.dtype]:
    """The array's bit patterns as unsigned integers of the item's width, and its dtype."""
    arr = np.asarray(dense)
    dtype = arr.dtype
    if dtype.kind not in "fiu" or dtype.itemsize not in (1, 2, 4, 8):
        raise InputError("weights", f"dtype {dtype}", _ALLOWED_DTYPES)
    if not arr.flags.c_contiguous:
        arr = arr.copy(order="C")  # (np.ascontiguousarray would turn a 0-d array into 1-d)
    words = arr.view(np.dtype(f"u{dtype.itemsize}"))
    return words, dtype


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a, copy=True)  # never freeze a caller's array
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class Compressed:
    """An encoded weight array; ``nbytes`` is its exact storage in CC-MEM.

    ``values`` holds the stored value stream as unsigned bit patterns of the original item width
    (value_index: every entry, padding entries hold 0; nm24: the kept values of every group,
    shape (groups, n), fillers hold 0). ``index`` holds the metadata stream, unpacked:
    value_index the gap of every entry (uint16), bitmask the presence bit of every weight
    (bool), nm24 the in-group positions (shape (groups, n)), dense nothing. ``num_padding``
    counts the stored entries that carry no non-zero (value_index padding entries, nm24
    fillers).
    """

    fmt: str
    shape: tuple[int, ...]
    dtype: np.dtype
    values: np.ndarray
    index: np.ndarray
    num_padding: int = 0
    index_bits: int = 8
    n: int = 2
    m: int = 4

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", _readonly(self.values))
        object.__setattr__(self, "index", _readonly(self.index))

    @property
    def size(self) -> int:
        """Number of dense weights."""
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def value_bits(self) -> int:
        return 8 * self.dtype.itemsize

    @property
    def num_entries(self) -> int:
        """Stored values (value_index: entries including padding; nm24: groups x n)."""
        return int(self.values.size)

    @property
    def stream_bits(self) -> dict[str, int]:
        """Exact bits of each stored stream, before rounding to whole bytes."""
        v, e = self.value_bits, self.num_entries
        if self.fmt == "value_index":
            return {"entries": e * (v + self.index_bits)}
        if self.fmt == "bitmask":
            return {"mask": self.size, "values": e * v}
        if self.fmt == "nm24":
            return {"values": e * v, "positions": e * position_bits(self.m)}
        return {"values": e * v}

    @property
    def nbytes(self) -> int:
        """Exact storage in bytes: every stream rounded up to whole bytes."""
        return sum((bits + 7) // 8 for bits in self.stream_bits.values())

    @property
    def dense_nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def to_streams(self) -> dict[str, bytes]:
        """The stored bytes, stream by stream (see the module docstring for the layout)."""
        v = self.value_bits
        vals = _to_bits(self.values.ravel(), v)
        if self.fmt == "value_index":
            gaps = _to_bits(self.index, self.index_bits)
            return {"entries": np.packbits(np.hstack([vals, gaps])).tobytes()}
        if self.fmt == "bitmask":
            return {
                "mask": np.packbits(self.index).tobytes(),
                "values": np.packbits(vals).tobytes(),
            }
        if self.fmt == "nm24":
            pos = _to_bits(self.index.ravel(), position_bits(self.m))
            return {"values": np.packbits(vals).tobytes(), "positions": np.packbits(pos).tobytes()}
        return {"values": np.packbits(vals).tobytes()}

    @classmethod
    def from_streams(
        cls,
        streams: dict[str, bytes],
        fmt: str,
        shape: tuple[int, ...],
        dtype: np.dtype | type | str,
        *,
        index_bits: int = 8,
        n: int = 2,
        m: int = 4,
    ) -> Compressed:
        """Rebuild a :class:`Compressed` from its stored bytes and its configuration."""
        fmt = check_format(fmt)
        index_bits = check_index_bits(index_bits)
        n, m = check_nm(n, m)
        dtype = np.dtype(dtype)
        _as_words(np.zeros(0, dtype))  # validates the dtype
        shape = tuple(int(d) for d in shape)
        size = int(np.prod(shape, dtype=np.int64))
        v = 8 * dtype.itemsize

        def bits_of(name: str) -> np.ndarray:
            if name not in streams:
                raise InputError("streams", sorted(streams), f"the {fmt} streams")
            return np.unpackbits(np.frombuffer(streams[name], dtype=np.uint8))

        if fmt == "value_index":
            bits = bits_of("entries")
            w = v + index_bits
            e = bits.size // w
            if bits.size - e * w >= 8 or bits[e * w :].any():
                raise InputError("streams", "entries", "whole entries plus < 8 zero pad bits")
            table = bits[: e * w].reshape(e, w)
            values = _from_bits(table[:, :v], v)
            gaps = _from_bits(table[:, v:], index_bits).astype(np.uint16)
            num_padding = int(np.count_nonzero(values == 0))
            return cls(fmt, shape, dtype, values, gaps, num_padding, index_bits, n, m)
        if fmt == "bitmask":
            mask = bits_of("mask")[:size].astype(bool)
            z = int(np.count_nonzero(mask))
            values = _from_bits(bits_of("values")[: z * v].reshape(z, v), v)
            return cls(fmt, shape, dtype, values, mask, 0, index_bits, n, m)
        if fmt == "nm24":
            g = size // m
            p = position_bits(m)
            values = _from_bits(bits_of("values")[: g * n * v].reshape(g * n, v), v)
            pos = _from_bits(bits_of("positions")[: g * n * p].reshape(g * n, p), p)
            values, pos = values.reshape(g, n), pos.reshape(g, n).astype(_pos_dtype(m))
            num_padding = int(np.count_nonzero(values == 0))
            return cls(fmt, shape, dtype, values, pos, num_padding, index_bits, n, m)
        values = _from_bits(bits_of("values")[: size * v].reshape(size, v), v)
        return cls(fmt, shape, dtype, values, np.zeros(0, np.uint8), 0, index_bits, n, m)


def _to_bits(x: np.ndarray, width: int) -> np.ndarray:
    """(len(x), width) bit matrix, MSB first, of the low ``width`` bits of unsigned ints."""
    x = np.asarray(x).ravel()
    c = max(1, 1 << ((max(width, 1) - 1) // 8).bit_length())  # container bytes: 1, 2, 4, 8
    big = x.astype(np.dtype(f">u{c}")).view(np.uint8).reshape(x.size, c)
    return np.unpackbits(big, axis=1)[:, 8 * c - width :]


def _from_bits(bits: np.ndarray, width: int) -> np.ndarray:
    """Inverse of :func:`_to_bits`: unsigned ints of the smallest container holding ``width``."""
    c = max(1, 1 << ((max(width, 1) - 1) // 8).bit_length())
    rows = bits.shape[0]
    full = np.zeros((rows, 8 * c), dtype=np.uint8)
    full[:, 8 * c - width :] = bits
    packed = np.packbits(full, axis=1)
    return packed.view(np.dtype(f">u{c}")).reshape(rows).astype(np.dtype(f"u{c}"))


def _pos_dtype(m: int) -> np.dtype:
    return np.dtype(np.uint8 if m <= 256 else np.uint16)


def encode(
    dense: np.ndarray,
    fmt: str = "value_index",
    *,
    index_bits: int = 8,
    n: int = 2,
    m: int = 4,
) -> Compressed:
    """Compress ``dense`` (any shape, including empty and 0-d) into format ``fmt``.

    ``index_bits`` (1..16) is the gap width of value_index; ``n``:``m`` the structure of nm24
    (2:4 by default). Raises :class:`~chipletcloud.errors.InputError` for an unknown format, a
    bad width, a non-numeric dtype, or (nm24) a last axis that is not a multiple of m or a group
    with more than n non-zeros.
    """
    fmt = check_format(fmt)
    index_bits = check_index_bits(index_bits)
    n, m = check_nm(n, m)
    words, dtype = _as_words(dense)
    shape = tuple(words.shape)
    flat = words.ravel()
    if fmt == "dense":
        return Compressed(
            fmt, shape, dtype, flat.copy(), np.zeros(0, np.uint8), 0, index_bits, n, m
        )
    if fmt == "bitmask":
        mask = flat != 0
        return Compressed(fmt, shape, dtype, flat[mask], mask, 0, index_bits, n, m)
    if fmt == "value_index":
        nz = np.flatnonzero(flat)
        gaps = np.diff(nz, prepend=-1) - 1
        span = 1 << index_bits  # dense words emitted by one padding entry
        pads = gaps // span
        ends = np.cumsum(pads + 1) - 1  # where each real entry lands among all entries
        entries = int(ends[-1]) + 1 if nz.size else 0
        values = np.zeros(entries, dtype=flat.dtype)
        values[ends] = flat[nz]
        stored_gaps = np.full(entries, span - 1, dtype=np.uint16)
        stored_gaps[ends] = gaps - pads * span
        num_padding = entries - int(nz.size)
        return Compressed(fmt, shape, dtype, values, stored_gaps, num_padding, index_bits, n, m)
    # nm24
    allowed = (
        f"a {n}:{m} sparse matrix: at most {n} non-zeros in every group of {m} along the last axis"
    )
    if len(shape) == 0 or shape[-1] % m:
        last = shape[-1] if shape else None
        raise InputError(
            "weights",
            f"shape {shape} (last axis {last})",
            f"a last axis whose length is a multiple of {m} (the {n}:{m} groups)",
        )
    groups = flat.reshape(-1, m)
    present = groups != 0
    counts = present.sum(axis=1)
    bad = np.flatnonzero(counts > n)
    if bad.size:
        g = int(bad[0])
        where = tuple(int(i) for i in np.unravel_index(g * m, shape))
        raise InputError("weights", f"{int(counts[g])} non-zeros in the group at {where}", allowed)
    # non-zeros first, then the lowest zero positions as fillers; kept in ascending order
    keep = np.sort(np.argsort(~present, axis=1, kind="stable")[:, :n], axis=1)
    values = np.take_along_axis(groups, keep, axis=1)
    num_padding = int(values.size - np.count_nonzero(values))
    return Compressed(
        fmt, shape, dtype, values, keep.astype(_pos_dtype(m)), num_padding, index_bits, n, m
    )


def decode(c: Compressed) -> np.ndarray:
    """The dense array back: same shape, dtype and bit patterns as the encoded one."""
    if not isinstance(c, Compressed):
        raise InputError("compressed", type(c).__name__, "a Compressed from sparsity.encode")
    fmt = check_format(c.fmt)
    size = c.size
    udt = np.dtype(f"u{c.dtype.itemsize}")
    values = np.asarray(c.values, dtype=udt)
    out = np.zeros(size, dtype=udt)
    if fmt == "dense":
        if values.size != size:
            raise InputError("compressed", f"{values.size} values", f"{size} values")
        out[:] = values.ravel()
    elif fmt == "bitmask":
        mask = np.asarray(c.index, dtype=bool).ravel()
        if mask.size != size or np.count_nonzero(mask) != values.size:
            raise InputError("compressed", "bitmask", "one bit per weight, one value per set bit")
        out[mask] = values
    elif fmt == "value_index":
        gaps = np.asarray(c.index).astype(np.int64).ravel()
        if gaps.size != values.size or (gaps.size and gaps.max() >= 1 << c.index_bits):
            raise InputError("compressed", "value_index", f"one gap < 2^{c.index_bits} per value")
        where = np.cumsum(gaps + 1) - 1
        if where.size and where[-1] >= size:
            raise InputError("compressed", f"{int(where[-1]) + 1} words", f"at most {size}")
        out[where] = values
    else:
        n, m = c.n, c.m
        pos = np.asarray(c.index).astype(np.int64).reshape(-1, n)
        g = size // m
        if size % m or pos.shape[0] != g or values.size != g * n:
            raise InputError("compressed", "nm24", f"{n} values and positions per group of {m}")
        if pos.size and (pos.max() >= m or (np.diff(np.sort(pos, axis=1), axis=1) == 0).any()):
            raise InputError("compressed", "nm24", f"distinct positions below {m} in a group")
        grid = out.reshape(g, m)
        np.put_along_axis(grid, pos.astype(np.intp), values.reshape(g, n), axis=1)
    return out.view(c.dtype).reshape(c.shape)


def decoder_words_per_cycle(
    fmt: str,
    sparsity: float,
    *,
    index_bits: int = 8,
    value_bits: int = 16,
    read_bits_per_cycle: float = 128.0,
    max_dense_words_per_cycle: float | None = None,
    n: int = 2,
    m: int = 4,
) -> float:
    """Dense words per cycle one bank group's decoder emits, on average.

    Model [D]: the bank group reads ``read_bits_per_cycle`` bits of its compressed stream(s) per
    cycle (default 128, the widest SRAM macro word of docs/hardware-model.md) and the decoder
    expands
    them with no other stall; buffering between the read side and the output port is assumed
    deep enough that the two decouple (a fluid model). Then

        words/cycle = min(read_bits_per_cycle / B, max_dense_words_per_cycle)

    with B the expected stream bits per dense word (:func:`stream_bits_per_weight`, s = sparsity,
    v = value_bits, b = index_bits):

    * value_index: every entry of v + b bits emits gap + 1 words; per dense word there are
      (1 - s)(1 + pad) entries, pad = s^(2^b) / (1 - s^(2^b)) padding entries per non-zero, so
      R / (v + b) x 1 / ((1 - s)(1 + pad)) (e.g. 128 / 24 / 0.4 = 13.3 words at 60%, fp16);
    * bitmask: 1 mask bit per word plus v bits per non-zero: R / ((1 - s) v + 1);
    * nm24: n values of v + ceil(log2 m) bits per group of m words: R m / (n (v + ceil(log2 m)))
      whatever s (the format stores n per group); s must be at least 1 - n/m;
    * dense: R / v.

    ``max_dense_words_per_cycle`` is the decoder's output port width (None: unbounded). With
    shallow buffers, long zero runs would leave the read side idle while the port drains, so
    the real figure is at most this one.
    """
    fmt = check_format(fmt)
    s = check_sparsity(sparsity)
    index_bits = check_index_bits(index_bits)
    n, m = check_nm(n, m)
    if (
        not isinstance(value_bits, numbers.Integral)
        or isinstance(value_bits, bool)
        or value_bits < 1
    ):
        raise InputError("value_bits", value_bits, "a positive integer number of bits")
    if not isinstance(read_bits_per_cycle, int | float) or not read_bits_per_cycle > 0:
        raise InputError("read_bits_per_cycle", read_bits_per_cycle, "a positive number of bits")
    cap = max_dense_words_per_cycle
    if cap is not None and (not isinstance(cap, int | float) or not cap > 0):
        raise InputError("max_dense_words_per_cycle", cap, "a positive number of words or None")
    if fmt == "nm24" and s < 1.0 - n / m - 1e-9:
        raise InputError("sparsity", sparsity, f"at least {1 - n / m:g} for a {n}:{m} matrix")
    words = float(read_bits_per_cycle) / stream_bits_per_weight(
        s, fmt, value_bits, index_bits, n, m
    )
    return words if cap is None else min(words, float(cap))
