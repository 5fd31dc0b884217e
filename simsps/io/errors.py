"""The one error type of file input and output."""

from __future__ import annotations

__all__ = ["TTTRFileError"]


class TTTRFileError(ValueError):
    """A TTTR file is truncated, corrupt, of an unsupported kind, or cannot hold a stream.

    The message names the file and what is wrong with it."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
