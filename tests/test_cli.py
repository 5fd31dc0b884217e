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


@pytest.mark.parametrize("mode", ["pulsed", "cw"])
def test_truth_sidecar_matches_the_file_and_the_photons_states(tmp_path, mode):
    """``--truth f.npz``: one row per photon record of the PTU (its times and channels, read
    back by ptufile), and a switch table that explains every emitter photon's charge state
    (the kernel's labels, drawn independently of the replayed trajectory)."""
    import ptufile

    ptu, npz = tmp_path / "f.ptu", tmp_path / "f.npz"
    argv = ["simulate", "zn-treated", "--excitation", mode, "--duration", "0.5", "--seed", "4"]
    argv += ["--emitters", "2", "--out", str(ptu), "--truth", str(npz), "--quiet"]
    assert main(argv) == 0
    z = np.load(npz)
    with ptufile.PtuFile(ptu) as f:
        rec = f.decode_records(f.read_records())
    photons = rec[rec["channel"] >= 0]
    m = simsps.load_model("zn-treated", {"excitation.mode": mode})
    if mode == "pulsed":  # sync x period + bin x resolution, from the model's numbers
        period, res = round(1e12 / m.excitation.rep_rate_hz), round(m.detection.resolution_ps)
        t = photons["time"].astype(np.int64) * period + photons["dtime"].astype(np.int64) * res
    else:
        t = photons["time"].astype(np.int64)
    np.testing.assert_array_equal(z["time_ps"], t)
    np.testing.assert_array_equal(z["channel"], photons["channel"])
    assert len(z["source"]) == len(t) and len(z["initial_state"]) == 2
    em = z["emitter"] < 2
    assert em.mean() > 0.5 and set(np.unique(z["emitter"][em])) == {0, 1}
    # every emitter photon's state from the switch table at its pulse
    clock = float(z["clock_period_ps"])
    pulse = (z["arrival_ps"] - np.nan_to_num(z["emission_delay_ps"]).astype(np.int64)) // clock
    n_switch = 0
    for k in (0, 1):
        sel = z["switch_emitter"] == k
        sw, st = z["switch_pulse"][sel], z["switch_state"][sel]
        assert np.all(np.diff(sw) > 0) and np.all(st[1:] != st[:-1])
        np.testing.assert_array_equal(z["switch_time_ps"][sel], sw * round(clock))
        mine = em & (z["emitter"] == k)
        i = np.searchsorted(sw, pulse[mine], side="right")
        want = np.where(i == 0, z["initial_state"][k], st[np.maximum(i - 1, 0)])
        assert np.mean(want == z["state"][mine]) > 0.99  # CW: detection a few ns later
        n_switch += len(sw)
    assert n_switch > 100
    # negative control: another seed's trajectory does not explain the states
    from simsps.sim.blink_truth import iter_switches

    s0, chunks = iter_switches(m, 0.5, 1.0, 5, emitters=2)
    c = list(chunks)
    e, p, st = (np.concatenate([getattr(x, f) for x in c]) for f in ("emitter", "pulse", "state"))
    mine = em & (z["emitter"] == 0)
    i = np.searchsorted(p[e == 0], pulse[mine], side="right")
    want = np.where(i == 0, s0[0], st[e == 0][np.maximum(i - 1, 0)])
    assert np.mean(want == z["state"][mine]) < 0.9


def test_truth_sidecar_bad_input_and_no_leftovers(tmp_path, capsys):
    ptu = tmp_path / "f.ptu"
    base = ["simulate", "zn-treated", "--duration", "0.01", "--out", str(ptu), "--quiet"]
    assert main(base + ["--truth", str(tmp_path / "t.parquet")]) == 2
    assert ".npz" in capsys.readouterr().err
    assert main(base + ["--truth", str(tmp_path / "nodir" / "t.npz")]) == 2
    assert main(base + ["--truth", str(ptu)]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_simulate_with_frame_markers(tmp_path, capsys):
    out = tmp_path / "m.ptu"
    argv = ["simulate", "zn-treated", "--duration", "0.25", "--out", str(out), "--quiet"]
    assert main(argv + ["--marker-every", "0.1", "--marker-bits", "4"]) == 0
    r = read(out)
    np.testing.assert_array_equal(r.markers.time_ps, [0, 10**11, 2 * 10**11])
    assert r.markers.bits.tolist() == [4, 4, 4]
    assert main(["info", str(out)]) == 0 and "3 (not photons)" in capsys.readouterr().out
    h5 = ["simulate", "zn-treated", "--duration", "0.1", "--out", str(tmp_path / "m.h5")]
    assert main(h5 + ["--marker-every", "0.1"]) == 2
    assert "Photon-HDF5 has no marker" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # argparse's own check
        main(argv + ["--marker-every", "0.1", "--marker-bits", "16"])
    assert e.value.code == 2 and "--marker-bits" in capsys.readouterr().err


def test_four_detectors_from_simulate_to_analyze(tmp_path, capsys):
    """--set detection.channels=4: four channels in the PTU (ptufile reads them) and in
    Photon-HDF5 (the arms in its setup, phconvert validates), and analyze pairs the arms."""
    import ptufile

    ptu, h5 = tmp_path / "four.ptu", tmp_path / "four.h5"
    argv = ["simulate", "zn-treated", "--duration", "1", "--set", "detection.channels=4"]
    argv += ["--set", "detection.efficiency=0.1", "--quiet", "--out"]
    assert main(argv + [str(ptu)]) == 0 and main(argv + [str(h5)]) == 0
    with ptufile.PtuFile(ptu) as f:
        rec = f.decode_records(f.read_records())
        assert f.tags["HW_InpChannels"] == 4
    counts = np.bincount(rec["channel"][rec["channel"] >= 0])
    assert len(counts) == 4 and counts.min() > 0.2 * counts.sum() / 4
    phconvert = pytest.importorskip("phconvert")
    d = phconvert.hdf5.load_photon_hdf5(str(h5))
    try:
        spec = d.root.photon_data.measurement_specs.detectors_specs
        assert spec.split_ch1.read().tolist() == [0, 1] and spec.split_ch2.read().tolist() == [2, 3]
    finally:
        d.close()
    assert main(["info", str(ptu), "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)["photons_per_channel"]) == {"0", "1", "2", "3"}
    out = tmp_path / "report"
    assert main(["analyze", str(ptu), "--out", str(out), "--tau-max", "0.05"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["hbt_arms"] == [[0, 1], [2, 3]]
    assert summary["g2_pulsed"]["g2_zero_corrected"] < 0.5
