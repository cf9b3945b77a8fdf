"""Benchmark the sharded phase-2 search on each backend: evaluations per second and peak memory.

The space: every design of the default phase-1 table (40,271 servers) times the mapping grid of
GPT-3 (6,336 mappings a design): 2.55e8 (design x mapping) evaluations in one ``evaluate`` run
(``--models`` adds more). Each backend runs ``--runs`` times, each in a new process, after one
warm-up run that fills numba's cache:

* ``serial`` -- the plain command (one shot, numba threads on every CPU);
* ``serial-sharded`` -- ``--backend serial --shard-size S`` (shards streamed in this process);
* ``process`` -- ``--backend process`` (one spawned worker per CPU, one numba thread each);
* ``dask`` -- ``--backend dask`` (a local cluster of two single-threaded worker processes),
  skipped when dask is not installed.

Reported per backend: the median wall time of the evaluate command body (the command's own
``wall_time_s``: backend start-up, shards and reduce; not Python start-up), evaluations per
second at that median, and peak resident memory: the command's own process (``self``), its
largest child (a worker; ``getrusage(RUSAGE_CHILDREN)``) and their sum. Also checks that every
backend wrote the same ``pareto.parquet`` bytes. Asserts nothing.

Run: ``python benchmarks/bench_backends.py [--runs 3] [--models gpt3 ...] [--shard-size 2048]``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

BACKENDS = {
    "serial": [],
    "serial-sharded": ["--backend", "serial", "--shard-size", "{shard}"],
    "process": ["--backend", "process", "--shard-size", "{shard}"],
    "dask": ["--backend", "dask", "--shard-size", "{shard}"],
}


def child(args: list[str]) -> None:
    """Run the CLI in this process; print its JSON summary with this process's peak memory."""
    from chipletcloud.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(args)
    if code != 0:
        sys.exit(code)
    summary = json.loads(buf.getvalue())
    kib_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kib_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(
        json.dumps(
            {
                "evaluated_points": summary["evaluated_points"],
                "wall_time_s": summary["wall_time_s"],
                "peak_rss_self_mib": kib_self / 1024,
                "peak_rss_largest_child_mib": kib_children / 1024,
            }
        )
    )


def run_child(cli_args: list[str], env: dict) -> dict:
    r = subprocess.run(
        [sys.executable, __file__, "--child", *cli_args],
        capture_output=True,
        text=True,
        env=env,
    )
    if r.returncode != 0:
        raise SystemExit(f"{cli_args}: exit {r.returncode}\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
        return
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--models", nargs="+", default=["gpt3"])
    ap.add_argument("--shard-size", type=int, default=2048)
    ap.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=list(BACKENDS))
    args = ap.parse_args()
    backends = list(args.backends)
    try:
        import dask.distributed  # noqa: F401
    except ImportError:
        backends = [b for b in backends if b != "dask"]
    models = [a for m in args.models for a in ("--model", m)]
    report: dict = {
        "benchmark": "phase2_backends",
        "models": args.models,
        "shard_size": args.shard_size,
        "runs": args.runs,
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "backends": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        env.setdefault("NUMBA_CACHE_DIR", f"{tmp}/numba")
        hw = f"{tmp}/hw"
        subprocess.run(
            [sys.executable, "-m", "chipletcloud.cli", "hardware", "--out", hw, "--json"],
            check=True,
            capture_output=True,
            env=env,
        )
        base = ["evaluate", *models, "--hardware", hw, "--json"]
        run_child([*base, "--out", f"{tmp}/warm"], env)  # compiles the kernel into the cache
        digests = {}
        for name in backends:
            extra = [a.format(shard=args.shard_size) for a in BACKENDS[name]]
            rows = []
            for i in range(args.runs):
                out = f"{tmp}/{name}-{i}"
                rows.append(run_child([*base, "--out", out, *extra], env))
            digests[name] = {
                m: hashlib.sha256(p.read_bytes()).hexdigest()[:16]
                for m in args.models
                for p in [next(Path(f"{tmp}/{name}-0").glob(f"{m}/pareto.parquet"))]
            }
            walls = [r["wall_time_s"] for r in rows]
            med = statistics.median(walls)
            n = rows[0]["evaluated_points"]
            self_mib = max(r["peak_rss_self_mib"] for r in rows)
            child_mib = max(r["peak_rss_largest_child_mib"] for r in rows)
            report["evaluated_points"] = n
            report["backends"][name] = {
                "wall_s_median": round(med, 2),
                "wall_s_all": walls,
                "evaluations_per_s": round(n / med),
                "peak_rss_self_mib": round(self_mib),
                "peak_rss_largest_child_mib": round(child_mib),
                "peak_rss_self_plus_child_mib": round(self_mib + child_mib),
            }
            print(f"{name}: {report['backends'][name]}", file=sys.stderr)
        report["pareto_parquet_identical"] = len({json.dumps(d) for d in digests.values()}) == 1
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
