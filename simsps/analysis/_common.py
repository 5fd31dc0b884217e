"""Input checks and the per-channel photon times shared by the estimators."""

from __future__ import annotations

import math

import numpy as np

from ..stream import PhotonStream


class AnalysisError(ValueError):
    """The data cannot support the requested analysis (empty, one channel, no time base...)."""


def check_stream(stream, *, need_channels: tuple[int, ...] = (), min_photons: int = 1) -> None:
    if not isinstance(stream, PhotonStream):
        raise AnalysisError(f"expected a PhotonStream, got {type(stream).__name__}")
    if len(stream) < min_photons:
        raise AnalysisError(
            f"the stream holds {len(stream)} photons; this analysis needs at least {min_photons}"
        )
    if stream.is_t2:
        t = stream.time_ps
        if len(t) > 1 and np.any(t[1:] < t[:-1]):
            raise AnalysisError(
                "the photons are not in time order (time tags decrease); sort the stream first"
            )
    else:
        if not (np.isfinite(stream.sync_period_ps) and stream.sync_period_ps > 0):
            raise AnalysisError("the stream has no sync period (sync rate missing from the file?)")
        if len(stream) > 1 and np.any(stream.sync[1:] < stream.sync[:-1]):
            raise AnalysisError(
                "the photons are not in time order (sync decreases); sort the stream by sync first"
            )
    present = set(np.flatnonzero(np.bincount(stream.channel)).tolist()) if len(stream) else set()
    missing = [c for c in need_channels if c not in present]
    if missing:
        raise AnalysisError(
            f"channel {missing[0]} has no photons (channels present: "
            f"{sorted(present)}); a cross-correlation needs both detectors"
        )


def require_t3(stream, what: str) -> None:
    """Refuse a T2 stream where an estimator needs the laser's sync and microtimes."""
    if stream.is_t2:
        raise AnalysisError(
            f"{what} needs a T3 stream (a pulsed laser's sync and microtimes); this is a T2 "
            "stream of absolute time tags: use g2_cw, g2_log or the traces"
        )


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
        raise AnalysisError(
            f"channels ({a}, {b}): a cross-correlation needs two different detectors"
        )
    if not stream.is_t2 and float(stream.resolution_ps).is_integer():  # one compiled pass
        from ._kernels import split_times

        return split_times(
            stream.sync,
            stream.dtime,
            stream.channel,
            a,
            b,
            int(round(stream.sync_period_ps)),
            int(stream.resolution_ps),
        )
    t, ch = stream.time_ps, stream.channel
    out = []
    for c in (a, b):
        tc = t[ch == c]
        if len(tc) > 1 and np.any(tc[1:] < tc[:-1]):
            tc = np.sort(tc, kind="stable")
        out.append(tc)
    return out[0], out[1]


def central_jacobian(fn, theta, *, floor: float = 1e-3) -> np.ndarray:
    """d fn / d theta by central differences, step ``1e-6 * max(|theta_i|, floor)``;
    ``fn`` maps a parameter vector to an array. Returns (len(fn(theta)), len(theta))."""
    theta = np.asarray(theta, np.float64)
    cols = []
    for i in range(len(theta)):
        h = 1e-6 * max(abs(theta[i]), floor)
        hi, lo = theta.copy(), theta.copy()
        hi[i] += h
        lo[i] -= h
        cols.append((np.asarray(fn(hi)) - np.asarray(fn(lo))) / (2 * h))
    return np.column_stack(cols)


def interval(value: float, stderr: float, dof: float | None, level: float) -> tuple[float, float]:
    """Two-sided confidence interval: Student's t with ``dof`` degrees of freedom (the
    block jackknife's), the normal law when ``dof`` is None or infinite."""
    from scipy import stats

    if not 0 < level < 1:
        raise AnalysisError(f"level = {level!r} must be in (0, 1)")
    q = 1 - (1 - level) / 2
    z = stats.norm.ppf(q) if dof is None or not np.isfinite(dof) else stats.t.ppf(q, dof)
    return float(value - z * stderr), float(value + z * stderr)


class Warnings(list):
    """Plain-sentence warnings collected while an estimate is made (results keep them as a
    tuple in their ``warnings`` field)."""

    def add(self, condition, message: str) -> bool:
        if condition:
            self.append(message)
        return bool(condition)


def channel_delay_ps(stream, a: int, b: int) -> float:
    """Delay of detector ``b``'s timing relative to ``a``'s (cables, electronics), from the
    circular cross-correlation of their microtime histograms over one period (peak refined
    by a parabola through its neighbours). 0 for identical detectors (T3 streams)."""
    require_t3(stream, "the channel delay from microtime histograms")
    period = float(stream.sync_period_ps)
    res = float(stream.resolution_ps)
    n = max(int(math.ceil(period / res)), 2)
    if a == b:
        return 0.0
    is_b = stream.channel == b  # one counting pass over (detector, microtime bin)
    keep = is_b | (stream.channel == a)
    cells = is_b[keep].astype(np.int64) * n + stream.dtime[keep].astype(np.int64) % n
    both = np.bincount(cells, minlength=2 * n).astype(np.float64)
    ha, hb = both[:n] - both[:n].mean(), both[n:] - both[n:].mean()
    xc = np.fft.irfft(np.conj(np.fft.rfft(ha)) * np.fft.rfft(hb), n)
    k = int(np.argmax(xc))
    y0, y1, y2 = xc[k - 1], xc[k], xc[(k + 1) % n]
    denom = y0 - 2 * y1 + y2
    frac = 0.5 * (y0 - y2) / denom if denom < 0 else 0.0
    lag = (k + frac) * res
    return float(lag - period if lag > period / 2 else lag)


def background_rates(background, stream, channels, na: int, nb: int):
    """Parse an estimator's ``background`` argument: "floor" / None (measured by the
    estimator itself), count rates in cps (one number split by the channels' count rates,
    or one per channel), or a :class:`PhotonStream` of an empty spot. Returns
    (mode, (rate_a, rate_b) or None, their variances or None); mode is "floor", "rates"
    or "empty spot"."""
    duration = stream.duration_s
    rates = np.array([na, nb], float) / duration
    if background is None or isinstance(background, str):
        if background not in (None, "floor"):
            raise AnalysisError(
                f"background {background!r}: use 'floor', rates in cps or an "
                "empty spot's PhotonStream"
            )
        return "floor", None, None
    if isinstance(background, PhotonStream):
        if background.duration_s <= 0:
            raise AnalysisError("the empty-spot stream has no duration")
        counts = np.array([np.sum(background.channel == c) for c in channels], float)
        bg = counts / background.duration_s
        var = tuple(counts / background.duration_s**2)
        mode = "empty spot"
    else:
        try:
            bg = np.atleast_1d(np.asarray(background, float))
        except (TypeError, ValueError):
            raise AnalysisError(
                f"background = {background!r}: give cps >= 0, one number or one per channel"
            ) from None
        if bg.size == 1:
            bg = bg[0] * rates / rates.sum()
        var = None
        mode = "rates"
    if bg.shape != (2,) or np.any(bg < 0) or not np.all(np.isfinite(bg)):
        raise AnalysisError(
            f"background = {background!r}: give cps >= 0, one number or one per channel"
        )
    if np.any(bg >= rates):
        raise AnalysisError(
            f"background {bg.tolist()} cps is not below the count rates {rates.tolist()} cps"
        )
    return mode, (float(bg[0]), float(bg[1])), var
