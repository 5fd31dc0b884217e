"""`simsps analyze` on files written by PicoQuant software on real instruments
(tests/data/picoquant, BSD licence beside them): it finishes, and every number that no
emitter can give (a negative g2(0), a negative lifetime-trace delay, a decay that does not
finish within the period, a negative bunching or accidental floor...) comes with a warning
naming it, in summary.json's top-level list and on stderr. The T2 file runs the analyses that
need no laser pulse; the legacy .ht3 file (format 2.0) runs them all."""

import json
from pathlib import Path

from simsps.apps.cli import main

DATA = Path(__file__).parent / "data" / "picoquant"


def _warned(summary, section, *fragments):
    return any(
        w.startswith(section + ":") and any(f in w for f in fragments) for w in summary["warnings"]
    )


def test_analyze_real_t3_file(tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["analyze", str(DATA / "hydraharp_v20_t3.ptu"), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    s = json.loads((out / "summary.json").read_text())
    assert s["warnings"] and all(f"warning: {w}" in err for w in s["warnings"])
    assert set(s["figures"]) == {"g2_pulsed", "g2_log", "decay", "trace", "flid"}
    g = s["g2_pulsed"]
    if g["g2_zero_corrected"] < 0:
        assert _warned(s, "g2_pulsed", "negative", "below zero")
    if min(g["signal_fraction"]) < 0 or max(g["signal_fraction"]) > 1 or g["floor_per_peak"] < 0:
        assert _warned(s, "g2_pulsed", "floor")
    period_ns = 200.002
    if max(s["decay"]["lifetimes_ns"]) > period_ns / 20:
        assert _warned(s, "decay", "does not finish")
    if s["g2_log"]["bunching_amplitude"] < 0:
        assert _warned(s, "g2_log", "negative")
    if s["flid"]["mean_lifetime_ns"] < 0:
        assert _warned(s, "flid", "negative")
    # this file's lifetimes (~40 ns at 5 MHz) do not finish within the period: both the
    # decay and the pulsed g2 say so, and the corrected g2(0) is not the -0.59 of a plain
    # floor correction
    assert _warned(s, "decay", "does not finish") and _warned(s, "g2_pulsed", "does not finish")
    assert g["g2_zero_corrected"] > g["g2_zero"] - 1.0 and g["peak_fraction_inside"] < 0.99
    assert _warned(s, "flid", "negative mean delay")  # the dim bins of this file


def test_negative_control_no_warning_on_a_clean_simulation(tmp_path, capsys):
    """A clean simulated file prints no impossible number and so needs no such warning."""
    f = tmp_path / "nc.ptu"
    assert (
        main(
            [
                "simulate",
                "zn-treated",
                "--duration",
                "8",
                "--out",
                str(f),
                "--seed",
                "2",
                "--set",
                "bleaching.enabled=false",
            ]
        )
        == 0
    )
    out = tmp_path / "r"
    assert main(["analyze", str(f), "--out", str(out), "--background", "1000"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["g2_pulsed"]["g2_zero_corrected"] > 0 and s["g2_pulsed"]["background"] == "rates"
    assert not _warned(s, "g2_pulsed", "negative", "below zero", "does not finish")
    assert not _warned(s, "decay", "does not finish")
    assert s["g2_log"]["background_corrected"]


def test_analyze_real_t2_file(tmp_path, capsys):
    """The PicoHarp T2 file (no sync): the analyses that need no laser pulse run (g2 on
    log delays, the trace); the pulsed ones are skipped, each with its reason."""
    out = tmp_path / "report"
    assert main(["analyze", str(DATA / "picoharp_v30_t2.ptu"), "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert {"g2_log", "trace"} <= set(s["figures"])
    for name in ("g2_pulsed", "decay", "flid"):
        assert "needs a T3 stream" in s["skipped"][name]
    assert s["photons"] == 920177


def test_analyze_real_legacy_ht3_file(tmp_path, capsys):
    """The HydraHarp .ht3 (file format 2.0, four detectors): every analysis runs on its
    first two channels, and its numbers no emitter gives carry their warnings."""
    out = tmp_path / "report"
    assert main(["analyze", str(DATA / "hydraharp_v20.ht3"), "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["photons"] == 44141 and {"g2_pulsed", "g2_log", "decay"} <= set(s["figures"])
    if s["g2_pulsed"]["g2_zero_corrected"] < 0:
        assert _warned(s, "g2_pulsed", "negative", "below zero")
