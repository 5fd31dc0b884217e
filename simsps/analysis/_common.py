"""Input checks and the photon-pair search shared by the correlation estimators."""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..stream import PhotonStream


class AnalysisError(ValueError):
    """The data cannot support the requested analysis (empty, one channel, no time base...)."""


def check_stream(stream, *, need_channels: tuple[int, ...] = (), min_photons: int = 1) -> None:
    if not isinstance(stream, PhotonStream):
        raise AnalysisError(f"expected a PhotonStream, got {type(stream).__name__}")
    if len(stream) < min_photons:
        raise AnalysisError(f"the stream holds {len(stream)} photons; this analysis needs "
                            f"at least {min_photons}")
    if not (np.isfinite(stream.sync_period_ps) and stream.sync_period_ps > 0):
        raise AnalysisError("the stream has no sync period (sync rate missing from the file?)")
    if len(stream) > 1 and np.any(stream.sync[1:] < stream.sync[:-1]):
        raise AnalysisError("the photons are not in time order (sync decreases); sort the "
                            "stream by sync first")
    present = set(np.flatnonzero(np.bincount(stream.channel)).tolist()) if len(stream) else set()
    missing = [c for c in need_channels if c not in present]
    if missing:
        raise AnalysisError(f"channel {missing[0]} has no photons (channels present: "
                            f"{sorted(present)}); a cross-correlation needs both detectors")


def check_bin(bin_s: float, duration_s: float, what: str = "bin_s") -> float:
    b = float(bin_s)
    if not (np.isfinite(b) and b > 0):
        raise AnalysisError(f"{what} = {bin_s!r} must be positive (seconds)")
    if b > duration_s:
        raise AnalysisError(f"{what} = {b:g} s is longer than the acquisition ({duration_s:g} s)")
    return b


def _cross_pair_passes(t: np.ndarray, is_a: np.ndarray, window: int, lo: int = 0,
                       hi: int | None = None, signed: bool = True):
    """Yield, offset k = 1, 2, ... at a time, the delays ``t[i + k] - t[i]`` (< ``window``)
    of the cross-channel pairs whose earlier photon ``i`` is in ``[lo, hi)``, and whether
    that photon is channel a (``None`` when not ``signed``).

    Pair (i, i + k) exists for every photon i that still has a k-th neighbour inside the
    window. While most photons do, whole shifted slices are compared (contiguous, fast);
    once few do, only those are followed (their set shrinks with k, since times are
    ordered). Cost: a few passes over the stream plus the pairs.
    """
    n = len(t)
    hi = n if hi is None else min(hi, n)
    active = None  # None: every photon in [lo, hi) is still active
    k = 1
    while k < n:
        if active is None:
            m = min(hi, n - k) - lo
            if m <= 0:
                return
            d = t[lo + k:lo + k + m] - t[lo:lo + m]
            first, second = is_a[lo:lo + m], is_a[lo + k:lo + k + m]
            near = d < window
            cross = near & (first != second)
            yield d[cross], first[cross] if signed else None
            if not near.any():
                return
            if near.mean() < 0.5:
                active = np.flatnonzero(near) + lo
        else:
            active = active[active + k < n]
            j = active + k
            d = t[j] - t[active]
            keep = d < window
            active, j, d = active[keep], j[keep], d[keep]
            if not len(active):
                return
            ia = is_a[active]
            cross = ia != is_a[j]
            yield d[cross], ia[cross] if signed else None
        k += 1


def cross_pairs(t: np.ndarray, is_a: np.ndarray, window: int) -> np.ndarray:
    """Signed delays ``t_b - t_a`` (same unit as ``t``) of every pair of photons from the
    two channels closer than ``window``; ``t`` is the time-ordered merged stream and
    ``is_a`` marks channel-a photons."""
    out = [np.where(a_first, d, -d) for d, a_first in _cross_pair_passes(t, is_a, window)]
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def merged_times(stream, a: int = 0, b: int = 1):
    """Absolute times (int64 ps) of the photons of channels ``a`` and ``b`` in time order,
    and a mask of the channel-``a`` ones."""
    ch = stream.channel
    is_a = ch == a
    sel = is_a | (ch == b)
    t = stream.time_ps
    if not sel.all():  # other detectors present: drop them
        t, is_a = t[sel], is_a[sel]
    if len(t) > 1 and np.any(t[1:] < t[:-1]):  # real files: channels interleave within a sync
        order = np.argsort(t, kind="stable")
        t, is_a = t[order], is_a[order]
    return t, is_a


def cross_pair_histogram(t: np.ndarray, is_a: np.ndarray, edges: np.ndarray,
                         threads: int | None = None) -> np.ndarray:
    """Counts of cross-channel pairs by ``|t_j - t_i|`` in the bins ``edges`` (integer, same
    unit as ``t``), both orders together, without holding the pairs: the offset walk of
    :func:`_cross_pair_passes`, binned pass by pass through a lookup table on the delay
    (one table cell narrower than any bin, then one comparison with the next edge), or by
    binary search where such a table would be too large."""
    edges = np.asarray(edges, np.int64)
    n_bins = len(edges) - 1
    window = int(edges[-1])
    # table cell: a power of two (a shift, not a division) at most half the narrowest bin;
    # entry = 1 + the bin of the cell's start (0: below the first edge)
    shift = max(0, int(math.floor(math.log2(max(1, int(np.diff(edges).min()) // 2)))))
    lut = None
    if window >> shift < 1 << 24:
        lut = np.searchsorted(edges, np.arange(0, window + (1 << shift), 1 << shift),
                              side="right").astype(np.int32)
    nxt = np.concatenate([edges, [np.iinfo(np.int64).max]])  # nxt[k]: lower edge of bin k

    def add(d, counts):  # counts[0] collects "below the first edge"
        if not len(d):
            return
        if lut is None:
            k = np.searchsorted(edges, d, side="right")
        else:
            k = lut[d >> shift]
            k += d >= nxt[k]  # at most one edge inside a table cell
        counts += np.bincount(k, minlength=n_bins + 1)[: n_bins + 1]

    # blocks of photons keep every temporary small (reused memory, in cache); numpy
    # releases the GIL in most of these loops, so blocks run on threads
    block = 1 << 17
    starts = np.arange(0, len(t), block)

    def part(first_blocks):
        local = np.zeros(n_bins + 1, np.int64)
        for lo in first_blocks:
            for d, _ in _cross_pair_passes(t, is_a, window, int(lo), int(lo) + block,
                                           signed=False):
                add(d, local)
        return local

    n_threads = threads or (min(os.cpu_count() or 1, 4) if len(t) > 1 << 20 else 1)
    jobs = [starts[i::n_threads] for i in range(n_threads)]
    if n_threads == 1:
        counts = part(starts)
    else:
        with ThreadPoolExecutor(n_threads) as pool:
            counts = sum(pool.map(part, jobs))
    return counts[1:]
