"""Sample-level parameters: the population of NCs on a substrate ([ensemble]), their
emission spectra ([spectrum]) and their widefield photostability ([widefield]).

They live in the same preset TOML files as the single-NC :class:`~simsps.params.model.Model`
(sections the Model loader leaves alone), with units in the key names and a source for
every number. ``load_sample("zn-treated")`` reads them; a user TOML with
``[model] base = "zn-treated"`` inherits and overrides them like the model keys.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .._pytree import pytree_dataclass
from .model import ModelError, _resolve, num

__all__ = [
    "Ensemble",
    "Spectrum",
    "Widefield",
    "Sample",
    "load_sample",
    "SAMPLE_SECTIONS",
    "HC_EV_NM",
]

HC_EV_NM = 1239.841984  # h c in eV nm: E = HC_EV_NM / wavelength


@pytree_dataclass
class Ensemble:
    """Spots on the substrate: single NCs with a size distribution (normal, cut to the
    size-selection window), and clusters."""

    edge_mean_nm: float = num(2.0, 100.0, doc="mean cube edge of the single NCs")
    edge_std_nm: float = num(0.0, 20.0, open_lo=True, doc="standard deviation of the edge")
    edge_min_nm: float = num(1.0, 100.0, doc="size selection: smallest edge kept")
    edge_max_nm: float = num(1.0, 100.0, doc="size selection: largest edge kept")
    reference_edge_nm: float = num(2.0, 100.0, doc="edge at which the model's rates hold")
    reference_cew_nm: float = num(300.0, 900.0, doc="emission wavelength of that NC")
    bulk_gap_ev: float = num(0.5, 5.0, doc="E_bulk in E(L) = E_bulk + C / L^2")
    auger_volume_exponent: float = num(0.0, 10.0, doc="Auger time ~ volume^x")
    cluster_fraction: float = num(0.0, 1.0, doc="fraction of spots that hold a cluster")
    cluster_min_ncs: float = num(2.0, 100.0, doc="fewest NCs in a cluster")
    cluster_extra_ncs_mean: float = num(0.0, 100.0, doc="Poisson mean of NCs beyond the fewest")
    cluster_redshift_mev: float = num(0.0, 500.0, doc="red shift of a cluster's emission")

    @property
    def confinement_ev_nm2(self) -> float:
        """C in E(L) = E_bulk + C / L^2, from the reference NC."""
        return (HC_EV_NM / self.reference_cew_nm - self.bulk_gap_ev) * self.reference_edge_nm**2

    def gap_ev(self, edge_nm):
        return self.bulk_gap_ev + self.confinement_ev_nm2 / np.asarray(edge_nm, float) ** 2

    def cew_nm(self, edge_nm):
        return HC_EV_NM / self.gap_ev(edge_nm)


@pytree_dataclass
class Spectrum:
    """Single-NC emission line, its wandering, photo-etching, and the spectrometer."""

    fwhm_mev: float = num(0.0, 1000.0, open_lo=True, doc="Gaussian line width (energy)")
    jitter_mev: float = num(0.0, 100.0, doc="rms spectral diffusion between frames")
    etch_edge_nm_per_hour_at_psat: float = num(0.0, 100.0, doc="edge lost to photo-etching")
    counts_per_frame_at_psat: float = num(1.0, 1e9, doc="photons in one spectrometer frame")
    dark_counts_per_pixel: float = num(0.0, 1e6, doc="camera dark/background per pixel")
    pixel_nm: float = num(0.001, 10.0, doc="spectrometer pixel")
    range_nm: tuple = dataclasses.field(
        metadata={"static": True, "kind": "range", "doc": "spectrometer window (first, last)"}
    )


@pytree_dataclass
class Widefield:
    """Ensemble photostability under the LED, per dilution of the stock solution."""

    dilutions: tuple = dataclasses.field(
        metadata={
            "static": True,
            "kind": "axis",
            "doc": "dilutions 1:x at which bleach times are given",
        }
    )
    bleach_time_s: tuple = dataclasses.field(
        metadata={
            "static": True,
            "kind": "table",
            "doc": "mean time to bleach under the LED, per dilution",
        }
    )
    counts_per_frame: float = num(1.0, 1e9, doc="camera counts of an emitting NC per frame")
    background_counts_per_frame: float = num(0.0, 1e9, doc="background in an NC's spot")
    read_noise_counts: float = num(0.0, 1e6, doc="camera read noise (rms) per spot")

    def bleach_time_at(self, dilution) -> np.ndarray:
        """Mean bleach time (s) at ``dilution``: log-log interpolation of the table
        (constant slope beyond its ends)."""
        x, y = np.log(self.dilutions), np.log(self.bleach_time_s)
        d = np.log(np.asarray(dilution, float))
        if len(x) == 1:
            return np.exp(np.full_like(d, y[0]))
        lo_slope = (y[1] - y[0]) / (x[1] - x[0])
        hi_slope = (y[-1] - y[-2]) / (x[-1] - x[-2])
        out = np.interp(d, x, y)
        out = np.where(d < x[0], y[0] + lo_slope * (d - x[0]), out)
        out = np.where(d > x[-1], y[-1] + hi_slope * (d - x[-1]), out)
        return np.exp(out)


SAMPLE_SECTIONS = {"ensemble": Ensemble, "spectrum": Spectrum, "widefield": Widefield}


@dataclasses.dataclass(frozen=True)
class Sample:
    name: str
    ensemble: Ensemble | None
    spectrum: Spectrum | None
    widefield: Widefield | None

    def need(self, section: str):
        value = getattr(self, section)
        if value is None:
            raise ModelError(f"model {self.name!r} has no [{section}] section")
        return value


def _check(sec: str, f: dataclasses.Field, value: Any, origin: str):
    kind = f.metadata.get("kind")
    where = f"{sec}.{f.name} (in {origin})"
    if kind in ("axis", "table", "range"):
        if (
            not isinstance(value, (list, tuple))
            or not value
            or not all(
                isinstance(v, (int, float))
                and not isinstance(v, bool)
                and math.isfinite(v)
                and v > 0
                for v in value
            )
        ):
            raise ModelError(f"{where} = {value!r}: expected a list of positive numbers")
        if kind == "range" and (len(value) != 2 or value[0] >= value[1]):
            raise ModelError(f"{where} = {value!r}: expected [first, last] with first < last")
        if kind == "axis" and any(b <= a for a, b in zip(value, value[1:])):
            raise ModelError(f"{where} = {value!r}: must increase")
        return tuple(float(v) for v in value)
    from .model import _check_value

    return _check_value(f"{sec}.{f.name}", f, value, origin)


def sample_from_dict(data: Mapping[str, Any], origin: str) -> Sample:
    out = {}
    for sec, cls in SAMPLE_SECTIONS.items():
        table = data.get(sec)
        if table is None:
            out[sec] = None
            continue
        names = {f.name for f in dataclasses.fields(cls)}
        for key in table:
            if key not in names:
                raise ModelError(
                    f"unknown key {sec}.{key} in {origin}; known: {', '.join(sorted(names))}"
                )
        kwargs = {}
        for f in dataclasses.fields(cls):
            if f.name not in table:
                raise ModelError(f"missing key {sec}.{f.name} in {origin}")
            kwargs[f.name] = _check(sec, f, table[f.name], origin)
        out[sec] = cls(**kwargs)
    ens = out["ensemble"]
    if ens is not None and ens.confinement_ev_nm2 <= 0:
        raise ModelError(
            f"ensemble (in {origin}): reference_cew_nm = {ens.reference_cew_nm:g} "
            f"({HC_EV_NM / ens.reference_cew_nm:.4g} eV) must lie above the "
            f"bulk gap bulk_gap_ev = {ens.bulk_gap_ev:g} eV (confinement raises "
            "the gap)"
        )
    if ens is not None and not ens.edge_min_nm < ens.edge_mean_nm < ens.edge_max_nm:
        raise ModelError(
            f"ensemble (in {origin}): need edge_min_nm < edge_mean_nm < "
            f"edge_max_nm, got {ens.edge_min_nm:g}, {ens.edge_mean_nm:g}, "
            f"{ens.edge_max_nm:g}"
        )
    wf = out["widefield"]
    if wf is not None and len(wf.dilutions) != len(wf.bleach_time_s):
        raise ModelError(
            f"widefield.dilutions and widefield.bleach_time_s (in {origin}) "
            "must have the same length"
        )
    return Sample(name=str(data.get("model", {}).get("name", "custom")), **out)


def load_sample(
    name_or_path: str | Path = "zn-treated", overrides: Mapping[str, Any] | None = None
) -> Sample:
    """The [ensemble], [spectrum] and [widefield] sections of a preset or TOML file (a
    section the file lacks is None), with dotted ``overrides``."""
    data, origin = _resolve(name_or_path)
    data = {k: dict(v) if isinstance(v, Mapping) else v for k, v in data.items()}
    for dotted, value in (overrides or {}).items():
        sec, _, key = str(dotted).partition(".")
        if sec not in SAMPLE_SECTIONS or not key:
            raise ModelError(
                f"unknown sample key {dotted!r}: sections are {', '.join(SAMPLE_SECTIONS)}"
            )
        data.setdefault(sec, {})[key] = value
    return sample_from_dict(data, Path(origin).name)
