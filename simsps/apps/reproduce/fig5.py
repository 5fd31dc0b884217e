"""Seed Fig. 5: power dependence. (a) saturation curve and g2(0) at 0.25 ... 3 Psat;
(b, c) FLIDs at Psat and 3 Psat."""

from __future__ import annotations

import functools

import numpy as np

from ...analysis import flid, power_series
from ...analysis.plots import plot_flid
from .data import POWERS
from .report import row

BIN_S = 0.01


@functools.lru_cache(maxsize=4)
def _series(data):
    return power_series(
        data.power_series, POWERS, background_cps=[data.background_cps(p) for p in POWERS]
    )


@functools.lru_cache(maxsize=4)
def _flids(data):
    return [flid(s, BIN_S) for s in data.power_series]


def fig_5a(data, fig):
    ps = _series(data)
    fit = ps.saturation
    ax = fig.subplots()
    ax.errorbar(
        ps.power, ps.rate_cps / 1e3, yerr=ps.rate_stderr_cps / 1e3, fmt="o", ms=4, color="C3"
    )
    x = np.linspace(0, ps.power.max() * 1.05, 200)
    ax.plot(
        x,
        fit.model(x) / 1e3,
        "k--",
        lw=1,
        label=f"eq. 1: P$_{{sat}}$ = {fit.p_sat:.3f} ± {fit.p_sat_stderr:.3f}",
    )
    ax.set_xlabel("excitation power (P$_{sat}$)")
    ax.set_ylabel("count rate less background (kcps)", color="C3")
    ax.legend(fontsize=7, frameon=False, loc="lower right")
    ax2 = ax.twinx()
    ax2.errorbar(ps.power, ps.g2_zero, yerr=ps.g2_zero_stderr, fmt="s", ms=4, color="C0")
    ax2.set_ylabel("$g^{(2)}(0)$ (corrected)", color="C0")
    ax2.set_ylim(0, max(0.3, float(np.max(ps.g2_zero + ps.g2_zero_stderr)) * 1.2))
    i1, i0, i3 = POWERS.index(1.0), POWERS.index(0.25), POWERS.index(3.0)

    def ratio(i):
        r = ps.g2_zero[i] / ps.g2_zero[i1]
        return r, r * np.hypot(
            ps.g2_zero_stderr[i] / ps.g2_zero[i], ps.g2_zero_stderr[i1] / ps.g2_zero[i1]
        )

    data.details["5a"] = dict(
        power_psat=list(POWERS),
        rate_cps=ps.rate_cps.tolist(),
        g2_zero=ps.g2_zero.tolist(),
        g2_zero_stderr=ps.g2_zero_stderr.tolist(),
        p_sat=fit.p_sat,
        p_sat_stderr=fit.p_sat_stderr,
        linear_cps_per_psat=fit.linear,
    )
    how_g2 = (
        "power_series(): pulsed_g2() at each power, corrected with the empty spot's background rate"
    )
    return [
        row(
            "fig5a_psat_recovered_ratio",
            "5a",
            "fitted Psat / simulated Psat",
            fit.p_sat,
            fit.p_sat_stderr,
            dataset="power_series",
            how="fit_saturation(): A (1 - exp(-P/Psat)) + B P to the count rates less the "
            "empty spot's; the powers are in units of the simulated Psat",
        ),
        row(
            "fig5a_g2_zero_025psat_over_psat",
            "5a",
            "g2(0) at 0.25 Psat / at Psat",
            *ratio(i0),
            dataset="power_series",
            how=how_g2,
        ),
        row(
            "fig5a_g2_zero_3psat_over_psat",
            "5a",
            "g2(0) at 3 Psat / at Psat",
            *ratio(i3),
            dataset="power_series",
            how=how_g2,
        ),
    ]


def _flid_panel(data, fig, power):
    f = _flids(data)[POWERS.index(power)]
    ax = fig.subplots()
    plot_flid(f, ax)
    ax.set_title(f"FLID at {power:g} P$_{{sat}}$", fontsize=9)
    return f


def fig_5b(data, fig):
    _flid_panel(data, fig, 1.0)
    return []


def _lifetime_spread(f, blocks: int = 16):
    """Standard deviation of the FLID's lifetimes (its width along the lifetime axis) and
    its delete-one-block jackknife error over ``blocks`` stretches of the trace (grey
    periods come in runs, so bins are not independent)."""
    y = f.lifetime_ns
    parts = np.array_split(np.arange(len(y)), blocks)
    loo = np.array([np.std(np.delete(y, p)) for p in parts])
    return float(np.std(y)), float(np.sqrt((blocks - 1) / blocks * np.sum((loo - loo.mean()) ** 2)))


def fig_5c(data, fig):
    _flid_panel(data, fig, 3.0)
    f1, f3 = (_flids(data)[POWERS.index(p)] for p in (1.0, 3.0))
    (s1, e1), (s3, e3) = _lifetime_spread(f1), _lifetime_spread(f3)
    ratio = s3 / s1
    data.details["5c"] = dict(
        lifetime_sd_ns_psat=s1,
        lifetime_sd_ns_3psat=s3,
        intensity_sd_psat=f1.spread()[0],
        intensity_sd_3psat=f3.spread()[0],
    )
    return [
        row(
            "fig5_flid_spread_3psat_over_psat",
            "5b,5c",
            "FLID width along the lifetime axis, 3 Psat / Psat",
            ratio,
            ratio * np.hypot(e1 / s1, e3 / s3),
            dataset="power_series",
            how="flid(): standard deviation of the 10 ms bins' mean delays, jackknife over "
            "16 stretches of each trace; more (and more often grey) blinking at 3 Psat "
            "widens it, while the per-bin shot noise alone would narrow it (more photons)",
        )
    ]
