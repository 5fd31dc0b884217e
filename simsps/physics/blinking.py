"""Telegraph blinking between the neutral (bright) and charged (grey) NC.

Dwell times alternate bright, grey, bright, ... and are either exponential (mean given by
the preset at Psat) or truncated power laws ``p(t) ~ t^-m`` on ``[t_min, t_max]``.
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

from ..model import Blinking
from .excitation import excitation_classes

__all__ = [
    "charging_factor",
    "dwell_parameters",
    "sample_dwells",
    "BlinkTrajectory",
    "telegraph_bunching",
]

BATCH = 1 << 14  # bright/grey dwell pairs drawn per key


def charging_factor(n_mean: float, auger_fraction: float,
                    spontaneous_fraction: float = 0.0) -> float:
    """Charging rate at mean excitation ``n_mean`` relative to that at Psat (module doc)."""
    p0, p1, p2 = excitation_classes(n_mean)
    r0, r1, r2 = excitation_classes(1.0)
    driven = (1 - auger_fraction) * (1 - p0) / (1 - r0) + auger_fraction * p2 / r2
    return spontaneous_fraction + (1 - spontaneous_fraction) * driven


def dwell_parameters(b: Blinking, n_mean: float, rep_rate_hz: float) -> np.ndarray:
    """Scale parameters (pulses) of the bright and grey dwell laws at mean excitation ``n``."""
    f = charging_factor(n_mean, b.auger_charging_fraction, b.spontaneous_charging_fraction)
    to_pulses = 1e-6 * rep_rate_hz
    return np.array([b.bright_dwell_us * to_pulses / f, b.grey_dwell_us * to_pulses])


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
    """

    def __init__(self, key, b: Blinking, n_mean: float, rep_rate_hz: float):
        self.enabled = b.enabled
        self.kind = b.dwell
        self.scale = dwell_parameters(b, n_mean, rep_rate_hz).astype(np.float32)
        self.exponent = np.float32(b.power_law_exponent)
        self.t_max = np.float32(b.power_law_max_s * rep_rate_hz)
        self.key = key
        self.batch = 0
        self.state0 = 0
        if self.enabled:
            u0 = float(jax.random.uniform(jax.random.fold_in(key, 0)))
            if self.kind == "exponential":
                p_bright = self.scale[0] / self.scale.sum()
                self.state0 = 0 if u0 < p_bright else 1
        # switch times still ahead, and the state before the first of them
        self._times = np.empty(0, np.float64)
        self._state = self.state0
        self._t_end = 0.0  # time covered by generated dwells

    def _extend(self, until: float) -> None:
        parts = [self._times]
        t = self._t_end
        while t <= until:
            self.batch += 1
            d = np.asarray(
                sample_dwells(
                    jax.random.fold_in(self.key, self.batch), self.scale, self.exponent,
                    self.t_max, kind=self.kind, n=BATCH,
                ),
                dtype=np.float64,
            )
            if self.state0 == 1:  # the first dwell of a grey start is a grey dwell
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
