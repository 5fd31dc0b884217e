"""The jitted JAX kernel: candidate pulses and noise events of one (emitter, block).

Event-driven sampling. Per block of ``BLOCK_PULSES`` pulses, the pulses that give at least
one detection (before dead time) form a Bernoulli process; the kernel samples it by
thinning: candidate pulses are drawn with geometric gaps at the largest per-pulse
probability over charge states ``q_max``; each candidate is kept with probability
``q_state / q_max`` and its outcome (X only, BX only, both, ...) is drawn from the same
uniform. Noise (dark counts, uniform and prompt background) is a Poisson count per block
with independent uniform positions.

Random words come in sub-batches of ``SUB`` slots, each from its own key
``fold_in(block_key, sub_batch)``, so slot ``i`` gets the same numbers whatever the
capacity: a block that overflows is simply recomputed with more sub-batches.
Everything inside is 32-bit; absolute int64 times are assembled on the host.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ._pytree import pytree_dataclass
from .stream import Source

__all__ = ["BLOCK_PULSES", "SUB", "KernelParams", "chunk_kernel", "signal_capacity"]

BLOCK_PULSES = 1 << 16
SUB = 128
_SIG_WORDS = 10
_BG_WORDS = 7
_TWO_PI = np.float32(2 * np.pi)

# noise categories, in the order of KernelParams.bg_cum
DARK0, DARK1, UNIFORM, PROMPT = 0, 1, 2, 3


@pytree_dataclass
class KernelParams:
    """Derived per-emitter numbers the kernel needs (float32 leaves; state axis = 2)."""

    q_max: jax.Array  # () largest per-pulse detection probability over states
    log1m_q: jax.Array  # () log(1 - q_max)
    cum: jax.Array  # (2, 4) cumulative outcome probabilities per state
    tau1_ps: jax.Array  # (2,) X, T lifetimes
    tau2_ps: jax.Array  # (2,) BX, charged BX lifetimes
    jitter_ps: jax.Array  # () Gaussian sigma
    offset_ps: jax.Array  # ()
    split: jax.Array  # () probability of channel 0
    period_ps: jax.Array  # ()
    bg_lam: jax.Array  # () expected noise events per block
    bg_cum: jax.Array  # (4,) cumulative fractions: dark ch0, dark ch1, uniform, prompt
    prompt_tau_ps: jax.Array  # ()


def signal_capacity(q_max: float) -> int:
    """Sub-batches per block so that overflow is a > 6 sigma event."""
    mean = BLOCK_PULSES * q_max
    sd = math.sqrt(BLOCK_PULSES * q_max * (1 - q_max))
    return max(1, math.ceil((mean + 6 * sd + 16) / SUB))


def noise_capacity(lam: float) -> int:
    return max(1, math.ceil((lam + 6 * math.sqrt(lam) + 16) / SUB))


def _unit(bits):
    """uint32 -> float32 uniform on (0, 1] (24-bit grid)."""
    return ((bits >> 8) + 1).astype(jnp.float32) * jnp.float32(2.0**-24)


def _words(key, n_sub, n_words):
    keys = jax.vmap(jax.random.fold_in, (None, 0))(key, jnp.arange(n_sub, dtype=jnp.uint32))
    bits = jax.vmap(lambda k: jax.random.bits(k, (n_words, SUB), jnp.uint32))(keys)
    # (n_sub, n_words, SUB) -> (n_words, n_sub * SUB)
    return _unit(jnp.transpose(bits, (1, 0, 2)).reshape(n_words, n_sub * SUB))


def _normal_pair(u1, u2):
    r = jnp.sqrt(-2.0 * jnp.log(u1))
    return r * jnp.cos(_TWO_PI * u2), r * jnp.sin(_TWO_PI * u2)


def _signal(key, kp: KernelParams, switch, state0, bleach_rel, block_local, n_sub):
    u = _words(key, n_sub, _SIG_WORDS)
    big = jnp.float32(BLOCK_PULSES + 1)
    gap = jnp.minimum(jnp.floor(jnp.log(u[0]) / kp.log1m_q), big - 1).astype(jnp.int32) + 1
    pos = jnp.cumsum(gap) - 1
    in_block = pos < BLOCK_PULSES
    overflow = pos[-1] < BLOCK_PULSES
    chunk_pos = block_local * BLOCK_PULSES + pos
    n_sw = jnp.searchsorted(switch, chunk_pos, side="right")
    state = jnp.bitwise_xor(state0, n_sw & 1).astype(jnp.int32)
    alive = chunk_pos < bleach_rel
    v = u[1] * kp.q_max
    cat = jnp.sum(v[:, None] >= kp.cum[state], axis=1)  # 4: nothing detected
    ok = in_block & alive & (cat < 4)
    e1 = -jnp.log(u[2]) * kp.tau1_ps[state]
    e2 = -jnp.log(u[3]) * kp.tau2_ps[state]
    n1, n2 = _normal_pair(u[4], u[5])
    has_bx = ok & ((cat == 1) | (cat == 3))
    has_x = ok & (cat != 1)
    d_x = jnp.where(cat == 0, e1, e2 + e1)
    delay = jnp.stack([e2, d_x])
    t = jnp.maximum(delay + kp.offset_ps + kp.jitter_ps * jnp.stack([n1, n2]), 0.0)
    channel = (jnp.stack([u[6], u[7]]) > kp.split).astype(jnp.uint8)
    src_bx = jnp.where(state == 0, Source.BIEXCITON, Source.CHARGED_BIEXCITON)
    src_x = jnp.where(state == 0, Source.EXCITON, Source.TRION)
    return dict(
        valid=jnp.stack([has_bx, has_x]),
        pos=jnp.stack([pos, pos]),
        t_ps=t,
        delay_ps=delay,
        channel=channel,
        source=jnp.stack([src_bx, src_x]).astype(jnp.uint8),
        state=jnp.stack([state, state]).astype(jnp.uint8),
        uap=jnp.stack([u[8], u[9]]),
    ), overflow


def _noise(key, kp: KernelParams, n_sub):
    count = jax.random.poisson(jax.random.fold_in(key, 0), kp.bg_lam).astype(jnp.int32)
    u = _words(jax.random.fold_in(key, 1), n_sub, _BG_WORDS)
    n = n_sub * SUB
    valid = jnp.arange(n) < count
    pos = jnp.minimum(jnp.floor((1.0 - u[0]) * BLOCK_PULSES), BLOCK_PULSES - 1).astype(jnp.int32)
    w = u[1]
    cat = jnp.sum(w[:, None] > kp.bg_cum[None, :3], axis=1)
    lo = jnp.where(cat == 0, 0.0, kp.bg_cum[jnp.maximum(cat - 1, 0)])
    frac = (w - lo) / jnp.maximum(kp.bg_cum[cat] - lo, 1e-30)  # uniform within category
    ch_split = (frac > kp.split).astype(jnp.uint8)
    channel = jnp.where(cat == DARK0, 0, jnp.where(cat == DARK1, 1, ch_split)).astype(jnp.uint8)
    nz, _ = _normal_pair(u[3], u[4])
    prompt_t = kp.offset_ps + kp.jitter_ps * nz - jnp.log(u[5]) * kp.prompt_tau_ps
    uniform_t = (1.0 - u[2]) * kp.period_ps
    t = jnp.where(cat == PROMPT, jnp.maximum(prompt_t, 0.0), uniform_t)
    source = jnp.select(
        [cat <= DARK1, cat == UNIFORM], [Source.DARK, Source.BACKGROUND], Source.PROMPT_BACKGROUND
    ).astype(jnp.uint8)
    return dict(
        valid=valid, pos=pos, t_ps=t, channel=channel, source=source, uap=u[6]
    ), count > n


@partial(jax.jit, static_argnames=("n_blocks", "n_sub", "n_sub_bg"))
def chunk_kernel(emitter_keys, block0, kp, switch, state0, bleach_rel, *, n_blocks, n_sub, n_sub_bg):
    """Signal and noise events of ``n_blocks`` blocks from ``block0`` for every emitter.

    ``emitter_keys``: (E,) typed keys; ``kp``: KernelParams with leading axis E;
    ``switch``: (E, S) int32 blink-switch pulses relative to the chunk start, padded with
    int32 max; ``state0``, ``bleach_rel``: (E,) int32. Returns (signal, noise, overflow).
    """

    def per_emitter(ke, kp, sw, s0, br):
        def per_block(b):
            kb = jax.random.fold_in(ke, block0 + b)
            sig, o1 = _signal(jax.random.fold_in(kb, 0), kp, sw, s0, br, b, n_sub)
            bg, o2 = _noise(jax.random.fold_in(kb, 1), kp, n_sub_bg)
            return sig, bg, o1 | o2

        return jax.vmap(per_block)(jnp.arange(n_blocks, dtype=jnp.int32))

    return jax.vmap(per_emitter)(emitter_keys, kp, switch, state0, bleach_rel)
