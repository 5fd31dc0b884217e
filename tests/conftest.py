"""Shared fixtures. Statistical tests fix their seeds; alpha is stated in each test."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import simsps  # noqa: E402

ALPHA = 1e-3  # significance level of every statistical test


# The coverage tests take minutes each: under `pytest -n 2 --dist worksteal` (make test)
# each worker's half of the queue starts with half of them, and the short tests fill in
# by stealing, so the wall time is about half the total instead of one worker's backlog.
LONG = (
    "tests/test_coverage.py::",
    "tests/test_g2_cw.py::test_interval_coverage",
    "tests/test_fuzz.py::test_fuzz_campaign",
)


def pytest_collection_modifyitems(config, items):
    long = [it for it in items if it.nodeid.startswith(LONG)]
    rest = [it for it in items if not it.nodeid.startswith(LONG)]
    half = (len(rest) + len(long) % 2) // 2
    items[:] = long[0::2] + rest[:half] + long[1::2] + rest[half:]


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
