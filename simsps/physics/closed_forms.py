"""Closed forms of the model (PHYSICS.md section 3), for a model and a power.

What the estimators of a stream of this model should find on average: the neutral
(bright) fraction of time, the emitter's detected photons per pulse, the count rate, the
pulsed g2(0) of the emitter photons, and the blinking bunching curve. Used by the demo and
by the saturation statement of the presets; the tests check the kernel against their own,
separately written versions of the same formulas.

Blinking: the NC is neutral while both telegraph processes (``blinking`` and
``slow_blinking``) are bright; they are independent, so with ``n_f``, ``n_s`` the
neutral indicators (occupations ``p_f``, ``p_s``) and intensities ``I_b``, ``I_g``:

    g2(tau) - 1 = (dI / <I>)^2 [c_f(tau) c_s(tau) - p_f^2 p_s^2],
    c(tau) = <n(0) n(tau)> = p^2 + p (1 - p) exp(-tau / tau_c)      (exponential dwells)

with ``tau_c = 1 / (k_bg + k_gb)`` per process. Power-law dwells have no such closed form
(their correlation is not exponential): :func:`bunching_curve` refuses them.
"""

from __future__ import annotations

import numpy as np

from .blinking import dwell_means, dwell_parameters
from .cascade import outcome_probabilities

__all__ = [
    "occupation",
    "neutral_fraction",
    "photons_per_pulse",
    "emitter_rate_cps",
    "g2_zero",
    "bunching_curve",
    "saturation_psat",
    "PROCESSES",
]

PROCESSES = ("blinking", "slow_blinking")


def occupation(b, n_mean: float, rep_rate_hz: float) -> float:
    """Stationary bright (neutral) fraction of one telegraph process (1 if disabled)."""
    if not b.enabled:
        return 1.0
    scale = dwell_parameters(b, n_mean, rep_rate_hz)
    mu = dwell_means(scale, b.dwell, b.power_law_exponent, b.power_law_max_s * rep_rate_hz)
    return float(mu[0] / mu.sum())


def neutral_fraction(m, n_mean: float) -> float:
    """Fraction of time the NC is neutral: both processes bright."""
    return float(
        np.prod([occupation(getattr(m, s), n_mean, m.excitation.rep_rate_hz) for s in PROCESSES])
    )


def photons_per_pulse(m, n_mean: float) -> np.ndarray:
    """Detected emitter photons per pulse (before dead time) in the (neutral, charged) state."""
    q = outcome_probabilities(m, n_mean)
    return q[:, 0] + q[:, 1] + q[:, 2] + 2 * q[:, 3]


def emitter_rate_cps(m, n_mean: float) -> float:
    """Mean detected emitter photons per second (before dead time), blinking included."""
    p = neutral_fraction(m, n_mean)
    i = photons_per_pulse(m, n_mean)
    return float((p * i[0] + (1 - p) * i[1]) * m.excitation.rep_rate_hz)


def g2_zero(m, n_mean: float) -> float:
    """Pulsed g2(0) of the emitter photons: centre-peak over side-peak area (side peaks close
    to zero delay, where they carry the blinking bunching), as a ratio of expectations over
    the charge states: ``sum_s p_s 2 P(BX, X) / sum_s p_s I_s^2``."""
    q = outcome_probabilities(m, n_mean)
    p = neutral_fraction(m, n_mean)
    w = np.array([p, 1 - p])
    i = photons_per_pulse(m, n_mean)
    return float(np.sum(w * 2 * q[:, 3]) / np.sum(w * i**2))


def bunching_curve(m, n_mean: float, tau_s) -> np.ndarray:
    """``g2(tau) - 1`` of the emitter photons from blinking (module doc), at delays
    ``tau_s`` well beyond the lifetimes. Exponential dwells only."""
    tau = np.asarray(tau_s, np.float64)
    rate = m.excitation.rep_rate_hz
    i_b, i_g = photons_per_pulse(m, n_mean)
    corr, p_all = np.ones_like(tau), 1.0
    for sec in PROCESSES:
        b = getattr(m, sec)
        if not b.enabled:
            continue
        if b.dwell != "exponential":
            raise ValueError(
                f"{sec}.dwell = {b.dwell!r}: the bunching of power-law blinking "
                "has no closed form here"
            )
        mean_b, mean_g = dwell_parameters(b, n_mean, rate) / rate
        p = mean_b / (mean_b + mean_g)
        tau_c = 1.0 / (1.0 / mean_b + 1.0 / mean_g)
        corr = corr * (p * p + p * (1 - p) * np.exp(-tau / tau_c))
        p_all *= p
    mean = i_g + (i_b - i_g) * p_all
    return ((i_b - i_g) / mean) ** 2 * (corr - p_all**2)


def saturation_psat(m, powers=(0.25, 0.5, 1.0, 1.5, 2.0, 3.0)) -> float:
    """Psat of seed eq. 1, ``A (1 - exp(-P/Psat)) + B P``, fitted to the expected emitter
    rates of this model at ``powers`` (in units of the model's Psat, the power of N = 1),
    each point weighted by its Poisson error. Differs from 1 where the curve is not of
    eq. 1's form: biexciton photons, and a bright fraction that changes with power."""
    from scipy.optimize import curve_fit

    p = np.asarray(powers, float)
    r = np.array([emitter_rate_cps(m, x) for x in p])
    f = lambda x, a, ps, b: a * -np.expm1(-x / ps) + b * x  # noqa: E731
    par, _ = curve_fit(f, p, r, p0=[r.max(), 1.0, 0.0], sigma=np.sqrt(r))
    return float(par[1])
