"""Change-point segmentation of photon arrival times (Watkins & Yang, J. Phys. Chem. B 109,
617 (2005)): intensity levels and dwell times without binning.

Binary segmentation: in a stretch of N photons over duration T, the generalised likelihood
ratio of one intensity change after photon k is

    L_k = 2 [k ln(k / V_k) + (N - k) ln((N - k) / (T - V_k)) - N ln(N / T)],

V_k the time from the stretch's start to photon k. The largest L_k is significant when
sqrt(max L) exceeds the (1 - alpha) quantile of its null distribution: for a stretch of
constant intensity the N photon times are uniform, whatever the rate, so the quantile
depends on N (and on the ``min_photons`` kept on each side) only. As Watkins and Yang did,
it comes from simulation: 40 000 uniform stretches per N on a log grid of N from 16 to
16384 (``_changepoint_null.py``, written by ``python -m simsps.analysis.changepoint``),
interpolated in log N and log alpha; other N, alpha or margins are simulated on first use
(4000 stretches, cached). The asymptotic law of Horvath (1993) that this replaces is
conservative at these N (false-alarm rate 0-3e-4 at nominal 0.01), so it missed short dwells.
Stretches (at most ``window_photons`` to begin with) are split until no significant change
is left. Segment intensities are then put
on two levels by a two-component Poisson mixture weighted by duration, consecutive segments
on the same level merge, and the dwell times are the lengths of the merged runs (the first
and last are censored and dropped).
"""

from __future__ import annotations

import dataclasses
import functools
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
    warnings: tuple[str, ...] = ()


def _statistic(t: np.ndarray, t0: float, t1: float, margin: int) -> np.ndarray:
    """sqrt(max_k L_k) of each row of sorted photon times ``t`` (R, N) on [t0, t1]."""
    n = t.shape[-1]
    k = np.arange(1, n)
    v = t[..., :-1] - t0 + 0.5 * np.diff(t, axis=-1)
    T = t1 - t0
    with np.errstate(divide="ignore", invalid="ignore"):
        ll = 2 * (k * np.log(k / v) + (n - k) * np.log((n - k) / (T - v)) - n * math.log(n / T))
    ll = np.where(np.isfinite(ll), ll, -np.inf)
    ll[..., : margin - 1] = -np.inf
    ll[..., n - margin :] = -np.inf
    return np.sqrt(np.maximum(ll.max(axis=-1), 0.0))


def null_quantiles(n: int, margin: int, alphas, replicates: int, seed: int = 0) -> np.ndarray:
    """(1 - alpha) quantiles of sqrt(max L) for ``n`` uniform photons (no change), by
    simulation of ``replicates`` stretches."""
    rng = np.random.default_rng([seed, n, margin])
    stats = []
    chunk = max(1, int(4e6 // n))
    for start in range(0, replicates, chunk):
        r = min(chunk, replicates - start)
        stats.append(_statistic(np.sort(rng.random((r, n)), axis=1), 0.0, 1.0, margin))
    stats = np.concatenate(stats)
    return np.quantile(stats, 1 - np.asarray(alphas, float))


@functools.lru_cache(maxsize=4096)
def _simulated(n: int, margin: int, alpha: float) -> float:
    return float(null_quantiles(n, margin, [alpha], 4000)[0])


def _critical(n: int, alpha: float, margin: int = 8) -> float:
    """Critical value of sqrt(max L_k) for n photons: the simulated null table (module doc)."""
    from ._changepoint_null import ALPHAS, MARGIN, N_GRID, QUANTILES

    n_grid = np.asarray(N_GRID, float)
    alphas = np.asarray(ALPHAS, float)
    if (
        margin != MARGIN
        or not (n_grid[0] <= n <= n_grid[-1])
        or not (alphas.min() <= alpha <= alphas.max())
    ):
        # off the table: simulate this n on a log grid of 8 per octave, once
        n_key = int(round(2 ** (round(8 * math.log2(n)) / 8)))
        return _simulated(max(n_key, 2 * margin), margin, float(alpha))
    q = np.asarray(QUANTILES, float)  # (len(N_GRID), len(ALPHAS))
    x = math.log(n)
    i = int(np.clip(np.searchsorted(np.log(n_grid), x) - 1, 0, len(n_grid) - 2))
    fx = (x - math.log(n_grid[i])) / (math.log(n_grid[i + 1]) - math.log(n_grid[i]))
    order = np.argsort(alphas)
    la = np.log(alphas[order])
    row = (1 - fx) * q[i][order] + fx * q[i + 1][order]
    return float(np.interp(math.log(alpha), la, row))


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
    ll[n - margin :] = -np.inf
    i = int(np.argmax(ll))
    return float(ll[i]), float(t0 + v[i])


def change_points(
    stream, *, alpha: float = 0.01, channels=None, min_photons: int = 8, window_photons: int = 1000
) -> Segmentation:
    """Segment the (merged) photon stream into constant-intensity stretches."""
    check_stream(stream, min_photons=2 * min_photons)
    if not 0 < alpha < 0.5:
        raise AnalysisError(f"alpha = {alpha!r} must be in (0, 0.5)")
    sel = (
        np.ones(len(stream), bool)
        if channels is None
        else np.isin(stream.channel, np.atleast_1d(channels))
    )
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
        if ll > 0 and math.sqrt(ll) > _critical(n, alpha, min_photons):
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
    bf, gf = fit_dwells(b), fit_dwells(g)
    warn = [
        f"{name} dwells: {w}" for name, f in (("bright", bf), ("grey", gf)) if f for w in f.warnings
    ]
    if len(level) < 3 or level.min() == level.max():
        warn.append("no change between two intensity levels found: no dwell times")
    return Segmentation(
        change_times_s=bounds,
        intensity_cps=inten,
        level=level,
        bright_s=b,
        grey_s=g,
        bright_fit=bf,
        grey_fit=gf,
        warnings=tuple(warn),
    )


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


def _tabulate(path=None, replicates: int = 40_000) -> None:
    """Write ``_changepoint_null.py``: simulated null quantiles on the N x alpha grid."""
    from pathlib import Path

    from tqdm.auto import tqdm

    n_grid = sorted({int(round(2 ** (j / 4))) for j in range(16, 57)})  # 16 .. 16384
    alphas = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2]
    rows = [
        null_quantiles(n, 8, alphas, replicates).tolist()
        for n in tqdm(n_grid, desc="null quantiles")
    ]
    path = Path(path or Path(__file__).with_name("_changepoint_null.py"))
    lines = [
        '"""Simulated null quantiles of the Watkins-Yang statistic sqrt(max L_k): written by',
        '``python -m simsps.analysis.changepoint`` (%d uniform stretches per N, margin 8)."""'
        % replicates,
        "",
        "MARGIN = 8",
        f"N_GRID = {n_grid}",
        f"ALPHAS = {alphas}",
        "QUANTILES = [",
    ]
    lines += [f"    {[round(x, 5) for x in r]}," for r in rows]
    lines += ["]", ""]
    path.write_text("\n".join(lines))


if __name__ == "__main__":
    _tabulate()
