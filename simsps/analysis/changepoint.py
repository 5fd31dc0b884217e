"""Change-point segmentation of photon arrival times (Watkins & Yang, J. Phys. Chem. B 109,
617 (2005)): intensity levels and dwell times without binning.

Binary segmentation: in a stretch of N photons over duration T, the generalised likelihood
ratio of one intensity change after photon k is

    L_k = 2 [k ln(k / V_k) + (N - k) ln((N - k) / (T - V_k)) - N ln(N / T)],

V_k the time from the stretch's start to photon k. The largest L_k is significant when
sqrt(max L) exceeds the (1 - alpha) quantile of its null distribution, for which the
asymptotic form of Horvath (1993) is used: with ``a = sqrt(2 ln ln N)`` and
``b = 2 ln ln N + ln ln ln N / 2 - ln(pi) / 2``, ``P(a sqrt(max L) - b <= x) -> exp(-2 e^-x)``.
Stretches (at most ``window_photons`` to begin with) are split until no significant change
is left. Segment intensities are then put
on two levels by a two-component Poisson mixture weighted by duration, consecutive segments
on the same level merge, and the dwell times are the lengths of the merged runs (the first
and last are censored and dropped).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ._common import AnalysisError, check_stream
from .traces import DwellFit, fit_dwells


@dataclasses.dataclass(frozen=True)
class Segmentation:
    change_times_s: np.ndarray  # boundaries, including start and end of the acquisition
    intensity_cps: np.ndarray  # per segment
    level: np.ndarray  # 0 grey, 1 bright, per segment
    bright_s: np.ndarray  # dwell times of merged runs
    grey_s: np.ndarray
    bright_fit: DwellFit | None
    grey_fit: DwellFit | None


def _critical(n: int, alpha: float) -> float:
    """Critical value of sqrt(max L_k) for n photons (Horvath's asymptotic law)."""
    lnln = math.log(math.log(max(n, 16)))
    a = math.sqrt(2 * lnln)
    b = 2 * lnln + 0.5 * math.log(lnln) - 0.5 * math.log(math.pi)
    x = -math.log(-math.log(1 - alpha) / 2)
    return (x + b) / a


def _best_split(t: np.ndarray, t0: float, t1: float, margin: int):
    """Largest L_k with at least ``margin`` photons on each side, and its change time."""
    n = len(t)
    k = np.arange(1, n)
    v = t[:-1] - t0 + 0.5 * np.diff(t)  # the change between photons k and k+1
    T = t1 - t0
    with np.errstate(divide="ignore", invalid="ignore"):
        ll = 2 * (k * np.log(k / v) + (n - k) * np.log((n - k) / (T - v)) - n * math.log(n / T))
    ll[~np.isfinite(ll)] = -np.inf
    ll[: margin - 1] = -np.inf
    ll[n - margin:] = -np.inf
    i = int(np.argmax(ll))
    return float(ll[i]), float(t0 + v[i])


def change_points(stream, *, alpha: float = 0.01, channels=None, min_photons: int = 8,
                  window_photons: int = 1000) -> Segmentation:
    """Segment the (merged) photon stream into constant-intensity stretches."""
    check_stream(stream, min_photons=2 * min_photons)
    if not 0 < alpha < 0.5:
        raise AnalysisError(f"alpha = {alpha!r} must be in (0, 0.5)")
    sel = np.ones(len(stream), bool) if channels is None else np.isin(stream.channel, np.atleast_1d(channels))
    t = np.sort(stream.time_ps[sel]) * 1e-12
    t_end = stream.duration_s
    # binary segmentation has little power for a short excursion inside a long stretch (one
    # change point cannot describe two), so it starts from windows of ``window_photons``;
    # window edges inside a constant stretch are harmless: both sides get the same level
    # and merge below
    edges = np.arange(0, len(t), window_photons)[1:]
    starts = np.concatenate([[0], edges])
    stops = np.concatenate([edges, [len(t)]])
    times = [0.0] + [0.5 * (t[i - 1] + t[i]) for i in edges] + [t_end]
    stack = [(a, b, times[i], times[i + 1]) for i, (a, b) in enumerate(zip(starts, stops))]
    cuts = list(times[1:-1])
    while stack:
        lo, hi, t0, t1 = stack.pop()
        n = hi - lo
        if n < 2 * min_photons:
            continue
        ll, tc = _best_split(t[lo:hi], t0, t1, min_photons)
        if ll > 0 and math.sqrt(ll) > _critical(n, alpha):
            k = lo + int(np.searchsorted(t[lo:hi], tc))
            cuts.append(tc)
            stack.append((lo, k, t0, tc))
            stack.append((k, hi, tc, t1))
    bounds = np.array([0.0] + sorted(cuts) + [t_end])
    n_in = np.diff(np.searchsorted(t, bounds))
    dur = np.diff(bounds)
    inten = n_in / dur
    level = _two_levels(n_in, dur)
    # merge runs on the same level
    change = np.flatnonzero(np.diff(level)) + 1
    run_starts = np.concatenate([[0], change])
    run_ends = np.concatenate([change, [len(level)]])
    run_len = np.array([dur[a:b].sum() for a, b in zip(run_starts, run_ends)])
    run_level = level[run_starts]
    inner = slice(1, -1)  # first and last runs are censored
    b = run_len[inner][run_level[inner] == 1]
    g = run_len[inner][run_level[inner] == 0]
    return Segmentation(change_times_s=bounds, intensity_cps=inten, level=level, bright_s=b,
                        grey_s=g, bright_fit=fit_dwells(b), grey_fit=fit_dwells(g))


def _two_levels(n: np.ndarray, dur: np.ndarray, iters: int = 300) -> np.ndarray:
    """Bright (1) / grey (0) for each segment: Poisson mixture in rate, weighted by time."""
    rate = n / dur
    if len(rate) < 2 or rate.max() == rate.min():
        return np.ones(len(rate), np.int64)
    lam = np.percentile(rate, [10, 90]).astype(float)
    lam[0] = max(lam[0], 1e-9)
    w = np.array([0.5, 0.5])
    for _ in range(iters):
        logp = n[:, None] * np.log(lam * dur[:, None]) - lam * dur[:, None] + np.log(w)
        logp -= logp.max(axis=1, keepdims=True)
        r = np.exp(logp)
        r /= r.sum(axis=1, keepdims=True)
        w = np.maximum(r.mean(0), 1e-12)
        lam = np.maximum((r * n[:, None]).sum(0) / (r * dur[:, None]).sum(0), 1e-9)
    bright = int(np.argmax(lam))
    if lam.max() - lam.min() < 1e-3 * lam.max() or w.min() < 1e-6:  # one level only
        return np.ones(len(rate), np.int64)
    return (np.argmax(r, axis=1) == bright).astype(np.int64)
