"""Seed Fig. 2: photostability. (a) NCs still emitting under the LED vs dilution, pristine
dashed; (b) the CEW of one NC at Psat over 1 h."""

from __future__ import annotations

import numpy as np

from ...analysis import cew_drift, survival
from ...analysis.plots import plot_spectrum, plot_survival
from .data import DILUTIONS
from .report import row


def fig_2a(data, fig):
    movies = data.widefield
    ax = fig.subplots()
    rows = []
    colors = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e"]
    for d, c in zip(DILUTIONS, colors):
        s = survival(movies[d])
        plot_survival(s, ax, color=c, label=f"Zn 1:{d:g}")
        if d <= 100:
            f, err = s.at(3600.0)
            rows.append(
                row(
                    f"fig2a_survival_1h_dilution_{d:g}",
                    "2a",
                    f"fraction emitting after 1 h, 1:{d:g}",
                    f,
                    err,
                    dataset="widefield",
                    how="survival(): NCs seen in frame 0 and "
                    "in a later frame at 1 h (5 sigma over empty spots)",
                )
            )
        else:
            rows.append(
                row(
                    "fig2a_bleach_time_min_dilution_200",
                    "2a",
                    "bleach time at 1:200 (min)",
                    s.bleach_time_s / 60,
                    s.bleach_time_stderr_s / 60,
                    dataset="widefield",
                    how="survival(): mean time to bleach, exponential ML with censoring",
                )
            )
    p = survival(movies["pristine"])
    ax.plot(p.time_s / 60, 100 * p.fraction, "k--", lw=1.5, label="pristine 1:20")
    rows.append(
        row(
            "fig2a_pristine_bleach_time_min_dilution_20",
            "2a",
            "pristine bleach time at 1:20 (min)",
            p.bleach_time_s / 60,
            p.bleach_time_stderr_s / 60,
            dataset="widefield",
            how="survival() of the pristine movie",
        )
    )
    ax.set_xlim(0, 60)
    ax.legend(fontsize=7, frameon=False, loc="upper right", ncols=2)
    ax.set_title("LED widefield, frame every 20 s", fontsize=9)
    return rows


def fig_2b(data, fig):
    fr = data.drift_spectra
    d = cew_drift(fr)
    ax, ax2 = fig.subplots(1, 2, gridspec_kw=dict(width_ratios=[2, 1]))
    cmap = __import__("matplotlib").colormaps["viridis"]
    for i, c in enumerate(fr.counts):
        plot_spectrum(
            fr.wavelength_nm, c, ax=ax, color=cmap(i / max(len(fr) - 1, 1)), normalise=True
        )
    ax.set_xlim(490, 540)
    ax.set_title("one NC at Psat, a spectrum every 5 min", fontsize=9)
    t_min = fr.time_s / 60
    ax2.errorbar(t_min, d.cew_nm, yerr=[f.cew_stderr_nm for f in d.fits], fmt="o", ms=3, color="C0")
    h = np.linspace(0, fr.time_s.max(), 50)
    c0 = np.mean(d.cew_nm - d.slope_nm_per_hour * fr.time_s / 3600)
    ax2.plot(h / 60, c0 + d.slope_nm_per_hour * h / 3600, "k-", lw=1)
    ax2.set_xlabel("time (min)")
    ax2.set_ylabel("CEW (nm)")
    shift, err = d.shift_nm(1.0)
    ax2.set_title(f"blue shift {shift:.1f} ± {err:.1f} nm/h", fontsize=9)
    return [
        row(
            "fig2b_cew_blue_shift_nm_1h",
            "2b",
            "CEW blue shift in 1 h at Psat (nm)",
            shift,
            err,
            dataset="drift_spectra",
            how="cew_drift(): Poisson-ML line fit per frame, straight line CEW(t)",
        )
    ]
