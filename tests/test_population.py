"""Populations of different NCs in one vmapped kernel call, one stream per spot
(``simulate_population``): independence of the NCs, per-NC closed forms, and spots that hold
several NCs. Statistical checks: two-sided alpha 1e-3 (Z_CRIT), fixed seeds."""

import numpy as np
import pytest

import simsps
from simsps.analysis import pulsed_g2
from simsps.physics.closed_forms import cascade_g2_zero, state_intensities

from .conftest import ideal_overrides
from .helpers import Z_CRIT


def test_an_nc_does_not_depend_on_the_others(zn):
    other = zn.replace({"biexciton.quantum_yield": 0.5, "exciton.lifetime_ns": 5.0})
    two = simsps.simulate_population([zn, other], 0.5, seed=21)
    three = simsps.simulate_population([zn, other, zn], 0.5, seed=21, spot=[0, 1, 1])
    alone = simsps.simulate(zn, 0.5, seed=21)
    for a, b in ((two[0], alone), (two[0], three[0])):
        np.testing.assert_array_equal(a.sync, b.sync)
        np.testing.assert_array_equal(a.dtime, b.dtime)
    # NC 1 emits the same photons whether or not NC 2 shares its spot; NC 2's photons only
    # take some of them away through the shared detectors' dead time
    mine = lambda s: s.take(s.truth.emitter == 1).truth.arrival_ps  # noqa: E731
    alone_1, shared_1 = mine(two[1]), mine(three[1])
    assert np.isin(shared_1, alone_1).all()
    assert 0 < len(alone_1) - len(shared_1) < 0.01 * len(alone_1)
    assert sorted(set(three[1].truth.emitter.tolist()) - {simsps.stream.NO_EMITTER}) == [1, 2]
    assert three[1].meta["emitters"] == 2 and three[1].meta["spot"] == 1


def test_population_closed_forms_per_spot(zn):
    """Different biexciton yields in one call: each spot's g2(0) is its own closed form; a
    spot with k identical NCs shows 1 - (1 - g2_1) / k (independent emitters)."""
    base = zn.replace(ideal_overrides())
    models = [base, base.replace({"biexciton.quantum_yield": 0.4}), base, base, base]
    spots = simsps.simulate_population(models, 5.0, seed=22, spot=[0, 1, 2, 2, 2])
    g1, g_bx = (
        cascade_g2_zero(x.exciton.quantum_yield, x.biexciton.quantum_yield, 1.0) for x in models[:2]
    )
    expected = [g1, g_bx, 1 - (1 - g1) / 3]
    for s, want in zip(spots, expected):
        r = pulsed_g2(s, background=0.0)
        assert abs(r.g2_zero - want) / r.g2_zero_stderr_raw < Z_CRIT, (r.g2_zero, want)
    rates = [len(s) / 5.0 for s in spots]
    assert rates[2] == pytest.approx(3 * rates[0], rel=0.03)


def test_population_power_per_nc(zn):
    base = zn.replace(ideal_overrides())
    lo, hi = simsps.simulate_population([base, base], 2.0, power=[0.25, 3.0], seed=23)
    assert lo.meta["power"] == 0.25 and hi.meta["power"] == 3.0
    want = state_intensities(base, 3.0)[0] / state_intensities(base, 0.25)[0]
    assert len(hi) / len(lo) == pytest.approx(want, rel=0.03)  # ~0.7 % counting error


def test_population_bad_input(zn, pristine):
    # one call shares the laser and the detectors' dead time, afterpulsing and bin ...
    with pytest.raises(ValueError, match=r"detection\.dead_time_ns of model"):
        simsps.simulate_population([zn, zn.replace({"detection.dead_time_ns": 30.0})], 0.1)
    with pytest.raises(ValueError, match=r"excitation\.rep_rate_hz"):
        simsps.simulate_population([zn, zn.replace({"excitation.rep_rate_hz": 5e6})], 0.1)
    # ... and the NCs of one spot its efficiency and background
    eff = zn.replace({"detection.efficiency": 0.05})
    with pytest.raises(ValueError, match=r"share its detectors and background: detection\."):
        simsps.simulate_population([zn, eff], 0.1, spot=[0, 0])
    with pytest.raises(ValueError, match="without gaps"):
        simsps.simulate_population([zn, zn], 0.1, spot=[0, 2])
    with pytest.raises(ValueError, match="one per NC"):
        simsps.simulate_population([zn, zn], 0.1, power=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="out of range"):
        simsps.simulate_population([zn, zn], 0.1, power=[1.0, -2.0])
    with pytest.raises(ValueError, match="one per NC"):
        simsps.simulate_population([zn, zn], 0.1, power=[[1.0, 2.0]])
    with pytest.raises(ValueError, match="non-empty"):
        simsps.simulate_population([], 0.1)
    # pristine and zn-treated share the setup: one call holds both
    a, b = simsps.simulate_population([zn, pristine], 0.2, seed=1)
    assert a.meta["model"] == "zn-treated" and b.meta["model"] == "pristine"


def test_spots_with_their_own_efficiency_and_background(zn):
    """Spots of one call may differ in efficiency and background (a sweep's points): each
    spot's count rate is its own closed form (no blinking: only counting noise, ~0.5 %)."""
    from simsps.physics.closed_forms import emitter_rate_cps

    base = zn.replace({"blinking.enabled": False, "slow_blinking.enabled": False})
    models = [base, base.replace({"detection.efficiency": 0.05, "background.rate_cps": 5e3})]
    streams = simsps.simulate_population(models, 2.0, 1.0, seed=4)
    for m, s in zip(models, streams):
        noise = 2 * m.detection.dark_cps + m.background.rate_cps + m.background.prompt_cps
        want = emitter_rate_cps(m, 1.0) + noise
        assert len(s) / s.duration_s == pytest.approx(want, rel=0.03), m.detection.efficiency


def test_a_thousand_ncs_in_one_call_stay_within_memory():
    """1000 NCs, each its own spot, in one call (a fresh process, so its peak memory is its
    own): the chunk shrinks with the number of NCs, so the process stays far below a 24 GiB
    machine's memory; every spot gets photons."""
    import subprocess
    import sys

    code = (
        "import simsps\n"
        "m = simsps.load_model('zn-treated')\n"
        "s = simsps.simulate_population([m] * 1000, 0.11, 1.0, seed=3)\n"
        "assert len(s) == 1000 and all(len(x) > 0 for x in s)\n"
        # VmHWM starts afresh at exec (ru_maxrss keeps the forked copy of pytest's size)
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')]\n"
        "print(int(hwm[0].split()[1]) / 2**20)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    peak_gib = float(out.stdout.strip().splitlines()[-1])
    print(f"1000 NCs: peak {peak_gib:.2f} GiB")
    assert peak_gib < 4.0, peak_gib
