"""Continuous-wave excitation: the G -> X -> BX ladder pumped at a constant rate
(PHYSICS.md 8), its closed forms and the tables the CW kernel samples from.

The NC climbs the ladder ground (G, level 0) -> exciton X (1) -> biexciton BX (2) by
absorbing at ``R = P / tau_X`` per step (``P`` in units of Psat, ``tau_X`` the neutral
exciton's lifetime: the laser and the absorption cross-section fix ``R``, so the charged NC
is pumped at the same rate) and falls back by decays at ``Gamma_1 = 1 / tau_1`` (X -> G)
and ``Gamma_2 = 1 / tau_2`` (BX -> X), each a photon with the state's yield. In the charged
(grey) state the rungs are the trion and the charged biexciton. A decay is *detected*
(before dead time, either channel) with probability ``c = eta_1 d`` (X) or
``b = eta_2 d`` (BX), ``d`` the detection efficiency.

Between detections the ladder evolves with the sub-generator ``Q`` of the undetected
moves (3 x 3, tridiagonal); from level ``s``, the survival to ``t`` without a detection
and the level at ``t`` are ``e_s^T exp(Q t)``, a sum of three exponentials
``sum_k B[s, k, j] exp(lambda_k t)`` (:func:`ladder_tables`, eigenvalues of ``Q``, real
and negative: ``Q`` is similar to a symmetric matrix). The kernel draws the time to the
next detection by inverting that survival, which photon it is from the two exit
densities, and the level at a blink switch or a block end from the occupations: three
uniforms per event, whatever the number of unseen absorption-emission cycles between
detections (tens to hundreds at the presets' 2.5 % efficiency).

Closed forms (PHYSICS.md 8, stationary, no blinking, no background):

- two-level emitter (no BX): excited fraction ``R / (R + Gamma)``, emitted rate
  ``eta Gamma P / (1 + P)``, antibunching ``g2(tau) = 1 - exp(-(R + Gamma) |tau|)``;
- the ladder: ``p_X / p_G = R / Gamma_1``, ``p_BX / p_X = R / Gamma_2``,
  ``g2(0) = eta_1 eta_2 R Gamma_1 / (p_X (eta_1 Gamma_1 + eta_2 R)^2)`` (-> ``eta_2 /
  eta_1`` at low power), and the whole ``g2(tau)`` of the ladder from the matrix
  exponential of its generator (:func:`ladder_g2`, scipy's ``expm``, independent of the
  kernel's eigen tables).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "CW_CLOCK_HZ",
    "Ladder",
    "ladder",
    "ladder_of",
    "stationary",
    "emitted_rate",
    "detected_rate",
    "two_level_rate",
    "two_level_g2",
    "two_level_dip_rate",
    "ladder_g2_zero",
    "ladder_g2",
    "ladder_tables",
    "absorption_ratios",
    "state_rates",
    "state_g2_zero",
    "mixture_g2_zero",
    "bleach_rate_hz",
]

# the engine's clock under CW: blocks, blink switches and internal records count its ticks
# (1 ns: a switch falls on a whole ns; the photons' times are whole ps)
CW_CLOCK_HZ = 1e9


class Ladder:
    """Rates (per ns) and detection probabilities of one charge state's ladder."""

    def __init__(self, r, g1, g2, eta1, eta2, efficiency):
        self.r, self.g1, self.g2 = float(r), float(g1), float(g2)
        self.eta1, self.eta2 = float(eta1), float(eta2)
        self.c = self.eta1 * float(efficiency)  # an X decay detected
        self.b = self.eta2 * float(efficiency)  # a BX decay detected

    def generator(self) -> np.ndarray:
        """The full generator (per ns) of levels G, X, BX."""
        r, g1, g2 = self.r, self.g1, self.g2
        return np.array([[-r, r, 0.0], [g1, -(g1 + r), r], [0.0, g2, -g2]])

    def undetected(self) -> np.ndarray:
        """Sub-generator of the moves that give no detection (per ns)."""
        q = self.generator()
        q[1, 0] *= 1.0 - self.c
        q[2, 1] *= 1.0 - self.b
        return q

    def exits(self) -> np.ndarray:
        """Detection rate out of each level (per ns): X -> G (an X photon), BX -> X."""
        return np.array([0.0, self.c * self.g1, self.b * self.g2])


def ladder(tau1_ns, tau2_ns, eta1, eta2, power, tau_x_ns, efficiency=1.0) -> Ladder:
    """The ladder of a state with lifetimes ``tau1``, ``tau2`` (ns) at ``power`` (Psat),
    pumped at ``R = power / tau_x_ns``."""
    return Ladder(power / tau_x_ns, 1.0 / tau1_ns, 1.0 / tau2_ns, eta1, eta2, efficiency)


def ladder_of(m, power: float, charged: bool = False) -> Ladder:
    """The neutral (or charged) ladder of model ``m`` at ``power``."""
    one, two = (m.trion, m.charged_biexciton) if charged else (m.exciton, m.biexciton)
    return ladder(
        one.lifetime_ns,
        two.lifetime_ns,
        one.quantum_yield,
        two.quantum_yield,
        power,
        m.exciton.lifetime_ns,
        m.detection.efficiency,
    )


def stationary(lad: Ladder) -> np.ndarray:
    """(p_G, p_X, p_BX) of the birth-death chain (detailed balance)."""
    w = np.array([1.0, lad.r / lad.g1, lad.r**2 / (lad.g1 * lad.g2)])
    return w / w.sum()


def emitted_rate(lad: Ladder) -> float:
    """Photons emitted per ns (both rungs): ``p_X eta_1 Gamma_1 + p_BX eta_2 Gamma_2``."""
    p = stationary(lad)
    return float(p[1] * lad.eta1 * lad.g1 + p[2] * lad.eta2 * lad.g2)


def detected_rate(lad: Ladder) -> float:
    """Photons detected per ns, before dead time."""
    p = stationary(lad)
    return float(p @ lad.exits())


def two_level_rate(eta: float, tau_ns: float, power: float) -> float:
    """Emitted photons per ns of a two-level emitter: ``eta Gamma P / (1 + P)``."""
    return eta / tau_ns * power / (1.0 + power)


def two_level_dip_rate(tau_ns: float, power: float) -> float:
    """``R + Gamma`` (per ns) of the two-level dip ``1 - exp(-(R + Gamma) |tau|)``."""
    return (1.0 + power) / tau_ns


def two_level_g2(tau_ns, tau_x_ns: float, power: float):
    """The two-level antibunching ``1 - exp(-(R + Gamma) |tau|)``."""
    return 1.0 - np.exp(-two_level_dip_rate(tau_x_ns, power) * np.abs(np.asarray(tau_ns)))


def ladder_g2_zero(lad: Ladder) -> float:
    """PHYSICS.md 8: ``eta_1 eta_2 R Gamma_1 / (p_X (eta_1 Gamma_1 + eta_2 R)^2)``."""
    p_x = stationary(lad)[1]
    den = p_x * (lad.eta1 * lad.g1 + lad.eta2 * lad.r) ** 2
    return float(lad.eta1 * lad.eta2 * lad.r * lad.g1 / den) if den > 0 else math.nan


def ladder_g2(tau_ns, lad: Ladder) -> np.ndarray:
    """The whole ``g2(tau)`` of the emitted photons (any delay, either sign) by the
    quantum-regression form of the chain: after a photon the ladder sits one rung lower,
    ``g2(tau) = sum_j pi_j(after) [exp(G |tau|) e]_j / I`` with ``e`` the emission rate of
    each level and ``I`` the mean rate (scipy's ``expm``; independent of the kernel's
    tables)."""
    from scipy.linalg import expm

    gen = lad.generator()
    p = stationary(lad)
    emit = np.array([0.0, lad.eta1 * lad.g1, lad.eta2 * lad.g2])  # photons per ns per level
    rate = float(p @ emit)
    after = np.array([p[1] * emit[1], p[2] * emit[2], 0.0]) / rate  # level after a photon
    taus = np.abs(np.atleast_1d(np.asarray(tau_ns, float)))
    out = np.array([after @ expm(gen * t) @ emit / rate for t in taus])
    return out.reshape(np.shape(tau_ns))


def ladder_tables(lad: Ladder, unit_ns: float = 1e-3):
    """Eigen tables of the undetected evolution, times in ``unit_ns`` (default ps):
    ``lam`` (3,) eigenvalues (ascending: most negative first), ``coef`` (3 start levels,
    3 modes, 3 levels) with ``[e_s^T exp(Q t)]_j = sum_k coef[s, k, j] exp(lam_k t)``,
    and ``exits`` (3,) the detection rate of each level. ``Q`` is similar to a symmetric
    matrix (``D Q D^-1`` with ``D`` from the products of its off-diagonal pairs), whose
    eigenvectors are orthogonal: no ill-conditioned inverse."""
    q = lad.undetected() * unit_ns
    # yields or efficiency of 1 leave no way down undetected: a hair's breadth keeps the
    # similarity (the chance that differs is below 1e-12 per decay)
    tiny = 1e-12 * np.abs(np.diag(q)).max()
    q[1, 0], q[2, 1] = max(q[1, 0], tiny), max(q[2, 1], tiny)
    d1 = math.sqrt(q[0, 1] / q[1, 0])
    d = np.array([1.0, d1, d1 * math.sqrt(q[1, 2] / q[2, 1])])
    sym = d[:, None] * q / d[None, :]
    sym = 0.5 * (sym + sym.T)
    lam, u = np.linalg.eigh(sym)
    # exp(Q t) = D^-1 U diag(e^{lam t}) U^T D
    coef = np.einsum("sk,jk->skj", u / d[:, None], u * d[:, None])
    return lam, coef, lad.exits() * unit_ns


def absorption_ratios(m, power: float) -> tuple[float, float]:
    """The drive of photo-charging under CW relative to that at Psat, from the neutral
    ladder: absorptions per unit time ``R (p_G + p_X)`` (what trapping after an absorption
    scales with) and biexciton formations ``R p_X`` (Auger ionisation needs two
    excitations); the CW counterparts of the pulsed ``P(n >= 1)`` and ``P(n >= 2)``."""

    def drive(p):
        lad = ladder_of(m, p)
        pg, px, _ = stationary(lad)
        return lad.r * (pg + px), lad.r * px

    a, b = drive(float(power))
    a1, b1 = drive(1.0)
    return a / a1, b / b1


# ---- forms of a model (both charge states, blinking) -------------------------------------


def state_rates(m, power: float) -> np.ndarray:
    """Detected emitter photons per second (before dead time) in the (neutral, charged)
    state under CW."""
    return np.array([detected_rate(ladder_of(m, power, q)) * 1e9 for q in (False, True)])


def state_g2_zero(m, power: float) -> np.ndarray:
    """The ladder's g2(0) in the (neutral, charged) state (PHYSICS.md 8)."""
    return np.array([ladder_g2_zero(ladder_of(m, power, q)) for q in (False, True)])


def mixture_g2_zero(m, power: float) -> float:
    """g2(0) of a blinking CW emitter relative to its shoulder (delays of a few lifetimes,
    far below the dwells): ``sum_q p_q I_q^2 g2_q(0) / sum_q p_q I_q^2``, ``p_q`` the
    time fractions and ``I_q`` the detected rates of the two charge states."""
    from .closed_forms import neutral_fraction

    p = neutral_fraction(m, power)
    w = np.array([p, 1.0 - p]) * state_rates(m, power) ** 2
    return float(np.sum(w * state_g2_zero(m, power)) / np.sum(w))


def bleach_rate_hz(m, power: float) -> float:
    """Bleaching hazard under CW: the per-excitation probability times the neutral
    ladder's absorptions per second, ``p_b R (p_G + p_X)`` (drawn apart from the photons,
    as under pulsed excitation)."""
    if not m.bleaching.enabled:
        return 0.0
    lad = ladder_of(m, power)
    pg, px, _ = stationary(lad)
    return m.bleaching.probability_per_excitation * lad.r * (pg + px) * 1e9
