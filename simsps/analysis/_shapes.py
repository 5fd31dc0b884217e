"""Decay and peak shapes: the exponential convolved with a Gaussian (ex-Gaussian), its CDF,
its periodic sum over earlier pulses, and the delay between two photons of one pulse.

All in one time unit (ns in the decay fits). ``tau`` the lifetime, ``mu`` the centre of the
Gaussian (the IRF), ``sigma`` its width. Written with ``erfcx`` so neither large
``sigma / tau`` nor long tails overflow.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

_SQRT2 = math.sqrt(2.0)


def exgauss_pdf(t, tau, mu, sigma):
    """Density of ``mu + Normal(0, sigma) + Exp(tau)``."""
    x = (np.asarray(t, np.float64) - mu) / sigma
    lam = sigma / tau
    z = (lam - x) / _SQRT2
    out = np.empty_like(x)
    pos = z > 0
    out[pos] = np.exp(-0.5 * x[pos] ** 2) * special.erfcx(z[pos])
    out[~pos] = np.exp(0.5 * lam * lam - x[~pos] * lam) * special.erfc(z[~pos])
    return 0.5 / tau * out


def exgauss_cdf(t, tau, mu, sigma):
    """CDF of ``mu + Normal(0, sigma) + Exp(tau)``:
    ``Phi(x) - exp(lam^2 / 2 - lam x) Phi(x - lam)`` with ``x = (t - mu) / sigma``,
    ``lam = sigma / tau``."""
    x = (np.asarray(t, np.float64) - mu) / sigma
    lam = sigma / tau
    z = (lam - x) / _SQRT2
    second = np.empty_like(x)
    pos = z > 0
    second[pos] = 0.5 * np.exp(-0.5 * x[pos] ** 2) * special.erfcx(z[pos])
    second[~pos] = 0.5 * np.exp(0.5 * lam * lam - x[~pos] * lam) * special.erfc(z[~pos])
    return special.ndtr(x) - second


_MAX_EXACT_PULSES = 64  # earlier pulses summed one by one before the geometric tail


def periodic_bin_integrals(edges, tau, mu, sigma, period):
    """Photons per bin (between consecutive ``edges``) of a unit-area ex-Gaussian repeated
    every ``period``: the decay of the current pulse and of every earlier one (and the next
    pulse's early jitter when ``mu`` is within 8 sigma of 0): ``sum_j F(e + j T)``
    differenced, the tail from j = 2 on summed as the geometric series it is once the
    Gaussian has gone."""
    e = np.asarray(edges, np.float64)
    cdf = exgauss_cdf(e, tau, mu, sigma) + exgauss_cdf(e + period, tau, mu, sigma)
    if mu < 8 * sigma + (e[-1] - period if e[-1] > period else 0.0):
        cdf += exgauss_cdf(e - period, tau, mu, sigma)
    out = np.diff(cdf)
    ratio = math.exp(-period / tau)
    if ratio > 0:  # F(x) = 1 - exp(lam^2/2 - (x - mu)/tau) far beyond the Gaussian:
        # for x - mu > 8 sigma + sigma^2 / tau; earlier pulses closer than that (an IRF wide
        # against the lifetime) are summed exactly first, so the exponent stays below zero
        lam = sigma / tau
        j = 2
        while e[0] + j * period - mu < 8 * sigma + sigma * lam and j < _MAX_EXACT_PULSES:
            out += np.diff(exgauss_cdf(e + j * period, tau, mu, sigma))
            j += 1
        expo = np.minimum(0.5 * lam * lam - (e + j * period - mu) / tau, 700.0)
        out += np.diff(-np.exp(expo) / (1.0 - ratio))
    return out


def pair_delay_cdf(x, comps_a, comps_b, shift, sigma):
    """CDF of ``t_b - t_a`` for two photons of one pulse, one per channel, each with delay
    ``Exp`` mixtures ``comps = [(weight, tau), ...]`` after Gaussians whose centres differ
    by ``shift`` and whose widths add to ``sigma``. ``E_b - E_a`` is an asymmetric Laplace:
    ``+Exp(tau_b)`` with probability ``tau_b / (tau_a + tau_b)``, else ``-Exp(tau_a)``."""
    x = np.asarray(x, np.float64)
    out = np.zeros_like(x)
    for wa, ta in comps_a:
        for wb, tb in comps_b:
            w = wa * wb
            out += w * tb / (ta + tb) * exgauss_cdf(x, tb, shift, sigma)
            # -Exp(ta) + Normal(shift): 1 - F_{+}(-x) with the centre mirrored
            out += w * ta / (ta + tb) * (1.0 - exgauss_cdf(-x, ta, -shift, sigma))
    return out
