"""Write and read throughput of the TTTR files, and peak memory of streamed writes.

    python benchmarks/io.py            # codecs on 60 s of photons; 600 s streamed to PTU/HDF5
    python benchmarks/io.py --quick    # 60 s streamed, for a smoke run

1. Codecs on one in-memory stream (60 s of ``zn-treated`` at Psat): records/s of the PTU
   writer (both record types) and the Photon-HDF5 writer, and of simsps' PTU reader side by
   side with ``ptufile`` decoding the same file (ratio). Then T2: 10 s of the NC under CW
   (~1 Mcps) written as PicoHarp and HydraHarp T2, read by simsps and by ``ptufile`` side
   by side (ratio).
2. Separate processes simulate 600 s and stream it to disk (PTU and Photon-HDF5), or only
   simulate: wall time, the writer's share of it, and peak resident memory (each process
   measures itself).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import simsps
from simsps.io import read, write

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _memory import peak_rss_mib  # noqa: E402

TARGET_MIB = 1024


def _best(fn, repeat=3):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def child(duration: float, out: str) -> None:
    """Run in a subprocess: simulate ``duration`` s at Psat into ``out`` (or nowhere)."""
    m = simsps.load_model("zn-treated")
    for _ in simsps.simulate_chunks(m, 20.0, seed=9):  # compile first: steady-state wall time
        pass
    if out != "-":
        write(out, simsps.simulate(m, 0.01, seed=9))  # and import the writer's libraries
    t0 = time.perf_counter()
    n = 0

    def counted():
        nonlocal n
        for c in simsps.simulate_chunks(m, duration, seed=1):
            n += len(c)
            yield c

    if out == "-":
        for _ in counted():
            pass
    else:
        write(out, counted())
    wall = time.perf_counter() - t0
    size = 0 if out == "-" else os.path.getsize(out)
    peak = peak_rss_mib()
    print(json.dumps({"peak_mib": peak, "wall_s": wall, "photons": n, "bytes": size}))


def run_child(duration: float, out: str) -> dict:
    r = subprocess.run(
        [sys.executable, __file__, "--child", str(duration), out],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(r.stdout.strip().splitlines()[-1])


def t2_side_by_side(tmp: Path) -> None:
    """T2 files of a CW stream: write, then read by simsps and by ptufile (same file)."""
    cw = simsps.load_model("zn-treated", {"excitation.mode": "cw"})
    s = simsps.simulate(cw, 10.0, seed=0)
    n = len(s)
    print(f"\n   T2: the NC under CW, 10 s, {n:.3g} photons")
    for fmt in ("picoharp-t2", "hydraharp-t2"):
        path = tmp / f"{fmt}.ptu"
        w, _ = _best(lambda path=path, fmt=fmt: write(path, s, fmt))
        print(
            f"{'write PTU ' + fmt:38s} {w:8.3f} {n / w / 1e6:11.2f} "
            f"{path.stat().st_size / 1e6:7.1f}"
        )
        t_ours, r = _best(lambda path=path: read(path))
        assert r.equal_records(s) if fmt == "hydraharp-t2" else len(r) == n
        print(f"{'read ' + fmt + ' (simsps)':38s} {t_ours:8.3f} {n / t_ours / 1e6:11.2f}")
        try:
            import ptufile
        except ImportError:
            print("  (ptufile not installed: no side-by-side read)")
            continue

        def by_ptufile(path=path):
            with ptufile.PtuFile(path) as f:
                return f.decode_records()

        t_pf, _ = _best(by_ptufile)
        print(f"{'read ' + fmt + ' (ptufile)':38s} {t_pf:8.3f} {n / t_pf / 1e6:11.2f}")
        print(f"  simsps T2 reader / ptufile: {t_pf / t_ours:.2f}x the speed")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="stream 60 s instead of 600 s")
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        child(float(a.child[0]), a.child[1])
        return 0
    import jax

    print(
        f"simsps {simsps.__version__}, jax {jax.__version__} on {jax.devices()[0].platform}, "
        f"{os.cpu_count()} CPUs; model zn-treated at Psat"
    )
    m = simsps.load_model("zn-treated")
    s = simsps.simulate(m, 60.0, seed=0)
    n = len(s)
    print(f"\n1. codecs on one in-memory stream: 60 s, {n:.3g} photons")
    print(f"{'':38s} {'wall s':>8s} {'Mphotons/s':>11s} {'MB':>7s}")
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for fmt in ("picoharp-t3", "hydraharp-t3"):
            path = tmp / f"{fmt}.ptu"
            w, _ = _best(lambda path=path, fmt=fmt: write(path, s, fmt))
            print(
                f"{'write PTU ' + fmt:38s} {w:8.3f} {n / w / 1e6:11.2f} "
                f"{path.stat().st_size / 1e6:7.1f}"
            )
        h5 = tmp / "s.h5"
        w, _ = _best(lambda: write(h5, s), repeat=2)  # the first includes importing phconvert
        print(
            f"{'write Photon-HDF5 (with truth)':38s} {w:8.3f} {n / w / 1e6:11.2f} "
            f"{h5.stat().st_size / 1e6:7.1f}"
        )
        ptu = tmp / "picoharp-t3.ptu"
        t_ours, r = _best(lambda: read(ptu))
        assert r.equal_records(s)
        print(f"{'read PTU (simsps)':38s} {t_ours:8.3f} {n / t_ours / 1e6:11.2f}")
        try:
            import ptufile

            def by_ptufile():
                with ptufile.PtuFile(ptu) as f:
                    return f.decode_records()

            t_pf, _ = _best(by_ptufile)
            print(f"{'read PTU (ptufile.decode_records)':38s} {t_pf:8.3f} {n / t_pf / 1e6:11.2f}")
            print(f"  simsps reader / ptufile: {t_pf / t_ours:.2f}x the speed")
        except ImportError:
            print("  (ptufile not installed: no side-by-side read)")
        t_h5, r = _best(lambda: read(h5))
        assert r.equal_records(s)
        print(f"{'read Photon-HDF5 (with truth)':38s} {t_h5:8.3f} {n / t_h5 / 1e6:11.2f}")
        t2_side_by_side(tmp)

        duration = 60.0 if a.quick else 600.0
        print(
            f"\n2. {duration:g} s simulated and streamed to disk (separate processes, "
            "after compilation)"
        )
        print(f"{'':24s} {'wall s':>8s} {'photons':>10s} {'MB':>7s} {'peak MiB':>9s}")
        rows = {}
        for name, out in (
            ("simulate only", "-"),
            ("-> PTU (picoharp-t3)", str(tmp / "a.ptu")),
            ("-> Photon-HDF5", str(tmp / "a.h5")),
        ):
            r = run_child(duration, out)
            rows[name] = r
            print(
                f"{name:24s} {r['wall_s']:8.2f} {r['photons']:10.3g} {r['bytes'] / 1e6:7.1f} "
                f"{r['peak_mib']:9.0f}"
            )
        base = rows["simulate only"]["wall_s"]
        for name in ("-> PTU (picoharp-t3)", "-> Photon-HDF5"):
            r = rows[name]
            mem_ok = r["peak_mib"] < TARGET_MIB
            ok &= mem_ok
            print(
                f"  {name}: writing adds {r['wall_s'] / base - 1:+.0%} to the simulation "
                f"({r['photons'] / (r['wall_s']) / 1e6:.2f} Mphotons/s end to end); "
                f"peak {r['peak_mib']:.0f} MiB [target < {TARGET_MIB} MiB: "
                f"{'ok' if mem_ok else 'MISSED'}]"
            )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
