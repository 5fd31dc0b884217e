"""Spectrometer frames and widefield movies against their truth: the line fit (CEW, FWHM)
and its drift, and the survival estimator. z-tests at two-sided alpha 1e-3, fixed seeds."""

import dataclasses
import math

import numpy as np
import pytest

from simsps.analysis import AnalysisError, cew_drift, fit_spectrum, survival
from simsps.params.sample import HC_EV_NM, load_sample
from simsps.samples.spectra import spectrometer_frames
from simsps.samples.widefield import widefield_movie

from .helpers import Z_CRIT


@pytest.fixture(scope="module")
def sample():
    return load_sample("zn-treated")


def test_line_fit_is_unbiased_with_honest_errors(sample):
    """200 frames of a still line (no diffusion, no etching): CEW and FWHM z-scores have
    mean 0 and unit spread."""
    spec = dataclasses.replace(
        sample.spectrum,
        jitter_mev=0.0,
        etch_edge_nm_per_hour_at_psat=0.0,
        counts_per_frame_at_psat=3000.0,
    )
    fr = spectrometer_frames(sample.ensemble, spec, 11.5, np.arange(200.0), seed=5)
    true_cew = fr.true_cew_nm[0, 0]
    e0 = HC_EV_NM / true_cew
    half = spec.fwhm_mev * 1e-3 / 2
    true_fwhm = HC_EV_NM / (e0 - half) - HC_EV_NM / (e0 + half)
    fits = [fit_spectrum(fr.wavelength_nm, c) for c in fr.counts]
    for value, err, truth in (
        ("cew_nm", "cew_stderr_nm", true_cew),
        ("fwhm_nm", "fwhm_stderr_nm", true_fwhm),
    ):
        z = np.array([(getattr(f, value) - truth) / getattr(f, err) for f in fits])
        assert abs(z.mean()) * math.sqrt(len(z)) < Z_CRIT, value
        assert 0.8 < z.std() < 1.2, value


def test_blue_shift_from_photo_etching(sample):
    ens, spec = sample.ensemble, sample.spectrum
    fr = spectrometer_frames(ens, spec, 12.0, np.arange(0, 3601, 300.0), seed=6)
    d = cew_drift(fr)
    edge_1h = 12.0 - spec.etch_edge_nm_per_hour_at_psat
    truth = ens.cew_nm(12.0) - ens.cew_nm(edge_1h)  # nearly linear over 1 h
    shift, err = d.shift_nm(1.0)
    assert abs(shift - truth) / err < Z_CRIT
    assert d.scatter_nm == pytest.approx(spec.jitter_mev * 1e-3 * HC_EV_NM / 2.42**2, rel=0.5)
    # a bleached NC leaves only the dark counts; at 3 Psat the etching runs faster
    dark = spectrometer_frames(ens, spec, 12.0, [10.0], bleach_time_s=5.0, seed=6)
    assert dark.counts.mean() == pytest.approx(spec.dark_counts_per_pixel, rel=0.1)
    fast = cew_drift(
        spectrometer_frames(ens, spec, 12.0, np.arange(0, 3601, 300.0), power=3.0, seed=6)
    )
    assert fast.shift_nm()[0] > shift


def test_spectrum_bad_input(sample):
    with pytest.raises(AnalysisError, match="no line"):
        fit_spectrum(np.arange(500.0, 520.0), np.full(20, 3.0))
    with pytest.raises(AnalysisError, match="increase"):
        fit_spectrum(np.arange(520.0, 500.0, -1), np.ones(20))
    with pytest.raises(ValueError, match="power"):
        spectrometer_frames(sample.ensemble, sample.spectrum, 12.0, [0.0], power=-1.0)


@pytest.mark.parametrize("dilution", [10.0, 100.0, 200.0])
def test_survival_and_bleach_time(sample, dilution):
    wf = sample.widefield
    m = widefield_movie(wf, dilution, 800, seed=7)
    s = survival(m)
    assert s.n_ncs == 800  # every NC shows in the first frame at these counts
    tau = m.mean_bleach_time_s
    f, err = s.at(3600.0)
    p = math.exp(-3600.0 / tau)
    assert abs(f - p) / math.sqrt(p * (1 - p) / 800 + 1e-12) < Z_CRIT
    # frames every 20 s place each bleach within +-10 s: a small bias against tau
    assert abs(s.bleach_time_s - tau) / s.bleach_time_stderr_s < Z_CRIT


def test_survival_counts_time_from_the_first_frame(sample):
    """A real movie starts at any clock time: shifting the frame times changes nothing."""
    m = widefield_movie(sample.widefield, 50.0, 300, seed=8)
    a = survival(m)
    b = survival(time_s=m.time_s + 1234.0, counts=m.counts, empty_counts=m.empty_counts)
    assert b.bleach_time_s == pytest.approx(a.bleach_time_s)
    np.testing.assert_array_equal(a.fraction, b.fraction)


def test_survival_bad_input(sample):
    m = widefield_movie(sample.widefield, 10.0, 5, seed=1)
    with pytest.raises(AnalysisError, match="empty-spot"):
        survival(time_s=m.time_s, counts=m.counts, empty_counts=m.empty_counts[:1, :3])
    with pytest.raises(AnalysisError, match="no NC is seen"):
        survival(time_s=m.time_s, counts=m.counts * 0, empty_counts=m.empty_counts)
    with pytest.raises(ValueError, match="dilution"):
        widefield_movie(sample.widefield, -1.0, 5)
