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
from .reduce import TRACE_BIN_S, Accumulator, Layout

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


def layout_of(model: Model, duration_s: float, n_side_peaks: int = N_SIDE_PEAKS) -> Layout:
    """The :class:`Layout` of points simulated with ``model``'s laser and detectors."""
    period = float(model.sync_period_ps)
    n_pulses = int(round(duration_s * model.excitation.rep_rate_hz))
    geo = pulsed_geometry(
        period, n_side_peaks, _ap_or_none(model), n_pulses, N_BLOCKS, delay_ps=0.0
    )
    return Layout(period, float(model.detection.resolution_ps), n_pulses, geo)


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


def finish(acc: Accumulator, model: Model, max_counts: int) -> tuple[dict, list[str]]:
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


def reference_statistics(stream, model: Model, max_counts: int) -> dict:
    """The same variables from a point's whole stream, by the public estimators (what a
    user would run; the tests compare a sweep's numbers with these)."""
    ap = _ap_or_none(model)
    lay = layout_of(model, stream.duration_s)
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
