"""Sharded, resumable sweeps: phase 1 and phase 2 cut into index ranges and run on a backend.

**Shards.** A phase-1 space (candidates in :func:`chipletcloud.explore.hardware.enumerate_space`
order) or a phase-2 servers table (designs in row order) is cut into the ranges
``[0, s), [s, 2 s), ...`` of :func:`shard_ranges` (``s`` the shard size). A worker evaluates one
range and returns what the reduce needs:

* phase 1 (:func:`hardware_shard`): the valid servers of the range (``server_id`` = the global
  candidate index) and the per-reason counters; the reduce concatenates the ranges in order and
  sums the counters.
* phase 2 (:func:`search_shard`): the range's local Pareto front of (USD per million tokens,
  latency per token) as the numba kernel prices it, each design's cheapest cost and the status
  counters. The reduce is a Pareto filter over the union of the local fronts in global
  (design, mapping) order, so ties break exactly as in the one-shot search
  (:func:`chipletcloud.explore.software.search`); the front's points are then recomputed with
  the numpy reference, as there. Exact: a point of the global front is on its shard's front,
  and every other point of the union is dominated by (or equal to, with a higher index) a point
  of the global front, which is in the union too.

The results are identical to :func:`~chipletcloud.explore.hardware.explore_hardware` and
:func:`~chipletcloud.explore.software.search` (same rows in the same order, same counters) for
every backend and shard size; ``tests/test_shards.py`` checks it on random spaces.

**Run directory.** With ``run_dir``, each finished shard is written atomically (temporary file,
fsync, rename) to ``RUN/shards/<stage>/<lo>-<hi>.npz`` (stage ``hardware``, or
``evaluate-<model>``), and ``RUN/shards/manifest.json`` records per stage the config hash (of the
space or the servers table, the model, the preset's :meth:`~chipletcloud.config.Params.config_dict`,
the shard size and :func:`engine_digest`, the source of the code that computes a shard), the shard
count and the package versions.

* ``resume=True`` loads the stage's finished shards and runs only the missing ones; the result
  equals an uninterrupted run. (Resuming a directory without shards simply runs everything.)
* ``resume=False`` starts the stage over: its shard files from an earlier run of the same config
  are deleted first.
* Either way, a run directory whose manifest holds the stage under another config hash is refused
  with :class:`~chipletcloud.errors.InputError` (nothing is mixed or deleted).
* Nothing is written before the first shard finishes, so a run refused for bad input leaves no
  file behind; temporary files of a killed run are removed when the stage is opened again.

Testing hook: when the environment variable ``CHIPLETCLOUD_TEST_SHARD_DELAY_S`` is set, every
shard worker sleeps that many seconds before it starts (used to interrupt a run mid-way).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from chipletcloud.config import HardwareSpace, Params, config_hash, file_mode, versions
from chipletcloud.errors import InputError
from chipletcloud.explore.backends import Backend, get_backend
from chipletcloud.explore.hardware import REASONS, HardwareResult, evaluate_servers
from chipletcloud.models.llm import ModelSpec
from chipletcloud.perf.codes import STATUS_NAMES

#: Default shard sizes: candidates for phase 1, designs (servers-table rows) for phase 2. Fixed
#: (not derived from the worker count) so that a run resumes on any machine and backend.
HARDWARE_SHARD_SIZE = 65_536
SEARCH_SHARD_SIZE = 2_048
#: Designs per kernel call inside a phase-2 shard (as in software.search).
KERNEL_CHUNK = 512
SHARD_FORMAT = 1
DELAY_ENV = "CHIPLETCLOUD_TEST_SHARD_DELAY_S"

#: The phase-1 axes, slowest first (the order of hardware.enumerate_space).
SPACE_AXES = (
    ("die_area_mm2", float),
    ("mac_ratio", float),
    ("operational_intensity", float),
    ("packages_per_lane", np.int64),
    ("lanes_per_server", np.int64),
    ("chips_per_package", np.int64),
)

_KERNEL_LOCK = threading.Lock()  # numba's parallel kernels must not be entered concurrently


def shard_ranges(n: int, size: int) -> list[tuple[int, int]]:
    """The deterministic shards of ``n`` items: ``[(0, size), (size, 2 size), ...]``, the last
    one cut at ``n``."""
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
        raise InputError("shard_size", size, "an integer >= 1")
    size = int(size)
    return [(lo, min(n, lo + size)) for lo in range(0, n, size)]


def _size(shard_size: int | None, default: int) -> int:
    return default if shard_size is None else shard_size


# ------------------------------------------------------------------------------------ workers


def _test_delay() -> None:
    """The test-only hook: sleep ``CHIPLETCLOUD_TEST_SHARD_DELAY_S`` seconds when it is set."""
    raw = os.environ.get(DELAY_ENV)
    if raw:
        try:
            time.sleep(max(0.0, float(raw)))
        except ValueError:
            pass


@contextlib.contextmanager
def _numba_threads(n: int | None) -> Iterator[None]:
    """Run numba's parallel kernels on ``n`` threads (None: unchanged), one caller at a time."""
    with _KERNEL_LOCK:
        if not n:
            yield
            return
        import numba

        old = numba.get_num_threads()
        numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))
        try:
            yield
        finally:
            numba.set_num_threads(old)


def enumerate_range(space: HardwareSpace, lo: int, hi: int) -> dict[str, np.ndarray]:
    """Candidates ``lo..hi-1`` of :func:`~chipletcloud.explore.hardware.enumerate_space`, without
    building the others."""
    axes = [np.asarray(getattr(space, name), dtype) for name, dtype in SPACE_AXES]
    idx = np.unravel_index(np.arange(lo, hi, dtype=np.int64), tuple(len(a) for a in axes))
    return {name: a[i] for (name, _), a, i in zip(SPACE_AXES, axes, idx, strict=True)}


def _input_errors_as_data(fn: Callable[[dict], dict]) -> Callable[[dict], dict]:
    """Return an InputError raised in a worker as ``{"input_error": (field, value, allowed)}``
    (the exception itself does not survive pickling); :func:`_run_shards` raises it again."""

    @functools.wraps(fn)
    def wrapper(task: dict[str, Any]) -> dict[str, Any]:
        try:
            return fn(task)
        except InputError as exc:
            return {"input_error": (exc.field, repr(exc.value), exc.allowed)}

    return wrapper


@_input_errors_as_data
def hardware_shard(task: dict[str, Any]) -> dict[str, Any]:
    """Phase-1 worker: evaluate candidates ``task["lo"]..task["hi"]-1`` of ``task["space"]`` (a
    ``HardwareSpace.model_dump()``) under ``task["params"]`` (a :class:`Params`); return the valid
    rows (``server_id`` global) and the rejection counters in :data:`REASONS` order."""
    _test_delay()
    lo, hi = int(task["lo"]), int(task["hi"])
    space = HardwareSpace.model_validate(task["space"])
    params: Params = task["params"]
    cols = evaluate_servers(enumerate_range(space, lo, hi), params)
    cols["server_id"] = cols["server_id"] + lo
    ok = np.ones(hi - lo, bool)
    rejected, failures = [], []
    for reason in REASONS:
        passed = cols[f"ok_{reason}"]
        failures.append(int((~passed).sum()))
        rejected.append(int((ok & ~passed).sum()))
        ok &= passed
    table = {k: v[ok] for k, v in cols.items() if not k.startswith("ok_")}
    return {
        "lo": lo,
        "hi": hi,
        "table": table,
        "rejected": np.asarray(rejected, np.int64),
        "failures": np.asarray(failures, np.int64),
    }


@_input_errors_as_data
def search_shard(task: dict[str, Any]) -> dict[str, Any]:
    """Phase-2 worker: the local front of the designs ``task["lo"]..task["hi"]-1`` (the servers
    table slice ``task["table"]``, a dict of numpy arrays) for ``task["spec"]`` (a
    ``ModelSpec.model_dump()``) under ``task["params"]`` (a :class:`Params`)."""
    from chipletcloud.explore import kernel, software

    _test_delay()
    lo, hi = int(task["lo"]), int(task["hi"])
    spec = ModelSpec.model_validate(task["spec"])
    params: Params = task["params"]
    inp = software.search_inputs(task["table"], spec, params)
    with _numba_threads(task.get("threads")):
        d, j, c, lat, best, counts = kernel.front_with_costs(
            *inp.kernel_args(), task.get("chunk", KERNEL_CHUNK)
        )
    return {
        "lo": lo,
        "hi": hi,
        "design": (d + lo).astype(np.int64),
        "mapping": j.astype(np.int64),
        "cost": c,
        "latency": lat,
        "best": best,
        "counts": counts,
    }


# ----------------------------------------------------------------------------- shard storage


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _atomic_write(path: Path, write: Callable[[Any], None], mode: str = "wb") -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, file_mode())  # the user's umask, not mkstemp's 0600
    try:
        with os.fdopen(fd, mode) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _flatten(result: dict[str, Any]) -> dict[str, np.ndarray]:
    """A shard result as flat npz arrays (nested tables as ``t:<column>`` plus their order)."""
    flat: dict[str, np.ndarray] = {}
    for k, v in result.items():
        if isinstance(v, dict):
            flat["__columns__"] = np.asarray(list(v), dtype=str)
            for col, arr in v.items():
                flat[f"t:{col}"] = np.asarray(arr)
        else:
            flat[k] = np.asarray(v)
    return flat


def _unflatten(z: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in z.files:
        if k == "__columns__" or k.startswith("t:"):
            continue
        v = z[k]
        out[k] = v.item() if v.ndim == 0 else v
    if "__columns__" in z.files:
        out["table"] = {str(c): z[f"t:{c}"] for c in z["__columns__"]}
    return out


class ShardStore:
    """The shards of one stage under ``RUN/shards/<stage>/`` and its entry in the manifest."""

    def __init__(self, run_dir: str | Path, stage: str, config: dict, resume: bool) -> None:
        self.run_dir = Path(run_dir)
        self.root = self.run_dir / "shards"
        self.dir = self.root / stage
        self.stage = stage
        self.config_hash = config_hash({**config, "engine": engine_digest()})
        self.resume = resume
        manifest = self._read_manifest()
        entry = manifest.get("stages", {}).get(stage)
        if entry is not None and entry.get("config_hash") != self.config_hash:
            raise InputError(
                "out",
                str(self.run_dir),
                "an empty directory or one from the same config (this one holds a run with "
                f"config hash {entry.get('config_hash')}, this config is {self.config_hash}); "
                "use a new --out",
            )
        stages = dict(manifest.get("stages", {}))
        stages[stage] = {
            "config_hash": self.config_hash,
            "items": config.get("items"),
            "shard_size": config.get("shard_size"),
            "shards": config.get("shards"),
            "versions": versions(),
            "created_utc": (entry or {}).get("created_utc", _now()),
        }
        self._manifest = {"format": SHARD_FORMAT, "stages": stages}
        self._ready = False
        for stale in self.dir.glob(".*.tmp"):  # left by a killed run: never a finished shard
            stale.unlink(missing_ok=True)

    def _prepare(self) -> None:
        """Before the first shard is saved (so that a run failing earlier leaves nothing
        behind): create the stage folder, drop temporary files of a killed run (never a
        finished shard) and, unless resuming, the shards of an earlier run; write the
        manifest."""
        self.dir.mkdir(parents=True, exist_ok=True)
        for stale in self.dir.glob(".*.tmp"):
            stale.unlink(missing_ok=True)
        if not self.resume:
            for old in self.dir.glob("*.npz"):
                old.unlink(missing_ok=True)
        self._write_manifest(self._manifest)
        self._ready = True

    def _read_manifest(self) -> dict:
        path = self.root / "manifest.json"
        if not path.exists():
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            data = None
        stages = data.get("stages", {}) if isinstance(data, dict) else None
        if not isinstance(stages, dict) or not all(isinstance(e, dict) for e in stages.values()):
            raise InputError(
                "out",
                str(self.run_dir),
                "a run directory whose shards/manifest.json is readable; use a new --out",
            )
        return data

    def _write_manifest(self, data: dict) -> None:
        text = json.dumps(data, indent=2, sort_keys=True) + "\n"
        _atomic_write(self.root / "manifest.json", lambda fh: fh.write(text), "w")

    def path(self, lo: int, hi: int) -> Path:
        return self.dir / f"{lo}-{hi}.npz"

    def load(self, lo: int, hi: int) -> dict[str, Any] | None:
        """A finished shard, or None when it is missing or unreadable (then it is re-run)."""
        path = self.path(lo, hi)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                out = _unflatten(z)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            return None
        return out if (out.get("lo"), out.get("hi")) == (lo, hi) else None

    def save(self, result: dict[str, Any]) -> Path:
        if not self._ready:
            self._prepare()
        path = self.path(int(result["lo"]), int(result["hi"]))
        flat = _flatten(result)
        _atomic_write(path, lambda fh: np.savez(fh, **flat))
        return path


@functools.cache
def engine_digest() -> str:
    """SHA-256 (16 hex digits) of the source of the modules that compute a shard (the models,
    the simulator, phase 1 and 2, this module), so that a run never resumes across a code
    change that could alter its shards (the package version alone does not change between
    commits)."""
    import chipletcloud

    root = Path(chipletcloud.__file__).parent
    h = hashlib.sha256()
    files = [root / "config.py"]
    for sub in ("models", "perf", "explore", "sparsity"):
        files.extend(sorted((root / sub).glob("*.py")))
    for f in files:
        h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def table_digest(table: dict[str, np.ndarray]) -> str:
    """SHA-256 of a table's column names, dtypes and values (for the config hash)."""
    h = hashlib.sha256()
    for name in table:
        v = np.asarray(table[name])
        h.update(f"{name}|{v.dtype.str}|{v.shape}|".encode())
        if v.dtype.hasobject:
            h.update(repr(v.tolist()).encode())
        else:
            h.update(memoryview(np.ascontiguousarray(v)).cast("B"))
    return h.hexdigest()


# ----------------------------------------------------------------------------------- driver


class _Raw(str):
    """A value already as its repr (an InputError from a worker keeps its text)."""

    def __repr__(self) -> str:
        return str(self)


def _run_shards(
    backend: Backend,
    fn: Callable[[dict], dict],
    ranges: list[tuple[int, int]],
    make_task: Callable[[int, int], dict],
    store: ShardStore | None,
    progress: Callable[[str], None],
    stats: dict | None,
) -> list[dict]:
    """Every shard's result, in range order: loaded from ``store`` when resuming, else computed
    on ``backend`` (and saved as each one finishes)."""
    done: dict[int, dict] = {}
    if store is not None and store.resume:
        for lo, hi in ranges:
            r = store.load(lo, hi)
            if r is not None:
                done[lo] = r
                progress(f"shard {lo}-{hi} (resumed)")
    resumed = len(done)
    todo = [(lo, hi) for lo, hi in ranges if lo not in done]
    tasks: Iterable[dict] = (make_task(lo, hi) for lo, hi in todo)
    for r in backend.map(fn, tasks):
        if "input_error" in r:
            field, value, allowed = r["input_error"]
            raise InputError(field, _Raw(value), allowed)
        if store is not None:
            store.save(r)
        done[int(r["lo"])] = r
        progress(f"shard {r['lo']}-{r['hi']}")
    if stats is not None:
        stats.update(shards=len(ranges), resumed=resumed, computed=len(todo))
    return [done[lo] for lo, _ in ranges]


@contextlib.contextmanager
def _backend(backend: str | Backend, address: str | None) -> Iterator[Backend]:
    """The named backend, closed on exit; a Backend instance is used as is and left open."""
    if isinstance(backend, Backend):
        yield backend
        return
    b = get_backend(backend, address)
    try:
        yield b
    finally:
        b.close()


@dataclass(frozen=True)
class ShardRun:
    """Where sharded work keeps its shards and how it reports: ``run_dir`` (shards under
    ``run_dir/shards``; None keeps none), ``resume`` (reuse the finished shards of an interrupted
    run), ``address`` (a running Dask scheduler; None: a local cluster), ``progress`` (called
    with a short message as work finishes) and ``stats`` (a dict that receives the shard,
    resumed and computed counts)."""

    run_dir: str | Path | None = None
    resume: bool = False
    address: str | None = None
    progress: Callable[[str], None] | None = None
    stats: dict | None = None

    def step(self, msg: str) -> None:
        if self.progress is not None:
            self.progress(msg)

    def store(self, stage: str, identity: Callable[[], dict], items: int, size: int, shards: int):
        """The :class:`ShardStore` of ``stage`` (None without a run directory): its config is
        the stage, the shard format, what identifies the work (``identity()``, computed only
        when there is a store) and its cut."""
        if self.run_dir is None:
            return None
        cfg = {
            "stage": stage,
            "format": SHARD_FORMAT,
            **identity(),
            "items": items,
            "shard_size": size,
            "shards": shards,
        }
        return ShardStore(self.run_dir, stage, cfg, self.resume)


def run_hardware_sharded(
    space: HardwareSpace,
    params: Params,
    backend: str | Backend = "serial",
    shard_size: int | None = None,
    **run,
) -> HardwareResult:
    """Phase 1 in shards of ``shard_size`` candidates (default :data:`HARDWARE_SHARD_SIZE`) on
    ``backend``; identical to :func:`~chipletcloud.explore.hardware.explore_hardware`. With
    ``run_dir``, shards are kept in ``run_dir/shards/hardware`` (see the module docstring);
    ``run``: the fields of :class:`ShardRun`."""
    r = ShardRun(**run)
    size = _size(shard_size, HARDWARE_SHARD_SIZE)
    n = space.size
    ranges = shard_ranges(n, size)
    space_dump = space.model_dump()
    with _backend(backend, r.address) as b:
        store = r.store(
            "hardware",
            lambda: {"space": space_dump, "params": params.config_dict()},
            n,
            size,
            len(ranges),
        )
        results = _run_shards(
            b,
            hardware_shard,
            ranges,
            lambda lo, hi: {"lo": lo, "hi": hi, "space": space_dump, "params": params},
            store,
            r.step,
            r.stats,
        )
    names = list(results[0]["table"])
    table = {k: np.concatenate([r["table"][k] for r in results]) for k in names}
    rejected = np.sum([r["rejected"] for r in results], axis=0)
    failures = np.sum([r["failures"] for r in results], axis=0)
    return HardwareResult(
        table=table,
        candidates=int(n),
        rejected={k: int(v) for k, v in zip(REASONS, rejected, strict=True)},
        failures={k: int(v) for k, v in zip(REASONS, failures, strict=True)},
    )


def search_stage(spec: ModelSpec) -> str:
    """The run-directory stage name of a model's phase-2 shards."""
    from chipletcloud.explore.software import model_dirname

    return f"evaluate-{model_dirname(spec.name)}"


def search_sharded(
    table: dict[str, np.ndarray],
    spec: ModelSpec,
    params: Params,
    backend: str | Backend = "serial",
    shard_size: int | None = None,
    **run,
):
    """Phase 2 for one model in shards of ``shard_size`` designs (default
    :data:`SEARCH_SHARD_SIZE`) on ``backend``; identical to
    :func:`~chipletcloud.explore.software.search` (front rows and order, best per design,
    counts). With ``run_dir``, shards are kept in ``run_dir/shards/evaluate-<model>``;
    ``run``: the fields of :class:`ShardRun`."""
    from chipletcloud.explore import kernel, software

    r = ShardRun(**run)
    software.check_table(table, "table")
    inp = software.search_inputs(table, spec, params)
    nd, nmap = len(inp.system), inp.grid.size
    size = _size(shard_size, SEARCH_SHARD_SIZE)
    ranges = shard_ranges(nd, size)
    spec_dump = spec.model_dump()
    with _backend(backend, r.address) as b:
        store = r.store(
            search_stage(spec),
            lambda: {
                "table": table_digest(table),
                "model": spec_dump,
                "params": params.config_dict(),
            },
            nd,
            size,
            len(ranges),
        )

        def task(lo: int, hi: int) -> dict:
            return {
                "lo": lo,
                "hi": hi,
                "table": {k: v[lo:hi] for k, v in table.items()},
                "spec": spec_dump,
                "params": params,
                "threads": b.threads,
                "chunk": KERNEL_CHUNK,
            }

        results = _run_shards(b, search_shard, ranges, task, store, r.step, r.stats)
    keep_d, keep_j, _, _ = kernel.merge_front(
        np.concatenate([np.asarray(r["design"], np.int64) for r in results]),
        np.concatenate([np.asarray(r["mapping"], np.int64) for r in results]),
        np.concatenate([np.asarray(r["cost"], float) for r in results]),
        np.concatenate([np.asarray(r["latency"], float) for r in results]),
        nmap,
    )
    best = np.concatenate([np.asarray(r["best"], float) for r in results])
    counts = np.sum([r["counts"] for r in results], axis=0)
    pts = inp.reference(keep_d, keep_j)
    return software.ModelResult(
        spec.name,
        inp.shape,
        software.front_from_points(pts),
        best,
        evaluated=nd * nmap,
        counts={k: int(v) for k, v in zip(STATUS_NAMES, counts, strict=True)},
        spec=spec,
    )


def evaluate_models_sharded(
    table: dict[str, np.ndarray],
    specs: list[ModelSpec],
    params: Params,
    backend: str | Backend = "serial",
    shard_size: int | None = None,
    **run,
):
    """:func:`~chipletcloud.explore.software.evaluate_models` with :func:`search_sharded` for
    each model, all on one backend (started once); ``run``: the fields of :class:`ShardRun`
    (``progress`` is called once per model)."""
    from chipletcloud.explore import software

    software.check_table(table, "table")
    r = ShardRun(**run)
    results = []
    with _backend(backend, r.address) as b:
        for spec in specs:
            p = software.params_for(spec, params)  # a card's own sparsity, as evaluate_models
            results.append(
                search_sharded(table, spec, p, b, shard_size, run_dir=r.run_dir, resume=r.resume)
            )
            r.step(spec.name)
    return software.EvaluationRun(table, params, results, software.portfolio(results, table))
