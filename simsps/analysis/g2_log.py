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
``g2 = pairs / E`` with ``E`` the pairs uncorrelated photons would give: ``N_b / D`` times
the delay range of the bin (both signs) that stays inside the acquisition from each
channel-a photon, summed over those photons (so the ends of the acquisition are exact;
``tau_s`` reports the geometric centre, for plotting).

``stderr``: the delete-one-block jackknife over ``n_blocks`` time blocks
(:mod:`simsps.analysis._blocks`): each replicate leaves out one block's photons of both
channels and the stretch of time they covered (pairs with either photon in it, and the
expected pairs recomputed for what is left, so a block's own count fluctuation cancels as
it does in the full estimate). Blinking makes photons come in bunches, so pairs within one
dwell covary and Poisson errors understate the scatter, by far at delays beyond the
dwells; the jackknife measures it, for delays well below a block's length (tested against
the seed-to-seed scatter under both presets' blinking; beyond a tenth of a block, pairs
reach into other blocks and the error is only approximate, which a warning says). The
Poisson error (plus the covariance of pairs sharing a photon near the ends) is kept as
``stderr_poisson``; the bunching fit is weighted by it times a smooth fit of the
jackknife's inflation of it, its parameter errors come from refitting with each block left out and its chi2
uses the jackknife errors.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ._blocks import DEFAULT_BLOCKS, block_edges, time_slices
from ._common import (
    AnalysisError,
    Warnings,
    background_rates,
    central_jacobian,
    channel_times,
    check_stream,
    interval,
)


@dataclasses.dataclass(frozen=True)
class BunchingFit:
    amplitude: float  # A in baseline + A exp(-tau/tau_c)
    amplitude_stderr: float
    tau_c_s: float
    tau_c_stderr_s: float
    baseline: float
    baseline_stderr: float  # 0 when the baseline is fixed
    relative_amplitude: float  # A / baseline: the bunching over the long-delay plateau
    relative_amplitude_stderr: float
    chi2_per_dof: float  # with the jackknife errors of the bins
    dof: float  # degrees of freedom of the parameter errors (jackknife blocks - 1)
    fit_range_s: tuple[float, float]
    log_tau_c_stderr: float = float("nan")  # error of ln(tau_c) (tau_c_stderr_s / tau_c_s)
    warnings: tuple[str, ...] = ()

    def model(self, tau_s):
        return self.baseline + self.amplitude * np.exp(-np.asarray(tau_s) / self.tau_c_s)

    def interval(self, name: str = "relative_amplitude", level: float = 0.95):
        """Confidence interval of ``amplitude``, ``relative_amplitude``, ``tau_c_s`` or
        ``baseline`` (Student's t with the jackknife's degrees of freedom). ``tau_c_s``'s
        is that of the correlation rate ``1 / tau_c`` (error ``log_tau_c_stderr / tau_c``),
        inverted: ``tau_c / (1 + t se)`` to ``tau_c / (1 - t se)``, unbounded above when
        the rate's interval reaches 0. Under power-law dwells a long tau_c comes with a
        large error (the long dwells that lengthen it also make it noisy), so symmetric
        intervals of tau_c or of its log cover too often (pristine at Psat: 0.98 of 500
        NCs on the log scale), those of the rate as they should (tests/test_coverage.py)."""
        se = {
            "amplitude": self.amplitude_stderr,
            "tau_c_s": self.tau_c_stderr_s,
            "baseline": self.baseline_stderr,
            "relative_amplitude": self.relative_amplitude_stderr,
        }
        if name not in se:
            raise AnalysisError(f"no parameter {name!r}: choose one of {', '.join(se)}")
        if name == "tau_c_s" and math.isfinite(self.log_tau_c_stderr):
            rate = 1.0 / self.tau_c_s
            lo, hi = interval(rate, rate * self.log_tau_c_stderr, self.dof, level)
            return 1.0 / hi, (1.0 / lo if lo > 0 else math.inf)
        return interval(getattr(self, name), se[name], self.dof, level)

    def decayed_by(self, fraction: float = 1 / math.e) -> float:
        """Delay (s) where the bunching excess has fallen to ``fraction`` of its value at 0."""
        return -self.tau_c_s * math.log(fraction)


@dataclasses.dataclass(frozen=True)
class G2Log:
    tau_s: np.ndarray  # geometric bin centres
    tau_edges_s: np.ndarray
    g2: np.ndarray
    stderr: np.ndarray  # jackknife over time blocks
    stderr_poisson: np.ndarray
    pairs: np.ndarray
    split_s: float  # delay where exact pairs hand over to the gridded count
    fit: BunchingFit | None
    block_s: float = 0.0  # length of the jackknife's time blocks
    quantum_s: np.ndarray | None = None  # per bin: its grid quantum (0: exact pairs)
    warnings: tuple[str, ...] = ()
    _loo: np.ndarray | None = dataclasses.field(default=None, repr=False, compare=False)

    def plot(self, ax=None, **kw):
        from .plots import plot_g2_log

        return plot_g2_log(self, ax=ax, **kw)

    def average(self, lo_s: float, hi_s: float) -> tuple[float, float]:
        """g2 averaged over the bins with centres in [lo_s, hi_s] (weighted by their Poisson
        errors) and its jackknife error (the bins' errors are correlated by the blinking,
        so they are not combined as if independent)."""
        sel = (self.tau_s >= lo_s) & (self.tau_s <= hi_s) & (self.pairs > 0)
        if not sel.any():
            raise AnalysisError(f"no populated delay bins in {lo_s:g} .. {hi_s:g} s")
        w = 1.0 / self.stderr_poisson[sel] ** 2
        value = float(np.sum(w * self.g2[sel]) / w.sum())
        if self._loo is None:
            return value, float(1.0 / math.sqrt(w.sum()))
        loo = self._loo[:, sel] @ w / w.sum()
        n = len(loo)
        return value, float(math.sqrt((n - 1) / n * np.sum((loo - loo.mean()) ** 2)))

    def delay_weights(self, n: int = 64):
        """Each bin's weighting of delays, on which its g2 is an average: uniform over
        [lo, hi) for exact pairs; for a gridded bin (quantum r, edges E1 r .. E2 r) the sum
        of the triangles of width 2r around each cell difference, a trapezoid from
        (E1 - 1) r to E2 r. Returns (delays, weights), each (bins, n), weights summing to
        1 per bin (midpoint rule)."""
        lo, hi = self.tau_edges_s[:-1], self.tau_edges_s[1:]
        r = np.zeros_like(lo) if self.quantum_s is None else self.quantum_s
        a = np.where(r > 0, lo - r, lo)
        u = (np.arange(n) + 0.5) / n
        tau = a[:, None] + (hi - a)[:, None] * u[None, :]
        with np.errstate(invalid="ignore", divide="ignore"):
            rise = np.where(r[:, None] > 0, np.clip((tau - a[:, None]) / r[:, None], 0, 1), 1.0)
            fall = np.where(r[:, None] > 0, np.clip((hi[:, None] - tau) / r[:, None], 0, 1), 1.0)
        w = np.minimum(rise, fall)
        return tau, w / w.sum(axis=1, keepdims=True)


def log_edges_ps(
    tau_min_s: float, tau_max_s: float, bins_per_decade: int, period_ps: float | None = None
) -> np.ndarray:
    """Log-spaced bin edges in integer ps. With ``period_ps`` (pulsed excitation), edges of
    bins at least one period wide move to the nearest midpoint between two peaks, so every
    such bin holds whole peaks and g2 shows the envelope, not the comb aliased."""
    n = int(math.ceil(bins_per_decade * math.log10(tau_max_s / tau_min_s) - 1e-9))
    e = tau_min_s * 10 ** (np.arange(n + 1) / bins_per_decade) * 1e12
    if period_ps:
        wide = e * (10 ** (1 / bins_per_decade) - 1) >= period_ps
        e = np.where(wide, (np.round(e / period_ps - 0.5) + 0.5) * period_ps, e)
    return np.unique(np.round(e).astype(np.int64))


@dataclasses.dataclass(frozen=True)
class LogGeometry:
    """Where g2_log counts: the bin ``edges`` (int ps), the first ``split`` bins by the
    exact pair walk, the rest on counting grids (``decades``: (first bin, stop, quantum r
    in ps, grid edges in cells)); per bin its delay range ``middle +- width / 2`` (a
    gridded bin's effective span) and its grid quantum (0: exact pairs)."""

    edges: np.ndarray
    split: int
    decades: tuple
    middle: np.ndarray
    width: np.ndarray
    quantum: np.ndarray

    @property
    def n_bins(self) -> int:
        return len(self.edges) - 1

    @property
    def lo(self) -> np.ndarray:
        return self.middle - self.width / 2

    @property
    def hi(self) -> np.ndarray:
        return self.middle + self.width / 2


def log_geometry(
    edges: np.ndarray, split: int, period_ps: int | None, bins_per_decade: int
) -> LogGeometry:
    """The :class:`LogGeometry` of ``edges`` with exact pairs below bin ``split`` (grids
    per ``bins_per_decade`` bins from there; quanta whole periods once a period or more)."""
    n_bins = len(edges) - 1
    width = np.diff(edges).astype(np.float64)
    # middle of each bin's delay weight: [lo, hi) for exact pairs; on a grid, cell
    # differences E1 .. E2-1 weigh delays by overlapping triangles centred (E1 + E2 - 1) r / 2
    middle = edges[:-1] + width / 2
    quantum = np.zeros(n_bins)  # grid quantum of each bin (ps), 0 for exact pairs
    decades = []
    for j, stop in _decades(split, len(edges), bins_per_decade):
        r = _grid_quantum(edges, j, stop, period_ps)
        grid_edges = np.round(edges[j : stop + 1] / r).astype(np.int64)  # >= 2 apart
        width[j:stop] = np.diff(grid_edges) * r
        middle[j:stop] = (grid_edges[:-1] + grid_edges[1:] - 1) * r / 2
        quantum[j:stop] = r
        decades.append((j, stop, r, grid_edges))
    return LogGeometry(edges, int(split), tuple(decades), middle, width, quantum)


def g2_log(
    stream,
    *,
    tau_min_s: float = 1e-8,
    tau_max_s: float = 1.0,
    bins_per_decade: int = 10,
    channels: tuple[int, int] = (0, 1),
    fit: bool = True,
    fit_min_s: float | None = None,
    fit_max_s: float | None = None,
    baseline: str = "free",
    snap_to_period: bool = True,
    pair_budget: float = 1e8,
    grid_budget: float = 4e7,
    n_blocks: int = DEFAULT_BLOCKS,
    background=None,
    split_s: float | None = None,
) -> G2Log:
    """Cross-correlation of ``channels`` on log-spaced delays; see the module doc.

    ``pair_budget`` caps the photon pairs enumerated exactly where a grid can take over,
    and ``grid_budget`` the cells of a counting grid (``grid_budget=0``: exact pairs at
    every delay, slow at long ones); between them the split is chosen by a cost model,
    unless ``split_s`` fixes it (exact pairs for the bins below that delay).
    The fit of the bunching runs from ``fit_min_s`` (default 20 laser periods, clear of
    the pulse comb; 1 us for a T2 stream without a laser) to ``fit_max_s`` (default
    ``tau_max_s``); its ``baseline`` is free by
    default, so a slow drift (bleaching, focus) raises the baseline instead of
    masquerading as a slow bunching component; ``baseline="fixed"`` pins it to 1.
    Errors: jackknife over ``n_blocks`` time blocks, which should be longer than the
    longest delay and the blinking's dwells (a warning says when they are not);
    ``n_blocks=None``: Poisson errors only, in one pass (a third of the time).
    ``background`` (cps, one number or one per channel, or an empty spot's stream): photons
    independent of the emitter dilute the correlation by the signal fractions,
    ``g2 - 1 -> rho_a rho_b (g2 - 1)``; given, it is undone (afterpulses are not background
    here: beyond their ~us delays they follow their parents' blinking). Default: none.
    """
    a, b = channels
    check_stream(stream, need_channels=(a, b), min_photons=2)
    duration_ps = stream.duration_s * 1e12
    period_ps = stream.sync_period_ps  # None: a T2 stream without a laser (CW)
    snap_to_period = snap_to_period and period_ps is not None
    edges = checked_log_edges(
        tau_min_s, tau_max_s, bins_per_decade, duration_ps, period_ps, snap_to_period
    )
    ta, tb = channel_times(stream, a, b)
    na, nb = len(ta), len(tb)
    from ._kernels import grid_histogram, pair_histogram

    period = int(round(period_ps)) if snap_to_period else None
    if split_s is None:
        split = _choose_split(
            edges, na, nb, duration_ps, bins_per_decade, pair_budget, grid_budget, period
        )
    else:
        split = int(np.searchsorted(edges, split_s * 1e12, side="left"))
        split = min(max(split, 0), len(edges) - 1)
    geo = log_geometry(edges, split, period, bins_per_decade)
    blocks = n_blocks is not None
    n_blk = n_blocks if blocks else 1
    block_ps = log_block_edges(stream.duration_s, period_ps, n_blocks)
    cuts_a = np.array([sl.start for sl in time_slices(ta, block_ps)] + [na])
    cuts_b = np.array([sl.start for sl in time_slices(tb, block_ps)] + [nb])
    n_bins = geo.n_bins
    # pairs by block: a photon in block k (A), b photon in block k (B), both in k (W)
    A, B, W = (np.zeros((n_blk, n_bins), np.float64) for _ in range(3))

    def count(hist, bins, *args):
        if not blocks:  # one pass, Poisson errors only
            bins[0][:] = hist(ta, tb, *args)
            return
        bins[0][:] = hist(ta, tb, *args, cuts=cuts_a)
        bins[1][:] = hist(tb, ta, *args, cuts=cuts_b)
        for k in range(n_blocks):
            sa, sb = slice(cuts_a[k], cuts_a[k + 1]), slice(cuts_b[k], cuts_b[k + 1])
            bins[2][k] = hist(ta[sa], tb[sb], *args, threads=1)

    if split > 0:
        count(pair_histogram, [A[:, :split], B[:, :split], W[:, :split]], edges[: split + 1])
    for j, stop, r, grid_edges in geo.decades:
        cum = [np.zeros((n_blk, stop - j + 1)) for _ in range(3)]
        count(grid_histogram, cum, r, grid_edges)
        for full, c in zip((A, B, W), cum):
            full[:, j:stop] = np.diff(c, axis=1)
    cover = _Coverage(ta, geo.lo, geo.hi)
    counts = LogCounts(A=A, B=B, W=W, na=na, nb=nb, cuts_a=np.diff(cuts_a), cuts_b=np.diff(cuts_b))
    bg = None
    if background is not None:
        bg = background_rates(background, stream, channels, na, nb)
    return g2_log_from_counts(
        counts,
        geo,
        _BlockCoverage(cover, cuts_a),
        duration_s=float(stream.duration_s),
        block_ps=block_ps if blocks else None,
        background=bg,
        fit=fit,
        fit_min_s=fit_min_s if fit_min_s is not None else _default_fit_min(period_ps),
        fit_max_s=fit_max_s if fit_max_s is not None else tau_max_s,
        baseline=baseline,
    )


def checked_log_edges(
    tau_min_s, tau_max_s, bins_per_decade, duration_ps, period_ps, snap_to_period=True
) -> np.ndarray:
    """g2_log's bin edges (int ps) after its argument checks."""
    if not (0 < tau_min_s < tau_max_s and math.isfinite(tau_max_s)):
        raise AnalysisError(f"need 0 < tau_min_s < tau_max_s, got {tau_min_s!r}, {tau_max_s!r}")
    if bins_per_decade < 1:
        raise AnalysisError(f"bins_per_decade = {bins_per_decade!r} must be at least 1")
    edges_max_s = float(log_edges_ps(tau_min_s, tau_max_s, bins_per_decade)[-1]) / 1e12
    if edges_max_s * 1e12 >= duration_ps / 2:
        raise AnalysisError(
            f"tau_max_s = {tau_max_s:g} s (last bin edge {edges_max_s:g} s) "
            f"needs an acquisition longer than {2 * edges_max_s:g} s (this one "
            f"is {duration_ps / 1e12:g} s)"
        )
    return log_edges_ps(
        tau_min_s, tau_max_s, bins_per_decade, period_ps if snap_to_period else None
    )


def log_block_edges(duration_s: float, period_ps: float | None, n_blocks: int | None) -> np.ndarray:
    """The jackknife's block edges in ps (one block: the whole acquisition): on laser
    pulses when there is a laser, else on whole ps."""
    duration_ps = duration_s * 1e12
    if n_blocks is None:
        return np.array([0.0, duration_ps])
    if period_ps is None:
        return block_edges(int(round(duration_ps)), max(n_blocks, 2)).astype(np.float64)
    return block_edges(int(round(duration_ps / period_ps)), max(n_blocks, 2)) * float(period_ps)


def _default_fit_min(period_ps: float | None) -> float:
    """Where the bunching fit starts by default: 20 laser periods (clear of the pulse comb),
    or 1 us without a laser (clear of a CW emitter's antibunching dip)."""
    return 20 * period_ps * 1e-12 if period_ps is not None else 1e-6


@dataclasses.dataclass(frozen=True)
class LogCounts:
    """What g2_log needs of the photons: pairs per bin by block (A: the a photon in block
    k, B: the b photon, W: both; one row without blocks), the photons of each channel and
    per block."""

    A: np.ndarray
    B: np.ndarray
    W: np.ndarray
    na: int
    nb: int
    cuts_a: np.ndarray  # a photons per block
    cuts_b: np.ndarray


def g2_log_from_counts(
    counts: LogCounts,
    geo: LogGeometry,
    cover,
    *,
    duration_s: float,
    block_ps: np.ndarray | None,
    background=None,
    fit: bool = True,
    fit_min_s: float,
    fit_max_s: float,
    baseline: str = "free",
) -> G2Log:
    """The estimate of :func:`g2_log` from its counts (whoever counted them): ``cover``
    gives the coverage of uncorrelated pairs per bin, summed over the a photons:
    ``total(x0, x1)`` over all of them, ``part(x0, x1, k)`` over block k's (see
    :class:`_Coverage`); ``block_ps`` the jackknife's block edges (None: Poisson errors
    only); ``background`` as :func:`~simsps.analysis._common.background_rates` returns it,
    or None."""
    edges = geo.edges
    A, B, W = counts.A, counts.B, counts.W
    na, nb = counts.na, counts.nb
    duration_ps = duration_s * 1e12
    blocks = block_ps is not None
    n_blocks = len(block_ps) - 1 if blocks else None
    n_bins = geo.n_bins
    warn = Warnings()
    pairs = A.sum(axis=0)
    centre = np.sqrt(edges[:-1] * edges[1:].astype(np.float64))
    # uncorrelated pairs: b density times the delay range of the bin (both signs) that keeps
    # the partner inside the data, summed over the a photons (exact at the ends)
    middle, width = geo.middle, geo.width
    inside = cover.total(0.0, duration_ps)
    expected = nb / duration_ps * inside
    g2 = pairs / expected
    # delete-one-block jackknife: block k's photons of both channels leave, and so do the
    # data it covered (the b photons left are uniform outside it)
    # Poisson given the photon numbers, plus pairs sharing a photon near the ends of the
    # acquisition (uncorrelated photons; weights of the bunching fit)
    var = np.maximum(pairs, 1.0) + _edge_variance(middle, width, na, nb, duration_ps)
    stderr_poisson = np.sqrt(var) / expected
    if blocks:
        loo = np.empty((n_blocks, n_bins))
        for k in range(n_blocks):
            x0, x1 = block_ps[k], block_ps[k + 1]
            kept = (
                inside
                - cover.part(0.0, duration_ps, k)
                - cover.total(x0, x1)
                + cover.part(x0, x1, k)
            )
            density = (nb - counts.cuts_b[k]) / (duration_ps - (x1 - x0))
            loo[k] = (pairs - A[k] - B[k] + W[k]) / (density * kept)
        stderr = np.sqrt((n_blocks - 1) / n_blocks * np.sum((loo - loo.mean(axis=0)) ** 2, axis=0))
        block_s = duration_ps / n_blocks / 1e12
        warn.add(
            edges[-1] / 1e12 > block_s / 10,
            f"delays up to {edges[-1] / 1e12:.3g} s against jackknife blocks of "
            f"{block_s:.3g} s: the errors of delays above a tenth of a block are "
            "approximate (pairs reach into other blocks); use a longer acquisition or a "
            "smaller tau_max_s",
        )
    else:
        loo, stderr, block_s = None, stderr_poisson.copy(), 0.0
        warn.append(
            "Poisson errors (n_blocks=None): under blinking they understate the "
            "scatter of g2 and of the bunching fit"
        )
    if background is not None:
        _, bg, bg_var = background
        rho = (1 - bg[0] * duration_s / na) * (1 - bg[1] * duration_s / nb)
        g2 = 1 + (g2 - 1) / rho
        loo = None if loo is None else 1 + (loo - 1) / rho
        stderr, stderr_poisson = stderr / rho, stderr_poisson / rho
        if bg_var is not None:  # an empty spot's counting error, first order
            rel = math.hypot(
                *(
                    math.sqrt(v) * duration_s / (n - r * duration_s)
                    for v, n, r in zip(bg_var, (na, nb), bg)
                )
            )
            stderr = np.hypot(stderr, (g2 - 1) * rel)
    res = G2Log(
        tau_s=centre / 1e12,
        tau_edges_s=edges / 1e12,
        g2=g2,
        stderr=stderr,
        stderr_poisson=stderr_poisson,
        pairs=pairs,
        split_s=float(edges[geo.split]) / 1e12,
        fit=None,
        block_s=block_s,
        quantum_s=geo.quantum / 1e12,
        warnings=tuple(warn),
        _loo=loo,
    )
    if fit:
        f = fit_bunching(res, fit_min_s, fit_max_s, baseline=baseline)
        res = dataclasses.replace(res, fit=f, warnings=res.warnings + f.warnings)
    return res


class _BlockCoverage:
    """:class:`_Coverage` with block k's a photons named by their block (their index range
    from the block cuts)."""

    def __init__(self, cover, cuts_a):
        self.cover = cover
        self.cuts = cuts_a

    def total(self, x0, x1):
        return self.cover.total(x0, x1)

    def part(self, x0, x1, k):
        return self.cover.part(x0, x1, self.cuts[k], self.cuts[k + 1])


class _Coverage:
    """Sums over photons (times ``t``, sorted) of how much of a bin's delays, on both sides
    (``[t - hi, t - lo)`` and ``[t + lo, t + hi)``), falls inside an interval [x0, x1): the
    expected partners of uncorrelated photons, per unit partner density. With
    ``g(y) = clip(y - lo, 0, hi - lo)`` the right windows give ``g(x1 - t) - g(x0 - t)`` and
    the left ones ``g(t - x0) - g(t - x1)``; each sum over a run of photons comes from prefix
    sums (in long double, so ps stay exact over an hour of data)."""

    def __init__(self, t, lo, hi):
        self.t = t.astype(np.float64)  # searched with float bounds: convert once
        self.lo = np.asarray(lo, np.float64)
        self.hi = np.asarray(hi, np.float64)
        self.w = self.hi - self.lo
        self.csum = np.concatenate([[0], np.cumsum(t.astype(np.longdouble))])

    def _sum_t(self, j0, j1):
        return (self.csum[j1] - self.csum[j0]).astype(np.float64)

    def _g_left_of(self, x, i0, i1):
        """sum_i g(x - t_i) for i in [i0, i1): w for t <= x - hi, x - lo - t up to x - lo."""
        t, lo, hi, w = self.t, self.lo, self.hi, self.w
        a = np.clip(np.searchsorted(t, x - hi, side="right"), i0, i1)
        b = np.clip(np.searchsorted(t, x - lo, side="right"), i0, i1)
        return w * (a - i0) + (x - lo) * (b - a) - self._sum_t(a, b)

    def _g_right_of(self, y, i0, i1):
        """sum_i g(t_i - y): w for t >= y + hi, t - y - lo from y + lo."""
        t, lo, hi, w = self.t, self.lo, self.hi, self.w
        a = np.clip(np.searchsorted(t, y + lo, side="left"), i0, i1)
        b = np.clip(np.searchsorted(t, y + hi, side="left"), i0, i1)
        return w * (i1 - b) + self._sum_t(a, b) - (y + lo) * (b - a)

    def part(self, x0, x1, i0, i1):
        """Coverage of [x0, x1) by the photons i0 <= i < i1."""
        return (
            self._g_left_of(x1, i0, i1)
            - self._g_left_of(x0, i0, i1)
            + self._g_right_of(x0, i0, i1)
            - self._g_right_of(x1, i0, i1)
        )

    def total(self, x0, x1):
        return self.part(x0, x1, 0, len(self.t))


# cost model of the two regimes (ns of wall time on a 2-core CPU, numba kernels on both
# cores; benchmarks/analysis.py): per photon pair walked, and per gridded decade per photon
# pass, per grid cell, and per (occupied cell x edge) gathered
_NS_PAIR, _NS_PASS, _NS_CELL, _NS_GATHER = 5.0, 2.0, 0.3, 0.5


def _edge_variance(middle, width, na: int, nb: int, duration_ps: float, n_t: int = 2048):
    """Variance of a bin's pair count from pairs sharing a b photon, for uncorrelated photons
    given the a photons' times (the normalisation is conditional on them) and the b photons'
    number: ``N_b l_a^2 Var_t[f(t)]`` with ``f(t)`` the delay range of the bin (both signs)
    that stays inside [0, D) from time t (a photon's partners dwindle near the ends)."""
    d = float(duration_ps)
    t = (np.arange(n_t) + 0.5) / n_t * d
    lo = middle - width / 2  # gridded bins: their effective span
    hi = middle + width / 2
    f = np.clip(np.minimum(t[:, None] + hi, d) - (t[:, None] + lo), 0, None) + np.clip(
        (t[:, None] - lo) - np.maximum(t[:, None] - hi, 0.0), 0, None
    )
    return nb * (na / d) ** 2 * f.var(axis=0)


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
    r = max(1, min(int(np.diff(edges[j : stop + 1]).min() // 2), int(edges[j]) // 2))
    if period_ps and r >= period_ps:
        r = (r // period_ps) * period_ps
    return r


def _choose_split(
    edges,
    na: int,
    nb: int,
    duration_ps: float,
    bins_per_decade: int,
    pair_budget: float,
    grid_budget: float,
    period_ps: int | None = None,
) -> int:
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
            cost += (
                _NS_PASS * (na + nb)
                + _NS_CELL * cells
                + _NS_GATHER * min(na, cells) * (stop - j + 1)
            )
        else:  # every grid within budget
            over = pairs > pair_budget
            options.append((over, pairs if over else cost, s))
    return min(options)[2]


def _bin_average_exp(res: G2Log, sel):
    """tau_c -> the average of exp(-tau / tau_c) over each selected bin's delay weight
    (:meth:`G2Log.delay_weights`), in closed form: the model is compared with what the bin
    holds, not evaluated at its centre."""
    lo, hi = res.tau_edges_s[:-1][sel], res.tau_edges_s[1:][sel]
    r = np.zeros_like(lo) if res.quantum_s is None else res.quantum_s[sel]
    grid = r > 0
    e1 = np.where(grid, np.round(lo / np.where(grid, r, 1.0)), 0.0)
    e2 = np.where(grid, np.round(hi / np.where(grid, r, 1.0)), 1.0)

    def avg(tc):
        out = np.empty(len(lo))
        box = ~grid
        out[box] = tc * (np.exp(-lo[box] / tc) - np.exp(-hi[box] / tc)) / (hi[box] - lo[box])
        if grid.any():
            # triangle 2 (cosh u - 1) / u^2 times the geometric sum of the cells,
            # exp(-e1 u) (1 - exp(-k u)) / (1 - exp(-u)), written as one product with no
            # growing exponential (cosh overflows when tau_c is far below the quantum)
            u = r[grid] / tc
            k = e2[grid] - e1[grid]
            small = u <= 1e-3  # (series of the triangle: 1 + u^2 / 12, to 1e-13)
            us = np.where(small, 1.0, u)
            both = np.exp((1 - e1[grid]) * us) * -np.expm1(-us) * -np.expm1(-k * us) / us**2
            geo = np.exp(-e1[grid] * u) * -np.expm1(-k * u) / np.where(u > 0, -np.expm1(-u), 1.0)
            series = (1 + u * u / 12) * np.where(u > 0, geo, k)
            out[grid] = np.where(small, series, both) / k
        return out

    return avg


def fit_bunching(
    res: G2Log, fit_min_s: float, fit_max_s: float, *, baseline: str = "free"
) -> BunchingFit:
    """Weighted least squares of ``baseline + A exp(-tau/tau_c)``, the model averaged over
    each bin's delay weighting, over [fit_min_s, fit_max_s]; ``baseline`` "free" or
    "fixed" (1). Weighted by the Poisson errors: weights that follow the data's own
    (blinking-inflated) scatter would differ from one acquisition to the next and, where one
    exponential does not describe the blinking, move the result by more than the jackknife
    sees (tested). Parameter errors: the leave-one-block-out fits (when ``res`` has
    blocks), linearised about the full fit, tau_c on the log scale; chi2 with the
    jackknife errors of the bins."""
    from scipy.optimize import curve_fit

    if baseline not in ("fixed", "free"):
        raise AnalysisError(f"baseline {baseline!r}: choose 'fixed' or 'free'")
    sel = (res.tau_s >= fit_min_s) & (res.tau_s <= fit_max_s) & (res.pairs > 0)
    if sel.sum() < 4:
        raise AnalysisError(
            f"too few populated delay bins in {fit_min_s:g} .. {fit_max_s:g} s to fit the bunching"
        )
    x, y, s = res.tau_s[sel], res.g2[sel], res.stderr_poisson[sel]
    excess = y - 1.0
    a0 = max(float(np.average(excess[: max(3, len(x) // 10)])), 1e-3)
    above = x[excess > a0 / math.e]
    t0 = float(above.max()) if len(above) else float(np.sqrt(x[0] * x[-1]))
    decay_avg = _bin_average_exp(res, sel)
    if baseline == "fixed":
        f = lambda tau, amp, tc: 1.0 + amp * decay_avg(tc)  # noqa: E731
        p0 = [a0, t0]
    else:
        f = lambda tau, amp, tc, c: c + amp * decay_avg(tc)  # noqa: E731
        p0 = [a0, t0, 1.0]
    bounds = ([-np.inf, 0.0] + ([-np.inf] if baseline == "free" else []), np.inf)

    def fit_once(yy, start):
        p, cov = curve_fit(
            f, x, yy, p0=start, sigma=s, absolute_sigma=True, maxfev=20000, bounds=bounds
        )
        base = p[2] if baseline == "free" else 1.0
        return np.array([p[0], p[1], base, p[0] / base]), cov

    try:
        est, cov = fit_once(y, p0)
    except (RuntimeError, ValueError) as e:
        raise AnalysisError(f"the bunching fit did not converge: {e}") from None
    warn = Warnings()
    n_par = 3 if baseline == "free" else 2
    if res._loo is not None:
        # leave-one-block-out fits, linearised about the full fit (one Gauss-Newton step
        # from it for each block: the first-order jackknife, without 32 refits), in
        # (A, log tau_c, baseline): tau_c's error is then relative, as its scatter is
        theta = np.array([est[0], math.log(est[1])] + ([est[2]] if baseline == "free" else []))

        def g(q):
            return f(x, q[0], math.exp(q[1]), *q[2:])

        jac = central_jacobian(g, theta)
        wj = jac / s[:, None] ** 2
        step = np.linalg.lstsq(jac.T @ wj, wj.T @ (res._loo[:, sel] - y).T, rcond=None)[0].T
        th = theta[None, :] + step
        base = th[:, 2] if baseline == "free" else np.ones(len(th))
        loo = np.column_stack([th[:, 0], th[:, 1], base, th[:, 0] / base])  # log tau_c
        nb = len(loo)
        err = np.sqrt((nb - 1) / nb * np.nansum((loo - np.nanmean(loo, axis=0)) ** 2, axis=0))
        log_tau_err = err[1]
        err[1] = est[1] * log_tau_err  # delta method, for the stated stderr
        dof = float(nb - 1)
        s_chi = res.stderr[sel]
    else:  # no blocks: the fit's own covariance
        d = np.sqrt(np.diag(cov))
        log_tau_err = d[1] / est[1]
        rel = math.hypot(d[0] / est[2], est[0] * (d[2] if baseline == "free" else 0) / est[2] ** 2)
        err = np.array([d[0], d[1], d[2] if baseline == "free" else 0.0, rel])
        dof, s_chi = None, s
    ok = s_chi > 0
    chi2 = float(
        np.sum(
            (
                (y - f(x, *(list(est[:2]) + ([est[2]] if baseline == "free" else []))))[ok]
                / s_chi[ok]
            )
            ** 2
        )
        / max(int(ok.sum()) - n_par, 1)
    )
    warn.add(
        chi2 > 3,
        f"the bunching is not one exponential (chi2/dof {chi2:.3g} over "
        f"{fit_min_s:.3g} .. {fit_max_s:.3g} s): amplitude and tau_c describe the "
        "best single-exponential approximation",
    )
    warn.add(
        not err[1] < est[1],
        f"tau_c = {est[1]:.3g} s is not determined (error "
        f"{err[1]:.3g} s): no bunching seen in the fit range?",
    )
    warn.add(
        est[1] > fit_max_s, f"tau_c = {est[1]:.3g} s lies beyond the fit range ({fit_max_s:.3g} s)"
    )
    return BunchingFit(
        amplitude=float(est[0]),
        amplitude_stderr=float(err[0]),
        tau_c_s=float(est[1]),
        tau_c_stderr_s=float(err[1]),
        baseline=float(est[2]),
        baseline_stderr=float(err[2]) if baseline == "free" else 0.0,
        relative_amplitude=float(est[3]),
        relative_amplitude_stderr=float(err[3]),
        chi2_per_dof=chi2,
        dof=dof if dof is not None else math.inf,
        fit_range_s=(float(fit_min_s), float(fit_max_s)),
        log_tau_c_stderr=float(log_tau_err),
        warnings=tuple(warn),
    )
