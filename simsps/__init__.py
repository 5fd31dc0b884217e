"""simsps: Monte Carlo simulator of single-photon emitters (nanocrystals under pulsed
excitation in a Hanbury Brown-Twiss setup) producing TTTR photon streams with ground truth."""

from ._jax_setup import configure as _configure_jax

_configure_jax()

from .engine import (simulate, simulate_chunks, simulate_population,  # noqa: E402
                     simulate_population_chunks)
from .model import Model, ModelError, load_model, preset_names  # noqa: E402
from .stream import PhotonStream, Source, State, Truth  # noqa: E402

__version__ = "0.1.0"

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
    "__version__",
]
