"""Normalised cross-correlation g2(tau) on log-spaced delays (ns to s), and the fit of the
blinking bunching ``g2 = 1 + A exp(-tau / tau_c)``.

Two regimes, chosen by cost, meet at a bin edge:

* short delays: every pair of photons (one per channel) closer than the split delay is
  found on the time-ordered stream and binned by its exact delay in ps;
* long delays: both channels are counted on a time grid of quantum ``r`` (half the
  narrowest bin of each decade, coarser only if ``grid_budget`` demands), and the pairs
  closer than an edge E are ``sum_a (B[q_a + E] - B[q_a - E + 1])`` with ``B`` the
  cumulative count of the other channel on the grid; the grid is walked in blocks of
  cells small enough to stay in cache (see ``_grid_counts``). Quantising both times to
  ``r`` smears each bin edge by +-r but leaves the expected count of an uncorrelated pair
  in a bin at exactly (width x rate), so g2 stays unbiased where it is smooth on the scale
  of ``r``.

Where bins are at least a laser period wide their edges sit midway between two peaks, so
each holds whole peaks (``snap_to_period``). The work runs on threads (numpy releases the
GIL in its loops).

Both delay signs are counted (HBT correlations of a stationary emitter are symmetric), and
``g2 = pairs / (2 N_a N_b w (D - tau) / D^2)`` for bin width ``w`` at delay ``tau`` in an
acquisition of duration ``D``. ``stderr``: the count of pairs in a bin is Poisson at short
delays; in long bins pairs share photons, and for independent channels its variance is
``E (1 + (N_a + N_b) w / D)``, used throughout (the bunching fit treats bins as independent).
"""

from __future__ import annotations

import dataclasses
import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ._common import AnalysisError, check_stream, cross_pair_histogram, merged_times


@dataclasses.dataclass(frozen=True)
class BunchingFit:
    amplitude: float  # A in 1 + A exp(-tau/tau_c)
    amplitude_stderr: float
    tau_c_s: float
    tau_c_stderr_s: float
    baseline: float
    baseline_stderr: float  # 0 when the baseline is fixed
    chi2_per_dof: float
    fit_range_s: tuple[float, float]

    def model(self, tau_s):
        return self.baseline + self.amplitude * np.exp(-np.asarray(tau_s) / self.tau_c_s)

    @property
    def relative_amplitude(self) -> float:
        """A / baseline: the bunching of g2 normalised to its long-delay plateau."""
        return self.amplitude / self.baseline

    def decayed_by(self, fraction: float = 1 / math.e) -> float:
        """Delay (s) where the bunching excess has fallen to ``fraction`` of its value at 0."""
        return -self.tau_c_s * math.log(fraction)


@dataclasses.dataclass(frozen=True)
class G2Log:
    tau_s: np.ndarray  # geometric bin centres
    tau_edges_s: np.ndarray
    g2: np.ndarray
    stderr: np.ndarray
    pairs: np.ndarray
    split_s: float  # delay where exact pairs hand over to the gridded count
    fit: BunchingFit | None

    def plot(self, ax=None, **kw):
        from .plots import plot_g2_log

        return plot_g2_log(self, ax=ax, **kw)


def log_edges_ps(tau_min_s: float, tau_max_s: float, bins_per_decade: int,
                 period_ps: float | None = None) -> np.ndarray:
    """Log-spaced bin edges in integer ps. With ``period_ps`` (pulsed excitation), edges of
    bins at least one period wide move to the nearest midpoint between two peaks, so every
    such bin holds whole peaks and g2 shows the envelope, not the comb aliased."""
    n = int(math.ceil(bins_per_decade * math.log10(tau_max_s / tau_min_s) - 1e-9))
    e = tau_min_s * 10 ** (np.arange(n + 1) / bins_per_decade) * 1e12
    if period_ps:
        wide = e * (10 ** (1 / bins_per_decade) - 1) >= period_ps
        e = np.where(wide, (np.round(e / period_ps - 0.5) + 0.5) * period_ps, e)
    return np.unique(np.round(e).astype(np.int64))


def g2_log(stream, *, tau_min_s: float = 1e-8, tau_max_s: float = 1.0,
           bins_per_decade: int = 10, channels: tuple[int, int] = (0, 1),
           fit: bool = True, fit_min_s: float | None = None, fit_max_s: float | None = None,
           baseline: str = "free", snap_to_period: bool = True, pair_budget: float = 1e8,
           grid_budget: float = 4e7) -> G2Log:
    """Cross-correlation of ``channels`` on log-spaced delays; see the module doc.

    ``pair_budget`` caps the photon pairs enumerated exactly and ``grid_budget`` the cells
    of a counting grid (``grid_budget=0``: exact pairs at every delay, slow at long ones).
    The fit of the bunching runs from ``fit_min_s`` (default 20 laser periods, clear of
    the pulse comb) to ``fit_max_s`` (default ``tau_max_s``); its ``baseline`` is free by
    default, so a slow drift (bleaching, focus) raises the baseline instead of
    masquerading as a slow bunching component; ``baseline="fixed"`` pins it to 1.
    """
    a, b = channels
    check_stream(stream, need_channels=(a, b), min_photons=2)
    if not (0 < tau_min_s < tau_max_s and math.isfinite(tau_max_s)):
        raise AnalysisError(f"need 0 < tau_min_s < tau_max_s, got {tau_min_s!r}, {tau_max_s!r}")
    if bins_per_decade < 1:
        raise AnalysisError(f"bins_per_decade = {bins_per_decade!r} must be at least 1")
    duration_ps = stream.duration_s * 1e12
    edges_max_s = float(log_edges_ps(tau_min_s, tau_max_s, bins_per_decade)[-1]) / 1e12
    if edges_max_s * 1e12 >= duration_ps / 2:
        raise AnalysisError(f"tau_max_s = {tau_max_s:g} s (last bin edge {edges_max_s:g} s) "
                            f"needs an acquisition longer than {2 * edges_max_s:g} s (this one "
                            f"is {stream.duration_s:g} s)")
    edges = log_edges_ps(tau_min_s, tau_max_s, bins_per_decade,
                         stream.sync_period_ps if snap_to_period else None)
    t, is_a = merged_times(stream, a, b)
    ta, tb = t[is_a], t[~is_a]
    na, nb = len(ta), len(tb)

    # split: exact pairs below it, gridded counts above; chosen to minimise the estimated
    # cost (measured on a 2-core CPU: ~17 ns per pair, ~2 ns per cell and bin edge of the
    # first gridded decade), never below what the grid can resolve within ``grid_budget``
    # cells (bins >= 2 grid quanta)
    pairs_below = 2.0 * na * nb * edges / duration_ps
    quantum = np.maximum(np.concatenate([np.diff(edges), [edges[-1]]]) / 2, 1)
    cells = duration_ps / quantum
    cost = 17.0 * pairs_below + 2.0 * (bins_per_decade + 1) * cells
    cost[cells > grid_budget] = np.inf
    cost[pairs_below > pair_budget] = np.inf
    split = int(np.argmin(cost)) if np.isfinite(cost).any() else \
        int(np.flatnonzero(cells <= grid_budget)[0]) if (cells <= grid_budget).any() else len(edges) - 1
    split = min(split, len(edges) - 1)
    pairs = np.zeros(len(edges) - 1, np.float64)
    width = np.diff(edges).astype(np.float64)
    if split > 0:
        pairs[:split] = cross_pair_histogram(t, is_a, edges[: split + 1])
    # gridded counts, one grid per decade of the remaining edges
    j = split
    while j < len(edges) - 1:
        stop = min(len(edges) - 1, j + bins_per_decade)
        r = max(1, min(int(np.diff(edges[j:stop + 1]).min() // 2), int(edges[j]) // 2),
                int(math.ceil(duration_ps / grid_budget)))
        grid_edges = np.round(edges[j:stop + 1] / r).astype(np.int64)
        if grid_edges[0] < 1 or np.any(np.diff(grid_edges) < 1):
            raise AnalysisError(f"delay bins from {edges[j] / 1e12:g} s are narrower than the "
                                f"counting grid ({r / 1e12:g} s): raise grid_budget or use "
                                "fewer bins per decade")
        length = int(duration_ps // r) + 1
        pairs[j:stop] = _grid_counts(ta, tb, r, grid_edges, length)
        width[j:stop] = np.diff(grid_edges) * r
        j = stop
    centre = np.sqrt(edges[:-1] * edges[1:].astype(np.float64))
    expected = 2.0 * na * nb * width * (duration_ps - centre) / duration_ps**2
    g2 = pairs / expected
    # pairs sharing a photon are correlated: for independent channels
    # Var = E (1 + N_a w / D + N_b w / D), which matters once a bin is longer than 1 / rate
    var = np.maximum(pairs, 1.0) * (1.0 + (na + nb) * width / duration_ps)
    stderr = np.sqrt(var) / expected
    tau = centre / 1e12
    res = G2Log(tau_s=tau, tau_edges_s=edges / 1e12, g2=g2, stderr=stderr, pairs=pairs,
                split_s=float(edges[split]) / 1e12, fit=None)
    if fit:
        period_s = stream.sync_period_ps * 1e-12
        lo = fit_min_s if fit_min_s is not None else 20 * period_s
        hi = fit_max_s if fit_max_s is not None else tau_max_s
        res = dataclasses.replace(res, fit=fit_bunching(res, lo, hi, baseline=baseline))
    return res


_BLOCK_CELLS = 1 << 19  # grid cells per block: its cumulative count stays in cache


def _cumulative(t: np.ndarray, first_cell: int, n: int, r: int) -> np.ndarray:
    """Photons of sorted ``t`` before cells first_cell + 0..n of the grid of quantum r
    (n + 1 values, float64): by binary search of the cell edges when the cells are fewer
    than the photons, else by counting the photons per cell."""
    if n < len(t):
        return np.searchsorted(t, (first_cell + np.arange(n + 1, dtype=np.int64)) * r) \
            .astype(np.float64)
    out = np.zeros(n + 1)
    np.cumsum(np.bincount(t // r - first_cell, minlength=n)[:n], out=out[1:])
    return out


def _grid_counts(ta, tb, r: int, grid_edges, length: int):
    """Pairs with ``|q_b - q_a|`` in each [E_i, E_i+1) of the grid q = t // r (both signs).

    The pairs closer than E are ``sum_a (B[q_a + E] - B[q_a - E + 1])``, with ``B`` the
    cumulative count of channel b on the grid. The grid is processed in blocks of cells:
    each block needs ``B`` only over itself plus the longest delay on either side (a small,
    cache-resident array; the count before it cancels in the difference), so memory stays
    small for any duration. Within a block the a side is its photons when they are fewer
    than the cells (a gather per photon and edge), else its cell counts (a dot product over
    the cells). Blocks run on threads.
    """
    e_max = int(grid_edges[-1])
    grid_edges = np.asarray(grid_edges, np.int64)
    starts = np.arange(0, length, _BLOCK_CELLS, dtype=np.int64)
    stops = np.minimum(starts + _BLOCK_CELLS, length)
    a_lo, a_hi = np.searchsorted(ta, starts * r), np.searchsorted(ta, stops * r)
    span_lo = np.maximum(starts - e_max, 0)
    span_hi = np.minimum(stops + e_max, length)
    b_lo, b_hi = np.searchsorted(tb, span_lo * r), np.searchsorted(tb, span_hi * r)

    def run(blocks):
        total = np.zeros(len(grid_edges))
        for i in blocks:
            if a_hi[i] == a_lo[i]:
                continue
            lo, hi = int(span_lo[i]), int(span_hi[i])
            # cum[e_max + k] = b photons in cells [lo, lo + k); padded with what lies
            # before the grid (nothing) and after it (everything), so no clamping
            cum = np.empty(hi - lo + 1 + 2 * e_max)
            cum[:e_max] = 0.0
            cum[e_max: e_max + hi - lo + 1] = _cumulative(tb[b_lo[i]:b_hi[i]], lo, hi - lo, r)
            cum[e_max + 1 + hi - lo:] = cum[e_max + hi - lo]
            n_cells = int(stops[i] - starts[i])
            if a_hi[i] - a_lo[i] < n_cells:  # sparse: gather at every photon, edges in groups
                qa = ta[a_lo[i]:a_hi[i]] // r - lo + e_max
                group = max(1, (1 << 18) // max(len(qa), 1))  # temporaries of ~2 MB
                for g0 in range(0, len(grid_edges), group):
                    e = grid_edges[g0:g0 + group, None]
                    total[g0:g0 + group] += (cum[qa[None, :] + e]
                                             - cum[qa[None, :] - (e - 1)]).sum(axis=1)
            else:  # dense: cell counts against contiguous slices of cum
                first = int(starts[i]) - lo + e_max
                weight = np.diff(_cumulative(ta[a_lo[i]:a_hi[i]], int(starts[i]), n_cells, r))
                for k, e in enumerate(grid_edges):
                    e = int(e)
                    total[k] += (np.dot(weight, cum[first + e: first + e + n_cells])
                                 - np.dot(weight, cum[first - e + 1: first - e + 1 + n_cells]))
        return total

    n_threads = min(os.cpu_count() or 1, 4, len(starts))
    jobs = [np.arange(k, len(starts), n_threads) for k in range(n_threads)]
    if n_threads == 1:
        c = run(jobs[0])
    else:
        with ThreadPoolExecutor(n_threads) as pool:
            c = sum(pool.map(run, jobs))
    return np.diff(c)


def fit_bunching(res: G2Log, fit_min_s: float, fit_max_s: float, *,
                 baseline: str = "free") -> BunchingFit:
    """Weighted least squares of ``baseline + A exp(-tau/tau_c)`` over [fit_min_s, fit_max_s];
    ``baseline`` "free" or "fixed" (1)."""
    from scipy.optimize import curve_fit

    if baseline not in ("fixed", "free"):
        raise AnalysisError(f"baseline {baseline!r}: choose 'fixed' or 'free'")
    sel = (res.tau_s >= fit_min_s) & (res.tau_s <= fit_max_s) & (res.pairs > 0)
    if sel.sum() < 4:
        raise AnalysisError(f"too few populated delay bins in {fit_min_s:g} .. {fit_max_s:g} s "
                            "to fit the bunching")
    x, y, s = res.tau_s[sel], res.g2[sel], res.stderr[sel]
    excess = y - 1.0
    a0 = max(float(np.average(excess[: max(3, len(x) // 10)])), 1e-3)
    above = x[excess > a0 / math.e]
    t0 = float(above.max()) if len(above) else float(np.sqrt(x[0] * x[-1]))
    if baseline == "fixed":
        f = lambda tau, amp, tc: 1.0 + amp * np.exp(-tau / tc)  # noqa: E731
        p0 = [a0, t0]
    else:
        f = lambda tau, amp, tc, c: c + amp * np.exp(-tau / tc)  # noqa: E731
        p0 = [a0, t0, 1.0]
    try:
        p, cov = curve_fit(f, x, y, p0=p0, sigma=s, absolute_sigma=True, maxfev=20000,
                           bounds=([-np.inf, 0.0] + ([-np.inf] if baseline == "free" else []),
                                   np.inf))
    except (RuntimeError, ValueError) as e:
        raise AnalysisError(f"the bunching fit did not converge: {e}") from None
    err = np.sqrt(np.diag(cov))
    chi2 = float(np.sum(((y - f(x, *p)) / s) ** 2) / max(len(x) - len(p), 1))
    return BunchingFit(amplitude=float(p[0]), amplitude_stderr=float(err[0]),
                       tau_c_s=float(p[1]), tau_c_stderr_s=float(err[1]),
                       baseline=float(p[2]) if baseline == "free" else 1.0,
                       baseline_stderr=float(err[2]) if baseline == "free" else 0.0,
                       chi2_per_dof=chi2, fit_range_s=(float(fit_min_s), float(fit_max_s)))
