"""Input checks and the photon-pair search shared by the correlation estimators."""

from __future__ import annotations

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


def cross_pairs(t: np.ndarray, is_a: np.ndarray, window: int) -> np.ndarray:
    """Signed delays ``t_b - t_a`` (same unit as ``t``) of every pair of photons from the
    two channels closer than ``window``; ``t`` is the time-ordered merged stream and
    ``is_a`` marks channel-a photons.

    Walks index offsets k = 1, 2, ...: pair (i, i + k) for every photon i that still has a
    k-th neighbour inside the window. While most photons do, whole shifted slices are
    compared (contiguous, fast); once few do, only those are followed (their set shrinks
    with k, since times are ordered). Cost: a few passes over the stream plus the pairs.
    """
    n = len(t)
    out = []
    active = None  # None: every photon is still active
    k = 1
    while k < n:
        if active is None:
            d = t[k:] - t[:-k]
            near = d < window
            cross = near & (is_a[k:] != is_a[:-k])
            dc = d[cross]
            out.append(np.where(is_a[:-k][cross], dc, -dc))
            if not near.any():
                break
            if near.mean() < 0.25:
                active = np.flatnonzero(near)
        else:
            active = active[active + k < n]
            j = active + k
            d = t[j] - t[active]
            keep = d < window
            active, j, d = active[keep], j[keep], d[keep]
            if not len(active):
                break
            ia = is_a[active]
            cross = ia != is_a[j]
            out.append(np.where(ia[cross], d[cross], -d[cross]))
        k += 1
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def merged_times(stream, a: int = 0, b: int = 1):
    """Absolute times (int64 ps) of the photons of channels ``a`` and ``b`` in time order,
    and a mask of the channel-``a`` ones."""
    sel = (stream.channel == a) | (stream.channel == b)
    t = stream.time_ps[sel]
    is_a = stream.channel[sel] == a
    if len(t) > 1 and np.any(t[1:] < t[:-1]):  # real files: channels interleave within a sync
        order = np.argsort(t, kind="stable")
        t, is_a = t[order], is_a[order]
    return t, is_a
