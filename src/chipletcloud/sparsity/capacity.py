"""How much larger a model a Chiplet Cloud system holds when its weights are sparse.

A system of ``memory_bytes`` of CC-MEM (all chips of all servers) holds weights stored compressed
at ``storage_ratio(s, fmt)`` of their dense size (:mod:`chipletcloud.sparsity.formats`), next to a
KV-cache reserve. The largest model that fits, in parameters of ``value_bits``:

    params_dense  = (memory - kv) / (value_bits / 8)
    params_sparse = params_dense / ratio          ->  capacity gain = 1 / ratio

(docs/hardware-model.md: a 16-bit value + 8-bit relative index per non-zero at 60% sparsity stores
0.4 x 24 / 16 = 0.60 of dense, 1.67x; the paper reports 1.7x [P].) A format whose ratio exceeds 1
at low sparsity is not worth using: the weights are then kept dense (ratio 1).
"""

from __future__ import annotations

from chipletcloud.sparsity.formats import check_format, check_sparsity, storage_ratio


def effective_ratio(
    sparsity: float, fmt: str = "value_index", value_bits: int = 16, index_bits: int = 8
) -> float:
    """Stored / dense bytes, never above 1 (dense storage when compression does not pay)."""
    return min(storage_ratio(sparsity, fmt, value_bits, index_bits), 1.0)


def capacity_study(
    memory_bytes: float,
    kv_bytes: float,
    sparsity: float,
    fmt: str = "value_index",
    value_bits: int = 16,
    index_bits: int = 8,
) -> dict:
    """Largest dense and sparse models that fit ``memory_bytes`` after ``kv_bytes`` of KV cache,
    with the arithmetic as text."""
    s = check_sparsity(sparsity)
    check_format(fmt)
    ratio = effective_ratio(s, fmt, value_bits, index_bits)
    weight_budget = max(memory_bytes - kv_bytes, 0.0)
    bytes_per_param = value_bits / 8.0
    dense_params = weight_budget / bytes_per_param
    sparse_params = dense_params / ratio
    formula = {
        "value_index": f"(1 - {s:g}) x ({value_bits} + {index_bits}) / {value_bits}",
        "bitmask": f"(1 - {s:g}) + 1 / {value_bits}",
        "nm24": f"0.5 x ({value_bits} + 2) / {value_bits}",
        "dense": "1",
    }[fmt]
    return {
        "sparsity": s,
        "sparse_format": fmt,
        "storage_ratio": ratio,
        "memory_bytes": memory_bytes,
        "kv_bytes": kv_bytes,
        "weight_budget_bytes": weight_budget,
        "dense_bytes": weight_budget,
        "compressed_bytes": weight_budget * ratio,
        "capacity_gain": 1.0 / ratio,
        "largest_model_params_dense": dense_params,
        "largest_model_params_sparse": sparse_params,
        "arithmetic": (
            f"storage ratio = {formula} = {ratio:.4f}; capacity gain = 1 / {ratio:.4f} = "
            f"{1 / ratio:.3f}x; weights budget = {memory_bytes / 1e9:,.1f} GB of CC-MEM - "
            f"{kv_bytes / 1e9:,.1f} GB KV = {weight_budget / 1e9:,.1f} GB -> "
            f"{dense_params / 1e9:,.1f} B dense parameters at {value_bits} bits, "
            f"{sparse_params / 1e9:,.1f} B at {s:.0%} sparsity"
        ),
    }
