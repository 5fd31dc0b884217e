"""The dataset factory: every run of a sweep also written as a TTTR file, with a manifest.

For analysis code to be validated against known truth: each run's stream goes to
``DIR/point_PPPPPP_rRRR.ptu`` (PicoHarp T3 PTU, the model TOML and the run's parameters in
its header) or ``.h5`` (Photon-HDF5, with the ground truth per photon), written chunk by
chunk by the task that simulates it (files appear under their names only when complete).
``DIR/manifest.csv`` lists one row per run: point, replica, key id, every varied
parameter, seed, duration, file, and the truth summaries of the run (count rates, the
emitter photons' g2(0), the grey fraction, the bleach time) beside the statistics the sweep
measured (g2(0) corrected with its error, lifetimes).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
from pathlib import Path

import numpy as np

from ..io._atomic import write_text_atomic

__all__ = ["FileFactory", "FORMATS", "file_name", "open_writers"]

FORMATS = {"ptu": ".ptu", "photon-hdf5": ".h5"}


def file_name(point: int, replica: int, fmt: str) -> str:
    return f"point_{point:06d}_r{replica:03d}{FORMATS[fmt]}"


class FileFactory:
    """Client side: checks the folder and format, and writes the manifest at the end."""

    def __init__(self, folder, plan, fmt: str = "ptu"):
        if fmt not in FORMATS:
            raise ValueError(f"file format {fmt!r}: choose one of {', '.join(FORMATS)}")
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise NotADirectoryError(f"{self.folder} exists and is not a folder")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.plan = plan
        self.fmt = fmt
        if fmt == "ptu":  # refuse a time base the PTU records cannot hold before any work
            from ..io.ptu import RECORD_FORMATS, check_resolution

            for m, _ in plan.points:
                check_resolution(
                    RECORD_FORMATS["picoharp-t3"],
                    float(m.sync_period_ps),
                    float(m.detection.resolution_ps),
                )

    def task_options(self) -> dict:
        return {"dir": str(self.folder), "format": self.fmt}

    def finish(self, ds=None) -> Path:
        """Write ``manifest.csv`` for the runs that are done (``ds``: the flat results)."""
        plan = self.plan
        design = plan.design
        keys = list(design.keys)
        rows = []
        for f in range(plan.n_runs):
            p, r = design.run(f)
            path = self.folder / file_name(p, r, self.fmt)
            if not path.exists():
                continue
            from .design import point_id

            row = {"run": f, "point": p, "replica": r, "key_id": point_id(p, r)}
            row.update({k: design.point(p)[k] for k in keys})
            m, power = plan.points[p]
            row.update(power=power, seed=plan.seed, duration_s=plan.duration_s, file=path.name)
            if ds is not None:
                sel = ds.isel(run=f)
                rate = sel["count_rate_cps"].values
                row.update(
                    count_rate_cps_0=_num(rate[0]),
                    count_rate_cps_1=_num(rate[1]),
                    truth_g2_zero=_num(sel["truth_g2_zero"].values),
                    truth_grey_fraction=_num(sel["grey_fraction"].values),
                    truth_bleach_time_s=_num(sel["bleach_time_s"].values),
                    g2_zero_corrected=_num(sel["g2_zero_corrected"].values),
                    g2_zero_stderr=_num(sel["g2_zero_stderr"].values),
                    lifetimes_ns=json.dumps(
                        [_num(x) for x in sel["lifetime_ns"].values if math.isfinite(x)]
                    ),
                )
            rows.append(row)
        buf = io.StringIO()
        fields = list(rows[0]) if rows else ["run", "point", "replica", "file"]
        w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        target = self.folder / "manifest.csv"
        write_text_atomic(target, buf.getvalue())
        return target


def _num(x) -> float:
    return float(np.asarray(x))


@contextlib.contextmanager
def open_writers(options: dict | None, runs: list, plan_info: dict):
    """Task side: one streamed writer per run (``runs``: (flat, id, point, replica, model,
    power)); yields a list of writers (None without ``options``). On an exception every
    unfinished file is removed."""
    if options is None:
        yield None
        return
    from ..io import PhotonHDF5Writer, PTUWriter

    folder, fmt = Path(options["dir"]), options["format"]
    with contextlib.ExitStack() as stack:
        writers = []
        for flat, key_id, point, replica, m, power in runs:
            meta = dict(
                model=m.name,
                model_toml=m.to_toml(),
                seed=int(plan_info["seed"]),
                power=float(power),
                duration_s=float(plan_info["duration_s"]),
                emitters=1,
                sweep_run=int(flat),
                sweep_point=int(point),
                sweep_replica=int(replica),
                key_id=int(key_id),
            )
            path = folder / file_name(point, replica, fmt)
            if fmt == "ptu":
                w = PTUWriter(
                    path,
                    "picoharp-t3",
                    sync_period_ps=float(m.sync_period_ps),
                    resolution_ps=float(m.detection.resolution_ps),
                    meta=meta,
                )
            else:
                w = PhotonHDF5Writer(path, meta=meta)
            writers.append(stack.enter_context(w))
        yield writers
