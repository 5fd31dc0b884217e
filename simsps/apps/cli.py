"""The ``simsps`` command line.

Exit codes: 0 ok, 1 the work failed (unreadable file, disk full, ...), 2 bad usage (unknown
option, parameter out of range, unknown model or output kind).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
import time
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad arguments: reported with exit code 2."""


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"{text!r} must be positive")
        return value

    return parse


def _non_negative(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (math.isfinite(value) and value >= 0):
            raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
        return value

    return parse


def _seed(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"seed {value} is out of range 0 .. 2**32-1")
    return value


def _parser() -> argparse.ArgumentParser:
    from .. import __version__
    from ..io import RECORD_FORMATS

    p = argparse.ArgumentParser(
        prog="simsps",
        description="Monte Carlo single-photon emitter -> synthetic TTTR files.",
        epilog="Exit codes: 0 ok, 1 failed, 2 bad usage. 'simsps COMMAND --help' for details.",
    )
    p.add_argument("--version", action="version", version=f"simsps {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    s = sub.add_parser(
        "simulate",
        help="simulate an NC and write a PTU or Photon-HDF5 file",
        description="Simulate a TCSPC acquisition of one nanocrystal and write it "
        "chunk by chunk (bounded memory) to FILE.ptu or FILE.h5.",
    )
    s.add_argument("model", metavar="MODEL", help="preset name (see 'simsps models') or TOML path")
    s.add_argument(
        "--duration",
        type=_positive(float),
        required=True,
        metavar="S",
        help="acquisition time in seconds",
    )
    s.add_argument(
        "--power",
        type=_positive(float),
        default=1.0,
        metavar="X",
        help="excitation power in units of Psat (default 1)",
    )
    s.add_argument("--seed", type=_seed, default=0, metavar="N", help="random seed (default 0)")
    s.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="FILE",
        help="output file: .ptu, or .h5 / .hdf5 for Photon-HDF5",
    )
    s.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="overrides",
        help="override a model parameter, e.g. --set blinking.enabled=false (repeatable)",
    )
    s.add_argument(
        "--format",
        choices=sorted(RECORD_FORMATS),
        default=None,
        help="PTU record type (default picoharp-t3; hydraharp-t2 under CW)",
    )
    s.add_argument(
        "--excitation",
        choices=("pulsed", "cw"),
        default=None,
        help="pulsed laser or continuous wave (default: the model's excitation.mode); "
        "CW gives T2 time tags (no laser sync)",
    )
    s.add_argument("--emitters", type=int, default=1, help="identical NCs in the spot (default 1)")
    s.add_argument(
        "--marker-every",
        type=_positive(float),
        default=None,
        metavar="S",
        help="PTU only: a marker record (e.g. a frame marker) at t = 0, S, 2S, ... seconds",
    )
    s.add_argument(
        "--marker-bits",
        type=int,
        default=1,
        choices=range(1, 16),
        metavar="B",
        help="the bits of those markers, 1-15 (default 1)",
    )
    s.add_argument(
        "--truth",
        type=Path,
        default=None,
        metavar="FILE.npz",
        help="also write the ground truth: one row per photon record (source, charge state, "
        "NC, emission delay) and the true blink switch times of each NC",
    )
    s.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    s.set_defaults(parser=s)

    i = sub.add_parser(
        "info",
        help="header, record type, counts per channel, duration, rate",
        description="Summarise a PTU or Photon-HDF5 file (read chunk by chunk).",
    )
    i.add_argument("file", type=Path, metavar="FILE")
    i.add_argument("--json", action="store_true", help="print the summary as JSON")
    i.set_defaults(parser=i)

    z = sub.add_parser(
        "analyze",
        help="every analysis of one file: PNGs and summary.json",
        description="Pulsed g2 (T3) or the CW dip around zero (T2), long-delay g2, "
        "decay fit, intensity trace with two-level dwell statistics, FLID; figures "
        "and a JSON summary in DIR.",
    )
    z.add_argument("file", type=Path, metavar="FILE", help="PTU or Photon-HDF5 file")
    z.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    z.add_argument(
        "--bin",
        type=_positive(float),
        default=0.01,
        metavar="S",
        dest="bin_s",
        help="trace / FLID bin in seconds (default 0.01)",
    )
    z.add_argument(
        "--tau-max",
        type=_positive(float),
        default=None,
        metavar="S",
        help="longest g2 delay in seconds (default min(1, duration / 4))",
    )
    z.add_argument(
        "--background",
        default=None,
        metavar="CPS|FILE",
        help="background for the g2 corrections: a count rate in cps (both "
        "channels together) or a file measured on an empty spot (default: "
        "the pulsed g2's inter-peak floor, no prompt background)",
    )
    z.add_argument(
        "--dead-time",
        type=_non_negative(float),
        default=None,
        metavar="NS",
        help="detectors' dead time for the CW g2 (default: the simsps model in the file, else 0)",
    )
    z.add_argument(
        "--afterpulse",
        type=_non_negative(float),
        default=None,
        metavar="P",
        help="detectors' afterpulse probability for the CW g2 (default: the simsps "
        "model in the file, else 0)",
    )
    z.add_argument(
        "--jitter",
        type=_non_negative(float),
        default=None,
        metavar="PS",
        help="one detector's timing jitter FWHM for the CW g2 (default: the simsps "
        "model in the file, else fitted)",
    )
    z.set_defaults(parser=z)

    m = sub.add_parser(
        "models",
        help="list the model presets with their key parameters",
        description="List the presets shipped in models/ with key parameters.",
    )
    m.add_argument("--toml", metavar="NAME", help="print the full TOML of one preset")
    m.set_defaults(parser=m)
    r = sub.add_parser(
        "reproduce",
        help="regenerate the seed paper's figures and its paper-vs-simulation table",
        description="Simulate and analyse every figure of the seed paper "
        "(D'Amato et al.): fig*.png, report.md and report.json in "
        "DIR. Exit code 1 if a reported number misses its band.",
    )
    r.add_argument("--out", required=True, metavar="DIR", help="output directory (created)")
    r.add_argument(
        "--quick",
        action="store_true",
        help="shorter acquisitions (minutes on a laptop CPU) instead of the seed's",
    )
    r.add_argument("--seed", type=_seed, default=0, help="seed of the run (default 0)")
    r.add_argument("--figures", metavar="LIST", help="only these, e.g. 2a,4d,S6")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.set_defaults(parser=r)
    from .sweep_cli import add_parsers

    add_parsers(sub, _positive, _seed)
    return p


# ---------------------------------------------------------------------------- commands
def _cmd_simulate(a) -> int:
    from .. import load_model, simulate_chunks
    from ..io import RECORD_FORMATS, write
    from ..params.model import parse_override

    suffix = a.out.suffix.lower()
    if suffix not in (".ptu", ".h5", ".hdf5"):
        raise UsageError(f"--out {a.out}: unknown extension {suffix!r}; use .ptu, .h5 or .hdf5")
    if a.format is not None and suffix != ".ptu":
        raise UsageError(f"--format {a.format} applies to .ptu output only")
    if a.emitters < 1:
        raise UsageError(f"--emitters {a.emitters} must be at least 1")
    if a.marker_every is not None and suffix != ".ptu":
        raise UsageError("--marker-every: Photon-HDF5 has no marker records; write .ptu")
    if a.marker_every is not None and a.marker_every < 1e-6:
        raise UsageError(f"--marker-every {a.marker_every:g}: at least 1e-6 s")
    t0 = time.perf_counter()
    try:
        overrides = dict(parse_override(t) for t in a.overrides)
        if a.excitation is not None:
            overrides["excitation.mode"] = a.excitation
        model = load_model(a.model, overrides)
        if model.is_cw and a.format and RECORD_FORMATS[a.format].mode == "T3":
            raise UsageError(
                f"--format {a.format}: CW excitation has no laser sync for T3 records; "
                "write T2 (--format picoharp-t2 or hydraharp-t2, or .h5)"
            )
        chunks = simulate_chunks(
            model, a.duration, a.power, a.seed, emitters=a.emitters, progress=not a.quiet
        )
        first = next(chunks)  # checks duration, power and seed before any file exists
    except ValueError as e:
        raise UsageError(str(e)) from None
    sidecar = None
    if a.truth is not None:
        from ..io.truth_sidecar import TruthSidecar

        if a.truth.resolve() == a.out.resolve():
            raise UsageError(f"--truth {a.truth} is the --out file")
        try:
            sidecar = TruthSidecar(a.truth)
        except ValueError as e:
            raise UsageError(str(e)) from None

    truth_done = []

    def all_chunks():
        for chunk in itertools.chain([first], chunks):
            if sidecar is not None:
                sidecar.add(chunk)
            yield chunk
        if sidecar is not None:  # the stream is complete: the sidecar goes in place first,
            _write_switches(sidecar, model, a, first.meta)  # the data file's commit last
            truth_done.append(True)

    from .._signals import final_output

    final_output(a.out)  # its commit is the point of no return for a Ctrl-C
    stream = all_chunks()
    if a.marker_every is not None:
        from ..io.markers import with_periodic_markers

        stream = with_periodic_markers(stream, a.marker_every, a.marker_bits)
    try:
        path = write(a.out, stream, a.format)
    except BaseException:
        if sidecar is not None:
            sidecar.abort()
            if truth_done:  # the data file did not come: no truth file without it
                a.truth.unlink(missing_ok=True)
        raise
    if not a.quiet:
        from ..io import summarize

        s = summarize(path)
        print(
            f"wrote {path}: {s['photons']} photons in {s['duration_s']:g} s "
            f"({s['count_rate_cps'] / 1e3:.2f} kcps), model {model.name}, power {a.power:g} Psat, "
            f"seed {a.seed} [{time.perf_counter() - t0:.1f} s]"
        )
    return EXIT_OK


def _write_switches(sidecar, model, a, meta) -> None:
    """The true blink switches of the run's NCs into the sidecar, and commit it."""
    from ..sim.blink_truth import iter_switches

    state0, chunks = iter_switches(model, a.duration, a.power, a.seed, emitters=a.emitters)
    period_ps = 1e12 / model.clock_hz
    for c in chunks:
        sidecar.add_switches(c.emitter, c.pulse, c.state, period_ps)
    sidecar.close(initial_state=state0, clock_period_ps=period_ps, meta=meta)


def _cmd_info(a) -> int:
    from ..io import summarize

    s = summarize(a.file, progress=sys.stderr.isatty())
    if a.json:
        print(json.dumps(s, indent=2, default=str))
        return EXIT_OK
    rows = [("file", s["file"]), ("kind", s["kind"])]
    for key in ("record_type", "format_version", "hardware", "creator", "created"):
        if s.get(key):
            rows.append((key.replace("_", " "), s[key]))
    rows += [
        ("records", f"{s['records']}"),
        ("mode", s.get("mode", "T3")),
        (
            "sync rate",
            f"{s['sync_rate_hz'] / 1e6:g} MHz (period {1e9 / s['sync_rate_hz']:g} ns)"
            if s["sync_rate_hz"]
            else "none (T2 time tags, no laser sync)",
        ),
        ("resolution", f"{s['resolution_ps']:g} ps"),
        ("duration", f"{s['duration_s']:.6g} s"),
        ("photons", f"{s['photons']}"),
        ("count rate", f"{s['count_rate_cps'] / 1e3:.3f} kcps"),
    ]
    if s.get("markers"):
        rows.append(("markers", f"{s['markers']} (not photons)"))
    for c, n in s["photons_per_channel"].items():
        rows.append(
            (f"  channel {c}", f"{n} photons, {s['count_rate_per_channel_cps'][c] / 1e3:.3f} kcps")
        )
    for k, v in s.get("simsps", {}).items():
        rows.append((f"simsps {k}", v))
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"{k:<{width}} : {v}" for k, v in rows))
    return EXIT_OK


def _cmd_analyze(a) -> int:
    from ..io import read
    from .analyze import analyze

    stream = read(a.file)
    background = None
    if a.background is not None:
        try:
            background = float(a.background)
        except ValueError:
            background = read(Path(a.background))  # an empty-spot measurement
        else:
            if not (background >= 0 and math.isfinite(background)):
                raise UsageError(f"--background {a.background}: a count rate >= 0 in cps")
    s = analyze(
        stream,
        a.out,
        bin_s=a.bin_s,
        tau_max_s=a.tau_max,
        background=background,
        detectors=dict(
            dead_time_ns=a.dead_time, afterpulse_probability=a.afterpulse, jitter_fwhm_ps=a.jitter
        ),
        progress=sys.stderr.isatty(),
    )
    lines = [f"analysed {a.file}: {s['photons']} photons in {s['duration_s']:g} s -> {a.out}/"]

    def num(x, fmt=".4f", scale=1.0):  # the summary holds null for non-finite values
        return "n/a" if x is None else format(x * scale, fmt)

    if "g2_pulsed" in s:
        g = s["g2_pulsed"]
        lines.append(
            f"  g2(0) = {num(g['g2_zero'])} raw, {num(g['g2_zero_corrected'])} +- "
            f"{num(g['g2_zero_stderr'])} background-corrected"
        )
    if "g2_cw" in s:
        g = s["g2_cw"]
        lines.append(
            f"  g2(0) = {num(g['g2_zero'])} +- {num(g['g2_zero_stderr'])} (CW dip "
            f"{num(g['dip_time_ns'], '.2f')} ns, background {g['background']})"
        )
    if "g2_log" in s:
        g = s["g2_log"]
        lines.append(
            f"  bunching 1 + {num(g['bunching_amplitude'], '.3f')}, tau_c "
            f"{num(g['tau_c_s'], '.1f', 1e6)} us"
        )
    if "decay" in s:
        lines.append(
            "  lifetimes "
            + ", ".join(
                f"{num(t, '.2f')} +- {num(e, '.2f')} ns"
                for t, e in zip(s["decay"]["lifetimes_ns"], s["decay"]["lifetimes_stderr_ns"])
            )
        )
    for name, why in s["skipped"].items():
        lines.append(f"  {name}: skipped ({why})")
    print("\n".join(lines))
    for w in s["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    if not s["figures"]:
        print(
            f"simsps analyze: error: every analysis of {a.file} was skipped (see above)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK


def _cmd_models(a) -> int:
    from ..params.model import ModelError, load_model, preset_names, preset_path

    if a.toml:
        try:
            print(preset_path(a.toml).read_text(), end="")
        except ModelError as e:
            raise UsageError(str(e)) from None
        return EXIT_OK
    for name in preset_names():
        m = load_model(name)
        b = m.blinking
        blink = (
            "off"
            if not b.enabled
            else (
                f"exponential, bright {b.bright_dwell_us:g} us / grey {b.grey_dwell_us:g} us"
                if b.dwell == "exponential"
                else f"power law m = {b.power_law_exponent:g}, {b.bright_dwell_us:g} us .. {b.power_law_max_s:g} s"
            )
        )
        bleach = (
            f"{m.bleaching.probability_per_excitation:.3g} per excitation"
            if m.bleaching.enabled
            else "off"
        )
        print(f"{name}\n  {m.description}")
        print(
            f"  laser       : {m.excitation.rep_rate_hz / 1e6:g} MHz, {m.excitation.wavelength_nm:g} nm"
        )
        print(f"  exciton     : {m.exciton.lifetime_ns:g} ns, QY {m.exciton.quantum_yield:g}")
        print(f"  trion       : {m.trion.lifetime_ns:g} ns, QY {m.trion.quantum_yield:g}")
        print(f"  biexciton   : {m.biexciton.lifetime_ns:g} ns, QY {m.biexciton.quantum_yield:g}")
        print(f"  blinking    : {blink}")
        print(f"  bleaching   : {bleach}")
        d = m.detection
        print(
            f"  detection   : efficiency {d.efficiency:g}, jitter {d.jitter_fwhm_ps:g} ps FWHM, "
            f"dead time {d.dead_time_ns:g} ns, dark {d.dark_cps:g} cps/channel, "
            f"bin {d.resolution_ps:g} ps"
        )
        print(
            f"  background  : {m.background.rate_cps:g} cps uniform, "
            f"{m.background.prompt_cps:g} cps prompt at Psat\n"
        )
    return EXIT_OK


def _cmd_reproduce(a) -> int:
    from .reproduce import FIGURES, reproduce

    names = [n for n, _, _ in FIGURES]
    only = None
    if a.figures:
        only = [f.strip() for f in a.figures.split(",") if f.strip()]
        bad = [f for f in only if f not in names]
        if bad:
            raise UsageError(f"unknown figure(s) {', '.join(bad)}: choose from {', '.join(names)}")
    doc = reproduce(a.out, quick=a.quick, seed=a.seed, progress=not a.no_progress, only=only)
    width = max((len(r["quantity"]) for r in doc["rows"]), default=10)
    for r in doc["rows"]:
        sim = r["simulated"]
        sim = (
            "n/a"
            if sim is None
            else (" .. ".join(f"{x:.4g}" for x in sim) if isinstance(sim, list) else f"{sim:.4g}")
        )
        print(
            f"  {r['figure']:6s} {r['quantity']:{width}s} {sim:>16s}  [{r['tolerance']}]  "
            f"{'ok' if r['ok'] else 'NO'}"
        )
    print(
        f"{doc['n_ok']} of {doc['n_rows']} rows within the paper's bands; figures and "
        f"report.md in {Path(a.out).resolve()} ({doc['wall_s']:.0f} s)"
    )
    return EXIT_OK if doc["all_ok"] else EXIT_FAILED


def _cmd_sweep(a) -> int:
    from .sweep_cli import cmd_sweep

    return cmd_sweep(a, UsageError)


def _cmd_sweep_plot(a) -> int:
    from .sweep_cli import cmd_sweep_plot

    return cmd_sweep_plot(a, UsageError)


_COMMANDS = {
    "simulate": _cmd_simulate,
    "info": _cmd_info,
    "analyze": _cmd_analyze,
    "models": _cmd_models,
    "reproduce": _cmd_reproduce,
    "sweep": _cmd_sweep,
    "sweep-plot": _cmd_sweep_plot,
}


def main(argv=None) -> int:
    from .._signals import cli_session

    parser = _parser()
    a = parser.parse_args(argv)  # exits with 2 on bad usage, 0 on --help
    try:
        with cli_session():  # a Ctrl-C a library swallows still stops every commit
            return _COMMANDS[a.command](a)
    except UsageError as e:
        a.parser.print_usage(sys.stderr)
        print(f"simsps {a.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("simsps: interrupted; no partial file was left", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `simsps info f.ptu | head`: the reader went away, quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (ValueError, OSError) as e:  # TTTRFileError is a ValueError
        print(f"simsps {a.command}: error: {e}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    raise SystemExit(main())
