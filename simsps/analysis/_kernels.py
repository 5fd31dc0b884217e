"""Compiled loops (numba) of the correlation estimators: the walks over photon pairs and the
counting grid. Each kernel works on a slice of the photons and releases the GIL, so callers
split the work over threads (:func:`run_threaded`); results never depend on the split.

Delays are binned through a table on a logarithmic key of the delay (``2**m`` cells per
octave, from :func:`math.frexp`): the table gives a lower bound of the bin, and a short
walk along the edges finishes the job, so the result is exact for any edges and fast for
log-spaced ones.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

_JIT = dict(nogil=True, cache=True)


@numba.njit(**_JIT)
def _log_key(d, m):
    """Monotone key of the integer ``1 <= d < 2**53``: its binary exponent and the top ``m``
    bits of its mantissa (the bits of ``float(d)`` shifted right)."""
    return np.int64(np.float64(d).view(np.int64) >> (52 - m))


@numba.njit(**_JIT)
def _log_table(edges, m):
    """Table from key - key(edges[0]) to the number of edges <= the smallest delay of that
    key (a lower bound of 1 + the bin of any delay with that key)."""
    k_lo = _log_key(edges[0], m)
    k_hi = _log_key(edges[-1], m)
    lut = np.empty(k_hi - k_lo + 1, np.int64)
    for k in range(k_lo, k_hi + 1):
        start = np.int64(k << (52 - m)).view(np.float64)  # smallest float with key k
        lut[k - k_lo] = np.searchsorted(edges, math.ceil(start), side="right")
    return lut


def log_table(edges: np.ndarray):
    """(table, key of the first edge, m) for :func:`pair_histogram`; ``edges`` int64 > 0."""
    rel = np.min(edges[1:] / edges[:-1]) - 1.0
    # cells of at most 1/16 of the narrowest bin: the walk along the edges rarely moves
    m = int(min(max(math.ceil(-math.log2(math.log2(1.0 + rel))) + 4, 2), 16))
    return _log_table(edges, m), _log_key(edges[0], m), m


@numba.njit(**_JIT)
def _pair_histogram(ta, tb, i0, i1, edges, lut, k_lo, m, counts):
    """Add to ``counts[k]`` the cross pairs (a photon i0 <= i < i1, any b photon) with
    ``edges[k] <= |t_b - t_a| < edges[k + 1]``; ``ta``, ``tb`` sorted int64."""
    window = edges[-1]
    e0 = edges[0]
    n_b = len(tb)
    if i0 >= i1:
        return
    j = np.searchsorted(tb, ta[i0] - window, side="right")
    last = len(edges) - 1
    for i in range(i0, i1):
        x = ta[i]
        while j < n_b and tb[j] <= x - window:
            j += 1
        k = j
        while k < n_b and tb[k] < x + window:
            d = abs(tb[k] - x)
            if d >= e0:
                idx = lut[_log_key(d, m) - k_lo]
                while idx < last and d >= edges[idx]:
                    idx += 1
                counts[idx - 1] += 1
            k += 1


@numba.njit(**_JIT)
def _signed_pairs(ta, tb, i0, i1, window, out):
    """Signed delays ``t_b - t_a`` with ``|t_b - t_a| < window`` for a photons in [i0, i1),
    written to ``out`` (``None``-like empty: only counted); returns how many."""
    n_b = len(tb)
    n = 0
    if i0 >= i1:
        return 0
    j = np.searchsorted(tb, ta[i0] - window, side="right")
    fill = len(out) > 0
    for i in range(i0, i1):
        x = ta[i]
        while j < n_b and tb[j] <= x - window:
            j += 1
        k = j
        while k < n_b and tb[k] < x + window:
            if fill:
                out[n] = tb[k] - x
            n += 1
            k += 1
    return n


@numba.njit(**_JIT)
def _cell(t, r, inv):
    """``t // r`` for 0 <= t < 2**53 by a float product, corrected (faster than dividing)."""
    q = np.int64(t * inv)
    if q * r > t:
        q -= 1
    elif (q + 1) * r <= t:
        q += 1
    return q


@numba.njit(**_JIT)
def _grid_histogram(ta, tb, r, i0, i1, grid_edges, block, out):
    """Add to ``out[k]`` the pairs with ``|q_b - q_a| < grid_edges[k]`` on the grid of cells
    ``q = t // r``, for the a photons i0 <= i < i1 (``ta``, ``tb`` sorted, >= 0):
    ``sum_a (B(q_a + E) - B(q_a - E + 1))`` with ``B(x)`` the b photons in cells below x.
    ``B`` is built per block of ``block`` cells plus the longest edge on either side, so it
    stays in cache and empty stretches cost nothing; a photons in one cell go together."""
    if i0 >= i1:
        return
    e_max = grid_edges[-1]
    n_e = len(grid_edges)
    n_b = len(tb)
    cum = np.zeros(block + 2 * e_max + 1, np.int64)
    inv = 1.0 / r
    last = _cell(ta[i1 - 1], r, inv)
    i = i0
    jb = 0
    while i < i1:
        start = _cell(ta[i], r, inv)
        stop = min(start + block, last + 1)  # no further than this slice's photons
        base = start - e_max + 1  # cum[x - base] = b photons in cells [base, x)
        span = stop + e_max - base
        t_lo, t_hi = base * r, (base + span) * r
        if jb == 0 or tb[jb - 1] >= t_lo:
            jb = np.searchsorted(tb, t_lo)
        while jb < n_b and tb[jb] < t_lo:
            jb += 1
        cum[: span + 1] = 0
        j = jb
        while j < n_b and tb[j] < t_hi:
            cum[_cell(tb[j], r, inv) - base + 1] += 1
            j += 1
        for x in range(1, span + 1):
            cum[x] += cum[x - 1]
        t_stop = stop * r
        while i < i1 and ta[i] < t_stop:
            q = _cell(ta[i], r, inv)
            t_next = (q + 1) * r
            w = 1
            i += 1
            while i < i1 and ta[i] < t_next:
                w += 1
                i += 1
            c = q - base
            for k in range(n_e):
                e = grid_edges[k]
                out[k] += w * np.int64(cum[c + e] - cum[c - e + 1])


def _slices(n: int, threads: int | None, min_per_thread: int = 1 << 16) -> np.ndarray:
    """Cut points of [0, n) into one contiguous slice per thread (default: the CPUs, up to
    8, with at least ``min_per_thread`` items each)."""
    n_threads = threads or max(1, min(os.cpu_count() or 1, 8, n // min_per_thread))
    return np.linspace(0, n, n_threads + 1).astype(np.int64)


def run_threaded(
    kernel, n: int, n_out: int, threads: int | None = None, min_per_thread: int = 1 << 16
):
    """Run ``kernel(i0, i1, out)`` over [0, n) in contiguous slices on threads (default:
    the CPUs, up to 8, with at least ``min_per_thread`` items each) and return the sum of
    the per-slice ``out`` (int64, length ``n_out``)."""
    cuts = _slices(n, threads, min_per_thread)
    n_threads = len(cuts) - 1

    def part(k):
        out = np.zeros(n_out, np.int64)
        kernel(int(cuts[k]), int(cuts[k + 1]), out)
        return out

    if n_threads == 1:
        return part(0)
    with ThreadPoolExecutor(n_threads) as pool:
        return sum(pool.map(part, range(n_threads)))


def run_per_slice(kernel, cuts, n_out: int, threads: int | None = None) -> np.ndarray:
    """``kernel(i0, i1, out)`` for each slice [cuts[j], cuts[j + 1]) on threads; one row of
    ``out`` (int64, length ``n_out``) per slice."""
    cuts = np.asarray(cuts, np.int64)
    n = len(cuts) - 1
    result = np.zeros((n, n_out), np.int64)

    def part(j):
        kernel(int(cuts[j]), int(cuts[j + 1]), result[j])

    n_threads = min(n, threads or max(1, min(os.cpu_count() or 1, 8)))
    if n_threads <= 1:
        for j in range(n):
            part(j)
    else:
        with ThreadPoolExecutor(n_threads) as pool:
            list(pool.map(part, range(n)))
    return result


def pair_histogram(
    ta: np.ndarray, tb: np.ndarray, edges: np.ndarray, threads: int | None = None, cuts=None
) -> np.ndarray:
    """Cross pairs by ``|t_b - t_a|`` in the bins ``edges`` (int64, increasing, > 0);
    ``ta``, ``tb`` sorted int64. With ``cuts`` (slices of ``ta``): one row per slice."""
    edges = np.ascontiguousarray(edges, np.int64)
    lut, k_lo, m = log_table(edges)

    def kernel(i0, i1, out):
        _pair_histogram(ta, tb, i0, i1, edges, lut, k_lo, m, out)

    if cuts is not None:
        return run_per_slice(kernel, cuts, len(edges) - 1, threads)
    if not len(ta):
        return np.zeros(len(edges) - 1, np.int64)
    return run_threaded(kernel, len(ta), len(edges) - 1, threads)


def grid_histogram(
    ta: np.ndarray,
    tb: np.ndarray,
    r: int,
    grid_edges: np.ndarray,
    block: int = 1 << 16,
    threads: int | None = None,
    cuts=None,
) -> np.ndarray:
    """Pairs with ``|t_b // r - t_a // r| < E`` for each E of ``grid_edges`` (cells, int64
    >= 1); ``ta``, ``tb`` sorted int64 >= 0. With ``cuts``: one row per slice of ``ta``."""
    grid_edges = np.ascontiguousarray(grid_edges, np.int64)

    def kernel(i0, i1, out):
        _grid_histogram(ta, tb, np.int64(r), i0, i1, grid_edges, block, out)

    if cuts is not None:
        return run_per_slice(kernel, cuts, len(grid_edges), threads)
    if not len(ta):
        return np.zeros(len(grid_edges), np.int64)
    return run_threaded(kernel, len(ta), len(grid_edges), threads)


def signed_pairs(
    ta: np.ndarray, tb: np.ndarray, window: int, threads: int | None = None, cuts=None
):
    """Every delay ``t_b - t_a`` with ``|t_b - t_a| < window`` (int64, unordered).

    With ``cuts`` (increasing indices into ``ta``, first 0, last ``len(ta)``) the pairs
    come grouped by the slice of their a photon, and ``(delays, offsets)`` is returned:
    slice ``j``'s pairs are ``delays[offsets[j]:offsets[j + 1]]``."""
    if cuts is None:
        cuts_used = _slices(len(ta), threads)
    else:
        cuts_used = np.asarray(cuts, np.int64)
    n_parts = len(cuts_used) - 1
    n_threads = min(n_parts, threads or max(1, min(os.cpu_count() or 1, 8)))
    empty = np.zeros(0, np.int64)

    def count(k):
        return _signed_pairs(ta, tb, cuts_used[k], cuts_used[k + 1], window, empty)

    def fill(k):
        _signed_pairs(
            ta, tb, cuts_used[k], cuts_used[k + 1], window, out[offsets[k] : offsets[k + 1]]
        )

    if n_threads <= 1:
        sizes = [count(k) for k in range(n_parts)]
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        out = np.empty(int(offsets[-1]), np.int64)
        for k in range(n_parts):
            fill(k)
    else:
        with ThreadPoolExecutor(n_threads) as pool:
            sizes = list(pool.map(count, range(n_parts)))
            offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
            out = np.empty(int(offsets[-1]), np.int64)
            list(pool.map(fill, range(n_parts)))
    return out if cuts is None else (out, offsets)


@numba.njit(**_JIT)
def _split_times(sync, dtime, channel, a, b, period, resolution, out_a, out_b):
    """``sync * period + dtime * resolution`` of the channel-a and channel-b photons, into
    ``out_a`` and ``out_b`` (sized to fit); returns whether each came out in time order."""
    ia = ib = 0
    sorted_a = sorted_b = True
    for i in range(len(sync)):
        c = channel[i]
        if c == a:
            t = sync[i] * period + np.int64(dtime[i]) * resolution
            if ia and t < out_a[ia - 1]:
                sorted_a = False
            out_a[ia] = t
            ia += 1
        elif c == b:
            t = sync[i] * period + np.int64(dtime[i]) * resolution
            if ib and t < out_b[ib - 1]:
                sorted_b = False
            out_b[ib] = t
            ib += 1
    return sorted_a, sorted_b


def split_times(sync, dtime, channel, a: int, b: int, period: int, resolution: int):
    """Absolute times (int64, ps) of the photons of channel ``a`` and of ``b``, each sorted."""
    counts = np.bincount(channel, minlength=max(a, b) + 1)
    if a == b:
        raise ValueError("split_times needs two different channels")
    out_a, out_b = np.empty(counts[a], np.int64), np.empty(counts[b], np.int64)
    ok_a, ok_b = _split_times(
        sync, dtime, channel, a, b, np.int64(period), np.int64(resolution), out_a, out_b
    )
    return (
        out_a if ok_a else np.sort(out_a, kind="stable"),
        out_b if ok_b else np.sort(out_b, kind="stable"),
    )
