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
from .kernel import AFTERPULSE_PAIR, BLOCK_PULSES, CHANNEL_HIGH_SHIFT
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
    last1: np.ndarray  # (S, n channels, 2) int64
    last2: np.ndarray

    @staticmethod
    def initial(n_spots: int, n_channels: int = 2) -> "HostCarry":
        far = np.zeros((n_spots, n_channels, 2), np.int64)
        far[:, :, 0] = FAR_PAST
        return HostCarry(
            [_empty_queue() for _ in range(n_spots)],
            [_empty_queue() for _ in range(n_spots)],
            far,
            far.copy(),
        )


# ---- events ----------------------------------------------------------------------------


@numba.njit(inline="always", **_JIT)
def _photon_meta(tag, decide, j, k, k0, k1, member, thr):
    """A photon's packed fields and afterpulse delay quantiles; its further afterpulse
    words (pair AFTERPULSE_PAIR + j of slot k under the block key (k0, k1)) drawn only
    when it afterpulses."""
    first = (decide >> 16) if j == 0 else (decide & 0xFFFF)
    meta = np.int64(tag) | (np.int64(member) << MEMBER_SHIFT)
    ap = np.uint32(0)
    if first < thr:
        a, b = threefry2x32_host(k0, k1, k, AFTERPULSE_PAIR + j)
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
def _scan(pos, t, valid, tag, decide, keys, delay, member, end, period, thr):
    """One NC's slots, first look: its late photons (arriving a period or more after
    their pulse; explicit events, times normalised, in the kernel's (block, photon, slot)
    order) and how many photons arrive within their period and how many of those
    afterpulse (to size the outputs)."""
    nb, _, c = t.shape
    n_a = n_par = n_late = 0
    for b in range(nb):
        for k in range(c):
            ps = pos[b, k]
            if ps >= BLOCK_PULSES or b * BLOCK_PULSES + ps >= end:
                break  # slots past the block or the run hold no photons
            d = decide[b, k]
            for j in range(2):
                if valid[b, j, k]:
                    if t[b, j, k] < period:
                        n_a += 1
                        n_par += ((d >> (16 - 16 * j)) & 0xFFFF) < thr
                    else:
                        n_late += 1
    late = _alloc(n_late)
    l_p, l_t, l_m, l_a, l_d = late
    nl = 0
    if n_late:
        for b in range(nb):
            key = keys[b]
            for j in range(2):
                for k in range(c):
                    ps = pos[b, k]
                    if ps >= BLOCK_PULSES or b * BLOCK_PULSES + ps >= end:
                        break
                    if valid[b, j, k] and t[b, j, k] >= period:
                        tt = np.int64(t[b, j, k])
                        l_p[nl] = b * BLOCK_PULSES + ps + tt // period
                        l_t[nl] = tt % period
                        l_m[nl], l_a[nl] = _photon_meta(
                            tag[b, j, k], decide[b, k], j, k, key[0], key[1], member, thr
                        )
                        l_d[nl] = delay[b, j, k]
                        nl += 1
    return late, n_a, n_par


@numba.njit(inline="always", **_JIT)
def _ref(member, block, slot, photon, bits):
    """A kernel photon's reference, ``(member, block, slot, photon)`` packed with the
    field widths ``bits`` = (block bits, slot bits) (>= 0; small-set events are < 0)."""
    return (((np.int64(member) << bits[0] | block) << bits[1] | slot) << 1) | photon


@numba.njit(inline="always", **_JIT)
def _unref(r, bits):
    """(member, block, slot, photon) of a reference :func:`_ref`."""
    photon = r & 1
    r >>= 1
    slot = r & ((np.int64(1) << bits[1]) - 1)
    r >>= bits[1]
    return r >> bits[0], r & ((np.int64(1) << bits[0]) - 1), slot, photon


@numba.njit(**_JIT)
def _refs(pos, t, valid, member, end, period, bits):
    """One NC's photons within their period in time order as (pulse, t, slot reference
    :func:`_ref`), the X photon first when it arrives strictly first (spots with several
    NCs; one NC is read from its slots)."""
    nb, _, c = t.shape
    n_max = 2 * nb * c
    r_p = np.empty(n_max, np.int64)
    r_t = np.empty(n_max, np.int64)
    r_r = np.empty(n_max, np.int64)
    n = 0
    for b in range(nb):
        for k in range(c):
            ps = pos[b, k]
            if ps >= BLOCK_PULSES or b * BLOCK_PULSES + ps >= end:
                break
            t0, t1 = t[b, 0, k], t[b, 1, k]
            ok0 = valid[b, 0, k] and t0 < period
            ok1 = valid[b, 1, k] and t1 < period
            first = 1 if (ok0 and ok1 and t1 < t0) else 0
            for jj in range(2):
                j = first ^ jj
                if ok1 if j else ok0:
                    r_p[n] = b * BLOCK_PULSES + ps
                    r_t[n] = t[b, j, k]
                    r_r[n] = _ref(member, b, k, j, bits)
                    n += 1
    return r_p[:n], r_t[:n], r_r[:n]


@numba.njit(**_JIT)
def _merge_refs(x, y):
    """Merge two reference sets sorted on (pulse, t), ``x`` first among equal keys."""
    nx, ny = len(x[0]), len(y[0])
    out = (np.empty(nx + ny, np.int64), np.empty(nx + ny, np.int64), np.empty(nx + ny, np.int64))
    i = j = 0
    for k in range(nx + ny):
        if j >= ny or (
            i < nx and (x[0][i] < y[0][j] or (x[0][i] == y[0][j] and x[1][i] <= y[1][j]))
        ):
            out[0][k], out[1][k], out[2][k] = x[0][i], x[1][i], x[2][i]
            i += 1
        else:
            out[0][k], out[1][k], out[2][k] = y[0][j], y[1][j], y[2][j]
            j += 1
    return out


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
                _ch_bits(np.int64(channel[b, k]))
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
def _before(p1, t1, m1, p2, t2, m2):
    """(p1, t1, m1) < (p2, t2, m2) lexicographically."""
    return p1 < p2 or (p1 == p2 and (t1 < t2 or (t1 == t2 and m1 < m2)))


@numba.njit(**_JIT)
def _sort_split(cols, end):
    """Stable sort on (pulse, t, meta); the events at or after ``end`` are queued
    (pulses relative to ``end``). Returns (staying, queue)."""
    p, t, m = cols[0], cols[1], cols[2]
    idx = np.argsort(p, kind="mergesort")
    # then (t, meta) within each run of one pulse, by stable insertion (runs are short)
    for i in range(1, len(idx)):
        x = idx[i]
        j = i
        while j > 0 and _before(p[x], t[x], m[x], p[idx[j - 1]], t[idx[j - 1]], m[idx[j - 1]]):
            idx[j] = idx[j - 1]
            j -= 1
        idx[j] = x
    s = _take(cols, idx)
    n_stay = 0
    while n_stay < len(idx) and s[0][n_stay] < end:
        n_stay += 1
    stay = _head(s, n_stay)
    q = (s[0][n_stay:] - end, s[1][n_stay:], s[2][n_stay:], s[3][n_stay:], s[4][n_stay:])
    return stay, q


@numba.njit(**_JIT)
def _heap_push(h, n, p, t, m):
    """Push (p, t, m) on the min-heap ``h`` = (pulse, t, meta) arrays holding ``n``. The
    arrays are allocated once at their bound (never regrown: a heap variable reassigned
    inside the sweep's loop made numba count references on every event, 5x its cost)."""
    hp, ht, hm = h
    i = n
    while i > 0:
        up = (i - 1) >> 1
        if not _before(p, t, m, hp[up], ht[up], hm[up]):
            break
        hp[i], ht[i], hm[i] = hp[up], ht[up], hm[up]
        i = up
    hp[i], ht[i], hm[i] = p, t, m


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


@numba.njit(inline="always", **_JIT)
def _ch(meta):
    """The channel of packed fields (:func:`simsps.sim.kernel.channel_of`)."""
    return (meta & 1) | ((meta >> (CHANNEL_HIGH_SHIFT - 1)) & 2)


@numba.njit(inline="always", **_JIT)
def _ch_bits(ch):
    """A channel as packed bits (:func:`simsps.sim.kernel.channel_bits`)."""
    return (ch & 1) | ((ch & 2) << (CHANNEL_HIGH_SHIFT - 1))


@numba.njit(inline="always", **_JIT)
def _keep(p, t, c, lp, lt, period, dead):
    """Non-paralysable dead time: keep (p, t) on channel ``c`` when it is at least a dead
    time after the last kept event ``(lp[c], lt[c])`` there (which it then becomes)."""
    if (p - lp[c]) * period + (t - lt[c]) >= dead:
        lp[c], lt[c] = p, t
        return True
    return False


@numba.njit(inline="always", **_JIT)
def _small_before(s, js, p, t, lp, lt, period, dead, kept, n):
    """The first pass over the small set's events strictly before (p, t) from ``js``
    (kernel photons go first among equal times); returns (js, n) after them."""
    sp, st, sm = s[0], s[1], s[2]
    while js < len(sp) and (sp[js] < p or (sp[js] == p and st[js] < t)):
        if _keep(sp[js], st[js], _ch(sm[js]), lp, lt, period, dead):
            kept[0][n], kept[1][n], kept[2][n] = sp[js], st[js], -1 - js
            n += 1
        js += 1
    return js, n


@numba.njit(**_JIT)
def _first_pass(sig_pos, sig_t, sig_valid, sig_tag, refs, s, last1, end, period, dead, bits,
                kept):  # fmt: skip
    """The first dead-time pass over the kernel photons (read in time order from the slots
    of the spot's one NC, or from ``refs`` for several NCs) merged with the small set ``s``
    (sorted); ``kept`` gets (pulse, t, reference) of the kept events in time order, a
    kernel photon's reference by :func:`_ref`, a small-set event's ``-1 - index``. Returns
    how many; ``last1`` updated."""
    n_mem, nb, _, c = sig_t.shape
    lp = last1[:, 0].copy()
    lt = last1[:, 1].copy()
    js = n = 0
    if n_mem == 1:
        for b in range(nb):
            base = np.int64(b) * BLOCK_PULSES
            for k in range(c):
                ps = sig_pos[0, b, k]
                if ps >= BLOCK_PULSES or base + ps >= end:
                    break  # slots past the block or the run hold no photons
                t0, t1 = sig_t[0, b, 0, k], sig_t[0, b, 1, k]
                ok0 = sig_valid[0, b, 0, k] and t0 < period
                ok1 = sig_valid[0, b, 1, k] and t1 < period
                if not (ok0 or ok1):
                    continue
                first = 1 if (ok0 and ok1 and t1 < t0) else 0  # the X photon arrives first
                p = base + ps
                for jj in range(2):
                    j = first ^ jj
                    if not (ok1 if j else ok0):
                        continue
                    t = np.int64(sig_t[0, b, j, k])
                    js, n = _small_before(s, js, p, t, lp, lt, period, dead, kept, n)
                    if _keep(p, t, _ch(sig_tag[0, b, j, k]), lp, lt, period, dead):
                        kept[0][n], kept[1][n], kept[2][n] = p, t, _ref(0, b, k, j, bits)
                        n += 1
    else:
        for i in range(len(refs[0])):
            p, t, r = refs[0][i], refs[1][i], refs[2][i]
            mi, b, k, j = _unref(r, bits)
            js, n = _small_before(s, js, p, t, lp, lt, period, dead, kept, n)
            if _keep(p, t, _ch(sig_tag[mi, b, j, k]), lp, lt, period, dead):
                kept[0][n], kept[1][n], kept[2][n] = p, t, r
                n += 1
    # the small set's events past the last kernel photon (end: past every event)
    js, n = _small_before(s, js, np.int64(1) << 62, 0, lp, lt, period, dead, kept, n)
    for ch in range(len(lp)):
        last1[ch, 0], last1[ch, 1] = lp[ch], lt[ch]
    return n


@numba.njit(**_JIT)
def _second_pass(sig_tag, sig_decide, sig_keys, sig_delay, s, kept, n_kept, queued, n_parents,
                 last2, end, period, dead, thr, table, start, res, res_int, members, truth,
                 bits, out):  # fmt: skip
    """Afterpulses and the second dead-time pass over the first pass's ``kept`` events,
    writing the stream's columns to ``out`` (sync, dtime, channel, source, state, emitter,
    delay, arrival).

    A kept kernel photon's packed fields, delay and afterpulse words are read here (its
    further afterpulse words drawn only when it afterpulses). Every kept event goes to the
    second pass after the pending afterpulses strictly earlier than it (a min-heap on
    (pulse, t, meta), fed by the carried queue and by each kept avalanche that afterpulses:
    its afterpulses are at least a dead time later), then the afterpulses before the chunk
    end. This is the order of the device step's sorted merges (afterpulses equal in
    (pulse, t, meta) are identical records). Returns the number of records and the
    afterpulses left for the next chunk (pulses relative to ``end``); ``last2`` updated."""
    # every pending afterpulse fits: those carried in and two per parent at most. The heap
    # is allocated once: an array reassigned inside this loop made numba count references
    # on every event (5x the loop's cost)
    n_heap = len(queued[0]) + 2 * n_parents
    h = (np.empty(n_heap, np.int64), np.empty(n_heap, np.int64), np.empty(n_heap, np.int64))
    hp, ht, hm = h
    nh = 0
    for q in range(len(queued[0])):
        _heap_push(h, nh, queued[0][q], queued[1][q], queued[2][q])
        nh += 1
    lp = last2[:, 0].copy()
    lt = last2[:, 1].copy()
    kp, kt, kr = kept
    o_sync, o_dtime, o_channel, o_source, o_state, o_emitter, o_delay, o_arrival = out
    k_out = i = 0
    while True:
        if nh > 0 and (
            (i < n_kept and (hp[0] < kp[i] or (hp[0] == kp[i] and ht[0] < kt[i])))
            or (i >= n_kept and hp[0] < end)
        ):  # a pending afterpulse first
            xp, xt, xm, xd = hp[0], ht[0], hm[0], np.float32(np.nan)
            nh = _heap_pop(h, nh)
            is_event = False
        elif i < n_kept:
            xp, xt, r = kp[i], kt[i], kr[i]
            if r >= 0:  # a kernel photon: its fields
                mi, b, k, j = _unref(r, bits)
                xm, ap = _photon_meta(
                    sig_tag[mi, b, j, k], sig_decide[mi, b, k], j, k, sig_keys[mi, b, 0],
                    sig_keys[mi, b, 1], mi, thr,
                )  # fmt: skip
                xd = sig_delay[mi, b, j, k]
            else:
                xm, ap, xd = s[2][-1 - r], s[3][-1 - r], s[4][-1 - r]
            is_event = True
            i += 1
        else:
            break
        xc = _ch(xm)
        if _keep(xp, xt, xc, lp, lt, period, dead):
            sync = start + xp
            o_sync[k_out] = sync
            o_dtime[k_out] = (
                np.uint32(xt) // np.uint32(res_int) if res_int else np.uint32(np.floor(xt / res))
            )
            o_channel[k_out] = xc
            if truth:
                src = (xm >> SOURCE_SHIFT) & 7
                o_source[k_out] = src
                if src < _DARK:
                    o_state[k_out] = (xm >> STATE_SHIFT) & 1
                    o_emitter[k_out] = members[xm >> MEMBER_SHIFT]
                    o_delay[k_out] = xd
                else:
                    o_state[k_out] = _NO_STATE
                    o_emitter[k_out] = NO_EMITTER
                    o_delay[k_out] = np.nan
                o_arrival[k_out] = sync * period + xt
            k_out += 1
        # afterpulses of a first-pass avalanche (kept by the second pass or not: the error
        # of order p * rate * dead that simsps.sim.step describes)
        if is_event and (xm >> PARENT_SHIFT) & 1:
            meta = _ch_bits(xc) | _AFTERPULSE_META
            t1 = xt + dead + table[ap >> 16]
            p1, t1 = xp + t1 // period, t1 % period
            _heap_push(h, nh, p1, t1, meta)
            nh += 1
            if (xm >> SECOND_SHIFT) & 1:
                t2 = t1 + dead + table[ap & 0xFFFF]
                _heap_push(h, nh, p1 + t2 // period, t2 % period, meta)
                nh += 1
    for ch in range(len(lp)):
        last2[ch, 0], last2[ch, 1] = lp[ch], lt[ch]
    q = _alloc(nh)
    for r in range(nh):  # the heap pops in order
        q[0][r], q[1][r], q[2][r] = hp[0] - end, ht[0], hm[0]
        q[3][r], q[4][r] = 0, np.nan
        nh = _heap_pop(h, nh)
    return k_out, q


@numba.njit(**_JIT)
def _passes(sig_pos, sig_t, sig_valid, sig_tag, sig_decide, sig_keys, sig_delay, refs, s,
            queued, n_a, n_parents, last1, last2, end, period, dead, thr, table, start, res,
            res_int, members, truth, bits, out):  # fmt: skip
    """Both dead-time passes, afterpulses between them: :func:`_first_pass` over the
    ``n_a`` kernel photons and the small set ``s``, then :func:`_second_pass`. Returns the
    number of records written to ``out`` and the afterpulse queue for the next chunk."""
    n_in = n_a + len(s[0])
    kept = (np.empty(n_in, np.int64), np.empty(n_in, np.int64), np.empty(n_in, np.int64))
    n_kept = _first_pass(
        sig_pos, sig_t, sig_valid, sig_tag, refs, s, last1, end, period, dead, bits, kept
    )
    return _second_pass(
        sig_tag, sig_decide, sig_keys, sig_delay, s, kept, n_kept, queued, n_parents, last2,
        end, period, dead, thr, table, start, res, res_int, members, truth, bits, out,
    )  # fmt: skip


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
def _n_parents(cols):
    """How many of the events ``cols`` afterpulse."""
    n = 0
    for m in cols[2]:
        n += (m >> PARENT_SHIFT) & 1
    return n


# ---- one spot --------------------------------------------------------------------------


@numba.njit(**_JIT)
def _bit_length(n):
    b = 0
    while (np.int64(1) << b) < n:
        b += 1
    return b


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
    n_a = n_par = n_late = 0
    lates = []
    for mi in range(n_mem):
        late, na, npar = _scan(
            sig_pos[mi], sig_t[mi], sig_valid[mi], sig_tag[mi], sig_decide[mi],
            sig_keys[mi], sig_delay[mi], mi, end, period, thr,
        )  # fmt: skip
        lates.append(late)
        n_a += na
        n_par += npar
        n_late += len(late[0])
    # a kernel photon's reference packs its slot with these field widths (block, slot)
    bits = (_bit_length(sig_pos.shape[1]), _bit_length(sig_pos.shape[2]))
    # several NCs: their photons' references merged in time order (earlier NC first on ties)
    empty = np.empty(0, np.int64)
    refs = (empty, empty, empty)
    if n_mem > 1:
        refs = _refs(sig_pos[0], sig_t[0], sig_valid[0], 0, end, period, bits)
        for mi in range(1, n_mem):
            refs = _merge_refs(
                refs, _refs(sig_pos[mi], sig_t[mi], sig_valid[mi], mi, end, period, bits)
            )
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
    n_parents = n_par + _n_parents(stay)
    n_max = n_a + len(stay[0]) + len(afterpulses[0]) + 2 * n_parents
    out = _out(n_max, truth)
    k, ap_q = _passes(
        sig_pos, sig_t, sig_valid, sig_tag, sig_decide, sig_keys, sig_delay, refs, stay,
        afterpulses, n_a, n_parents, last1, last2, end, period, dead, thr, table, start, res,
        res_is_int, members, truth, bits, out,
    )  # fmt: skip
    for last in (last1, last2):
        for c in range(last.shape[0]):
            last[c, 0] = max(last[c, 0] - end, FAR_PAST)
    nt = k if truth else 0
    cols = (out[0][:k], out[1][:k], out[2][:k], out[3][:nt], out[4][:nt], out[5][:nt],
            out[6][:nt], out[7][:nt])  # fmt: skip
    return cols, incident_q, ap_q


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
