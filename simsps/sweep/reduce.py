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

from ..analysis.g2_pulsed import SUB, PulsedGeometry
from ..stream import Source

__all__ = ["Layout", "Accumulator"]

_JIT = dict(nogil=True, cache=True)
_DARK = int(Source.DARK)
_HISTORY = 1024  # photons within the pair window carried between chunks (grows if needed)
TRACE_BIN_S = 0.01


@dataclasses.dataclass(frozen=True)
class Layout:
    """What every point of a batch shares: the laser period (ps), the microtime bin, the
    acquisition's length, the pulsed-g2 geometry and the bins of the intensity trace."""

    period_ps: float
    resolution_ps: float
    n_pulses: int
    geometry: PulsedGeometry
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


class Accumulator:
    """The counts of one point (see the module doc); :meth:`add` one chunk's columns."""

    def __init__(self, layout: Layout):
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
        self._state = np.zeros(3, np.int64)  # history start, history end, current block

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
                lay.pulses_per_trace_bin, g.block_ps, g.delay_ps, g.half, g.window_ps, g.k,
                self.rows, self.block_counts, self.truth_peaks, self.micro, self.trace,
                self.other, self._h_t, self._h_c, self._h_b, self._h_e, self._state,
            )  # fmt: skip
            if i < n:  # the history is full of photons within the window: more room
                self._grow()

    def _grow(self) -> None:
        h0, h1 = int(self._state[0]), int(self._state[1])
        size = 2 * len(self._h_t)
        for name in ("_h_t", "_h_c", "_h_b", "_h_e"):
            old = getattr(self, name)
            new = np.zeros(size, old.dtype)
            new[: h1 - h0] = old[h0:h1]
            setattr(self, name, new)
        self._state[0], self._state[1] = 0, h1 - h0


@numba.njit(**_JIT)
def _accumulate(sync, dtime, channel, source, has_source, i0, period, res_int, res, ppb,
                block_ps, delay, half, window, k, rows, block_counts, truth_peaks, micro,
                trace, other, h_t, h_c, h_b, h_e, state):  # fmt: skip
    """Count the photons ``i0 ..`` of one chunk; returns the index reached (less than the
    chunk's length when the history needs more room)."""
    h0, h1, blk = state[0], state[1], state[2]
    n_blocks = len(block_ps) - 1
    n_fine = 2 * half
    n_micro = micro.shape[1]
    n_trace = len(trace)
    cap = len(h_t)
    i = i0
    while i < len(sync):
        if h1 == cap:  # compact the history, or ask for more room
            if h0 == 0:
                break
            for j in range(h0, h1):
                h_t[j - h0], h_c[j - h0], h_b[j - h0], h_e[j - h0] = h_t[j], h_c[j], h_b[j], h_e[j]
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
        # pairs with the earlier photons of the other channel within the window
        while h0 < h1 and t - h_t[h0] >= window:
            h0 += 1
        for j in range(h0, h1):
            if h_c[j] == c:
                continue
            d = (t - h_t[j]) if c == 1 else (h_t[j] - t)  # t_1 - t_0
            idx = (d - delay) * SUB // period + half
            if idx < 0 or idx >= n_fine:
                continue
            ba = blk if c == 0 else h_b[j]
            bb = h_b[j] if c == 0 else blk
            rows[0, idx] += 1
            rows[1 + ba, idx] += 1
            if bb != ba:
                rows[1 + bb, idx] += 1
            if em and h_e[j]:
                m = (idx - half + SUB // 2) // SUB
                if -k <= m <= k:
                    truth_peaks[m + k] += 1
        h_t[h1], h_c[h1], h_b[h1], h_e[h1] = t, c, blk, em
        h1 += 1
        i += 1
    state[0], state[1], state[2] = h0, h1, blk
    return i
