"""``python -m simsps.demo``: simulate the embedded Zn-treated preset and print a summary.

The summary compares what came out of the simulation (counted from the photon stream and
its ground-truth labels) with what the model says it should be (closed forms).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from . import load_model, simulate
from .physics.blinking import dwell_parameters, telegraph_bunching
from .physics.cascade import outcome_probabilities
from .stream import EMITTER_SOURCES, Source


def summary(stream, model, power: float) -> str:
    t = stream.truth
    dur = stream.duration_s
    lines = [repr(stream), ""]
    counts = np.bincount(stream.channel, minlength=2)
    lines.append(f"count rate        : {len(stream) / dur / 1e3:8.2f} kcps "
                 f"(ch0 {counts[0] / dur / 1e3:.2f}, ch1 {counts[1] / dur / 1e3:.2f})")
    src = np.bincount(t.source, minlength=len(Source))
    for s in Source:
        lines.append(f"  {s.name.lower():18s}: {src[s] / dur:10.1f} cps")
    # expectation of the emitter rate before dead time, from the closed forms
    q = outcome_probabilities(model, power)
    photons_per_pulse = np.array([q[:, 0] + q[:, 1] + q[:, 2] + 2 * q[:, 3]])[0]
    if model.blinking.enabled:
        scale = dwell_parameters(model.blinking, power, model.excitation.rep_rate_hz)
        p_bright = scale[0] / scale.sum() if model.blinking.dwell == "exponential" else np.nan
    else:
        p_bright = 1.0
    if np.isfinite(p_bright):
        expected = (p_bright * photons_per_pulse[0] + (1 - p_bright) * photons_per_pulse[1])
        expected *= model.excitation.rep_rate_hz
        emitted = np.isin(t.source, list(EMITTER_SOURCES)).sum() / dur
        lines.append(f"emitter photons   : {emitted / 1e3:8.2f} kcps detected, "
                     f"{expected / 1e3:.2f} kcps expected before dead time")
        amp = telegraph_bunching(p_bright, photons_per_pulse[0], photons_per_pulse[1])
        lines.append(f"blinking          : bright fraction {p_bright:.3f}, "
                     f"bunching amplitude 1 + {amp:.3f} (closed form)")
    for state, name in ((0, "bright"), (1, "grey")):
        sel = (t.source == (Source.EXCITON if state == 0 else Source.TRION))
        if sel.any():
            tau = np.mean(t.emission_delay_ps[sel]) / 1e3
            lines.append(f"{name:6s} mean delay : {tau:6.2f} ns from truth delays (lifetime "
                         f"{[model.exciton, model.trion][state].lifetime_ns} ns, plus the BX "
                         "delay of cascades)")
    bt = t.bleach_time_s
    lines.append("bleached at       : " + ", ".join(
        "never" if not np.isfinite(b) else f"{b:.1f} s" for b in bt))
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m simsps.demo", description=__doc__)
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
    print(f"simsps demo: model {m.name!r}, {a.duration:g} s at {a.power:g} Psat, seed {a.seed} "
          f"({wall:.2f} s wall, including compilation)\n")
    print(summary(s, m, a.power))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
