"""Reproduce the seed paper (D'Amato et al., Zn-treated CsPbBr3 NCs as single-photon
sources): every figure from simulated data analysed by :mod:`simsps.analysis`, and a table
of the paper's numbers against the simulation's (``report.md``, ``report.json``).

``reproduce(out, quick=True)`` or ``simsps reproduce --quick --out DIR``. One module per
seed figure (``fig2`` ... ``fig5``, ``si``); ``data`` makes the simulated datasets once;
``report`` compares with ``seed_numbers.toml``.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import platform
import time
from pathlib import Path

from . import fig2, fig3, fig4, fig5, si
from .data import Config, Data
from .report import Row, seed_numbers, write_report

__all__ = ["FIGURES", "reproduce", "Config", "Data", "Row", "seed_numbers"]

# (name, panel function, figure size in inches)
FIGURES = [
    ("2a", fig2.fig_2a, (5.0, 3.6)),
    ("2b", fig2.fig_2b, (7.5, 3.2)),
    ("3a", fig3.fig_3a, (4.5, 3.4)),
    ("3b", fig3.fig_3b, (4.5, 3.4)),
    ("3c", fig3.fig_3c, (4.5, 3.4)),
    ("3d", fig3.fig_3d, (4.5, 3.4)),
    ("4a", fig4.fig_4a, (8.0, 3.0)),
    ("4b", fig4.fig_4b, (4.5, 3.4)),
    ("4c", fig4.fig_4c, (6.0, 4.0)),
    ("4d", fig4.fig_4d, (4.5, 3.4)),
    ("5a", fig5.fig_5a, (5.0, 3.6)),
    ("5b", fig5.fig_5b, (4.5, 3.6)),
    ("5c", fig5.fig_5c, (4.5, 3.6)),
    ("S5", si.fig_s5, (9.0, 3.4)),
    ("S6", si.fig_s6, (13.0, 3.6)),
    ("S7", si.fig_s7, (18.0, 6.0)),
]


def reproduce(
    out_dir,
    *,
    quick: bool = False,
    seed: int = 0,
    progress: bool = True,
    only=None,
    config: Config | None = None,
    overrides: dict | None = None,
) -> dict:
    """Write ``fig<name>.png`` for every seed figure (or those in ``only``), then
    ``report.md`` and ``report.json`` into ``out_dir``; returns the report as a dict.
    ``config`` overrides the dataset sizes of ``quick`` (e.g. ``Config.tiny()``);
    ``overrides`` the models (see :class:`Data`)."""
    import json

    from matplotlib.figure import Figure
    from tqdm.auto import tqdm

    from ... import __version__
    from ..analyze import save_figure

    names = [n for n, _, _ in FIGURES]
    if only is not None:
        unknown = sorted(set(only) - set(names))
        if unknown:
            raise ValueError(
                f"unknown figure(s) {', '.join(unknown)}: choose from {', '.join(names)}"
            )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    started = datetime.datetime.now().isoformat(timespec="seconds")
    config = config or Config.make(quick)
    data = Data(config, seed, overrides)
    todo = [f for f in FIGURES if only is None or f[0] in only]
    rows, written = [], []
    bar = tqdm(todo, unit="figure", disable=not progress, leave=True)
    for name, panel, size in bar:
        bar.set_description(f"figure {name}")
        fig = Figure(figsize=size, layout="constrained")
        rows += panel(data, fig)
        fig.suptitle(f"simsps twin of seed Fig. {name}", fontsize=8, x=0.01, ha="left", color="0.4")
        save_figure(fig, out / f"fig{name}.png")
        written.append(f"fig{name}.png")
    mode = "quick" if quick else "full"
    if config != Config.make(quick):
        mode = "custom sizes"
    if overrides:
        mode += ", models overridden"
    header = dict(
        mode=mode,
        seed=int(seed),
        simsps=__version__,
        config=dataclasses.asdict(config),
        started=started,
        wall_s=time.perf_counter() - t0,
        machine=f"{platform.machine()}, {os.cpu_count()} CPUs",
        datasets=data.used,
        figures=written,
        details=data.details,
        overrides=overrides or {},
    )
    write_report(out, rows, header)
    return json.loads((out / "report.json").read_text())
