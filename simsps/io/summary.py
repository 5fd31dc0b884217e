"""What ``simsps info`` prints: header facts and photon counts of a PTU or Photon-HDF5 file,
read chunk by chunk so files larger than memory are fine."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import TTTRFileError
from .legacy import IDENTS, _iter_legacy, legacy_info
from .photon_hdf5 import non_photon_ids, sync_of, t2_unit, time_base, user_meta
from .ptu import _iter_records, ptu_info
from .records import BY_CODE
from .validate import MAX_DURATION_S, check_channels, check_duration, guarded, regular_file

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_CHUNK = 1 << 22


@guarded
def file_kind(path) -> str:
    """``"ptu"``, ``"legacy"`` or ``"photon-hdf5"`` from the first bytes of the file."""
    path = Path(path)
    regular_file(path)
    try:
        with open(path, "rb") as fh:
            magic = fh.read(8)
    except OSError as e:
        raise TTTRFileError(path, f"cannot read: {e.strerror}") from None
    if magic.startswith(b"PQTTTR"):
        return "ptu"
    if magic == _HDF5_MAGIC:
        return "photon-hdf5"
    with open(path, "rb") as fh:
        ident = fh.read(16)
    if any(ident.startswith(i) for i in IDENTS):
        return "legacy"
    raise TTTRFileError(
        path,
        f"unknown file kind (starts with {magic!r}); simsps reads PTU, Photon-HDF5 and "
        "PicoQuant's older .pt2/.pt3/.ht2/.ht3 files",
    )


@guarded
def summarize(path, progress: bool = False) -> dict:
    """Header facts, photons per channel, duration and count rate of a TTTR file."""
    kind = file_kind(path)
    if kind == "ptu":
        out = _ptu(path, progress)
    elif kind == "legacy":
        out = _legacy(path, progress)
    else:
        out = _hdf5(path, progress)
    counts = out["photons_per_channel"]
    dur = out["duration_s"]
    total = sum(counts.values())
    out["photons"] = total
    out["count_rate_cps"] = total / dur if dur > 0 else float("nan")
    out["count_rate_per_channel_cps"] = {
        c: n / dur if dur > 0 else float("nan") for c, n in counts.items()
    }
    return out


def _bar(progress: bool, total: int, desc: str):
    from tqdm.auto import tqdm

    # shown only for work that lasts more than a second
    return tqdm(
        total=total,
        unit="rec",
        unit_scale=True,
        desc=desc,
        delay=1.0,
        leave=False,
        disable=not progress,
    )


def _add(counts: np.ndarray, channel: np.ndarray, path=None) -> np.ndarray:
    check_channels(path, channel, "detector")
    c = np.bincount(channel, minlength=len(counts)) if len(channel) else np.zeros(0, np.int64)
    n = max(len(c), len(counts))
    return np.pad(counts, (0, n - len(counts))) + np.pad(c, (0, n - len(c)))


def _ptu(path, progress: bool) -> dict:
    info = ptu_info(path)
    t = info.tags
    counts = np.zeros(0, np.int64)
    first = last = None
    n_pulses = None
    markers = 0
    duration = 0.0
    t2 = info.mode == "T2"
    with _bar(progress, info.n_records, "reading") as bar:
        for chunk in _iter_records(info, _CHUNK):
            counts = _add(counts, chunk.channel)
            markers += 0 if chunk.markers is None else len(chunk.markers)
            if len(chunk):  # T3: sync indices; T2: times (ps)
                x = chunk.time_ps if t2 else chunk.sync
                first = int(x[0]) if first is None else first
                last = int(x[-1])
            n_pulses = chunk.n_pulses
            duration = chunk.duration_s
            bar.update(min(_CHUNK, bar.total - bar.n))
    if not t2:
        duration = (n_pulses or 0) * info.sync_period_ps * 1e-12
    extra = (
        {"mode": "T2", "first_time_ps": first, "last_time_ps": last}
        if t2
        else {"mode": "T3", "first_sync": first, "last_sync": last}
    )
    return {
        "file": str(path),
        "kind": "PTU",
        "record_type": f"{info.record_type:#010x} ({BY_CODE[info.record_type].name})",
        "hardware": t.get("HW_Type"),
        "creator": " ".join(str(t[k]) for k in ("CreatorSW_Name", "CreatorSW_Version") if t.get(k))
        or None,
        "created": str(t.get("File_CreatingTime")) if t.get("File_CreatingTime") else None,
        "records": info.n_records,
        "sync_rate_hz": None if info.sync_period_ps is None else 1e12 / info.sync_period_ps,
        "resolution_ps": info.resolution_ps,
        "photons_per_channel": {int(c): int(n) for c, n in enumerate(counts) if n},
        "markers": markers,
        **extra,
        "duration_s": duration,
        "simsps": {
            k[len("simsps_") :]: v
            for k, v in t.items()
            if k.startswith("simsps_") and k != "simsps_ModelToml"
        },
    }


def _legacy(path, progress: bool) -> dict:
    info = legacy_info(path)
    counts = np.zeros(0, np.int64)
    markers = 0
    duration = 0.0
    with _bar(progress, info.n_records, "reading") as bar:
        for chunk in _iter_legacy(info, _CHUNK):
            counts = _add(counts, chunk.channel)
            markers += 0 if chunk.markers is None else len(chunk.markers)
            duration = chunk.duration_s
            bar.update(min(_CHUNK, bar.total - bar.n))
    return {
        "file": str(path),
        "kind": f"{info.ident} .{'pt' if 'Pico' in info.ident else 'ht'}{info.mode[1]} "
        f"(file format {info.version})",
        "record_type": f"{info.record_type:#010x} ({BY_CODE[info.record_type].name})",
        "hardware": info.ident,
        "records": info.n_records,
        "mode": info.mode,
        "sync_rate_hz": None if info.sync_period_ps is None else 1e12 / info.sync_period_ps,
        "resolution_ps": info.resolution_ps,
        "photons_per_channel": {int(c): int(n) for c, n in enumerate(counts) if n},
        "markers": markers,
        "duration_s": duration,
        "simsps": {},
    }


def _hdf5(path, progress: bool) -> dict:
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise TTTRFileError(path, f"not a readable HDF5 file ({e})") from None
    with f:
        try:
            pd = f["photon_data"]
            ts, det = pd["timestamps"], pd["detectors"]
            t2 = "nanotimes" not in pd  # T2: absolute time tags, no laser sync
            if t2:
                unit = t2_unit(pd, path)
                tcspc, rate, nano = unit, None, None
            else:
                unit, tcspc, rate = time_base(pd, path)
                nano = pd["nanotimes"]
        except KeyError as e:
            raise TTTRFileError(path, f"not a Photon-HDF5 file: missing {e.args[0]}") from None
        n = ts.shape[0]
        counts = np.zeros(0, np.int64)
        not_photons = non_photon_ids(pd)
        markers = 0
        with _bar(progress, n, "reading") as bar:
            for i in range(0, n, _CHUNK):
                d = det[i : i + _CHUNK]
                m = np.isin(d, not_photons)
                markers += int(m.sum())
                counts = _add(counts, d[~m], path)
                bar.update(min(_CHUNK, n - i))
        last = float(ts[-1]) * unit if n else 0.0
        check_duration(path, last)
        duration = float(f["acquisition_duration"][()]) if "acquisition_duration" in f else last
        if not last <= duration <= MAX_DURATION_S:
            duration = last  # a recorded duration the photons contradict
        ident = f.get("identity")
        software = None
        if ident is not None and "software" in ident:
            software = ident["software"][()].decode()
            if "software_version" in ident:
                software += " " + ident["software_version"][()].decode()
        return {
            "file": str(path),
            "kind": "Photon-HDF5",
            "format_version": f.attrs.get("format_version", b"").decode() or None,
            "creator": software,
            "records": int(n),
            "sync_rate_hz": rate,
            "resolution_ps": round(tcspc * 1e12, 6),
            "timestamps_unit_s": unit,
            "photons_per_channel": {int(c): int(k) for c, k in enumerate(counts) if k},
            "markers": markers,
            **(
                {
                    "mode": "T2",
                    "first_time_ps": int(round(float(ts[0]) * unit * 1e12)) if n else None,
                    "last_time_ps": int(round(float(ts[-1]) * unit * 1e12)) if n else None,
                }
                if t2
                else {
                    "mode": "T3",
                    "first_sync": int(sync_of(ts[:1], nano[:1], unit, tcspc, rate)[0])
                    if n
                    else None,
                    "last_sync": int(sync_of(ts[-1:], nano[-1:], unit, tcspc, rate)[0])
                    if n
                    else None,
                }
            ),
            "duration_s": duration,
            "simsps": user_meta(f, skip=("model_toml",)),
        }
