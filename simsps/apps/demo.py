"""``python -m simsps.apps.demo``: simulate the embedded Zn-treated preset and print a summary.

The summary compares what came out of the simulation (counted from the photon stream and
its ground-truth labels) with what the model says it should be (closed forms).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from .. import load_model, simulate
from ..physics import closed_forms as cf
from ..stream import EMITTER_SOURCES, Source


def summary(stream, model, power: float) -> str:
    t = stream.truth
    dur = stream.duration_s
    lines = [repr(stream), ""]
    counts = np.bincount(stream.channel, minlength=2)
    lines.append(
        f"count rate        : {len(stream) / dur / 1e3:8.2f} kcps "
        f"(ch0 {counts[0] / dur / 1e3:.2f}, ch1 {counts[1] / dur / 1e3:.2f})"
    )
    src = np.bincount(t.source, minlength=len(Source))
    for s in Source:
        lines.append(f"  {s.name.lower():18s}: {src[s] / dur:10.1f} cps")
    # expectation of the emitter rate before dead time, from the closed forms
    p_bright = cf.neutral_fraction(model, power)
    expected = cf.emitter_rate_cps(model, power)
    emitted = np.isin(t.source, list(EMITTER_SOURCES)).sum() / dur
    lines.append(
        f"emitter photons   : {emitted / 1e3:8.2f} kcps detected, "
        f"{expected / 1e3:.2f} kcps expected before dead time"
    )
    lines.append(f"g2(0) of emitter  : {cf.g2_zero(model, power):.4f} (closed form)")
    try:
        amp = float(cf.bunching_curve(model, power, 1e-6))
        lines.append(
            f"blinking          : neutral fraction {p_bright:.3f}, "
            f"g2 at 1 us 1 + {amp:.3f} (closed form)"
        )
    except ValueError:  # power-law dwells: no closed-form bunching
        lines.append(f"blinking          : neutral fraction {p_bright:.3f} (power-law dwells)")
    for state, name in ((0, "bright"), (1, "grey")):
        sel = t.source == (Source.EXCITON if state == 0 else Source.TRION)
        if sel.any():
            tau = np.mean(t.emission_delay_ps[sel]) / 1e3
            lines.append(
                f"{name:6s} mean delay : {tau:6.2f} ns from truth delays (lifetime "
                f"{[model.exciton, model.trion][state].lifetime_ns} ns, plus the BX "
                "delay of cascades)"
            )
    bt = t.bleach_time_s
    lines.append(
        "bleached at       : "
        + ", ".join("never" if not np.isfinite(b) else f"{b:.1f} s" for b in bt)
    )
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m simsps.apps.demo", description=__doc__)
    p.add_argument("--model", default="zn-treated", help="preset name or TOML path")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of acquisition")
    p.add_argument("--power", type=float, default=1.0, help="excitation power in units of Psat")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    try:
        m = load_model(a.model)
        t0 = time.perf_counter()
        s = simulate(m, a.duration, a.power, a.seed, progress=True)
        wall = time.perf_counter() - t0
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(
        f"simsps demo: model {m.name!r}, {a.duration:g} s at {a.power:g} Psat, seed {a.seed} "
        f"({wall:.2f} s wall, including compilation)\n"
    )
    print(summary(s, m, a.power))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
