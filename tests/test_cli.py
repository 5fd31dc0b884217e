"""The ``simsps`` command line: files it writes, what ``info`` reports, exit codes 0 / 1 / 2."""

import json
import subprocess
import sys

import numpy as np
import pytest

import simsps
from simsps.apps.cli import main
from simsps.io import read


def test_simulate_ptu_then_info(tmp_path, capsys):
    out = tmp_path / "nc.ptu"
    rc = main(
        [
            "simulate",
            "zn-treated",
            "--duration",
            "0.3",
            "--power",
            "2",
            "--seed",
            "4",
            "--out",
            str(out),
            "--format",
            "hydraharp-t3",
            "--set",
            "blinking.enabled=false",
        ]
    )
    assert rc == 0 and "wrote" in capsys.readouterr().out
    s = read(out)
    m = simsps.load_model("zn-treated", {"blinking.enabled": False})
    assert s.equal_records(simsps.simulate(m, 0.3, 2.0, 4))
    assert s.meta["seed"] == 4 and s.meta["power"] == 2.0
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["record_type"].startswith("0x01010304")
    assert info["photons"] == len(s) and info["duration_s"] == pytest.approx(0.3)
    counts = np.bincount(s.channel)
    assert info["photons_per_channel"] == {str(c): int(n) for c, n in enumerate(counts)}
    assert info["count_rate_cps"] == pytest.approx(len(s) / 0.3)
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "HydraHarp 400 v2 T3" in text and "channel 1" in text and "kcps" in text


def test_simulate_photon_hdf5(tmp_path, capsys):
    out = tmp_path / "nc.h5"
    assert main(["simulate", "pristine", "--duration", "0.2", "--out", str(out), "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    s = read(out)
    assert s.truth is not None and s.meta["model"] == "pristine"
    assert main(["info", str(out)]) == 0
    assert "Photon-HDF5" in capsys.readouterr().out


def test_models(capsys):
    assert main(["models"]) == 0
    text = capsys.readouterr().out
    assert "zn-treated" in text and "pristine" in text and "10.2 ns" in text
    assert main(["models", "--toml", "zn-treated"]) == 0
    assert "[exciton]" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["simulate", "zn-treated", "--duration", "-1", "--out", "x.ptu"], "must be positive"),
        (["simulate", "zn-treated", "--duration", "1"], "--out"),
        (["simulate", "nope", "--duration", "1", "--out", "x.ptu"], "unknown model 'nope'"),
        (
            [
                "simulate",
                "zn-treated",
                "--duration",
                "1",
                "--out",
                "x.ptu",
                "--set",
                "exciton.lifetime_ns=-3",
            ],
            "exciton.lifetime_ns",
        ),
        (
            [
                "simulate",
                "zn-treated",
                "--duration",
                "1",
                "--out",
                "x.ptu",
                "--set",
                "nosuch.key=1",
            ],
            "nosuch",
        ),
        (["simulate", "zn-treated", "--duration", "1", "--out", "x.csv"], "unknown extension"),
        (
            [
                "simulate",
                "zn-treated",
                "--duration",
                "1",
                "--out",
                "x.h5",
                "--format",
                "picoharp-t3",
            ],
            "applies to .ptu",
        ),
        (
            ["simulate", "zn-treated", "--duration", "1", "--out", "x.ptu", "--format", "t2"],
            "invalid choice",
        ),
        (
            [
                "simulate",
                "zn-treated",
                "--duration",
                "1",
                "--out",
                "x.ptu",
                "--excitation",
                "cw",
                "--format",
                "picoharp-t3",
            ],
            "no laser sync",
        ),
        (["info"], "FILE"),
        (["frobnicate"], "invalid choice"),
        (["models", "--toml", "nope"], "unknown model"),
    ],
)
def test_bad_usage_exits_2_naming_the_problem(tmp_path, monkeypatch, capsys, argv, needle):
    monkeypatch.chdir(tmp_path)
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse's own errors
        rc = e.code
    assert rc == 2
    assert needle in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_failures_exit_1(tmp_path, capsys):
    assert main(["info", str(tmp_path / "missing.ptu")]) == 1
    assert "missing.ptu" in capsys.readouterr().err
    bad = tmp_path / "bad.ptu"
    bad.write_bytes(b"PQTTTR\0\0" + b"\x01" * 40)
    assert main(["info", str(bad)]) == 1
    assert "bad.ptu" in capsys.readouterr().err


@pytest.mark.parametrize("command", [[], ["simulate"], ["info"], ["analyze"], ["models"]])
def test_help_everywhere(capsys, command):
    with pytest.raises(SystemExit) as e:
        main(command + ["--help"])
    assert e.value.code == 0 and "usage: simsps" in capsys.readouterr().out


def test_installed_entry_point():
    r = subprocess.run(
        [sys.executable, "-m", "simsps.apps.cli", "--version"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0 and r.stdout.startswith("simsps ")


def test_analyze_writes_figures_and_summary(tmp_path, capsys):
    ptu = tmp_path / "nc.ptu"
    assert (
        main(
            [
                "simulate",
                "zn-treated",
                "--duration",
                "2",
                "--seed",
                "3",
                "--out",
                str(ptu),
                "--quiet",
            ]
        )
        == 0
    )
    out = tmp_path / "report"
    assert main(["analyze", str(ptu), "--out", str(out), "--tau-max", "0.2"]) == 0
    assert "g2(0)" in capsys.readouterr().out
    s = json.loads((out / "summary.json").read_text())
    assert s["skipped"] == {}
    for name, png in s["figures"].items():
        assert (out / png).stat().st_size > 10_000, name
    assert 0 < s["g2_pulsed"]["g2_zero_corrected"] < 0.3
    assert 5 < s["decay"]["lifetimes_ns"][-1] < 15
    # one detector only: the correlations are skipped with the reason, the rest runs
    one = read(ptu)
    one = one.take(one.channel == 0)
    from simsps.io import write_ptu

    write_ptu(tmp_path / "one.ptu", one)
    assert main(["analyze", str(tmp_path / "one.ptu"), "--out", str(tmp_path / "r1")]) == 0
    s1 = json.loads((tmp_path / "r1" / "summary.json").read_text())
    assert "channel 1 has no photons" in s1["skipped"]["g2_pulsed"]
    assert "decay" in s1["figures"]


def test_cw_simulate_t2_then_analyze_shows_the_dip(tmp_path, capsys):
    """Issue 15's acceptance: a CW run written as HydraHarp T2 that ptufile and tttrlib
    read record for record, and an analysis that finds the antibunching dip."""
    import ptufile

    ptu = tmp_path / "f.ptu"
    argv = ["simulate", "zn-treated", "--excitation", "cw", "--format", "hydraharp-t2"]
    assert main(argv + ["--duration", "1", "--out", str(ptu), "--quiet"]) == 0
    s = read(ptu)
    assert s.is_t2 and s.meta["excitation"] == "cw"
    m = simsps.load_model("zn-treated", {"excitation.mode": "cw"})
    assert s.equal_records(simsps.simulate(m, 1.0, 1.0, 0))
    with ptufile.PtuFile(ptu) as f:
        rec = f.decode_records(f.read_records())
    photons = rec[rec["marker"] == 0] if "marker" in rec.dtype.names else rec
    photons = photons[photons["channel"] >= 0]
    np.testing.assert_array_equal(photons["time"].astype(np.int64), s.time_ps)
    tttrlib = pytest.importorskip("tttrlib")
    t = tttrlib.TTTR(str(ptu), "PTU")
    np.testing.assert_array_equal(np.asarray(t.macro_times, np.int64), s.time_ps)
    np.testing.assert_array_equal(np.asarray(t.routing_channels), s.channel)
    out = tmp_path / "report"
    assert main(["analyze", str(ptu), "--out", str(out), "--tau-max", "0.05"]) == 0
    assert "CW dip" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    g = summary["g2_cw"]
    assert g["g2_zero"] + 3.3 * g["g2_zero_stderr"] < 0.5  # antibunched
    assert g["detectors_from"]["dead_time_ns"] == "the file's simsps model"
    assert (out / "g2_cw.png").stat().st_size > 10_000
    assert "g2_pulsed" in summary["skipped"] and "decay" in summary["skipped"]
