"""Executors of a sweep's tasks: here, one after another, or on a Dask cluster; each
finished task goes to the store (when there is one) at once."""

from __future__ import annotations

import numpy as np

from .run import SweepPlan, empty_results, flat_dataset, gridded, run_task

__all__ = ["execute"]


def _bar(progress, total: int):
    if not progress:
        return None
    if progress is True:
        from tqdm.auto import tqdm

        return tqdm(total=total, unit="run", desc="sweep", delay=1.0)
    return progress


def execute(
    plan: SweepPlan,
    *,
    client=None,
    store=None,
    resume: bool = False,
    progress=None,
    write_files=None,
    file_format: str = "ptu",
):
    """Run the tasks of ``plan`` that are not done; returns the gridded Dataset."""
    from .files import FileFactory

    files = FileFactory(write_files, plan, file_format) if write_files is not None else None
    st = None
    if store is not None:
        from .store import SweepStore

        st = SweepStore(store, plan, resume=resume)
    elif resume:
        raise ValueError("resume needs a store (the Zarr folder of the sweep to continue)")
    arrays = empty_results(plan)
    tasks = plan.tasks()
    done = st.done if st is not None else np.zeros(plan.n_runs, bool)
    todo = [(a, b) for a, b in tasks if not done[a:b].all()]
    bar = _bar(progress, plan.n_runs)
    if bar is not None:
        bar.update(plan.n_runs - sum(b - a for a, b in todo))

    def payload(a, b):
        p = plan.payload(a, b)
        if files is not None:
            p["files"] = files.task_options()
        return p

    def take(result):
        a, b = result["start"], result["stop"]
        if st is not None:
            st.write(result)
        for name, values in result["values"].items():
            arrays[name][a:b] = values
        arrays["warnings"][a:b] = result["warnings"]
        arrays["done"][a:b] = True
        if bar is not None:
            bar.update(b - a)

    try:
        if client is None:
            for a, b in todo:
                take(run_task(payload(a, b)))
        else:
            _on_dask(client, [payload(a, b) for a, b in todo], take)
    finally:
        if bar is not None and progress is True:
            bar.close()
    if st is not None:  # the whole store: runs done by earlier, interrupted attempts too
        from .store import open_flat

        flat = open_flat(st.path)
    else:
        flat = flat_dataset(plan, arrays)
    if files is not None:
        files.finish(flat)
    return gridded(flat)


def _on_dask(client, payloads: list, take) -> None:
    """Submit every task (a worker lost mid-task: Dask runs it again, up to twice more);
    results are taken as they finish, in any order."""
    from distributed import as_completed

    futures = [client.submit(run_task, p, retries=2, pure=False) for p in payloads]
    try:
        for fut in as_completed(futures):
            take(fut.result())
    except BaseException:
        for f in futures:
            f.cancel()
        raise
