"""Intensity and lifetime traces, two-level thresholds, and dwell-time statistics.

* :func:`intensity_trace`: photons per time bin (all channels unless told).
* :func:`two_level`: a two-component Poisson mixture fitted to the trace (EM), giving the
  grey and bright levels and the threshold where a bin is equally likely grey or bright.
* :func:`dwell_times`: lengths of the runs of consecutive bright / grey bins (runs touching
  the ends of the trace are censored and dropped), with an exponential and a power-law
  maximum-likelihood fit. Binning hides dwells shorter than a few bins: choose ``bin_s``
  well below the dwells you want.
* :func:`lifetime_trace`: mean delay after the IRF centre of the photons in each bin,
  minus the expected share of a uniform background.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ._common import AnalysisError, Warnings, check_bin, check_stream, require_t3


@dataclasses.dataclass(frozen=True)
class Trace:
    time_s: np.ndarray  # bin starts
    counts: np.ndarray
    bin_s: float

    @property
    def rate_cps(self) -> np.ndarray:
        return self.counts / self.bin_s

    def histogram(self, bins=None):
        """(edges, number of trace bins in each count range): ``bins=None`` one range per
        count value, ``"auto"`` whole-count ranges as wide as numpy's "auto" rule asks (so
        a bright trace's histogram is not one-count bins), or explicit edges."""
        if bins is None or bins == "auto":
            width = 1.0
            if bins == "auto" and len(self.counts) > 1:
                width = max(1.0, np.ceil(np.diff(np.histogram_bin_edges(self.counts, "auto"))[0]))
            edges = np.arange(-0.5, self.counts.max() + width + 0.5, width)
        else:
            edges = bins
        return edges, np.histogram(self.counts, edges)[0]

    def plot(self, ax=None, levels=None, **kw):
        from .plots import plot_trace

        return plot_trace(self, levels=levels, ax=ax, **kw)


@dataclasses.dataclass(frozen=True)
class TwoLevel:
    grey_mean: float  # photons per bin
    bright_mean: float
    bright_fraction: float
    threshold: float  # bins with counts > threshold are bright
    warnings: tuple[str, ...] = ()

    def posterior_bright(self, counts) -> np.ndarray:
        """Probability that a bin with ``counts`` photons is bright (the two-Poisson mixture)."""
        c = np.asarray(counts, float)
        lg = (
            c * math.log(self.grey_mean)
            - self.grey_mean
            + math.log(max(1 - self.bright_fraction, 1e-300))
        )
        lb = (
            c * math.log(self.bright_mean)
            - self.bright_mean
            + math.log(max(self.bright_fraction, 1e-300))
        )
        return 1.0 / (1.0 + np.exp(np.clip(lg - lb, -700, 700)))


@dataclasses.dataclass(frozen=True)
class DwellFit:
    n: int
    exp_mean_s: float
    exp_mean_stderr_s: float
    power_law_exponent: float  # m in p(t) ~ t^-m, for t >= t_min
    power_law_stderr: float
    t_min_s: float
    warnings: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Dwells:
    bright_s: np.ndarray
    grey_s: np.ndarray
    bright_fit: DwellFit | None
    grey_fit: DwellFit | None


@dataclasses.dataclass(frozen=True)
class LifetimeTrace:
    time_s: np.ndarray
    counts: np.ndarray
    lifetime_ns: np.ndarray  # NaN where a bin has no signal photon
    bin_s: float
    t0_ns: float
    window_ns: float
    warnings: tuple[str, ...] = ()


def _select(stream, channels):
    if channels is None:
        return np.ones(len(stream), bool)
    return np.isin(stream.channel, np.atleast_1d(channels))


def _bin_index(stream, bin_s: float) -> tuple[np.ndarray, int]:
    duration = stream.duration_s
    check_bin(bin_s, duration)
    n_bins = int(math.floor(duration / bin_s + 1e-9))
    if stream.is_t2:  # absolute time tags: the bin of each photon's time
        return stream.time_ps // int(round(bin_s * 1e12)), n_bins
    pulses_per_bin = bin_s * 1e12 / stream.sync_period_ps
    idx = np.floor(stream.sync / pulses_per_bin + 1e-12).astype(np.int64)
    return idx, n_bins


def intensity_trace(stream, bin_s: float = 0.01, *, channels=None) -> Trace:
    """Photons per ``bin_s`` bin; a trailing partial bin is dropped."""
    check_stream(stream)
    idx, n = _bin_index(stream, bin_s)
    sel = _select(stream, channels) & (idx < n)
    counts = np.bincount(idx[sel], minlength=n)
    return Trace(time_s=np.arange(n) * bin_s, counts=counts, bin_s=float(bin_s))


def two_level(trace: Trace, max_iter: int = 500) -> TwoLevel:
    """Two-component Poisson mixture of the per-bin counts (EM)."""
    c = trace.counts.astype(np.float64)
    if len(c) < 10 or c.max() == c.min():
        raise AnalysisError("the trace is too short or flat for a two-level analysis")
    lo, hi = np.percentile(c, [10, 90])
    lam = np.array([max(lo, 0.1), max(hi, lo + 1.0)])
    w = np.array([0.5, 0.5])
    values, mult = np.unique(c, return_counts=True)
    for _ in range(max_iter):
        logp = values[:, None] * np.log(lam) - lam + np.log(w)
        logp -= logp.max(axis=1, keepdims=True)
        r = np.exp(logp)
        r /= r.sum(axis=1, keepdims=True)
        rw = r * mult[:, None]
        new_w = rw.sum(0) / rw.sum()
        new_lam = (rw * values[:, None]).sum(0) / np.maximum(rw.sum(0), 1e-300)
        done = np.allclose(new_lam, lam, rtol=1e-9) and np.allclose(new_w, w, rtol=1e-9)
        lam, w = np.maximum(new_lam, 1e-9), new_w
        if done:
            break
    order = np.argsort(lam)
    lam, w = lam[order], w[order]
    # two levels only if they are apart by more than their Poisson noise and both occupied
    if lam[1] - lam[0] < 3 * math.sqrt(lam[1]) or min(w) < 1e-3:
        raise AnalysisError(
            f"the trace shows no two intensity levels (fitted {lam[0]:.3g} and "
            f"{lam[1]:.3g} photons per bin, weights {w[0]:.3g} / {w[1]:.3g})"
        )
    # equal posterior: k log(l1/l0) = l1 - l0 + log(w0/w1)
    thr = (lam[1] - lam[0] + math.log(w[0] / w[1])) / math.log(lam[1] / lam[0])
    if not lam[0] < thr < lam[1]:
        raise AnalysisError(f"no threshold between the levels {lam[0]:.3g} and {lam[1]:.3g}")
    warn = Warnings()
    warn.add(min(w) * len(c) < 5, f"one level holds only {min(w) * len(c):.1f} bins")
    return TwoLevel(
        grey_mean=float(lam[0]),
        bright_mean=float(lam[1]),
        bright_fraction=float(w[1]),
        threshold=float(thr),
        warnings=tuple(warn),
    )


def _runs(state: np.ndarray):
    """Lengths and values of runs of equal values, without the first and the last run."""
    change = np.flatnonzero(np.diff(state.astype(np.int8))) + 1
    bounds = np.concatenate([[0], change, [len(state)]])
    lengths = np.diff(bounds)
    values = state[bounds[:-1]]
    return lengths[1:-1], values[1:-1]


def fit_dwells(
    t: np.ndarray, t_min: float | None = None, bin_s: float | None = None
) -> DwellFit | None:
    """Exponential (mean, MLE) and power law (Clauset et al. 2009 MLE; for dwells that are
    whole numbers of ``bin_s``, their discrete approximation with ``t_min - bin_s / 2``)."""
    t = np.asarray(t, float)
    if len(t) < 5:
        return None
    mean = float(t.mean())
    t_min = float(t.min()) if t_min is None else float(t_min)
    tail = t[t >= t_min]
    logs = np.log(tail / (t_min - (bin_s or 0.0) / 2)).sum()
    m = 1 + len(tail) / logs if logs > 0 else float("nan")
    warn = Warnings()
    warn.add(len(t) < 20, f"only {len(t)} dwells: the fits rest on few events")
    warn.add(not m > 1, f"no power law: the exponent {m:.3g} is not above 1")
    return DwellFit(
        n=len(t),
        exp_mean_s=mean,
        exp_mean_stderr_s=mean / math.sqrt(len(t)),
        power_law_exponent=float(m),
        power_law_stderr=float((m - 1) / math.sqrt(len(tail))),
        t_min_s=t_min,
        warnings=tuple(warn),
    )


def dwell_times(trace: Trace, levels: TwoLevel | None = None) -> Dwells:
    """Bright and grey dwell times (s) from the thresholded trace, with their fits."""
    levels = levels or two_level(trace)
    bright = trace.counts > levels.threshold
    lengths, values = _runs(bright)
    b = lengths[values] * trace.bin_s
    g = lengths[~values] * trace.bin_s
    return Dwells(
        bright_s=b,
        grey_s=g,
        bright_fit=fit_dwells(b, bin_s=trace.bin_s),
        grey_fit=fit_dwells(g, bin_s=trace.bin_s),
    )


def photon_mask(stream, trace: Trace, bins: np.ndarray) -> np.ndarray:
    """Boolean mask of the photons that fall in the selected trace bins (e.g.
    ``trace.counts > levels.threshold`` for the bright state), for :func:`decay`."""
    idx, n = _bin_index(stream, trace.bin_s)
    bins = np.asarray(bins, bool)
    if bins.shape != (n,):
        raise AnalysisError(f"bins has {bins.size} entries for a trace of {n} bins")
    return (idx < n) & bins[np.minimum(idx, n - 1)]


def lifetime_trace(
    stream,
    bin_s: float = 0.01,
    *,
    channels=None,
    t0_ns: float | None = None,
    window_ns: float | None = None,
    background_cps: float | str = "tail",
) -> LifetimeTrace:
    """Mean delay after the IRF centre ``t0_ns`` (default: the decay's peak bin) of the
    photons in ``[t0, t0 + window_ns)`` (default 100 ns, shorter for short periods) per bin, minus the share of a uniform background
    (``"tail"``: rate measured in the last quarter of the period; or cps; or 0)."""
    check_stream(stream)
    require_t3(stream, "the lifetime trace")
    idx, n = _bin_index(stream, bin_s)
    sel = _select(stream, channels) & (idx < n)
    res_ns = stream.resolution_ps / 1e3
    period_ns = stream.sync_period_ps / 1e3
    delay = (stream.dtime.astype(np.float64) + 0.5) * res_ns
    if not sel.any():
        raise AnalysisError("no photons in the selected channels")
    if t0_ns is None:
        hist = np.bincount(stream.dtime[sel])
        t0_ns = (float(np.argmax(hist)) + 0.5) * res_ns
    if window_ns is None:
        window_ns = min(100.0, 0.75 * (period_ns - t0_ns))
    if not 0 < window_ns <= period_ns - t0_ns:
        raise AnalysisError(
            f"window_ns = {window_ns!r} must fit in the period after t0 ({period_ns - t0_ns:g} ns)"
        )
    in_win = sel & (delay >= t0_ns) & (delay < t0_ns + window_ns)
    cnt = np.bincount(idx[in_win], minlength=n).astype(np.float64)
    sum_d = np.bincount(idx[in_win], weights=delay[in_win] - t0_ns, minlength=n)
    if background_cps == "tail":
        tail = sel & (delay >= 0.75 * period_ns) & (delay >= t0_ns + window_ns)
        span = period_ns - max(0.75 * period_ns, t0_ns + window_ns)
        bg_per_ns_s = tail.sum() / span / stream.duration_s if span > 0 else 0.0  # per ns per s
    else:
        bg_per_ns_s = float(background_cps) / period_ns  # cps spread over the period
    n_bg = bg_per_ns_s * window_ns * bin_s  # expected background photons per bin in window
    sig = cnt - n_bg
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = (sum_d - n_bg * window_ns / 2) / sig
    tau[sig <= 0.5] = np.nan
    counts = np.bincount(idx[sel], minlength=n)
    warn = Warnings()
    neg = int(np.sum(tau < 0))
    warn.add(
        neg,
        f"{neg} bins have a negative mean delay after the background share is "
        "taken off (too few signal photons per bin, or the background is over-estimated)",
    )
    nan = int(np.sum(~np.isfinite(tau)))
    warn.add(nan > n / 2, f"{nan} of {n} bins have no signal photon: choose a longer bin")
    return LifetimeTrace(
        time_s=np.arange(n) * bin_s,
        counts=counts,
        lifetime_ns=tau,
        bin_s=float(bin_s),
        t0_ns=float(t0_ns),
        window_ns=float(window_ns),
        warnings=tuple(warn),
    )
