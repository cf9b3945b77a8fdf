"""Result store: Parquet tables written through DuckDB, and a manifest beside every run."""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from chipletcloud.config import file_mode, versions


def _atomic_target(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, file_mode())  # the mode the user's umask gives a new file, not mkstemp's 0600
    os.close(fd)
    return Path(tmp)


def sql_string(text: str) -> str:
    """``text`` as a SQL string literal: in single quotes, each ``'`` doubled (for statements
    such as ``COPY ... TO`` that take no prepared parameter)."""
    return "'" + str(text).replace("'", "''") + "'"


def write_parquet(table: dict[str, np.ndarray], path: str | Path) -> Path:
    """Write a dict of equal-length columns to Parquet through DuckDB, atomically (temporary file
    in the same folder, then rename). Column order is kept; output is deterministic."""
    path = Path(path)
    arrow = pa.table({k: np.asarray(v) for k, v in table.items()})  # noqa: F841 (used by duckdb)
    tmp = _atomic_target(path)
    try:
        con = duckdb.connect()
        con.register("arrow_tbl", arrow)
        con.execute(
            f"COPY (SELECT * FROM arrow_tbl) TO {sql_string(tmp.as_posix())} "
            "(FORMAT PARQUET, COMPRESSION ZSTD)"
        )
        con.close()
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_parquet(path: str | Path) -> dict[str, np.ndarray]:
    """Read a Parquet table into numpy columns (through DuckDB)."""
    con = duckdb.connect()
    rel = con.sql("SELECT * FROM read_parquet($path)", params={"path": Path(path).as_posix()})
    tbl = rel.to_arrow_table()
    con.close()
    return {name: tbl.column(name).to_numpy() for name in tbl.column_names}


def write_json(obj: Any, path: str | Path) -> Path:
    """Write JSON atomically (sorted keys, 2-space indent)."""
    path = Path(path)
    tmp = _atomic_target(path)
    try:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=jsonable) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def jsonable(x: Any) -> Any:
    """A JSON-ready value of a numpy scalar or array (anything else: its string)."""
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)


def manifest(command: str, config: dict, config_hash: str, **extra: Any) -> dict:
    """A run manifest: command, config hash, the config itself, versions and creation time."""
    return {
        "command": command,
        "config_hash": config_hash,
        "config": config,
        "versions": versions(),
        "created_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **extra,
    }
