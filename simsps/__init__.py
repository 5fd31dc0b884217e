"""simsps: Monte Carlo simulator of single-photon emitters (nanocrystals under pulsed
excitation in a Hanbury Brown-Twiss setup) producing TTTR photon streams with ground truth.

The flat API is what is promised (submodule paths are not): ``simsps.load_model``,
``simsps.simulate`` / ``simulate_chunks`` / ``simulate_population``, ``simsps.read`` /
``simsps.write``, ``simsps.PhotonStream``, ``simsps.analysis``, ``simsps.sweep`` /
``simsps.open_sweep``. The package is layered,
lowest first: ``stream`` (the shared type), ``params`` (TOML presets, validated),
``physics`` (laws and closed forms), ``sim`` (keys, kernel, step and host_step, engine, reference),
``samples`` (populations, spectra, widefield), ``sweep`` (parameter sweeps), ``io``
(files), ``analysis`` (estimators),
``apps`` (cli, analyze report, reproduce, demo)."""

from ._signals import deferred_sigint as _deferred_sigint

with _deferred_sigint():  # a Ctrl-C inside jax's or numba's import would be lost, or crash
    from ._jax_setup import configure as _configure_jax

    _configure_jax()

    from .params.model import Model, ModelError, load_model, preset_names
    from .sim.engine import (
        simulate,
        simulate_chunks,
        simulate_population,
        simulate_population_chunks,
    )
    from .stream import PhotonStream, Source, State, Truth

__version__ = "0.1.0"

_LAZY = {
    "read": ("io", "read"),
    "write": ("io", "write"),
    "analysis": ("analysis", None),
    "io": ("io", None),
    "sweep": ("sweep", None),
    "open_sweep": ("sweep", "open_sweep"),
}


def __getattr__(name):
    """``simsps.read``, ``simsps.write``, ``simsps.analysis``, ``simsps.io``,
    ``simsps.sweep`` (callable: :func:`simsps.sweep.sweep`), ``simsps.open_sweep``: imported
    on first use (they pull in scipy, h5py, numba and xarray, which ``import simsps`` does
    not need)."""
    if name not in _LAZY:
        raise AttributeError(f"module 'simsps' has no attribute {name!r}")
    import importlib

    mod, attr = _LAZY[name]
    value = importlib.import_module(f".{mod}", __name__)
    return value if attr is None else getattr(value, attr)


__all__ = [
    "Model",
    "ModelError",
    "PhotonStream",
    "Source",
    "State",
    "Truth",
    "load_model",
    "preset_names",
    "simulate",
    "simulate_chunks",
    "simulate_population",
    "simulate_population_chunks",
    "read",
    "write",
    "analysis",
    "sweep",
    "open_sweep",
    "__version__",
]
