"""The JAX kernel and the literal reference model agree in distribution on the full presets
(every process on): two-sample tests, fixed seeds, alpha = 1e-3 split over the tests of a
stream (Bonferroni)."""

import numpy as np
import pytest
from scipy import stats

from simsps import Source

from .conftest import ALPHA
from .helpers import autocorrelation, counts_per_pulse, run, two_rate_z

pytestmark = pytest.mark.slow

DURATION = 2.0
LAGS = np.array([1, 16, 63, 160])


@pytest.fixture(scope="module", params=["zn-treated", "pristine"])
def pair(request):
    import simsps

    m = simsps.load_model(request.param)
    if request.param == "pristine":
        # Power-law dwells up to 100 s make one 2 s run's bright fraction a single heavy-tailed
        # draw, so stream-level rates would not be comparable; the dwell laws themselves are
        # compared in test_blinking. Bleaching off so that both streams last the 2 s.
        m = m.replace({"bleaching.enabled": False, "blinking.enabled": False})
    return m, run("jax", m, DURATION, seed=101), run("reference", m, DURATION, seed=202)


def test_rates_by_source(pair):
    _, a, b = pair
    n_tests = len(Source)
    for src in Source:
        na = int(np.sum(a.truth.source == src))
        nb = int(np.sum(b.truth.source == src))
        if na + nb == 0:
            continue
        z = two_rate_z(na, DURATION, nb, DURATION)
        assert abs(z) < stats.norm.isf(ALPHA / 2 / n_tests), (src.name, na, nb)


def test_microtime_histograms(pair):
    """Chi-square two-sample test of the decay histograms (32 coarse bins of 4 ns)."""
    _, a, b = pair
    edges = np.arange(0, 3200, 32 * 4)  # microtime bins of 128 ps -> 16 ns coarse bins
    ha = np.histogram(a.dtime, np.append(edges, 4096))[0]
    hb = np.histogram(b.dtime, np.append(edges, 4096))[0]
    keep = (ha + hb) > 20
    res = stats.chi2_contingency(np.array([ha[keep], hb[keep]]))
    assert res.pvalue > ALPHA / 4


def test_emission_delays(pair):
    _, a, b = pair
    for src in (Source.EXCITON, Source.TRION):
        da = a.truth.emission_delay_ps[a.truth.source == src]
        db = b.truth.emission_delay_ps[b.truth.source == src]
        if len(da) + len(db) == 0:  # no trions without blinking
            continue
        assert stats.ks_2samp(da, db).pvalue > ALPHA / 4


def test_coincidences_and_bunching(pair):
    """Same-pulse coincidences per pulse (g2(0) numerator) and the intensity correlation at
    a few lags (Welch t-tests over 20 segments each)."""
    _, a, b = pair
    ca, cb = counts_per_pulse(a), counts_per_pulse(b)
    co = [
        np.dot(
            np.bincount(s.sync[s.channel == 0], minlength=s.n_pulses),
            np.bincount(s.sync[s.channel == 1], minlength=s.n_pulses),
        )
        for s in (a, b)
    ]
    assert abs(two_rate_z(co[0], DURATION, co[1], DURATION)) < stats.norm.isf(ALPHA / 4)
    ga = np.array([autocorrelation(x, LAGS) for x in np.array_split(ca, 20)])
    gb = np.array([autocorrelation(x, LAGS) for x in np.array_split(cb, 20)])
    p = stats.ttest_ind(ga, gb, equal_var=False, axis=0).pvalue
    assert np.all(p > ALPHA / 4 / len(LAGS)), (ga.mean(0), gb.mean(0))
