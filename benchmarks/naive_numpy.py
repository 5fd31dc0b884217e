"""A naive per-pulse NumPy simulator, the peer of ``benchmarks/simulate.py``.

What a lab script such as the CPA ``simulate_qdot`` does (it could not be installed here):
every laser pulse drawn, vectorised over pulses in blocks. Simpler physics than simsps: a
two-state bright/grey telegraph switching at pulse boundaries with geometric dwells, a
Poisson photon number, exciton emission only (no biexciton cascade), detection efficiency,
a 50:50 split, exponential delay plus Gaussian jitter, uniform background; no dead time,
no afterpulsing, no bleaching. It exists to say how fast a straightforward vectorised
implementation is on the same machine, not to be used.
"""

from __future__ import annotations

import numpy as np

__all__ = ["simulate_naive"]


def simulate_naive(m, duration_s: float, power: float = 1.0, seed: int = 0, block=1 << 20):
    """Arrival times (int64 ps) and channels of ``duration_s`` of model ``m``."""
    rng = np.random.default_rng(seed)
    rep = m.excitation.rep_rate_hz
    period_ps = int(m.sync_period_ps)
    n_pulses = int(round(duration_s * rep))
    b = m.blinking
    p_to_grey = 1.0 / (b.bright_dwell_us * 1e-6 * rep) if b.enabled else 0.0
    p_to_bright = 1.0 / (b.grey_dwell_us * 1e-6 * rep) if b.enabled else 1.0
    eff = m.detection.efficiency
    qy = np.array([m.exciton.quantum_yield, m.trion.quantum_yield])
    tau = np.array([m.exciton.lifetime_ns, m.trion.lifetime_ns]) * 1e3
    sigma = m.detection.jitter_fwhm_ps / 2.355
    bg_per_pulse = 2 * m.background.rate_cps / rep
    # the telegraph: alternating geometric dwells (pulses), bright first
    if p_to_grey > 0:
        parts, total = [], 0
        k = int(n_pulses / (1 / p_to_grey + 1 / p_to_bright)) + 16
        while total < n_pulses:
            d = np.empty(2 * k, np.int64)
            d[0::2] = rng.geometric(p_to_grey, k)
            d[1::2] = rng.geometric(p_to_bright, k)
            parts.append(d)
            total += int(d.sum())
        dwell = np.concatenate(parts)
        state_of_pulse = np.repeat((np.arange(len(dwell)) & 1).astype(np.int8), dwell)
    else:
        state_of_pulse = np.zeros(n_pulses, np.int8)
    times, channels = [], []
    for start in range(0, n_pulses, block):
        n = min(block, n_pulses - start)
        grey = state_of_pulse[start : start + n]
        excited = rng.poisson(power, n) > 0
        detected = excited & (rng.random(n) < qy[grey] * eff)
        idx = np.flatnonzero(detected)
        delay = rng.exponential(tau[grey[idx]]) + rng.normal(2000.0, sigma, len(idx))
        t = (start + idx) * np.int64(period_ps) + np.maximum(delay, 0).astype(np.int64)
        n_bg = rng.poisson(bg_per_pulse * n)
        t_bg = start * np.int64(period_ps) + rng.integers(0, n * period_ps, n_bg)
        tt = np.concatenate([t, t_bg])
        ch = rng.integers(0, 2, len(tt)).astype(np.uint8)
        order = np.argsort(tt, kind="stable")
        times.append(tt[order])
        channels.append(ch[order])
    return np.concatenate(times), np.concatenate(channels)
