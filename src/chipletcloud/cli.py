"""The ``chipletcloud`` command line: parse, call one function, print.

Every ``--json`` output is one JSON object on stdout; logs and progress go to stderr. Bad input is
one line on stderr naming the field, the value and what is allowed, and exit code 2.
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from chipletcloud.errors import InputError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Design chiplet-based LLM-serving supercomputers for the lowest cost per token.",
)
models_app = typer.Typer(no_args_is_help=True, help="The built-in LLM catalogue.")
app.add_typer(models_app, name="models")

err = Console(stderr=True)
out = Console(width=None if sys.stdout.isatty() else 160)


def _emit_json(obj: dict) -> None:
    from chipletcloud.report.store import _jsonable

    sys.stdout.write(json.dumps(obj, sort_keys=True, default=_jsonable) + "\n")


@contextmanager
def _progress(total: int, label: str, enabled: bool):
    """A rich progress bar on stderr when it is a terminal; silent otherwise."""
    if not (enabled and err.is_terminal):
        yield lambda _msg: None
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=total)

        def step(msg: str) -> None:
            bar.update(task, advance=1, description=f"{label}: {msg}")

        yield step


PresetOpt = Annotated[str, typer.Option("--preset", help="Preset name (isca24, v1) or YAML path.")]


@app.command()
def hardware(
    out_dir: Annotated[Path, typer.Option("--out", help="Output directory.")],
    space: Annotated[
        Path | None, typer.Option("--space", help="Space YAML (default: REFERENCE s4).")
    ] = None,
    preset: PresetOpt = "isca24",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Phase 1: sweep the hardware space and write every valid server to DIR/servers.parquet."""
    from chipletcloud.config import config_hash, load_space, resolve
    from chipletcloud.explore.hardware import explore_hardware
    from chipletcloud.report.store import manifest, write_json, write_parquet

    t0 = time.perf_counter()
    params = resolve(preset)
    sp = load_space(space)
    with _progress(4, "phase 1", not as_json) as step:
        res = explore_hardware(sp, params, progress=step)
        cfg = {"space": sp.model_dump(), **params.config_dict()}
        h = config_hash(cfg)
        path = write_parquet(res.table, out_dir / "servers.parquet")
        step("write")
    elapsed = time.perf_counter() - t0
    counts = {
        "candidates": res.candidates,
        "valid": res.valid,
        "rejected": res.rejected,
        "failures_any_order": res.failures,
    }
    write_json(
        manifest(
            "hardware",
            cfg,
            h,
            preset=params.preset.name,
            counts=counts,
            wall_time_s=round(elapsed, 3),
        ),
        out_dir / "manifest.json",
    )
    if as_json:
        _emit_json(
            {
                **counts,
                "out": str(path),
                "config_hash": h,
                "preset": params.preset.name,
                "wall_time_s": round(elapsed, 3),
            }
        )
        return
    table = Table(
        title=f"phase 1 ({params.preset.name}): {res.valid:,} valid of "
        f"{res.candidates:,} candidates",
        show_header=True,
    )
    table.add_column("rejected because")
    table.add_column("servers", justify="right")
    for reason, n in res.rejected.items():
        table.add_row(reason, f"{n:,}")
    out.print(table)
    out.print(f"wrote {path} and {out_dir / 'manifest.json'} in {elapsed:.2f} s")


def _model_row(spec) -> dict:
    """The INTERFACES.md ``models show`` keys and a few more."""
    return {
        "name": spec.name,
        "source": spec.source,
        "num_layers": spec.num_layers,
        "hidden_size": spec.hidden_size,
        "num_attention_heads": spec.num_attention_heads,
        "num_key_value_heads": spec.num_key_value_heads,
        "head_dim": spec.head_dim,
        "intermediate_size": spec.intermediate_size,
        "gated_mlp": spec.gated_mlp,
        "vocab_size": spec.vocab_size,
        "tie_word_embeddings": spec.tie_word_embeddings,
        "num_experts": spec.num_experts,
        "num_experts_per_tok": spec.num_experts_per_tok,
        "params": spec.params,
        "active_params": spec.active_params,
        "params_12ld2": spec.params_12ld2,
        "weight_bytes": spec.weight_bytes(2.0),
        "kv_bytes_per_token": spec.kv_bytes_per_token(2.0),
        "flops_decode_per_token_at_2048": spec.flops_decode_per_token(2048),
        "paper_shape": spec.paper_shape.model_dump() if spec.paper_shape else None,
    }


@models_app.command("list")
def models_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """List the built-in model cards."""
    from chipletcloud.models.llm import list_models, load_model

    rows = [_model_row(load_model(n)) for n in list_models()]
    if as_json:
        _emit_json({"models": rows})
        return
    table = Table(title="built-in models (params: true shape; 12Ld2: the paper's count)")
    for col in ("name", "layers", "d_model", "heads", "kv heads", "params", "12Ld2"):
        table.add_column(col, justify="left" if col == "name" else "right")
    for r in rows:
        ld2 = f"{r['params_12ld2'] / 1e9:,.2f} B" if r["paper_shape"] else "-"
        table.add_row(
            r["name"],
            str(r["num_layers"]),
            f"{r['hidden_size']:,}",
            str(r["num_attention_heads"]),
            str(r["num_key_value_heads"]),
            f"{r['params'] / 1e9:,.2f} B",
            ld2,
        )
    out.print(table)


@models_app.command("show")
def models_show(
    model: Annotated[str, typer.Argument(help="Built-in name or path to a config.json.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Show one model: shape, parameter counts, bytes and FLOPs per token."""
    from chipletcloud.models.llm import load_model

    row = _model_row(load_model(model))
    if as_json:
        _emit_json(row)
        return
    table = Table(show_header=False, title=row["name"])
    for k, v in row.items():
        table.add_row(k, f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v))
    out.print(table)


def _check_fraction(name: str, value: float | None) -> None:
    if value is not None and not (0.0 <= value < 1.0):
        raise InputError(name, value, "a fraction in [0, 1)")


@app.command()
def evaluate(
    model: Annotated[list[str], typer.Option("--model", help="Model name or config.json; repeat.")],
    hardware_dir: Annotated[Path, typer.Option("--hardware", help="Phase-1 output directory.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Output directory.")],
    preset: PresetOpt = "isca24",
    sparsity: Annotated[float | None, typer.Option("--sparsity", help="Zero fraction.")] = None,
    sparse_format: Annotated[str | None, typer.Option("--sparse-format")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Phase 2: search the software mapping of every server design for each model; write the
    Pareto front of (USD per million tokens, latency per token) and the optimal design cards."""
    from chipletcloud.config import config_hash, resolve
    from chipletcloud.explore.software import evaluate_models
    from chipletcloud.models.llm import load_model
    from chipletcloud.report.runs import write_evaluation
    from chipletcloud.sparsity.formats import FORMATS

    _check_fraction("sparsity", sparsity)
    if sparse_format is not None and sparse_format not in FORMATS:
        raise InputError("sparse_format", sparse_format, ", ".join(FORMATS))
    params = resolve(preset)
    params = params.with_workload(sparsity=sparsity, sparse_format=sparse_format)
    specs = [load_model(m) for m in model]
    table = _load_servers(hardware_dir)
    t0 = time.perf_counter()
    with _progress(len(specs), "phase 2", not as_json) as step:
        run = evaluate_models(table, specs, params, progress=step)
    elapsed = time.perf_counter() - t0
    cfg = {
        "models": [s.name for s in specs],
        "hardware": str(hardware_dir),
        "hardware_config_hash": _hardware_hash(hardware_dir),
        **params.config_dict(),
    }
    summary = write_evaluation(run, out_dir, cfg, config_hash(cfg), elapsed)
    if as_json:
        _emit_json(summary)
        return
    _print_cards(summary)
    out.print(
        f"evaluated {summary['evaluated_points']:,} mapping points in {elapsed:.1f} s; "
        f"wrote {out_dir}"
    )


def _hardware_hash(hardware_dir: Path) -> str | None:
    try:
        return json.loads((hardware_dir / "manifest.json").read_text()).get("config_hash")
    except (OSError, ValueError):
        return None


def _load_servers(hardware_dir: Path) -> dict:
    from chipletcloud.report.store import read_parquet

    path = hardware_dir / "servers.parquet"
    if not path.is_file():
        raise InputError(
            "hardware",
            str(hardware_dir),
            "a directory holding servers.parquet from `chipletcloud hardware`",
        )
    try:
        table = read_parquet(path)
    except Exception as exc:  # duckdb raises its own error types for a broken file
        raise InputError("hardware", str(path), "a readable Parquet servers table") from exc
    if "server_id" not in table or len(table["server_id"]) == 0:
        raise InputError("hardware", str(path), "a servers table with at least one server")
    return table


def _print_cards(summary: dict) -> None:
    table = Table(title="TCO-optimal design per model")
    cols = (
        "model",
        "die mm2",
        "SRAM MB",
        "TFLOPS",
        "chips/srv",
        "servers",
        "TP",
        "PP",
        "batch",
        "ms/token",
        "$/M tokens",
    )
    for c in cols:
        table.add_column(c, justify="left" if c == "model" else "right")
    for name, m in summary["models"].items():
        c = m["tco_optimal"]
        if c is None:
            table.add_row(name, *(["-"] * 9), "fits no design")
            continue
        table.add_row(
            name,
            f"{c['die_area_mm2']:.0f}",
            f"{c['sram_mb_per_chip']:.1f}",
            f"{c['tflops_per_chip']:.2f}",
            str(c["chips_per_server"]),
            f"{c['servers']:,}",
            f"{c['tp']:,}",
            str(c["pp"]),
            str(c["batch"]),
            f"{c['latency_s_per_token'] * 1e3:.2f}",
            f"{c['usd_per_million_tokens']:.4f}",
        )
    out.print(table)
    if summary.get("portfolio", {}).get("best_server_id") is not None:
        p = summary["portfolio"]
        out.print(
            f"one design for all models: server {p['best_server_id']} "
            f"({p['die_area_mm2']:.0f} mm2), geometric-mean efficiency "
            f"{p['geomean_efficiency']:.3f} of the per-model optima"
        )


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs the app, turning bad input into one line and exit code 2."""
    from typer._click import exceptions as cx

    cmd = typer.main.get_command(app)
    try:
        rv = cmd.main(
            args=argv if argv is not None else sys.argv[1:],
            prog_name="chipletcloud",
            standalone_mode=False,
        )
    except InputError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        return 2
    except cx.NoArgsIsHelpError as exc:
        err.print(exc.format_message(), markup=False, highlight=False)
        return 2
    except cx.UsageError as exc:
        err.print(f"error: {exc.format_message()}", markup=False, highlight=False, soft_wrap=True)
        return 2
    except cx.Abort:
        err.print("aborted", markup=False)
        return 130
    except KeyboardInterrupt:
        err.print("interrupted", markup=False)
        return 130
    except typer.Exit as exc:
        return int(exc.exit_code)
    return int(rv) if isinstance(rv, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
