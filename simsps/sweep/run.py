"""Run a sweep: plan the points, simulate them in batches with their statistics reduced where
the photons are, and collect the results in an ``xarray.Dataset`` (and a Zarr store).

A *run* is one replica of one point; runs are numbered row-major over the result's
dimensions (the varied keys, or ``point``, then ``replica``) and handed out in *tasks* of
``batch_size`` consecutive runs. On an accelerator a task simulates its runs together (one
vmapped kernel call per chunk for all of them; runs whose laser or detector dead time,
afterpulsing or microtime bin differ go in separate calls); on a CPU each run is a stream of
its own and the task's runs go through a pool of threads, one per core (:func:`_threads`;
a vmapped call sizes every run's candidate slots for the brightest of them, and one stream
already keeps two cores busy: on the 2-core CI machine this is 1.2x faster, with a fifth
less CPU time, ``benchmarks/sweep.py``). Each chunk's columns go to one
:class:`~simsps.sweep.reduce.Accumulator` per run, and only the finished numbers return.
Tasks run here one after another, or on a Dask cluster (``client``), where a task is the
unit of retry: a worker lost mid-task costs that task only. With a ``store`` every finished
task is written to its region of the Zarr store at once and marked done, so a run killed
part-way and started again with ``resume`` recomputes nothing that finished. A run's numbers
depend only on the seed, its number and its parameters (:func:`~simsps.sweep.design.point_id`),
never on the batch size, the worker count or the order.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import closing
from typing import Any, Mapping

import numpy as np

from ..params.model import Model, load_model
from .design import Design, make_design, point_id, point_models
from .statistics import (
    N_SIDE_PEAKS,
    SCALARS,
    brightest_per_pulse,
    brightest_rate_cps,
    default_g2_tau_max,
    finish,
    layout_of,
    n_exponentials,
)

__all__ = ["SweepPlan", "plan_sweep", "run_task", "default_batch_size"]

_MAX_STREAMS = 8  # a stream's chunk of 2^24 pulses holds about 0.3 GB


def _threads() -> int:
    """Streams (CPU) or counters (accelerator) a task runs at once: on a Dask worker its
    threads (a LocalCluster's workers have one each), else the cores this process may use;
    at most 8."""
    n = None
    try:
        from distributed import get_worker

        n = get_worker().state.nthreads
    except (ImportError, ValueError, AttributeError):
        pass
    if not n:
        n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(int(n or 1), _MAX_STREAMS))


_CALL_SHARED = (
    ("excitation", None),
    (
        "detection",
        ("dead_time_ns", "afterpulse_probability", "afterpulse_time_constant_ns", "resolution_ps"),
    ),
)


def _call_key(m: Model) -> tuple:
    """What the runs of one engine call must share (simsps.sim.engine's shared setup)."""
    out = []
    for sec, fields in _CALL_SHARED:
        obj = getattr(m, sec)
        names = fields or [f.name for f in dataclasses.fields(obj)]
        out.append(tuple(getattr(obj, f) for f in names))
    return tuple(out)


def default_batch_size(n_runs: int) -> int:
    """Runs per task: on a CPU a handful (a few streams at once keep the cores busy; a
    task is also the unit a store writes and a cluster retries), on an accelerator as many
    as its memory holds comfortably (the kernel's arrays grow with runs x chunk; the engine
    shrinks the chunk as runs grow)."""
    import jax

    per_task = 8 if jax.default_backend() == "cpu" else 256
    return max(1, min(per_task, n_runs))


@dataclasses.dataclass(frozen=True)
class SweepPlan:
    """Everything a sweep computes from: the base model, the design, the fixed overrides,
    each point's (model, power), the acquisition, the seed and the statistics' shapes."""

    model: Model
    design: Design
    fixed: dict
    points: list  # (Model, power) per point
    duration_s: float
    seed: int
    batch_size: int
    max_counts: int  # intensity histogram: 0 .. max_counts photons per 10 ms bin
    n_micro: int  # microtime bins (the largest of the points')
    resolution_ns: float | None  # the microtime bin, when every point shares it
    g2_tau_max_s: float  # g2_log's longest delay
    g2_snap: bool  # its wide bins' edges between the laser's peaks (one period for all)
    tau_s: np.ndarray  # g2_log's bin centres (s)
    truth: bool = True

    @property
    def n_runs(self) -> int:
        return self.design.n_runs

    def tasks(self) -> list[tuple[int, int]]:
        b = self.batch_size
        return [(a, min(a + b, self.n_runs)) for a in range(0, self.n_runs, b)]

    def payload(self, start: int, stop: int) -> dict:
        """What a task needs (picklable, for Dask workers)."""
        runs = []
        for f in range(start, stop):
            p, r = self.design.run(f)
            m, power = self.points[p]
            runs.append((f, point_id(p, r), m, power))
        return dict(
            runs=runs,
            duration_s=self.duration_s,
            seed=self.seed,
            max_counts=self.max_counts,
            n_micro=self.n_micro,
            truth=self.truth,
            replicas=self.design.replicas,
            g2_tau_max_s=self.g2_tau_max_s,
            g2_snap=self.g2_snap,
        )

    def attrs(self) -> dict:
        """Provenance stored with the results (and compared when a run resumes)."""
        from .. import __version__

        return {
            "simsps_version": __version__,
            "model": self.model.name,
            "model_toml": self.model.to_toml(),
            "seed": int(self.seed),
            "duration_s": float(self.duration_s),
            "set": json.dumps(self.fixed, sort_keys=True),
            "design": json.dumps(self.design.describe(), sort_keys=True),
            "replicas": int(self.design.replicas),
            "batch_size": int(self.batch_size),
            "n_side_peaks": N_SIDE_PEAKS,
            "intensity_bin_s": 0.01,
            "g2_tau_max_s": float(self.g2_tau_max_s),
            "g2_bins_on_the_comb": int(self.g2_snap),
        }


def plan_sweep(
    model,
    vary: Mapping[str, Any],
    duration_s: float = 60.0,
    seed: int = 0,
    *,
    replicas: int = 1,
    set: Mapping[str, Any] | None = None,  # noqa: A002 (the issue's name)
    n_points: int | None = None,
    method: str | None = None,
    batch_size: int | None = None,
    g2_tau_max_s: float | None = None,
) -> SweepPlan:
    """Check every argument and every point's model (a value out of range names its point
    and key) before anything runs."""
    from .design import _check_key

    if isinstance(model, str):
        model = load_model(model)
    if not isinstance(model, Model):
        raise ValueError(f"model: a Model or a preset name, got {type(model).__name__}")
    d = float(duration_s)
    if not (math.isfinite(d) and d > 0):
        raise ValueError(f"duration_s = {duration_s!r} is out of range: allowed (0, inf) seconds")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise ValueError(f"seed = {seed!r} must be an integer in [0, 2**32)")
    fixed = {}
    for k, v in dict(set or {}).items():
        fixed[_check_key(k)] = v.item() if isinstance(v, np.generic) else v
    overlap = sorted(k for k in fixed if k in vary)
    if overlap:
        raise ValueError(f"{overlap[0]!r} is both varied and set: give it in one place")
    design = make_design(vary, replicas=replicas, n_points=n_points, method=method, seed=seed)
    points = point_models(model, design, fixed)
    from ..sim.engine import check_lifetimes
    from .reduce import TRACE_BIN_S

    periods = {float(m.sync_period_ps) for m, _ in points}
    snap = len(periods) == 1  # one comb for every point: the log bins' edges between peaks
    if g2_tau_max_s is None:
        tau_max = default_g2_tau_max(d)
    else:
        tau_max = float(g2_tau_max_s)
        if not (math.isfinite(tau_max) and tau_max > 0):
            raise ValueError(f"g2_tau_max_s = {g2_tau_max_s!r} must be a positive number of s")
    layouts = []
    for i, (m, _) in enumerate(points):
        try:
            check_lifetimes(m)
            # the trace, the pair geometry and the log bins must fit the acquisition
            layouts.append(layout_of(m, d, g2_tau_max_s=tau_max, snap=snap))
        except ValueError as e:
            raise type(e)(f"sweep point {i}: {e}") from None
    log = layouts[0].log
    tau_s = (
        np.zeros(0)
        if log is None
        else np.sqrt(log.geometry.edges[:-1] * log.geometry.edges[1:].astype(float)) / 1e12
    )
    n_pulses = [int(round(d * m.excitation.rep_rate_hz)) for m, _ in points]
    if min(n_pulses) < 1:
        raise ValueError(f"duration_s = {duration_s!r} is shorter than one laser period")
    if d < 0.02:
        raise ValueError(
            f"duration_s = {duration_s!r}: a sweep's statistics need at least two 10 ms "
            "intensity bins (0.02 s)"
        )
    # the intensity histogram's range: the brightest state's mean photons per 10 ms bin
    # (its detected photons per pulse, the noise, afterpulses of both), plus 8 sd
    top = max(brightest_per_pulse(m, p) * TRACE_BIN_S * m.excitation.rep_rate_hz for m, p in points)
    max_counts = int(math.ceil(top + 8 * math.sqrt(top) + 10))
    micro = {lay.n_micro for lay in layouts}
    res = {float(m.detection.resolution_ps) for m, _ in points}
    if batch_size is None:
        batch_size = default_batch_size(design.n_runs)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise ValueError(f"batch_size = {batch_size!r} must be a whole number")
    if batch_size < 1:
        raise ValueError(f"batch_size = {batch_size!r} must be at least 1")
    return SweepPlan(
        model=model,
        design=design,
        fixed=fixed,
        points=points,
        duration_s=d,
        seed=int(seed),
        batch_size=int(batch_size),
        max_counts=max_counts,
        n_micro=max(micro),
        resolution_ns=(res.pop() / 1e3) if len(res) == 1 else None,
        g2_tau_max_s=tau_max,
        g2_snap=snap,
        tau_s=tau_s,
    )


def run_task(payload: dict) -> dict:
    """Simulate a task's runs and reduce them: {"start", "stop", "values": name -> array with
    a leading run axis, "warnings": one string per run}. Runs here or on a Dask worker."""
    import jax

    runs = payload["runs"]
    counting = payload.get("counting", "auto")
    if counting not in ("auto", "host", "device"):
        raise ValueError(f"counting = {counting!r}: choose 'auto', 'host' or 'device'")
    if counting != "device" and jax.default_backend() == "cpu":
        results = _runs_one_by_one(payload)
    else:
        results = _runs_in_batches(payload)
    return {
        "start": runs[0][0],
        "stop": runs[-1][0] + 1,
        "values": _stack([r[0] for r in results], payload["n_micro"]),
        "warnings": ["\n".join(r[1]) for r in results],
    }


def _runs_one_by_one(payload: dict) -> list:
    """A CPU's task: each run a stream of its own, in a pool of threads (:func:`_threads`).
    The first error, or an interrupt, stops the other runs before their next chunk (their
    files removed) and is raised."""
    runs = payload["runs"]
    stop = threading.Event()
    pool = ThreadPoolExecutor(min(_threads(), len(runs)), thread_name_prefix="simsps-run")
    try:
        futures = [pool.submit(_one_run, payload, stop, run) for run in runs]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in futures if f in done and f.exception() is not None]
        if failed:  # (a run's own error: stop is set only here and on the way out)
            stop.set()
            for f in futures:
                f.cancel()  # those not started
            wait(futures)
            raise failed[0].exception()
        return [f.result() for f in futures]
    except BaseException:
        stop.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _one_run(payload: dict, stop: threading.Event, run: tuple):
    """One run as a stream of its own (one NC, one engine call), counted chunk by chunk as
    the engine makes the next (the kernel is queued before a chunk is handed over); its
    (values, warnings). ``stop`` set: it stops before its next chunk (its files removed;
    a chunk is up to 2^24 pulses, 6.7 s at 2.5 MHz, a fraction of a second's work)."""
    if stop.is_set():
        raise _Stopped
    from ..sim.engine import DEFAULT_CHUNK_PULSES, _population_chunks, _stream_of_columns
    from .files import open_writers
    from .reduce import Accumulator

    flat, key_id, m, power = run
    duration = payload["duration_s"]
    layout = layout_of(m, duration, g2_tau_max_s=payload["g2_tau_max_s"], snap=payload["g2_snap"])
    acc = Accumulator(layout, rate_cps=brightest_rate_cps(m, power))
    chunks = _population_chunks(
        [m], duration, [power], payload["seed"], spot=None, chunk_pulses=DEFAULT_CHUNK_PULSES,
        progress=None, truth=payload["truth"], stage="auto", columns=True,
        ids=np.array([key_id], np.int64),
    )  # fmt: skip
    described = [(flat, key_id, *divmod(flat, payload["replicas"]), m, power)]
    with closing(chunks), open_writers(payload.get("files"), described, payload) as writers:
        for chunk in chunks:
            if stop.is_set():
                raise _Stopped
            cols = chunk.columns[0]
            acc.add(cols)
            acc.grey_pulses += int(chunk.grey_pulses[0])
            acc.bleach_time_s = float(chunk.bleach_time_s[0])
            for w in writers or ():
                w.write(
                    _stream_of_columns(
                        cols, chunk.stop, layout.period_ps, layout.resolution_ps,
                        chunk.bleach_time_s[:1], {},
                    )
                )  # fmt: skip
    return finish(acc, m, power, payload["max_counts"])


class _Stopped(Exception):
    """A run given up because the task stops (its caller raises the reason)."""


def _runs_in_batches(payload: dict) -> list:
    """An accelerator's task (or a CPU's asked to count as one would, ``counting =
    "device"``): its runs together in vmapped engine calls, counted on the device where
    the layout allows, else by the host's counters in a pool of threads."""
    from ..sim.engine import DEFAULT_CHUNK_PULSES, _population_chunks, _stream_of_columns
    from .files import open_writers
    from .reduce import Accumulator

    runs = payload["runs"]
    duration, seed = payload["duration_s"], payload["seed"]
    replicas = payload["replicas"]
    results: list = [None] * len(runs)
    # consecutive runs that can share one engine call
    groups: list[list[int]] = []
    for j, (_, _, m, _) in enumerate(runs):
        if groups and _call_key(runs[groups[-1][0]][2]) == _call_key(m):
            groups[-1].append(j)
        else:
            groups.append([j])
    for group in groups:
        models = [runs[j][2] for j in group]
        powers = [runs[j][3] for j in group]
        ids = np.array([runs[j][1] for j in group], np.int64)
        layout = layout_of(
            models[0], duration, g2_tau_max_s=payload["g2_tau_max_s"], snap=payload["g2_snap"]
        )
        on_device = _counting_on_device(payload.get("counting", "auto"), layout, payload)
        described = [
            (runs[j][0], runs[j][1], *divmod(runs[j][0], replicas), runs[j][2], runs[j][3])
            for j in group
        ]
        chunks = _population_chunks(
            models,
            duration,
            powers,
            seed,
            spot=None,
            chunk_pulses=DEFAULT_CHUNK_PULSES,
            progress=None,
            truth=payload["truth"],
            stage="records" if on_device else "auto",
            columns=not on_device,
            ids=ids,
        )
        if on_device:  # the counts stay on the device; the few near-edge photons come over
            from .device import DeviceCounts

            counts = DeviceCounts(layout, len(group), truth=payload["truth"])
            with open_writers(payload.get("files"), described, payload) as writers:
                for chunk in chunks:
                    counts.add(chunk)
                    if writers:
                        _write_device_chunk(writers, chunk, layout)
            for j, acc, m in zip(group, counts.accumulators(), models):
                results[j] = finish(acc, m, runs[j][3], payload["max_counts"])
            continue
        # a chunk's counting runs on the pool's threads (numba releases the GIL) while the
        # engine makes the next chunk; a run's chunks are counted in order
        accs = [
            Accumulator(layout, rate_cps=brightest_rate_cps(m, p)) for m, p in zip(models, powers)
        ]
        pending: list = []
        with (
            open_writers(payload.get("files"), described, payload) as writers,
            ThreadPoolExecutor(_threads(), thread_name_prefix="simsps-count") as pool,
        ):
            for chunk in chunks:
                for f in pending:
                    f.result()
                pending = [pool.submit(acc.add, cols) for acc, cols in zip(accs, chunk.columns)]
                for acc, grey, b in zip(accs, chunk.grey_pulses, chunk.bleach_time_s):
                    acc.grey_pulses += int(grey)
                    acc.bleach_time_s = float(b)
                for j, w in enumerate(writers or ()):
                    w.write(
                        _stream_of_columns(
                            chunk.columns[j],
                            chunk.stop,
                            layout.period_ps,
                            layout.resolution_ps,
                            chunk.bleach_time_s[j : j + 1],
                            {},
                        )
                    )
            for f in pending:
                f.result()
            done = pool.map(
                lambda j, acc, m: finish(acc, m, runs[j][3], payload["max_counts"]),
                group,
                accs,
                models,
            )
            for j, r in zip(group, done):
                results[j] = r
    return results


def _counting_on_device(counting: str, layout, payload) -> bool:
    """Count on the accelerator ("auto", "device"; on a CPU only when asked, the numba
    counters are faster there) unless the layout needs the host's 64-bit times."""
    if counting == "host":
        return False
    from .device import DeviceLayout

    try:
        DeviceLayout.of(layout, payload["truth"])
    except NotImplementedError:
        return False
    return True


def _write_device_chunk(writers, chunk, layout) -> None:
    """The dataset factory on an accelerator: the records come to the host to be written."""
    from ..sim.engine import _columns, _records_to_host, _stream_of_columns

    recs = _records_to_host(chunk.records)
    members = np.arange(len(recs))[:, None]
    for j, w in enumerate(writers):
        cols = _columns(recs[j], chunk.start, layout.period_ps, layout.resolution_ps, members[j])
        w.write(
            _stream_of_columns(
                cols, chunk.stop, layout.period_ps, layout.resolution_ps,
                np.asarray(chunk.bleach_time_s)[j : j + 1], {},
            )
        )  # fmt: skip


def _stack(values: list[dict], n_micro: int) -> dict:
    out = {}
    for name in values[0]:
        arrs = [np.asarray(v[name]) for v in values]
        if name == "microtime_counts":  # points with shorter periods: zeros past theirs
            arrs = [np.pad(a, ((0, 0), (0, n_micro - a.shape[1]))) for a in arrs]
        out[name] = np.stack(arrs)
    return out


# ---- the result ------------------------------------------------------------------------

VARIABLES = {
    # name: (extra dims, dtype, fill, units / description)
    "count_rate_cps": (("channel",), np.float64, np.nan, "photons per second per detector"),
    "peak_area": (("peak",), np.float64, np.nan, "coincidences per whole-period window"),
    "g2_zero": ((), np.float64, np.nan, "raw g2(0): centre over mean side peak"),
    "g2_zero_stderr_raw": ((), np.float64, np.nan, "jackknife error of g2_zero"),
    "g2_zero_corrected": ((), np.float64, np.nan, "g2(0) with background and afterpulses out"),
    "g2_zero_stderr": ((), np.float64, np.nan, "error of g2_zero_corrected"),
    "truth_g2_zero": ((), np.float64, np.nan, "raw g2(0) of the emitter photons (truth)"),
    "g2": (("tau_s",), np.float64, np.nan, "g2 on log-spaced delays (background undone)"),
    "g2_stderr": (("tau_s",), np.float64, np.nan, "jackknife error of g2"),
    "bunching_amplitude": ((), np.float64, np.nan, "bunching over the long-delay plateau"),
    "bunching_amplitude_stderr": ((), np.float64, np.nan, "its error"),
    "tau_c_s": ((), np.float64, np.nan, "correlation time of the bunching"),
    "tau_c_stderr_s": ((), np.float64, np.nan, "its error"),
    "microtime_counts": (("channel", "microtime_ns"), np.int64, 0, "photons per microtime bin"),
    "lifetime_ns": (("component",), np.float64, np.nan, "fitted lifetimes, ascending"),
    "lifetime_stderr_ns": (("component",), np.float64, np.nan, "their errors"),
    "intensity_histogram": (
        ("intensity_counts",),
        np.int64,
        0,
        "10 ms bins holding each number of photons",
    ),
    "intensity_overflow_bins": ((), np.int64, 0, "10 ms bins above the histogram's range"),
    "bleach_time_s": ((), np.float64, np.nan, "when the NC bleached (inf: not; truth)"),
    "grey_fraction": ((), np.float64, np.nan, "fraction of the pulses spent charged (truth)"),
}


def empty_results(plan: SweepPlan) -> dict:
    """Full-size arrays of every variable, filled with their fill values (NaN, 0, "")."""
    sizes = _sizes(plan)
    out = {}
    for name, (dims, dtype, fill, _) in VARIABLES.items():
        out[name] = np.full((plan.n_runs, *(sizes[d] for d in dims)), fill, dtype)
    out["warnings"] = np.full(plan.n_runs, "", dtype=object)
    out["done"] = np.zeros(plan.n_runs, bool)
    return out


def _sizes(plan: SweepPlan) -> dict:
    return {
        "channel": 2,
        "peak": 2 * N_SIDE_PEAKS + 1,
        "microtime_ns": plan.n_micro,
        "component": 2,
        "intensity_counts": plan.max_counts + 1,
        "tau_s": len(plan.tau_s),
    }


def flat_dataset(plan: SweepPlan, arrays: dict):
    """The results along one ``run`` dimension (what the Zarr store holds), with each run's
    point, replica and varied values as coordinates."""
    import xarray as xr

    design = plan.design
    flat = np.arange(plan.n_runs)
    point, replica = np.divmod(flat, design.replicas)
    coords: dict = {
        "run": flat,
        "point": ("run", point),
        "replica": ("run", replica),
        "channel": [0, 1],
        "peak": np.arange(-N_SIDE_PEAKS, N_SIDE_PEAKS + 1),
        "component": [0, 1],
        "intensity_counts": np.arange(plan.max_counts + 1),
        "tau_s": plan.tau_s,
    }
    for k in design.keys:
        coords[k] = ("run", np.asarray(design.values[k])[point])
    if plan.resolution_ns is not None:  # bin starts; else bins of each point's own width
        coords["microtime_ns"] = np.arange(plan.n_micro) * plan.resolution_ns
    data = {}
    for name, (dims, _, _, doc) in VARIABLES.items():
        if plan.resolution_ns is None:
            dims = tuple("microtime_bin" if d == "microtime_ns" else d for d in dims)
        data[name] = (("run", *dims), arrays[name], {"description": doc})
    data["warnings"] = ("run", arrays["warnings"], {"description": "why a number is NaN"})
    data["done"] = ("run", arrays["done"], {"description": "run finished and written"})
    ds = xr.Dataset(data, coords=coords, attrs=plan.attrs())
    ds["channel"].attrs["description"] = "detector"
    ds["peak"].attrs["description"] = "offset of the coincidence window, laser periods"
    return ds


def gridded(ds):
    """A flat (``run``) result as the sweep's Dataset: one dimension per varied key (or
    ``point`` for a random design), then ``replica`` when there are several; the values
    in the order the sweep gave them."""
    import xarray as xr

    design = json.loads(ds.attrs["design"])
    keys = design["keys"]
    replicas = int(ds.attrs["replicas"])
    if design["grid"] is not None:
        dims = list(keys)
        shape = [len(design["grid"][k]) for k in keys]
        coords = {k: np.asarray(design["grid"][k]) for k in keys}
    else:
        dims, shape = ["point"], [len(next(iter(design["values"].values())))]
        coords = {"point": np.arange(shape[0])}
        coords.update({k: ("point", np.asarray(design["values"][k])) for k in keys})
    if replicas > 1:
        dims.append("replica")
        shape.append(replicas)
        coords["replica"] = np.arange(replicas)
    run_coords = {"run", "point", "replica", *keys}
    data = {}
    for name, var in ds.data_vars.items():
        if name == "done":
            continue
        rest = [d for d in var.dims if d != "run"]
        values = np.asarray(var.values).reshape(*shape, *var.shape[1:])
        data[name] = (dims + rest, values, var.attrs)
    for name, c in ds.coords.items():
        if name not in run_coords and name not in coords and "run" not in c.dims:
            coords[name] = c
    return xr.Dataset(data, coords=coords, attrs=ds.attrs)


__all__ += ["VARIABLES", "empty_results", "flat_dataset", "gridded", "n_exponentials", "SCALARS"]
