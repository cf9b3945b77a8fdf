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
from rich.progress import (
    BarColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
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
presets_app = typer.Typer(no_args_is_help=True, help="The built-in presets and their constants.")
app.add_typer(presets_app, name="presets")

err = Console(stderr=True)
out = Console(width=None if sys.stdout.isatty() else 160)


def _emit_json(obj: dict) -> None:
    from chipletcloud.report.store import jsonable

    sys.stdout.write(json.dumps(obj, sort_keys=True, default=jsonable) + "\n")


#: ``--quiet`` (the app's option): no progress on stderr, on a terminal or not
_QUIET = {"on": False}


@app.callback()
def _options(
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress lines or bars on stderr.")
    ] = False,
) -> None:
    """Design chiplet-based LLM-serving supercomputers for the lowest cost per token."""
    _QUIET["on"] = quiet


def _log_line(label: str, done: int, total: int, msg: str, start: float) -> None:
    """One plain progress line on stderr (not a terminal): step, count, elapsed and an ETA."""
    elapsed = time.monotonic() - start
    eta = elapsed / done * (total - done) if 0 < done < total else 0.0
    tail = f", about {eta:.0f} s left" if done < total else ""
    err.print(
        f"{label}: {msg} done ({done}/{total}, {elapsed:.0f} s{tail})",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


@contextmanager
def _progress(total: int, label: str, enabled: bool):
    """Progress on stderr: a rich bar with the last step done, the elapsed time and an ETA on a
    terminal; one plain line a step otherwise (a log); nothing with ``--quiet`` or when not
    ``enabled`` (``--json``)."""
    if not enabled or _QUIET["on"]:
        yield lambda _msg: None
        return
    if not err.is_terminal:
        start, count = time.monotonic(), [0]

        def line(msg: str) -> None:
            count[0] += 1
            _log_line(label, count[0], max(total, count[0]), msg, start)

        yield line
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task(f"{label}: starting", total=total)

        def step(msg: str) -> None:
            bar.update(task, advance=1, description=f"{label}: {msg} done, next step running")

        yield step


@contextmanager
def _status(label: str, enabled: bool):
    """A spinner on stderr while a step without countable parts runs (a terminal); a line when
    it starts and one when it ends otherwise; nothing with ``--quiet`` or ``--json``."""
    if not enabled or _QUIET["on"]:
        yield
        return
    if not err.is_terminal:
        start = time.monotonic()
        err.print(f"{label} ...", markup=False, highlight=False, soft_wrap=True)
        yield
        err.print(
            f"{label}: done in {time.monotonic() - start:.0f} s",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        return
    with err.status(label):
        yield


WorkloadOpt = Annotated[
    str | None,
    typer.Option(
        "--workload",
        help="Request workload: chat, summarize, reasoning, code, a workload YAML or a "
        "CSV/Parquet trace (input_tokens, output_tokens, arrival_s); its mean lengths.",
    ),
]


def _request_workload(name: str | None):
    """The workload named by ``--workload`` (None when not given)."""
    if name is None:
        return None
    from chipletcloud.models.requests import load_workload

    return load_workload(name)


SloOpt = Annotated[
    str | None,
    typer.Option(
        "--slo",
        help="Service level: METRIC_PCT=VALUE[,...], METRIC ttft|tpot|e2e, PCT p50|p90|p99, "
        "VALUE in s or ms (ttft_p99=2s,tpot_p50=50ms).",
    ),
]


def _slo(spec: str | None):
    """The parsed ``--slo`` (an empty :class:`~chipletcloud.models.slo.Slo` when not given)."""
    from chipletcloud.models.slo import Slo

    return Slo.parse(spec)


PresetOpt = Annotated[str, typer.Option("--preset", help="Preset name (isca24, v1) or YAML path.")]
IndexBitsOpt = Annotated[
    int | None, typer.Option("--index-bits", help="Index width of value_index (1..16; 8).")
]
BackendOpt = Annotated[
    str, typer.Option("--backend", help="Where shards run: serial, process or dask.")
]
AddressOpt = Annotated[
    str | None, typer.Option("--address", help="Dask scheduler (default: a local cluster).")
]
ResumeOpt = Annotated[
    bool, typer.Option("--resume", help="Continue an interrupted run in the same --out.")
]


@app.command()
def hardware(
    out_dir: Annotated[Path, typer.Option("--out", help="Output directory.")],
    space: Annotated[
        Path | None,
        typer.Option("--space", help="Space YAML (default: the space of docs/design-space.md)."),
    ] = None,
    preset: PresetOpt = "isca24",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    backend: BackendOpt = "serial",
    address: AddressOpt = None,
    resume: ResumeOpt = False,
    shard_size: Annotated[
        int | None, typer.Option("--shard-size", help="Candidates per shard (default 65536).")
    ] = None,
) -> None:
    """Phase 1: sweep the hardware space and write every valid server to DIR/servers.parquet.

    With --backend process/dask, --resume or --shard-size the space is cut into shards kept in
    DIR/shards (see chipletcloud.explore.shards); the outputs are the same. With --design DESIGN
    the search runs on that one fixed machine (docs/interconnect.md#sram-device-cards), its server
    count free or pinned with --servers."""
    from chipletcloud.config import config_hash, load_space, resolve
    from chipletcloud.explore.backends import check_options
    from chipletcloud.explore.hardware import explore_hardware
    from chipletcloud.report.outdir import check_out_dir
    from chipletcloud.report.store import manifest, write_json, write_parquet

    check_out_dir(out_dir)
    t0 = time.perf_counter()
    sharded = check_options(backend, address, resume, shard_size)
    params = resolve(preset)
    sp = load_space(space)
    with _progress(3 if sharded else 4, "phase 1", not as_json) as step:
        if sharded:
            from chipletcloud.explore.shards import run_hardware_sharded

            res = run_hardware_sharded(
                sp, params, backend, shard_size, run_dir=out_dir, resume=resume, address=address
            )
            step("enumerate and evaluate (shards)")
            step("check")
        else:
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
    """The docs/architecture.md#public-interface ``models show`` keys and a few more."""
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
        "experts": spec.num_experts,
        "experts_per_token": spec.num_experts_per_tok,
        "shared_experts": spec.num_shared_experts,
        "dense_layers": spec.num_dense_layers if spec.is_moe else spec.num_layers,
        "attention": spec.attention,
        "kv_lora_rank": spec.kv_lora_rank,
        "sliding_window": spec.sliding_window,
        "sliding_layers": spec.sliding_layers,
        "params": spec.params,
        "active_params": spec.active_params,
        "active_params_without_embedding": spec.active_params_without_embedding,
        "mtp_params": spec.mtp_params,
        "params_12ld2": spec.params_12ld2,
        "weight_bytes": spec.weight_bytes(2.0),
        "kv_bytes_per_token": spec.kv_bytes_per_token(2.0),
        "kv_bytes_at_max_context": (
            spec.kv_bytes(spec.max_position_embeddings, 2.0)
            if spec.max_position_embeddings
            else None
        ),
        "flops_decode_per_token_at_2048": spec.flops_decode_per_token(2048),
        "paper_shape": spec.paper_shape.model_dump() if spec.paper_shape else None,
        "weight_sparsity": spec.weight_sparsity,
        "sparse_format": spec.sparse_format,
    }


@models_app.command("list")
def models_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """List the built-in model cards."""
    from chipletcloud.models.catalogue import list_models, load_model

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
    """Show one model: shape, parameter counts, bytes and FLOPs per token. Config keys the
    model does not use are named in a warning on stderr."""
    import warnings

    from chipletcloud.models.catalogue import load_model, published
    from chipletcloud.models.llm import IgnoredConfigKeys

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", IgnoredConfigKeys)
        spec = load_model(model)
    for w in caught:
        if isinstance(w.message, IgnoredConfigKeys):
            err.print(f"warning: {w.message}", markup=False, highlight=False)
    row = _model_row(spec)
    pub = published(model)
    row["published"] = pub.model_dump() if pub else None
    if as_json:
        _emit_json(row)
        return
    table = Table(show_header=False, title=row["name"])
    for k, v in row.items():
        table.add_row(k, f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v))
    out.print(table)


def _check_index_bits(index_bits: int | None) -> None:
    if index_bits is not None and not 1 <= index_bits <= 16:
        raise InputError("index_bits", index_bits, "an integer from 1 to 16")


def _check_fraction(name: str, value: float | None) -> None:
    if value is not None and not (0.0 <= value < 1.0):
        raise InputError(name, value, "a fraction in [0, 1)")


@app.command()
def evaluate(
    model: Annotated[list[str], typer.Option("--model", help="Model name or config.json; repeat.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Output directory.")],
    hardware_dir: Annotated[
        Path | None, typer.Option("--hardware", help="Phase-1 output directory.")
    ] = None,
    design: Annotated[
        Path | None,
        typer.Option("--design", help="One fixed design: an SRAM device card (kind: sram)."),
    ] = None,
    servers: Annotated[
        int | None, typer.Option("--servers", help="With --design: pin the server count.")
    ] = None,
    preset: PresetOpt = "isca24",
    sparsity: Annotated[float | None, typer.Option("--sparsity", help="Zero fraction.")] = None,
    sparse_format: Annotated[str | None, typer.Option("--sparse-format")] = None,
    index_bits: IndexBitsOpt = None,
    workload: WorkloadOpt = None,
    slo: SloOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    backend: BackendOpt = "serial",
    address: AddressOpt = None,
    resume: ResumeOpt = False,
    shard_size: Annotated[
        int | None, typer.Option("--shard-size", help="Designs per shard (default 2048).")
    ] = None,
) -> None:
    """Phase 2: search the software mapping of every server design for each model; write the
    Pareto front of (USD per million tokens, latency per token) and the optimal design cards.

    With --backend process/dask, --resume or --shard-size the designs are cut into shards kept in
    DIR/shards (see chipletcloud.explore.shards); the outputs are the same. With --design DESIGN
    the search runs on that one fixed machine (docs/interconnect.md#sram-device-cards), its server
    count free or pinned with --servers."""
    from chipletcloud.config import config_hash, resolve
    from chipletcloud.explore.backends import check_options
    from chipletcloud.explore.software import evaluate_models
    from chipletcloud.models.catalogue import load_model
    from chipletcloud.report.outdir import check_out_dir
    from chipletcloud.report.runs import write_evaluation
    from chipletcloud.sparsity.formats import FORMATS

    check_out_dir(out_dir)
    _check_fraction("sparsity", sparsity)
    if sparse_format is not None and sparse_format not in FORMATS:
        raise InputError("sparse_format", sparse_format, ", ".join(FORMATS))
    sharded = check_options(backend, address, resume, shard_size)
    if (hardware_dir is None) == (design is None):
        raise InputError(
            "hardware", hardware_dir, "exactly one of --hardware DIR and --design CARD.yaml"
        )
    if servers is not None and (design is None or servers < 1):
        raise InputError("servers", servers, "an integer >= 1, together with --design")
    if design is not None and sharded:
        raise InputError("backend", backend, "serial with --design (one design, no shards)")
    params = resolve(preset)
    _check_index_bits(index_bits)
    params = params.with_workload(
        sparsity=sparsity, sparse_format=sparse_format, index_bits=index_bits
    )
    wl = _request_workload(workload)
    slo_ = _slo(slo)
    if slo_ and design is not None:
        raise InputError("slo", slo, "an SLO search over a phase-1 table (--hardware DIR)")
    if wl is not None:
        params = wl.applied_to(params)
    from chipletcloud.explore.software import servable, unique_names

    specs = unique_names(servable([load_model(m) for m in model], params))
    card = None
    if design is not None:
        from chipletcloud.baselines.sram import load_sram_card

        card = load_sram_card(str(design))
    else:
        table = _load_servers(hardware_dir)
    t0 = time.perf_counter()
    with _progress(len(specs), "phase 2", not as_json) as step:
        if card is not None:
            from chipletcloud.baselines.sram import evaluate_design

            run = evaluate_design(card, specs, params, servers=servers, progress=step)
        elif sharded:
            from chipletcloud.explore.shards import evaluate_models_sharded

            run = evaluate_models_sharded(
                table,
                specs,
                params,
                backend,
                shard_size,
                run_dir=out_dir,
                resume=resume,
                address=address,
                progress=step,
            )
        else:
            run = evaluate_models(table, specs, params, progress=step)
    elapsed = time.perf_counter() - t0
    cfg = {
        "models": [s.name for s in specs],
        "hardware": str(hardware_dir) if hardware_dir else None,
        "hardware_config_hash": _hardware_hash(hardware_dir) if hardware_dir else None,
        **params.config_dict(),
    }
    if wl is not None:
        cfg["request_workload"] = wl.describe()
    if card is not None:
        cfg["design"] = card.model_dump()
        cfg["servers"] = servers
    if slo_:
        cfg["slo"] = slo_.describe()
    summary = write_evaluation(run, out_dir, cfg, config_hash(cfg), elapsed)
    if slo_ or (wl is not None and card is None):
        from chipletcloud.explore.serving import serve_models
        from chipletcloud.report.store import write_json

        summary["serving"] = serve_models(run, specs, wl, slo_)
        write_json(summary["serving"], out_dir / "serving.json")
    if as_json:
        _emit_json(summary)
        return
    _print_cards(summary)
    if "serving" in summary:
        _print_serving_models(summary["serving"])
    out.print(
        f"evaluated {summary['evaluated_points']:,} mapping points in {elapsed:.1f} s; "
        f"wrote {out_dir}"
    )


def _print_serving_models(sv: dict) -> None:
    t = Table(
        title=f"serving {sv['workload']['name']} at SLO {sv['slo']['spec']}: the cheapest "
        "design and mapping (continuous batching)"
    )
    for col in ("model", "$/M tokens", "goodput req/s", "tokens/s per user", "TTFT p99",
                "TPOT p50", "design", "servers", "TP x PP"):  # fmt: skip
        t.add_column(col, justify="left" if col == "model" else "right")
    for name, m in sv["models"].items():
        b = m["best"]
        if b is None:
            best = ", ".join(f"{k.removesuffix('_s')} {v * 1e3:,.1f} ms"
                             for k, v in m["best_achievable"].items())  # fmt: skip
            t.add_row(name, "no design meets the SLO", f"best achievable: {best}")
            continue
        mp = b["mapping"]
        t.add_row(
            name, f"{b['usd_per_million_tokens']:.4f}", f"{b['goodput_requests_per_s']:,.1f}",
            f"{b['tokens_per_s_per_user']:,.1f}", f"{b['ttft_p99_s'] * 1e3:,.1f} ms",
            f"{b['tpot_p50_s'] * 1e3:,.2f} ms", str(mp["design"]), str(mp["servers"]),
            f"{mp['tp']} x {mp['pp']}",
        )  # fmt: skip
    out.print(t)


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


@app.command("simulate")
def simulate_cmd(
    hardware: Annotated[str, typer.Option("--hardware", help="Device name or card path.")],
    devices: Annotated[int, typer.Option("--devices", help="Number of devices.")],
    model: Annotated[str, typer.Option("--model", help="Model name or config.json.")],
    tp: Annotated[int, typer.Option("--tp", help="Tensor-parallel degree.")],
    pp: Annotated[int, typer.Option("--pp", help="Pipeline degree.")],
    batch: Annotated[int, typer.Option("--batch", help="Sequences in flight.")],
    input_tokens: Annotated[int | None, typer.Option("--input-tokens")] = None,
    output_tokens: Annotated[int | None, typer.Option("--output-tokens")] = None,
    workload: WorkloadOpt = None,
    slo: SloOpt = None,
    chunk_tokens: Annotated[
        int | None,
        typer.Option(
            "--chunk-tokens", help="With --workload/--slo: chunked prefill, tokens an iteration."
        ),
    ] = None,
    scheduler: Annotated[
        str,
        typer.Option(
            "--scheduler", help="With --workload/--slo: mixed (default) or prefill-first."
        ),
    ] = "mixed",
    micro_batch: Annotated[int | None, typer.Option("--micro-batch")] = None,
    weight_dtype: Annotated[str, typer.Option("--weight-dtype")] = "bf16",
    kv_dtype: Annotated[str, typer.Option("--kv-dtype")] = "bf16",
    compute_dtype: Annotated[
        str | None,
        typer.Option(
            "--compute-dtype",
            help="Matmul format (default: the weights' where the device has it, else bf16; "
            "bf16 with 8/4-bit weights is weight-only quantisation).",
        ),
    ] = None,
    stack: Annotated[
        str | None,
        typer.Option("--stack", help="Software stack (data/stacks; default: the device's)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Simulate serving a model on GPUs/TPUs: TTFT, time per output token, end-to-end latency,
    throughput, and where the decode time goes. Devices beyond tp x pp run data-parallel
    replicas."""
    from chipletcloud.baselines.hbm import run
    from chipletcloud.models.catalogue import load_model

    wl = _request_workload(workload)
    slo_ = _slo(slo)
    if chunk_tokens is not None and chunk_tokens < 1:
        raise InputError("chunk_tokens", chunk_tokens, "an integer >= 1")
    if wl is not None:
        mean_in, mean_out = wl.mean_lengths()
        input_tokens = mean_in if input_tokens is None else input_tokens
        output_tokens = mean_out if output_tokens is None else output_tokens
    for field, val in (("input_tokens", input_tokens), ("output_tokens", output_tokens)):
        if val is None:
            raise InputError(field, None, f"--{field.replace('_', '-')} N or --workload NAME")
    r = run(
        hardware,
        devices,
        load_model(model),
        tp=tp,
        pp=pp,
        batch=batch,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        micro_batch=micro_batch,
        weight_dtype=weight_dtype,
        kv_dtype=kv_dtype,
        compute_dtype=compute_dtype,
        stack=stack,
    )
    summary = r.summary()
    if wl is not None:
        summary["workload"] = wl.describe()
    if wl is not None or slo_:
        from chipletcloud.baselines.serving import mapping_serving
        from chipletcloud.models.requests import fixed_workload

        rw = wl or fixed_workload(input_tokens, output_tokens, "--input-tokens/--output-tokens")
        summary["serving"] = mapping_serving(
            hardware, load_model(model), tp=tp, pp=pp, max_batch=batch, request_workload=rw,
            slo=slo_, weight_dtype=weight_dtype, kv_dtype=kv_dtype,
            compute_dtype=compute_dtype, stack=stack, replicas=max(r.replicas, 1),
            chunk_tokens=chunk_tokens, scheduler=scheduler,
        )  # fmt: skip
        summary["serving"]["workload"] = rw.describe()
    if not r.fits:
        need = summary["weight_bytes_per_device"] + summary["kv_bytes_per_device"]
        raise InputError(
            "model",
            model,
            f"a model that fits: needs {need / 1e9:.2f} GB a device (weights "
            f"{summary['weight_bytes_per_device'] / 1e9:.2f} GB + KV "
            f"{summary['kv_bytes_per_device'] / 1e9:.2f} GB), {r.device} has "
            f"{summary['hbm_bytes_per_device'] / 1e9:.2f} GB; use more devices or a smaller batch",
        )
    if as_json:
        _emit_json(summary)
        return
    if r.replicas > 1 or summary["idle_devices"]:
        err.print(
            f"{devices} devices run {r.replicas} data-parallel replica"
            f"{'s' if r.replicas > 1 else ''} of TP {tp} x PP {pp}"
            + (f"; {summary['idle_devices']} idle" if summary["idle_devices"] else "")
            + ": output tokens/s is their sum, latencies are one replica's",
            markup=False,
            highlight=False,
        )
    sw = f", {r.stack}" if r.stack else ""
    if wl is not None:
        err.print(
            f"workload {wl.name}: its mean lengths, {input_tokens} input and {output_tokens} "
            "output tokens, in a static batch",
            markup=False,
            highlight=False,
        )
    t = Table(
        title=f"{r.model} on {devices} x {r.device} (TP {tp}, PP {pp}, batch {batch}, "
        f"{r.compute_dtype} math{sw})"
    )
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_row("time to first token", f"{summary['ttft_s'] * 1e3:.2f} ms")
    t.add_row("time per output token", f"{summary['tpot_s'] * 1e3:.3f} ms")
    t.add_row("end to end", f"{summary['e2e_s'] * 1e3:.1f} ms")
    t.add_row("output tokens/s", f"{summary['output_tokens_per_s']:,.1f}")
    if r.replicas > 1:
        t.add_row("  a replica", f"{summary['output_tokens_per_s_per_replica']:,.1f}")
    for op, v in summary["breakdown"]["decode_s_per_token"].items():
        t.add_row(f"  decode: {op}", f"{v * 1e3:.3f} ms")
    out.print(t)
    if "serving" in summary:
        _print_serving(summary["serving"], batch)


def _print_serving(sv: dict, batch: int) -> None:
    t = Table(
        title=f"continuous batching, {sv['workload']['name']} workload, SLO {sv['slo']['spec']}: "
        f"at the highest rate meeting it ({sv['scheduler']}, at most {batch} running)"
    )
    t.add_column("metric")
    for col in ("p50", "p90", "p99"):
        t.add_column(col, justify="right")
    for m, name in (("ttft", "time to first token"), ("tpot", "time per output token"),
                    ("e2e", "end to end")):  # fmt: skip
        t.add_row(name, *(f"{sv[f'{m}_p{p}_s'] * 1e3:,.1f} ms" for p in (50, 90, 99)))
    out.print(t)
    out.print(
        f"goodput {sv['goodput_requests_per_s']:,.2f} requests/s, "
        f"{sv['output_tokens_per_s']:,.0f} output tokens/s, "
        f"{sv['tokens_per_s_per_user']:,.1f} tokens/s per user, mean running batch "
        f"{sv['batch']:,.1f} (KV budget {sv['kv_budget_tokens']:,.0f} tokens)"
    )


@app.command()
def validate(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """The simulator against measured hardware (docs/validation.md) and the analytic ASIC model
    against the event-level simulation."""
    from chipletcloud.baselines.asic_validation import validation_report

    with _status("validating (with a leave-one-source-out refit)", not as_json):
        report = validation_report(leave_one_out=True)
    errs = [abs(c["error"]) for c in report["asic_cases"] if c["error"] == c["error"]]  # not NaN
    if as_json:
        _emit_json(report)
        return
    t = Table(title="simulator vs measured hardware (calibrated on train, judged on test)")
    for col in ("case", "split", "stack", "measured", "predicted", "unit", "error"):
        t.add_column(col, justify="left" if col in ("case", "split", "stack") else "right")
    for c in report["cases"]:
        t.add_row(
            c["id"],
            c["split"],
            c["stack"],
            f"{c['measured']:,.3f}",
            f"{c['predicted']:,.3f}",
            c["unit"],
            f"{c['error']:+.1%}",
        )
    out.print(t)
    t = Table(title="median |error| by device: train, test, leave one training source out")
    for col in ("device", "train", "test", "left out"):
        t.add_column(col, justify="left" if col == "device" else "right")
    loso_dev = report["leave_one_source_out"]["per_device"]
    for dev, parts in report["devices"].items():
        cells = [
            f"{p['median_abs_error']:.1%} ({p['cases']})" if p["cases"] else "-"
            for p in (parts["train"], parts["test"])
        ]
        cells.append(f"{loso_dev[dev]:.1%}" if dev in loso_dev else "-")
        t.add_row(dev, *cells)
    out.print(t)
    for split, v in report["split"].items():
        out.print(
            f"{split}: {v['cases']} cases from {len(v['sources'])} sources, median |error| "
            f"{v['median_abs_error']:.1%}, max {v['max_abs_error']:.1%}, "
            f"{v['share_beyond_30pct']:.0%} beyond 30%"
        )
    out.print(
        "leave one training source out (refit on the others): median |error| "
        f"{report['leave_one_source_out_median_abs_error']:.1%}"
    )
    if errs:
        out.print(
            f"analytic ASIC model vs event-level simulation: {len(errs)} points, median "
            f"|error| {report['asic_median_abs_error']:.2%}, max {max(errs):.2%}"
        )
    t = Table(title="ASIC model vs measured all-SRAM machines (asic_measured)")
    for col in ("case", "split", "measured", "predicted", "error", "mapping"):
        t.add_column(col, justify="left" if col in ("case", "split", "mapping") else "right")
    for c in report["asic_measured"]:
        if c["predicted"] is None:
            t.add_row(c["id"], c["split"], f"{c['measured']:,.0f}", "refused", "", c["refused"])
            continue
        t.add_row(
            c["id"],
            c["split"],
            f"{c['measured']:,.0f}",
            f"{c['predicted']:,.0f}",
            f"{c['error']:+.1%}",
            f"{c['chips']} chips, TP {c['tp']} x PP {c['pp']}",
        )
    out.print(t)
    t = Table(title="analytic serving model vs request-level event simulation (serving_cases)")
    for col in ("case", "TTFT p50", "TPOT p50", "tokens/s", "TTFT p99", "TPOT p99"):
        t.add_column(col, justify="left" if col == "case" else "right")
    for c in report["serving_cases"]:
        cells = []
        for k in ("ttft_p50_s", "tpot_p50_s", "output_tokens_per_s", "ttft_p99_s", "tpot_p99_s"):
            e = c[k]["error"]
            cells.append("-" if e is None else f"{e:+.1%}")
        t.add_row(c["id"], *cells)
    out.print(t)
    med = report["serving_summary"]["median_abs_error"]
    out.print(
        "serving_cases median |error|: "
        + ", ".join(f"{k.removesuffix('_s')} {v:.1%}" for k, v in med.items())
        + f" ({len(report['serving_cases'])} points; target < 10%)"
    )
    s = report["asic_measured_summary"]
    out.print(
        "asic_measured median |error|: "
        + ", ".join(
            f"{k} {v['median_abs_error']:.1%} (max {v['max_abs_error']:.1%}, {v['cases']} cases)"
            for k, v in s.items()
            if v["cases"]
        )
    )


@app.command()
def calibrate(
    device: Annotated[
        str | None, typer.Option("--device", help="Fit this device only (and its stacks).")
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Write the fitted device and stack cards under DIR/devices, DIR/stacks."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Fit the GPU/TPU device efficiencies and the software stacks' fixed costs on the training
    cases (least squares on log error, physical bounds): one reproducible command instead of a
    hand fit (docs/validation.md#calibration)."""
    from chipletcloud.baselines.calibrate import fit, training_cases, write_cards
    from chipletcloud.baselines.validation import case_rows, load_cases, split_summary
    from chipletcloud.report.outdir import check_out_dir

    if out_dir is not None:
        check_out_dir(out_dir)
    warnings: list[str] = []
    cases = training_cases(device)  # a device without training cases: one line, before work
    with _status("calibrating on the train split", not as_json):
        result = fit(cases, device=device, warn=warnings.append)
        devs, stacks = result.cards()
        cases = load_cases()
        if device is not None:
            names = set(devs)
            cases = [c for c in cases if c["setup"]["device"] in names]
        rows = case_rows(cases, devs, stacks)
    for w in warnings:
        err.print(w, markup=False, highlight=False)
    written = write_cards(result, out_dir) if out_dir is not None else []
    summary = split_summary(rows)
    if as_json:
        _emit_json(
            {
                "parameters": result.table(),
                "train_ids": result.train_ids,
                "sources": result.sources,
                "train_median_abs_error": result.train_median_abs_error,
                "split": summary,
                "at_bound": result.at_bound,
                "written": [str(p) for p in written],
            }
        )
        return
    t = Table(title="calibration on the train split")
    for col in ("owner", "parameter", "prior", "fitted", "bounds", ""):
        t.add_column(col, justify="left" if col in ("owner", "parameter", "") else "right")
    for r in result.table():
        note = "at bound" if r["at_bound"] else ("" if r["identified"] else "not identified")
        t.add_row(
            r["owner"],
            r["parameter"],
            f"{r['prior']:.4g}",
            f"{r['value']:.4g}",
            f"[{r['low']:g}, {r['high']:g}]",
            note,
        )
    out.print(t)
    for split, v in summary.items():
        if v["cases"]:
            out.print(
                f"{split}: {v['cases']} cases, median |error| {v['median_abs_error']:.1%}, "
                f"{v['share_beyond_30pct']:.0%} beyond 30%"
            )
    for p in written:
        out.print(f"wrote {p}")


@app.command("sparsity")
def sparsity_cmd(
    model: Annotated[str, typer.Option("--model", help="Model whose optimal system is used.")],
    sparsity: Annotated[float, typer.Option("--sparsity", help="Fraction of zero weights.")],
    sparse_format: Annotated[str, typer.Option("--sparse-format")] = "value_index",
    index_bits: Annotated[int, typer.Option("--index-bits", help="value_index width, 1..16.")] = 8,
    hardware_dir: Annotated[Path | None, typer.Option("--hardware", help="Phase-1 dir.")] = None,
    preset: PresetOpt = "isca24",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """The largest model the TCO-optimal Chiplet Cloud system of MODEL holds dense and at the
    given sparsity (Store-as-Compressed, Load-as-Dense), with the arithmetic."""
    from chipletcloud.config import load_space, resolve
    from chipletcloud.explore import software
    from chipletcloud.explore.hardware import explore_hardware
    from chipletcloud.models.catalogue import load_model
    from chipletcloud.sparsity.capacity import capacity_study
    from chipletcloud.sparsity.formats import check_format, check_sparsity

    check_sparsity(sparsity)
    check_format(sparse_format)
    _check_index_bits(index_bits)
    params = resolve(preset)
    spec = load_model(model)
    table = (
        _load_servers(hardware_dir)
        if hardware_dir
        else explore_hardware(load_space(), params).table
    )
    res = software.search(table, spec, params)
    card = res.card("tco", table)
    if card is None:
        raise InputError("model", model, "a model that fits some design of the hardware table")
    wl = software.workload(params.preset.workload)
    shape = res.shape
    memory, kv = software.system_memory(card, shape, wl)
    study = capacity_study(
        memory,
        kv,
        sparsity,
        sparse_format,
        value_bits=int(wl.weight_bytes * 8),
        index_bits=index_bits,
    )
    study.update(
        model=spec.name,
        system=card,
        model_params=shape.weight_params,
        model_dense_bytes=shape.weight_params * wl.weight_bytes,
    )
    if as_json:
        _emit_json(study)
        return
    out.print(
        f"{spec.name}: TCO-optimal system {card['servers']} servers x "
        f"{card['chips_per_server']} chips x {card['sram_mb_per_chip']:.1f} MB"
    )
    out.print(study["arithmetic"])
    out.print(
        f"capacity gain {study['capacity_gain']:.2f}x: largest model "
        f"{study['largest_model_params_dense'] / 1e9:,.1f} B dense -> "
        f"{study['largest_model_params_sparse'] / 1e9:,.1f} B parameters"
    )


def _token_counts(field: str, text: str | None) -> list[int] | None:
    """``2k,8k,131072`` -> [2048, 8192, 131072] (``k``: 1024 tokens); one line on bad input."""
    if text is None:
        return None
    out = []
    for part in text.split(","):
        p = part.strip().lower()
        mult = 1024 if p.endswith("k") else 1
        try:
            n = int(p.removesuffix("k")) * mult
        except ValueError:
            n = 0
        if n < 2:
            raise InputError(field, text, "comma-separated token counts of at least 2 (2k = 2048)")
        out.append(n)
    return out


@app.command("context")
def context_cmd(
    model: Annotated[list[str] | None, typer.Option("--model", help="Model; repeat.")] = None,
    contexts: Annotated[
        str | None,
        typer.Option("--contexts", help="Contexts in tokens, comma-separated (2k,8k,128k)."),
    ] = None,
    output_tokens: Annotated[
        int | None, typer.Option("--output-tokens", help="Generated tokens a request.")
    ] = None,
    devices: Annotated[
        str | None, typer.Option("--devices", help="Baseline devices, comma-separated.")
    ] = None,
    hardware_dir: Annotated[Path | None, typer.Option("--hardware", help="Phase-1 dir.")] = None,
    preset: PresetOpt = "isca24",
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Write context.json and context.parquet here.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """USD per million tokens against the context (prompt + output) for Chiplet Cloud's
    TCO-optimal system and the cheapest rented and fabricated device, with the share of the
    system's SRAM the KV cache takes and the context one sequence can reach in it
    (defaults: data/studies/context.yaml)."""
    from chipletcloud.baselines.devices import load_device
    from chipletcloud.config import load_space, resolve
    from chipletcloud.explore.hardware import explore_hardware
    from chipletcloud.studies.context import context_study, default_spec

    if out_dir is not None:
        from chipletcloud.report.outdir import check_out_dir

        check_out_dir(out_dir)
    if output_tokens is not None and output_tokens < 1:
        raise InputError("output-tokens", output_tokens, "a token count of at least 1")
    ctx = _token_counts("contexts", contexts)
    devs = None
    if devices is not None:
        devs = [d.strip() for d in devices.split(",") if d.strip()]
        for d in devs:
            load_device(d)
    base = default_spec()
    names = list(model or base.models)
    params = resolve(preset)
    n = len(names) * len(ctx or base.contexts)
    with _progress(n, "context study", not as_json) as step:
        table = (
            _load_servers(hardware_dir)
            if hardware_dir
            else explore_hardware(load_space(), params).table
        )
        study = context_study(table, params, names, ctx, output_tokens, devs, progress=step)
    if out_dir is not None:
        from chipletcloud.config import config_hash
        from chipletcloud.report.store import manifest, write_json, write_parquet
        from chipletcloud.studies.context import context_columns

        cfg = {"command": "context", "preset": params.preset.name, **{
            k: study[k] for k in ("models", "contexts", "output_tokens", "devices")
        }}  # fmt: skip
        write_json(study, out_dir / "context.json")
        write_parquet(context_columns(study), out_dir / "context.parquet")
        write_json(manifest("context", cfg, config_hash(cfg)), out_dir / "manifest.json")
    if as_json:
        _emit_json(study)
        return
    _print_context(study)


def _print_context(study: dict) -> None:
    t = Table(
        title=f"USD per million tokens by context ({study['output_tokens']} output tokens a "
        "request, prefill counted)"
    )
    for c, j in (
        ("model", "left"), ("context", "right"), ("Chiplet Cloud", "right"),
        ("chips", "right"), ("batch", "right"), ("KV / SRAM", "right"),
        ("cheapest rented", "right"), ("cheapest fabricated", "right"), ("fab / CC", "right"),
    ):  # fmt: skip
        t.add_column(c, justify=j)
    for r in study["rows"]:
        cc = r["cc_usd_per_million_tokens"]

        def dev(b):
            return "-" if b is None else f"{b['device']} ${b['usd_per_million_tokens']:,.3f}"

        ratio = r["fabricated_over_cc"]
        t.add_row(
            r["model"],
            f"{r['context']:,}",
            "does not fit" if cc is None else f"${cc:,.3f}",
            f"{r.get('chips', 0):,}" if cc is not None else "-",
            str(r.get("batch", "-")),
            f"{r['kv_share_of_sram']:.0%}" if cc is not None else "-",
            dev(r["cheapest_rented"]),
            dev(r["cheapest_fabricated"]),
            "-" if ratio is None else f"{ratio:.2f}x",
        )
    out.print(t)
    for name, s in study["summary"].items():
        lim = s["kv_limit_tokens"]
        cross = s["crossover_context"]
        out.print(
            f"{name}: the {s['kv_limit_of_context']:,}-token optimum's SRAM holds one sequence "
            f"of up to {lim:,} tokens beside the weights; "
            + (
                f"a fabricated device is cheaper from {cross:,} tokens"
                if cross is not None
                else "Chiplet Cloud is the cheapest at every context"
            )
            if lim is not None
            else f"{name}: no Chiplet Cloud system holds it"
        )


@app.command()
def compare(
    model: Annotated[list[str] | None, typer.Option("--model", help="Model; repeat.")] = None,
    model_set: Annotated[
        str, typer.Option("--set", help="Models when no --model: paper (the eight) or 2026.")
    ] = "paper",
    preset: PresetOpt = "isca24",
    workload: WorkloadOpt = None,
    slo: SloOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Chiplet Cloud's TCO-optimal design against rented and fabricated GPUs and TPUs."""
    from chipletcloud.baselines.compare import run_compare
    from chipletcloud.models.catalogue import model_set as set_models

    slo_ = _slo(slo)
    names = set_models(model_set)
    result = run_compare(
        list(model or names),
        preset,
        progress_enabled=not as_json,
        progress=_progress,
        request_workload=_request_workload(workload),
        slo=slo_,
    )
    if as_json:
        _emit_json(result)
        return
    t = Table(title=f"TCO per token: baseline / Chiplet Cloud ({result['preset']})")
    t.add_column("model")
    t.add_column("Chiplet Cloud $/M tok", justify="right")
    names = sorted({n for m in result["models"].values() for n in m["baselines"]})
    for n in names:
        t.add_column(n, justify="right")
    for name, m in result["models"].items():
        cells = [
            f"{m['baselines'][n]['ratio']:.1f}x" if n in m["baselines"] else "-" for n in names
        ]
        t.add_row(name, f"{m['chiplet_cloud_usd_per_million_tokens']:.4f}", *cells)
    out.print(t)
    s = result["summary"]
    out.print(
        "best over models (paper): "
        + ", ".join(
            f"{k} {s[k]:.1f}x ({s[k + '_paper']}x)"
            for k in ("rented_gpu", "rented_tpu", "fabricated_gpu", "fabricated_tpu")
            if k in s
        )
    )
    if "bands" in result:
        _print_bands(result)


def _money(v) -> str:
    return "not reachable" if v is None else f"${v:,.3f}"


def _print_bands(result: dict) -> None:
    sv = result["serving"]
    where = f"{sv['workload']['name']} workload, SLO {sv['slo']['spec']}"
    shown = ("chiplet-cloud", "a100-80gb-rented", "tpu-v4-rented")  # the paper's systems
    for model, rows in result["bands"].items():
        t = Table(title=f"{model}: cheapest $/M output tokens per interactivity band ({where})")
        for col in ("tokens/s per user", "cheapest", *shown, "cheapest rented",
                    "cheapest fabricated"):  # fmt: skip
            t.add_column(col, justify="left" if col == "cheapest" else "right")
        for r in rows:
            cc = r["systems"].get("chiplet-cloud")

            def cell(v, cc=cc):
                return _money(v) + (f" ({v / cc:.1f}x)" if v is not None and cc else "")

            cells = [_money(cc)] + [cell(r["systems"].get(n)) for n in shown[1:]]
            for kind in ("cheapest_rented", "cheapest_fabricated"):
                c = r[kind]
                cells.append(
                    f"{c['system']} {cell(c['usd_per_million_tokens'])}"
                    if c["system"]
                    else "not reachable"
                )
            t.add_row(str(r["tokens_per_s_per_user"]), r["best_system"] or "not reachable", *cells)
        out.print(t)
    head = result["summary"].get("headline", [])
    if head:
        t = Table(title=f"headline: the paper's pairs, rented ({where})")
        for col in ("model", "device", "Chiplet Cloud $/M", "measured deployment $/M", "ratio",
                    "simulated at SLO $/M", "ratio"):  # fmt: skip
            t.add_column(col, justify="left" if col in ("model", "device") else "right")
        for h in head:
            m, s = h["rented_measured_deployment"], h["rented_simulated_at_slo"]
            t.add_row(
                h["model"], h["device"], _money(h["chiplet_cloud_usd_per_million_tokens"]),
                _money(m["usd_per_million_tokens"]), _ratio_text(m["ratio"]),
                _money(s["usd_per_million_tokens"]), _ratio_text(s["ratio"]),
            )  # fmt: skip
        out.print(t)
        out.print(
            "measured deployment: the published system at its own service level "
            "(docs/baselines.md); simulated: the simulator's cheapest mapping at the same SLO"
        )


def _ratio_text(r) -> str:
    return "-" if r is None else f"{r:.1f}x"


@app.command()
def attribute(
    model: Annotated[str | None, typer.Option("--model", help="Model name or config.json.")] = None,
    preset: PresetOpt = "isca24",
    reproduction: Annotated[
        bool,
        typer.Option(
            "--reproduction",
            help="Instead of a walk: the authors' code's optima against the authors preset.",
        ),
    ] = False,
    switch: Annotated[
        list[str] | None,
        typer.Option("--switch", help="Flip this switch first (repeat; the rest follow)."),
    ] = None,
    space: Annotated[
        Path | None, typer.Option("--space", help="Phase-1 space YAML (default space).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """From the authors' code's behaviour to the preset, one named switch a step: the
    TCO-optimal $/M tokens, die and chips a server after each (docs/attribution.md)."""
    from chipletcloud.config import load_space
    from chipletcloud.studies.attribution import attribute as run_attribution
    from chipletcloud.studies.attribution import walk

    sp = load_space(space) if space is not None else load_space()
    if reproduction:
        _reproduction(model, sp, as_json)
        return
    if model is None:
        raise InputError("--model", None, "a model name or config.json (or --reproduction)")
    steps = len(walk(preset, switch))
    with _progress(steps, "attribute", not as_json) as step:
        result = run_attribution(model, preset, order=switch, space=sp, progress=step)
    if as_json:
        _emit_json(result)
        return
    t = Table(title=f"{result['model']}: the authors' code -> {result['base']}, one switch a step")
    for col in ("step", "$/M tokens", "change", "die mm2", "chips/server", "TP x PP", "batch"):
        t.add_column(col, justify="left" if col == "step" else "right")
    for r in result["steps"]:
        cost = r["usd_per_million_tokens"]
        t.add_row(
            r["switch"],
            "-" if cost is None else f"{cost:.4f}",
            "" if r["change"] is None else f"{r['change']:+.1%}",
            "-" if cost is None else f"{r['die_area_mm2']:.0f}",
            "-" if cost is None else str(r["chips_per_server"]),
            "-" if cost is None else f"{r['tp']} x {r['pp']}",
            "-" if cost is None else str(r["batch"]),
        )
    out.print(t)


def _reproduction(model: str | None, space, as_json: bool) -> None:
    from chipletcloud.studies.attribution import authors_optima, reproduction

    models = [model] if model else None
    n = len([p for p in authors_optima() if not models or p["model"] in models])
    with _progress(n, "reproduction", not as_json) as step:
        rows = reproduction(models, "authors", space, progress=step)
    if as_json:
        _emit_json({"preset": "authors", "rows": rows})
        return
    t = Table(title="The authors' code's optima against this project's `authors` preset")
    cols = ("model", "authors $/M", "die", "chips", "same point here", "x", "optimum here", "x")
    for col in (*cols, "die", "chips"):
        t.add_column(col, justify="left" if col == "model" else "right")
    for r in rows:
        a, pt, se = r["authors"], r["point"], r["search"]
        t.add_row(
            r["model"],
            f"{a['usd_per_million_tokens']:.4f}",
            f"{a['die_area_mm2']:.0f}",
            str(a["chips_per_server"]),
            "-" if pt is None else f"{pt['usd_per_million_tokens']:.4f}",
            "-" if pt is None else f"{r['point_ratio']:.3f}",
            "-" if se is None else f"{se['usd_per_million_tokens']:.4f}",
            "-" if se is None else f"{r['search_ratio']:.3f}",
            "-" if se is None else f"{se['die_area_mm2']:.0f}",
            "-" if se is None else str(se["chips_per_server"]),
        )
    out.print(t)


@app.command()
def reproduce(
    out_dir: Annotated[Path, typer.Option("--out", help="Output directory.")],
    quick: Annotated[bool, typer.Option("--quick", help="A reduced space (< 60 s).")] = False,
    preset: PresetOpt = "isca24",
    sparsity: Annotated[float | None, typer.Option("--sparsity", help="Zero fraction.")] = None,
    sparse_format: Annotated[str | None, typer.Option("--sparse-format")] = None,
    index_bits: IndexBitsOpt = None,
    workload: WorkloadOpt = None,
    slo: SloOpt = None,
    attribute: Annotated[
        list[str] | None,
        typer.Option(
            "--attribute",
            help="Model of the attribution walk (repeat; default gpt3; 'none' for no walk).",
        ),
    ] = None,
) -> None:
    """The whole evaluation on defaults: phase 1, phase 2 for the eight paper models and the 2026
    models, the GPU/TPU comparison, the shared design, sparsity, the design studies, the
    context-length study, validation; figures, DIR/report.html and DIR/summary.json."""
    from chipletcloud.report.outdir import check_out_dir
    from chipletcloud.report.reproduce import STEPS
    from chipletcloud.report.reproduce import reproduce as run_reproduce
    from chipletcloud.sparsity.formats import FORMATS

    check_out_dir(out_dir)
    _check_fraction("sparsity", sparsity)
    _check_index_bits(index_bits)
    if sparse_format is not None and sparse_format not in FORMATS:
        raise InputError("sparse_format", sparse_format, ", ".join(FORMATS))
    wl = _request_workload(workload)
    slo_ = _slo(slo)

    t0 = time.perf_counter()
    with _progress(STEPS, "reproduce", True) as step:
        summary = run_reproduce(
            out_dir,
            preset=preset,
            quick=quick,
            progress=step,
            workload={
                "sparsity": sparsity,
                "sparse_format": sparse_format,
                "index_bits": index_bits,
            },
            attribute_models=_attribute_models(attribute),
            request_workload=wl,
            slo=slo_,
        )
    elapsed = time.perf_counter() - t0
    s = summary["compare"]["summary"]
    table = Table(title="TCO/token improvement of Chiplet Cloud (best over the models; paper)")
    table.add_column("against")
    table.add_column("this run", justify="right")
    table.add_column("geomean", justify="right")
    table.add_column("paper", justify="right")
    for key, label in (
        ("rented_gpu", "rented A100"),
        ("rented_tpu", "rented TPU v4"),
        ("fabricated_gpu", "fabricated A100"),
        ("fabricated_tpu", "fabricated TPU"),
    ):
        if key in s:
            table.add_row(
                label, f"{s[key]:.1f}x", f"{s[key + '_geomean']:.1f}x", f"{s[key + '_paper']}x"
            )
    out.print(table)
    die = summary["studies"]["die_size"]
    if die.get("optimum_mm2"):
        lo, hi = die["optimum_mm2"]
        out.print(
            f"TCO-optimal die size for {die['model']}: {lo}-{hi} mm2 "
            f"({die['optimum_die_area_mm2']:.0f} mm2; the paper: 100-200 mm2)"
        )
    sets = summary.get("model_sets") or {}
    n_models = len({*summary["optimal"], *(m for v in sets.values() for m in v["models"])})
    out.print(
        f"wrote {out_dir / 'report.html'} and {out_dir / 'summary.json'} "
        f"in {elapsed:.1f} s ({n_models} models{', quick' if quick else ''})"
    )
    if "bands" in summary["compare"]:
        _print_bands(summary["compare"])


def _attribute_models(names: list[str] | None) -> tuple[str, ...]:
    """``reproduce --attribute``: the models named (default gpt3), none for ``none``."""
    from chipletcloud.report.reproduce import ATTRIBUTE_MODELS

    if not names:
        return ATTRIBUTE_MODELS
    return () if any(n.lower() == "none" for n in names) else tuple(names)


@app.command()
def query(
    sql: Annotated[str, typer.Argument(help="DuckDB SQL; tables are the run's Parquet files.")],
    results: Annotated[Path, typer.Option("--results", help="A run directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Run one read-only DuckDB SELECT over a run's Parquet tables. Each file is a table named
    after it (servers, <model>_pareto for evaluate, pareto_<model> for reproduce's fronts,
    study_*, sparsity, validation, compare, ...); names that collide (two runs in one folder)
    get their folders in front (run1_servers, run2_servers). No other file can be read or
    written; --json prints NaN and infinities as null."""
    from rich.text import Text

    from chipletcloud.report.query import cell_text, json_document, run_query

    cols, rows = run_query(results, sql)
    if as_json:
        doc = json_document(cols, rows)
        sys.stdout.write(json.dumps(doc, sort_keys=True, allow_nan=False) + "\n")
        return
    t = Table()
    for c in cols:
        t.add_column(Text(c), overflow="fold")
    for r in rows:
        t.add_row(*[Text(cell_text(v)) for v in r])
    out.print(t)


@presets_app.command("list")
def presets_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """The built-in presets and what each is for."""
    from chipletcloud.config import load_preset, preset_names

    rows = [
        {"name": n, "description": " ".join(load_preset(n).description.split())}
        for n in preset_names()
    ]
    if as_json:
        _emit_json({"presets": rows})
        return
    t = Table(title="presets")
    t.add_column("name")
    t.add_column("description")
    for r in rows:
        t.add_row(r["name"], r["description"])
    out.print(t)


@presets_app.command("show")
def presets_show(
    name: Annotated[str, typer.Argument(help="A built-in preset name or a preset .yaml path.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Every resolved constant of a preset with its unit and source, the derived hop latencies
    (``link.chip.hop_latency_s``, ``link.server.hop_latency_s``) and the modelling choices."""
    from chipletcloud.config import preset_constants, resolve

    params = resolve(name)
    doc = {
        "preset": params.preset.name,
        "description": " ".join(params.preset.description.split()),
        "cards": {
            g: getattr(params.preset, g) for g in ("tech", "server", "tco", "thermal", "link")
        },
        "choices": params.choices.model_dump(),
        "constants": preset_constants(params),
    }
    if as_json:
        _emit_json(doc)
        return
    t = Table(title=f"preset {doc['preset']}: {doc['description'][:100]}")
    for col in ("constant", "value", "unit", "source"):
        t.add_column(col, overflow="fold")
    for k, q in doc["constants"].items():
        t.add_row(k, f"{q['value']:.6g}", q["unit"], q["source"][:90])
    out.print(t)
    out.print("choices: " + ", ".join(f"{k}={v}" for k, v in doc["choices"].items()))


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs the app, turning bad input into one line and exit code 2."""
    import warnings

    from typer._click import exceptions as cx

    cmd = typer.main.get_command(app)
    shown = warnings.showwarning

    def one_line(message, category, *args, **kwargs):  # our approximations: one line each
        if category.__module__.startswith("chipletcloud"):
            err.print(f"warning: {message}", markup=False, highlight=False, soft_wrap=True)
        else:
            shown(message, category, *args, **kwargs)

    warnings.showwarning = one_line
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
    except typer.Abort:
        err.print("aborted", markup=False)
        return 130
    except KeyboardInterrupt:
        err.print(
            "interrupted: results are written only when a command finishes; hardware and "
            "evaluate with --resume keep their finished shards, so the same command with "
            "--resume continues where it stopped",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        return 130
    except typer.Exit as exc:
        return int(exc.exit_code)
    finally:
        warnings.showwarning = shown
    return int(rv) if isinstance(rv, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
