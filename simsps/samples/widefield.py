"""Widefield photostability movies: many NCs under the LED, a camera frame every few seconds.

The [widefield] section of a preset gives the mean time to bleach under the LED at each
dilution of the stock solution (``bleach_time_s`` at ``dilutions``), the camera counts of
an emitting NC and of the background in its spot, and the read noise. The dilution
dependence is the seed's own (Fig. 2a; PHYSICS.md section 5), interpolated log-log: the
bleaching hazard grows with dilution roughly as ``dilution^0.63`` up to 1:100 and faster
beyond (1:200 bleached in ~15 min). The seed's reading, which we adopt: what protects the
NCs is the excess of ligand and Zn precursor deposited with them, which a stronger
dilution thins out; its mechanism is not modelled, its measured effect is.

Each NC bleaches at an exponential time (constant hazard: a bleach per absorbed photon at a
fixed LED intensity, as in the single-NC model). The Zn-treated NCs blink on microseconds,
far below a 100 ms frame, so a frame sees their mean intensity; blinking of the pristine
NCs within a frame is not modelled (the survival estimator counts the last frame in which
an NC shows, so blinking does not move it). A frame records, per NC spot, Poisson counts of
(emission + background) plus Gaussian read noise; empty spots give the background alone.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from ..params.sample import Widefield
from ..sim import keys

__all__ = ["WidefieldMovie", "widefield_movie"]


@dataclasses.dataclass(frozen=True)
class WidefieldMovie:
    """Counts (n_frames, n_ncs) at ``time_s``, counts of empty spots (n_frames, n_empty),
    and the truth: each NC's bleach time (s)."""

    dilution: float
    time_s: np.ndarray
    counts: np.ndarray
    empty_counts: np.ndarray
    bleach_time_s: np.ndarray
    mean_bleach_time_s: float


def widefield_movie(
    wf: Widefield,
    dilution: float,
    n_ncs: int,
    *,
    duration_s: float = 3600.0,
    frame_interval_s: float = 20.0,
    n_empty: int = 50,
    seed: int = 0,
) -> WidefieldMovie:
    """A movie of ``n_ncs`` NCs at ``dilution`` (1:x) with frames every
    ``frame_interval_s`` from 0 to ``duration_s``."""
    if not (np.isfinite(dilution) and dilution > 0):
        raise ValueError(f"dilution = {dilution!r} must be positive (1:x given as x)")
    if not isinstance(n_ncs, (int, np.integer)) or n_ncs < 1:
        raise ValueError(f"n_ncs = {n_ncs!r} must be a positive integer")
    if not (0 < frame_interval_s <= duration_s):
        raise ValueError(
            f"need 0 < frame_interval_s <= duration_s, got {frame_interval_s!r}, {duration_s!r}"
        )
    tau = float(wf.bleach_time_at(dilution))
    t = np.arange(0.0, duration_s + 1e-9, frame_interval_s)
    key = keys.stream(keys.root(seed), keys.WIDEFIELD)
    # one stream of numbers per dilution (to 0.001), independent of the other dilutions
    k_b, k_s, k_e, k_r1, k_r2 = jax.random.split(
        jax.random.fold_in(key, int(round(dilution * 1000)) % 2**31), 5
    )
    bleach = tau * np.asarray(jax.random.exponential(k_b, (int(n_ncs),)), float)
    emitting = t[:, None] < bleach[None, :]
    mean = wf.background_counts_per_frame + wf.counts_per_frame * emitting
    counts = np.asarray(jax.random.poisson(k_s, mean), float) + wf.read_noise_counts * np.asarray(
        jax.random.normal(k_r1, mean.shape)
    )
    empty_mean = np.full((len(t), int(n_empty)), wf.background_counts_per_frame)
    empty = np.asarray(
        jax.random.poisson(k_e, empty_mean), float
    ) + wf.read_noise_counts * np.asarray(jax.random.normal(k_r2, empty_mean.shape))
    return WidefieldMovie(
        dilution=float(dilution),
        time_s=t,
        counts=counts,
        empty_counts=empty,
        bleach_time_s=bleach,
        mean_bleach_time_s=tau,
    )
