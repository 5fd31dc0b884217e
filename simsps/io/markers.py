"""Marker records added on write: a frame marker every N seconds, as a scanning setup or
a shutter would write it, for tools that expect markers in a file."""

from __future__ import annotations

import dataclasses
import math
from typing import Iterable, Iterator

import numpy as np

from ..stream import Markers, PhotonStream

__all__ = ["with_periodic_markers"]


def with_periodic_markers(
    chunks: Iterable[PhotonStream], every_s: float, bits: int = 1
) -> Iterator[PhotonStream]:
    """The time-ordered ``chunks`` with a marker of ``bits`` (1-15) at t = 0, every_s,
    2 every_s, ... up to the end of the acquisition, each in the chunk that covers its
    time (T3: on the nearest laser pulse; T2: the nearest ps). A chunk's own markers are
    kept."""
    if not (math.isfinite(every_s) and every_s > 0):
        raise ValueError(f"marker period {every_s!r} s must be a positive number")
    if not 1 <= int(bits) <= 15:
        raise ValueError(f"marker bits {bits!r}: 1..15")
    done = 0  # markers placed so far
    start = 0  # where the previous chunk ended (T3: pulses; T2: ps)
    for chunk in chunks:
        if chunk.is_t2:
            step = every_s * 1e12
            end = chunk.duration_ps if chunk.duration_ps is not None else _after(chunk, start)
        else:
            step = every_s * 1e12 / chunk.sync_period_ps
            end = chunk.n_pulses if chunk.n_pulses is not None else _after(chunk, start)
        k = np.arange(done, max(done, int(math.ceil(end / step)) + 1))
        t = np.round(k * step).astype(np.int64)
        t = t[t < end]
        done += len(t)
        t = t[t >= start]
        start = max(start, int(end))
        if not len(t):
            yield chunk
            continue
        time_ps = t if chunk.is_t2 else t * np.int64(round(chunk.sync_period_ps))
        new = Markers(time_ps, np.full(len(t), int(bits), np.uint8))
        if chunk.markers is not None and len(chunk.markers):
            both = Markers.concat([chunk.markers, new])
            order = np.argsort(both.time_ps, kind="stable")
            new = Markers(both.time_ps[order], both.bits[order])
        yield dataclasses.replace(chunk, markers=new)


def _after(chunk: PhotonStream, start: int) -> int:
    if not len(chunk):
        return start
    return int(chunk.time_ps[-1]) + 1 if chunk.is_t2 else int(chunk.sync[-1]) + 1
