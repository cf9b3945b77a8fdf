"""Compressed weight formats and their storage cost.

A compressed matrix is stored in CC-MEM and expanded back to dense words by the decoder of each
bank group ("Store-as-Compressed, Load-as-Dense", Chiplet Cloud paper [P]); compute never sees the
compression. Storage per format, for a fraction ``s`` of zero weights of ``value_bits`` each and
unstructured (independent) zeros:

* ``value_index`` (default, ``index_bits`` = 8): each non-zero stores its value and the number of
  zeros since the previous non-zero. A gap of 2^b zeros or more needs a padding entry (a stored
  zero) for each 2^b zeros; for independent zeros the gaps are geometric and the expected padding
  per non-zero is s^(2^b) / (1 - s^(2^b)). Ratio = (1 - s)(1 + pad)(v + b) / v. At 60%
  with 16-bit values: 0.4 x 24 / 16 = 0.60 of dense, i.e. 1.67x (REFERENCE.md s1 [D]).
* ``bitmask``: one presence bit per weight plus the non-zero values: (1 - s) + 1 / v.
* ``nm24`` (2:4 structured): exactly half the values plus a 2-bit position per kept value:
  0.5 (v + 2) / v, whatever ``s`` is (the weights must be 2:4 sparse; s is 0.5).
* ``dense``: 1.
"""

from __future__ import annotations

from chipletcloud.errors import InputError

FORMATS = ("value_index", "bitmask", "nm24", "dense")


def check_sparsity(sparsity: float) -> float:
    if not isinstance(sparsity, int | float) or not (0.0 <= float(sparsity) < 1.0):
        raise InputError("sparsity", sparsity, "a fraction of zero weights in [0, 1)")
    return float(sparsity)


def storage_ratio(
    sparsity: float, fmt: str = "value_index", value_bits: int = 16, index_bits: int = 8
) -> float:
    """Stored bytes / dense bytes of a weight matrix with a fraction ``sparsity`` of zeros."""
    s = check_sparsity(sparsity)
    if fmt not in FORMATS:
        raise InputError("sparse_format", fmt, ", ".join(FORMATS))
    if not isinstance(index_bits, int) or not 1 <= index_bits <= 16:
        raise InputError("index_bits", index_bits, "an integer from 1 to 16")
    v = float(value_bits)
    if fmt == "dense" or s == 0.0:
        return 1.0
    if fmt == "value_index":
        run = s ** (2**index_bits)
        pad = run / (1.0 - run)
        return (1.0 - s) * (1.0 + pad) * (v + index_bits) / v
    if fmt == "bitmask":
        return (1.0 - s) + 1.0 / v
    # nm24
    if abs(s - 0.5) > 1e-9:
        raise InputError("sparsity", sparsity, "0.5 for the 2:4 structured format nm24")
    return 0.5 * (v + 2.0) / v
