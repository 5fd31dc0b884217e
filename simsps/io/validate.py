"""The checks between a file's bytes and a stream: every reader goes through them.

* :func:`regular_file`: only regular files are opened (a FIFO would block the reader for
  ever, a directory or a device is no TTTR file): a clear error at once.
* :func:`number`: a header value must be a finite number of the right kind.
* :func:`record_count`: the header's record count against the file's size; the file size
  wins, with a :class:`TTTRFileWarning` (as ptufile does for a count of 0), so neither
  a short count nor a long one loses or invents records silently.
* :func:`time_base`: the sync period and the bin (or T2 tag unit) must make sense together.
* :func:`check_duration`: no acquisition lasts longer than :data:`MAX_DURATION_S`.
* :func:`guarded` / :func:`guarded_iter`: whatever else a damaged file makes a decoder or
  h5py raise (OverflowError, KeyError, RuntimeError, MemoryError ...) becomes the one
  documented :class:`TTTRFileError`, naming the file.
"""

from __future__ import annotations

import functools
import math
import os
import stat
import struct
import warnings
from pathlib import Path

import numpy as np

from ..stream import MAX_DURATION_S
from .errors import TTTRFileError, TTTRFileWarning

__all__ = [
    "MAX_DURATION_S",
    "MAX_CHANNEL",
    "regular_file",
    "number",
    "record_count",
    "time_base",
    "check_channels",
    "check_duration",
    "guarded",
    "guarded_iter",
]

MAX_CHANNEL = 63  # HydraHarp / MultiHarp records hold 6-bit channels
_DAMAGE = (
    OSError,
    ValueError,
    OverflowError,
    TypeError,
    KeyError,
    IndexError,
    RuntimeError,
    ZeroDivisionError,
    struct.error,
    UnicodeError,
    AttributeError,
    EOFError,
    AssertionError,
)


def regular_file(path) -> int:
    """The size of ``path`` if it is a regular file; else :class:`TTTRFileError` (without
    opening it: opening a FIFO blocks until a writer comes)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise TTTRFileError(path, "no such file") from None
    except OSError as e:
        raise TTTRFileError(path, f"cannot read: {e.strerror}") from None
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return st.st_size
    what = (
        "a directory"
        if stat.S_ISDIR(mode)
        else "a FIFO (named pipe)"
        if stat.S_ISFIFO(mode)
        else "a device"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "not a regular file"
    )
    raise TTTRFileError(path, f"is {what}: simsps reads regular files only")


def number(tags: dict, key: str, path, kind=float, default=None):
    """Header value ``key`` as a finite ``kind``; ``default`` when absent (None: required)."""
    if key not in tags or tags[key] is None:
        if default is not None:
            return default
        raise TTTRFileError(path, f"header lacks {key}")
    v = tags[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TTTRFileError(path, f"header value {key} = {v!r} is not a number")
    if not math.isfinite(v):
        raise TTTRFileError(path, f"header value {key} = {v!r} is not finite")
    if kind is int and v != int(v):
        raise TTTRFileError(path, f"header value {key} = {v!r} is not a whole number")
    return kind(v)


def record_count(path, announced: int, header_bytes: int, size: int, what="records") -> int:
    """The number of 32-bit records to read: the file's, warning when the header says
    otherwise (a truncated file, or a count the software did not patch)."""
    available = max(0, (size - header_bytes) // 4)
    if announced != available:
        warnings.warn(
            f"{path}: the header announces {announced} {what}, the file holds {available}; "
            f"reading the {available} the file holds",
            TTTRFileWarning,
            stacklevel=3,
        )
    if (size - header_bytes) % 4:
        warnings.warn(
            f"{path}: {(size - header_bytes) % 4} bytes after the last whole record ignored",
            TTTRFileWarning,
            stacklevel=3,
        )
    return available


def time_base(path, period_ps: float | None, resolution_ps: float, mode: str):
    """(period, resolution) rounded as the stream holds them, or :class:`TTTRFileError`."""
    if not (math.isfinite(resolution_ps) and 1e-3 <= resolution_ps <= 1e9):
        raise TTTRFileError(
            path, f"impossible {'time-tag unit' if mode == 'T2' else 'bin'} {resolution_ps} ps"
        )
    res = round(resolution_ps, 6)
    if period_ps is None:
        if mode == "T3":
            raise TTTRFileError(path, "a T3 file needs its sync period (sync rate missing)")
        return None, res
    if not (math.isfinite(period_ps) and 1.0 <= period_ps <= 1e15):
        raise TTTRFileError(path, f"impossible sync period {period_ps} ps")
    period = round(period_ps, 3)
    if mode == "T3" and res >= period:
        raise TTTRFileError(
            path, f"the microtime bin ({res:g} ps) is not shorter than the sync period "
            f"({period:g} ps)"
        )  # fmt: skip
    return period, res


def check_channels(path, channel, what: str = "channel") -> None:
    """No channel (detector) beyond what a PicoQuant record can hold."""
    if len(channel) and int(np.max(channel)) > MAX_CHANNEL:
        raise TTTRFileError(path, f"{what} {int(np.max(channel))} > {MAX_CHANNEL}")


def check_duration(path, duration_s: float, what: str = "the records") -> None:
    if not duration_s <= MAX_DURATION_S:
        raise TTTRFileError(
            path,
            f"{what} span {duration_s:.3g} s, longer than any acquisition "
            f"({MAX_DURATION_S:g} s): a damaged time base or overflow count",
        )


def _mapped(path, e: BaseException) -> TTTRFileError:
    if isinstance(e, MemoryError):
        return TTTRFileError(path, "damaged file: decoding it asks for more memory than there is")
    if isinstance(e, OSError) and e.strerror and not isinstance(e, FileNotFoundError):
        return TTTRFileError(path, f"cannot read: {e.strerror}")
    return TTTRFileError(path, f"damaged file ({type(e).__name__}: {e})")


def _path_of(args, kwargs):
    p = kwargs.get("path", args[0] if args else "?")
    return getattr(p, "path", p)  # a reader's info object carries its file


def guarded(fn):
    """Any error a damaged file raises inside ``fn(path, ...)`` as :class:`TTTRFileError`."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (TTTRFileError, BrokenPipeError):
            raise
        except (MemoryError, *_DAMAGE) as e:
            raise _mapped(_path_of(args, kwargs), e) from e

    return wrapper


def guarded_iter(fn):
    """:func:`guarded` for a generator function: its iteration is guarded too."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        path = _path_of(args, kwargs)
        try:
            it = fn(*args, **kwargs)
            yield from it
        except (TTTRFileError, BrokenPipeError):
            raise
        except GeneratorExit:
            raise
        except (MemoryError, *_DAMAGE) as e:
            raise _mapped(path, e) from e

    return wrapper


def as_path(path) -> Path:
    try:
        return Path(path)
    except TypeError:
        raise TTTRFileError(path, "not a file path") from None


def check_memory(path, n_records: int, bytes_per_record: int = 40) -> None:
    """Refuse to decode a whole file into memory when the stream would not fit in the
    memory the machine has free (a sparse or damaged file can claim billions of records):
    name the chunked reader instead."""
    try:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return
    need = n_records * bytes_per_record
    if need > free:
        raise TTTRFileError(
            path,
            f"{n_records} records need about {need / 2**30:.1f} GiB in memory, more than the "
            f"{free / 2**30:.1f} GiB free: read it in chunks (simsps.io.iter_ptu)",
        )
