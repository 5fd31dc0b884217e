"""Ctrl-C and kill, handled so that no run ends with a half-written file or a lost signal.

* :func:`deferred_sigint`: while ``import simsps`` loads jax, numba and the compiled
  kernels, a SIGINT only sets a flag (a KeyboardInterrupt raised inside an extension's
  import or a garbage-collector callback is swallowed, or crashes the interpreter); it is
  raised when the import is done.
* :func:`cli_session`: the ``simsps`` command remembers every SIGINT (and turns
  SIGTERM into an orderly exit, 143), so a commit refuses even when a library caught the
  KeyboardInterrupt: :func:`interrupted`.
"""

from __future__ import annotations

import contextlib
import signal
import threading

__all__ = [
    "deferred_sigint",
    "cli_session",
    "interrupted",
    "seen",
    "final_output",
    "committing",
]

_SEEN = threading.Event()  # a SIGINT or SIGTERM arrived while a handler of ours was on
_STRICT = threading.Event()  # the command line: commits refuse after a signal


def seen() -> bool:
    return _SEEN.is_set()


def interrupted() -> bool:
    """A signal arrived and the ``simsps`` command asked commits to refuse after one."""
    return _STRICT.is_set() and _SEEN.is_set()


@contextlib.contextmanager
def deferred_sigint():
    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield  # someone else (Jupyter, a test runner, our CLI) handles it
        return
    got = []
    signal.signal(signal.SIGINT, lambda signum, frame: (got.append(signum), _SEEN.set()))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if got:
        raise KeyboardInterrupt


_FINAL: dict = {"target": None, "done": False}


def final_output(path) -> None:
    """The command's last output file: once its commit begins (:func:`committing`), the
    run is as good as finished and a SIGINT no longer stops it (no half state: either no
    file and exit 130, or the whole run and exit 0)."""
    _FINAL.update(target=None if path is None else str(path), done=False)


def committing(path) -> None:
    """Called by a commit just before its rename."""
    if _FINAL["target"] is not None and str(path) == _FINAL["target"]:
        _FINAL["done"] = True
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # to the exit, shutdown included


def _on_sigint(signum, frame):
    if _FINAL["done"]:
        return  # the output is in place: the run completes
    _SEEN.set()
    raise KeyboardInterrupt


def _on_sigterm(signum, frame):
    if _FINAL["done"]:
        return  # the output is in place: the run completes
    _SEEN.set()
    raise SystemExit(128 + signum)  # unwinds through the writers: their temporaries go


@contextlib.contextmanager
def cli_session():
    """The ``simsps`` command's handlers for one call of its ``main`` (main thread only);
    the previous handlers and a clean state come back afterwards (``main`` may be called
    from Python: a notebook, the tests)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    _reset()
    _STRICT.set()
    try:
        # a parent that ignores a signal (nohup, a script's background job): still ignored
        if before[signal.SIGINT] is not signal.SIG_IGN:
            signal.signal(signal.SIGINT, _on_sigint)
        if before[signal.SIGTERM] is not signal.SIG_IGN:
            signal.signal(signal.SIGTERM, _on_sigterm)
        yield
    finally:
        for sig, handler in before.items():
            if handler is not None:
                signal.signal(sig, handler)
        _reset()


def _reset() -> None:
    _SEEN.clear()
    _STRICT.clear()
    _FINAL.update(target=None, done=False)
