"""Compressed weight formats and their storage cost.

A compressed matrix is stored in CC-MEM and expanded back to dense words by the decoder of each
bank group ("Store-as-Compressed, Load-as-Dense", Chiplet Cloud paper [P]); compute never sees the
compression. Storage per format, for a fraction ``s`` of zero weights of ``value_bits`` each and
unstructured (independent) zeros:

* ``value_index`` (default, ``index_bits`` = 8): each non-zero stores its value and the number of
  zeros since the previous non-zero. A gap of 2^b zeros or more needs a padding entry (a stored
  zero) for each 2^b zeros; for independent zeros the gaps are geometric and the expected padding
  per non-zero is s^(2^b) / (1 - s^(2^b)). Ratio = (1 - s)(1 + pad)(v + b) / v. At 60%
  with 16-bit values: 0.4 x 24 / 16 = 0.60 of dense, i.e. 1.67x (docs/hardware-model.md [D]).
* ``bitmask``: one presence bit per weight plus the non-zero values: (1 - s) + 1 / v.
* ``nm24`` (2:4 structured): exactly half the values plus a 2-bit position per kept value:
  0.5 (v + 2) / v, whatever ``s`` is (the weights must be 2:4 sparse; s is 0.5).
* ``dense``: 1.

These are the expectations of the exact codec in :mod:`chipletcloud.sparsity.codec` (the stream
layouts are documented there); both use :func:`stream_bits_per_weight`. The codec's exact byte
count differs from them only by the rounding of each stream to whole bytes, the random number of
zeros of a finite matrix and (value_index) the trailing zeros after the last non-zero, which are
implied by the shape and cost nothing.
"""

from __future__ import annotations

import numbers

from chipletcloud.errors import InputError

FORMATS = ("value_index", "bitmask", "nm24", "dense")


def check_sparsity(sparsity: float) -> float:
    if not isinstance(sparsity, int | float) or not (0.0 <= float(sparsity) < 1.0):
        raise InputError("sparsity", sparsity, "a fraction of zero weights in [0, 1)")
    return float(sparsity)


def check_format(fmt: str) -> str:
    if not isinstance(fmt, str) or fmt not in FORMATS:
        raise InputError("sparse_format", fmt, ", ".join(FORMATS))
    return fmt


def _is_int(x: object) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def check_index_bits(index_bits: int) -> int:
    if not _is_int(index_bits) or not 1 <= int(index_bits) <= 16:
        raise InputError("index_bits", index_bits, "an integer from 1 to 16")
    return int(index_bits)


def check_nm(n: int, m: int) -> tuple[int, int]:
    """The group size ``m`` (2..65536) and the values kept per group ``n`` (1..m) of N:M."""
    if not _is_int(m) or not 2 <= int(m) <= 65536:
        raise InputError("m", m, "an integer group size from 2 to 65536")
    if not _is_int(n) or not 1 <= int(n) <= int(m):
        raise InputError("n", n, f"an integer number of kept values from 1 to m = {int(m)}")
    return int(n), int(m)


def position_bits(m: int) -> int:
    """Bits of the in-group position of a kept N:M value: ceil(log2 m) (2 for 2:4)."""
    return (int(m) - 1).bit_length()


def expected_padding_per_nonzero(sparsity: float, index_bits: int) -> float:
    """Expected value_index padding entries per non-zero for independent zeros.

    A gap of g zeros takes floor(g / 2^b) padding entries; gaps are geometric,
    P(g >= k) = s^k, so E[floor(g / K)] = sum_j s^(jK) = s^K / (1 - s^K) with K = 2^b.
    """
    run = float(sparsity) ** (2**index_bits)
    return run / (1.0 - run)


def stream_bits_per_weight(
    sparsity: float,
    fmt: str,
    value_bits: int = 16,
    index_bits: int = 8,
    n: int = 2,
    m: int = 4,
) -> float:
    """Expected compressed-stream bits per dense weight of the codec's format ``fmt``.

    For independent zeros with probability ``sparsity`` (``nm24`` does not depend on it: every
    group of m stores n values and n positions). Unlike :func:`storage_ratio` there is no
    "sparsity 0 means stored dense" shortcut: this is what the format itself costs.
    """
    s = float(sparsity)
    v = float(value_bits)
    if fmt == "dense":
        return v
    if fmt == "value_index":
        pad = expected_padding_per_nonzero(s, index_bits)
        return (1.0 - s) * (1.0 + pad) * (v + index_bits)
    if fmt == "bitmask":
        return (1.0 - s) * v + 1.0
    if fmt == "nm24":
        return n / m * (v + position_bits(m))
    raise InputError("sparse_format", fmt, ", ".join(FORMATS))


def storage_ratio(
    sparsity: float, fmt: str = "value_index", value_bits: int = 16, index_bits: int = 8
) -> float:
    """Stored bytes / dense bytes of a weight matrix with a fraction ``sparsity`` of zeros.

    ``stream_bits_per_weight(...) / value_bits``, with one convention of the performance model:
    a matrix without zeros (``sparsity`` 0) is stored dense, ratio 1, whatever ``fmt`` says (the
    codec itself would spend (v + b) / v with value_index, 1 + 1 / v with bitmask and cannot
    encode it as nm24). ``nm24`` needs ``sparsity`` 0.5 (or 0). For large matrices with
    independent zeros, ``encode(x, fmt).nbytes / x.nbytes`` agrees with it to well within 2%.
    """
    s = check_sparsity(sparsity)
    check_format(fmt)
    index_bits = check_index_bits(index_bits)
    if fmt == "dense" or s == 0.0:
        return 1.0
    if fmt == "nm24" and abs(s - 0.5) > 1e-9:
        raise InputError("sparsity", sparsity, "0.5 for the 2:4 structured format nm24")
    return stream_bits_per_weight(s, fmt, value_bits, index_bits) / float(value_bits)
