"""Pulsed g2: the HBT cross-correlation around zero delay, its peak areas and g2(0).

g2(0) is the area of the centre peak over the mean area of the ``n_side_peaks`` side peaks
on each side (the seed paper's definition: side peaks near zero carry the blinking
bunching, so they, not the long-delay level, are the reference). Each peak is integrated
over the whole laser period centred on it, which makes the areas immune to dead time and
jitter (PHYSICS.md section 6).

Background correction (PHYSICS.md section 4). Uncorrelated (uniform) background adds a
flat floor F to every peak window; with signal fractions rho_a, rho_b of the two channels
``F = (1 - rho_a rho_b) M1``. Three forms:

``"brouri"`` (default)
    exact (Brouri et al. 2000): ``g = (g_raw - (1 - rho_a rho_b)) / (rho_a rho_b)``, i.e.
    ``(M0 - F) / (M1 - F)``. ``rho`` from given background rates or from the measured floor.
``"peak-area"``
    the consistent peak-area form ``(M0 + Mb - 2 sqrt(M1 Mb)) / (sqrt(M1) - sqrt(Mb))^2``
    with ``Mb`` the background-background coincidences per window. Identical to
    ``"brouri"`` when both channels have the same signal fraction; differs (and is then
    approximate) when they do not.
``"seed-si"``
    the seed SI's peak-by-peak ``Mc = M + Mb - 2 sqrt(M Mb)``: exact for side peaks but it
    under-corrects the centre peak, overstating g2(0) (b/s = 0.1: true 0 reads 0.128).
    Offered to reproduce the paper's own numbers, not for new work.

The background is measured from the inter-peak floor (``background="floor"``, pairs whose
delay lies in the middle ``floor_fraction`` of the gaps between peaks) or given as count
rates (cps per channel, or one number for both channels together split by their count
rates). Prompt (pulsed) background is correlated with the laser and is not removed by any
of these: it looks like a Poissonian emitter.

Uncertainties: peak areas are Poisson counts (each coincidence is one event); the floor
count too; ``g2_zero_stderr`` propagates them to first order, treating the side peaks and
the floor sample as independent (the floor delays lie outside the peaks' cores, so their
covariance is second order).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ._common import AnalysisError, channel_times, check_stream

CORRECTIONS = ("brouri", "peak-area", "seed-si")


@dataclasses.dataclass(frozen=True)
class PulsedG2:
    delay_ns: np.ndarray  # histogram bin centres (ns)
    counts: np.ndarray  # coincidences per bin
    peak_index: np.ndarray  # -n .. n
    peak_area: np.ndarray  # coincidences per peak window
    side_mean: float  # M1: mean side-peak area
    floor_per_peak: float  # F: flat (uncorrelated) coincidences per peak window
    floor_counts: int  # coincidences the floor estimate rests on (0 if given)
    g2_zero: float  # raw M0 / M1
    g2_zero_stderr_raw: float
    g2_zero_corrected: float
    g2_zero_stderr: float  # of the corrected value
    correction: str
    signal_fraction: tuple[float, float]  # rho of channel a, b
    period_ns: float
    duration_s: float

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        """Normal-approximation confidence interval of the corrected g2(0)."""
        from scipy import stats

        z = stats.norm.isf((1 - level) / 2)
        return (self.g2_zero_corrected - z * self.g2_zero_stderr,
                self.g2_zero_corrected + z * self.g2_zero_stderr)

    def plot(self, ax=None, **kw):
        from .plots import plot_pulsed_g2

        return plot_pulsed_g2(self, ax=ax, **kw)


def pulsed_g2(stream, *, n_side_peaks: int = 10, channels: tuple[int, int] = (0, 1),
              background="floor", correction: str = "brouri", floor_fraction: float = 0.25,
              bin_ps: float | None = None) -> PulsedG2:
    """Pulsed HBT cross-correlation and g2(0) with background correction (module doc)."""
    a, b = channels
    check_stream(stream, need_channels=(a, b), min_photons=2)
    if correction not in CORRECTIONS:
        raise AnalysisError(f"correction {correction!r}: choose one of {', '.join(CORRECTIONS)}")
    k = int(n_side_peaks)
    if k < 1:
        raise AnalysisError(f"n_side_peaks = {n_side_peaks!r} must be at least 1")
    if not 0 < floor_fraction <= 0.9:
        raise AnalysisError(f"floor_fraction = {floor_fraction!r} must be in (0, 0.9]")
    period = int(round(stream.sync_period_ps))
    duration = stream.duration_s
    ta, tb = channel_times(stream, a, b)
    half = (2 * k + 1) * period // 2 + period  # one period beyond the outer peaks' windows
    from ._kernels import signed_pairs

    d = signed_pairs(ta, tb, half)

    # peak areas over whole-period windows centred on m * period
    idx = np.floor(d / period + 0.5).astype(np.int64)
    inside = np.abs(idx) <= k
    areas = np.bincount(idx[inside] + k, minlength=2 * k + 1).astype(np.float64)
    m0 = areas[k]
    sides = np.delete(areas, k)
    m1 = float(sides.mean())
    if m1 <= 0:
        raise AnalysisError("no coincidences in the side peaks: too few photons for g2")

    # flat floor from the middle of the gaps between peaks (between -k..k)
    phase = d / period - np.floor(d / period)  # position within a period, peaks at 0 / 1
    in_gap = (np.abs(phase - 0.5) < floor_fraction / 2) & (np.abs(d) < k * period)
    n_floor = int(in_gap.sum())
    floor_width = floor_fraction * period * 2 * k  # total delay range sampled
    rates = np.array([len(ta), len(tb)], float) / duration
    if isinstance(background, str):
        if background != "floor":
            raise AnalysisError(f"background {background!r}: use 'floor' or rates in cps")
        f = n_floor / floor_width * period
        rho_ab = 1.0 - f / m1
        rho = (math.sqrt(max(rho_ab, 0.0)),) * 2
        var_f = f**2 / max(n_floor, 1)
    else:
        bg = np.atleast_1d(np.asarray(background, float))
        if bg.size == 1:
            bg = bg[0] * rates / rates.sum()
        if bg.shape != (2,) or np.any(bg < 0) or not np.all(np.isfinite(bg)):
            raise AnalysisError(f"background = {background!r}: give cps >= 0, one number or "
                                "one per channel")
        if np.any(bg >= rates):
            raise AnalysisError(f"background {bg.tolist()} cps is not below the count rates "
                                f"{rates.tolist()} cps")
        rho = tuple(1.0 - bg / rates)
        rho_ab = rho[0] * rho[1]
        f = (1.0 - rho_ab) * m1
        n_floor, var_f = 0, 0.0
    if f >= 0.95 * m1:
        raise AnalysisError(f"the uncorrelated floor ({f:.4g} per peak window) is as large as "
                            f"the side peaks ({m1:.4g}): no signal to correct")
    g_raw = m0 / m1
    var_m0, var_m1 = max(m0, 1.0), m1 / len(sides)
    se_raw = math.sqrt(var_m0 / m1**2 + g_raw**2 * var_m1 / m1**2)

    g = _corrected(correction, m0, m1, f, sides)
    grad = _gradient(correction, m0, m1, f, sides)
    if not isinstance(background, str):  # given rates: F = (1 - rho_a rho_b) M1 moves with M1
        grad[1] += grad[2] * (1.0 - rho_ab)
    var = grad[0] ** 2 * var_m0 + grad[1] ** 2 * var_m1 + grad[2] ** 2 * var_f
    # histogram for display: about 1 ns bins, a whole number of microtime bins
    hist_bin = float(bin_ps or stream.resolution_ps * max(1, round(1000 / stream.resolution_ps)))
    n_bins = int(math.ceil((2 * k + 1) * period / hist_bin))
    lo = -n_bins * hist_bin / 2
    counts = np.bincount(np.clip(((d - lo) // hist_bin).astype(np.int64), 0, n_bins - 1)[
        np.abs(d) < -lo], minlength=n_bins)
    centres = (lo + (np.arange(n_bins) + 0.5) * hist_bin) / 1e3
    return PulsedG2(
        delay_ns=centres, counts=counts, peak_index=np.arange(-k, k + 1), peak_area=areas,
        side_mean=m1, floor_per_peak=float(f), floor_counts=n_floor, g2_zero=float(g_raw),
        g2_zero_stderr_raw=float(se_raw), g2_zero_corrected=float(g),
        g2_zero_stderr=float(math.sqrt(var)), correction=correction,
        signal_fraction=(float(rho[0]), float(rho[1])), period_ns=period / 1e3,
        duration_s=float(duration),
    )


def _corrected(correction, m0, m1, f, sides):
    """Corrected g2(0) from centre area M0, mean side area M1 and floor F per window.
    ``peak-area`` and ``seed-si`` need the background-background part Mb of the floor:
    with equal signal fractions in both channels ``Mb = (1 - sqrt(1 - F/M1))^2 M1``."""
    if correction == "brouri":
        return (m0 - f) / (m1 - f)
    mb = (1 - math.sqrt(max(1 - f / m1, 0.0))) ** 2 * m1
    if correction == "peak-area":
        return (m0 + mb - 2 * math.sqrt(m1 * mb)) / (math.sqrt(m1) - math.sqrt(mb)) ** 2
    s = sides * (m1 / sides.mean())
    return (m0 + mb - 2 * math.sqrt(m0 * mb)) / float(np.mean(s + mb - 2 * np.sqrt(s * mb)))


def _gradient(correction, m0, m1, f, sides):
    """Central-difference gradient of :func:`_corrected` in (M0, M1, F)."""
    base = np.array([m0, m1, f], float)
    out = []
    for i in range(3):
        h = 1e-4 * max(base[i], 1.0)
        hi, lo = base.copy(), base.copy()
        hi[i] += h
        lo[i] = max(lo[i] - h, 0.0)
        out.append((_corrected(correction, *hi, sides) - _corrected(correction, *lo, sides))
                   / (hi[i] - lo[i]))
    return out
