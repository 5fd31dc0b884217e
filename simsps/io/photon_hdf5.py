"""Photon-HDF5 files (photon-hdf5.readthedocs.io) through ``phconvert``, validated on write.

One ``photon_data`` group: ``timestamps`` (int64), ``detectors``, ``nanotimes``; setup of a two-detector HBT with TCSPC. Timestamps are the
absolute arrival times in units of the microtime bin (``timestamps_unit`` = resolution), so
sync and microtime are both recoverable; the laser period goes in ``laser_repetition_rate``.
Ground truth goes under ``user/simsps_truth`` where analysis programs ignore it; provenance
(simsps version, model TOML, seed, power, duration) under ``identity`` and ``user/simsps``
(Photon-HDF5's ``provenance`` group describes an original file converted, which there is not).
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..stream import PhotonStream, Truth
from ._atomic import CommitOnExit
from .errors import TTTRFileError

__all__ = ["PhotonHDF5Writer", "write_photon_hdf5", "read_photon_hdf5"]


def _ticks_per_sync(stream: PhotonStream) -> int:
    ratio = stream.sync_period_ps / stream.resolution_ps
    if abs(ratio - round(ratio)) > 1e-6:
        raise ValueError(
            f"Photon-HDF5 timestamps here count microtime bins: the sync period "
            f"{stream.sync_period_ps:g} ps must be a whole number of {stream.resolution_ps:g} ps bins"
        )
    return int(round(ratio))


_PHOTON_FIELDS = ("timestamps", "detectors", "nanotimes")
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
        self._tmp = None
        self._h5 = None
        self._first = True
        self._time_base = None
        self._truth = None
        self._counts = np.zeros(0, np.int64)

    def write(self, stream: PhotonStream) -> None:
        base = (stream.sync_period_ps, stream.resolution_ps)
        if self._time_base is None:
            self._time_base = base
            self._ticks = _ticks_per_sync(stream)
            self._create(stream.take(slice(0, 0)))  # layout only: phconvert compresses slowly
        elif base != self._time_base:
            raise ValueError("chunk has a different time base from the file")
        if len(stream):
            self._append(stream)
        if stream.n_pulses is not None:
            self.n_pulses = max(self.n_pulses, int(stream.n_pulses))
        if len(stream):
            self.n_pulses = max(self.n_pulses, int(stream.sync[-1]) + 1)
            self._last_sync = int(stream.sync[-1])
        self.n_photons += len(stream)
        if len(stream):
            self._n_bins = max(self._n_bins, int(stream.dtime.max()) + 1)
            c = np.bincount(stream.channel)
            n = max(len(c), len(self._counts))
            self._counts = np.pad(self._counts, (0, n - len(self._counts))) + np.pad(
                c, (0, n - len(c))
            )

    def _create(self, stream: PhotonStream) -> None:
        import h5py
        import phconvert

        from .. import __version__

        meta = {**stream.meta, **self.meta}
        self.meta = meta
        self._last_sync = -1
        self._n_bins = self._ticks
        self._nano_dtype = np.uint16 if self._ticks <= 65536 else np.uint32
        photon_data = dict(
            timestamps=stream.sync * self._ticks + stream.dtime.astype(np.int64),
            timestamps_specs=dict(timestamps_unit=stream.resolution_ps * 1e-12),
            detectors=stream.channel.astype(np.uint8),
            nanotimes=stream.dtime.astype(self._nano_dtype),
            nanotimes_specs=dict(
                tcspc_unit=stream.resolution_ps * 1e-12,
                tcspc_num_bins=self._ticks,
                tcspc_range=self._ticks * stream.resolution_ps * 1e-12,
            ),
            measurement_specs=dict(
                measurement_type="generic",
                laser_repetition_rate=1e12 / stream.sync_period_ps,
                detectors_specs=dict(
                    split_ch1=np.array([0], np.uint8), split_ch2=np.array([1], np.uint8)
                ),
            ),
        )
        user = {"simsps": {k: str(v) for k, v in meta.items() if k != "ptu_tags"}}
        user["simsps"]["n_pulses"] = ""  # patched on close
        self._truth = stream.truth is not None
        if self._truth:
            t = stream.truth
            user["simsps_truth"] = {k: getattr(t, k) for k in _TRUTH_FIELDS}
            user["simsps_truth"]["bleach_time_s"] = t.bleach_time_s
        data = dict(
            _filename=str(self.path),
            acquisition_duration=float(stream.duration_s),  # patched on close
            description=f"simsps synthetic TCSPC stream of model {meta.get('model', '?')}, "
            f"seed {meta.get('seed', '?')}, power {meta.get('power', '?')} Psat",
            photon_data=photon_data,
            setup=dict(
                num_pixels=2,
                num_spots=1,
                num_spectral_ch=1,
                num_polarization_ch=1,
                num_split_ch=2,
                modulated_excitation=False,
                lifetime=True,
                excitation_alternated=[False],
                excitation_wavelengths=[405e-9],
                excitation_cw=[False],
                detection_wavelengths=[512e-9],
                laser_repetition_rates=[1e12 / stream.sync_period_ps],
            ),
            identity=dict(
                author="simsps",
                author_affiliation="simsps synthetic data",
                software="simsps",
                software_version=__version__,
            ),
            user=user,
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=".part", dir=self.path.parent
        )
        os.close(fd)
        self._tmp = Path(tmp)
        with contextlib.redirect_stdout(io.StringIO()):  # phconvert prints progress
            phconvert.hdf5.save_photon_hdf5(
                data, h5_fname=tmp, overwrite=True, validate=True, warnings=False, close=True
            )
        self._h5 = h5py.File(tmp, "r+")
        # explicit dtypes: phconvert stores an empty first chunk as uint8
        dtypes = {"timestamps": np.int64, "detectors": np.uint8, "nanotimes": self._nano_dtype}
        for name, dtype in dtypes.items():
            _make_extendible(self._h5["photon_data"], name, dtype)
        if self._truth:
            for name in _TRUTH_FIELDS:
                _make_extendible(self._h5["user/simsps_truth"], name, getattr(t, name).dtype)

    def _append(self, stream: PhotonStream) -> None:
        if int(stream.sync[0]) < self._last_sync:
            raise ValueError("photons must be written in time order (sync not increasing)")
        if (stream.truth is not None) != self._truth:
            raise ValueError("every chunk must carry ground truth, or none")
        if self._nano_dtype is np.uint16 and int(stream.dtime.max()) > 65535:
            raise ValueError("microtime bin does not fit the file's 16-bit nanotimes")
        cols = {
            "timestamps": stream.sync * self._ticks + stream.dtime.astype(np.int64),
            "detectors": stream.channel,
            "nanotimes": stream.dtime,
        }
        _extend(self._h5["photon_data"], cols)
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
        try:
            f = self._h5
            duration = self.n_pulses * self._time_base[0] * 1e-12
            f["acquisition_duration"][()] = duration
            ns = f["photon_data/nanotimes_specs"]  # a card's range may exceed the period
            ns["tcspc_num_bins"][()] = self._n_bins
            ns["tcspc_range"][()] = self._n_bins * self._time_base[1] * 1e-12
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
            _replace(g, "n_pulses", np.bytes_(str(self.n_pulses)))  # fixed length, as pytables
            f.flush()
            f.close()
            self._h5 = None
            import tables

            with (
                tables.open_file(str(self._tmp), "r") as h5,
                contextlib.redirect_stdout(io.StringIO()),
            ):
                phconvert.hdf5.assert_valid_photon_hdf5(h5, warnings=False)
            os.replace(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        if self._h5 is not None:
            self._h5.close()
            self._h5 = None
        if self._tmp is not None and self._tmp.exists():
            self._tmp.unlink()


def _make_extendible(group, name: str, dtype) -> None:
    """Replace a fixed-size dataset by a chunked, resizable copy with the same attributes."""
    old = group[name]
    data, attrs = old[()], dict(old.attrs)
    del group[name]
    new = group.create_dataset(
        name, data=data, dtype=dtype, maxshape=(None,), chunks=(1 << 16,), compression=None
    )
    new.attrs.update(attrs)


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


def read_photon_hdf5(path) -> PhotonStream:
    """Photon-HDF5 file -> PhotonStream (truth restored when simsps wrote it)."""
    import h5py

    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise TTTRFileError(path, f"not a readable HDF5 file ({e})") from None
    try:
        with f:
            return _read_open(f, path)
    except KeyError as e:
        raise TTTRFileError(path, f"not a Photon-HDF5 TCSPC file: missing {e.args[0]}") from None
    except (OSError, ValueError, TypeError, IndexError) as e:
        if isinstance(e, TTTRFileError):
            raise
        raise TTTRFileError(path, f"corrupt Photon-HDF5 file ({type(e).__name__}: {e})") from None


def time_base(pd, path) -> tuple[float, float, float]:
    """(timestamps unit s, TCSPC bin s, laser repetition rate Hz) of a ``photon_data``
    group, checked; the group must hold nanotimes (a TCSPC measurement)."""
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
    """The ``user/simsps`` provenance strings of a file simsps wrote ({} otherwise)."""
    if "user/simsps" not in f:
        return {}
    return {
        k: v[()].decode() if isinstance(v[()], bytes) else v[()]
        for k, v in f["user/simsps"].items()
        if k not in skip
    }


def _read_open(f, path: Path) -> PhotonStream:
    pd = f["photon_data"]
    ts = pd["timestamps"][:].astype(np.int64)
    det = pd["detectors"][:]
    unit, tcspc, rate = time_base(pd, path)
    nano = pd["nanotimes"][:]
    if not (len(ts) == len(det) == len(nano)):
        raise TTTRFileError(
            path,
            f"timestamps, detectors and nanotimes differ in length: "
            f"{len(ts)}, {len(det)}, {len(nano)}",
        )
    sync = sync_of(ts, nano, unit, tcspc, rate)
    truth, n_pulses = None, None
    meta = user_meta(f)
    if meta:
        n = str(meta.get("n_pulses", ""))
        n_pulses = int(n) if n.isdigit() else None
    if "user/simsps_truth" in f:
        g = f["user/simsps_truth"]
        truth = Truth(**{k: g[k][:] for k in _TRUTH_FIELDS}, bleach_time_s=g["bleach_time_s"][:])
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
    )
