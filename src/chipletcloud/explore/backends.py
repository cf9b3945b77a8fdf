"""Where shard tasks run: one small interface, three implementations.

A :class:`Backend` maps a top-level (picklable) function over tasks and yields the results **in
completion order** (callers put them back in order themselves), then is closed:

* ``serial``: in this process, one task after the other.
* ``process``: a :class:`concurrent.futures.ProcessPoolExecutor` with the ``spawn`` start method
  (safe with numba's worker threads, which a ``fork`` would copy in a broken state), one worker
  per CPU.
* ``dask``: a Dask cluster (``pip install 'chipletcloud[dask]'``): an existing scheduler when an
  address is given (its workers need chipletcloud installed), else a local cluster of two
  single-threaded worker processes.

At most a few tasks per worker are in flight at a time, so a long stream of tasks (a space cut in
many shards) never sits in memory all at once. ``threads`` is the number of numba threads a task
should use (``None``: numba's default), so that worker processes do not oversubscribe the CPUs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any

from chipletcloud.errors import InputError

BACKENDS = ("serial", "process", "dask")
INSTALL_DASK = "pip install 'chipletcloud[dask]'"


def cpu_count() -> int:
    """CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class Backend:
    """Runs ``fn(task)`` for each task; results come back in completion order."""

    name = "serial"
    workers = 1
    threads: int | None = None  # numba threads a task should use

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        for item in items:
            yield fn(item)

    def close(self) -> None:
        """Release the workers (idempotent)."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SerialBackend(Backend):
    """In this process, one task at a time (numba uses every CPU inside a task)."""


class ProcessBackend(Backend):
    """A pool of ``spawn``-ed worker processes, one per CPU by default."""

    name = "process"

    def __init__(self, max_workers: int | None = None) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.workers = max_workers or cpu_count()
        self.threads = max(1, cpu_count() // self.workers)
        self._pool = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=die_with_parent,
            initargs=(os.getpid(),),
        )

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        from concurrent.futures import FIRST_COMPLETED, wait

        it = iter(items)
        window = 2 * self.workers
        pending = {self._pool.submit(fn, x) for x in islice(it, window)}
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for _ in done:
                    nxt = next(it, _END)
                    if nxt is not _END:
                        pending.add(self._pool.submit(fn, nxt))
                for f in done:
                    yield f.result()
        finally:
            for f in pending:
                f.cancel()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class DaskBackend(Backend):
    """A Dask cluster: the scheduler at ``address``, or a local cluster of ``n_workers``
    single-threaded worker processes."""

    name = "dask"

    def __init__(self, address: str | None = None, n_workers: int = 2) -> None:
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError:
            raise InputError(
                "backend", "dask", f"serial or process; dask is not installed ({INSTALL_DASK})"
            ) from None
        self._cluster = None
        if address:
            try:
                self._client = Client(address, timeout="10s")
            except (OSError, TimeoutError, ValueError) as exc:
                raise InputError(
                    "address",
                    address,
                    f"a reachable Dask scheduler, e.g. tcp://host:8786 ({type(exc).__name__})",
                ) from None
            info = self._client.scheduler_info()
            self.workers = max(1, len(info.get("workers", {})))
            self.threads = None  # their CPUs are not ours to count
        else:
            with _sigint_ignored():  # Ctrl-C stops this process, which closes the cluster
                self._cluster = LocalCluster(
                    n_workers=n_workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=":0",  # any free port: no clash with another cluster
                    silence_logs=logging.ERROR,
                    # workers lose this process's scheduler when it dies (even by kill -9):
                    # they close after this long instead of waiting for it indefinitely
                    death_timeout=DASK_DEATH_TIMEOUT_S,
                )
            self._client = Client(self._cluster)
            self.workers = n_workers
            self.threads = max(1, cpu_count() // n_workers)

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        from dask.distributed import as_completed

        it = iter(items)
        window = 2 * self.workers
        first = [self._client.submit(fn, x, pure=False) for x in islice(it, window)]
        queue = as_completed(first)
        live = set(first)
        try:
            for fut in queue:
                live.discard(fut)
                nxt = next(it, _END)
                if nxt is not _END:
                    new = self._client.submit(fn, nxt, pure=False)
                    live.add(new)
                    queue.add(new)
                result = fut.result()
                fut.release()
                yield result
        finally:
            for f in live:
                f.cancel()

    def close(self) -> None:
        client, cluster = getattr(self, "_client", None), getattr(self, "_cluster", None)
        if client is not None:
            client.close()
            self._client = None
        if cluster is not None:
            cluster.close()
            self._cluster = None


_END = object()

#: seconds a local Dask worker waits for its lost scheduler (this process) before it closes
DASK_DEATH_TIMEOUT_S = 10

#: seconds between a worker's checks that the process that started it is alive
PARENT_POLL_S = 0.5


def die_with_parent(parent_pid: int) -> None:
    """Worker initializer: a daemon thread ends this worker as soon as ``parent_pid`` is no
    longer its parent (the parent died, even by kill -9, and the worker was re-parented), so no
    worker outlives the run that started it."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ignore SIGINT while worker processes are started, so that they inherit the ignore: a
    Ctrl-C then reaches only this process, which shuts them down (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def get_backend(name: str | Backend, address: str | None = None) -> Backend:
    """A backend by name (``serial``, ``process`` or ``dask``); a Backend is returned as is.
    ``address`` (a Dask scheduler) is only allowed with ``dask``."""
    if isinstance(name, Backend):
        return name
    if name not in BACKENDS:
        raise InputError("backend", name, ", ".join(BACKENDS))
    if address and name != "dask":
        raise InputError("address", address, "only with --backend dask")
    if name == "serial":
        return SerialBackend()
    if name == "process":
        return ProcessBackend()
    return DaskBackend(address)


def check_options(backend: str, address: str | None, resume: bool, shard_size: int | None) -> bool:
    """Validate the CLI's sharding options (``--backend``, ``--address``, ``--resume``,
    ``--shard-size``); True when the run goes through :mod:`chipletcloud.explore.shards` (a
    backend other than serial, or resuming, or an explicit shard size)."""
    if backend not in BACKENDS:
        raise InputError("backend", backend, ", ".join(BACKENDS))
    if address and backend != "dask":
        raise InputError("address", address, "only with --backend dask")
    if shard_size is not None and shard_size < 1:
        raise InputError("shard_size", shard_size, "an integer >= 1")
    return backend != "serial" or resume or shard_size is not None
