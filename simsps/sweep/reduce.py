"""Statistics of a sweep point accumulated chunk by chunk where its photons are.

One :class:`Accumulator` per point takes each chunk's columns (sync, microtime bin, channel,
and the source of each photon) straight from the chunk step, in one compiled pass (numba,
no Python per photon, nothing kept but the counts), and holds what the estimators need:

* photons per channel and per jackknife block;
* the pulsed cross-correlation as :func:`simsps.analysis.g2_pulsed.pulsed_counts` counts
  it (pairs of a channel-0 and a channel-1 photon per fine bin of ``t_1 - t_0``, all of
  them and per block they leave with), with a short history of the photons of the last
  ``window`` carried between chunks, so pairs straddling a chunk boundary are counted;
* the same pairs' whole-period windows for the emitter photons alone (ground truth);
* :func:`simsps.analysis.g2_log`'s counts on its log delay bins: the pairs closer than
  the split delay by their exact delay (from the same history), the rest on each decade's
  counting grid (cells of ``r`` ps: per channel the running photon count at every recent
  cell, read at ``q - E`` for every grid edge ``E`` once a cell is complete, weighted by the
  photons in it), all by jackknife block (the first decade, when few photons fall within
  its reach, by its pairs from the history instead: the same counts, cheaper than a cell
  per cell between photons); and, for the normalisation, the channel-0
  photons near each block edge by their distance to it (count and sum per interval
  between the bins' delay limits: the coverage sums are piecewise linear in the distance);
* the microtime histogram of each channel;
* photons per 10 ms bin (``simsps.analysis.intensity_trace``'s bins);
* the pulses the NC spent charged (from the blink switches) and its bleach time.

Every count is an integer, so a point's statistics do not depend on how its stream was cut
into chunks; the estimates are then made from them by the same code the estimators use
(:mod:`simsps.sweep.statistics`), so they equal the estimators run on the point's stream
(tested).
"""

from __future__ import annotations

import dataclasses
import math

import numba
import numpy as np

from ..analysis.g2_log import LogGeometry
from ..analysis.g2_pulsed import SUB, PulsedGeometry
from ..stream import Source

__all__ = ["Layout", "Accumulator"]

_JIT = dict(nogil=True, cache=True)
_DARK = int(Source.DARK)
_HISTORY = 1024  # photons within the pair window carried between chunks (grows if needed)
TRACE_BIN_S = 0.01
# g2_log's first gridded decade is counted by its pairs when fewer photons than this are
# expected within its reach: per photon, a pair per photon within reach against a cell per
# cell since the last photon and an edge per bin on the grid (equal near 8, measured)
WALK_PHOTONS = 8.0


@dataclasses.dataclass(frozen=True)
class LogLayout:
    """g2_log's bins as the reduction walks them: the exact-pair edges (int ps), each
    decade's grid (quantum, first bin, edges in cells; flattened), and the sorted delay
    limits of every bin (the coverage's breakpoints)."""

    geometry: LogGeometry
    exact_edges: np.ndarray  # edges[: split + 1]
    dec_r: np.ndarray  # (D,) grid quantum, ps
    dec_first: np.ndarray  # (D,) first bin of the decade
    dec_off: np.ndarray  # (D + 1,) offsets of each decade's edges in dec_edges
    dec_edges: np.ndarray  # grid edges in cells, all decades
    ring: int  # cells each decade's running counts remember (a power of 2 > largest edge)
    breakpoints: np.ndarray  # sorted unique lo and hi of every bin (ps)
    tau_max_s: float  # as asked (the last edge may lie beyond it)
    snap: bool  # edges of wide bins between the laser's peaks

    @staticmethod
    def of(geo: LogGeometry, tau_max_s: float, snap: bool) -> "LogLayout":
        decs = geo.decades
        off = np.concatenate([[0], np.cumsum([len(d[3]) for d in decs])]).astype(np.int64)
        flat = np.concatenate([d[3] for d in decs]) if decs else np.zeros(0, np.int64)
        return LogLayout(
            geometry=geo,
            exact_edges=geo.edges[: geo.split + 1].astype(np.int64),
            dec_r=np.array([d[2] for d in decs], np.int64),
            dec_first=np.array([d[0] for d in decs], np.int64),
            dec_off=off,
            dec_edges=flat.astype(np.int64),
            ring=1 << int(flat.max()).bit_length() if len(flat) else 1,
            breakpoints=np.unique(np.concatenate([geo.lo, geo.hi])),
            tau_max_s=float(tau_max_s),
            snap=bool(snap),
        )


@dataclasses.dataclass(frozen=True)
class Layout:
    """What every point of a batch shares: the laser period (ps), the microtime bin, the
    acquisition's length, the pulsed-g2 geometry, the bins of the intensity trace and
    g2_log's bins (None: no g2_log)."""

    period_ps: float
    resolution_ps: float
    n_pulses: int
    geometry: PulsedGeometry
    log: LogLayout | None = None
    trace_bin_s: float = TRACE_BIN_S

    @property
    def duration_s(self) -> float:
        return self.n_pulses * self.period_ps * 1e-12

    @property
    def n_micro(self) -> int:
        """Microtime bins of one period (simulated photons arrive within their period)."""
        return max(int(math.ceil(self.period_ps / self.resolution_ps)), 1)

    @property
    def pulses_per_trace_bin(self) -> float:
        return self.trace_bin_s * 1e12 / self.period_ps

    @property
    def n_trace(self) -> int:
        """Whole trace bins (a trailing partial bin is dropped, as intensity_trace does)."""
        return int(math.floor(self.duration_s / self.trace_bin_s + 1e-9))


def walk_decade(layout: Layout, rate_cps: float | None):
    """(cell, bin of each cell difference or -1, first and end cell difference) of g2_log's
    first gridded decade when counting it by its pairs pays at ``rate_cps`` photons per
    second (both channels), else None. The pairs give the grid's counts when the grid
    pairs a cell with earlier ones only (its first edge >= 1) and no pair spans more than
    one jackknife block edge (the grid puts a partner not of the photon's block in the one
    before; ``log_layout`` keeps every delay within 0.9 block)."""
    lg = layout.log
    if lg is None or rate_cps is None or not len(lg.dec_r):
        return None
    edges = lg.dec_edges[lg.dec_off[0] : lg.dec_off[1]]
    r = int(lg.dec_r[0])
    reach = int(edges[-1]) * r
    if edges[0] < 1 or reach > np.diff(layout.geometry.block_ps).min():
        return None
    if rate_cps * reach * 1e-12 > WALK_PHOTONS:
        return None
    lut = np.full(int(edges[-1]), -1, np.int64)
    for k in range(len(edges) - 1):
        lut[edges[k] : edges[k + 1]] = lg.dec_first[0] + k
    return r, lut, int(edges[0]), int(edges[-1])


class Accumulator:
    """The counts of one point (see the module doc); :meth:`add` one chunk's columns, the
    chunks in time order (a stream's, as the engine makes them). ``rate_cps``: the point's
    expected photons per second (both channels; an upper bound does), which picks how
    g2_log's first decade is counted (the counts do not depend on it); None: on its grid."""

    def __init__(self, layout: Layout, rate_cps: float | None = None):
        g = layout.geometry
        self.layout = layout
        self.rows = np.zeros((1 + g.n_blocks, g.n_fine), np.int64)
        self.block_counts = np.zeros((g.n_blocks, 2), np.int64)
        self.truth_peaks = np.zeros(2 * g.k + 1, np.int64)
        self.micro = np.zeros((2, layout.n_micro), np.int64)
        self.trace = np.zeros(layout.n_trace, np.int64)
        self.grey_pulses = 0
        self.bleach_time_s = math.inf
        self.other = np.zeros(2, np.int64)  # photons on other channels; microtimes past a period
        self._h_t = np.zeros(_HISTORY, np.int64)
        self._h_c = np.zeros(_HISTORY, np.int8)
        self._h_b = np.zeros(_HISTORY, np.int32)
        self._h_e = np.zeros(_HISTORY, np.bool_)
        self._h_q = np.zeros(_HISTORY, np.int64)  # cell of the first decade (walked)
        self._state = np.zeros(3, np.int64)  # history start, history end, current block
        lg = layout.log
        n_bins = lg.geometry.n_bins if lg else 0
        n_dec = len(lg.dec_r) if lg else 0
        n_bp = len(lg.breakpoints) if lg else 0
        self.log_abw = np.zeros((3, g.n_blocks, n_bins), np.int64)  # A, B, W
        self.cov_n = np.zeros((g.n_blocks + 1, 2, n_bp + 1), np.int64)  # edge, side, interval
        self.cov_y = np.zeros((g.n_blocks + 1, 2, n_bp + 1), np.float64)
        self._ring = np.zeros((n_dec, 2, lg.ring if lg else 1), np.int64)
        self._k0 = np.zeros((g.n_blocks, 2), np.int64)  # photons per channel before each block
        # per decade: current cell, pending photons per channel in it and their block
        self._cell = np.full(n_dec, -1, np.int64)
        self._pend = np.zeros((n_dec, 2), np.int64)
        self._pend_blk = np.zeros(n_dec, np.int64)
        self._gstate = np.zeros(4, np.int64)  # photons of channel 0, 1; current block
        self._exact = lg.exact_edges if lg else np.zeros(1, np.int64)
        # the history holds the photons a pair of either estimator can still reach
        self._window = max(g.window_ps, int(self._exact[-1]) if len(self._exact) > 1 else 0)
        walk = walk_decade(layout, rate_cps)
        self._walk = walk or (1, np.zeros(1, np.int64), 0, 0)  # (r, lut, lo, hi); hi 0: off
        self._history_ps = self._window
        if walk is not None:  # and the first decade's pairs: cells less than hi apart
            self._history_ps = max(self._window, (walk[3] + 1) * walk[0])
        self._finished = False

    def add(self, cols: dict) -> None:
        """Count one chunk of the point's stream: its columns ``sync``, ``dtime``,
        ``channel`` and, when the truth was kept, ``source``."""
        lay, g = self.layout, self.layout.geometry
        res = float(lay.resolution_ps)
        source = cols.get("source")
        has_source = source is not None
        if source is None:
            source = np.zeros(0, np.uint8)
        sync, dtime, channel = cols["sync"], cols["dtime"], cols["channel"]
        i, n = 0, len(sync)
        while i < n:
            i = _accumulate(
                sync, dtime, channel, source, has_source, i,
                int(round(lay.period_ps)), int(res) if res.is_integer() else 0, res,
                lay.pulses_per_trace_bin, g.block_ps, g.delay_ps, g.half, self._window,
                self._history_ps, g.k, self.rows, self.block_counts, self.truth_peaks,
                self.micro, self.trace, self.other, self._h_t, self._h_c, self._h_b,
                self._h_e, self._h_q, self._state, self._exact, self.log_abw, *self._walk,
            )  # fmt: skip
            if i < n:  # the history is full of photons within the window: more room
                self._grow()
        lg = lay.log
        if lg is not None:
            _accumulate_log(
                sync, dtime, channel, int(round(lay.period_ps)),
                int(res) if res.is_integer() else 0, res, g.block_ps, lg.dec_r, lg.dec_first,
                lg.dec_off, lg.dec_edges, lg.breakpoints, self.log_abw, self.cov_n,
                self.cov_y, self._ring, self._k0, self._cell, self._pend, self._pend_blk,
                self._gstate, 1 if self._walk[3] else 0,
            )  # fmt: skip

    def finish_log(self) -> None:
        """Count the photons of the last cell of every decade (once, at the end)."""
        lg = self.layout.log
        if lg is None or self._finished:
            return
        self._finished = True
        for d in range(len(lg.dec_r)):
            _flush(d, lg.dec_first, lg.dec_off, lg.dec_edges, self.log_abw, self._ring,
                   self._k0, self._cell, self._pend, self._pend_blk)  # fmt: skip

    def _grow(self) -> None:
        h0, h1 = int(self._state[0]), int(self._state[1])
        size = 2 * len(self._h_t)
        for name in ("_h_t", "_h_c", "_h_b", "_h_e", "_h_q"):
            old = getattr(self, name)
            new = np.zeros(size, old.dtype)
            new[: h1 - h0] = old[h0:h1]
            setattr(self, name, new)
        self._state[0], self._state[1] = 0, h1 - h0


@numba.njit(**_JIT)
def _accumulate(sync, dtime, channel, source, has_source, i0, period, res_int, res, ppb,
                block_ps, delay, half, window, history_ps, k, rows, block_counts, truth_peaks,
                micro, trace, other, h_t, h_c, h_b, h_e, h_q, state, exact, log_abw, w_r,
                w_lut, w_lo, w_hi):  # fmt: skip
    """Count the photons ``i0 ..`` of one chunk; returns the index reached (less than the
    chunk's length when the history needs more room). Pairs with the history (the photons
    of the last ``history_ps``): within ``window``, the pulsed fine bins and, below the
    split delay, g2_log's exact bins (``exact`` edges); with ``w_hi`` > 0, g2_log's first
    decade by cells of ``w_r`` ps (bin ``w_lut[dq]`` of cell differences ``w_lo <= dq <
    w_hi``, as its grid counts them)."""
    h0, h1, blk = state[0], state[1], state[2]
    n_blocks = len(block_ps) - 1
    n_fine = 2 * half
    n_micro = micro.shape[1]
    n_trace = len(trace)
    cap = len(h_t)
    n_ex = len(exact)
    e_lo, e_hi = exact[0], exact[n_ex - 1]
    i = i0
    while i < len(sync):
        if h1 == cap:  # compact the history, or ask for more room
            if h0 == 0:
                break
            for j in range(h0, h1):
                h_t[j - h0], h_c[j - h0], h_b[j - h0], h_e[j - h0] = h_t[j], h_c[j], h_b[j], h_e[j]
                h_q[j - h0] = h_q[j]
            h1 -= h0
            h0 = 0
        s = sync[i]
        dt = np.int64(dtime[i])
        if res_int:
            t = s * period + dt * res_int
        else:
            t = s * period + np.int64(np.round(dt * res))
        c = np.int64(channel[i])
        em = has_source and source[i] < _DARK
        while blk < n_blocks - 1 and t >= block_ps[blk + 1]:
            blk += 1
        # intensity trace: intensity_trace's bin of the sync
        tb = np.int64(np.floor(s / ppb + 1e-12))
        if tb < n_trace:
            trace[tb] += 1
        if c > 1:
            other[0] += 1
            i += 1
            continue
        if dt < n_micro:
            micro[c, dt] += 1
        else:
            other[1] += 1
        if t >= block_ps[0] and t < block_ps[n_blocks]:
            block_counts[blk, c] += 1
        # pairs with the earlier photons of the other channel in the history
        while h0 < h1 and t - h_t[h0] >= history_ps:
            h0 += 1
        q = t // w_r if w_hi else np.int64(0)
        for j in range(h0, h1):
            if h_c[j] == c:
                continue
            ba = blk if c == 0 else h_b[j]  # the blocks of the channel-0 and -1 photons
            bb = h_b[j] if c == 0 else blk
            dd = t - h_t[j]
            if dd < window:
                d = dd if c == 1 else -dd  # t_1 - t_0
                idx = (d - delay) * SUB // period + half
                if idx >= 0 and idx < n_fine:
                    rows[0, idx] += 1
                    rows[1 + ba, idx] += 1
                    if bb != ba:
                        rows[1 + bb, idx] += 1
                    if em and h_e[j]:
                        m = (idx - half + SUB // 2) // SUB
                        if -k <= m <= k:
                            truth_peaks[m + k] += 1
                if n_ex > 1 and dd >= e_lo and dd < e_hi:
                    kk = np.searchsorted(exact, dd, side="right") - 1
                    log_abw[0, ba, kk] += 1
                    log_abw[1, bb, kk] += 1
                    if ba == bb:
                        log_abw[2, ba, kk] += 1
            if w_hi:
                dq = q - h_q[j]
                if dq >= w_lo and dq < w_hi:
                    kk = w_lut[dq]
                    log_abw[0, ba, kk] += 1
                    log_abw[1, bb, kk] += 1
                    if ba == bb:
                        log_abw[2, ba, kk] += 1
        h_t[h1], h_c[h1], h_b[h1], h_e[h1], h_q[h1] = t, c, blk, em, q
        h1 += 1
        i += 1
    state[0], state[1], state[2] = h0, h1, blk
    return i


@numba.njit(inline="always", **_JIT)
def _flush(d, dec_first, dec_off, dec_edges, abw, ring, k0, cell, pend, pend_blk):
    """The pairs of decade ``d``'s pending photons (one cell, one block, per channel) with
    the earlier photons of the other channel, ``E_m <= q - q' < E_m+1`` cells apart:
    running counts read at ``q - E`` (all of them and those of the pending block); the
    other channel's photons not of the pending block are of the one before (the delays
    are shorter than a block). Branch-free: half the time of testing each count."""
    q = cell[d]
    b = pend_blk[d]
    mask = ring.shape[2] - 1
    e0, e1 = dec_off[d], dec_off[d + 1]
    for c in range(2):
        w = pend[d, c]
        if w == 0:
            continue
        o = 1 - c
        mine, theirs = (0, 1) if c == 0 else (1, 0)
        base = k0[b, o]
        before = b - 1 if b > 0 else 0  # (none when b is 0: every partner is of block b)
        x = q - dec_edges[e0]
        c_prev = ring[d, o, x & mask] if x >= 0 else np.int64(0)
        s_prev = c_prev - base if c_prev > base else np.int64(0)
        m = dec_first[d]
        for kk in range(e0 + 1, e1):
            x = q - dec_edges[kk]
            ct = ring[d, o, x & mask] if x >= 0 else np.int64(0)
            st = ct - base if ct > base else np.int64(0)
            n_tot = w * (c_prev - ct)
            n_same = w * (s_prev - st)
            abw[mine, b, m] += n_tot
            abw[theirs, b, m] += n_same
            abw[2, b, m] += n_same
            abw[theirs, before, m] += n_tot - n_same
            c_prev, s_prev = ct, st
            m += 1
        pend[d, c] = 0


@numba.njit(**_JIT)
def _accumulate_log(sync, dtime, channel, period, res_int, res, block_ps, dec_r, dec_first,
                    dec_off, dec_edges, bp, abw, cov_n, cov_y, ring, k0, cell, pend,
                    pend_blk, gstate, d0):  # fmt: skip
    """g2_log's gridded pairs (the cells of decades ``d0 ..``; those before are counted by
    their pairs) and the coverage statistics of the channel-0 photons near their block's
    edges, for one chunk."""
    n_blocks = len(block_ps) - 1
    n_dec = len(dec_r)
    size = ring.shape[2]
    mask = size - 1
    n_bp = len(bp)
    bp_max = bp[n_bp - 1] if n_bp else 0.0
    inv = np.empty(n_dec)
    for d in range(n_dec):
        inv[d] = 1.0 / dec_r[d]
    blk = gstate[2]
    for i in range(len(sync)):
        c = np.int64(channel[i])
        if c > 1:
            continue
        dt = np.int64(dtime[i])
        if res_int:
            t = sync[i] * period + dt * res_int
        else:
            t = sync[i] * period + np.int64(np.round(dt * res))
        while blk < n_blocks - 1 and t >= block_ps[blk + 1]:
            blk += 1
            k0[blk, 0], k0[blk, 1] = gstate[0], gstate[1]
        for d in range(d0, n_dec):
            r = dec_r[d]
            q = np.int64(t * inv[d])  # t // r, by a product, corrected
            if q * r > t:
                q -= 1
            elif (q + 1) * r <= t:
                q += 1
            if q != cell[d] or blk != pend_blk[d]:
                if cell[d] >= 0:
                    _flush(d, dec_first, dec_off, dec_edges, abw, ring, k0, cell, pend, pend_blk)
                if q != cell[d]:  # running counts of the cells since the last photon
                    g0, g1 = gstate[0], gstate[1]
                    for x in range(max(cell[d] + 1, q - size + 1), q + 1):
                        ring[d, 0, x & mask] = g0
                        ring[d, 1, x & mask] = g1
                    cell[d] = q
                pend_blk[d] = blk
            pend[d, c] += 1
            ring[d, c, q & mask] += 1
        gstate[c] += 1
        if c == 0 and n_bp:
            _cover(t, blk, block_ps, bp, bp_max, cov_n, cov_y)
    gstate[2] = blk


@numba.njit(inline="always", **_JIT)
def _cover(t, blk, block_ps, bp, bp_max, cov_n, cov_y):
    """A channel-0 photon's distance to its block's two edges, counted in the interval
    between bin limits it falls in when within the bins' reach."""
    y = t - block_ps[blk]
    if y < bp_max:
        j = np.searchsorted(bp, y, side="right")
        cov_n[blk, 1, j] += 1
        cov_y[blk, 1, j] += y
    y = block_ps[blk + 1] - t
    if y < bp_max:
        j = np.searchsorted(bp, y, side="right")
        cov_n[blk + 1, 0, j] += 1
        cov_y[blk + 1, 0, j] += y


@numba.njit(**_JIT)
def coverage_add(t, blk, block_ps, bp, cov_n, cov_y):
    """:func:`_cover` for channel-0 photons at times ``t`` (int64 ps) in blocks ``blk``
    (the device path: the few photons near a block edge come to the host)."""
    bp_max = bp[len(bp) - 1]
    for i in range(len(t)):
        _cover(t[i], blk[i], block_ps, bp, bp_max, cov_n, cov_y)
