"""PicoQuant PTU files in T3 (point) mode: streamed writer and chunked reader.

Record types written: PicoHarp T3 (``picoharp-t3``, 16-bit nsync, 12-bit microtime, channel
1-4 in the record) and HydraHarp v2 T3 (``hydraharp-t3``, 10-bit nsync, 15-bit microtime,
channel 0-62, overflow records carrying a count). Read: every PicoQuant T3 kind (PicoHarp,
HydraHarp v1/v2, TimeHarp 260 N/P, generic/MultiHarp). Marker records are skipped.
Every record type, its bit layout and its overflow rule: the one table in
:mod:`simsps.io.records`.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from ..stream import PhotonStream
from ._atomic import CommitOnExit
from .errors import TTTRFileError
from .ptu_header import TagType, encode_tags, read_header
from .records import BY_CODE, WRITABLE, RecordType

__all__ = ["RECORD_FORMATS", "PTUWriter", "write_ptu", "read_ptu", "iter_ptu", "ptu_info"]


RECORD_FORMATS = WRITABLE  # format name -> RecordType, what the writer can write

_HH_OVERFLOW = np.uint32((1 << 31) | (0x3F << 25))
_PH_OVERFLOW = np.uint32(0xF << 28)
_HH_MAX_WRAPS = 1023  # wraps one HydraHarp overflow record may carry

# provenance carried as user tags "simsps_<Key>": (meta key, tag type)
_USER_TAGS = (
    ("model", TagType.ANSI_STRING),
    ("seed", TagType.INT8),
    ("power", TagType.FLOAT8),
    ("duration_s", TagType.FLOAT8),
    ("emitters", TagType.INT8),
    ("model_toml", TagType.ANSI_STRING),
    # a sweep's run (simsps.sweep.files): its number, point, replica and key id
    ("sweep_run", TagType.INT8),
    ("sweep_point", TagType.INT8),
    ("sweep_replica", TagType.INT8),
    ("key_id", TagType.INT8),
)


def _user_tag_name(key: str) -> str:
    return "simsps_" + "".join(p.capitalize() for p in key.split("_"))


# ---------------------------------------------------------------------------- encoding
def _encode(
    fmt: RecordType, sync: np.ndarray, dtime: np.ndarray, channel: np.ndarray, wraps_done: int
) -> tuple[np.ndarray, int]:
    """Records of photons (``sync`` absolute, sorted) after ``wraps_done`` wraps written."""
    wraps = sync // fmt.wrap
    prev = np.empty_like(wraps)
    prev[:1] = wraps_done
    prev[1:] = wraps[:-1]
    gap = wraps - prev
    photon = (sync - wraps * fmt.wrap).astype(np.uint32)
    if fmt.layout == "picoharp":
        photon |= (dtime.astype(np.uint32) << 16) | ((channel.astype(np.uint32) + 1) << 28)
    else:
        photon |= (dtime.astype(np.uint32) << 10) | (channel.astype(np.uint32) << 25)
    n_ovf, overflow = _overflow_records(fmt, gap)
    where_photon = np.arange(len(sync)) + np.cumsum(n_ovf)
    out = np.empty(len(sync) + len(overflow), np.uint32)
    out[where_photon] = photon
    is_ovf = np.ones(len(out), bool)
    is_ovf[where_photon] = False
    out[is_ovf] = overflow
    return out, int(wraps[-1]) if len(wraps) else wraps_done


def _overflow_records(fmt: RecordType, gaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Overflow records that advance the wrap counter by each of ``gaps`` in turn: the
    number of records per gap, and all records concatenated. A PicoHarp record is one
    wrap; a HydraHarp record carries up to 1023."""
    gaps = np.asarray(gaps, np.int64)
    if fmt.layout == "picoharp":
        return gaps, np.full(int(gaps.sum()), _PH_OVERFLOW, np.uint32)
    n = -(-gaps // _HH_MAX_WRAPS)
    ends = np.cumsum(n)
    vals = np.full(int(ends[-1]) if len(ends) else 0, _HH_MAX_WRAPS, np.uint32)
    has = n > 0
    vals[(ends - 1)[has]] = (gaps - _HH_MAX_WRAPS * (n - 1))[has]  # last record of each run
    return n, _HH_OVERFLOW | vals


def check_resolution(fmt: RecordType, sync_period_ps: float, resolution_ps: float) -> None:
    """Refuse a microtime bin whose range does not cover the sync period, with a hint."""
    covered = fmt.n_bins * resolution_ps
    if covered < sync_period_ps:
        k = math.ceil(math.log2(sync_period_ps / covered))
        raise ValueError(
            f"{fmt.writer}: {fmt.n_bins} microtime bins of {resolution_ps:g} ps cover "
            f"{covered / 1e3:g} ns, less than the sync period {sync_period_ps / 1e3:g} ns; "
            f"simulate with detection.resolution_ps >= {sync_period_ps / fmt.n_bins:.4g} "
            f"(e.g. {resolution_ps * 2**k:g}), or use a format with more microtime bits"
        )


class PTUWriter(CommitOnExit):
    """Write a T3 PTU file chunk by chunk; the file appears under its name only when closed.

    Use as a context manager; ``write(stream)`` appends a time-ordered chunk (absolute sync
    indices). On an exception inside the block the temporary file is removed.
    """

    def __init__(
        self,
        path,
        fmt: str = "picoharp-t3",
        *,
        sync_period_ps: float,
        resolution_ps: float,
        meta: dict | None = None,
    ):
        if fmt not in RECORD_FORMATS:
            raise ValueError(f"unknown PTU format {fmt!r}: choose {', '.join(RECORD_FORMATS)}")
        self.fmt = RECORD_FORMATS[fmt]
        self.path = Path(path)
        self.sync_period_ps = float(sync_period_ps)
        self.resolution_ps = float(resolution_ps)
        check_resolution(self.fmt, self.sync_period_ps, self.resolution_ps)
        self.meta = dict(meta or {})
        self.n_records = 0
        self.wraps = 0
        self.last_sync = -1
        self.n_pulses = 0
        self._fh = None
        self._tmp = None

    def _tags(self):
        sync_rate = 1e12 / self.sync_period_ps
        m = self.meta
        now = _dt.datetime.now(_dt.timezone.utc)
        from .. import __version__

        tags = [
            ("File_GUID", -1, TagType.ANSI_STRING, "{" + str(uuid.uuid4()).upper() + "}"),
            ("File_CreatingTime", -1, TagType.DATETIME, now),
            (
                "File_Comment",
                -1,
                TagType.ANSI_STRING,
                f"simsps synthetic TCSPC stream: model {m.get('model', '?')}, seed {m.get('seed', '?')}",
            ),
            ("CreatorSW_Name", -1, TagType.ANSI_STRING, "simsps"),
            ("CreatorSW_Version", -1, TagType.ANSI_STRING, __version__),
            ("HW_Type", -1, TagType.ANSI_STRING, self.fmt.hardware),
            ("HW_InpChannels", -1, TagType.INT8, 2),
            ("Measurement_Mode", -1, TagType.INT8, 3),
            ("Measurement_SubMode", -1, TagType.INT8, 1),
            ("MeasDesc_BinningFactor", -1, TagType.INT8, 1),
            ("MeasDesc_Resolution", -1, TagType.FLOAT8, self.resolution_ps * 1e-12),
            ("MeasDesc_GlobalResolution", -1, TagType.FLOAT8, self.sync_period_ps * 1e-12),
            ("MeasDesc_AcquisitionTime", -1, TagType.INT8, 0),  # ms, patched on close
            ("TTResult_SyncRate", -1, TagType.INT8, int(round(sync_rate))),
            ("TTResult_StopAfter", -1, TagType.INT8, 0),  # ms, patched on close
            ("TTResult_StopReason", -1, TagType.INT8, 0),  # 0: time over
            ("TTResult_NumberOfRecords", -1, TagType.INT8, 0),  # patched on close
            ("TTResultFormat_TTTRRecType", -1, TagType.INT8, self.fmt.code),
            ("TTResultFormat_BitsPerRecord", -1, TagType.INT8, 32),
            ("simsps_NumberOfPulses", -1, TagType.INT8, 0),  # patched on close
        ]
        for key, kind in _USER_TAGS:
            if key in m:
                tags.append((_user_tag_name(key), -1, kind, m[key]))
        tags.append(("Header_End", -1, TagType.EMPTY8, None))
        return tags

    def open(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=".part", dir=self.path.parent
        )
        self._tmp = Path(tmp)
        self._fh = os.fdopen(fd, "w+b")
        header, self._offsets = encode_tags(self._tags())
        self._fh.write(header)
        return self

    def write(self, stream: PhotonStream) -> None:
        if self._fh is None:
            raise RuntimeError("PTUWriter is not open")
        if (stream.sync_period_ps, stream.resolution_ps) != (
            self.sync_period_ps,
            self.resolution_ps,
        ):
            raise ValueError("chunk has a different time base from the file")
        if stream.n_pulses is not None:
            self.n_pulses = max(self.n_pulses, int(stream.n_pulses))
        if not len(stream):
            return
        sync, dtime, channel = stream.sync, stream.dtime, stream.channel
        if sync[0] < self.last_sync or np.any(np.diff(sync) < 0):
            raise ValueError("photons must be written in time order (sync not increasing)")
        if int(dtime.max()) >= self.fmt.n_bins:
            raise ValueError(
                f"microtime bin {int(dtime.max())} does not fit {self.fmt.writer} "
                f"({self.fmt.dtime_bits} bits)"
            )
        max_ch = self.fmt.max_channel
        if int(channel.max()) > max_ch:
            raise ValueError(
                f"channel {int(channel.max())} does not fit {self.fmt.writer} (0..{max_ch})"
            )
        records, self.wraps = _encode(self.fmt, sync, dtime, channel, self.wraps)
        self._fh.write(records.tobytes())
        self.n_records += len(records)
        self.last_sync = int(sync[-1])
        self.n_pulses = max(self.n_pulses, self.last_sync + 1)

    def _patch(self, name: str, value: int) -> None:
        self._fh.seek(self._offsets[name])
        self._fh.write(int(value).to_bytes(8, "little", signed=True))

    def close(self) -> Path:
        if self._fh is None:
            return self.path
        _, tail = _overflow_records(self.fmt, [max(0, self.n_pulses // self.fmt.wrap - self.wraps)])
        self._fh.write(tail.tobytes())  # an instrument keeps counting wraps to the stop
        self.n_records += len(tail)
        ms = int(round(self.n_pulses * self.sync_period_ps * 1e-9))
        self._patch("TTResult_NumberOfRecords", self.n_records)
        self._patch("TTResult_StopAfter", ms)
        self._patch("MeasDesc_AcquisitionTime", ms)
        self._patch("simsps_NumberOfPulses", self.n_pulses)
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        self._fh = None
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self._tmp is not None and self._tmp.exists():
            self._tmp.unlink()


def write_ptu(
    path,
    data: PhotonStream | Iterable[PhotonStream],
    fmt: str = "picoharp-t3",
    *,
    meta: dict | None = None,
) -> Path:
    """Write a stream, or an iterable of time-ordered chunks (e.g. ``simulate_chunks``)."""
    chunks = iter([data]) if isinstance(data, PhotonStream) else iter(data)
    first = next(chunks, None)
    if first is None:
        raise ValueError("nothing to write: no chunks")
    meta = {**first.meta, **(meta or {})}
    with PTUWriter(
        path, fmt, sync_period_ps=first.sync_period_ps, resolution_ps=first.resolution_ps, meta=meta
    ) as w:
        w.write(first)
        for chunk in chunks:
            w.write(chunk)
    return Path(path)


# ---------------------------------------------------------------------------- reading
@dataclass
class PTUInfo:
    path: str
    tags: dict
    header_bytes: int
    record_type: int
    n_records: int
    sync_period_ps: float
    resolution_ps: float


def _num(tags, key, path, kind=float):
    if key not in tags or tags[key] is None:
        raise TTTRFileError(path, f"PTU header lacks {key}")
    try:
        return kind(tags[key])
    except (TypeError, ValueError):
        raise TTTRFileError(path, f"PTU tag {key} = {tags[key]!r} is not a number") from None


def ptu_info(path) -> PTUInfo:
    """Header of a PTU file, checked against the file size."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            tags, n_header = read_header(fh, path)
            size = os.fstat(fh.fileno()).st_size
    except OSError as e:
        raise TTTRFileError(path, f"cannot read: {e.strerror}") from None
    rec_type = _num(tags, "TTResultFormat_TTTRRecType", path, int)
    kind = BY_CODE.get(rec_type)
    if kind is not None and kind.mode == "T2":
        raise TTTRFileError(
            path, f"T2 record type {rec_type:#010x}: simsps reads T3 (sync + microtime) files"
        )
    if kind is None:
        raise TTTRFileError(path, f"unsupported TTTR record type {rec_type:#010x}")
    bits = int(tags.get("TTResultFormat_BitsPerRecord", 32) or 32)
    if bits != 32:
        raise TTTRFileError(path, f"{bits} bits per record; T3 records have 32")
    n_records = _num(tags, "TTResult_NumberOfRecords", path, int)
    if n_records < 0:
        raise TTTRFileError(path, f"negative record count {n_records}")
    available = (size - n_header) // 4
    if available < n_records:
        raise TTTRFileError(
            path, f"truncated: header announces {n_records} records, the file holds {available}"
        )
    if "MeasDesc_GlobalResolution" in tags:
        period = _num(tags, "MeasDesc_GlobalResolution", path) * 1e12
    else:
        period = 1e12 / _num(tags, "TTResult_SyncRate", path)
    res = _num(tags, "MeasDesc_Resolution", path) * 1e12
    if not (math.isfinite(period) and period > 0 and math.isfinite(res) and res > 0):
        raise TTTRFileError(
            path, f"invalid time base: sync period {period} ps, resolution {res} ps"
        )
    return PTUInfo(str(path), tags, n_header, rec_type, n_records, round(period, 3), round(res, 6))


def _decode(rec: np.ndarray, rec_type: int, wraps0: int):
    """Photon sync/dtime/channel of a run of records, and the wrap count after them."""
    kind = BY_CODE[rec_type]
    if kind.layout == "picoharp":
        ch = rec >> 28
        dtime = (rec >> 16) & 0xFFF
        nsync = rec & 0xFFFF
        special = ch == 0xF
        ovf = (special & (dtime == 0)).astype(np.int64)
        channel = ch - 1
    else:
        special = (rec >> 31) == 1
        ch = (rec >> 25) & 0x3F
        dtime = (rec >> 10) & 0x7FFF
        nsync = rec & 0x3FF
        is_ovf = special & (ch == 0x3F)
        if kind.overflow_counts:
            ovf = np.where(is_ovf, np.maximum(nsync, 1), 0).astype(np.int64)
        else:
            ovf = is_ovf.astype(np.int64)
        channel = ch
    photon = ~special  # markers and overflows are special
    wraps = wraps0 + np.cumsum(ovf)
    sync = wraps[photon] * kind.wrap + nsync[photon]
    return sync, dtime[photon], channel[photon], int(wraps[-1]) if len(wraps) else wraps0


def iter_ptu(path, chunk_records: int = 1 << 22) -> Iterator[PhotonStream]:
    """Photon chunks of a T3 PTU file of any size (one chunk in memory at a time)."""
    return _iter_records(ptu_info(path), chunk_records)


def _iter_records(info: PTUInfo, chunk_records: int) -> Iterator[PhotonStream]:
    path = info.path
    wraps = 0
    meta = _meta(info)
    with open(path, "rb") as fh:
        fh.seek(info.header_bytes)
        left = info.n_records
        while left > 0:
            n = min(chunk_records, left)
            rec = np.fromfile(fh, dtype="<u4", count=n)
            if len(rec) < n:
                raise TTTRFileError(path, "truncated while reading records")
            left -= n
            sync, dtime, channel, wraps = _decode(rec, info.record_type, wraps)
            yield PhotonStream(
                sync=sync,
                dtime=dtime,
                channel=channel,
                sync_period_ps=info.sync_period_ps,
                resolution_ps=info.resolution_ps,
                meta=meta,
                n_pulses=_n_pulses(info, wraps, sync),
            )


def _n_pulses(info: PTUInfo, wraps: int, sync) -> int | None:
    n = info.tags.get("simsps_NumberOfPulses")
    if isinstance(n, int) and n > 0:
        return n
    last = int(sync[-1]) + 1 if len(sync) else 0
    return max(last, wraps * BY_CODE[info.record_type].wrap) or None


def _meta(info: PTUInfo) -> dict:
    t = info.tags
    meta = {
        "source_file": info.path,
        "record_type": f"{info.record_type:#010x}",
        "ptu_tags": {k: v for k, v in t.items() if not isinstance(v, bytes)},
    }
    for key, _ in _USER_TAGS:
        if _user_tag_name(key) in t:
            meta[key] = t[_user_tag_name(key)]
    return meta


def read_ptu(path) -> PhotonStream:
    """The whole photon stream of a T3 PTU file."""
    info = ptu_info(path)
    parts = list(_iter_records(info, 1 << 22))
    if not parts:
        return PhotonStream(
            sync=[],
            dtime=[],
            channel=[],
            sync_period_ps=info.sync_period_ps,
            resolution_ps=info.resolution_ps,
            meta=_meta(info),
            n_pulses=_n_pulses(info, 0, []),
        )
    return PhotonStream.concat(parts)
