"""Request-level discrete-event simulation of an LLM server with iteration-level (continuous)
batching: the independent check of the analytic serving model (:mod:`chipletcloud.perf.serving`,
docs/serving.md).

The hardware enters only through a :class:`chipletcloud.perf.iteration.Machine` (one mapped
point): ``decode_time(b)``, ``prefill_time(prompts)``, ``chunked_time(b, tokens)``,
``max_batch`` and ``kv_tokens``. Everything else here is scheduling and queueing, simulated
request by request and iteration by iteration; no queueing formula is used, so the analytic
model and this simulation share nothing but the machine.

What is modelled
----------------
* **Arrivals.** Open loop: request ``i`` arrives at ``arrival_s[i]`` (sorted). Closed loop
  (``concurrency=N``): ``N`` clients all send a request at ``t = 0`` and each sends the next one
  (the next lengths of the arrays, in order) the instant its previous one finishes. Request
  indices are in arrival order in both cases.
* **Iterations.** The server runs one iteration after the other; decisions are taken at the
  iteration boundaries only (a request arriving during an iteration waits for its end). When
  nothing is running or admissible the server idles until the next arrival.
* **Prefill-first** (``scheduler="prefill-first"``; vLLM's V0 default, FCFS). At a boundary, waiting
  requests are admitted in FCFS order while ``running + admitted < max_batch`` and the free KV
  (``kv_tokens`` minus what is held) is at least the request's context (its prompt ``p``, plus
  the tokens it already generated if it is a preempted request being recomputed); admission
  stops at the first request that does not fit (no skipping ahead). If any were admitted, the
  iteration is their prefill, ``prefill_time([contexts])``; at its end each emits one token (its
  first, or for a recomputed one its next), then holds context + 1 KV tokens and joins the
  running set (a request with all its ``g`` tokens emitted finishes instead). Otherwise the
  iteration is a decode step of the ``b`` running sequences, ``decode_time(b)``; at its end each
  emits one token and its KV grows by one; a request that has emitted its ``g`` tokens finishes
  and frees its KV.
* **Preemption by recompute.** Before a decode step, while the KV held plus ``b`` exceeds
  ``kv_tokens``, the most recently admitted running request is preempted: its KV is freed, it is
  put at the FRONT of the waiting queue and it keeps the tokens it generated (they are
  re-prefilled with its prompt when it is readmitted).
* **Mixed** (the default; vLLM V1 / SGLang mixed batches; with ``chunk_tokens=C``
  Sarathi-Serve-style chunked prefill, without it no token budget). Each iteration runs the
  ``b`` decoding sequences plus up to ``C - b`` prompt tokens of the requests in prefill (in FCFS
  order: first the partly prefilled ones, then newly admitted waiting requests); a prompt may be
  split over several iterations. Admission into prefill needs ``running + prefilling <
  max_batch`` and free KV (beside what is held and reserved and the ``b`` tokens the decodes
  add in this iteration) for the whole context, which is reserved at admission. The iteration
  costs ``chunked_time(b, tokens)``; a request whose prompt completes in it emits its first
  token at its end and decodes from the next iteration on. Before each iteration the same
  preemption rule applies (KV held and reserved + ``b`` > ``kv_tokens``; the victim may be a
  request in prefill, whose progress is lost).
* **Measurement.** All requests are simulated; the statistics use only the middle ones: the first
  ``warmup`` fraction (by arrival order) and the last 10 % are dropped. The throughput counts
  every output token (of any request) emitted by an iteration that ends inside the window
  ``(arrival of the first measured request, arrival of the last measured request]`` (requests
  still arriving: the drain after the last arrivals would bias it down; when all measured
  requests arrive at once, up to the last one's completion), divided by the window's length.

Units: seconds, tokens (rates per second).
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from chipletcloud.errors import InputError

#: Fraction of the requests (the last ones, by arrival) left out of the statistics.
TAIL_FRACTION = 0.1

_METRICS = ("ttft", "tpot", "e2e")

# request states
_NEW, _WAIT, _PREFILL, _RUN, _DONE = 0, 1, 2, 3, 4


@dataclass
class ServingDesResult:
    """What :func:`simulate_requests` measured (times in seconds, rates per second)."""

    ttft_s: np.ndarray  # per measured request: arrival -> first output token
    tpot_s: np.ndarray  # per measured request with g >= 2: (finish - first token) / (g - 1)
    e2e_s: np.ndarray  # per measured request: arrival -> last token
    output_tokens_per_s: float  # output tokens emitted in the window / window length
    requests_per_s: float  # requests (any) completed in the window / window length
    preemptions: int  # preemptions by recompute over the whole run
    mean_running: float  # time-average of the admitted sequences (in prefill or decoding), window
    completed: int  # measured requests (all complete)
    max_running: int = 0  # most admitted sequences in any iteration, whole run
    total_output_tokens: int = 0  # output tokens emitted over the whole run (= sum of g)
    window_s: float = 0.0  # length of the measurement window, seconds
    peak_kv_tokens: float = 0.0  # most KV tokens held at the end of a decode step, whole run
    iterations: int = 0  # scheduler iterations, whole run

    def percentile(self, metric: str, pct: float) -> float:
        """The ``pct``-th percentile (0..100) of ``metric`` (``ttft``, ``tpot`` or ``e2e``), in
        seconds; nan when no measured request has that metric."""
        if metric not in _METRICS:
            raise InputError("metric", metric, "one of " + ", ".join(_METRICS))
        if not 0.0 <= float(pct) <= 100.0:
            raise InputError("pct", pct, "a percentile in [0, 100]")
        a = getattr(self, f"{metric}_s")
        return float(np.percentile(a, pct)) if a.size else float("nan")

    def summary(self) -> dict:
        """p50/p90/p99 and mean of each metric (``ttft_p50_s`` ... ``e2e_mean_s``, seconds), the
        throughputs (per second), preemptions, mean running batch and counts."""
        out: dict = {}
        for m in _METRICS:
            a = getattr(self, f"{m}_s")
            for q in (50, 90, 99):
                out[f"{m}_p{q}_s"] = self.percentile(m, q)
            out[f"{m}_mean_s"] = float(a.mean()) if a.size else float("nan")
        out.update(
            output_tokens_per_s=self.output_tokens_per_s,
            requests_per_s=self.requests_per_s,
            preemptions=self.preemptions,
            mean_running=self.mean_running,
            max_running=self.max_running,
            completed=self.completed,
            window_s=self.window_s,
        )
        return out


def _lengths(name: str, x) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 1 or a.size == 0:
        raise InputError(name, x, "a non-empty 1-D array of token counts")
    if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
        raise InputError(name, x, "integer token counts >= 1")
    af = a.astype(float)
    if not np.all(np.isfinite(af)) or np.any(af != np.floor(af)) or np.any(af < 1):
        raise InputError(name, x, "integer token counts >= 1")
    return af.astype(np.int64)


def _positive_int(name: str, x, allowed: str) -> int:
    try:
        ok = not isinstance(x, bool) and float(x).is_integer() and x >= 1
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InputError(name, x, allowed)
    return int(x)


def _validate(machine, input_tokens, output_tokens, arrival_s, concurrency, chunk_tokens, warmup):
    p = _lengths("input_tokens", input_tokens)
    g = _lengths("output_tokens", output_tokens)
    n = p.size
    if g.size != n:
        raise InputError("output_tokens", g.size, f"as many entries as input_tokens ({n})")
    if (arrival_s is None) == (concurrency is None):
        raise InputError(
            "arrival_s/concurrency",
            (arrival_s is not None, concurrency is not None),
            "exactly one of arrival_s (open loop) and concurrency (closed loop)",
        )
    arr = None
    if arrival_s is not None:
        arr = np.asarray(arrival_s, float)
        if arr.ndim != 1 or arr.size != n:
            raise InputError("arrival_s", arrival_s, f"a 1-D array of {n} times (seconds)")
        if not np.all(np.isfinite(arr)) or np.any(arr < 0):
            raise InputError("arrival_s", arrival_s, "finite times >= 0 (seconds)")
        if np.any(np.diff(arr) < 0):
            raise InputError("arrival_s", arrival_s, "sorted (non-decreasing) times")
    else:
        concurrency = _positive_int("concurrency", concurrency, "an integer >= 1 (clients)")
    if chunk_tokens is not None:
        chunk_tokens = _positive_int(
            "chunk_tokens", chunk_tokens, "None or an integer >= 1 (tokens)"
        )
    try:
        ok = 0.0 <= float(warmup) < 1.0 - TAIL_FRACTION
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InputError("warmup", warmup, f"a fraction in [0, {1.0 - TAIL_FRACTION:g})")
    if int(machine.max_batch) < 1:
        raise InputError("machine.max_batch", machine.max_batch, "an integer >= 1")
    kv = float(machine.kv_tokens)
    if math.isnan(kv):
        raise InputError("machine.kv_tokens", kv, "a KV budget in tokens (inf: unlimited)")
    # a request alone must fit: its prompt at admission, prompt + g before its last decode step
    need = np.where(g >= 2, p + g, p)
    if np.any(need > kv):
        i = int(np.argmax(need > kv))
        raise InputError(
            "input_tokens+output_tokens",
            (int(p[i]), int(g[i])),
            f"requests whose KV (prompt + output tokens) fits in kv_tokens={kv:g}",
        )
    return p, g, arr, concurrency, chunk_tokens


def simulate_requests(
    machine,
    input_tokens,
    output_tokens,
    arrival_s=None,
    *,
    concurrency=None,
    chunk_tokens=None,
    warmup: float = 0.1,
    scheduler: str = "mixed",
) -> ServingDesResult:
    """Simulate requests of ``input_tokens`` prompt and ``output_tokens`` output tokens (int arrays
    of equal length) on ``machine`` (:class:`chipletcloud.perf.iteration.Machine`) under
    iteration-level batching (module docstring).

    Exactly one of ``arrival_s`` (open loop: sorted arrival times, seconds) and ``concurrency``
    (closed loop: that many clients) is given. ``scheduler``: "mixed" (default: prompts ride
    with the decode step, in chunks of ``chunk_tokens`` tokens an iteration when given, whole
    otherwise) or "prefill-first" (prefill iterations of whole prompts between decode steps).
    ``warmup``: fraction of the first requests left out of the statistics (the last 10 % are
    left out too).
    """
    if scheduler not in ("mixed", "prefill-first"):
        raise InputError("scheduler", scheduler, "mixed or prefill-first")
    if scheduler == "prefill-first" and chunk_tokens is not None:
        raise InputError("chunk_tokens", chunk_tokens, "chunks with the mixed scheduler only")
    p_arr, g_arr, arr_in, conc, chunk = _validate(
        machine, input_tokens, output_tokens, arrival_s, concurrency, chunk_tokens, warmup
    )
    if scheduler == "mixed" and chunk is None:
        chunk = 1 << 60  # whole prompts: no token budget
    n = int(p_arr.size)
    p = p_arr.tolist()
    g = g_arr.tolist()
    maxb = int(machine.max_batch)
    kv = float(machine.kv_tokens)
    closed = arr_in is None

    arrival = [0.0] * n
    first = [math.nan] * n
    finish = [math.nan] * n
    em = [0] * n  # tokens emitted (for a decoding request: as of its join, see base/join_d)
    state = [_NEW] * n
    aseq = [0] * n  # admission sequence number (newest admission: largest)
    join_d = [0] * n  # decode-step counter when the request joined the decode set
    remaining = [0] * n  # chunked: context tokens still to prefill

    if closed:
        n_start = min(conc, n)
        next_req = n_start  # next request a client sends
        waiting = deque(range(n_start))
        for r in range(n_start):
            state[r] = _WAIT
        ai = n
    else:
        arrival = arr_in.tolist()
        next_req = n
        waiting = deque()
        ai = 0  # next arrival not yet in the waiting queue

    # iteration log: start, end, tokens emitted, admitted sequences
    it_start: list[float] = []
    it_end: list[float] = []
    it_tok: list[int] = []
    it_res: list[int] = []

    t = 0.0
    d_steps = 0  # decode steps so far (a decoding request's emitted = em + d_steps - join_d)
    kv_used = 0.0  # KV tokens held and reserved by admitted requests
    peak_kv = 0.0
    nrun = 0  # requests in the decode set
    heap: list = []  # (decode step at which it finishes, aseq, request)
    stack: list = []  # (aseq, request) in admission order: preemption victims from the top
    prefilling: list[int] = []  # chunked: admitted, prompt not complete, FCFS order
    seq = 0
    done = 0
    preemptions = 0

    def emitted(r: int) -> int:
        if state[r] == _RUN:
            return em[r] + d_steps - join_d[r]
        return em[r]

    def complete(r: int) -> None:
        nonlocal done, next_req, kv_used
        state[r] = _DONE
        finish[r] = t
        kv_used -= p[r] + g[r]
        done += 1
        if closed and next_req < n:
            q = next_req
            next_req += 1
            arrival[q] = t
            state[q] = _WAIT
            waiting.append(q)

    def after_decode() -> None:
        """Finish the decoding requests whose last token came with decode step ``d_steps``."""
        nonlocal nrun
        while heap and heap[0][0] <= d_steps:
            _, s, r = heapq.heappop(heap)
            if state[r] != _RUN or aseq[r] != s:
                continue  # stale: preempted since
            em[r] = g[r]
            nrun -= 1
            complete(r)

    def prompt_done(r: int) -> None:
        """``r``'s (re)prefill completed at ``t``: it emits a token, then decodes or finishes."""
        nonlocal kv_used, nrun
        em[r] += 1
        kv_used += 1
        if math.isnan(first[r]):
            first[r] = t
        if em[r] >= g[r]:
            complete(r)
        else:
            state[r] = _RUN
            join_d[r] = d_steps
            nrun += 1
            heapq.heappush(heap, (d_steps + g[r] - em[r], aseq[r], r))

    def admit(r: int) -> int:
        nonlocal kv_used, seq
        waiting.popleft()
        need = p[r] + em[r]
        kv_used += need
        seq += 1
        aseq[r] = seq
        stack.append((seq, r))
        state[r] = _PREFILL
        return need

    def preempt() -> None:
        nonlocal kv_used, nrun, preemptions
        while True:
            s, r = stack.pop()
            if aseq[r] == s and state[r] in (_RUN, _PREFILL):
                break
        if state[r] == _RUN:
            em[r] = emitted(r)
            nrun -= 1
        else:
            prefilling.remove(r)
        kv_used -= p[r] + em[r]
        state[r] = _WAIT
        waiting.appendleft(r)
        preemptions += 1

    def log(t0: float, t1: float, tokens: int, resident: int) -> None:
        it_start.append(t0)
        it_end.append(t1)
        it_tok.append(tokens)
        it_res.append(resident)

    while done < n:
        while ai < n and arrival[ai] <= t:
            state[ai] = _WAIT
            waiting.append(ai)
            ai += 1
        if chunk is None:
            adm: list[int] = []
            ctx: list[int] = []
            while waiting and nrun + len(adm) < maxb:
                r = waiting[0]
                if kv - kv_used < p[r] + em[r]:
                    break
                ctx.append(admit(r))
                adm.append(r)
            if adm:
                dt = machine.prefill_time(ctx)
                log(t, t + dt, len(adm), nrun + len(adm))
                t += dt
                for r in adm:
                    prompt_done(r)
                continue
            if nrun:
                while kv_used + nrun > kv:
                    preempt()
                dt = machine.decode_time(nrun)
                log(t, t + dt, nrun, nrun)
                t += dt
                kv_used += nrun
                peak_kv = max(peak_kv, kv_used)
                d_steps += 1
                after_decode()
                continue
        else:
            while kv_used + nrun > kv:
                preempt()
            b = nrun
            budget = chunk - b
            plan: list[tuple[int, int]] = []
            tokens = 0
            for r in prefilling:
                if budget <= 0:
                    break
                take = min(remaining[r], budget)
                plan.append((r, take))
                budget -= take
                tokens += take
            while budget > 0 and waiting and b + len(prefilling) < maxb:
                r = waiting[0]
                if kv - kv_used - b < p[r] + em[r]:  # the decodes grow by b this iteration
                    break
                need = admit(r)
                remaining[r] = need
                prefilling.append(r)
                take = min(need, budget)
                plan.append((r, take))
                budget -= take
                tokens += take
            if b or tokens:
                completing = [r for r, take in plan if take == remaining[r]]
                dt = machine.chunked_time(b, tokens)
                log(t, t + dt, b + len(completing), b + len(prefilling))
                t += dt
                if b:
                    kv_used += b
                    peak_kv = max(peak_kv, kv_used)
                    d_steps += 1
                    after_decode()
                for r, take in plan:
                    remaining[r] -= take
                if completing:
                    del prefilling[: len(completing)]  # FCFS: the completed ones lead
                    for r in completing:
                        prompt_done(r)
                continue
        # nothing running or admissible: idle until the next arrival
        if ai < n:
            t = max(t, arrival[ai])
            continue
        raise RuntimeError("serving_des: stalled with requests left (scheduler invariant broken)")

    # -------- statistics over the measured requests
    lo = int(math.floor(float(warmup) * n))
    hi = n - int(math.floor(TAIL_FRACTION * n))
    arr_a = np.asarray(arrival)
    first_a = np.asarray(first)
    fin_a = np.asarray(finish)
    sl = slice(lo, hi)
    ttft = first_a[sl] - arr_a[sl]
    e2e = fin_a[sl] - arr_a[sl]
    gm = g_arr[sl]
    multi = gm >= 2
    tpot = (fin_a[sl][multi] - first_a[sl][multi]) / (gm[multi] - 1)
    # the window: from the first to the last measured arrival, while requests keep coming (the
    # drain after the last arrivals, when the batch empties, would bias the throughput down);
    # a window of one instant (all measured requests at once) runs to their last completion
    w0 = float(arr_a[lo])
    w1 = float(arr_a[hi - 1])
    if w1 <= w0:
        w1 = float(fin_a[sl].max())
    width = w1 - w0
    t_end = np.asarray(it_end)
    t_start = np.asarray(it_start)
    tok = np.asarray(it_tok, float)
    res = np.asarray(it_res, float)
    in_win = (t_end > w0) & (t_end <= w1)
    n_fin = int(np.count_nonzero((fin_a > w0) & (fin_a <= w1)))
    if width > 0:
        out_rate = float(tok[in_win].sum() / width)
        req_rate = n_fin / width
        overlap = np.clip(np.minimum(t_end, w1) - np.maximum(t_start, w0), 0.0, None)
        mean_running = float((res * overlap).sum() / width)
    else:
        out_rate = req_rate = mean_running = float("nan")
    return ServingDesResult(
        ttft_s=ttft,
        tpot_s=tpot,
        e2e_s=e2e,
        output_tokens_per_s=out_rate,
        requests_per_s=req_rate,
        preemptions=preemptions,
        mean_running=mean_running,
        completed=int(hi - lo),
        max_running=int(res.max()) if res.size else 0,
        total_output_tokens=int(tok.sum()),
        window_s=float(width),
        peak_kv_tokens=float(peak_kv),
        iterations=int(t_end.size),
    )
