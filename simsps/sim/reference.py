"""The reference model: the physics of PHYSICS.md sections 2 and 6, literally, in NumPy.

Every pulse is simulated: its photon number ``n ~ Poisson(N)``, the charge state at its
start (charged while the fast flicker or the slow blinking is grey), bleaching by its
excitation, each emitted photon's Bernoulli yield, detection, beam-splitter channel,
exponential delay and Gaussian jitter; noise is a Poisson number of events per pulse.
An excitation that has not decayed by the next pulse is carried into it (the state is
carried across pulses): its ``n`` new excitations add to it, so an exciton still present
makes a biexciton with one more; decays are memoryless, so the carried excitation starts
a fresh exponential delay at that pulse. (The JAX kernel assumes the ground state at every
pulse and refuses lifetimes where this matters.) The detectors then run event by event in time order with an exact,
unlimited afterpulse cascade (a heap of pending afterpulses) and a non-paralysable dead time.
It shares no code with the JAX kernel beyond the data containers, uses NumPy's own
generator, and agrees with the kernel only in distribution, which the tests check.
It is slow and holds the whole stream in memory: for small sizes and for the benchmark.
"""

from __future__ import annotations

import heapq
import math

import numpy as np
from scipy import optimize, stats

from ..params.model import Model
from ..physics.excitation import check_power
from ..stream import NO_EMITTER, PhotonStream, Source, State, Truth

__all__ = ["simulate_reference"]

_FIELDS = ("t", "channel", "source", "state", "delay")


class _Telegraph:
    """Bright/grey renewal process in units of pulses; ``states(i)`` at pulse starts.
    ``section``: ``"blinking"`` (fast flicker, dwells in us) or ``"slow_blinking"`` (ms)."""

    def __init__(
        self,
        m: Model,
        n_mean: float,
        rng: np.random.Generator,
        section: str = "blinking",
        *,
        per_s: float | None = None,
        speedup: float | None = None,
    ):
        """``per_s``: time units per second (default: pulses); ``speedup``: the charging
        rate's factor over Psat (default: the pulsed one of ``n_mean``)."""
        b = getattr(m, section)
        self.enabled = b.enabled
        self.rng = rng
        if not self.enabled:
            return
        # charging (bright -> grey) speeds up with power: one- and two-photon channels
        p_ge1 = lambda n: stats.poisson.sf(0, n)  # noqa: E731
        p_ge2 = lambda n: stats.poisson.sf(1, n)  # noqa: E731
        f, sp = b.auger_charging_fraction, b.spontaneous_charging_fraction
        if speedup is None:
            speedup = sp + (1 - sp) * (
                (1 - f) * p_ge1(n_mean) / p_ge1(1.0) + f * p_ge2(n_mean) / p_ge2(1.0)
            )
        per_s = m.excitation.rep_rate_hz if per_s is None else per_s
        if section == "blinking":
            bright, grey = b.bright_dwell_us * 1e-6, b.grey_dwell_us * 1e-6
        else:
            bright, grey = b.bright_dwell_ms * 1e-3, b.grey_dwell_ms * 1e-3
        self.scale = [bright * per_s / speedup, grey * per_s]
        self.kind = b.dwell
        self.m = b.power_law_exponent
        self.t_max = b.power_law_max_s * per_s
        # stationary start: the state by occupation, then the residual life of its dwell
        means = [self._law(s).mean() for s in (0, 1)]
        self.state = int(rng.random() >= means[0] / sum(means))
        if self.kind == "exponential":
            self.next_switch = self._dwell(self.state)  # memoryless
        else:  # residual life x: integral_0^x S(t) dt = u * mean, S the dwell law's survival
            target = rng.random() * means[self.state]
            integral = self._survival_integral(self.scale[self.state])
            self.next_switch = optimize.brentq(
                lambda x: integral(x) - target, 0.0, self.t_max, xtol=1e-12 * self.t_max
            )

    def _survival_integral(self, a: float):
        """x -> integral_0^x S(t) dt of the truncated Pareto on [a, t_max]."""
        k, b = self.m - 1.0, self.t_max
        norm = a**-k - b**-k

        def f(x):
            if x <= a:
                return x
            prim = (
                math.log(x / a) if abs(k - 1) < 1e-12 else (x ** (1 - k) - a ** (1 - k)) / (1 - k)
            )
            return a + (prim - b**-k * (x - a)) / norm

        return f

    def _law(self, state: int):
        t_min = self.scale[state]
        if self.kind == "exponential":
            return stats.expon(scale=t_min)
        return stats.truncpareto(self.m - 1.0, self.t_max / t_min, scale=t_min)

    def _dwell(self, state: int) -> float:
        u = self.rng.random()
        t_min = self.scale[state]
        if self.kind == "exponential":
            return -math.log1p(-u) * t_min
        a = self.m - 1.0  # p(t) ~ t^-m on [t_min, t_max]: inverse CDF
        tail = (self.t_max / t_min) ** (-a)
        return t_min * (1.0 - u * (1.0 - tail)) ** (-1.0 / a)

    def states(self, first: int, count: int) -> np.ndarray:
        out = np.zeros(count, np.int8)
        if not self.enabled:
            return out
        i, stop = first, first + count
        while i < stop:
            end = min(stop, math.ceil(self.next_switch))  # pulses before the switch
            out[i - first : end - first] = self.state
            if end == stop and self.next_switch >= stop:
                break
            i = end
            self.state ^= 1
            self.next_switch += self._dwell(self.state)
        return out


def route(rng, n: int, det) -> np.ndarray:
    """Detectors of ``n`` photons: the HBT arm (the first with ``split_ratio``), then one of
    the arm's detectors uniformly (channels 0 .. c/2 - 1 and c/2 .. c - 1 of c)."""
    second = rng.random(n) >= det.split_ratio
    if det.channels == 2:
        return second.astype(int)
    n_a = det.channels // 2
    within = np.where(second, rng.integers(0, det.channels - n_a, n), rng.integers(0, n_a, n))
    return np.where(second, n_a, 0) + within


def _noise(m: Model, rng, pulses: np.ndarray, period_ps: int, sigma_ps: float, n_mean: float):
    """Dark counts per channel, uniform and prompt background (proportional to power):
    Poisson per pulse."""
    period_s = period_ps * 1e-12
    det, bg = m.detection, m.background
    out = []
    kinds = [(det.dark_cps, Source.DARK, c) for c in range(det.channels)] + [
        (bg.rate_cps, Source.BACKGROUND, -1),
        (bg.prompt_cps * n_mean, Source.PROMPT_BACKGROUND, -1),
    ]
    for rate, source, channel in kinds:
        k = rng.poisson(rate * period_s, len(pulses))
        p = np.repeat(pulses, k)
        n = len(p)
        if source == Source.PROMPT_BACKGROUND:
            rel = det.irf_offset_ns * 1e3 + sigma_ps * rng.standard_normal(n)
            rel += rng.exponential(bg.prompt_lifetime_ns * 1e3, n) if bg.prompt_lifetime_ns else 0
            rel = np.maximum(rel, 0.0)
        else:
            rel = rng.random(n) * period_ps
        ch = np.full(n, channel) if channel >= 0 else route(rng, n, det)
        out.append(
            dict(
                t=p * period_ps + np.rint(rel).astype(np.int64),
                channel=ch,
                source=np.full(n, source),
                state=np.full(n, State.NONE),
                delay=np.full(n, np.nan),
            )
        )
    return out


def _detectors(ev: dict, m: Model, rng) -> dict:
    """Exact per-channel dead time with an unlimited afterpulse cascade, in time order."""
    dead = int(round(m.detection.dead_time_ns * 1e3))
    p_ap = m.detection.afterpulse_probability
    tau_ap = m.detection.afterpulse_time_constant_ns * 1e3
    order = np.lexsort((np.arange(len(ev["t"])), ev["t"]))
    kept = []  # (t, channel, source, state, delay)
    for c in np.unique(ev["channel"]).tolist():
        idx = order[ev["channel"][order] == c].tolist()
        pending: list[tuple[int, int]] = []  # afterpulse heap: (time, sequence)
        last = None
        k, seq = 0, 0
        while k < len(idx) or pending:
            take_ap = pending and (k >= len(idx) or pending[0][0] < ev["t"][idx[k]])
            if take_ap:
                t, _ = heapq.heappop(pending)
                rec = (t, c, Source.AFTERPULSE, State.NONE, np.nan)
            else:
                j = idx[k]
                k += 1
                t = int(ev["t"][j])
                rec = (t, c, ev["source"][j], ev["state"][j], ev["delay"][j])
            if last is not None and t - last < dead:
                continue  # lost in the dead time: no avalanche, no afterpulse
            last = t
            kept.append(rec)
            if p_ap > 0 and rng.random() < p_ap:
                seq += 1
                heapq.heappush(pending, (t + dead + int(round(rng.exponential(tau_ap))), seq))
    kept.sort(key=lambda r: r[0])
    cols = list(zip(*kept)) if kept else [[] for _ in _FIELDS]
    return {f: np.asarray(col) for f, col in zip(_FIELDS, cols)}


def simulate_reference(
    model: Model,
    duration_s: float,
    power: float = 1.0,
    seed: int = 0,
    *,
    block_pulses: int = 1 << 18,
) -> PhotonStream:
    """One emitter, every pulse, literally. Same output type and truth as :func:`simsps.simulate`
    (CW models: :func:`simsps.sim.reference_cw.simulate_reference_cw`)."""
    m = model
    if m.is_cw:
        from .reference_cw import simulate_reference_cw

        return simulate_reference_cw(m, duration_s, power, seed)
    n_mean = check_power(power)
    if not (math.isfinite(duration_s) and duration_s > 0):
        raise ValueError(f"duration_s = {duration_s!r} is out of range: allowed (0, inf) seconds")
    rng = np.random.default_rng(seed)
    period_ps = m.sync_period_ps
    n_pulses = int(round(duration_s * m.excitation.rep_rate_hz))
    det = m.detection
    sigma = det.jitter_fwhm_ps / (2 * math.sqrt(2 * math.log(2)))
    eta1 = np.array([m.exciton.quantum_yield, m.trion.quantum_yield])
    eta2 = np.array([m.biexciton.quantum_yield, m.charged_biexciton.quantum_yield])
    tau1 = np.array([m.exciton.lifetime_ns, m.trion.lifetime_ns]) * 1e3
    tau2 = np.array([m.biexciton.lifetime_ns, m.charged_biexciton.lifetime_ns]) * 1e3
    p_bleach = m.bleaching.probability_per_excitation if m.bleaching.enabled else 0.0
    blinks = [_Telegraph(m, n_mean, rng, sec) for sec in ("blinking", "slow_blinking")]
    bleach_pulse = None
    carry = 0  # excitations not yet decayed at the next pulse: 0, 1 (X/T) or 2 (BX)
    parts = []
    for start in range(0, n_pulses, block_pulses):
        count = min(block_pulses, n_pulses - start)
        pulse = np.arange(start, start + count, dtype=np.int64)
        parts += _noise(m, rng, pulse, period_ps, sigma, n_mean)
        if bleach_pulse is not None:
            continue  # bleached: dark for ever, only noise
        state = np.maximum(*(b.states(start, count) for b in blinks)).astype(np.int64)
        n = rng.poisson(n_mean, count)
        bleaches = (n >= 1) & (rng.random(count) < p_bleach)
        dark_from = count
        if bleaches.any():
            dark_from = int(np.argmax(bleaches))
            bleach_pulse = start + dark_from
            n[dark_from:] = 0  # the bleaching excitation and everything after emit nothing
        e2 = rng.exponential(tau2[state])  # biexciton delay
        e1 = rng.exponential(tau1[state])  # exciton delay after it
        u_bx, u_x = rng.random(count), rng.random(count)
        # carried excitations: pulse k+1 starts with what pulse k left undecayed
        c = np.zeros(count, np.int64)
        c[0] = carry
        while True:
            total = n + c
            x_delay = np.where(total >= 2, e2 + e1, e1)
            bx_left = (total >= 2) & (e2 > period_ps)
            x_left = (total >= 1) & ~bx_left & (x_delay > period_ps)
            left = np.where(bx_left, 2, np.where(x_left, 1, 0))
            left[dark_from:] = 0
            new_c = np.concatenate([[carry], left[:-1]])
            if np.array_equal(new_c, c):
                break
            c = new_c
        carry = int(left[-1])
        bx = (total >= 2) & ~bx_left & (u_bx < eta2[state])
        x = (total >= 1) & ~bx_left & ~x_left & (u_x < eta1[state])
        for emitted, delay, src in (
            (bx, e2, np.where(state == 0, Source.BIEXCITON, Source.CHARGED_BIEXCITON)),
            (x, x_delay, np.where(state == 0, Source.EXCITON, Source.TRION)),
        ):
            hit = emitted & (rng.random(count) < det.efficiency)
            k = int(hit.sum())
            channel = route(rng, k, det)
            rel = np.maximum(
                delay[hit] + det.irf_offset_ns * 1e3 + sigma * rng.standard_normal(k), 0
            )
            parts.append(
                dict(
                    t=pulse[hit] * period_ps + np.rint(rel).astype(np.int64),
                    channel=channel,
                    source=src[hit],
                    state=state[hit],
                    delay=delay[hit],
                )
            )
    ev = {f: np.concatenate([p[f] for p in parts]) if parts else np.empty(0) for f in _FIELDS}
    ev["t"] = ev["t"].astype(np.int64)
    out = _detectors(ev, m, rng)
    t = out["t"].astype(np.int64)
    emitter = np.where(np.isnan(out["delay"].astype(float)), NO_EMITTER, 0) if len(t) else []
    bleach_s = np.inf if bleach_pulse is None else bleach_pulse / m.excitation.rep_rate_hz
    truth = Truth(
        source=out["source"],
        state=out["state"],
        emitter=emitter,
        emission_delay_ps=out["delay"],
        arrival_ps=t,
        bleach_time_s=[bleach_s],
    )
    meta = dict(
        model=m.name,
        model_toml=m.to_toml(),
        seed=int(seed),
        power=n_mean,
        duration_s=float(duration_s),
        emitters=1,
        detectors=m.detection.channels,
        generator="simsps.sim.reference",
    )
    return PhotonStream.from_arrivals(
        t, out["channel"], period_ps, det.resolution_ps, truth=truth, meta=meta, n_pulses=n_pulses
    )
