"""Exciton / trion / biexciton cascade: which photons a pulse can give, and when.

A pulse with one excitation makes an exciton X (neutral NC) or a trion T (charged NC);
two or more relax to the (charged) biexciton, which emits with its yield and then leaves
an X (or T) that emits with its own yield. Delays are exponential with each state's total
lifetime; the X delay adds to the BX one.
"""

from __future__ import annotations

import enum

import numpy as np

from ..params.model import Model
from .excitation import excitation_classes

__all__ = ["state_yields", "outcome_probabilities", "Outcome"]


class Outcome(enum.IntEnum):
    """What one pulse gives (detected photons, before dead time); the column order of
    :func:`outcome_probabilities`, and the category the kernel draws."""

    SINGLE = 0  # single excitation, X/T photon detected
    BX_ONLY = 1  # two or more excitations, BX photon only
    X_ONLY = 2  # two or more excitations, X photon only
    BOTH = 3  # two or more excitations, both photons
    NOTHING = 4  # no photon detected


def state_yields(m: Model) -> dict[str, np.ndarray]:
    """Yields and lifetimes (ns) indexed by charge state: 0 neutral (bright), 1 charged (grey)."""
    return {
        "eta1": np.array([m.exciton.quantum_yield, m.trion.quantum_yield]),
        "eta2": np.array([m.biexciton.quantum_yield, m.charged_biexciton.quantum_yield]),
        "tau1_ns": np.array([m.exciton.lifetime_ns, m.trion.lifetime_ns]),
        "tau2_ns": np.array([m.biexciton.lifetime_ns, m.charged_biexciton.lifetime_ns]),
    }


def outcome_probabilities(m: Model, n_mean: float) -> np.ndarray:
    """Per-pulse probabilities of the four detected outcomes, shape (2 states, 4)."""
    _, p1, p2 = excitation_classes(n_mean)
    y = state_yields(m)
    d = m.detection.efficiency
    a1 = y["eta1"] * d  # X/T photon emitted and detected
    a2 = y["eta2"] * d  # BX photon emitted and detected
    return np.stack([p1 * a1, p2 * a2 * (1 - a1), p2 * (1 - a2) * a1, p2 * a2 * a1], axis=1)
