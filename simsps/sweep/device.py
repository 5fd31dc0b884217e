"""A sweep's counts on an accelerator: the reductions of :mod:`simsps.sweep.reduce` as one
jitted function per chunk, vmapped over the runs of a batch, on the chunk step's device
records (:class:`simsps.sim.engine.DeviceChunk`), so the photons never leave the device.

The counts are the host accumulator's, integer for integer (tested on the CPU backend):

* photons per channel and block, microtime histograms, the 10 ms trace;
* pairs of a channel-0 and a channel-1 photon closer than the pair window (the pulsed fine
  bins, the emitter-only peaks, g2_log's exact bins): record ``i`` against record
  ``i - o`` for ``o = 1, 2, ...`` until no record has a partner that close, over the chunk
  and a history of the previous chunks' last photons;
* g2_log's gridded decades: per record and grid edge ``E``, the other channel's photons in
  cells up to ``q - E`` from a binary search of the (sorted) cells and prefix counts, all
  of them and those of the record's block (the block's first photon index ``K0``);
* g2_log's coverage needs each channel-0 photon near a block edge by its exact distance:
  those few (a block edge's reach in delay, ~1 % of the photons) are compacted on the
  device and counted on the host with the host's own code.

A photon's time is its sync and microtime bin (``dtime x resolution``, what a file holds
and the host counts), not its exact arrival. Times stay 32-bit: a record's pulse is
relative to its chunk (history pulses negative), the ps within the pulse separate; fine-bin indices are computed from whole periods and a
remainder, grid cells from pulses (a decade's quantum is a whole number of periods), the
trace bin from whole pulses per bin. Layouts that break these (a grid quantum below a
period, a 10 ms bin that is not a whole number of pulses) are refused
(:class:`DeviceLayout` says why) and such sweeps count on the host. The history must hold
every photon within the longest pair or grid reach before a chunk; when it does not, the
chunk is counted again with twice the room (the counts do not depend on it).
"""

from __future__ import annotations

import dataclasses
import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ..analysis.g2_pulsed import SUB
from ..stream import Source
from .reduce import Accumulator, Layout, coverage_add

__all__ = ["DeviceLayout", "DeviceCounts"]

_EMPTY = -(1 << 30)  # pulse of an empty history entry
_BIG = 1 << 30  # pulse of an invalid record
_DARK = int(Source.DARK)


@dataclasses.dataclass(frozen=True)
class DeviceLayout:
    """The static numbers of the device reductions (hashable: the jit's static argument)."""

    period: int
    res: int  # microtime bin, ps (a photon's time is its sync and bin, as in a file)
    n_micro: int
    n_trace: int
    ppb: int  # pulses per trace bin
    n_blocks: int
    half: int
    k: int
    delay: int
    window_ps: int
    window_p: int  # whole pulses a pair can be apart
    exact: tuple  # exact-pair edges, ps
    dec_m: tuple  # pulses per grid cell, per decade
    dec_first: tuple
    dec_edges: tuple  # per decade, its grid edges in cells
    n_bins: int
    reach_p: int  # pulses from a block edge within which a channel-0 photon matters
    span_p: int  # pulses of history every chunk needs
    history: int  # its capacity
    selected: int  # capacity of the photons near block edges per chunk
    truth: bool

    @staticmethod
    def of(lay: Layout, truth: bool, history: int = 256, selected: int = 1024):
        """Raise NotImplementedError when the layout needs more than 32-bit times."""
        period = int(round(lay.period_ps))
        if period != lay.period_ps:
            raise NotImplementedError("device counts need a whole number of ps per period")
        if not float(lay.resolution_ps).is_integer():
            raise NotImplementedError("device counts need a whole number of ps per bin")
        ppb = lay.pulses_per_trace_bin
        if abs(ppb - round(ppb)) > 1e-9 * ppb:
            raise NotImplementedError("device counts need whole pulses per 10 ms trace bin")
        g = lay.geometry
        if g.period_ps * SUB > 2**31 - 1:
            raise NotImplementedError("device counts need a period below 5.3 us")
        lg = lay.log
        exact, dec_m, dec_first, dec_edges, n_bins, reach, grid_span = (1,), (), (), (), 0, 0, 0
        if lg is not None:
            exact = tuple(int(x) for x in lg.exact_edges)
            for r, first, lo, hi in zip(lg.dec_r, lg.dec_first, lg.dec_off[:-1], lg.dec_off[1:]):
                if r % period:
                    raise NotImplementedError("device counts need grid quanta of whole periods")
                dec_m += (int(r // period),)
                dec_first += (int(first),)
                dec_edges += (tuple(int(x) for x in lg.dec_edges[lo:hi]),)
                grid_span = max(grid_span, int(lg.dec_edges[hi - 1] + 1) * int(r // period))
            n_bins = lg.geometry.n_bins
            reach = int(math.ceil(float(lg.breakpoints[-1]) / period)) + 1
        window = max(g.window_ps, exact[-1] if len(exact) > 1 else 0)
        window_p = window // period + 1
        return DeviceLayout(
            period=period,
            res=int(lay.resolution_ps),
            n_micro=lay.n_micro,
            n_trace=lay.n_trace,
            ppb=int(round(ppb)),
            n_blocks=g.n_blocks,
            half=g.half,
            k=g.k,
            delay=int(g.delay_ps),
            window_ps=int(window),
            window_p=int(window_p),
            exact=exact,
            dec_m=dec_m,
            dec_first=dec_first,
            dec_edges=dec_edges,
            n_bins=n_bins,
            reach_p=reach,
            span_p=max(window_p, grid_span) + 2,
            history=int(history),
            selected=int(selected),
            truth=bool(truth),
        )


def _initial_state(lay: DeviceLayout, n_fine: int, n_spots: int) -> dict:
    z = lambda *shape, dt=jnp.int32: jnp.zeros((n_spots, *shape), dt)  # noqa: E731
    g = lay.history
    return dict(
        rows=z(1 + lay.n_blocks, n_fine),
        block_counts=z(lay.n_blocks, 2),
        truth_peaks=z(2 * lay.k + 1),
        micro=z(2, lay.n_micro),
        trace=z(lay.n_trace),
        abw=z(3, lay.n_blocks, lay.n_bins),
        k0=z(lay.n_blocks, 2),
        seen=z(2),
        h_pulse=jnp.full((n_spots, g), _EMPTY, jnp.int32),
        h_t=z(g),
        h_ch=jnp.full((n_spots, g), -1, jnp.int32),
        h_blk=z(g),
        h_em=z(g, dt=jnp.bool_),
    )


def _spot(st, pulse, dtime, channel, source, count, edge_rel, trace_base, trace_off, dec_off,
          length, *, lay: DeviceLayout, n_fine: int):  # fmt: skip
    """One run's chunk: (new state, selected near-edge photons, their count, overflow)."""
    i32 = jnp.int32
    R = pulse.shape[0]
    G = lay.history
    valid = jnp.arange(R) < count
    ch = jnp.where(valid, channel.astype(i32), -1)
    c01 = valid & (ch <= 1)
    em = valid & (source.astype(i32) < _DARK) if lay.truth else jnp.zeros(R, bool)
    blk = jnp.clip(jnp.searchsorted(edge_rel, pulse, side="right") - 1, 0, lay.n_blocks - 1)
    blk = blk.astype(i32)
    drop = lambda ok, idx, size: jnp.where(ok, idx, size)  # noqa: E731 (out of range: dropped)

    # ---- photons per channel and block, microtimes, trace ---------------------------
    chi = jnp.clip(ch, 0, 1)
    block_counts = st["block_counts"].at[drop(c01, blk, lay.n_blocks), chi].add(1, mode="drop")
    micro = (
        st["micro"]
        .at[chi, drop(c01 & (dtime < lay.n_micro), dtime, lay.n_micro)]
        .add(1, mode="drop")
    )
    tb = trace_base + (trace_off + pulse) // lay.ppb
    trace = st["trace"].at[drop(valid & (tb < lay.n_trace), tb, lay.n_trace)].add(1, mode="drop")

    # ---- K0: photons of each channel before each block that starts in this chunk ------
    cc = jnp.cumsum(jnp.stack([valid & (ch == 0), valid & (ch == 1)]), axis=1, dtype=i32)
    first = jnp.searchsorted(jnp.where(valid, pulse, _BIG), edge_rel[:-1], side="left")
    before = jnp.where(first[None, :] > 0, cc[:, jnp.maximum(first - 1, 0)], 0)  # (2, B)
    starts = (edge_rel[:-1] >= 0) & (edge_rel[:-1] < length)
    k0 = jnp.where(starts[:, None], st["seen"][None, :] + before.T, st["k0"])

    # ---- history + chunk, in time order ----------------------------------------------
    P = jnp.concatenate([st["h_pulse"], jnp.where(valid, pulse, _BIG)])
    t_bin = dtime * lay.res  # the time a file gives: the microtime bin's start
    T = jnp.concatenate([st["h_t"], t_bin])
    CH = jnp.concatenate([st["h_ch"], ch])
    V = jnp.concatenate([st["h_ch"] >= 0, valid])
    BLK = jnp.concatenate([st["h_blk"], blk])
    EM = jnp.concatenate([st["h_em"], em])
    i = jnp.arange(G, G + R)
    exact = jnp.asarray(lay.exact, i32)
    e_lo, e_hi = lay.exact[0], lay.exact[-1]
    n_ex = len(lay.exact)
    per, half = lay.period, lay.half

    def pairs(carry):
        o, rows, truth, abw, _ = carry
        j = i - o
        jj = jnp.maximum(j, 0)
        dp = P[i] - P[jj]
        near = (j >= 0) & V[i] & V[jj] & (dp <= lay.window_p)
        ok = near & (CH[i] != CH[jj]) & (CH[i] <= 1) & (CH[jj] <= 1)
        dd = jnp.where(ok, dp, 0) * per + T[i] - T[jj]
        ok = ok & (dd < lay.window_ps)
        d01 = jnp.where(CH[i] == 1, dd, -dd) - lay.delay
        q = jnp.floor_divide(d01, per)
        idx = q * SUB + jnp.floor_divide((d01 - q * per) * SUB, per) + half
        fine = ok & (idx >= 0) & (idx < n_fine)
        ba = jnp.where(CH[i] == 0, BLK[i], BLK[jj])
        bb = jnp.where(CH[i] == 0, BLK[jj], BLK[i])
        rows = rows.at[0, drop(fine, idx, n_fine)].add(1, mode="drop")
        rows = rows.at[1 + ba, drop(fine, idx, n_fine)].add(1, mode="drop")
        rows = rows.at[1 + bb, drop(fine & (bb != ba), idx, n_fine)].add(1, mode="drop")
        m = jnp.floor_divide(idx - half + SUB // 2, SUB)
        both = fine & EM[i] & EM[jj] & (m >= -lay.k) & (m <= lay.k)
        truth = truth.at[drop(both, m + lay.k, 2 * lay.k + 1)].add(1, mode="drop")
        if n_ex > 1:
            ex = ok & (dd >= e_lo) & (dd < e_hi)
            kk = (jnp.searchsorted(exact, dd, side="right") - 1).astype(i32)
            kk = drop(ex, kk, lay.n_bins)
            abw = abw.at[0, ba, kk].add(1, mode="drop")
            abw = abw.at[1, bb, kk].add(1, mode="drop")
            abw = abw.at[2, ba, drop(ba == bb, kk, lay.n_bins)].add(1, mode="drop")
        return o + 1, rows, truth, abw, jnp.any(near)

    _, rows, truth, abw, _ = jax.lax.while_loop(
        lambda c: c[4],
        pairs,
        (i32(1), st["rows"], st["truth_peaks"], st["abw"], jnp.bool_(True)),
    )

    # ---- g2_log's grids ----------------------------------------------------------------
    hist_n = jnp.stack([jnp.sum(V[:G] & (CH[:G] == c)) for c in (0, 1)]).astype(i32)
    hist_base = st["seen"] - hist_n  # photons of each channel before the history
    pre = jnp.cumsum(jnp.stack([V & (CH == 0), V & (CH == 1)]), axis=1, dtype=i32)  # (2, N)
    mine = jnp.clip(CH[i], 0, 1)
    other = 1 - mine
    use = c01
    b_i = BLK[i]
    other_k0 = k0[b_i, other]
    mine_or_drop = jnp.where(use, mine, 3)  # row 3 does not exist: dropped
    theirs = jnp.where(use, other, 3)
    before_blk = jnp.where(use & (b_i > 0), b_i - 1, lay.n_blocks)
    for d, (m_d, first_bin, edges) in enumerate(zip(lay.dec_m, lay.dec_first, lay.dec_edges)):
        cells = jnp.floor_divide(dec_off[d] + P, m_d)
        cell_i = cells[i]

        def photons_upto(x, cells=cells):  # the other channel's photons in cells <= x
            pos = jnp.searchsorted(cells, x, side="right")
            n = hist_base[other] + jnp.where(pos > 0, pre[other, jnp.maximum(pos - 1, 0)], 0)
            return n, jnp.maximum(n - other_k0, 0)

        n_prev, s_prev = photons_upto(cell_i - edges[0])
        for kk in range(1, len(edges)):  # one edge at a time: (R,) arrays only
            n_k, s_k = photons_upto(cell_i - edges[kk])
            n_tot, n_same = n_prev - n_k, s_prev - s_k
            m = first_bin + kk - 1
            abw = abw.at[mine_or_drop, b_i, m].add(n_tot, mode="drop")
            abw = abw.at[theirs, b_i, m].add(n_same, mode="drop")
            abw = abw.at[jnp.where(use, 2, 3), b_i, m].add(n_same, mode="drop")
            abw = abw.at[theirs, before_blk, m].add(n_tot - n_same, mode="drop")
            n_prev, s_prev = n_k, s_k

    # ---- channel-0 photons near a block edge: to the host ------------------------------
    y_r = pulse - edge_rel[blk]
    y_l = edge_rel[blk + 1] - pulse
    near = valid & (ch == 0) & ((y_r <= lay.reach_p) | (y_l <= lay.reach_p))
    n_near = jnp.sum(near).astype(i32)
    (sel,) = jnp.nonzero(near, size=lay.selected, fill_value=0)
    selected = (pulse[sel], t_bin[sel], blk[sel])

    # ---- the history the next chunk needs ----------------------------------------------
    n_valid = jnp.sum(V).astype(i32)
    start = count  # valid entries fill [G - hist count, G + count): keep the last G
    keep = lambda x: jax.lax.dynamic_slice(x, (start,), (G,))  # noqa: E731
    kp = keep(P)
    kv = keep(V)
    new_p = jnp.where(kv, kp - length, _EMPTY)
    # overflow: photons were dropped that the next chunk can still reach
    overflow = (n_valid > G) & (new_p[0] >= -lay.span_p)
    overflow = overflow | (n_near > lay.selected)
    seen = st["seen"] + jnp.stack([cc[0, -1], cc[1, -1]])
    new = dict(
        rows=rows,
        block_counts=block_counts,
        truth_peaks=truth,
        micro=micro,
        trace=trace,
        abw=abw,
        k0=k0,
        seen=seen,
        h_pulse=new_p,
        h_t=keep(T),
        h_ch=jnp.where(kv, keep(CH), -1),
        h_blk=keep(BLK),
        h_em=keep(EM) & kv,
    )
    return new, selected, n_near, overflow


@partial(jax.jit, static_argnames=("lay", "n_fine"))
def _reduce(state, records, edge_rel, trace_base, trace_off, dec_off, length, *, lay, n_fine):
    source = records.source if lay.truth else records.channel
    body = partial(_spot, lay=lay, n_fine=n_fine)
    new, selected, n_near, overflow = jax.vmap(
        body, in_axes=(0, 0, 0, 0, 0, 0, None, None, None, None, None)
    )(
        state, records.pulse, records.dtime, records.channel, source, records.count,
        edge_rel, trace_base, trace_off, dec_off, length,
    )  # fmt: skip
    return new, selected, n_near, jnp.any(overflow)


def _head(records):
    """The records up to a bucket of the largest count (the step's buffers are sized for
    the worst case: counting over them all would cost that much more, and memory)."""
    from ..sim.kernel import _quantise

    size = records.pulse.shape[1]
    top = min(size, _quantise(int(np.asarray(records.count).max())))
    if top == size:
        return records
    return records._replace(
        **{
            f: getattr(records, f)[:, :top]
            for f in records._fields[1:]
            if getattr(records, f) is not None
        }
    )


class DeviceCounts:
    """The counts of a batch's runs kept on the device; :meth:`add` one
    :class:`~simsps.sim.engine.DeviceChunk`, :meth:`accumulators` hands them to the host
    as :class:`~simsps.sweep.reduce.Accumulator` (for :func:`~simsps.sweep.statistics.finish`)."""

    def __init__(self, layout: Layout, n_runs: int, truth: bool = True, history: int = 256):
        self.layout = layout
        self.n_runs = n_runs
        self.lay = DeviceLayout.of(layout, truth, history=history, selected=4 * history)
        g = layout.geometry
        self.state = _initial_state(self.lay, g.n_fine, n_runs)
        self.edges_p = np.round(g.block_ps / layout.period_ps).astype(np.int64)  # pulses
        lg = layout.log
        n_bp = len(lg.breakpoints) if lg is not None else 0
        self.cov_n = np.zeros((n_runs, g.n_blocks + 1, 2, n_bp + 1), np.int64)
        self.cov_y = np.zeros((n_runs, g.n_blocks + 1, 2, n_bp + 1), np.float64)
        self.grey = np.zeros(n_runs, np.int64)
        self.bleach = np.full(n_runs, math.inf)

    def add(self, chunk) -> None:
        start, stop = int(chunk.start), int(chunk.stop)
        length = stop - start
        lay = self.lay
        edge_rel = np.clip(self.edges_p - start, -_BIG, _BIG).astype(np.int32)
        args = (
            jnp.asarray(edge_rel),
            jnp.int32(start // lay.ppb),
            jnp.int32(start % lay.ppb),
            jnp.asarray(np.array([start % m for m in lay.dec_m] or [0], np.int32)),
            jnp.int32(length),
        )
        n_fine = self.layout.geometry.n_fine
        records = _head(chunk.records)
        while True:
            new, sel, n_near, overflow = _reduce(
                self.state, records, *args, lay=self.lay, n_fine=n_fine
            )
            if not bool(overflow):
                break
            self._grow(n_fine)  # more history or more room for the near-edge photons
        self.state = new
        if chunk.grey_pulses is not None:
            self.grey += np.asarray(chunk.grey_pulses, np.int64)
        if chunk.bleach_time_s is not None:
            self.bleach = np.asarray(chunk.bleach_time_s, np.float64)
        lg = self.layout.log
        if lg is not None:  # the coverage of the few photons near a block edge, here
            n_near = np.asarray(n_near)
            pulse, t, blk = (np.asarray(x) for x in sel)
            per = np.int64(lay.period)
            for s in range(self.n_runs):
                k = int(n_near[s])
                if k:
                    ts = (start + pulse[s, :k].astype(np.int64)) * per + t[s, :k]
                    coverage_add(
                        ts, blk[s, :k].astype(np.int64), self.layout.geometry.block_ps,
                        lg.breakpoints, self.cov_n[s], self.cov_y[s],
                    )  # fmt: skip

    def _grow(self, n_fine: int) -> None:
        old = self.lay
        self.lay = dataclasses.replace(old, history=2 * old.history, selected=2 * old.selected)
        pad = old.history
        st = dict(self.state)
        for name, fill in (("h_pulse", _EMPTY), ("h_t", 0), ("h_ch", -1), ("h_blk", 0)):
            x = st[name]
            st[name] = jnp.concatenate([jnp.full((x.shape[0], pad), fill, x.dtype), x], axis=1)
        st["h_em"] = jnp.concatenate([jnp.zeros_like(st["h_em"]), st["h_em"]], axis=1)
        self.state = st

    def accumulators(self) -> list[Accumulator]:
        """Host accumulators holding these counts (one copy of the reductions)."""
        host = {k: np.asarray(v) for k, v in self.state.items() if not k.startswith("h_")}
        out = []
        for s in range(self.n_runs):
            acc = Accumulator(self.layout)
            acc.rows = host["rows"][s].astype(np.int64)
            acc.block_counts = host["block_counts"][s].astype(np.int64)
            acc.truth_peaks = host["truth_peaks"][s].astype(np.int64)
            acc.micro = host["micro"][s].astype(np.int64)
            acc.trace = host["trace"][s].astype(np.int64)
            acc.log_abw = host["abw"][s].astype(np.int64)
            acc.cov_n, acc.cov_y = self.cov_n[s], self.cov_y[s]
            acc._gstate[:2] = host["seen"][s]
            acc._finished = True  # the grids were counted record by record
            acc.grey_pulses = int(self.grey[s])
            acc.bleach_time_s = float(self.bleach[s])
            out.append(acc)
        return out
