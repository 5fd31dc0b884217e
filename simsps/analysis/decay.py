"""Fluorescence decays: microtime histograms with photon selection, and their fit by Poisson
maximum likelihood with 1 or 2 exponentials, a flat background and an optional IRF.

IRF choices for :func:`fit_decay`:

``None``
    tail fit: bins from ``fit_start_ns`` (default 1 ns after the histogram's peak) on, model
    ``bg + sum_k A_k exp(-(t - t_start) / tau_k)``; right when the lifetimes are much longer
    than the IRF (seed Fig. 4b/S5).
``"gaussian"``
    every bin from the start of the window, exponentials convolved with a Gaussian of
    fitted centre ``t0`` and width (``irf_fwhm_ps`` fixes it), as the jitter of two SPADs
    makes it (PHYSICS.md section 3).
an array
    a measured IRF on the same microtime bins (normalised here); convolved by FFT; the
    model's time zero is that of the IRF.

The decay of earlier pulses is carried into every period (excitation every pulse, a
decay that may not finish within one): the Gaussian and measured-IRF models are periodic
sums over all earlier pulses; in a tail fit it only rescales each component, since the
tail of the pulse before has the same shape on [t_start, T). Model counts are integrals
over each bin (the ex-Gaussian's CDF), not values at bin centres. Uncertainties come from
the expected Fisher information of the Poisson likelihood at the optimum,
``J^T diag(1/mu) J``, scaled by ``sqrt(deviance / dof)`` when the fit is worse than
Poisson noise allows.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import optimize

from ._common import (
    AnalysisError,
    Warnings,
    central_jacobian,
    check_stream,
    interval,
    require_t3,
)
from ._shapes import periodic_bin_integrals


@dataclasses.dataclass(frozen=True)
class Decay:
    time_ns: np.ndarray  # bin starts
    counts: np.ndarray
    resolution_ns: float
    period_ns: float
    n_photons: int
    afterpulse_counts: np.ndarray | None = None  # expected afterpulses per bin (their law)

    def rebinned(self, factor: int) -> "Decay":
        """The histogram on bins ``factor`` times wider (a partial last bin is dropped)."""
        f = int(factor)
        if f < 1:
            raise AnalysisError(f"factor = {factor!r} must be a positive integer")
        n = len(self.counts) // f * f
        if n == 0:
            raise AnalysisError(f"factor = {factor!r} exceeds the {len(self.counts)} bins")
        ap = (
            None
            if self.afterpulse_counts is None
            else self.afterpulse_counts[:n].reshape(-1, f).sum(axis=1)
        )
        return dataclasses.replace(
            self,
            time_ns=self.time_ns[:n:f],
            counts=self.counts[:n].reshape(-1, f).sum(axis=1),
            resolution_ns=self.resolution_ns * f,
            afterpulse_counts=ap,
        )

    def plot(self, ax=None, fit=None, **kw):
        from .plots import plot_decay

        return plot_decay(self, fit=fit, ax=ax, **kw)


@dataclasses.dataclass(frozen=True)
class DecayFit:
    lifetimes_ns: np.ndarray  # ascending
    lifetimes_stderr_ns: np.ndarray
    amplitudes: (
        np.ndarray
    )  # photons in each component (tail fit: its integral from the fit start on)
    amplitudes_stderr: np.ndarray
    background_per_bin: float
    background_stderr: float
    irf: str
    irf_centre_ns: float | None
    irf_fwhm_ns: float | None
    fit_range_ns: tuple[float, float]
    model_counts: np.ndarray  # on the fitted bins
    fitted_time_ns: np.ndarray
    reduced_deviance: float  # Poisson deviance per degree of freedom (~1 for a good fit)
    warnings: tuple[str, ...] = ()

    @property
    def fractions(self) -> np.ndarray:
        return self.amplitudes / self.amplitudes.sum()

    def interval(self, k: int = 0, level: float = 0.95) -> tuple[float, float]:
        return interval(self.lifetimes_ns[k], self.lifetimes_stderr_ns[k], None, level)


def decay(
    stream,
    *,
    channels=None,
    window_s: tuple[float, float] | None = None,
    mask: np.ndarray | None = None,
    afterpulsing="auto",
) -> Decay:
    """Microtime histogram over one laser period (all channels unless ``channels``), of the
    photons in ``window_s`` = (start, stop) seconds and/or a boolean ``mask`` (e.g. from
    :func:`simsps.analysis.traces.photon_mask`).

    ``afterpulsing``: the detectors' afterpulse law ("auto": measured on the whole stream
    with :func:`~simsps.analysis.afterpulsing`; an ``Afterpulsing`` result; None: none).
    Afterpulses repeat their parents' microtimes ``dead + Exp(tau_ap)`` later, wrapped into
    the period: a sloped hump that a flat background cannot describe (it biases lifetimes
    by ~1 % at the presets' 0.7 %). Their expected counts per bin, ``p`` times the parents'
    histogram convolved with the wrapped delay law per detector, go with the decay and
    into its fit."""
    check_stream(stream)
    require_t3(stream, "the decay (a microtime histogram)")
    sel = np.ones(len(stream), bool)
    if channels is not None:
        chans = np.atleast_1d(channels)
        sel &= (stream.channel == chans[0]) if len(chans) == 1 else np.isin(stream.channel, chans)
    if window_s is not None:
        t = stream.sync * (stream.sync_period_ps * 1e-12)
        lo, hi = window_s
        if not lo < hi:
            raise AnalysisError(f"window_s = {window_s!r}: start must be before stop")
        sel &= (t >= lo) & (t < hi)
    if mask is not None:
        mask = np.asarray(mask, bool)
        if mask.shape != sel.shape:
            raise AnalysisError(f"mask has {mask.size} entries for {len(stream)} photons")
        sel &= mask
    if int(sel.sum()) == 0:
        raise AnalysisError("no photons selected for the decay")
    dt = stream.dtime[sel].astype(np.int64)
    # one period of bins, more if the card's range holds later photons (none dropped)
    n_bins = max(int(math.ceil(stream.sync_period_ps / stream.resolution_ps)), int(dt.max()) + 1)
    counts = np.bincount(dt, minlength=n_bins)
    res_ns = stream.resolution_ps / 1e3
    ap_counts = _afterpulse_counts(stream, sel, n_bins, afterpulsing)
    return Decay(
        time_ns=np.arange(len(counts)) * res_ns,
        counts=counts,
        resolution_ns=res_ns,
        period_ns=stream.sync_period_ps / 1e3,
        n_photons=int(sel.sum()),
        afterpulse_counts=ap_counts,
    )


def _afterpulse_counts(stream, sel, n_bins: int, afterpulsing) -> np.ndarray | None:
    from .afterpulsing import Afterpulsing
    from .afterpulsing import afterpulsing as measure

    if afterpulsing is None or afterpulsing is False:
        return None
    if afterpulsing == "auto":
        present = np.flatnonzero(np.bincount(stream.channel))
        if len(present) < 2:
            return None
        try:
            afterpulsing = measure(stream, channels=(int(present[0]), int(present[1])))
        except AnalysisError:
            return None
    if not isinstance(afterpulsing, Afterpulsing):
        raise AnalysisError(
            f"afterpulsing = {afterpulsing!r}: 'auto', None or an Afterpulsing result"
        )
    res = float(stream.resolution_ps)
    n = max(int(round(stream.sync_period_ps / res)), 1)  # bins in one period
    parents = {
        det.channel: np.bincount(
            stream.dtime[sel & (stream.channel == det.channel)].astype(np.int64) % n, minlength=n
        )[:n]
        for det in afterpulsing.detectors
    }
    return afterpulse_counts(parents, afterpulsing, res, n_bins)


def afterpulse_counts(parents: dict, afterpulsing, resolution_ps: float, n_bins: int):
    """Expected afterpulses per microtime bin (``n_bins`` bins of ``resolution_ps``) of the
    detectors of ``afterpulsing``: ``parents[channel]`` the microtime histogram over one
    period of that detector's photons, convolved with its delay law wrapped into the period
    and times ``p``."""
    res = float(resolution_ps)
    out = np.zeros(n_bins)
    for det in afterpulsing.detectors:
        if det.probability <= 0:
            continue
        par = np.asarray(parents[det.channel], np.float64)
        n = len(par)
        reach = det.dead_time_ns * 1e3 + 40 * det.time_constant_ns * 1e3
        periods = int(math.ceil(reach / (n * res))) + 1
        law = det.delay_weights(res, n * periods)  # p * P(delay in bin), over many periods
        wrapped = law.reshape(periods, n).sum(axis=0)
        conv = np.fft.irfft(np.fft.rfft(par) * np.fft.rfft(wrapped), n)
        out[:n] += np.maximum(conv, 0.0)
    return out


def fit_decay(
    d: Decay,
    *,
    n_exp: int = 1,
    background: bool = True,
    irf=None,
    irf_fwhm_ps: float | None = None,
    fit_start_ns: float | None = None,
    fit_stop_ns: float | None = None,
    tau_guess_ns=None,
    afterpulses: bool = True,
) -> DecayFit:
    """Poisson maximum-likelihood fit of ``d`` (see the module doc for ``irf``); the
    decay's expected afterpulses (if it has them and ``afterpulses``) are a fixed part of
    the model."""
    if n_exp not in (1, 2):
        raise AnalysisError(f"n_exp = {n_exp!r}: 1 or 2 exponentials")
    t = d.time_ns + d.resolution_ns / 2
    y = d.counts.astype(np.float64)
    peak = float(t[np.argmax(y)])
    mode = "tail" if irf is None else ("gaussian" if isinstance(irf, str) else "measured")
    if isinstance(irf, str) and irf != "gaussian":
        raise AnalysisError(f"irf {irf!r}: None, 'gaussian' or a measured histogram")
    start = fit_start_ns if fit_start_ns is not None else (peak + 1.0 if mode == "tail" else 0.0)
    stop = fit_stop_ns if fit_stop_ns is not None else d.period_ns
    sel = (t >= start) & (t < stop)
    if sel.sum() < 2 * n_exp + 3:
        raise AnalysisError(f"too few bins in the fit range {start:g} .. {stop:g} ns")
    x, y = t[sel], y[sel]
    if y.sum() < 10 * n_exp:
        raise AnalysisError(f"only {int(y.sum())} photons in the fit range: too few to fit")
    w = d.resolution_ns
    irf_hist = None
    if mode == "measured":
        irf_hist = np.asarray(irf, float)
        if irf_hist.shape != d.counts.shape or irf_hist.sum() <= 0:
            raise AnalysisError("a measured IRF must be a histogram on the decay's bins")
        irf_hist = irf_hist / irf_hist.sum()

    def shapes(p, x=x, w=w, coarse=1):
        """Unit-amplitude bin integrals on bins of width ``w`` starting at ``x - w / 2``
        (``coarse`` fine bins each: the start search runs on summed bins)."""
        taus = np.exp(p[:n_exp])
        if mode == "tail":  # the sum of fine-bin integrals is the coarse-bin integral
            return [np.exp(-(x - start) / tau) * (1 - math.exp(-w / tau)) for tau in taus]
        if mode == "gaussian":  # bin integrals, this pulse and every earlier one
            t0 = p[2 * n_exp + 1]
            sig = (irf_fwhm_ps / 2354.82) if irf_fwhm_ps else math.exp(p[2 * n_exp + 2])
            edges = np.append(x - w / 2, x[-1] + w / 2)
            return [periodic_bin_integrals(edges, tau, t0, sig, d.period_ns) for tau in taus]
        out = []
        for tau in taus:  # periodic convolution of the bin-integrated exponential with the IRF
            e = np.exp(-d.time_ns / tau) * (1 - math.exp(-d.resolution_ns / tau))
            e = e / (1 - math.exp(-d.period_ns / tau))
            full = np.fft.irfft(np.fft.rfft(e) * np.fft.rfft(irf_hist), len(e))[sel]
            out.append(full[: len(x) * coarse].reshape(len(x), coarse).sum(axis=1))
        return out

    fixed = d.afterpulse_counts[sel] if afterpulses and d.afterpulse_counts is not None else 0.0

    def mu(p, x=x, w=w, coarse=1, fixed=fixed):
        amps = np.exp(p[n_exp : 2 * n_exp])
        m = sum(a * s for a, s in zip(amps, shapes(p, x, w, coarse)))
        bg = math.exp(p[2 * n_exp]) * coarse if background else 0.0
        return m + bg + fixed

    def nll(p, y=y, **kw):
        m = np.maximum(mu(p, **kw), 1e-300)
        return float(np.sum(m - y * np.log(m)))

    # starting values: lifetimes from the mean delay, amplitudes from the counts
    tail_bg = float(np.median(y[-max(5, len(y) // 10) :])) if background else 0.0
    mean_delay = max(
        float(
            np.sum((x - x[0]) * np.maximum(y - tail_bg, 0))
            / max(np.sum(np.maximum(y - tail_bg, 0)), 1)
        ),
        2 * w,
    )
    if tau_guess_ns is not None:
        taus0 = list(np.atleast_1d(tau_guess_ns).astype(float))
        if len(taus0) != n_exp or min(taus0) <= 0:
            raise AnalysisError(f"tau_guess_ns = {tau_guess_ns!r}: give {n_exp} positive lifetimes")
    else:
        taus0 = [mean_delay] if n_exp == 1 else [mean_delay / 4, mean_delay * 1.5]
    total = max(y.sum() - tail_bg * len(y), 10.0)
    p0 = [math.log(v) for v in taus0] + [math.log(total / n_exp)] * n_exp
    p0.append(math.log(max(tail_bg, 0.1)))
    if mode == "gaussian":
        p0.append(peak - 0.3)
        if not irf_fwhm_ps:
            p0.append(math.log(0.15))
    p0 = np.array(p0)
    # a box the physics fits in: lifetimes from a tenth of a bin to 1000 periods, the IRF
    # within a period of the peak and narrower than a quarter period
    big = math.log(max(y.sum(), 10.0) * 1e3)
    lo_b = [math.log(w / 10)] * n_exp + [math.log(1e-3)] * n_exp + [math.log(1e-6)]
    hi_b = [math.log(1e3 * d.period_ns)] * n_exp + [big] * n_exp + [big]
    if mode == "gaussian":
        lo_b.append(peak - d.period_ns)
        hi_b.append(peak + d.period_ns)
        if not irf_fwhm_ps:
            lo_b.append(math.log(w / 20))
            hi_b.append(math.log(d.period_ns / 4))
    lo_b, hi_b = np.array(lo_b), np.array(hi_b)
    p0 = np.clip(p0, lo_b + 1e-9, hi_b - 1e-9)

    def deviance_residuals(p):  # sum of squares = Poisson deviance: least squares is ML
        m = np.maximum(mu(p), 1e-300)
        dev = 2 * (np.where(y > 0, y * np.log(np.maximum(y, 1e-300) / m), 0.0) - (y - m))
        return np.sign(y - m) * np.sqrt(np.maximum(dev, 0.0))

    # a few simplex steps make the start robust (on bins summed to a few hundred: the same
    # likelihood surface, coarser), trust-region least squares converges on the full bins
    c = max(1, len(y) // 300)
    g = len(y) // c
    summed = dict(
        x=x[: g * c : c] + (w * (c - 1) / 2 if mode == "gaussian" else 0.0),
        w=w * c,
        coarse=c,
        y=y[: g * c].reshape(g, c).sum(axis=1),
        fixed=(fixed[: g * c].reshape(g, c).sum(axis=1) if np.ndim(fixed) else 0.0),
    )
    # the tail model is smooth enough that a short simplex run suffices before the polish;
    # the IRF models (periodic ex-Gaussians) need the longer one to stay clear of overflow
    simplex = (
        dict(maxiter=15 * len(p0), xatol=1e-3, fatol=1e-4)
        if mode == "tail"
        else dict(maxiter=40 * len(p0), xatol=1e-4, fatol=1e-6)
    )
    r = optimize.minimize(
        lambda q: nll(q, **summed),
        p0,
        method="Nelder-Mead",
        bounds=list(zip(lo_b, hi_b)),
        options=simplex,
    )
    try:
        r = optimize.least_squares(
            deviance_residuals,
            np.clip(r.x, lo_b + 1e-12, hi_b - 1e-12),
            bounds=(lo_b, hi_b),
            method="trf",
            x_scale="jac",
            xtol=1e-10,
            ftol=1e-12,
            gtol=1e-10,
        )
    except ValueError as e:
        raise AnalysisError(f"the decay fit did not converge: {e}") from None
    p = r.x
    if not np.all(np.isfinite(p)):
        raise AnalysisError("the decay fit did not converge")

    # Fisher information in natural parameters (tau_k, A_k, bg, [t0, sigma])
    nat = _natural(p, n_exp, background, mode, irf_fwhm_ps)

    def mu_nat(q):
        return mu(_to_internal(q, n_exp, mode, irf_fwhm_ps))

    m = mu(p)
    jac = central_jacobian(mu_nat, nat)
    if not background:
        jac[:, 2 * n_exp] = 0.0
    fisher = jac.T @ (jac / np.maximum(m, 1e-12)[:, None])
    keep = np.any(jac != 0, axis=0)
    cov = np.zeros_like(fisher)
    try:
        cov[np.ix_(keep, keep)] = np.linalg.inv(fisher[np.ix_(keep, keep)])
    except np.linalg.LinAlgError:
        raise AnalysisError("the decay fit is degenerate (parameters not identifiable)") from None
    dev = 2 * np.sum(np.where(y > 0, y * np.log(np.maximum(y, 1e-300) / m), 0) - (y - m))
    dof = max(len(y) - len(nat), 1)
    red = float(dev / dof)
    err = np.sqrt(np.maximum(np.diag(cov), 0)) * math.sqrt(max(red, 1.0))
    order = np.argsort(nat[:n_exp])
    warn = Warnings()
    from scipy import stats

    warn.add(
        stats.chi2.sf(dev, dof) < 1e-3,
        f"poor fit: Poisson deviance {red:.3g} per degree of freedom over {len(y)} bins "
        f"(errors scaled by {math.sqrt(max(red, 1.0)):.3g}); more components or another "
        "IRF model may be needed",
    )
    longest = float(nat[:n_exp].max())
    warn.add(
        longest > d.period_ns / 20,
        f"the decay does not finish within the period (lifetime {longest:.3g} ns, period "
        f"{d.period_ns:.4g} ns): "
        + (
            "the fit sums the decay of all earlier pulses"
            if mode != "tail"
            else "a tail fit only sees it rescaled; fit with irf='gaussian' to see the whole decay"
        ),
    )
    for tau, e in zip(nat[:n_exp], err[:n_exp]):
        warn.add(
            not e < tau,
            f"the lifetime {tau:.3g} ns is not determined by the data (error {e:.3g} ns)",
        )
    warn.add(y.sum() < 100, f"only {int(y.sum())} photons in the fit range")
    return DecayFit(
        lifetimes_ns=nat[:n_exp][order],
        lifetimes_stderr_ns=err[:n_exp][order],
        amplitudes=nat[n_exp : 2 * n_exp][order],
        amplitudes_stderr=err[n_exp : 2 * n_exp][order],
        background_per_bin=float(nat[2 * n_exp]) if background else 0.0,
        background_stderr=float(err[2 * n_exp]) if background else 0.0,
        irf=mode,
        irf_centre_ns=float(nat[2 * n_exp + 1]) if mode == "gaussian" else None,
        irf_fwhm_ns=(irf_fwhm_ps / 1e3 if irf_fwhm_ps else float(nat[2 * n_exp + 2]) * 2.35482)
        if mode == "gaussian"
        else None,
        fit_range_ns=(float(start), float(stop)),
        model_counts=m,
        fitted_time_ns=x,
        reduced_deviance=red,
        warnings=tuple(warn),
    )


def _natural(p, n_exp, background, mode, irf_fwhm_ps):
    q = list(np.exp(p[: 2 * n_exp])) + [math.exp(p[2 * n_exp]) if background else 0.0]
    if mode == "gaussian":
        q.append(p[2 * n_exp + 1])
        if not irf_fwhm_ps:
            q.append(math.exp(p[2 * n_exp + 2]))
    return np.array(q, float)


def _to_internal(q, n_exp, mode, irf_fwhm_ps):
    p = list(np.log(np.maximum(q[: 2 * n_exp], 1e-300)))
    p.append(math.log(max(q[2 * n_exp], 1e-300)))
    if mode == "gaussian":
        p.append(q[2 * n_exp + 1])
        if not irf_fwhm_ps:
            p.append(math.log(max(q[2 * n_exp + 2], 1e-300)))
    return np.array(p)
