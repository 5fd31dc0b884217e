"""Normalised cross-correlation g2(tau) on log-spaced delays (ns to s), and the fit of the
blinking bunching ``g2 = 1 + A exp(-tau / tau_c)``.

Two regimes, chosen by cost, meet at a bin edge:

* short delays: every pair of photons (one per channel) closer than the split delay is
  found on the time-ordered stream and binned by its exact delay in ps;
* long delays: both channels are counted on a time grid of quantum ``r`` (half the
  narrowest bin of each decade), and the pairs closer than an edge E are
  ``sum_a (B[q_a + E] - B[q_a - E + 1])`` with ``B`` the cumulative count of the other
  channel on the grid, built block by block so it stays in cache
  (``_kernels._grid_histogram``). Quantising both times to
  ``r`` smears each bin edge by +-r but leaves the expected count of an uncorrelated pair
  in a bin at exactly (width x rate), so g2 stays unbiased where it is smooth on the scale
  of ``r``.

Where bins are at least a laser period wide their edges sit midway between two peaks, so
each holds whole peaks (``snap_to_period``), and a grid quantum of a period or more is a whole
number of periods (see ``_grid_quantum``). Both regimes are compiled loops (numba) over
slices of the photons, run on threads.

Both delay signs are counted (HBT correlations of a stationary emitter are symmetric), and
``g2 = pairs / (2 N_a N_b w (D - tau) / D^2)`` for bin width ``w`` with middle ``tau`` in
an acquisition of duration ``D`` (``tau_s`` reports the geometric centre, for plotting).
``stderr``: for uncorrelated photons given their numbers (g2 is normalised by them) the pair
count is Poisson plus the covariance of pairs that share a photon near the ends of the
acquisition (``_edge_variance``; it matters for delays of a few per cent of ``D``).
Blinking makes photons come in bunches: then pairs sharing a photon covary, within a bin
(variance larger by about ``1 + 2 A (N_a + N_b) min(w, tau_c) / D`` for bunching ``A``, a
few per cent to tens of per cent) and between neighbouring bins; the bunching fit's chi2
shows it.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ._common import AnalysisError, channel_times, check_stream


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

    ``pair_budget`` caps the photon pairs enumerated exactly where a grid can take over,
    and ``grid_budget`` the cells of a counting grid (``grid_budget=0``: exact pairs at
    every delay, slow at long ones); between them the split is chosen by a cost model.
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
    ta, tb = channel_times(stream, a, b)
    na, nb = len(ta), len(tb)
    from ._kernels import grid_histogram, pair_histogram

    period = int(round(stream.sync_period_ps)) if snap_to_period else None
    split = _choose_split(edges, na, nb, duration_ps, bins_per_decade, pair_budget, grid_budget,
                          period)
    pairs = np.zeros(len(edges) - 1, np.float64)
    width = np.diff(edges).astype(np.float64)
    # middle of each bin's delay weight: [lo, hi) for exact pairs; on a grid, cell
    # differences E1 .. E2-1 weigh delays by overlapping triangles centred (E1 + E2 - 1) r / 2
    middle = edges[:-1] + width / 2
    if split > 0:
        pairs[:split] = pair_histogram(ta, tb, edges[: split + 1])
    for j, stop in _decades(split, len(edges), bins_per_decade):
        r = _grid_quantum(edges, j, stop, period)
        grid_edges = np.round(edges[j:stop + 1] / r).astype(np.int64)  # >= 2 apart
        pairs[j:stop] = np.diff(grid_histogram(ta, tb, r, grid_edges))
        width[j:stop] = np.diff(grid_edges) * r
        middle[j:stop] = (grid_edges[:-1] + grid_edges[1:] - 1) * r / 2
    centre = np.sqrt(edges[:-1] * edges[1:].astype(np.float64))
    # uncorrelated pairs in a bin: 2 N_a N_b / D^2 x integral of (D - tau) over its weight,
    # exact with the bin's middle (the geometric centre is only where it is plotted)
    expected = 2.0 * na * nb * width * (duration_ps - middle) / duration_ps**2
    g2 = pairs / expected
    # given the photon numbers (g2 is normalised by them), the pair count of uncorrelated
    # photons is Poisson plus a term from pairs sharing a photon, which covary only as far as
    # a photon's expected partners depend on where it sits: near the ends of the acquisition
    # it has fewer (matters once a delay is a few % of D; tested against Monte Carlo)
    var = np.maximum(pairs, 1.0) + _edge_variance(middle, width, na, nb, duration_ps)
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


# cost model of the two regimes (ns of wall time on a 2-core CPU, numba kernels on both
# cores; benchmarks/analysis.py): per photon pair walked, and per gridded decade per photon
# pass, per grid cell, and per (occupied cell x edge) gathered
_NS_PAIR, _NS_PASS, _NS_CELL, _NS_GATHER = 5.0, 2.0, 0.3, 0.5


def _edge_variance(middle, width, na: int, nb: int, duration_ps: float, n_t: int = 2048):
    """Variance of a bin's pair count from pairs sharing a photon, for uncorrelated photons
    at uniform times given their numbers: ``(N_a l_b^2 + N_b l_a^2) Var_t[f(t)]`` with
    ``f(t)`` the delay range of the bin (both signs) that stays inside [0, D) from time t."""
    d = float(duration_ps)
    t = (np.arange(n_t) + 0.5) / n_t * d
    lo = middle - width / 2  # gridded bins: their effective span
    hi = middle + width / 2
    f = (np.clip(np.minimum(t[:, None] + hi, d) - (t[:, None] + lo), 0, None)
         + np.clip((t[:, None] - lo) - np.maximum(t[:, None] - hi, 0.0), 0, None))
    return (na * (nb / d) ** 2 + nb * (na / d) ** 2) * f.var(axis=0)


def _decades(first: int, n_edges: int, bins_per_decade: int):
    """Groups [j, stop) of bins from ``first`` on, one grid each."""
    j = first
    while j < n_edges - 1:
        stop = min(n_edges - 1, j + bins_per_decade)
        yield j, stop
        j = stop


def _grid_quantum(edges, j: int, stop: int, period_ps: int | None = None) -> int:
    """Grid quantum (ps) for bins [j, stop): half the narrowest of them (and of the first
    edge), so every bin spans at least two cells; with pulsed excitation, once that is a
    period or more, a whole number of periods: a cell is then a run of pulses
    (``t // r == sync // m``), and each peak of the comb is spread over two neighbouring
    cells with weights summing to one, so bins of whole cells stay unbiased."""
    r = max(1, min(int(np.diff(edges[j:stop + 1]).min() // 2), int(edges[j]) // 2))
    if period_ps and r >= period_ps:
        r = (r // period_ps) * period_ps
    return r


def _choose_split(edges, na: int, nb: int, duration_ps: float, bins_per_decade: int,
                  pair_budget: float, grid_budget: float, period_ps: int | None = None) -> int:
    """Number of bins counted by the exact pair walk (the rest on grids), at least cost:
    pairs grow with the split delay, grid cells shrink with it. Grids finer than
    ``grid_budget`` cells are never used (``grid_budget=0``: exact pairs everywhere); within
    that, splits with at most ``pair_budget`` pairs are preferred, else the fewest pairs."""
    n = len(edges)
    options = []  # (over the pair budget, cost or pairs, split)
    for s in range(n):
        pairs = 2.0 * na * nb * edges[s] / duration_ps if s > 0 else 0.0
        cost = _NS_PAIR * pairs
        for j, stop in _decades(s, n, bins_per_decade):
            cells = duration_ps / _grid_quantum(edges, j, stop, period_ps)
            if cells > grid_budget:
                break
            cost += (_NS_PASS * (na + nb) + _NS_CELL * cells
                     + _NS_GATHER * min(na, cells) * (stop - j + 1))
        else:  # every grid within budget
            over = pairs > pair_budget
            options.append((over, pairs if over else cost, s))
    return min(options)[2]


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
