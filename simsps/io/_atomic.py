"""Writes that leave nothing half-written: the streamed writers' commit-on-success context
manager, and whole files written through a temporary file renamed over the target."""

import contextlib
import os
import tempfile
from pathlib import Path


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
    temporary file made by mkstemp (0600) is given before it is renamed into place."""
    return 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success it is flushed, given the usual
    permissions (0666 less the umask, not mkstemp's 0600) and renamed over ``path``; on an
    exception it is removed and ``path`` is untouched."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text_atomic(path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
