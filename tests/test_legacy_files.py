"""PicoQuant's files from before PTU (.pt3 / .pt2 / .ht3 / .ht2): the real HydraHarp .ht3 of
file format 2.0 (which phconvert refuses) record for record as ptufile decodes its records;
.pt3 (2.0) and .ht3 (1.0) files built here with the header layouts of PicoQuant's format
descriptions, read as phconvert's independent header parser and decoder read them; T2
files back to their times; damaged files refused naming the problem."""

import struct

import numpy as np
import pytest

import simsps
from simsps.io import TTTRFileError, TTTRFileWarning, read
from simsps.io.codec import encode_t2, encode_t3
from simsps.io.legacy import legacy_info
from simsps.io.records import BY_CODE

from .conftest import rng
from .test_real_files import DATA


def _text_header(ident: bytes, version: bytes) -> bytes:
    return (
        ident.ljust(16, b"\0")
        + version.ljust(6, b"\0")
        + b"simsps test".ljust(18, b"\0")
        + b"1.0".ljust(12, b"\0")
        + b"05/12/26 01:02:03".ljust(18, b"\0")
        + b"\r\n"
        + b"a file built by the tests".ljust(256, b"\0")
    )


_DISPLAY = bytes(64 + 36 + 16 + 20)


def _pt3(records, mode=3, res_ns=0.128, rate0=2_500_000, img=0) -> bytes:
    head = _text_header(b"PicoHarp 300", b"2.0")
    # curves, bits, routing, boards, active, mode, submode, range, offset, acq ms, stop at,
    # stop on ovfl, restart, 5 display settings
    head += struct.pack("<18i", 1, 32, 4, 1, 0, mode, 0, 0, 0, 1000, 0, 0, 0, 0, 0, 0, 0, 0)
    head += _DISPLAY
    head += b"PicoHarp 300".ljust(16, b"\0") + b"2.0".ljust(8, b"\0")
    head += struct.pack("<6i", 1001, 1, 0, 100, 0, 100) + struct.pack("<f", res_ns)
    head += struct.pack("<2i", 0, 0) + bytes(4 * 6 * 4)
    head += struct.pack("<9i", 0, 0, 0, rate0, 12345, 1000, 0, len(records), img)
    head += bytes(4 * img)
    return head + records.astype("<u4").tobytes()


def _ht3(records, version=b"1.0", mode=3, res_ps=16.0, sync_rate=1_000_000, n_inputs=2):
    head = _text_header(b"HydraHarp", version)
    head += struct.pack("<6i", 1, 32, 0, mode, 0, 4) + struct.pack("<d", res_ps)
    head += struct.pack("<10i", 0, 1000, 0, 0, 0, 0, 0, 0, 0, 0)
    head += _DISPLAY
    head += b"HydraHarp 400".ljust(16, b"\0") + b"930021".ljust(8, b"\0")
    head += struct.pack("<2i", 1001, 1) + bytes(8 * 10)
    head += struct.pack("<d", 1.0) + struct.pack("<q", 3)
    head += struct.pack("<8i", n_inputs, 0, 0, 0, 1, 0, 0, 0)
    head += bytes(4 * 5 * n_inputs)
    head += struct.pack("<4i", sync_rate, 1000, 0, 0) + struct.pack("<q", len(records))
    return head + records.astype("<u4").tobytes()


def _t3_photons(gen, n, max_dtime, channels):
    sync = np.cumsum(gen.integers(0, 300_000, n)).astype(np.int64)
    return sync, gen.integers(0, max_dtime, n), gen.integers(0, channels, n)


def test_real_ht3_format_2_reads_record_for_record():
    ptufile = pytest.importorskip("ptufile")
    from ptufile import _ptufile as P

    path = DATA / "hydraharp_v20.ht3"
    info = legacy_info(path)
    s = read(path)
    assert (info.version, info.mode, info.header_bytes, info.n_records) == ("2.0", "T3", 800, 53606)
    assert info.fields["sync_rate_hz"] == 998898 and s.resolution_ps == 16.0
    rec = np.fromfile(path, dtype="<u4", offset=info.header_bytes)
    assert len(rec) == info.n_records  # the header's layout ends where the records start
    ref = np.zeros(len(rec), dtype=ptufile.T3_RECORD_DTYPE)
    P.decode_t3_records(ref, rec, 0x01010304)
    ph = ref["channel"] >= 0
    np.testing.assert_array_equal(s.sync, ref["time"][ph])
    np.testing.assert_array_equal(s.dtime, ref["dtime"][ph])
    np.testing.assert_array_equal(s.channel, ref["channel"][ph])
    assert len(s) == 44141 and s.duration_s == pytest.approx(10.0, abs=0.01)


def test_pt3_reads_as_phconvert_reads_it(tmp_path):
    pq = pytest.importorskip("phconvert.pqreader")
    sync, dtime, ch = _t3_photons(rng(1), 3000, 3125, 2)
    rec, _ = encode_t3(BY_CODE[0x00010303], sync, dtime, ch, 0)
    path = tmp_path / "nc.pt3"
    path.write_bytes(_pt3(rec))
    s = read(path)
    ts, det, nano, meta, _ = pq.load_pt3(str(path))
    photon = det < 15
    np.testing.assert_array_equal(s.sync, ts[photon])
    np.testing.assert_array_equal(s.dtime, nano[photon])
    np.testing.assert_array_equal(s.channel, det[photon] - 1)
    assert s.sync_period_ps == pytest.approx(1e12 / meta["ttmode"]["InpRate0"][0])
    assert s.resolution_ps == pytest.approx(meta["nanotimes_unit"] * 1e12)
    assert s.equal_records(simsps.PhotonStream(sync, dtime, ch, s.sync_period_ps, s.resolution_ps))


def test_ht3_format_1_reads_as_phconvert_reads_it(tmp_path):
    pq = pytest.importorskip("phconvert.pqreader")
    sync, dtime, ch = _t3_photons(rng(2), 3000, 32768, 4)
    rec, _ = encode_t3(BY_CODE[0x00010304], sync, dtime, ch, 0)  # v1: one wrap per record
    path = tmp_path / "nc.ht3"
    path.write_bytes(_ht3(rec, n_inputs=4))
    s = read(path)
    ts, det, nano, meta, _ = pq.load_ht3(str(path))
    photon = det < 64  # the special bit is det's highest
    np.testing.assert_array_equal(s.sync, ts[photon])
    np.testing.assert_array_equal(s.dtime, nano[photon])
    np.testing.assert_array_equal(s.channel, det[photon])
    np.testing.assert_array_equal(s.sync, sync)
    assert s.sync_period_ps == pytest.approx(1e12 / meta["ttmode"]["SyncRate"][0])


@pytest.mark.parametrize("kind,build", [(0x00010203, "pt2"), (0x01010204, "ht2")])
def test_t2_legacy_files_give_their_times_back(tmp_path, kind, build):
    fmt = BY_CODE[kind]
    t = np.cumsum(rng(3).integers(1, 10**8, 2000))
    ch = rng(4).integers(0, 2, 2000)
    rec, _ = encode_t2(fmt, t, ch, 0)
    data = _pt3(rec, mode=2) if build == "pt2" else _ht3(rec, version=b"2.0", mode=2)
    path = tmp_path / f"nc.{build}"
    path.write_bytes(data)
    s = read(path)
    unit = 4 if build == "pt2" else 1
    assert s.is_t2 and s.resolution_ps == unit
    np.testing.assert_array_equal(s.time_ps, t * unit)
    np.testing.assert_array_equal(s.channel, ch)


def test_damaged_legacy_files_are_refused_naming_the_problem(tmp_path):
    sync, dtime, ch = _t3_photons(rng(5), 100, 3125, 2)
    rec, _ = encode_t3(BY_CODE[0x00010303], sync, dtime, ch, 0)
    good = _pt3(rec)
    cases = {
        "short header": (good[:300], "truncated header"),
        "no sync rate": (_pt3(rec, rate0=0), "sync count rate 0"),
        "version": (good.replace(b"2.0\0\0\0", b"9.9\0\0\0", 1), "file format '9.9'"),
        "timeharp": (_text_header(b"TimeHarp 200", b"6.0") + bytes(400), "100 ns clock"),
    }
    for name, (data, message) in cases.items():
        path = tmp_path / f"{name.replace(' ', '_')}.pt3"
        path.write_bytes(data)
        with pytest.raises(TTTRFileError, match=message) as e:
            read(path)
        assert path.name in str(e.value)
    cut = tmp_path / "truncated.pt3"
    cut.write_bytes(good[:-40])  # the records it holds, with a warning
    full = tmp_path / "full.pt3"
    full.write_bytes(good)
    whole = read(full)
    with pytest.warns(TTTRFileWarning, match=f"announces {len(rec)} records, the file holds"):
        r = read(cut)
    assert 0 < len(r) < len(whole) and r.equal_records(whole.take(np.arange(len(r))))
