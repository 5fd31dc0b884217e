"""The chunk step of :mod:`simsps.sim.step` on the host, in numba, for CPUs.

XLA's scatters, cumulative sums and sorts run at ~10 ns per element on a CPU, so the
device step costs several times the kernel there; the same integer logic as loops in numba
costs a few ns per *event*. The engine uses this module when JAX runs on the CPU and
:func:`simsps.sim.step.step` on an accelerator. Both follow the same rules (read them in
:mod:`simsps.sim.step`) and give identical records from the same kernel output, which the
tests check; the carried state is the same too (:class:`HostCarry` holds it in NumPy).
"""

from __future__ import annotations

import dataclasses

import numba
import numpy as np

from ..stream import Source
from .kernel import AFTERPULSE_PAIR, BLOCK_PULSES
from .step import (
    FAR_PAST,
    MEMBER_SHIFT,
    PARENT_SHIFT,
    SECOND_SHIFT,
    SOURCE_SHIFT,
    STATE_SHIFT,
    pack,
)
from .threefry import threefry2x32_host

__all__ = ["HostCarry", "host_step"]

_JIT = dict(nogil=True, cache=True)
_I32 = np.int32


def _empty_queue():
    return (
        np.empty(0, np.int64),
        np.empty(0, np.int64),
        np.empty(0, np.int64),
        np.empty(0, np.uint32),
        np.empty(0, np.float32),
    )


@dataclasses.dataclass
class HostCarry:
    """Per spot: the incident and afterpulse queues (pulse, t, meta, ap, delay; pulses
    relative to the next chunk) and the last kept (pulse, t) per channel of each pass."""

    incident: list
    afterpulses: list
    last1: np.ndarray  # (S, 2, 2) int64
    last2: np.ndarray

    @staticmethod
    def initial(n_spots: int) -> "HostCarry":
        far = np.zeros((n_spots, 2, 2), np.int64)
        far[:, :, 0] = FAR_PAST
        return HostCarry(
            [_empty_queue() for _ in range(n_spots)],
            [_empty_queue() for _ in range(n_spots)],
            far,
            far.copy(),
        )


def _pack(channel, source, state, parent, second, member):
    return pack(channel, source, state, parent, second, member, xp=np)


@numba.njit(**_JIT)
def _photon_meta(tag, decide, j, k, key, member, thr):
    """A photon's packed fields and afterpulse delay quantiles; the further afterpulse
    words (pair AFTERPULSE_PAIR + j of slot k) drawn only when it afterpulses."""
    first = (decide >> 16) if j == 0 else (decide & 0xFFFF)
    meta = np.int64(tag) | (np.int64(member) << MEMBER_SHIFT)
    ap = np.uint32(0)
    if first < thr:
        a, b = threefry2x32_host(key[0], key[1], k, AFTERPULSE_PAIR + j)
        meta |= np.int64(1) << PARENT_SHIFT
        if (a >> 16) < thr:
            meta |= np.int64(1) << SECOND_SHIFT
        ap = b
    return meta, ap


@numba.njit(**_JIT)
def _signal(pos, t, valid, tag, decide, keys, delay, member, end, period, thr):
    """One NC's kernel photons: the time-ordered ones (A) and the late ones (pulse, t
    normalised, in the kernel's (block, photon, slot) order), compact."""
    nb, _, c = t.shape
    n_max = 2 * nb * c
    out_p = np.empty(n_max, np.int64)
    out_t = np.empty(n_max, np.int64)
    out_m = np.empty(n_max, np.int64)
    out_a = np.empty(n_max, np.uint32)
    out_d = np.empty(n_max, np.float32)
    n = 0
    late_p = np.empty(n_max, np.int64)
    late_t = np.empty(n_max, np.int64)
    late_m = np.empty(n_max, np.int64)
    late_a = np.empty(n_max, np.uint32)
    late_d = np.empty(n_max, np.float32)
    nl = 0
    for b in range(nb):
        key = keys[b]
        for k in range(c):
            ps = pos[b, k]
            if ps >= BLOCK_PULSES:
                break  # slots past the block hold no photons
            pulse = b * BLOCK_PULSES + ps
            if pulse >= end:
                break
            ok0 = valid[b, 0, k] and t[b, 0, k] < period
            ok1 = valid[b, 1, k] and t[b, 1, k] < period
            first, second = 0, 1
            if ok0 and ok1 and t[b, 1, k] < t[b, 0, k]:
                first, second = 1, 0
            for j in (first, second):
                if ok0 if j == 0 else ok1:
                    out_p[n] = pulse
                    out_t[n] = t[b, j, k]
                    out_m[n], out_a[n] = _photon_meta(
                        tag[b, j, k], decide[b, k], j, k, key, member, thr
                    )
                    out_d[n] = delay[b, j, k]
                    n += 1
        # late photons in the kernel's (photon, slot) order
        for j in range(2):
            for k in range(c):
                ps = pos[b, k]
                if ps >= BLOCK_PULSES or b * BLOCK_PULSES + ps >= end:
                    break
                if valid[b, j, k] and t[b, j, k] >= period:
                    tt = np.int64(t[b, j, k])
                    late_p[nl] = b * BLOCK_PULSES + ps + tt // period
                    late_t[nl] = tt % period
                    late_m[nl], late_a[nl] = _photon_meta(
                        tag[b, j, k], decide[b, k], j, k, key, member, thr
                    )
                    late_d[nl] = delay[b, j, k]
                    nl += 1
    a = (out_p[:n], out_t[:n], out_m[:n], out_a[:n], out_d[:n])
    late = (late_p[:nl], late_t[:nl], late_m[:nl], late_a[:nl], late_d[:nl])
    return a, late


@numba.njit(**_JIT)
def _merge_dead_time(ap_, at_, am, aa, ad, bp, bt, bm, ba, bd, last, dead, period):
    """Merge two event sets sorted on (pulse, t), A first among equal keys, and keep the
    events a dead time after the last kept one of their channel (``last`` is updated):
    the kept events, in order."""
    na, nb = len(ap_), len(bp)
    n = na + nb
    op = np.empty(n, np.int64)
    ot = np.empty(n, np.int64)
    om = np.empty(n, np.int64)
    oa = np.empty(n, np.uint32)
    od = np.empty(n, np.float32)
    i = j = k = 0
    for _ in range(n):
        if j >= nb or (i < na and (ap_[i] < bp[j] or (ap_[i] == bp[j] and at_[i] <= bt[j]))):
            p, t, m, a, d = ap_[i], at_[i], am[i], aa[i], ad[i]
            i += 1
        else:
            p, t, m, a, d = bp[j], bt[j], bm[j], ba[j], bd[j]
            j += 1
        c = m & 1
        if (p - last[c, 0]) * period + (t - last[c, 1]) >= dead:
            last[c, 0] = p
            last[c, 1] = t
            op[k], ot[k], om[k], oa[k], od[k] = p, t, m, a, d
            k += 1
    return op[:k], ot[:k], om[:k], oa[:k], od[:k]


def _take(cols, idx):
    return tuple(c[idx] for c in cols)


def _concat(*sets):
    return tuple(np.concatenate(c) for c in zip(*sets))


def _sort_split(cols, end):
    """Stable sort on (pulse, t, meta); the events at or after ``end`` are queued."""
    order = np.lexsort((cols[2], cols[1], cols[0]))
    cols = _take(cols, order)
    stay = cols[0] < end
    queue = _take(cols, ~stay)
    return _take(cols, stay), (queue[0] - end,) + queue[1:]


def _merge_pass(a, b, last, dead, period):
    return _merge_dead_time(*a, *(c.astype(d.dtype) for c, d in zip(b, a)), last, dead, period)


def host_step(carry: HostCarry, slots, members, det, end: int, truth: bool = True):
    """:func:`simsps.sim.step.step` on NumPy copies of the kernel slots. ``det``: a dict of
    plain numbers (dead_ps, period_ps, ap_threshold, ap_table, resolution_ps). Returns the
    records of each spot as a dict of arrays (pulse, t, dtime, channel and the truth)."""
    sig, bg = slots
    dead, period, thr = int(det["dead_ps"]), int(det["period_ps"]), int(det["ap_threshold"])
    table = det["ap_table"]
    out = []
    for k, row in enumerate(members):
        present = [int(e) for e in row if e >= 0]
        a_parts, late_parts, noise_parts = [], [], []
        for mi, e in enumerate(present):
            a_set, late = _signal(
                sig.pos[e], sig.t_ps[e], sig.valid[e], sig.tag[e], sig.ap_decide[e],
                sig.block_key[e], sig.delay_ps[e], mi, end, period, thr,
            )  # fmt: skip
            a_parts.append(a_set)
            late_parts.append(late)
            nb = bg.pos.shape[1]
            bp = np.arange(nb, dtype=np.int64)[:, None] * BLOCK_PULSES + bg.pos[e]
            ok = bg.valid[e] & (bp < end)
            bt = bg.t_ps[e][ok].astype(np.int64)
            ba = bg.ap_a[e][ok]
            noise_parts.append(
                (
                    bp[ok] + bt // period,
                    bt % period,
                    _pack(bg.channel[e][ok], bg.source[e][ok], 0, (ba >> 16) < thr, (ba & 0xFFFF) < thr, 0),
                    bg.ap_b[e][ok],
                    np.full(len(bt), np.nan, np.float32),
                )
            )  # fmt: skip
        a = _concat(*a_parts)
        if len(present) > 1:
            a = _take(a, np.lexsort((a[1], a[0])))
        # small set: noise (member, block, slot order), late photons, carried events
        small, carry.incident[k] = _sort_split(
            _concat(*noise_parts, *late_parts, carry.incident[k]), end
        )
        kept = _merge_pass(a, small, carry.last1[k], dead, period)
        par = ((kept[2] >> PARENT_SHIFT) & 1) == 1
        pp, pt, pm, pa = kept[0][par], kept[1][par], kept[2][par], kept[3][par]
        t1 = pt + dead + table[(pa >> 16).astype(np.int64)]
        p1, t1 = pp + t1 // period, t1 % period
        t2 = t1 + dead + table[(pa & 0xFFFF).astype(np.int64)]
        p2, t2 = p1 + t2 // period, t2 % period
        sec = ((pm >> SECOND_SHIFT) & 1) == 1
        ch = np.concatenate([pm & 1, pm[sec] & 1])
        ap_meta = ch | (int(Source.AFTERPULSE) << SOURCE_SHIFT)
        n_ap = len(ch)
        aps, carry.afterpulses[k] = _sort_split(
            _concat(
                (
                    np.concatenate([p1, p2[sec]]),
                    np.concatenate([t1, t2[sec]]),
                    ap_meta,
                    np.zeros(n_ap, np.uint32),
                    np.full(n_ap, np.nan, np.float32),
                ),
                carry.afterpulses[k],
            ),
            end,
        )
        rec = _merge_pass(kept, aps, carry.last2[k], dead, period)
        for last in (carry.last1[k], carry.last2[k]):
            last[:, 0] = np.maximum(last[:, 0] - end, FAR_PAST)
        meta = rec[2]
        r = dict(
            pulse=rec[0],
            t=rec[1],
            dtime=rec[1] // int(det["resolution_ps"]),
            channel=(meta & 1).astype(np.uint8),
        )
        if truth:
            r.update(
                source=((meta >> SOURCE_SHIFT) & 7).astype(np.uint8),
                state=((meta >> STATE_SHIFT) & 1).astype(np.uint8),
                emitter=meta >> MEMBER_SHIFT,
                delay=rec[4],
            )
        out.append(r)
    return carry, out
