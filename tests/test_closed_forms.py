"""The two kinds of closed forms of simsps.physics.closed_forms agree over one case table:
the forms built on the cascade's outcome table (which the kernel samples) against the
textbook forms written from the yields and the Poisson excitation, and the dwell means of
physics.blinking against scipy's truncated Pareto. Every case reads its numbers from the
model it names. Negative control: a table built with the wrong excitation law (no
two-excitation class) fails the g2 check."""

import numpy as np
import pytest
from scipy import stats

import simsps
from simsps.physics import closed_forms as cf
from simsps.physics.blinking import dwell_means, dwell_parameters

from .conftest import ideal_overrides

CASES = [  # (preset, overrides, power in Psat)
    ("zn-treated", {}, 0.25),
    ("zn-treated", {}, 1.0),
    ("zn-treated", {}, 3.0),
    ("zn-treated", {"biexciton.quantum_yield": 0.3, "detection.efficiency": 0.1}, 1.0),
    ("zn-treated", ideal_overrides(), 1.0),
    ("pristine", {}, 1.0),
    ("pristine", {}, 3.0),
    ("pristine", {"blinking.power_law_exponent": 1.8}, 0.5),
]


def _case(c):
    preset, overrides, n = c
    return simsps.load_model(preset).replace(overrides), n


@pytest.mark.parametrize("case", CASES)
def test_outcome_table_gives_the_textbook_g2_and_intensities(case):
    m, n = _case(case)
    assert cf.g2_zero(m, n) == pytest.approx(cf.g2_zero_of_states(m, n), rel=1e-9)
    np.testing.assert_allclose(
        cf.photons_per_pulse(m, n), cf.state_intensities(m, n, m.detection.efficiency), rtol=1e-9
    )
    if not (m.blinking.enabled or m.slow_blinking.enabled):
        q = m.exciton.quantum_yield, m.biexciton.quantum_yield
        assert cf.g2_zero(m, n) == pytest.approx(cf.cascade_g2_zero(*q, n), rel=1e-9)


def test_negative_control_a_single_excitation_class_fails(monkeypatch):
    """With P(n >= 2) taken as 0 the textbook g2(0) is 0, the table's is not."""
    m, n = _case(CASES[1])
    monkeypatch.setattr(cf, "_p_ge", lambda n: (-np.expm1(-n), 0.0))
    assert cf.g2_zero_of_states(m, n) == 0.0
    assert cf.g2_zero(m, n) > 0.05


@pytest.mark.parametrize("case", CASES)
def test_dwell_means_are_those_of_scipy(case):
    m, n = _case(case)
    rate = m.excitation.rep_rate_hz
    for sec in cf.PROCESSES:
        b = getattr(m, sec)
        if not b.enabled:
            continue
        scale = dwell_parameters(b, n, rate)
        means = dwell_means(scale, b.dwell, b.power_law_exponent, b.power_law_max_s * rate)
        scale_s = np.array(cf.dwell_scales_s(m, sec, n))
        np.testing.assert_allclose(scale / rate, scale_s, rtol=1e-12)
        if b.dwell == "exponential":
            want = scale
        else:
            t_max = b.power_law_max_s * rate
            want = [
                stats.truncpareto(b.power_law_exponent - 1, t_max / x, scale=x).mean()
                for x in scale
            ]
        np.testing.assert_allclose(means, want, rtol=1e-9)
