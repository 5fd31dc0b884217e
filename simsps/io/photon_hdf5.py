"""Photon-HDF5 files (photon-hdf5.readthedocs.io) through ``phconvert``, validated on write.

One ``photon_data`` group: ``timestamps`` (int64), ``detectors`` and, for a T3 stream,
``nanotimes``; setup of a two-detector HBT. T3: timestamps count laser periods (the sync
index; ``timestamps_unit`` = the period, the convention of PicoQuant converters), nanotimes
the microtime bins (``tcspc_unit`` = the bin), so any repetition rate and bin width fit;
the laser's rate goes in ``laser_repetition_rate``. T2: timestamps are the detection times
in units of the stream's time-tag unit, no nanotimes (``lifetime`` false). Files simsps wrote
before (timestamps counted in microtime bins) are still read. The photon arrays are
gzip-compressed. Ground truth goes under ``user/simsps_truth`` where analysis programs ignore
it; provenance (simsps version, model TOML, seed, power, duration; numbers as numbers) under
``identity`` and ``user/simsps`` (Photon-HDF5's ``provenance`` group describes an original
file converted, which there is not). ``identity/filename`` is the file's final name.
"""

from __future__ import annotations

import contextlib
import io
import re
import threading
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..stream import Markers, PhotonStream, Truth, hbt_arms
from . import validate
from ._atomic import CommitOnExit, Staging, aborting, check_free_space, write_errors
from .errors import TTTRFileError, TTTRFileWarning
from .validate import (
    MAX_DURATION_S,
    check_channels,
    check_duration,
    check_memory,
    guarded,
    regular_file,
)

# phconvert writes and validates through PyTables (not thread-safe) with its progress
# printed to a redirected sys.stdout (process-wide): writers in several threads (a sweep's
# dataset factory) take their turn
_PHCONVERT = threading.Lock()

__all__ = ["PhotonHDF5Writer", "write_photon_hdf5", "read_photon_hdf5"]


_PHOTON_FIELDS = ("timestamps", "detectors", "nanotimes")
_MARGIN = 4 << 20  # bytes kept free for HDF5's metadata and the validation's flush
_TRUTH_FIELDS = ("source", "state", "emitter", "emission_delay_ps", "arrival_ps")


class PhotonHDF5Writer(CommitOnExit):
    """Write a Photon-HDF5 file chunk by chunk, validated, under its name only when closed.

    ``phconvert.hdf5.save_photon_hdf5`` writes and validates the layout (with the first
    chunk's metadata and no photons); its photon arrays are then made extendible and every
    chunk is appended with h5py, so memory holds one chunk at a time. ``close`` patches the
    acquisition duration, validates the finished file with phconvert and renames it.
    """

    def __init__(self, path, *, meta: dict | None = None):
        self.path = Path(path)
        self.meta = dict(meta or {})
        self.n_pulses = 0
        self.n_photons = 0
        self.duration_s = 0.0
        self._n_bins = 0
        self._tmp = None
        self._stage = None
        self._h5 = None
        self._first = True
        self._time_base = None
        self._truth = None
        self._counts = np.zeros(0, np.int64)

    def write(self, stream: PhotonStream) -> None:
        with write_errors(self.path):  # the temporary goes on abort
            self._write(stream)

    def _write(self, stream: PhotonStream) -> None:
        base = (stream.mode, stream.sync_period_ps, stream.resolution_ps)
        if self._time_base is None:
            self._time_base = base
            self._create(stream.take(slice(0, 0)))  # layout only: phconvert compresses slowly
        elif base != self._time_base:
            raise ValueError("chunk has a different time base from the file")
        if len(stream):
            self._append(stream)
        if stream.is_t2:
            self.duration_s = max(self.duration_s, stream.duration_s)
        elif stream.n_pulses is not None:
            self.n_pulses = max(self.n_pulses, int(stream.n_pulses))
        if len(stream) and not stream.is_t2:
            self.n_pulses = max(self.n_pulses, int(stream.sync[-1]) + 1)
            self._n_bins = max(self._n_bins, int(stream.dtime.max()) + 1)
        self.n_photons += len(stream)
        if len(stream):
            c = np.bincount(stream.channel)
            n = max(len(c), len(self._counts))
            self._counts = np.pad(self._counts, (0, n - len(self._counts))) + np.pad(
                c, (0, n - len(c))
            )

    def _timestamps(self, stream: PhotonStream) -> np.ndarray:
        if stream.is_t2:  # detection times in tag units
            unit = stream.resolution_ps
            t = stream.time_ps
            return (
                t // int(unit) if float(unit).is_integer() else np.round(t / unit).astype(np.int64)
            )
        return stream.sync  # laser periods

    def _create(self, stream: PhotonStream) -> None:
        import h5py
        import phconvert

        from .. import __version__

        meta = {**stream.meta, **self.meta}
        self.meta = meta
        self._last = -1
        t2 = stream.is_t2
        period = stream.sync_period_ps
        rate = None if period is None else 1e12 / period
        if t2:
            self._n_bins = 0
            photon_data = dict(
                timestamps=self._timestamps(stream),
                timestamps_specs=dict(timestamps_unit=stream.resolution_ps * 1e-12),
                detectors=stream.channel.astype(np.uint8),
                measurement_specs=dict(
                    measurement_type="generic",
                    detectors_specs=_hbt_arms(meta),
                ),
            )
            if rate is not None:
                photon_data["measurement_specs"]["laser_repetition_rate"] = rate
        else:
            self._n_bins = max(int(np.ceil(period / stream.resolution_ps - 1e-9)), 1)
            self._nano_dtype = np.uint16 if self._n_bins <= 65536 else np.uint32
            photon_data = dict(
                timestamps=self._timestamps(stream),
                timestamps_specs=dict(timestamps_unit=period * 1e-12),
                detectors=stream.channel.astype(np.uint8),
                nanotimes=stream.dtime.astype(self._nano_dtype),
                nanotimes_specs=dict(
                    tcspc_unit=stream.resolution_ps * 1e-12,
                    tcspc_num_bins=self._n_bins,
                    tcspc_range=self._n_bins * stream.resolution_ps * 1e-12,
                ),
                measurement_specs=dict(
                    measurement_type="generic",
                    laser_repetition_rate=rate,
                    detectors_specs=_hbt_arms(meta),
                ),
            )
        user = {"simsps": {k: _h5_value(v) for k, v in meta.items() if k != "ptu_tags"}}
        user["simsps"]["mode"] = stream.mode
        user["simsps"]["n_pulses"] = -1  # patched on close (T3)
        user["simsps"]["duration_ps"] = -1  # patched on close
        self._truth = stream.truth is not None
        if self._truth:
            t = stream.truth
            user["simsps_truth"] = {k: getattr(t, k) for k in _TRUTH_FIELDS}
            user["simsps_truth"]["bleach_time_s"] = t.bleach_time_s
        cw = rate is None
        data = dict(
            _filename=str(self.path),
            acquisition_duration=float(stream.duration_s),  # patched on close
            description=f"simsps synthetic {'T2' if t2 else 'TCSPC'} stream of model "
            f"{meta.get('model', '?')}, seed {meta.get('seed', '?')}, power "
            f"{meta.get('power', '?')} Psat",
            photon_data=photon_data,
            setup=dict(
                num_pixels=2,
                num_spots=1,
                num_spectral_ch=1,
                num_polarization_ch=1,
                num_split_ch=2,
                modulated_excitation=False,
                lifetime=not t2,
                excitation_alternated=[False],
                excitation_wavelengths=[float(meta.get("wavelength_nm", 405.0)) * 1e-9],
                excitation_cw=[cw],
                detection_wavelengths=[512e-9],
            ),
            identity=dict(
                author="simsps",
                author_affiliation="simsps synthetic data",
                software="simsps",
                software_version=__version__,
            ),
            user=user,
        )
        if not cw:
            data["setup"]["laser_repetition_rates"] = [rate]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._stage = Staging(self.path)
        tmp = self._tmp = self._stage.create()
        check_free_space(tmp, _MARGIN)
        with _PHCONVERT, contextlib.redirect_stdout(io.StringIO()):  # it prints progress
            phconvert.hdf5.save_photon_hdf5(
                data, h5_fname=tmp, overwrite=True, validate=True, warnings=False, close=True
            )
        self._h5 = h5py.File(tmp, "r+")
        # explicit dtypes: phconvert stores an empty first chunk as uint8
        dtypes = {"timestamps": np.int64, "detectors": np.uint8}
        if not t2:
            dtypes["nanotimes"] = self._nano_dtype
        for name, dtype in dtypes.items():
            _make_extendible(self._h5["photon_data"], name, dtype)
        if self._truth:
            for name in _TRUTH_FIELDS:
                _make_extendible(self._h5["user/simsps_truth"], name, getattr(t, name).dtype)

    def _append(self, stream: PhotonStream) -> None:
        # HDF5 does not survive a full disk (h5py swallowed ENOSPC, then crashed on close):
        # refuse a chunk the disk cannot take, uncompressed, with room for the metadata
        per_photon = 11 + (27 if self._truth else 0)
        check_free_space(self._tmp, len(stream) * per_photon + _MARGIN)
        ts = self._timestamps(stream)
        if int(ts[0]) < self._last:
            raise ValueError("photons must be written in time order (times not increasing)")
        if (stream.truth is not None) != self._truth:
            raise ValueError("every chunk must carry ground truth, or none")
        cols = {"timestamps": ts, "detectors": stream.channel}
        if not stream.is_t2:
            if self._nano_dtype is np.uint16 and int(stream.dtime.max()) > 65535:
                raise ValueError("microtime bin does not fit the file's 16-bit nanotimes")
            cols["nanotimes"] = stream.dtime
        _extend(self._h5["photon_data"], cols)
        self._last = int(ts[-1])
        if self._truth:
            t = stream.truth
            _extend(self._h5["user/simsps_truth"], {k: getattr(t, k) for k in _TRUTH_FIELDS})
            g = self._h5["user/simsps_truth"]
            del g["bleach_time_s"]
            g["bleach_time_s"] = t.bleach_time_s

    def close(self) -> Path:
        import phconvert

        if self._h5 is None:
            if self._time_base is None:
                raise ValueError("nothing to write: no chunks")
            return self.path
        with aborting(self):
            f = self._h5
            mode, period, res = self._time_base
            if mode == "T2":
                duration = self.duration_s
            else:
                duration = self.n_pulses * period * 1e-12
                ns = f["photon_data/nanotimes_specs"]  # a card's range may exceed the period
                ns["tcspc_num_bins"][()] = self._n_bins
                ns["tcspc_range"][()] = self._n_bins * res * 1e-12
            f["acquisition_duration"][()] = duration
            ids = np.flatnonzero(self._counts)  # the detectors seen, with their counts
            det = f["setup/detectors"]
            for name, values in (
                ("id", ids.astype(np.uint8)),
                ("id_hardware", ids.astype(np.uint8)),
                ("counts", self._counts[ids]),
            ):
                if name in det:
                    _replace(det, name, values)
            g = f["user/simsps"]
            _replace(g, "n_pulses", np.int64(self.n_pulses if mode == "T3" else -1))
            _replace(g, "duration_ps", np.int64(round(duration * 1e12)))
            ident = f["identity"]  # phconvert named the temporary file
            for name, value in (("filename", self.path.name), ("filename_full", self.path)):
                if name in ident:
                    _replace(ident, name, np.bytes_(str(value)))
            check_free_space(self._tmp, _MARGIN)
            f.flush()
            f.close()
            self._h5 = None
            import tables

            with (
                _PHCONVERT,
                tables.open_file(str(self._tmp), "r") as h5,
                contextlib.redirect_stdout(io.StringIO()),
            ):
                phconvert.hdf5.assert_valid_photon_hdf5(h5, warnings=False)
            return self._stage.commit()

    def abort(self) -> None:
        if self._h5 is not None:
            with contextlib.suppress(Exception):
                self._h5.close()
            self._h5 = None
        if self._stage is not None:
            self._stage.abort()


def _hbt_arms(meta: dict) -> dict:
    """The detectors of the HBT's two arms (``detectors`` in the stream's meta, default 2:
    channels 0 .. n/2 - 1 and n/2 .. n - 1, as :mod:`simsps.sim.kernel` routes them)."""
    a, b = hbt_arms(meta.get("detectors", 2))
    return dict(split_ch1=np.array(a, np.uint8), split_ch2=np.array(b, np.uint8))


def _make_extendible(group, name: str, dtype) -> None:
    """Replace a fixed-size dataset by a chunked, resizable copy with the same attributes."""
    old = group[name]
    data, attrs = old[()], dict(old.attrs)
    del group[name]
    new = group.create_dataset(
        name,
        data=data,
        dtype=dtype,
        maxshape=(None,),
        chunks=(1 << 16,),
        compression="gzip",
        compression_opts=4,
        shuffle=True,
    )
    new.attrs.update(attrs)


def _h5_value(v):
    """A provenance value as HDF5 stores it: numbers as numbers, the rest as text."""
    if isinstance(v, (bool, np.bool_)):
        return np.bool_(v)
    if isinstance(v, (int, np.integer)):
        return np.int64(v)
    if isinstance(v, (float, np.floating)):
        return np.float64(v)
    return str(v)


def _replace(group, name: str, value) -> None:
    attrs = dict(group[name].attrs)
    del group[name]
    group[name] = value
    group[name].attrs.update(attrs)


def _extend(group, columns: dict) -> None:
    for name, values in columns.items():
        d = group[name]
        n = d.shape[0]
        d.resize((n + len(values),))
        d[n:] = np.asarray(values, dtype=d.dtype)


def write_photon_hdf5(
    path, data: PhotonStream | Iterable[PhotonStream], *, meta: dict | None = None
) -> Path:
    """Write a stream, or an iterable of time-ordered chunks (e.g. ``simulate_chunks``), as a
    validated Photon-HDF5 file; memory holds one chunk; atomic rename on success."""
    chunks = [data] if isinstance(data, PhotonStream) else data
    with PhotonHDF5Writer(path, meta=meta) as w:
        for chunk in chunks:
            w.write(chunk)
    return Path(path)


def timestamps_to_sync(ts: np.ndarray, unit_s: float, rate_hz: float) -> np.ndarray:
    """Index of the laser pulse at or before each timestamp. Exact integer division when the
    period is a whole number of timestamp units (as simsps writes), else rounded floats."""
    ticks = 1.0 / (unit_s * rate_hz)
    if abs(ticks - round(ticks)) < 1e-6 * ticks:
        return np.asarray(ts, np.int64) // int(round(ticks))
    return np.floor(np.asarray(ts, np.float64) / ticks * (1 + 1e-12)).astype(np.int64)


@guarded
def read_photon_hdf5(path) -> PhotonStream:
    """Photon-HDF5 file -> PhotonStream (truth restored when simsps wrote it)."""
    import h5py

    path = Path(path)
    regular_file(path)
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise TTTRFileError(path, f"not a readable HDF5 file ({e})") from None
    try:
        with f:
            return _read_open(f, path)
    except KeyError as e:
        raise TTTRFileError(path, f"not a Photon-HDF5 TCSPC file: missing {e.args[0]}") from None


def time_base(pd, path) -> tuple[float, float, float]:
    """(timestamps unit s, TCSPC bin s, laser repetition rate Hz) of a ``photon_data``
    group with nanotimes (a TCSPC measurement), checked."""
    unit = float(pd["timestamps_specs/timestamps_unit"][()])
    if "nanotimes" not in pd:
        raise TTTRFileError(path, "Photon-HDF5 file has no nanotimes (not TCSPC)")
    tcspc = float(pd["nanotimes_specs/tcspc_unit"][()])
    rate = float(np.ravel(pd["measurement_specs/laser_repetition_rate"][()])[0])
    if not all(np.isfinite(x) and x > 0 for x in (unit, tcspc, rate)):
        raise TTTRFileError(
            path,
            f"invalid time base: timestamps unit {unit}, tcspc unit "
            f"{tcspc}, repetition rate {rate}",
        )
    validate.time_base(path, 1e12 / rate, tcspc * 1e12, "T3")
    if not 1e-15 <= unit <= 1.0:
        raise TTTRFileError(path, f"impossible timestamps unit {unit} s")
    return unit, tcspc, rate


def sync_of(ts, nano, unit: float, tcspc: float, rate: float) -> np.ndarray:
    """Sync index of each photon. In simsps' layout (timestamps counted in TCSPC bins,
    timestamp = sync x ticks + bin) exactly, even for bins beyond the period; otherwise
    the pulse at or before the timestamp."""
    ts = np.asarray(ts, np.int64)
    if abs(unit - tcspc) <= 1e-9 * tcspc:
        return (ts - np.asarray(nano, np.int64)) // round(1.0 / (unit * rate))
    return timestamps_to_sync(ts, unit, rate)


def user_meta(f, skip=()) -> dict:
    """The ``user/simsps`` provenance of a file simsps wrote ({} otherwise): numbers as
    Python numbers, text as str."""
    if "user/simsps" not in f:
        return {}
    out = {}
    for k, v in f["user/simsps"].items():
        if k in skip:
            continue
        x = v[()]
        out[k] = x.decode() if isinstance(x, bytes) else (x.item() if hasattr(x, "item") else x)
    return out


def _int_or_none(x) -> int | None:
    """A count simsps stored (a number now, a digit string in older files)."""
    try:
        n = int(x)
    except (TypeError, ValueError):
        return None
    return n if n >= 0 else None


def _column(pd, name: str, path: Path) -> np.ndarray:
    """An integer photon column, checked for shape and type before it is read."""
    ds = pd[name]
    if not hasattr(ds, "shape") or len(ds.shape) != 1 or ds.dtype.kind not in "iu":
        raise TTTRFileError(path, f"photon_data/{name} is not a 1-d integer array")
    check_memory(path, ds.shape[0], bytes_per_record=8)
    return ds[:]


_NON_PHOTON = re.compile(r"non_photon_id[1-9]\d*")


def non_photon_ids(pd) -> np.ndarray:
    """Detector IDs the file declares not photons (``detectors_specs/non_photon_idN``:
    phconvert writes a PicoQuant file's markers so, as 64 + the marker bits)."""
    import h5py

    spec = pd.get("measurement_specs/detectors_specs")
    ids: list[int] = []
    if isinstance(spec, h5py.Group):
        for k, v in spec.items():
            if _NON_PHOTON.fullmatch(k) and isinstance(v, h5py.Dataset):
                ids += np.ravel(v[()]).astype(np.int64).tolist()
    return np.unique(np.asarray(ids, np.int64))


def _checked_photons(path: Path, ts: np.ndarray, det: np.ndarray) -> None:
    if len(ts) and int(ts[0]) < 0:
        raise TTTRFileError(path, "negative timestamps")
    down = np.flatnonzero(np.diff(ts) < 0)
    if len(down):
        raise TTTRFileError(path, f"timestamps decrease at photon {int(down[0]) + 1}")
    check_channels(path, det, "detector")


def _read_open(f, path: Path) -> PhotonStream:
    pd = f["photon_data"]
    ts = _column(pd, "timestamps", path).astype(np.int64)
    det = _column(pd, "detectors", path)
    if len(ts) != len(det):
        raise TTTRFileError(
            path, f"timestamps and detectors differ in length: {len(ts)}, {len(det)}"
        )
    marker = np.isin(det, non_photon_ids(pd))
    _checked_photons(path, ts, det[~marker])
    if "nanotimes" not in pd:  # no TCSPC: a T2 stream of the timestamps
        return _read_t2(f, pd, ts, det, path, marker)
    unit, tcspc, rate = time_base(pd, path)
    if len(ts):
        check_duration(path, float(ts[-1]) * unit)
    nano = _column(pd, "nanotimes", path)
    if not (len(ts) == len(det) == len(nano)):
        raise TTTRFileError(
            path,
            f"timestamps, detectors and nanotimes differ in length: "
            f"{len(ts)}, {len(det)}, {len(nano)}",
        )
    sync = sync_of(ts, nano, unit, tcspc, rate)
    markers = None
    if marker.any():  # markers sit at their sync
        period = int(round(1e12 / rate))
        markers = Markers(sync[marker] * period, (det[marker] & 0x3F).astype(np.uint8))
        sync, nano, det = sync[~marker], nano[~marker], det[~marker]
    truth, n_pulses = None, None
    meta = user_meta(f)
    if meta:
        n_pulses = _int_or_none(meta.get("n_pulses"))
        least = int(sync[-1]) + 1 if len(sync) else 0
        if n_pulses is not None and not (least <= n_pulses <= MAX_DURATION_S * rate):
            warnings.warn(
                f"{path}: user/simsps/n_pulses = {n_pulses} contradicts the photons; "
                "the length comes from the last photon",
                TTTRFileWarning,
                stacklevel=3,
            )
            n_pulses = None
    if "user/simsps_truth" in f:
        g = f["user/simsps_truth"]
        truth = Truth(**{k: g[k][:] for k in _TRUTH_FIELDS}, bleach_time_s=g["bleach_time_s"][:])
        truth = truth.take(~marker) if marker.any() else truth
    meta["source_file"] = str(path)
    return PhotonStream(
        sync=sync,
        dtime=nano,
        channel=det,
        sync_period_ps=round(1e12 / rate, 3),
        resolution_ps=round(tcspc * 1e12, 6),
        truth=truth,
        meta=meta,
        n_pulses=n_pulses,
        markers=markers,
    )


def t2_unit(pd, path) -> float:
    """The timestamps unit (s) of a ``photon_data`` group without nanotimes, checked."""
    unit = float(pd["timestamps_specs/timestamps_unit"][()])
    if not (np.isfinite(unit) and 1e-15 <= unit <= 1e-3):
        raise TTTRFileError(path, f"invalid timestamps unit {unit}")
    return unit


def _read_t2(f, pd, ts, det, path: Path, marker) -> PhotonStream:
    unit = t2_unit(pd, path)
    if len(ts):
        check_duration(path, float(ts[-1]) * unit)
    if len(ts) != len(det):
        raise TTTRFileError(
            path, f"timestamps and detectors differ in length: {len(ts)}, {len(det)}"
        )
    unit_ps = round(unit * 1e12, 6)
    t = ts * np.int64(unit_ps) if float(unit_ps).is_integer() else np.round(ts * unit_ps)
    t = np.asarray(t, np.int64)
    markers = None
    if marker.any():
        markers = Markers(t[marker], (det[marker] & 0x3F).astype(np.uint8))
        t, det = t[~marker], det[~marker]
    rate = None
    if "measurement_specs/laser_repetition_rate" in pd:
        rate = float(np.ravel(pd["measurement_specs/laser_repetition_rate"][()])[0])
    meta = user_meta(f)
    truth = None
    if "user/simsps_truth" in f:
        g = f["user/simsps_truth"]
        truth = Truth(**{k: g[k][:] for k in _TRUTH_FIELDS}, bleach_time_s=g["bleach_time_s"][:])
        truth = truth.take(~marker) if marker.any() else truth
    duration = _int_or_none(meta.get("duration_ps"))
    if duration is None and "acquisition_duration" in f:
        d = float(f["acquisition_duration"][()])
        duration = int(round(d * 1e12)) if 0 <= d <= MAX_DURATION_S else None
    if duration is not None and not (
        duration * 1e-12 <= MAX_DURATION_S and (not len(t) or duration > int(t[-1]))
    ):
        warnings.warn(
            f"{path}: the recorded duration ({duration} ps) contradicts the photons; "
            "the length comes from the last photon",
            TTTRFileWarning,
            stacklevel=3,
        )
        duration = None
    meta["source_file"] = str(path)
    return PhotonStream.t2(
        t,
        det,
        resolution_ps=unit_ps,
        sync_period_ps=None if not rate else round(1e12 / rate, 3),
        duration_ps=duration,
        truth=truth,
        meta=meta,
        markers=markers,
    )
