"""Photobleaching: a per-excitation hazard, dark for ever after. Fixed seeds, alpha = 1e-3."""

import math

import numpy as np
import pytest
from scipy import stats

import simsps
from simsps.physics.bleaching import bleach_pulse_from_uniform
from simsps.sim.reference import simulate_reference

from .conftest import ALPHA, ideal_overrides

P_B = 1.0 / (2500 * -math.expm1(-1.0))  # mean bleach time 1 ms at N = 1


def _model(zn):
    return zn.replace(
        ideal_overrides(
            **{
                "bleaching.enabled": True,
                "bleaching.probability_per_excitation": P_B,
                "detection.efficiency": 0.2,
            }
        )
    )


@pytest.mark.parametrize("n", [1.0, 3.0])
def test_bleach_times_are_exponential_with_the_excitation_hazard(zn, n):
    """Bleach time ~ Exp(1 / (p_b (1 - e^-N) f_rep)) over 400 emitters simulated together;
    no emitter photon after its emitter's bleach time."""
    m = _model(zn)
    s = simsps.simulate(m, 0.02, power=n, seed=91, emitters=400)
    bt = s.truth.bleach_time_s
    assert np.all(np.isfinite(bt))  # 20 mean lifetimes at N = 1: P(survive) = e^-20 per NC
    mean_s = 1.0 / (P_B * -math.expm1(-n) * m.excitation.rep_rate_hz)
    assert stats.kstest(bt, stats.expon(scale=mean_s).cdf).pvalue > ALPHA
    emitter = s.truth.emitter
    sel = emitter < 400
    t_pulse = s.sync[sel] / m.excitation.rep_rate_hz
    assert np.all(t_pulse < bt[emitter[sel]])
    # emitters that live longer give proportionally more photons
    counts = np.bincount(emitter[sel], minlength=400)
    assert stats.pearsonr(counts, bt).statistic > 0.9


def test_bleach_pulse_inversion():
    u = np.random.default_rng(0).random(100_000)
    k = bleach_pulse_from_uniform(u, 0.01)
    assert stats.chisquare(*_binned(k, stats.geom(0.01, loc=-1))).pvalue > ALPHA
    assert np.all(bleach_pulse_from_uniform(u, 0.0) > 2**62)


def _binned(k, law):
    edges = np.array([0, 10, 30, 60, 100, 150, 250, 400, np.inf])
    obs = np.histogram(k, edges)[0]
    p = np.diff(law.cdf(edges - 1))  # P(k in [a, b))
    return obs, p * len(k)


def test_kernel_and_reference_bleach_alike(zn):
    """Two-sample KS of bleach times: kernel (200 emitters at once) vs reference (200 runs)."""
    m = _model(zn).replace({"detection.efficiency": 0.01})
    jax_bt = simsps.simulate(m, 0.01, seed=3, emitters=200).truth.bleach_time_s
    ref_bt = np.array(
        [simulate_reference(m, 0.01, seed=1000 + i).truth.bleach_time_s[0] for i in range(200)]
    )
    # censored at 10 ms (survival e^-10): compare min(t, 10 ms)
    assert stats.ks_2samp(np.minimum(jax_bt, 0.01), np.minimum(ref_bt, 0.01)).pvalue > ALPHA


def test_disabled_bleaching_never_bleaches(zn):
    m = _model(zn).replace({"bleaching.enabled": False})
    s = simsps.simulate(m, 0.01, seed=3, emitters=5)
    assert np.all(np.isinf(s.truth.bleach_time_s))
