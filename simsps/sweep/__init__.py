"""Parameter sweeps: many points of a model simulated in batches, the statistics of each
reduced where its photons are, the results as an ``xarray.Dataset`` (and a Zarr store).

    ds = simsps.sweep("zn-treated", vary={"biexciton.quantum_yield": [0.02, 0.1, 0.3],
                                          "power": [0.5, 1, 3]}, duration_s=60, seed=0)
    ds.g2_zero_corrected.sel(power=1.0)

The design (:mod:`simsps.sweep.design`), the counts per point (:mod:`~simsps.sweep.reduce`),
the estimates from them (:mod:`~simsps.sweep.statistics`, each variable documented there),
the batches and executors (:mod:`~simsps.sweep.run`), the store
(:mod:`~simsps.sweep.store`), the dataset factory (:mod:`~simsps.sweep.files`) and the
plots (:mod:`~simsps.sweep.plot`).
"""

from __future__ import annotations

import sys
import types
from typing import Any, Mapping

from .design import Uniform, loguniform, make_design, uniform

__all__ = ["sweep", "open_sweep", "uniform", "loguniform", "make_design", "Uniform"]


def sweep(
    model,
    vary: Mapping[str, Any],
    duration_s: float = 60.0,
    seed: int = 0,
    *,
    replicas: int = 1,
    set: Mapping[str, Any] | None = None,  # noqa: A002 (a sweep's fixed overrides)
    n_points: int | None = None,
    method: str | None = None,
    client=None,
    store=None,
    resume: bool = False,
    batch_size: int | None = None,
    write_files=None,
    file_format: str = "ptu",
    g2_tau_max_s: float | None = None,
    progress=None,
):
    """Simulate every point of a design and return its statistics as an ``xarray.Dataset``.

    ``model``: a Model or a preset name. ``vary``: ``{key: [values]}`` for a grid (every
    combination; ``key`` is ``"power"``, in units of Psat, or any dotted model key), or
    ``{key: uniform(lo, hi)}`` for a random design of ``n_points`` points (``method``
    "sobol", the default, or "lhs"). ``set``: overrides applied to every point.
    ``replicas``: independent repetitions of each point (a ``replica`` dimension).
    Each point runs for ``duration_s`` seconds; its random numbers depend only on ``seed``,
    its number and its parameters.

    ``client``: a ``distributed.Client`` to run the batches on a Dask cluster (default:
    here, one batch after another, every core busy). ``store``: a Zarr folder the results
    go to batch by batch (refused if it exists, unless ``resume``: then only what is not
    done yet is computed). ``write_files``: a folder to write each run's stream to
    (``file_format`` "ptu" or "photon-hdf5") with a ``manifest.csv``. ``progress``: True
    for a bar over the runs. ``g2_tau_max_s``: the longest delay of the g2 on log-spaced
    delays (default 10 ms, less for short acquisitions; see :mod:`simsps.sweep.statistics`).
    """
    from .run import plan_sweep
    from .runner import execute

    plan = plan_sweep(
        model,
        vary,
        duration_s,
        seed,
        replicas=replicas,
        set=set,
        n_points=n_points,
        method=method,
        batch_size=batch_size,
        g2_tau_max_s=g2_tau_max_s,
    )
    return execute(
        plan,
        client=client,
        store=store,
        resume=resume,
        progress=progress,
        write_files=write_files,
        file_format=file_format,
    )


def open_sweep(path):
    """The Dataset of a sweep's Zarr store (as :func:`sweep` returns it); runs not done
    yet hold NaN, 0 or "" (the flat store's ``done`` says which)."""
    from .run import gridded
    from .store import open_flat

    return gridded(open_flat(path))


class _CallableModule(types.ModuleType):
    """``simsps.sweep`` is this package and the function at once: importing a submodule
    (``simsps.sweep.run``) sets the package as the attribute of ``simsps``, so the package
    itself calls :func:`sweep` (``simsps.sweep(...)``, ``simsps.sweep.uniform(...)``)."""

    def __call__(self, *args, **kwargs):
        return sweep(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
