"""PhotonStream: a T3 TTTR photon stream (sync index, microtime bin, channel) plus truth."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, Iterable

import numpy as np

__all__ = ["PhotonStream", "Truth", "Source", "State", "NO_EMITTER"]

NO_EMITTER = np.iinfo(np.uint16).max


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
class PhotonStream:
    """A time-ordered T3 photon stream.

    ``sync``: int64 index of the laser pulse before the photon; ``dtime``: microtime bin
    (time after that pulse in units of ``resolution_ps``); ``channel``: detector (0, 1, ...).
    ``truth`` is the simulation's ground truth, ``None`` for measured data; ``meta`` holds
    provenance (model, seed, power, duration).
    """

    sync: np.ndarray
    dtime: np.ndarray
    channel: np.ndarray
    sync_period_ps: float
    resolution_ps: float
    truth: Truth | None = None
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)
    n_pulses: int | None = None  # length of the acquisition in pulses, if known

    def __post_init__(self):
        sync = np.ascontiguousarray(self.sync, dtype=np.int64)
        dtime = np.asarray(self.dtime)
        if dtime.dtype.kind not in "iu":
            if dtime.size and not np.all(np.mod(dtime, 1) == 0):
                raise ValueError("dtime must hold integer microtime bins")
        dtime = np.ascontiguousarray(
            dtime, dtype=np.uint32 if dtime.size and dtime.max() > 65535 else np.uint16
        )
        channel = np.ascontiguousarray(self.channel, dtype=np.uint8)
        if not (len(sync) == len(dtime) == len(channel)):
            raise ValueError(
                f"sync, dtime and channel differ in length: {len(sync)}, {len(dtime)}, {len(channel)}"
            )
        if not (np.isfinite(self.sync_period_ps) and self.sync_period_ps > 0):
            raise ValueError(f"sync_period_ps = {self.sync_period_ps!r} must be positive")
        if not (np.isfinite(self.resolution_ps) and self.resolution_ps > 0):
            raise ValueError(f"resolution_ps = {self.resolution_ps!r} must be positive")
        if self.truth is not None and len(self.truth) != len(sync):
            raise ValueError("truth has a different length from the stream")
        object.__setattr__(self, "sync", sync)
        object.__setattr__(self, "dtime", dtime)
        object.__setattr__(self, "channel", channel)

    def __len__(self) -> int:
        return len(self.sync)

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
        return (
            f"PhotonStream({len(self)} photons, {self.duration_s:.3g} s, "
            f"channels {sorted(set(np.unique(self.channel).tolist()))}, "
            f"sync {self.sync_period_ps:g} ps, resolution {self.resolution_ps:g} ps, "
            f"truth={'yes' if self.truth is not None else 'no'})"
        )

    @property
    def rep_rate_hz(self) -> float:
        return 1e12 / self.sync_period_ps

    @property
    def duration_s(self) -> float:
        if self.n_pulses is not None:
            return self.n_pulses * self.sync_period_ps * 1e-12
        return (int(self.sync[-1]) + 1) * self.sync_period_ps * 1e-12 if len(self) else 0.0

    @property
    def time_ps(self) -> np.ndarray:
        """Absolute detection time in ps (int64), from sync and microtime bin."""
        t = self.sync * np.int64(round(self.sync_period_ps))
        if float(self.resolution_ps).is_integer():  # integer arithmetic, same result
            t += self.dtime.astype(np.int64) * np.int64(self.resolution_ps)
        else:
            t += np.round(self.dtime * self.resolution_ps).astype(np.int64)
        return t

    def take(self, idx) -> "PhotonStream":
        return dataclasses.replace(
            self,
            sync=self.sync[idx],
            dtime=self.dtime[idx],
            channel=self.channel[idx],
            truth=None if self.truth is None else self.truth.take(idx),
        )

    def equal_records(self, other: "PhotonStream") -> bool:
        """Same photons (sync, microtime, channel) and the same time base."""
        return (
            self.sync_period_ps == other.sync_period_ps
            and self.resolution_ps == other.resolution_ps
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
            if (p.sync_period_ps, p.resolution_ps) != (first.sync_period_ps, first.resolution_ps):
                raise ValueError("cannot concatenate streams with different time bases")
        truth = None
        if all(p.truth is not None for p in parts):
            truth = Truth.concat(p.truth for p in parts)
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
        )
