"""Sample-level presets ([ensemble], [spectrum], [widefield]) and populations of NCs."""

import math

import numpy as np
import pytest
from scipy import stats

from simsps.params.model import ModelError
from simsps.params.sample import load_sample
from simsps.samples.ensemble import draw_population, nc_model

from .helpers import Z_CRIT


@pytest.fixture(scope="module")
def sample():
    return load_sample("zn-treated")


def test_presets_hold_the_sample_sections(sample):
    assert sample.ensemble.cew_nm(sample.ensemble.reference_edge_nm) == pytest.approx(
        sample.ensemble.reference_cew_nm, abs=1e-9
    )
    wf = sample.widefield
    np.testing.assert_allclose(wf.bleach_time_at(wf.dilutions), wf.bleach_time_s)
    assert load_sample("pristine").ensemble is None
    with pytest.raises(ModelError, match=r"no \[ensemble\] section"):
        load_sample("pristine").need("ensemble")


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("ensemble.edge_std_nm", -1.0, "out of range"),
        ("ensemble.edge_max_nm", 11.0, "edge_min_nm < edge_mean_nm < edge_max_nm"),
        ("ensemble.bulk_gap_ev", 2.5, "above the bulk gap"),
        ("widefield.dilutions", [20.0, 10.0], "must increase"),
        ("widefield.bleach_time_s", [1.0, 2.0], "same length"),
        ("spectrum.range_nm", [570.0, 460.0], "first < last"),
        ("spectrum.fwhm", 15.0, "unknown key spectrum.fwhm"),
        ("ensembel.edge_mean_nm", 12.0, "unknown sample key"),
    ],
)
def test_bad_sample_values_name_the_key(key, value, message):
    with pytest.raises(ModelError, match=message):
        load_sample("zn-treated", {key: value})


def test_user_toml_inherits_the_sample(tmp_path):
    p = tmp_path / "mine.toml"
    p.write_text('[model]\nbase = "zn-treated"\nname = "mine"\n[ensemble]\nedge_mean_nm = 10.0\n')
    s = load_sample(p)
    assert s.ensemble.edge_mean_nm == 10.0 and s.spectrum.fwhm_mev == 71.0


def test_auger_time_scales_with_volume(zn, sample):
    ens = sample.ensemble
    same = nc_model(zn, ens, ens.reference_edge_nm)
    assert same.biexciton.quantum_yield == pytest.approx(zn.biexciton.quantum_yield)
    big = nc_model(zn, ens, 1.2 * ens.reference_edge_nm)
    k_r = zn.biexciton.quantum_yield / zn.biexciton.lifetime_ns
    auger = lambda m: 1 / m.biexciton.lifetime_ns - k_r  # noqa: E731
    assert auger(zn) / auger(big) == pytest.approx(1.2**3)
    assert big.biexciton.quantum_yield / big.biexciton.lifetime_ns == pytest.approx(k_r)
    assert big.biexciton.quantum_yield > zn.biexciton.quantum_yield
    assert big.exciton == zn.exciton


def test_population_draws(zn, sample):
    ens = sample.ensemble
    small = draw_population(zn, ens, 10, seed=4)
    large = draw_population(zn, ens, 1500, seed=4)
    first = np.isin(large.spot, np.arange(10))
    np.testing.assert_array_equal(small.edge_nm, large.edge_nm[first])  # spot s fixed
    sizes = large.spot_size
    n_clusters = int((sizes > 1).sum())
    p = ens.cluster_fraction
    assert abs(n_clusters - 1500 * p) / math.sqrt(1500 * p * (1 - p)) < Z_CRIT
    assert sizes[sizes > 1].min() >= ens.cluster_min_ncs
    extra = sizes[sizes > 1] - ens.cluster_min_ncs
    assert (
        abs(extra.mean() - ens.cluster_extra_ncs_mean)
        / math.sqrt(ens.cluster_extra_ncs_mean / len(extra))
        < Z_CRIT
    )
    single = np.isin(large.spot, np.flatnonzero(sizes == 1))
    e = large.edge_nm[single]
    # normal cut to the size-selection window
    a, b = (
        (ens.edge_min_nm - ens.edge_mean_nm) / ens.edge_std_nm,
        (ens.edge_max_nm - ens.edge_mean_nm) / ens.edge_std_nm,
    )
    law = stats.truncnorm(a, b, loc=ens.edge_mean_nm, scale=ens.edge_std_nm)
    assert stats.kstest(e, law.cdf).pvalue > 1e-3
    assert ens.edge_min_nm <= large.edge_nm.min() and large.edge_nm.max() <= ens.edge_max_nm
    # clusters emit red-shifted lines
    gap = 1239.841984 / large.cew_nm
    np.testing.assert_allclose(gap[single], ens.gap_ev(e))
    np.testing.assert_allclose(
        gap[~single], ens.gap_ev(large.edge_nm[~single]) - ens.cluster_redshift_mev * 1e-3
    )
    with pytest.raises(ValueError, match="n_spots"):
        draw_population(zn, ens, 0)
