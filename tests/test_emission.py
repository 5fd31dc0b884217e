"""Emitter photons against the closed forms of PHYSICS.md section 3, for the JAX kernel
and for the reference model. Fixed seeds, two-sided alpha = 1e-3 (|z| < 3.29, KS p > 1e-3)."""

import math

import numpy as np
import pytest
from scipy import stats

from simsps import Source, State
from simsps.physics.closed_forms import cascade_g2_zero, exciton_delay_cdf

from .conftest import ALPHA, ideal_overrides
from .helpers import Z_CRIT, poisson_z, run

ENGINES = ["jax", "reference"]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("n", [0.25, 1.0, 3.0])
def test_saturation_rate(zn, engine, n):
    """No BX emission: at most one photon per pulse, detected with eff * eta_X * (1 - e^-N)."""
    m = zn.replace(ideal_overrides(**{"biexciton.quantum_yield": 0.0, "detection.efficiency": 0.1}))
    s = run(engine, m, 0.4, power=n, seed=11)
    expected = s.n_pulses * 0.1 * m.exciton.quantum_yield * -math.expm1(-n)
    assert abs(poisson_z(len(s), expected)) < Z_CRIT
    assert np.all(np.diff(s.sync) > 0)  # one photon per pulse at most


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("n", [0.25, 1.0, 3.0])
def test_pulsed_g2_zero(zn, engine, n):
    """Centre-peak coincidences C against g2(0) * N0 * N1 / n_pulses (no blinking, no noise,
    no dead time; g2(0) does not depend on efficiency or split, so both are set high)."""
    m = zn.replace(ideal_overrides(**{"detection.efficiency": 1.0}))
    s = run(engine, m, 1.6 if n < 1 else 0.4, power=n, seed=21)
    c0 = np.bincount(s.sync[s.channel == 0], minlength=s.n_pulses)
    c1 = np.bincount(s.sync[s.channel == 1], minlength=s.n_pulses)
    centre = float(np.dot(c0, c1))
    g2 = cascade_g2_zero(m.exciton.quantum_yield, m.biexciton.quantum_yield, n)
    expected = g2 * c0.sum() * c1.sum() / s.n_pulses
    assert centre > 1000
    assert abs(poisson_z(centre, expected)) < Z_CRIT, (centre / expected * g2, g2)


@pytest.mark.parametrize("engine", ENGINES)
def test_exciton_and_biexciton_lifetimes(zn, engine):
    """X delays: Exp(tau_X) after one excitation, BX -> X hypoexponential after several
    (weight of single excitations p1 / P(n >= 1)); BX delays: Exp(tau_BX). KS tests."""
    n = 1.0
    m = zn.replace(ideal_overrides(**{"detection.efficiency": 0.5, "biexciton.quantum_yield": 0.5}))
    s = run(engine, m, 0.8, power=n, seed=31)
    t = s.truth
    tau_x, tau_bx = m.exciton.lifetime_ns * 1e3, m.biexciton.lifetime_ns * 1e3
    w_single = n * math.exp(-n) / -math.expm1(-n)
    x = t.emission_delay_ps[t.source == Source.EXCITON]
    bx = t.emission_delay_ps[t.source == Source.BIEXCITON]
    assert len(x) > 50_000 and len(bx) > 20_000
    assert stats.kstest(x, exciton_delay_cdf(tau_x, tau_bx, w_single)).pvalue > ALPHA
    assert stats.kstest(bx, stats.expon(scale=tau_bx).cdf).pvalue > ALPHA
    # a BX-only mistake would show: X delays are not a plain exponential
    assert stats.kstest(x, stats.expon(scale=tau_x).cdf).pvalue < ALPHA


@pytest.mark.parametrize("engine", ENGINES)
def test_trion_lifetime_and_state_labels(zn, engine):
    """Grey-state photons are trions with Exp(tau_T) delays (plus charged-BX cascades)."""
    n = 1.0
    m = zn.replace(ideal_overrides(**{"blinking.enabled": True, "detection.efficiency": 0.5}))
    s = run(engine, m, 0.8, power=n, seed=41)
    t = s.truth
    trion = t.source == Source.TRION
    assert np.all(t.state[trion] == State.GREY)
    assert np.all(t.state[t.source == Source.EXCITON] == State.BRIGHT)
    tau_t, tau_cbx = m.trion.lifetime_ns * 1e3, m.charged_biexciton.lifetime_ns * 1e3
    w_single = n * math.exp(-n) / -math.expm1(-n)
    d = t.emission_delay_ps[trion]
    assert len(d) > 10_000
    assert stats.kstest(d, exciton_delay_cdf(tau_t, tau_cbx, w_single)).pvalue > ALPHA


@pytest.mark.parametrize("engine", ENGINES)
def test_jitter_and_offset(zn, engine):
    """Arrival after the pulse minus IRF offset minus emission delay ~ Normal(0, FWHM/2.355),
    up to the 1 ps rounding of integer-ps times."""
    m = zn.replace(
        ideal_overrides(**{"detection.jitter_fwhm_ps": 350.0, "detection.efficiency": 0.3})
    )
    s = run(engine, m, 0.4, seed=51)
    t = s.truth
    rel = t.arrival_ps - s.sync * 400_000 - m.detection.irf_offset_ns * 1e3 - t.emission_delay_ps
    sigma = 350.0 / (2 * math.sqrt(2 * math.log(2)))
    assert stats.kstest(rel, stats.norm(scale=math.hypot(sigma, 12**-0.5)).cdf).pvalue > ALPHA


@pytest.mark.parametrize("engine", ENGINES)
def test_split_ratio(zn, engine):
    m = zn.replace(ideal_overrides(**{"detection.split_ratio": 0.3, "detection.efficiency": 0.3}))
    s = run(engine, m, 0.4, seed=61)
    n0 = int(np.sum(s.channel == 0))
    res = stats.binomtest(n0, len(s), 0.3)
    assert res.pvalue > ALPHA
