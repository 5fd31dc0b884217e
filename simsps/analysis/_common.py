"""Input checks and the per-channel photon times shared by the estimators."""

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


def channel_times(stream, a: int = 0, b: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Absolute times (int64 ps) of the photons of channel ``a`` and of channel ``b``, each
    in time order (real files interleave channels within a sync)."""
    if a == b:
        raise AnalysisError(f"channels ({a}, {b}): a cross-correlation needs two different "
                            "detectors")
    if float(stream.resolution_ps).is_integer():  # one compiled pass, same as time_ps
        from ._kernels import split_times

        return split_times(stream.sync, stream.dtime, stream.channel, a, b,
                           int(round(stream.sync_period_ps)), int(stream.resolution_ps))
    t, ch = stream.time_ps, stream.channel
    out = []
    for c in (a, b):
        tc = t[ch == c]
        if len(tc) > 1 and np.any(tc[1:] < tc[:-1]):
            tc = np.sort(tc, kind="stable")
        out.append(tc)
    return out[0], out[1]
