"""Small statistics and helpers of the tests. The closed forms they check against are in
:mod:`simsps.physics.closed_forms` (written from the model's parameters, not from the
kernel's tables)."""

import math

import numpy as np
from hypothesis import strategies as st
from scipy import stats

import simsps
from simsps.sim.reference import simulate_reference

Z_CRIT = stats.norm.isf(0.5e-3)  # two-sided alpha = 1e-3


def run(engine, model, duration_s, power=1.0, seed=0, **kw):
    if engine == "jax":
        return simsps.simulate(model, duration_s, power=power, seed=seed, **kw)
    return simulate_reference(model, duration_s, power=power, seed=seed)


def counts_per_pulse(stream):
    return np.bincount(stream.sync, minlength=stream.n_pulses).astype(np.float64)


def autocorrelation(c, lags):
    """Normalised intensity correlation G(k) = <c_i c_i+k> / <c>^2 of per-pulse counts."""
    mean = c.mean()
    return np.array([np.mean(c[:-k] * c[k:]) / mean**2 for k in lags])


def poisson_z(observed, expected):
    return (observed - expected) / math.sqrt(expected)


def two_rate_z(n1, t1, n2, t2):
    """z statistic of equal Poisson rates ``n1/t1`` and ``n2/t2``."""
    r1, r2 = n1 / t1, n2 / t2
    return (r1 - r2) / math.sqrt(n1 / t1**2 + n2 / t2**2)


def assert_damaged_file_fails_cleanly(data, raw: bytes, path, min_changes: int = 0):
    """Hypothesis helper: change a few bytes of ``raw``, cut it, write it to ``path`` and
    read it: the read either succeeds or raises TTTRFileError naming the file."""
    from simsps.io import TTTRFileError, read

    raw = bytearray(raw)
    for _ in range(data.draw(st.integers(min_changes, 8))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    path.write_bytes(bytes(raw[: data.draw(st.integers(0, len(raw)))]))
    try:
        r = read(path)
    except TTTRFileError as e:
        assert path.name in str(e)
    else:
        assert isinstance(r, simsps.PhotonStream)
