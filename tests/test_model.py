"""Model parameters: presets load, every bad value names its key and the allowed range."""

import dataclasses
import math

import jax
import pytest

import simsps
from simsps.params.model import ALL_KEYS, ModelError, load_model, parse_override

REQUIRED = """exciton.lifetime_ns exciton.quantum_yield trion.lifetime_ns trion.quantum_yield
biexciton.lifetime_ns biexciton.quantum_yield blinking.enabled blinking.dwell
blinking.bright_dwell_us blinking.grey_dwell_us bleaching.enabled excitation.rep_rate_hz
detection.efficiency detection.jitter_fwhm_ps detection.dead_time_ns detection.dark_cps
detection.afterpulse_probability detection.resolution_ps background.rate_cps""".split()


@pytest.mark.parametrize("name", ["zn-treated", "pristine"])
def test_presets_have_required_keys(name):
    m = load_model(name)
    assert m.name == name
    for k in REQUIRED:
        assert k in ALL_KEYS
        m.get(k)


def test_preset_names():
    assert {"zn-treated", "pristine"} <= set(simsps.preset_names())


def test_presets_carry_a_source_for_every_number():
    from simsps.params.model import preset_path

    for name in ("zn-treated", "pristine"):
        for line in preset_path(name).read_text().splitlines():
            s = line.strip()
            if "=" in s and not s.startswith("#") and not s.startswith("["):
                key = s.split("=")[0].strip()
                if key in ("name", "description", "base"):
                    continue
                assert "#" in s, f"{name}: {key} has no source comment"


def test_model_is_frozen_pytree(zn):
    with pytest.raises(dataclasses.FrozenInstanceError):
        zn.exciton.lifetime_ns = 3.0
    leaves = jax.tree_util.tree_leaves(zn)
    assert all(isinstance(x, float) for x in leaves)
    doubled = jax.tree_util.tree_map(lambda x: 2 * x, zn)
    assert doubled.exciton.lifetime_ns == 2 * zn.exciton.lifetime_ns
    assert doubled.blinking.dwell == zn.blinking.dwell  # static fields stay


def test_overrides_apply():
    m = load_model("zn-treated", overrides={"blinking.enabled": False, "exciton.lifetime_ns": 5})
    assert m.blinking.enabled is False and m.exciton.lifetime_ns == 5.0


@pytest.mark.parametrize(
    "key, value, fragment",
    [
        ("exciton.lifetime_ns", -1.0, "(0, 10000]"),
        ("exciton.lifetime_ns", 0.0, "(0, 10000]"),
        ("exciton.quantum_yield", 1.5, "[0, 1]"),
        ("biexciton.quantum_yield", -0.1, "[0, 1]"),
        ("detection.efficiency", math.nan, "[0, 1]"),
        ("detection.dark_cps", "fifty", "expected a number"),
        ("blinking.dwell", "gaussian", "exponential, power_law"),
        ("blinking.enabled", 1, "true or false"),
    ],
)
def test_bad_values_name_key_and_range(key, value, fragment):
    with pytest.raises(ModelError) as e:
        load_model("zn-treated", overrides={key: value})
    assert key in str(e.value) and fragment in str(e.value)


def test_unknown_key_suggests():
    with pytest.raises(
        ModelError, match="unknown model key 'exciton.lifetime_n'.*exciton.lifetime_ns"
    ):
        load_model("zn-treated", overrides={"exciton.lifetime_n": 3})


def test_unknown_preset_lists_presets():
    with pytest.raises(ModelError, match="zn-treated"):
        load_model("zn-treatd")


def test_user_toml_with_base(tmp_path):
    p = tmp_path / "mine.toml"
    p.write_text('[model]\nbase = "zn-treated"\nname = "mine"\n[exciton]\nlifetime_ns = 7.5\n')
    m = load_model(p)
    assert m.name == "mine" and m.exciton.lifetime_ns == 7.5 and m.trion.lifetime_ns == 1.3


def test_bad_toml_files(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[exciton\nlifetime_ns = 3")
    with pytest.raises(ModelError, match="not valid TOML"):
        load_model(bad)
    missing = tmp_path / "missing.toml"
    missing.write_text('[model]\nname="x"\n[exciton]\nlifetime_ns = 3\n')
    with pytest.raises(ModelError, match="missing section"):
        load_model(missing)
    unit = tmp_path / "unit.toml"
    unit.write_text('[model]\nbase = "zn-treated"\n[exciton]\nlifetime_s = 3e-9\n')
    with pytest.raises(ModelError, match="exciton.lifetime_s.*lifetime_ns"):
        load_model(unit)


def test_toml_roundtrip(tmp_path, zn):
    p = tmp_path / "rt.toml"
    p.write_text(zn.to_toml())
    assert load_model(p).to_dict() == zn.to_dict()


def test_parse_override():
    assert parse_override("blinking.enabled=false") == ("blinking.enabled", False)
    assert parse_override("blinking.dwell=power_law") == ("blinking.dwell", "power_law")
    assert parse_override("exciton.lifetime_ns = 3") == ("exciton.lifetime_ns", 3)
    with pytest.raises(ModelError):
        parse_override("nonsense")


@pytest.mark.parametrize("power", [0.0, -1.0, math.nan, math.inf, 1e9])
def test_bad_power(zn, power):
    with pytest.raises(ValueError, match=r"power .* allowed \(0, 1000\]"):
        simsps.simulate(zn, 0.01, power=power)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(duration_s=-1.0), "duration_s"),
        (dict(duration_s=math.nan), "duration_s"),
        (dict(duration_s=0.01, seed=-3), "seed"),
        (dict(duration_s=0.01, seed=1.5), "seed"),
        (dict(duration_s=0.01, chunk_pulses=1000), "chunk_pulses"),
        (dict(duration_s=0.01, emitters=0), "emitters"),
    ],
)
def test_bad_simulate_args(zn, kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        simsps.simulate(zn, **kwargs)
