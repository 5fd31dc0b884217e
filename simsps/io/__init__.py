"""TTTR file input and output: PicoQuant PTU (T3) and Photon-HDF5."""

from __future__ import annotations

from pathlib import Path

from ..stream import PhotonStream
from .errors import TTTRFileError
from .photon_hdf5 import read_photon_hdf5, write_photon_hdf5
from .ptu import RECORD_FORMATS, PTUWriter, iter_ptu, ptu_info, read_ptu, write_ptu

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"

__all__ = ["TTTRFileError", "RECORD_FORMATS", "PTUWriter", "read", "iter_ptu", "ptu_info",
           "read_ptu", "write_ptu", "read_photon_hdf5", "write_photon_hdf5", "write"]


def read(path) -> PhotonStream:
    """Read a TTTR file into a :class:`PhotonStream` (kind from its content)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            magic = fh.read(8)
    except OSError as e:
        raise TTTRFileError(path, f"cannot read: {e.strerror}") from None
    if magic.startswith(b"PQTTTR"):
        return read_ptu(path)
    if magic == _HDF5_MAGIC:
        return read_photon_hdf5(path)
    raise TTTRFileError(path, f"unknown file kind (starts with {magic!r}); simsps reads PTU "
                              "and Photon-HDF5")


def write(path, data, fmt: str | None = None) -> Path:
    """Write a stream (or, for PTU, an iterable of chunks) by file extension:
    ``.ptu`` (``fmt`` = ``picoharp-t3`` or ``hydraharp-t3``) or ``.h5``/``.hdf5``."""
    suffix = Path(path).suffix.lower()
    if suffix == ".ptu":
        return write_ptu(path, data, fmt or "picoharp-t3")
    if suffix in (".h5", ".hdf5"):
        if fmt not in (None, "photon-hdf5"):
            raise ValueError(f"format {fmt!r} does not apply to a Photon-HDF5 file")
        stream = data if isinstance(data, PhotonStream) else PhotonStream.concat(list(data))
        return write_photon_hdf5(path, stream)
    raise ValueError(f"{path}: unknown extension {suffix!r}; use .ptu, .h5 or .hdf5")
