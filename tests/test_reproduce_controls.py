"""Every row of the paper-vs-simulation report can fail: for each, a model without the
effect the row measures (or, where the paper's band contains "no effect", with too much
of it) makes that row miss its band. The datasets are smaller than `--quick`'s but large
enough that each control misses by far; the quick run itself, every row within its band,
is test_reproduce.py::test_quick_run_is_within_every_band.
"""

import pytest
from matplotlib.figure import Figure

from simsps.apps.reproduce import FIGURES, Config, Data, seed_numbers
from simsps.apps.reproduce.data import POWERS

PANELS = {name: panel for name, panel, _ in FIGURES}
CONTROL = Config(
    True, 20.0, {0.25: 120.0, 0.5: 40.0, 1.0: 20.0, 1.5: 15.0, 2.0: 15.0, 3.0: 15.0}, 24, 3.0, 150
)
NO_BLEACH = {"widefield.bleach_time_s": [1e9] * 5}

# row key -> (figures to run, overrides, why the control lacks the effect)
CONTROLS = {
    "fig2a_survival_1h_dilution_10": ("2a", {"sample": NO_BLEACH}, "no bleaching"),
    "fig2a_survival_1h_dilution_20": ("2a", {"sample": NO_BLEACH}, "no bleaching"),
    "fig2a_survival_1h_dilution_50": ("2a", {"sample": NO_BLEACH}, "no bleaching"),
    "fig2a_survival_1h_dilution_100": ("2a", {"sample": NO_BLEACH}, "no bleaching"),
    "fig2a_bleach_time_min_dilution_200": ("2a", {"sample": NO_BLEACH}, "no bleaching"),
    "fig2a_pristine_bleach_time_min_dilution_20": (
        "2a",
        {"pristine_sample": {"widefield.bleach_time_s": [1e9]}},
        "pristine stable",
    ),
    "fig2b_cew_blue_shift_nm_1h": (  # the band holds 0: the control etches 3x faster
        "2b",
        {"sample": {"spectrum.etch_edge_nm_per_hour_at_psat": 2.7}},
        "3x etching",
    ),
    "fig3a_cew_mean_nm_64_ncs": (
        "3a",
        {"sample": {"ensemble.reference_cew_nm": 505.0}},
        "NCs emitting 7 nm bluer",
    ),
    "fig3a_cew_std_nm_64_ncs": (
        "3a",
        {"sample": {"ensemble.edge_std_nm": 0.05, "ensemble.cluster_fraction": 0.0}},
        "no size spread",
    ),
    "fig3a_cew_range_nm": (
        "3a",
        {"sample": {"ensemble.edge_std_nm": 0.05, "ensemble.cluster_fraction": 0.0}},
        "no size spread",
    ),
    "fig3b_fwhm_nm": ("3a,3b", {"sample": {"spectrum.fwhm_mev": 40.0}}, "a narrower line"),
    "fig3c_g2_zero_background_corrected": (
        "3c",
        {"zn": {"biexciton.quantum_yield": 0.3}},
        "bright biexciton",
    ),
    "fig3d_g2_zero_bluest_ncs": (
        "3a,3d",
        {"zn": {"biexciton.quantum_yield": 0.3}},
        "bright biexciton",
    ),
    "fig3d_g2_zero_reddest_ncs": (
        "3a,3d",
        {"sample": {"ensemble.cluster_fraction": 0.0}},
        "no clusters",
    ),
    "fig4a_trace_stability_600s": (  # every NC bleaches within a second (none set aside)
        "4a",
        {"zn": {"bleaching.probability_per_excitation": 1e-6}},
        "no photostability",
    ),
    "fig4b_lifetime_high_state_ns": (
        "4a,4b",
        {"zn": {"slow_blinking.enabled": False}},
        "no slow blinking",
    ),
    "fig4b_lifetime_low_state_ns": (
        "4a,4b",
        {"zn": {"slow_blinking.enabled": False}},
        "no slow blinking",
    ),
    "fig4d_bunching_below_10us": ("4d", {"zn": {"blinking.enabled": False}}, "no flicker"),
    "fig4d_g2_above_100us": (
        "4d",
        {"zn": {"slow_blinking.grey_dwell_ms": 400.0}},
        "much slow blinking",
    ),
    "fig5a_psat_recovered_ratio": (  # the bright fraction collapses with power
        "5a",
        {"zn": {"blinking.spontaneous_charging_fraction": 0.0, "blinking.grey_dwell_us": 300.0}},
        "power-driven charging",
    ),
    "fig5a_g2_zero_025psat_over_psat": (
        "5a",
        {"zn": {"biexciton.quantum_yield": 0.9}},
        "a biexciton as bright as the exciton",
    ),
    "fig5a_g2_zero_3psat_over_psat": (  # no exciton-dominated emission
        "5a",
        {"zn": {"exciton.quantum_yield": 0.1, "biexciton.quantum_yield": 0.9}},
        "biexciton-dominated emission",
    ),
    "fig5_flid_spread_3psat_over_psat": (  # shot noise alone narrows it at 3 Psat
        "5b,5c",
        {"zn": {"slow_blinking.enabled": False, "blinking.enabled": False}},
        "no blinking",
    ),
    "figs6_bunching_pristine_over_zn": (
        "4d,S6",
        {"pristine": {"blinking.enabled": False}},
        "pristine without blinking",
    ),
}


def test_every_row_has_a_control():
    assert sorted(CONTROLS) == sorted(seed_numbers())


def run_rows(figures: str, overrides: dict, seed: int = 5) -> dict:
    data = Data(CONTROL, seed, overrides)
    rows = {}
    for name in figures.split(","):
        rows.update({r.key: r for r in PANELS[name](data, Figure())})
    return rows


@pytest.mark.slow
@pytest.mark.parametrize("key", sorted(CONTROLS))
def test_row_fails_without_its_effect(key):
    figures, overrides, why = CONTROLS[key]
    row = run_rows(figures, overrides)[key]
    assert not row.ok, f"{key} passes without its effect ({why}): {row.simulated}"


@pytest.mark.slow
def test_controls_pass_with_the_effect():
    """The same small datasets with the presets as they are pass the rows the controls
    fail on, where these sizes resolve them (so a control fails for the effect, not for
    its size)."""
    rows = {}
    for figures in ("2a", "2b", "3a,3b,3c,3d", "4a,4b,4d", "S6"):
        rows.update(run_rows(figures, {}))
    bad = [f"{k}: {r.simulated}" for k, r in rows.items() if not r.ok]
    assert not bad, bad
    assert set(rows) >= set(CONTROLS) - {k for k in CONTROLS if k.startswith("fig5")}
    assert POWERS[0] == 0.25
