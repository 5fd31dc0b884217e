"""Telegraph blinking: dwell laws, bunching amplitude and correlation time, power-dependent
charging. Fixed seeds; alpha = 1e-3 (Bonferroni-corrected where several tests share data)."""

import math

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize, stats

from simsps.physics.blinking import (
    charging_factor,
    dwell_from_uniform,
    dwell_parameters,
    power_law_tail,
)
from simsps.physics.closed_forms import cascade_photons_per_pulse
from simsps.sim.reference import _Telegraph
from simsps.sim.switching import switch_pulses

from .conftest import ALPHA, ideal_overrides
from .helpers import autocorrelation, counts_per_pulse, run

LAGS = np.array([1, 4, 16, 40, 63, 100, 160, 250])  # pulses (400 ns each)


def _uniforms(seed, n):
    """Uniforms on (0, 1] on the 24-bit grid the device uses."""
    bits = np.random.default_rng(seed).integers(0, 2**32, n, dtype=np.uint64)
    return ((bits >> np.uint64(8)) + 1).astype(np.float32) * np.float32(2.0**-24)


def test_exponential_dwells_match_scipy():
    for seed, scale in ((0, 50.0), (1, 20.0)):
        d = np.asarray(
            dwell_from_uniform(jnp.asarray(_uniforms(seed, 20_000)), scale, "exponential")
        )
        assert stats.kstest(d, stats.expon(scale=scale).cdf).pvalue > ALPHA / 2


def test_power_law_dwells_match_scipy_truncpareto():
    t_max, m = 2.5e6, 1.5
    for seed, t_min in ((2, 250.0), (3, 100.0)):
        tail = np.float32(power_law_tail(t_min, m, t_max))
        u = jnp.asarray(_uniforms(seed, 20_000))
        d = np.asarray(dwell_from_uniform(u, np.float32(t_min), "power_law", 1 / (m - 1), tail))
        law = stats.truncpareto(m - 1, t_max / t_min, scale=t_min)
        assert stats.kstest(d, law.cdf).pvalue > ALPHA / 2
        assert d.min() >= t_min * (1 - 1e-6) and d.max() <= t_max * (1 + 1e-6)


def test_charging_factor_limits():
    assert charging_factor(1.0, 0.0) == pytest.approx(1.0)
    assert charging_factor(1.0, 0.7) == pytest.approx(1.0)
    assert charging_factor(3.0, 0.0) == pytest.approx(-math.expm1(-3) / -math.expm1(-1))
    assert charging_factor(3.0, 1.0) > charging_factor(3.0, 0.0) > 1
    # a spontaneous part does not move with power: the factor is pulled towards 1
    assert charging_factor(3.0, 1.0, 1.0) == pytest.approx(1.0)
    assert charging_factor(0.25, 1.0, 0.8) == pytest.approx(0.8 + 0.2 * charging_factor(0.25, 1.0))


def _states_from_switches(state0, rel, n_pulses):
    flips = np.bincount(rel, minlength=n_pulses)[:n_pulses]
    return ((np.cumsum(flips) + state0) % 2).astype(np.int8)


def _dwells_from_states(states):
    change = np.flatnonzero(np.diff(states)) + 1
    lengths = np.diff(change)
    first_state = states[change[:-1]]
    return lengths[first_state == 0], lengths[first_state == 1]


@pytest.mark.parametrize("preset", ["zn-treated", "pristine"])
def test_kernel_and_reference_blink_alike(preset, zn, pristine):
    """Two-sample KS of bright and grey dwells (in whole pulses) of the kernel's trajectory
    and the reference's pulse-by-pulse telegraph."""
    m = zn if preset == "zn-treated" else pristine
    m = m.replace({"slow_blinking.enabled": False})  # the fast process alone
    n_pulses = 1 << 22 if preset == "zn-treated" else 1 << 26
    s0, rel = switch_pulses(m, 1.0, 5, n_pulses)
    k_states = _states_from_switches(s0, rel, n_pulses)
    r_states = _Telegraph(m, 1.0, np.random.default_rng(5)).states(0, n_pulses)
    kb, kg = _dwells_from_states(k_states)
    rb, rg = _dwells_from_states(r_states)
    assert min(len(kb), len(rb)) > 150
    assert stats.ks_2samp(kb, rb).pvalue > ALPHA / 2
    assert stats.ks_2samp(kg, rg).pvalue > ALPHA / 2


def _bunching_truth(m, n):
    scale = dwell_parameters(m.blinking, n, m.excitation.rep_rate_hz)  # mean dwells, pulses
    p_b = scale[0] / scale.sum()
    i_b = cascade_photons_per_pulse(m.exciton.quantum_yield, m.biexciton.quantum_yield, n)
    i_g = cascade_photons_per_pulse(m.trion.quantum_yield, m.charged_biexciton.quantum_yield, n)
    amp = p_b * (1 - p_b) * (i_b - i_g) ** 2 / (p_b * i_b + (1 - p_b) * i_g) ** 2
    kappa = 1.0 / (1.0 / scale[0] + 1.0 / scale[1])  # correlation time, pulses
    return amp, kappa


def _fit(g):
    f = lambda k, a, kappa: 1 + a * np.exp(-k / kappa)  # noqa: E731
    return optimize.curve_fit(f, LAGS, g, p0=(0.2, 60.0))[0]


def _jackknife(segments):
    """Fit of the segment-mean G and its jackknife standard errors."""
    full = _fit(segments.mean(axis=0))
    m = len(segments)
    loo = np.array([_fit(np.delete(segments, i, axis=0).mean(axis=0)) for i in range(m)])
    se = np.sqrt((m - 1) / m * np.sum((loo - loo.mean(axis=0)) ** 2, axis=0))
    return full, se


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["jax", "reference"])
@pytest.mark.parametrize("n", [1.0, 3.0])
def test_telegraph_bunching(zn, engine, n):
    """G(k) of per-pulse counts = 1 + A exp(-k / kappa) (PHYSICS.md 3, pulse-sampled telegraph):
    t-tests of the segment means at each lag (Bonferroni) and jackknife z-tests of the fitted
    amplitude and correlation time against the closed forms; at 3 Psat charging is faster."""
    m = zn.replace(ideal_overrides(**{"blinking.enabled": True, "detection.efficiency": 0.5}))
    s = run(engine, m, 2.0, power=n, seed=71)
    c = counts_per_pulse(s)
    segments = np.array([autocorrelation(x, LAGS) for x in np.array_split(c, 20)])
    amp, kappa = _bunching_truth(m, n)
    truth = 1 + amp * np.exp(-LAGS / kappa)
    p = stats.ttest_1samp(segments, truth, axis=0).pvalue
    assert np.all(p > ALPHA / len(LAGS)), (segments.mean(axis=0), truth)
    (a_fit, k_fit), (a_se, k_se) = _jackknife(segments)
    z_crit = stats.norm.isf(ALPHA / 4)
    assert abs(a_fit - amp) < z_crit * a_se, (a_fit, a_se, amp)
    assert abs(k_fit - kappa) < z_crit * k_se, (k_fit, k_se, kappa)


def test_zn_preset_bunching_matches_the_paper(zn):
    """The preset is calibrated to the seed: bunching ~1.18, correlation time ~25 us."""
    amp, kappa = _bunching_truth(zn, 1.0)
    assert 0.15 < amp < 0.21
    assert 20 < kappa / 2.5 < 30


def test_state_truth_follows_the_trajectory(zn):
    """Every emitter photon's state label is the trajectory state at its pulse (the
    switches drawn standalone, chunked differently from the simulation's)."""
    m = zn.replace(ideal_overrides(**{"blinking.enabled": True, "detection.efficiency": 0.2}))
    s = run("jax", m, 0.3, seed=81)
    s0, rel = switch_pulses(m, 1.0, 81, s.n_pulses, chunk_blocks=1)
    states = _states_from_switches(s0, rel, s.n_pulses)
    np.testing.assert_array_equal(s.truth.state, states[s.sync])
    assert 0.2 < np.mean(states) < 0.36  # grey fraction 35 / (89 + 35) = 0.28
