"""Pictures of a sweep: a variable against one varied key (lines, one per value of a
second key), or against two (a heat map with a colour bar), with units in the labels.

Replicas are averaged, their standard error drawn as error bars; without replicas a
variable's own error (``g2_zero_corrected`` -> ``g2_zero_stderr``, ...) is drawn. Keys not
on an axis must be fixed with ``sel`` (or have one value).
"""

from __future__ import annotations

import json

import numpy as np

__all__ = ["sweep_plot", "label_of"]

_ERRORS = {
    "g2_zero": "g2_zero_stderr_raw",
    "g2_zero_corrected": "g2_zero_stderr",
    "lifetime_ns": "lifetime_stderr_ns",
}
_UNITS = (("_cps", "counts/s"), ("_ns", "ns"), ("_s", "s"), ("_nm", "nm"), ("_mev", "meV"))
_LABELS = {
    "g2_zero": "g2(0), raw",
    "g2_zero_corrected": "g2(0), background and afterpulses out",
    "truth_g2_zero": "g2(0) of the emitter photons (truth)",
    "tau_c_s": "bunching correlation time tau_c (s)",
    "bunching_amplitude": "bunching amplitude (over the plateau)",
    "grey_fraction": "fraction of time grey (truth)",
    "bleach_time_s": "bleach time (s, truth)",
}


def label_of(name: str) -> str:
    """An axis label with the unit the name carries (``lifetime_ns`` -> ``lifetime (ns)``)."""
    if name == "power":
        return "power (P / Psat)"
    if name in _LABELS:
        return _LABELS[name]
    dotted = "." in name  # a model key: shown as written, its unit added
    for suffix, unit in _UNITS:
        if name.endswith(suffix):
            return f"{name if dotted else name[: -len(suffix)].replace('_', ' ')} ({unit})"
    return name if dotted else name.replace("_", " ")


def _design_dims(ds) -> list[str]:
    design = json.loads(ds.attrs["design"])
    return list(design["keys"]) if design["grid"] is not None else ["point"]


def sweep_plot(ds, y: str, *, x: str | None = None, hue: str | None = None, sel=None, ax=None):
    """Draw ``ds[y]`` (a variable of :func:`simsps.sweep`'s Dataset) and return the figure."""
    import matplotlib

    if ax is None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if y not in ds.data_vars:
        scalars = [n for n, v in ds.data_vars.items() if v.dtype.kind in "fiu"]
        raise ValueError(f"no variable {y!r}: choose one of {', '.join(sorted(scalars))}")
    da = ds[y]
    err = ds[_ERRORS[y]] if y in _ERRORS and _ERRORS[y] in ds else None
    for k, v in dict(sel or {}).items():
        if k not in da.dims:
            raise ValueError(f"sel {k!r}: not a dimension of {y} ({', '.join(da.dims)})")
        da = da.sel({k: v}, method="nearest") if da[k].dtype.kind == "f" else da.sel({k: v})
        err = None if err is None else err.sel({k: da[k].values})
    design = [d for d in _design_dims(ds) if d in da.dims]
    if "replica" in da.dims and da.sizes["replica"] > 1:
        n = da.sizes["replica"]
        err = da.std("replica", ddof=1) / np.sqrt(n)
        da = da.mean("replica")
    elif "replica" in da.dims:
        da = da.isel(replica=0)
    extra = [d for d in da.dims if d not in design]
    if extra:
        raise ValueError(
            f"{y} also varies along {', '.join(extra)}: fix it with sel, e.g. "
            f"--sel {extra[0]}={da[extra[0]].values[0]}"
        )
    if design == ["point"]:
        return _scatter(ds, da, y, x, hue, ax, plt)
    free = [d for d in design if da.sizes[d] > 1]
    if x is None:
        x = (free or design)[0]
    if x not in design:
        raise ValueError(f"x {x!r}: choose one of the varied keys {', '.join(design)}")
    others = [d for d in free if d != x]
    if hue is not None and hue not in others:
        raise ValueError(f"hue {hue!r}: choose another varied key ({', '.join(others) or 'none'})")
    rest = [d for d in others if d != hue]
    if len(rest) > 1 or (hue is not None and rest):
        raise ValueError(
            f"{y} varies along {', '.join([x, *others])}: fix all but two with sel "
            f"(e.g. --sel {rest[-1]}=...)"
        )
    fig = ax.figure if ax is not None else plt.figure(figsize=(5.2, 3.8))
    ax = ax or fig.add_subplot(111)
    if rest and hue is None:  # two keys: a heat map
        other = rest[0]
        z = da.transpose(other, x)
        xs, ys = _edges(da[x].values), _edges(da[other].values)
        mesh = ax.pcolormesh(xs, ys, z.values, shading="flat")
        cb = fig.colorbar(mesh, ax=ax)
        cb.set_label(label_of(y))
        ax.set_ylabel(label_of(other))
        if _is_log(da[x].values):
            ax.set_xscale("log")
        if _is_log(da[other].values):
            ax.set_yscale("log")
    else:
        groups = [None] if hue is None else list(da[hue].values)
        for g in groups:
            line = da if g is None else da.sel({hue: g})
            e = None if err is None else (err if g is None else err.sel({hue: g}))
            line = line.squeeze(drop=True)
            kw = {} if g is None else {"label": f"{label_of(hue)} = {g:g}"}
            xv = line[x].values
            yv = line.values
            if e is not None:
                ax.errorbar(xv, yv, yerr=np.asarray(e.squeeze(drop=True).values), marker="o",
                            ms=4, capsize=2, **kw)  # fmt: skip
            else:
                ax.plot(xv, yv, marker="o", ms=4, **kw)
        ax.set_ylabel(label_of(y))
        if hue is not None:
            ax.legend(fontsize=8, frameon=False)
        if _is_log(da[x].values):
            ax.set_xscale("log")
    ax.set_xlabel(label_of(x))
    ax.set_title(_title(ds), fontsize=9)
    fig.tight_layout()
    return fig


def _scatter(ds, da, y, x, hue, ax, plt):
    keys = json.loads(ds.attrs["design"])["keys"]
    x = x or keys[0]
    if x not in keys:
        raise ValueError(f"x {x!r}: choose one of the varied keys {', '.join(keys)}")
    fig = ax.figure if ax is not None else plt.figure(figsize=(5.2, 3.8))
    ax = ax or fig.add_subplot(111)
    hue = hue or next((k for k in keys if k != x), None)
    if hue is None:
        ax.plot(ds[x].values, da.values, "o", ms=4)
        ax.set_ylabel(label_of(y))
    else:  # the variable as colour over two keys
        sc = ax.scatter(ds[x].values, ds[hue].values, c=da.values, s=22)
        cb = fig.colorbar(sc, ax=ax)
        cb.set_label(label_of(y))
        ax.set_ylabel(label_of(hue))
    ax.set_xlabel(label_of(x))
    ax.set_title(_title(ds), fontsize=9)
    fig.tight_layout()
    return fig


def _title(ds) -> str:
    return f"{ds.attrs.get('model', '')}, {ds.attrs.get('duration_s', 0):g} s per point"


def _is_log(v) -> bool:
    v = np.asarray(v, float)
    return len(v) > 2 and np.all(v > 0) and v.max() / v.min() > 30


def _edges(v) -> np.ndarray:
    """Cell edges around the values (geometric mid-points for log-spaced ones)."""
    v = np.asarray(v, float)
    if len(v) == 1:
        return np.array([v[0] - 0.5, v[0] + 0.5])
    if _is_log(v):
        lv = np.log(v)
        mid = (lv[1:] + lv[:-1]) / 2
        return np.exp(np.concatenate([[2 * lv[0] - mid[0]], mid, [2 * lv[-1] - mid[-1]]]))
    mid = (v[1:] + v[:-1]) / 2
    return np.concatenate([[2 * v[0] - mid[0]], mid, [2 * v[-1] - mid[-1]]])
