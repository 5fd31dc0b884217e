"""PicoQuant's files from before PTU: PicoHarp 300 ``.pt3`` / ``.pt2`` (file format 2.0) and
HydraHarp 400 ``.ht3`` / ``.ht2`` (file formats 1.0 and 2.0; phconvert reads only 1.0).

Each starts with a fixed binary header (PicoQuant's file format descriptions; the layouts
below, little-endian, packed): an ASCII part (``Ident``, ``FormatVersion``, creator, time,
comment), the measurement settings, the hardware (one board of a PicoHarp; a HydraHarp's
modules and input channels), a TTTR part (count rates, the number of records, an optional
imaging header), then the 32-bit records, whose bit layouts are those of the PTU record
types of the same hardware (``.ht3`` 1.0: HydraHarp v1 records, 2.0: v2). The kind is told
by the ``Ident`` and format version, not the file name. TimeHarp 200 ``.t3r`` files keep a
100 ns clock, not the laser's sync, beside each microtime: they do not fit a T3 stream and
are refused with that reason.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..stream import Markers, PhotonStream
from .codec import decode_t2, decode_t3
from .errors import TTTRFileError
from .records import BY_CODE
from .validate import (
    check_channels,
    check_duration,
    check_memory,
    guarded,
    guarded_iter,
    record_count,
    regular_file,
    time_base,
)

__all__ = ["LegacyInfo", "legacy_info", "iter_legacy", "read_legacy", "IDENTS"]

IDENTS = (b"PicoHarp 300", b"HydraHarp", b"TimeHarp 200")
_TEXT = 328  # Ident 16, FormatVersion 6, CreatorName 18, CreatorVersion 12, FileTime 18,
# CRLF 2, Comment 256
_DISPLAY = 64 + 36 + 16 + 20  # 8 curve mappings, 3 parameters, repeat settings, script name


@dataclass
class LegacyInfo:
    path: str
    ident: str
    version: str
    mode: str  # "T2" or "T3"
    record_type: int  # the PTU code of the records' layout
    header_bytes: int
    n_records: int
    sync_period_ps: float | None
    resolution_ps: float  # T3: microtime bin; T2: time-tag unit
    acquisition_ms: int
    fields: dict

    @property
    def kind(self):
        return BY_CODE[self.record_type]


def _text(b: bytes) -> str:
    return b.split(b"\x00", 1)[0].decode("latin-1").strip()


class _Cursor:
    def __init__(self, data: bytes, path):
        self.data, self.pos, self.path = data, 0, path

    def take(self, fmt: str):
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise TTTRFileError(self.path, "truncated header")
        out = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return out

    def skip(self, n: int) -> None:
        if self.pos + n > len(self.data):
            raise TTTRFileError(self.path, "truncated header")
        self.pos += n


def _read_head(path: Path, size: int = 1 << 16) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(size)
    except OSError as e:
        raise TTTRFileError(path, f"cannot read: {e.strerror}") from None


@guarded
def legacy_info(path) -> LegacyInfo:
    """The header of a legacy PicoQuant file, checked against the file's size."""
    path = Path(path)
    size = regular_file(path)
    head = _read_head(path)
    ident = _text(head[:16])
    version = _text(head[16:22])
    if ident.startswith("TimeHarp"):
        raise TTTRFileError(
            path,
            "TimeHarp 200 .t3r file: its records carry a 100 ns clock, not the laser's sync, "
            "beside each microtime, which simsps's T3 streams cannot hold; convert it with "
            "PicoQuant's software to PTU",
        )
    c = _Cursor(head, path)
    c.skip(_TEXT)
    if ident == "PicoHarp 300":
        if version != "2.0":
            raise TTTRFileError(path, f"PicoHarp file format {version!r}: simsps reads 2.0")
        info = _picoharp(c, path)
    elif ident == "HydraHarp":
        if version not in ("1.0", "2.0"):
            raise TTTRFileError(path, f"HydraHarp file format {version!r}: simsps reads 1.0, 2.0")
        info = _hydraharp(c, path, version)
    else:
        raise TTTRFileError(path, f"not a PicoQuant file (ident {ident!r})")
    info.update(path=str(path), ident=ident, version=version, header_bytes=c.pos)
    if info["n_records"] < 0:
        raise TTTRFileError(path, f"negative record count {info['n_records']}")
    info["n_records"] = record_count(path, info["n_records"], c.pos, size)
    period, res = time_base(path, info["sync_period_ps"], info["resolution_ps"], info["mode"])
    info.update(sync_period_ps=period, resolution_ps=res)
    return LegacyInfo(**info)


def _picoharp(c: _Cursor, path) -> dict:
    # curves, bits per record, routing channels, boards, active curve, mode, submode, range,
    # offset, acquisition time (ms), stop at, stop on overflow, restart, 5 display settings
    h = c.take("<18i")
    bits, n_boards, mode, acq_ms = h[1], h[3], h[5], h[9]
    c.skip(_DISPLAY)
    if bits != 32:
        raise TTTRFileError(path, f"{bits} bits per record; PicoHarp records have 32")
    if n_boards < 1:
        raise TTTRFileError(path, f"{n_boards} boards in the header")
    boards = []
    for _ in range(n_boards):  # ident 16, version 8, serial, divider, CFDs, resolution (ns)
        c.skip(24)
        serial, divider, zc0, lvl0, zc1, lvl1 = c.take("<6i")
        (res_ns,) = c.take("<f")
        c.take("<2i")  # router model, router enabled
        c.skip(4 * 6 * 4)  # four router channels
        boards.append((serial, divider, res_ns))
    # TTTR part: external devices, 2 reserved, count rates 0 and 1, stop after, reason,
    # records, imaging header size
    _, _, _, rate0, rate1, stop_after, _, n_records, img = c.take("<9i")
    c.skip(4 * max(img, 0))
    if mode not in (2, 3):
        raise TTTRFileError(path, f"measurement mode {mode}: not a TTTR (T2 or T3) file")
    serial, divider, res_ns = boards[0]
    if mode == 3:
        if not rate0 > 0:
            raise TTTRFileError(path, f"sync count rate {rate0}: no time base")
        period, res, code = 1e12 / rate0, float(res_ns) * 1e3, 0x00010303
    else:  # T2: 4 ps time tags, the laser (if any) is one of the inputs
        period, res, code = None, 4.0, 0x00010203
    if not (math.isfinite(res) and res > 0):
        raise TTTRFileError(path, f"invalid resolution {res_ns} ns")
    return dict(
        mode=f"T{mode}",
        record_type=code,
        n_records=n_records,
        sync_period_ps=None if period is None else round(period, 3),
        resolution_ps=round(res, 6),
        acquisition_ms=acq_ms,
        fields=dict(
            hardware_serial=serial,
            sync_divider=divider,
            count_rate_0=rate0,
            count_rate_1=rate1,
            stop_after_ms=stop_after,
        ),
    )


def _hydraharp(c: _Cursor, path, version: str) -> dict:
    # curves, bits per record, active curve, mode, submode, binning; resolution (ps, double);
    # offset, acquisition time (ms), stop at, stop on overflow, restart, 5 display settings
    _, bits, _, mode, _, _ = c.take("<6i")
    (res_ps,) = c.take("<d")
    acq_ms = c.take("<10i")[1]
    c.skip(_DISPLAY)
    if bits != 32:
        raise TTTRFileError(path, f"{bits} bits per record; HydraHarp records have 32")
    c.skip(24)  # hardware ident, part number
    serial, n_modules = c.take("<2i")
    c.skip(8 * 10)  # module model and version codes
    (base_ps,) = c.take("<d")
    c.take("<q")  # inputs enabled
    n_inputs, _, _, _, divider, _, _, _ = c.take("<8i")
    if not 0 <= n_inputs <= 64:
        raise TTTRFileError(path, f"{n_inputs} input channels in the header")
    # per input: module index, CFD level, CFD zero cross, offset (and, in 1.0, its count
    # rate); 2.0 lists the count rates after all inputs: the same bytes either way
    c.skip(4 * 5 * n_inputs)
    # TTTR part: sync rate, stop after, stop reason, imaging header size, records (int64)
    sync_rate, stop_after, _, img = c.take("<4i")
    (n_records,) = c.take("<q")
    c.skip(4 * max(img, 0))
    if mode not in (2, 3):
        raise TTTRFileError(path, f"measurement mode {mode}: not a TTTR (T2 or T3) file")
    v2 = version == "2.0"
    if mode == 3:
        if not sync_rate > 0:
            raise TTTRFileError(path, f"sync rate {sync_rate}: no time base")
        code = 0x01010304 if v2 else 0x00010304
        period, res = 1e12 / sync_rate, float(res_ps)
    else:
        code = 0x01010204 if v2 else 0x00010204
        period, res = None, float(base_ps)
    if not (math.isfinite(res) and res > 0):
        raise TTTRFileError(path, f"invalid resolution {res} ps")
    return dict(
        mode=f"T{mode}",
        record_type=code,
        n_records=int(n_records),
        sync_period_ps=None if period is None else round(period, 3),
        resolution_ps=round(res, 6),
        acquisition_ms=acq_ms,
        fields=dict(
            hardware_serial=serial,
            modules=n_modules,
            inputs=n_inputs,
            sync_divider=divider,
            sync_rate_hz=sync_rate,
            stop_after_ms=stop_after,
        ),
    )


def iter_legacy(path, chunk_records: int = 1 << 22) -> Iterator[PhotonStream]:
    """Photon chunks of a legacy file (one chunk in memory at a time)."""
    from .ptu import check_chunk

    chunk_records = check_chunk(chunk_records)
    return _iter_legacy(legacy_info(path), chunk_records)


@guarded_iter
def _iter_legacy(info: LegacyInfo, chunk_records: int) -> Iterator[PhotonStream]:
    kind = info.kind
    meta = {
        "source_file": info.path,
        "record_type": f"{info.record_type:#010x}",
        "legacy_format": f"{info.ident} {info.version}",
        **info.fields,
    }
    period = None if info.sync_period_ps is None else int(round(info.sync_period_ps))
    unit = info.resolution_ps
    wraps, last = 0, -1
    with open(info.path, "rb") as fh:
        fh.seek(info.header_bytes)
        left = info.n_records
        while left > 0:
            n = min(chunk_records, left)
            rec = np.fromfile(fh, dtype="<u4", count=n)
            if len(rec) < n:
                raise TTTRFileError(info.path, "truncated while reading records")
            left -= n
            if info.mode == "T2":
                d = decode_t2(rec, kind, wraps)
                wraps, last = d.wraps, max(last, d.last_tag)
                check_duration(info.path, (last + 1) * unit * 1e-12)
                check_channels(info.path, d.channel)
                to_ps = lambda x: np.round(x * unit).astype(np.int64)  # noqa: E731
                yield PhotonStream.t2(
                    to_ps(d.tag),
                    d.channel,
                    resolution_ps=unit,
                    duration_ps=int(round((last + 1) * unit)) if last >= 0 else 0,
                    meta=meta,
                    markers=Markers(to_ps(d.marker_tag), d.marker_bits)
                    if len(d.marker_tag)
                    else None,
                )
                continue
            d = decode_t3(rec, kind, wraps)
            wraps = d.wraps
            check_duration(info.path, max(wraps * kind.wrap, 1) * info.sync_period_ps * 1e-12)
            check_channels(info.path, d.channel)
            last_sync = int(d.sync[-1]) + 1 if len(d.sync) else 0
            yield PhotonStream(
                sync=d.sync,
                dtime=d.dtime,
                channel=d.channel,
                sync_period_ps=info.sync_period_ps,
                resolution_ps=unit,
                meta=meta,
                n_pulses=max(last_sync, wraps * kind.wrap) or None,
                markers=Markers(d.marker_sync * np.int64(period), d.marker_bits)
                if len(d.marker_sync)
                else None,
            )


@guarded
def read_legacy(path) -> PhotonStream:
    """The whole photon stream of a legacy PicoQuant file."""
    info = legacy_info(path)
    check_memory(path, info.n_records)
    parts = list(_iter_legacy(info, 1 << 22))
    if parts:
        return PhotonStream.concat(parts)
    if info.mode == "T2":
        return PhotonStream.t2([], [], resolution_ps=info.resolution_ps, duration_ps=0)
    return PhotonStream(
        sync=[], dtime=[], channel=[], sync_period_ps=info.sync_period_ps,
        resolution_ps=info.resolution_ps,
    )  # fmt: skip
