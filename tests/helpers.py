"""Closed forms (PHYSICS.md section 3) and small statistics used by the tests.

Written independently of the library's kernels on purpose.
"""

import math

import numpy as np
from hypothesis import strategies as st
from scipy import stats

import simsps
from simsps.sim.reference import simulate_reference

Z_CRIT = stats.norm.isf(0.5e-3)  # two-sided alpha = 1e-3


def run(engine, model, duration_s, power=1.0, seed=0, **kw):
    if engine == "jax":
        return simsps.simulate(model, duration_s, power=power, seed=seed, **kw)
    return simulate_reference(model, duration_s, power=power, seed=seed)


def g2_zero_closed_form(eta_x, eta_bx, n):
    """PHYSICS.md 3: X+BX truncation, no blinking, no background."""
    p_ge1 = -math.expm1(-n)
    p_ge2 = 1 - math.exp(-n) * (1 + n)
    return 2 * eta_x * eta_bx * p_ge2 / (eta_x * p_ge1 + eta_bx * p_ge2) ** 2


def photons_per_pulse(eta1, eta2, n, efficiency=1.0):
    """Mean detected photons per pulse of the cascade at mean excitation ``n``."""
    p_ge1 = -math.expm1(-n)
    p_ge2 = 1 - math.exp(-n) * (1 + n)
    return efficiency * (eta1 * p_ge1 + eta2 * p_ge2)


def exciton_delay_cdf(tau1, tau2, w_single):
    """Emission delay of X photons: Exp(tau1) after a single excitation (weight
    ``w_single``), hypoexponential BX -> X delay after a multi-excitation."""

    def cdf(t):
        t = np.asarray(t, float)
        single = -np.expm1(-t / tau1)
        hypo = 1 - (tau1 * np.exp(-t / tau1) - tau2 * np.exp(-t / tau2)) / (tau1 - tau2)
        return np.where(t < 0, 0.0, w_single * single + (1 - w_single) * hypo)

    return cdf


def counts_per_pulse(stream):
    return np.bincount(stream.sync, minlength=stream.n_pulses).astype(np.float64)


def autocorrelation(c, lags):
    """Normalised intensity correlation G(k) = <c_i c_i+k> / <c>^2 of per-pulse counts."""
    mean = c.mean()
    return np.array([np.mean(c[:-k] * c[k:]) / mean**2 for k in lags])


def poisson_z(observed, expected):
    return (observed - expected) / math.sqrt(expected)


def two_rate_z(n1, t1, n2, t2):
    """z statistic of equal Poisson rates ``n1/t1`` and ``n2/t2``."""
    r1, r2 = n1 / t1, n2 / t2
    return (r1 - r2) / math.sqrt(n1 / t1**2 + n2 / t2**2)


def assert_damaged_file_fails_cleanly(data, raw: bytes, path, min_changes: int = 0):
    """Hypothesis helper: change a few bytes of ``raw``, cut it, write it to ``path`` and
    read it: the read either succeeds or raises TTTRFileError naming the file."""
    from simsps.io import TTTRFileError, read

    raw = bytearray(raw)
    for _ in range(data.draw(st.integers(min_changes, 8))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    path.write_bytes(bytes(raw[: data.draw(st.integers(0, len(raw)))]))
    try:
        r = read(path)
    except TTTRFileError as e:
        assert path.name in str(e)
    else:
        assert isinstance(r, simsps.PhotonStream)


def telegraph_correlation(p_bright, tau_c, tau):
    """<n(0) n(tau)> of a stationary two-state telegraph with exponential dwells (n = 1
    bright): p^2 + p (1 - p) exp(-tau / tau_c)."""
    return p_bright**2 + p_bright * (1 - p_bright) * np.exp(-np.asarray(tau, float) / tau_c)


def two_process_bunching(processes, i_bright, i_grey, tau):
    """g2(tau) - 1 of an emitter that is bright only while every independent telegraph
    process is bright: ``processes`` = [(p_bright, tau_c), ...], intensities per pulse."""
    corr, p_all = 1.0, 1.0
    for p, tc in processes:
        corr = corr * telegraph_correlation(p, tc, tau)
        p_all *= p
    mean = i_grey + (i_bright - i_grey) * p_all
    return ((i_bright - i_grey) / mean) ** 2 * (corr - p_all**2)


def eq1_psat(powers, rates, sigma=None):
    """Psat of seed eq. 1 fitted to ``rates`` at ``powers`` (scipy curve_fit)."""
    from scipy.optimize import curve_fit

    f = lambda p, a, psat, b: a * (1 - np.exp(-p / psat)) + b * p  # noqa: E731
    par, _ = curve_fit(
        f,
        np.asarray(powers, float),
        np.asarray(rates, float),
        p0=[max(rates), 1.0, 0.0],
        sigma=sigma,
    )
    return float(par[1])


def renewal_bright_correlation(bright_law, grey_law, taus, length, rng):
    """<n(0) n(tau)> of a stationary alternating renewal process (n = 1 bright), from one
    long trajectory of ``length`` (same unit as the laws): dwells drawn from the scipy
    laws with numpy's generator, the overlap of the bright intervals with themselves
    shifted by tau integrated exactly. Returns (correlation at each tau, bright fraction)."""
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


def blinking_g2_curve(corr, p, i_bright, i_grey):
    """g2 of an emitter switching between intensities, from <n(0) n(tau)> and p."""
    mean = i_grey + (i_bright - i_grey) * p
    second = i_grey**2 + 2 * i_grey * (i_bright - i_grey) * p + (i_bright - i_grey) ** 2 * corr
    return second / mean**2


def charging_factor(b, n):
    """Charging rate at mean excitation n over that at Psat, for a blinking section:
    spontaneous part + power-driven part (one- and two-excitation channels)."""
    p1, p2 = -math.expm1(-n), 1 - math.exp(-n) * (1 + n)
    q1, q2 = -math.expm1(-1), 1 - math.exp(-1) * 2
    return b.spontaneous_charging_fraction + (1 - b.spontaneous_charging_fraction) * (
        (1 - b.auger_charging_fraction) * p1 / q1 + b.auger_charging_fraction * p2 / q2
    )


def dwells_s(m, section, n):
    """(bright, grey) dwell scales in seconds at mean excitation n (bright shortened by the
    charging factor): mean dwells for exponential laws, lower cut-offs for power laws."""
    b = getattr(m, section)
    to_s = 1e-6 if section == "blinking" else 1e-3
    unit = "us" if section == "blinking" else "ms"
    on = getattr(b, f"bright_dwell_{unit}") * to_s / charging_factor(b, n)
    return on, getattr(b, f"grey_dwell_{unit}") * to_s


def neutral_fraction(m, n):
    """Fraction of time both telegraph processes are bright (occupations by mean dwells;
    truncated power laws via scipy)."""
    p = 1.0
    for section in ("blinking", "slow_blinking"):
        b = getattr(m, section)
        if not b.enabled:
            continue
        on, off = dwells_s(m, section, n)
        if b.dwell == "power_law":
            on, off = (
                stats.truncpareto(b.power_law_exponent - 1, b.power_law_max_s / x, scale=x).mean()
                for x in (on, off)
            )
        p *= on / (on + off)
    return p


def state_intensities(m, n, efficiency=1.0):
    """Detected photons per pulse in the neutral and the charged state."""
    return (
        photons_per_pulse(m.exciton.quantum_yield, m.biexciton.quantum_yield, n, efficiency),
        photons_per_pulse(m.trion.quantum_yield, m.charged_biexciton.quantum_yield, n, efficiency),
    )


def g2_truth(m, n):
    """Emitter g2(0) of a model (PHYSICS.md 3 with blinking): over the charge states, the
    centre-peak pair rate over the squared intensities, weighted by their occupation."""
    p2 = 1 - math.exp(-n) * (1 + n)
    pb = neutral_fraction(m, n)
    i_b, i_g = state_intensities(m, n)
    num = (
        pb * 2 * p2 * m.exciton.quantum_yield * m.biexciton.quantum_yield
        + (1 - pb) * 2 * p2 * m.trion.quantum_yield * m.charged_biexciton.quantum_yield
    )
    return num / (pb * i_b**2 + (1 - pb) * i_g**2)
