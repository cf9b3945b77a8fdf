"""Continuous batching, analytically: steady state, TTFT / TPOT / end-to-end percentiles, and the
highest arrival rate that meets a service level, vectorised over mapping points.

The machine is :mod:`chipletcloud.perf.iteration` (what a decode step, a prefill and a chunked step
cost). The scheduler it models is iteration-level and prefill-first (vLLM's default; Kwon et al.,
SOSP 2023): at each iteration boundary the waiting requests are prefilled together, else every
running sequence decodes one token; at most ``Bcap`` sequences run, the smaller of the mapping's
batch and the KV budget over the mean in-flight context. docs/serving.md derives each formula;
the request-level event simulation (:mod:`chipletcloud.perf.serving_des`) checks them.

Steady state at an arrival rate lambda (requests/s), a mean-value model:

* ``T``, the mean time between two tokens of a running sequence, solves
  ``T = D(b) + E[prefill inserted between two decode steps]`` with ``b = min(1 + B, Bcap)`` the
  batch a running sequence sees (itself and, by Little's law, ``B = lambda (E[g] - 1) T`` others)
  and ``N = lambda T`` requests arriving per interval (Poisson): the inserted prefill is
  ``(1 - e^-N) ((pp - 1) s_max + overhead) + N E[s(p)]`` (the machine's prefill rule with one
  pipeline fill per prefill iteration);
* the system saturates when ``B`` reaches ``Bcap``: ``T_sat = D(Bcap) + prefill(N_sat)`` with
  ``N_sat = Bcap / (E[g] - 1)``, ``lambda_sat = Bcap / ((E[g] - 1) T_sat)`` (closed form);
* TTFT = the residual of the iteration in progress (uniform over ``T`` while the system is busy,
  busy with probability ``1 - e^-L``, ``L`` the mean number of requests in the system) + the wait
  for a free slot (Erlang C with ``Bcap`` servers in the Halfin-Whitt approximation, scaled by
  Allen-Cunneen's ``(ca^2 + cs^2) / 2``) + its own prefill iteration (its prompt, the ``N`` others
  that arrived in the same interval, one pipeline fill by the largest);
* TPOT of a request = ``T`` + the spread of its ``g - 1`` intervals (the inserted prefills, which
  average out over ``g - 1`` tokens, and the batch it runs in, ``1 + Poisson(B)``, which does not);
* E2E = TTFT + (g - 1) TPOT.

Percentiles are taken over equally weighted grids of the input and output lengths' quantiles
(:data:`GRID`) and of the residual and the normal spread. Chunked prefill (``chunk_tokens``): a
prompt of ``p`` tokens takes ``ceil(p / (C - b))`` iterations; each iteration carrying a chunk costs
``pp s(x) + overhead`` on top of the decode step.

Units: seconds, requests/s, tokens/s.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr, ndtri

from chipletcloud.errors import InputError
from chipletcloud.models.slo import Slo
from chipletcloud.perf.iteration import IterationCosts, LengthStats

#: Quantile grid sizes: input lengths, output lengths, residual, normal spread.
GRID = {"p": 48, "g": 48, "z": 8}
PCTS = (50, 90, 99)
_MIDS = {k: (np.arange(n) + 0.5) / n for k, n in GRID.items()}
_Z = ndtri(_MIDS["z"])


@dataclass(frozen=True)
class _Workload:
    """The length statistics the formulas use (from a :class:`LengthStats` sample)."""

    p_q: np.ndarray  # (kp,) input-length quantiles
    g_q: np.ndarray  # (kg,) output-length quantiles
    mean_p: float
    mean_g: float
    ctx: float  # mean in-flight context (KV held by a running sequence)
    cs2: float  # squared coefficient of variation of the output lengths
    ca2: float  # squared coefficient of variation of the arrival gaps

    @classmethod
    def of(cls, stats: LengthStats) -> _Workload:
        g = stats.g.astype(float)
        return cls(
            p_q=np.quantile(stats.p.astype(float), _MIDS["p"]),
            g_q=np.quantile(g, _MIDS["g"]),
            mean_p=stats.mean_p,
            mean_g=stats.mean_g,
            ctx=stats.decode_context,
            cs2=float(g.var() / g.mean() ** 2),
            ca2=float(stats.arrival_cv**2),
        )


def _sum_quantile(own: np.ndarray, resid: tuple, q, iters: int = 36) -> np.ndarray:
    """The q-quantiles (an array of m levels) of X + R per row, (n, m): X equally likely over
    the columns of ``own`` (n, k), R independent of it, 0 with probability w0, uniform on
    (0, a) with w1 and on (0, c) with w2 (``resid`` = (w0, w1, a, w2, c), arrays over the
    rows). Bisection on the CDF P(X + R <= t) = mean_k F_R(t - x_k)."""
    q = np.atleast_1d(np.asarray(q, float))
    w0, w1, a, w2, c = (np.asarray(v, float)[:, None, None] for v in resid)
    x = own[:, None, :]  # (n, 1, k)
    m = len(q)
    lo = np.repeat(own.min(axis=1)[:, None], m, axis=1)
    hi = np.repeat((own.max(axis=1) + np.maximum(a, c)[:, 0, 0])[:, None], m, axis=1)
    ia, ic = 1.0 / np.maximum(a, 1e-300), 1.0 / np.maximum(c, 1e-300)
    for _ in range(iters):
        t = (lo + hi) / 2
        y = t[:, :, None] - x  # (n, m, k)
        f = np.where(y >= 0, w0 + w1 * np.clip(y * ia, 0, 1) + w2 * np.clip(y * ic, 0, 1), 0.0)
        below = f.mean(axis=2) < q[None, :]
        lo, hi = np.where(below, t, lo), np.where(below, hi, t)
    return hi


SCHEDULERS = ("mixed", "prefill-first")


class ServingModel:
    """The analytic serving model of n mapping points (``costs``) under one workload
    (``stats``): ``scheduler`` "mixed" (new prompts ride with the decode step, whole or in
    chunks of ``chunk_tokens`` tokens an iteration) or "prefill-first" (prefill iterations
    between decode steps)."""

    def __init__(
        self,
        costs: IterationCosts,
        stats: LengthStats,
        chunk_tokens: int | None = None,
        scheduler: str = "mixed",
    ):
        if scheduler not in SCHEDULERS:
            raise InputError("scheduler", scheduler, " or ".join(SCHEDULERS))
        if scheduler == "prefill-first" and chunk_tokens is not None:
            raise InputError("chunk_tokens", chunk_tokens, "chunks with the mixed scheduler only")
        self.c = costs
        self.w = _Workload.of(stats)
        self.chunk = chunk_tokens
        self.mixed = scheduler == "mixed"
        w = self.w
        self.gm1 = max(w.mean_g - 1.0, 1e-9)
        self.bcap = np.maximum(np.minimum(costs.max_batch, np.floor(costs.kv_tokens / w.ctx)), 0)
        if chunk_tokens is not None:  # a chunk needs room beside the decode batch
            self.bcap = np.minimum(self.bcap, chunk_tokens - 1.0)
        n, kp = len(costs), len(w.p_q)
        self.s_p = costs.stage_prefill(np.broadcast_to(w.p_q, (n, kp)))  # (n, kp)
        self.es = self.s_p.mean(axis=1)
        self.ok = costs.feasible & (self.bcap >= 1)
        self.t_sat, self.rate_sat = self._saturation()

    def subset(self, idx) -> ServingModel:
        """The points ``idx`` as a model of their own (same workload and scheduler; the
        bisections shrink to the points still undecided)."""
        idx = np.asarray(idx)
        m = copy.copy(self)
        m.c = self.c.take(idx)
        for name in ("bcap", "s_p", "es", "ok", "t_sat", "rate_sat"):
            setattr(m, name, getattr(self, name)[idx])
        return m

    # -- the steady state ------------------------------------------------------------------
    def _s_max(self, N):
        """E[largest stage prefill] of a prefill iteration of ``1 + N`` prompts: s at the
        input-length quantile (N + 1/2) / (N + 1), at least the mean."""
        q = (np.asarray(N, float) + 0.5) / (np.asarray(N, float) + 1.0)
        pq = np.quantile(np.asarray(self.w.p_q), np.clip(q, 0.0, 1.0))
        return np.maximum(self.c.stage_prefill(pq), self.es)

    def _fill(self, N):
        """Seconds of a prefill iteration beyond its prompts' own stage slots: the pipeline's
        fill by the largest prompt and the request overhead."""
        return (self.c.pp - 1.0) * self._s_max(N) + self.c.request_overhead_s

    def _room(self, b):
        """Prompt tokens an iteration may carry beside ``b`` decodes (inf without chunks)."""
        if self.chunk is None:
            return np.full(np.shape(b), np.inf)
        return np.maximum(self.chunk - b, 1.0)

    def _carried(self, x, b):
        """Seconds ``x`` prompt tokens add to a decode step of ``b`` sequences (the machine's
        mixed step, :func:`chipletcloud.perf.iteration.mixed_step_s`, less the decode step)."""
        x = np.asarray(x, float)
        b = np.asarray(b, float)
        if x.ndim == 2 and b.ndim == 1:
            b = b[:, None]
        b = np.broadcast_to(b, np.broadcast_shapes(b.shape, x.shape))
        base = np.where(b >= 1, self.c.decode_time(np.maximum(b, 1.0)), 0.0)
        return np.where(x > 0, self.c.mixed_time(b, x) - base, 0.0)

    def _carry(self, N, b, rate=None, d=None):
        """(share of iterations carrying prompt tokens, tokens such an iteration carries) with
        ``N`` arrivals an iteration (Poisson) and ``b`` decodes: a prompt spans
        ceil(p / room) iterations. With ``rate`` and the decode step ``d``, the share is the
        stationary one of the two-state chain "this iteration carries prompts" (an iteration
        carries when a request arrived during the last one, and a carrying iteration is
        longer, so carrying iterations cluster): pi = p0 / (1 - p1 + p0), p0 = 1 - e^(-rate d
        k), p1 = 1 - e^(-rate (d + e) k), e the carried seconds; else 1 - e^(-N k)."""
        room = self._room(b)
        k = np.where(np.isfinite(room), np.ceil(self.w.mean_p / np.minimum(room, 1e30)), 1.0)
        carry = -np.expm1(-N * k)
        x = N * self.w.mean_p / np.maximum(carry, 1e-12)
        x = np.minimum(x, room)
        if rate is None:
            return carry, x
        for _ in range(3):  # the carried seconds depend on the tokens, which depend on pi
            e = self._carried(x, b)
            p0 = -np.expm1(-rate * d * k)
            p1 = -np.expm1(-rate * (d + e) * k)
            carry = p0 / np.maximum(1.0 - p1 + p0, 1e-12)
            x = np.minimum(N * self.w.mean_p / np.maximum(carry, 1e-12), room)
        return carry, x

    def _inserted(self, rate, T, b):
        """Mean seconds prompts add to the interval between two tokens of a running sequence
        at ``rate`` requests/s, an interval ``T`` and ``b`` sequences decoding.

        Mixed: an iteration carries the prompts that arrived during the last one (``N = rate
        T`` on average, Poisson), costing :meth:`_carried`. Prefill-first: a prefill
        iteration follows the decode step if a request arrived during it (probability 1 -
        e^(-rate D)), and another while requests arrive during the last prefill (a geometric
        chain, continuation probability 1 - e^(-rate P), P = fill + E[s(p)]); all ``rate T``
        arrivals of the interval are prefilled, each taking its stage slot."""
        N = rate * T
        d = self.c.decode_time(np.maximum(b, 1.0))
        if self.mixed:
            carry, x = self._carry(N, b, rate, d)
            return carry * self._carried(x, b)
        fill = self._fill(N)
        start = -np.expm1(-rate * d)
        cont = np.minimum(-np.expm1(-rate * (fill + self.es)), 0.999)
        return start / (1.0 - cont) * fill + N * self.es

    def _interval(self, rate, T):
        """f(T): the interval a running sequence sees when the interval is T."""
        B = rate * self.gm1 * T
        b = np.minimum(1.0 + B, self.bcap)
        return self.c.decode_time(np.maximum(b, 1.0)) + self._inserted(rate, T, b)

    def _saturation(self):
        """T and the rate at which the running batch reaches Bcap: the largest rate whose
        interval at B = Bcap, T = Bcap / (rate (E[g] - 1)), is no longer than T (bisection)."""
        b = np.maximum(self.bcap, 1.0)
        lo, hi = np.zeros(len(b)), b / (self.gm1 * self.c.decode_time(b))
        for _ in range(50):
            mid = (lo + hi) / 2
            T = b / (self.gm1 * np.maximum(mid, 1e-300))
            good = self._interval(mid, T) <= T
            lo, hi = np.where(good, mid, lo), np.where(good, hi, mid)
        t = b / (self.gm1 * np.maximum(lo, 1e-300))
        return t, np.where(self.ok, lo, 0.0)

    def interval(self, rate) -> np.ndarray:
        """T at ``rate`` (requests/s, an array over the points, below saturation): the smallest
        fixed point of :meth:`_interval`, by bisection between D(1) and T_sat."""
        rate = np.asarray(rate, float)
        lo = self.c.decode_time(np.ones(len(self.c))) * (1 - 1e-12)
        hi = np.maximum(self.t_sat, lo)
        for _ in range(48):
            mid = (lo + hi) / 2
            up = self._interval(rate, mid) > mid
            lo, hi = np.where(up, mid, lo), np.where(up, hi, mid)
        return hi

    # -- the distributions -----------------------------------------------------------------
    def metrics(self, rate, queue: bool = True, need=("ttft", "tpot", "e2e")) -> dict:
        """Steady-state metrics at ``rate`` requests/s per point (a number or an array):
        ``stable``, ``tpot_mean_s``, ``batch`` (mean running), ``output_tokens_per_s``,
        ``<metric>_p<pct>_s`` for the metrics of ``need`` (ttft, tpot, e2e) at p50/p90/p99.
        ``queue=False`` leaves out the wait for a free slot (the closed loop adds its own)."""
        n = len(self.c)
        rate = np.broadcast_to(np.asarray(rate, float), (n,)).copy()
        stable = self.ok & (rate < self.rate_sat)
        r = np.maximum(np.where(stable, rate, 0.5 * self.rate_sat), 1e-300)
        T = self.interval(r)
        B = r * self.gm1 * T
        N = r * T
        w, c = self.w, self.c
        b_seen = np.minimum(1.0 + B, np.maximum(self.bcap, 1.0))
        d = c.decode_time(b_seen)
        ovh = c.request_overhead_s
        # own first token, by own prompt length (n, kp), and where an arrival lands: idle (no
        # wait), or an iteration of length a or c (it waits out the rest, uniform over it)
        if self.mixed:
            # the iterations carrying its prompt: all but the last are ordinary ones (T); the
            # last rides with the B others' decode step and the N others' prompt tokens
            carry, xc = self._carry(N, b_seen, r, d)
            long_it = d + self._carried(xc, b_seen)
            share_long = np.clip(carry * long_it / T, 0.0, 1.0)
            it_a, it_c = d, long_it
            # the others admitted with it arrived during the same iteration, which an arrival
            # finds length-biased: rate x E[L^2] / E[L] of them
            n_with = r * (share_long * it_c + (1.0 - share_long) * it_a)
            room = self._room(b_seen)[:, None]
            k = np.where(np.isfinite(room), np.ceil(w.p_q[None, :] / np.minimum(room, 1e30)), 1.0)
            x = np.minimum(w.p_q[None, :] / k + (n_with * w.mean_p)[:, None], room)
            last = c.mixed_time(np.broadcast_to(B[:, None], x.shape), x)
            own = (k - 1.0) * T[:, None] + last
        else:
            # the largest prompt of the batch: its own, or the largest of the N others
            q_others = np.clip(N / (N + 1.0), 0.0, 1.0)
            s_others = c.stage_prefill(np.quantile(w.p_q, q_others))
            fill = (c.pp - 1.0)[:, None] * np.maximum(self.s_p, s_others[:, None])
            own = self.s_p + (N * self.es)[:, None] + fill + ovh[:, None]
            p_iter = self._fill(N) + self.es * (1.0 + N)  # a prefill iteration (size-biased)
            share_long = np.clip(1.0 - d / T, 0.0, 1.0)
            it_a, it_c = d, p_iter
        own_mean = own.mean(axis=1)
        busy_load = r * (own_mean + self.gm1 * T)
        busy = -np.expm1(-busy_load)
        resid = (1.0 - busy, busy * (1.0 - share_long), it_a, busy * share_long, it_c)
        # the wait for a free slot: Erlang C (Halfin-Whitt) with Bcap servers
        S = own_mean + self.gm1 * T  # a request's time holding a slot
        cap = np.maximum(self.bcap, 1.0)
        rho = np.clip(r * S / cap, 0.0, 1.0 - 1e-12)
        beta = (1.0 - rho) * np.sqrt(cap)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            phi = np.exp(-0.5 * beta**2) / np.sqrt(2 * np.pi)
            p_wait = np.where(beta > 1e-9, 1.0 / (1.0 + beta * ndtr(beta) / phi), 1.0)
            p_wait = np.nan_to_num(p_wait, nan=0.0)
        drain = np.maximum(cap / S - r, 1e-300)  # rate the queue empties at
        ac = (w.ca2 + w.cs2) / 2.0

        def wait(q):
            if not queue:
                return 0.0
            return np.maximum(np.log(p_wait / (1.0 - q)), 0.0) / drain * ac

        out: dict[str, np.ndarray] = {}
        qs = np.array(PCTS) / 100.0
        if "ttft" in need:
            tq = _sum_quantile(own, resid, qs)
            for j, pct in enumerate(PCTS):
                out[f"ttft_p{pct}_s"] = tq[:, j] + wait(qs[j])
        if "tpot" in need:  # output length x normal spread
            db = c.decode_time(b_seen + 1.0) - d
            var_b = db**2 * np.minimum(B, np.maximum(self.bcap - 1.0, 0.0))
            gm1 = np.maximum(w.g_q - 1.0, 1.0)
            z = _Z[None, None, :]
            if self.mixed:
                # the carrying iterations among a request's g - 1: Poisson(carry (g - 1)), its
                # quantiles by Wilson-Hilferty; the batch it runs in, normal (comonotone)
                carry, xc = self._carry(N, b_seen, r, d)
                extra = self._carried(xc, b_seen)
                mk = np.maximum(carry[:, None] * gm1[None, :], 1e-12)[:, :, None]
                kq = mk * np.maximum(1.0 - 1.0 / (9.0 * mk) + z / (3.0 * np.sqrt(mk)), 0.0) ** 3
                tpot = (
                    d[:, None, None]
                    + extra[:, None, None] * kq / gm1[None, :, None]
                    + np.sqrt(var_b)[:, None, None] * z
                ).reshape(n, -1)
            else:
                fill = self._fill(N)
                start = -np.expm1(-r * d)
                var_x = fill**2 * start * (1 - start) + self.es**2 * N
                sd = np.sqrt(var_b[:, None] + var_x[:, None] / gm1[None, :])  # (n, kg)
                tpot = (T[:, None, None] + sd[:, :, None] * z).reshape(n, -1)
            tpot = np.maximum(tpot, c.decode_time(np.ones(n))[:, None])
            tq = np.quantile(tpot, qs, axis=1)
            for j, pct in enumerate(PCTS):
                out[f"tpot_p{pct}_s"] = tq[j]
        if "e2e" in need:  # own prompt x output length, at the mean residual
            mean_r = resid[1] * it_a / 2.0 + resid[3] * it_c / 2.0
            e2e = (
                (mean_r[:, None] + own)[:, :, None]
                + (w.g_q[None, None, :] - 1.0) * T[:, None, None]
            ).reshape(n, -1)
            eq = np.quantile(e2e, qs, axis=1)
            for j, pct in enumerate(PCTS):
                out[f"e2e_p{pct}_s"] = eq[j] + wait(qs[j])
        for k in list(out):
            out[k] = np.where(stable, out[k], np.inf)
        out.update(
            stable=stable,
            rate_per_s=rate,
            tpot_mean_s=np.where(stable, T, np.inf),
            batch=np.where(stable, B, self.bcap),
            output_tokens_per_s=np.where(stable, rate * w.mean_g, self.rate_sat * w.mean_g),
            max_batch=self.bcap,
            saturation_rate_per_s=self.rate_sat,
        )
        return out

    # -- service levels --------------------------------------------------------------------
    def meets(self, m: dict[str, np.ndarray], slo: Slo) -> np.ndarray:
        ok = m["stable"].copy()
        for (metric, pct), limit in slo.limits:
            ok &= m[f"{metric}_p{pct}_s"] <= limit * (1 + 1e-9)
        return ok

    def max_rate(self, slo: Slo, iters: int = 24) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The highest arrival rate (requests/s) at which every point meets ``slo`` (goodput:
        0 where even the lightest load misses it), and the metrics there (at the lightest load
        where it is missed: the best each point achieves). Bisection on log(rate) between
        1e-6 and 1 - 1e-6 of saturation; the metrics grow with the rate."""
        top = self.rate_sat * (1.0 - 1e-6)
        need = tuple({m for (m, _), _ in slo.limits})
        lo_f, hi_f = np.full(len(self.c), np.log(1e-6)), np.zeros(len(self.c))
        ok_light = self.meets(self.metrics(top * 1e-6, need=need), slo) & self.ok
        ok_full = self.meets(self.metrics(top, need=need), slo) & self.ok
        todo = ok_light & ~ok_full
        if slo and todo.any():
            sub = self.subset(np.flatnonzero(todo))
            lo_s, hi_s = lo_f[todo], hi_f[todo]
            for _ in range(iters):
                mid = (lo_s + hi_s) / 2
                good = sub.meets(sub.metrics(top[todo] * np.exp(mid), need=need), slo)
                lo_s, hi_s = np.where(good, mid, lo_s), np.where(good, hi_s, mid)
            lo_f[todo] = lo_s
        rate = np.where(ok_full, top, np.where(ok_light, top * np.exp(lo_f), 0.0))
        at = self.metrics(np.where(rate > 0, rate, top * 1e-6))
        return rate, at

    def max_rate_interval(self, limit_s) -> np.ndarray:
        """The highest rate (requests/s) at which the mean time per output token T is at most
        ``limit_s`` (0 where even the lightest load is slower): T grows with the rate, and
        T(rate) <= limit exactly when the interval map at T = limit is no longer than it
        (bisection on the rate, one evaluation of the map a step)."""
        limit = np.broadcast_to(np.asarray(limit_s, float), (len(self.c),))
        top = self.rate_sat * (1.0 - 1e-6)
        lo, hi = np.zeros(len(self.c)), top.copy()
        for _ in range(40):
            mid = (lo + hi) / 2
            good = self._interval(mid, limit) <= limit
            lo, hi = np.where(good, mid, lo), np.where(good, hi, mid)
        full = self._interval(top, limit) <= limit
        light = self.c.decode_time(np.ones(len(self.c))) <= limit
        return np.where(self.ok & light, np.where(full, top, lo), 0.0)

    def closed_loop(self, concurrency) -> dict[str, np.ndarray]:
        """Metrics with ``concurrency`` clients each sending its next request when the last
        one ends (no think time): the rate solves N = rate x (mean TTFT + (E[g] - 1) T) below
        saturation; above it the system runs at saturation and the extra clients wait in the
        queue (mean wait N / rate_sat - time in service, added to TTFT and E2E)."""
        Nc = np.broadcast_to(np.asarray(concurrency, float), (len(self.c),))
        top = self.rate_sat * (1.0 - 1e-6)
        at_top = self.metrics(top, queue=False)
        in_sys_top = self._in_system(at_top, top)
        sat = Nc >= top * in_sys_top
        lo, hi = np.zeros(len(self.c)), top.copy()
        for _ in range(40):
            mid = (lo + hi) / 2
            m = self.metrics(np.maximum(mid, 1e-300))
            below = mid * self._in_system(m, mid) < Nc
            lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
        rate = np.where(sat, top, lo)
        m = self.metrics(np.maximum(rate, 1e-300))
        extra = np.where(sat, np.maximum(Nc / np.maximum(top, 1e-300) - in_sys_top, 0.0), 0.0)
        for k in m:
            if k.startswith(("ttft_", "e2e_")):
                m[k] = np.where(sat, at_top[k] + extra, m[k])
        m["stable"] = self.ok.copy()
        m["rate_per_s"] = rate
        m["output_tokens_per_s"] = rate * self.w.mean_g
        m["concurrency"] = Nc
        return m

    def _in_system(self, m, rate):
        """Mean seconds a request spends in the system (Little's law's W)."""
        ttft_mean = m["ttft_p50_s"]
        return np.where(np.isfinite(ttft_mean), ttft_mean + self.gm1 * m["tpot_mean_s"], np.inf)
