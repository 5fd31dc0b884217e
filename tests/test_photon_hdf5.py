"""Photon-HDF5: phconvert validates and loads what simsps writes; round trip with truth."""

import numpy as np
import pytest

import simsps
from simsps.io import TTTRFileError, read, write

phconvert = pytest.importorskip("phconvert")


@pytest.fixture(scope="module")
def sim():
    return simsps.simulate(simsps.load_model("zn-treated"), 0.2, seed=5)


def test_valid_and_loadable_by_phconvert(tmp_path, sim):
    p = write(tmp_path / "s.h5", sim)
    h5 = phconvert.hdf5.load_photon_hdf5(str(p))  # validates on load
    try:
        pd = h5.root.photon_data
        ticks = round(sim.sync_period_ps / sim.resolution_ps)
        np.testing.assert_array_equal(pd.timestamps.read(), sim.sync * ticks + sim.dtime)
        np.testing.assert_array_equal(pd.detectors.read(), sim.channel)
        np.testing.assert_array_equal(pd.nanotimes.read(), sim.dtime)
        assert pd.measurement_specs.laser_repetition_rate.read() == pytest.approx(2.5e6)
        assert pd.nanotimes_specs.tcspc_unit.read() == pytest.approx(128e-12)
    finally:
        h5.close()


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
