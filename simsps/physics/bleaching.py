"""Photobleaching as a per-excitation hazard: the NC is dark for ever after."""

from __future__ import annotations

import numpy as np

from ..params.model import Model
from .excitation import excitation_classes

__all__ = ["bleach_probability_per_pulse", "bleach_pulse_from_uniform"]

NEVER = np.iinfo(np.int64).max


def bleach_probability_per_pulse(m: Model, n_mean: float) -> float:
    """``p_b * P(n >= 1)``: the pulse excites the NC and the excitation bleaches it."""
    if not m.bleaching.enabled:
        return 0.0
    p0, _, _ = excitation_classes(n_mean)
    return m.bleaching.probability_per_excitation * (1.0 - p0)


def bleach_pulse_from_uniform(u: np.ndarray | float, p: float) -> np.ndarray:
    """Index of the bleaching pulse (geometric, counted from 0) by inversion of ``u``.

    Pulses from this index on give no emission. ``p = 0`` gives "never".
    """
    u = np.asarray(u, dtype=np.float64)
    if p <= 0:
        return np.full(u.shape, NEVER, dtype=np.int64)
    if p >= 1:
        return np.zeros(u.shape, dtype=np.int64)
    k = np.floor(np.log(u) / np.log1p(-p))
    return np.minimum(k, 2.0**62).astype(np.int64)
