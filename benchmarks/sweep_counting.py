"""The sweep's counters on one stream, side by side: g2_log's first gridded decade counted
on its grid against by its pairs from the history (what a sweep does when few photons fall
within the decade's reach). The counts are identical (checked here too); the time per
photon of ``Accumulator.add`` is what differs.

    python benchmarks/sweep_counting.py              # zn-treated, 60 s, powers 0.25, 1, 4
    python benchmarks/sweep_counting.py --duration 10 --powers 1

Prints, per power, the photons, the expected photons within the decade's reach, both
times per photon (best of three, one core) and their ratio.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import simsps
from simsps.sim.engine import DEFAULT_CHUNK_PULSES, _population_chunks
from simsps.sweep.reduce import Accumulator, walk_decade
from simsps.sweep.statistics import brightest_rate_cps, layout_of

NAMES = ("rows", "block_counts", "truth_peaks", "micro", "trace", "log_abw", "cov_n", "cov_y")


def count(lay, chunks, rate):
    acc = Accumulator(lay, rate_cps=rate)
    t0 = time.perf_counter()
    for c in chunks:
        acc.add(c)
    acc.finish_log()
    return time.perf_counter() - t0, acc


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--duration", type=float, default=60.0, help="seconds per stream")
    p.add_argument("--powers", type=float, nargs="+", default=[0.25, 1.0, 4.0])
    a = p.parse_args(argv)
    m = simsps.load_model("zn-treated")
    lay = layout_of(m, a.duration)
    lg = lay.log
    if lg is None:
        raise SystemExit(f"--duration {a.duration:g}: too short for g2 on log delays")
    reach_s = float(lg.dec_edges[lg.dec_off[1] - 1] * lg.dec_r[0]) * 1e-12
    print(
        f"zn-treated, {a.duration:g} s; g2_log's first decade: cells of "
        f"{lg.dec_r[0] / 1e6:g} us, reach {reach_s * 1e6:.0f} us"
    )
    print("power  photons  in reach  grid ns/photon  pairs ns/photon  grid / pairs")
    for power in a.powers:
        chunks = [
            c.columns[0]
            for c in _population_chunks(
                [m], a.duration, [power], 1, spot=None, chunk_pulses=DEFAULT_CHUNK_PULSES,
                progress=None, truth=True, stage="auto", columns=True, ids=np.array([1]),
            )
        ]  # fmt: skip
        n = sum(len(c["sync"]) for c in chunks)
        rate = brightest_rate_cps(m, power)
        if walk_decade(lay, rate) is None:
            print(f"{power:5g}  {n:7d}  {rate * reach_s:8.1f}  (too bright: the grid only)")
            continue
        count(lay, chunks[:1], None), count(lay, chunks[:1], rate)  # compile
        grid = walk = np.inf
        for _ in range(3):
            tg, ag = count(lay, chunks, None)
            tw, aw = count(lay, chunks, rate)
            grid, walk = min(grid, tg), min(walk, tw)
        for name in NAMES:
            if not np.array_equal(getattr(ag, name), getattr(aw, name)):
                raise SystemExit(f"the counts differ: {name}")
        print(
            f"{power:5g}  {n:7d}  {rate * reach_s:8.1f}  {grid / n * 1e9:14.0f}  "
            f"{walk / n * 1e9:15.0f}  {grid / walk:11.2f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
