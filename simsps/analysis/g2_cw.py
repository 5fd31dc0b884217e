"""CW g2: the HBT cross-correlation around zero delay on a linear grid, its background
correction from count rates and a fit of the antibunching dip through the jitter.

Coincidences ``C_k`` of a channel-b photon ``tau = t_b - t_a`` after a channel-a photon are
counted in bins of ``bin_ps`` over ``|tau| < window``; uncorrelated photons would give
``E = N_a N_b bin / T`` per bin, and ``g_raw = C / E``. A photon is the emitter's with the
channel's signal fraction ``rho = 1 - (B' + p_ap r) / r``: ``r`` the recorded rate, ``B'``
the background the channel records (``background`` given in cps, as measured on an empty
spot at low rate, times the live fraction ``1 - r tau_dead`` of a non-paralysable
detector) and ``p_ap r`` its afterpulses (uncorrelated with the other detector at these
delays). Background photons correlate with nothing (Brouri et al. 2000):

    g_raw(tau) = rho_a rho_b g(tau) + 1 - rho_a rho_b

and the emitter's ``g`` is fitted as one dip through the jitter:

    g(tau) = A [1 - (1 - g2(0)) exp(-|tau - tau_0| / tau_d)]  (x) Gaussian(sigma)

averaged over each bin (the convolution in closed form, ``erfcx``): ``A`` the shoulder
(blinking bunching at delays far below its dwells), ``tau_d`` the dip time (``1 / (R +
Gamma)`` for a two-level emitter, PHYSICS.md 8), ``tau_0`` the detectors' relative delay,
``sigma`` the combined jitter of both detectors (fitted, or ``sqrt(2)`` times one
detector's given ``jitter_fwhm_ps / 2.355``). The fit maximises the Poisson likelihood of
the counts. ``g2(0)`` is the emitter's at zero delay, background and jitter taken out.

Assumptions: one dip (an NC whose charge states have different lifetimes and switch
within the window, the fast flicker, mixes two dips and biases a one-dip g2(0)); a
stationary emitter; background independent of the emitter.

Uncertainties: the delete-one-block jackknife over ``n_blocks`` time blocks (refit with
each block left out; pairs belong to their channel-a photon's block, which misplaces
pairs within ``window`` of a block's edge, a fraction ``window / block`` of them), plus an
empty spot's count error propagated to first order. Intervals use Student's t with
``n_blocks - 1`` degrees of freedom; the coverage is tested over 500 streams under the
detectors' full effects with 30 % background (tests/test_g2_cw.py).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import optimize, special

from ._blocks import DEFAULT_BLOCKS
from ._common import (
    AnalysisError,
    Warnings,
    background_rates,
    channel_times,
    check_stream,
    interval,
)
from ._kernels import signed_pairs

__all__ = ["CWG2", "g2_cw", "dip_model"]

_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(4)  # bin averages
_SQRT2 = math.sqrt(2.0)
PARAMS = ("shoulder", "g2_zero", "dip_time_ps", "offset_ps", "jitter_ps")


@dataclasses.dataclass(frozen=True)
class CWG2:
    """The CW g2 around zero delay and its dip fit (times in ps unless named)."""

    tau_ps: np.ndarray  # bin centres
    counts: np.ndarray  # coincidences per bin
    expected: float  # uncorrelated coincidences per bin, N_a N_b bin / T
    g2_raw: np.ndarray  # counts / expected
    g2_corrected: np.ndarray  # (g2_raw - 1 + rho_a rho_b) / (rho_a rho_b)
    model: np.ndarray  # the fitted g(tau) (corrected scale), bin averages
    g2_zero: float  # the emitter's g2(0): background and jitter taken out
    g2_zero_stderr: float
    shoulder: float  # A
    dip_time_ns: float
    dip_time_stderr_ns: float
    offset_ps: float  # tau_0: channel b's delay relative to channel a
    jitter_ps: float  # sigma of the combined jitter (fitted or given)
    jitter_fitted: bool
    signal_fraction: tuple[float, float]  # rho_a, rho_b
    background: str  # "none", "rates" or "empty spot"
    dof: float  # of the error: n_blocks - 1
    chi2: float  # Poisson deviance of the fit
    n_bins: int
    duration_s: float
    bin_ps: float
    assumptions: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        """Confidence interval of g2(0) (Student's t, jackknife degrees of freedom)."""
        return interval(self.g2_zero, self.g2_zero_stderr, self.dof, level)

    def plot(self, ax=None, **kw):
        from .plots import plot_cw_g2

        return plot_cw_g2(self, ax=ax, **kw)


def _term(x, sigma, tau_d):
    """``E[exp(-y / tau_d); y > 0]`` for ``y = x + e``, ``e ~ N(0, sigma^2)``: the part of
    the two-sided exponential's Gaussian convolution from positive delays (``_term(-x)``
    gives the rest), ``exp(s^2/2 - x/tau_d) erfc(z) / 2`` with ``s = sigma / tau_d``, ``z =
    (s - x / sigma) / sqrt 2``, through ``erfcx`` where ``z >= 0`` (no overflow)."""
    z = (sigma / tau_d - x / sigma) / _SQRT2
    safe = np.maximum(z, 0.0)
    small = 0.5 * np.exp(-0.5 * (x / sigma) ** 2) * special.erfcx(safe)
    expo = np.minimum(0.5 * (sigma / tau_d) ** 2 - x / tau_d, 700.0)
    large = 0.5 * np.exp(expo) * special.erfc(np.minimum(z, 0.0))
    return np.where(z >= 0, small, large)


def dip_model(tau_ps, bin_ps, shoulder, g2_zero, tau_d, offset, sigma):
    """``A [1 - (1 - g2(0)) exp(-|tau - tau_0| / tau_d)]`` convolved with a Gaussian of
    ``sigma`` and averaged over bins of ``bin_ps`` centred on ``tau_ps`` (all in ps)."""
    x = (np.asarray(tau_ps, float)[:, None] + 0.5 * bin_ps * _NODES[None, :]) - offset
    d = _term(x, sigma, tau_d) + _term(-x, sigma, tau_d)
    dip = (d * _WEIGHTS[None, :]).sum(axis=1) / 2.0
    return shoulder * (1.0 - (1.0 - g2_zero) * dip)


def _deviance(counts, mu):
    """Signed Poisson deviance residuals."""
    mu = np.maximum(mu, 1e-300)
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where(counts > 0, counts * np.log(counts / mu), 0.0) - (counts - mu)
    return np.sign(counts - mu) * np.sqrt(2.0 * np.maximum(term, 0.0))


class _Fitter:
    def __init__(self, tau, bin_ps, window, sigma_fixed):
        self.tau, self.bin_ps, self.window = tau, bin_ps, window
        self.sigma_fixed = sigma_fixed

    def full(self, p):
        if self.sigma_fixed is None:
            return p
        return np.concatenate([p, [self.sigma_fixed]])

    def mean(self, p, expected, rho2):
        a, g0, tau_d, off, sigma = self.full(p)
        g = dip_model(self.tau, self.bin_ps, a, g0, tau_d, off, sigma)
        return expected * (rho2 * g + 1.0 - rho2)

    def fit(self, counts, expected, rho2, start):
        lo = [1e-6, -2.0, 0.2 * self.bin_ps, -0.25 * self.window, 0.05 * self.bin_ps]
        hi = [1e3, 5.0, self.window, 0.25 * self.window, 0.1 * self.window]
        n = 5 if self.sigma_fixed is None else 4
        lo, hi = np.array(lo[:n]), np.array(hi[:n])
        pad = 1e-6 * (hi - lo)
        x0 = np.clip(np.asarray(start[:n], float), lo + pad, hi - pad)
        res = optimize.least_squares(
            lambda p: _deviance(counts, self.mean(p, expected, rho2)),
            x0,
            bounds=(lo, hi),
            x_scale=np.array([1.0, 0.1, 1000.0, 100.0, 100.0])[:n],
            method="trf",
        )
        return res.x, float(2 * res.cost), res.success


def _start(tau, g_corr, bin_ps, window, sigma):
    """Starting values from the corrected histogram: shoulder from the outer fifth, the
    offset at the smoothed minimum, the dip time where it has risen by 1 - 1/e."""
    outer = np.abs(tau) > 0.6 * window
    a = float(np.mean(g_corr[outer])) if outer.any() else 1.0
    a = a if np.isfinite(a) and a > 0 else 1.0
    k = max(1, int(round(3 * 200.0 / bin_ps)))
    smooth = np.convolve(g_corr, np.ones(k) / k, mode="same")
    i = int(np.argmin(smooth))
    g0 = float(np.clip(smooth[i] / a, 0.0, 1.0))
    target = a * (1 - (1 - g0) / math.e)
    right = np.flatnonzero((tau > tau[i]) & (smooth >= target))
    tau_d = float(tau[right[0]] - tau[i]) if len(right) else 0.1 * window
    return np.array([a, g0, max(tau_d, 2 * bin_ps), float(tau[i]), sigma or 200.0])


def g2_cw(
    stream,
    *,
    channels: tuple[int, int] = (0, 1),
    window_ns: float = 50.0,
    bin_ps: float = 100.0,
    background=None,
    dead_time_ns: float = 0.0,
    afterpulse_probability=0.0,
    jitter_fwhm_ps: float | None = None,
    n_blocks: int = DEFAULT_BLOCKS,
) -> CWG2:
    """g2(tau) around zero of a CW-excited emitter and its g2(0) (module doc).

    ``background``: None (no correction), count rates in cps of an empty spot (one number
    split by the channels' count rates, or one per channel) or its :class:`PhotonStream`;
    ``dead_time_ns`` and ``afterpulse_probability`` (one, or one per channel) of the
    detectors, taken out of the signal fractions; ``jitter_fwhm_ps``: one detector's
    jitter (both alike), else the combined jitter is fitted. T2 or T3 streams."""
    a, b = channels
    check_stream(stream, need_channels=(a, b), min_photons=2)
    window = float(window_ns) * 1e3
    bin_ps = float(bin_ps)
    if not (math.isfinite(window) and window > 0 and math.isfinite(bin_ps) and bin_ps > 0):
        raise AnalysisError(f"window_ns = {window_ns!r}, bin_ps = {bin_ps!r}: both must be > 0")
    n_bins = int(round(2 * window / bin_ps))
    if n_bins < 20 or abs(n_bins * bin_ps - 2 * window) > 1e-6 * window:
        raise AnalysisError(
            f"window_ns = {window_ns:g} must hold a whole number (>= 10 each side) of "
            f"bins of {bin_ps:g} ps"
        )
    if not isinstance(n_blocks, int) or n_blocks < 4:
        raise AnalysisError(f"n_blocks = {n_blocks!r}: the jackknife needs at least 4 blocks")
    dead = float(dead_time_ns) * 1e-9
    p_ap = np.broadcast_to(np.asarray(afterpulse_probability, float), (2,))
    if not (0 <= dead < 1e-3) or np.any(p_ap < 0) or np.any(p_ap >= 0.5):
        raise AnalysisError(
            f"dead_time_ns = {dead_time_ns!r}, afterpulse_probability = "
            f"{afterpulse_probability!r}: dead time >= 0 ns, probabilities in [0, 0.5)"
        )
    warn = Warnings()
    assumptions = [
        "one antibunching dip (charge states with different lifetimes mixed within the "
        "window bias a one-dip g2(0))",
        "background and afterpulses independent of the other detector",
    ]
    warn.add(
        not stream.is_t2,
        "a T3 (pulsed) stream: under pulsed excitation use pulsed_g2; the CW dip model "
        "does not hold between peaks",
    )
    ta, tb = channel_times(stream, a, b)
    duration_ps = float(stream.duration_s) * 1e12
    edges_t = np.linspace(0.0, duration_ps, n_blocks + 1)
    cuts = np.searchsorted(ta, edges_t, side="left")
    cuts[0], cuts[-1] = 0, len(ta)
    delays, offsets = signed_pairs(ta, tb, int(math.ceil(window)), cuts=cuts)
    edges = np.linspace(-window, window, n_bins + 1)
    per_block = np.stack(
        [np.histogram(delays[offsets[k] : offsets[k + 1]], edges)[0] for k in range(n_blocks)]
    ).astype(np.float64)
    na_b = np.diff(cuts).astype(np.float64)
    nb_b = np.diff(np.searchsorted(tb, edges_t, side="left")).astype(np.float64)
    nb_b[-1] += len(tb) - nb_b.sum()
    span_b = np.diff(edges_t) * 1e-12
    tau = 0.5 * (edges[1:] + edges[:-1])

    mode, bg, bg_var = ("none", None, None)
    if background is not None:
        mode, bg, bg_var = background_rates(background, stream, channels, len(ta), len(tb))
    else:
        warn.append(
            "no background given: g2(0) is that of every recorded photon; give background= "
            "the count rate of an empty spot to take it out"
        )

    def signal_fractions(na, nb, dur, bg_rates):
        rates = np.array([na, nb]) / dur
        other = p_ap * rates
        if bg_rates is not None:
            other = other + np.asarray(bg_rates) * np.maximum(1.0 - rates * dead, 0.0)
        return 1.0 - other / rates

    sigma_fixed = None
    if jitter_fwhm_ps is not None:
        j = float(jitter_fwhm_ps)
        if not (math.isfinite(j) and j >= 0):
            raise AnalysisError(f"jitter_fwhm_ps = {jitter_fwhm_ps!r} must be >= 0")
        sigma_fixed = max(_SQRT2 * j / (2 * math.sqrt(2 * math.log(2))), 0.05 * bin_ps)
    fitter = _Fitter(tau, bin_ps, window, sigma_fixed)

    def estimate(counts, na, nb, dur, bg_rates, start=None):
        rho = signal_fractions(na, nb, dur, bg_rates)
        if np.any(rho <= 0):
            raise AnalysisError(
                f"background and afterpulses leave no signal: signal fractions {rho.tolist()}"
            )
        rho2 = float(rho[0] * rho[1])
        expected = na * nb * bin_ps * 1e-12 / dur
        if start is None:
            g_corr = (counts / expected - 1 + rho2) / rho2
            start = _start(tau, g_corr, bin_ps, window, sigma_fixed)
        p, dev, ok = fitter.fit(counts, expected, rho2, start)
        return p, dev, ok, rho, expected

    total = per_block.sum(axis=0)
    na, nb, dur = float(len(ta)), float(len(tb)), duration_ps * 1e-12
    p, dev, ok, rho, expected = estimate(total, na, nb, dur, bg)
    warn.add(not ok, "the dip fit did not converge; the numbers are its last iterate")
    # delete-one-block jackknife
    reps = []
    for k in range(n_blocks):
        rk, _, _, _, _ = estimate(
            total - per_block[k], na - na_b[k], nb - nb_b[k], dur - span_b[k], bg, start=p
        )
        reps.append(rk)
    reps = np.array(reps)
    var = (n_blocks - 1) / n_blocks * np.sum((reps - reps.mean(axis=0)) ** 2, axis=0)
    if bg_var is not None:  # an empty spot's count error, to first order
        for i, v in enumerate(bg_var):
            h = 1e-3 * max(bg[i], 1.0)
            up = list(bg)
            up[i] += h
            pu, _, _, _, _ = estimate(total, na, nb, dur, tuple(up), start=p)
            var = var + ((pu - p) / h) ** 2 * v
    se = np.sqrt(var)
    full = fitter.full(p)
    rho2 = float(rho[0] * rho[1])
    g_raw = total / expected
    g_corr = (g_raw - 1.0 + rho2) / rho2
    model = dip_model(tau, bin_ps, *full)
    g0, g0_se = float(full[1]), float(se[1])
    tau_d = float(full[2])
    near = np.abs(tau - full[3]) < max(tau_d, bin_ps)
    n_near = float(total[near].sum())
    warn.add(
        n_near < 100,
        f"few coincidences near zero delay ({n_near:.0f} within the dip time): the error "
        "is approximate",
    )
    warn.add(
        g0 + 2 * g0_se < 0,
        f"g2(0) = {g0:.3g} +- {g0_se:.2g} is below 0, which no light gives: the background "
        "(or afterpulsing) given is too large",
    )
    warn.add(
        full[4] > tau_d,
        f"the jitter (sigma {full[4]:.0f} ps) is wider than the dip ({tau_d:.0f} ps): g2(0) "
        "is an extrapolation through it",
    )
    warn.add(
        window < 5 * tau_d,
        f"the window (+-{window / 1e3:g} ns) is shorter than 5 dip times ({tau_d / 1e3:.3g} "
        "ns): the shoulder is not reached; widen window_ns",
    )
    block_s = dur / n_blocks
    warn.add(
        block_s < 1e3 * window * 1e-12,
        f"blocks of {block_s:.3g} s are not much longer than the window: the jackknife's "
        "pairs across block edges matter; use fewer blocks",
    )
    return CWG2(
        tau_ps=tau,
        counts=total.astype(np.int64),
        expected=float(expected),
        g2_raw=g_raw,
        g2_corrected=g_corr,
        model=model,
        g2_zero=g0,
        g2_zero_stderr=g0_se,
        shoulder=float(full[0]),
        dip_time_ns=tau_d / 1e3,
        dip_time_stderr_ns=float(se[2]) / 1e3,
        offset_ps=float(full[3]),
        jitter_ps=float(full[4]),
        jitter_fitted=sigma_fixed is None,
        signal_fraction=(float(rho[0]), float(rho[1])),
        background=mode,
        dof=float(n_blocks - 1),
        chi2=dev,
        n_bins=n_bins,
        duration_s=dur,
        bin_ps=bin_ps,
        assumptions=tuple(assumptions),
        warnings=tuple(warn),
    )
