"""``chipletcloud query`` is read-only and confined to the run's tables (issue 17), prints strict
JSON, shows nested cells, names every table uniquely, and paths with an apostrophe work."""

from __future__ import annotations

import datetime as dt
import json
import math
from decimal import Decimal
from pathlib import Path

import duckdb
import numpy as np
import pytest

from chipletcloud.cli import main
from chipletcloud.report.query import confined_connection, json_value, table_names
from chipletcloud.report.store import read_parquet, sql_string, write_parquet

SECRET = "chipletcloud-secret-7f3a"


def _servers(n0: int = 0) -> dict[str, np.ndarray]:
    lists = np.empty(4, dtype=object)
    lists[:] = [[1.0, 2.0], [3.0], [], [4.5, 5.5, 6.5]]
    structs = np.empty(4, dtype=object)
    structs[:] = [{"tp": 1, "pp": 2}, {"tp": 2, "pp": 1}, {"tp": 4, "pp": 1}, {"tp": 8, "pp": 8}]
    return {
        "server_id": np.arange(n0, n0 + 4),
        "cost": np.array([1.5, np.nan, np.inf, -np.inf]),
        "shape": lists,
        "mapping": structs,
        "name": np.array(["a", "b", "c", "d"]),
    }


def _run(root: Path, n0: int = 0) -> Path:
    write_parquet(_servers(n0), root / "servers.parquet")
    write_parquet(
        {"x": np.array([0.25, 0.5]), "y": np.array([1, 2])}, root / "gpt3" / "pareto.parquet"
    )
    return root


def _snapshot(root: Path) -> dict[str, bytes]:
    """Every file under root by relative path, with its bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def world(tmp_path):
    """A run directory and, beside it, files the query must not reach: a secret CSV and Parquet."""
    run = _run(tmp_path / "run")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text(f"k,v\n{SECRET},1\n")
    write_parquet({"k": np.array([SECRET])}, outside / "secret.parquet")
    return tmp_path, run, outside


def _query(capsys, sql: str, results: Path, *flags: str) -> tuple[int, str, str]:
    rc = main(["query", sql, "--results", str(results), *flags])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


ESCAPES = [
    "SELECT * FROM read_parquet({secret_parquet})",
    "SELECT * FROM read_csv({secret_csv})",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_parquet('/etc/passwd')",
    "SELECT * FROM read_text({secret_csv})",
    "SELECT * FROM glob({outside_glob})",
    "SELECT * FROM {secret_csv}",
    "COPY servers TO {target_csv}",
    "COPY (SELECT 1 AS a) TO {servers_file} (FORMAT PARQUET)",
    "COPY servers FROM {secret_csv}",
    "EXPORT DATABASE {target_dir}",
    "ATTACH {target_db} AS other",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET enable_external_access = true",
    "SET lock_configuration = false",
    "RESET enable_external_access",
    "CREATE TABLE t AS SELECT 1 AS a",
    "CREATE VIEW v AS SELECT * FROM read_csv({secret_csv})",
    "DROP VIEW servers",
    "DROP TABLE servers",
    "INSERT INTO servers (server_id) VALUES (99)",
    "DELETE FROM servers",
    "SELECT 1; COPY servers TO {target_csv}",
    "SELECT 1; SELECT 2",
    "EXPLAIN ANALYZE COPY servers TO {target_csv}",
    "SELECT * FROM query('COPY servers TO ' || {target_csv_q})",
    "PRAGMA enable_profiling",
    "CALL pragma_version()",
    "",
]


@pytest.mark.parametrize("template", ESCAPES)
def test_escape_refused_and_files_unchanged(world, capsys, template):
    root, run, outside = world
    target = root / "target"
    subs = {
        "secret_parquet": sql_string((outside / "secret.parquet").as_posix()),
        "secret_csv": sql_string((outside / "secret.csv").as_posix()),
        "outside_glob": sql_string((outside / "*").as_posix()),
        "target_csv": sql_string((target / "x.csv").as_posix()),
        "target_csv_q": sql_string(sql_string((target / "x.csv").as_posix())),
        "servers_file": sql_string((run / "servers.parquet").as_posix()),
        "target_dir": sql_string((target / "export").as_posix()),
        "target_db": sql_string((target / "db.duckdb").as_posix()),
    }
    target.mkdir()
    sql = template.format(**subs)
    before = _snapshot(root)
    rc, out, err = _query(capsys, sql, run)
    assert rc == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: sql: got "), err
    assert "read-only SELECT over the tables gpt3_pareto, servers" in lines[0]
    assert SECRET not in err and "root:" not in err
    assert _snapshot(root) == before  # nothing written, changed or removed, under run/ or beside
    assert list(target.iterdir()) == []
    # the run still answers afterwards, with its own rows
    rc, out, _ = _query(capsys, "SELECT count(*) FROM servers", run, "--json")
    assert rc == 0 and json.loads(out)["rows"] == [[4]]


def test_locked_connection_refuses_even_without_the_statement_check(world):
    """Defence in depth: the connection itself reads and writes no file and keeps its settings."""
    root, run, outside = world
    names = table_names(run)
    before = _snapshot(root)
    con = confined_connection(names)
    try:
        assert con.sql("SELECT count(*) FROM servers").fetchall() == [(4,)]
        settings = dict(
            con.sql(
                "SELECT name, value FROM duckdb_settings() WHERE name IN "
                "('enable_external_access', 'lock_configuration', 'python_enable_replacements',"
                " 'autoload_known_extensions', 'autoinstall_known_extensions')"
            ).fetchall()
        )
        assert settings == {
            "enable_external_access": "false",
            "lock_configuration": "true",
            "python_enable_replacements": "false",
            "autoload_known_extensions": "false",
            "autoinstall_known_extensions": "false",
        }
        for sql in (
            f"SELECT * FROM read_csv({sql_string((outside / 'secret.csv').as_posix())})",
            f"SELECT * FROM read_parquet({sql_string((outside / 'secret.parquet').as_posix())})",
            f"COPY servers TO {sql_string((root / 'x.csv').as_posix())}",
            f"COPY servers TO {sql_string((run / 'servers.parquet').as_posix())} (FORMAT PARQUET)",
            f"ATTACH {sql_string((root / 'db.duckdb').as_posix())} AS other",
            "SET enable_external_access = true",
            "SET lock_configuration = false",
        ):
            with pytest.raises(duckdb.Error):
                con.execute(sql)
    finally:
        con.close()
    assert _snapshot(root) == before


@pytest.mark.parametrize(
    "sql",
    [
        "FROM servers",
        "DESCRIBE servers",
        "SHOW TABLES",
        "SUMMARIZE servers",
        "EXPLAIN SELECT * FROM servers",
        "PRAGMA show_tables",
        "WITH c AS (SELECT cost FROM servers) SELECT count(*) FROM c",
    ],
)
def test_read_only_forms_allowed(world, capsys, sql):
    _, run, _ = world
    rc, out, err = _query(capsys, sql, run, "--json")
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["rows"]


def _strict(text: str) -> dict:
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def test_json_is_strict_with_null_for_nan_and_inf(world, capsys):
    _, run, _ = world
    sql = "SELECT server_id, cost, shape, mapping, name FROM servers ORDER BY server_id"
    rc, out, err = _query(capsys, sql, run, "--json")
    assert rc == 0, err
    assert "NaN" not in out and "Infinity" not in out
    doc = _strict(out)
    assert doc["columns"] == ["server_id", "cost", "shape", "mapping", "name"]
    assert doc["rows"] == [
        [0, 1.5, [1.0, 2.0], {"tp": 1, "pp": 2}, "a"],
        [1, None, [3.0], {"tp": 2, "pp": 1}, "b"],
        [2, None, [], {"tp": 4, "pp": 1}, "c"],
        [3, None, [4.5, 5.5, 6.5], {"tp": 8, "pp": 8}, "d"],
    ]
    # NaN inside nested values, DECIMAL, dates, intervals, UUIDs and BLOBs become JSON values
    sql = (
        "SELECT ['nan'::DOUBLE, 1.0] AS l, {'a': 'inf'::DOUBLE} AS s, 2.50::DECIMAL(6,2) AS d, "
        "DATE '2024-02-29' AS day, INTERVAL 90 SECOND AS iv, MAP {1: 'one'} AS m, "
        "'00000000-0000-0000-0000-000000000001'::UUID AS u, 'hi'::BLOB AS b"
    )
    rc, out, err = _query(capsys, sql, run, "--json")
    assert rc == 0, err
    row = _strict(out)["rows"][0]
    assert row == [
        [None, 1.0],
        {"a": None},
        2.5,
        "2024-02-29",
        90.0,
        {"1": "one"},
        "00000000-0000-0000-0000-000000000001",
        "aGk=",
    ]


def test_json_value_numpy_and_python_types():
    v = {
        "f": np.float32("nan"),
        "i": np.int64(7),
        "a": np.array([1.0, np.inf, 2.0]),
        "t": (Decimal("1.25"), Decimal("NaN"), dt.datetime(2024, 1, 2, 3, 4, 5)),
        "b": np.bool_(True),
        "n": None,
        "x": -math.inf,
    }
    got = json_value(v)
    assert got == {
        "f": None,
        "i": 7,
        "a": [1.0, None, 2.0],
        "t": [1.25, None, "2024-01-02T03:04:05"],
        "b": True,
        "n": None,
        "x": None,
    }
    json.dumps(got, allow_nan=False)  # strict JSON: raises on NaN or infinity
    assert type(got["i"]) is int and type(got["b"]) is bool


def test_table_shows_nested_cells(world, capsys):
    _, run, _ = world
    sql = "SELECT server_id, cost, shape, mapping FROM servers ORDER BY server_id"
    rc, out, err = _query(capsys, sql, run)
    assert rc == 0, err
    assert "[1.0,2.0]" in out and "[4.5,5.5,6.5]" in out and "[]" in out
    assert '{"tp":1,"pp":2}' in out and '{"tp":8,"pp":8}' in out
    assert "nan" in out and "-inf" in out


def test_two_runs_in_one_folder_get_distinct_tables(tmp_path, capsys):
    root = tmp_path / "runs"
    _run(root / "run1", n0=0)
    _run(root / "run2", n0=100)
    write_parquet({"x": np.array([1.0])}, root / "a" / "fronts" / "gpt3.parquet")
    write_parquet({"x": np.array([2.0, 3.0])}, root / "b" / "fronts" / "gpt3.parquet")
    write_parquet({"z": np.array([1])}, root / "tables" / "compare.parquet")
    rc, out, err = _query(capsys, "SHOW TABLES", root, "--json")
    assert rc == 0, err
    assert sorted(r[0] for r in _strict(out)["rows"]) == [
        "a_pareto_gpt3",
        "b_pareto_gpt3",
        "compare",
        "run1_gpt3_pareto",
        "run1_servers",
        "run2_gpt3_pareto",
        "run2_servers",
    ]
    sql = (
        "SELECT (SELECT min(server_id) FROM run1_servers), (SELECT min(server_id) FROM "
        "run2_servers), (SELECT count(*) FROM a_pareto_gpt3), (SELECT count(*) FROM b_pareto_gpt3)"
    )
    rc, out, err = _query(capsys, sql, root, "--json")
    assert rc == 0, err
    assert _strict(out)["rows"] == [[0, 100, 1, 2]]
    # an unknown name: one line listing the tables that exist
    rc, out, err = _query(capsys, "SELECT * FROM servers", root)
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert (
        "tables a_pareto_gpt3, b_pareto_gpt3, compare, run1_gpt3_pareto, run1_servers, "
        "run2_gpt3_pareto, run2_servers" in err
    )


def test_table_names_deterministic_and_unique(tmp_path):
    root = tmp_path / "r"
    for rel in (
        "servers.parquet",  # the top level keeps the bare name
        "x/servers.parquet",
        "Servers.parquet",  # DuckDB names ignore case: collides with servers
        "x_servers.parquet",  # collides with x/servers once that is prefixed
        "fronts/gpt-3.parquet",
        "gpt-3/pareto.parquet",
    ):
        write_parquet({"a": np.array([1])}, root / rel)
    names = {k: v.relative_to(root).as_posix() for k, v in table_names(root).items()}
    assert names == {
        "Servers": "Servers.parquet",
        "pareto_gpt_3": "fronts/gpt-3.parquet",
        "gpt_3_pareto": "gpt-3/pareto.parquet",
        "servers_2": "servers.parquet",
        "x_servers": "x/servers.parquet",
        "x_servers_2": "x_servers.parquet",
    }
    assert table_names(root) == table_names(root)


def test_apostrophe_paths(tmp_path, capsys):
    odd = tmp_path / "it's" / "run"
    p = write_parquet(_servers(), odd / "servers.parquet")
    back = read_parquet(p)
    assert back["server_id"].tolist() == [0, 1, 2, 3]
    assert back["name"].tolist() == ["a", "b", "c", "d"]
    assert np.isnan(back["cost"][1]) and back["cost"][2] == np.inf
    rc, out, err = _query(capsys, "SELECT sum(server_id) AS s FROM servers", odd, "--json")
    assert rc == 0, err
    assert _strict(out) == {"columns": ["s"], "rows": [[6]]}
    assert sql_string("it's") == "'it''s'"


def test_apostrophe_hardware_evaluate_query(tmp_path, capsys, small_space):
    base = tmp_path / "o'brien's runs"
    hw = base / "hw"
    assert main(["hardware", "--space", str(small_space), "--out", str(hw), "--json"]) == 0
    valid = json.loads(capsys.readouterr().out)["valid"]
    assert valid >= 1 and (hw / "servers.parquet").is_file()
    ev = base / "ev"
    args = ["evaluate", "--model", "gpt2", "--hardware", str(hw), "--out", str(ev), "--json"]
    assert main(args) == 0
    capsys.readouterr()
    assert (ev / "gpt2" / "pareto.parquet").is_file()
    sql = "SELECT (SELECT count(*) FROM servers), (SELECT count(*) > 0 FROM gpt2_pareto)"
    rc, out, err = _query(capsys, sql, base, "--json")
    assert rc == 0, err
    assert _strict(out)["rows"] == [[valid, True]]
