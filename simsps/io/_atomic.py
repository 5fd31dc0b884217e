"""Writes that leave nothing half-written.

Every file simsps writes goes through a :class:`Staging`: a temporary file beside the
target, ``.NAME.<time>-<pid>.part.EXT``, whose lock file (``... .lock``) its writer holds
(``flock``) for as long as it lives, renamed over the target only when complete. So

* an interrupted or failed write leaves the target as it was and removes its temporary;
* a temporary whose writer was killed (SIGKILL, power cut) holds no lock: the next write to
  the same target recognises it as stale and removes it;
* two writers to one target: the later one sees the earlier one's locked temporary and
  stops with an error naming it (the earlier one goes on);
* a failed rename (the target is a directory, the disk went away) removes the temporary
  and names the problem;
* a Ctrl-C that a library swallowed still stops the commit (:func:`interrupted`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import time
from pathlib import Path

from .._signals import committing, interrupted
from .errors import TTTRFileError

__all__ = [
    "CommitOnExit",
    "Staging",
    "atomic_path",
    "write_text_atomic",
    "file_mode",
    "check_free_space",
    "write_errors",
    "aborting",
    "interrupted",
]


def cannot_write(path, e: OSError) -> TTTRFileError:
    return TTTRFileError(path, f"cannot write: {e.strerror or e}")


@contextlib.contextmanager
def write_errors(path):
    """An OSError of a write (a full disk, a lost mount) as TTTRFileError naming the file
    (the writer's temporary goes when it is aborted)."""
    try:
        yield
    except OSError as e:
        raise cannot_write(path, e) from None


@contextlib.contextmanager
def aborting(writer):
    """A writer's closing steps: on any error the writer aborts (its temporary removed)
    and an OSError becomes TTTRFileError naming the file."""
    try:
        yield
    except OSError as e:
        writer.abort()
        raise cannot_write(writer.path, e) from None
    except BaseException:
        writer.abort()
        raise


class CommitOnExit:
    def open(self):
        return self

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The permissions a new file gets from the user's umask (0666 less it): what a
    temporary file (0600) is given before it is renamed into place."""
    return 0o666 & ~_umask()


def check_free_space(path, need_bytes: int) -> None:
    """Raise ENOSPC before a write of ``need_bytes`` into ``path``'s directory that the
    disk cannot take (for writers, like HDF5's, that fail badly on a full disk)."""
    try:
        st = os.statvfs(Path(path).parent)
    except OSError:
        return
    free = st.f_bavail * st.f_frsize
    if free < need_bytes:
        raise OSError(
            errno.ENOSPC,
            f"No space left on device ({free} bytes free, {need_bytes} needed)",
            str(path),
        )


class Staging:
    """The temporary file of one write to ``target``: :meth:`create` (the path to write),
    then :meth:`commit` or :meth:`abort`."""

    def __init__(self, target):
        self.target = Path(target)
        self.tmp: Path | None = None
        self._lock_fd: int | None = None

    def _pattern(self) -> str:
        return f".{self.target.name}.*.part{self.target.suffix}"

    def create(self) -> Path:
        target = self.target
        parent = target.parent if str(target.parent) else Path(".")
        if not parent.is_dir():
            raise TTTRFileError(target, f"no directory {parent}")
        if target.is_dir():
            raise TTTRFileError(target, "is a directory")
        self._sweep(None)
        key = f"{time.time_ns():020d}-{os.getpid()}"
        tmp = parent / f".{target.name}.{key}.part{target.suffix}"  # the suffix: for tools
        # the lock is on a file of its own (HDF5 locks the files it writes itself)
        fd = os.open(_lock(tmp), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.tmp, self._lock_fd = tmp, fd
        os.close(os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
        try:
            self._sweep(tmp.name)  # a writer that started just before this one wins
        except BaseException:
            self.abort()
            raise
        return tmp

    def _sweep(self, mine: str | None) -> None:
        """Remove stale temporaries of the target; stop if a live writer holds one (with
        ``mine``: only one that started before this writer)."""
        for other in sorted(self.target.parent.glob(self._pattern())):
            if other.name == mine:
                continue
            try:
                fd = os.open(_lock(other), os.O_RDONLY | os.O_CREAT, 0o600)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if mine is None or other.name < mine:
                    raise TTTRFileError(
                        self.target,
                        f"another process is writing this file (its temporary {other.name} "
                        "is locked); not writing it twice",
                    ) from None
                continue  # a later writer: it will give way
            else:  # nobody holds it: its writer died
                for p in (other, _lock(other)):
                    with contextlib.suppress(OSError):
                        p.unlink()
                shutil.rmtree(_aux(other), ignore_errors=True)
            finally:
                os.close(fd)

    def commit(self) -> Path:
        """Permissions from the umask, flushed to disk, renamed over the target."""
        tmp = self.tmp
        try:
            if interrupted():
                raise KeyboardInterrupt
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.chmod(tmp, file_mode())
            committing(self.target)
            try:
                os.replace(tmp, self.target)
            except OSError as e:
                raise TTTRFileError(
                    self.target, f"cannot put the finished file in place: {e.strerror}"
                ) from None
        except BaseException:
            self.abort()
            raise
        self._release()
        return self.target

    def aux_dir(self) -> Path:
        """A scratch directory that lives and dies with the temporary (removed on commit,
        abort, or as stale with it)."""
        d = _aux(self.tmp)
        d.mkdir()
        return d

    def abort(self) -> None:
        if self.tmp is not None:
            with contextlib.suppress(OSError):
                self.tmp.unlink()
        self._release()

    def _release(self) -> None:
        if self.tmp is not None:
            shutil.rmtree(_aux(self.tmp), ignore_errors=True)
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                _lock(self.tmp).unlink()
            os.close(self._lock_fd)
            self._lock_fd = None


def _lock(tmp: Path) -> Path:
    return tmp.with_name(tmp.name + ".lock")


def _aux(tmp: Path) -> Path:
    return tmp.with_name(tmp.name + ".d")


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success it is flushed, given the usual
    permissions and renamed over ``path``; on an exception it is removed and ``path`` is
    untouched."""
    stage = Staging(path)
    tmp = stage.create()
    try:
        yield tmp
    except BaseException:
        stage.abort()
        raise
    stage.commit()


def write_text_atomic(path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
