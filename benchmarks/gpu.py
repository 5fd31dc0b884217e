"""Simulation on an accelerator: the numbers issue 13 asks of a GPU.

    python benchmarks/gpu.py            # 600 s of zn-treated; 1000 NCs x 10 s on the device
    python benchmarks/gpu.py --quick    # 60 s; 100 NCs x 10 s

Runs on whatever JAX's default backend is (on a CPU it runs the same jitted device step the
GPU runs, only slowly: ``stage="device"``). Prints, after compilation:

- 600 s of ``zn-treated`` at Psat streamed to the host with truth (``simulate_chunks``);
- 1000 NCs x 10 s (2.5e10 pulses), each in its own spot, records kept on the device
  (``simulate_device_records``) and reduced there to photons per spot and channel, so only
  the reduction crosses to the host.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import simsps
from simsps.sim.engine import simulate_device_records


@jax.jit
def _per_channel(records):
    valid = jnp.arange(records.channel.shape[1]) < records.count[:, None]
    return jnp.stack([jnp.sum(valid & (records.channel == c), axis=1) for c in (0, 1)], axis=1)


def stream(m, duration, seed):
    n = 0
    t0 = time.perf_counter()
    for chunk in simsps.simulate_chunks(m, duration, 1.0, seed, stage="device"):
        n += len(chunk)
    return time.perf_counter() - t0, n


def population(m, n_nc, duration, seed):
    total = None
    t0 = time.perf_counter()
    for chunk in simulate_device_records([m] * n_nc, duration, 1.0, seed):
        c = _per_channel(chunk.records)
        total = c if total is None else total + c
    total = np.asarray(total)  # the only copy to the host
    return time.perf_counter() - t0, total


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true")
    a = p.parse_args(argv)
    m = simsps.load_model("zn-treated")
    dev = jax.devices()[0]
    duration, n_nc = (60.0, 100) if a.quick else (600.0, 1000)
    print(f"simsps {simsps.__version__}, jax {jax.__version__} on {dev.platform} ({dev})")
    t0 = time.perf_counter()
    stream(m, 20.0, 0)
    population(m, n_nc, 1.0, 0)
    print(f"compilation + warm-up: {time.perf_counter() - t0:.2f} s")
    w, n = stream(m, duration, 1)
    print(
        f"{duration:g} s of zn-treated at Psat, streamed with truth: {w:.3f} s, {n:.3g} photons "
        f"[target <= 0.3 s for 600 s on a GPU]"
    )
    w, total = population(m, n_nc, 10.0, 2)
    pulses = n_nc * 10.0 * m.excitation.rep_rate_hz
    print(
        f"{n_nc} NCs x 10 s ({pulses:.3g} pulses), records on the device: {w:.3f} s, "
        f"{int(total.sum()):.3g} photons, {pulses / w:.3g} pulses/s [target <= 1 s for 1000]"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
