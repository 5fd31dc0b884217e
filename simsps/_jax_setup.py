"""Persistent JAX compilation cache, so repeated runs (and CI) skip recompiling kernels.

Set ``SIMSPS_JAX_CACHE=0`` to leave JAX's configuration alone, or to a directory to choose it.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax


def configure() -> None:
    setting = os.environ.get("SIMSPS_JAX_CACHE", "")
    if setting == "0" or jax.config.jax_compilation_cache_dir:
        return
    if setting:
        path = Path(setting)
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        path = base / "simsps" / "jax"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
