"""Writing phase-2 runs: per model ``pareto.parquet`` and ``optimal.json``, a manifest beside."""

from __future__ import annotations

from pathlib import Path

from chipletcloud.explore.software import EvaluationRun, model_dirname
from chipletcloud.report.store import manifest, write_json, write_parquet


def write_evaluation(
    run: EvaluationRun, out_dir: Path, cfg: dict, cfg_hash: str, elapsed_s: float
) -> dict:
    """Write every model's front and optimal cards, the portfolio and the manifest; return the
    summary (what ``evaluate --json`` prints)."""
    summary = run.summary()
    for r in run.results:
        folder = Path(out_dir) / model_dirname(r.model)
        write_parquet(run.front_table(r), folder / "pareto.parquet")
        write_json(summary["models"][r.model], folder / "optimal.json")
    if "portfolio" in summary:
        write_json(summary["portfolio"], Path(out_dir) / "portfolio.json")
    summary["wall_time_s"] = round(elapsed_s, 3)
    summary["config_hash"] = cfg_hash
    summary["out"] = str(out_dir)
    write_json(
        manifest(
            "evaluate",
            cfg,
            cfg_hash,
            preset=run.params.preset.name,
            evaluated_points=summary["evaluated_points"],
            wall_time_s=round(elapsed_s, 3),
        ),
        Path(out_dir) / "manifest.json",
    )
    return summary
