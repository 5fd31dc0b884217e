"""TTTR file input and output: PicoQuant PTU (T3 and T2), PicoQuant's older files (read),
and Photon-HDF5."""

from __future__ import annotations

from pathlib import Path

from ..stream import PhotonStream
from .errors import TTTRFileError, TTTRFileWarning
from .legacy import iter_legacy, read_legacy
from .photon_hdf5 import PhotonHDF5Writer, read_photon_hdf5, write_photon_hdf5
from .ptu import RECORD_FORMATS, PTUWriter, iter_ptu, ptu_info, read_ptu, write_ptu
from .summary import file_kind, summarize
from .validate import guarded

__all__ = [
    "TTTRFileError",
    "TTTRFileWarning",
    "RECORD_FORMATS",
    "PTUWriter",
    "read",
    "iter_ptu",
    "ptu_info",
    "read_ptu",
    "read_legacy",
    "iter_legacy",
    "write_ptu",
    "read_photon_hdf5",
    "write_photon_hdf5",
    "PhotonHDF5Writer",
    "write",
    "file_kind",
    "summarize",
]


@guarded
def read(path) -> PhotonStream:
    """Read a TTTR file into a :class:`PhotonStream` (kind from its content): PTU (T3 or
    T2, every PicoQuant record type), Photon-HDF5, or PicoQuant's older .pt2 / .pt3 /
    .ht2 / .ht3 files."""
    kind = file_kind(path)
    if kind == "ptu":
        return read_ptu(path)
    if kind == "legacy":
        return read_legacy(path)
    return read_photon_hdf5(path)


def write(path, data, fmt: str | None = None) -> Path:
    """Write a stream, or an iterable of time-ordered chunks (streamed), by file extension:
    ``.ptu`` (``fmt``: a record type of :data:`RECORD_FORMATS`, default ``picoharp-t3`` for
    a T3 stream and ``hydraharp-t2`` for a T2 one) or ``.h5``/``.hdf5``."""
    suffix = Path(path).suffix.lower()
    if suffix == ".ptu":
        return write_ptu(path, data, fmt)
    if suffix in (".h5", ".hdf5"):
        if fmt not in (None, "photon-hdf5"):
            raise ValueError(f"format {fmt!r} does not apply to a Photon-HDF5 file")
        return write_photon_hdf5(path, data)
    raise ValueError(f"{path}: unknown extension {suffix!r}; use .ptu, .h5 or .hdf5")
