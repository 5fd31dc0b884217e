"""Estimators for TTTR photon streams, simulated or measured (PHYSICS.md sections 3, 4, 7).

Every estimator takes a :class:`simsps.PhotonStream` (or what an earlier one returned) and
gives a frozen result with its uncertainty; results that people look at have ``plot()``.
Bad input raises :class:`AnalysisError` (a ``ValueError``) naming the problem.
"""

from ._common import AnalysisError
from .afterpulsing import Afterpulsing, DetectorAfterpulsing, afterpulsing
from .changepoint import Segmentation, change_points
from .decay import Decay, DecayFit, decay, fit_decay
from .flid import Flid, flid
from .g2_cw import CWG2, g2_cw
from .g2_log import BunchingFit, G2Log, fit_bunching, g2_log
from .g2_pulsed import PulsedG2, pulsed_g2
from .saturation import PowerSeries, SaturationFit, fit_saturation, power_series
from .spectrum import CewDrift, SpectrumFit, cew_drift, fit_spectrum
from .traces import (
    DwellFit,
    Dwells,
    LifetimeTrace,
    Trace,
    TwoLevel,
    dwell_times,
    fit_dwells,
    intensity_trace,
    lifetime_trace,
    photon_mask,
    two_level,
)
from .widefield import Survival, survival

__all__ = [
    "AnalysisError",
    "Afterpulsing",
    "BunchingFit",
    "DetectorAfterpulsing",
    "afterpulsing",
    "CWG2",
    "CewDrift",
    "Decay",
    "DecayFit",
    "DwellFit",
    "Dwells",
    "Flid",
    "G2Log",
    "LifetimeTrace",
    "PowerSeries",
    "PulsedG2",
    "SaturationFit",
    "Segmentation",
    "SpectrumFit",
    "Survival",
    "Trace",
    "TwoLevel",
    "cew_drift",
    "change_points",
    "decay",
    "dwell_times",
    "fit_bunching",
    "fit_decay",
    "fit_dwells",
    "fit_saturation",
    "fit_spectrum",
    "flid",
    "g2_cw",
    "g2_log",
    "intensity_trace",
    "lifetime_trace",
    "photon_mask",
    "power_series",
    "pulsed_g2",
    "survival",
    "two_level",
]
