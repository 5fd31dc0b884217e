"""``simsps sweep`` and ``simsps sweep-plot``: the command-line side of :mod:`simsps.sweep`."""

from __future__ import annotations

from pathlib import Path

__all__ = ["add_parsers", "cmd_sweep", "cmd_sweep_plot"]


def add_parsers(sub, positive, seed) -> None:
    s = sub.add_parser(
        "sweep",
        help="simulate a grid or random design of parameters; statistics to a Zarr store",
        description="Simulate every point of a parameter grid (or random design) and "
        "store its statistics (count rates, pulsed g2 with errors, lifetimes, intensity "
        "histogram, ground truth) in PATH.zarr, batch by batch (--resume continues a "
        "killed run). Values: KEY=v1,v2,... or KEY=start:stop:num (KEY=log:start:stop:num "
        "for geometric steps); KEY=uniform(lo,hi) or loguniform(lo,hi) for a random "
        "design of --n-points points. KEY is 'power' (units of Psat) or a model key.",
    )
    s.add_argument("model", metavar="MODEL", help="preset name (see 'simsps models') or TOML path")
    s.add_argument(
        "--vary",
        action="append",
        required=True,
        metavar="KEY=VALUES",
        help="a varied key and its values (repeat for more keys)",
    )
    s.add_argument("--duration", type=positive(float), required=True, metavar="S",
                   help="acquisition time per point, seconds")  # fmt: skip
    s.add_argument("--seed", type=seed, default=0, metavar="N", help="random seed (default 0)")
    s.add_argument("--out", type=Path, required=True, metavar="PATH.zarr", help="Zarr store")
    s.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="overrides",
        help="fix a model key (or power) for every point (repeatable)",
    )
    s.add_argument("--replicas", type=int, default=1, metavar="R",
                   help="independent repetitions of each point (default 1)")  # fmt: skip
    s.add_argument("--n-points", type=int, default=None, metavar="N",
                   help="points of a random design (uniform ranges)")  # fmt: skip
    s.add_argument("--design", choices=("sobol", "lhs"), default=None,
                   help="random design: scrambled Sobol (default) or Latin hypercube")  # fmt: skip
    where = s.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=None, metavar="N",
                       help="run on N local Dask worker processes (127.0.0.1)")  # fmt: skip
    where.add_argument("--scheduler", default=None, metavar="ADDR",
                       help="run on the Dask scheduler at ADDR (tcp://host:port)")  # fmt: skip
    s.add_argument("--resume", action="store_true",
                   help="continue the sweep in --out, computing only what is not done")  # fmt: skip
    s.add_argument("--batch-size", type=int, default=None, metavar="B",
                   help="runs per task (default: 8 on a CPU, 256 on a GPU)")  # fmt: skip
    s.add_argument("--write-files", type=Path, default=None, metavar="DIR",
                   help="also write each run's stream to DIR with a manifest.csv")  # fmt: skip
    s.add_argument("--file-format", choices=("ptu", "photon-hdf5"), default="ptu",
                   help="format of --write-files (default ptu)")  # fmt: skip
    s.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    s.set_defaults(parser=s)

    p = sub.add_parser(
        "sweep-plot",
        help="plot a variable of a sweep against its keys (PNG)",
        description="Plot a sweep variable: lines against one key (one line per value "
        "of --hue), or a heat map with a colour bar against two keys.",
    )
    p.add_argument("store", type=Path, metavar="PATH.zarr")
    p.add_argument("--y", required=True, metavar="VAR", help="variable, e.g. g2_zero_corrected")
    p.add_argument("--x", default=None, metavar="KEY", help="key on the x axis")
    p.add_argument("--hue", default=None, metavar="KEY", help="one line per value of KEY")
    p.add_argument("--sel", action="append", default=[], metavar="KEY=VALUE",
                   help="fix a dimension (repeatable), e.g. --sel component=1")  # fmt: skip
    p.add_argument("--out", type=Path, default=None, metavar="FILE.png",
                   help="image file (default: beside the store, named after VAR)")  # fmt: skip
    p.set_defaults(parser=p)


def cmd_sweep(a, usage_error) -> int:
    from ..params.model import load_model
    from ..sweep.design import parse_set, parse_vary

    try:
        vary = dict(parse_vary(t) for t in a.vary)
        if len(vary) != len(a.vary):
            raise ValueError("a key is given to --vary twice")
        fixed = dict(parse_set(t) for t in a.overrides)
        model = load_model(a.model)
        if a.workers is not None and a.workers < 1:
            raise ValueError(f"--workers {a.workers} must be at least 1")
        from ..sweep.run import plan_sweep

        plan = plan_sweep(  # every argument and point checked before any work
            model,
            vary,
            a.duration,
            a.seed,
            replicas=a.replicas,
            set=fixed,
            n_points=a.n_points,
            method=a.design,
            batch_size=a.batch_size,
        )
        from ..sweep.store import check_store

        check_store(a.out, plan, resume=a.resume)
    except (ValueError, FileExistsError) as e:
        raise usage_error(str(e)) from None
    client = cluster = None
    try:
        if a.workers is not None:
            from ..sweep.cluster import local_cluster

            cluster, client = local_cluster(a.workers)
        elif a.scheduler is not None:
            from ..sweep.cluster import connect

            client = connect(a.scheduler)
        from ..sweep.runner import execute

        ds = execute(
            plan,
            client=client,
            store=a.out,
            resume=a.resume,
            progress=not a.quiet,
            write_files=a.write_files,
            file_format=a.file_format,
        )
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    if not a.quiet:
        n = plan.n_runs
        bad = int((ds["warnings"].values != "").sum())
        print(
            f"wrote {a.out}: {n} runs ({plan.design.n_points} points x {plan.design.replicas} "
            f"replicas) of {model.name}, {a.duration:g} s each, seed {a.seed}; dimensions "
            + ", ".join(f"{d} {ds.sizes[d]}" for d in plan.design.dims)
            + (f"; {bad} runs with warnings (variable 'warnings')" if bad else "")
        )
    return 0


def cmd_sweep_plot(a, usage_error) -> int:
    from ..sweep import open_sweep
    from ..sweep.design import _toml_value
    from ..sweep.plot import sweep_plot

    ds = open_sweep(a.store)
    sel = {}
    for t in a.sel:
        if "=" not in t:
            raise usage_error(f"--sel {t!r} is not of the form KEY=VALUE")
        k, v = (x.strip() for x in t.split("=", 1))
        sel[k] = _toml_value(v, t)
    try:
        fig = sweep_plot(ds, a.y, x=a.x, hue=a.hue, sel=sel)
    except ValueError as e:
        raise usage_error(str(e)) from None
    out = a.out or a.store.with_name(f"{a.store.stem}_{a.y}.png")
    from ..io._atomic import atomic_path

    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=150, format="png")
    print(f"wrote {out}")
    return 0
