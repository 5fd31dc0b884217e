"""Run every single-file analysis on a stream: PNGs and a JSON summary (``simsps analyze``)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..analysis._common import AnalysisError
from ..io._atomic import atomic_path, write_text_atomic
from ..stream import hbt_arms


def jsonable(x):
    """Plain JSON values: numpy scalars and arrays to Python, non-finite floats to None
    (JSON has no NaN)."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, (np.integer,)):
        return int(x)
    return x


def save_figure(fig, path: Path) -> None:
    """Write ``fig`` as a PNG to ``path`` through a temporary file (nothing half-written)."""
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=150, format="png")
    finally:
        plt.close(fig)


def analyze(
    stream,
    out_dir,
    *,
    bin_s: float = 0.01,
    tau_max_s: float | None = None,
    background=None,
    detectors: dict | None = None,
    progress: bool = False,
) -> dict:
    """Every analysis of one acquisition; writes ``out_dir/*.png`` and ``summary.json``.

    An analysis the data cannot support (e.g. a g2 with one detector) is recorded in the
    summary with the reason instead of stopping the others. Every estimator's warnings go
    into its section and, prefixed with its name, into the top-level ``"warnings"`` list.
    ``background``: count rate (cps) or empty-spot stream for the g2 corrections (default:
    the pulsed g2's inter-peak floor; the long-delay and CW g2 uncorrected).
    ``detectors``: ``dead_time_ns``, ``afterpulse_probability``, ``jitter_fwhm_ps`` for the
    CW g2 (T2 streams); missing ones come from the simsps model recorded in the file, if
    any (the summary says which), else dead time and afterpulsing 0 and the jitter fitted.
    """
    import matplotlib

    matplotlib.use("Agg")
    from tqdm.auto import tqdm

    from ..analysis import (
        decay,
        dwell_times,
        fit_decay,
        flid,
        g2_cw,
        g2_log,
        intensity_trace,
        lifetime_trace,
        pulsed_g2,
        two_level,
    )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    duration = stream.duration_s
    summary: dict = {
        "photons": len(stream),
        "duration_s": duration,
        "count_rate_cps": len(stream) / duration if duration else None,
        "source": {k: v for k, v in stream.meta.items() if k not in ("ptu_tags", "model_toml")},
        "figures": {},
        "skipped": {},
        "warnings": [],
    }

    # a simsps stream of more than two detectors: the cross-correlations pair the HBT's
    # two arms (channels 0 .. n/2 - 1 against n/2 .. n - 1, as simsps routes them), so
    # every cross-arm pair counts; other files' g2 is that of channels 0 and 1
    n_det = stream.meta.get("detectors")
    pairs = stream
    if isinstance(n_det, (int, np.integer)) and n_det > 2:
        n_det = int(n_det)
        arms = list(hbt_arms(n_det))
        pairs = stream.merge_channels(arms)
        summary["hbt_arms"] = arms
        summary["warnings"].append(
            f"{n_det} detectors: g2 of the arms {arms[0]} x {arms[1]}, each arm "
            "counted as one detector (dead-time and afterpulse corrections are per arm)"
        )

    def pulsed():
        r = pulsed_g2(pairs, background="floor" if background is None else background)
        save_figure(r.plot().figure, out / "g2_pulsed.png")
        lo, hi = r.interval()
        return {
            "g2_zero": r.g2_zero,
            "g2_zero_stderr_raw": r.g2_zero_stderr_raw,
            "g2_zero_corrected": r.g2_zero_corrected,
            "g2_zero_stderr": r.g2_zero_stderr,
            "interval_95": [lo, hi],
            "correction": r.correction,
            "background": r.background,
            "signal_fraction": r.signal_fraction,
            "side_peak_mean": r.side_mean,
            "floor_per_peak": r.floor_per_peak,
            "afterpulse_per_peak": r.afterpulse_per_peak,
            "peak_fraction_inside": r.peak_fraction_inside,
            "assumptions": list(r.assumptions),
            "warnings": list(r.warnings),
        }, "g2_pulsed.png"

    def cw_dip():
        det, origin = _detector_parameters(stream, detectors)
        r = g2_cw(pairs, background=background, **det)
        save_figure(r.plot().figure, out / "g2_cw.png")
        lo, hi = r.interval()
        return {
            "g2_zero": r.g2_zero,
            "g2_zero_stderr": r.g2_zero_stderr,
            "interval_95": [lo, hi],
            "dip_time_ns": r.dip_time_ns,
            "dip_time_stderr_ns": r.dip_time_stderr_ns,
            "shoulder": r.shoulder,
            "offset_ps": r.offset_ps,
            "jitter_sigma_ps": r.jitter_ps,
            "jitter_fitted": r.jitter_fitted,
            "signal_fraction": r.signal_fraction,
            "background": r.background,
            "detectors": det,
            "detectors_from": origin,
            "assumptions": list(r.assumptions),
            "warnings": list(r.warnings),
        }, "g2_cw.png"

    def longdelay():
        tmax = tau_max_s or min(1.0, duration / 4)
        r = g2_log(pairs, tau_max_s=tmax, background=background)
        save_figure(r.plot().figure, out / "g2_log.png")
        f = r.fit
        return {
            "tau_max_s": tmax,
            "bunching_amplitude": f.amplitude,
            "bunching_amplitude_stderr": f.amplitude_stderr,
            "relative_amplitude": f.relative_amplitude,
            "relative_amplitude_stderr": f.relative_amplitude_stderr,
            "baseline": f.baseline,
            "tau_c_s": f.tau_c_s,
            "tau_c_stderr_s": f.tau_c_stderr_s,
            "decayed_to_5pct_s": f.decayed_by(0.05),
            "chi2_per_dof": f.chi2_per_dof,
            "background_corrected": background is not None,
            "warnings": list(r.warnings),
        }, "g2_log.png"

    def lifetimes():
        d = decay(stream)
        try:
            fit = fit_decay(d, n_exp=2)
            if not np.all(fit.lifetimes_stderr_ns < fit.lifetimes_ns):
                raise AnalysisError("a component is not determined")
        except AnalysisError:
            fit = fit_decay(d, n_exp=1)
        save_figure(d.plot(fit=fit).figure, out / "decay.png")
        return {
            "lifetimes_ns": fit.lifetimes_ns,
            "lifetimes_stderr_ns": fit.lifetimes_stderr_ns,
            "fractions": fit.fractions,
            "background_per_bin": fit.background_per_bin,
            "fit_range_ns": fit.fit_range_ns,
            "reduced_deviance": fit.reduced_deviance,
            "warnings": list(fit.warnings),
        }, "decay.png"

    def trace():
        tr = intensity_trace(stream, bin_s)
        res = {"bin_s": bin_s, "mean_counts_per_bin": float(tr.counts.mean()), "warnings": []}
        try:
            lv = two_level(tr)
            dw = dwell_times(tr, lv)
            res.update(
                grey_mean=lv.grey_mean,
                bright_mean=lv.bright_mean,
                bright_fraction=lv.bright_fraction,
                threshold=lv.threshold,
            )
            res["warnings"] += list(lv.warnings)
            for name, fit in (("bright", dw.bright_fit), ("grey", dw.grey_fit)):
                if fit is not None:
                    res[f"{name}_dwell"] = {
                        "n": fit.n,
                        "exp_mean_s": fit.exp_mean_s,
                        "power_law_exponent": fit.power_law_exponent,
                        "power_law_stderr": fit.power_law_stderr,
                    }
                    res["warnings"] += [f"{name} dwells: {w}" for w in fit.warnings]
        except AnalysisError as e:
            lv = None
            res["two_level"] = f"skipped: {e}"
        save_figure(tr.plot(levels=lv).figure, out / "trace.png")
        return res, "trace.png"

    def flid_map():
        lt = lifetime_trace(stream, bin_s)
        f = flid(lt)
        save_figure(f.plot().figure, out / "flid.png")
        sd_i, sd_t = f.spread()
        return {
            "bin_s": bin_s,
            "mean_lifetime_ns": float(np.nanmean(lt.lifetime_ns)),
            "intensity_sd": sd_i,
            "lifetime_sd_ns": sd_t,
            "warnings": list(f.warnings),
        }, "flid.png"

    steps = [
        ("g2_pulsed", pulsed),
        *([("g2_cw", cw_dip)] if stream.is_t2 else []),  # pulsed streams: g2_pulsed
        ("g2_log", longdelay),
        ("decay", lifetimes),
        ("trace", trace),
        ("flid", flid_map),
    ]
    for name, step in tqdm(steps, desc="analyze", delay=1.0, leave=False, disable=not progress):
        try:
            result, png = step()
            summary[name] = result
            summary["figures"][name] = png
            summary["warnings"] += [f"{name}: {w}" for w in result.get("warnings", [])]
        except AnalysisError as e:
            summary["skipped"][name] = str(e)
    summary = jsonable(summary)
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


_DETECTOR_KEYS = {
    "dead_time_ns": "dead_time_ns",
    "afterpulse_probability": "afterpulse_probability",
    "jitter_fwhm_ps": "jitter_fwhm_ps",
}


def _detector_parameters(stream, given: dict | None) -> tuple[dict, dict]:
    """The CW g2's detector parameters: those ``given``, the rest from the simsps model
    the file records (its ``[detection]``), else none. Returns (parameters, where each
    came from)."""
    given = {k: v for k, v in (given or {}).items() if v is not None}
    unknown = set(given) - set(_DETECTOR_KEYS)
    if unknown:
        raise ValueError(f"unknown detector parameters {sorted(unknown)}")
    out, origin = dict(given), {k: "given" for k in given}
    toml = stream.meta.get("model_toml")
    if toml and len(out) < len(_DETECTOR_KEYS):
        import tomllib

        try:
            det = tomllib.loads(toml).get("detection", {})
        except tomllib.TOMLDecodeError:
            det = {}
        for key, field in _DETECTOR_KEYS.items():
            if key not in out and field in det:
                out[key] = float(det[field])
                origin[key] = "the file's simsps model"
    return out, origin
