"""Benchmark the SLO search against the plain phase-2 search, the eight paper models.

Runs ``chipletcloud hardware`` once, then, alternately, ``--runs`` times each (each in a new
process, numba's cache warm after a first uncounted run of each):

* ``plain``: ``chipletcloud evaluate`` with the eight paper models;
* ``slo``: the same with ``--workload chat --slo ttft_p99=2s`` (phase 2, then the serving
  model's SLO search over each model's candidate designs and the interactivity bands).

Prints the median wall time of each and their ratio (issue 15's bound: the SLO search at most
3x ``evaluate``; issue 18's: within 2x). Asserts nothing.

Run: ``python benchmarks/bench_slo_search.py [--runs 5] [--slo ttft_p99=2s]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

PAPER_MODELS = ("gpt2", "megatron", "gpt3", "gopher", "mtnlg", "bloom", "palm", "llama2-70b")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--workload", default="chat")
    ap.add_argument("--slo", default="ttft_p99=2s")
    args = ap.parse_args()
    cli = [sys.executable, "-m", "chipletcloud.cli"]
    env = dict(os.environ)
    models = [a for m in PAPER_MODELS for a in ("--model", m)]
    variants = {
        "plain": [],
        "slo": ["--workload", args.workload, "--slo", args.slo],
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    served = {}
    with tempfile.TemporaryDirectory() as tmp:
        env.setdefault("NUMBA_CACHE_DIR", f"{tmp}/numba")
        subprocess.run(
            [*cli, "hardware", "--out", f"{tmp}/hw", "--json"],
            check=True,
            capture_output=True,
            env=env,
        )
        for i in range(args.runs + 1):  # run 0 of each fills numba's cache
            for name, extra in variants.items():
                out = f"{tmp}/{name}{i}"
                argv = [*cli, "evaluate", *models, "--hardware", f"{tmp}/hw", "--out", out]
                t0 = time.perf_counter()
                r = subprocess.run(
                    [*argv, *extra, "--json"],
                    check=True,
                    capture_output=True,
                    text=True,
                    env=env,
                )
                if i:
                    times[name].append(time.perf_counter() - t0)
                if name == "slo":
                    served = json.loads(r.stdout).get("serving", {}).get("models", {})
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        json.dumps(
            {
                "benchmark": "slo_search_eight_paper_models",
                "runs": args.runs,
                "workload": args.workload,
                "slo": args.slo,
                "wall_s_median": {k: round(v, 2) for k, v in med.items()},
                "wall_s_all": {k: [round(t, 2) for t in v] for k, v in times.items()},
                "slo_over_plain": round(med["slo"] / med["plain"], 2),
                "usd_per_million_tokens_at_slo": {
                    m: (round(v["best"]["usd_per_million_tokens"], 4) if v["best"] else None)
                    for m, v in served.items()
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
