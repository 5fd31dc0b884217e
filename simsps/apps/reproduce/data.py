"""The simulated datasets behind the figures, made once and shared between figures.

Sizes depend on the mode (``quick``: minutes on a laptop CPU; full: the seed's acquisition
times). Each dataset has its own seed, derived from the run's seed and recorded in the
report, so any one of them can be regenerated alone.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from ...analysis import g2_log, intensity_trace, pulsed_g2
from ...params.model import load_model
from ...params.sample import load_sample
from ...samples.ensemble import draw_population, simulate_ensemble
from ...samples.spectra import spectrometer_frames
from ...samples.widefield import widefield_movie
from ...sim.engine import simulate

POWERS = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0)  # seed Fig. 5a, S7: x Psat
BUNCHING_FIT_MAX_S = 1e-3  # seed Fig. 4d: the flicker bunching lives below ~100 us
DILUTIONS = (10.0, 20.0, 50.0, 100.0, 200.0)  # seed Fig. 2a


@dataclasses.dataclass(frozen=True)
class Config:
    quick: bool
    trace_s: float  # single-NC acquisitions at Psat (seed: 600 s)
    power_s: dict  # acquisition time per power of the series
    spots: int  # NCs of Fig. 3 (seed: 64)
    spot_s: float  # acquisition per spot
    widefield_ncs: int  # NCs per dilution in the widefield movies

    @classmethod
    def tiny(cls) -> "Config":
        """Seconds-long datasets for tests and the notebook: figures and report, not bands."""
        return cls(True, 10.0, {p: 4.0 for p in POWERS}, 12, 1.0, 60)

    @classmethod
    def make(cls, quick: bool) -> "Config":
        if quick:  # low powers longer: g2(0) needs coincidences, which scale as power^2
            return cls(
                True,
                60.0,
                {0.25: 600.0, 0.5: 150.0, 1.0: 60.0, 1.5: 30.0, 2.0: 30.0, 3.0: 30.0},
                64,
                5.0,
                400,
            )
        return cls(
            False,
            600.0,
            {0.25: 3000.0, 0.5: 1200.0, 1.0: 600.0, 1.5: 300.0, 2.0: 300.0, 3.0: 300.0},
            64,
            30.0,
            1500,
        )


def _survived(stream) -> bool:
    """Judged from the data, as in the lab: the last tenth of the trace is at least half as
    bright as the first (a bleached NC drops to the background)."""
    tr = intensity_trace(stream, stream.duration_s / 100)
    return tr.counts[-10:].mean() >= 0.5 * tr.counts[:10].mean()


class Data:
    """Lazily simulated datasets; ``seeds`` and ``describe()`` go into the report."""

    def __init__(self, config: Config, seed: int = 0, overrides: dict | None = None):
        """``overrides``: dotted keys per preset, ``{"zn": {...}, "pristine": {...},
        "sample": {...}, "pristine_sample": {...}}`` (the tests' negative controls: a model
        without the effect a row measures must fail that row)."""
        self.config = config
        self.seed = int(seed)
        o = overrides or {}
        unknown = set(o) - {"zn", "pristine", "sample", "pristine_sample"}
        if unknown:
            raise ValueError(f"unknown override group(s) {sorted(unknown)}")
        self.overrides = o
        self.zn = load_model("zn-treated", o.get("zn"))
        self.pristine = load_model("pristine", o.get("pristine"))
        self.sample = load_sample("zn-treated", o.get("sample"))
        self.pristine_sample = load_sample("pristine", o.get("pristine_sample"))
        self.used: dict[str, dict] = {}
        self.details: dict[str, dict] = {}  # per figure: values behind the panel, for the report

    def _seed(self, name: str, offset: int, what: str) -> int:
        s = (self.seed * 101 + offset) % 2**32
        self.used[name] = dict(what=what, seed=s)
        return s

    def _surviving(self, name: str, offset: int, what: str, measure) -> list:
        """``measure(seed)`` (a list of streams of one NC) for the first NC, seed after seed,
        that bleaches in none of them; the NCs set aside are counted in the report."""
        base = self._seed(name, offset, what)
        for k in range(20):
            seed = (base + 7919 * k) % 2**32
            streams = measure(seed)
            if all(_survived(s) for s in streams):
                break
        self.used[name] = dict(
            what=what
            + (f"; {k} NC(s) that bleached during the acquisition set aside" if k else ""),
            seed=seed,
        )
        return streams

    @functools.cached_property
    def zn_psat(self):
        """The NC of Figs. 3c, 4 and S5. As in the lab, an NC that bleaches during the
        acquisition (its trace's last tenth below half its first, ~6 % of NCs in 600 s) is
        set aside and the next one measured; the report says how many were."""
        c = self.config
        return self._surviving(
            "zn_psat",
            1,
            f"zn-treated NC at Psat, {c.trace_s:g} s",
            lambda seed: [simulate(self.zn, c.trace_s, 1.0, seed)],
        )[0]

    @functools.cached_property
    def zn_pulsed_g2(self):
        """Pulsed g2 of :attr:`zn_psat`, the empty spot's rate as background (Figs. 3c, S5)."""
        return pulsed_g2(self.zn_psat, background=self.background_cps(1.0))

    @functools.cached_property
    def zn_g2_log(self):
        """g2 of :attr:`zn_psat` from 10 ns to 1 s (Figs. 4d, S6), the empty spot's rate as
        background, with the bunching fit over the fast flicker's range (20 periods to
        1 ms; the slow blinking's ~1 % beyond is the plateau row)."""
        return g2_log(
            self.zn_psat,
            tau_max_s=min(1.0, self.zn_psat.duration_s / 4),
            fit_max_s=BUNCHING_FIT_MAX_S,
            background=self.background_cps(1.0),
        )

    @functools.cached_property
    def _background(self) -> dict:
        """Count rate (cps) of an empty spot at each power, as measured beside the NCs:
        the setup with no emitter (laser on: dark counts, room light, prompt scatter/PL)."""
        c = self.config
        seed = self._seed("empty_spot", 8, f"an empty spot (no NC) at each power, {c.trace_s:g} s")
        empty = self.zn.replace({"detection.efficiency": 0.0})
        out = {}
        for p in sorted(set(POWERS) | {1.0}):
            s = simulate(empty, c.trace_s, p, seed)
            out[p] = len(s) / s.duration_s
        return out

    def background_cps(self, power: float = 1.0) -> float:
        return self._background[power]

    @functools.cached_property
    def pristine_psat(self):
        c = self.config
        seed = self._seed("pristine_psat", 2, f"pristine NC at Psat, {c.trace_s:g} s")
        return simulate(self.pristine, c.trace_s, 1.0, seed)

    @functools.cached_property
    def power_series(self):
        """One NC at the six powers (the same seed at each); a series in which the NC
        bleached is set aside, as for :attr:`zn_psat`."""
        c = self.config
        what = "zn-treated NC at " + ", ".join(f"{p:g} Psat {c.power_s[p]:g} s" for p in POWERS)
        return self._surviving(
            "power_series",
            3,
            what,
            lambda seed: [simulate(self.zn, c.power_s[p], p, seed) for p in POWERS],
        )

    @functools.cached_property
    def population(self):
        c = self.config
        seed = self._seed(
            "population", 4, f"{c.spots} spots (ensemble draw), {c.spot_s:g} s each at Psat"
        )
        return draw_population(self.zn, self.sample.ensemble, c.spots, seed)

    @functools.cached_property
    def population_streams(self):
        return simulate_ensemble(
            self.population, self.config.spot_s, 1.0, self.used["population"]["seed"]
        )

    @functools.cached_property
    def population_spectra(self):
        """One spectrometer frame per spot, at the start of its acquisition."""
        pop, ens = self.population, self.sample.ensemble
        seed = self._seed("population_spectra", 5, "one spectrometer frame per spot")
        return [
            spectrometer_frames(
                ens,
                self.sample.spectrum,
                pop.edge_nm[pop.members(s)],
                [0.0],
                redshift_mev=ens.cluster_redshift_mev if len(pop.members(s)) > 1 else 0.0,
                seed=(seed * 1009 + s) % 2**32,
            )
            for s in range(pop.n_spots)
        ]

    @functools.cached_property
    def drift_spectra(self):
        seed = self._seed(
            "drift_spectra", 6, "a 12 nm zn-treated NC at Psat, a spectrum every 5 min for 1 h"
        )
        return spectrometer_frames(
            self.sample.ensemble,
            self.sample.spectrum,
            self.sample.ensemble.reference_edge_nm,
            np.arange(0.0, 3601.0, 300.0),
            seed=seed,
        )

    @functools.cached_property
    def widefield(self):
        n = self.config.widefield_ncs
        seed = self._seed(
            "widefield", 7, f"{n} zn-treated NCs per dilution, a frame every 20 s for 1 h"
        )
        wf = self.sample.widefield
        movies = {d: widefield_movie(wf, d, n, seed=seed) for d in DILUTIONS}
        movies["pristine"] = widefield_movie(
            self.pristine_sample.widefield,
            20.0,
            n,
            duration_s=1200.0,
            seed=self._seed(
                "widefield_pristine", 9, f"{n} pristine NCs at 1:20, a frame every 20 s for 20 min"
            ),
        )
        return movies
