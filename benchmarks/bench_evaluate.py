"""Benchmark phase 2: the eight paper models over the default phase-1 output.

Runs ``chipletcloud hardware`` once, then ``chipletcloud evaluate`` with the eight paper models
``--runs`` times, each in a new process (numba's cache warm after the first run, which is
reported apart). Prints the median wall time, mapping evaluations per second and the peak
resident memory of the evaluate processes. Asserts nothing.

Run: ``python benchmarks/bench_evaluate.py [--runs 5]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

PAPER_MODELS = ("gpt2", "megatron", "gpt3", "gopher", "mtnlg", "bloom", "palm", "llama2-70b")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    cli = [sys.executable, "-m", "chipletcloud.cli"]
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as tmp:
        env.setdefault("NUMBA_CACHE_DIR", f"{tmp}/numba")
        subprocess.run(
            [*cli, "hardware", "--out", f"{tmp}/hw", "--json"],
            check=True,
            capture_output=True,
            env=env,
        )
        models = [a for m in PAPER_MODELS for a in ("--model", m)]
        times, summary = [], None
        for i in range(args.runs + 1):  # run 0 compiles the kernel into the cache
            t0 = time.perf_counter()
            r = subprocess.run(
                [
                    *cli,
                    "evaluate",
                    *models,
                    "--hardware",
                    f"{tmp}/hw",
                    "--out",
                    f"{tmp}/ev{i}",
                    "--json",
                ],
                check=True,
                capture_output=True,
                text=True,
                env=env,
            )
            times.append(time.perf_counter() - t0)
            summary = json.loads(r.stdout)
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    warm = times[1:]
    med = statistics.median(warm)
    print(
        json.dumps(
            {
                "benchmark": "phase2_eight_paper_models",
                "runs": args.runs,
                "first_run_with_compile_s": round(times[0], 2),
                "wall_s_median": round(med, 2),
                "wall_s_all": [round(t, 2) for t in warm],
                "mapping_evaluations": summary["evaluated_points"],
                "evaluations_per_s_median": round(summary["evaluated_points"] / med),
                "peak_rss_mib": round(peak_mib),
                "tco_optimal_usd_per_million_tokens": {
                    m: round(v["tco_optimal"]["usd_per_million_tokens"], 5)
                    for m, v in summary["models"].items()
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
