"""The fuzz campaign: damaged PTU, legacy and Photon-HDF5 files and hostile model TOML, each
either read correctly or refused with the one documented error (TTTRFileError naming the
file; ModelError for models), within a time and a memory bound. The default run tries a
few hundred cases; the slow test at least 10,000 (``SIMSPS_FUZZ_N``)."""

from __future__ import annotations

import os
import time
import tracemalloc
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simsps
from simsps.io import TTTRFileError, TTTRFileWarning, iter_ptu, read
from simsps.io.summary import summarize
from simsps.params.model import ModelError

from .fuzzing import (
    HDF5_EDITS,
    HDF5_TARGETS,
    damage_bytes,
    damage_hdf5,
    damage_ptu_header,
    seed_files,
)

TIME_S = 10.0  # per case and reader, on the CI machine
MEMORY = 256 << 20  # bytes any reader may hold for these small files
SLOW_N = int(os.environ.get("SIMSPS_FUZZ_N", "10000"))
COUNT = {"cases": 0}


class _Seeds(dict):
    def __repr__(self) -> str:  # hypothesis prints its arguments
        return f"<{len(self)} seed files>"


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    return _Seeds(seed_files(tmp_path_factory.mktemp("seeds")))


def _readers(path):
    yield "read", lambda: read(path)
    yield "info", lambda: summarize(path)
    if path.suffix == ".ptu":
        yield "iter_ptu", lambda: sum(len(c) for c in iter_ptu(path, chunk_records=97))


def check_file(path) -> None:
    """Every reader of ``path`` returns or raises TTTRFileError naming the file, within
    TIME_S and MEMORY."""
    COUNT["cases"] += 1
    for name, fn in _readers(path):
        tracemalloc.start()
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", TTTRFileWarning)
                out = fn()
        except TTTRFileError as e:
            assert path.name in str(e), (name, str(e))
        else:
            if name == "read":
                assert isinstance(out, simsps.PhotonStream)
                assert out.duration_s <= simsps.stream.MAX_DURATION_S, out.duration_s
                assert len(out) == 0 or int(out.channel.max()) <= 63
        finally:
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        took = time.perf_counter() - t0
        assert took < TIME_S, f"{name} took {took:.1f} s"
        assert peak < MEMORY, f"{name} held {peak / 2**20:.0f} MiB"


def _kinds(seeds, ptu_only=False):
    return sorted(k for k in seeds if not ptu_only or k.endswith(".ptu"))


def _bytes_case(seeds, tmp_path, data):
    key = data.draw(st.sampled_from(_kinds(seeds)))
    raw = damage_bytes(seeds[key], np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))))
    p = tmp_path / f"case{os.path.splitext(key)[1]}"
    p.write_bytes(raw)
    check_file(p)


def _header_case(seeds, tmp_path, data):
    key = data.draw(st.sampled_from(_kinds(seeds, ptu_only=True)))
    gen = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    raw = damage_ptu_header(seeds[key], gen)
    p = tmp_path / "case.ptu"
    p.write_bytes(raw)
    check_file(p)


def _hdf5_case(seeds, tmp_path, data):
    key = data.draw(st.sampled_from(["t3.h5", "t2.h5"]))
    p = tmp_path / "case.h5"
    p.write_bytes(seeds[key])
    gen = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    for _ in range(data.draw(st.integers(1, 3))):
        edit = data.draw(st.sampled_from(HDF5_EDITS))
        damage_hdf5(p, edit, data.draw(st.sampled_from(HDF5_TARGETS)), gen)
    check_file(p)


_TOML_VALUES = st.sampled_from(
    ["0", "-1", "1e400", "nan", "inf", "-inf", "10" * 200, '"x"', "true", "[1, 2]", "{a = 1}",
     "2.5", "1e-300", '"pulsed"', '"cw"', '"power_law"', "3"]
)  # fmt: skip


def _toml_case(tmp_path, data):
    COUNT["cases"] += 1
    text = simsps.params.model.preset_path("zn-treated").read_text().splitlines()
    for _ in range(data.draw(st.integers(1, 4))):
        keyed = [i for i, x in enumerate(text) if "=" in x and not x.lstrip().startswith("#")]
        how = data.draw(st.sampled_from(["value", "drop", "unknown", "base", "section"]))
        if how == "value" and keyed:
            i = data.draw(st.sampled_from(keyed))
            text[i] = text[i].split("=")[0] + "= " + data.draw(_TOML_VALUES)
        elif how == "drop" and keyed:
            del text[data.draw(st.sampled_from(keyed))]
        elif how == "unknown":
            text.append(f"frobnicate_{data.draw(st.integers(0, 9))} = 1")
        elif how == "base":
            target = data.draw(st.sampled_from(["case.toml", "nope.toml", "zn-treated", "../x"]))
            at = text.index("[model]") + 1 if "[model]" in text else 0
            text.insert(at, f'base = "{target}"' if at else f'[model]\nbase = "{target}"')
        else:
            text.insert(data.draw(st.integers(0, len(text))), "[" + data.draw(st.text(max_size=8)))
    p = tmp_path / "case.toml"
    p.write_text("\n".join(text), encoding="utf-8", errors="replace")
    t0 = time.perf_counter()
    try:
        m = simsps.load_model(p)
    except ModelError:
        pass
    else:
        assert isinstance(m, simsps.params.model.Model)
    assert time.perf_counter() - t0 < TIME_S


_FAST = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@_FAST
@given(data=st.data())
def test_damaged_bytes_of_every_file_kind(seeds, tmp_path, data):
    _bytes_case(seeds, tmp_path, data)


@_FAST
@given(data=st.data())
def test_hostile_ptu_header_values_and_types(seeds, tmp_path, data):
    _header_case(seeds, tmp_path, data)


@settings(_FAST, max_examples=30)
@given(data=st.data())
def test_damaged_photon_hdf5_structure(seeds, tmp_path, data):
    _hdf5_case(seeds, tmp_path, data)


@settings(_FAST, max_examples=60)
@given(data=st.data())
def test_hostile_model_toml(tmp_path, data):
    _toml_case(tmp_path, data)


@pytest.mark.slow
def test_fuzz_campaign_ten_thousand_cases(seeds, tmp_path):
    """>= SLOW_N cases over the four strategies: 0 crashes, 0 hangs, 0 undocumented
    exceptions (each case asserts it)."""
    start = COUNT["cases"]
    share = {"bytes": 0.3, "header": 0.3, "hdf5": 0.25, "toml": 0.15}
    cases = {
        "bytes": lambda d: _bytes_case(seeds, tmp_path, d),
        "header": lambda d: _header_case(seeds, tmp_path, d),
        "hdf5": lambda d: _hdf5_case(seeds, tmp_path, d),
        "toml": lambda d: _toml_case(tmp_path, d),
    }

    def campaign(fn, n):
        @settings(_FAST, max_examples=n)
        @given(data=st.data())
        def run(data):
            fn(data)

        run()

    for name, frac in share.items():
        campaign(cases[name], int(np.ceil(SLOW_N * frac)))
    assert COUNT["cases"] - start >= SLOW_N


@settings(_FAST, max_examples=15)
@given(data=st.data())
def test_analyze_on_damaged_files_exits_cleanly(seeds, tmp_path, data):
    """``simsps analyze`` on a damaged file: exit 0 (what could be analysed) or 1 (named
    error), never a traceback, within the time bound."""
    from simsps.apps.cli import main

    key = data.draw(
        st.sampled_from([k for k in _kinds(seeds) if k.startswith(("pico", "hydra", "t"))])
    )
    key = key if not key.startswith("hydraharp_v20") else "hydraharp-t3.ptu"  # real: slow
    gen = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    damage = damage_ptu_header if key.endswith(".ptu") and gen.random() < 0.5 else damage_bytes
    p = tmp_path / f"case{os.path.splitext(key)[1]}"
    p.write_bytes(damage(seeds[key], gen))
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main(["analyze", str(p), "--out", str(tmp_path / "report"), "--tau-max", "0.005"])
    assert rc in (0, 1)
    assert time.perf_counter() - t0 < 60
