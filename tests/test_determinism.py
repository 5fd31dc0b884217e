"""Same seed, same stream: whatever the chunk size, and whatever else is simulated."""

import numpy as np
import pytest

import simsps
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
    from simsps.sim import kernel

    yields, powers = (0.02, 0.05, 0.1, 0.2, 0.3), (0.25, 0.5, 1.0, 3.0)
    counts = []
    for _ in range(2):
        before = kernel.chunk_kernel._cache_size()
        for p in powers:
            for y in yields:
                simsps.simulate(zn.replace({"biexciton.quantum_yield": y}), 0.05, p, seed=1)
        counts.append(kernel.chunk_kernel._cache_size() - before)
    print("compiles over the grid:", counts)
    assert counts[0] <= 6, counts
    assert counts[1] == 0, counts
