"""A sweep point's estimates from its counts (:class:`simsps.sweep.reduce.Accumulator`), by
the estimators' own code, and the same estimates from a stream (for the tests).

What each variable is, as the estimator a user would run on the point's stream
(:func:`reference_statistics` runs exactly that):

``count_rate_cps``
    photons per channel over the acquisition.
``peak_area``, ``g2_zero``, ``g2_zero_stderr_raw``, ``g2_zero_corrected``, ``g2_zero_stderr``
    :func:`simsps.analysis.pulsed_g2` with ``n_side_peaks`` side peaks, the accidental
    floor measured between the peaks (its default), and, as the detectors of a simulation
    are known, their relative delay (0: one IRF for both) and their afterpulse law (the
    model's ``[detection]``, an :class:`~simsps.analysis.afterpulsing.Afterpulsing` with no
    error) given instead of measured.
``truth_g2_zero``
    the raw g2(0) (centre over mean side peak) of the emitter photons alone (ground truth:
    no dark counts, background or afterpulses), through the same detectors.
``g2``, ``g2_stderr`` (dim ``tau_s``), ``bunching_amplitude``, ``tau_c_s`` and their errors
    :func:`simsps.analysis.g2_log` from 10 ns to ``g2_tau_max_s`` (10 bins per decade; by
    default 10 ms, or the power of ten below a 320th of the acquisition, so the delays
    stay below a tenth of a jackknife block), exact pairs below 10 us and counting grids
    above, the setup's independent photons (dark counts, uniform and prompt background of
    the model at the point's power) as its ``background``, bin edges on the laser's comb
    (not when the laser's period differs between points); the bunching fit from 20 laser
    periods to ``g2_tau_max_s``: ``bunching_amplitude`` is its relative amplitude (over the
    long-delay plateau).
``microtime_counts``, ``lifetime_ns``, ``lifetime_stderr_ns``
    each channel's microtime histogram; :func:`simsps.analysis.fit_decay` of the decay of
    both channels with the model's afterpulse law, a tail fit from 2 ns after the peak
    with two exponentials when the model blinks (the exciton and the trion), one otherwise.
``intensity_histogram``, ``intensity_overflow_bins``
    how many 10 ms bins of :func:`simsps.analysis.intensity_trace` hold 0, 1, ... photons
    (up to a bound set from the models' brightest state; bins above it are counted apart).
``bleach_time_s``, ``grey_fraction``
    ground truth: when the NC bleached (inf: not during the acquisition) and the fraction
    of the laser pulses it spent charged (grey).

An estimate that cannot be made (too few photons, a fit that does not converge) is NaN and
its reason is in ``warnings``.
"""

from __future__ import annotations

import math

import numpy as np

from ..analysis._common import AnalysisError
from ..analysis.afterpulsing import Afterpulsing, DetectorAfterpulsing
from ..analysis.decay import Decay, afterpulse_counts, decay, fit_decay
from ..analysis.g2_log import (
    LogCounts,
    checked_log_edges,
    g2_log,
    g2_log_from_counts,
    log_block_edges,
    log_geometry,
)
from ..analysis.g2_pulsed import (
    SUB,
    PulsedCounts,
    pulsed_g2,
    pulsed_g2_from_counts,
    pulsed_geometry,
)
from ..analysis.traces import intensity_trace
from ..params.model import Model
from ..stream import Source
from .reduce import TRACE_BIN_S, Accumulator, Layout, LogLayout

__all__ = [
    "SCALARS",
    "model_afterpulsing",
    "layout_of",
    "finish",
    "reference_statistics",
    "N_SIDE_PEAKS",
    "FIT_START_NS",
]

N_SIDE_PEAKS = 10
FIT_START_NS = 2.0  # the lifetime fit starts this long after the decay's peak
N_BLOCKS = 32
G2_TAU_MIN_S = 1e-8
G2_BINS_PER_DECADE = 10
G2_SPLIT_S = 1e-5  # exact pairs below this delay, counting grids above


def default_g2_tau_max(duration_s: float) -> float:
    """10 ms, or the power of ten below a 320th of the acquisition (a tenth of a block)."""
    return min(0.01, 10.0 ** math.floor(math.log10(duration_s / (10 * N_BLOCKS))))


def log_layout(period_ps: float, duration_s: float, tau_max_s: float, snap: bool):
    """The g2_log bins a sweep counts (None when the acquisition is too short for them)."""
    if tau_max_s <= 10 * G2_TAU_MIN_S:
        return None
    edges = checked_log_edges(
        G2_TAU_MIN_S, tau_max_s, G2_BINS_PER_DECADE, duration_s * 1e12, period_ps, snap
    )
    split = int(np.searchsorted(edges, G2_SPLIT_S * 1e12, side="left"))
    split = min(max(split, 0), len(edges) - 1)
    period = int(round(period_ps)) if snap else None
    geo = log_geometry(edges, split, period, G2_BINS_PER_DECADE)
    block = duration_s / N_BLOCKS * 1e12
    if geo.hi.max() > 0.9 * block:
        raise ValueError(
            f"g2_tau_max_s = {tau_max_s:g}: the longest delay must stay below a jackknife "
            f"block ({block / 1e12:.3g} s of {duration_s:g} s)"
        )
    return LogLayout.of(geo, tau_max_s, snap)


SCALARS = (
    "g2_zero",
    "g2_zero_stderr_raw",
    "g2_zero_corrected",
    "g2_zero_stderr",
    "truth_g2_zero",
    "bleach_time_s",
    "grey_fraction",
)


def model_afterpulsing(model: Model) -> Afterpulsing:
    """The detectors' afterpulse law of ``model`` as the estimators take it (known, no
    error): probability, delay constant and dead time of both channels."""
    d = model.detection
    dets = tuple(
        DetectorAfterpulsing(
            channel=c,
            probability=float(d.afterpulse_probability),
            probability_stderr=0.0,
            time_constant_ns=float(d.afterpulse_time_constant_ns),
            dead_time_ns=float(d.dead_time_ns),
            chi2_per_dof=math.nan,
        )
        for c in (0, 1)
    )
    return Afterpulsing(detectors=dets, channel_delay_ps=0.0)


def layout_of(
    model: Model,
    duration_s: float,
    n_side_peaks: int = N_SIDE_PEAKS,
    g2_tau_max_s: float | None = None,
    snap: bool = True,
) -> Layout:
    """The :class:`Layout` of points simulated with ``model``'s laser and detectors."""
    period = float(model.sync_period_ps)
    n_pulses = int(round(duration_s * model.excitation.rep_rate_hz))
    duration = n_pulses * period * 1e-12
    geo = pulsed_geometry(
        period, n_side_peaks, _ap_or_none(model), n_pulses, N_BLOCKS, delay_ps=0.0
    )
    tau_max = default_g2_tau_max(duration) if g2_tau_max_s is None else g2_tau_max_s
    log = log_layout(period, duration, tau_max, snap)
    return Layout(period, float(model.detection.resolution_ps), n_pulses, geo, log)


def brightest_per_pulse(model: Model, power: float) -> float:
    """Photons per pulse of both detectors while the NC is in its brightest state: its
    detected photons, the noise, the afterpulses of both (what the intensity histogram is
    sized by)."""
    from ..physics.cascade import outcome_probabilities
    from ..sim.engine import kernel_params
    from ..sim.kernel import BLOCK_PULSES

    photons = float(np.max(outcome_probabilities(model, power) @ [1.0, 1.0, 1.0, 2.0]))
    noise = float(kernel_params(model, power).bg_lam) / BLOCK_PULSES
    return (photons + noise) * (1 + 2 * model.detection.afterpulse_probability)


def brightest_rate_cps(model: Model, power: float) -> float:
    """:func:`brightest_per_pulse` per second: an upper bound of the run's mean rate."""
    return brightest_per_pulse(model, power) * model.excitation.rep_rate_hz


def independent_rate_cps(model: Model, power: float) -> float:
    """Photons independent of the emitter, both channels: what an empty spot measures
    (dark counts, uniform background, and the prompt background at this power)."""
    d, b = model.detection, model.background
    return 2 * d.dark_cps + b.rate_cps + b.prompt_cps * power


def _ap_or_none(model: Model):
    return model_afterpulsing(model) if model.detection.afterpulse_probability > 0 else None


def n_exponentials(model: Model) -> int:
    """Components of the lifetime fit: the exciton and, when the NC blinks, the trion."""
    return 2 if (model.blinking.enabled or model.slow_blinking.enabled) else 1


def _decay_from(micro: np.ndarray, channels, layout: Layout, ap) -> Decay:
    """:func:`simsps.analysis.decay` of ``channels`` from the per-channel microtime
    histograms ``micro`` (2, n) with the afterpulse law ``ap`` (or None)."""
    counts = micro[list(channels)].sum(axis=0)
    res = float(layout.resolution_ps)
    ap_counts = None
    if ap is not None:
        n = max(int(round(layout.period_ps / res)), 1)
        parents = {}
        for det in ap.detectors:
            own = micro[det.channel] if det.channel in channels else np.zeros(micro.shape[1])
            folded = np.zeros(n)
            np.add.at(folded, np.arange(len(own)) % n, own)
            parents[det.channel] = folded
        ap_counts = afterpulse_counts(parents, ap, res, len(counts))
    return Decay(
        time_ns=np.arange(len(counts)) * (res / 1e3),
        counts=counts,
        resolution_ns=res / 1e3,
        period_ns=layout.period_ps / 1e3,
        n_photons=int(counts.sum()),
        afterpulse_counts=ap_counts,
    )


def intensity_edges(max_counts: int) -> np.ndarray:
    """Edges of the intensity histogram: one bin per photon count 0 .. ``max_counts``."""
    return np.arange(-0.5, max_counts + 1.0, 1.0)


def finish(acc: Accumulator, model: Model, power: float, max_counts: int) -> tuple[dict, list[str]]:
    """The point's variables (name -> value or array) and its warnings."""
    lay = acc.layout
    geo = lay.geometry
    ap = _ap_or_none(model)
    warnings: list[str] = []
    duration = lay.duration_s
    out: dict = {}
    n_ch = acc.micro.sum(axis=1)
    out["count_rate_cps"] = n_ch / duration
    out["microtime_counts"] = acc.micro.copy()
    if acc.other[0]:
        warnings.append(f"{int(acc.other[0])} photons on channels other than 0 and 1 ignored")
    # pulsed g2 with the detectors known
    counts = np.column_stack(
        [acc.block_counts[:, 0], acc.block_counts[:, 1], np.diff(geo.block_ps) / geo.period_ps]
    )
    nan_g2 = dict.fromkeys(SCALARS[:4], math.nan)
    out["peak_area"] = _peak_areas(acc.rows[0], geo)
    if n_ch.min() > 0:
        try:
            r = pulsed_g2_from_counts(
                PulsedCounts(acc.rows, counts),
                geo,
                ap=ap,
                background=("floor", None, None),
                decay_of=lambda j, law: _decay_from(acc.micro, (j,), lay, law),
                duration_s=duration,
                resolution_ps=lay.resolution_ps,
            )
            out.update(
                g2_zero=r.g2_zero,
                g2_zero_stderr_raw=r.g2_zero_stderr_raw,
                g2_zero_corrected=r.g2_zero_corrected,
                g2_zero_stderr=r.g2_zero_stderr,
            )
            warnings.extend(r.warnings)
        except AnalysisError as e:
            out.update(nan_g2)
            warnings.append(f"pulsed g2: {e}")
    else:
        out.update(nan_g2)
        warnings.append("pulsed g2: a channel has no photons")
    out["truth_g2_zero"] = _raw_g2(acc.truth_peaks, geo.k)
    # g2 on the log delay grid and the bunching fit
    out.update(_g2_log_of(acc, model, power, n_ch, warnings))
    # lifetimes: both channels, the model's afterpulse law
    n_exp = n_exponentials(model)
    out["lifetime_ns"] = np.full(2, math.nan)
    out["lifetime_stderr_ns"] = np.full(2, math.nan)
    try:
        d = _decay_from(acc.micro, (0, 1), lay, ap)
        peak = (np.argmax(d.counts) + 0.5) * d.resolution_ns
        f = fit_decay(d, n_exp=n_exp, fit_start_ns=peak + FIT_START_NS)
        out["lifetime_ns"][:n_exp] = f.lifetimes_ns
        out["lifetime_stderr_ns"][:n_exp] = f.lifetimes_stderr_ns
        warnings.extend(f"lifetimes: {w}" for w in f.warnings)
    except AnalysisError as e:
        warnings.append(f"lifetimes: {e}")
    # intensity histogram of the 10 ms bins
    edges = intensity_edges(max_counts)
    out["intensity_histogram"] = np.histogram(acc.trace, edges)[0]
    out["intensity_overflow_bins"] = int(np.sum(acc.trace > max_counts))
    out["bleach_time_s"] = float(acc.bleach_time_s)
    out["grey_fraction"] = acc.grey_pulses / lay.n_pulses
    return out, warnings


def _peak_areas(row0: np.ndarray, geo) -> np.ndarray:
    """Pairs per whole-period window -k .. k (pulsed_g2's ``peak_area``)."""
    zero, k = geo.half, geo.k
    cum = np.concatenate([[0], np.cumsum(row0)])
    lo = zero + np.arange(-k, k + 1) * SUB - SUB // 2
    return (cum[lo + SUB] - cum[lo]).astype(np.float64)


def _raw_g2(peaks: np.ndarray, k: int) -> float:
    sides = np.delete(peaks, k).astype(np.float64)
    return float(peaks[k] / sides.mean()) if sides.sum() > 0 else math.nan


def reference_statistics(
    stream, model: Model, power: float, max_counts: int, layout: Layout | None = None
) -> dict:
    """The same variables from a point's whole stream, by the public estimators (what a
    user would run; the tests compare a sweep's numbers with these). ``layout``: the
    sweep's (default: that of the model alone)."""
    ap = _ap_or_none(model)
    lay = layout or layout_of(model, stream.duration_s)
    out: dict = {}
    out["count_rate_cps"] = np.array([np.sum(stream.channel == c) for c in (0, 1)]) / (
        stream.duration_s
    )
    r = pulsed_g2(
        stream,
        n_side_peaks=lay.geometry.k,
        afterpulsing=ap,
        channel_delay_ps=0.0,
        n_blocks=lay.geometry.n_blocks,
    )
    out.update(
        peak_area=r.peak_area,
        g2_zero=r.g2_zero,
        g2_zero_stderr_raw=r.g2_zero_stderr_raw,
        g2_zero_corrected=r.g2_zero_corrected,
        g2_zero_stderr=r.g2_zero_stderr,
    )
    emitter = stream.take(stream.truth.source < Source.DARK)
    t = pulsed_g2(
        emitter,
        n_side_peaks=lay.geometry.k,
        afterpulsing=None,
        channel_delay_ps=0.0,
        background=0.0,
    )
    out["truth_g2_zero"] = t.g2_zero
    if lay.log is not None:
        r = g2_log(
            stream,
            tau_min_s=G2_TAU_MIN_S,
            tau_max_s=lay.log.tau_max_s,
            bins_per_decade=G2_BINS_PER_DECADE,
            split_s=G2_SPLIT_S,
            snap_to_period=lay.log.snap,
            background=independent_rate_cps(model, power) or None,
            n_blocks=N_BLOCKS,
        )
        out.update(
            g2=r.g2,
            g2_stderr=r.stderr,
            bunching_amplitude=r.fit.relative_amplitude,
            bunching_amplitude_stderr=r.fit.relative_amplitude_stderr,
            tau_c_s=r.fit.tau_c_s,
            tau_c_stderr_s=r.fit.tau_c_stderr_s,
        )
    d = decay(stream, afterpulsing=ap)
    peak = (np.argmax(d.counts) + 0.5) * d.resolution_ns
    f = fit_decay(d, n_exp=n_exponentials(model), fit_start_ns=peak + FIT_START_NS)
    out["lifetime_ns"] = f.lifetimes_ns
    out["lifetime_stderr_ns"] = f.lifetimes_stderr_ns
    tr = intensity_trace(stream, TRACE_BIN_S)
    out["intensity_histogram"] = np.histogram(tr.counts, intensity_edges(max_counts))[0]
    out["microtime_counts"] = np.array(
        [np.bincount(stream.dtime[stream.channel == c], minlength=lay.n_micro) for c in (0, 1)]
    )
    return out


LOG_SCALARS = (
    "bunching_amplitude",
    "bunching_amplitude_stderr",
    "tau_c_s",
    "tau_c_stderr_s",
)


def _g2_log_of(acc: Accumulator, model: Model, power: float, n_ch, warnings) -> dict:
    lay = acc.layout
    lg = lay.log
    n_bins = lg.geometry.n_bins if lg else 0
    out = {"g2": np.full(n_bins, math.nan), "g2_stderr": np.full(n_bins, math.nan)}
    out.update(dict.fromkeys(LOG_SCALARS, math.nan))
    if lg is None:
        warnings.append("g2_log: the acquisition is too short for its delays")
        return out
    acc.finish_log()
    if n_ch.min() == 0:
        warnings.append("g2_log: a channel has no photons")
        return out
    duration = lay.duration_s
    counts = LogCounts(
        A=acc.log_abw[0].astype(np.float64),
        B=acc.log_abw[1].astype(np.float64),
        W=acc.log_abw[2].astype(np.float64),
        na=int(acc._gstate[0]),
        nb=int(acc._gstate[1]),
        cuts_a=acc.block_counts[:, 0],
        cuts_b=acc.block_counts[:, 1],
    )
    try:
        bg = _log_background(independent_rate_cps(model, power), counts, duration)
        r = g2_log_from_counts(
            counts,
            lg.geometry,
            EdgeCoverage(acc, lay),
            duration_s=duration,
            block_ps=log_block_edges(duration, lay.period_ps, N_BLOCKS),
            background=bg,
            fit=True,
            fit_min_s=20 * lay.period_ps * 1e-12,
            fit_max_s=lg.tau_max_s,
        )
    except AnalysisError as e:
        warnings.append(f"g2_log: {e}")
        return out
    out["g2"], out["g2_stderr"] = r.g2, r.stderr
    f = r.fit
    out.update(
        bunching_amplitude=f.relative_amplitude,
        bunching_amplitude_stderr=f.relative_amplitude_stderr,
        tau_c_s=f.tau_c_s,
        tau_c_stderr_s=f.tau_c_stderr_s,
    )
    warnings.extend(f"g2_log: {w}" for w in r.warnings)
    return out


def _log_background(rate: float, counts: LogCounts, duration: float):
    """background_rates for one number: split by the channels' count rates."""
    rates = np.array([counts.na, counts.nb], float) / duration
    if rate == 0:
        return ("rates", (0.0, 0.0), None)
    bg = rate * rates / rates.sum()
    if np.any(bg >= rates):
        raise AnalysisError(
            f"background {bg.tolist()} cps is not below the count rates {rates.tolist()} cps"
        )
    return ("rates", (float(bg[0]), float(bg[1])), None)


class EdgeCoverage:
    """g2_log's coverage sums (:class:`simsps.analysis.g2_log._Coverage`) from the channel-0
    photons near each block edge: per edge and side, their count and summed distance in
    each interval between consecutive bin limits, on which every bin's ``g(y) = clip(y -
    lo, 0, hi - lo)`` is linear; photons farther than the longest delay add ``hi - lo``
    each. Only an edge's own block's photons come within reach of it (the delays are
    shorter than a block)."""

    def __init__(self, acc: Accumulator, lay: Layout):
        lg = lay.log
        geo = lg.geometry
        self.lo, self.hi = geo.lo, geo.hi
        self.w = self.hi - self.lo
        bp = lg.breakpoints
        a, b = bp[:-1], bp[1:]  # interval j + 1 of the counts is [a[j], b[j])
        self.above = a[None, :] >= self.hi[:, None]  # the whole interval beyond the bin
        self.inside = ~((b[None, :] <= self.lo[:, None]) | self.above)
        self.n, self.y = acc.cov_n, acc.cov_y
        self.nk = acc.block_counts[:, 0].astype(np.float64)
        self.edges = lay.geometry.block_ps
        self.nb = len(self.edges) - 1

    def _near(self, j: int, side: int) -> np.ndarray:
        """Sum of g over the photons near edge j on ``side`` (0: before it, 1: after)."""
        n = self.n[j, side, 1 : len(self.n[j, side]) - 1].astype(np.float64)
        y = self.y[j, side, 1 : len(self.y[j, side]) - 1]
        return (self.above * self.w[:, None]) @ n + self.inside @ y - self.lo * (self.inside @ n)

    def _count(self, j: int, side: int) -> float:
        return float(self.n[j, side].sum())

    def _left(self, j: int, photons: float) -> np.ndarray:
        """sum of g(x_j - t) over ``photons`` a photons before edge j (all near ones)."""
        return self.w * (photons - self._count(j, 0)) + self._near(j, 0)

    def _right(self, j: int, photons: float) -> np.ndarray:
        return self.w * (photons - self._count(j, 1)) + self._near(j, 1)

    def _edge(self, x: float) -> int:
        """The block edge at ``x`` ps. The estimator passes the acquisition's end as
        ``duration_s * 1e12``, which a whole number of periods need not survive (0.1 s:
        99999999999.99998 ps): an edge within a rounding of ``x`` is it (edges are whole
        periods apart)."""
        j = int(np.argmin(np.abs(self.edges - x)))
        if abs(self.edges[j] - x) > 1e-9 * max(abs(x), 1.0):
            raise ValueError(f"{x} ps is not a block edge")
        return j

    def total(self, x0, x1):
        j0, j1 = self._edge(x0), self._edge(x1)
        before = np.concatenate([[0.0], np.cumsum(self.nk)])
        after = before[-1] - before
        return (
            self._left(j1, before[j1])
            - self._left(j0, before[j0])
            + self._right(j0, after[j0])
            - self._right(j1, after[j1])
        )

    def part(self, x0, x1, k):
        j0, j1 = self._edge(x0), self._edge(x1)
        nk = self.nk[k]
        if (j0, j1) == (0, self.nb):  # block k's photons over the whole acquisition
            left = self._left(self.nb, nk) if k == self.nb - 1 else self.w * nk
            right = self._right(0, nk) if k == 0 else self.w * nk
            return left + right
        if (j0, j1) != (k, k + 1):
            raise ValueError(f"coverage of block {k} over ({x0}, {x1}) is not needed")
        return self._left(k + 1, nk) + self._right(k, nk)
