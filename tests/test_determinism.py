"""Same seed, same stream: whatever the chunk size, and whatever else is simulated."""

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import simsps
from simsps.sim import engine
from simsps.stream import EMITTER_SOURCES

from .conftest import ideal_overrides


def _same(a, b):
    assert a.equal_records(b)
    for k in ("source", "state", "emitter", "arrival_ps"):
        np.testing.assert_array_equal(getattr(a.truth, k), getattr(b.truth, k))
    np.testing.assert_array_equal(a.truth.emission_delay_ps, b.truth.emission_delay_ps)


@pytest.mark.parametrize("preset", ["zn-treated", "pristine"])
def test_chunk_size_does_not_change_the_stream(preset):
    m = simsps.load_model(preset, overrides={"detection.afterpulse_probability": 0.05})
    ref = simsps.simulate(m, 1.0, power=1.5, seed=7)
    assert len(ref) > 10_000
    for chunk in (1 << 18, 3 << 18, 1 << 20):
        _same(ref, simsps.simulate(m, 1.0, power=1.5, seed=7, chunk_pulses=chunk))


def test_seed_changes_the_stream(zn):
    a = simsps.simulate(zn, 0.2, seed=1)
    b = simsps.simulate(zn, 0.2, seed=2)
    assert not a.equal_records(b)


def test_emitter_streams_do_not_depend_on_how_many_are_simulated(zn):
    m = zn.replace(ideal_overrides())
    one = simsps.simulate(m, 0.5, seed=3)
    three = simsps.simulate(m, 0.5, seed=3, emitters=3)
    sel = three.truth.emitter == 0
    np.testing.assert_array_equal(one.truth.arrival_ps, three.truth.arrival_ps[sel])
    assert set(np.unique(three.truth.emitter)) == {0, 1, 2}
    # three independent emitters give about three times the photons
    assert 2.7 < len(three) / len(one) < 3.3


def test_stream_is_time_ordered_and_well_formed(zn):
    s = simsps.simulate(zn, 0.5, seed=0)
    t = s.truth.arrival_ps
    assert np.all(np.diff(t) >= 0)
    assert s.sync.dtype == np.int64 and np.all(s.sync >= 0) and s.sync[-1] < s.n_pulses
    assert np.all(s.dtime < s.sync_period_ps / s.resolution_ps)
    assert set(np.unique(s.channel)) <= {0, 1}
    # microtime is the quantised arrival time after the sync
    np.testing.assert_array_equal(
        s.dtime, np.floor((t - s.sync * 400_000) / s.resolution_ps).astype(int)
    )
    emitter = np.isin(s.truth.source, list(EMITTER_SOURCES))
    assert np.all(np.isfinite(s.truth.emission_delay_ps[emitter]))
    assert np.all(np.isnan(s.truth.emission_delay_ps[~emitter]))
    assert s.meta["seed"] == 0 and s.meta["model"] == "zn-treated"


def test_duration_not_multiple_of_block(zn):
    s = simsps.simulate(zn, 0.1301, seed=0)  # 325250 pulses: one full block and a part
    assert s.n_pulses == 325250 and s.sync.max() < 325250 and s.sync.max() > 320000


def test_a_parameter_sweep_compiles_the_kernel_a_few_times(zn):
    """Kernel shapes come from capacity buckets (four per octave of the per-pulse detection
    probability), not from the parameters: a 5 x 4 loop over biexciton yield x power
    compiles about once per power (the yield moves the detection probability by less than
    a bucket, except where it crosses a bucket's edge), and a second pass over the same
    grid compiles nothing. With capacities that follow the parameters (multiples of 64
    slots, before issue 13) the same loop compiled 14 times; now 5."""
    from simsps.sim import kernel, switching

    # every jitted function a chunk calls on either stage
    jitted = (kernel.chunk_kernel, kernel.chunk_kernel_from_states, switching.dwell_limbs)
    yields, powers = (0.02, 0.05, 0.1, 0.2, 0.3), (0.25, 0.5, 1.0, 3.0)
    counts = []
    for _ in range(2):
        before = [f._cache_size() for f in jitted]
        for p in powers:
            for y in yields:
                simsps.simulate(zn.replace({"biexciton.quantum_yield": y}), 0.05, p, seed=1)
        counts.append([f._cache_size() - b for f, b in zip(jitted, before)])
    print("compiles over the grid (kernel, kernel from states, dwells):", counts)
    assert sum(counts[0]) > 0  # the loop compiled something: the counters see the calls
    assert counts[0][1] <= 6 and counts[0][2] <= 6, counts
    assert sum(counts[1]) == 0, counts


def _hot(m):
    """Many events close together: dead-time chains, afterpulses past chunk ends, late
    photons (a long trion) and noise."""
    return m.replace(
        {
            "detection.afterpulse_probability": 0.2,
            "detection.dead_time_ns": 300.0,
            "detection.dark_cps": 2e4,
            "background.rate_cps": 5e4,
            "detection.efficiency": 0.2,
            "trion.lifetime_ns": 40.0,
        }
    )


@settings(max_examples=12, deadline=None)
@given(st.lists(st.sampled_from([1, 2, 4]), min_size=1, max_size=8))
def test_random_chunk_boundaries_give_the_uncut_stream(sizes):
    """Chunks of random block counts (dead-time chains, afterpulses and late photons
    straddle the cuts) give the stream of one uncut chunk."""
    m = _hot(simsps.load_model("zn-treated"))
    whole = _UNCUT.get("s")
    if whole is None:
        whole = _UNCUT["s"] = simsps.simulate(m, 1.3, seed=4, chunk_pulses=16 << 18)
    total = -(-whole.n_pulses // (1 << 18))

    def plan(total_blocks, chunk_blocks):
        out, block, k = [], 0, 0
        while block < total_blocks:
            nb = sizes[k % len(sizes)]
            out.append((block, nb))
            block, k = block + nb, k + 1
        return out

    assert total == 13
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(engine, "_plan", plan)
        _same(whole, simsps.simulate(m, 1.3, seed=4))


_UNCUT: dict = {}


def test_host_and_device_steps_give_identical_streams():
    """The numba step (CPUs) and the jitted device step: the same records and truth, for
    one NC, for a population whose spot 0 holds two NCs, and without truth."""
    m = _hot(simsps.load_model("zn-treated"))
    kw = dict(seed=9, chunk_pulses=2 << 18)
    host = simsps.simulate(m, 0.6, **kw, stage="host")
    device = simsps.simulate(m, 0.6, **kw, stage="device")
    assert len(host) > 20_000 and np.any(host.truth.source == simsps.Source.AFTERPULSE)
    _same(host, device)
    p = m.replace({"exciton.lifetime_ns": 5.0, "biexciton.quantum_yield": 0.3})
    models = [m, p, p]
    spot = np.array([0, 1, 0])
    a = simsps.simulate_population(models, 0.3, 1.0, 5, spot=spot, stage="host")
    b = simsps.simulate_population(models, 0.3, 1.0, 5, spot=spot, stage="device")
    assert set(np.unique(a[0].truth.emitter)) >= {0, 2}
    for x, y in zip(a, b):
        _same(x, y)
    bare = simsps.simulate(m, 0.6, **kw, stage="device", truth=False)
    assert bare.truth is None and bare.equal_records(host)
    # records left on the device for a consumer there: a reduction on the device (photons
    # per channel) equals the host stream's
    per_channel = np.zeros(2, np.int64)
    for chunk in engine.simulate_device_records([m], 0.6, 1.0, 9, chunk_pulses=2 << 18):
        r = chunk.records
        valid = jnp.arange(r.channel.shape[1]) < r.count[:, None]
        per_channel += np.asarray([jnp.sum(valid & (r.channel == c)) for c in (0, 1)], np.int64)
    np.testing.assert_array_equal(per_channel, np.bincount(host.channel, minlength=2))


def test_kernel_options_do_not_change_the_stream(zn, monkeypatch):
    """The kernels compile with XLA's classic CPU emitters (faster here); with XLA's
    defaults the stream is bit-identical, blinking, noise and afterpulses included."""
    from simsps.sim import _jit

    m = _hot(zn)
    tuned = simsps.simulate(m, 0.3, seed=21, chunk_pulses=1 << 18)
    assert _jit._KernelJit._options_known is True  # the options were used
    monkeypatch.setattr(_jit._KernelJit, "_options_known", False)
    plain = simsps.simulate(m, 0.3, seed=21, chunk_pulses=1 << 18)
    _same(tuned, plain)


def test_kernels_compile_where_xla_does_not_know_the_options(monkeypatch):
    """An XLA that refuses the kernels' options (here: a made-up one) compiles them with
    its defaults, and says so once for the process."""
    from simsps.sim import _jit

    monkeypatch.setattr(_jit, "KERNEL_OPTIONS", {"xla_cpu_no_such_option_simsps": False})
    monkeypatch.setattr(_jit._KernelJit, "_options_known", None)
    double = _jit.kernel_jit(lambda x: 2 * x)
    np.testing.assert_array_equal(np.asarray(double(jnp.arange(3))), [0, 2, 4])
    assert _jit._KernelJit._options_known is False
    np.testing.assert_array_equal(np.asarray(double(jnp.arange(2))), [0, 2])
