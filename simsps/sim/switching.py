"""Blink switches of each chunk, generated where the kernel runs (inside its jitted call).

Every NC has two telegraph processes (:mod:`simsps.physics.blinking` holds their laws): the
fast flicker and the slow blinking; the NC is charged while either is grey. Per process the
state that a chunk leaves to the next is a :class:`BlinkCarry`: the index ``count`` of the
dwell in progress (the dwell-key counter), its state, and the time its dwell ends (the next
switch). A chunk draws the following dwells, accumulates them into switch times, keeps the
switches that fall in the chunk and the OR of both processes, and hands the kernel the
switch pulses with, for each block, how many switches precede it.

Random numbers: dwell ``g >= 1`` of a process is ``threefry2x32(key, (g, 0))`` of the
process's dwell key (``fold_in(blink key, 1)``), first word, so it depends only on ``g``:
not on the chunk, nor on how many dwells a chunk draws. Dwell 0 is the stationary start,
drawn once on the host from ``fold_in(blink key, 0)`` (:func:`initial_blink_carry`).

Times are unsigned 64-bit fixed point, two uint32 limbs (high, low) counting 2^-16 pulse
from the start of the acquisition: dwells (float32, in pulses, at most 2^36 pulses) are
converted exactly to fixed point and summed with integer carries (saturating, so the sum is
associative whatever the order the scan adds in), so a switch time never loses precision
however long the acquisition, and a stream does not depend on the chunk size. A switch at
time ``T`` changes the state of the pulses from ``ceil(T)`` on (a pulse's state is the
state at its start). The float expressions (``log``, ``pow``) are the only operations here
whose last bit may differ between backends.
"""

from __future__ import annotations

import math
from functools import lru_cache, partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._pytree import pytree_dataclass
from ..physics.blinking import (
    charging_drive,
    dwell_from_uniform,
    dwell_means,
    dwell_parameters,
    power_law_tail,
    residual_dwell,
)
from . import keys
from ._jit import kernel_jit
from .threefry import threefry2x32

__all__ = [
    "PROCESSES",
    "BlinkParams",
    "BlinkCarry",
    "blink_params",
    "initial_blink_carry",
    "chunk_switches",
    "dwell_limbs",
    "dwell_capacity",
    "dwell_kinds",
    "window_capacity",
    "switch_pulses",
]

PROCESSES = ("blinking", "slow_blinking")
FRAC_BITS = 16  # fixed point: 2^-16 pulse
MAX_DWELL_PULSES = float(2**36)  # dwells are clamped here (7.6 h at 2.5 MHz)
_U32 = np.uint32(0xFFFFFFFF)
_INT32_MAX = np.iinfo(np.int32).max
_BIG_HI = 1 << (30 - FRAC_BITS)  # a relative time with high limb >= this is >= 2^30 pulses


@pytree_dataclass
class BlinkParams:
    """Dwell laws of each emitter's processes (leading axes (E, P); last axis 2 = bright,
    grey)."""

    key: jax.Array  # (E, P, 2) uint32 dwell-key data
    scale: jax.Array  # (E, P, 2) float32 pulses: mean (exponential) or t_min (power law)
    power_law: jax.Array  # (E, P) bool
    inv_exponent: jax.Array  # (E, P) float32 1 / (m - 1)
    tail: jax.Array  # (E, P, 2) float32 (t_max / scale)^-(m - 1)


class BlinkCarry(NamedTuple):
    """Per (emitter, process): the dwell in progress and the time it ends."""

    count: jax.Array  # (E, P) uint32 index of the dwell in progress
    state: jax.Array  # (E, P) int32 its state (0 bright, 1 grey)
    end_hi: jax.Array  # (E, P) uint32 its end, fixed point (high limb); all ones: never
    end_lo: jax.Array  # (E, P) uint32


def _to_fixed(d: np.ndarray):
    """float64 pulses (>= 0) -> (hi, lo) uint32 limbs of floor(d * 2^16)."""
    units = np.floor(np.minimum(d, MAX_DWELL_PULSES) * 2.0**FRAC_BITS).astype(np.uint64)
    return (units >> np.uint64(32)).astype(np.uint32), (units & np.uint64(_U32)).astype(np.uint32)


def _laws(m, section, n_mean) -> np.ndarray:
    """dwell_parameters of ``m``'s ``section`` at ``n_mean`` in ticks of its clock,
    computed once per distinct (section, power, clock, drive)."""
    p = float(n_mean)
    drive = charging_drive(m, p)
    return np.array(_cached_laws(getattr(m, section), p, float(m.clock_hz), drive))


@lru_cache(maxsize=4096)
def _cached_laws(b, n_mean, rate, drive):
    return tuple(dwell_parameters(b, n_mean, rate, drive))


def blink_params(models, powers, root, ids=None) -> BlinkParams:
    """The (E, P) dwell laws of the NCs ``models`` at ``powers`` (host, once per run);
    ``ids``: the emitters' indices in the key tree (default 0 .. E-1)."""
    n = len(models)
    scale = np.ones((n, len(PROCESSES), 2))
    power_law = np.zeros((n, len(PROCESSES)), bool)
    inv_exp = np.ones((n, len(PROCESSES)))
    tail = np.zeros((n, len(PROCESSES), 2))
    for e, (m, p) in enumerate(zip(models, powers)):
        rate = m.clock_hz
        for j, sec in enumerate(PROCESSES):
            b = getattr(m, sec)
            if not b.enabled:
                continue
            scale[e, j] = _laws(m, sec, p)
            if b.dwell != "exponential":
                a = b.power_law_exponent - 1.0
                power_law[e, j] = True
                inv_exp[e, j] = 1.0 / a
                tail[e, j] = power_law_tail(
                    scale[e, j], b.power_law_exponent, b.power_law_max_s * rate
                )
    key = np.stack(
        [
            np.asarray(
                jax.random.key_data(
                    jax.vmap(lambda k: jax.random.fold_in(k, 1))(
                        _process_keys(root, sec, n if ids is None else ids)
                    )
                )
            )
            for sec in PROCESSES
        ],
        axis=1,
    )
    return BlinkParams(
        key=jnp.asarray(key, jnp.uint32),
        scale=jnp.asarray(scale, jnp.float32),
        power_law=jnp.asarray(power_law),
        inv_exponent=jnp.asarray(inv_exp, jnp.float32),
        tail=jnp.asarray(tail, jnp.float32),
    )


def _process_keys(root, section: str, n_or_ids):
    """``keys.blink_key(root, section, e)`` for e in 0 .. n-1 (or the given ids)."""
    return keys.per_index(keys.stream(root, keys.BLINK_STREAMS[section]), n_or_ids)


def initial_blink_carry(models, powers, root, ids=None) -> BlinkCarry:
    """The stationary start of every process (host, float64, vectorised over NCs): the
    first state with the occupation probabilities of the mean dwells, the first dwell from
    the residual-life law (the law itself for exponential dwells), both from the two
    uniforms of ``fold_in(blink key, 0)``."""
    n = len(models)
    shape = (n, len(PROCESSES))
    count = np.zeros(shape, np.uint32)
    state = np.zeros(shape, np.int32)
    hi = np.full(shape, _U32, np.uint32)
    lo = np.full(shape, _U32, np.uint32)
    tiny = jnp.finfo(jnp.float32).tiny
    for j, sec in enumerate(PROCESSES):
        on = [e for e, m in enumerate(models) if getattr(m, sec).enabled]
        if not on:
            continue
        u = np.asarray(
            jax.vmap(lambda k: jax.random.uniform(jax.random.fold_in(k, 0), (2,), minval=tiny))(
                _process_keys(root, sec, n if ids is None else ids)
            ),
            np.float64,
        )
        # NCs sharing a dwell law are drawn together (the bisection is vectorised)
        groups: dict[tuple, list[int]] = {}
        for e in on:
            b = getattr(models[e], sec)
            t_max = b.power_law_max_s * models[e].clock_hz
            groups.setdefault((b.dwell, b.power_law_exponent, t_max), []).append(e)
        for (kind, exponent, t_max), members in groups.items():
            idx = np.array(members)
            scales = np.array([_laws(models[e], sec, powers[e]) for e in members]).astype(
                np.float32
            )  # the laws the device draws from
            means = dwell_means(scales.astype(np.float64), kind, exponent, t_max)
            s0 = np.where(u[idx, 0] < means[:, 0] / means.sum(axis=1), 0, 1)
            first = residual_dwell(
                u[idx, 1],
                scales[np.arange(len(idx)), s0].astype(np.float64),
                kind,
                exponent,
                t_max,
            )
            state[idx, j] = s0
            hi[idx, j], lo[idx, j] = _to_fixed(first)
    return BlinkCarry(*(jnp.asarray(x) for x in (count, state, hi, lo)))


def _dwell_bits(d):
    """float32 dwells in pulses (>= 0) -> exact fixed-point limbs (hi, lo) uint32."""
    d = jnp.minimum(d, jnp.float32(MAX_DWELL_PULSES))
    whole_hi = jnp.floor(d * jnp.float32(2.0**-FRAC_BITS))  # pulses / 2^16 (< 2^20)
    rest = d - whole_hi * jnp.float32(2.0**FRAC_BITS)  # exact: [0, 2^16) pulses
    whole = jnp.floor(rest)
    frac = jnp.floor((rest - whole) * jnp.float32(2.0**FRAC_BITS))  # exact, [0, 2^16)
    lo = (whole.astype(jnp.uint32) << FRAC_BITS) | frac.astype(jnp.uint32)
    return whole_hi.astype(jnp.uint32), lo


def _add(a, b):
    """Saturating unsigned 64-bit addition of limb pairs: min(x + y, 2^64 - 1)."""
    lo = a[1] + b[1]
    c = (lo < a[1]).astype(jnp.uint32)
    hi = a[0] + b[0]
    over = hi < a[0]
    hi2 = hi + c
    over = over | (hi2 < hi)
    return jnp.where(over, _U32, hi2), jnp.where(over, _U32, lo)


def _prefix(hi, lo):
    """Inclusive prefix sums of 64-bit numbers given as limbs, by two uint32 cumsums: the
    low limbs' running sum wraps exactly where it ends below the number just added, which
    is the carry into the high limb (an associative scan of limb pairs compiles for
    seconds on CPUs). The high limbs wrap only past 2^48 pulses (see chunk_switches)."""
    s_lo = jnp.cumsum(lo, dtype=jnp.uint32)
    carry = (s_lo < lo).astype(jnp.uint32)
    return jnp.cumsum(hi + carry, dtype=jnp.uint32), s_lo


def _relative_pulse(hi, lo, start_hi):
    """ceil(T - start) in pulses (int32) for fixed-point times ``T > start - 1 pulse``;
    ``start`` has a zero low limb (block starts are multiples of 2^18 pulses). Times 2^30
    pulses or more past the start give int32 max."""
    rel_hi = hi - start_hi  # uint32; start - 1 < T gives rel_hi = 2^32 - 1 (T just below)
    below = (rel_hi == _U32) & (hi != _U32)  # all ones: a process that never switches
    whole = (rel_hi << (32 - FRAC_BITS)) | (lo >> FRAC_BITS)
    up = ((lo & ((1 << FRAC_BITS) - 1)) != 0).astype(jnp.uint32)
    p = jnp.where((rel_hi < _BIG_HI) & (hi != _U32), (whole + up).astype(jnp.int32), _INT32_MAX)
    # T in (start - 1, start): the switch acts from pulse 0
    return jnp.where(below, 0, p)


def _dwell_limbs(key, scale, power_law, inv_exp, tail, count, state, n_dwells, kind):
    """Dwells ``count + 1 .. count + n_dwells - 1`` of one process of one emitter as exact
    fixed-point limbs (hi, lo): the float part of the draw, the same on every stage."""
    j = jnp.arange(1, n_dwells, dtype=jnp.uint32)
    g = count + j
    y, _ = threefry2x32(key[0], key[1], g, jnp.zeros_like(g))
    u = ((y >> 8) + 1).astype(jnp.float32) * jnp.float32(2.0**-24)  # (0, 1]
    st = (state.astype(jnp.uint32) ^ (j & 1)).astype(jnp.int32)
    sc = scale[st]
    if kind == "mixed":  # NCs of both kinds
        d = jnp.where(
            power_law,
            dwell_from_uniform(u, sc, "power_law", inv_exp, tail[st]),
            dwell_from_uniform(u, sc, "exponential"),
        )
    else:
        d = dwell_from_uniform(u, sc, kind, inv_exp, tail[st])
    return _dwell_bits(d)


def _switches_from_limbs(dh, dl, count, state, hi, lo, start_hi, length, n_dwells):
    """Switch pulses of one process in the chunk (int32 max where unused, ascending) from
    the end of the dwell in progress (hi, lo) and the next dwells' limbs, the new carry, and
    overflow when all ``n_dwells`` switches fall inside (integer only:
    :mod:`simsps.sim.host_switching` is the same in numba)."""
    th, tl = _add(_prefix(dh, dl), (hi, lo))
    th = jnp.concatenate([hi[None], th])
    tl = jnp.concatenate([lo[None], tl])
    pulse = _relative_pulse(th, tl, start_hi)
    # switch times ascend, so the chunk's are the leading ones (past the first outside,
    # a sum may wrap: never looked at)
    inside = pulse < length
    n_used = jnp.where(jnp.all(inside), n_dwells, jnp.argmin(inside)).astype(jnp.int32)
    valid = jnp.arange(n_dwells) < n_used
    k = jnp.minimum(n_used, n_dwells - 1)
    new = (
        count + n_used.astype(jnp.uint32),
        state ^ (n_used & 1),
        th[k],
        tl[k],
    )
    return jnp.where(valid, pulse, _INT32_MAX), new, n_used >= n_dwells


def _limbs_per_emitter(bp, bc, n_dwells, kinds):
    """Per process the (E, n_dwells - 1) limb pairs of every emitter's next dwells (None
    for a process no NC has)."""
    out = []
    for p, (nd, kind) in enumerate(zip(n_dwells, kinds)):
        if kind == "none":
            out.append(None)
            continue
        out.append(
            jax.vmap(partial(_dwell_limbs, n_dwells=nd, kind=kind))(
                bp.key[:, p],
                bp.scale[:, p],
                bp.power_law[:, p],
                bp.inv_exponent[:, p],
                bp.tail[:, p],
                bc.count[:, p],
                bc.state[:, p],
            )
        )
    return out


@partial(kernel_jit, static_argnames=("n_dwells", "kinds"))
def dwell_limbs(bc: BlinkCarry, bp: BlinkParams, *, n_dwells, kinds):
    """The next dwells of every process as fixed-point limbs (jitted), for
    :func:`simsps.sim.host_switching.host_switches`."""
    return _limbs_per_emitter(bp, bc, n_dwells, kinds)


def _or_of_two(a, b, sa, sb, size):
    """Switch pulses of the OR of two telegraphs (each ascending, int32 max padded after
    its valid ones) and the combined start state, padded to ``size``. A switch of one
    process flips the OR when the other is bright; on ties ``a`` goes first, and two
    switches at one pulse cancel, as they should (the kernel counts switches). ``b`` is
    the short one: each of its switches is located in ``a``, nothing is sorted."""
    na = a.shape[0]
    big = _INT32_MAX
    va, vb = a < big, b < big
    r = jnp.searchsorted(a, b, side="right", method="scan").astype(jnp.int32)  # a's <= b_k
    # b's state at each a_i: the b switches before it, #(b_k < a_i) = #(r_k <= i)
    n_b_before = jnp.cumsum(jnp.zeros(na + 1, jnp.int32).at[r].add(vb.astype(jnp.int32)))[:na]
    keep_a = va & (((sb + n_b_before) & 1) == 0)
    keep_b = vb & (((sa + r) & 1) == 0)
    # output positions: kept a's before, plus kept b's located at or before
    h = jnp.zeros(na + 1, jnp.int32).at[r].add(keep_b.astype(jnp.int32))
    ka = keep_a.astype(jnp.int32)
    excl_a = jnp.cumsum(ka) - ka
    pos_a = excl_a + jnp.cumsum(h)[:na]
    kb = keep_b.astype(jnp.int32)
    excl_a_at_r = jnp.concatenate([excl_a, jnp.sum(ka)[None]])[r]
    pos_b = excl_a_at_r + jnp.cumsum(kb) - kb
    out = jnp.full(size, big, jnp.int32)
    out = out.at[jnp.where(keep_a, pos_a, size)].set(a, mode="drop")
    out = out.at[jnp.where(keep_b, pos_b, size)].set(b, mode="drop")
    return out, sa | sb


def grey_pulses(switch, state0, length):
    """Pulses of ``[0, length)`` each NC spends charged, from the switches of
    :func:`chunk_switches` (traceable; (E,) int32): the intervals between switches
    alternate from ``state0``."""
    s = jnp.minimum(switch, length)
    zero = jnp.zeros_like(s[:, :1])
    starts = jnp.concatenate([zero, s], axis=1)
    ends = jnp.concatenate([s, jnp.full_like(zero, length)], axis=1)
    k = jnp.arange(starts.shape[1], dtype=jnp.int32)[None, :]
    grey = jnp.bitwise_xor(state0[:, None], k & 1)
    return jnp.sum((ends - starts) * grey, axis=1)


def chunk_switches(
    bc: BlinkCarry, bp: BlinkParams, block0, *, n_blocks, n_dwells, kinds, window, block_pulses
):
    """The blink switches of the chunk of ``n_blocks`` blocks from ``block0``, for every
    emitter (traceable; the kernel calls it in its jit).

    Returns ``(switch, sw_base, state0, carry, overflow)``: ``switch`` (E, S) int32 pulses
    relative to the chunk start at which the charge state flips (int32 max padded, with at
    least ``window`` pads); ``sw_base`` (E, n_blocks) how many precede each block;
    ``state0`` (E,) the charge state at the chunk start; the carry for the next chunk;
    ``kinds``: per process the dwell law of its NCs ("exponential", "power_law", "mixed",
    or "none": no NC has the process);
    ``overflow`` (E,) when ``n_dwells`` of a process or ``window`` of a block was too small
    (the chunk is then drawn again with more: the numbers do not depend on them).
    """
    length = n_blocks * block_pulses
    start_hi = (block0 * (block_pulses >> (32 - FRAC_BITS))).astype(jnp.uint32)
    size = sum(n_dwells) + window

    limbs = _limbs_per_emitter(bp, bc, n_dwells, kinds)

    def per_emitter(limbs, count, state, hi, lo):
        sw, new, over = [], [], False
        for p, nd in enumerate(n_dwells):
            if limbs[p] is None:
                sw.append(None)
                new.append((count[p], state[p], hi[p], lo[p]))
                continue
            s, c, o = _switches_from_limbs(
                *limbs[p], count[p], state[p], hi[p], lo[p], start_hi, length, nd
            )
            sw.append(s)
            new.append(c)
            over = over | o
        if sw[0] is not None and sw[1] is not None:
            switch, s0 = _or_of_two(sw[0], sw[1], state[0], state[1], size)
        else:  # one process (or none): its switches are the NC's
            one = [(x, state[p]) for p, x in enumerate(sw) if x is not None]
            x, s0 = one[0] if one else (jnp.zeros(0, jnp.int32), jnp.int32(0))
            switch = jnp.full(size, _INT32_MAX, jnp.int32).at[: x.shape[0]].set(x)
        starts = jnp.arange(n_blocks, dtype=jnp.int32) * block_pulses
        base = jnp.searchsorted(switch, starts, side="left", method="scan").astype(jnp.int32)
        n_in = jnp.sum(switch < length).astype(jnp.int32)
        per_block = jnp.diff(jnp.concatenate([base, n_in[None]]))
        over = over | (jnp.max(per_block) >= window)
        carry = tuple(jnp.stack([c[i] for c in new]) for i in range(4))
        return switch, base, s0, carry, over

    switch, base, s0, carry, over = jax.vmap(per_emitter)(limbs, *bc)
    return switch, base, s0, BlinkCarry(*carry), over


def _renewal_count(models, powers, section, length):
    """Mean + 6 sd of the switches of one process in ``length`` pulses (renewal theory:
    var N(t) ~ t sigma^2 / mu^3 of the bright + grey pairs), at most the count the
    shortest dwell allows; the largest over NCs."""
    worst = 0.0
    seen = set()
    for m, p in zip(models, powers):
        b, rate, drive = getattr(m, section), m.clock_hz, charging_drive(m, float(p))
        if (b, float(p), rate, drive) in seen or not b.enabled:
            continue
        seen.add((b, float(p), rate, drive))
        scale = _laws(m, section, p)
        t_max = b.power_law_max_s * rate
        mean = dwell_means(scale, b.dwell, b.power_law_exponent, t_max)
        if b.dwell == "exponential":
            var = mean**2
            bound = math.inf
        else:  # truncated Pareto: E t^2 = int 2 t S(t) dt
            k = b.power_law_exponent - 1.0
            a = scale
            norm = a**-k - t_max**-k
            second = (
                a**2
                + 2
                * ((t_max ** (2 - k) - a ** (2 - k)) / (2 - k) - t_max**-k * (t_max**2 - a**2) / 2)
                / norm
            )
            var = second - mean**2
            bound = length / float(scale.min()) + 2
        mu, s2 = float(mean.sum()), float(var.sum())
        n = 2 * length / mu
        sd = 2 * math.sqrt(length * s2 / mu**3)
        worst = max(worst, min(bound, n + 6 * sd + 16))
    return worst


def dwell_capacity(models, powers, length: int) -> tuple[int, int]:
    """Dwells drawn per chunk of ``length`` pulses for each process (buckets of
    :func:`simsps.sim.kernel._quantise`; 1 for a process no NC has)."""
    from .kernel import _quantise

    out = []
    for sec in PROCESSES:
        n = _renewal_count(models, powers, sec, length)
        out.append(_quantise(n + 1) if n > 0 else 1)
    return tuple(out)


def dwell_kinds(models) -> tuple[str, str]:
    """Per process the dwell law of the NCs that have it: "exponential", "power_law",
    "mixed" or "none" (static for the kernel: it draws only what it needs)."""
    out = []
    for sec in PROCESSES:
        laws = {getattr(m, sec).dwell for m in models if getattr(m, sec).enabled}
        out.append("none" if not laws else laws.pop() if len(laws) == 1 else "mixed")
    return tuple(out)


def window_capacity(models, powers, block_pulses: int) -> int:
    """Switch-array window each block searches (a power of two above the combined
    switches of a block)."""
    n = sum(_renewal_count(models, powers, sec, block_pulses) for sec in PROCESSES)
    return 1 << max(6, math.ceil(math.log2(n + 2)))


def switch_pulses(
    model, power: float, seed: int, n_pulses: int, emitter: int = 0, *, chunk_blocks: int = 16
):
    """The charge state's switch pulses of NC ``emitter`` over ``n_pulses`` (absolute,
    int64) and its state at pulse 0, as the engine's kernel sees them, drawn in chunks of
    ``chunk_blocks`` blocks (for tests and inspection)."""
    from .kernel import BLOCK_PULSES

    root = keys.root(seed)
    models = [model] * (emitter + 1)
    powers = [power] * (emitter + 1)
    bp = blink_params(models, powers, root)
    bc = initial_blink_carry(models, powers, root)
    nb = int(chunk_blocks)
    n_dw = dwell_capacity(models, powers, nb * BLOCK_PULSES)
    kinds = dwell_kinds(models)
    win = window_capacity(models, powers, BLOCK_PULSES)
    out, state0 = [], None
    for block in range(0, -(-n_pulses // BLOCK_PULSES), nb):
        while True:
            sw, _, s0, new, over = _switches_jit(
                bc,
                bp,
                jnp.int32(block),
                n_blocks=nb,
                n_dwells=n_dw,
                kinds=kinds,
                window=win,
                block_pulses=BLOCK_PULSES,
            )
            if not bool(over.any()):
                break
            n_dw, win = tuple(2 * x for x in n_dw), 2 * win
        bc = new
        if state0 is None:
            state0 = int(s0[emitter])
        s = np.asarray(sw[emitter])
        out.append(s[s < _INT32_MAX].astype(np.int64) + block * BLOCK_PULSES)
    rel = np.concatenate(out)
    return state0, rel[rel < n_pulses]


_switches_jit = jax.jit(
    chunk_switches,
    static_argnames=("n_blocks", "n_dwells", "kinds", "window", "block_pulses"),
)
