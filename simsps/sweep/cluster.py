"""Dask clusters for sweeps (the ``distributed`` extra: ``pip install simsps[distributed]``).

A sweep task simulates a batch of runs and keeps every core of its machine busy (XLA's
threads for the kernel, numba's for the chunk step), so a worker runs one task at a time:
one thread per worker process, one process per machine or job.

* :func:`local_cluster`: ``n_workers`` processes on this machine, bound to 127.0.0.1
  (``simsps sweep --workers N``);
* :func:`connect`: a running scheduler (``simsps sweep --scheduler tcp://host:8786``);
* :func:`slurm_cluster`: a ``dask_jobqueue.SLURMCluster`` whose every job is one worker
  with the node's cores for simsps (``job_cpu``) and one Dask thread; scale it with
  ``cluster.scale(jobs=N)`` or ``cluster.adapt(maximum_jobs=N)``, then pass
  ``distributed.Client(cluster)`` to :func:`simsps.sweep`. ``cluster.job_script()`` shows the
  sbatch script before anything is submitted.

Example for a cluster with 32-core nodes (the workers need simsps installed in the same
environment as ``python``)::

    from distributed import Client
    from simsps.sweep.cluster import slurm_cluster
    cluster = slurm_cluster(cores=32, memory="64GB", walltime="04:00:00",
                            queue="compute", account="myproject")
    cluster.scale(jobs=8)
    ds = simsps.sweep("zn-treated", vary={...}, client=Client(cluster), store="sweep.zarr")
"""

from __future__ import annotations

import sys

__all__ = ["local_cluster", "connect", "slurm_cluster"]


def _need_distributed():
    try:
        import distributed
    except ImportError:
        raise ImportError(
            "Dask execution needs the distributed extra: pip install 'simsps[distributed]'"
        ) from None
    return distributed


def local_cluster(n_workers: int):
    """(cluster, client): ``n_workers`` worker processes here, one thread each, every
    address on 127.0.0.1 (no port reachable from outside)."""
    distributed = _need_distributed()
    if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
        raise ValueError(f"workers = {n_workers!r} must be a whole number >= 1")
    cluster = distributed.LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
    )
    return cluster, distributed.Client(cluster)


def connect(address: str):
    """A client of the scheduler at ``address`` (e.g. ``tcp://10.0.0.5:8786``)."""
    distributed = _need_distributed()
    try:
        return distributed.Client(address, timeout="30s")
    except OSError as e:
        raise OSError(f"cannot reach the Dask scheduler at {address}: {e}") from None


def slurm_cluster(
    *,
    cores: int,
    memory: str,
    walltime: str = "02:00:00",
    queue: str | None = None,
    account: str | None = None,
    python: str | None = None,
    job_extra_directives: list[str] | None = None,
    scheduler_host: str | None = None,
    **kwargs,
):
    """A ``dask_jobqueue.SLURMCluster`` for sweeps: every job is one worker process with one
    Dask thread that uses the job's ``cores`` CPUs (booked with ``--cpus-per-task``);
    ``memory`` per job (e.g. "64GB"), ``walltime`` HH:MM:SS, ``queue`` (partition) and
    ``account`` as SLURM knows them; ``python`` the interpreter with simsps (default this
    one). ``kwargs`` go to ``SLURMCluster``. Nothing is submitted until it is scaled."""
    _need_distributed()
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:
        raise ImportError(
            "SLURM clusters need dask-jobqueue: pip install 'simsps[distributed]'"
        ) from None
    if isinstance(cores, bool) or not isinstance(cores, int) or cores < 1:
        raise ValueError(f"cores = {cores!r} must be a whole number >= 1")
    opts = dict(
        cores=1,  # one Dask thread: a task keeps the job's cores busy itself
        processes=1,
        job_cpu=cores,
        memory=memory,
        walltime=walltime,
        queue=queue,
        account=account,
        python=python or sys.executable,
        job_extra_directives=list(job_extra_directives or []),
        job_script_prologue=[f"export OMP_NUM_THREADS={cores}"],
    )
    if scheduler_host is not None:
        opts["scheduler_options"] = {"host": scheduler_host}
    opts.update(kwargs)
    return SLURMCluster(**opts)
