"""Telegraph blinking between the neutral (bright) and charged (grey) NC.

Two independent processes of the same kind: the fast flicker (``[blinking]``, us) and the
slow blinking (``[slow_blinking]``, ms to s). The NC is charged while either of them is in
its grey state (:mod:`simsps.sim.switching` draws the OR).

Dwell times alternate bright, grey, bright, ... and are either exponential (mean given by
the preset at Psat) or truncated power laws ``p(t) ~ t^-m`` on ``[t_min, t_max]``. Both
start stationary: the first state is drawn with the occupation probabilities
``mu_b / (mu_b + mu_g)`` (mean dwells) and, for a power law, the first dwell from the
equilibrium residual-life law ``S(t) / mu`` (memoryless for the exponential).
Charging can speed up with power: the bright -> grey rate at ``N`` is the rate at Psat times

    s + (1 - s) * [(1 - f) * P(n>=1 | N) / P(n>=1 | 1) + f * P(n>=2 | N) / P(n>=2 | 1)]

with ``s = blinking.spontaneous_charging_fraction`` (trapping that does not need the laser)
and ``f = blinking.auger_charging_fraction`` (Auger ionisation needs two excitations).
Neutralisation (grey -> bright) does not depend on power.

The trajectory itself is drawn chunk by chunk where the kernel runs
(:mod:`simsps.sim.switching`); the state of a pulse is the state at its start.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from .excitation import excitation_classes

__all__ = [
    "charging_factor",
    "charging_drive",
    "dwell_parameters",
    "dwell_means",
    "dwell_from_uniform",
    "power_law_tail",
    "residual_dwell",
    "telegraph_bunching",
]


def charging_factor(
    n_mean: float, auger_fraction: float, spontaneous_fraction: float = 0.0, drive=None
) -> float:
    """Charging rate at mean excitation ``n_mean`` relative to that at Psat (module doc).
    ``drive``: (excitations, multi-excitations) relative to Psat, when not the pulsed
    ``P(n >= 1)`` and ``P(n >= 2)`` ratios (CW: :func:`simsps.physics.cw.absorption_ratios`)."""
    if drive is None:
        p0, p1, p2 = excitation_classes(n_mean)
        r0, r1, r2 = excitation_classes(1.0)
        drive = ((1 - p0) / (1 - r0), p2 / r2)
    driven = (1 - auger_fraction) * drive[0] + auger_fraction * drive[1]
    return spontaneous_fraction + (1 - spontaneous_fraction) * driven


def charging_drive(m, power: float):
    """The ``drive`` of :func:`charging_factor` for model ``m``: None when pulsed (the
    Poisson classes of ``power``), the CW ladder's absorption ratios under CW."""
    if not m.is_cw:
        return None
    from .cw import absorption_ratios

    return absorption_ratios(m, power)


def dwell_parameters(b, n_mean: float, rep_rate_hz: float, drive=None) -> np.ndarray:
    """Scale parameters (clock ticks: pulses) of the bright and grey dwell laws at mean
    excitation ``n`` (``b``: the model's ``blinking`` or ``slow_blinking`` section;
    ``drive``: :func:`charging_drive`)."""
    f = charging_factor(n_mean, b.auger_charging_fraction, b.spontaneous_charging_fraction, drive)
    bright_s, grey_s = b.dwell_scales_s
    return np.array([bright_s * rep_rate_hz / f, grey_s * rep_rate_hz])


def _pareto_parts(t_min, exponent, t_max):
    """Pieces of the truncated Pareto's survival ``S(t) = (t^-k - b^-k) / (a^-k - b^-k)``
    on [a, b] (k = m - 1) and of its integral."""
    k = exponent - 1.0
    a, b = np.asarray(t_min, np.float64), float(t_max)
    norm = a**-k - b**-k

    def int_s(x):  # integral of S from a to x (a <= x <= b)
        if abs(k - 1.0) < 1e-12:
            prim = np.log(x) - np.log(a)
        else:
            prim = (x ** (1 - k) - a ** (1 - k)) / (1 - k)
        return (prim - b**-k * (x - a)) / norm

    return a, b, int_s


def dwell_means(scale, kind: str, exponent: float = 1.5, t_max: float = np.inf) -> np.ndarray:
    """Mean dwells (same unit as ``scale``) of the bright and grey laws."""
    scale = np.asarray(scale, np.float64)
    if kind == "exponential":
        return scale
    a, b, int_s = _pareto_parts(scale, exponent, t_max)
    return a + int_s(b)


def residual_dwell(u, scale, kind: str, exponent: float = 1.5, t_max: float = np.inf):
    """First dwell of a stationary start: inverse of the residual-life CDF
    ``G(x) = int_0^x S(t) dt / mu`` at ``u`` in (0, 1) (exponential: the law itself)."""
    u = np.asarray(u, np.float64)
    scale = np.asarray(scale, np.float64)
    if kind == "exponential":
        return -np.log(u) * scale
    a, b, int_s = _pareto_parts(scale, exponent, t_max)
    target = u * (a + int_s(b))
    lo, hi = np.broadcast_to(a, target.shape).copy(), np.full(target.shape, b)
    for _ in range(80):  # bisection of a + int_s(x) = target on [a, b]
        mid = 0.5 * (lo + hi)
        below = a + int_s(mid) < target
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return np.where(target <= a, target, 0.5 * (lo + hi))


def dwell_from_uniform(u, scale, kind: str, inv_exponent=None, tail=None):
    """Dwells (unit of ``scale``) from uniforms ``u`` on (0, 1], by inversion (JAX, float32
    on the device): exponential with mean ``scale``, or the truncated Pareto on
    [scale, t_max] with ``inv_exponent = 1 / (m - 1)`` and ``tail = (t_max / scale)^-(m-1)``
    (:func:`power_law_tail`)."""
    if kind == "exponential":
        return -jnp.log(u) * scale
    return scale * (1.0 - u * (1.0 - tail)) ** -inv_exponent


def power_law_tail(scale, exponent: float, t_max: float):
    """``(t_max / scale)^-(m - 1)``, the survival at ``t_max`` of the untruncated law."""
    return (t_max / np.asarray(scale, np.float64)) ** -(exponent - 1.0)


def telegraph_bunching(p_bright: float, i_bright: float, i_grey: float) -> float:
    """Closed-form g2 bunching amplitude ``A`` of a two-level telegraph (PHYSICS.md 3)."""
    p_grey = 1.0 - p_bright
    mean = p_bright * i_bright + p_grey * i_grey
    return p_bright * p_grey * (i_bright - i_grey) ** 2 / mean**2
