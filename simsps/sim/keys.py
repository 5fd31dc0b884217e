"""The key tree: every random number of a simulation descends from one root key.

``root = jax.random.key(seed, impl="threefry2x32")``; each consumer folds in its stream
number, then its index (emitter, spot, block, batch), so a number depends only on *what* it
is for, never on how many NCs run together, on the chunk size or on the device:

====================  =========================================================
stream (``fold_in``)  then
====================  =========================================================
0  ``PULSES``         emitter ``e``, block ``b``: candidate pulses and noise
                      (:mod:`simsps.sim.kernel`; words by counter (slot, pair)
                      within a block: pairs 0-3 for every candidate, pair
                      4 + photon for a photon's afterpulse, drawn on demand by the
                      step; noise from counter 2^16 on)
1  ``FLICKER``        emitter ``e``, then 0: the fast blinking's stationary start,
                      1: its dwell key (dwell ``g`` by threefry counter,
                      :mod:`simsps.sim.switching`)
2  ``BLEACH``         emitter ``e``: the bleach time
3  ``DETECTORS``      retired (afterpulses use their parent photon's block words,
                      :mod:`simsps.sim.step`); the number stays reserved
4  ``SLOW_BLINKING``  emitter ``e``: the slow blinking's (as ``FLICKER``)
10 ``ENSEMBLE``       spot ``s``: the population of a substrate
30 ``WIDEFIELD``      dilution: a widefield movie
====================  =========================================================
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

PULSES, FLICKER, BLEACH, DETECTORS, SLOW_BLINKING = 0, 1, 2, 3, 4
ENSEMBLE, WIDEFIELD = 10, 30
BLINK_STREAMS = {"blinking": FLICKER, "slow_blinking": SLOW_BLINKING}


def root(seed: int) -> jax.Array:
    """The root key of ``seed`` (typed, threefry2x32)."""
    return jax.random.key(int(seed), impl="threefry2x32")


def stream(key: jax.Array, number: int) -> jax.Array:
    """Stream ``number`` of the tree (the table of the module doc)."""
    return jax.random.fold_in(key, number)


def per_index(key: jax.Array, n: int) -> jax.Array:
    """``fold_in(key, i)`` for ``i`` in 0 .. n-1, shape (n,)."""
    return jax.vmap(jax.random.fold_in, (None, 0))(key, jnp.arange(n, dtype=jnp.uint32))


def emitter_keys(root_key: jax.Array, n_emitters: int) -> jax.Array:
    """Each emitter's pulse key; the kernel folds in the block."""
    return per_index(stream(root_key, PULSES), n_emitters)


def blink_key(root_key: jax.Array, section: str, emitter: int) -> jax.Array:
    """The dwell key of one blinking process (``"blinking"`` or ``"slow_blinking"``)."""
    return jax.random.fold_in(stream(root_key, BLINK_STREAMS[section]), emitter)


def bleach_keys(root_key: jax.Array, n_emitters: int) -> jax.Array:
    return per_index(stream(root_key, BLEACH), n_emitters)
