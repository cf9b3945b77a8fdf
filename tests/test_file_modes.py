"""Result files take the mode the user's umask gives a new file (issue 17: not mkstemp's 0600)."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from chipletcloud.report.store import write_json, write_parquet


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_written_files_follow_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        pq = write_parquet({"a": np.arange(3)}, tmp_path / "t.parquet")
        js = write_json({"a": 1}, tmp_path / "m.json")
    finally:
        os.umask(old)
    for p in (pq, js):
        assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~mask


def test_shard_files_follow_the_umask(tmp_path):
    from chipletcloud.explore.shards import _atomic_write

    old = os.umask(0o027)
    try:
        _atomic_write(tmp_path / "s.bin", lambda fh: fh.write(b"x"))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "s.bin").stat().st_mode) == 0o640
