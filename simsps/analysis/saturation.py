"""Saturation curve ``I(P) = A (1 - exp(-P / Psat)) + B P`` (seed eq. 1).

Weighted least squares: with ``stderr`` given those are the weights (absolute); with
``duration_s`` given the counts are taken as rates measured over that time, so each point's
Poisson error is ``sqrt(I / duration)``; with neither, equal weights and the covariance
scaled by the residuals.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.optimize import curve_fit

from ._common import AnalysisError, Warnings


@dataclasses.dataclass(frozen=True)
class SaturationFit:
    amplitude: float  # A (units of the counts)
    amplitude_stderr: float
    p_sat: float  # units of the powers
    p_sat_stderr: float
    linear: float  # B
    linear_stderr: float
    chi2_per_dof: float
    warnings: tuple[str, ...] = ()

    def model(self, power):
        p = np.asarray(power, float)
        return self.amplitude * -np.expm1(-p / self.p_sat) + self.linear * p

    def plot(self, power, counts, ax=None, **kw):
        from .plots import plot_saturation

        return plot_saturation(self, power, counts, ax=ax, **kw)


def saturation_model(p, a, psat, b):
    return a * -np.expm1(-p / psat) + b * p


def fit_saturation(
    power, counts, *, stderr=None, duration_s: float | None = None, linear: bool = True
) -> SaturationFit:
    """Fit the saturation curve; ``linear=False`` fixes ``B = 0``."""
    p = np.asarray(power, float)
    y = np.asarray(counts, float)
    if p.shape != y.shape or p.ndim != 1:
        raise AnalysisError("power and counts must be 1D arrays of the same length")
    n_par = 3 if linear else 2
    if len(p) < n_par + 1:
        raise AnalysisError(f"{len(p)} points: need at least {n_par + 1} to fit and judge")
    if np.any(p <= 0) or not np.all(np.isfinite(p)) or not np.all(np.isfinite(y)):
        raise AnalysisError("powers must be positive and every value finite")
    if stderr is not None:
        s = np.asarray(stderr, float)
    elif duration_s is not None:
        s = np.sqrt(np.maximum(y, 1.0) / float(duration_s))
    else:
        s = None
    i = np.argsort(p)
    a0 = float(y[i][-1])
    psat0 = (
        float(np.interp(0.63 * a0, y[i], p[i]))
        if np.all(np.diff(y[i]) > 0)
        else float(np.median(p))
    )
    f = saturation_model if linear else (lambda x, a, ps: saturation_model(x, a, ps, 0.0))
    p0 = [a0, max(psat0, 1e-12)] + ([0.0] if linear else [])
    lower = [0.0, 0.0] + ([-np.inf] if linear else [])
    try:
        par, cov = curve_fit(
            f,
            p,
            y,
            p0=p0,
            sigma=s,
            absolute_sigma=s is not None,
            bounds=(lower, np.inf),
            maxfev=20000,
        )
    except (RuntimeError, ValueError) as e:
        raise AnalysisError(f"the saturation fit did not converge: {e}") from None
    err = np.sqrt(np.diag(cov))
    resid = (y - f(p, *par)) / (s if s is not None else 1.0)
    dof = max(len(p) - n_par, 1)
    chi2 = float(np.sum(resid**2) / dof)
    if s is not None and chi2 > 1:  # errors that account for a fit worse than its weights
        err = err * np.sqrt(chi2)
    warn = Warnings()
    from scipy import stats

    warn.add(
        s is not None and stats.chi2.sf(chi2 * dof, dof) < 1e-3,
        f"poor fit: chi2/dof {chi2:.3g}; eq. 1 does not describe these rates (errors scaled)",
    )
    warn.add(not err[1] < par[1], f"Psat = {par[1]:.3g} is not determined (error {err[1]:.3g})")
    warn.add(
        par[1] > 2 * p.max(),
        f"Psat = {par[1]:.3g} lies beyond the highest power "
        f"({p.max():.3g}): the curve does not saturate in range",
    )
    if linear:
        warn.add(
            par[2] + 3 * err[2] < 0,
            f"negative linear term B = {par[2]:.3g} +- "
            f"{err[2]:.2g}: count rates fall at high power "
            "(bleaching or blinking?)",
        )
    return SaturationFit(
        amplitude=float(par[0]),
        amplitude_stderr=float(err[0]),
        p_sat=float(par[1]),
        p_sat_stderr=float(err[1]),
        linear=float(par[2]) if linear else 0.0,
        linear_stderr=float(err[2]) if linear else 0.0,
        chi2_per_dof=chi2,
        warnings=tuple(warn),
    )


@dataclasses.dataclass(frozen=True)
class PowerSeries:
    power: np.ndarray
    rate_cps: np.ndarray
    rate_stderr_cps: np.ndarray
    saturation: SaturationFit
    g2_zero: np.ndarray  # background-corrected, per power
    g2_zero_stderr: np.ndarray
    warnings: tuple[str, ...] = ()


def power_series(streams, power, *, background_cps=None, **pulsed_kw) -> PowerSeries:
    """Saturation fit and background-corrected g2(0) of acquisitions at several powers
    (seed Fig. 5a, 5b); ``pulsed_kw`` go to :func:`simsps.analysis.pulsed_g2`.

    ``background_cps`` (one number or one per power, e.g. measured on an empty spot at each
    power) is taken off the count rates before the fit and given to ``pulsed_g2`` as the
    background; without it the rates are raw and g2 uses the inter-peak floor."""
    from .g2_pulsed import pulsed_g2

    streams = list(streams)
    p = np.asarray(power, float)
    if len(streams) != len(p):
        raise AnalysisError(f"{len(streams)} streams for {len(p)} powers")
    dur = np.array([s.duration_s for s in streams])
    n = np.array([len(s) for s in streams], float)
    rate, err = n / dur, np.sqrt(np.maximum(n, 1.0)) / dur
    if background_cps is not None:
        bg = np.broadcast_to(np.asarray(background_cps, float), p.shape)
        if np.any(bg < 0) or not np.all(np.isfinite(bg)):
            raise AnalysisError(f"background_cps = {background_cps!r}: give cps >= 0")
        rate = rate - bg
        g2 = [pulsed_g2(s, background=float(b), **pulsed_kw) for s, b in zip(streams, bg)]
    else:
        g2 = [pulsed_g2(s, **pulsed_kw) for s in streams]
    sat = fit_saturation(p, rate, stderr=err)
    warn = list(sat.warnings) + [f"g2 at {x:g}: {w}" for x, g in zip(p, g2) for w in g.warnings]
    return PowerSeries(
        power=p,
        rate_cps=rate,
        rate_stderr_cps=err,
        saturation=sat,
        g2_zero=np.array([g.g2_zero_corrected for g in g2]),
        g2_zero_stderr=np.array([g.g2_zero_stderr for g in g2]),
        warnings=tuple(warn),
    )
