"""Seed Fig. 4: blinking dynamics of one NC at Psat. (a) intensity trace and histogram;
(b) decays of the high- and low-intensity windows; (c) 7 s of intensity and lifetime;
(d) g2 from 10 ns to 1 s."""

from __future__ import annotations

import functools

import numpy as np

from ...analysis import (
    AnalysisError,
    decay,
    fit_decay,
    intensity_trace,
    lifetime_trace,
    photon_mask,
    two_level,
)
from ...analysis.plots import plot_decay, plot_g2_log
from .report import row

BIN_S = 0.01  # seed: 10 ms bins


FIT_START_NS = 3.0  # decay fits start this long after the decay's peak (past IRF and BX)


@functools.lru_cache(maxsize=4)
def _trace(data):
    return intensity_trace(data.zn_psat, BIN_S)


@functools.lru_cache(maxsize=4)
def _windows(data):
    """The high- and low-intensity windows of the seed's Fig. 4a (orange and blue bands):
    the trace's two Poisson levels, and the bins within one standard deviation of the
    level's edge away from the other level (counts >= bright - sqrt(bright), counts <= grey
    + sqrt(grey)), so a bin half in either state is in neither. None: no two levels."""
    tr = _trace(data)
    try:
        lv = two_level(tr)
    except AnalysisError:
        return tr, None, None, None
    hi = lv.bright_mean - np.sqrt(lv.bright_mean)
    lo = lv.grey_mean + np.sqrt(lv.grey_mean)
    return tr, lv, tr.counts >= hi, tr.counts <= lo


def fig_4a(data, fig):
    tr, lv, high, low = _windows(data)
    ax, axh = fig.subplots(1, 2, sharey=True, gridspec_kw=dict(width_ratios=[4, 1]))
    ax.plot(tr.time_s, tr.counts, lw=0.3, color="0.2")
    if lv is not None:
        ax.axhspan(
            lv.bright_mean - np.sqrt(lv.bright_mean),
            tr.counts.max() * 1.05,
            color="orange",
            alpha=0.25,
            lw=0,
        )
        ax.axhspan(0, lv.grey_mean + np.sqrt(lv.grey_mean), color="C0", alpha=0.25, lw=0)
    ax.set_xlabel("time (s)")
    ax.set_ylabel(f"counts / {BIN_S * 1e3:g} ms")
    ax.set_ylim(0, tr.counts.max() * 1.05)
    edges, h = tr.histogram(bins="auto")
    axh.barh(0.5 * (edges[1:] + edges[:-1]), h / h.sum(), height=np.diff(edges), color="0.4")
    axh.set_xscale("log")
    axh.set_xlabel("occurrence")
    if lv is not None:
        data.details["4a"] = dict(
            grey_counts=lv.grey_mean,
            bright_counts=lv.bright_mean,
            bright_fraction=lv.bright_fraction,
            high_bins=int(high.sum()),
            low_bins=int(low.sum()),
        )
    n = max(1, len(tr.counts) // 10)  # first and last tenth (60 s of 600 s)
    first, last = tr.counts[:n], tr.counts[-n:]
    ratio = last.mean() / first.mean()
    err = ratio * np.hypot(first.std() / first.mean(), last.std() / last.mean()) / np.sqrt(n)
    return [
        row(
            "fig4a_trace_stability_600s",
            "4a",
            "count rate, last / first tenth of the trace",
            ratio,
            err,
            dataset="zn_psat",
            how=f"intensity_trace() in {BIN_S * 1e3:g} ms bins",
        )
    ]


def fig_4b(data, fig):
    s = data.zn_psat
    tr, lv, high, low = _windows(data)
    ax = fig.subplots()
    rows = []
    how = (
        "fit_decay(n_exp=1, background) of the decay of the {} window (two_level() of "
        f"the {BIN_S * 1e3:g} ms trace, bins within one sd of the level's far side), "
        f"mono-exponential from {FIT_START_NS:g} ns after the decay's peak"
    )
    for name, sel, color, key in (
        ("high", high, "orange", "fig4b_lifetime_high_state_ns"),
        ("low", low, "C0", "fig4b_lifetime_low_state_ns"),
    ):
        try:
            if sel is None or not sel.any():
                raise AnalysisError("the trace shows no two intensity levels")
            d = decay(s, mask=photon_mask(s, tr, sel))
            peak = (np.argmax(d.counts) + 0.5) * d.resolution_ns
            f = fit_decay(d, n_exp=1, fit_start_ns=peak + FIT_START_NS)
        except AnalysisError as e:
            rows.append(
                row(
                    key,
                    "4b",
                    f"{name}-intensity state lifetime (ns)",
                    np.nan,
                    dataset="zn_psat",
                    how=how.format(name) + f": failed ({e})",
                )
            )
            continue
        plot_decay(d, f, ax=ax, color=color, label=f"{name}: {f.lifetimes_ns[0]:.2f} ns")
        rows.append(
            row(
                key,
                "4b",
                f"{name}-intensity state lifetime (ns)",
                f.lifetimes_ns[0],
                f.lifetimes_stderr_ns[0],
                dataset="zn_psat",
                how=how.format(name),
            )
        )
    ax.legend(fontsize=7, frameon=False)
    return rows


def fig_4c(data, fig):
    s = data.zn_psat
    lt = lifetime_trace(s, BIN_S)
    t0 = min(10.0, max(0.0, s.duration_s - 7.0))
    sel = (lt.time_s >= t0) & (lt.time_s < t0 + 7.0)
    ax, ax2 = fig.subplots(2, 1, sharex=True)
    ax.plot(lt.time_s[sel], lt.counts[sel], lw=0.6, color="0.2")
    ax.set_ylabel(f"counts / {BIN_S * 1e3:g} ms")
    ax2.plot(lt.time_s[sel], lt.lifetime_ns[sel], lw=0.6, color="C3")
    ax2.set_ylabel("mean delay (ns)")
    ax2.set_xlabel("time (s)")
    ok = np.isfinite(lt.lifetime_ns)
    r = float(np.corrcoef(lt.counts[ok], lt.lifetime_ns[ok])[0, 1]) if ok.sum() > 2 else np.nan
    data.details["4c"] = dict(intensity_lifetime_correlation=r, bins=int(ok.sum()))
    ax.set_title(f"intensity-lifetime correlation over the whole trace: r = {r:.2f}", fontsize=8)
    return []


def fig_4d(data, fig):
    r = data.zn_g2_log
    f = r.fit
    ax = fig.subplots()
    plot_g2_log(r, ax)
    bunch = 1.0 + f.relative_amplitude
    err = f.relative_amplitude_stderr
    plateau, plateau_err = r.average(1e-4, 0.1)
    data.details["4d"] = dict(
        tau_c_us=f.tau_c_s * 1e6,
        tau_c_stderr_us=f.tau_c_stderr_s * 1e6,
        excess_at_5_percent_us=f.decayed_by(0.05) * 1e6,
        baseline=f.baseline,
        chi2_per_dof=f.chi2_per_dof,
    )
    return [
        row(
            "fig4d_bunching_below_10us",
            "4d",
            "bunching g2 at short delays (1 + A / baseline)",
            bunch,
            err,
            dataset="zn_psat",
            how="g2_log() 10 ns - 1 s with the empty spot's rate as background, fit of "
            f"baseline + A exp(-tau / tau_c) from 20 periods to {f.fit_range_s[1] * 1e3:g} ms "
            f"(tau_c = {f.tau_c_s * 1e6:.1f} us, chi2/dof {f.chi2_per_dof:.2g})",
        ),
        row(
            "fig4d_g2_above_100us",
            "4d",
            "g2 between 100 us and 0.1 s",
            plateau,
            plateau_err,
            dataset="zn_psat",
            how="G2Log.average(): the bins from 100 us to 0.1 s, jackknife error",
        ),
    ]
