"""PicoQuant PTU files, T3 and T2 (point mode): streamed writer and chunked reader.

Record types written: PicoHarp T3 (``picoharp-t3``, 16-bit nsync, 12-bit microtime, channel
1-4 in the record), HydraHarp v2 T3 (``hydraharp-t3``, 10-bit nsync, 15-bit microtime,
channel 0-62, overflow records carrying a count), PicoHarp T2 (``picoharp-t2``, 28-bit
time tags of 4 ps, channels 0-4) and HydraHarp v2 T2 (``hydraharp-t2``, 25-bit tags of
1 ps, channels 0-62). Read: every PicoQuant kind of both modes (PicoHarp, HydraHarp v1/v2,
TimeHarp 260 N/P, generic/MultiHarp/PicoHarp 330); marker records are kept as the stream's
``markers`` (a T2 sync-input event as a marker with bits 0), not as photons. Every record
type, its bit layout and its overflow rule: the one table in :mod:`simsps.io.records`;
the codecs in :mod:`simsps.io.codec`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import math
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from ..stream import Markers, PhotonStream
from ._atomic import CommitOnExit, Staging, aborting, write_errors
from .codec import decode_t2, decode_t3, encode_t2, encode_t3, overflow_records
from .errors import TTTRFileError, TTTRFileWarning
from .ptu_header import TagType, encode_tags, read_header
from .records import BY_CODE, WRITABLE, RecordType
from .validate import (
    MAX_DURATION_S,
    check_channels,
    check_duration,
    check_memory,
    guarded,
    guarded_iter,
    number,
    record_count,
    regular_file,
    time_base,
)

__all__ = ["RECORD_FORMATS", "PTUWriter", "write_ptu", "read_ptu", "iter_ptu", "ptu_info"]


RECORD_FORMATS = WRITABLE  # format name -> RecordType, what the writer can write
_T2_DURATION = "simsps_DurationPs"  # a T2 file's acquisition length (ps)

# provenance carried as user tags "simsps_<Key>": (meta key, tag type)
_USER_TAGS = (
    ("model", TagType.ANSI_STRING),
    ("seed", TagType.INT8),
    ("power", TagType.FLOAT8),
    ("duration_s", TagType.FLOAT8),
    ("emitters", TagType.INT8),
    ("excitation", TagType.ANSI_STRING),  # "pulsed" or "cw"
    ("detectors", TagType.INT8),  # detection.channels
    ("model_toml", TagType.ANSI_STRING),
    # a sweep's run (simsps.sweep.files): its number, point, replica and key id
    ("sweep_run", TagType.INT8),
    ("sweep_point", TagType.INT8),
    ("sweep_replica", TagType.INT8),
    ("key_id", TagType.INT8),
    ("laser_period_ps", TagType.FLOAT8),  # a T2 file's laser, when there is one
)


def _user_tag_name(key: str) -> str:
    return "simsps_" + "".join(p.capitalize() for p in key.split("_"))


# ---------------------------------------------------------------------------- writing
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
    """Write a PTU file chunk by chunk; the file appears under its name only when closed.

    Use as a context manager; ``write(stream)`` appends a time-ordered chunk. T3 formats
    take T3 streams (absolute sync indices; ``sync_period_ps`` and ``resolution_ps`` their
    time base). T2 formats take T2 streams (or T3 streams, by their bins' times): each
    time becomes a tag of the format's unit (``resolution_ps``, default the instrument's:
    4 ps PicoHarp, 1 ps HydraHarp), ``sync_period_ps`` is the laser's period if there is
    one (None: CW). On an exception inside the block the temporary file is removed.
    """

    def __init__(
        self,
        path,
        fmt: str = "picoharp-t3",
        *,
        sync_period_ps: float | None,
        resolution_ps: float | None = None,
        meta: dict | None = None,
    ):
        if fmt not in RECORD_FORMATS:
            raise ValueError(f"unknown PTU format {fmt!r}: choose {', '.join(RECORD_FORMATS)}")
        self.fmt = RECORD_FORMATS[fmt]
        self.t2 = self.fmt.mode == "T2"
        self.path = Path(path)
        if self.t2:
            self.resolution_ps = float(resolution_ps or self.fmt.t2_unit_ps)
            self.sync_period_ps = None if sync_period_ps is None else float(sync_period_ps)
        else:
            if sync_period_ps is None or resolution_ps is None:
                raise ValueError(f"{fmt}: a T3 file needs the sync period and the bin width")
            self.sync_period_ps = float(sync_period_ps)
            self.resolution_ps = float(resolution_ps)
            check_resolution(self.fmt, self.sync_period_ps, self.resolution_ps)
        if not (math.isfinite(self.resolution_ps) and self.resolution_ps > 0):
            raise ValueError(f"resolution_ps = {resolution_ps!r} must be positive")
        self.meta = dict(meta or {})
        if self.t2 and self.sync_period_ps is not None:
            self.meta["laser_period_ps"] = self.sync_period_ps
        self.n_records = 0
        self.wraps = 0
        self.last_sync = -1  # T3; T2: the last tag
        self.n_pulses = 0
        self.duration_ps = 0
        self._fh = None
        self._tmp = None
        self._stage = None

    def _tags(self):
        m = self.meta
        now = _dt.datetime.now(_dt.timezone.utc)
        from .. import __version__

        if self.t2:
            rate = 0 if self.sync_period_ps is None else 1e12 / self.sync_period_ps
            glob = self.resolution_ps  # T2 tags count the global resolution
        else:
            rate = 1e12 / self.sync_period_ps
            glob = self.sync_period_ps
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
            ("HW_InpChannels", -1, TagType.INT8, int(m.get("detectors", 2))),
            ("Measurement_Mode", -1, TagType.INT8, 2 if self.t2 else 3),
            ("Measurement_SubMode", -1, TagType.INT8, 0 if self.t2 else 1),
            ("MeasDesc_BinningFactor", -1, TagType.INT8, 1),
            ("MeasDesc_Resolution", -1, TagType.FLOAT8, self.resolution_ps * 1e-12),
            ("MeasDesc_GlobalResolution", -1, TagType.FLOAT8, glob * 1e-12),
            ("MeasDesc_AcquisitionTime", -1, TagType.INT8, 0),  # ms, patched on close
            ("TTResult_SyncRate", -1, TagType.INT8, int(round(rate))),
            ("TTResult_StopAfter", -1, TagType.INT8, 0),  # ms, patched on close
            ("TTResult_StopReason", -1, TagType.INT8, 0),  # 0: time over
            ("TTResult_NumberOfRecords", -1, TagType.INT8, 0),  # patched on close
            ("TTResultFormat_TTTRRecType", -1, TagType.INT8, self.fmt.code),
            ("TTResultFormat_BitsPerRecord", -1, TagType.INT8, 32),
            (_T2_DURATION if self.t2 else "simsps_NumberOfPulses", -1, TagType.INT8, 0),
        ]
        for key, kind in _USER_TAGS:
            if key in m:
                tags.append((_user_tag_name(key), -1, kind, m[key]))
        tags.append(("Header_End", -1, TagType.EMPTY8, None))
        return tags

    def open(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._stage = Staging(self.path)
        self._tmp = self._stage.create()
        with aborting(self):
            self._fh = open(self._tmp, "w+b")
            header, self._offsets = encode_tags(self._tags())
            self._fh.write(header)
        return self

    def write(self, stream: PhotonStream) -> None:
        if self._fh is None:
            raise RuntimeError("PTUWriter is not open")
        with write_errors(self.path):  # a full disk, a lost mount
            self._write(stream)

    def _write(self, stream: PhotonStream) -> None:
        if self.t2:
            self._write_t2(stream)
            return
        if stream.is_t2:
            raise ValueError(f"{self.fmt.writer} is a T3 format: a T2 stream has no sync")
        if (stream.sync_period_ps, stream.resolution_ps) != (
            self.sync_period_ps,
            self.resolution_ps,
        ):
            raise ValueError("chunk has a different time base from the file")
        if stream.n_pulses is not None:
            self.n_pulses = max(self.n_pulses, int(stream.n_pulses))
        markers = _markers_in(stream.markers, round(self.sync_period_ps))
        if not len(stream) and markers is None:
            return
        sync, dtime, channel = stream.sync, stream.dtime, stream.channel
        self._check_order(sync, markers, "sync")
        if len(dtime) and int(dtime.max()) >= self.fmt.n_bins:
            raise ValueError(
                f"microtime bin {int(dtime.max())} does not fit {self.fmt.writer} "
                f"({self.fmt.dtime_bits} bits)"
            )
        self._check_channels(channel, self.fmt.max_channel)
        records, self.wraps = encode_t3(self.fmt, sync, dtime, channel, self.wraps, markers)
        self._fh.write(records.tobytes())
        self.n_records += len(records)
        self.last_sync = _last(sync, markers, self.last_sync)
        self.n_pulses = max(self.n_pulses, self.last_sync + 1)

    def _check_order(self, times, markers, what: str) -> None:
        for t, name in ((times, "photons"), (None if markers is None else markers[0], "markers")):
            if t is not None and len(t) and (t[0] < self.last_sync or np.any(np.diff(t) < 0)):
                raise ValueError(f"{name} must be written in time order ({what} not increasing)")

    def _check_channels(self, channel, max_ch: int) -> None:
        if len(channel) and int(channel.max()) > max_ch:
            raise ValueError(
                f"channel {int(channel.max())} does not fit {self.fmt.writer} (0..{max_ch})"
            )

    def _write_t2(self, stream: PhotonStream) -> None:
        unit = self.resolution_ps
        tag = _in_units(stream.time_ps, unit)
        dur = stream.duration_s * 1e12
        self.duration_ps = max(self.duration_ps, int(round(dur)))
        markers = _markers_in(stream.markers, unit)
        if not len(stream) and markers is None:
            return
        self._check_order(tag, markers, "times")
        self._check_channels(stream.channel, self.fmt.t2_max_channel)
        records, self.wraps = encode_t2(self.fmt, tag, stream.channel, self.wraps, markers)
        self._fh.write(records.tobytes())
        self.n_records += len(records)
        self.last_sync = _last(tag, markers, self.last_sync)
        self.duration_ps = max(self.duration_ps, int(round((self.last_sync + 1) * unit)))

    def _patch(self, name: str, value: int) -> None:
        self._fh.seek(self._offsets[name])
        self._fh.write(int(value).to_bytes(8, "little", signed=True))

    def close(self) -> Path:
        if self._fh is None:
            return self.path
        with aborting(self):
            self._finish()
            self._fh.flush()
            self._fh.close()
            self._fh = None
            return self._stage.commit()

    def _finish(self) -> None:
        """The tail of overflow records and the patched header counts."""
        if self.t2:
            units = int(self.duration_ps // self.resolution_ps)
            wrap, duration_ps = self.fmt.t2_wrap, self.duration_ps
        else:
            units, wrap = self.n_pulses, self.fmt.wrap
            duration_ps = self.n_pulses * self.sync_period_ps
        _, tail = overflow_records(self.fmt, [max(0, units // wrap - self.wraps)])
        self._fh.write(tail.tobytes())  # an instrument keeps counting wraps to the stop
        self.n_records += len(tail)
        ms = int(round(duration_ps * 1e-9))
        self._patch("TTResult_NumberOfRecords", self.n_records)
        self._patch("TTResult_StopAfter", ms)
        self._patch("MeasDesc_AcquisitionTime", ms)
        if self.t2:
            self._patch(_T2_DURATION, self.duration_ps)
        else:
            self._patch("simsps_NumberOfPulses", self.n_pulses)

    def abort(self) -> None:
        if self._fh is not None:
            with contextlib.suppress(OSError):
                self._fh.close()
            self._fh = None
        if self._stage is not None:
            self._stage.abort()


def _last(times, markers, before: int) -> int:
    """The latest time written so far (photons or markers)."""
    last = int(times[-1]) if len(times) else before
    return max(last, int(markers[0][-1])) if markers is not None else last


def _markers_in(markers: Markers | None, unit) -> tuple[np.ndarray, np.ndarray] | None:
    """A stream's markers as (time in ``unit``: sync periods for T3, tag units for T2,
    bits); sync-input events (bits 0) are not written back."""
    if markers is None or not len(markers):
        return None
    keep = markers.bits != 0
    return _in_units(markers.time_ps[keep], unit), markers.bits[keep].astype(np.uint32)


def _in_units(t_ps: np.ndarray, unit) -> np.ndarray:
    """Times in ps as whole units of ``unit`` ps, rounded down (exact for whole ps)."""
    u = float(unit)
    return t_ps // int(u) if u.is_integer() else np.floor(t_ps / u).astype(np.int64)


def write_ptu(
    path,
    data: PhotonStream | Iterable[PhotonStream],
    fmt: str | None = None,
    *,
    meta: dict | None = None,
) -> Path:
    """Write a stream, or an iterable of time-ordered chunks (e.g. ``simulate_chunks``);
    ``fmt`` default: ``picoharp-t3`` for a T3 stream, ``hydraharp-t2`` for a T2 one."""
    chunks = iter([data]) if isinstance(data, PhotonStream) else iter(data)
    first = next(chunks, None)
    if first is None:
        raise ValueError("nothing to write: no chunks")
    if fmt is None:
        fmt = "hydraharp-t2" if first.is_t2 else "picoharp-t3"
    meta = {**first.meta, **(meta or {})}
    t2 = RECORD_FORMATS.get(fmt) is not None and RECORD_FORMATS[fmt].mode == "T2"
    res = None if t2 else first.resolution_ps  # T2: the instrument's tag unit
    with PTUWriter(
        path, fmt, sync_period_ps=first.sync_period_ps, resolution_ps=res, meta=meta
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
    sync_period_ps: float | None  # T3: the sync; T2: the laser's, when the file says
    resolution_ps: float  # T3: microtime bin; T2: the time-tag unit

    @property
    def kind(self) -> RecordType:
        return BY_CODE[self.record_type]

    @property
    def mode(self) -> str:
        return self.kind.mode


@guarded
def ptu_info(path) -> PTUInfo:
    """Header of a PTU file, checked against the file size (:mod:`simsps.io.validate`)."""
    path = Path(path)
    size = regular_file(path)
    try:
        with open(path, "rb") as fh:
            tags, n_header = read_header(fh, path, size)
    except OSError as e:
        raise TTTRFileError(path, f"cannot read: {e.strerror}") from None
    rec_type = number(tags, "TTResultFormat_TTTRRecType", path, int)
    kind = BY_CODE.get(rec_type)
    if kind is None:
        raise TTTRFileError(path, f"unsupported TTTR record type {rec_type:#010x}")
    bits = number(tags, "TTResultFormat_BitsPerRecord", path, int, default=32) or 32
    if bits != 32:
        raise TTTRFileError(path, f"{bits} bits per record; PicoQuant TTTR records have 32")
    announced = number(tags, "TTResult_NumberOfRecords", path, int)
    n_records = record_count(path, announced, n_header, size)
    if kind.mode == "T2":  # the tags count the global resolution; a laser only if simsps says
        res = number(tags, "MeasDesc_GlobalResolution", path) * 1e12
        laser = tags.get(_user_tag_name("laser_period_ps"))
        period = float(laser) if isinstance(laser, (int, float)) and laser > 0 else None
        period, res = time_base(path, period, res, "T2")
        return PTUInfo(str(path), tags, n_header, rec_type, n_records, period, res)
    if "MeasDesc_GlobalResolution" in tags:
        period = number(tags, "MeasDesc_GlobalResolution", path) * 1e12
    else:
        rate = number(tags, "TTResult_SyncRate", path)
        if not rate > 0:
            raise TTTRFileError(path, f"sync rate {rate} Hz and no global resolution")
        period = 1e12 / rate
    res = number(tags, "MeasDesc_Resolution", path) * 1e12
    period, res = time_base(path, period, res, "T3")
    return PTUInfo(str(path), tags, n_header, rec_type, n_records, period, res)


def iter_ptu(path, chunk_records: int = 1 << 22) -> Iterator[PhotonStream]:
    """Photon chunks of a PTU file (T3 or T2) of any size (one chunk in memory at a time)."""
    chunk_records = check_chunk(chunk_records)
    return _iter_records(ptu_info(path), chunk_records)


def check_chunk(chunk_records) -> int:
    if (
        isinstance(chunk_records, bool)
        or not isinstance(chunk_records, (int, np.integer))
        or not 1 <= chunk_records <= 1 << 30
    ):
        raise ValueError(f"chunk_records = {chunk_records!r}: a whole number in 1 .. 2**30")
    return int(chunk_records)


def _to_ps(tag: np.ndarray, unit: float) -> np.ndarray:
    """Time tags to int64 ps (exact for a whole number of ps per tag)."""
    if float(unit).is_integer():
        return tag * np.int64(unit)
    return np.round(tag * unit).astype(np.int64)


@guarded_iter
def _iter_records(info: PTUInfo, chunk_records: int) -> Iterator[PhotonStream]:
    path = info.path
    wraps = 0
    meta = _meta(info)
    kind = info.kind
    period = None if info.sync_period_ps is None else int(round(info.sync_period_ps))
    length = _Length(info)
    with open(path, "rb") as fh:
        fh.seek(info.header_bytes)
        left = info.n_records
        last_tag = -1
        while left > 0:
            n = min(chunk_records, left)
            rec = np.fromfile(fh, dtype="<u4", count=n)
            if len(rec) < n:
                raise TTTRFileError(path, "truncated while reading records")
            left -= n
            if kind.mode == "T2":
                d = decode_t2(rec, kind, wraps)
                check_channels(path, d.channel)
                wraps = d.wraps
                last_tag = max(last_tag, d.last_tag)
                check_duration(path, (last_tag + 1) * info.resolution_ps * 1e-12)
                markers = (
                    Markers(_to_ps(d.marker_tag, info.resolution_ps), d.marker_bits)
                    if len(d.marker_tag)
                    else None
                )
                yield PhotonStream.t2(
                    _to_ps(d.tag, info.resolution_ps),
                    d.channel,
                    resolution_ps=info.resolution_ps,
                    sync_period_ps=info.sync_period_ps,
                    duration_ps=length.t2(last_tag, wraps, left == 0),
                    meta=meta,
                    markers=markers,
                )
                continue
            d = decode_t3(rec, kind, wraps)
            check_channels(path, d.channel)
            wraps = d.wraps
            check_duration(path, max(wraps * kind.wrap, 1) * info.sync_period_ps * 1e-12)
            markers = (
                Markers(d.marker_sync * np.int64(period), d.marker_bits)
                if len(d.marker_sync)
                else None
            )
            yield PhotonStream(
                sync=d.sync,
                dtime=d.dtime,
                channel=d.channel,
                sync_period_ps=info.sync_period_ps,
                resolution_ps=info.resolution_ps,
                meta=meta,
                n_pulses=length.t3(wraps, d.sync, left == 0),
                markers=markers,
            )


class _Length:
    """The acquisition's length: simsps's tag (pulses; T2: ps) while the records agree with
    it, else from the records (the last one, overflows included: an instrument keeps
    writing them to the stop); a tag that contradicts them is dropped with a warning."""

    def __init__(self, info: PTUInfo):
        self.info = info
        t2 = info.mode == "T2"
        self.key = _T2_DURATION if t2 else "simsps_NumberOfPulses"
        n = info.tags.get(self.key)
        self.tag = None
        self.last = 0
        if isinstance(n, int) and not isinstance(n, bool) and n > 0:
            span_s = n * 1e-12 if t2 else n * info.sync_period_ps * 1e-12
            self.tag = n
            if span_s > MAX_DURATION_S:
                self._drop(f"{span_s:.3g} s")

    def _drop(self, why: str) -> None:
        warnings.warn(
            f"{self.info.path}: header {self.key} = {self.info.tags.get(self.key)} "
            f"contradicts the records ({why}); the length comes from the records",
            TTTRFileWarning,
            stacklevel=4,
        )
        self.tag = None

    def _check(self, least: int, most: int | None) -> None:
        if self.tag is not None and self.tag < least:
            self._drop(f"they reach {least}")
        elif self.tag is not None and most is not None and self.tag > most:
            self._drop(f"they end by {most}")

    def t3(self, wraps: int, sync, last_chunk: bool) -> int | None:
        wrap = self.info.kind.wrap
        self.last = max(self.last, int(sync[-1]) + 1 if len(sync) else 0)
        self._check(self.last, (wraps + 1) * wrap if last_chunk else None)
        if self.tag is not None:
            return self.tag
        return max(self.last, wraps * wrap) or None

    def t2(self, last_tag: int, wraps: int, last_chunk: bool) -> int:
        unit = self.info.resolution_ps
        to_ps = lambda x: int(_to_ps(np.array([x]), unit)[0])  # noqa: E731
        reached = to_ps(last_tag + 1) if last_tag >= 0 else 0
        # an overflow record at the stop sits at the duration itself: 1 unit of slack
        least = to_ps(last_tag) if last_tag >= 0 else 0
        self._check(least, to_ps((wraps + 1) * self.info.kind.t2_wrap) if last_chunk else None)
        return self.tag if self.tag is not None else reached


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


@guarded
def read_ptu(path) -> PhotonStream:
    """The whole photon stream of a PTU file (T3 or T2)."""
    info = ptu_info(path)
    check_memory(path, info.n_records)
    parts = list(_iter_records(info, 1 << 22))
    if parts:
        return PhotonStream.concat(parts)
    length = _Length(info)
    if info.mode == "T2":
        return PhotonStream.t2(
            [],
            [],
            resolution_ps=info.resolution_ps,
            sync_period_ps=info.sync_period_ps,
            duration_ps=length.t2(-1, 0, False),
            meta=_meta(info),
        )
    return PhotonStream(
        sync=[],
        dtime=[],
        channel=[],
        sync_period_ps=info.sync_period_ps,
        resolution_ps=info.resolution_ps,
        meta=_meta(info),
        n_pulses=length.t3(0, [], False),
    )
