"""The true charge-state trajectory of each NC: every switch between neutral (bright) and
charged (grey), as the engine's kernel applies it, for ground-truth sidecars.

The blink switches depend only on (seed, NC index, model, power) (:mod:`simsps.sim.keys`:
streams ``FLICKER`` and ``SLOW_BLINKING``), never on the photons, so they are replayed here
from the same key tree with the engine's host functions (XLA dwells,
:mod:`simsps.sim.host_switching`), chunk by chunk with bounded memory. A switch at pulse
``p`` (CW: clock tick) means pulse ``p`` is the first in the new state; the state is the
OR of the fast flicker and the slow blinking (charged while either is grey).
"""

from __future__ import annotations

from typing import Iterator, NamedTuple

import numpy as np

from ..params.model import Model
from . import keys, switching
from .host_switching import host_switches
from .kernel import BLOCK_PULSES

__all__ = ["SwitchChunk", "iter_switches"]

_INT32_MAX = np.iinfo(np.int32).max
CHUNK_BLOCKS = 16  # 2^18 x 16 pulses: 1.7 s at 2.5 MHz per step


class SwitchChunk(NamedTuple):
    """Switches of one chunk, in time order per NC: ``emitter`` (int32), ``pulse`` (int64,
    absolute; CW: 1 ns ticks) and ``state`` after the switch (uint8, 1 = charged)."""

    emitter: np.ndarray
    pulse: np.ndarray
    state: np.ndarray


def iter_switches(
    model: Model, duration_s: float, power: float = 1.0, seed: int = 0, *, emitters: int = 1
) -> tuple[np.ndarray, Iterator[SwitchChunk]]:
    """(state of each NC at pulse 0, iterator of :class:`SwitchChunk`) of
    ``simsps.simulate(model, duration_s, power, seed, emitters=emitters)``'s NCs."""
    models = [model] * int(emitters)
    powers = np.full(int(emitters), float(power))
    n_pulses = int(round(float(duration_s) * model.clock_hz))
    root = keys.root(seed)
    laws = switching.blink_params(models, powers, root, int(emitters))
    carry = switching.initial_blink_carry(models, powers, root, int(emitters))
    kinds = switching.dwell_kinds(models)
    nb = CHUNK_BLOCKS
    n_dwells = switching.dwell_capacity(models, powers, nb * BLOCK_PULSES)
    # the state at pulse 0 (the stationary start): charged while any process is grey
    state0 = np.asarray(carry.state).max(axis=1) > 0

    def chunks():
        nonlocal carry, n_dwells
        for block in range(0, -(-n_pulses // BLOCK_PULSES), nb):
            while True:  # the engine's rule: more dwells, the same numbers
                limbs = switching.dwell_limbs(carry, laws, n_dwells=n_dwells, kinds=kinds)
                switch, _, s0, new, over = host_switches(
                    limbs,
                    carry,
                    block,
                    n_blocks=nb,
                    n_dwells=n_dwells,
                    window=None,
                    block_pulses=BLOCK_PULSES,
                )
                if not over.any():
                    break
                n_dwells = tuple(2 * x for x in n_dwells)
            carry = new
            start = block * BLOCK_PULSES
            valid = (switch < _INT32_MAX) & (switch < n_pulses - start)
            e, k = np.nonzero(valid)  # row-major: per NC in time order
            p = switch[e, k].astype(np.int64)
            # switches of both processes on one pulse: an even number of them cancel
            new_run = np.ones(len(p), bool)
            new_run[1:] = (e[1:] != e[:-1]) | (p[1:] != p[:-1])
            first = np.flatnonzero(new_run)
            odd = (np.diff(np.append(first, len(p))) & 1).astype(bool)
            e, k, p = e[first[odd]], k[first[odd]], p[first[odd]]
            # the NC's j-th kept switch of the chunk leaves it in state0 ^ ((j + 1) & 1)
            j = np.arange(len(e)) - np.searchsorted(e, e)
            state = (s0[e] ^ ((j + 1) & 1)).astype(np.uint8)
            yield SwitchChunk(e.astype(np.int32), p + start, state)

    return np.asarray(state0, np.uint8), chunks()
