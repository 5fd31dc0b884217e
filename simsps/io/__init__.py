"""TTTR file input and output: PicoQuant PTU (T3)."""

from __future__ import annotations

from pathlib import Path

from ..stream import PhotonStream
from .errors import TTTRFileError
from .ptu import RECORD_FORMATS, PTUWriter, iter_ptu, ptu_info, read_ptu, write_ptu

__all__ = ["TTTRFileError", "RECORD_FORMATS", "PTUWriter", "read", "iter_ptu", "ptu_info",
           "read_ptu", "write_ptu"]


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
    raise TTTRFileError(path, f"unknown file kind (starts with {magic!r}); simsps reads PTU")
