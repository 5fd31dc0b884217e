"""Nanocrystal model parameters: frozen pytree dataclasses loaded from TOML presets.

Every numeric key carries its unit in its name (``lifetime_ns``, ``dark_cps``) and an
allowed range; :func:`load_model` checks all of them and names the offending key.
The presets live in ``models/`` at the top of the repository (installed as
``simsps.presets``); a user TOML may start from one with ``[model] base = "zn-treated"``.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from .._pytree import pytree_dataclass, static_field

__all__ = [
    "ModelError",
    "Model",
    "load_model",
    "preset_names",
    "preset_path",
    "parse_override",
]

DWELL_KINDS = ("exponential", "power_law")
MAX_CHANNELS = 4  # detectors the kernel's packed event fields can label


class ModelError(ValueError):
    """A model parameter is unknown, missing, of the wrong type or out of range."""


def num(lo: float, hi: float, *, open_lo: bool = False, doc: str = "") -> Any:
    """A numeric leaf with its allowed range ``[lo, hi]`` (``(lo, hi]`` with ``open_lo``)."""
    return dataclasses.field(metadata={"range": (lo, hi), "open_lo": open_lo, "doc": doc})


def flag(doc: str = "") -> Any:
    return static_field(metadata={"kind": bool, "doc": doc})


def count(lo: int, hi: int, doc: str = "") -> Any:
    """A whole number fixed per compiled kernel (it sets array shapes): static."""
    return static_field(metadata={"kind": int, "range": (lo, hi), "doc": doc})


def choice(options: tuple[str, ...], doc: str = "") -> Any:
    return static_field(metadata={"kind": str, "options": options, "doc": doc})


EXCITATION_MODES = ("pulsed", "cw")


@pytree_dataclass
class Excitation:
    mode: str = choice(EXCITATION_MODES, "pulsed laser, or continuous wave (rep_rate_hz unused)")
    rep_rate_hz: float = num(1e3, 1e9, doc="laser repetition rate (pulsed)")
    wavelength_nm: float = num(200.0, 2000.0, doc="laser wavelength (metadata)")


@pytree_dataclass
class EmittingState:
    lifetime_ns: float = num(0.0, 1e4, open_lo=True, doc="total decay time of the state")
    quantum_yield: float = num(0.0, 1.0, doc="radiative fraction of the state in isolation")


@dataclasses.dataclass(frozen=True)
class _Telegraph:
    """What both blinking processes share: the dwell law and how charging depends on
    power (their dwell scales differ in unit, us and ms, and are the subclasses')."""

    enabled: bool = flag("blinking between neutral (bright) and charged (grey)")
    dwell: str = choice(DWELL_KINDS, "dwell-time law")
    power_law_exponent: float = num(1.0, 4.0, open_lo=True, doc="m in p(t) ~ t^-m")
    power_law_max_s: float = num(0.0, 1e6, open_lo=True, doc="upper cut-off of power-law dwells")
    auger_charging_fraction: float = num(
        0.0, 1.0, doc="of the power-driven charging at Psat, the part that scales with P(n>=2)"
    )
    spontaneous_charging_fraction: float = num(
        0.0, 1.0, doc="part of the charging rate at Psat that does not depend on power"
    )

    @property
    def dwell_scales_s(self) -> tuple[float, float]:
        """(bright, grey) dwell scale at Psat in seconds."""
        unit, scale = self.DWELL_UNIT
        return (
            getattr(self, f"bright_dwell_{unit}") * scale,
            getattr(self, f"grey_dwell_{unit}") * scale,
        )


DWELL_DOC = {
    "bright": "exponential: mean bright dwell at Psat; power_law: lower cut-off t_min",
    "grey": "exponential: mean grey dwell; power_law: lower cut-off t_min",
}


@pytree_dataclass
class Blinking(_Telegraph):
    """The fast telegraph flicker (us) between the neutral and the charged NC."""

    DWELL_UNIT = ("us", 1e-6)  # not a field: the unit of the two dwell keys
    bright_dwell_us: float = num(0.0, 1e9, open_lo=True, doc=DWELL_DOC["bright"])
    grey_dwell_us: float = num(0.0, 1e9, open_lo=True, doc=DWELL_DOC["grey"])


@pytree_dataclass
class SlowBlinking(_Telegraph):
    """A second, slow telegraph process (ms to s): while it is in its grey state the NC is
    charged whatever the fast flicker of :class:`Blinking` does (a long-lived trapped
    charge). It is what 10 ms intensity traces show (seed Fig. 4a-c); the us flicker
    averages out there (PHYSICS.md 9)."""

    DWELL_UNIT = ("ms", 1e-3)
    bright_dwell_ms: float = num(0.0, 1e9, open_lo=True, doc=DWELL_DOC["bright"])
    grey_dwell_ms: float = num(0.0, 1e9, open_lo=True, doc=DWELL_DOC["grey"])


@pytree_dataclass
class Bleaching:
    enabled: bool = flag("permanent photobleaching")
    probability_per_excitation: float = num(0.0, 1.0, doc="bleach probability per excited pulse")


@pytree_dataclass
class Detection:
    efficiency: float = num(0.0, 1.0, doc="collection x detector efficiency per emitted photon")
    channels: int = count(
        2,
        MAX_CHANNELS,
        doc="detectors: the HBT's two arms hold channels 0 .. n/2 - 1 and n/2 .. n - 1 "
        "(a further 50:50 split within each arm; 2: one detector per arm)",
    )
    split_ratio: float = num(
        0.0, 1.0, doc="probability a photon takes the first HBT arm (channel 0 of two)"
    )
    jitter_fwhm_ps: float = num(0.0, 1e5, doc="Gaussian timing jitter per detection")
    irf_offset_ns: float = num(0.0, 1e5, doc="arrival of the laser pulse in the microtime window")
    dead_time_ns: float = num(0.0, 1e5, doc="non-paralysable dead time per channel")
    dark_cps: float = num(0.0, 1e8, doc="dark counts per channel")
    afterpulse_probability: float = num(0.0, 0.5, doc="afterpulse probability per avalanche")
    afterpulse_time_constant_ns: float = num(
        0.0, 1e6, open_lo=True, doc="mean afterpulse delay after the dead time"
    )
    resolution_ps: float = num(1.0, 1e6, doc="TCSPC microtime bin")


@pytree_dataclass
class Background:
    rate_cps: float = num(0.0, 1e8, doc="uniform background, both channels together")
    prompt_cps: float = num(
        0.0, 1e8, doc="prompt background (scatter, substrate PL) at Psat, proportional to power"
    )
    prompt_lifetime_ns: float = num(0.0, 1e4, doc="decay of the prompt background (0: scatter)")


@pytree_dataclass
class Model:
    excitation: Excitation
    exciton: EmittingState
    trion: EmittingState
    biexciton: EmittingState
    charged_biexciton: EmittingState
    blinking: Blinking
    slow_blinking: SlowBlinking
    bleaching: Bleaching
    detection: Detection
    background: Background
    name: str = static_field(default="custom")
    description: str = static_field(default="")

    # ---- derived quantities used by kernels and tests --------------------------------
    @property
    def is_cw(self) -> bool:
        """Continuous-wave excitation (``excitation.mode = "cw"``)."""
        return self.excitation.mode == "cw"

    @property
    def clock_hz(self) -> float:
        """The engine's clock: the laser's repetition rate, or under CW the 1 GHz tick
        (:data:`simsps.physics.cw.CW_CLOCK_HZ`) that blocks and blink switches count."""
        if self.is_cw:
            from ..physics.cw import CW_CLOCK_HZ

            return CW_CLOCK_HZ
        return float(self.excitation.rep_rate_hz)

    @property
    def sync_period_ps(self) -> int:
        """Period of the engine's clock in integer picoseconds (the laser period, rounded:
        TTTR times are integer ps; 1000 under CW)."""
        return int(round(1e12 / self.clock_hz))

    def get(self, dotted: str) -> Any:
        section, key = _split_key(dotted)
        return getattr(getattr(self, section), key)

    def replace(self, overrides: Mapping[str, Any]) -> "Model":
        """Return a validated copy with dotted ``overrides`` applied."""
        data = self.to_dict()
        for dotted, value in overrides.items():
            section, key = _split_key(dotted)
            data[section][key] = value
        return _from_dict(data, origin="overrides")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model": {"name": self.name, "description": self.description}}
        for sec in SECTIONS:
            obj = getattr(self, sec)
            out[sec] = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        return out

    def to_toml(self) -> str:
        """The full model as TOML text (provenance in written files)."""
        lines = []
        for sec, table in self.to_dict().items():
            lines.append(f"[{sec}]")
            for key, value in table.items():
                lines.append(f"{key} = {_toml_value(value)}")
            lines.append("")
        return "\n".join(lines)


SECTIONS = {
    "excitation": Excitation,
    "exciton": EmittingState,
    "trion": EmittingState,
    "biexciton": EmittingState,
    "charged_biexciton": EmittingState,
    "blinking": Blinking,
    "slow_blinking": SlowBlinking,
    "bleaching": Bleaching,
    "detection": Detection,
    "background": Background,
}

# sections of the same files read by simsps.params.sample (populations, spectra, widefield)
SAMPLE_SECTION_NAMES = ("ensemble", "spectrum", "widefield")

ALL_KEYS = tuple(
    f"{sec}.{f.name}" for sec, cls in SECTIONS.items() for f in dataclasses.fields(cls)
)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, int):
        return str(v)
    return repr(float(v))


def _split_key(dotted: str) -> tuple[str, str]:
    if not isinstance(dotted, str) or dotted not in ALL_KEYS:
        hint = difflib.get_close_matches(str(dotted), ALL_KEYS, n=1)
        msg = f"unknown model key {dotted!r}"
        if hint:
            msg += f"; did you mean {hint[0]!r}?"
        raise ModelError(msg)
    section, key = dotted.split(".")
    return section, key


def _check_value(dotted: str, field: dataclasses.Field, value: Any, origin: str) -> Any:
    meta = field.metadata
    where = f"{dotted} (in {origin})"
    kind = meta.get("kind")
    if kind is bool:
        if not isinstance(value, bool):
            raise ModelError(f"{where} = {value!r}: expected true or false")
        return value
    if kind is int:
        lo, hi = meta["range"]
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ModelError(f"{where} = {value!r}: expected a whole number in [{lo}, {hi}]")
        return value
    if kind is str:
        options = meta["options"]
        if value not in options:
            raise ModelError(f"{where} = {value!r}: allowed values are {', '.join(options)}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ModelError(f"{where} = {value!r}: expected a number")
    try:
        value = float(value)
    except OverflowError:
        raise ModelError(f"{where} = {value!r} is out of range: too large for a float") from None
    lo, hi = meta["range"]
    open_lo = meta["open_lo"]
    interval = f"{'(' if open_lo else '['}{lo:g}, {hi:g}]"
    if math.isnan(value) or value > hi or value < lo or (open_lo and value == lo):
        raise ModelError(f"{where} = {value!r} is out of range: allowed {interval}")
    return value


MODEL_KEYS = ("name", "description", "base")


def _from_dict(data: Mapping[str, Any], origin: str) -> Model:
    meta = dict(data.get("model", {}))
    for key in meta:
        if key not in MODEL_KEYS:
            hint = difflib.get_close_matches(str(key), MODEL_KEYS, n=1)
            raise ModelError(
                f"unknown key model.{key} in {origin}: [model] takes {', '.join(MODEL_KEYS)}"
                + (f"; did you mean {hint[0]!r}?" if hint else "")
            )
    unknown_sections = set(data) - set(SECTIONS) - {"model"} - set(SAMPLE_SECTION_NAMES)
    for sec in sorted(unknown_sections):
        hint = difflib.get_close_matches(sec, list(SECTIONS), n=1)
        raise ModelError(
            f"unknown section [{sec}] in {origin}"
            + (f"; did you mean [{hint[0]}]?" if hint else "")
        )
    sections = {}
    for sec, cls in SECTIONS.items():
        table = data.get(sec)
        if not isinstance(table, Mapping):
            raise ModelError(f"missing section [{sec}] in {origin}")
        for key in table:
            _split_key(f"{sec}.{key}")
        kwargs = {}
        for f in dataclasses.fields(cls):
            dotted = f"{sec}.{f.name}"
            if f.name not in table:
                raise ModelError(f"missing key {dotted} in {origin}")
            kwargs[f.name] = _check_value(dotted, f, table[f.name], origin)
        sections[sec] = cls(**kwargs)
    model = Model(
        **sections,
        name=str(meta.get("name", "custom")),
        description=str(meta.get("description", "")),
    )
    _check_consistency(model, origin)
    return model


def _check_consistency(m: Model, origin: str) -> None:
    period_ns = 1e9 / m.excitation.rep_rate_hz
    det = m.detection
    # under CW no pulses: no microtime window, no IRF place in it to check
    if not m.is_cw and det.resolution_ps > period_ns * 1e3:
        raise ModelError(
            f"detection.resolution_ps = {det.resolution_ps:g} (in {origin}) is longer than the "
            f"laser period {period_ns * 1e3:g} ps"
        )
    if not m.is_cw and det.irf_offset_ns >= period_ns:
        raise ModelError(
            f"detection.irf_offset_ns = {det.irf_offset_ns:g} (in {origin}) must be shorter "
            f"than the laser period {period_ns:g} ns"
        )
    for sec, unit, to_s in (("blinking", "us", 1e-6), ("slow_blinking", "ms", 1e-3)):
        b = getattr(m, sec)
        if b.dwell == "power_law":
            for k in (f"bright_dwell_{unit}", f"grey_dwell_{unit}"):
                if getattr(b, k) * to_s >= b.power_law_max_s:
                    raise ModelError(
                        f"{sec}.{k} = {getattr(b, k):g} {unit} (in {origin}) must be below "
                        f"{sec}.power_law_max_s = {b.power_law_max_s:g} s"
                    )


def _deep_merge(base: dict, top: Mapping) -> dict:
    out = {k: dict(v) if isinstance(v, Mapping) else v for k, v in base.items()}
    for k, v in top.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = {**out[k], **v}
        else:
            out[k] = v
    return out


def _presets_dir() -> Path:
    """``models/`` of a source checkout, else the installed copy ``simsps.presets``."""
    source = Path(__file__).resolve().parents[2] / "models"
    if (source / "zn_treated.toml").is_file():
        return source
    return Path(str(resources.files("simsps.presets")))


def preset_names() -> list[str]:
    files = _presets_dir().glob("*.toml")
    return sorted(p.name[:-5].replace("_", "-") for p in files)


def preset_path(name: str) -> Path:
    fname = str(name).replace("-", "_") + ".toml"
    path = _presets_dir() / fname
    if str(name).replace("_", "-") not in preset_names() or not path.is_file():
        raise ModelError(
            f"unknown model {name!r}: presets are {', '.join(preset_names())}, "
            "or give a path to a .toml file"
        )
    return path


def _read_toml(path: Path) -> dict:
    import stat

    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise ModelError(f"cannot read model file {path}: {exc.strerror}") from None
    if not stat.S_ISREG(mode):  # a FIFO would block here for ever
        raise ModelError(f"model file {path} is not a regular file")
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ModelError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ModelError(f"cannot read model file {path}: {exc.strerror}") from None


def _resolve(
    name_or_path: str | Path, chain: tuple[Path, ...] = (), here: Path | None = None
) -> tuple[dict, str]:
    """The merged tables of a model file and its ``[model] base`` chain; a relative base
    path is taken from the including file's directory."""
    text = str(name_or_path)
    is_path = text.endswith(".toml") or "/" in text or (here is None and Path(text).is_file())
    if is_path:
        path = Path(text)
        if here is not None and not path.is_absolute():
            path = here / path
    else:
        path = preset_path(text)
    path = path.resolve() if path.exists() else path
    if path in chain:
        loop = " -> ".join(p.name for p in (*chain, path))
        raise ModelError(f"model base cycle: {loop}")
    if len(chain) > 8:
        raise ModelError(f"model base chain too deep at {name_or_path!r}")
    data = _read_toml(path)
    model = data.get("model", {})
    if not isinstance(model, Mapping):
        raise ModelError(f"{path}: [model] must be a table")
    base = model.get("base")
    if base is not None:
        if not isinstance(base, str):
            raise ModelError(f"{path}: model.base = {base!r} must be a preset name or a path")
        base_data, _ = _resolve(base, (*chain, path), path.parent)
        data = _deep_merge(base_data, data)
        data["model"].pop("base", None)
    return data, str(path)


def load_model(
    name_or_path: str | Path = "zn-treated", overrides: Mapping[str, Any] | None = None
) -> Model:
    """Load a preset by name (``simsps.preset_names()``) or a TOML file, then apply
    dotted ``overrides`` such as ``{"blinking.enabled": False}``."""
    data, origin = _resolve(name_or_path)
    model = _from_dict(data, origin=Path(origin).name)
    if overrides:
        model = model.replace(overrides)
    return model


def parse_override(text: str) -> tuple[str, Any]:
    """Parse ``key=value`` as given on a command line (TOML value syntax, bare strings ok)."""
    if "=" not in text:
        raise ModelError(f"override {text!r} is not of the form key=value")
    key, raw = (s.strip() for s in text.split("=", 1))
    if "\n" in raw or "\r" in raw:
        raise ModelError(f"override {text!r}: one value per --set (no line breaks)")
    try:
        parsed = tomllib.loads(f"v = {raw}")
    except tomllib.TOMLDecodeError:
        parsed = {"v": raw}  # a bare word: a string
    if set(parsed) != {"v"}:
        raise ModelError(f"override {text!r}: one key=value per --set")
    _split_key(key)
    return key, parsed["v"]
