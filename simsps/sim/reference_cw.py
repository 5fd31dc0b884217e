"""The reference model under CW excitation: every absorption and every decay, in order.

A Gillespie walk of the G -> X -> BX ladder (PHYSICS.md 8): from each level the time to
its next transition is exponential with the level's total rate (absorption ``R = P /
tau_X``, decay ``1 / tau``), the transition is chosen by its rate, a decay emits with the
state's yield and is detected with the efficiency; the charge state switches at the
times of the reference's own telegraph processes (continuous, in ps), where the rates
change and the level stays; every absorption bleaches the NC with the per-excitation
probability. Then jitter, the beam splitter, uniform noise and the reference's event-by-
event detectors (:mod:`simsps.sim.reference`). No aggregation, no eigen tables, nothing
shared with :mod:`simsps.sim.cw_kernel`: the two agree only in distribution, which the
tests check. About 15 ns per transition (10^8 transitions per second at Psat): for
short runs.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ..params.model import Model
from ..physics.excitation import check_power
from ..stream import NO_EMITTER, PhotonStream, Source, State, Truth
from .reference import _detectors, _Telegraph, route

__all__ = ["simulate_reference_cw"]


@numba.njit(cache=True)
def _walk(seed, t_end, sw_t, sw_q, q0, level0, r, g1, g2, eta1, eta2, eff, p_bleach, cap):
    """The ladder's detected photons until ``t_end`` (ps): (times, BX?, charge state,
    count, bleach time or -1, overflow)."""
    np.random.seed(seed)
    times = np.empty(cap, np.float64)
    is_bx = np.empty(cap, np.bool_)
    state = np.empty(cap, np.int8)
    n = 0
    t, level, q, k = 0.0, level0, q0, 0
    bleach = -1.0
    while True:
        out = r if level == 0 else (g1[q] + r if level == 1 else g2[q])
        dt = -math.log(1.0 - np.random.random()) / out
        t_sw = sw_t[k] if k < len(sw_t) else math.inf
        if t + dt >= min(t_sw, t_end):
            if t_sw >= t_end:
                break
            t, q = t_sw, sw_q[k]  # the rates change; the level stays
            k += 1
            continue
        t += dt
        absorb = level == 0 or (level == 1 and np.random.random() < r / (g1[q] + r))
        if absorb:
            if p_bleach > 0 and np.random.random() < p_bleach:
                bleach = t
                break
            level += 1
            continue
        # a decay: X -> G (level 1) or BX -> X (level 2), a photon with the yield
        eta = eta1[q] if level == 1 else eta2[q]
        if np.random.random() < eta and np.random.random() < eff:
            if n == cap:
                return times, is_bx, state, n, bleach, True
            times[n], is_bx[n], state[n] = t, level == 2, q
            n += 1
        level -= 1
    return times, is_bx, state, n, bleach, False


def _cw_speedup(m: Model, power: float, section: str) -> float:
    """Charging rate at ``power`` over that at Psat under CW: the neutral ladder's
    absorptions ``R (p_G + p_X)`` and biexciton formations ``R p_X``, by detailed
    balance."""

    def drive(p):
        r, g1, g2 = (
            p / m.exciton.lifetime_ns,
            1 / m.exciton.lifetime_ns,
            1 / m.biexciton.lifetime_ns,
        )
        w = np.array([1.0, r / g1, r * r / (g1 * g2)])
        pg, px, _ = w / w.sum()
        return r * (pg + px), r * px

    b = getattr(m, section)
    (a, x), (a1, x1) = drive(power), drive(1.0)
    f, s = b.auger_charging_fraction, b.spontaneous_charging_fraction
    return s + (1 - s) * ((1 - f) * a / a1 + f * x / x1)


def _switches(m: Model, power: float, rng, t_end_ps: float):
    """Switch times (ps) of the charge state (grey while either process is) and its start."""
    procs = []
    for sec in ("blinking", "slow_blinking"):
        tel = _Telegraph(m, power, rng, sec, per_s=1e12, speedup=_cw_speedup(m, power, sec))
        times, states = [], []
        if tel.enabled:
            while tel.next_switch < t_end_ps:
                tel.state ^= 1
                times.append(tel.next_switch)
                states.append(tel.state)
                tel.next_switch += tel._dwell(tel.state)
            start = states[0] ^ 1 if states else tel.state
        else:
            start = 0
        procs.append((np.array(times), np.array(states, np.int64), start))
    events = sorted([(t, j, s) for j, (ts, ss, _) in enumerate(procs) for t, s in zip(ts, ss)])
    cur = [p[2] for p in procs]
    q0 = int(max(cur))
    sw_t, sw_q, q = [], [], q0
    for t, j, s in events:
        cur[j] = s
        new = int(max(cur))
        if new != q:
            sw_t.append(t)
            sw_q.append(new)
            q = new
    return np.array(sw_t, np.float64), np.array(sw_q, np.int64), q0


def simulate_reference_cw(
    model: Model, duration_s: float, power: float = 1.0, seed: int = 0
) -> PhotonStream:
    """One emitter under CW, every transition literally; a T2 stream with the truth of
    :func:`simsps.simulate` (no emission delay: NaN)."""
    m = model
    p = check_power(power)
    if not (math.isfinite(duration_s) and duration_s > 0):
        raise ValueError(f"duration_s = {duration_s!r} is out of range: allowed (0, inf) seconds")
    rng = np.random.default_rng(seed)
    t_end = float(duration_s) * 1e12
    det, bg = m.detection, m.background
    sigma = det.jitter_fwhm_ps / (2 * math.sqrt(2 * math.log(2)))
    sw_t, sw_q, q0 = _switches(m, p, rng, t_end)
    r = p / (m.exciton.lifetime_ns * 1e3)  # per ps
    g1 = 1.0 / (np.array([m.exciton.lifetime_ns, m.trion.lifetime_ns]) * 1e3)
    g2 = 1.0 / (np.array([m.biexciton.lifetime_ns, m.charged_biexciton.lifetime_ns]) * 1e3)
    eta1 = np.array([m.exciton.quantum_yield, m.trion.quantum_yield])
    eta2 = np.array([m.biexciton.quantum_yield, m.charged_biexciton.quantum_yield])
    w = np.array([1.0, r / g1[q0], r * r / (g1[q0] * g2[q0])])  # stationary start
    level0 = int(np.searchsorted(np.cumsum(w / w.sum()), rng.random(), side="right"))
    p_b = m.bleaching.probability_per_excitation if m.bleaching.enabled else 0.0
    cap = int(t_end * r * det.efficiency + 1000)
    walk_seed = int(rng.integers(2**31))
    while True:
        times, bx, state, n, bleach, over = _walk(
            walk_seed, t_end, sw_t, sw_q, q0, min(level0, 2), r, g1, g2, eta1, eta2,
            det.efficiency, p_b, cap,
        )  # fmt: skip
        if not over:
            break
        cap *= 2
    times, bx, state = times[:n], bx[:n], state[:n].astype(np.int64)
    src = np.where(
        bx,
        np.where(state == 0, Source.BIEXCITON, Source.CHARGED_BIEXCITON),
        np.where(state == 0, Source.EXCITON, Source.TRION),
    )
    rel = np.maximum(det.irf_offset_ns * 1e3 + sigma * rng.standard_normal(n), 0.0)
    parts = [
        dict(
            t=np.rint(times + rel).astype(np.int64),
            channel=route(rng, n, det),
            source=src,
            state=state,
            delay=np.full(n, np.nan),
        )
    ]
    noise = [(det.dark_cps, Source.DARK, c) for c in range(det.channels)]
    for rate, source, channel in noise + [(bg.rate_cps + bg.prompt_cps * p, Source.BACKGROUND, -1)]:
        k = rng.poisson(rate * duration_s)
        ch = np.full(k, channel) if channel >= 0 else route(rng, k, det)
        parts.append(
            dict(
                t=np.floor(rng.random(k) * t_end).astype(np.int64),
                channel=ch.astype(int),
                source=np.full(k, source),
                state=np.full(k, State.NONE),
                delay=np.full(k, np.nan),
            )
        )
    ev = {f: np.concatenate([q[f] for q in parts]) for f in parts[0]}
    out = _detectors(ev, m, rng)
    t = out["t"].astype(np.int64)
    keep = t < int(t_end)
    out = {f: np.asarray(v)[keep] for f, v in out.items()}
    t = t[keep]
    photon = np.asarray(out["source"]) < Source.DARK
    truth = Truth(
        source=out["source"],
        state=out["state"],
        emitter=np.where(photon, 0, NO_EMITTER),
        emission_delay_ps=out["delay"],
        arrival_ps=t,
        bleach_time_s=[bleach * 1e-12 if bleach >= 0 else np.inf],
    )
    meta = dict(
        model=m.name,
        model_toml=m.to_toml(),
        seed=int(seed),
        power=p,
        duration_s=float(duration_s),
        excitation="cw",
        emitters=1,
        detectors=m.detection.channels,
        generator="simsps.sim.reference_cw",
    )
    return PhotonStream.t2(t, out["channel"], duration_ps=int(t_end), truth=truth, meta=meta)
