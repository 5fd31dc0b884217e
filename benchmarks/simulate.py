"""Throughput and memory of the simulation, side by side with the reference model.

    python benchmarks/simulate.py            # 600 s of zn-treated at Psat + memory runs
    python benchmarks/simulate.py --quick    # 60 s, for a smoke run

Prints pulses/s and detected photons/s of the JAX kernel (after compilation, streaming
chunks through ``simulate_chunks`` as a writer would), of the per-pulse NumPy reference
model and of a naive vectorised NumPy peer (``naive_numpy.py``) in the same process, the ratios, and the peak resident memory of separate processes
simulating 60 s and 600 s (each process measures itself, so the numbers do not mix).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import simsps
from simsps.sim.reference import simulate_reference

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _memory import peak_rss_mib  # noqa: E402
from naive_numpy import simulate_naive  # noqa: E402

TARGET_S, TARGET_RATIO, TARGET_MIB = 2.5, 150.0, 700  # issue 13


def stream_through(model, duration, seed=0, power=1.0):
    """Simulate chunk by chunk and count photons, as a file writer would consume them."""
    n = 0
    t0 = time.perf_counter()
    for chunk in simsps.simulate_chunks(model, duration, power, seed):
        n += len(chunk)
    return time.perf_counter() - t0, n


def child(duration: float) -> None:
    """Run in a subprocess: simulate ``duration`` s, print peak RSS (MiB) and photons."""
    m = simsps.load_model("zn-treated")
    wall, n = stream_through(m, duration) if duration > 0 else (0.0, 0)
    peak = peak_rss_mib()
    print(json.dumps({"duration_s": duration, "peak_mib": peak, "photons": n, "wall_s": wall}))


def peak_memory(duration: float) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(duration)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="60 s instead of 600 s, no memory runs")
    p.add_argument("--reference-s", type=float, default=2.0, help="seconds given to the reference")
    p.add_argument("--child", type=float, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child is not None:
        child(a.child)
        return 0
    import jax

    m = simsps.load_model("zn-treated")
    duration = 60.0 if a.quick else 600.0
    rep = m.excitation.rep_rate_hz
    print(
        f"simsps {simsps.__version__}, jax {jax.__version__} on {jax.devices()[0].platform}, "
        f"{os.cpu_count()} CPUs; model zn-treated at Psat"
    )

    t0 = time.perf_counter()
    stream_through(m, 20.0)  # compile every chunk shape used below
    stream_through(m, a.reference_s)
    print(f"compilation + 20 s warm-up: {time.perf_counter() - t0:.2f} s")

    # side by side, same duration, same process
    ref_s = a.reference_s
    t0 = time.perf_counter()
    ref = simulate_reference(m, ref_s, seed=1)
    t_ref = time.perf_counter() - t0
    t0 = time.perf_counter()
    naive_t, _ = simulate_naive(m, ref_s, seed=1)
    t_naive = time.perf_counter() - t0
    t_jax_same, n_jax_same = stream_through(m, ref_s, seed=1)
    t_jax, n_jax = stream_through(m, duration, seed=2)

    rows = [
        ("reference (NumPy, per pulse)", ref_s, t_ref, len(ref)),
        ("naive NumPy peer (simpler)", ref_s, t_naive, len(naive_t)),
        ("JAX kernel, same duration", ref_s, t_jax_same, n_jax_same),
        (f"JAX kernel, {duration:g} s", duration, t_jax, n_jax),
    ]
    print(f"\n{'':32s} {'sim s':>8s} {'wall s':>8s} {'Mpulses/s':>10s} {'kphotons/s':>11s}")
    for name, d, w, n in rows:
        print(f"{name:32s} {d:8.1f} {w:8.3f} {d * rep / w / 1e6:10.1f} {n / w / 1e3:11.1f}")
    ratio = (duration / t_jax) / (ref_s / t_ref)
    ratio_same = t_ref / t_jax_same
    print(
        f"\nspeed-up over the reference: {ratio:.1f}x (pulses/s, {duration:g} s run), "
        f"{ratio_same:.1f}x (same {ref_s:g} s)"
    )
    print(
        f"speed-up over the naive per-pulse NumPy peer: "
        f"{(duration / t_jax) / (ref_s / t_naive):.1f}x (pulses/s, {duration:g} s run)"
    )
    ok = ratio >= TARGET_RATIO
    if not a.quick:
        print(
            f"600 s at Psat ({600 * rep:.2g} pulses): {t_jax:.2f} s "
            f"[target <= {TARGET_S:g} s: {'ok' if t_jax <= TARGET_S else 'MISSED'}]"
        )
        ok &= t_jax <= TARGET_S
        print("\npeak resident memory (separate processes, streaming chunks):")
        base = peak_memory(0.0)
        print(f"  import + JAX runtime only : {base['peak_mib']:7.0f} MiB")
        mems = []
        for d in (60.0, 600.0):
            r = peak_memory(d)
            mems.append(r["peak_mib"])
            print(f"  {d:5.0f} s ({r['photons']:.3g} photons): {r['peak_mib']:7.0f} MiB")
        grow = mems[1] - mems[0]
        # on a GPU the CUDA runtime alone holds gigabytes of host memory: judge what the
        # simulation adds to the bare runtime there, the absolute peak on a CPU
        on_gpu = jax.devices()[0].platform != "cpu"
        judged = mems[1] - base["peak_mib"] if on_gpu else mems[1]
        mem_ok = judged < TARGET_MIB and grow < 64
        print(
            f"  growth 60 s -> 600 s: {grow:+.0f} MiB; "
            f"{'above the runtime' if on_gpu else 'peak'} {judged:.0f} MiB "
            f"[target < {TARGET_MIB} MiB and flat: {'ok' if mem_ok else 'MISSED'}]"
        )
        ok &= mem_ok
    print(f"\nspeed-up target >= {TARGET_RATIO:g}x: {'ok' if ratio >= TARGET_RATIO else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
