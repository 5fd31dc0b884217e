"""Telegraph blinking between the neutral (bright) and charged (grey) NC.

Two independent processes of the same kind: the fast flicker (``[blinking]``, us) and the
slow blinking (``[slow_blinking]``, ms to s). The NC is charged while either of them is in
its grey state (:func:`combine_windows`).

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

The trajectory is generated on the host in batches keyed by batch index, so it is the same
whatever chunk size the simulation uses; the state of a pulse is the state at its start.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from .excitation import excitation_classes

__all__ = [
    "charging_factor",
    "dwell_parameters",
    "dwell_means",
    "sample_dwells",
    "residual_dwell",
    "BlinkTrajectory",
    "combine_windows",
    "telegraph_bunching",
]

BATCH = 1 << 14  # bright/grey dwell pairs drawn per key


def charging_factor(
    n_mean: float, auger_fraction: float, spontaneous_fraction: float = 0.0
) -> float:
    """Charging rate at mean excitation ``n_mean`` relative to that at Psat (module doc)."""
    p0, p1, p2 = excitation_classes(n_mean)
    r0, r1, r2 = excitation_classes(1.0)
    driven = (1 - auger_fraction) * (1 - p0) / (1 - r0) + auger_fraction * p2 / r2
    return spontaneous_fraction + (1 - spontaneous_fraction) * driven


def dwell_parameters(b, n_mean: float, rep_rate_hz: float) -> np.ndarray:
    """Scale parameters (pulses) of the bright and grey dwell laws at mean excitation ``n``
    (``b``: the model's ``blinking`` or ``slow_blinking`` section)."""
    f = charging_factor(n_mean, b.auger_charging_fraction, b.spontaneous_charging_fraction)
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


@partial(jax.jit, static_argnames=("kind", "n"))
def sample_dwells(key, scale, exponent, t_max, *, kind: str, n: int):
    """``n`` (bright, grey) dwell pairs in pulses, float32, shape (n, 2)."""
    u = jax.random.uniform(key, (n, 2), minval=jnp.finfo(jnp.float32).tiny, maxval=1.0)
    if kind == "exponential":
        return -jnp.log(u) * scale
    # truncated Pareto on [t_min, t_max], inverse CDF
    a = exponent - 1.0
    tail = (t_max / scale) ** (-a)
    return scale * (1.0 - u * (1.0 - tail)) ** (-1.0 / a)


def telegraph_bunching(p_bright: float, i_bright: float, i_grey: float) -> float:
    """Closed-form g2 bunching amplitude ``A`` of a two-level telegraph (PHYSICS.md 3)."""
    p_grey = 1.0 - p_bright
    mean = p_bright * i_bright + p_grey * i_grey
    return p_bright * p_grey * (i_bright - i_grey) ** 2 / mean**2


class BlinkTrajectory:
    """Switch times (in pulses, float64) of one emitter, produced on demand in order.

    ``window(start, stop)`` returns the state at pulse ``start`` and the switch pulses in
    ``[start, stop)`` relative to ``start`` (int64). Windows must be asked for in order.
    ``b`` is the model's ``blinking`` or ``slow_blinking`` section. Random numbers: the
    start (state, residual dwell) from ``fold_in(key, 0)``, dwell batch ``j`` from
    ``fold_in(key, j)``.
    """

    def __init__(self, key, b, n_mean: float, rep_rate_hz: float):
        self.enabled = b.enabled
        self.kind = b.dwell
        self.scale = dwell_parameters(b, n_mean, rep_rate_hz).astype(np.float32)
        self.exponent = np.float32(b.power_law_exponent)
        self.t_max = np.float32(b.power_law_max_s * rep_rate_hz)
        self.key = key
        self.batch = 0
        self.state0 = 0
        self._times = np.empty(0, np.float64)  # switch times still ahead
        self._t_end = 0.0  # time covered by generated dwells
        self._pair_first = 0  # state of the first dwell of each generated pair
        if self.enabled:
            u0, u1 = (
                float(x)
                for x in jax.random.uniform(
                    jax.random.fold_in(key, 0), (2,), minval=jnp.finfo(jnp.float32).tiny
                )
            )
            means = dwell_means(self.scale, self.kind, float(self.exponent), float(self.t_max))
            self.state0 = 0 if u0 < means[0] / means.sum() else 1
            self._pair_first = self.state0
            if self.kind != "exponential":  # memoryless otherwise: no residual needed
                first = float(
                    residual_dwell(
                        u1,
                        self.scale[self.state0],
                        self.kind,
                        float(self.exponent),
                        float(self.t_max),
                    )
                )
                self._times = np.array([first])
                self._t_end = first
                self._pair_first = 1 - self.state0
        self._state = self.state0  # the state before the first switch still ahead

    def _extend(self, until: float) -> None:
        parts = [self._times]
        t = self._t_end
        while t <= until:
            self.batch += 1
            d = np.asarray(
                sample_dwells(
                    jax.random.fold_in(self.key, self.batch),
                    self.scale,
                    self.exponent,
                    self.t_max,
                    kind=self.kind,
                    n=BATCH,
                ),
                dtype=np.float64,
            )
            if self._pair_first == 1:  # pairs start with the grey dwell
                d = d[:, ::-1]
            sw = t + np.cumsum(d.reshape(-1))
            parts.append(sw)
            t = float(sw[-1])
        self._times = np.concatenate(parts)
        self._t_end = t

    def window(self, start: int, stop: int) -> tuple[int, np.ndarray]:
        if not self.enabled:
            return 0, np.empty(0, np.int64)
        self._extend(float(stop))
        # drop switches before start (they only flip the running state)
        n_before = int(np.searchsorted(self._times, start, side="right"))
        if n_before:
            self._state ^= n_before & 1
            self._times = self._times[n_before:]
        n_in = int(np.searchsorted(self._times, stop, side="left"))
        rel = np.ceil(self._times[:n_in] - start).astype(np.int64)
        return self._state, rel


def combine_windows(*windows: tuple[int, np.ndarray]) -> tuple[int, np.ndarray]:
    """The charge state of an NC charged while any process is grey: from each process's
    ``(state at the window start, switch pulses)`` to the same for their OR. Every switch
    returned flips the combined state (two at the same pulse cancel, as they should)."""
    windows = [w for w in windows if w is not None]
    if len(windows) == 1:
        return windows[0]
    states = np.array([w[0] for w in windows], np.int64)
    rel = np.concatenate([w[1] for w in windows])
    which = np.concatenate([np.full(len(w[1]), k) for k, w in enumerate(windows)])
    order = np.argsort(rel, kind="stable")
    rel, which = rel[order], which[order]
    flips = np.zeros((len(windows), len(rel)), np.int64)
    flips[which, np.arange(len(rel))] = 1
    each = (states[:, None] + np.cumsum(flips, axis=1)) & 1  # every process after each switch
    combined = each.max(axis=0)
    before = np.concatenate([[states.max()], combined[:-1]])
    return int(states.max()), rel[combined != before]
