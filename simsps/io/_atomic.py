"""Writes that leave nothing half-written.

Every file simsps writes goes through a :class:`Staging`: a temporary file beside the
target, ``.NAME.<time>-<pid>.part.EXT``, written while the writer holds ``.NAME.lock``
(``flock``), renamed over the target only when complete. So

* an interrupted or failed write leaves the target as it was and removes its temporary;
* a temporary whose writer was killed (SIGKILL, power cut) is found by the next write to the
  same target, which holds the lock, and removed;
* two writers to one target: the later one finds the lock taken and stops with an error
  (the earlier one goes on);
* a failed rename (the target is a directory, the disk went away) removes the temporary
  and names the problem;
* a Ctrl-C that a library swallowed still stops the commit (:func:`interrupted`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import os
import re
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
    then :meth:`commit` or :meth:`abort`.

    The writer holds ``.NAME.lock`` (``flock``) from :meth:`create` to the end: a second
    writer to the same target fails at once; and while it is held, every temporary of the
    target on disk belongs to a writer that died, so it is removed."""

    def __init__(self, target):
        self.target = Path(target)
        self.tmp: Path | None = None
        self._lock_fd: int | None = None

    @property
    def _lock_path(self) -> Path:
        return self.target.with_name(f".{self.target.name}.lock")

    def _temporaries(self) -> list[Path]:
        name = self.target.name
        pattern = re.compile(
            rf"\.{re.escape(name)}\.\d{{20}}-\d+\.part{re.escape(self.target.suffix)}(\.d)?"
        )
        pre = f".{glob.escape(name)}.*"
        return [p for p in self.target.parent.glob(pre) if pattern.fullmatch(p.name)]

    def create(self) -> Path:
        target = self.target
        parent = target.parent if str(target.parent) else Path(".")
        if not parent.is_dir():
            raise TTTRFileError(target, f"no directory {parent}")
        if target.is_dir():
            raise TTTRFileError(target, "is a directory")
        self._lock()
        try:
            for stale in self._temporaries():  # their writers died (SIGKILL, power cut)
                if stale.is_dir():
                    shutil.rmtree(stale, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        stale.unlink()
            key = f"{time.time_ns():020d}-{os.getpid()}"
            self.tmp = parent / f".{target.name}.{key}.part{target.suffix}"  # suffix: for tools
            os.close(os.open(self.tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
        except BaseException:
            self.abort()
            raise
        return self.tmp

    def _lock(self) -> None:
        path = self._lock_path
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise TTTRFileError(
                    self.target, "another process is writing this file; not writing it twice"
                ) from None
            try:  # the lock file may have been removed by its last holder meanwhile
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self._lock_fd = fd
                return
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
            _fsync_dir(self.target.parent)
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
                self._lock_path.unlink()  # still held: no one else can have it
            os.close(self._lock_fd)
            self._lock_fd = None


def _fsync_dir(directory: Path) -> None:
    """The rename itself on disk (best effort: not every file system allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


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
