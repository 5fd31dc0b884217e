"""Throughput of a parameter sweep with all its statistics, side by side in one run with
the single-stream engine and with the same work done as a loop of simsps.simulate and the
simsps.analysis estimators.

    python benchmarks/sweep.py            # 100 points x 60 s of zn-treated (issue 14)
    python benchmarks/sweep.py --quick    # 10 points x 10 s
    python benchmarks/sweep.py --points 1000 --duration 60 --loop-points 0   # a GPU's run

Prints the sweep's aggregated pulses/s, the pulses/s of ``simulate_chunks`` streaming one
NC for as long as the sweep's points together (after compilation, same process), their
ratio (issue 14 asks >= 1.5 on the 2-core CPU), the pulses/s of the sweep's own batches
simulated with no statistics at all (the most the sweep's ratio could be were its
statistics free), and the time per point of the loop
(simulate, then pulsed_g2, g2_log, decay + fit_decay and intensity_trace on the stream,
as a user would) against the sweep's, measured on a few of the same points spread over
the grid.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import simsps
from simsps.sweep import sweep
from simsps.sweep.design import make_design, point_id

TARGET_RATIO = 1.5  # issue 14: sweep pulses/s over single-stream pulses/s


def loop_point(m, power, duration, seed, pid, layout):
    """One point the way a user would compute it: the stream, then the estimators."""
    from simsps.analysis import decay, fit_decay, g2_log, intensity_trace, pulsed_g2
    from simsps.sweep.statistics import G2_SPLIT_S, independent_rate_cps, model_afterpulsing

    s = simsps.simulate_population([m], duration, power, seed=seed, ids=[pid])[0]
    ap = model_afterpulsing(m)
    pulsed_g2(s, afterpulsing=ap, channel_delay_ps=0.0)
    g2_log(
        s,
        tau_max_s=layout.log.tau_max_s,
        split_s=G2_SPLIT_S,
        background=independent_rate_cps(m, power),
    )
    d = decay(s, afterpulsing=ap)
    fit_decay(d, n_exp=2, fit_start_ns=(np.argmax(d.counts) + 0.5) * d.resolution_ns + 2.0)
    intensity_trace(s, 0.01)
    return s


def simulate_batches(m, vary, duration, seed=1) -> None:
    """The sweep's simulation alone: the same tasks and engine calls as
    ``sweep(m, vary, duration, seed)`` (on a CPU one stream per run, a pool of threads per
    task; elsewhere a task's runs in one call), every chunk made and dropped, nothing
    counted."""
    from concurrent.futures import ThreadPoolExecutor

    import jax

    from simsps.sim.engine import DEFAULT_CHUNK_PULSES, _population_chunks
    from simsps.sweep.run import _THREADS, plan_sweep

    def simulate(runs):
        for _ in _population_chunks(
            [r[2] for r in runs], duration, [r[3] for r in runs], seed, spot=None,
            chunk_pulses=DEFAULT_CHUNK_PULSES, progress=None, truth=True, stage="auto",
            columns=True, ids=np.array([r[1] for r in runs], np.int64),
        ):  # fmt: skip
            pass

    plan = plan_sweep(m, vary, duration, seed)
    for a, b in plan.tasks():
        runs = plan.payload(a, b)["runs"]
        if jax.default_backend() == "cpu":
            with ThreadPoolExecutor(_THREADS) as pool:
                list(pool.map(simulate, [[r] for r in runs]))
        else:
            simulate(runs)


def sweep_batched(m, vary, duration, seed=1) -> None:
    """The sweep as an accelerator runs it: a task's runs in one vmapped engine call,
    counted by the host's counters (on a CPU, where each run is a stream of its own, the
    way it is not done; for the side-by-side)."""
    from simsps.sweep.run import _runs_in_batches, plan_sweep

    plan = plan_sweep(m, vary, duration, seed)
    for a, b in plan.tasks():
        _runs_in_batches({**plan.payload(a, b), "counting": "host"})


def _cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="10 points x 10 s")
    p.add_argument("--points", type=int, default=None, help="points (a multiple of 10)")
    p.add_argument("--duration", type=float, default=None, help="seconds per point")
    p.add_argument("--loop-points", type=int, default=4, help="points timed as a loop (0: none)")
    a = p.parse_args(argv)
    import jax

    n_points, duration = (10, 10.0) if a.quick else (100, 60.0)
    n_points = a.points or n_points
    duration = a.duration or duration
    m = simsps.load_model("zn-treated")
    powers = np.geomspace(0.25, 4.0, 10)
    qy = np.linspace(0.02, 0.3, n_points // 10) if n_points >= 20 else None
    counting = "on the device" if jax.default_backend() != "cpu" else "numba, on the host CPU"
    vary = {"power": list(powers[: n_points if qy is None else 10])}
    if qy is not None:
        vary = {"biexciton.quantum_yield": list(qy), **vary}
    n_points = make_design(vary).n_runs  # the grid's points (at most 10 powers alone)
    print(
        f"simsps {simsps.__version__}, jax {jax.__version__} on {jax.devices()[0].platform}, "
        f"{os.cpu_count()} CPUs; zn-treated, {n_points} points x {duration:g} s; counting "
        f"{counting}"
    )
    # compile every kernel shape used below: runs of a full engine chunk (or, shorter, of the
    # timed runs' length) with every point's candidate slots
    from simsps.sim.engine import DEFAULT_CHUNK_PULSES

    cpu_bound = jax.default_backend() == "cpu"
    warm = min(duration, 1.01 * DEFAULT_CHUNK_PULSES / m.excitation.rep_rate_hz)
    t0 = time.perf_counter()
    sweep(m, vary, warm, seed=99)
    sum(len(c) for c in simsps.simulate_chunks(m, 30.0, 1.0, 99))
    if cpu_bound:
        sweep_batched(m, vary, warm, seed=99)
    print(f"compilation + warm-up: {time.perf_counter() - t0:.1f} s")
    t0, c0 = time.perf_counter(), _cpu_s()
    ds = sweep(m, vary, duration, seed=1)
    t_sweep, c_sweep = time.perf_counter() - t0, _cpu_s() - c0
    pulses = n_points * duration * m.excitation.rep_rate_hz
    t0 = time.perf_counter()
    photons = sum(len(c) for c in simsps.simulate_chunks(m, n_points * duration, 1.0, 2))
    t_single = time.perf_counter() - t0
    ratio = t_single / t_sweep
    t0 = time.perf_counter()
    simulate_batches(m, vary, duration)
    t_bound = time.perf_counter() - t0
    n_nan = int(np.isnan(ds.g2_zero_corrected.values).sum())
    print(
        f"\nsweep, all statistics     : {t_sweep:7.2f} s  {pulses / t_sweep / 1e6:8.0f} Mpulses/s"
        f"  ({t_sweep / n_points:.3f} s per point; {n_nan} points without g2(0))"
    )
    print(
        f"simulate_chunks, one NC   : {t_single:7.2f} s  {pulses / t_single / 1e6:8.0f} Mpulses/s"
        f"  ({n_points * duration:g} s, {photons:.3g} photons, no statistics)"
    )
    print(
        f"the sweep's simulation alone (no statistics): {t_bound:7.2f} s  "
        f"{pulses / t_bound / 1e6:8.0f} Mpulses/s, {t_single / t_bound:.2f}x the single stream "
        "(the ratio the sweep could reach if its statistics cost nothing)"
    )
    if cpu_bound:
        t0, c0 = time.perf_counter(), _cpu_s()
        sweep_batched(m, vary, duration)
        t_batched, c_batched = time.perf_counter() - t0, _cpu_s() - c0
        print(
            f"the same sweep as one vmapped call per task (an accelerator's way): "
            f"{t_batched:.2f} s, {c_batched:.1f} s of CPU; one stream per run (the sweep's way "
            f"here) is {t_batched / t_sweep:.2f}x faster with {c_sweep:.1f} s of CPU "
            f"({c_sweep / c_batched - 1:+.0%})"
        )
    print(
        f"sweep / single stream     : {ratio:.2f}x pulses/s "
        f"[target >= {TARGET_RATIO:g}x: {'ok' if ratio >= TARGET_RATIO else 'MISSED'}]"
    )

    from simsps.sweep.statistics import layout_of

    design = make_design(vary)
    layout = layout_of(m, duration)
    k = min(a.loop_points, n_points)
    if k < 1:
        return 0 if ratio >= TARGET_RATIO else 1
    t0 = time.perf_counter()
    for i in np.linspace(0, n_points - 1, k).round().astype(int):  # spread over the grid
        point = design.point(int(i))
        over = {kk: v for kk, v in point.items() if kk != "power"}
        loop_point(
            m.replace(over) if over else m,
            point["power"],
            duration,
            1,
            point_id(int(i), 0),
            layout,
        )
    t_loop = (time.perf_counter() - t0) / k
    print(
        f"loop of simulate + analysis: {t_loop:.3f} s per point ({k} points); the sweep "
        f"{t_sweep / n_points:.3f} s per point: {t_loop / (t_sweep / n_points):.2f}x faster"
    )
    return 0 if ratio >= TARGET_RATIO else 1


if __name__ == "__main__":
    raise SystemExit(main())
