"""Sparse weights in CC-MEM: Store-as-Compressed, Load-as-Dense."""

from chipletcloud.sparsity.formats import FORMATS, storage_ratio

__all__ = ["FORMATS", "storage_ratio"]
