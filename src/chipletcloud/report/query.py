"""``chipletcloud query``: read-only DuckDB SQL over a run's Parquet tables, confined.

Every Parquet file under the run directory becomes one table in a private in-memory DuckDB
database (:func:`table_names` says which name). The files are read once, with their paths passed
as prepared parameters, before the connection is locked down: no file system or network access
(``enable_external_access = false``), no extension loading, no replacement scans of Python
objects, and no configuration change after that (``lock_configuration = true``). The SQL itself
must be one read-only statement (a ``SELECT`` in any of DuckDB's forms, which include ``FROM t``,
``WITH``, ``VALUES``, ``DESCRIBE``, ``SHOW``, ``SUMMARIZE``; ``EXPLAIN [ANALYZE]`` of one; or a
listing ``PRAGMA``); anything else is refused with an :class:`~chipletcloud.errors.InputError`.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import re
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from chipletcloud.errors import InputError

# Set in this order once the tables are loaded; the last one forbids changing any of them back.
LOCKDOWN = (
    "SET python_enable_replacements = false",
    "SET autoinstall_known_extensions = false",
    "SET autoload_known_extensions = false",
    "SET allow_community_extensions = false",
    "SET enable_external_access = false",
    "SET lock_configuration = true",
)

_EXPLAIN = re.compile(r"\s*EXPLAIN\s+(?:ANALY[SZ]E\s+)?(?P<inner>.*)", re.IGNORECASE | re.DOTALL)
_PRAGMA = re.compile(
    r"\s*PRAGMA\s+(?:show_tables|show_tables_expanded|table_info|show|database_list|version)\b",
    re.IGNORECASE,
)


def _identifier(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text)


def _base_name(parts: tuple[str, ...]) -> tuple[str, int]:
    """The table name of a file from its path parts (relative, no suffix) and how many of the
    trailing parts it used: ``servers``; ``<model>_pareto`` for an evaluate run's
    ``<model>/pareto.parquet``; ``pareto_<model>`` for reproduce's ``fronts/<model>.parquet``."""
    if len(parts) >= 2 and parts[-1] == "pareto":
        return f"{parts[-2]}_pareto", 2
    if len(parts) >= 2 and parts[-2] == "fronts":
        return f"pareto_{parts[-1]}", 2
    return parts[-1], 1


def table_names(results: Path) -> dict[str, Path]:
    """Each Parquet file under ``results`` by its table name, in sorted path order.

    A name is the file's base name (:func:`_base_name`) with every character that is not a
    letter or digit replaced by ``_``. Files whose names collide (DuckDB names ignore case; say
    two evaluate runs in one folder) are all named with the folders before the base name in
    front, joined by ``_`` (``run1_gpt3_pareto``, ``run2_gpt3_pareto``), a file directly at that
    level keeping the bare name; a name that still collides gets ``_2``, ``_3``, ... in path
    order."""
    results = Path(results)
    files = sorted(results.rglob("*.parquet"), key=lambda p: p.relative_to(results).parts)
    files = [p for p in files if p.is_file()]
    base: dict[Path, str] = {}
    prefixed: dict[Path, str] = {}
    for path in files:
        parts = path.relative_to(results).with_suffix("").parts
        name, used = _base_name(parts)
        base[path] = _identifier(name)
        prefixed[path] = _identifier("_".join((*parts[:-used], name)))
    count: dict[str, int] = {}
    for name in base.values():
        count[name.casefold()] = count.get(name.casefold(), 0) + 1
    names: dict[str, Path] = {}
    taken: set[str] = set()
    for path in files:
        name = base[path] if count[base[path].casefold()] == 1 else prefixed[path]
        unique, k = name, 1
        while unique.casefold() in taken:
            k += 1
            unique = f"{name}_{k}"
        taken.add(unique.casefold())
        names[unique] = path
    return names


def _allowed(names: list[str]) -> str:
    return f"one read-only SELECT over the tables {', '.join(sorted(names, key=str.casefold))}"


def check_read_only(sql: str, names: list[str]) -> None:
    """Refuse (InputError) SQL that is not exactly one read-only statement: a SELECT (DuckDB
    parses ``DESCRIBE``, ``SHOW``, ``SUMMARIZE``, ``VALUES`` and ``FROM t`` as one), ``EXPLAIN
    [ANALYZE]`` of a SELECT, or a listing PRAGMA (show_tables, table_info, ...)."""
    problem = _read_only_problem(sql)
    if problem:
        raise InputError("sql", sql, f"{_allowed(names)} ({problem})")


def _read_only_problem(sql: str) -> str | None:
    """Why ``sql`` is not one read-only statement, or None when it is."""
    con = duckdb.connect()
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        return str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
    finally:
        con.close()
    if len(statements) != 1:
        return f"got {len(statements)} statements"
    kind = statements[0].type
    if kind == duckdb.StatementType.SELECT:
        return None
    if kind == duckdb.StatementType.EXPLAIN:
        m = _EXPLAIN.match(sql)
        inner = _read_only_problem(m.group("inner")) if m else "EXPLAIN not at the start"
        return f"EXPLAIN of: {inner}" if inner else None
    if kind == duckdb.StatementType.PRAGMA and _PRAGMA.match(sql):
        return None
    return f"got a {kind.name} statement"


def confined_connection(names: dict[str, Path]) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with each file loaded as a table, then locked down (:data:`LOCKDOWN`):
    it can read no other file and write none."""
    con = duckdb.connect(":memory:")
    try:
        for name, path in names.items():
            quoted = '"' + name.replace('"', '""') + '"'
            try:
                con.execute(
                    f"CREATE TABLE {quoted} AS SELECT * FROM read_parquet($path)",
                    {"path": path.as_posix()},
                )
            except duckdb.Error as exc:
                raise InputError(
                    "results", str(path), f"a readable Parquet file ({str(exc).splitlines()[0]})"
                ) from exc
        for statement in LOCKDOWN:
            con.execute(statement)
    except BaseException:
        con.close()
        raise
    return con


def run_query(results: Path, sql: str) -> tuple[list[str], list[tuple]]:
    """Run one read-only statement over the run's tables; return the column names and rows (as
    DuckDB's Python values). Bad input (no run directory, refused or failing SQL) raises
    InputError naming the tables."""
    results = Path(results)
    if not results.is_dir():
        raise InputError("results", str(results), "a run directory (reproduce/evaluate/hardware)")
    names = table_names(results)
    if not names:
        raise InputError("results", str(results), "a directory holding Parquet tables")
    listed = list(names)
    check_read_only(sql, listed)
    con = confined_connection(names)
    try:
        rel = con.sql(sql)
        if rel is None:  # not reached: every allowed statement returns rows
            return [], []
        return list(rel.columns), rel.fetchall()
    except duckdb.Error as exc:
        msg = str(exc).splitlines()[0]
        raise InputError("sql", sql, f"valid DuckDB SQL, {_allowed(listed)} ({msg})") from exc
    finally:
        con.close()


def json_value(v: Any) -> Any:
    """A strict-JSON value of a DuckDB/numpy value: NaN and +-inf become None, lists, tuples,
    arrays and dicts (STRUCT, MAP) recurse, Decimal becomes a number, dates and times ISO
    strings, intervals seconds, UUIDs strings and BLOBs base64."""
    if v is None or isinstance(v, bool | str):
        return v
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, Decimal):
        return json_value(float(v))
    if isinstance(v, np.ndarray):
        return [json_value(x) for x in v.tolist()]
    if isinstance(v, np.generic):
        return json_value(v.item())
    if isinstance(v, dict):
        return {k if isinstance(k, str) else _key(k): json_value(x) for k, x in v.items()}
    if isinstance(v, list | tuple | set | frozenset):
        return [json_value(x) for x in v]
    if isinstance(v, dt.datetime | dt.date | dt.time):
        return v.isoformat()
    if isinstance(v, dt.timedelta):
        return v.total_seconds()
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(v)).decode("ascii")
    return str(v)


def _key(k: Any) -> str:
    j = json_value(k)
    return j if isinstance(j, str) else json.dumps(j, allow_nan=False, separators=(",", ":"))


def json_document(columns: list[str], rows: list[tuple]) -> dict:
    """``{"columns": [...], "rows": [[...], ...]}`` with every value strict JSON."""
    return {"columns": list(columns), "rows": [[json_value(v) for v in r] for r in rows]}


def cell_text(v: Any) -> str:
    """A value as a table cell: floats to 6 significant digits, NULL, nested values (LIST,
    STRUCT, MAP, arrays) as compact JSON, anything else as its string."""
    if v is None:
        return "NULL"
    if isinstance(v, float | np.floating):
        return f"{float(v):.6g}"
    if isinstance(v, dict | list | tuple | np.ndarray):
        return json.dumps(json_value(v), allow_nan=False, separators=(",", ":"))
    return str(v)
