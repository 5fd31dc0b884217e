"""PTU T3 files: exact round trips through simsps, ptufile and tttrlib; bad files give
TTTRFileError naming the file."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simsps
from simsps.io import PTUWriter, TTTRFileError, TTTRFileWarning, read, write_ptu

from .helpers import assert_damaged_file_fails_cleanly

FORMATS = ["picoharp-t3", "hydraharp-t3"]
BINS = {"picoharp-t3": 4096, "hydraharp-t3": 32768}


def _stream(sync, dtime, channel, n_pulses=None):
    return simsps.PhotonStream(
        sync=np.asarray(sync, np.int64),
        dtime=np.asarray(dtime, np.uint32),
        channel=np.asarray(channel, np.uint8),
        sync_period_ps=400_000.0,
        resolution_ps=128.0,
        n_pulses=n_pulses,
    )


@pytest.fixture(scope="module")
def sim():
    m = simsps.load_model("zn-treated")
    return simsps.simulate(m, 0.5, seed=3)


def _sparse(rng, n=2000, max_gap=5_000_000):
    sync = np.cumsum(rng.integers(0, max_gap, n)).astype(np.int64)
    return _stream(sync, rng.integers(0, 3125, n), rng.integers(0, 2, n))


@pytest.mark.parametrize("fmt", FORMATS)
def test_ptufile_and_tttrlib_read_what_we_write(tmp_path, sim, fmt):
    ptufile = pytest.importorskip("ptufile")
    tttrlib = pytest.importorskip("tttrlib")
    sparse = _sparse(np.random.default_rng(1))  # gaps of up to 2 s: thousands of overflows
    for s in (sim, sparse):
        p = tmp_path / f"{fmt}.ptu"
        write_ptu(p, s, fmt)
        with ptufile.PtuFile(p) as f:
            rec = f.decode_records()
            assert f.record_type == {"picoharp-t3": 0x00010303, "hydraharp-t3": 0x01010304}[fmt]
            assert f.global_resolution == pytest.approx(400e-9)
            assert f.tcspc_resolution == pytest.approx(128e-12)
        ph = rec[(rec["channel"] >= 0) & (rec["marker"] == 0)]
        np.testing.assert_array_equal(ph["time"], s.sync)
        np.testing.assert_array_equal(ph["dtime"], s.dtime)
        np.testing.assert_array_equal(ph["channel"], s.channel)
        t = tttrlib.TTTR(str(p), "PTU")
        np.testing.assert_array_equal(np.asarray(t.macro_times), s.sync)
        np.testing.assert_array_equal(np.asarray(t.micro_times), s.dtime)
        offset = 1 if fmt == "picoharp-t3" else 0  # tttrlib gives the raw PicoHarp channel 1..4
        np.testing.assert_array_equal(np.asarray(t.routing_channels), s.channel + offset)


@pytest.mark.parametrize("fmt", FORMATS)
def test_simulated_stream_round_trip_with_provenance(tmp_path, sim, fmt):
    p = tmp_path / "sim.ptu"
    write_ptu(
        p,
        simsps.simulate_chunks(simsps.load_model("zn-treated"), 0.5, seed=3, chunk_pulses=1 << 18),
        fmt,
    )
    r = read(p)
    assert r.equal_records(sim) and r.n_pulses == sim.n_pulses
    assert r.meta["seed"] == 3 and r.meta["model"] == "zn-treated"
    assert simsps.load_model("zn-treated").to_toml() == r.meta["model_toml"]
    assert r.meta["ptu_tags"]["TTResult_SyncRate"] == 2_500_000


streams = st.integers(0, 60).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 1 << 34), min_size=n, max_size=n),
        st.lists(st.integers(0, 4095), min_size=n, max_size=n),
        st.lists(st.integers(0, 1), min_size=n, max_size=n),
    )
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(streams, st.sampled_from(FORMATS))
def test_round_trip_property(tmp_path, data, fmt):
    sync, dtime, channel = data
    s = _stream(np.sort(np.array(sync, np.int64)), dtime, channel)
    p = tmp_path / "rt.ptu"
    write_ptu(p, s, fmt)
    r = read(p)
    assert r.equal_records(s)


def test_huge_gaps_and_single_photon(tmp_path):
    for fmt in FORMATS:
        s = _stream(
            [0, 1023, 1024, 65535, 65536, 2**33 + 5], [0, 1, 2, 4095, 7, 8], [0, 1, 0, 1, 0, 1]
        )
        write_ptu(tmp_path / "g.ptu", s, fmt)
        assert read(tmp_path / "g.ptu").equal_records(s)
        one = _stream([12345678], [100], [1])
        write_ptu(tmp_path / "o.ptu", one, fmt)
        assert read(tmp_path / "o.ptu").equal_records(one)
        empty = _stream([], [], [], n_pulses=2_500_000)
        write_ptu(tmp_path / "e.ptu", empty, fmt)
        r = read(tmp_path / "e.ptu")
        assert len(r) == 0 and r.n_pulses == 2_500_000


def test_resolution_that_does_not_cover_the_period_is_refused(tmp_path):
    s = simsps.PhotonStream(
        sync=[1], dtime=[3], channel=[0], sync_period_ps=400_000.0, resolution_ps=64.0
    )
    with pytest.raises(ValueError, match=r"picoharp-t3.*262.144 ns.*400 ns.*>= 97.66"):
        write_ptu(tmp_path / "r.ptu", s, "picoharp-t3")
    assert not list(tmp_path.iterdir())
    write_ptu(tmp_path / "r.ptu", s, "hydraharp-t3")  # 15 bits cover it


def test_interrupted_write_leaves_nothing_under_the_name(tmp_path, sim):
    target = tmp_path / "out.ptu"
    target.write_bytes(b"previous result")
    with pytest.raises(KeyboardInterrupt):
        with PTUWriter(target, sync_period_ps=400_000.0, resolution_ps=128.0) as w:
            w.write(sim)
            raise KeyboardInterrupt
    assert target.read_bytes() == b"previous result"
    assert [p.name for p in tmp_path.iterdir()] == ["out.ptu"]


def test_bad_files_raise_tttr_file_error(tmp_path, sim):
    good = tmp_path / "good.ptu"
    write_ptu(good, sim)
    data = good.read_bytes()
    cases = {
        "empty.ptu": b"",
        "magic.ptu": b"NOTAPTU!" + data[8:],
        "header.ptu": data[:200],
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(TTTRFileError) as e:
            read(tmp_path / name)
        assert name in str(e.value)
    with pytest.raises(TTTRFileError, match="no such file"):
        read(tmp_path / "missing.ptu")
    # a file cut short (a crashed acquisition): the records it holds, and a warning naming
    # both counts; the header's length, which they contradict, is dropped with a warning
    cut = tmp_path / "records.ptu"
    cut.write_bytes(data[:-4000])
    with pytest.warns(TTTRFileWarning, match="the file holds"):
        r = read(cut)
    n = len(r)
    assert 0 < n < len(sim) and r.equal_records(sim.take(np.arange(n)))


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_fuzzed_files_fail_only_with_tttr_file_error(tmp_path, data):
    s = _stream([5, 70000, 70001, 2**20], [1, 2, 3, 4], [0, 1, 0, 1])
    p = tmp_path / "f.ptu"
    write_ptu(p, s, data.draw(st.sampled_from(FORMATS)))
    assert_damaged_file_fails_cleanly(data, p.read_bytes(), p, min_changes=1)


@pytest.mark.parametrize("record_type", ["PicoHarpT3", "GenericT3"])
def test_ptu_written_by_another_program_reads_as_ptufile_does(tmp_path, record_type):
    """ptufile's writer makes T3 image-mode files (photons plus line/frame markers); tttrlib
    0.26's PTU writer leaves a corrupt header (garbage Header_End type), so it cannot serve."""
    ptufile = pytest.importorskip("ptufile")
    rng = np.random.default_rng(7)
    hist = rng.poisson(0.6, size=(6, 6, 2, 256)).astype(np.uint16)  # Y, X, channel, bin
    p = tmp_path / "image.ptu"
    ptufile.imwrite(
        p,
        hist,
        global_resolution=400e-9,
        tcspc_resolution=128e-12,
        pixel_time=1e-3,
        record_type=getattr(ptufile.PtuRecordType, record_type),
    )
    with ptufile.PtuFile(p) as f:
        rec = f.decode_records()
        assert "simsps" not in str(f.tags.get("CreatorSW_Name", ""))
    ph = rec[(rec["channel"] >= 0) & (rec["marker"] == 0)]
    assert (rec["marker"] > 0).any()  # markers are skipped by the reader
    s = read(p)
    assert len(s) == hist.sum()
    np.testing.assert_array_equal(s.sync, ph["time"])
    np.testing.assert_array_equal(s.dtime, ph["dtime"])
    np.testing.assert_array_equal(s.channel, ph["channel"])
    np.testing.assert_array_equal(np.bincount(s.dtime, minlength=256), hist.sum(axis=(0, 1, 2)))


def test_record_table_agrees_with_ptufile():
    """One row per PicoQuant record type: the same codes as ptufile's PtuRecordType, and
    the same mode (T2 / T3) as its names say; what the writer offers is in the table."""
    ptufile = pytest.importorskip("ptufile")
    from simsps.io.records import BY_CODE, WRITABLE

    theirs = {int(m.value): m.name for m in ptufile.PtuRecordType}
    assert set(BY_CODE) == set(theirs)
    for code, row in BY_CODE.items():
        assert theirs[code].endswith(row.mode), (hex(code), theirs[code], row.mode)
        assert ("HydraHarp" in theirs[code]) == row.family.startswith("HydraHarp")
        assert ("PicoHarp" in theirs[code]) == (row.layout == "picoharp")
    assert {r.writer for r in WRITABLE.values()} == {
        "picoharp-t3",
        "hydraharp-t3",
        "picoharp-t2",
        "hydraharp-t2",
    }
    assert all(r.mode == r.writer[-2:].upper() for r in WRITABLE.values())
