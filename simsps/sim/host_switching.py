"""The integer half of :func:`simsps.sim.switching.chunk_switches` in numba, for CPUs.

XLA's cumulative sums and scatters cost ~10 ns per element on a CPU (its ``cumsum`` is an
associative scan there), which made drawing the blink switches inside the kernel's call
cost as much as the kernel's own search. The dwells themselves (threefry words, ``log``,
``pow``: the only float part) are still drawn by XLA (:func:`switching.dwell_limbs`); this
module accumulates them into switch times, keeps the chunk's, takes the OR of both
processes and counts the switches before each block, with the same integer rules as the
jitted version, so both give identical switches (tested) and the same carry.
"""

from __future__ import annotations

import numba
import numpy as np

from .switching import FRAC_BITS, BlinkCarry

__all__ = ["host_switches", "state_bits", "grey_pulses"]

_JIT = dict(nogil=True, cache=True)
_MAX = np.iinfo(np.int32).max
_NEVER = np.uint64(0xFFFFFFFF)
_BIG = np.uint64(1 << (30 - FRAC_BITS))


@numba.njit(**_JIT)
def _relative_pulse(t, start):
    """ceil(t - start) in pulses, t and start 2^-16-pulse fixed point (uint64); the rules
    of switching._relative_pulse: never -> int32 max, just below start -> 0, 2^30 pulses
    or more past it -> int32 max."""
    if (t >> np.uint64(32)) == _NEVER:
        return _MAX
    if t < start:
        return 0
    rel = t - start
    if (rel >> np.uint64(32)) >= _BIG:
        return _MAX
    return np.int32((rel + np.uint64((1 << FRAC_BITS) - 1)) >> np.uint64(FRAC_BITS))


@numba.njit(**_JIT)
def _one_process(dh, dl, t0, start, length, out):
    """Switches of one process: ``out`` (int32 max filled) gets the leading switch pulses
    inside the chunk; returns (how many, end of the dwell then in progress)."""
    n = len(dh) + 1
    t = t0
    k = 0
    while True:
        p = _relative_pulse(t, start)
        if p >= length:
            return k, t
        out[k] = p
        k += 1
        if k == n:  # overflow: the chunk needs more dwells
            return k, t
        t = t + ((np.uint64(dh[k - 1]) << np.uint64(32)) | np.uint64(dl[k - 1]))


@numba.njit(**_JIT)
def _or_merge(a, na, b, nb, sa, sb, out):
    """The OR of two telegraphs: a switch of one flips the OR when the other is bright;
    ``a`` first on ties (as switching._or_of_two)."""
    i = j = m = 0
    while i < na or j < nb:
        if j == nb or (i < na and a[i] <= b[j]):
            if sb == 0:
                out[m] = a[i]
                m += 1
            sa ^= 1
            i += 1
        else:
            if sa == 0:
                out[m] = b[j]
                m += 1
            sb ^= 1
            j += 1
    return m


@numba.njit(**_JIT)
def _switches(
    dh0,
    dl0,
    dh1,
    dl1,
    has0,
    has1,
    count,
    state,
    hi,
    lo,
    start_hi,
    length,
    n_blocks,
    block_pulses,
    window,
    switch,
    base,
    state0,
    overflow,
):
    n_e = count.shape[0]
    start = np.uint64(start_hi) << np.uint64(32)
    a = np.empty(dh0.shape[1] + 1, np.int32)
    b = np.empty(dh1.shape[1] + 1, np.int32)
    for e in range(n_e):
        n_a = n_b = 0
        s_a = s_b = 0
        for p in range(2):
            if not (has0 if p == 0 else has1):
                continue
            dh, dl, out = (dh0[e], dl0[e], a) if p == 0 else (dh1[e], dl1[e], b)
            t0 = (np.uint64(hi[e, p]) << np.uint64(32)) | np.uint64(lo[e, p])
            k, t = _one_process(dh, dl, t0, start, length, out)
            if k == len(dh) + 1:
                overflow[e] = True
            count[e, p] = np.uint32(count[e, p] + k)
            s = state[e, p]
            state0_p = s
            state[e, p] = s ^ (k & 1)
            hi[e, p] = np.uint32(t >> np.uint64(32))
            lo[e, p] = np.uint32(t & np.uint64(0xFFFFFFFF))
            if p == 0:
                s_a, n_a = state0_p, k
            else:
                s_b, n_b = state0_p, k
        sa = s_a if has0 else 0
        sb = s_b if has1 else 0
        row = switch[e]
        if has0 and has1:
            m = _or_merge(a, n_a, b, n_b, sa, sb, row)
        elif has0:
            m = n_a
            row[:m] = a[:m]
        elif has1:
            m = n_b
            row[:m] = b[:m]
        else:
            m = 0
        state0[e] = sa | sb
        k = 0
        for blk in range(n_blocks):
            start_b = blk * block_pulses
            while k < m and row[k] < start_b:
                k += 1
            base[e, blk] = k
        for blk in range(n_blocks):
            nxt = base[e, blk + 1] if blk + 1 < n_blocks else m
            if nxt - base[e, blk] >= window:
                overflow[e] = True


def host_switches(
    limbs,
    carry: BlinkCarry,
    block0: int,
    *,
    n_blocks: int,
    n_dwells,
    window: int | None,
    block_pulses: int,
):
    """(switch, sw_base, state0, carry, overflow) of :func:`switching.chunk_switches`
    from the limbs of :func:`switching.dwell_limbs`, in NumPy (the carry too). With
    ``window=None`` the switch array has no padding for the per-block windows and only
    running out of dwells overflows (for :func:`state_bits`, which needs no window)."""
    count, state, hi, lo = (np.array(x) for x in carry)
    state = state.astype(np.int32)
    n_e = count.shape[0]
    empty = np.zeros((n_e, 0), np.uint32)
    parts = [
        (np.asarray(x[0]), np.asarray(x[1])) if x is not None else (empty, empty) for x in limbs
    ]
    size = sum(n_dwells) + (window or 0)
    switch = np.full((n_e, size), np.iinfo(np.int32).max, np.int32)
    base = np.zeros((n_e, n_blocks), np.int32)
    state0 = np.zeros(n_e, np.int32)
    overflow = np.zeros(n_e, bool)
    start_hi = (int(block0) * (block_pulses >> (32 - FRAC_BITS))) & 0xFFFFFFFF
    _switches(
        parts[0][0],
        parts[0][1],
        parts[1][0],
        parts[1][1],
        limbs[0] is not None,
        limbs[1] is not None,
        count,
        state,
        hi,
        lo,
        np.uint32(start_hi),
        n_blocks * block_pulses,
        n_blocks,
        block_pulses,
        window if window is not None else np.iinfo(np.int64).max,
        switch,
        base,
        state0,
        overflow,
    )
    return switch, base, state0, BlinkCarry(count, state, hi, lo), overflow


@numba.njit(**_JIT)
def _fill(row, a, b):
    """Set bits a .. b - 1 of the uint32 words ``row``."""
    if a >= b:
        return
    wa, wb = a >> 5, (b - 1) >> 5
    lo = np.uint32(0xFFFFFFFF) << np.uint32(a & 31)
    hi = np.uint32(0xFFFFFFFF) >> np.uint32(31 - ((b - 1) & 31))
    if wa == wb:
        row[wa] |= lo & hi
        return
    row[wa] |= lo
    for w in range(wa + 1, wb):
        row[w] = np.uint32(0xFFFFFFFF)
    row[wb] |= hi


@numba.njit(**_JIT)
def _state_bits(switch, state0, length, out):
    for e in range(switch.shape[0]):
        row = out[e]
        s = state0[e]
        at = 0
        for k in range(switch.shape[1]):
            v = switch[e, k]
            if v >= length:
                break
            if s:
                _fill(row, at, v)
            s ^= 1
            at = v
        if s:
            _fill(row, at, length)


def state_bits(switch, state0, *, n_blocks: int, block_pulses: int) -> np.ndarray:
    """The charge state of every pulse of the chunk as bits, from the switches of
    :func:`host_switches` (pulse ``p`` is grey when an odd number of switches are at or
    before it, as the kernel's search counts them): (E, n_blocks, block_pulses / 32)
    uint32, bit ``p % 32`` of word ``p // 32`` of its block."""
    n_e = switch.shape[0]
    out = np.zeros((n_e, n_blocks * block_pulses // 32), np.uint32)
    _state_bits(switch, state0.astype(np.int32), n_blocks * block_pulses, out)
    return out.reshape(n_e, n_blocks, block_pulses // 32)


@numba.njit(**_JIT)
def _grey_pulses(switch, state0, length, out):
    for e in range(switch.shape[0]):
        s = state0[e]
        at = 0
        n = 0
        for k in range(switch.shape[1]):
            v = switch[e, k]
            if v >= length:
                break
            if s:
                n += v - at
            s ^= 1
            at = v
        if s:
            n += length - at
        out[e] = n


def grey_pulses(switch, state0, length: int) -> np.ndarray:
    """How many of the chunk's first ``length`` pulses each NC spends charged (grey),
    from the switches of :func:`host_switches` (the kernel's rule: a pulse is grey when an
    odd number of switches are at or before it, counted from ``state0``): (E,) int64."""
    out = np.zeros(switch.shape[0], np.int64)
    _grey_pulses(switch, state0.astype(np.int32), int(length), out)
    return out
