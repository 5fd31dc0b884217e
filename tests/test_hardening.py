"""Regression tests for every case of the hardening issue: damaged headers, hostile paths,
faults (disk full, kills, FIFOs, concurrent writers) and runaway parameters each end in a
clear error naming the problem, never a crash, a hang or lost data."""

from __future__ import annotations

import errno
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import simsps
from simsps.apps.cli import main
from simsps.io import TTTRFileError, TTTRFileWarning, iter_ptu, read, write, write_ptu
from simsps.io.summary import summarize
from simsps.params.model import ModelError

from .fuzzing import ptu_tags


@pytest.fixture(scope="module")
def sim():
    return simsps.simulate(simsps.load_model("zn-treated"), 0.2, seed=4)


@pytest.fixture()
def ptu(tmp_path, sim):
    return write_ptu(tmp_path / "nc.ptu", sim)


def _set_tag(path: Path, name: str, value, kind: str = "q", type_code: int | None = None):
    raw = bytearray(path.read_bytes())
    pos = next(p for p, n, _ in ptu_tags(bytes(raw)) if n == name)
    raw[pos + 40 : pos + 48] = struct.pack("<" + kind, value)
    if type_code is not None:
        raw[pos + 36 : pos + 40] = struct.pack("<I", type_code)
    path.write_bytes(bytes(raw))


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".part" in p.name)


# ---- damaged headers: the documented error, naming the file ---------------------------


@pytest.mark.parametrize(
    "name, value, kind, type_code, needle",
    [
        ("TTResult_NumberOfRecords", float("inf"), "d", 0x20000008, "not finite"),
        ("TTResultFormat_TTTRRecType", float("inf"), "d", 0x20000008, "not finite"),
        ("TTResultFormat_BitsPerRecord", float("inf"), "d", 0x20000008, "not finite"),
        ("TTResultFormat_BitsPerRecord", 45000.0, "d", 0x21000008, "not a number"),
        ("MeasDesc_Resolution", 1e-30, "d", None, "impossible bin"),
        ("MeasDesc_Resolution", 1e-3, "d", None, "not shorter than the sync period"),
        ("MeasDesc_GlobalResolution", float("nan"), "d", None, "not finite"),
    ],
)
def test_hostile_header_values_name_the_tag(ptu, name, value, kind, type_code, needle):
    _set_tag(ptu, name, value, kind, type_code)
    for reader in (read, summarize):
        with pytest.raises(TTTRFileError, match=needle) as e:
            reader(ptu)
        assert ptu.name in str(e.value)


def test_sync_rate_zero_without_global_resolution(tmp_path, ptu):
    raw = bytearray(ptu.read_bytes())
    pos = next(p for p, n, _ in ptu_tags(bytes(raw)) if n == "MeasDesc_GlobalResolution")
    raw[pos : pos + 32] = b"Renamed_Tag".ljust(32, b"\0")  # the tag gone
    ptu.write_bytes(bytes(raw))
    _set_tag(ptu, "TTResult_SyncRate", 0)
    with pytest.raises(TTTRFileError, match="sync rate 0"):
        read(ptu)


def test_t2_resolution_that_rounds_to_zero(tmp_path):
    cw = simsps.simulate(simsps.load_model("zn-treated", {"excitation.mode": "cw"}), 0.001)
    p = write_ptu(tmp_path / "t2.ptu", cw, "hydraharp-t2")
    _set_tag(p, "MeasDesc_GlobalResolution", 1e-20, "d")
    with pytest.raises(TTTRFileError, match="impossible time-tag unit"):
        read(p)


def test_header_tag_claiming_a_gigabyte(ptu):
    raw = bytearray(ptu.read_bytes())
    pos = next(p for p, n, k in ptu_tags(bytes(raw)) if n == "File_Comment")
    raw[pos + 40 : pos + 48] = struct.pack("<q", 1 << 30)
    ptu.write_bytes(bytes(raw))
    with pytest.raises(TTTRFileError, match="claims 1073741824 bytes, the file has"):
        read(ptu)


def test_sparse_two_gigabyte_file_is_not_decoded_into_memory(tmp_path, ptu, monkeypatch):
    """A 2 GiB file of zero records (sparse, no disk used): read() refuses to build the
    whole stream when it would not fit the memory there is (here: told there is 1 GiB)."""
    big = tmp_path / "sparse.ptu"
    big.write_bytes(ptu.read_bytes())
    with open(big, "r+b") as fh:
        fh.truncate(2 << 30)
    import simsps.io.validate as v

    monkeypatch.setattr(v.os, "sysconf", lambda k: {"SC_AVPHYS_PAGES": 1 << 18}.get(k, 4096))
    with pytest.warns(TTTRFileWarning, match="the file holds"):
        with pytest.raises(TTTRFileError, match="iter_ptu"):
            read(big)


def test_impossible_number_of_pulses_is_dropped_with_a_warning(ptu, sim):
    _set_tag(ptu, "simsps_NumberOfPulses", 2**62)
    with pytest.warns(TTTRFileWarning, match="simsps_NumberOfPulses"):
        r = read(ptu)
    assert r.equal_records(sim) and r.duration_s < 1.0  # from the records, not 1.8e12 s


def test_records_spanning_longer_than_any_acquisition(tmp_path):
    """Overflow records that carry the time past 1e6 s (a damaged wrap count)."""
    from simsps.io.codec import overflow_records
    from simsps.io.records import BY_CODE

    s = simsps.PhotonStream([0, 5], [1, 2], [0, 1], 400_000.0, 128.0)
    p = write_ptu(tmp_path / "long.ptu", s, "hydraharp-t3")
    _, ovf = overflow_records(BY_CODE[0x01010304], [3_000_000_000])
    with open(p, "ab") as fh:
        fh.write(ovf.tobytes() + np.uint32(7).tobytes())
    with pytest.warns(TTTRFileWarning):
        with pytest.raises(TTTRFileError, match="longer than any acquisition"):
            read(p)


def test_unsorted_timestamps_and_channel_255_in_photon_hdf5(tmp_path, sim):
    import h5py

    p = write(tmp_path / "s.h5", sim)
    with h5py.File(p, "r+") as f:
        ts = f["photon_data/timestamps"]
        a = ts[:]
        a[[10, 11]] = a[[11, 10]]
        ts[...] = a
    with pytest.raises(TTTRFileError, match="timestamps decrease at photon 11"):
        read(p)
    p = write(tmp_path / "c.h5", sim)
    with h5py.File(p, "r+") as f:
        det = f["photon_data/detectors"]
        d = det[:]
        d[3] = 255
        det[...] = d
    for reader in (read, summarize):
        with pytest.raises(TTTRFileError, match="detector 255"):
            reader(p)


@pytest.mark.parametrize(
    "edit", ["delete_timestamps", "scalar_detectors", "bad_group", "truncate", "string_unit"]
)
def test_damaged_photon_hdf5_raises_the_documented_error(tmp_path, sim, edit):
    import h5py

    p = write(tmp_path / "d.h5", sim)
    if edit == "truncate":
        p.write_bytes(p.read_bytes()[:5000])
    else:
        with h5py.File(p, "r+") as f:
            if edit == "delete_timestamps":
                del f["photon_data/timestamps"]
            elif edit == "scalar_detectors":
                del f["photon_data/detectors"]
                f["photon_data/detectors"] = 3
            elif edit == "bad_group":
                del f["photon_data"]
                f["photon_data"] = np.arange(3)
            else:
                del f["photon_data/timestamps_specs/timestamps_unit"]
                f["photon_data/timestamps_specs/timestamps_unit"] = b"fast"
    for reader in (read, summarize):
        with pytest.raises(TTTRFileError) as e:
            reader(p)
        assert p.name in str(e.value)


# ---- record counts: the file size wins, with a warning --------------------------------


@pytest.mark.parametrize("announced", [0, 17])
def test_short_record_count_loses_no_records(ptu, sim, announced):
    _set_tag(ptu, "TTResult_NumberOfRecords", announced)
    with pytest.warns(TTTRFileWarning, match=f"announces {announced} records"):
        r = read(ptu)
    assert r.equal_records(sim)
    with pytest.warns(TTTRFileWarning):
        assert main(["info", str(ptu)]) == 0


# ---- hostile paths ---------------------------------------------------------------------


def _fifo(tmp_path, name):
    p = tmp_path / name
    os.mkfifo(p)
    return p


@pytest.mark.parametrize("name", ["f.ptu", "f.h5", "f.pt3"])
def test_a_fifo_is_refused_at_once(tmp_path, name, capsys):
    p = _fifo(tmp_path, name)
    t0 = time.perf_counter()
    for reader in (read, summarize):
        with pytest.raises(TTTRFileError, match="FIFO"):
            reader(p)
    assert main(["analyze", str(p), "--out", str(tmp_path / "r")]) == 1
    assert "FIFO" in capsys.readouterr().err
    assert time.perf_counter() - t0 < 10


def test_a_directory_is_refused(tmp_path):
    with pytest.raises(TTTRFileError, match="is a directory"):
        read(tmp_path)


def test_model_base_on_a_fifo_relative_base_cycles_and_unknown_model_keys(tmp_path):
    _fifo(tmp_path, "pipe.toml")
    (tmp_path / "m.toml").write_text('[model]\nbase = "pipe.toml"\n')
    with pytest.raises(ModelError, match="not a regular file"):
        simsps.load_model(tmp_path / "m.toml")
    # a relative base is the including file's neighbour, wherever the working directory is
    sub = tmp_path / "sub"
    sub.mkdir()
    base = simsps.params.model.preset_path("zn-treated").read_text()
    (sub / "base.toml").write_text(base.replace('name = "zn-treated"', 'name = "from-base"'))
    (sub / "top.toml").write_text('[model]\nbase = "base.toml"\nname = "top"\n')
    assert simsps.load_model(sub / "top.toml").name == "top"
    # cycles are named as cycles
    (tmp_path / "a.toml").write_text('[model]\nbase = "b.toml"\n')
    (tmp_path / "b.toml").write_text('[model]\nbase = "a.toml"\n')
    with pytest.raises(ModelError, match="cycle: a.toml -> b.toml -> a.toml"):
        simsps.load_model(tmp_path / "a.toml")
    (tmp_path / "u.toml").write_text('[model]\nbase = "zn-treated"\nnmae = "x"\n')
    with pytest.raises(ModelError, match="unknown key model.nmae.*did you mean 'name'"):
        simsps.load_model(tmp_path / "u.toml")


def test_model_relative_base_resolved_from_another_directory(tmp_path, monkeypatch):
    sub = tmp_path / "deep"
    sub.mkdir()
    (sub / "base.toml").write_text(simsps.params.model.preset_path("pristine").read_text())
    (sub / "top.toml").write_text('[model]\nbase = "base.toml"\n')
    monkeypatch.chdir(tmp_path)  # base.toml is not here
    assert simsps.load_model("deep/top.toml").name == "pristine"


def test_set_takes_one_whole_value(tmp_path, capsys):
    out = str(tmp_path / "x.ptu")
    argv = ["simulate", "zn-treated", "--duration", "0.01", "--out", out]
    assert main(argv + ["--set", "detection.dark_cps=5\nbackground.rate_cps=2"]) == 2
    assert "line breaks" in capsys.readouterr().err
    assert main(argv + ["--set", "detection.dark_cps=5, background.rate_cps = 2"]) == 2
    key, value = simsps.params.model.parse_override('detection.dark_cps = 5 "x" = 3')
    with pytest.raises(ModelError, match="expected a number"):  # the whole text, refused
        simsps.load_model("zn-treated", {key: value})
    assert not (tmp_path / "x.ptu").exists()


def test_models_toml_prints_presets_only(capsys):
    for name in ("../pyproject", "../../etc/passwd", "/etc/hostname"):
        assert main(["models", "--toml", name]) == 2
        assert "unknown model" in capsys.readouterr().err
    assert main(["models", "--toml", "zn-treated"]) == 0


def test_iter_ptu_chunk_size_zero_is_refused(ptu):
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="chunk_records"):
            iter_ptu(ptu, chunk_records=bad)


# ---- writers: disk full, failed commits, stale temporaries, two writers ----------------


def test_photon_hdf5_writer_on_a_full_disk(tmp_path, sim, monkeypatch):
    """Injected: the disk has 1 MiB left. The writer stops with a clear error before HDF5
    meets ENOSPC (h5py swallowed it and crashed), removes its temporary, keeps the old
    file."""
    target = write(tmp_path / "old.h5", sim.take(np.arange(10)))
    before = target.read_bytes()
    import simsps.io._atomic as atomic

    class Full:
        f_bavail, f_frsize = 256, 4096

    monkeypatch.setattr(atomic.os, "statvfs", lambda p: Full())
    with pytest.raises(TTTRFileError, match="No space left on device"):
        write(target, simsps.simulate_chunks(simsps.load_model("zn-treated"), 0.5, seed=1))
    assert target.read_bytes() == before and _leftovers(tmp_path) == []


def test_ptu_writer_enospc_midway(tmp_path, sim, monkeypatch):
    import builtins

    import simsps.io.ptu as ptu_mod

    real_open = builtins.open

    class Filling:
        def __init__(self, fh):
            self.fh, self.n = fh, 0

        def write(self, b):
            self.n += len(b)
            if self.n > 20000:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.fh.write(b)

        def __getattr__(self, k):
            return getattr(self.fh, k)

    monkeypatch.setattr(ptu_mod, "open", lambda *a, **k: Filling(real_open(*a, **k)), raising=False)
    target = tmp_path / "full.ptu"
    with pytest.raises(TTTRFileError, match="full.ptu: cannot write: No space left"):
        write_ptu(target, sim)
    assert not target.exists() and _leftovers(tmp_path) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_real_full_disk_on_a_small_tmpfs(tmp_path, sim):
    """Where the test may mount one: a 1 MiB tmpfs really fills up."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        for name in ("big.ptu", "big.h5"):
            with pytest.raises(TTTRFileError, match="No space left"):
                write(mnt / name, simsps.simulate_chunks(simsps.load_model("zn-treated"), 30.0))
            assert _leftovers(mnt) == [] and not (mnt / name).exists()
    finally:
        subprocess.run(["umount", str(mnt)])


def test_failed_commit_onto_a_directory_leaves_nothing(tmp_path, sim):
    (tmp_path / "taken.ptu").mkdir()
    with pytest.raises(TTTRFileError, match="is a directory"):
        write_ptu(tmp_path / "taken.ptu", sim)
    assert _leftovers(tmp_path) == []
    # a directory that appears while the file is written: the rename fails, cleanly
    from simsps.io import PTUWriter

    w = PTUWriter(tmp_path / "late.ptu", sync_period_ps=400_000.0, resolution_ps=128.0)
    w.open()
    w.write(sim)
    (tmp_path / "late.ptu").mkdir()
    (tmp_path / "late.ptu" / "x").write_text("occupied")
    with pytest.raises(TTTRFileError, match="cannot put the finished file in place"):
        w.close()
    assert _leftovers(tmp_path) == []


def test_stale_temporaries_of_a_killed_writer_are_removed(tmp_path, sim):
    """A writer killed with SIGKILL leaves its temporary (nothing can run on SIGKILL); the
    next write to that target recognises it (its lock is free) and removes it."""
    target = tmp_path / "k.ptu"
    code = (
        "import simsps, os, signal\n"
        "from simsps.io import PTUWriter\n"
        f"w = PTUWriter({str(target)!r}, sync_period_ps=400000.0, resolution_ps=128.0)\n"
        "w.open()\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    r = subprocess.run([sys.executable, "-c", code])
    assert r.returncode == -signal.SIGKILL
    assert len(_leftovers(tmp_path)) >= 1
    write_ptu(target, sim)
    assert _leftovers(tmp_path) == [] and read(target).equal_records(sim)


def test_a_second_writer_to_the_same_target_is_refused(tmp_path, sim):
    from simsps.io import PTUWriter

    target = tmp_path / "two.ptu"
    first = PTUWriter(target, sync_period_ps=400_000.0, resolution_ps=128.0)
    first.open()
    with pytest.raises(TTTRFileError, match="another process is writing this file"):
        write_ptu(target, sim)
    first.write(sim)
    first.close()
    assert read(target).equal_records(sim) and _leftovers(tmp_path) == []
    # other kinds of file too
    with simsps.io._atomic.atomic_path(tmp_path / "r.json"):
        with pytest.raises(TTTRFileError, match="another process"):
            simsps.io._atomic.write_text_atomic(tmp_path / "r.json", "{}")


def test_concurrent_writer_processes_one_wins_the_other_says_so(tmp_path):
    target = tmp_path / "race.ptu"
    argv = [sys.executable, "-m", "simsps.apps.cli", "simulate", "zn-treated", "--duration"]
    argv += ["2", "--out", str(target), "--quiet"]
    procs = [subprocess.Popen(argv, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(rc for rc, _ in results)
    assert codes in ([0, 0], [0, 1]), results  # both ran one after the other, or one lost
    if codes == [0, 1]:
        assert any("another process is writing" in err for _, err in results)
    assert target.exists() and _leftovers(tmp_path) == []


# ---- runaway parameters ---------------------------------------------------------------


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--duration", "1e12"], "allowed (0, 1e+06] seconds"),
        (["--duration", "1e6", "--excitation", "cw"], "2^46 clock ticks"),
        (["--power", "1e9"], "allowed (0, 1000]"),
        (["--power", "1e400"], "must be positive"),
        (["--set", "detection.dark_cps=" + "9" * 400], "too large for a float"),
        (["--set", "bleaching.probability_per_excitation=1e400"], "out of range"),
    ],
)
def test_runaway_parameters_are_refused_up_front(tmp_path, args, needle, capsys):
    out = tmp_path / "x.ptu"
    argv = ["simulate", "zn-treated", "--duration", "1", "--out", str(out), *args]
    t0 = time.perf_counter()
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse's own check
        rc = e.code
    assert rc == 2 and needle in capsys.readouterr().err
    assert time.perf_counter() - t0 < 30 and not out.exists()


def test_longest_run_streams_with_bounded_memory_and_sigint_leaves_no_file(tmp_path):
    """1e6 s (the longest allowed) starts streaming at once with memory < 1 GiB; SIGINT
    ends it with exit 130 and no file; then SIGTERM with 143."""
    out = tmp_path / "long.ptu"
    argv = [sys.executable, "-m", "simsps.apps.cli", "simulate", "zn-treated"]
    argv += ["--duration", "1e6", "--out", str(out), "--quiet"]
    for sig, code in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
        p = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 120
        while time.time() < deadline and not any(".part" in x.name for x in tmp_path.iterdir()):
            time.sleep(0.2)
        time.sleep(3.0)  # streaming
        with open(f"/proc/{p.pid}/status") as fh:
            hwm = next(int(x.split()[1]) for x in fh if x.startswith("VmHWM"))
        p.send_signal(sig)
        assert p.wait(timeout=60) == code, p.stderr.read()
        assert hwm < 1 << 20, f"peak {hwm / 1024:.0f} MiB"  # kB
        assert not out.exists() and _leftovers(tmp_path) == []


@pytest.mark.parametrize("delay_s", [0.05, 0.4, 1.0, 1.5, 2.5])
def test_sigint_at_any_moment_exits_130_without_a_file(tmp_path, delay_s):
    """Before the output's commit: exit 130 (or, before the interpreter reached simsps,
    Python's own KeyboardInterrupt) and no file; from the commit on: the whole run, exit 0.
    Never a lost Ctrl-C with a file, never a half file."""
    out = tmp_path / "i.ptu"
    argv = [sys.executable, "-m", "simsps.apps.cli", "simulate", "zn-treated"]
    argv += ["--duration", "30", "--out", str(out), "--quiet"]
    p = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    time.sleep(delay_s)
    p.send_signal(signal.SIGINT)
    rc = p.wait(timeout=120)
    err = p.stderr.read()
    assert _leftovers(tmp_path) == []
    if rc == 0:  # the commit came first: a complete file
        assert read(out).duration_s == pytest.approx(30.0)
    else:
        assert rc in (130, -signal.SIGINT) or (rc == 1 and "KeyboardInterrupt" in err), err
        assert not out.exists()


# ---- analyze --------------------------------------------------------------------------


def test_analyze_fails_when_every_analysis_was_skipped(tmp_path, capsys):
    s = simsps.PhotonStream([1, 9], [3, 4], [0, 0], 400_000.0, 128.0, n_pulses=10)
    p = write_ptu(tmp_path / "two.ptu", s)
    assert main(["analyze", str(p), "--out", str(tmp_path / "r")]) == 1
    assert "every analysis" in capsys.readouterr().err


# ---- from the review of this change ---------------------------------------------------


def test_photon_hdf5_markers_declared_as_non_photon_ids_are_markers(tmp_path, sim):
    """phconvert writes a PicoQuant file's markers as detector 64 + bits and lists them in
    detectors_specs/non_photon_id1: they are read as markers, not refused, not photons."""
    import h5py

    p = write(tmp_path / "m.h5", sim)
    with h5py.File(p, "r+") as f:
        det = f["photon_data/detectors"]
        d = det[:]
        d[[5, 50]] = 65
        det[...] = d
        f["photon_data/measurement_specs/detectors_specs/non_photon_id1"] = np.array([65])
    r = read(p)
    keep = np.ones(len(sim), bool)
    keep[[5, 50]] = False
    assert len(r) == len(sim) - 2 and np.array_equal(r.channel, sim.channel[keep])
    assert r.markers is not None and r.markers.bits.tolist() == [1, 1]
    np.testing.assert_array_equal(r.markers.time_ps, sim.sync[[5, 50]] * 400_000)
    assert summarize(p)["markers"] == 2


def test_targets_with_glob_characters_and_similar_names(tmp_path, sim):
    from simsps.io import PTUWriter

    odd = tmp_path / "run[1].ptu"
    w = PTUWriter(odd, sync_period_ps=400_000.0, resolution_ps=128.0).open()
    with pytest.raises(TTTRFileError, match="another process is writing"):
        write_ptu(odd, sim)  # the brackets are a name, not a pattern
    write_ptu(tmp_path / "run[1].ptu.ptu", sim)  # another target: unaffected
    w.write(sim)
    w.close()
    assert read(odd).equal_records(sim) and _leftovers(tmp_path) == []


def test_main_called_from_python_restores_the_signal_handlers(tmp_path):
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    assert main(["simulate", "zn-treated", "--duration", "0.05", "--quiet", "--out",
                 str(tmp_path / "a.ptu")]) == 0  # fmt: skip
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    from simsps import _signals

    assert not _signals.interrupted() and not _signals.seen()


def test_failed_truth_run_keeps_the_old_data_file(tmp_path, monkeypatch):
    """--truth: the sidecar is committed first and the data file last; a failure before the
    data file's commit leaves the old data file and no new truth file."""
    out, truth = tmp_path / "d.ptu", tmp_path / "d.npz"
    out.write_bytes(b"old data")
    import simsps.io.ptu as ptu_mod

    def fail(self):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(ptu_mod.PTUWriter, "_finish", fail)
    argv = ["simulate", "zn-treated", "--duration", "0.05", "--quiet", "--out", str(out)]
    assert main(argv + ["--truth", str(truth)]) == 1
    assert out.read_bytes() == b"old data" and not truth.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.ptu"]
