"""Uncertainties of correlated photon data: statistics summed over time blocks and the
delete-one-block jackknife.

Blinking makes photons arrive in bunches for as long as a dwell lasts, so counts of pairs
(g2) are not Poisson: neighbouring pairs share a dwell. The acquisition is cut into ``B``
contiguous blocks of equal length (``DEFAULT_BLOCKS``); every statistic an estimate is made
of is counted per block, and the estimate is recomputed with one block left out at a time
(its photons of both channels, so pairs with either photon in it, and the time it covers):

    var = (B - 1) / B * sum_b (theta_(-b) - mean_b theta_(-b))^2

which is the first-order equivalent of a block bootstrap (Kuensch 1989) and does not need
the random numbers of one. Blocks much longer than the correlation times are nearly
independent; the variance estimate then has ``B - 1`` degrees of freedom and intervals
use Student's t (``_common.interval``). Dwells as long as a block make the error an
underestimate; the coverage tests (tests/test_coverage*.py) check it under the presets'
blinking.
"""

from __future__ import annotations

import numpy as np

DEFAULT_BLOCKS = 32


def block_edges(n_pulses: int, n_blocks: int) -> np.ndarray:
    """Sync indices where the blocks start (and the end), ``n_blocks + 1`` int64 values."""
    if n_blocks < 2:
        from ._common import AnalysisError

        raise AnalysisError(f"n_blocks = {n_blocks!r}: the jackknife needs at least 2 blocks")
    return np.round(np.linspace(0, n_pulses, n_blocks + 1)).astype(np.int64)


def time_slices(times_ps: np.ndarray, edges_ps: np.ndarray) -> list[slice]:
    """Slices of the sorted ``times_ps`` that fall in each block [edges[b], edges[b + 1])."""
    cut = np.searchsorted(times_ps, edges_ps, side="left")
    return [slice(int(cut[b]), int(cut[b + 1])) for b in range(len(edges_ps) - 1)]
