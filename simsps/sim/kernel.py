"""The jitted JAX kernel: candidate pulses and noise events of one (emitter, block).

Event-driven sampling. Per block of ``BLOCK_PULSES`` pulses, the pulses that give at least
one detection (before dead time) form a Bernoulli process; the kernel samples it by
thinning: candidate pulses are drawn with geometric gaps at the largest per-pulse
probability over charge states ``q_max``; each candidate is kept with probability
``q_state / q_max`` and its outcome (X only, BX only, both, ...) is drawn from the same
uniform. Noise (dark counts, uniform and prompt background) is a Poisson count per block
with independent uniform positions.

Random words are threefry2x32 of the block key with counter (slot, word pair), called
directly, so slot ``i`` gets the same numbers whatever the capacity: a block that
overflows is simply recomputed with more slots, and the stream does not depend on it.
A slot draws four pairs: (gap, outcome), the two emission delays, the two jitters, and
(channels as 16-bit halves, first afterpulse decisions as 16-bit halves); the rest are
24-bit uniforms. A photon that afterpulses (about 1 in 140 for the presets) needs three
more 16-bit numbers, its afterpulse's own decision and both delay quantiles: they are the
words of pair ``AFTERPULSE_PAIR + photon`` of its slot, drawn on demand by the step from
the block key the kernel passes on (:mod:`simsps.sim.step`; integer arithmetic only).
A photon's arrival after its pulse is clamped at 0 (a TTTR record cannot precede its own
sync; with the presets' 2 ns IRF offset and 150 ps jitter this never happens).
Everything inside is 32-bit; arrival times leave the kernel rounded to whole ps (int32).
The float expressions (``log``, ``erf_inv``, ``sqrt``, ``cos``, ``sin`` and products) are the only
operations of a simulation whose last bit may differ between XLA's CPU and GPU backends.
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._pytree import pytree_dataclass
from ..physics.cascade import Outcome
from ..stream import Source
from ._jit import kernel_jit
from .switching import chunk_switches, grey_pulses
from .threefry import threefry2x32

__all__ = [
    "BLOCK_PULSES",
    "KernelParams",
    "SignalSlots",
    "NoiseSlots",
    "chunk_kernel",
    "chunk_kernel_from_switches",
    "chunk_kernel_from_states",
    "signal_capacity",
    "noise_capacity",
]

BLOCK_PULSES = 1 << 18
STATE_WORDS = BLOCK_PULSES // 32  # uint32 words of a block's state bits
SLOT_QUANTUM = 64  # the smallest capacity; capacities are buckets (see _quantise)
_TWO_PI = np.float32(2 * np.pi)
_NOISE_STREAM = 1 << 16  # counter offset of the noise words within a block
SIGNAL_PAIRS = 4  # word pairs drawn for every candidate slot
# a photon's tag byte (the low bits of simsps.sim.step's packed fields): channel bit 0 in
# bit 0 and its bit 1 in bit 7 (bits 5-6 are the step's afterpulse flags)
SOURCE_SHIFT, STATE_SHIFT, CHANNEL_HIGH_SHIFT = 1, 4, 7
AFTERPULSE_PAIR = 4  # + photon (0 BX, 1 X): a detected photon's afterpulse words, on demand

# noise categories, in the order of KernelParams.bg_cum: dark counts of channel 0 .. n - 1,
# then the uniform and the prompt background (n + 0, n + 1)
UNIFORM, PROMPT = 0, 1  # after the n dark categories


def channel_bits(channel):
    """A channel (0-3) as the tag's bits: bit 0 and bit ``CHANNEL_HIGH_SHIFT``."""
    return (channel & 1) | ((channel & 2) << (CHANNEL_HIGH_SHIFT - 1))


def channel_of(bits):
    """The channel of tag (or packed) bits: the inverse of :func:`channel_bits`."""
    return (bits & 1) | ((bits >> (CHANNEL_HIGH_SHIFT - 1)) & 2)


def route(u, split, arms):
    """The detector of a photon from its uniform ``u`` in [0, 1): the first HBT arm when
    ``u <= split`` (channels 0 .. arms[0] - 1), else the second (arms[0] .. + arms[1] - 1),
    the rest of ``u`` choosing uniformly within the arm. With one detector per arm it is
    ``u > split``, bit for bit. ``u`` has 16 bits: the choice within an arm of share ``s``
    has about ``2^16 s`` levels, so its split is exact to ~1/(2^16 s) (0.2 % at s = 0.01)."""
    in_a = u <= split
    frac = jnp.where(
        in_a, u / jnp.maximum(split, 1e-30), (u - split) / jnp.maximum(1.0 - split, 1e-30)
    )
    n = jnp.where(in_a, arms[..., 0], arms[..., 1])
    k = jnp.minimum(jnp.floor(jnp.clip(frac, 0.0, 1.0) * n), n - 1.0)
    return (k + jnp.where(in_a, 0.0, arms[..., 0])).astype(jnp.uint8)


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
    split: jax.Array  # () probability of the first HBT arm
    arms: jax.Array  # (2,) detectors in each arm (n // 2, n - n // 2)
    period_ps: jax.Array  # ()
    bg_lam: jax.Array  # () expected noise events per block
    bg_cum: jax.Array  # (n + 2,) cumulative fractions: dark ch0 .. ch n-1, uniform, prompt
    prompt_tau_ps: jax.Array  # ()


class SignalSlots(NamedTuple):
    """Candidate pulses of one block (slot axis last; photon axis 0 = BX, 1 = X/T)."""

    valid: jax.Array  # (2, C) bool: the photon exists and is detected
    pos: jax.Array  # (C,) int32 pulse within the block
    t_ps: jax.Array  # (2, C) int32 arrival after the pulse (delay + offset + jitter), ps
    delay_ps: jax.Array  # (2, C) float32 emission delay after the pulse
    tag: jax.Array  # (2, C) uint8: channel | Source << SOURCE_SHIFT | state << STATE_SHIFT
    ap_decide: jax.Array  # (C,) uint32 afterpulse decisions: BX photon (high 16), X (low 16)
    block_key: jax.Array  # (2,) uint32 the block's key: a photon's further afterpulse words


class NoiseSlots(NamedTuple):
    """Dark counts and background events of one block (slot axis last)."""

    valid: jax.Array  # (C,) bool
    pos: jax.Array  # (C,) int32
    t_ps: jax.Array  # (C,) int32 ps
    channel: jax.Array  # (C,) uint8
    source: jax.Array  # (C,) uint8 Source
    ap_a: jax.Array  # (C,) uint32 afterpulse decisions: this event's (high 16), its
    #                  afterpulse's (low 16)
    ap_b: jax.Array  # (C,) uint32 afterpulse delay quantiles: 1st (high 16), 2nd (low 16)


def n_channels(kp: KernelParams) -> int:
    """The number of detectors (static: the length of the noise categories less two)."""
    return kp.bg_cum.shape[-1] - 2


def _quantise(n: float) -> int:
    """The smallest bucket ``64 x 2^k x {1, 5/4, 3/2, 7/4}`` holding ``n`` slots: four
    buckets per octave, so a sweep over parameters compiles the kernel a few times while a
    bucket wastes at most a fifth of its slots (the kernel's cost is per slot), and
    doubling a bucket (overflow) gives a bucket."""
    if n <= SLOT_QUANTUM:
        return SLOT_QUANTUM
    k = max(0, math.ceil(math.log2(n / SLOT_QUANTUM)) - 1)
    base = SLOT_QUANTUM << k  # base < n <= 2 base
    return next(base * q // 4 for q in (5, 6, 7, 8) if n <= base * q // 4)


def signal_capacity(q_max: float) -> int:
    """Candidate slots per block so that overflow is a > 6 sigma event."""
    mean = BLOCK_PULSES * q_max
    sd = math.sqrt(BLOCK_PULSES * q_max * (1 - q_max))
    return _quantise(mean + 6 * sd + 16)


def noise_capacity(lam: float) -> int:
    return _quantise(lam + 6 * math.sqrt(lam) + 16)


def _unit(bits):
    """uint32 -> float32 uniform on (0, 1] (24-bit grid)."""
    return ((bits >> 8) + 1).astype(jnp.float32) * jnp.float32(2.0**-24)


def _unit16_rows(bits):
    """uint32 (C,) -> (2, C) float32 uniforms on (0, 1): the high 16 bits (row 0) and the
    low 16 bits (row 1)."""
    shift = jnp.array([16, 0], jnp.uint32)[:, None]
    return (((bits[None, :] >> shift) & 0xFFFF).astype(jnp.float32) + 0.5) * jnp.float32(2.0**-16)


def _words(key_data, n_slots: int, n_pairs: int, offset: int = 0):
    """Raw threefry words, (2 n_pairs, n_slots) uint32: word pair ``j`` of slot ``i`` is
    ``threefry2x32(key, (i, offset + j))``. A slot's words depend only on its index, so
    recomputing a block with more slots reproduces the first ones exactly. All pairs are
    hashed in one array, so XLA computes the hash once and does not copy it into each
    consumer of a word."""
    shape = (n_pairs, n_slots)
    i = jnp.broadcast_to(jnp.arange(n_slots, dtype=jnp.uint32), shape)
    j = jnp.broadcast_to(jnp.arange(offset, offset + n_pairs, dtype=jnp.uint32)[:, None], shape)
    y1, y2 = threefry2x32(key_data[0], key_data[1], i, j)
    return jnp.stack([y1, y2], axis=1).reshape(2 * n_pairs, n_slots)


def _normal(bits):
    """uint32 -> standard normal by inversion, ``sqrt(2) erfinv(2u - 1)`` with ``u`` on the
    open 23-bit grid, so |z| < 5.3 (as ``jax.random.normal``; no ``sin``/``cos``, which are slow on CPUs)."""
    u = ((bits >> 9) * 2 + 1).astype(jnp.float32) * jnp.float32(2.0**-23) - 1.0
    return jnp.float32(np.sqrt(2.0)) * jax.lax.erf_inv(u)


def _normal_pair(u1, u2):
    r = jnp.sqrt(-2.0 * jnp.log(u1))
    return r * jnp.cos(_TWO_PI * u2), r * jnp.sin(_TWO_PI * u2)


def _signal(key_data, kp: KernelParams, state_at, bleach_rel, block_local, n_slots):
    """Candidate pulses of one block; ``state_at(pos)`` gives the charge state (0 or 1) at
    the pulses ``pos`` of the block (sorted, some past its end)."""
    w = _words(key_data, n_slots, SIGNAL_PAIRS)
    big = jnp.float32(BLOCK_PULSES + 1)
    gap = jnp.minimum(jnp.floor(jnp.log(_unit(w[0])) / kp.log1m_q), big - 1).astype(jnp.int32) + 1
    pos = jnp.cumsum(gap) - 1
    in_block = pos < BLOCK_PULSES
    overflow = pos[-1] < BLOCK_PULSES
    chunk_pos = block_local * BLOCK_PULSES + pos
    state = state_at(pos)
    grey = state == 1
    alive = chunk_pos < bleach_rel
    # per-state numbers by select, not gather (gathers are slow on CPUs)
    v = _unit(w[1]) * kp.q_max
    cat = sum(
        (v >= jnp.where(grey, kp.cum[1, k], kp.cum[0, k])).astype(jnp.int32) for k in range(4)
    )
    ok = in_block & alive & (cat < Outcome.NOTHING)
    # the two photons as rows (0: BX, 1: X/T) of (2, C) arrays, computed by broadcasting so
    # that XLA writes them in place (stacking rows made it transpose and copy)
    is_x = (jnp.arange(2, dtype=jnp.int32) == 1)[:, None]
    tau = jnp.where(
        is_x,
        jnp.where(grey, kp.tau1_ps[1], kp.tau1_ps[0]),
        jnp.where(grey, kp.tau2_ps[1], kp.tau2_ps[0]),
    )
    e = -jnp.log(_unit(w[2:4])) * tau  # emission delays: BX after its pulse, X after the BX
    after_bx = is_x & (cat != Outcome.SINGLE)  # the X photon follows a BX photon
    delay = e + jnp.where(after_bx, e[0][None, :], 0.0)
    n = _normal(w[4:6])
    c = _unit16_rows(w[6])  # channel choice: BX from the high half, X from the low
    has_bx = (cat == Outcome.BX_ONLY) | (cat == Outcome.BOTH)
    valid = ok & jnp.where(is_x, cat != Outcome.BX_ONLY, has_bx)
    t = jnp.rint(jnp.maximum(delay + kp.offset_ps + kp.jitter_ps * n, 0.0))
    if n_channels(kp) == 2:
        channel = (c > kp.split).astype(jnp.uint8)
    else:
        channel = route(c, kp.split, kp.arms[None, :])
    g8 = grey.astype(jnp.uint8)
    src = jnp.where(
        is_x,
        jnp.uint8(Source.EXCITON) + g8 * jnp.uint8(Source.TRION - Source.EXCITON),
        jnp.uint8(Source.BIEXCITON) + g8 * jnp.uint8(Source.CHARGED_BIEXCITON - Source.BIEXCITON),
    )
    tag = channel_bits(channel) | (src << SOURCE_SHIFT) | (g8 << STATE_SHIFT)
    return SignalSlots(
        valid=valid,
        pos=pos,
        t_ps=t.astype(jnp.int32),
        delay_ps=delay,
        tag=tag,
        ap_decide=w[7],
        block_key=key_data,
    ), overflow


def _noise(key_data, kp: KernelParams, n_slots):
    w = _words(key_data, n_slots + 1, 4, offset=_NOISE_STREAM)
    u = [_unit(x[1:]) for x in w]
    count = _poisson(w[0][0], w[1][0], kp.bg_lam)
    valid = jnp.arange(n_slots) < count
    pos = jnp.minimum(jnp.floor((1.0 - u[0]) * BLOCK_PULSES), BLOCK_PULSES - 1).astype(jnp.int32)
    x = u[1]
    n_ch = n_channels(kp)
    cat = jnp.sum(x[:, None] > kp.bg_cum[None, :-1], axis=1)
    lo = jnp.where(cat == 0, 0.0, kp.bg_cum[jnp.maximum(cat - 1, 0)])
    frac = (x - lo) / jnp.maximum(kp.bg_cum[cat] - lo, 1e-30)  # uniform within category
    if n_ch == 2:
        ch_split = (frac > kp.split).astype(jnp.uint8)
    else:
        ch_split = route(frac, kp.split, kp.arms)
    dark = cat < n_ch
    channel = jnp.where(dark, cat, ch_split).astype(jnp.uint8)
    nz, _ = _normal_pair(u[3], u[4])
    prompt_t = kp.offset_ps + kp.jitter_ps * nz - jnp.log(u[5]) * kp.prompt_tau_ps
    uniform_t = (1.0 - u[2]) * kp.period_ps
    t = jnp.where(cat == n_ch + PROMPT, jnp.maximum(prompt_t, 0.0), uniform_t)
    source = jnp.select(
        [dark, cat == n_ch + UNIFORM], [Source.DARK, Source.BACKGROUND], Source.PROMPT_BACKGROUND
    ).astype(jnp.uint8)
    return NoiseSlots(
        valid=valid,
        pos=pos,
        t_ps=jnp.rint(t).astype(jnp.int32),
        channel=channel,
        source=source,
        ap_a=w[6][1:],
        ap_b=w[7][1:],
    ), count > n_slots


def _poisson(b1, b2, lam):
    """Poisson(lam) from two words, via the keyed sampler of jax.random."""
    key = jax.random.wrap_key_data(jnp.stack([b1, b2]), impl="threefry2x32")
    return jax.random.poisson(key, lam).astype(jnp.int32)


@partial(
    kernel_jit,
    static_argnames=("n_blocks", "n_slots", "n_slots_bg", "n_dwells", "dwell_kinds", "window"),
)
def chunk_kernel(
    emitter_keys,
    block0,
    kp,
    blink,
    blink_params,
    bleach_rel,
    end=None,
    *,
    n_blocks,
    n_slots,
    n_slots_bg,
    n_dwells,
    dwell_kinds,
    window,
):
    """Signal and noise events of ``n_blocks`` blocks from ``block0`` for every emitter,
    the chunk's blink switches drawn in the same call (accelerators).

    ``emitter_keys``: (E,) typed keys; ``kp``: KernelParams with leading axis E;
    ``blink``, ``blink_params``: the :class:`simsps.sim.switching.BlinkCarry` at the chunk
    start and the dwell laws (:func:`simsps.sim.switching.chunk_switches`; each block then
    searches only its own window of ``window`` switches); ``bleach_rel``: (E,) int32 bleach
    pulse relative to the chunk start; ``end``: the pulses of the chunk that belong to the
    run (int32, default all), over which the grey pulses are counted. Returns
    (:class:`SignalSlots`, :class:`NoiseSlots`, slot overflow, blink carry after the chunk,
    blink overflow, grey pulses); slots and overflow with leading axes (E, n_blocks), the
    blink overflow and the pulses of the chunk each NC spends charged (E,).
    """
    switch, sw_base, state0, blink_next, blink_over = chunk_switches(
        blink,
        blink_params,
        block0,
        n_blocks=n_blocks,
        n_dwells=n_dwells,
        kinds=dwell_kinds,
        window=window,
        block_pulses=BLOCK_PULSES,
    )
    sig, bg, over = chunk_kernel_from_switches(
        emitter_keys,
        block0,
        kp,
        switch,
        sw_base,
        state0,
        bleach_rel,
        n_blocks=n_blocks,
        n_slots=n_slots,
        n_slots_bg=n_slots_bg,
        window=window,
    )
    grey = grey_pulses(switch, state0, n_blocks * BLOCK_PULSES if end is None else end)
    return sig, bg, over, blink_next, blink_over, grey


@partial(kernel_jit, static_argnames=("n_blocks", "n_slots", "n_slots_bg", "window"))
def chunk_kernel_from_switches(
    emitter_keys,
    block0,
    kp,
    switch,
    sw_base,
    state0,
    bleach_rel,
    *,
    n_blocks,
    n_slots,
    n_slots_bg,
    window,
):
    """:func:`chunk_kernel` with the blink switches given (CPUs: drawn by
    :func:`simsps.sim.host_switching.host_switches`): ``switch`` (E, S) int32 pulses
    relative to the chunk start, ``sw_base`` (E, n_blocks) how many precede each block,
    ``state0`` (E,) the charge state at the chunk start. Returns (signal, noise, overflow)."""

    def per_emitter(ke, kp, sw, base, s0, br):
        def per_block(b):
            kb = jax.random.key_data(jax.random.fold_in(ke, block0 + b))
            win = jax.lax.dynamic_slice(sw, (base[b],), (window,))

            def state_at(pos):  # the switches before the block and those of its window
                n = base[b] + jnp.searchsorted(
                    win, b * BLOCK_PULSES + pos, side="right", method="scan"
                )
                return jnp.bitwise_and(s0 + n, 1)

            sig, o1 = _signal(kb, kp, state_at, br, b, n_slots)
            bg, o2 = _noise(kb, kp, n_slots_bg)
            return sig, bg, o1 | o2

        return jax.vmap(per_block)(jnp.arange(n_blocks, dtype=jnp.int32))

    return jax.vmap(per_emitter)(emitter_keys, kp, switch, sw_base, state0, bleach_rel)


@partial(kernel_jit, static_argnames=("n_blocks", "n_slots", "n_slots_bg"))
def chunk_kernel_from_states(
    emitter_keys, block0, kp, states, bleach_rel, *, n_blocks, n_slots, n_slots_bg
):
    """:func:`chunk_kernel` with the charge state of every pulse given as bits (CPUs:
    :func:`simsps.sim.host_switching.state_bits`): ``states`` (E, n_blocks,
    BLOCK_PULSES / 32) uint32, bit ``p % 32`` of word ``p // 32`` the state at pulse ``p``
    of the block. One lookup per candidate instead of a binary search over the switches
    (gathers are slow on CPUs); the same states, so the same slots. Returns (signal, noise,
    overflow)."""

    def per_emitter(ke, kp, bits, br):
        def per_block(b):
            kb = jax.random.key_data(jax.random.fold_in(ke, block0 + b))
            words = bits[b]

            def state_at(pos):
                word = words[jnp.minimum(pos >> 5, STATE_WORDS - 1)]
                return ((word >> (pos & 31).astype(jnp.uint32)) & 1).astype(jnp.int32)

            sig, o1 = _signal(kb, kp, state_at, br, b, n_slots)
            bg, o2 = _noise(kb, kp, n_slots_bg)
            return sig, bg, o1 | o2

        return jax.vmap(per_block)(jnp.arange(n_blocks, dtype=jnp.int32))

    return jax.vmap(per_emitter)(emitter_keys, kp, states, bleach_rel)
