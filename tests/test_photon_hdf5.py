"""Photon-HDF5: phconvert validates and loads what simsps writes; round trip with truth."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simsps
from simsps.io import TTTRFileError, read, write
from simsps.io.summary import summarize

from .helpers import assert_damaged_file_fails_cleanly

phconvert = pytest.importorskip("phconvert")
# what simsps writes reads back without a single header complaint
pytestmark = pytest.mark.filterwarnings("error::simsps.io.TTTRFileWarning")


@pytest.fixture(scope="module")
def sim():
    return simsps.simulate(simsps.load_model("zn-treated"), 0.2, seed=5)


def test_valid_and_loadable_by_phconvert(tmp_path, sim):
    """Timestamps count laser periods (the sync), nanotimes the bins; the arrays are
    gzip-compressed; identity/filename is the final name; numbers are numbers."""
    p = write(tmp_path / "s.h5", sim)
    h5 = phconvert.hdf5.load_photon_hdf5(str(p))  # validates on load
    try:
        pd = h5.root.photon_data
        np.testing.assert_array_equal(pd.timestamps.read(), sim.sync)
        assert pd.timestamps_specs.timestamps_unit.read() == pytest.approx(400e-9)
        np.testing.assert_array_equal(pd.detectors.read(), sim.channel)
        np.testing.assert_array_equal(pd.nanotimes.read(), sim.dtime)
        assert pd.measurement_specs.laser_repetition_rate.read() == pytest.approx(2.5e6)
        assert pd.nanotimes_specs.tcspc_unit.read() == pytest.approx(128e-12)
        assert h5.root.identity.filename.read().decode() == "s.h5"
    finally:
        h5.close()
    import h5py

    with h5py.File(p, "r") as f:
        assert f["photon_data/timestamps"].compression == "gzip"
        assert isinstance(f["user/simsps/seed"][()], np.integer)
        assert isinstance(f["user/simsps/power"][()], np.floating)


def test_any_repetition_rate_and_bin(tmp_path):
    """80 MHz with 128 ps bins (a period of 97.66 bins) round-trips exactly."""
    m = simsps.load_model("zn-treated").replace(
        {"excitation.rep_rate_hz": 8e7, "exciton.lifetime_ns": 1.0, "trion.lifetime_ns": 0.5}
    )
    s = simsps.simulate(m, 0.05, seed=2)
    r = read(write(tmp_path / "fast.h5", s))
    assert r.equal_records(s) and r.sync_period_ps == s.sync_period_ps


def test_t2_stream_round_trip_validated_by_phconvert(tmp_path):
    t = np.cumsum(np.random.default_rng(1).integers(1, 10**7, 4000))
    ch = np.random.default_rng(2).integers(0, 2, 4000)
    s = simsps.PhotonStream.t2(t, ch, resolution_ps=1.0, duration_ps=int(t[-1]) + 5000)
    p = write(tmp_path / "t2.h5", s)
    h5 = phconvert.hdf5.load_photon_hdf5(str(p))  # validates on load
    try:
        assert "nanotimes" not in h5.root.photon_data
        assert not h5.root.setup.lifetime.read()
    finally:
        h5.close()
    r = read(p)
    assert r.is_t2 and r.equal_records(s) and r.duration_s == pytest.approx(s.duration_s)
    info = summarize(p)  # `simsps info` on a T2 file: times, no sync
    assert info["mode"] == "T2" and info["sync_rate_hz"] is None
    assert info["first_time_ps"] == t[0] and info["last_time_ps"] == t[-1]
    assert info["photons_per_channel"] == {c: int(k) for c, k in enumerate(np.bincount(ch))}
    assert info["duration_s"] == pytest.approx(s.duration_s)


def test_files_get_the_umask_permissions(tmp_path, sim):
    import os
    import stat

    old = os.umask(0o022)
    try:
        for name in ("u.h5", "u.ptu"):
            p = write(tmp_path / name, sim)
            assert stat.S_IMODE(os.stat(p).st_mode) == 0o644, name
    finally:
        os.umask(old)


def test_round_trip_with_truth_and_provenance(tmp_path, sim):
    r = read(write(tmp_path / "s.hdf5", sim))
    assert r.equal_records(sim) and r.n_pulses == sim.n_pulses
    for k in ("source", "state", "emitter", "arrival_ps"):
        np.testing.assert_array_equal(getattr(r.truth, k), getattr(sim.truth, k))
    assert r.meta["model"] == "zn-treated" and str(r.meta["seed"]) == "5"
    assert "exciton" in r.meta["model_toml"]


def test_not_photon_hdf5(tmp_path):
    import h5py

    p = tmp_path / "other.h5"
    with h5py.File(p, "w") as f:
        f["x"] = [1, 2, 3]
    with pytest.raises(TTTRFileError, match="other.h5.*photon_data"):
        read(p)
    (tmp_path / "junk.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 50)
    with pytest.raises(TTTRFileError, match="junk.h5"):
        read(tmp_path / "junk.h5")


def test_unknown_extension(tmp_path, sim):
    with pytest.raises(ValueError, match="unknown extension"):
        write(tmp_path / "s.csv", sim)


def test_streamed_chunks_equal_one_shot_and_validate(tmp_path, sim):
    m = simsps.load_model("zn-treated")
    chunks = simsps.simulate_chunks(m, 0.2, seed=5, chunk_pulses=1 << 18)  # 2 chunks
    p = write(tmp_path / "chunked.h5", chunks)
    r = read(p)
    assert r.equal_records(sim) and r.n_pulses == sim.n_pulses
    np.testing.assert_array_equal(r.truth.arrival_ps, sim.truth.arrival_ps)
    h5 = phconvert.hdf5.load_photon_hdf5(str(p))
    try:
        assert h5.root.acquisition_duration.read() == pytest.approx(sim.duration_s)
    finally:
        h5.close()


def test_interrupted_write_leaves_nothing(tmp_path, sim):
    def chunks():
        yield sim
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write(tmp_path / "x.h5", chunks())
    assert list(tmp_path.iterdir()) == []


def test_detectors_first_seen_in_later_chunks(tmp_path):
    def chunk(sync, channel):
        return simsps.PhotonStream(
            sync=sync,
            dtime=[7] * len(sync),
            channel=channel,
            sync_period_ps=400_000.0,
            resolution_ps=128.0,
        )

    parts = [chunk([], []), chunk([3, 9], [0, 0]), chunk([10**9], [1])]
    p = write(tmp_path / "late.h5", parts)  # validated on close: detector ids and counts
    r = read(p)
    assert r.equal_records(simsps.PhotonStream.concat(parts)) and r.n_pulses == 10**9 + 1


def _stream(sync, dtime, channel):
    return simsps.PhotonStream(
        sync=np.asarray(sync, np.int64),
        dtime=np.asarray(dtime, np.uint32),
        channel=np.asarray(channel, np.uint8),
        sync_period_ps=400_000.0,
        resolution_ps=128.0,
    )


streams = st.integers(0, 40).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 1 << 34), min_size=n, max_size=n),  # 2**34 pulses: 1.9 hours
        st.lists(st.integers(0, 3124), min_size=n, max_size=n),
        st.lists(st.integers(0, 1), min_size=n, max_size=n),
    )
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(streams, st.integers(1, 3))
def test_round_trip_property(tmp_path, data, n_chunks):
    sync, dtime, channel = data
    s = _stream(np.sort(np.array(sync, np.int64)), dtime, channel)
    cuts = np.linspace(0, len(s), n_chunks + 1).astype(int)
    p = write(tmp_path / "rt.h5", [s.take(slice(a, b)) for a, b in zip(cuts[:-1], cuts[1:])])
    assert read(p).equal_records(s)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_damaged_files_fail_only_with_tttr_file_error(tmp_path, sim, data):
    p = tmp_path / "d.h5"
    if not p.exists():
        write(p, sim.take(slice(0, 500)))
    assert_damaged_file_fails_cleanly(data, p.read_bytes(), tmp_path / "damaged.h5")


def test_microtime_beyond_the_period_round_trips(tmp_path):
    """A card's range may exceed the laser period: bins past it keep their sync."""
    s = simsps.PhotonStream(
        sync=[5, 6, 9],
        dtime=[3000, 2499, 2600],
        channel=[0, 1, 0],
        sync_period_ps=12500.0,
        resolution_ps=5.0,
    )
    assert read(write(tmp_path / "late.h5", s)).equal_records(s)
