"""The paper-vs-simulation table: one row per number the seed paper reports, keyed to
``seed_numbers.toml`` (value, band and kind of comparison), written as Markdown and JSON."""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import math
import tomllib
from importlib import resources
from pathlib import Path

from ...io._atomic import write_text_atomic
from ..analyze import jsonable

__all__ = ["Row", "seed_numbers", "row", "write_report"]


def seed_numbers() -> dict:
    """The paper's numbers and bands (a verbatim copy of shared/seed_numbers.toml)."""
    return copy.deepcopy(_seed_numbers())


@functools.cache
def _seed_numbers() -> dict:
    text = resources.files("simsps.apps.reproduce").joinpath("seed_numbers.toml").read_text()
    return tomllib.loads(text)


@dataclasses.dataclass(frozen=True)
class Row:
    key: str  # entry of seed_numbers.toml
    figure: str
    quantity: str
    paper: object  # the paper's value
    simulated: object  # float, or [min, max] for a range
    stderr: float | None
    tolerance: str  # human-readable band
    ok: bool
    dataset: str  # which simulated dataset (its seed is in the report header)
    how: str  # the estimator that gave the simulated value

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _band(entry: dict) -> str:
    kind = entry["kind"]
    if isinstance(entry["value"], list) and kind == "band":
        (p_lo, p_hi), lo, hi = entry["value"], entry["low"], entry["high"]
        return f"min {lo:g} .. {2 * p_lo - lo:g}, max {2 * p_hi - hi:g} .. {hi:g}"
    if kind == "band":
        return f"{entry['low']:g} .. {entry['high']:g}"
    if kind == "max":
        return f"<= {entry['high']:g}"
    return f">= {entry['low']:g}"


def row(
    key: str, figure: str, quantity: str, simulated, stderr=None, *, dataset: str, how: str
) -> Row:
    """Compare ``simulated`` (a number, or (min, max) for a range entry) with the paper's
    band for ``key``. NaN or missing values are never ok. A range (the paper's [min, max])
    must reach out to both of the paper's ends: each simulated end within the band and no
    further inside than the band's margin (min <= paper min + (paper min - low), max >=
    paper max - (high - paper max)); a narrow population is not a twin of a wide one."""
    entry = _seed_numbers()[key]
    kind, lo, hi = entry["kind"], entry.get("low", -math.inf), entry.get("high", math.inf)
    values = list(simulated) if isinstance(simulated, (list, tuple)) else [simulated]
    finite = all(v is not None and math.isfinite(float(v)) for v in values)
    if not finite:
        ok = False
    elif isinstance(entry["value"], list) and kind == "band":
        p_lo, p_hi = entry["value"]
        v_lo, v_hi = float(values[0]), float(values[-1])
        ok = lo <= v_lo <= p_lo + (p_lo - lo) and p_hi - (hi - p_hi) <= v_hi <= hi
    elif kind == "band":
        ok = all(lo <= float(v) <= hi for v in values)
    elif kind == "max":
        ok = all(float(v) <= hi for v in values)
    elif kind == "min":
        ok = all(float(v) >= lo for v in values)
    else:
        raise ValueError(f"seed number {key}: unknown kind {kind!r}")
    sim = [float(v) for v in values] if len(values) > 1 else (float(values[0]) if finite else None)
    return Row(
        key=key,
        figure=figure,
        quantity=quantity,
        paper=entry["value"],
        simulated=sim,
        stderr=None if stderr is None or not math.isfinite(stderr) else float(stderr),
        tolerance=_band(entry),
        ok=bool(ok),
        dataset=dataset,
        how=how,
    )


def _fmt(v, err=None) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, list):
        return " .. ".join(f"{x:.4g}" for x in v)
    s = f"{v:.4g}"
    return s + (f" ± {err:.2g}" if err is not None else "")


def write_report(out: Path, rows: list[Row], header: dict) -> None:
    """``report.json`` (header + rows) and ``report.md`` (the same as a table)."""
    out = Path(out)
    doc = dict(
        header,
        rows=[r.as_dict() for r in rows],
        all_ok=all(r.ok for r in rows),
        n_rows=len(rows),
        n_ok=sum(r.ok for r in rows),
    )
    write_text_atomic(
        out / "report.json",
        json.dumps(jsonable(doc), indent=2, default=str, allow_nan=False) + "\n",
    )
    lines = [
        "# Seed paper vs simsps",
        "",
        f"{doc['n_ok']} of {doc['n_rows']} rows within the paper's bands "
        f"({'all ok' if doc['all_ok'] else 'NOT all ok'}). Mode: {header['mode']}; "
        f"simsps {header['simsps']}; run {header['started']}, {header['wall_s']:.0f} s.",
        "",
        "Simulated values come from analysing simulated data with `simsps.analysis`; the "
        "datasets and their seeds are listed below the table. Bands: `shared/seed_numbers."
        "toml` (key column).",
        "",
        "| figure | quantity | paper | simulated | band | ok | key |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.figure} | {r.quantity} | {_fmt(r.paper)} | "
            f"{_fmt(r.simulated, r.stderr)} | {r.tolerance} | "
            f"{'ok' if r.ok else '**no**'} | `{r.key}` |"
        )
    lines += ["", "## How each value was measured", ""]
    lines += [f"- `{r.key}`: {r.how} (dataset `{r.dataset}`)" for r in rows]
    lines += ["", "## Datasets", "", "| dataset | what | seed |", "|---|---|---|"]
    for name, d in header["datasets"].items():
        lines.append(f"| `{name}` | {d['what']} | {d['seed']} |")
    det = header.get("details", {})
    if "5a" in det:
        d = det["5a"]
        lines += [
            "",
            "## g2(0) and count rate at each power (Fig. 5a)",
            "",
            "| power (Psat) | rate less background (cps) | g2(0) |",
            "|---|---|---|",
        ]
        lines += [
            f"| {p:g} | {r:.0f} | {g:.3f} ± {e:.3f} |"
            for p, r, g, e in zip(d["power_psat"], d["rate_cps"], d["g2_zero"], d["g2_zero_stderr"])
        ]
    if "4d" in det:
        d = det["4d"]
        lines += [
            "",
            f"Fig. 4d: correlation time {d['tau_c_us']:.1f} ± "
            f"{d['tau_c_stderr_us']:.1f} us; the bunching excess has fallen to 5 % at "
            f"{d['excess_at_5_percent_us']:.0f} us.",
        ]
    lines += ["", "## Figures", ""]
    lines += [f"- `{f}`" for f in header["figures"]]
    write_text_atomic(out / "report.md", "\n".join(lines) + "\n")
