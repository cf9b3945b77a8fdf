"""Shared fixtures. Numba's cache and matplotlib's config go to temporary folders."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("NUMBA_CACHE_DIR", tempfile.mkdtemp(prefix="numba-cache-"))
os.environ.setdefault("MPLCONFIGDIR", tempfile.mkdtemp(prefix="mpl-config-"))

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

# CI runs the property tests on a fixed seed (a counterexample found at random must not decide
# whether a change lands; run them locally, unseeded, to hunt for new ones)
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

from chipletcloud.config import resolve  # noqa: E402


@pytest.fixture(scope="session")
def isca24():
    return resolve("isca24")


@pytest.fixture(scope="session")
def v1():
    return resolve("v1")


#: A 16-candidate phase-1 space that keeps a few valid servers: for the CLI tests.
SMALL_SPACE = (
    "die_area_mm2: [100, 160]\nmac_ratio: [0.05, 0.1]\n"
    "operational_intensity: [4, 16]\npackages_per_lane: [10, 19]\n"
)


@pytest.fixture
def small_space(tmp_path):
    """A space YAML file of :data:`SMALL_SPACE`."""
    p = tmp_path / "space.yaml"
    p.write_text(SMALL_SPACE)
    return p


@pytest.fixture
def small_hardware_dir(tmp_path, small_space, capsys):
    """``chipletcloud hardware`` run on :data:`SMALL_SPACE`: its output directory."""
    from chipletcloud.cli import main

    assert (
        main(["hardware", "--space", str(small_space), "--out", str(tmp_path / "hw"), "--json"])
        == 0
    )
    capsys.readouterr()
    return tmp_path / "hw"
