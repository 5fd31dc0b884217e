"""CW excitation: the ladder's closed forms (PHYSICS.md 8), the kernel and the reference
model against them, and the engine's invariants under CW.

Statistical tests use alpha = 1e-3 with fixed seeds; each has a negative control (the same
statistic against a wrong closed form) that must fail, so the test has the power to see
a model error of that size. Coincidences are counted here by brute force (every pair of
a channel-0 and a channel-1 photon within the window), not by the package's estimators.
"""

import math

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import linalg, stats

import simsps
from simsps.physics import blinking, closed_forms, cw
from simsps.sim import cw_kernel
from simsps.sim.reference_cw import simulate_reference_cw

ALPHA = 1e-3
Z_CRIT = stats.norm.isf(ALPHA / 2)


def cw_model(zn, **extra):
    """The Zn-treated NC under CW, alone: no blinking, bleaching, noise, dead time,
    afterpulsing or jitter (the closed forms' setting)."""
    o = {
        "excitation.mode": "cw",
        "blinking.enabled": False,
        "slow_blinking.enabled": False,
        "bleaching.enabled": False,
        "detection.dark_cps": 0.0,
        "detection.dead_time_ns": 0.0,
        "detection.afterpulse_probability": 0.0,
        "detection.jitter_fwhm_ps": 0.0,
        "background.rate_cps": 0.0,
        "background.prompt_cps": 0.0,
    }
    o.update(extra)
    return zn.replace(o)


def two_level(zn, **extra):
    """No biexciton photon and an instant BX -> X: the two-level emitter of PHYSICS.md 8
    (the X -> BX -> X detour takes no time and gives nothing)."""
    return cw_model(zn, **{"biexciton.lifetime_ns": 1e-3, "biexciton.quantum_yield": 0.0}, **extra)


def cross_delays(stream, window_ps):
    """Every delay t1 - t0 (ps) between a channel-0 and a channel-1 photon within
    +- window_ps (brute force)."""
    t = stream.time_ps
    t0, t1 = t[stream.channel == 0], t[stream.channel == 1]
    lo = np.searchsorted(t1, t0 - window_ps)
    hi = np.searchsorted(t1, t0 + window_ps)
    return np.concatenate([t1[a:b] - x for x, a, b in zip(t0, lo, hi)]), len(t0), len(t1)


def g2_chi2(stream, g2_of_ns, duration_s, window_ps=30_000, bin_ps=500):
    """Chi-square of the coincidence histogram against the expected counts
    ``n0 n1 / T * integral of g2 over each bin``; returns (chi2, dof)."""
    d, n0, n1 = cross_delays(stream, window_ps)
    edges = np.arange(-window_ps, window_ps + 1, bin_ps)
    obs, _ = np.histogram(d, edges)
    fine = (np.arange(40) + 0.5) / 40 * bin_ps
    g = np.array([np.mean(g2_of_ns(np.abs(a + fine) / 1e3)) for a in edges[:-1]])
    expected = g * n0 * n1 / (duration_s * 1e12) * bin_ps
    return float(np.sum((obs - expected) ** 2 / expected)), len(obs)


# ---- closed forms -------------------------------------------------------------------


def test_ladder_reduces_to_the_two_level_forms():
    lad = cw.ladder(10.2, 1e-7, 0.9, 0.0, 1.7, 10.2)  # instant BX, no BX photon
    tau = np.array([0.0, 0.5, 2.0, 7.0, 30.0])
    np.testing.assert_allclose(cw.ladder_g2(tau, lad), cw.two_level_g2(tau, 10.2, 1.7), atol=1e-6)
    assert cw.emitted_rate(lad) == pytest.approx(cw.two_level_rate(0.9, 10.2, 1.7), rel=1e-6)
    # at P = 1 the emitted rate is half its maximum and the dip time tau_X / 2
    assert cw.two_level_rate(0.9, 10.2, 1.0) == pytest.approx(0.5 * 0.9 / 10.2)
    assert 1 / cw.two_level_dip_rate(10.2, 1.0) == pytest.approx(10.2 / 2)


@pytest.mark.parametrize("power", [0.01, 0.3, 1.0, 4.0])
def test_ladder_g2_zero_formula_equals_the_matrix_form(power):
    """PHYSICS.md 8's g2(0) against the quantum-regression g2(tau -> 0) (scipy expm),
    and its low-power limit eta_BX / eta_X."""
    lad = cw.ladder(10.2, 0.3, 0.9, 0.06, power, 10.2)
    assert cw.ladder_g2([0.0], lad)[0] == pytest.approx(cw.ladder_g2_zero(lad), rel=1e-9)
    low = cw.ladder(10.2, 0.3, 0.9, 0.06, 1e-6, 10.2)
    assert cw.ladder_g2_zero(low) == pytest.approx(0.06 / 0.9, rel=1e-4)


@settings(max_examples=40, deadline=None)
@given(
    tau1=st.floats(0.1, 50.0),
    tau2=st.floats(0.01, 5.0),
    eta1=st.floats(0.0, 1.0),
    eta2=st.floats(0.0, 1.0),
    power=st.floats(0.01, 50.0),
    eff=st.floats(0.0, 1.0),
    t=st.floats(0.0, 2e5),
)
def test_eigen_tables_equal_scipy_expm(tau1, tau2, eta1, eta2, power, eff, t):
    """The kernel's tables give exp(Q t) of the undetected sub-generator (scipy's expm)."""
    lad = cw.ladder(tau1, tau2, eta1, eta2, power, 10.2, eff)
    lam, coef, exits = cw.ladder_tables(lad)
    assert np.all(lam < 1e-12)  # 0 only when nothing is ever detected
    got = np.einsum("skj,k->sj", coef, np.exp(lam * t))
    want = linalg.expm(lad.undetected() * 1e-3 * t)
    np.testing.assert_allclose(got, want, atol=2e-9)
    np.testing.assert_allclose(exits, lad.exits() * 1e-3)


def test_survival_inversion_reaches_float32_precision(zn):
    """The kernel's T from S(T) = 1 - v equals a float64 bisection to 0.1 ps + 3e-6 T over
    both tails of v, every start level and charge state, three powers."""
    rng = np.random.default_rng(7)
    for power in (0.05, 1.0, 20.0):
        p = cw_kernel.cw_params(cw_model(zn), power)
        for q in (0, 1):
            for s in range(3):
                lam, a = np.asarray(p.lam[q], float), np.asarray(p.surv[q, s], float)
                bits = np.concatenate(
                    [rng.integers(0, 2**32, 3000), rng.integers(0, 2**22, 500)]
                ).astype(np.uint32)
                tables = (p.lam[q], p.surv[q, s], p.bound[q, s], jnp.float32(2.6e8))
                solve = jnp.vectorize(
                    lambda b, tables=tables: cw_kernel._solve(*cw_kernel._unit32_pair(b), *tables)
                )
                got = np.asarray(solve(jnp.asarray(bits)), float)
                v = (bits + 0.5) * 2.0**-32
                w = (2.0**32 - 1 - bits + 0.5) * 2.0**-32
                lo, hi = np.zeros_like(v), np.full_like(v, 3e8)
                for _ in range(100):
                    mid = 0.5 * (lo + hi)
                    e = np.exp(np.outer(mid, lam))
                    below = np.where(v <= 0.5, -(np.expm1(np.outer(mid, lam)) @ a) < v, e @ a > w)
                    lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
                ref = 0.5 * (lo + hi)
                ok = ref < 2.5e8
                err = np.abs(got - ref)[ok]
                assert np.all(err <= 0.1 + 3e-6 * ref[ok]), (power, q, s, err.max())


# ---- the kernel and the reference model against the closed forms --------------------


def _run(engine, model, duration, power, seed):
    if engine == "kernel":
        return simsps.simulate(model, duration, power, seed=seed)
    return simulate_reference_cw(model, duration, power, seed=seed)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["kernel", "reference"])
def test_two_level_dip_and_saturation(zn, engine):
    """Rate saturation eta d Gamma P / (1 + P) at three powers (z, counts are sub-
    Poissonian so sqrt(mean) is conservative) and the dip 1 - exp(-(R + Gamma)|tau|)
    (chi-square of the coincidences, no free parameter), alpha 1e-3. Negative controls:
    the dip with (R + Gamma) 10 % off, and the pulsed law 1 - exp(-P) for the rate."""
    m = two_level(zn)
    eff = m.detection.efficiency
    zs, controls = [], []
    duration = 0.4
    at_psat = eff * cw.two_level_rate(0.9, 10.2, 1.0) * 1e9 * duration
    for k, power in enumerate((0.3, 1.0, 3.0)):
        s = _run(engine, m, duration, power, seed=11 + k)
        expect = eff * cw.two_level_rate(0.9, 10.2, power) * 1e9 * duration
        zs.append((len(s.time_ps) - expect) / math.sqrt(expect))
        pulsed = at_psat * (1 - math.exp(-power)) / (1 - math.exp(-1.0))
        controls.append((len(s.time_ps) - pulsed) / math.sqrt(pulsed))
        if power == 1.0:
            chi2, dof = g2_chi2(s, lambda t: cw.two_level_g2(t, 10.2, 1.0), duration)
            assert chi2 < stats.chi2.isf(ALPHA, dof), (engine, chi2, dof)
            # the dip of the lifetime alone, without the pump's R (half as fast)
            wrong = lambda t: 1 - np.exp(-t / 10.2)  # noqa: E731
            chi2_w, _ = g2_chi2(s, wrong, duration)
            assert chi2_w > stats.chi2.isf(ALPHA, dof), (engine, chi2_w)
    assert np.all(np.abs(zs) < Z_CRIT), zs
    # the pulsed saturation law, scaled to agree at P = 1, misses at 0.3 Psat
    assert abs(controls[0]) > Z_CRIT, controls


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["kernel", "reference"])
def test_ladder_g2_with_the_biexciton(zn, engine):
    """With the BX cascade the whole g2(tau) of the ladder (scipy expm) fits the
    coincidences, g2(0) included (chi-square, alpha 1e-3); the two-level dip of the same
    rates does not (the BX photons fill the dip: negative control)."""
    m = cw_model(zn, **{"biexciton.quantum_yield": 0.3})
    power, duration = 2.0, 0.4
    s = _run(engine, m, duration, power, seed=21)
    lad = cw.ladder_of(m, power)
    assert cw.ladder_g2_zero(lad) > 0.3
    chi2, dof = g2_chi2(s, lambda t: cw.ladder_g2(t, lad), duration, window_ps=10_000, bin_ps=250)
    assert chi2 < stats.chi2.isf(ALPHA, dof), (engine, chi2)
    chi2_w, _ = g2_chi2(
        s, lambda t: cw.two_level_g2(t, 10.2, power), duration, window_ps=10_000, bin_ps=250
    )
    assert chi2_w > stats.chi2.isf(ALPHA, dof), (engine, chi2_w)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["kernel", "reference"])
def test_blinking_rates_under_cw(zn, engine):
    """The fast flicker under CW (charging driven by the ladder's absorptions and
    biexcitons, PHYSICS.md 2 with the CW drive): the emitter photons and the grey ones
    against the closed forms (neutral fraction x state rates), z with the telegraph's
    variance ``mean + 2 T dI^2 p (1 - p) tau_c`` (alpha 1e-3). Negative control: the
    neutral fraction of the pulsed drive (charging from P(n >= 2) at 3 Psat)."""
    m = cw_model(zn, **{"blinking.enabled": True})
    power, duration = 3.0, 0.5
    s = _run(engine, m, duration, power, seed=31)
    photon = s.truth.source < simsps.Source.DARK
    grey = photon & (s.truth.state == 1)
    i_b, i_g = cw.state_rates(m, power)

    def expected(model):
        p = closed_forms.neutral_fraction(model, power)
        b = model.blinking
        bright_s = b.bright_dwell_us * 1e-6 / blinking.charging_factor(
            power, b.auger_charging_fraction, b.spontaneous_charging_fraction,
            blinking.charging_drive(model, power),
        )  # fmt: skip
        tau_c = 1 / (1 / bright_s + 1 / (b.grey_dwell_us * 1e-6))
        return p, tau_c

    p, tau_c = expected(m)
    for n, rate_fn in (
        (photon.sum(), lambda p: p * i_b + (1 - p) * i_g),
        (grey.sum(), lambda p: (1 - p) * i_g),
    ):
        mean = rate_fn(p) * duration
        d_i = i_b - i_g if rate_fn(1.0) > 0 else i_g
        var = mean + 2 * duration * d_i**2 * p * (1 - p) * tau_c
        assert abs(n - mean) / math.sqrt(var) < Z_CRIT, (engine, n, mean, math.sqrt(var))
    # the pulsed drive (P(n >= 2) at 3 Psat) would charge the NC far more often
    pulsed = m.replace({"excitation.mode": "pulsed"})
    p_pulsed = closed_forms.neutral_fraction(pulsed, power)
    mean = (1 - p_pulsed) * i_g * duration
    var = mean + 2 * duration * i_g**2 * p_pulsed * (1 - p_pulsed) * tau_c
    assert abs(grey.sum() - mean) / math.sqrt(var) > Z_CRIT, (engine, p, p_pulsed)


# ---- the engine under CW ---------------------------------------------------------------


def test_cw_stream_is_t2_and_independent_of_chunking(zn):
    m = zn.replace({"excitation.mode": "cw"})
    a = simsps.simulate(m, 0.05, 1.0, seed=9, chunk_pulses=1 << 18)
    b = simsps.simulate(m, 0.05, 1.0, seed=9, chunk_pulses=1 << 20)
    assert a.is_t2 and a.sync is None and a.dtime is None
    assert a.meta["excitation"] == "cw"
    assert a.duration_s == pytest.approx(0.05)
    np.testing.assert_array_equal(a.time_ps, b.time_ps)
    np.testing.assert_array_equal(a.channel, b.channel)
    np.testing.assert_array_equal(a.truth.source, b.truth.source)
    assert np.all(np.diff(a.time_ps) >= 0)
    assert np.all(np.isnan(a.truth.emission_delay_ps))


def test_numba_and_xla_walk_the_same_events(zn):
    """The CPU's numba ladder and the XLA kernel (accelerators) give the same records, up
    to the last bit of expf/logf: the same number, channels and sources, times within a
    few ps (a 1 ps rounding carries through the rest of its block)."""
    m = zn.replace({"excitation.mode": "cw"})
    a = simsps.simulate(m, 0.05, 1.0, seed=5, stage="host")
    b = simsps.simulate(m, 0.05, 1.0, seed=5, stage="device")
    assert len(a.time_ps) == len(b.time_ps) > 20_000
    np.testing.assert_array_equal(a.channel, b.channel)
    np.testing.assert_array_equal(a.truth.source, b.truth.source)
    assert np.max(np.abs(a.time_ps - b.time_ps)) <= 50


def test_cw_refuses_sweeps_and_device_records(zn):
    m = zn.replace({"excitation.mode": "cw"})
    with pytest.raises(ValueError, match="CW"):
        next(simsps.sim.engine.simulate_device_records([m], 0.01))


def test_excitation_mode_is_checked(zn):
    with pytest.raises(simsps.ModelError, match="allowed values are pulsed, cw"):
        zn.replace({"excitation.mode": "continuous"})
