"""Emission spectra: centre emission wavelength (CEW) and FWHM of a line, and its drift.

``fit_spectrum`` fits counts per pixel with a Gaussian line in *energy* on a flat background
by Poisson maximum likelihood (pixels are narrow: the model is evaluated at pixel centres,
with the Jacobian of nm -> eV); errors from the inverse Fisher information.
``cew_drift`` fits every frame and a straight line CEW(t) by weighted least squares.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import stats
from scipy.optimize import minimize

from ..params.sample import HC_EV_NM
from ._common import AnalysisError, Warnings, central_jacobian

__all__ = ["SpectrumFit", "fit_spectrum", "CewDrift", "cew_drift"]

_FWHM = 2.0 * math.sqrt(2.0 * math.log(2.0))


@dataclasses.dataclass(frozen=True)
class SpectrumFit:
    cew_nm: float  # wavelength of the line's peak (its centre in energy)
    cew_stderr_nm: float
    fwhm_nm: float  # full width at half maximum, in wavelength
    fwhm_stderr_nm: float
    fwhm_mev: float
    photons: float  # counts in the line
    background_per_pixel: float
    reduced_deviance: float = float("nan")  # Poisson deviance per degree of freedom
    warnings: tuple[str, ...] = ()

    def model(self, wavelength_nm):
        return _model(np.asarray(wavelength_nm, float), self._params)

    _params: tuple = dataclasses.field(default=(), repr=False)


def _model(lam, p):
    amp, e0, sigma, bg = p
    e = HC_EV_NM / lam
    # photons per pixel of width dlam: amp x gaussian(E) x |dE/dlam| x dlam
    dlam = np.gradient(lam)
    return (
        amp
        * np.exp(-0.5 * ((e - e0) / sigma) ** 2)
        / (sigma * math.sqrt(2 * math.pi))
        * (HC_EV_NM / lam**2)
        * dlam
        + bg
    )


def fit_spectrum(wavelength_nm, counts) -> SpectrumFit:
    """CEW and FWHM of one spectrum (counts per pixel at pixel-centre wavelengths)."""
    lam = np.asarray(wavelength_nm, float)
    y = np.asarray(counts, float)
    if lam.ndim != 1 or lam.shape != y.shape or len(lam) < 8:
        raise AnalysisError(
            "a spectrum needs matching 1-D wavelength and count arrays (at least 8 pixels)"
        )
    if np.any(np.diff(lam) <= 0) or not np.all(np.isfinite(y)) or np.any(y < 0):
        raise AnalysisError("wavelengths must increase and counts be finite and >= 0")
    bg0 = float(np.median(np.r_[y[: len(y) // 10 + 1], y[-(len(y) // 10 + 1) :]]))
    excess = np.clip(y - bg0, 0, None)
    if excess.sum() < 25:
        raise AnalysisError("no line above the background in this spectrum")
    e = HC_EV_NM / lam
    e0 = float(np.average(e, weights=excess))
    sig0 = max(float(np.sqrt(np.average((e - e0) ** 2, weights=excess))), 1e-3)
    x0 = np.array([math.log(excess.sum()), e0, math.log(sig0), math.log(max(bg0, 0.1))])

    def unpack(x):
        return (math.exp(x[0]), x[1], math.exp(x[2]), math.exp(x[3]))

    def nll(x):
        mu = _model(lam, unpack(x))
        return float(np.sum(mu - y * np.log(mu)))

    res = minimize(
        nll,
        x0,
        method="Nelder-Mead",
        options=dict(xatol=1e-9, fatol=1e-6, maxiter=20000, maxfev=20000),
    )
    res = minimize(nll, res.x, method="BFGS")
    amp, e0, sigma, bg = p = unpack(res.x)
    # Fisher information of (amp, e0, sigma, bg) for Poisson counts: J^T diag(1/mu) J
    mu = _model(lam, p)
    jac = central_jacobian(lambda q: _model(lam, q), p, floor=1e-6)
    try:
        cov = np.linalg.inv(jac.T @ (jac / mu[:, None]))
    except np.linalg.LinAlgError:
        raise AnalysisError("the line fit is degenerate (no line in the window?)") from None
    half = _FWHM * sigma / 2
    fwhm_nm = HC_EV_NM / (e0 - half) - HC_EV_NM / (e0 + half)
    d_cew = HC_EV_NM / e0**2
    # FWHM in nm depends on e0 and sigma: gradient by the chain rule
    g_e0 = -HC_EV_NM / (e0 - half) ** 2 + HC_EV_NM / (e0 + half) ** 2
    g_s = (_FWHM / 2) * (HC_EV_NM / (e0 - half) ** 2 + HC_EV_NM / (e0 + half) ** 2)
    var_f = g_e0**2 * cov[1, 1] + g_s**2 * cov[2, 2] + 2 * g_e0 * g_s * cov[1, 2]
    dev = 2 * float(np.sum(np.where(y > 0, y * np.log(np.maximum(y, 1e-300) / mu), 0) - (y - mu)))
    dof = max(len(y) - 4, 1)
    warn = Warnings()
    warn.add(
        stats.chi2.sf(dev, dof) < 1e-3,
        f"poor fit: Poisson deviance {dev / dof:.3g} per "
        "degree of freedom (not one Gaussian line?)",
    )
    return SpectrumFit(
        cew_nm=float(HC_EV_NM / e0),
        cew_stderr_nm=float(d_cew * math.sqrt(cov[1, 1])),
        fwhm_nm=float(fwhm_nm),
        fwhm_stderr_nm=math.sqrt(max(var_f, 0.0)),
        fwhm_mev=_FWHM * sigma * 1e3,
        photons=amp,
        background_per_pixel=bg,
        reduced_deviance=dev / dof,
        warnings=tuple(warn),
        _params=tuple(p),
    )


@dataclasses.dataclass(frozen=True)
class CewDrift:
    time_s: np.ndarray
    fits: tuple[SpectrumFit, ...]
    slope_nm_per_hour: float  # d CEW / dt (negative: blue shift)
    slope_stderr_nm_per_hour: float
    scatter_nm: float  # rms of the CEWs about the line (spectral diffusion + noise)

    @property
    def cew_nm(self) -> np.ndarray:
        return np.array([f.cew_nm for f in self.fits])

    def shift_nm(self, hours: float = 1.0) -> tuple[float, float]:
        """Blue shift (nm, positive towards the blue) over ``hours``, with its stderr."""
        return -self.slope_nm_per_hour * hours, self.slope_stderr_nm_per_hour * hours


def cew_drift(frames) -> CewDrift:
    """Fit every frame of a :class:`~simsps.samples.spectra.SpectrumFrames` and the CEW trend.

    The line's scatter between frames (spectral diffusion) exceeds the fit errors, so the
    trend's stderr comes from the residual scatter, not from the per-frame errors."""
    t = np.asarray(frames.time_s, float)
    if len(t) < 3:
        raise AnalysisError("a drift needs at least 3 frames")
    fits = tuple(fit_spectrum(frames.wavelength_nm, c) for c in frames.counts)
    y = np.array([f.cew_nm for f in fits])
    h = t / 3600.0
    a = np.vstack([h, np.ones_like(h)]).T
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    resid = y - a @ coef
    s2 = float(resid @ resid) / max(len(y) - 2, 1)
    cov = s2 * np.linalg.inv(a.T @ a)
    return CewDrift(
        time_s=t,
        fits=fits,
        slope_nm_per_hour=float(coef[0]),
        slope_stderr_nm_per_hour=float(math.sqrt(cov[0, 0])),
        scatter_nm=float(math.sqrt(s2)),
    )
