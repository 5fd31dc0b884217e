"""PicoQuant TTTR records to and from photons: T3 (sync, microtime, channel) and T2 (time
tag, channel), with overflow records and markers, vectorised over a chunk of records.

The bit layouts and overflow rules of every record type are in :mod:`simsps.io.records`;
this module only applies them. A decoder takes the wrap count reached before its chunk
and returns the one reached after it, so a file is decoded chunk by chunk.
"""

from __future__ import annotations

from typing import NamedTuple

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


def encode_t3(
    fmt: RecordType, sync: np.ndarray, dtime: np.ndarray, channel: np.ndarray, wraps_done: int
) -> tuple[np.ndarray, int]:
    """Records of photons (``sync`` absolute, sorted) after ``wraps_done`` wraps written."""
    wraps = sync // fmt.wrap
    photon = (sync - wraps * fmt.wrap).astype(np.uint32)
    if fmt.layout == "picoharp":
        photon |= (dtime.astype(np.uint32) << 16) | ((channel.astype(np.uint32) + 1) << 28)
    else:
        photon |= (dtime.astype(np.uint32) << 10) | (channel.astype(np.uint32) << 25)
    n_ovf, overflow = overflow_records(fmt, _gaps(wraps, wraps_done))
    return _interleave(photon, n_ovf, overflow), int(wraps[-1]) if len(wraps) else wraps_done


def encode_t2(
    fmt: RecordType, tag: np.ndarray, channel: np.ndarray, wraps_done: int
) -> tuple[np.ndarray, int]:
    """Records of T2 photons (``tag`` absolute in the file's unit, sorted)."""
    w = fmt.t2_wrap
    wraps = tag // w
    photon = (tag - wraps * w).astype(np.uint32)
    if fmt.layout == "picoharp":
        photon |= channel.astype(np.uint32) << 28
    else:
        photon |= channel.astype(np.uint32) << 25
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
def decode_t3(rec: np.ndarray, fmt: RecordType, wraps0: int) -> T3Records:
    """Photons and markers of a run of T3 records after ``wraps0`` wraps."""
    if fmt.layout == "picoharp":
        ch = rec >> 28
        dtime = (rec >> 16) & 0xFFF
        nsync = rec & 0xFFFF
        special = ch == 0xF
        is_ovf = special & (dtime == 0)
        ovf = is_ovf.astype(np.int64)
        marker = special & ~is_ovf
        bits = dtime & 0xF
        # channel codes 1-4; 0 and 5-14 should not occur and read as 4 (as ptufile does)
        channel = np.where((ch >= 1) & (ch <= 4), ch - 1, 4)
    else:
        special = (rec >> 31) == 1
        ch = (rec >> 25) & 0x3F
        dtime = (rec >> 10) & 0x7FFF
        nsync = rec & 0x3FF
        is_ovf = special & (ch == 0x3F)
        if fmt.overflow_counts:
            ovf = np.where(is_ovf, np.maximum(nsync, 1), 0).astype(np.int64)
        else:
            ovf = is_ovf.astype(np.int64)
        marker = special & (ch >= 1) & (ch <= 15)
        bits = ch
        channel = ch
    photon = ~special
    wraps = wraps0 + np.cumsum(ovf)
    sync = wraps * fmt.wrap + nsync
    return T3Records(
        sync=sync[photon],
        dtime=dtime[photon],
        channel=channel[photon],
        marker_sync=sync[marker],
        marker_bits=bits[marker].astype(np.uint8),
        wraps=int(wraps[-1]) if len(wraps) else wraps0,
    )


def decode_t2(rec: np.ndarray, fmt: RecordType, wraps0: int) -> T2Records:
    """Photons and markers of a run of T2 records after ``wraps0`` wraps. HydraHarp-kind
    sync-input events become markers with bits :data:`SYNC_MARKER`."""
    if fmt.layout == "picoharp":
        ch = rec >> 28
        time = (rec & 0x0FFFFFFF).astype(np.int64)
        special = ch == 0xF
        low = rec & 0xF
        is_ovf = special & (low == 0)
        ovf = is_ovf.astype(np.int64)
        marker = special & ~is_ovf
        bits = low
        ch = np.where(ch < 5, ch, 5)  # 5-14 should not occur (read as 5, as ptufile does)
    else:
        special = (rec >> 31) == 1
        ch = (rec >> 25) & 0x3F
        time = (rec & 0x1FFFFFF).astype(np.int64)
        is_ovf = special & (ch == 0x3F)
        if fmt.overflow_counts:
            ovf = np.where(is_ovf, np.maximum(time, 1), 0)
        else:
            ovf = is_ovf.astype(np.int64)
        marker = special & (ch <= 15)  # channel 0: the sync input
        bits = ch
    photon = ~special
    wraps = wraps0 + np.cumsum(ovf)
    tag = wraps * fmt.t2_wrap + np.where(is_ovf, 0, time)
    return T2Records(
        tag=tag[photon],
        channel=ch[photon],
        marker_tag=tag[marker],
        marker_bits=bits[marker].astype(np.uint8),
        wraps=int(wraps[-1]) if len(wraps) else wraps0,
        last_tag=int(tag[-1]) if len(tag) else -1,
    )
