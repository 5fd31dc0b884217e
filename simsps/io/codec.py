"""PicoQuant TTTR records to and from photons: T3 (sync, microtime, channel) and T2 (time
tag, channel), with overflow records and markers, vectorised over a chunk of records.

The bit layouts and overflow rules of every record type are in :mod:`simsps.io.records`;
this module only applies them. A decoder takes the wrap count reached before its chunk
and returns the one reached after it, so a file is decoded chunk by chunk.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from .records import RecordType

__all__ = [
    "encode_t3",
    "encode_t2",
    "overflow_records",
    "decode_t3",
    "decode_t2",
    "T3Records",
    "T2Records",
    "SYNC_MARKER",
]

SYNC_MARKER = 0  # marker bits of a T2 sync-input event (HydraHarp kinds)
_HH_OVERFLOW = np.uint32((1 << 31) | (0x3F << 25))
_PH_OVERFLOW = np.uint32(0xF << 28)
_HH_MAX_WRAPS_T3 = (1 << 10) - 1  # wraps one HydraHarp T3 overflow record may carry
# a HydraHarp T2 overflow record could carry 2^25 - 1 wraps, but readers that multiply the
# count by 2^25 in 32 bits (ptufile 2026.2 does) lose 2^32 from 128 on: at most 127 each
_HH_MAX_WRAPS_T2 = 127


class T3Records(NamedTuple):
    """Decoded T3 photons and markers (sync absolute), and the wraps reached."""

    sync: np.ndarray
    dtime: np.ndarray
    channel: np.ndarray
    marker_sync: np.ndarray
    marker_bits: np.ndarray
    wraps: int


class T2Records(NamedTuple):
    """Decoded T2 photons and markers (time tags absolute, in the file's unit)."""

    tag: np.ndarray
    channel: np.ndarray
    marker_tag: np.ndarray
    marker_bits: np.ndarray
    wraps: int
    last_tag: int  # the time of the last record (overflows included), -1 for none


# ---------------------------------------------------------------------------- encoding
def _interleave(photons: np.ndarray, n_ovf: np.ndarray, overflow: np.ndarray) -> np.ndarray:
    """``n_ovf[i]`` overflow records before photon ``i``, in order."""
    where_photon = np.arange(len(photons)) + np.cumsum(n_ovf)
    out = np.empty(len(photons) + len(overflow), np.uint32)
    out[where_photon] = photons
    is_ovf = np.ones(len(out), bool)
    is_ovf[where_photon] = False
    out[is_ovf] = overflow
    return out


def _gaps(wraps: np.ndarray, wraps_done: int) -> np.ndarray:
    prev = np.empty_like(wraps)
    prev[:1] = wraps_done
    prev[1:] = wraps[:-1]
    return wraps - prev


def _merge_markers(time, photon, markers, marker_word):
    """Photons' ``time`` (sync or tag, sorted) and their records' low bits ``photon``
    merged with ``markers`` = (time, bits) in time order, a marker before a photon of the
    same time: (times, records without the time field)."""
    if markers is None or not len(markers[0]):
        return time, photon
    m_time = np.asarray(markers[0], np.int64)
    m_bits = np.asarray(markers[1], np.uint32)
    if np.any((m_bits < 1) | (m_bits > 15)):
        raise ValueError("marker bits must be 1..15")
    t = np.concatenate([m_time, time])
    is_photon = np.concatenate([np.zeros(len(m_time), bool), np.ones(len(time), bool)])
    order = np.lexsort((is_photon, t))
    return t[order], np.concatenate([marker_word(m_bits), photon])[order]


def encode_t3(
    fmt: RecordType,
    sync: np.ndarray,
    dtime: np.ndarray,
    channel: np.ndarray,
    wraps_done: int,
    markers: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, int]:
    """Records of photons (``sync`` absolute, sorted) after ``wraps_done`` wraps written,
    with ``markers`` = (sync, bits 1-15) among them."""
    if fmt.layout == "picoharp":
        photon = (dtime.astype(np.uint32) << 16) | ((channel.astype(np.uint32) + 1) << 28)
        word = lambda b: _PH_OVERFLOW | (b << 16)  # noqa: E731
    else:
        photon = (dtime.astype(np.uint32) << 10) | (channel.astype(np.uint32) << 25)
        word = lambda b: np.uint32(1 << 31) | (b << 25)  # noqa: E731
    sync, photon = _merge_markers(np.asarray(sync, np.int64), photon, markers, word)
    wraps = sync // fmt.wrap
    photon |= (sync - wraps * fmt.wrap).astype(np.uint32)
    n_ovf, overflow = overflow_records(fmt, _gaps(wraps, wraps_done))
    return _interleave(photon, n_ovf, overflow), int(wraps[-1]) if len(wraps) else wraps_done


def encode_t2(
    fmt: RecordType,
    tag: np.ndarray,
    channel: np.ndarray,
    wraps_done: int,
    markers: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, int]:
    """Records of T2 photons (``tag`` absolute in the file's unit, sorted), with
    ``markers`` = (tag, bits 1-15) among them (a PicoHarp T2 marker keeps its bits in the
    tag's low 4 bits: its time is known to 16 units)."""
    w = fmt.t2_wrap
    if fmt.layout == "picoharp":
        photon = channel.astype(np.uint32) << 28
        word = lambda b: _PH_OVERFLOW | b  # noqa: E731
    else:
        photon = channel.astype(np.uint32) << 25
        word = lambda b: np.uint32(1 << 31) | (b << 25)  # noqa: E731
    tag, photon = _merge_markers(np.asarray(tag, np.int64), photon, markers, word)
    wraps = tag // w
    low = (tag - wraps * w).astype(np.uint32)
    if fmt.layout == "picoharp" and markers is not None and len(markers[0]):
        low = np.where(photon >> 28 == 0xF, low & np.uint32(~0xF & 0x0FFFFFFF), low)
    photon |= low
    n_ovf, overflow = overflow_records(fmt, _gaps(wraps, wraps_done))
    return _interleave(photon, n_ovf, overflow), int(wraps[-1]) if len(wraps) else wraps_done


def overflow_records(fmt: RecordType, gaps) -> tuple[np.ndarray, np.ndarray]:
    """Overflow records that advance the wrap counter by each of ``gaps`` in turn: the
    number of records per gap, and all records concatenated. A PicoHarp record (and a
    HydraHarp v1 one) is one wrap; later HydraHarp kinds carry a count."""
    gaps = np.asarray(gaps, np.int64)
    if not fmt.overflow_counts:
        rec = _PH_OVERFLOW if fmt.layout == "picoharp" else _HH_OVERFLOW | np.uint32(1)
        return gaps, np.full(int(gaps.sum()), rec, np.uint32)
    most = _HH_MAX_WRAPS_T3 if fmt.mode == "T3" else _HH_MAX_WRAPS_T2
    n = -(-gaps // most)
    ends = np.cumsum(n)
    vals = np.full(int(ends[-1]) if len(ends) else 0, most, np.uint32)
    has = n > 0
    vals[(ends - 1)[has]] = (gaps - most * (n - 1))[has]  # last record of each run
    return n, _HH_OVERFLOW | vals


# ---------------------------------------------------------------------------- decoding
@numba.njit(nogil=True, cache=True)
def _decode_t3(rec, pico, overflow_counts, wrap, wraps0):
    """One pass over T3 records: (sync, dtime, channel, marker sync, marker bits, wraps)."""
    n = len(rec)
    sync = np.empty(n, np.int64)
    dtime = np.empty(n, np.uint32)
    channel = np.empty(n, np.uint8)
    m_sync = np.empty(n, np.int64)
    m_bits = np.empty(n, np.uint8)
    k = m = 0
    wraps = np.int64(wraps0)
    for r in rec:
        r = np.uint32(r)
        if pico:
            ch = r >> 28
            dt = (r >> 16) & 0xFFF
            ns = r & 0xFFFF
            if ch == 0xF:
                if dt == 0:
                    wraps += 1
                else:
                    m_sync[m] = wraps * wrap + ns
                    m_bits[m] = dt & 0xF
                    m += 1
                continue
            # channel codes 1-4; 0 and 5-14 should not occur and read as 4 (as ptufile does)
            c = ch - 1 if (ch >= 1 and ch <= 4) else 4
        else:
            ch = (r >> 25) & 0x3F
            dt = (r >> 10) & 0x7FFF
            ns = r & 0x3FF
            if r >> 31:
                if ch == 0x3F:
                    wraps += max(ns, 1) if overflow_counts else 1
                elif ch >= 1 and ch <= 15:
                    m_sync[m] = wraps * wrap + ns
                    m_bits[m] = ch
                    m += 1
                continue
            c = ch
        sync[k] = wraps * wrap + ns
        dtime[k] = dt
        channel[k] = c
        k += 1
    return sync[:k], dtime[:k], channel[:k], m_sync[:m], m_bits[:m], wraps


def decode_t3(rec: np.ndarray, fmt: RecordType, wraps0: int) -> T3Records:
    """Photons and markers of a run of T3 records after ``wraps0`` wraps."""
    sync, dtime, channel, m_sync, m_bits, wraps = _decode_t3(
        np.ascontiguousarray(rec, np.uint32),
        fmt.layout == "picoharp",
        bool(fmt.overflow_counts),
        int(fmt.wrap),
        int(wraps0),
    )
    return T3Records(sync, dtime, channel, m_sync, m_bits, int(wraps))


@numba.njit(nogil=True, cache=True)
def _decode_t2(rec, pico, overflow_counts, wrap, wraps0):
    """One pass over T2 records: (tag, channel, marker tag, marker bits, wraps, last tag)."""
    n = len(rec)
    tag = np.empty(n, np.int64)
    channel = np.empty(n, np.uint8)
    m_tag = np.empty(n, np.int64)
    m_bits = np.empty(n, np.uint8)
    k = m = 0
    wraps = np.int64(wraps0)
    last = np.int64(-1)
    for r in rec:
        r = np.uint32(r)
        if pico:
            ch = r >> 28
            t = np.int64(r & 0x0FFFFFFF)
            if ch == 0xF:
                low = r & 0xF
                if low == 0:
                    wraps += 1
                    last = wraps * wrap
                else:
                    last = wraps * wrap + t
                    m_tag[m] = last
                    m_bits[m] = low
                    m += 1
                continue
            c = ch if ch < 5 else 5  # 5-14 should not occur (read as 5, as ptufile does)
        else:
            ch = (r >> 25) & 0x3F
            t = np.int64(r & 0x1FFFFFF)
            if r >> 31:
                if ch == 0x3F:
                    wraps += max(t, 1) if overflow_counts else 1
                    last = wraps * wrap
                else:
                    last = wraps * wrap + t
                    if ch <= 15:  # channel 0: the sync input
                        m_tag[m] = last
                        m_bits[m] = ch
                        m += 1
                continue
            c = ch
        last = wraps * wrap + t
        tag[k] = last
        channel[k] = c
        k += 1
    return tag[:k], channel[:k], m_tag[:m], m_bits[:m], wraps, last


def decode_t2(rec: np.ndarray, fmt: RecordType, wraps0: int) -> T2Records:
    """Photons and markers of a run of T2 records after ``wraps0`` wraps. HydraHarp-kind
    sync-input events become markers with bits :data:`SYNC_MARKER`."""
    tag, channel, m_tag, m_bits, wraps, last = _decode_t2(
        np.ascontiguousarray(rec, np.uint32),
        fmt.layout == "picoharp",
        bool(fmt.overflow_counts),
        int(fmt.t2_wrap),
        int(wraps0),
    )
    return T2Records(tag, channel, m_tag, m_bits, int(wraps), int(last))
