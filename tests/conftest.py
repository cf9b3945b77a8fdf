"""Shared fixtures. Numba's cache and matplotlib's config go to temporary folders."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("NUMBA_CACHE_DIR", tempfile.mkdtemp(prefix="numba-cache-"))
os.environ.setdefault("MPLCONFIGDIR", tempfile.mkdtemp(prefix="mpl-config-"))

import pytest  # noqa: E402

from chipletcloud.config import resolve  # noqa: E402


@pytest.fixture(scope="session")
def isca24():
    return resolve("isca24")


@pytest.fixture(scope="session")
def v1():
    return resolve("v1")
