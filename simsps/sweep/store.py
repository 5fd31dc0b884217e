"""The Zarr store of a sweep: every variable along one ``run`` dimension, written a task's
region at a time, with a ``done`` flag per run written after the run's numbers.

The store is created complete (every array at full size, filled with NaN, 0 or "") in a
temporary folder beside the target and renamed into place, so a store at ``path`` is never
half-made. A task's numbers are written to their region, then its ``done`` flags: a run
killed between the two is simply computed again on ``resume``. A resumed run must ask for
the same sweep (model, design, seed, duration, overrides, batch size): anything else is
refused, naming what differs.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .run import VARIABLES, SweepPlan, empty_results, flat_dataset

__all__ = ["SweepStore", "open_flat", "check_store"]

# attributes that make two sweeps the same sweep (the version may differ: a resumed run with
# an updated simsps is the user's call, and the version written is the creating one)
_IDENTITY = ("model_toml", "seed", "duration_s", "set", "design", "batch_size", "n_side_peaks")


def _open(path):
    import xarray as xr

    return xr.open_zarr(path, consolidated=False)


def open_flat(path):
    """The store at ``path`` as the flat (``run``) Dataset, loaded into memory."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such sweep store")
    try:
        return _open(path).load()
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"{path} is not a readable simsps sweep store ({e})") from None


def check_store(path, plan: SweepPlan, *, resume: bool) -> None:
    """Raise what :class:`SweepStore` would (a store in the way, or another sweep's),
    before any work."""
    path = Path(path)
    if path.exists():
        if not resume:
            raise FileExistsError(
                f"{path} exists: pass resume (--resume) to continue that sweep, or choose "
                "another path"
            )
        SweepStore.__new__(SweepStore)._check(path, plan)


class SweepStore:
    """Create (or, with ``resume``, reopen) the store of ``plan`` at ``path``."""

    def __init__(self, path, plan: SweepPlan, *, resume: bool = False):
        self.path = Path(path)
        self.plan = plan
        if self.path.exists():
            if not resume:
                raise FileExistsError(
                    f"{self.path} exists: pass resume (--resume) to continue that sweep, "
                    "or choose another path"
                )
            self.done = self._check(self.path, plan)
        else:
            self._create()
            self.done = np.zeros(plan.n_runs, bool)

    def _check(self, path, plan) -> np.ndarray:
        try:
            ds = _open(path)
        except (OSError, ValueError, KeyError) as e:
            raise ValueError(
                f"{path} is not a readable simsps sweep store ({e}); remove it or "
                "choose another path"
            ) from None
        want = plan.attrs()
        for key in _IDENTITY:
            have = ds.attrs.get(key)
            if have != want[key] and not _same_json(have, want[key]):
                raise ValueError(
                    f"{path} holds another sweep: its {key} differs from this one's "
                    f"({_short(have)} against {_short(want[key])}); resume it with the same "
                    "arguments, or choose another path"
                )
        if "done" not in ds or ds["done"].shape != (plan.n_runs,):
            raise ValueError(f"{path} is not a complete simsps sweep store")
        return np.asarray(ds["done"].values, bool)

    def _create(self) -> None:
        plan = self.plan
        ds = flat_dataset(plan, empty_results(plan))
        b = plan.batch_size
        encoding = {}
        for name, var in ds.data_vars.items():
            encoding[name] = {"chunks": (b, *var.shape[1:])}
        parent = self.path.parent
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", dir=parent))
        try:
            ds.to_zarr(tmp, mode="w", encoding=encoding, consolidated=False)
            _chmod_tree(tmp)
            os.replace(tmp, self.path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def write(self, result: dict) -> None:
        """Write one task's numbers, then mark its runs done."""
        import xarray as xr

        a, b = result["start"], result["stop"]
        region = {"run": slice(a, b)}
        data = {}
        for name, values in result["values"].items():
            dims = VARIABLES[name][0]
            if self.plan.resolution_ns is None:
                dims = tuple("microtime_bin" if d == "microtime_ns" else d for d in dims)
            data[name] = (("run", *dims), values)
        data["warnings"] = ("run", np.asarray(result["warnings"], dtype=object))
        xr.Dataset(data).to_zarr(self.path, region=region, consolidated=False)
        done = xr.Dataset({"done": ("run", np.ones(b - a, bool))})
        done.to_zarr(self.path, region=region, consolidated=False)
        self.done[a:b] = True


def _same_json(a, b) -> bool:
    try:
        return json.loads(a) == json.loads(b)
    except (TypeError, ValueError):
        return False


def _short(x) -> str:
    s = repr(x)
    return s if len(s) < 60 else s[:57] + "..."


def _chmod_tree(root: Path) -> None:
    """mkdtemp leaves 0700: give the store the permissions the user's umask gives."""
    mask = os.umask(0)
    os.umask(mask)
    for dirpath, _dirs, filenames in os.walk(root):
        os.chmod(dirpath, 0o777 & ~mask)
        for f in filenames:
            os.chmod(os.path.join(dirpath, f), 0o666 & ~mask)
