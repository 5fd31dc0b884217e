"""fit_decay with decays that do not finish within the period and bins wide against the
lifetime; change-point critical values from simulation. Truths come from samplers written
here (numpy) and from scipy's fits of the simpler models each control uses; alpha 1e-3."""

import math

import numpy as np
import pytest
from scipy import optimize, special, stats

import simsps
from simsps.analysis import AnalysisError, change_points, decay, fit_decay
from simsps.analysis.changepoint import _best_split, _critical

from .conftest import ALPHA
from .helpers import Z_CRIT


def _stream_from_microtimes(micro_ns, period_ns, res_ns, seed=0):
    """A one-channel stream whose photons have the given microtimes (sync indices random)."""
    rng = np.random.default_rng(seed)
    dt = np.floor(np.asarray(micro_ns) / res_ns).astype(np.int64)
    sync = np.sort(rng.integers(0, 10**8, len(dt)))
    return simsps.PhotonStream(
        sync=sync,
        dtime=dt[rng.permutation(len(dt))],
        channel=np.zeros(len(dt), np.uint8),
        sync_period_ps=period_ns * 1e3,
        resolution_ps=res_ns * 1e3,
    )


def _wrapped_decay(tau, n, bg, seed, period=400.0, t0=2.0, sigma=0.15):
    """Excitation every period, decays carried over: delay = t0 + N(0, sigma) + Exp(tau),
    recorded modulo the period, plus a flat background."""
    rng = np.random.default_rng(seed)
    t = (t0 + rng.normal(0, sigma, n) + rng.exponential(tau, n)) % period
    return np.concatenate([t, rng.uniform(0, period, bg)])


@pytest.mark.parametrize("irf", [None, "gaussian"])
def test_decay_longer_than_the_period(irf):
    """tau = 300 ns at a 400 ns period: the Gaussian-IRF fit sums every earlier pulse's decay
    and the tail fit sees it rescaled, both recover tau within their errors; a fit that
    ignores the carried-over decay (here: scipy ML of one ex-Gaussian period plus a flat
    background) is far off (the issue's 161 ns)."""
    micro = _wrapped_decay(300.0, 200_000, 20_000, seed=1)
    d = decay(_stream_from_microtimes(micro, 400.0, 0.128), afterpulsing=None)
    f = fit_decay(d, n_exp=1, irf=irf)
    assert abs(f.lifetimes_ns[0] - 300.0) / f.lifetimes_stderr_ns[0] < Z_CRIT, f.lifetimes_ns
    assert any("does not finish within the period" in w for w in f.warnings)
    if irf == "gaussian":
        x = d.time_ns + d.resolution_ns / 2
        y = d.counts.astype(float)

        def nll(p):  # one period of an ex-Gaussian, no carry-over
            tau, t0, amp, bg = math.exp(p[0]), p[1], math.exp(p[2]), math.exp(p[3])
            lam = 0.15 / tau
            z = (x - t0) / 0.15
            pdf = 0.5 / tau * np.exp(0.5 * lam * lam - z * lam) * special.erfc((lam - z) / 2**0.5)
            mu = amp * pdf * d.resolution_ns + bg
            return float(np.sum(mu - y * np.log(mu)))

        p = optimize.minimize(
            nll,
            [math.log(100), 2.0, math.log(2e5), math.log(5.0)],
            method="Nelder-Mead",
            options=dict(maxiter=20000),
        ).x
        assert abs(math.exp(p[0]) - 300.0) > 2 * Z_CRIT * f.lifetimes_stderr_ns[0]


def test_bins_wide_against_the_lifetime():
    """1 ns bins for a 1.5 ns lifetime: the model integrated over each bin recovers tau; the
    same model evaluated at bin centres (fitted here with scipy) is biased."""
    micro = _wrapped_decay(1.5, 300_000, 3_000, seed=2, t0=5.0, sigma=0.2)
    d = decay(_stream_from_microtimes(micro, 400.0, 1.0), afterpulsing=None)
    f = fit_decay(d, n_exp=1, irf="gaussian", irf_fwhm_ps=0.2 * 2354.82)
    assert abs(f.lifetimes_ns[0] - 1.5) / f.lifetimes_stderr_ns[0] < Z_CRIT
    x = d.time_ns + 0.5
    y = d.counts.astype(float)

    def nll(p):
        tau, t0, amp, bg = math.exp(p[0]), p[1], math.exp(p[2]), math.exp(p[3])
        lam = 0.2 / tau
        z = (x - t0) / 0.2
        arg = np.clip(0.5 * lam * lam - z * lam, -700, 700)
        pdf = 0.5 / tau * np.exp(arg) * special.erfc((lam - z) / 2**0.5)
        mu = amp * pdf + bg + 1e-12
        return float(np.sum(mu - y * np.log(mu)))

    p = optimize.minimize(
        nll,
        [math.log(1.5), 5.0, math.log(3e5), math.log(5.0)],
        method="Nelder-Mead",
        options=dict(maxiter=20000),
    ).x
    assert abs(math.exp(p[0]) - 1.5) > 5 * f.lifetimes_stderr_ns[0]


def test_afterpulse_component_in_decays(zn):
    """Afterpulses make a sloped hump across the period that a flat background cannot
    describe: with their measured law in the model the bi-exponential fit of the preset's
    decay gives the exciton lifetime; without it the fit is off (3 % afterpulsing)."""
    m = zn.replace({"bleaching.enabled": False, "detection.afterpulse_probability": 0.03})
    s = simsps.simulate(m, 20.0, seed=4)
    peak = None
    fits = {}
    for ap in ("auto", None):
        d = decay(s, afterpulsing=ap)
        peak = (np.argmax(d.counts) + 0.5) * d.resolution_ns
        fits[ap] = fit_decay(d, n_exp=2, fit_start_ns=peak + 2.0)
    with_ap, without = fits["auto"], fits[None]
    assert abs(with_ap.lifetimes_ns[1] - 10.2) / with_ap.lifetimes_stderr_ns[1] < Z_CRIT
    assert abs(without.lifetimes_ns[1] - 10.2) / without.lifetimes_stderr_ns[1] > Z_CRIT


def _horvath(n, alpha):
    """The asymptotic critical value used before (Horvath 1993)."""
    lnln = math.log(math.log(n))
    a = math.sqrt(2 * lnln)
    b = 2 * lnln + 0.5 * math.log(lnln) - 0.5 * math.log(math.pi)
    return (-math.log(-math.log(1 - alpha) / 2) + b) / a


@pytest.mark.parametrize("n", [40, 300, 1000])
@pytest.mark.parametrize("alpha", [0.01, 0.05])
def test_change_point_false_alarm_rate(n, alpha):
    """Constant-intensity stretches of n photons (fresh random numbers, not the table's):
    the share found to have a change is alpha (binomial test); with the asymptotic critical
    values it was far below."""
    rng = np.random.default_rng([n, int(alpha * 1000)])
    reps = 3000
    crit = _critical(n, alpha)
    stat = np.empty(reps)
    for i in range(reps):
        t = np.sort(rng.random(n))
        ll, _ = _best_split(t, 0.0, 1.0, 8)
        stat[i] = math.sqrt(max(ll, 0.0))
    hits = int(np.sum(stat > crit))
    assert stats.binomtest(hits, reps, alpha).pvalue > ALPHA / 6, (hits / reps, alpha)
    assert np.mean(stat > _horvath(n, alpha)) < alpha / 2


def test_change_point_critical_values_off_the_table():
    """Margins and sizes the table does not hold are simulated on first use, and agree with
    the table where both exist."""
    assert _critical(200, 0.01, 5) > 0
    assert _critical(200, 0.01, 8) == pytest.approx(_critical(200, 0.01, 8))
    with pytest.raises(AnalysisError):
        change_points(simsps.simulate(simsps.load_model("zn-treated"), 1.0), alpha=0.7)


@pytest.mark.parametrize(
    "tau_ns,sigma_ns,mu_ns",
    [(1.3, 0.06, 2.0), (10.2, 0.2, 2.0), (300.0, 0.1, 2.0), (1.0, 47.0, 4.0), (1.0, 60.0, 4.0)],
)
def test_periodic_bin_integrals_sum_every_pulse(tau_ns, sigma_ns, mu_ns):
    """The periodic ex-Gaussian of the IRF fits equals the sum over pulses of scipy's
    exponnorm CDF differenced on the bins: a narrow IRF (the presets), a decay that
    outlives the period, and IRFs wide against the lifetime (where the geometric tail
    alone once gave 1e133 photons per bin, or NaN)."""
    from scipy import stats

    from simsps.analysis._shapes import periodic_bin_integrals

    period = 400.0
    edges = np.linspace(0.0, period, 801)
    law = stats.exponnorm(tau_ns / sigma_ns, loc=mu_ns, scale=sigma_ns)
    n_before = int(np.ceil(40 * tau_ns / period)) + 2
    expected = sum(np.diff(law.cdf(edges + j * period)) for j in range(-1, n_before + 1))
    got = periodic_bin_integrals(edges, tau_ns, mu_ns, sigma_ns, period)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-12)
