"""PhotonStream: a TTTR photon stream, T3 (sync index, microtime bin, channel) or T2
(absolute time tags, channel), plus ground truth and a file's markers."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, Iterable

import numpy as np

__all__ = [
    "PhotonStream",
    "Truth",
    "Markers",
    "Source",
    "State",
    "NO_EMITTER",
    "MODES",
    "hbt_arms",
]

NO_EMITTER = np.iinfo(np.uint16).max
# no TCSPC acquisition lasts 11.6 days; absolute times in int64 ps overflow at 106 days:
# the longest stream simsps simulates or reads
MAX_DURATION_S = 1e6


def hbt_arms(n_detectors: int) -> tuple[list[int], list[int]]:
    """The detectors of the HBT's two arms, as simsps routes photons to them: channels
    0 .. n/2 - 1 and n/2 .. n - 1."""
    n = int(n_detectors)
    return list(range(n // 2)), list(range(n // 2, n))


class Source(enum.IntEnum):
    """What made a detection (ground truth)."""

    EXCITON = 0
    BIEXCITON = 1
    TRION = 2
    CHARGED_BIEXCITON = 3
    DARK = 4
    BACKGROUND = 5
    PROMPT_BACKGROUND = 6
    AFTERPULSE = 7


class State(enum.IntEnum):
    """Charge state of the emitter at the pulse that made the photon."""

    BRIGHT = 0  # neutral
    GREY = 1  # charged (trion)
    NONE = 255  # not an emitter photon


EMITTER_SOURCES = (Source.EXCITON, Source.BIEXCITON, Source.TRION, Source.CHARGED_BIEXCITON)

_TRUTH_DTYPES = {
    "source": np.uint8,
    "state": np.uint8,
    "emitter": np.uint16,
    "emission_delay_ps": np.float32,
    "arrival_ps": np.int64,
}


@dataclasses.dataclass(frozen=True, eq=False)
class Truth:
    """Ground truth per photon.

    ``source``: :class:`Source` code; ``state``: :class:`State` code; ``emitter``: index of
    the NC (``NO_EMITTER`` for dark counts, background, afterpulses);
    ``emission_delay_ps``: emission time after the laser pulse before jitter (NaN when not
    an emitter photon); ``arrival_ps``: absolute detection time with jitter, before the
    microtime quantisation. ``bleach_time_s``: per emitter, when it bleached (inf: never).
    """

    source: np.ndarray
    state: np.ndarray
    emitter: np.ndarray
    emission_delay_ps: np.ndarray
    arrival_ps: np.ndarray
    bleach_time_s: np.ndarray = dataclasses.field(default_factory=lambda: np.empty(0))

    def __post_init__(self):
        for name, dt in _TRUTH_DTYPES.items():
            object.__setattr__(self, name, np.ascontiguousarray(getattr(self, name), dtype=dt))
        object.__setattr__(self, "bleach_time_s", np.asarray(self.bleach_time_s, np.float64))
        n = {len(getattr(self, k)) for k in _TRUTH_DTYPES}
        if len(n) > 1:
            raise ValueError(f"truth arrays have different lengths: {sorted(n)}")

    def __len__(self) -> int:
        return len(self.source)

    def take(self, idx) -> "Truth":
        return Truth(
            **{k: getattr(self, k)[idx] for k in _TRUTH_DTYPES}, bleach_time_s=self.bleach_time_s
        )

    @staticmethod
    def empty(bleach_time_s=()) -> "Truth":
        return Truth(
            **{k: np.empty(0, dt) for k, dt in _TRUTH_DTYPES.items()},
            bleach_time_s=np.asarray(bleach_time_s, np.float64),
        )

    @staticmethod
    def concat(parts: Iterable["Truth"]) -> "Truth":
        parts = list(parts)
        return Truth(
            **{k: np.concatenate([getattr(p, k) for p in parts]) for k in _TRUTH_DTYPES},
            bleach_time_s=parts[-1].bleach_time_s,
        )


@dataclasses.dataclass(frozen=True, eq=False)
class Markers:
    """External marker records of a file (frame, line or user markers): their absolute
    time (int64 ps; a T3 marker is placed at its sync) and bits (1-15)."""

    time_ps: np.ndarray
    bits: np.ndarray

    def __post_init__(self):
        t = np.ascontiguousarray(self.time_ps, dtype=np.int64)
        b = np.ascontiguousarray(self.bits, dtype=np.uint8)
        if t.shape != b.shape or t.ndim != 1:
            raise ValueError(f"marker times and bits differ in shape: {t.shape}, {b.shape}")
        object.__setattr__(self, "time_ps", t)
        object.__setattr__(self, "bits", b)

    def __len__(self) -> int:
        return len(self.time_ps)

    @staticmethod
    def concat(parts: Iterable["Markers | None"]) -> "Markers | None":
        parts = [p for p in parts if p is not None]
        if not parts:
            return None
        return Markers(
            np.concatenate([p.time_ps for p in parts]), np.concatenate([p.bits for p in parts])
        )


MODES = ("T3", "T2")


@dataclasses.dataclass(frozen=True, eq=False)
class PhotonStream:
    """A time-ordered TTTR photon stream, T3 or T2.

    T3 (a pulsed laser's sync, as a TCSPC card in T3 mode writes): ``sync`` the int64 index
    of the laser pulse before the photon, ``dtime`` its microtime bin (time after that pulse
    in units of ``resolution_ps``). T2 (absolute time tags, no sync: CW excitation, or a
    card in T2 mode): ``sync`` and ``dtime`` are None and the int64 times in ps are given
    (build with :meth:`t2`); ``resolution_ps`` is the time-tag unit and ``sync_period_ps``
    the laser's period when one is known (else None). ``time_ps`` gives every stream's
    absolute detection times. ``channel``: detector (0, 1, ...). ``truth`` is the
    simulation's ground truth, ``None`` for measured data; ``meta`` holds provenance (model,
    seed, power, duration); ``markers`` a file's marker records (not photons).
    """

    sync: np.ndarray | None
    dtime: np.ndarray | None
    channel: np.ndarray
    sync_period_ps: float | None
    resolution_ps: float
    truth: Truth | None = None
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)
    n_pulses: int | None = None  # T3: length of the acquisition in pulses, if known
    mode: str = "T3"
    abs_time_ps: np.ndarray | None = None  # T2: the detection times (use time_ps)
    duration_ps: int | None = None  # T2: length of the acquisition, if known
    markers: Markers | None = None

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode = {self.mode!r}: 'T3' or 'T2'")
        channel = np.ascontiguousarray(self.channel, dtype=np.uint8)
        if not (np.isfinite(self.resolution_ps) and self.resolution_ps > 0):
            raise ValueError(f"resolution_ps = {self.resolution_ps!r} must be positive")
        if self.mode == "T2":
            if self.sync is not None or self.dtime is not None:
                raise ValueError(
                    "a T2 stream has no sync or dtime: give its times (PhotonStream.t2)"
                )
            if self.abs_time_ps is None:
                raise ValueError("a T2 stream needs its detection times (abs_time_ps)")
            t = np.ascontiguousarray(self.abs_time_ps, dtype=np.int64)
            if len(t) != len(channel):
                raise ValueError(f"times and channel differ in length: {len(t)}, {len(channel)}")
            if self.sync_period_ps is not None and not (
                np.isfinite(self.sync_period_ps) and self.sync_period_ps > 0
            ):
                raise ValueError(f"sync_period_ps = {self.sync_period_ps!r} must be positive")
            if self.duration_ps is not None and self.duration_ps < 0:
                raise ValueError(f"duration_ps = {self.duration_ps!r} must not be negative")
            object.__setattr__(self, "abs_time_ps", t)
        else:
            if self.abs_time_ps is not None:
                raise ValueError("a T3 stream's times come from sync and dtime")
            sync = np.ascontiguousarray(self.sync, dtype=np.int64)
            dtime = np.asarray(self.dtime)
            if dtime.dtype.kind not in "iu":
                if dtime.size and not np.all(np.mod(dtime, 1) == 0):
                    raise ValueError("dtime must hold integer microtime bins")
            dtime = np.ascontiguousarray(
                dtime, dtype=np.uint32 if dtime.size and dtime.max() > 65535 else np.uint16
            )
            if not (len(sync) == len(dtime) == len(channel)):
                raise ValueError(
                    f"sync, dtime and channel differ in length: {len(sync)}, {len(dtime)}, "
                    f"{len(channel)}"
                )
            if not (
                self.sync_period_ps is not None
                and np.isfinite(self.sync_period_ps)
                and self.sync_period_ps > 0
            ):
                raise ValueError(f"sync_period_ps = {self.sync_period_ps!r} must be positive")
            object.__setattr__(self, "sync", sync)
            object.__setattr__(self, "dtime", dtime)
        if self.truth is not None and len(self.truth) != len(channel):
            raise ValueError("truth has a different length from the stream")
        object.__setattr__(self, "channel", channel)

    @classmethod
    def t2(
        cls,
        time_ps,
        channel,
        *,
        resolution_ps: float = 1.0,
        sync_period_ps: float | None = None,
        duration_ps: int | None = None,
        truth: Truth | None = None,
        meta: dict | None = None,
        markers: Markers | None = None,
    ) -> "PhotonStream":
        """A T2 stream of absolute detection times (int64 ps, time-ordered)."""
        return cls(
            sync=None,
            dtime=None,
            channel=channel,
            sync_period_ps=sync_period_ps,
            resolution_ps=resolution_ps,
            truth=truth,
            meta=dict(meta or {}),
            mode="T2",
            abs_time_ps=time_ps,
            duration_ps=None if duration_ps is None else int(duration_ps),
            markers=markers,
        )

    @property
    def is_t2(self) -> bool:
        return self.mode == "T2"

    def __len__(self) -> int:
        return len(self.channel)

    @classmethod
    def from_arrivals(
        cls, arrival_ps, channel, sync_period_ps: int, resolution_ps: float, **kwargs
    ) -> "PhotonStream":
        """TCSPC quantisation of absolute int64 arrival times (ps): the sync index of the last
        pulse at or before each arrival, and the microtime bin since that pulse."""
        t = np.asarray(arrival_ps, np.int64)
        sync = t // int(sync_period_ps)
        dtime = np.floor((t - sync * int(sync_period_ps)) / resolution_ps).astype(np.uint32)
        return cls(
            sync=sync,
            dtime=dtime,
            channel=channel,
            sync_period_ps=float(sync_period_ps),
            resolution_ps=float(resolution_ps),
            **kwargs,
        )

    def __repr__(self) -> str:
        base = (
            f"sync {self.sync_period_ps:g} ps, resolution {self.resolution_ps:g} ps"
            if not self.is_t2
            else f"T2, tags of {self.resolution_ps:g} ps"
            + (f", laser period {self.sync_period_ps:g} ps" if self.sync_period_ps else "")
        )
        return (
            f"PhotonStream({len(self)} photons, {self.duration_s:.3g} s, "
            f"channels {sorted(set(np.unique(self.channel).tolist()))}, {base}, "
            f"truth={'yes' if self.truth is not None else 'no'})"
        )

    @property
    def rep_rate_hz(self) -> float | None:
        return None if self.sync_period_ps is None else 1e12 / self.sync_period_ps

    @property
    def duration_s(self) -> float:
        if self.is_t2:
            if self.duration_ps is not None:
                return self.duration_ps * 1e-12
            return (int(self.abs_time_ps[-1]) + 1) * 1e-12 if len(self) else 0.0
        if self.n_pulses is not None:
            return self.n_pulses * self.sync_period_ps * 1e-12
        return (int(self.sync[-1]) + 1) * self.sync_period_ps * 1e-12 if len(self) else 0.0

    @property
    def time_ps(self) -> np.ndarray:
        """Absolute detection time in ps (int64): a T2 stream's own; a T3 stream's from
        sync and microtime bin."""
        if self.is_t2:
            return self.abs_time_ps
        t = self.sync * np.int64(round(self.sync_period_ps))
        if float(self.resolution_ps).is_integer():  # integer arithmetic, same result
            t += self.dtime.astype(np.int64) * np.int64(self.resolution_ps)
        else:
            t += np.round(self.dtime * self.resolution_ps).astype(np.int64)
        return t

    def merge_channels(self, groups) -> "PhotonStream":
        """The stream with each group of detectors as one channel: ``groups[k]`` (channel
        numbers) becomes channel ``k``, e.g. ``[[0, 1], [2, 3]]`` for the two arms of a
        four-detector HBT, so a pair estimator uses every cross-arm pair. Photons of
        channels in no group are dropped."""
        lut = np.full(256, 255, np.uint8)
        for k, g in enumerate(groups):
            for c in np.atleast_1d(g):
                if not 0 <= int(c) < 255 or lut[int(c)] != 255:
                    raise ValueError(f"channel {c!r} is out of range or in two groups")
                lut[int(c)] = k
        new = lut[self.channel]
        out = self.take(np.flatnonzero(new != 255))
        return dataclasses.replace(out, channel=new[new != 255])

    def take(self, idx) -> "PhotonStream":
        truth = None if self.truth is None else self.truth.take(idx)
        if self.is_t2:
            return dataclasses.replace(
                self, abs_time_ps=self.abs_time_ps[idx], channel=self.channel[idx], truth=truth
            )
        return dataclasses.replace(
            self,
            sync=self.sync[idx],
            dtime=self.dtime[idx],
            channel=self.channel[idx],
            truth=truth,
        )

    def equal_records(self, other: "PhotonStream") -> bool:
        """Same photons (times, or sync and microtime; channel) and the same time base."""
        if self.mode != other.mode or self.resolution_ps != other.resolution_ps:
            return False
        if self.is_t2:
            return np.array_equal(self.abs_time_ps, other.abs_time_ps) and np.array_equal(
                self.channel, other.channel
            )
        return (
            self.sync_period_ps == other.sync_period_ps
            and np.array_equal(self.sync, other.sync)
            and np.array_equal(self.dtime.astype(np.int64), other.dtime.astype(np.int64))
            and np.array_equal(self.channel, other.channel)
        )

    @staticmethod
    def concat(parts: Iterable["PhotonStream"]) -> "PhotonStream":
        parts = list(parts)
        if not parts:
            raise ValueError("nothing to concatenate")
        first = parts[0]
        for p in parts[1:]:
            if (p.mode, p.sync_period_ps, p.resolution_ps) != (
                first.mode,
                first.sync_period_ps,
                first.resolution_ps,
            ):
                raise ValueError("cannot concatenate streams with different time bases")
        truth = None
        if all(p.truth is not None for p in parts):
            truth = Truth.concat(p.truth for p in parts)
        markers = Markers.concat(p.markers for p in parts)
        if first.is_t2:
            duration = (
                parts[-1].duration_ps if all(p.duration_ps is not None for p in parts) else None
            )
            return PhotonStream.t2(
                np.concatenate([p.abs_time_ps for p in parts]),
                np.concatenate([p.channel for p in parts]),
                resolution_ps=first.resolution_ps,
                sync_period_ps=first.sync_period_ps,
                duration_ps=duration,
                truth=truth,
                meta=dict(parts[-1].meta),
                markers=markers,
            )
        n_pulses = None
        if all(p.n_pulses is not None for p in parts):
            n_pulses = parts[-1].n_pulses
        return PhotonStream(
            sync=np.concatenate([p.sync for p in parts]),
            dtime=np.concatenate([p.dtime.astype(np.uint32) for p in parts]),
            channel=np.concatenate([p.channel for p in parts]),
            sync_period_ps=first.sync_period_ps,
            resolution_ps=first.resolution_ps,
            truth=truth,
            meta=dict(parts[-1].meta),
            n_pulses=n_pulses,
            markers=markers,
        )
