"""threefry2x32, the hash behind ``jax.random``'s default keys, written out for the kernels.

:func:`threefry2x32` is the same 20 rounds as JAX's ``threefry2x32`` primitive, in plain
``jax.numpy`` integer operations and unrolled. On CPUs JAX lowers the primitive to a rolled
five-step loop, which XLA cannot fuse with the floating-point work that consumes the words
(2-3x slower in the kernel); unrolled, the hash and its consumers compile into one loop.
The words are bit-identical on every backend (tested against the primitive).

:func:`threefry2x32_host` and :func:`fold_in_host` are the same hash as scalar numba
functions, for the host step's words drawn on demand (a photon's afterpulse numbers);
``fold_in_host(key, data)`` equals the key data of ``jax.random.fold_in(key, data)``.
"""

from __future__ import annotations

import jax.numpy as jnp
import numba
import numpy as np

__all__ = ["threefry2x32", "threefry2x32_host", "fold_in_host"]

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = 0x1BD11BDA


def threefry2x32(k0, k1, x0, x1):
    """``threefry2x32((k0, k1), (x0, x1))`` elementwise on uint32 arrays (broadcasting)."""
    u = jnp.uint32
    ks = (k0, k1, k0 ^ k1 ^ u(_PARITY))
    x0 = x0 + ks[0]
    x1 = x1 + ks[1]
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x0 = x0 + x1
            x1 = (x1 << u(r)) | (x1 >> u(32 - r))
            x1 = x1 ^ x0
        x0 = x0 + ks[(i + 1) % 3]
        x1 = x1 + ks[(i + 2) % 3] + u(i + 1)
    return x0, x1


_M = np.uint64(0xFFFFFFFF)


@numba.njit(inline="always", cache=True, nogil=True)
def _rotl(x, r):
    return ((x << np.uint64(r)) | (x >> np.uint64(32 - r))) & _M


@numba.njit(cache=True, nogil=True)
def threefry2x32_host(k0, k1, x0, x1):
    """The same hash on scalars (any unsigned integers below 2^32): two uint32 words."""
    k0, k1 = np.uint64(k0) & _M, np.uint64(k1) & _M
    k2 = k0 ^ k1 ^ np.uint64(_PARITY)
    ks = (k0, k1, k2)
    a = (np.uint64(x0) + k0) & _M
    b = (np.uint64(x1) + k1) & _M
    for i in range(5):
        rot = _ROTATIONS[i % 2]
        for j in range(4):
            a = (a + b) & _M
            b = _rotl(b, rot[j]) ^ a
        a = (a + ks[(i + 1) % 3]) & _M
        b = (b + ks[(i + 2) % 3] + np.uint64(i + 1)) & _M
    return np.uint32(a), np.uint32(b)


@numba.njit(cache=True, nogil=True)
def fold_in_host(k0, k1, data):
    """Key data of ``jax.random.fold_in(key, data)`` for a threefry key ``(k0, k1)``."""
    return threefry2x32_host(k0, k1, 0, data)
