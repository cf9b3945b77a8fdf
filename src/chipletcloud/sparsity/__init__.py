"""Sparse weights in CC-MEM: Store-as-Compressed, Load-as-Dense."""

from chipletcloud.sparsity.codec import Compressed, decode, decoder_words_per_cycle, encode
from chipletcloud.sparsity.formats import FORMATS, storage_ratio

__all__ = [
    "FORMATS",
    "Compressed",
    "decode",
    "decoder_words_per_cycle",
    "encode",
    "storage_ratio",
]
