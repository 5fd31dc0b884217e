"""Damaged inputs for the hardening tests: valid small files of every kind simsps reads,
and hypothesis strategies that damage them the ways a disk, a transfer or a hostile user
does (bytes changed, cut, grown; PTU header values replaced by 0, -1, huge, NaN, inf; tag
types confused; Photon-HDF5 datasets removed, retyped, reshaped, unsorted)."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import numpy as np

import simsps
from simsps.io import write, write_ptu
from simsps.io.ptu_header import _TAG, TagType

DATA = Path(__file__).parent / "data" / "picoquant"
_VARIABLE = (TagType.FLOAT8_ARRAY, TagType.ANSI_STRING, TagType.WIDE_STRING, TagType.BINARY_BLOB)
KINDS = sorted(v for k, v in vars(TagType).items() if k.isupper())
INTS = [0, -1, 1, 3, 2**31, 2**32 + 5, 2**40, 2**62, 2**63 - 1, -(2**63)]
FLOATS = [0.0, -1.0, float("nan"), float("inf"), -float("inf"), 1e-300, 1e300, 5e-13, 1e-30, 4e-7]


def seed_files(directory: Path) -> dict[str, bytes]:
    """The bytes of valid files: simsps's PTU of each kind (T3 pulsed, T2 CW), Photon-HDF5
    (T3 with truth, T2), and the real PicoQuant files of ``tests/data``."""
    directory.mkdir(parents=True, exist_ok=True)
    m = simsps.load_model("zn-treated")
    s = simsps.simulate(m, 0.02, 1.0, 1)
    cw = simsps.simulate(m.replace({"excitation.mode": "cw"}), 0.001, 1.0, 1)
    paths = {}
    for fmt in ("picoharp-t3", "hydraharp-t3"):
        paths[f"{fmt}.ptu"] = write_ptu(directory / f"{fmt}.ptu", s, fmt)
    for fmt in ("picoharp-t2", "hydraharp-t2"):
        paths[f"{fmt}.ptu"] = write_ptu(directory / f"{fmt}.ptu", cw, fmt)
    paths["t3.h5"] = write(directory / "t3.h5", s)
    paths["t2.h5"] = write(directory / "t2.h5", cw)
    for f in ("picoharp_v30_t2.ptu", "hydraharp_v20_t3.ptu", "hydraharp_v20.ht3"):
        paths[f] = Path(shutil.copy(DATA / f, directory / f))
    out = {k: Path(v).read_bytes() for k, v in paths.items()}
    for k in ("picoharp_v30_t2.ptu", "hydraharp_v20_t3.ptu"):  # their first records only
        out[k] = _first_records(out[k], 3000)
    return out


def _first_records(raw: bytes, n: int) -> bytes:
    """A real PTU file cut to its first ``n`` records, its record count patched."""
    tags = ptu_tags(raw)
    end = tags[-1][0] + 48
    raw = bytearray(raw[: end + 4 * n])
    for pos, name, _ in tags:
        if name == "TTResult_NumberOfRecords":
            raw[pos + 40 : pos + 48] = struct.pack("<q", (len(raw) - end) // 4)
    return bytes(raw)


def ptu_tags(raw: bytes) -> list[tuple[int, str, int]]:
    """(offset, name, type code) of each tag of a PTU header."""
    out, pos = [], 16
    while pos + 48 <= len(raw):
        name, _, kind, value = _TAG.unpack(raw[pos : pos + 48])
        n = name.split(b"\0")[0].decode("ascii", "replace")
        out.append((pos, n, kind))
        pos += 48 + (struct.unpack("<q", value)[0] if kind in _VARIABLE else 0)
        if n == "Header_End":
            break
    return out


def damage_bytes(raw: bytes, gen: np.random.Generator) -> bytes:
    """Bytes changed, cut or grown (hypothesis draws ``gen``'s seed: short reports)."""
    raw = bytearray(raw)
    how = gen.choice(["flip", "cut", "grow", "flip+cut"])
    if "flip" in how:
        for _ in range(gen.integers(1, 9)):
            raw[gen.integers(0, len(raw))] = gen.integers(0, 256)
    if "cut" in how:
        raw = raw[: gen.integers(0, len(raw) + 1)]
    if how == "grow":
        raw += gen.integers(0, 256, gen.integers(1, 65), dtype=np.uint8).tobytes()
    return bytes(raw)


def damage_ptu_header(raw: bytes, gen: np.random.Generator) -> bytes:
    """One or two header tags given a hostile value or type."""
    raw = bytearray(raw)
    tags = ptu_tags(bytes(raw))
    for _ in range(gen.integers(1, 3)):
        pos, _, _ = tags[gen.integers(0, len(tags))]
        how = gen.choice(["int", "float", "type"])
        if how == "int":
            raw[pos + 40 : pos + 48] = struct.pack("<q", INTS[gen.integers(0, len(INTS))])
        elif how == "float":
            raw[pos + 40 : pos + 48] = struct.pack("<d", FLOATS[gen.integers(0, len(FLOATS))])
        else:
            raw[pos + 36 : pos + 40] = struct.pack("<I", KINDS[gen.integers(0, len(KINDS))])
    return bytes(raw)


HDF5_EDITS = ("delete", "retype", "reshape", "unsort", "value", "attr")


def damage_hdf5(path: Path, edit: str, target: str, gen: np.random.Generator) -> None:
    """Change the Photon-HDF5 file at ``path`` in place (h5py), the way ``edit`` says, at
    the dataset ``target`` (a path inside the file)."""
    import h5py

    with h5py.File(path, "r+") as f:
        if target not in f:
            return
        obj = f[target]
        if edit == "delete":
            del f[target]
        elif edit == "attr":
            f.attrs["format_version"] = b"9.9"
        elif not isinstance(obj, h5py.Dataset):
            del f[target]
        elif edit == "retype":
            data = np.asarray(obj[()])
            del f[target]
            try:
                with np.errstate(all="ignore"):
                    f[target] = data.astype(gen.choice(["f8", "S4", "i1", "u8"]))
            except (ValueError, OverflowError, TypeError):
                f[target] = data.astype("S8")
        elif edit == "reshape":
            data = np.asarray(obj[()])
            del f[target]
            f[target] = np.repeat(data.reshape(-1)[:1], 3).reshape(3, 1) if data.size else 1
        elif edit == "unsort":
            data = np.asarray(obj[()])
            if data.ndim == 1 and len(data) > 2:
                obj[...] = data[gen.permutation(len(data))]
        else:
            data = np.asarray(obj[()])
            value = gen.choice([0, -1, 255, 2**62, np.nan, np.inf, 1e300])
            del f[target]
            try:
                with np.errstate(all="ignore"):
                    f[target] = np.full(data.shape, value).astype(data.dtype)
            except (ValueError, OverflowError, TypeError):
                f[target] = np.full(data.shape, value)


HDF5_TARGETS = (
    "photon_data/timestamps",
    "photon_data/detectors",
    "photon_data/nanotimes",
    "photon_data/timestamps_specs/timestamps_unit",
    "photon_data/nanotimes_specs/tcspc_unit",
    "photon_data/measurement_specs/laser_repetition_rate",
    "photon_data/measurement_specs",
    "acquisition_duration",
    "user/simsps/n_pulses",
    "user/simsps/duration_ps",
    "user/simsps_truth/source",
    "user/simsps_truth/bleach_time_s",
    "photon_data",
)
