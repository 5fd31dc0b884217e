"""The key tree: every random number of a simulation descends from one root key.

``root = jax.random.key(seed, impl="threefry2x32")``; each consumer folds in its stream
number, then its index (emitter, spot, block, batch), so a number depends only on *what* it
is for, never on how many NCs run together, on the chunk size or on the device. An emitter's
index is its place in the call (``0 .. n-1``) unless the caller gives ids (a sweep gives
each point ``replica * 2**20 + point``, :mod:`simsps.sweep`):

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
5  ``CW_LADDER``      emitter ``e``: the CW ladder's level at the start (its
                      events use the ``PULSES`` words of their block,
                      :mod:`simsps.sim.cw_kernel`: pairs 0-2 per slot)
10 ``ENSEMBLE``       spot ``s``: the population of a substrate
30 ``WIDEFIELD``      dilution: a widefield movie
====================  =========================================================
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

PULSES, FLICKER, BLEACH, DETECTORS, SLOW_BLINKING, CW_LADDER = 0, 1, 2, 3, 4, 5
ENSEMBLE, WIDEFIELD = 10, 30
BLINK_STREAMS = {"blinking": FLICKER, "slow_blinking": SLOW_BLINKING}


def root(seed: int) -> jax.Array:
    """The root key of ``seed`` (typed, threefry2x32)."""
    return jax.random.key(int(seed), impl="threefry2x32")


def stream(key: jax.Array, number: int) -> jax.Array:
    """Stream ``number`` of the tree (the table of the module doc)."""
    return jax.random.fold_in(key, number)


def indices(n_or_ids) -> jax.Array:
    """The emitter indices a call is for: ``0 .. n-1`` for an integer ``n``, else the given
    ids (uint32; a sweep's points, whose numbers must not depend on which batch runs them)."""
    if isinstance(n_or_ids, (int, np.integer)):
        return jnp.arange(int(n_or_ids), dtype=jnp.uint32)
    ids = np.asarray(n_or_ids)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"emitter ids must be a 1-d integer array, got {ids!r}")
    if ids.size and (ids.min() < 0 or ids.max() >= 2**32):
        raise ValueError("emitter ids must lie in [0, 2**32)")
    return jnp.asarray(ids.astype(np.uint32))


def per_index(key: jax.Array, n_or_ids) -> jax.Array:
    """``fold_in(key, i)`` for ``i`` in 0 .. n-1 (or for each of the given ids)."""
    return jax.vmap(jax.random.fold_in, (None, 0))(key, indices(n_or_ids))


def emitter_keys(root_key: jax.Array, n_or_ids) -> jax.Array:
    """Each emitter's pulse key; the kernel folds in the block."""
    return per_index(stream(root_key, PULSES), n_or_ids)


def blink_key(root_key: jax.Array, section: str, emitter: int) -> jax.Array:
    """The dwell key of one blinking process (``"blinking"`` or ``"slow_blinking"``)."""
    return jax.random.fold_in(stream(root_key, BLINK_STREAMS[section]), emitter)


def bleach_keys(root_key: jax.Array, n_or_ids) -> jax.Array:
    return per_index(stream(root_key, BLEACH), n_or_ids)
