"""Coverage of the stated uncertainties under the full physics (issue 12): for both presets
at 1 and 3 Psat, with every detector and background effect on (prompt and uniform
background, dark counts, afterpulsing, dead time, jitter, both blinking processes), the
95 % intervals of the corrected g2(0), the bunching amplitude and its correlation time,
and both fitted lifetimes contain the truth 95 % of the time over 500 independent NCs:
each coverage within the binomial band of 500 trials at the suite's alpha = 1e-3
(0.95 +- 3.2 %). The issue's 93-97 % is +-2.05 binomial sd at 500: twenty calibrated
checks all land inside it only about half the time, so the test asserts the binomial band
and prints the coverages (measured: README, tests section). Negative control: for
pristine, g2_log's Poisson-only errors (n_blocks=None), which ignore the blinking, cover
the bunching amplitude far less often (the band fails; on the first 200 NCs).

Truths, none from the estimators:
- g2(0): the closed form of PHYSICS.md 3 over the charge states (test_g2_corrections).
- lifetimes: the model's trion and exciton lifetimes (bi-exponential tail fit from 2 ns
  after the decay's peak, with the afterpulse component measured from the stream).
- bunching: the model ``baseline + A exp(-tau / tau_c)`` fitted to the *expected* g2 of the
  emitter on the same delay bins (each bin's delay weighting), with the weights the
  estimator uses (Poisson, their mean over the datasets): the value a noise-free
  measurement would give, also where one exponential does not describe the blinking. The expected curve is the
  closed form of two exponential telegraphs for zn-treated, and for pristine's power-law
  dwells the exact autocorrelation of a 4000 s dwell trajectory drawn with numpy.
The background given to the estimators is the setup's independent rate (dark + uniform +
prompt, what an empty spot measures). Bleaching is off: in the lab an NC that bleaches
during its acquisition is set aside, and since bleaching does not depend on the blinking
state (a hazard per excitation), the NCs that survive are distributed as NCs that cannot
bleach (to ~1e-4, the relative spread of their excitation counts times p_bleach x N). Binomial sd of a coverage over 500 datasets: 1 %.
"""

import os

import numpy as np
import pytest
from scipy import optimize, stats

import simsps
from simsps.analysis import afterpulsing, decay, fit_decay, g2_log, pulsed_g2
from simsps.physics.closed_forms import (
    blinking_g2_curve,
    dwell_scales_s,
    g2_zero_of_states,
    renewal_bright_correlation,
    state_intensities,
)

from .conftest import ALPHA
from .test_g2_corrections import independent_rate

N_DATASETS = int(os.environ.get("SIMSPS_COVERAGE_N", "500"))
NOMINAL = 0.95
DURATION_S = {"zn-treated": 5.0, "pristine": 10.0}
FIT_MAX_S = {"zn-treated": 2e-3, "pristine": 0.05}  # fast flicker / power-law ms blinking
TAU_MAX_S = {"zn-treated": 0.01, "pristine": 0.1}
FIT_START_NS = 2.0
BATCH = 50
N_CONTROL = 200


def _expected_g2(m, n, res):
    """Expected g2 of the emitter photons in each delay bin of ``res``: the closed-form
    curve averaged over the bin's delay weighting (uniform for exact pairs, a trapezoid
    for gridded bins: G2Log.delay_weights, the definition of what a bin holds)."""
    i_b, i_g = state_intensities(m, n, m.detection.efficiency)
    grid, weights = res.delay_weights(32)
    taus = grid.ravel()
    if m.blinking.dwell == "exponential":  # zn-treated: two exponential telegraphs
        corr, p_all = np.ones_like(taus), 1.0
        for section in ("blinking", "slow_blinking"):
            if not getattr(m, section).enabled:
                continue
            on, off = dwell_scales_s(m, section, n)
            p = on / (on + off)
            corr = corr * (p * p + p * (1 - p) * np.exp(-taus * (1 / on + 1 / off)))
            p_all *= p
        curve = blinking_g2_curve(corr, p_all, i_b, i_g)
    else:  # pristine: truncated power laws, the bright cut-off shortened by the charging
        b = m.blinking
        k, t_max = b.power_law_exponent - 1, b.power_law_max_s
        on, off = dwell_scales_s(m, "blinking", n)
        # on 400 log-spaced delays, interpolated in log delay (the correlation is smooth;
        # the interpolation error, ~1e-5, is far below the errors tested)
        knots = np.geomspace(max(taus.min(), 1e-9), taus.max(), 400)
        corr, p = renewal_bright_correlation(
            stats.truncpareto(k, t_max / on, scale=on),
            stats.truncpareto(k, t_max / off, scale=off),
            knots,
            4000.0,
            np.random.default_rng(12),
        )
        corr = np.interp(np.log(np.maximum(taus, knots[0])), np.log(knots), corr)
        curve = blinking_g2_curve(corr, p, i_b, i_g)
    return np.sum(curve.reshape(grid.shape) * weights, axis=1)


def _bunching_truth(m, n, res, sigma, lo, hi):
    """(relative amplitude, tau_c) of the model fitted to the expected curve."""
    sel = (res.tau_s >= lo) & (res.tau_s <= hi)
    y = _expected_g2(m, n, res)[sel]
    grid, weights = res.delay_weights(32)
    grid, weights = grid[sel], weights[sel]
    x = res.tau_s[sel]

    def f(_, a, tc, c):  # the model averaged over each bin's delay weighting
        return c + a * np.sum(np.exp(-grid / tc) * weights, axis=1)

    p, _ = optimize.curve_fit(
        f, x, y, p0=[y[0] - y[-1], np.sqrt(x[0] * x[-1]), y[-1]], sigma=sigma[sel], maxfev=20000
    )
    return p[0] / p[2], p[1]


def _datasets(m, n, duration, count, seed):
    """``count`` NCs, simulated in batches of one vmapped call each and handed out one at
    a time (only a batch is ever in memory)."""
    for batch in range((count + BATCH - 1) // BATCH):
        streams = simsps.simulate_population(
            [m] * BATCH, duration, n, seed=(seed * 1000 + batch) % 2**32
        )
        yield from streams[: count - batch * BATCH]


@pytest.mark.slow
@pytest.mark.parametrize(
    "preset,n", [("zn-treated", 1.0), ("zn-treated", 3.0), ("pristine", 1.0), ("pristine", 3.0)]
)
def test_95_percent_intervals_cover_the_truth(preset, n):
    m = simsps.load_model(preset).replace({"bleaching.enabled": False})
    duration = DURATION_S[preset]
    bg = independent_rate(m, n)
    lo_fit, hi_fit = 20 / m.excitation.rep_rate_hz, FIT_MAX_S[preset]
    truth_tau = (m.trion.lifetime_ns, m.exciton.lifetime_ns)
    hits = np.zeros(5)
    bunching, sigmas, values, poisson = [], [], [], []
    g2_true = g2_zero_of_states(m, n)
    for s in _datasets(m, n, duration, N_DATASETS, seed=int(100 * n) + len(preset)):
        ap = afterpulsing(s)
        g = pulsed_g2(s, background=bg, afterpulsing=ap)
        a, b = g.interval(0.95)
        hits[0] += a <= g2_true <= b
        d = decay(s, afterpulsing=ap)
        peak = (np.argmax(d.counts) + 0.5) * d.resolution_ns
        f = fit_decay(d, n_exp=2, fit_start_ns=peak + FIT_START_NS)
        for j in range(2):
            a, b = f.interval(j, 0.95)
            hits[1 + j] += a <= truth_tau[j] <= b
        r = g2_log(s, tau_max_s=TAU_MAX_S[preset], fit_max_s=hi_fit, background=bg)
        bunching.append((r.fit.interval("relative_amplitude"), r.fit.interval("tau_c_s")))
        values.append(
            (
                r.fit.relative_amplitude,
                r.fit.relative_amplitude_stderr,
                r.fit.tau_c_s,
                r.fit.tau_c_stderr_s,
            )
        )
        sigmas.append(r.stderr_poisson)
        if preset == "pristine" and len(poisson) < N_CONTROL:  # negative control:
            # errors blind to the blinking (a few hundred NCs tell 95 % from what they give)
            r0 = g2_log(
                s, tau_max_s=TAU_MAX_S[preset], fit_max_s=hi_fit, background=bg, n_blocks=None
            )
            poisson.append(r0.fit.interval("relative_amplitude"))
    amp_true, tau_c_true = _bunching_truth(m, n, r, np.mean(sigmas, axis=0), lo_fit, hi_fit)
    for (amp_lo, amp_hi), (tc_lo, tc_hi) in bunching:
        hits[3] += amp_lo <= amp_true <= amp_hi
        hits[4] += tc_lo <= tau_c_true <= tc_hi
    coverage = dict(
        zip(
            ["g2(0)", "trion lifetime", "exciton lifetime", "bunching amplitude", "tau_c"],
            hits / len(bunching),
        )
    )
    v = np.array(values)
    print(
        f"\n{preset} at {n:g} Psat, {len(bunching)} NCs: "
        + ", ".join(f"{k} {v:.3f}" for k, v in coverage.items())
        + f"\n  bunching {v[:, 0].mean():.4f} (sd {v[:, 0].std():.4f}, stated {v[:, 1].mean():.4f},"
        f" truth {amp_true:.4f}); tau_c {v[:, 2].mean():.4g} s (sd {v[:, 2].std():.2g}, "
        f"stated {v[:, 3].mean():.2g}, truth {tau_c_true:.4g})"
    )
    half = stats.norm.isf(ALPHA / 2) * np.sqrt(NOMINAL * (1 - NOMINAL) / len(bunching))
    for k, v in coverage.items():
        assert abs(v - NOMINAL) <= half, (k, coverage, half)
    if poisson:
        control = np.mean([lo <= amp_true <= hi for lo, hi in poisson])
        print(f"  negative control, Poisson-only errors: bunching amplitude {control:.3f}")
        assert abs(control - NOMINAL) > half, control
