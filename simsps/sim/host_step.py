"""The chunk step of :mod:`simsps.sim.step` on the host, in numba, for CPUs.

XLA's scatters, cumulative sums and sorts run at ~10 ns per element on a CPU, so the
device step costs several times the kernel there; the same integer logic as loops in numba
costs a few ns per *event*. The engine uses this module when JAX runs on the CPU and
:func:`simsps.sim.step.step` on an accelerator. Both follow the same rules (read them in
:mod:`simsps.sim.step`) and give identical records from the same kernel output, which the
tests check; the carried state is the same too (:class:`HostCarry` holds it in NumPy).

One numba call per spot and chunk (:func:`_spot_step`) does everything: the kernel's
photons in time order, noise, late and carried events sorted into them, the first
dead-time pass, the afterpulses (their further words drawn on demand), the second pass,
and the finished columns of the stream (absolute sync, microtime bin, channel and, when
asked, the ground truth), so nothing per event is left to NumPy.
"""

from __future__ import annotations

import dataclasses

import numba
import numpy as np

from ..stream import NO_EMITTER, Source, State
from .kernel import AFTERPULSE_PAIR, BLOCK_PULSES
from .step import FAR_PAST, MEMBER_SHIFT, PARENT_SHIFT, SECOND_SHIFT, SOURCE_SHIFT, STATE_SHIFT
from .threefry import threefry2x32_host

__all__ = ["HostCarry", "host_step"]

_JIT = dict(nogil=True, cache=True)
_AFTERPULSE_META = int(Source.AFTERPULSE) << SOURCE_SHIFT
_DARK = int(Source.DARK)
_NO_STATE = int(State.NONE)


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


# ---- events ----------------------------------------------------------------------------


@numba.njit(inline="always", **_JIT)
def _photon_meta(tag, decide, j, k, key, member, thr):
    """A photon's packed fields and afterpulse delay quantiles; its further afterpulse
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
def _alloc(n):
    return (
        np.empty(n, np.int64),
        np.empty(n, np.int64),
        np.empty(n, np.int64),
        np.empty(n, np.uint32),
        np.empty(n, np.float32),
    )


@numba.njit(**_JIT)
def _head(cols, n):
    return cols[0][:n], cols[1][:n], cols[2][:n], cols[3][:n], cols[4][:n]


@numba.njit(**_JIT)
def _signal(pos, t, valid, tag, decide, keys, delay, member, end, period, thr):
    """One NC's kernel photons: the time-ordered ones (A) and the late ones (pulse, t
    normalised, in the kernel's (block, photon, slot) order), compact."""
    nb, _, c = t.shape
    a = _alloc(2 * nb * c)
    a_p, a_t, a_m, a_a, a_d = a
    n = 0
    n_late = 0
    mshift = np.int64(member) << MEMBER_SHIFT
    for b in range(nb):
        key = keys[b]
        for k in range(c):
            ps = pos[b, k]
            if ps >= BLOCK_PULSES:
                break  # slots past the block hold no photons
            pulse = b * BLOCK_PULSES + ps
            if pulse >= end:
                break
            v0, v1 = valid[b, 0, k], valid[b, 1, k]
            t0, t1 = t[b, 0, k], t[b, 1, k]
            ok0 = v0 and t0 < period
            ok1 = v1 and t1 < period
            n_late += (v0 and not ok0) + (v1 and not ok1)
            # both photons written, the count advanced by whether each is kept: no branch
            # on the random outcomes; the X photon first when it arrives strictly first
            j = np.int64(ok1 & ((t1 < t0) | (not ok0)))
            for _ in range(2):
                okj = ok1 if j else ok0
                first = (decide[b, k] >> (16 - 16 * j)) & 0xFFFF
                a_p[n] = pulse
                a_t[n] = t[b, j, k]
                a_d[n] = delay[b, j, k]
                meta = np.int64(tag[b, j, k]) | mshift
                ap = np.uint32(0)
                if first < thr and okj:  # rare: the photon afterpulses
                    meta, ap = _photon_meta(tag[b, j, k], decide[b, k], j, k, key, member, thr)
                a_m[n] = meta
                a_a[n] = ap
                n += okj
                j ^= 1
    late = _alloc(n_late)
    l_p, l_t, l_m, l_a, l_d = late
    nl = 0
    if n_late:
        for b in range(nb):
            key = keys[b]
            for j in range(2):  # the kernel's (photon, slot) order
                for k in range(c):
                    ps = pos[b, k]
                    if ps >= BLOCK_PULSES or b * BLOCK_PULSES + ps >= end:
                        break
                    if valid[b, j, k] and t[b, j, k] >= period:
                        tt = np.int64(t[b, j, k])
                        l_p[nl] = b * BLOCK_PULSES + ps + tt // period
                        l_t[nl] = tt % period
                        l_m[nl], l_a[nl] = _photon_meta(
                            tag[b, j, k], decide[b, k], j, k, key, member, thr
                        )
                        l_d[nl] = delay[b, j, k]
                        nl += 1
    return _head(a, n), late


@numba.njit(**_JIT)
def _noise(pos, t, valid, channel, source, ap_a, ap_b, end, period, thr, out, n):
    """One NC's noise events appended to ``out`` from ``n`` in (block, slot) order, times
    normalised; returns the new count."""
    o_p, o_t, o_m, o_a, o_d = out
    nb, c = pos.shape
    for b in range(nb):
        for k in range(c):
            pulse = np.int64(b) * BLOCK_PULSES + pos[b, k]
            if not valid[b, k] or pulse >= end:
                continue
            tt = np.int64(t[b, k])
            a = ap_a[b, k]
            o_p[n] = pulse + tt // period
            o_t[n] = tt % period
            o_m[n] = (
                np.int64(channel[b, k])
                | (np.int64(source[b, k]) << SOURCE_SHIFT)
                | (np.int64((a >> 16) < thr) << PARENT_SHIFT)
                | (np.int64((a & 0xFFFF) < thr) << SECOND_SHIFT)
            )
            o_a[n] = ap_b[b, k]
            o_d[n] = np.nan
            n += 1
    return n


@numba.njit(**_JIT)
def _append(out, n, cols):
    for i in range(len(cols[0])):
        out[0][n], out[1][n], out[2][n] = cols[0][i], cols[1][i], cols[2][i]
        out[3][n], out[4][n] = cols[3][i], cols[4][i]
        n += 1
    return n


@numba.njit(**_JIT)
def _take(cols, idx):
    out = _alloc(len(idx))
    for i in range(len(idx)):
        j = idx[i]
        out[0][i], out[1][i], out[2][i] = cols[0][j], cols[1][j], cols[2][j]
        out[3][i], out[4][i] = cols[3][j], cols[4][j]
    return out


@numba.njit(**_JIT)
def _sort_split(cols, end):
    """Stable sort on (pulse, t, meta); the events at or after ``end`` are queued
    (pulses relative to ``end``). Returns (staying, queue)."""
    p, t, m = cols[0], cols[1], cols[2]
    idx = np.argsort(m, kind="mergesort")
    idx = idx[np.argsort(t[idx], kind="mergesort")]
    idx = idx[np.argsort(p[idx], kind="mergesort")]
    s = _take(cols, idx)
    n_stay = 0
    while n_stay < len(idx) and s[0][n_stay] < end:
        n_stay += 1
    stay = _head(s, n_stay)
    q = (s[0][n_stay:] - end, s[1][n_stay:], s[2][n_stay:], s[3][n_stay:], s[4][n_stay:])
    return stay, q


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
    lp = np.empty(2, np.int64)
    lt = np.empty(2, np.int64)
    lp[0], lt[0], lp[1], lt[1] = last[0, 0], last[0, 1], last[1, 0], last[1, 1]
    for _ in range(n):
        if j >= nb or (i < na and (ap_[i] < bp[j] or (ap_[i] == bp[j] and at_[i] <= bt[j]))):
            p, t, m, a, d = ap_[i], at_[i], am[i], aa[i], ad[i]
            i += 1
        else:
            p, t, m, a, d = bp[j], bt[j], bm[j], ba[j], bd[j]
            j += 1
        c = m & 1  # no branch on the (random) channel: written, then kept or overwritten
        keep = (p - lp[c]) * period + (t - lt[c]) >= dead
        op[k], ot[k], om[k], oa[k], od[k] = p, t, m, a, d
        if keep:
            lp[c], lt[c] = p, t
        k += keep
    last[0, 0], last[0, 1], last[1, 0], last[1, 1] = lp[0], lt[0], lp[1], lt[1]
    return op[:k], ot[:k], om[:k], oa[:k], od[:k]


@numba.njit(**_JIT)
def _before(p1, t1, m1, p2, t2, m2):
    """(p1, t1, m1) < (p2, t2, m2) lexicographically."""
    return p1 < p2 or (p1 == p2 and (t1 < t2 or (t1 == t2 and m1 < m2)))


@numba.njit(**_JIT)
def _heap_push(h, n, p, t, m):
    """Push (p, t, m) on the min-heap ``h`` = (pulse, t, meta) arrays holding ``n``;
    returns the heap (grown when full)."""
    if n == len(h[0]):
        g = (
            np.empty(2 * n + 16, np.int64),
            np.empty(2 * n + 16, np.int64),
            np.empty(2 * n + 16, np.int64),
        )
        for c in range(3):
            g[c][:n] = h[c][:n]
        h = g
    hp, ht, hm = h
    i = n
    while i > 0:
        up = (i - 1) >> 1
        if not _before(p, t, m, hp[up], ht[up], hm[up]):
            break
        hp[i], ht[i], hm[i] = hp[up], ht[up], hm[up]
        i = up
    hp[i], ht[i], hm[i] = p, t, m
    return h


@numba.njit(**_JIT)
def _heap_pop(h, n):
    """Remove the smallest of the ``n`` entries (read it at index 0 first)."""
    hp, ht, hm = h
    n -= 1
    p, t, m = hp[n], ht[n], hm[n]
    i = 0
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n and _before(hp[c + 1], ht[c + 1], hm[c + 1], hp[c], ht[c], hm[c]):
            c += 1
        if not _before(hp[c], ht[c], hm[c], p, t, m):
            break
        hp[i], ht[i], hm[i] = hp[c], ht[c], hm[c]
        i = c
    if n > 0:
        hp[i], ht[i], hm[i] = p, t, m
    return n


@numba.njit(**_JIT)
def _passes(a, s, queued, last1, last2, end, period, dead, table, start, res, res_int,
            members, truth, out):  # fmt: skip
    """Both dead-time passes, afterpulses between them, in one sweep, writing the stream's
    columns to ``out`` (sync, dtime, channel, source, state, emitter, delay, arrival).

    The kernel photons ``a`` and the small set ``s`` (both sorted, ``a`` first among equal
    times) go through the first pass; every kept event then goes to the second pass after
    the pending afterpulses earlier than it (a min-heap on (pulse, t, meta), fed by the
    carried queue and by each kept avalanche that afterpulses: its afterpulses are at
    least a dead time later). This is the order of the device step's sorted merges
    (afterpulses equal in (pulse, t, meta) are identical records). Returns the number of
    records and the afterpulses left for the next chunk (pulses relative to ``end``)."""
    ap_, at_, am, aa, ad = a
    bp, bt, bm, ba, bd = s
    na, nb = len(ap_), len(bp)
    h = (np.empty(64, np.int64), np.empty(64, np.int64), np.empty(64, np.int64))
    nh = 0
    for q in range(len(queued[0])):
        h = _heap_push(h, nh, queued[0][q], queued[1][q], queued[2][q])
        nh += 1
    l1p = np.empty(2, np.int64)
    l1t = np.empty(2, np.int64)
    l2p = np.empty(2, np.int64)
    l2t = np.empty(2, np.int64)
    for c in range(2):
        l1p[c], l1t[c], l2p[c], l2t[c] = last1[c, 0], last1[c, 1], last2[c, 0], last2[c, 1]
    o_sync, o_dtime, o_channel, o_source, o_state, o_emitter, o_delay, o_arrival = out
    k = 0
    i = j = 0
    have = False  # an event kept by the first pass, waiting for the second
    p = t = m = c = np.int64(0)
    ap = np.uint32(0)
    d = np.float32(0)
    while True:
        while not have and (i < na or j < nb):  # the next event the first pass keeps
            if j >= nb or (i < na and (ap_[i] < bp[j] or (ap_[i] == bp[j] and at_[i] <= bt[j]))):
                p, t, m, ap, d = ap_[i], at_[i], am[i], aa[i], ad[i]
                i += 1
            else:
                p, t, m, ap, d = bp[j], bt[j], bm[j], ba[j], bd[j]
                j += 1
            c = m & 1
            if (p - l1p[c]) * period + (t - l1t[c]) >= dead:
                l1p[c], l1t[c] = p, t
                have = True
        # the second pass takes a pending afterpulse strictly before that event (before
        # the chunk end once the events are done), else the event
        if nh > 0 and (
            (have and (h[0][0] < p or (h[0][0] == p and h[1][0] < t)))
            or (not have and h[0][0] < end)
        ):
            xp, xt, xm, xd = h[0][0], h[1][0], h[2][0], np.float32(np.nan)
            nh = _heap_pop(h, nh)
            is_event = False
        elif have:
            xp, xt, xm, xd = p, t, m, d
            is_event = True
            have = False
        else:
            break
        xc = xm & 1
        if (xp - l2p[xc]) * period + (xt - l2t[xc]) >= dead:
            l2p[xc], l2t[xc] = xp, xt
            sync = start + xp
            o_sync[k] = sync
            o_dtime[k] = xt // res_int if res_int else np.uint32(np.floor(xt / res))
            o_channel[k] = xc
            if truth:
                src = (xm >> SOURCE_SHIFT) & 7
                o_source[k] = src
                if src < _DARK:
                    o_state[k] = (xm >> STATE_SHIFT) & 1
                    o_emitter[k] = members[xm >> MEMBER_SHIFT]
                    o_delay[k] = xd
                else:
                    o_state[k] = _NO_STATE
                    o_emitter[k] = NO_EMITTER
                    o_delay[k] = np.nan
                o_arrival[k] = sync * period + xt
            k += 1
        if is_event and (xm >> PARENT_SHIFT) & 1:  # afterpulses of a first-pass avalanche
            meta = xc | _AFTERPULSE_META
            t1 = xt + dead + table[ap >> 16]
            p1, t1 = xp + t1 // period, t1 % period
            h = _heap_push(h, nh, p1, t1, meta)
            nh += 1
            if (xm >> SECOND_SHIFT) & 1:
                t2 = t1 + dead + table[ap & 0xFFFF]
                h = _heap_push(h, nh, p1 + t2 // period, t2 % period, meta)
                nh += 1
    for c in range(2):
        last1[c, 0], last1[c, 1], last2[c, 0], last2[c, 1] = l1p[c], l1t[c], l2p[c], l2t[c]
    q = _alloc(nh)
    for r in range(nh):  # the heap pops in order
        q[0][r], q[1][r], q[2][r] = h[0][0] - end, h[1][0], h[2][0]
        q[3][r], q[4][r] = 0, np.nan
        nh = _heap_pop(h, nh)
    return k, q


@numba.njit(**_JIT)
def _out(n, truth):
    nt = n if truth else 0
    return (
        np.empty(n, np.int64),
        np.empty(n, np.uint32),
        np.empty(n, np.uint8),
        np.empty(nt, np.uint8),
        np.empty(nt, np.uint8),
        np.empty(nt, np.uint16),
        np.empty(nt, np.float32),
        np.empty(nt, np.int64),
    )


@numba.njit(**_JIT)
def _n_afterpulses(cols):
    """At most how many afterpulses the events ``cols`` can give."""
    n = 0
    for m in cols[2]:
        if (m >> PARENT_SHIFT) & 1:
            n += 1 + ((m >> SECOND_SHIFT) & 1)
    return n


# ---- one spot --------------------------------------------------------------------------


@numba.njit(**_JIT)
def _spot_step(
    sig_pos, sig_t, sig_valid, sig_tag, sig_decide, sig_keys, sig_delay,
    bg_pos, bg_t, bg_valid, bg_channel, bg_source, bg_ap_a, bg_ap_b,
    members, incident, afterpulses, last1, last2,
    end, period, dead, thr, table, start, res, res_is_int, truth,
):  # fmt: skip
    """One spot's chunk: the members' slots (leading axis: member) and the carried queues
    -> (stream columns, incident queue, afterpulse queue); ``last1``, ``last2`` updated."""
    n_mem = sig_pos.shape[0]
    # kernel photons in time order, the members' runs merged (earlier member first on ties)
    a = _alloc(0)
    n_late = 0
    lates = []
    for mi in range(n_mem):
        a_m, late = _signal(
            sig_pos[mi], sig_t[mi], sig_valid[mi], sig_tag[mi], sig_decide[mi],
            sig_keys[mi], sig_delay[mi], mi, end, period, thr,
        )  # fmt: skip
        lates.append(late)
        n_late += len(late[0])
        if mi == 0:
            a = a_m
        else:
            a = _merge_keep_all(a, a_m)
    # the small set: noise (member, block, slot), late photons, events carried in
    n_bg = 0
    for mi in range(n_mem):
        n_bg += np.sum(bg_valid[mi])
    small = _alloc(n_bg + n_late + len(incident[0]))
    n = 0
    for mi in range(n_mem):
        n = _noise(
            bg_pos[mi], bg_t[mi], bg_valid[mi], bg_channel[mi], bg_source[mi],
            bg_ap_a[mi], bg_ap_b[mi], end, period, thr, small, n,
        )  # fmt: skip
    for late in lates:
        n = _append(small, n, late)
    n = _append(small, n, incident)
    stay, incident_q = _sort_split(_head(small, n), end)
    n_max = len(a[0]) + len(stay[0]) + len(afterpulses[0])
    n_max += _n_afterpulses(a) + _n_afterpulses(stay)
    out = _out(n_max, truth)
    k, ap_q = _passes(
        a, stay, afterpulses, last1, last2, end, period, dead, table, start, res, res_is_int,
        members, truth, out,
    )  # fmt: skip
    for last in (last1, last2):
        for c in range(2):
            last[c, 0] = max(last[c, 0] - end, FAR_PAST)
    nt = k if truth else 0
    cols = (out[0][:k], out[1][:k], out[2][:k], out[3][:nt], out[4][:nt], out[5][:nt],
            out[6][:nt], out[7][:nt])  # fmt: skip
    return cols, incident_q, ap_q


@numba.njit(**_JIT)
def _merge_keep_all(x, y):
    """Merge two sets sorted on (pulse, t), ``x`` first among equal keys (no dead time)."""
    nx, ny = len(x[0]), len(y[0])
    out = _alloc(nx + ny)
    i = j = 0
    for k in range(nx + ny):
        if j >= ny or (
            i < nx and (x[0][i] < y[0][j] or (x[0][i] == y[0][j] and x[1][i] <= y[1][j]))
        ):
            src, s = x, i
            i += 1
        else:
            src, s = y, j
            j += 1
        out[0][k], out[1][k], out[2][k] = src[0][s], src[1][s], src[2][s]
        out[3][k], out[4][k] = src[3][s], src[4][s]
    return out


_COLUMNS = ("sync", "dtime", "channel", "source", "state", "emitter", "delay", "arrival")


def host_step(
    carry: HostCarry,
    slots,
    members,
    det,
    end: int,
    truth: bool = True,
    *,
    start: int = 0,
    res_ps: float = 1.0,
):
    """:func:`simsps.sim.step.step` on NumPy copies of the kernel slots, up to the
    stream's columns. ``det``: a dict of plain numbers (dead_ps, period_ps, ap_threshold,
    ap_table); ``members`` (S, M) emitter indices (-1: none); ``start`` the chunk's first
    pulse; ``res_ps`` the microtime bin. Returns, per spot, a dict of the columns (sync,
    dtime, channel and, with ``truth``, source, state, emitter, delay, arrival)."""
    sig, bg = slots
    dead, period, thr = int(det["dead_ps"]), int(det["period_ps"]), int(det["ap_threshold"])
    table = np.asarray(det["ap_table"], np.int64)
    res = float(res_ps)
    res_int = int(res) if res.is_integer() else 0
    out = []
    for k, row in enumerate(members):
        e = np.asarray([int(x) for x in row if x >= 0], np.int64)
        # the spot's members: a view when they are consecutive (one NC per spot), else a copy
        sel = slice(e[0], e[-1] + 1) if np.all(np.diff(e) == 1) else e
        cols, carry.incident[k], carry.afterpulses[k] = _spot_step(
            sig.pos[sel], sig.t_ps[sel], sig.valid[sel], sig.tag[sel], sig.ap_decide[sel],
            sig.block_key[sel], sig.delay_ps[sel],
            bg.pos[sel], bg.t_ps[sel], bg.valid[sel], bg.channel[sel], bg.source[sel],
            bg.ap_a[sel], bg.ap_b[sel], e.astype(np.uint16), carry.incident[k], carry.afterpulses[k], carry.last1[k], carry.last2[k],
            int(end), period, dead, thr, table, int(start), res, res_int, bool(truth),
        )  # fmt: skip
        r = dict(zip(_COLUMNS[:3], cols[:3]))
        if truth:
            r.update(zip(_COLUMNS[3:], cols[3:]))
        out.append(r)
    return carry, out
