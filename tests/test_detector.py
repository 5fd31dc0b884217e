"""Detectors: dead time, dark counts, afterpulsing. Fixed seeds, alpha = 1e-3."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import simsps
from simsps import Source
from simsps.sim import host_step, step
from simsps.sim.kernel import channel_bits

from .conftest import ALPHA
from .helpers import Z_CRIT, poisson_z, run, two_rate_z

DEAD_PS = 22_000


def _dark_model(zn, p_ap=0.05, dark=2e4):
    """Only dark counts (efficiency 0, no background) and afterpulses."""
    return zn.replace(
        {
            "detection.efficiency": 0.0,
            "background.rate_cps": 0.0,
            "background.prompt_cps": 0.0,
            "detection.dark_cps": dark,
            "detection.afterpulse_probability": p_ap,
        }
    )


def _brute_force_dead_time(t, channel, dead, last):
    """The sequential rule, per channel: kept when a dead time after the last kept one."""
    last = dict(last)
    keep = []
    for x, c in zip(t, channel):
        ok = x - last[c] >= dead
        keep.append(ok)
        if ok:
            last[c] = x
    return np.array(keep, bool), last


@pytest.mark.parametrize("n_ch", [2, 4])
@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 3_000_000), st.integers(0, 3)), max_size=60),
    st.integers(0, 900_000),
    st.integers(-3, 0),
)
def test_dead_time_of_both_steps_is_the_sequential_rule(n_ch, events, dead, last_pulse):
    """The device step's vectorised dead time (far events kept outright, close chains
    resolved in a while loop) and the numba one agree with the plain sequential rule,
    across pulse boundaries and from a carried last time, for 2 and 4 detectors."""
    period = 400_000
    events = sorted(events)
    t_abs = np.array([e[0] for e in events], np.int64)
    channel = np.array([e[1] % n_ch for e in events], np.int64)
    last_abs = {c: last_pulse * period - 1234 * (c % 2 == 0) - 77 * c for c in range(n_ch)}
    want, want_last = _brute_force_dead_time(t_abs.tolist(), channel.tolist(), dead, last_abs)
    pulse, t = t_abs // period, t_abs % period
    last = np.array([[last_abs[c] // period, last_abs[c] % period] for c in range(n_ch)], np.int64)
    meta = np.asarray(channel_bits(channel))  # the channel as the packed fields hold it
    det = step.DetectorParams(
        dead_ps=jnp.int32(dead),
        dead_periods=jnp.int32(-(-dead // period) + 1),
        ap_threshold=jnp.int32(0),
        ap_table=jnp.zeros(4, jnp.int32),
        period_ps=jnp.int32(period),
        resolution_ps=jnp.int32(1),
    )
    n = len(t_abs)
    pad = 64 - n  # invalid entries after the valid ones, as in the step's buffers
    keep, new_last = jax.jit(step._dead_time)(
        jnp.asarray(np.concatenate([pulse, np.full(pad, step.BIG)]), jnp.int32),
        jnp.asarray(np.concatenate([t, np.zeros(pad)]), jnp.int32),
        jnp.asarray(np.concatenate([meta, np.zeros(pad)]), jnp.int32),
        jnp.arange(64) < n,
        jnp.asarray(last, jnp.int32),
        det,
    )
    np.testing.assert_array_equal(np.asarray(keep)[:n], want)
    got_last = np.asarray(new_last).astype(np.int64)
    assert [got_last[c, 0] * period + got_last[c, 1] for c in range(n_ch)] == [
        want_last[c] for c in range(n_ch)
    ]
    # the numba step: the events as its small set, no kernel photons, no afterpulses; both
    # passes apply the rule (the second keeps all the first kept, from the same start)
    cols = (
        pulse.astype(np.int64),
        t.astype(np.int64),
        meta.astype(np.int64),
        np.zeros(n, np.uint32),
        np.arange(n, dtype=np.float32),
    )
    none = host_step._alloc(0)
    no_slots = (
        np.zeros((1, 0, 1), np.int32), np.zeros((1, 0, 2, 1), np.int32),
        np.zeros((1, 0, 2, 1), bool), np.zeros((1, 0, 2, 1), np.uint8),
        np.zeros((1, 0, 1), np.uint32), np.zeros((1, 0, 2), np.uint32),
        np.zeros((1, 0, 2, 1), np.float32),
    )  # fmt: skip
    refs = (np.empty(0, np.int64),) * 3
    host_last, host_last2 = last.copy(), last.copy()
    out = host_step._out(n, True)
    k, _ = host_step._passes(
        *no_slots, refs, cols, none, 0, 0, host_last, host_last2, 1 << 40, period, dead, 0,
        np.zeros(4, np.int64), 0, 1.0, 1, np.zeros(1, np.uint16), True, (0, 0), out,
    )  # fmt: skip
    np.testing.assert_array_equal(out[6][:k].astype(int), np.flatnonzero(want))
    np.testing.assert_array_equal(out[2][:k], channel[want])  # the channel unpacked
    np.testing.assert_array_equal(host_last, got_last)
    np.testing.assert_array_equal(host_last2, got_last)


def test_no_two_detections_closer_than_dead_time_at_high_rate(zn):
    m = zn.replace({"detection.efficiency": 0.6, "blinking.enabled": False})
    s = simsps.simulate(m, 0.2, power=3.0, seed=5)
    for ch in (0, 1):
        t = s.truth.arrival_ps[s.channel == ch]
        assert np.diff(t).min() >= DEAD_PS
    # without the dead time, some would have been closer
    s0 = simsps.simulate(m.replace({"detection.dead_time_ns": 0.0}), 0.2, power=3.0, seed=5)
    t = s0.truth.arrival_ps[s0.channel == 0]
    assert np.diff(t).min() < DEAD_PS


@pytest.mark.parametrize("engine", ["jax", "reference"])
def test_dark_count_and_afterpulse_rates(zn, engine):
    """Dark counts per channel at r / (1 + r * dead) (non-paralysable), afterpulses per
    primary p / (1 - p) (a geometric cascade; the kernel keeps two generations, a p^3 = 1e-4
    relative difference), afterpulse delays after the parent's dead time ~ Exp(tau_ap)."""
    p, r = 0.05, 2e4
    m = _dark_model(zn, p_ap=p, dark=r)
    dur = 4.0
    s = run(engine, m, dur, seed=13)
    src = s.truth.source
    dead_s = DEAD_PS * 1e-12
    for ch in (0, 1):
        n_dark = int(np.sum((src == Source.DARK) & (s.channel == ch)))
        assert abs(poisson_z(n_dark, r / (1 + r * dead_s) * dur)) < Z_CRIT
    n_dark = int(np.sum(src == Source.DARK))
    n_ap = int(np.sum(src == Source.AFTERPULSE))
    assert abs(poisson_z(n_ap, n_dark * p / (1 - p))) < Z_CRIT
    # delay of an afterpulse from the previous detection on its channel
    gaps = []
    for ch in (0, 1):
        on = s.channel == ch
        t = s.truth.arrival_ps[on]
        is_ap = src[on] == Source.AFTERPULSE
        gaps.append((t[1:] - t[:-1])[is_ap[1:]] - DEAD_PS)
    gaps = np.concatenate(gaps)
    tau = m.detection.afterpulse_time_constant_ns * 1e3
    assert stats.kstest(gaps, stats.expon(scale=tau).cdf).pvalue > ALPHA


def test_kernel_and_reference_afterpulse_alike(zn):
    """Two-sample: afterpulse and dark rates of the kernel and the reference."""
    m = _dark_model(zn, p_ap=0.1, dark=5e4)
    a, b = run("jax", m, 2.0, seed=1), run("reference", m, 2.0, seed=1)
    for source in (Source.DARK, Source.AFTERPULSE):
        na = int(np.sum(a.truth.source == source))
        nb = int(np.sum(b.truth.source == source))
        assert abs(two_rate_z(na, 2.0, nb, 2.0)) < Z_CRIT


def test_background_rates(zn):
    """Uniform background over the period, prompt background after the pulse."""
    m = zn.replace(
        {
            "detection.efficiency": 0.0,
            "detection.dark_cps": 0.0,
            "detection.afterpulse_probability": 0.0,
            "background.rate_cps": 5e4,
            "background.prompt_cps": 2e4,
        }
    )
    s = simsps.simulate(m, 1.0, seed=17)
    src = s.truth.source
    n_u = int(np.sum(src == Source.BACKGROUND))
    n_p = int(np.sum(src == Source.PROMPT_BACKGROUND))
    dead_s = DEAD_PS * 1e-12
    assert abs(poisson_z(n_u + n_p, 7e4 / (1 + 3.5e4 * dead_s))) < Z_CRIT
    rel = (s.truth.arrival_ps - s.sync * 400_000)[src == Source.BACKGROUND]
    assert stats.kstest(rel, stats.uniform(scale=400_000).cdf).pvalue > ALPHA
    prompt_rel = (s.truth.arrival_ps - s.sync * 400_000)[src == Source.PROMPT_BACKGROUND]
    assert np.median(prompt_rel) < 2_500 and prompt_rel.min() > 1_000
    # the prompt background follows the laser: three times the power, three times the rate
    s3 = simsps.simulate(m.replace({"background.rate_cps": 0.0}), 1.0, power=3.0, seed=18)
    n3 = int(np.sum(s3.truth.source == Source.PROMPT_BACKGROUND))
    assert abs(poisson_z(n3, 6e4 / (1 + 3e4 * dead_s))) < Z_CRIT


def _arm_fractions(split, n_ch):
    """Where a photon goes (closed form): the first arm with ``split``, then uniformly
    one of its n/2 detectors; the second arm's n - n/2 share the rest."""
    a = n_ch // 2
    return np.array([split / a] * a + [(1 - split) / (n_ch - a)] * (n_ch - a))


@pytest.mark.parametrize("mode", ["pulsed", "cw"])
@pytest.mark.parametrize("engine", ["jax", "reference"])
def test_four_detectors_routing_dark_counts_and_dead_time(zn, engine, mode):
    """detection.channels = 4: emitter photons and background over the detectors as the
    two arms split them (chi-square against the closed form, with a wrong-split negative
    control), dark counts on every detector at the dark rate, dead time per detector."""
    m = zn.replace(
        {
            "detection.channels": 4,
            "detection.split_ratio": 0.3,
            # CW: a rate low enough that the arms' different dead-time losses stay unseen
            "detection.efficiency": 0.2 if mode == "pulsed" else 0.005,
            "detection.dark_cps": 2000.0,
            "excitation.mode": mode,
        }
    )
    s = run(engine, m, 0.4, power=1.0, seed=11)
    src = s.truth.source
    sig = np.isin(src, [Source.EXCITON, Source.TRION, Source.BIEXCITON, Source.BACKGROUND])
    counts = np.bincount(s.channel[sig], minlength=4)
    assert len(counts) == 4 and counts.sum() > 5000
    p_ok = stats.chisquare(counts, counts.sum() * _arm_fractions(0.3, 4)).pvalue
    assert p_ok > ALPHA
    p_bad = stats.chisquare(counts, counts.sum() * _arm_fractions(0.4, 4)).pvalue
    assert p_bad < ALPHA  # negative control: another split is seen
    dark = np.bincount(s.channel[src == Source.DARK], minlength=4)
    z = (dark - 2000.0 * s.duration_s) / np.sqrt(2000.0 * s.duration_s)
    assert np.all(np.abs(z) < Z_CRIT), z  # dead-time losses of dark counts ~1e-4: negligible
    for ch in range(4):
        t = s.truth.arrival_ps[s.channel == ch]
        assert np.diff(t).min() >= DEAD_PS


def test_four_detectors_same_stream_on_both_steps_and_any_chunk(zn):
    m = zn.replace(
        {"detection.channels": 4, "detection.dark_cps": 500.0, "detection.efficiency": 0.2}
    )
    a = simsps.simulate(m, 0.3, 1.0, 2)
    b = simsps.simulate(m, 0.3, 1.0, 2, stage="device", chunk_pulses=1 << 18)
    assert a.equal_records(b) and np.array_equal(a.truth.source, b.truth.source)
    assert set(np.unique(a.channel).tolist()) == {0, 1, 2, 3}
    # any two detectors form an HBT: the same antibunching across the arms and within one
    g = [simsps.analysis.pulsed_g2(a, channels=pair) for pair in ((0, 2), (0, 1))]
    assert all(x.g2_zero_corrected < 0.5 for x in g)
    z = (g[0].g2_zero_corrected - g[1].g2_zero_corrected) / np.hypot(
        g[0].g2_zero_stderr, g[1].g2_zero_stderr
    )
    assert abs(z) < Z_CRIT
