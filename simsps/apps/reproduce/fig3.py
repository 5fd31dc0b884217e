"""Seed Fig. 3: single-photon purity. (a) CEWs of 64 NCs; (b) a single-NC spectrum;
(c) pulsed g2 of one NC; (d) g2(0) vs CEW."""

from __future__ import annotations

import functools

import numpy as np

from ...analysis import fit_spectrum, pulsed_g2
from ...analysis.plots import plot_pulsed_g2, plot_spectrum
from .report import row

BLUE_NM, RED_NM = 506.0, 515.0  # seed Fig. 3d groups (seed_numbers.toml)


@functools.lru_cache(maxsize=4)
def _spots(data):
    """Fitted CEW and corrected g2(0) of every spot (cached per dataset)."""
    fits = [fit_spectrum(f.wavelength_nm, f.counts[0]) for f in data.population_spectra]
    bg = data.background_cps(1.0)
    g2 = [pulsed_g2(s, background=bg) for s in data.population_streams]
    return fits, g2


def fig_3a(data, fig):
    fits, _ = _spots(data)
    cew = np.array([f.cew_nm for f in fits])
    ax = fig.subplots()
    ax.hist(cew, bins=np.arange(500, 522, 1.0), color="C2", edgecolor="k", lw=0.5)
    ax.set_xlabel("CEW (nm)")
    ax.set_ylabel("NCs")
    ax.set_title(f"{len(cew)} NCs: {cew.mean():.1f} ± {cew.std(ddof=1):.1f} nm", fontsize=9)
    n = len(cew)
    how = "fit_spectrum() of one spectrometer frame per spot"
    return [
        row(
            "fig3a_cew_mean_nm_64_ncs",
            "3a",
            f"mean CEW of {n} NCs (nm)",
            cew.mean(),
            cew.std(ddof=1) / np.sqrt(n),
            dataset="population",
            how=how,
        ),
        row(
            "fig3a_cew_std_nm_64_ncs",
            "3a",
            f"CEW spread of {n} NCs (nm)",
            cew.std(ddof=1),
            dataset="population",
            how=how + "; sample standard deviation",
        ),
        row(
            "fig3a_cew_range_nm",
            "3a",
            "CEW range (min .. max, nm)",
            [cew.min(), cew.max()],
            dataset="population",
            how=how + "; min and max inside the band",
        ),
    ]


def fig_3b(data, fig):
    fits, _ = _spots(data)
    pop = data.population
    single = np.flatnonzero(pop.spot_size == 1)
    if not len(single):  # every spot a cluster (tiny draws): take the spot nearest 512 nm
        single = np.arange(pop.n_spots)
    cew = np.array([fits[s].cew_nm for s in single])
    s = int(single[np.argmin(np.abs(cew - 512.0))])  # the representative NC near 512 nm
    fr = data.population_spectra[s]
    ax = fig.subplots()
    plot_spectrum(fr.wavelength_nm, fr.counts[0], fits[s], ax=ax, normalise=True)
    ax.set_xlim(470, 560)
    ax.set_title(f"spot {s}: a single NC", fontsize=9)
    return [
        row(
            "fig3b_fwhm_nm",
            "3b",
            "FWHM of a single NC (nm)",
            fits[s].fwhm_nm,
            fits[s].fwhm_stderr_nm,
            dataset="population_spectra",
            how=f"fit_spectrum() of spot {s}, the single NC nearest 512 nm",
        )
    ]


def fig_3c(data, fig):
    r = data.zn_pulsed_g2
    ax = fig.subplots()
    plot_pulsed_g2(r, ax, peaks=3)
    # the seed's red line: half the height of the side peaks (single-photon claim)
    heights = [
        r.counts[np.abs(r.delay_ns - m * r.period_ns) < r.period_ns / 2].max()
        for m in (-3, -2, -1, 1, 2, 3)
    ]
    ax.axhline(0.5 * float(np.mean(heights)), color="r", lw=0.8)
    return [
        row(
            "fig3c_g2_zero_background_corrected",
            "3c",
            "g2(0) at Psat, background corrected",
            r.g2_zero_corrected,
            r.g2_zero_stderr,
            dataset="zn_psat",
            how="pulsed_g2(): peak areas, background = an empty spot's count rate (brouri)",
        )
    ]


def fig_3d(data, fig):
    fits, g2 = _spots(data)
    cew = np.array([f.cew_nm for f in fits])
    g = np.array([r.g2_zero_corrected for r in g2])
    err = np.array([r.g2_zero_stderr for r in g2])
    multi = data.population.spot_size > 1
    ax = fig.subplots()
    ax.errorbar(
        cew[~multi], g[~multi], yerr=err[~multi], fmt="o", ms=3, color="C0", label="single NC"
    )
    ax.errorbar(cew[multi], g[multi], yerr=err[multi], fmt="s", ms=3, color="C3", label="cluster")
    ax.axhline(0.5, color="r", lw=0.8)
    ax.set_xlabel("CEW (nm)")
    ax.set_ylabel("$g^{(2)}(0)$ (background corrected)")
    ax.legend(fontsize=7, frameon=False)
    blue, red = cew <= BLUE_NM, cew > RED_NM
    data.details["3d"] = dict(
        cew_nm=cew.tolist(),
        g2_zero=g.tolist(),
        g2_zero_stderr=err.tolist(),
        ncs_in_spot=data.population.spot_size.tolist(),
    )
    how = "median of pulsed_g2() (empty-spot background) over the spots with fitted CEW {}"
    return [
        row(
            "fig3d_g2_zero_bluest_ncs",
            "3d",
            f"g2(0) of NCs with CEW <= {BLUE_NM:g} nm (median of {blue.sum()})",
            np.median(g[blue]) if blue.any() else np.nan,
            dataset="population",
            how=how.format(f"<= {BLUE_NM:g} nm"),
        ),
        row(
            "fig3d_g2_zero_reddest_ncs",
            "3d",
            f"g2(0) of NCs with CEW > {RED_NM:g} nm (median of {red.sum()})",
            np.median(g[red]) if red.any() else np.nan,
            dataset="population",
            how=how.format(f"> {RED_NM:g} nm"),
        ),
    ]
