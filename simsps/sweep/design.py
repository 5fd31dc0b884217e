"""What a sweep varies: a grid of values per key, or a random design over ranges.

A key is ``"power"`` (in units of each point's Psat) or any dotted model key
(``"biexciton.quantum_yield"``, ``"detection.efficiency"``, ``"blinking.enabled"``...).
A grid takes every combination of the listed values (the first key varies slowest);
a random design draws ``n_points`` points in the box of :func:`uniform` / :func:`loguniform`
ranges with a scrambled Sobol sequence or a Latin hypercube (``scipy.stats.qmc``), seeded
by the sweep's seed. Every point is numbered (row-major over the grid, or in the order of
the design) and every replica of it too; its random numbers come from that number alone
(:func:`point_id`), so a point's results do not depend on which batch, worker or order ran
it.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import tomllib
from typing import Any, Mapping, Sequence

import numpy as np

from ..params.model import ALL_KEYS, Model, ModelError, _split_key

__all__ = [
    "Design",
    "Uniform",
    "uniform",
    "loguniform",
    "make_design",
    "parse_vary",
    "parse_set",
    "point_id",
    "MAX_POINTS",
    "MAX_REPLICAS",
]

POWER = "power"
MAX_POINTS = 1 << 20  # points of one design (their numbers fill the low 20 bits of an id)
MAX_REPLICAS = 1 << 12
METHODS = ("sobol", "lhs")


@dataclasses.dataclass(frozen=True)
class Uniform:
    """A range a random design draws a key from (log-uniformly with ``log``)."""

    low: float
    high: float
    log: bool = False

    def __post_init__(self):
        lo, hi = float(self.low), float(self.high)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"range ({self.low!r}, {self.high!r}): need finite low < high")
        if self.log and lo <= 0:
            raise ValueError(f"log-uniform range ({self.low!r}, {self.high!r}) needs low > 0")

    def __call__(self, u: np.ndarray) -> np.ndarray:
        """Map uniforms on [0, 1) to the range."""
        if self.log:
            return np.exp(np.log(self.low) + u * (np.log(self.high) - np.log(self.low)))
        return self.low + u * (self.high - self.low)

    def __str__(self) -> str:
        return f"{'loguniform' if self.log else 'uniform'}({self.low:g}, {self.high:g})"


def uniform(low: float, high: float) -> Uniform:
    """A range for a random design: the key is drawn uniformly in [low, high)."""
    return Uniform(float(low), float(high))


def loguniform(low: float, high: float) -> Uniform:
    """A range for a random design: the key is drawn uniformly in log between low and high."""
    return Uniform(float(low), float(high), log=True)


def point_id(point: int, replica: int) -> int:
    """The number of a (point, replica) in the key tree: ``replica * 2**20 + point``."""
    return int(replica) * MAX_POINTS + int(point)


@dataclasses.dataclass(frozen=True)
class Design:
    """The points of a sweep: ``values[key][i]`` is the value of ``key`` at point ``i``.

    ``grid``: the grid's axis values per key (in order) for a grid, None for a random
    design (whose points lie along one ``point`` dimension). ``replicas`` independent
    repetitions of each point."""

    keys: tuple[str, ...]
    values: dict
    grid: dict | None
    replicas: int
    method: str  # "grid", "sobol" or "lhs"

    @property
    def n_points(self) -> int:
        return len(next(iter(self.values.values()))) if self.values else 1

    @property
    def n_runs(self) -> int:
        """Points times replicas: what is simulated."""
        return self.n_points * self.replicas

    @property
    def dims(self) -> tuple[str, ...]:
        """The dimensions of a result: one per varied key (grid) or ``point`` (random),
        then ``replica`` when there is more than one."""
        base = tuple(self.keys) if self.grid is not None else ("point",)
        return base + (("replica",) if self.replicas > 1 else ())

    @property
    def shape(self) -> tuple[int, ...]:
        base = (
            tuple(len(self.grid[k]) for k in self.keys)
            if self.grid is not None
            else (self.n_points,)
        )
        return base + ((self.replicas,) if self.replicas > 1 else ())

    def run(self, flat: int) -> tuple[int, int]:
        """(point, replica) of run number ``flat`` (row-major over :attr:`shape`)."""
        return divmod(int(flat), self.replicas)

    def point(self, i: int) -> dict:
        """The varied values of point ``i`` as plain Python values."""
        return {k: _plain(self.values[k][i]) for k in self.keys}

    def describe(self) -> dict:
        """A JSON-able description (stored with the results, compared on resume)."""
        return {
            "method": self.method,
            "keys": list(self.keys),
            "grid": None
            if self.grid is None
            else {k: _plain_list(v) for k, v in self.grid.items()},
            "values": {k: _plain_list(v) for k, v in self.values.items()},
            "replicas": self.replicas,
        }


def _plain(x):
    return x.item() if isinstance(x, np.generic) else x


def _plain_list(a) -> list:
    return [_plain(x) for x in np.asarray(a).tolist()]


def _check_key(key: str) -> str:
    if key == POWER:
        return key
    if not isinstance(key, str) or "." not in key:
        raise ModelError(
            f"vary key {key!r}: use 'power' or a dotted model key such as "
            f"'biexciton.quantum_yield' ({len(ALL_KEYS)} keys: simsps.params.model.ALL_KEYS)"
        )
    _split_key(key)  # names the unknown key, with a suggestion
    return key


def _axis(key: str, values) -> np.ndarray:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence | np.ndarray):
        raise ValueError(f"vary {key!r}: give a list of values (or a range for a random design)")
    vals = list(values)
    if not vals:
        raise ValueError(f"vary {key!r}: the list of values is empty")
    if len(set(map(repr, vals))) != len(vals):
        raise ValueError(f"vary {key!r}: the values {vals!r} repeat")
    kinds = {type(v) for v in vals}
    if kinds <= {bool}:
        return np.array(vals, bool)
    if kinds <= {str}:
        return np.array(vals, str)
    if any(isinstance(v, (bool, str)) for v in vals):
        raise ValueError(f"vary {key!r}: the values {vals!r} mix types")
    try:
        arr = np.array(vals, np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"vary {key!r}: {vals!r} are not numbers") from None
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"vary {key!r}: the values must be finite, got {vals!r}")
    if key != POWER and _field_kind(key) is int:  # a whole-number key stays whole
        if not np.all(arr == np.round(arr)):
            raise ValueError(f"vary {key!r}: whole numbers, got {vals!r}")
        return arr.astype(np.int64)
    return arr


def make_design(
    vary: Mapping[str, Any],
    *,
    replicas: int = 1,
    n_points: int | None = None,
    method: str | None = None,
    seed: int = 0,
) -> Design:
    """The :class:`Design` of ``vary``: lists of values (a grid) or ranges (a random
    design of ``n_points`` points drawn by ``method``, "sobol" by default, or "lhs")."""
    if not isinstance(vary, Mapping) or not vary:
        raise ValueError("vary: give at least one key with its values, e.g. {'power': [1, 3]}")
    if isinstance(replicas, bool) or not isinstance(replicas, (int, np.integer)):
        raise ValueError(f"replicas = {replicas!r} must be a whole number")
    if not 1 <= replicas <= MAX_REPLICAS:
        raise ValueError(f"replicas = {replicas!r} is out of range: allowed 1 .. {MAX_REPLICAS}")
    keys = tuple(_check_key(k) for k in vary)
    ranges = [isinstance(v, Uniform) for v in vary.values()]
    if any(ranges) and not all(ranges):
        raise ValueError(
            "vary: a design is either a grid (lists of values for every key) or random "
            "(uniform(lo, hi) ranges for every key), not both"
        )
    if all(ranges):
        return _random(vary, keys, int(replicas), n_points, method or "sobol", seed)
    if n_points is not None or method not in (None, "grid"):
        raise ValueError("n_points and method are for random designs (ranges of values)")
    grid = {k: _axis(k, vary[k]) for k in keys}
    n = math.prod(len(v) for v in grid.values())
    if n > MAX_POINTS:
        raise ValueError(f"the grid has {n} points; at most {MAX_POINTS} are allowed")
    combos = list(itertools.product(*(range(len(grid[k])) for k in keys)))
    values = {k: grid[k][[c[j] for c in combos]] for j, k in enumerate(keys)}
    return Design(keys, values, grid, int(replicas), "grid")


def _random(vary, keys, replicas, n_points, method, seed) -> Design:
    from scipy.stats import qmc

    if method not in METHODS:
        raise ValueError(f"method {method!r}: choose one of {', '.join(METHODS)}")
    if isinstance(n_points, bool) or not isinstance(n_points, (int, np.integer)):
        raise ValueError("a random design needs n_points, a whole number of points")
    if not 1 <= n_points <= MAX_POINTS:
        raise ValueError(f"n_points = {n_points!r} is out of range: allowed 1 .. {MAX_POINTS}")
    for k in keys:
        if k != POWER and _field_kind(k) is not float:
            raise ValueError(f"vary {k!r}: a range needs a numeric key, {k} is not one")
    if method == "sobol":
        sampler = qmc.Sobol(d=len(keys), scramble=True, seed=seed)
        u = sampler.random(int(n_points))  # any n (a power of 2 balances best)
    else:
        u = qmc.LatinHypercube(d=len(keys), seed=seed).random(int(n_points))
    values = {k: vary[k](u[:, j]) for j, k in enumerate(keys)}
    return Design(keys, values, None, replicas, method)


def _field_kind(key: str):
    from ..params.model import SECTIONS

    section, name = _split_key(key)
    field = next(f for f in dataclasses.fields(SECTIONS[section]) if f.name == name)
    return field.metadata.get("kind", float)


def point_models(model: Model, design: Design, fixed: Mapping[str, Any]):
    """Each point's (model, power): ``fixed`` overrides (``set``) first, then the point's
    values. Raises :class:`ModelError` naming the point and key of a value out of range."""
    base_power = float(fixed.get(POWER, 1.0))
    base = {k: v for k, v in fixed.items() if k != POWER}
    out = []
    for i in range(design.n_points):
        point = design.point(i)
        over = dict(base)
        power = base_power
        for k, v in point.items():
            if k == POWER:
                power = float(v)
            else:
                over[k] = v
        try:
            m = model.replace(over) if over else model
        except ModelError as e:
            raise ModelError(f"sweep point {i} ({_fmt(point)}): {e}") from None
        if m.detection.channels != 2:
            raise ModelError(
                f"sweep point {i} ({_fmt(point)}): detection.channels = "
                f"{m.detection.channels}: a sweep's statistics use a two-detector HBT; "
                "simulate more detectors with simsps.simulate"
            )
        if not (math.isfinite(power) and power > 0):
            raise ValueError(
                f"sweep point {i} ({_fmt(point)}): power = {power!r} is out of range: "
                "allowed (0, inf) in units of Psat"
            )
        out.append((m, power))
    return out


def _fmt(point: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in point.items())


def parse_vary(text: str) -> tuple[str, Any]:
    """A command-line ``--vary``: ``KEY=v1,v2,...`` (values in TOML syntax, bare strings
    allowed), ``KEY=start:stop:num`` (``num`` values, ends included, like numpy.linspace),
    ``KEY=log:start:stop:num`` (geometric), ``KEY=uniform(lo,hi)`` or
    ``KEY=loguniform(lo,hi)`` (a random design's range)."""
    if "=" not in text:
        raise ValueError(f"--vary {text!r}: use KEY=v1,v2,... or KEY=start:stop:num")
    key, raw = (s.strip() for s in text.split("=", 1))
    key = _check_key(key)
    low = raw.lower()
    for name, fn in (("loguniform(", loguniform), ("uniform(", uniform)):
        if low.startswith(name) and low.endswith(")"):
            parts = raw[len(name) : -1].split(",")
            if len(parts) != 2:
                raise ValueError(f"--vary {text!r}: {name}lo,hi) takes two numbers")
            try:
                return key, fn(float(parts[0]), float(parts[1]))
            except ValueError as e:
                raise ValueError(f"--vary {text!r}: {e}") from None
    if ":" in raw and "," not in raw:
        parts = raw.split(":")
        geometric = parts[0].strip().lower() == "log"
        if geometric:
            parts = parts[1:]
        if len(parts) != 3:
            raise ValueError(f"--vary {text!r}: a range is start:stop:num (or log:start:stop:num)")
        try:
            start, stop, num = float(parts[0]), float(parts[1]), int(parts[2])
        except ValueError:
            raise ValueError(f"--vary {text!r}: start and stop are numbers, num a count") from None
        if num < 1:
            raise ValueError(f"--vary {text!r}: num must be at least 1")
        if geometric:
            if start <= 0 or stop <= 0:
                raise ValueError(f"--vary {text!r}: a log range needs positive ends")
            return key, np.geomspace(start, stop, num).tolist()
        return key, np.linspace(start, stop, num).tolist()
    return key, [_toml_value(v.strip(), text) for v in raw.split(",")]


def _toml_value(raw: str, text: str):
    if not raw:
        raise ValueError(f"--vary {text!r}: an empty value")
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def parse_set(text: str) -> tuple[str, Any]:
    """A command-line ``--set KEY=VALUE`` (``power`` or a model key; TOML value syntax)."""
    if "=" not in text:
        raise ValueError(f"--set {text!r} is not of the form key=value")
    key, raw = (s.strip() for s in text.split("=", 1))
    return _check_key(key), _toml_value(raw, text)
