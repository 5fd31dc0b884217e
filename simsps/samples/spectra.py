"""Spectrometer frames of single NCs and spots: line shape, spectral diffusion, photo-etching.

The [spectrum] section of a preset: each NC emits a Gaussian line in energy (FWHM
``fwhm_mev``) centred on its gap (:mod:`simsps.samples.ensemble`); between frames the centre wanders
(rms ``jitter_mev``, independent per frame); under excitation the NC is photo-etched, its
edge shrinking by ``etch_edge_nm_per_hour_at_psat`` x (excitations per pulse relative to
Psat), which blue-shifts the line through ``E(L)``. A frame is Poisson counts per pixel of
``counts_per_frame_at_psat`` x (the same relative excitation) photons spread over the line,
plus ``dark_counts_per_pixel``. A bleached NC adds nothing.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import numpy as np
from scipy.special import ndtr

from ..params.sample import HC_EV_NM, Ensemble, Spectrum

__all__ = ["SpectrumFrames", "pixel_edges_nm", "spectrometer_frames"]


@dataclasses.dataclass(frozen=True)
class SpectrumFrames:
    """Counts per pixel (n_frames, n_pixels) at ``time_s``, and the truth per frame: the
    line centre (nm) of every NC of the spot (n_frames, n_ncs)."""

    wavelength_nm: np.ndarray  # pixel centres
    time_s: np.ndarray
    counts: np.ndarray
    true_cew_nm: np.ndarray

    def __len__(self) -> int:
        return len(self.time_s)


def pixel_edges_nm(spec: Spectrum) -> np.ndarray:
    lo, hi = spec.range_nm
    n = int(round((hi - lo) / spec.pixel_nm))
    return lo + spec.pixel_nm * np.arange(n + 1)


def _relative_excitation(power: float) -> float:
    return (1.0 - math.exp(-power)) / (1.0 - math.exp(-1.0))


def spectrometer_frames(
    ens: Ensemble,
    spec: Spectrum,
    edge_nm,
    time_s,
    *,
    power: float = 1.0,
    redshift_mev: float = 0.0,
    bleach_time_s=None,
    seed: int = 0,
) -> SpectrumFrames:
    """Frames at ``time_s`` (s after the excitation starts) of a spot holding NCs of initial
    edges ``edge_nm``, excited at ``power`` x Psat; ``redshift_mev`` shifts every line (a
    cluster's coupling); ``bleach_time_s`` (per NC, inf: never) ends an NC's emission."""
    edge0 = np.atleast_1d(np.asarray(edge_nm, float))
    t = np.asarray(time_s, float)
    if t.ndim != 1 or np.any(t < 0) or not np.all(np.isfinite(t)):
        raise ValueError("time_s must be a 1-D array of finite times >= 0 (s)")
    if np.ndim(power) or not (np.isfinite(power) and power > 0):
        raise ValueError(
            f"power = {power!r} is out of range: one number in (0, inf), in units of Psat"
        )
    bleach = (
        np.full(len(edge0), np.inf)
        if bleach_time_s is None
        else np.broadcast_to(np.asarray(bleach_time_s, float), edge0.shape)
    )
    rel = _relative_excitation(power)
    edge = edge0[None, :] - spec.etch_edge_nm_per_hour_at_psat * rel * t[:, None] / 3600.0
    if np.any(edge <= 0.2 * edge0[None, :]):
        raise ValueError("photo-etching would consume the NC within these times")
    key = jax.random.fold_in(jax.random.key(int(seed), impl="threefry2x32"), 20)
    k_jit, k_counts = jax.random.split(key)
    jitter = spec.jitter_mev * 1e-3 * np.asarray(jax.random.normal(k_jit, edge.shape))
    centre_ev = ens.gap_ev(edge) - redshift_mev * 1e-3 + jitter  # (frames, ncs)
    sigma_ev = spec.fwhm_mev * 1e-3 / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    e_nm = pixel_edges_nm(spec)
    e_ev = HC_EV_NM / e_nm  # decreasing with wavelength
    # fraction of each NC's photons in each pixel: the Gaussian (in energy) between the
    # pixel's two edge energies
    cdf = ndtr((e_ev[None, None, :] - centre_ev[:, :, None]) / sigma_ev)
    frac = cdf[:, :, :-1] - cdf[:, :, 1:]
    emitting = t[:, None] < bleach[None, :]
    mean = spec.counts_per_frame_at_psat * rel * np.einsum("fn,fnp->fp", emitting, frac)
    mean += spec.dark_counts_per_pixel
    counts = np.asarray(jax.random.poisson(k_counts, mean)).astype(np.int64)
    return SpectrumFrames(
        wavelength_nm=0.5 * (e_nm[1:] + e_nm[:-1]),
        time_s=t,
        counts=counts,
        true_cew_nm=HC_EV_NM / centre_ev,
    )
