"""The blink switches drawn where the kernel runs (simsps.sim.switching): exact fixed-point
times, the OR of the two processes, independence of the chunking, and the stationary start.
Expected values from numpy's exact integer arithmetic and brute-force state sequences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

import simsps
from simsps.sim import switching
from simsps.sim.switching import _dwell_bits, _or_of_two, _prefix, initial_blink_carry

from .conftest import ALPHA

BIG = np.iinfo(np.int32).max


def _states(state0, rel, n):
    """Per-pulse state of a telegraph that flips at each of ``rel``."""
    return ((np.cumsum(np.bincount(rel, minlength=n)[:n]) + state0) % 2).astype(np.int8)


_or = jax.jit(_or_of_two, static_argnames=("size",))


@settings(max_examples=80, deadline=None)
@given(
    st.integers(0, 1),
    st.integers(0, 1),
    st.lists(st.integers(0, 59), max_size=20),
    st.lists(st.integers(0, 59), max_size=6),
)
def test_the_or_of_two_telegraphs(sa, sb, a, b):
    """Every pulse's combined state is the OR of the two processes' states, ties and
    double switches at one pulse included."""
    n = 60
    a, b = np.sort(np.asarray(a, np.int64)), np.sort(np.asarray(b, np.int64))
    pa = np.full(24, BIG, np.int32)
    pa[: len(a)] = a
    pb = np.full(8, BIG, np.int32)
    pb[: len(b)] = b
    out, s0 = _or(jnp.asarray(pa), jnp.asarray(pb), jnp.int32(sa), jnp.int32(sb), size=40)
    out = np.asarray(out)
    rel = out[out < BIG]
    assert np.all(np.diff(rel) >= 0) and np.all(out[len(rel) :] == BIG)
    want = np.maximum(_states(sa, a, n), _states(sb, b, n))
    np.testing.assert_array_equal(_states(int(s0), rel, n), want)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.0, 2.0**36, width=32), min_size=1, max_size=300))
def test_fixed_point_dwells_and_their_sums_are_exact(d):
    """float32 dwells -> floor(d * 2^16) exactly, and the prefix sums of the limbs equal
    numpy's uint64 cumulative sums (carries between limbs included)."""
    d = np.asarray(d, np.float32)
    hi, lo = (np.asarray(x) for x in jax.jit(_dwell_bits)(jnp.asarray(d)))
    want = np.floor(d.astype(np.float64) * 2.0**16).astype(np.uint64)
    got = (hi.astype(np.uint64) << np.uint64(32)) | lo.astype(np.uint64)
    np.testing.assert_array_equal(got, want)
    ph, pl = (np.asarray(x) for x in jax.jit(_prefix)(jnp.asarray(hi), jnp.asarray(lo)))
    total = (ph.astype(np.uint64) << np.uint64(32)) | pl.astype(np.uint64)
    np.testing.assert_array_equal(total, np.cumsum(want))


@pytest.mark.parametrize("preset", ["zn-treated", "pristine"])
def test_switches_do_not_depend_on_the_chunking(preset):
    """Chunks of 1, 4 and 16 blocks and starved capacities (every chunk overflows and is
    drawn again with more) give the same switches."""
    m = simsps.load_model(preset)
    n = 40 << 18
    want = switching.switch_pulses(m, 1.0, 3, n, chunk_blocks=16)
    assert len(want[1]) > (300 if preset == "zn-treated" else 100)
    for nb in (1, 4):
        got = switching.switch_pulses(m, 1.0, 3, n, chunk_blocks=nb)
        assert got[0] == want[0]
        np.testing.assert_array_equal(got[1], want[1])


def test_starved_capacities_give_the_same_switches(zn, monkeypatch):
    n = 8 << 18
    want = switching.switch_pulses(zn, 1.0, 4, n, chunk_blocks=4)
    monkeypatch.setattr(switching, "dwell_capacity", lambda *a: (2, 2))
    monkeypatch.setattr(switching, "window_capacity", lambda *a: 4)
    got = switching.switch_pulses(zn, 1.0, 4, n, chunk_blocks=4)
    np.testing.assert_array_equal(got[1], want[1])


def test_an_nc_does_not_depend_on_its_neighbours(zn, pristine):
    """NC 2's switches are the same alone (emitter 2 of three identical NCs) as in a
    population of different NCs (keys by emitter, laws per emitter)."""
    n = 4 << 18
    want = switching.switch_pulses(zn, 1.0, 5, n, emitter=2)
    root = simsps.sim.keys.root(5)
    models, powers = [pristine, pristine.replace({"blinking.enabled": False}), zn], [3.0, 1.0, 1.0]
    bp = switching.blink_params(models, powers, root)
    bc = initial_blink_carry(models, powers, root)
    kinds = switching.dwell_kinds(models)
    assert kinds == ("mixed", "exponential")
    sw, _, s0, _, over = switching._switches_jit(
        bc,
        bp,
        jnp.int32(0),
        n_blocks=4,
        n_dwells=(16384, 64),
        kinds=kinds,
        window=2048,
        block_pulses=1 << 18,
    )
    assert not bool(over.any())
    got = np.asarray(sw[2])
    assert int(s0[2]) == want[0]
    np.testing.assert_array_equal(got[got < BIG], want[1])


def _residual_cdf(t_min, m, t_max):
    """CDF of the residual life of a truncated Pareto: the integral of its survival (scipy's
    truncpareto), by quadrature on a grid, over its mean."""
    law = stats.truncpareto(m - 1, t_max / t_min, scale=t_min)
    grid = np.concatenate([[0.0], np.geomspace(t_min, t_max, 20001)])
    cum = integrate.cumulative_trapezoid(law.sf(grid), grid, initial=0.0)
    return lambda x: np.interp(x, grid, cum) / law.mean()


def test_power_law_start_is_stationary(pristine):
    """First state and first switch of 400 NCs: bright with probability 1/2 (equal laws at
    Psat) and a residual-life first dwell (KS against quadrature)."""
    b = pristine.blinking
    rate = pristine.excitation.rep_rate_hz
    cdf = _residual_cdf(
        b.bright_dwell_us * 1e-6 * rate, b.power_law_exponent, b.power_law_max_s * rate
    )
    c = initial_blink_carry([pristine] * 400, [1.0] * 400, simsps.sim.keys.root(11))
    first = (np.asarray(c.end_hi[:, 0], np.float64) * 2.0**32 + np.asarray(c.end_lo[:, 0])) / 2**16
    bright = np.asarray(c.state[:, 0]) == 0
    assert stats.binomtest(int(bright.sum()), 400, 0.5).pvalue > ALPHA / 2
    assert stats.kstest(first, cdf).pvalue > ALPHA / 2
    assert np.all(np.asarray(c.end_hi[:, 1]) == 0xFFFFFFFF)  # no slow process: never


@pytest.mark.parametrize("population", ["zn-treated", "pristine", "mixed"])
def test_host_and_device_switches_are_identical(population, zn, pristine):
    """numba's integer half (the CPU stage) and the jitted chunk_switches give the same
    switches, block counts, start states and carries, chunk after chunk."""
    from simsps.sim.host_switching import host_switches

    models = {
        "zn-treated": [zn, zn],
        "pristine": [pristine] * 2,
        "mixed": [pristine, zn, zn.replace({"blinking.enabled": False})],
    }[population]
    powers = [1.0, 3.0, 0.5][: len(models)]
    root = simsps.sim.keys.root(9)
    bp = switching.blink_params(models, powers, root)
    dev = host = initial_blink_carry(models, powers, root)
    kinds = switching.dwell_kinds(models)
    n_dwells, window, nb = switching.dwell_capacity(models, powers, 2 << 18), 4096, 2
    n_switches = 0
    for block in range(0, 24, nb):
        want = switching._switches_jit(
            dev,
            bp,
            jnp.int32(block),
            n_blocks=nb,
            n_dwells=n_dwells,
            kinds=kinds,
            window=window,
            block_pulses=1 << 18,
        )
        limbs = switching.dwell_limbs(host, bp, n_dwells=n_dwells, kinds=kinds)
        got = host_switches(
            limbs,
            host,
            block,
            n_blocks=nb,
            n_dwells=n_dwells,
            window=window,
            block_pulses=1 << 18,
        )
        assert not np.asarray(want[4]).any() and not got[4].any()
        for w, g in zip(want[:3], got[:3]):
            np.testing.assert_array_equal(np.asarray(w), g)
        for w, g in zip(want[3], got[3]):
            np.testing.assert_array_equal(np.asarray(w), g)
        dev, host = want[3], got[3]
        n_switches += int((got[0] < BIG).sum())
    assert n_switches > 50


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.lists(st.integers(0, 3 * 64 - 1), max_size=12), min_size=1, max_size=3),
    st.lists(st.integers(0, 1), min_size=3, max_size=3),
)
def test_state_bits_are_the_parity_of_the_switches_at_or_before(rows, start):
    """The CPU stage's per-pulse state bits equal the kernel's search: the start state
    flipped by every switch at or before the pulse (equal switches cancel), for switch
    sets that fall on word edges, repeat, and run past the chunk."""
    from simsps.sim.host_switching import state_bits

    block_pulses, n_blocks = 64, 3  # two words a block
    length = n_blocks * block_pulses
    width = max(len(r) for r in rows) + 1
    switch = np.full((len(rows), width), BIG, np.int32)
    for e, r in enumerate(rows):
        switch[e, : len(r)] = sorted(r)
    switch[0, -1] = BIG if width > len(rows[0]) else switch[0, -1]
    state0 = np.array(start[: len(rows)], np.int32)
    bits = state_bits(switch, state0, n_blocks=n_blocks, block_pulses=block_pulses)
    assert bits.shape == (len(rows), n_blocks, block_pulses // 32)
    p = np.arange(length)
    got = (bits.reshape(len(rows), -1)[:, p // 32] >> (p % 32).astype(np.uint32)) & 1
    for e in range(len(rows)):
        n = np.searchsorted(switch[e], p, side="right")
        np.testing.assert_array_equal(got[e], (state0[e] + n) & 1)
