"""Poisson excitation per pulse: ``n ~ Poisson(N)`` with ``N = P / Psat``."""

from __future__ import annotations

import numpy as np

__all__ = ["excitation_classes", "check_power"]


MAX_POWER = 1e3  # Psat: 1000 excitations per pulse, far past any saturation curve


def check_power(power: float) -> float:
    try:
        p = float(power)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"power = {power!r}: give a number in units of Psat") from None
    if not np.isfinite(p) or p <= 0 or p > MAX_POWER:
        raise ValueError(
            f"power = {p:g} is out of range: allowed (0, {MAX_POWER:g}] in units of Psat"
        )
    return p


def excitation_classes(n_mean: float) -> tuple[float, float, float]:
    """Probabilities of 0, exactly 1, and 2 or more excitations in one pulse."""
    p0 = float(np.exp(-n_mean))
    p1 = float(n_mean * np.exp(-n_mean))
    p2 = float(-np.expm1(-n_mean) - p1)
    return p0, p1, max(p2, 0.0)
