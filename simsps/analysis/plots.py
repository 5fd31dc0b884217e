"""Matplotlib figures of the estimators, in the look of the seed paper's panels.

Each function draws on ``ax`` (a new figure when ``None``) and returns the axes. Units are
in the axis labels.
"""

from __future__ import annotations

import numpy as np


def _axes(ax, figsize=(4.5, 3.2)):
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def _warn_note(ax, warnings, y=0.02):
    if warnings:
        ax.text(
            0.98,
            y,
            f"{len(warnings)} warning{'s' if len(warnings) > 1 else ''} (see .warnings)",
            transform=ax.transAxes,
            ha="right",
            va="bottom",
            fontsize=6,
            color="C3",
        )


def plot_pulsed_g2(r, ax=None, *, color="C0", label=None, peaks: int | None = 3):
    """Coincidences vs delay (seed Fig. 4c) in bins chosen for the counts, the accidental
    floor that was subtracted (dashed), raw and corrected g2(0) in the corner."""
    ax = _axes(ax)
    half = (peaks + 0.5) * r.period_ns if peaks else np.inf
    sel = np.abs(r.delay_ns) <= half
    ax.fill_between(
        r.delay_ns[sel], r.counts[sel], step="mid", color=color, alpha=0.8, lw=0, label=label
    )
    floor = r.floor_per_peak * r.bin_ns / r.period_ns
    ax.axhline(floor, color="k", ls="--", lw=0.6)
    ax.set_xlabel("delay (ns)")
    ax.set_ylabel(f"coincidences / {r.bin_ns:.3g} ns")
    ax.text(
        0.02,
        0.97,
        f"$g^{{(2)}}(0)$ = {r.g2_zero:.3f} raw\n"
        f"{r.g2_zero_corrected:.3f} $\\pm$ {r.g2_zero_stderr:.3f} corrected "
        f"({r.background})",
        transform=ax.transAxes,
        va="top",
        fontsize=8,
    )
    _warn_note(ax, r.warnings)
    return ax


def plot_cw_g2(r, ax=None, *, color="C0", label=None):
    """CW g2 around zero: the background-corrected histogram and the fitted dip (jitter
    included), g2(0) with its error in the corner."""
    ax = _axes(ax)
    t_ns = r.tau_ps / 1e3
    ax.plot(t_ns, r.g2_corrected, drawstyle="steps-mid", color=color, lw=0.7, label=label)
    ax.plot(t_ns, r.model, color="k", lw=1.0)
    ax.axhline(r.shoulder, color="k", ls=":", lw=0.6)
    ax.set_xlabel("delay (ns)")
    ax.set_ylabel("$g^{(2)}(\\tau)$" + (" corrected" if r.background != "none" else ""))
    lo, hi = r.interval()
    ax.text(
        0.02,
        0.97,
        f"$g^{{(2)}}(0)$ = {r.g2_zero:.3f} $\\pm$ {r.g2_zero_stderr:.3f}\n"
        f"95 %: [{lo:.3f}, {hi:.3f}]\n"
        f"dip {r.dip_time_ns:.2f} $\\pm$ {r.dip_time_stderr_ns:.2f} ns, "
        f"jitter $\\sigma$ {r.jitter_ps:.0f} ps{' (fit)' if r.jitter_fitted else ''}",
        transform=ax.transAxes,
        va="top",
        fontsize=8,
    )
    _warn_note(ax, r.warnings)
    return ax


def plot_g2_log(r, ax=None, *, color="C0", label=None, show_fit: bool = True):
    """g2 vs log delay with the bunching fit (seed Fig. 4d)."""
    ax = _axes(ax)
    ok = r.pairs > 0
    ax.errorbar(
        r.tau_s[ok],
        r.g2[ok],
        yerr=r.stderr[ok],
        fmt=".",
        ms=3,
        color=color,
        elinewidth=0.6,
        label=label,
    )
    ax.set_xscale("log")
    ax.axhline(1.0, color="0.6", lw=0.6)
    if show_fit and r.fit is not None:
        f = r.fit
        x = np.geomspace(f.fit_range_s[0], f.fit_range_s[1], 200)
        ax.plot(
            x,
            f.model(x),
            color="k",
            lw=1,
            label=f"{f.baseline:.3f} + {f.amplitude:.3f} exp(-τ/{f.tau_c_s * 1e6:.1f} µs), "
            f"χ²/dof {f.chi2_per_dof:.2g}",
        )
        ax.legend(fontsize=7, frameon=False)
    ax.set_xlabel("delay τ (s)")
    ax.set_ylabel("$g^{(2)}(τ)$")
    _warn_note(ax, r.warnings)
    return ax


def _rebin_for_counts(counts, min_peak: float = 25.0, max_factor: int = 64) -> int:
    """Whole bins merged so the fullest bins hold ``min_peak`` counts (at most
    ``max_factor``): a histogram the eye can read at low counts."""
    factor = 1
    c = np.asarray(counts, float)
    while factor < max_factor:
        n = len(c) // factor
        merged = c[: n * factor].reshape(n, factor).sum(axis=1)
        if n == 0 or np.sort(merged)[-max(1, n // 20) :].min() >= min_peak:
            break
        factor *= 2
    return factor


def plot_decay(d, fit=None, ax=None, *, color="C0", label=None):
    """Microtime histogram on a log scale, in bins merged for the counts, with the fitted
    model (seed Fig. 4b) and its fit quality."""
    ax = _axes(ax)
    k = _rebin_for_counts(d.counts)
    n = len(d.counts) // k
    counts = d.counts[: n * k].reshape(n, k).sum(axis=1)
    time = d.time_ns[: n * k].reshape(n, k)[:, 0] + 0.5 * k * d.resolution_ns
    ax.semilogy(
        time, np.maximum(counts, 0.5), drawstyle="steps-mid", color=color, lw=0.8, label=label
    )
    if fit is not None:
        taus = ", ".join(
            f"{t:.2f} ± {e:.2f} ns" for t, e in zip(fit.lifetimes_ns, fit.lifetimes_stderr_ns)
        )
        m = len(fit.model_counts) // k
        model = fit.model_counts[: m * k].reshape(m, k).sum(axis=1)
        mt = fit.fitted_time_ns[: m * k].reshape(m, k).mean(axis=1)
        ax.semilogy(
            mt, model, color="k", lw=1, label=f"τ = {taus}; deviance/dof {fit.reduced_deviance:.2g}"
        )
        ax.legend(fontsize=7, frameon=False)
        _warn_note(ax, fit.warnings)
    ax.set_xlabel("delay after sync (ns)")
    ax.set_ylabel(f"counts / {k * d.resolution_ns:.3g} ns")
    ax.set_ylim(bottom=0.5)
    return ax


def plot_trace(tr, levels=None, ax=None, *, color="C0", histogram: bool = True):
    """Intensity trace (counts per bin) with a side histogram (seed Fig. 4a)."""
    ax = _axes(ax, figsize=(7, 2.6))
    ax.plot(tr.time_s, tr.counts, color=color, lw=0.4)
    ax.set_xlabel("time (s)")
    ax.set_ylabel(f"counts / {tr.bin_s * 1e3:g} ms")
    ax.set_xlim(tr.time_s[0], tr.time_s[-1] + tr.bin_s)
    if levels is not None:
        ax.axhline(levels.threshold, color="k", ls="--", lw=0.7)
    if histogram:
        from mpl_toolkits.axes_grid1 import make_axes_locatable

        side = make_axes_locatable(ax).append_axes("right", size="18%", pad=0.05, sharey=ax)
        edges, h = tr.histogram(bins="auto")
        side.barh(0.5 * (edges[1:] + edges[:-1]), h, height=np.diff(edges), color=color, lw=0)
        side.set_xlabel("occurrences")
        side.tick_params(labelleft=False)
    return ax


def plot_flid(f, ax=None, *, cmap="viridis"):
    """FLID density: intensity vs lifetime (seed SI)."""
    ax = _axes(ax, figsize=(4, 3.4))
    ext = [
        f.lifetime_edges_ns[0],
        f.lifetime_edges_ns[-1],
        f.intensity_edges[0],
        f.intensity_edges[-1],
    ]
    im = ax.imshow(f.density, origin="lower", aspect="auto", extent=ext, cmap=cmap)
    ax.figure.colorbar(im, ax=ax, label="probability density")
    ax.set_xlabel("lifetime (ns)")
    ax.set_ylabel(f"counts / {f.bin_s * 1e3:g} ms")
    return ax


def plot_saturation(fit, power, counts, ax=None, *, color="C0", power_unit="P$_{sat}$"):
    """Count rate vs power with the saturation fit (seed Fig. 5a)."""
    ax = _axes(ax)
    ax.plot(power, np.asarray(counts) / 1e3, "o", color=color, ms=4)
    x = np.linspace(0, max(power) * 1.05, 200)
    ax.plot(
        x,
        fit.model(x) / 1e3,
        color="k",
        lw=1,
        label=f"P$_{{sat}}$ = {fit.p_sat:.2f} ± {fit.p_sat_stderr:.2f}",
    )
    ax.legend(fontsize=7, frameon=False)
    ax.set_xlabel(f"power ({power_unit})")
    ax.set_ylabel("count rate (kcps)")
    return ax


def plot_survival(s, ax=None, *, color="C0", label=None):
    """Percentage of NCs still emitting vs time (seed Fig. 2a)."""
    ax = _axes(ax)
    ax.plot(s.time_s / 60, 100 * s.fraction, color=color, lw=1.5, label=label)
    ax.fill_between(
        s.time_s / 60,
        100 * (s.fraction - s.fraction_stderr),
        100 * (s.fraction + s.fraction_stderr),
        color=color,
        alpha=0.2,
        lw=0,
    )
    ax.set_xlabel("time (min)")
    ax.set_ylabel("NCs still emitting (%)")
    ax.set_ylim(0, 105)
    return ax


def plot_spectrum(
    wavelength_nm, counts, fit=None, ax=None, *, color="C0", label=None, normalise: bool = False
):
    """Emission spectrum with its line fit (seed Fig. 3b, 2b)."""
    ax = _axes(ax)
    y = np.asarray(counts, float)
    scale = y.max() if normalise and y.max() > 0 else 1.0
    ax.plot(wavelength_nm, y / scale, color=color, lw=1, label=label)
    if fit is not None:
        ax.plot(wavelength_nm, fit.model(wavelength_nm) / scale, color="k", lw=0.8, ls="--")
        ax.text(
            0.98,
            0.97,
            f"CEW {fit.cew_nm:.1f} nm\nFWHM {fit.fwhm_nm:.1f} nm",
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=8,
        )
    ax.set_xlabel("wavelength (nm)")
    ax.set_ylabel("PL (norm.)" if normalise else "counts per pixel")
    return ax
