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
from pathlib import Path

import numpy as np

from ..stream import PhotonStream, Truth
from .errors import TTTRFileError

__all__ = ["write_photon_hdf5", "read_photon_hdf5"]


def _ticks_per_sync(stream: PhotonStream) -> int:
    ratio = stream.sync_period_ps / stream.resolution_ps
    if abs(ratio - round(ratio)) > 1e-6:
        raise ValueError(
            f"Photon-HDF5 timestamps here count microtime bins: the sync period "
            f"{stream.sync_period_ps:g} ps must be a whole number of {stream.resolution_ps:g} ps bins"
        )
    return int(round(ratio))


def write_photon_hdf5(path, stream: PhotonStream, *, meta: dict | None = None) -> Path:
    """Write ``stream`` (in memory) as a validated Photon-HDF5 file; atomic rename."""
    import phconvert

    from .. import __version__

    path = Path(path)
    meta = {**stream.meta, **(meta or {})}
    ticks = _ticks_per_sync(stream)
    n_bins = max(ticks, int(stream.dtime.max()) + 1 if len(stream) else 1)
    timestamps = stream.sync * ticks + stream.dtime.astype(np.int64)
    photon_data = dict(
        timestamps=timestamps,
        timestamps_specs=dict(timestamps_unit=stream.resolution_ps * 1e-12),
        detectors=stream.channel.astype(np.uint8),
        nanotimes=stream.dtime.astype(np.uint16 if n_bins <= 65536 else np.uint32),
        nanotimes_specs=dict(tcspc_unit=stream.resolution_ps * 1e-12, tcspc_num_bins=n_bins,
                             tcspc_range=n_bins * stream.resolution_ps * 1e-12),
        measurement_specs=dict(measurement_type="generic",
                               laser_repetition_rate=1e12 / stream.sync_period_ps,
                               detectors_specs=dict(split_ch1=np.array([0], np.uint8),
                                                    split_ch2=np.array([1], np.uint8))),
    )
    user = {"simsps": {k: str(v) for k, v in meta.items() if k != "ptu_tags"}}
    user["simsps"]["n_pulses"] = str(stream.n_pulses if stream.n_pulses is not None else "")
    if stream.truth is not None:
        t = stream.truth
        user["simsps_truth"] = dict(source=t.source, state=t.state, emitter=t.emitter,
                                    emission_delay_ps=t.emission_delay_ps, arrival_ps=t.arrival_ps,
                                    bleach_time_s=t.bleach_time_s)
    data = dict(
        _filename=str(path),
        acquisition_duration=float(stream.duration_s),
        description=f"simsps synthetic TCSPC stream of model {meta.get('model', '?')}, "
                    f"seed {meta.get('seed', '?')}, power {meta.get('power', '?')} Psat",
        photon_data=photon_data,
        setup=dict(num_pixels=2, num_spots=1, num_spectral_ch=1, num_polarization_ch=1,
                   num_split_ch=2, modulated_excitation=False, lifetime=True,
                   excitation_alternated=[False], excitation_wavelengths=[405e-9],
                   excitation_cw=[False], detection_wavelengths=[512e-9],
                   laser_repetition_rates=[1e12 / stream.sync_period_ps]),
        identity=dict(author="simsps", author_affiliation="simsps synthetic data",
                      software="simsps", software_version=__version__),
        user=user,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # phconvert prints progress
            phconvert.hdf5.save_photon_hdf5(data, h5_fname=tmp, overwrite=True, validate=True,
                                            warnings=False, close=True)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def read_photon_hdf5(path) -> PhotonStream:
    """Photon-HDF5 file -> PhotonStream (truth restored when simsps wrote it)."""
    import h5py

    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise TTTRFileError(path, f"not a readable HDF5 file ({e})") from None
    with f:
        try:
            pd = f["photon_data"]
            ts = pd["timestamps"][:].astype(np.int64)
            unit = float(pd["timestamps_specs/timestamps_unit"][()])
            det = pd["detectors"][:]
            nano = pd["nanotimes"][:] if "nanotimes" in pd else None
            tcspc = float(pd["nanotimes_specs/tcspc_unit"][()]) if nano is not None else None
            rate = float(np.ravel(pd["measurement_specs/laser_repetition_rate"][()])[0])
        except KeyError as e:
            raise TTTRFileError(path, f"not a Photon-HDF5 TCSPC file: missing {e.args[0]}") from None
        if nano is None:
            raise TTTRFileError(path, "Photon-HDF5 file has no nanotimes (not TCSPC)")
        period_ps = 1e12 / rate
        res_ps = tcspc * 1e12
        sync = np.floor(ts * unit * rate + 1e-9).astype(np.int64)
        meta, truth, n_pulses = {}, None, None
        if "user/simsps" in f:
            meta = {k: v[()].decode() if isinstance(v[()], bytes) else v[()]
                    for k, v in f["user/simsps"].items()}
            n = str(meta.get("n_pulses", ""))
            n_pulses = int(n) if n.isdigit() else None
        if "user/simsps_truth" in f:
            g = f["user/simsps_truth"]
            truth = Truth(**{k: g[k][:] for k in ("source", "state", "emitter",
                                                   "emission_delay_ps", "arrival_ps")},
                          bleach_time_s=g["bleach_time_s"][:])
    meta["source_file"] = str(path)
    return PhotonStream(sync=sync, dtime=nano, channel=det, sync_period_ps=round(period_ps, 3),
                        resolution_ps=round(res_ps, 6), truth=truth, meta=meta, n_pulses=n_pulses)
