"""Benchmark phase 1 on the default space: wall time of ``chipletcloud hardware`` (whole command,
new process each run, Python start-up included) and of the in-process exploration alone.

Run: ``python benchmarks/bench_hardware.py [--runs 5]``. Prints medians; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    cmd_times, valid = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            t0 = time.perf_counter()
            r = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "chipletcloud.cli",
                    "hardware",
                    "--out",
                    f"{tmp}/run{i}",
                    "--json",
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            cmd_times.append(time.perf_counter() - t0)
            valid = json.loads(r.stdout)["valid"]
    from chipletcloud.config import load_space, resolve
    from chipletcloud.explore.hardware import explore_hardware

    params, space = resolve("isca24"), load_space()
    explore_hardware(space, params)  # warm the thermal cache as a long-lived process would
    inproc = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        explore_hardware(space, params)
        inproc.append(time.perf_counter() - t0)
    print(
        json.dumps(
            {
                "benchmark": "phase1_default_space",
                "runs": args.runs,
                "valid_servers": valid,
                "candidates": space.size,
                "command_wall_s_median": round(statistics.median(cmd_times), 3),
                "command_wall_s_all": [round(t, 3) for t in cmd_times],
                "in_process_warm_s_median": round(statistics.median(inproc), 3),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
