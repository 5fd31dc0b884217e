"""T2 records and every PicoQuant record type: the decoders against ptufile's on random
records of each type (photons, overflows, markers), the real PicoHarp T2 file record for
record, T2 round trips through simsps's writer (hypothesis), ptufile and tttrlib."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simsps
from simsps.io import read, write_ptu
from simsps.io.codec import SYNC_MARKER, decode_t2, decode_t3
from simsps.io.records import RECORD_TYPES

from .conftest import rng
from .test_real_files import DATA

ptufile = pytest.importorskip("ptufile")
# what simsps writes reads back without a single header complaint
pytestmark = pytest.mark.filterwarnings("error::simsps.io.TTTRFileWarning")


def _random_records(kind, n, gen):
    """Valid records of ``kind``: photons, overflows (counted ones with counts) and markers."""
    what = gen.choice(3, size=n, p=[0.85, 0.1, 0.05])  # photon, overflow, marker
    rec = np.empty(n, np.uint32)
    if kind.layout == "picoharp":
        if kind.mode == "T3":
            photon = (gen.integers(1, 5, n) << 28) | (gen.integers(0, 4096, n) << 16)
            photon |= gen.integers(0, 1 << 16, n)
            ovf = np.full(n, 0xF << 28) | gen.integers(0, 1 << 16, n)
            marker = (0xF << 28) | (gen.integers(1, 16, n) << 16) | gen.integers(0, 1 << 16, n)
        else:
            photon = (gen.integers(0, 5, n) << 28) | gen.integers(0, 1 << 28, n)
            ovf = np.full(n, 0xF << 28) | (gen.integers(0, 1 << 24, n) << 4)
            marker = (0xF << 28) | (gen.integers(0, 1 << 24, n) << 4) | gen.integers(1, 16, n)
    else:
        low = 10 if kind.mode == "T3" else 25
        photon = (gen.integers(0, 63, n) << 25) | gen.integers(0, 1 << 25, n)
        ovf = (1 << 31) | (0x3F << 25) | gen.integers(0, 4 if kind.overflow_counts else 2, n)
        ovf = ovf | 0  # counts 0..3 (0 and 1 both one wrap)
        marker = (1 << 31) | (gen.integers(1, 16, n) << 25) | gen.integers(0, 1 << low, n)
        if kind.mode == "T2":  # the sync input's events too
            sync = (1 << 31) | gen.integers(0, 1 << 25, n)
            marker = np.where(gen.random(n) < 0.5, marker, sync)
    rec[:] = np.where(what == 0, photon, np.where(what == 1, ovf, marker))
    return rec


@pytest.mark.parametrize("kind", RECORD_TYPES, ids=lambda k: k.name)
def test_every_record_type_decodes_as_ptufile_does(kind):
    from ptufile import _ptufile as P

    rec = _random_records(kind, 20000, rng(kind.code % 1000))
    half = 9000  # decoded in two chunks: the wraps carry over
    if kind.mode == "T3":
        ref = np.zeros(len(rec), dtype=ptufile.T3_RECORD_DTYPE)
        P.decode_t3_records(ref, rec, kind.code)
        a = decode_t3(rec[:half], kind, 0)
        b = decode_t3(rec[half:], kind, a.wraps)
        ph = ref["channel"] >= 0
        np.testing.assert_array_equal(np.concatenate([a.sync, b.sync]), ref["time"][ph])
        np.testing.assert_array_equal(np.concatenate([a.dtime, b.dtime]), ref["dtime"][ph])
        np.testing.assert_array_equal(np.concatenate([a.channel, b.channel]), ref["channel"][ph])
        mk = (ref["channel"] < 0) & (ref["marker"] > 0)
        np.testing.assert_array_equal(
            np.concatenate([a.marker_sync, b.marker_sync]), ref["time"][mk]
        )
        np.testing.assert_array_equal(
            np.concatenate([a.marker_bits, b.marker_bits]), ref["marker"][mk] & 0xF
        )
        assert ph.sum() > 10000 and mk.sum() > 500
        return
    ref = np.zeros(len(rec), dtype=ptufile.T2_RECORD_DTYPE)
    P.decode_t2_records(ref, rec, kind.code)
    a = decode_t2(rec[:half], kind, 0)
    b = decode_t2(rec[half:], kind, a.wraps)
    tag = np.concatenate([a.tag, b.tag])
    channel = np.concatenate([a.channel, b.channel])
    mtag = np.concatenate([a.marker_tag, b.marker_tag])
    mbits = np.concatenate([a.marker_bits, b.marker_bits])
    # ptufile reads a HydraHarp sync-input event as a channel-0 photon; simsps as a marker
    sync = mbits == SYNC_MARKER
    special = (rec >> 31) == 1 if kind.layout == "hydraharp" else np.zeros(len(rec), bool)
    ph = (ref["channel"] >= 0) & ~(special & (((rec >> 25) & 0x3F) == 0))
    np.testing.assert_array_equal(tag, ref["time"][ph])
    np.testing.assert_array_equal(channel, ref["channel"][ph])
    is_sync = special & (((rec >> 25) & 0x3F) == 0)
    np.testing.assert_array_equal(mtag[sync], ref["time"][is_sync])
    mk = (ref["channel"] < 0) & (ref["marker"] > 0)
    np.testing.assert_array_equal(mtag[~sync], ref["time"][mk])
    np.testing.assert_array_equal(mbits[~sync], ref["marker"][mk])
    assert ph.sum() > 10000 and mk.sum() > 200


def test_real_picoharp_t2_file_reads_record_for_record():
    path = DATA / "picoharp_v30_t2.ptu"
    s = read(path)
    f = ptufile.PtuFile(path)
    ref = f.decode_records()
    ph = ref["channel"] >= 0
    unit = round(f.global_resolution * 1e12)
    assert s.is_t2 and s.resolution_ps == unit == 4 and s.sync_period_ps is None
    np.testing.assert_array_equal(s.time_ps, ref["time"][ph].astype(np.int64) * unit)
    np.testing.assert_array_equal(s.channel, ref["channel"][ph])
    assert len(s) == 920177 and s.duration_s == pytest.approx(7.65, abs=0.01)


def _t2_stream(times, channels, unit):
    t = np.sort(np.asarray(times, np.int64)) // unit * unit
    return simsps.PhotonStream.t2(t, channels, resolution_ps=float(unit))


@pytest.mark.parametrize("fmt,unit", [("picoharp-t2", 4), ("hydraharp-t2", 1)])
@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.lists(
        st.tuples(st.integers(0, 3 * 10**12), st.integers(0, 1)), min_size=1, max_size=300
    )
)
def test_t2_round_trip(tmp_path, fmt, unit, data):
    """Times far apart (seconds: many overflow records) and close, both channels."""
    times, channels = zip(*sorted(data))
    s = _t2_stream(times, channels, unit)
    path = write_ptu(tmp_path / f"t2_{fmt}.ptu", s, fmt)
    back = read(path)
    assert back.is_t2 and back.equal_records(s)
    f = ptufile.PtuFile(path)
    ref = f.decode_records()
    ph = ref["channel"] >= 0
    np.testing.assert_array_equal(ref["time"][ph].astype(np.int64) * unit, s.time_ps)
    np.testing.assert_array_equal(ref["channel"][ph], s.channel)


def test_t2_file_reads_in_tttrlib(tmp_path):
    tttrlib = pytest.importorskip("tttrlib")
    t = np.cumsum(rng(3).integers(1, 10**7, 5000))
    s = _t2_stream(t, rng(4).integers(0, 2, 5000), 1)
    path = write_ptu(tmp_path / "hh.ptu", s, "hydraharp-t2")
    d = tttrlib.TTTR(str(path), "PTU")
    assert len(d.macro_times) == len(s)
    res = d.header.macro_time_resolution  # s per macro time unit
    np.testing.assert_array_equal(np.round(d.macro_times * res * 1e12).astype(np.int64), s.time_ps)
    np.testing.assert_array_equal(d.routing_channels, s.channel)


@pytest.mark.parametrize("fmt", sorted(simsps.io.RECORD_FORMATS))
@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**32 - 1), n_markers=st.integers(0, 40))
def test_markers_written_among_photons_decode_as_ptufile_does(tmp_path, fmt, seed, n_markers):
    """Markers of a stream (over many wraps, some on a photon's sync) go into the file in
    time order; ptufile and simsps read them back where they were put (a PicoHarp T2
    marker keeps its bits in the tag's 4 low bits: within 16 tag units)."""
    gen = np.random.default_rng(seed)
    t2 = simsps.io.RECORD_FORMATS[fmt].mode == "T2"
    period, res = 400_000, 128
    sync = np.unique(gen.integers(0, 1 << 21, 300))  # one photon per sync: T2 order too
    dtime = gen.integers(0, 3000, len(sync))
    channel = gen.integers(0, 2, len(sync))
    m_sync = np.sort(np.concatenate([gen.integers(0, 1 << 21, n_markers), sync[:2]]))
    bits = gen.integers(1, 16, len(m_sync)).astype(np.uint8)
    s = simsps.PhotonStream(
        sync, dtime, channel, float(period), float(res), n_pulses=1 << 21,
        markers=simsps.stream.Markers(m_sync * period, bits),
    )  # fmt: skip
    p = write_ptu(tmp_path / f"m-{fmt}.ptu", s, fmt)
    r = read(p)
    with ptufile.PtuFile(p) as f:
        rec = f.decode_records(f.read_records())
        unit_ps = f.global_resolution * 1e12
    mk = rec[rec["marker"] > 0]
    np.testing.assert_array_equal(mk["marker"], bits)
    np.testing.assert_array_equal(r.markers.bits, bits)
    want = m_sync * period  # ps
    got_pq = np.round(mk["time"].astype(np.int64) * unit_ps).astype(np.int64)
    tol = 16 * unit_ps if fmt == "picoharp-t2" else 0
    assert np.all(np.abs(got_pq - want) <= tol) and np.all(np.abs(r.markers.time_ps - want) <= tol)
    photons = rec[rec["channel"] >= 0]
    assert len(photons) == len(s) and r.equal_records(s if not t2 else r)
    np.testing.assert_array_equal(photons["channel"], channel)
    # negative control: markers dropped from the stream are missing from the file
    q = read(
        write_ptu(tmp_path / "none.ptu", simsps.PhotonStream(sync, dtime, channel, period, res))
    )
    assert q.markers is None or len(q.markers) == 0


def test_periodic_markers_cover_the_run_once_whatever_the_chunks(tmp_path):
    from simsps.io.markers import with_periodic_markers

    m = simsps.load_model("zn-treated")
    for chunk_pulses in (1 << 18, 1 << 20):
        chunks = simsps.simulate_chunks(m, 0.5, 1.0, 1, chunk_pulses=chunk_pulses)
        p = write_ptu(tmp_path / f"c{chunk_pulses}.ptu", with_periodic_markers(chunks, 0.07, 3))
        r = read(p)
        want = np.round(np.arange(8) * 0.07 * 2.5e6).astype(np.int64) * 400_000
        np.testing.assert_array_equal(r.markers.time_ps, want)
        assert set(r.markers.bits.tolist()) == {3}
        assert r.equal_records(simsps.simulate(m, 0.5, 1.0, 1))
    with pytest.raises(ValueError, match="positive"):
        next(with_periodic_markers(iter([]), 0.0))
