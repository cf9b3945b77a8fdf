"""What one scheduler iteration costs on a mapped system: the machine under continuous batching.

A serving system with iteration-level scheduling (Orca, OSDI 2022; vLLM, SOSP 2023) runs, one
after the other, *iterations*: a decode step of every running sequence with newly admitted
prompts (whole, or in chunks: Sarathi-Serve, OSDI 2024) riding along (vLLM's V1 engine and
SGLang run such mixed batches), or, in the older prefill-first scheme, a prefill of newly
admitted prompts between decode steps. This module tabulates what such an iteration costs on
one mapping of a design or device, from the static simulator
(:func:`chipletcloud.perf.analytic.simulate`); the scheduling and queueing built on top live in
:mod:`chipletcloud.perf.serving` (the analytic model) and :mod:`chipletcloud.perf.serving_des`
(the request-level event simulation), which both use these tables and nothing else of the
hardware.

The machine rules (docs/serving.md#the-machine):

* **decode step** of ``b`` running sequences: ``decode_s(b)``, the simulator's time per output
  token at batch ``b`` split into ``n = min(pp, b)`` micro-batches of ``ceil(b / n)`` sequences
  (the pipeline is kept as full as the batch allows), at the workload's mean in-flight context
  (each sequence of ``g`` output tokens spends ``g - 1`` decode steps at contexts ``p + 1 ..
  p + g - 1``; the mean over all decode steps is ``E[(g - 1)(p + g / 2)] / E[g - 1]``);
* **prefill** of prompts ``p_1 .. p_k``, one micro-batch each, through ``pp`` stages:
  ``sum_i s(p_i) + (pp - 1) max_i s(p_i) + request overhead``, where ``s(x)`` is one stage's
  prefill time of an ``x``-token prompt (the pipeline's fill by the largest, then one stage slot
  each);
* **mixed step** (the default scheduler's iteration, whole prompts or chunks): a decode step of
  ``b`` sequences plus ``x`` prompt tokens (:func:`mixed_step_s`). The prompt tokens ride in the
  decode step's ``n = min(pp, b)`` micro-batches and share their weight reads, so they add their
  compute, ``c(x)`` a stage (the stage's prefill time of ``x`` tokens with memory infinitely
  fast, less that of one token: collectives included, kernel launches not), times ``pp / n``
  (the pipeline's slots a stage works through), less the step's memory slack (the decode step's
  time with compute infinitely fast minus that with memory infinitely fast, when positive: a
  memory-bound step has idle compute): ``decode_s(b) + max(pp/n c(x) - slack(b), 0)`` + the
  request overhead. With nothing decoding the prompt runs alone: ``pp s(x)`` + the overhead;
* **KV budget**: the tokens of KV cache the mapping's memory holds beside its weights
  (``kv_tokens``, summed over sequences: a chip with a split KV cache holds ``1 / r`` of the
  sequences); a running sequence holds its prompt plus its generated tokens;
* **max batch**: the scheduler's cap on running sequences (the mapping's batch).

Units: seconds, tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from chipletcloud.perf.analytic import memory_per_chip, simulate
from chipletcloud.perf.workload import LayerShape, System, Workload

#: Decode batch sizes tabulated for the analytic model (linear interpolation in between).
BATCH_GRID = np.unique(
    np.concatenate([np.arange(1, 9), np.round(2.0 ** np.arange(3, 20.01, 0.5))])
).astype(float)
#: Prompt tokens per micro-batch tabulated for the prefill stage time.
TOKEN_GRID = np.unique(np.round(2.0 ** np.arange(0, 20.01, 0.5))).astype(float)


@dataclass(frozen=True)
class LengthStats:
    """A workload's request lengths as a sample (input ``p`` and output ``g`` tokens, int arrays
    of equal length) and the arrival process's coefficient of variation of the gaps."""

    p: np.ndarray
    g: np.ndarray
    arrival_cv: float = 1.0

    @classmethod
    def of(cls, workload, n: int = 20_000, seed: int = 0) -> LengthStats:
        """From a :class:`chipletcloud.models.requests.RequestWorkload` (a trace: its own
        lengths; a distribution: ``n`` samples drawn with ``seed``)."""
        ins, outs, _ = workload.requests(n, 1.0, seed)
        return cls(
            np.asarray(ins, np.int64), np.asarray(outs, np.int64), float(workload.arrivals.cv)
        )

    @classmethod
    def of_name(cls, name: str, n: int = 20_000, seed: int = 0) -> LengthStats:
        """:meth:`of` a workload by name or path (:func:`chipletcloud.models.requests.
        load_workload`)."""
        from chipletcloud.models.requests import load_workload

        return cls.of(load_workload(name), n, seed)

    @property
    def mean_p(self) -> float:
        return float(self.p.mean())

    @property
    def mean_g(self) -> float:
        return float(self.g.mean())

    @property
    def decode_context(self) -> float:
        """Mean context of a decode step, E[(g - 1)(p + g / 2)] / E[g - 1] (module docstring)."""
        w = self.g - 1.0
        if w.sum() <= 0:
            return self.mean_p
        return float((w * (self.p + self.g / 2.0)).sum() / w.sum())


@dataclass(frozen=True)
class IterationCosts:
    """The machine of n mapping points (module docstring). Arrays have one row per point;
    ``decode_s`` is tabulated at ``batch_grid`` and ``prefill_stage_s`` at ``token_grid``."""

    batch_grid: np.ndarray  # (G,)
    decode_s: np.ndarray  # (n, G) seconds per decode step
    token_grid: np.ndarray  # (H,)
    prefill_stage_s: np.ndarray  # (n, H) seconds, one stage, one prompt of that many tokens
    pp: np.ndarray  # (n,)
    request_overhead_s: np.ndarray  # (n,)
    max_batch: np.ndarray  # (n,) running sequences at most
    kv_tokens: np.ndarray  # (n,) KV budget, tokens over all sequences (inf: not limited)
    feasible: np.ndarray  # (n,) weights fit and one mean request's KV fits
    #: what :meth:`machine` needs to tabulate a point's decode steps exactly
    mapped: tuple | None = None
    #: (n, G) the decode step's memory slack, seconds (None: 0, every step compute-bound)
    slack_s: np.ndarray | None = None
    #: (n, H) c(x): a stage's compute of x prompt tokens, seconds (None: the prefill time s(x))
    prefill_compute_s: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.pp)

    def take(self, idx) -> IterationCosts:
        """The points ``idx``."""
        return replace(
            self,
            decode_s=self.decode_s[idx],
            prefill_stage_s=self.prefill_stage_s[idx],
            pp=self.pp[idx],
            request_overhead_s=self.request_overhead_s[idx],
            max_batch=self.max_batch[idx],
            kv_tokens=self.kv_tokens[idx],
            feasible=self.feasible[idx],
            slack_s=None if self.slack_s is None else self.slack_s[idx],
            prefill_compute_s=None
            if self.prefill_compute_s is None
            else self.prefill_compute_s[idx],
            mapped=None
            if self.mapped is None
            else (
                self.mapped[0].take(np.asarray(idx)),
                *self.mapped[1:4],
                {k: v[idx] for k, v in self.mapped[4].items()},
            ),
        )

    def machine(self, i: int) -> Machine:
        """Point ``i`` as a :class:`Machine` (decode steps at every integer batch, exactly)."""
        system, shape, wl_dec, lm, cols = self.mapped
        bmax = int(self.max_batch[i])
        b = np.arange(1, bmax + 1, dtype=float)
        rows = np.full(bmax, i, dtype=np.int64)
        kw = {k: v[rows] for k, v in cols.items()}
        dec = decode_step_s(system.take(rows), shape, wl_dec, batch=b, latency_model=lm, **kw)
        return Machine(
            decode_s=dec,
            token_grid=self.token_grid,
            prefill_stage_s=self.prefill_stage_s[i],
            pp=int(self.pp[i]),
            request_overhead_s=float(self.request_overhead_s[i]),
            max_batch=bmax,
            kv_tokens=float(self.kv_tokens[i]),
            batch_grid=self.batch_grid,
            grid_decode_s=self.decode_s[i],
            grid_slack_s=None if self.slack_s is None else self.slack_s[i],
            prefill_compute_s=None if self.prefill_compute_s is None else self.prefill_compute_s[i],
        )

    def decode_time(self, b) -> np.ndarray:
        """Seconds of a decode step of ``b`` sequences (array broadcast against the points;
        linear between tabulated batches, b >= 1)."""
        return _interp_rows(self.batch_grid, self.decode_s, np.maximum(b, 1.0))

    def stage_prefill(self, tokens) -> np.ndarray:
        """s(x): one stage's prefill seconds of an ``x``-token prompt (linear between tabulated
        prompt lengths; 0 for x <= 0)."""
        x = np.asarray(tokens, float)
        s = _interp_rows(self.token_grid, self.prefill_stage_s, np.maximum(x, 1.0))
        return np.where(x > 0, s, 0.0)

    def mixed_time(self, b, x) -> np.ndarray:
        """Seconds of a mixed step of ``b`` decodes and ``x`` prompt tokens per point
        (:func:`mixed_step_s`; arrays broadcast against the points, (n,) or (n, k))."""
        b, x = np.asarray(b, float), np.asarray(x, float)
        two = max(b.ndim, x.ndim) == 2

        def col(v):
            return v[:, None] if two else v

        bb = np.maximum(b, 1.0)
        d = self.decode_time(bb)
        slack = 0.0 if self.slack_s is None else _interp_rows(self.batch_grid, self.slack_s, bb)
        xx = np.maximum(x, 1.0)
        sx = _interp_rows(self.token_grid, self.prefill_stage_s, xx)
        cx = (
            sx
            if self.prefill_compute_s is None
            else _interp_rows(self.token_grid, self.prefill_compute_s, xx)
        )
        return mixed_step_s(d, slack, cx, sx, col(self.pp), b, x, col(self.request_overhead_s))


def _interp_rows(xp: np.ndarray, fp: np.ndarray, x) -> np.ndarray:
    """Row-wise linear interpolation: ``fp[i]`` tabulated at the shared ``xp``, evaluated at
    ``x`` (shape (n,) or (n, k)); extrapolated linearly beyond the grid's ends."""
    x = np.asarray(x, float)
    n = fp.shape[0]
    xx = np.broadcast_to(x if x.ndim > 1 else x.reshape(-1, 1), (n, max(x.shape[-1], 1)))
    if x.ndim <= 1 and x.size == n:
        xx = x.reshape(n, 1)
    j = np.clip(np.searchsorted(xp, xx, side="right") - 1, 0, len(xp) - 2)
    x0, x1 = xp[j], xp[j + 1]
    rows = np.arange(n).reshape(-1, 1)
    y0, y1 = fp[rows, j], fp[rows, j + 1]
    y = y0 + (y1 - y0) * (xx - x0) / (x1 - x0)
    return y[:, 0] if (x.ndim <= 1 and x.size == n) or x.ndim == 0 else y


def _repeat(system: System, n: int, k: int) -> System:
    return system.take(np.repeat(np.arange(n), k))


def decode_step_s(
    system: System,
    shape: LayerShape,
    wl: Workload,
    *,
    servers,
    pp,
    tp,
    kv_split,
    batch,
    latency_model: str,
) -> np.ndarray:
    """The decode-step time at integer ``batch`` (arrays aligned with ``system``'s rows):
    ``n = min(pp, b)`` micro-batches of ``ceil(b / n)`` sequences (module docstring)."""
    b = np.maximum(np.asarray(batch, float), 1.0)
    pp = np.asarray(pp, float)
    n_mb = np.minimum(pp, b)
    m = np.ceil(b / n_mb - 1e-9)
    with np.errstate(divide="ignore", invalid="ignore"):
        sim = simulate(
            system, shape, wl, servers=servers, pp=pp, batch=n_mb * m, micro_batch=m,
            latency_model=latency_model, tp=tp, kv_split=kv_split,
        )  # fmt: skip
    return np.asarray(sim["tpot_s"], float)


def iteration_costs(
    system: System,
    shape: LayerShape,
    wl: Workload,
    stats: LengthStats,
    *,
    servers,
    pp,
    tp,
    kv_split,
    max_batch,
    latency_model: str = "isca24",
    batch_grid: np.ndarray = BATCH_GRID,
    token_grid: np.ndarray = TOKEN_GRID,
) -> IterationCosts:
    """The machine of each point (``system`` rows aligned with the mapping arrays)."""
    n = len(system)
    one = np.ones(n)
    servers, pp, tp, kv_split, max_batch = (
        np.asarray(a, float) * one for a in (servers, pp, tp, kv_split, max_batch)
    )
    G, H = len(batch_grid), len(token_grid)
    ctx = stats.decode_context
    wl_dec = replace(wl, prompt_tokens=stats.mean_p, output_tokens=2.0 * (ctx - stats.mean_p))
    rep = {
        k: np.repeat(v, G)
        for k, v in dict(servers=servers, pp=pp, tp=tp, kv_split=kv_split).items()
    }
    sys_g = _repeat(system, n, G)
    fast_mem = replace(sys_g, mem_bw=np.full(n * G, np.inf))
    fast_math = replace(sys_g, flops=np.full(n * G, np.inf))
    dec, dec_c, dec_m = (
        decode_step_s(
            sy, shape, wl_dec, batch=np.tile(batch_grid, n), latency_model=latency_model, **rep
        ).reshape(n, G)
        for sy in (sys_g, fast_mem, fast_math)
    )
    slack = np.maximum(dec_m - dec_c, 0.0)  # a memory-bound step's idle compute
    # one stage's prefill of one prompt of x tokens: (prefill_s - overhead) / pp at batch 1, and
    # its compute (memory infinitely fast) beyond that of one token
    pre = np.empty((n, H))
    pre_c = np.empty((n, H))
    sys_c = replace(system, mem_bw=np.full(n, np.inf))
    for j, x in enumerate(token_grid):
        wl_pre = replace(wl, prompt_tokens=float(x), output_tokens=1)
        for out, sy in ((pre, system), (pre_c, sys_c)):
            with np.errstate(divide="ignore", invalid="ignore"):
                sim = simulate(
                    sy, shape, wl_pre, servers=servers, pp=pp, batch=one, micro_batch=one,
                    latency_model=latency_model, tp=tp, kv_split=kv_split,
                )  # fmt: skip
            out[:, j] = (sim["prefill_s"] - system.request_overhead_s) / pp
    pre_c = np.maximum(pre_c - pre_c[:, :1], 0.0)
    # KV budget: bytes the busiest chip has beside its weights / one token's KV on it, times
    # the r chips that share a KV head's sequences
    wl_tok = replace(wl, prompt_tokens=1, output_tokens=0)
    w_chip, kv_tok = memory_per_chip(
        system, shape, wl_tok, pp=pp, tp=tp, batch=one, kv_split=kv_split
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        sim1 = simulate(
            system, shape, wl_tok, servers=servers, pp=pp, batch=one, micro_batch=one,
            latency_model=latency_model, tp=tp, kv_split=kv_split,
        )  # fmt: skip
    r = np.asarray(sim1["kv_split_chips"], float)
    free = system.mem_bytes - w_chip
    with np.errstate(divide="ignore", invalid="ignore"):
        kv_tokens = np.where(kv_tok > 0, np.floor(free / kv_tok) * r, np.inf)
    feasible = (free > 0) & (kv_tokens >= stats.mean_p + stats.mean_g) & (tp >= 1)
    return IterationCosts(
        batch_grid=np.asarray(batch_grid, float),
        decode_s=dec,
        token_grid=np.asarray(token_grid, float),
        prefill_stage_s=pre,
        pp=pp,
        request_overhead_s=np.asarray(system.request_overhead_s, float) * one,
        max_batch=max_batch,
        kv_tokens=kv_tokens,
        feasible=feasible,
        slack_s=slack,
        prefill_compute_s=pre_c,
        mapped=(
            system,
            shape,
            wl_dec,
            latency_model,
            dict(servers=servers, pp=pp, tp=tp, kv_split=kv_split),
        ),
    )


@dataclass(frozen=True)
class Machine:
    """ONE point's machine, for the request-level event simulation: the decode-step time at
    every integer batch 1 .. ``max_batch`` computed exactly (not interpolated), the prefill stage
    time s(x) as :meth:`IterationCosts.stage_prefill`, and the point's limits."""

    decode_s: np.ndarray  # (max_batch,) seconds at batch 1 .. max_batch
    token_grid: np.ndarray
    prefill_stage_s: np.ndarray  # (H,)
    pp: int
    request_overhead_s: float
    max_batch: int
    kv_tokens: float

    #: the analytic grid of the point (for steps beyond ``max_batch`` rows), its memory slack
    #: and the prompt compute c(x) (:class:`IterationCosts`; None: no slack, c = s)
    batch_grid: np.ndarray | None = None
    grid_decode_s: np.ndarray | None = None
    grid_slack_s: np.ndarray | None = None
    prefill_compute_s: np.ndarray | None = None

    def decode_time(self, b: int) -> float:
        """Seconds of a step of ``b`` rows: exact up to ``max_batch``, interpolated beyond."""
        n = len(self.decode_s)
        if b <= n:
            return float(self.decode_s[b - 1])
        if self.batch_grid is not None:
            return float(_interp_rows(self.batch_grid, self.grid_decode_s[None, :], [b])[0])
        slope = self.decode_s[-1] - self.decode_s[-2] if n > 1 else 0.0  # linear beyond
        return float(self.decode_s[-1] + slope * (b - n))

    def stage_prefill(self, tokens: float) -> float:
        if tokens <= 0:
            return 0.0
        return float(np.interp(tokens, self.token_grid, self.prefill_stage_s))

    def prefill_time(self, prompts) -> float:
        """Seconds to prefill prompts of these lengths, one micro-batch each (module
        docstring)."""
        if not len(prompts):
            return 0.0
        s = [self.stage_prefill(x) for x in prompts]
        return sum(s) + (self.pp - 1) * max(s) + self.request_overhead_s

    def chunked_time(self, b: int, tokens: float) -> float:
        """Seconds of a mixed iteration: a decode step of ``b`` sequences with ``tokens``
        prompt tokens riding along (:func:`mixed_step_s`)."""
        d = self.decode_time(b) if b > 0 else 0.0
        if tokens <= 0:
            return d
        slack = 0.0
        if self.grid_slack_s is not None and b > 0:
            slack = float(np.interp(b, self.batch_grid, self.grid_slack_s))
        sx = self.stage_prefill(tokens)
        cx = sx
        if self.prefill_compute_s is not None:
            cx = float(np.interp(max(tokens, 1.0), self.token_grid, self.prefill_compute_s))
        return float(mixed_step_s(d, slack, cx, sx, self.pp, b, tokens, self.request_overhead_s))


def mixed_step_s(d, slack, cx, sx, pp, b, x, overhead):
    """The machine's mixed step (module docstring), arrays broadcast: ``d`` the decode step of
    ``b`` sequences, ``slack`` its memory slack, ``cx`` and ``sx`` a stage's compute and prefill
    time of the ``x`` prompt tokens, ``pp`` stages, ``overhead`` a request's fixed cost."""
    b = np.asarray(b, float)
    x = np.asarray(x, float)
    n = np.maximum(np.minimum(pp, b), 1.0)  # the decode step's micro-batches
    ride = d + np.maximum(np.maximum(pp, n) / n * cx - slack, 0.0) + overhead
    alone = pp * sx + overhead
    step = np.where(b >= 1, ride, alone)
    return np.where(x > 0, step, np.where(b >= 1, d, 0.0))
