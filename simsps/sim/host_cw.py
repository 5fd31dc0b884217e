"""The CW ladder of :mod:`simsps.sim.cw_kernel` in numba, for CPUs.

XLA runs the kernel's scan over slots at several hundred ns per slot and lane on a CPU
(every Newton step of every lane, three lanes per block); numba walks each block once,
from the level the previous block left, and solves only when a detection comes, about
ten times faster. Same words, same float32 arithmetic, same steps, so the same events:
the two differ only where the CPU's ``expf``/``logf`` and XLA's differ in a last bit and
that bit moves a rounding or a comparison (tested: blocks identical between the two on
the CPU but for such rare events). The per-slot arrival delays, channels, afterpulse
decisions and the noise come from XLA (:func:`simsps.sim.cw_kernel.cw_block_words`,
vectorised); the slots leave as the kernel's :class:`simsps.sim.kernel.SignalSlots`.
"""

from __future__ import annotations

import numba
import numpy as np

from ..stream import Source
from .cw_kernel import _T_MIN, NEWTON_STEPS
from .kernel import BLOCK_PULSES, SOURCE_SHIFT, STATE_SHIFT, SignalSlots

__all__ = ["host_cw_chunk"]

_JIT = dict(nogil=True, cache=True)
_F = np.float32
_HALF = _F(0.5)
_TINY = _F(1e-37)
_SCALE32 = _F(2.0**-32)
_SCALE24 = _F(2.0**-24)
_INT32_MAX = np.iinfo(np.int32).max
_SRC = np.array(
    [
        [Source.BIEXCITON, Source.EXCITON],
        [Source.CHARGED_BIEXCITON, Source.TRION],
    ],
    np.uint8,
)


@numba.njit(inline="always", **_JIT)
def _solve(v, w, lam, a, bound, hi):
    """:func:`simsps.sim.cw_kernel._solve`, stopping at a fixed point (where further
    steps give the same number)."""
    use_f = v <= _HALF
    log_w = np.log(w)
    target = np.log(v) if use_f else log_w
    slow = lam[2]
    t_hi = min(hi, max(log_w - np.log(bound), _F(-80.0)) / slow)
    t_hi = max(t_hi, _F(_T_MIN))
    t0 = (log_w - np.log(max(a[2], _F(1e-30)))) / slow
    t0 = min(max(t0, _F(_T_MIN)), t_hi)
    if use_f:
        x, lo, up = np.log(t0), np.log(_F(_T_MIN)), np.log(t_hi)
    else:
        x, lo, up = t0, _F(_T_MIN), t_hi
    for _ in range(NEWTON_STEPS):
        t = np.exp(x) if use_f else x
        big_f = _F(0.0)
        s = _F(0.0)
        dens = _F(0.0)
        for k in range(3):
            lt = lam[k] * t
            e = np.exp(lt)
            big_f -= a[k] * np.expm1(lt)
            s += a[k] * e
            dens -= a[k] * lam[k] * e
        big_f, s, dens = max(big_f, _TINY), max(s, _TINY), max(dens, _TINY)
        if use_f:
            h = np.log(big_f) - target
            dh = t * dens / big_f
        else:
            h = target - np.log(s)
            dh = dens / s
        if h < 0:
            lo = x
        else:
            up = x
        step = x - h / dh
        nxt = step if (step >= lo and step <= up) else _HALF * (lo + up)
        if nxt == x:
            break
        x = nxt
    return np.exp(x) if use_f else x


@numba.njit(**_JIT)
def _block(w0, w1, lam, coef, bound, exits, level, q, switch_ps, block_ps, emit, bx, grey):
    """One block's walk from ``level`` and charge ``q``; returns (slots used, level at the
    end, reached the end); detections written to ``emit``, ``bx``, ``grey`` by slot
    (``emit`` -1: no detection)."""
    n_slots = len(w0)
    n_sw = len(switch_ps)
    t = np.int32(0)
    k = 0
    a = np.empty(3, np.float32)
    occ = np.empty(3, np.float32)
    for i in range(n_slots):
        nxt = switch_ps[k] if k < n_sw else block_ps
        is_switch = nxt < block_ps
        boundary = min(nxt, block_ps)
        dt = _F(boundary - t)
        c = coef[q, level]  # (mode, level)
        for m in range(3):
            a[m] = c[m, 0] + c[m, 1] + c[m, 2]
        lq = lam[q]
        bits = w0[i]
        v = (_F(bits) + _HALF) * _SCALE32
        ww = (_F(np.uint32(0xFFFFFFFF) - bits) + _HALF) * _SCALE32
        if v <= _HALF:
            f_dt = _F(0.0)
            for m in range(3):
                f_dt -= a[m] * np.expm1(lq[m] * dt)
            detect = f_dt >= v
        else:
            s_dt = _F(0.0)
            for m in range(3):
                s_dt += a[m] * np.exp(lq[m] * dt)
            detect = s_dt <= ww
        tt = _solve(v, ww, lq, a, bound[q, level], dt) if detect else dt
        for j in range(3):
            x = _F(0.0)
            for m in range(3):
                x += c[m, j] * np.exp(lq[m] * tt)
            occ[j] = max(x, _F(0.0))
        u2 = _F((w1[i] >> 8) + 1) * _SCALE24
        if detect:
            f1, f2 = occ[1] * exits[q, 1], occ[2] * exits[q, 2]
            is_bx = u2 * (f1 + f2) < f2
            t = min(t + np.int32(np.rint(tt)), boundary)
            emit[i], bx[i], grey[i] = t, is_bx, q
            level = 1 if is_bx else 0
            continue
        emit[i] = -1
        c0, c1 = occ[0], occ[0] + occ[1]
        c2 = c1 + occ[2]
        level = np.int32(u2 * c2 >= c0) + np.int32(u2 * c2 >= c1)
        t = boundary
        if not is_switch:
            return i + 1, level, True
        q = 1 - q
        k += 1
    return n_slots, level, False


@numba.njit(**_JIT)
def _chunk(w0, w1, late_ps, channel, decide, lam, coef, bound, exits, switch, base, state0,
           bleach_rel, level, period, valid, pos, t_out, tag, decide_out):  # fmt: skip
    """Every block of one emitter's chunk: walk, then the slots sorted by arrival as
    :func:`simsps.sim.cw_kernel._block_slots` leaves them. Returns (level after the chunk,
    overflow)."""
    nb, n_slots = w0.shape
    block_ps = np.int32(BLOCK_PULSES * period)
    emit = np.empty(n_slots, np.int32)
    bx = np.empty(n_slots, np.bool_)
    grey = np.empty(n_slots, np.int32)
    key = np.empty(n_slots, np.int64)
    overflow = False
    n_sw = len(switch)
    for b in range(nb):
        start = base[b]
        stop = base[b + 1] if b + 1 < nb else n_sw
        while stop > start and switch[stop - 1] >= (b + 1) * BLOCK_PULSES:
            stop -= 1
        sw_ps = (switch[start:stop] - np.int32(b * BLOCK_PULSES)) * np.int32(period)
        q = np.int32((state0 + start) & 1)
        used, level, done = _block(
            w0[b], w1[b], lam, coef, bound, exits, np.int32(level), q, sw_ps, block_ps,
            emit, bx, grey,
        )  # fmt: skip
        overflow |= not done
        bleach_ps = np.int64(min(max(bleach_rel - b * BLOCK_PULSES, 0), BLOCK_PULSES + 1)) * period
        n = 0
        for i in range(used):
            if emit[i] >= 0 and emit[i] < bleach_ps:
                key[n] = (np.int64(emit[i] + late_ps[b, i]) << 20) | i  # arrival, then slot
                n += 1
        srt = np.sort(key[:n])
        for r in range(n_slots):
            if r < n:
                i = srt[r] & ((1 << 20) - 1)
                arrival = np.int32(srt[r] >> 20)
                p = arrival // period
                if p >= BLOCK_PULSES:
                    p = BLOCK_PULSES - 1
                pos[b, r] = p
                tt = arrival - p * period
                g = np.uint8(grey[i])
                row = 0 if bx[i] else 1
                valid[b, row, r] = True
                valid[b, 1 - row, r] = False
                t_out[b, 0, r] = tt
                t_out[b, 1, r] = tt
                t8 = channel[b, i] | (g << STATE_SHIFT)
                tag[b, 0, r] = t8 | (_SRC[g, 0] << SOURCE_SHIFT)
                tag[b, 1, r] = t8 | (_SRC[g, 1] << SOURCE_SHIFT)
                decide_out[b, r] = decide[b, i]
            else:
                pos[b, r] = BLOCK_PULSES
                valid[b, 0, r] = False
                valid[b, 1, r] = False
                t_out[b, 0, r] = 0
                t_out[b, 1, r] = 0
                tag[b, 0, r] = 0
                tag[b, 1, r] = 0
                decide_out[b, r] = 0
    return level, overflow


def host_cw_chunk(words, cwp, switch, base, state0, bleach_rel, level, period: int):
    """The chunk's signal slots of every emitter from :func:`simsps.sim.cw_kernel.
    cw_block_words`'s ``words`` (NumPy), the ladder tables ``cwp`` (NumPy leaves, leading
    axis emitter), the blink switches (``switch`` (E, S) ticks from the chunk start,
    ``base`` (E, n_blocks), ``state0`` (E,)), ``bleach_rel`` (E,) and the ladder's
    ``level`` (E,) at the chunk start. Returns (:class:`SignalSlots` of NumPy arrays,
    overflow (E,), level after the chunk (E,))."""
    kb, w0, w1, late, channel, decide = words
    n_e, nb, c = w0.shape
    valid = np.empty((n_e, nb, 2, c), np.bool_)
    pos = np.empty((n_e, nb, c), np.int32)
    t_ps = np.empty((n_e, nb, 2, c), np.int32)
    tag = np.empty((n_e, nb, 2, c), np.uint8)
    decide_out = np.empty((n_e, nb, c), np.uint32)
    over = np.zeros(n_e, bool)
    level_next = np.empty(n_e, np.int32)
    for e in range(n_e):
        level_next[e], over[e] = _chunk(
            w0[e], w1[e], late[e], channel[e], decide[e], cwp.lam[e], cwp.coef[e],
            cwp.bound[e], cwp.exits[e], np.asarray(switch[e], np.int32),
            np.asarray(base[e], np.int64), int(state0[e]), int(bleach_rel[e]), int(level[e]),
            int(period), valid[e], pos[e], t_ps[e], tag[e], decide_out[e],
        )  # fmt: skip
    sig = SignalSlots(
        valid=valid,
        pos=pos,
        t_ps=t_ps,
        delay_ps=np.full(t_ps.shape, np.nan, np.float32),
        tag=tag,
        ap_decide=decide_out,
        block_key=kb,
    )
    return sig, over, level_next
