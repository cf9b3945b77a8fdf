"""Sharded sweeps: identical results across backends and shard sizes, resume after SIGKILL,
refusal of a run directory from another config, byte-identical Parquet outputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chipletcloud.cli import main
from chipletcloud.config import HardwareSpace, load_space, resolve
from chipletcloud.errors import InputError
from chipletcloud.explore import shards, software
from chipletcloud.explore.backends import ProcessBackend, SerialBackend, get_backend
from chipletcloud.explore.hardware import enumerate_space, explore_hardware
from chipletcloud.models.catalogue import load_model

PROPERTY = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
SMALL_SPACE = (
    "die_area_mm2: [60, 120, 200, 320]\nmac_ratio: [0.04, 0.1, 0.24]\n"
    "operational_intensity: [1, 2, 8]\npackages_per_lane: [4, 8, 12, 16]\n"
)


# ------------------------------------------------------------------------------------ helpers


def assert_tables_equal(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        assert np.array_equal(a[k], b[k], equal_nan=True), k


def assert_hardware_equal(a, b) -> None:
    assert_tables_equal(a.table, b.table)
    assert (a.candidates, a.rejected, a.failures) == (b.candidates, b.rejected, b.failures)


def assert_search_equal(a, b) -> None:
    assert_tables_equal(a.front, b.front)
    assert np.array_equal(a.best_per_design, b.best_per_design)
    assert (a.counts, a.evaluated, a.model) == (b.counts, b.evaluated, b.model)


@pytest.fixture(scope="module")
def pool():
    with ProcessBackend(max_workers=2) as b:
        yield b


@pytest.fixture(scope="module")
def dask_pool():
    pytest.importorskip("dask.distributed")
    with get_backend("dask") as b:
        yield b


@pytest.fixture(scope="module")
def default_table():
    return explore_hardware(load_space(), resolve("isca24")).table


spaces = st.builds(
    HardwareSpace,
    die_area_mm2=st.lists(
        st.sampled_from([20, 50, 100, 150, 240, 400, 800]), min_size=1, max_size=3, unique=True
    ),
    mac_ratio=st.lists(
        st.sampled_from([0.02, 0.05, 0.1, 0.2, 0.4]), min_size=1, max_size=3, unique=True
    ),
    operational_intensity=st.lists(
        st.sampled_from([1.0, 2.0, 4.0, 16.0]), min_size=1, max_size=2, unique=True
    ),
    packages_per_lane=st.lists(st.integers(1, 20), min_size=1, max_size=3, unique=True),
    lanes_per_server=st.lists(st.integers(1, 8), min_size=1, max_size=2, unique=True),
    chips_per_package=st.lists(st.sampled_from([1, 2, 4]), min_size=1, max_size=2, unique=True),
)


# --------------------------------------------------------------------------------- unit tests


def test_shard_ranges():
    assert shards.shard_ranges(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert shards.shard_ranges(3, 100) == [(0, 3)]
    assert shards.shard_ranges(0, 5) == []
    for bad in (0, -1, 1.5, True):
        with pytest.raises(InputError):
            shards.shard_ranges(10, bad)


def test_enumerate_range_matches_enumerate_space():
    sp = load_space()
    full = enumerate_space(sp)
    for lo, hi in ((0, 7), (1000, 1003), (sp.size - 5, sp.size)):
        part = shards.enumerate_range(sp, lo, hi)
        assert_tables_equal({k: v[lo:hi] for k, v in full.items()}, part)


def test_unknown_backend_and_address():
    with pytest.raises(InputError, match="serial, process, dask"):
        get_backend("spark")
    with pytest.raises(InputError, match="only with --backend dask"):
        get_backend("process", "tcp://127.0.0.1:8786")


# -------------------------------------------------------------------------- property tests


@PROPERTY
@given(space=spaces, size=st.integers(1, 80), preset=st.sampled_from(["isca24", "v1"]))
def test_hardware_identical_across_backends_and_shard_sizes(pool, dask_pool, space, size, preset):
    params = resolve(preset)
    ref = explore_hardware(space, params)
    assert_hardware_equal(ref, shards.run_hardware_sharded(space, params, "serial", size))
    assert_hardware_equal(ref, shards.run_hardware_sharded(space, params, pool, size + 3))
    assert_hardware_equal(ref, shards.run_hardware_sharded(space, params, dask_pool, 2 * size))


@PROPERTY
@given(
    rows=st.lists(st.integers(0, 40_000), min_size=1, max_size=60, unique=True),
    size=st.integers(1, 25),
    model=st.sampled_from(["gpt2", "llama2-7b", "mixtral-8x7b", "gpt3"]),
    preset=st.sampled_from(["isca24", "v1"]),
)
def test_search_identical_across_backends_and_shard_sizes(
    pool, dask_pool, default_table, rows, size, model, preset
):
    idx = np.sort(np.asarray(rows)) % len(default_table["server_id"])
    idx = np.unique(idx)
    table = {k: v[idx] for k, v in default_table.items()}
    params, spec = resolve(preset), load_model(model)
    ref = software.search(table, spec, params)
    assert_search_equal(ref, shards.search_sharded(table, spec, params, "serial", size))
    assert_search_equal(ref, shards.search_sharded(table, spec, params, pool, size + 1))
    assert_search_equal(ref, shards.search_sharded(table, spec, params, dask_pool, 3 * size))


def test_search_identical_on_a_large_table(pool, default_table):
    """A quarter of the default table (10k designs), one model: one-shot vs process shards."""
    table = {k: v[::4] for k, v in default_table.items()}
    params, spec = resolve("isca24"), load_model("palm")
    ref = software.search(table, spec, params)
    got = shards.search_sharded(table, spec, params, pool, 1500)
    assert_search_equal(ref, got)
    assert len(ref.front["design"]) > 10


# --------------------------------------------------------------------- run directory, resume


def test_resume_loads_finished_shards(tmp_path):
    sp, params = load_space(), resolve("isca24")
    ref = explore_hardware(sp, params)
    stats: dict = {}
    first = shards.run_hardware_sharded(sp, params, "serial", 20_000, run_dir=tmp_path, stats=stats)
    assert stats == {"shards": 4, "resumed": 0, "computed": 4}
    assert_hardware_equal(ref, first)
    victim = tmp_path / "shards" / "hardware" / "20000-40000.npz"
    victim.unlink()
    (tmp_path / "shards" / "hardware" / ".0-20000.npz.x.tmp").write_bytes(b"partial")
    again = shards.run_hardware_sharded(
        sp, params, SerialBackend(), 20_000, run_dir=tmp_path, resume=True, stats=stats
    )
    assert stats == {"shards": 4, "resumed": 3, "computed": 1}
    assert_hardware_equal(ref, again)
    assert victim.is_file()
    assert not list((tmp_path / "shards" / "hardware").glob(".*.tmp"))


def test_refuses_run_dir_from_another_config(tmp_path, capsys):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(SMALL_SPACE)
    b.write_text(SMALL_SPACE.replace("[4, 8, 12, 16]", "[4, 8]"))
    out = tmp_path / "run"
    assert main(["hardware", "--space", str(a), "--out", str(out), "--shard-size", "50"]) == 0
    before = (out / "servers.parquet").read_bytes()
    capsys.readouterr()
    for extra in ([], ["--resume"]):
        code = main(
            ["hardware", "--space", str(b), "--out", str(out), "--shard-size", "50", *extra]
        )
        assert code == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "config hash" in err and "use a new --out" in err
    assert (out / "servers.parquet").read_bytes() == before
    # another shard size is another config too; the same config runs again
    assert main(["hardware", "--space", str(a), "--out", str(out), "--shard-size", "51"]) == 2
    assert main(["hardware", "--space", str(a), "--out", str(out), "--shard-size", "50"]) == 0
    assert (out / "servers.parquet").read_bytes() == before
    # phase 2: another preset in the same run directory is refused
    ev = tmp_path / "ev"
    args = ["evaluate", "--model", "gpt2", "--hardware", str(out), "--out", str(ev), "--resume"]
    assert main(args) == 0
    assert main([*args, "--preset", "v1"]) == 2
    assert "config hash" in capsys.readouterr().err


def test_cli_outputs_byte_identical_across_backends(tmp_path):
    pytest.importorskip("dask.distributed")
    sp = tmp_path / "s.yaml"
    sp.write_text(SMALL_SPACE)
    runs = {
        "plain": [],
        "again": [],
        "process": ["--backend", "process", "--shard-size", "7"],
        "dask": ["--backend", "dask", "--shard-size", "13"],
    }
    for name, extra in runs.items():
        hw, ev = tmp_path / f"hw-{name}", tmp_path / f"ev-{name}"
        assert main(["hardware", "--space", str(sp), "--out", str(hw), *extra]) == 0
        models = ["--model", "gpt2"]
        assert main(["evaluate", *models, "--hardware", str(hw), "--out", str(ev), *extra]) == 0
    files = ["hw-{}/servers.parquet"] + [
        f"ev-{{}}/gpt2/{f}" for f in ("pareto.parquet", "optimal.json")
    ]
    for pattern in files:
        blobs = {(tmp_path / pattern.format(name)).read_bytes() for name in runs}
        assert len(blobs) == 1, pattern


def test_resume_after_sigkill(tmp_path):
    """Start a sharded evaluate in a subprocess with slow shards, SIGKILL it once some shards
    are on disk, resume it; finished shards are reused untouched and the result equals an
    uninterrupted run byte for byte."""
    sp = tmp_path / "s.yaml"
    sp.write_text(SMALL_SPACE)
    hw = tmp_path / "hw"
    assert main(["hardware", "--space", str(sp), "--out", str(hw)]) == 0
    run = tmp_path / "run"
    args = ["evaluate", "--model", "gpt2", "--hardware", str(hw), "--out", str(run)]
    sharding = ["--resume", "--shard-size", "4"]
    env = {**os.environ, shards.DELAY_ENV: "0.25"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "chipletcloud.cli", *args, *sharding],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    stage = run / "shards" / "evaluate-gpt2"
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list(stage.glob("*.npz"))) >= 3:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    done = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in stage.glob("*.npz")}
    manifest = json.loads((run / "shards" / "manifest.json").read_text())
    total = manifest["stages"]["evaluate-gpt2"]["shards"]
    assert total >= 6 and 3 <= len(done) < total
    assert not (run / "gpt2" / "pareto.parquet").exists()

    assert main([*args, *sharding]) == 0
    after = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in stage.glob("*.npz")}
    assert len(after) == total
    assert all(after[name] == key for name, key in done.items())  # reused, not re-run
    assert not list(stage.glob(".*.tmp"))

    ref = tmp_path / "ref"
    assert main(["evaluate", "--model", "gpt2", "--hardware", str(hw), "--out", str(ref)]) == 0
    for f in ("pareto.parquet", "optimal.json"):
        assert (run / "gpt2" / f).read_bytes() == (ref / "gpt2" / f).read_bytes()


def test_shard_worker_is_picklable_with_plain_data(default_table):
    import pickle

    params, spec = resolve("isca24"), load_model("gpt2")
    task = {
        "lo": 5,
        "hi": 9,
        "table": {k: v[5:9] for k, v in default_table.items()},
        "spec": spec.model_dump(),
        "params": params,
        "threads": 1,
    }
    fn, task2 = pickle.loads(pickle.dumps((shards.search_shard, task)))
    got = fn(task2)
    assert got["lo"] == 5 and got["best"].shape == (4,)
    assert np.all(got["design"] >= 5) and np.all(got["design"] < 9)


def test_store_roundtrip_keeps_columns_and_dtypes(tmp_path):
    result = shards.hardware_shard(
        {"lo": 3, "hi": 40, "space": load_space().model_dump(), "params": resolve("isca24")}
    )
    store = shards.ShardStore(tmp_path, "hardware", {"x": 1}, resume=True)
    store.save(result)
    back = store.load(3, 40)
    assert back is not None and back["lo"] == 3 and back["hi"] == 40
    assert_tables_equal(result["table"], back["table"])
    assert np.array_equal(result["rejected"], back["rejected"])
    Path(store.path(3, 40)).write_bytes(b"not a zip")
    assert store.load(3, 40) is None


def _refuse(task):
    raise InputError("model", task["lo"], "something else")


def test_worker_input_error_reaches_the_caller(tmp_path):
    fn = shards._input_errors_as_data(_refuse)
    store = shards.ShardStore(tmp_path / "run", "x", {"x": 1}, resume=False)
    with pytest.raises(InputError, match="model: got 3; allowed: something else"):
        shards._run_shards(
            SerialBackend(), fn, [(3, 4)], lambda lo, hi: {"lo": lo}, store, print, None
        )
    assert not (tmp_path / "run").exists()  # nothing written before the first finished shard


@pytest.mark.parametrize("text", ["not json", '{"stages": {"hardware": 5}}', "[1]"])
def test_unreadable_manifest_is_refused(tmp_path, text):
    (tmp_path / "shards").mkdir()
    (tmp_path / "shards" / "manifest.json").write_text(text)
    with pytest.raises(InputError, match="manifest.json is readable"):
        shards.ShardStore(tmp_path, "hardware", {"x": 1}, resume=True)


@pytest.mark.parametrize(
    "extra,fragment",
    [
        (["--backend", "spark"], "backend: got 'spark'"),
        (["--address", "tcp://127.0.0.1:8786"], "only with --backend dask"),
        (["--shard-size", "0"], "shard_size: got 0"),
    ],
)
def test_cli_bad_sharding_options(tmp_path, capsys, extra, fragment):
    out = tmp_path / "out"
    assert main(["hardware", "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_resume_across_a_code_change_is_refused(tmp_path, capsys, monkeypatch):
    # the shard hash covers the engine's source, so shards of older code are never mixed in
    from chipletcloud.explore import shards

    a = tmp_path / "a.yaml"
    a.write_text(SMALL_SPACE)
    out = tmp_path / "run"
    args = ["hardware", "--space", str(a), "--out", str(out), "--shard-size", "50"]
    assert main(args) == 0
    digest = shards.engine_digest()
    assert len(digest) == 16 and digest == shards.engine_digest()
    monkeypatch.setattr(shards, "engine_digest", lambda: "0" * 16)
    capsys.readouterr()
    assert main([*args, "--resume"]) == 2
    assert "config hash" in capsys.readouterr().err
    monkeypatch.setattr(shards, "engine_digest", lambda: digest)
    assert main([*args, "--resume"]) == 0


def _children(pid: int) -> set[int]:
    """Process ids whose parent is ``pid`` (Linux /proc)."""
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.add(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_process_workers_die_with_a_killed_parent(tmp_path):
    """kill -9 of a run on ``--backend process``: its worker processes end within seconds
    (issue 17: two workers were seen running 26 minutes after their parent died)."""
    from chipletcloud.explore.backends import PARENT_POLL_S

    sp = tmp_path / "s.yaml"
    sp.write_text(SMALL_SPACE)
    hw = tmp_path / "hw"
    assert main(["hardware", "--space", str(sp), "--out", str(hw)]) == 0
    args = ["evaluate", "--model", "gpt2", "--hardware", str(hw), "--out", str(tmp_path / "r")]
    env = {**os.environ, shards.DELAY_ENV: "2.0"}  # shards slow enough to catch the workers
    proc = subprocess.Popen(
        [sys.executable, "-m", "chipletcloud.cli", *args, "--backend", "process",
         "--shard-size", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            # the spawn start method adds a resource tracker too: workers run chipletcloud code
            kids = {p for p in _children(proc.pid) if _alive(p)}
            workers = {
                p
                for p in kids
                if b"resource_tracker" not in Path(f"/proc/{p}/cmdline").read_bytes()
            }
            if len(workers) >= 2:
                break
            time.sleep(0.1)
        assert proc.poll() is None and len(workers) >= 2, "no workers seen"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    deadline = time.monotonic() + 10 * PARENT_POLL_S + 5
    while time.monotonic() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.1)
    survivors = [p for p in workers if _alive(p)]
    for p in survivors:  # do not leave them behind, whatever the outcome
        os.kill(p, signal.SIGKILL)
    assert not survivors
