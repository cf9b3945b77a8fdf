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
out = Console()


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
