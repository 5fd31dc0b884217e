"""Widefield photostability: which NCs still emit, frame by frame, and their bleach time.

An NC is *seen* in a frame when its spot's counts exceed the background (from empty spots)
by ``threshold_sigma`` standard deviations; it is *still emitting* at frame j if it is seen
in frame j or any later one (a blink is not a bleach). Only NCs seen in the first frame
count. The survival fraction has a binomial stderr; the mean bleach time is the maximum-
likelihood estimate for exponential bleaching with the NCs still emitting at the end
censored (bleach of an NC placed midway between its last frame seen and the next).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ._common import AnalysisError, Warnings

__all__ = ["Survival", "survival"]


@dataclasses.dataclass(frozen=True)
class Survival:
    time_s: np.ndarray
    fraction: np.ndarray  # still emitting, of the NCs seen in the first frame
    fraction_stderr: np.ndarray
    n_ncs: int
    bleach_time_s: float  # mean time to bleach (exponential ML, censored)
    bleach_time_stderr_s: float
    threshold_counts: float
    warnings: tuple[str, ...] = ()

    def at(self, t_s: float) -> tuple[float, float]:
        """Fraction still emitting at the frame nearest ``t_s``, and its stderr."""
        j = int(np.argmin(np.abs(self.time_s - t_s)))
        return float(self.fraction[j]), float(self.fraction_stderr[j])

    def plot(self, ax=None, **kw):
        from .plots import plot_survival

        return plot_survival(self, ax=ax, **kw)


def survival(
    movie=None, *, time_s=None, counts=None, empty_counts=None, threshold_sigma: float = 5.0
) -> Survival:
    """Survival curve of a :class:`~simsps.samples.widefield.WidefieldMovie` (or of ``time_s``,
    ``counts`` (frames x NCs) and ``empty_counts`` (frames x empty spots) from a real one)."""
    if movie is not None:
        time_s, counts, empty_counts = movie.time_s, movie.counts, movie.empty_counts
    t = np.asarray(time_s, float)
    c = np.asarray(counts, float)
    e = np.asarray(empty_counts, float)
    if t.ndim != 1 or len(t) < 2 or c.ndim != 2 or c.shape[0] != len(t):
        raise AnalysisError("need time_s (frames) and counts (frames x NCs) with >= 2 frames")
    if np.any(np.diff(t) <= 0):
        raise AnalysisError("frame times must increase")
    if e.size < 10:
        raise AnalysisError("need at least 10 empty-spot values to set the detection threshold")
    if not threshold_sigma > 0:
        raise AnalysisError(f"threshold_sigma = {threshold_sigma!r} must be positive")
    threshold = float(e.mean() + threshold_sigma * e.std(ddof=1))
    seen = c > threshold
    start = seen[0]
    n = int(start.sum())
    if n == 0:
        raise AnalysisError(f"no NC is seen in the first frame (threshold {threshold:.1f} counts)")
    seen = seen[:, start]
    n_frames = len(t)
    last = n_frames - 1 - np.argmax(seen[::-1], axis=0)  # last frame seen (>= 0: seen at 0)
    emitting = last[None, :] >= np.arange(n_frames)[:, None]
    f = emitting.mean(axis=1)
    se = np.sqrt(f * (1 - f) / n)
    bleached = last < n_frames - 1
    step = np.diff(t)
    # time under the LED from the first frame: to midway after the last frame seen, or to
    # the end for those still emitting (censored)
    exposure = (
        np.where(
            bleached,
            t[np.minimum(last, n_frames - 2)] + 0.5 * step[np.minimum(last, n_frames - 2)],
            t[-1],
        )
        - t[0]
    )
    k = int(bleached.sum())
    tau = float(exposure.sum() / k) if k else math.inf
    warn = Warnings()
    warn.add(k == 0, "no NC bleached during the movie: the bleach time is only bounded below")
    warn.add(n < 20, f"only {n} NCs seen in the first frame")
    return Survival(
        time_s=t,
        fraction=f,
        fraction_stderr=se,
        n_ncs=n,
        bleach_time_s=tau,
        bleach_time_stderr_s=tau / math.sqrt(k) if k else math.inf,
        threshold_counts=threshold,
        warnings=tuple(warn),
    )
