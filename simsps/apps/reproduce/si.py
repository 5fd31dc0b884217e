"""Seed SI figures. S5: decay of the whole trace (bi-exponential) and its g2;
S6: the pristine NC (trace, long-delay g2, FLID); S7: traces and FLIDs at six powers."""

from __future__ import annotations

from ...analysis import decay, fit_decay, flid, g2_log, intensity_trace
from ...analysis.plots import plot_decay, plot_flid, plot_g2_log, plot_pulsed_g2
from .data import POWERS
from .fig5 import _flids
from .report import row

BIN_S = 0.01


def fig_s5(data, fig):
    s = data.zn_psat
    ax1, ax2 = fig.subplots(1, 2)
    d = decay(s)
    plot_decay(d, fit_decay(d, n_exp=2), ax=ax1)
    ax1.set_title("(a) whole trace, bi-exponential + background", fontsize=9)
    plot_pulsed_g2(data.zn_pulsed_g2, ax2, peaks=3)
    ax2.set_title("(b) antibunching", fontsize=9)
    return []


def fig_s6(data, fig):
    p = data.pristine_psat
    ax1, ax2, ax3 = fig.subplots(1, 3)
    tr = intensity_trace(p, BIN_S)
    ax1.plot(tr.time_s, tr.counts, lw=0.3, color="0.2")
    ax1.set_xlabel("time (s)")
    ax1.set_ylabel(f"counts / {BIN_S * 1e3:g} ms")
    ax1.set_title("(a) pristine NC at Psat", fontsize=9)
    rp = g2_log(p, tau_max_s=min(1.0, p.duration_s / 4), background=data.background_cps(1.0))
    rz = data.zn_g2_log
    plot_g2_log(rp, ax2, color="C3", label="pristine")
    plot_g2_log(rz, ax2, color="C0", label="Zn-treated", show_fit=False)
    ax2.legend(fontsize=7, frameon=False)
    ax2.set_title("(b) long-delay $g^{(2)}$", fontsize=9)
    plot_flid(flid(p, BIN_S), ax3)
    ax3.set_title("(c) FLID", fontsize=9)
    a_p, a_z = rp.fit.relative_amplitude, rz.fit.relative_amplitude
    e_p, e_z = rp.fit.relative_amplitude_stderr, rz.fit.relative_amplitude_stderr
    ratio = a_p / a_z
    err = ratio * ((e_p / a_p) ** 2 + (e_z / a_z) ** 2) ** 0.5
    return [
        row(
            "figs6_bunching_pristine_over_zn",
            "S6",
            "bunching amplitude, pristine / Zn",
            ratio,
            err,
            dataset="pristine_psat, zn_psat",
            how="g2_log() fits of both NCs (empty spot's rate as background): ratio of "
            "A / baseline",
        )
    ]


def fig_s7(data, fig):
    axes = fig.subplots(2, len(POWERS))
    for k, (s, f, p) in enumerate(zip(data.power_series, _flids(data), POWERS)):
        tr = intensity_trace(s, BIN_S)
        axes[0, k].plot(tr.time_s, tr.counts, lw=0.3, color="0.2")
        axes[0, k].set_title(f"{p:g} P$_{{sat}}$", fontsize=9)
        axes[0, k].set_xlabel("time (s)")
        plot_flid(f, axes[1, k])
    axes[0, 0].set_ylabel(f"counts / {BIN_S * 1e3:g} ms")
    return []
