"""Closed forms of the model (PHYSICS.md section 3), for a model and a power.

What the estimators of a stream of this model should find on average: the neutral
(bright) fraction of time, the emitter's detected photons per pulse, the count rate, the
pulsed g2(0) of the emitter photons, and the blinking bunching curve. Used by the demo, by
the saturation statement of the presets and by the tests.

Two kinds: forms of a model (``g2_zero``, ``emitter_rate_cps``, ...) built on the cascade's
outcome table (:mod:`simsps.physics.cascade`, which the kernel samples), and the textbook
forms of PHYSICS.md 3 written from the yields and the Poisson excitation directly
(``cascade_g2_zero``, ``cascade_photons_per_pulse``, ``state_intensities``,
``g2_zero_of_states``, the telegraph correlations, ``exciton_delay_cdf``): the tests check
the kernel against the latter, and the two kinds against each other.

Blinking: the NC is neutral while both telegraph processes (``blinking`` and
``slow_blinking``) are bright; they are independent, so with ``n_f``, ``n_s`` the
neutral indicators (occupations ``p_f``, ``p_s``) and intensities ``I_b``, ``I_g``:

    g2(tau) - 1 = (dI / <I>)^2 [c_f(tau) c_s(tau) - p_f^2 p_s^2],
    c(tau) = <n(0) n(tau)> = p^2 + p (1 - p) exp(-tau / tau_c)      (exponential dwells)

with ``tau_c = 1 / (k_bg + k_gb)`` per process. Power-law dwells have no such closed form
(their correlation is not exponential): :func:`bunching_curve` refuses them.
"""

from __future__ import annotations

import math

import numpy as np

from .blinking import charging_drive, charging_factor, dwell_means, dwell_parameters
from .cascade import outcome_probabilities

__all__ = [
    "occupation",
    "neutral_fraction",
    "photons_per_pulse",
    "emitter_rate_cps",
    "g2_zero",
    "bunching_curve",
    "saturation_psat",
    "eq1_psat",
    "cascade_g2_zero",
    "cascade_photons_per_pulse",
    "state_intensities",
    "g2_zero_of_states",
    "exciton_delay_cdf",
    "telegraph_correlation",
    "two_process_bunching",
    "blinking_g2_curve",
    "renewal_bright_correlation",
    "dwell_scales_s",
    "PROCESSES",
]

PROCESSES = ("blinking", "slow_blinking")


def occupation(b, n_mean: float, rep_rate_hz: float, drive=None) -> float:
    """Stationary bright (neutral) fraction of one telegraph process (1 if disabled);
    ``drive``: :func:`simsps.physics.blinking.charging_drive` (CW)."""
    if not b.enabled:
        return 1.0
    scale = dwell_parameters(b, n_mean, rep_rate_hz, drive)
    mu = dwell_means(scale, b.dwell, b.power_law_exponent, b.power_law_max_s * rep_rate_hz)
    return float(mu[0] / mu.sum())


def neutral_fraction(m, n_mean: float) -> float:
    """Fraction of time the NC is neutral: both processes bright."""
    drive = charging_drive(m, n_mean)
    return float(np.prod([occupation(getattr(m, s), n_mean, m.clock_hz, drive) for s in PROCESSES]))


def photons_per_pulse(m, n_mean: float) -> np.ndarray:
    """Detected emitter photons per pulse (before dead time) in the (neutral, charged) state."""
    q = outcome_probabilities(m, n_mean)
    return q[:, 0] + q[:, 1] + q[:, 2] + 2 * q[:, 3]


def emitter_rate_cps(m, n_mean: float) -> float:
    """Mean detected emitter photons per second (before dead time), blinking included
    (pulsed or CW)."""
    p = neutral_fraction(m, n_mean)
    if m.is_cw:
        from .cw import state_rates

        i = state_rates(m, n_mean)
        return float(p * i[0] + (1 - p) * i[1])
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
    rate = m.clock_hz
    drive = charging_drive(m, n_mean)
    if m.is_cw:
        from .cw import state_rates

        i_b, i_g = state_rates(m, n_mean)
    else:
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
        mean_b, mean_g = dwell_parameters(b, n_mean, rate, drive) / rate
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
    r = np.array([emitter_rate_cps(m, x) for x in powers])
    return eq1_psat(powers, r, sigma=np.sqrt(r))


def eq1_psat(powers, rates, sigma=None) -> float:
    """Psat of seed eq. 1, ``A (1 - exp(-P/Psat)) + B P``, fitted to ``rates`` at ``powers``
    (scipy curve_fit, weights ``1 / sigma^2``)."""
    from scipy.optimize import curve_fit

    f = lambda p, a, psat, b: a * -np.expm1(-p / psat) + b * p  # noqa: E731
    rates = np.asarray(rates, float)
    par, _ = curve_fit(f, np.asarray(powers, float), rates, p0=[rates.max(), 1.0, 0.0], sigma=sigma)
    return float(par[1])


# --- textbook forms (PHYSICS.md 3), from the yields and the Poisson excitation directly ---


def _p_ge(n: float) -> tuple[float, float]:
    """P(at least one), P(at least two) excitations at Poisson mean ``n``."""
    return -math.expm1(-n), 1 - math.exp(-n) * (1 + n)


def cascade_g2_zero(eta_x: float, eta_bx: float, n: float) -> float:
    """Pulsed g2(0) of the X + BX cascade truncated at the biexciton: no blinking, no
    background (PHYSICS.md 3)."""
    p1, p2 = _p_ge(n)
    return 2 * eta_x * eta_bx * p2 / (eta_x * p1 + eta_bx * p2) ** 2


def cascade_photons_per_pulse(eta1: float, eta2: float, n: float, efficiency=1.0) -> float:
    """Mean detected photons per pulse of the cascade (X yield ``eta1``, BX yield ``eta2``)
    at mean excitation ``n``."""
    p1, p2 = _p_ge(n)
    return efficiency * (eta1 * p1 + eta2 * p2)


def state_intensities(m, n: float, efficiency=1.0) -> tuple[float, float]:
    """Detected photons per pulse in the neutral and the charged state of model ``m``."""
    return (
        cascade_photons_per_pulse(
            m.exciton.quantum_yield, m.biexciton.quantum_yield, n, efficiency
        ),
        cascade_photons_per_pulse(
            m.trion.quantum_yield, m.charged_biexciton.quantum_yield, n, efficiency
        ),
    )


def g2_zero_of_states(m, n: float) -> float:
    """Emitter g2(0) of model ``m`` with blinking: the centre-peak pair rate over the
    squared intensities, each weighted by its state's occupation."""
    _, p2 = _p_ge(n)
    pb = neutral_fraction(m, n)
    i_b, i_g = state_intensities(m, n)
    num = (
        pb * 2 * p2 * m.exciton.quantum_yield * m.biexciton.quantum_yield
        + (1 - pb) * 2 * p2 * m.trion.quantum_yield * m.charged_biexciton.quantum_yield
    )
    return num / (pb * i_b**2 + (1 - pb) * i_g**2)


def exciton_delay_cdf(tau1: float, tau2: float, w_single: float):
    """CDF of the X photon's emission delay: Exp(tau1) after a single excitation (weight
    ``w_single``), the hypoexponential BX -> X delay after a multi-excitation."""

    def cdf(t):
        t = np.asarray(t, float)
        single = -np.expm1(-t / tau1)
        hypo = 1 - (tau1 * np.exp(-t / tau1) - tau2 * np.exp(-t / tau2)) / (tau1 - tau2)
        return np.where(t < 0, 0.0, w_single * single + (1 - w_single) * hypo)

    return cdf


def telegraph_correlation(p_bright: float, tau_c: float, tau):
    """<n(0) n(tau)> of a stationary two-state telegraph with exponential dwells (n = 1
    bright): p^2 + p (1 - p) exp(-tau / tau_c)."""
    return p_bright**2 + p_bright * (1 - p_bright) * np.exp(-np.asarray(tau, float) / tau_c)


def two_process_bunching(processes, i_bright: float, i_grey: float, tau):
    """g2(tau) - 1 of an emitter bright only while every independent telegraph is bright:
    ``processes`` = [(p_bright, tau_c), ...], intensities per pulse."""
    corr, p_all = 1.0, 1.0
    for p, tc in processes:
        corr = corr * telegraph_correlation(p, tc, tau)
        p_all *= p
    mean = i_grey + (i_bright - i_grey) * p_all
    return ((i_bright - i_grey) / mean) ** 2 * (corr - p_all**2)


def blinking_g2_curve(corr, p: float, i_bright: float, i_grey: float):
    """g2 of an emitter switching between two intensities, from <n(0) n(tau)> and the
    bright fraction ``p``."""
    mean = i_grey + (i_bright - i_grey) * p
    second = i_grey**2 + 2 * i_grey * (i_bright - i_grey) * p + (i_bright - i_grey) ** 2 * corr
    return second / mean**2


def renewal_bright_correlation(bright_law, grey_law, taus, length: float, rng):
    """<n(0) n(tau)> of a stationary alternating renewal process (n = 1 bright) with any
    dwell laws (scipy frozen distributions), from one long trajectory of ``length`` (same
    unit as the laws) drawn with numpy's generator: the overlap of the bright intervals
    with themselves shifted by tau, integrated exactly. Power-law dwells have no closed
    form. Returns (correlation at each tau, bright fraction)."""
    mean = bright_law.mean() + grey_law.mean()
    n = int(1.2 * length / mean) + 10
    d = np.empty(2 * n)
    d[0::2] = bright_law.rvs(n, random_state=rng)
    d[1::2] = grey_law.rvs(n, random_state=rng)
    edges = np.concatenate([[0.0], np.cumsum(d)])
    bright_time = np.concatenate([[0.0], np.cumsum(np.where(np.arange(2 * n) % 2 == 0, d, 0.0))])
    start, stop = edges[0:-1:2], edges[1::2]  # bright intervals
    span = length - np.max(taus)
    keep = stop <= span
    start, stop = start[keep], stop[keep]

    def bright_before(x):
        return np.interp(x, edges, bright_time)

    corr = np.array([np.sum(bright_before(stop + t) - bright_before(start + t)) for t in taus])
    p = float(np.sum(stop - start) / stop[-1])
    return corr / stop[-1], p


def dwell_scales_s(m, section: str, n: float) -> tuple[float, float]:
    """(bright, grey) dwell scales in seconds of a blinking section at mean excitation
    ``n`` (the bright one shortened by the charging factor): mean dwells of exponential
    laws, lower cut-offs of power laws."""
    b = getattr(m, section)
    to_s = 1e-6 if section == "blinking" else 1e-3
    unit = "us" if section == "blinking" else "ms"
    f = charging_factor(
        n, b.auger_charging_fraction, b.spontaneous_charging_fraction, charging_drive(m, n)
    )
    return getattr(b, f"bright_dwell_{unit}") * to_s / f, getattr(b, f"grey_dwell_{unit}") * to_s
