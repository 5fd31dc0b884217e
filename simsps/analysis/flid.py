"""FLID: fluorescence-lifetime-intensity distribution, a 2D kernel density of the
(intensity, lifetime) pairs of a binned trace, as in the seed SI.

The density is a Gaussian kernel estimate on a grid: a fine 2D histogram of the pairs
smoothed with Gaussian kernels whose widths follow Scott's rule in each axis (n^(-1/6)
times the spread), which is what ``scipy.stats.gaussian_kde`` with a diagonal bandwidth
computes, at grid cost instead of pairs x grid points.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

from ._common import AnalysisError
from .traces import LifetimeTrace, lifetime_trace


@dataclasses.dataclass(frozen=True)
class Flid:
    intensity_edges: np.ndarray  # photons per bin (or cps when per_second)
    lifetime_edges_ns: np.ndarray
    density: np.ndarray  # (n_intensity, n_lifetime), integrates to 1
    intensity: np.ndarray  # the pairs it is made of
    lifetime_ns: np.ndarray
    bin_s: float
    warnings: tuple[str, ...] = ()

    def spread(self) -> tuple[float, float]:
        """Standard deviations of intensity and lifetime over the bins (the FLID width)."""
        return float(np.std(self.intensity)), float(np.std(self.lifetime_ns))

    def plot(self, ax=None, **kw):
        from .plots import plot_flid

        return plot_flid(self, ax=ax, **kw)


def flid(
    stream_or_trace,
    bin_s: float = 0.01,
    *,
    grid=(128, 128),
    per_second: bool = False,
    lifetime_range_ns=None,
    **lifetime_kw,
) -> Flid:
    """FLID of a stream (via :func:`lifetime_trace` with ``lifetime_kw``) or of a
    :class:`LifetimeTrace`."""
    lt = (
        stream_or_trace
        if isinstance(stream_or_trace, LifetimeTrace)
        else lifetime_trace(stream_or_trace, bin_s, **lifetime_kw)
    )
    ok = np.isfinite(lt.lifetime_ns)
    x = lt.counts[ok].astype(np.float64) / (lt.bin_s if per_second else 1.0)
    y = lt.lifetime_ns[ok]
    if len(x) < 10:
        raise AnalysisError(f"only {len(x)} trace bins with a lifetime: too few for a FLID")
    ylo, yhi = lifetime_range_ns or (
        max(0.0, float(np.percentile(y, 0.5))) * 0.9,
        float(np.percentile(y, 99.5)) * 1.1,
    )
    xlo, xhi = 0.0, float(x.max()) * 1.05 + 1e-9
    xe = np.linspace(xlo, xhi, grid[0] + 1)
    ye = np.linspace(ylo, yhi, grid[1] + 1)
    h, _, _ = np.histogram2d(x, y, [xe, ye])
    n = len(x)
    bw = n ** (-1 / 6) * np.array([np.std(x), np.std(y)])
    sigma_cells = bw / np.array([xe[1] - xe[0], ye[1] - ye[0]])
    dens = ndimage.gaussian_filter(h, sigma_cells, mode="constant")
    area = (xe[1] - xe[0]) * (ye[1] - ye[0])
    dens = dens / max(dens.sum() * area, 1e-300)
    return Flid(
        intensity_edges=xe,
        lifetime_edges_ns=ye,
        density=dens,
        intensity=x,
        lifetime_ns=y,
        bin_s=lt.bin_s,
        warnings=lt.warnings,
    )
