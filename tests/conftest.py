"""Shared fixtures. Statistical tests fix their seeds; alpha is stated in each test."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import simsps  # noqa: E402

ALPHA = 1e-3  # significance level of every statistical test


@pytest.fixture(scope="session")
def zn():
    return simsps.load_model("zn-treated")


@pytest.fixture(scope="session")
def pristine():
    return simsps.load_model("pristine")


def ideal_overrides(**extra):
    """No blinking, bleaching, noise or dead time: the emitter alone, perfectly timed."""
    o = {
        "blinking.enabled": False,
        "slow_blinking.enabled": False,
        "bleaching.enabled": False,
        "detection.dark_cps": 0.0,
        "detection.afterpulse_probability": 0.0,
        "detection.dead_time_ns": 0.0,
        "detection.jitter_fwhm_ps": 0.0,
        "background.rate_cps": 0.0,
        "background.prompt_cps": 0.0,
    }
    o.update(extra)
    return o


def rng(seed=0):
    return np.random.default_rng(seed)
