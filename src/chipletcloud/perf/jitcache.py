"""Numba's on-disk cache, invalidated by every source file the compiled engine is built from.

Numba stamps a cached function with its own source file only. The fast path compiles functions
of :mod:`chipletcloud.perf.formulas` and calls them from :mod:`chipletcloud.perf.fast` and
:mod:`chipletcloud.explore.kernel`, so a change to a formula would leave the cached search loop
of the other files stale: a silent wrong answer. :func:`install` puts a cache locator first in
numba's list that, for the files listed in :data:`ENGINE_FILES`, stamps every cached function
with one digest of all of them; any change to any of them recompiles all of them.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from numba.core import caching

#: numba's cache implementation base (``CacheImpl``; ``_CacheImpl`` before numba 0.61)
_IMPL = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl")  # noqa: B009
ROOT = Path(__file__).resolve().parent.parent  # the chipletcloud package
#: The sources the compiled engine is built from (relative to the package).
ENGINE_FILES = ("perf/codes.py", "perf/formulas.py", "perf/fast.py", "explore/kernel.py")


@cache
def engine_stamp() -> str:
    """SHA-256 of the engine's sources (:data:`ENGINE_FILES`), read once per process."""
    h = hashlib.sha256()
    for rel in ENGINE_FILES:
        h.update(rel.encode() + b"\0" + (ROOT / rel).read_bytes() + b"\0")
    return h.hexdigest()


class EngineLocator:
    """Numba's own locator for a function of the engine (where its cache lives), with the
    source stamp replaced by :func:`engine_stamp`; no locator for any other file."""

    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def get_source_stamp(self):
        return ("chipletcloud-engine", engine_stamp())

    @classmethod
    def from_function(cls, py_func, py_file):
        path = Path(py_file).resolve()
        if path not in {ROOT / rel for rel in ENGINE_FILES}:
            return None
        for other in _IMPL._locator_classes:
            if other is cls:
                continue
            inner = other.from_function(py_func, py_file)
            if inner is not None:
                return cls(inner)
        return None


def install() -> None:
    """Put :class:`EngineLocator` first in numba's locators (once)."""
    classes = _IMPL._locator_classes
    if EngineLocator not in classes:
        classes.insert(0, EngineLocator)
