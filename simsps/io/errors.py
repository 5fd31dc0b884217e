"""The one error type of file input and output."""

from __future__ import annotations

__all__ = ["TTTRFileError", "TTTRFileWarning"]


class TTTRFileError(ValueError):
    """A TTTR file is truncated, corrupt, of an unsupported kind, or cannot hold a stream.

    The message names the file and what is wrong with it."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class TTTRFileWarning(UserWarning):
    """A file is readable but its header disagrees with its records (e.g. the record
    count); the message says what was read instead."""
