"""PicoQuant PTU tag header: encode and decode (PQ "tag dictionary").

Layout: magic ``PQTTTR\\0\\0``, version ``1.0.00\\0\\0``, then 48-byte tags
``<32s i I 8s>`` (identifier, index, type code, value); variable-length types store their
byte length in the value and their data right after, padded to a multiple of 8. The header
ends with ``Header_End``. See PicoQuant's PicoQuant-Time-Tagged-File-Format-Demos.
"""

from __future__ import annotations

import datetime as _dt
import struct
from typing import Any, BinaryIO

from .errors import TTTRFileError

__all__ = ["MAGIC", "TagType", "encode_tags", "read_header", "Tag"]

MAGIC = b"PQTTTR\0\0"
VERSION = b"1.0.00\0\0"
_TAG = struct.Struct("<32siI8s")
_EPOCH = _dt.datetime(1899, 12, 30, tzinfo=_dt.timezone.utc)


class TagType:
    EMPTY8 = 0xFFFF0008
    BOOL8 = 0x00000008
    INT8 = 0x10000008
    BITSET64 = 0x11000008
    COLOR8 = 0x12000008
    FLOAT8 = 0x20000008
    DATETIME = 0x21000008
    FLOAT8_ARRAY = 0x2001FFFF
    ANSI_STRING = 0x4001FFFF
    WIDE_STRING = 0x4002FFFF
    BINARY_BLOB = 0xFFFFFFFF


_VARIABLE = {TagType.FLOAT8_ARRAY, TagType.ANSI_STRING, TagType.WIDE_STRING, TagType.BINARY_BLOB}
_KNOWN = {v for k, v in vars(TagType).items() if k.isupper()}

Tag = tuple[str, int, int, Any]  # (name, index, type code, value)


def _pad8(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 8)


def encode_tags(tags: list[Tag]) -> tuple[bytes, dict[str, int]]:
    """Bytes of the whole header (magic to ``Header_End``) and the byte offset of each
    tag's 8-byte value (to patch record counts after streaming)."""
    out = bytearray(MAGIC + VERSION)
    offsets = {}
    for name, index, kind, value in tags:
        raw_name = name.encode("ascii")
        if len(raw_name) > 31:
            raise ValueError(f"PTU tag name {name!r} longer than 31 characters")
        extra = b""
        if kind in (TagType.EMPTY8,):
            v = struct.pack("<q", 0)
        elif kind in (TagType.BOOL8, TagType.INT8, TagType.BITSET64, TagType.COLOR8):
            v = struct.pack("<q", int(value))
        elif kind == TagType.FLOAT8:
            v = struct.pack("<d", float(value))
        elif kind == TagType.DATETIME:
            days = (value - _EPOCH).total_seconds() / 86400.0
            v = struct.pack("<d", days)
        elif kind == TagType.ANSI_STRING:
            extra = _pad8(str(value).encode("utf-8") + b"\0")
            v = struct.pack("<q", len(extra))
        elif kind == TagType.WIDE_STRING:
            extra = _pad8(str(value).encode("utf-16-le") + b"\0\0")
            v = struct.pack("<q", len(extra))
        elif kind == TagType.BINARY_BLOB:
            extra = _pad8(bytes(value))
            v = struct.pack("<q", len(extra))
        else:
            raise ValueError(f"cannot encode PTU tag type {kind:#x}")
        offsets[name if index < 0 else f"{name}[{index}]"] = len(out) + 40
        out += _TAG.pack(raw_name.ljust(32, b"\0"), index, kind, v) + extra
    return bytes(out), offsets


def read_header(fh: BinaryIO, path, size: int | None = None) -> tuple[dict[str, Any], int]:
    """Tags as ``{name: value}`` (indexed tags as ``name[i]``) and the header length; no
    tag may claim more bytes than the file (``size``) has left."""
    start = fh.read(16)
    if len(start) < 16:
        raise TTTRFileError(path, f"file too short for a PTU header ({len(start)} bytes)")
    if start[:8] != MAGIC:
        raise TTTRFileError(path, f"not a PTU file: magic {start[:8]!r}, expected {MAGIC!r}")
    tags: dict[str, Any] = {}
    for _ in range(100_000):
        raw = fh.read(_TAG.size)
        if len(raw) < _TAG.size:
            raise TTTRFileError(path, "truncated PTU header: file ends before Header_End")
        name_b, index, kind, value = _TAG.unpack(raw)
        try:
            name = name_b.split(b"\0", 1)[0].decode("ascii")
        except UnicodeDecodeError:
            raise TTTRFileError(
                path, f"corrupt PTU header: tag name {name_b!r} is not ASCII"
            ) from None
        if kind not in _KNOWN:
            raise TTTRFileError(
                path, f"corrupt PTU header: tag {name!r} has unknown type {kind:#x}"
            )
        key = name if index < 0 else f"{name}[{index}]"
        if kind in _VARIABLE:
            (length,) = struct.unpack("<q", value)
            room = (1 << 30) if size is None else size - fh.tell()
            if length < 0 or length > min(room, 1 << 30):
                raise TTTRFileError(
                    path,
                    f"corrupt PTU header: tag {name!r} claims {length} bytes"
                    + (f", the file has {room} left" if length > room else ""),
                )
            data = fh.read(length)
            if len(data) < length:
                raise TTTRFileError(path, f"truncated PTU header inside tag {name!r}")
            if kind == TagType.ANSI_STRING:
                val: Any = data.split(b"\0", 1)[0].decode("utf-8", errors="replace")
            elif kind == TagType.WIDE_STRING:
                val = data.decode("utf-16-le", errors="replace").split("\0", 1)[0]
            elif kind == TagType.FLOAT8_ARRAY:
                val = list(struct.unpack(f"<{length // 8}d", data[: length // 8 * 8]))
            else:
                val = data
        elif kind == TagType.FLOAT8:
            (val,) = struct.unpack("<d", value)
        elif kind == TagType.DATETIME:
            (days,) = struct.unpack("<d", value)
            try:
                val = _EPOCH + _dt.timedelta(days=days)
            except (OverflowError, ValueError):
                val = days
        elif kind == TagType.EMPTY8:
            val = None
        elif kind == TagType.BOOL8:
            val = struct.unpack("<q", value)[0] != 0
        else:
            (val,) = struct.unpack("<q", value)
        tags[key] = val
        if name == "Header_End":
            return tags, fh.tell()
    raise TTTRFileError(path, "corrupt PTU header: no Header_End within 100000 tags")
