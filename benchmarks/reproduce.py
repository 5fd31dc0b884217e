"""Wall time of ``simsps reproduce`` per figure (targets, issue 6: --quick < 5 min, full
< 30 min on a 2-core CPU), and a population of NCs in one vmapped kernel call side by side
with the same NCs simulated one call each.

    python benchmarks/reproduce.py              # quick sizes
    python benchmarks/reproduce.py --full       # the seed's acquisition times
    python benchmarks/reproduce.py --population-only

Set SIMSPS_JAX_CACHE to an empty folder to include JAX compilation in the times (a fresh
machine); numba's cache lives beside the sources (__pycache__).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import simsps
from simsps.params.sample import load_sample
from simsps.samples.ensemble import draw_population, simulate_ensemble


def population(n_spots: int = 32, duration_s: float = 10.0) -> None:
    zn = simsps.load_model("zn-treated")
    pop = draw_population(zn, load_sample("zn-treated").ensemble, n_spots, seed=1)
    simulate_ensemble(pop, 0.5, seed=1)  # compile both paths first
    simsps.simulate(pop.models[0], 0.5, seed=1)
    t0 = time.perf_counter()
    streams = simulate_ensemble(pop, duration_s, seed=1)
    t_batch = time.perf_counter() - t0
    t0 = time.perf_counter()
    for m in pop.models:
        simsps.simulate(m, duration_s, seed=1)
    t_loop = time.perf_counter() - t0
    n = sum(len(s) for s in streams)
    print(
        f"population: {len(pop.models)} NCs in {n_spots} spots, {duration_s:g} s each, "
        f"{n:.3g} photons"
    )
    print(f"  one vmapped call per chunk : {t_batch:7.2f} s")
    print(
        f"  one simulate() per NC      : {t_loop:7.2f} s   batch is {t_loop / t_batch:.1f}x faster"
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--full", action="store_true", help="full sizes instead of --quick")
    p.add_argument("--population-only", action="store_true")
    a = p.parse_args(argv)
    import jax

    print(
        f"simsps {simsps.__version__}, jax {jax.__version__} on {jax.default_backend()}, "
        f"{os.cpu_count()} CPUs\n"
    )
    population()
    if a.population_only:
        return 0
    import simsps.apps.reproduce as R

    times = {}

    def timed(name, fn):
        def run(data, fig):
            t0 = time.perf_counter()
            out = fn(data, fig)
            times[name] = time.perf_counter() - t0
            return out

        return run

    figures = list(R.FIGURES)
    R.FIGURES[:] = [(n, timed(n, fn), size) for n, fn, size in figures]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        doc = R.reproduce(out, quick=not a.full, progress=False)
    wall = time.perf_counter() - t0
    R.FIGURES[:] = figures
    print(
        f"\nreproduce {'full' if a.full else '--quick'}: per figure (s; the first figure "
        "to use a dataset pays for simulating it)"
    )
    for name, t in times.items():
        print(f"  {name:4s} {t:8.1f}")
    target = 1800 if a.full else 300
    print(
        f"total {wall:.0f} s [target < {target} s: {'ok' if wall < target else 'MISSED'}], "
        f"{doc['n_ok']} of {doc['n_rows']} rows ok"
    )
    return 0 if wall < target and doc["all_ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
