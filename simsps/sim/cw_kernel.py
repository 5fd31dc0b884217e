"""The jitted JAX kernel under continuous-wave excitation: detections of one (emitter, block).

Under CW the NC climbs and descends the G -> X -> BX ladder of :mod:`simsps.physics.cw`
without pause, so photons are not tied to pulses. The engine keeps its frame: time runs in
ticks of a 1 ns clock (``CW_CLOCK_HZ``; blocks of ``BLOCK_PULSES`` ticks, blink switches on
ticks, records as (tick, ps within it)), and this kernel fills the same slots as the
pulsed one (:class:`simsps.sim.kernel.SignalSlots`, photon rows 0 BX / 1 X, afterpulse
words on demand), so the chunk step (dead time, afterpulses, noise, ordering, truth) is
shared.

Exact event-driven sampling. From a level ``s`` the time to the next detection has the
survival ``S_s(t) = sum_k A[s, k] exp(lambda_k t)`` of the undetected sub-generator
(eigen tables of :func:`simsps.physics.cw.ladder_tables`), whatever the number of unseen
cycles in between. Each slot is one event, from three words of the block key with counter
(slot, pair): ``u1`` decides whether a detection comes before the next boundary (a blink
switch or the block's end), ``S(T) = u1`` gives its time (safeguarded Newton on
``log S``), ``u2`` which photon it is from the two exit densities at ``T`` (a BX photon
leaves the ladder at X, an X photon at G); at a boundary ``u2`` draws the level from the
occupations ``e_s^T exp(Q dt)`` normalised, and a switch changes the rates from there (the
excitation survives a change of charge). Times are whole ps from the block start (int32);
each interval is rounded to the ps.

Blocks run in parallel: the only thing a block takes from the one before is the ladder's
level at their boundary, so each block is run from all three levels (lanes) and the lanes
are chained afterwards, block by block, from the chunk's start level. Exact, and as
parallel as the pulsed kernel, for three times the work.

Bleaching is a time drawn apart from the photons (as under pulsed excitation, from the
mean absorption rate of the neutral ladder): photons emitted from it on are dropped. A
detection's arrival is its emission plus the IRF offset and the Gaussian jitter; the
slots of a block leave sorted by arrival (jitter can swap close photons), an arrival past
the block as a late photon of its last tick.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._pytree import pytree_dataclass
from ..physics import cw
from ..stream import Source
from ._jit import kernel_jit
from .kernel import (
    BLOCK_PULSES,
    SOURCE_SHIFT,
    STATE_SHIFT,
    KernelParams,
    SignalSlots,
    _noise,
    _normal,
    _quantise,
    _unit,
    _unit16_rows,
    _words,
    channel_bits,
    n_channels,
    route,
)
from .switching import chunk_switches, grey_pulses

__all__ = [
    "CWParams",
    "cw_params",
    "cw_chunk_kernel",
    "cw_chunk_kernel_from_switches",
    "cw_capacity",
    "cw_block_words",
    "CW_PAIRS",
    "NEWTON_STEPS",
]

CW_PAIRS = 3  # word pairs per slot: (u1, u2), (channel, jitter), (afterpulse decisions, -)
NEWTON_STEPS = 7  # safeguarded Newton steps (6 converge to float32 over the presets, tested)
_INT32_MAX = np.iinfo(np.int32).max
_T_MIN = 1e-3  # ps: shorter delays are 0 after rounding


@pytree_dataclass
class CWParams:
    """Per-emitter tables of the CW kernel (float32; leading axis of the charge state)."""

    lam: jax.Array  # (2, 3) eigenvalues of the undetected sub-generator, per ps
    coef: jax.Array  # (2, 3, 3, 3) [state, start level, mode, level]
    surv: jax.Array  # (2, 3, 3) [state, start level, mode]: survival coefficients
    exits: jax.Array  # (2, 3) detection rate of each level, per ps
    bound: jax.Array  # (2, 3) sum_k |surv[., s, k]|: S(t) <= bound exp(lam_max t)


def cw_params(m, power: float) -> CWParams:
    """The kernel's tables of model ``m`` at ``power`` (Psat), both charge states."""
    lam, coef, exits = zip(
        *(cw.ladder_tables(cw.ladder_of(m, power, charged=q)) for q in (False, True))
    )
    coef = np.array(coef)
    surv = coef.sum(axis=3)
    f32 = lambda x: jnp.asarray(np.asarray(x), jnp.float32)  # noqa: E731
    return CWParams(
        lam=f32(lam),
        coef=f32(coef),
        surv=f32(surv),
        exits=f32(exits),
        bound=f32(np.abs(surv).sum(axis=2)),
    )


def cw_capacity(m, power: float) -> int:
    """Slots per block for > 6 sigma: detections (at the larger state's rate) plus the
    blink switches of a block, plus the block end."""
    rate_ps = max(cw.detected_rate(cw.ladder_of(m, power, q)) for q in (False, True)) * 1e-3
    period_ps = 1e12 / cw.CW_CLOCK_HZ
    mean = rate_ps * BLOCK_PULSES * period_ps
    from .switching import window_capacity

    return _quantise(mean + 6 * np.sqrt(mean) + 16) + window_capacity([m], [power], BLOCK_PULSES)


def _unit32_pair(bits):
    """uint32 -> (v, 1 - v), ``v = (bits + 1/2) 2^-32``, each to float32's relative
    precision (the complement from the inverted bits): the inversion of a survival needs
    both tails, the short delays of a cascade (small ``v``) and the long gaps (small
    ``1 - v``)."""
    scale = jnp.float32(2.0**-32)
    v = (bits.astype(jnp.float32) + 0.5) * scale
    w = ((~bits).astype(jnp.float32) + 0.5) * scale
    return v, w


def _pick3(arr, i):
    """``arr[..., i, :]`` for i in {0, 1, 2} by select (gathers are slow on CPUs)."""
    return jnp.where(i == 0, arr[..., 0, :], jnp.where(i == 1, arr[..., 1, :], arr[..., 2, :]))


def _solve(v, w, lam, a, bound, hi):
    """T in (0, hi] with ``F(T) = 1 - S(T) = v`` (``w = 1 - v``, both exact from the
    word: :func:`_unit32_pair`) for the survival ``S(t) = sum_k a_k exp(lam_k t)``
    (``F(hi) > v``). Safeguarded Newton within a shrinking bracket: on
    ``log F`` against ``log t`` for ``v <= 1/2`` (``F ~ t`` or ``t^2`` near 0, so the
    short delays of a cascade keep their precision; ``F = -sum_k a_k expm1(lam_k t)``
    has no cancellation against 1) and on ``log S`` against ``t`` above (``S`` tends to
    its slowest mode, so long gaps converge at once)."""
    use_f = v <= 0.5
    log_w = jnp.log(w)
    target = jnp.where(use_f, jnp.log(v), log_w)
    slow = lam[2]
    # S(t) <= bound exp(slow t): S <= 1 - v from t1 = log((1 - v) / bound) / slow on
    t_hi = jnp.minimum(hi, jnp.maximum(log_w - jnp.log(bound), -80.0) / slow)
    t_hi = jnp.maximum(t_hi, _T_MIN)
    t0 = jnp.clip((log_w - jnp.log(jnp.maximum(a[2], 1e-30))) / slow, _T_MIN, t_hi)
    # the variable Newton steps in: log t (F branch) or t (S branch)
    to_x = lambda t: jnp.where(use_f, jnp.log(t), t)  # noqa: E731
    to_t = lambda x: jnp.where(use_f, jnp.exp(x), x)  # noqa: E731

    def body(_, c):
        x, lo, hi_ = c
        t = to_t(x)
        e = jnp.exp(lam * t)
        big_f = jnp.maximum(-jnp.sum(a * jnp.expm1(lam * t)), 1e-37)
        s = jnp.maximum(jnp.sum(a * e), 1e-37)
        dens = jnp.maximum(-jnp.sum(a * lam * e), 1e-37)  # f = -S' > 0
        h = jnp.where(use_f, jnp.log(big_f) - target, target - jnp.log(s))  # increasing
        dh = jnp.where(use_f, t * dens / big_f, dens / s)  # dh/dx
        lo = jnp.where(h < 0, x, lo)
        hi_ = jnp.where(h < 0, hi_, x)
        step = x - h / dh
        ok = (step >= lo) & (step <= hi_)
        return jnp.where(ok, step, 0.5 * (lo + hi_)), lo, hi_

    init = (to_x(t0), to_x(jnp.float32(_T_MIN)), to_x(t_hi))
    x, _, _ = jax.lax.fori_loop(0, NEWTON_STEPS, body, init)
    return to_t(x)


class _Lane(NamedTuple):
    """One lane's events of a block, slot axis last."""

    photon: jax.Array  # bool: the slot is a detection
    emit: jax.Array  # int32 emission time, ps from the block start
    bx: jax.Array  # bool: a BX (charged BX) photon, else X (trion)
    grey: jax.Array  # int32 charge state at emission
    end_level: jax.Array  # () int32 level at the block's end
    done: jax.Array  # () bool: the block's end was reached within the slots


def _lane(w, cwp: CWParams, level0, state0, switch_ps, block_ps):
    """The events of one block from ladder level ``level0`` and charge ``state0``;
    ``switch_ps`` (W,) the block's switch times, ps from its start (>= block_ps: none)."""
    v1, w1 = _unit32_pair(w[0])
    u2 = _unit(w[1])

    def body(c, x):
        t, level, q, k, done = c
        a1, b1, a2 = x
        nxt = switch_ps[jnp.minimum(k, switch_ps.shape[0] - 1)]
        nxt = jnp.where(k < switch_ps.shape[0], nxt, block_ps)
        is_switch = nxt < block_ps
        boundary = jnp.minimum(nxt, block_ps)
        dt = (boundary - t).astype(jnp.float32)
        grey = q == 1
        lam = jnp.where(grey, cwp.lam[1], cwp.lam[0])
        coef = _pick3(jnp.where(grey, cwp.coef[1], cwp.coef[0]).reshape(3, 9), level)
        coef = coef.reshape(3, 3)  # [mode, level]
        a = coef.sum(axis=1)
        bounds = jnp.where(grey, cwp.bound[1], cwp.bound[0])
        bound = jnp.where(level == 0, bounds[0], jnp.where(level == 1, bounds[1], bounds[2]))
        exits = jnp.where(grey, cwp.exits[1], cwp.exits[0])
        # a detection before the boundary: F(dt) >= v, in the precise tail
        f_dt = -jnp.sum(a * jnp.expm1(lam * dt))
        s_dt = jnp.sum(a * jnp.exp(lam * dt))
        detect = jnp.where(a1 <= 0.5, f_dt >= a1, s_dt <= b1) & ~done
        tt = _solve(a1, b1, lam, a, bound, dt)
        occ_t = jnp.sum(coef * jnp.exp(lam * jnp.where(detect, tt, dt))[:, None], axis=0)
        occ_t = jnp.maximum(occ_t, 0.0)
        f = occ_t * exits  # exit densities at T (level 1: X photon, 2: BX photon)
        bx = a2 * (f[1] + f[2]) < f[2]
        # the level at the boundary from the occupations, normalised
        cum = jnp.cumsum(occ_t)
        pick = jnp.sum((a2 * cum[2] >= cum[:2]).astype(jnp.int32))
        t_det = jnp.minimum(t + jnp.rint(tt).astype(jnp.int32), boundary)
        new_t = jnp.where(done, t, jnp.where(detect, t_det, boundary))
        new_level = jnp.where(done, level, jnp.where(detect, bx.astype(jnp.int32), pick))
        crossed = ~done & ~detect
        new_q = jnp.where(crossed & is_switch, 1 - q, q)
        new_k = jnp.where(crossed & is_switch, k + 1, k)
        new_done = done | (crossed & ~is_switch)
        out = (detect, t_det, bx, q)
        return (new_t, new_level, new_q, new_k, new_done), out

    init = (jnp.int32(0), level0, state0, jnp.int32(0), jnp.bool_(False))
    (_, end_level, _, _, done), (photon, emit, bx, grey) = jax.lax.scan(body, init, (v1, w1, u2))
    return _Lane(photon, emit, bx, grey, end_level, done)


def _extras(w, kp: KernelParams):
    """What a slot's detection needs besides the ladder, from its words: the delay of its
    arrival after emission (IRF offset + jitter, whole ps, >= 0), its channel and its
    afterpulse decisions (the channel as the tag's bits, :func:`kernel.channel_bits`)."""
    n = _normal(w[3])
    late = jnp.rint(jnp.maximum(kp.offset_ps + kp.jitter_ps * n, 0.0)).astype(jnp.int32)
    u = _unit16_rows(w[2])[0]
    if n_channels(kp) == 2:
        channel = (u > kp.split).astype(jnp.uint8)
    else:
        channel = route(u, kp.split, kp.arms)
    return late, channel_bits(channel), w[4]


def _block_slots(w, key_data, kp: KernelParams, lane: _Lane, bleach_ps, period):
    """A block's chosen lane as :class:`SignalSlots`, sorted by arrival."""
    late_ps, channel, decide = _extras(w, kp)
    valid = lane.photon & (lane.emit < bleach_ps)
    arrival = lane.emit + late_ps
    order = jnp.argsort(jnp.where(valid, arrival, _INT32_MAX), stable=True)
    take = lambda x: x[order]  # noqa: E731
    valid, arrival, bx, grey = take(valid), take(arrival), take(lane.bx), take(lane.grey)
    channel, decide = take(channel), take(decide)
    pos = arrival // period
    late = pos >= BLOCK_PULSES
    pos = jnp.where(valid, jnp.where(late, BLOCK_PULSES - 1, pos), BLOCK_PULSES)
    t = jnp.where(valid, arrival - pos * period, 0)
    row = jnp.arange(2, dtype=jnp.int32)[:, None]  # 0: BX photon, 1: X photon
    rows_valid = valid[None, :] & jnp.where(row == 0, bx[None, :], ~bx[None, :])
    g8 = grey.astype(jnp.uint8)
    src = jnp.where(
        row == 1,
        jnp.uint8(Source.EXCITON) + g8 * jnp.uint8(Source.TRION - Source.EXCITON),
        jnp.uint8(Source.BIEXCITON) + g8 * jnp.uint8(Source.CHARGED_BIEXCITON - Source.BIEXCITON),
    )
    tag = channel[None, :] | (src << SOURCE_SHIFT) | (g8[None, :] << STATE_SHIFT)
    t2 = jnp.broadcast_to(t[None, :], (2, t.shape[0])).astype(jnp.int32)
    return SignalSlots(
        valid=rows_valid,
        pos=pos.astype(jnp.int32),
        t_ps=t2,
        delay_ps=jnp.full(t2.shape, jnp.nan, jnp.float32),
        tag=tag,
        ap_decide=decide,
        block_key=key_data,
    )


@partial(kernel_jit, static_argnames=("n_blocks", "n_slots", "n_slots_bg"))
def cw_block_words(emitter_keys, block0, kp, *, n_blocks, n_slots, n_slots_bg):
    """For the numba ladder (:mod:`simsps.sim.host_cw`, CPUs): per (emitter, block) its key
    data, the ladder words of each slot (pair 0), the slots' arrival delays, channels and
    afterpulse decisions (:func:`_extras`), and the noise slots, as
    :func:`cw_chunk_kernel_from_switches` draws them."""

    def per_emitter(ke, kp):
        def per_block(b):
            kb = jax.random.key_data(jax.random.fold_in(ke, block0 + b))
            w = _words(kb, n_slots, CW_PAIRS)
            late, channel, decide = _extras(w, kp)
            bg, over = _noise(kb, kp, n_slots_bg)
            return kb, w[0], w[1], late, channel, decide, bg, over

        return jax.vmap(per_block)(jnp.arange(n_blocks, dtype=jnp.int32))

    return jax.vmap(per_emitter)(emitter_keys, kp)


def _per_emitter(ke, block0, kp, cwp, sw, base, s0, br, level0, n_blocks, n_slots, n_slots_bg,
                 window):  # fmt: skip
    period = kp.period_ps.astype(jnp.int32)
    block_ps = jnp.int32(BLOCK_PULSES) * period

    def prepare(b):
        kb = jax.random.key_data(jax.random.fold_in(ke, block0 + b))
        w = _words(kb, n_slots, CW_PAIRS)
        win = jax.lax.dynamic_slice(sw, (base[b],), (window,))
        rel = win - b * BLOCK_PULSES  # ticks from the block start (pads: huge)
        switch_ps = jnp.where(rel < BLOCK_PULSES, rel * period, block_ps)
        state_b = jnp.bitwise_and(s0 + base[b], 1)
        lanes = jax.vmap(lambda lv: _lane(w, cwp, lv, state_b, switch_ps, block_ps))(
            jnp.arange(3, dtype=jnp.int32)
        )
        return kb, w, lanes

    kb, w, lanes = jax.vmap(prepare)(jnp.arange(n_blocks, dtype=jnp.int32))

    # chain the lanes: the level entering block b + 1 is where block b's lane ends
    def chain(level, ends):
        return ends[level], level

    last, entry = jax.lax.scan(chain, level0, lanes.end_level)
    pick = lambda x: jax.vmap(lambda xb, lv: xb[lv])(x, entry)  # noqa: E731
    chosen = _Lane(*(pick(x) for x in lanes))
    over = ~chosen.done

    def finish(b, kb_b, w_b, lane_b):
        bleach_ps = jnp.clip(br - b * BLOCK_PULSES, 0, BLOCK_PULSES + 1) * period
        sig = _block_slots(w_b, kb_b, kp, lane_b, bleach_ps, period)
        bg, o2 = _noise(kb_b, kp, n_slots_bg)
        return sig, bg, o2

    sig, bg, o2 = jax.vmap(finish)(jnp.arange(n_blocks, dtype=jnp.int32), kb, w, chosen)
    return sig, bg, over | o2, last


@partial(kernel_jit, static_argnames=("n_blocks", "n_slots", "n_slots_bg", "window"))
def cw_chunk_kernel_from_switches(
    emitter_keys, block0, kp, cwp, switch, sw_base, state0, bleach_rel, level0,
    *, n_blocks, n_slots, n_slots_bg, window,
):  # fmt: skip
    """Signal and noise slots of ``n_blocks`` blocks from ``block0`` for every emitter,
    the blink switches given (``switch`` (E, S) int32 ticks from the chunk start,
    ``sw_base`` (E, n_blocks), ``state0`` (E,)), ``level0`` (E,) the ladder's level at the
    chunk start, ``bleach_rel`` (E,) the bleach tick from the chunk start. Returns
    (signal, noise, overflow (E, n_blocks), level after the chunk (E,))."""
    fn = partial(
        _per_emitter, block0=block0, n_blocks=n_blocks, n_slots=n_slots,
        n_slots_bg=n_slots_bg, window=window,
    )  # fmt: skip
    return jax.vmap(
        lambda ke, kp_, cwp_, sw, base, s0, br, lv: fn(
            ke, kp=kp_, cwp=cwp_, sw=sw, base=base, s0=s0, br=br, level0=lv
        )
    )(emitter_keys, kp, cwp, switch, sw_base, state0, bleach_rel, level0)


@partial(
    kernel_jit,
    static_argnames=("n_blocks", "n_slots", "n_slots_bg", "n_dwells", "dwell_kinds", "window"),
)
def cw_chunk_kernel(
    emitter_keys, block0, kp, cwp, blink, blink_params, bleach_rel, level0, end=None,
    *, n_blocks, n_slots, n_slots_bg, n_dwells, dwell_kinds, window,
):  # fmt: skip
    """:func:`cw_chunk_kernel_from_switches` with the chunk's blink switches drawn in the
    same call (accelerators). Returns (signal, noise, slot overflow, blink carry, blink
    overflow, grey ticks, level after the chunk)."""
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
    sig, bg, over, level = cw_chunk_kernel_from_switches.__wrapped__(
        emitter_keys, block0, kp, cwp, switch, sw_base, state0, bleach_rel, level0,
        n_blocks=n_blocks, n_slots=n_slots, n_slots_bg=n_slots_bg, window=window,
    )  # fmt: skip
    grey = grey_pulses(switch, state0, n_blocks * BLOCK_PULSES if end is None else end)
    return sig, bg, over, blink_next, blink_over, grey, level
