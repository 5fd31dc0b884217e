"""One pure chunk step on the device: kernel slots -> finished, time-ordered TTTR records.

``step(carry, inputs) -> (carry, records)`` is jitted and runs once per chunk and spot
(vmapped over spots). Everything a chunk leaves to the next one is in :class:`Carry`:
incident events that fall past the chunk end, afterpulses still to come, and per channel the
last event kept by each dead-time pass. Inside, on the device:

1. the candidate pulses and noise of the chunk come in from
   :func:`simsps.sim.kernel.chunk_kernel` (a separate jitted call whose output stays on the
   device), arrival times already rounded to whole ps;
2. time order: a time is ``(pulse, t)``, the pulse index relative to the chunk start
   (int32) and the arrival after it in ps (int32, ``0 <= t < period``). Signal photons come
   out of the kernel already ordered (pulses ascend along the slots, and the two photons of
   a pulse are swapped when the X photon arrives first); noise, photons arriving a period or
   more after their pulse ("late") and events carried from the previous chunk form a small
   set that is sorted and merged in by binary search, so nothing large is ever sorted (XLA's
   sort is slow on CPUs);
3. non-paralysable dead time per channel, exact: the events of each channel in order, every
   event at least a dead time after its predecessor kept outright, chains of close events
   resolved by a bounded ``lax.while_loop``;
4. afterpulsing of the kept avalanches (probability ``p`` at ``t + dead + Exp(tau_ap)``, a
   second generation with ``p``), merged in, and a second dead-time pass over avalanches
   and afterpulses together. Afterpulses are drawn from the first pass, so an avalanche
   removed by an afterpulse in the second may still have afterpulsed: an error of order
   ``p * rate * dead``, ~1e-6 for the presets (the reference model does it exactly). The
   random numbers are words of the parent photon's block key: its 16-bit decision from
   the kernel, then the afterpulse's own decision and both delays from pair
   ``AFTERPULSE_PAIR + photon`` of its slot (drawn here; the numba step draws them for
   the photons that afterpulse only); decisions are compared with ``round(p * 2^16)``, the
   16-bit delay quantile indices look up a table of the exponential's quantiles
   (:func:`afterpulse_table`, 65536 steps, computed once on the host);
5. compaction of the kept records and the microtime bin ``t // resolution``.

Ties of equal times are broken the same way whatever the chunking: kernel photons before
the merged set, which is sorted stably on (pulse, t, packed fields); avalanches before
afterpulses. Everything here is integer arithmetic, so :mod:`simsps.sim.host_step` (the
same step in numba, which the engine uses on CPUs, where XLA's scatters and sorts are slow)
gives the identical records, and so does any backend given the same kernel output.
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..stream import Source
from ._jit import kernel_jit
from .kernel import (
    AFTERPULSE_PAIR,
    BLOCK_PULSES,
    SOURCE_SHIFT,
    STATE_SHIFT,
    NoiseSlots,
    SignalSlots,
    channel_bits,
    channel_of,
)
from .threefry import threefry2x32

__all__ = [
    "Carry",
    "DetectorParams",
    "Records",
    "Capacities",
    "initial_carry",
    "step",
    "afterpulse_table",
    "detector_params",
]

BIG = 2**31 - 1  # pulse of an empty entry
FAR_PAST = -(1 << 20)  # pulses: "long ago" for a last-kept time (any dead time < 2^20 periods)
TABLE_BITS = 16


class DetectorParams(NamedTuple):
    """Per spot (leading axis S): integers in ps, and the afterpulse delay table."""

    dead_ps: jax.Array  # () int32
    dead_periods: jax.Array  # () int32: ceil(dead / period) + 1, the clip of pulse gaps
    ap_threshold: jax.Array  # () int32: a 16-bit word below it afterpulses
    ap_table: jax.Array  # (2^16,) int32 ps: quantiles of Exp(tau_ap), rounded
    period_ps: jax.Array  # () int32
    resolution_ps: jax.Array  # () int32 microtime bin (1 when not a whole number of ps)


def afterpulse_table(tau_ps: float) -> np.ndarray:
    """``rint(tau * -ln((k + 1/2) / 2^16))`` for k = 0 .. 2^16 - 1 (int32 ps): a 16-bit word
    ``k`` gives the afterpulse delay beyond the dead time (float64, on the host once)."""
    k = np.arange(1 << TABLE_BITS, dtype=np.float64)
    return np.rint(-np.log((k + 0.5) / (1 << TABLE_BITS)) * tau_ps).astype(np.int32)


def detector_params(det, period_ps: int, n_spots: int, resolution_ps=None) -> DetectorParams:
    """:class:`DetectorParams` of a model's ``[detection]`` section, one row per spot
    (``resolution_ps``: the records' bin when not the section's, e.g. 1 ps for CW's T2)."""
    dead = int(round(det.dead_time_ns * 1e3))
    res = float(det.resolution_ps if resolution_ps is None else resolution_ps)
    table = afterpulse_table(det.afterpulse_time_constant_ns * 1e3)
    if dead + 2 * period_ps + int(table[0]) >= 2**31 - 1:
        raise ValueError(
            f"dead time {dead} ps, laser period {period_ps} ps and afterpulse delays up to "
            f"{int(table[0])} ps: their sum must stay below 2^31 ps (int32 arithmetic)"
        )
    one = lambda x: jnp.full((n_spots,), x, jnp.int32)  # noqa: E731
    return DetectorParams(
        dead_ps=one(dead),
        dead_periods=one(-(-dead // period_ps) + 1),
        ap_threshold=one(math.ceil(det.afterpulse_probability * (1 << TABLE_BITS) - 0.5)),
        ap_table=jnp.broadcast_to(jnp.asarray(table), (n_spots, len(table))),
        period_ps=one(period_ps),
        resolution_ps=one(int(res) if res.is_integer() else 1),
    )


class Queue(NamedTuple):
    """Events held for the next chunk (pulse relative to the *next* chunk's start)."""

    pulse: jax.Array  # (Q,) int32, BIG where empty
    t: jax.Array  # (Q,) int32
    meta: jax.Array  # (Q,) int32 packed fields (see _pack)
    ap: jax.Array  # (Q,) uint32 afterpulse delay quantiles
    delay: jax.Array  # (Q,) float32


class Carry(NamedTuple):
    incident: Queue  # incident events past the chunk end
    afterpulses: Queue  # afterpulses past the chunk end
    last1: jax.Array  # (n, 2) int32 (pulse, t) per channel: last kept by the first pass
    last2: jax.Array  # (n, 2) int32 the same for the second pass


class Records(NamedTuple):
    """Finished detections of one chunk, the first ``count`` valid (per spot)."""

    count: jax.Array  # () int32
    pulse: jax.Array  # (R,) int32 sync index relative to the chunk start
    t: jax.Array  # (R,) int32 arrival after that pulse, ps
    dtime: jax.Array  # (R,) int32 microtime bin
    channel: jax.Array  # (R,) uint8
    source: jax.Array | None  # (R,) uint8 (truth)
    state: jax.Array | None  # (R,) uint8 (truth)
    emitter: jax.Array | None  # (R,) int32 member index within the spot (truth)
    delay: jax.Array | None  # (R,) float32 emission delay (truth)


class Capacities(NamedTuple):
    """Static buffer sizes (buckets; a chunk that needs more is recomputed with more)."""

    slots: int  # signal candidate slots per block
    noise: int  # noise slots per block
    late: int  # late photons per chunk and spot
    queue: int  # carried incident events and afterpulses
    records: int  # incident events per chunk and spot after the merge
    parents: int  # afterpulsing avalanches per chunk and spot


# ---- packing of the per-event small fields into one int32 ------------------------------
# bit 0 channel (bit 0), bits 1-3 source, bit 4 state, bit 5 afterpulses, bit 6 its
# afterpulse afterpulses again, bit 7 channel (bit 1), bits 8-23 emitter (member of the spot)


PARENT_SHIFT, SECOND_SHIFT, MEMBER_SHIFT = 5, 6, 8  # SOURCE_SHIFT, STATE_SHIFT: the kernel's tag


def pack(channel, source, state, parent, second, member):
    """The packed int32 fields (the numba step writes the same bits with the shifts)."""
    i = lambda x: jnp.asarray(x).astype(jnp.int32)  # noqa: E731
    return (
        channel_bits(i(channel))
        | (i(source) << SOURCE_SHIFT)
        | (i(state) << STATE_SHIFT)
        | (i(parent) << PARENT_SHIFT)
        | (i(second) << SECOND_SHIFT)
        | (i(member) << MEMBER_SHIFT)
    )


def _empty_queue(q: int) -> Queue:
    return Queue(
        pulse=jnp.full(q, BIG, jnp.int32),
        t=jnp.zeros(q, jnp.int32),
        meta=jnp.zeros(q, jnp.int32),
        ap=jnp.zeros(q, jnp.uint32),
        delay=jnp.zeros(q, jnp.float32),
    )


def initial_carry(n_spots: int, queue: int, n_channels: int = 2) -> Carry:
    far = jnp.array([[FAR_PAST, 0]] * n_channels, jnp.int32)
    one = Carry(_empty_queue(queue), _empty_queue(queue), far, far)
    return jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (n_spots,) + x.shape), one)


def resize_carry(carry: Carry, queue: int) -> Carry:
    """The carried queues padded to a larger capacity (after an overflow)."""

    def pad(q: Queue) -> Queue:
        extra = queue - q.pulse.shape[-1]
        if extra <= 0:
            return q
        fill = Queue(BIG, 0, 0, 0, 0.0)
        return Queue(
            *(
                jnp.concatenate([a, jnp.full(a.shape[:-1] + (extra,), f, a.dtype)], axis=-1)
                for a, f in zip(q, fill)
            )
        )

    return carry._replace(incident=pad(carry.incident), afterpulses=pad(carry.afterpulses))


# ---- time helpers ----------------------------------------------------------------------


def _normalise(pulse, t, period):
    """(pulse, t) with ``t`` reduced into [0, period)."""
    q = jnp.floor_divide(t, period)
    return pulse + q, t - q * period


def _gap(p1, t1, p0, t0, det: DetectorParams):
    """Time from (p0, t0) to (p1, t1) in ps, exact below the dead time (pulse gaps are
    clipped where the result is beyond it anyway)."""
    dp = jnp.clip(p1 - p0, -det.dead_periods, det.dead_periods)
    return dp * det.period_ps + (t1 - t0)


def _le(pa, ta, pb, tb):
    return (pa < pb) | ((pa == pb) & (ta <= tb))


def _count_le(pa, ta, pb, tb):
    """For each query (pb, tb): how many entries of the sorted keys (pa, ta) are <= it."""
    n = pa.shape[0]
    lo = jnp.zeros(pb.shape, jnp.int32)
    hi = jnp.full(pb.shape, n, jnp.int32)

    def body(_, lh):
        lo, hi = lh
        mid = (lo + hi) // 2
        m = jnp.minimum(mid, n - 1)
        le = _le(pa[m], ta[m], pb, tb) & (mid < hi)
        return jnp.where(le, mid + 1, lo), jnp.where(le, hi, jnp.maximum(mid, lo))

    lo, _ = jax.lax.fori_loop(0, max(1, n.bit_length()), body, (lo, hi))
    return lo


def _merge_positions(valid_a, pa, ta, pb, tb, valid_b):
    """Output positions when the valid entries of A (keys nondecreasing over *all* of A)
    and of B (sorted, valid first) are merged, A first among equal keys. Invalid entries
    get position -1. Returns (pos_a, pos_b, total)."""
    n_a = pa.shape[0]
    ca = jnp.cumsum(valid_a.astype(jnp.int32))  # valid A entries up to and including i
    ins_raw = _count_le(pa, ta, pb, tb)  # raw A entries <= b
    ins = jnp.where(ins_raw > 0, ca[jnp.maximum(ins_raw - 1, 0)], 0)  # valid ones
    ins = jnp.where(valid_b, ins, n_a + 1)
    # B entries placed before the k-th valid A entry: those with ins <= k
    before = jnp.cumsum(jnp.zeros(n_a + 2, jnp.int32).at[ins].add(1, mode="drop"))
    ka = ca - 1
    pos_a = jnp.where(valid_a, ka + before[jnp.maximum(ka, 0)], -1)
    pos_b = jnp.where(valid_b, jnp.cumsum(valid_b.astype(jnp.int32)) - 1 + ins, -1)
    return pos_a, pos_b, ca[-1] + jnp.sum(valid_b.astype(jnp.int32))


def _place(size, pos, *cols):
    """Scatter columns to ``pos`` (-1: dropped) in zero-filled arrays of ``size``."""
    idx = jnp.where(pos < 0, size, pos)
    return [jnp.zeros((size,), c.dtype).at[idx].set(c, mode="drop") for c in cols]


# ---- dead time -------------------------------------------------------------------------


def _dead_time(pulse, t, meta, valid, last, det: DetectorParams):
    """Exact non-paralysable dead time per channel over time-ordered events.

    Returns (keep mask, new last (n, 2) per channel as (pulse, t))."""
    n = pulse.shape[0]
    n_ch = last.shape[0]
    ch = channel_of(meta)
    # stable partition: channel 0's events, then channel 1's, ..., each in time order
    ins = [valid & (ch == c) for c in range(n_ch)]
    cums = [jnp.cumsum(x.astype(jnp.int32)) for x in ins]
    sizes = jnp.stack([c[-1] for c in cums])
    ends = jnp.cumsum(sizes)  # one past each group
    starts = ends - sizes
    gpos = jnp.full(n, -1, jnp.int32)
    for c in range(n_ch):
        gpos = jnp.where(ins[c], starts[c] + cums[c] - 1, gpos)
    gp, gt = _place(n, gpos, pulse, t)
    n_valid = ends[-1]
    i = jnp.arange(n, dtype=jnp.int32)
    g_valid = i < n_valid
    g_ch = jnp.sum((i[:, None] >= ends[None, :-1]).astype(jnp.int32), axis=1)
    first = i == starts[g_ch]
    carry_p, carry_t = last[g_ch, 0], last[g_ch, 1]
    prev_p = jnp.where(first, carry_p, jnp.roll(gp, 1))
    prev_t = jnp.where(first, carry_t, jnp.roll(gt, 1))
    far = _gap(gp, gt, prev_p, prev_t, det) >= det.dead_ps
    # chains of close events: an event's reference is the last kept one before it; the
    # first of a channel refers to the carried time, which was kept
    resolved = far | ~g_valid | first
    keep = far & g_valid
    ref_p = jnp.where(keep, gp, carry_p)
    ref_t = jnp.where(keep, gt, carry_t)

    def body(s):
        resolved, keep, ref_p, ref_t = s
        new = ~resolved & jnp.roll(resolved, 1)
        pp, pt = jnp.roll(ref_p, 1), jnp.roll(ref_t, 1)
        k = _gap(gp, gt, pp, pt, det) >= det.dead_ps
        keep = jnp.where(new, k, keep)
        ref_p = jnp.where(new, jnp.where(k, gp, pp), ref_p)
        ref_t = jnp.where(new, jnp.where(k, gt, pt), ref_t)
        return resolved | new, keep, ref_p, ref_t

    _, keep, ref_p, ref_t = jax.lax.while_loop(
        lambda s: jnp.any(~s[0]), body, (resolved, keep, ref_p, ref_t)
    )
    # the last kept time of each channel: the reference of its last event
    e = jnp.maximum(ends - 1, 0)
    new_last = jnp.where((sizes > 0)[:, None], jnp.stack([ref_p[e], ref_t[e]], axis=1), last)
    return keep[jnp.clip(gpos, 0, n - 1)] & valid, new_last


# ---- small sets ------------------------------------------------------------------------


def _sort_small(pulse, t, meta, ap, delay, valid):
    """Stable sort of a small event set on (pulse, t, meta); invalid ones last."""
    p = jnp.where(valid, pulse, BIG)
    p, t, meta, ap, delay = jax.lax.sort((p, t, meta, ap, delay), num_keys=3, is_stable=True)
    return p, t, meta, ap, delay, p < BIG


def _split_queue(p, t, meta, ap, delay, valid, end, q: int):
    """The sorted events before ``end`` stay; those at or after it fill a queue of ``q``
    for the next chunk, pulses relative to ``end``. Returns (queue, staying, overflow)."""
    stay = valid & (p < end)
    n_later = jnp.sum((valid & (p >= end)).astype(jnp.int32))
    idx = jnp.sum(stay.astype(jnp.int32)) + jnp.arange(q)
    m = jnp.arange(q) < n_later
    src = jnp.clip(idx, 0, p.shape[0] - 1)
    queue = Queue(
        pulse=jnp.where(m, p[src] - end, BIG),
        t=jnp.where(m, t[src], 0),
        meta=jnp.where(m, meta[src], 0),
        ap=jnp.where(m, ap[src], 0),
        delay=jnp.where(m, delay[src], 0.0),
    )
    return queue, stay, n_later > q


def _afterpulses(pulse, t, meta, ap, parent, det: DetectorParams, cap: int):
    """Afterpulses (two generations) of the flagged avalanches, 2 x cap entries
    (pulse, t, meta, valid), and whether the parents overflowed ``cap``."""
    cp = jnp.cumsum(parent.astype(jnp.int32))
    pp, pt, pm, pa = _place(cap, jnp.where(parent, cp - 1, -1), pulse, t, meta, ap)
    ok = jnp.arange(cap) < cp[-1]
    d1 = det.ap_table[(pa >> 16).astype(jnp.int32)]
    d2 = det.ap_table[(pa & 0xFFFF).astype(jnp.int32)]
    p1, t1 = _normalise(pp, pt + det.dead_ps + d1, det.period_ps)
    p2, t2 = _normalise(p1, t1 + det.dead_ps + d2, det.period_ps)
    ch = channel_of(pm)
    ap_meta = pack(ch, Source.AFTERPULSE, 0, 0, 0, 0)
    second = ok & (((pm >> SECOND_SHIFT) & 1) == 1)
    return (
        jnp.concatenate([p1, p2]),
        jnp.concatenate([t1, t2]),
        jnp.concatenate([ap_meta, ap_meta]),
        jnp.concatenate([ok, second]),
        cp[-1] > cap,
    )


# ---- the step --------------------------------------------------------------------------


def _signal_meta(sig: SignalSlots, det):
    """Per photon (axes M, NB, 2, C) the packed fields without the member, and the
    afterpulse delay quantiles. A photon afterpulses when its 16-bit decision is below the
    threshold; only then are its further words (pair ``AFTERPULSE_PAIR + photon`` of its
    slot: the afterpulse's own decision, both delays) used, zero otherwise, as the numba
    step, which draws them for those photons alone."""
    thr = det.ap_threshold
    d = sig.ap_decide[:, :, None, :]
    parent = jnp.concatenate([d >> 16, d & 0xFFFF], axis=2).astype(jnp.int32) < thr
    n_slots = sig.pos.shape[-1]
    slot = jnp.arange(n_slots, dtype=jnp.uint32)[None, None, None, :]
    pair = jnp.arange(AFTERPULSE_PAIR, AFTERPULSE_PAIR + 2, dtype=jnp.uint32)[None, None, :, None]
    kb = sig.block_key[:, :, :, None, None]
    a, b = threefry2x32(kb[:, :, 0], kb[:, :, 1], slot, pair)
    second = parent & ((a >> 16).astype(jnp.int32) < thr)
    meta = (
        sig.tag.astype(jnp.int32)
        | (parent.astype(jnp.int32) << PARENT_SHIFT)
        | (second.astype(jnp.int32) << SECOND_SHIFT)
    )
    return meta, jnp.where(parent, b, jnp.uint32(0))


def signal_events(sig: SignalSlots, det, end):
    """Kernel photons of one spot in time order (A), and the late ones (t >= period).

    ``sig`` leaves have axes (members, blocks, ...). Returns the A columns (pulse, t, meta,
    ap, delay, valid), nondecreasing in (pulse, t) over all entries, and the late photons as
    (pulse, t, meta, ap, delay, ok) in the kernel's (member, block, photon, slot) order."""
    m, nb = sig.pos.shape[:2]
    block = jnp.arange(nb, dtype=jnp.int32)[None, :, None]
    member = jnp.arange(m, dtype=jnp.int32)[:, None, None, None]
    in_block = sig.pos < BLOCK_PULSES
    pulse = jnp.where(in_block, block * BLOCK_PULSES + sig.pos, (block + 1) * BLOCK_PULSES - 1)
    pulse2 = jnp.broadcast_to(pulse[:, :, None, :], sig.t_ps.shape)
    t_raw = sig.t_ps
    late = t_raw >= det.period_ps
    ok = sig.valid & (pulse2 < end)
    ok_a = ok & ~late
    meta, ap = _signal_meta(sig, det)
    meta = meta | (member << MEMBER_SHIFT)
    # the two photons of a slot in time order (the BX photon first among equal times)
    t_a = jnp.where(ok_a, t_raw, -1)
    swap = t_a[:, :, 1] < t_a[:, :, 0]

    def order(x):  # (M, NB, 2, C) -> (M, NB * C * 2) with the swap applied
        x0, x1 = x[:, :, 0], x[:, :, 1]
        y = jnp.stack([jnp.where(swap, x1, x0), jnp.where(swap, x0, x1)], axis=-1)
        return y.reshape(m, -1)

    cols = [order(x) for x in (pulse2, t_a, meta, ap, sig.delay_ps, ok_a)]
    if m > 1:  # several NCs in the spot: their ordered runs are merged by a stable sort
        flat = [c.reshape(-1) for c in cols]
        key = jnp.where(flat[5], flat[0], BIG)
        sorted_ = jax.lax.sort([key] + flat[1:5], num_keys=2, is_stable=True)
        cols = list(sorted_) + [sorted_[0] < BIG]
    else:
        cols = [c[0] for c in cols]
    late_cols = [x.reshape(-1) for x in (pulse2, t_raw, meta, ap, sig.delay_ps)]
    return cols, late_cols + [(ok & late).reshape(-1)]


def noise_events(bg: NoiseSlots, det, end):
    """Noise events of one spot as (pulse, t, meta, ap, delay, ok), (member, block, slot)
    order, times normalised."""
    nb = bg.pos.shape[1]
    block = jnp.arange(nb, dtype=jnp.int32)[None, :, None]
    pulse = (block * BLOCK_PULSES + bg.pos).reshape(-1)
    ok = bg.valid.reshape(-1) & (pulse < end)
    pulse, t = _normalise(pulse, bg.t_ps.reshape(-1), det.period_ps)
    a = bg.ap_a.reshape(-1)
    thr = det.ap_threshold
    meta = pack(
        bg.channel.reshape(-1),
        bg.source.reshape(-1),
        0,
        (a >> 16).astype(jnp.int32) < thr,
        (a & 0xFFFF).astype(jnp.int32) < thr,
        0,
    )
    delay = jnp.full(t.shape, jnp.nan, jnp.float32)
    return [pulse, t, meta, bg.ap_b.reshape(-1), delay, ok]


def _spot_step(carry: Carry, sig: SignalSlots, bg: NoiseSlots, det, end, *, caps, truth):
    """One spot's chunk (see :func:`step`)."""
    period = det.period_ps
    (a_pulse, a_t, a_meta, a_ap, a_delay, a_valid), late = signal_events(sig, det, end)
    # late photons, compacted and normalised
    cl = jnp.cumsum(late[5].astype(jnp.int32))
    lp, lt, lm, la, ld = _place(caps.late, jnp.where(late[5], cl - 1, -1), *late[:5])
    l_valid = jnp.arange(caps.late) < cl[-1]
    lp, lt = _normalise(lp, lt, period)
    late_over = cl[-1] > caps.late
    # the small set: noise, late photons, events carried in; sorted, the later ones queued
    noise = noise_events(bg, det, end)
    inc = carry.incident
    small = [
        jnp.concatenate(c)
        for c in zip(
            noise,
            (lp, lt, lm, la, ld, l_valid),
            (inc.pulse, inc.t, inc.meta, inc.ap, inc.delay, inc.pulse < BIG),
        )
    ]
    sp, st, sm, sa, sd, sv = _sort_small(*small)
    incident_q, sv, q_over = _split_queue(sp, st, sm, sa, sd, sv, end, caps.queue)

    # one time-ordered sequence of incident events
    pos_a, pos_b, total = _merge_positions(a_valid, a_pulse, a_t, sp, st, sv)
    r = caps.records
    pos = jnp.concatenate([pos_a, pos_b])
    cols = [(a_pulse, sp), (a_t, st), (a_meta, sm), (a_ap, sa)]
    cols += [(a_delay, sd)] if truth else []
    e = _place(r, pos, *(jnp.concatenate(c) for c in cols))
    e_valid = jnp.arange(r) < total
    e[0] = jnp.where(e_valid, e[0], BIG)

    # first dead-time pass, afterpulses of the kept avalanches
    keep1, last1 = _dead_time(e[0], e[1], e[2], e_valid, carry.last1, det)
    parent = keep1 & (((e[2] >> PARENT_SHIFT) & 1) == 1)
    ap_p, ap_t, ap_m, ap_v, par_over = _afterpulses(
        e[0], e[1], e[2], e[3], parent, det, caps.parents
    )
    apq = carry.afterpulses
    zeros_u = jnp.zeros(ap_p.shape, jnp.uint32)
    zeros_f = jnp.zeros(ap_p.shape, jnp.float32)
    qp, qt, qm, qa, qd, qv = _sort_small(
        *(
            jnp.concatenate(c)
            for c in zip(
                (ap_p, ap_t, ap_m, zeros_u, zeros_f, ap_v),
                (apq.pulse, apq.t, apq.meta, apq.ap, apq.delay, apq.pulse < BIG),
            )
        )
    )
    ap_queue, qv, apq_over = _split_queue(qp, qt, qm, qa, qd, qv, end, caps.queue)

    # merge the afterpulses in (avalanches first among equal times), second pass
    pos_a, pos_b, total2 = _merge_positions(keep1, e[0], e[1], qp, qt, qv)
    r2 = r + qp.shape[0]
    cols = [(e[0], qp), (e[1], qt), (e[2], qm)]
    cols += [(e[4], jnp.full(qp.shape, jnp.nan, jnp.float32))] if truth else []
    m2 = _place(r2, jnp.concatenate([pos_a, pos_b]), *(jnp.concatenate(c) for c in cols))
    keep2, last2 = _dead_time(m2[0], m2[1], m2[2], jnp.arange(r2) < total2, carry.last2, det)

    # compaction of the records
    ck = jnp.cumsum(keep2.astype(jnp.int32))
    out = _place(r2, jnp.where(keep2, ck - 1, -1), *m2)
    meta = out[2]
    records = Records(
        count=ck[-1],
        pulse=out[0],
        t=out[1],
        dtime=jnp.floor_divide(out[1], det.resolution_ps),
        channel=channel_of(meta).astype(jnp.uint8),
        source=((meta >> SOURCE_SHIFT) & 7).astype(jnp.uint8) if truth else None,
        state=((meta >> STATE_SHIFT) & 1).astype(jnp.uint8) if truth else None,
        emitter=(meta >> MEMBER_SHIFT) if truth else None,
        delay=out[3] if truth else None,
    )

    def shift(last):
        return last.at[:, 0].set(jnp.maximum(last[:, 0] - end, FAR_PAST))

    new_carry = Carry(incident_q, ap_queue, shift(last1), shift(last2))
    overflow = (total > r) | late_over | q_over | par_over | apq_over
    return new_carry, records, overflow


def spot_slots(sig: SignalSlots, bg: NoiseSlots, members):
    """Kernel slots (leading axis E) regrouped by spot: leaves (S, M, ...); ``members``
    (S, M) int32 emitter indices, -1 for none (its slots invalid)."""
    present = members >= 0
    idx = jnp.maximum(members, 0)
    sig = jax.tree_util.tree_map(lambda x: x[idx], sig)
    bg = jax.tree_util.tree_map(lambda x: x[idx], bg)
    sig = sig._replace(valid=sig.valid & present[:, :, None, None, None])
    bg = bg._replace(valid=bg.valid & present[:, :, None, None])
    return sig, bg


@partial(kernel_jit, static_argnames=("caps", "truth"))
def step(carry: Carry, slots, members, det: DetectorParams, end, *, caps: Capacities, truth=True):
    """One chunk for every spot: ``(carry, kernel slots) -> (carry, records, overflow)``.

    ``slots``: the (:class:`SignalSlots`, :class:`NoiseSlots`) of
    :func:`simsps.sim.kernel.chunk_kernel` (leading axes E, blocks); ``members`` (S, M) the
    emitters of each spot (-1: none); ``det``: :class:`DetectorParams` (leading axis S);
    ``end``: the pulses of the chunk that exist (the last chunk of a run stops short). With
    ``truth=False`` the ground-truth columns are neither computed nor returned. When
    ``overflow`` is true the records are incomplete: rerun with larger ``caps``.
    """
    sig, bg = spot_slots(*slots, members)
    body = partial(_spot_step, end=end, caps=caps, truth=truth)
    carry, records, overflow = jax.vmap(body)(carry, sig, bg, det)
    return carry, records, overflow.any()
