"""Seed Fig. 4: blinking dynamics of one NC at Psat. (a) intensity trace and histogram;
(b) decays of the high- and low-intensity windows; (c) 7 s of intensity and lifetime;
(d) g2 from 10 ns to 1 s."""

from __future__ import annotations

import functools

import numpy as np

from ..analysis import decay, fit_decay, intensity_trace, lifetime_trace, photon_mask
from ..analysis.plots import plot_decay, plot_g2_log
from .report import row

BIN_S = 0.01  # seed: 10 ms bins


@functools.lru_cache(maxsize=4)
def _trace(data):
    return intensity_trace(data.zn_psat, BIN_S)


def _windows(tr):
    """High- and low-intensity windows of the trace (seed: orange and blue areas)."""
    lo, hi = np.percentile(tr.counts, [10, 75])
    return tr.counts >= hi, tr.counts <= lo, lo, hi


def fig_4a(data, fig):
    tr = _trace(data)
    high, low, lo, hi = _windows(tr)
    ax, axh = fig.subplots(1, 2, sharey=True, gridspec_kw=dict(width_ratios=[4, 1]))
    ax.plot(tr.time_s, tr.counts, lw=0.3, color="0.2")
    ax.axhspan(hi, tr.counts.max() * 1.05, color="orange", alpha=0.25, lw=0)
    ax.axhspan(0, lo, color="C0", alpha=0.25, lw=0)
    ax.set_xlabel("time (s)")
    ax.set_ylabel(f"counts / {BIN_S * 1e3:g} ms")
    ax.set_ylim(0, tr.counts.max() * 1.05)
    edges, h = tr.histogram()
    axh.barh(0.5 * (edges[1:] + edges[:-1]), h / h.sum(), height=1.0, color="0.4")
    axh.set_xlabel("occurrence")
    n = max(1, len(tr.counts) // 10)  # first and last tenth (60 s of 600 s)
    first, last = tr.counts[:n], tr.counts[-n:]
    ratio = last.mean() / first.mean()
    err = ratio * np.hypot(first.std() / first.mean(), last.std() / last.mean()) / np.sqrt(n)
    return [row("fig4a_trace_stability_600s", "4a", "count rate, last / first tenth of the "
                "trace", ratio, err, dataset="zn_psat",
                how=f"intensity_trace() in {BIN_S * 1e3:g} ms bins")]


def fig_4b(data, fig):
    s = data.zn_psat
    tr = _trace(data)
    high, low, _, _ = _windows(tr)
    ax = fig.subplots()
    rows = []
    for name, sel, color, k, key in (
            ("high", high, "orange", 1, "fig4b_lifetime_high_state_ns"),
            ("low", low, "C0", 0, "fig4b_lifetime_low_state_ns")):
        d = decay(s, mask=photon_mask(s, tr, sel))
        f = fit_decay(d, n_exp=2)
        plot_decay(d, f, ax=ax, color=color, label=f"{name}: {f.lifetimes_ns[k]:.2f} ns")
        rows.append(row(key, "4b", f"{name}-intensity state lifetime (ns)",
                        f.lifetimes_ns[k], f.lifetimes_stderr_ns[k], dataset="zn_psat",
                        how=f"fit_decay(n_exp=2, background) of the {name}-intensity window's "
                        f"decay, {'long' if k else 'short'} component (10 ms bins average "
                        "the us blinking, so each window holds both states)"))
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
    return []


def fig_4d(data, fig):
    r = data.zn_g2_log
    f = r.fit
    ax = fig.subplots()
    plot_g2_log(r, ax)
    bunch = 1.0 + f.relative_amplitude
    err = f.amplitude_stderr / f.baseline
    far = (r.tau_s >= 1e-4) & (r.tau_s <= 0.1)
    w = 1.0 / r.stderr[far] ** 2
    plateau = float(np.sum(w * r.g2[far]) / w.sum())
    data.details["4d"] = dict(tau_c_us=f.tau_c_s * 1e6, tau_c_stderr_us=f.tau_c_stderr_s * 1e6,
                              excess_at_5_percent_us=f.decayed_by(0.05) * 1e6,
                              baseline=f.baseline, chi2_per_dof=f.chi2_per_dof)
    return [
        row("fig4d_bunching_below_10us", "4d", "bunching g2 at short delays (1 + A / "
            "baseline)", bunch, err, dataset="zn_psat",
            how="g2_log() 10 ns - 1 s, fit of baseline + A exp(-tau / tau_c) above 20 "
            f"periods (tau_c = {f.tau_c_s * 1e6:.1f} us)"),
        row("fig4d_g2_above_100us", "4d", "g2 between 100 us and 0.1 s", plateau,
            float(1.0 / np.sqrt(w.sum())), dataset="zn_psat",
            how="g2_log(), weighted mean of the bins from 100 us to 0.1 s"),
    ]
