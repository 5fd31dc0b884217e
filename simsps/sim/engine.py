"""Plan chunks, derive keys, run the kernel and the chunk step: ``simulate``.

Keys come from the tree of :mod:`simsps.sim.keys` (pulses by emitter and block, blinking and
bleaching by emitter). Blocks have a fixed size (``BLOCK_PULSES``), so a stream does not
depend on ``chunk_pulses`` nor on how many emitters are simulated together. Per chunk the
host plans, queues the kernel of the next chunk (asynchronously; the chunk's blink switches
are drawn from the carried :class:`simsps.sim.switching.BlinkCarry` inside the kernel's
call on an accelerator, with :mod:`simsps.sim.host_switching` and per-pulse state bits on
a CPU), runs the step of this one (:func:`simsps.sim.step.step` on an accelerator, its
numba twin :func:`simsps.sim.host_step.host_step` on a CPU, in a worker thread while the
next kernel is queued: ``stage="auto"``; both give the same records) and copies the
finished records out. ``truth=False`` leaves the ground truth out of the step and the copy.
"""

from __future__ import annotations

import dataclasses
import math
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ..params.model import Model, ModelError
from ..physics import cw
from ..physics.bleaching import bleach_probability_per_pulse, bleach_pulse_from_uniform
from ..physics.cascade import outcome_probabilities, state_yields
from ..physics.excitation import check_power
from ..stream import MAX_DURATION_S, NO_EMITTER, PhotonStream, Source, State, Truth
from . import keys, switching
from .cw_kernel import cw_block_words, cw_capacity, cw_chunk_kernel, cw_params
from .host_cw import host_cw_chunk
from .host_step import HostCarry, host_step
from .host_switching import grey_pulses, host_switches, state_bits
from .kernel import (
    BLOCK_PULSES,
    SLOT_QUANTUM,
    KernelParams,
    _quantise,
    chunk_kernel,
    chunk_kernel_from_states,
    noise_capacity,
    signal_capacity,
)
from .step import (
    Capacities,
    DetectorParams,
    Records,
    detector_params,
    initial_carry,
    resize_carry,
    step,
)

__all__ = [
    "simulate",
    "simulate_chunks",
    "simulate_population",
    "simulate_population_chunks",
    "simulate_device_records",
    "DeviceChunk",
    "DEFAULT_CHUNK_PULSES",
    "kernel_params",
]

DEFAULT_CHUNK_PULSES = 1 << 24
_INT32_MAX = np.iinfo(np.int32).max


def _pow2ceil(n: int) -> int:
    return 1 << max(0, (int(n) - 1).bit_length())


# an excitation may outlive the next pulse with at most this probability: the kernel treats
# every pulse as starting from the ground state (simsps.sim.reference carries it exactly)
CARRY_OVER_LIMIT = 1e-4


def check_lifetimes(m: Model) -> None:
    """Refuse lifetimes the kernel cannot treat: an NC still excited at the next pulse."""
    period_ns = 1e9 / m.excitation.rep_rate_hz
    limit_ns = period_ns / -math.log(CARRY_OVER_LIMIT)
    for sec in ("exciton", "trion", "biexciton", "charged_biexciton"):
        tau = getattr(m, sec).lifetime_ns
        if tau > limit_ns:
            raise ModelError(
                f"{sec}.lifetime_ns = {tau:g} is too long for the {period_ns:g} ns laser period: "
                f"an excitation would outlive the next pulse with probability "
                f"{math.exp(-period_ns / tau):.2g}, and simsps.simulate starts every pulse from "
                f"the ground state; lifetimes up to period / ln(1/{CARRY_OVER_LIMIT:g}) = "
                f"{limit_ns:.3g} ns are allowed (simsps.sim.reference.simulate_reference carries "
                "the state across pulses and takes any lifetime)"
            )


def kernel_params(m: Model, n_mean: float, *, with_noise: bool = True) -> KernelParams:
    """The kernel's per-emitter numbers; under CW only the detection and noise ones are
    used (the ladder's tables are :func:`simsps.sim.cw_kernel.cw_params`)."""
    y = state_yields(m)
    if m.is_cw:
        probs, q_max = np.zeros((2, 4)), 0.0
    else:
        check_lifetimes(m)
        probs = outcome_probabilities(m, n_mean)
        q = probs.sum(axis=1)
        blinks = m.blinking.enabled or m.slow_blinking.enabled
        q_max = float(q.max() if blinks else q[0])
    period_s = 1.0 / m.clock_hz
    det, bg = m.detection, m.background
    # the prompt background (scatter, substrate PL) follows the laser: proportional to
    # power; under CW it has no pulse to follow and joins the uniform background
    prompt = bg.prompt_cps * n_mean
    n_ch = det.channels
    rates = (
        np.array(
            [det.dark_cps] * n_ch
            + ([bg.rate_cps + prompt, 0.0] if m.is_cw else [bg.rate_cps, prompt])
        )
        if with_noise
        else np.zeros(n_ch + 2)
    )
    total = rates.sum()
    bg_cum = np.cumsum(rates) / total if total > 0 else np.arange(1, n_ch + 3) / (n_ch + 2)
    f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    return KernelParams(
        q_max=f32(q_max),
        log1m_q=f32(math.log1p(-q_max) if 0 < q_max < 1 else (-1e-30 if q_max == 0 else -np.inf)),
        cum=f32(np.cumsum(probs, axis=1)),
        tau1_ps=f32(y["tau1_ns"] * 1e3),
        tau2_ps=f32(y["tau2_ns"] * 1e3),
        jitter_ps=f32(det.jitter_fwhm_ps / (2 * math.sqrt(2 * math.log(2)))),
        offset_ps=f32(det.irf_offset_ns * 1e3),
        split=f32(det.split_ratio),
        arms=f32([n_ch // 2, n_ch - n_ch // 2]),
        period_ps=f32(m.sync_period_ps),
        bg_lam=f32(total * BLOCK_PULSES * period_s),
        bg_cum=f32(bg_cum),
        prompt_tau_ps=f32(bg.prompt_lifetime_ns * 1e3),
    )


def _cw_params_of(m, power):
    """cw_params as NumPy leaves (stacked for many NCs on the host, then sent once)."""
    return jax.tree_util.tree_map(np.asarray, cw_params(m, power))


def _cw_bleach_per_tick(m, power) -> float:
    """The CW bleaching hazard per clock tick (:func:`simsps.physics.cw.bleach_rate_hz`)."""
    return -math.expm1(-cw.bleach_rate_hz(m, power) / m.clock_hz)


def _cw_start_levels(models, powers, root, ids, blink_state) -> jax.Array:
    """Each NC's ladder level at the start: drawn from the stationary occupations of its
    start charge state (``blink_state`` (E, P): grey while any process is)."""
    n = len(models)
    u = np.asarray(
        jax.vmap(lambda k: jax.random.uniform(k, dtype=jnp.float32))(
            keys.per_index(keys.stream(root, keys.CW_LADDER), n if ids is None else ids)
        ),
        np.float64,
    )
    grey = np.asarray(blink_state).max(axis=1) > 0
    level = np.empty(n, np.int32)
    for e, (m, p) in enumerate(zip(models, powers)):
        occ = cw.stationary(cw.ladder_of(m, float(p), bool(grey[e])))
        level[e] = min(int(np.searchsorted(np.cumsum(occ), u[e], side="right")), 2)
    return jnp.asarray(level)


def _check_emitters(emitters):
    if (
        isinstance(emitters, bool)
        or not isinstance(emitters, (int, np.integer))
        or not 1 <= emitters < 65535
    ):
        raise ValueError(f"emitters = {emitters!r} must be an integer in [1, 65534]")


# the longest run: 2^46 clock periods (the blink switches' 48-bit fixed point, with room),
# and at most MAX_DURATION_S (absolute times in int64 ps)
MAX_CLOCK_TICKS = 1 << 46


def max_duration_s(m: Model) -> float:
    return min(MAX_DURATION_S, MAX_CLOCK_TICKS / m.clock_hz)


def _check_args(duration_s, seed, chunk_pulses, emitters):
    try:
        d = float(duration_s)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"duration_s = {duration_s!r}: give a number of seconds") from None
    if not math.isfinite(d) or d <= 0:
        raise ValueError(f"duration_s = {duration_s!r} is out of range: allowed (0, inf) seconds")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise ValueError(f"seed = {seed!r} must be an integer in [0, 2**32)")
    if (
        isinstance(chunk_pulses, bool)
        or not isinstance(chunk_pulses, (int, np.integer))
        or chunk_pulses < BLOCK_PULSES
        or chunk_pulses % BLOCK_PULSES
        or chunk_pulses > 1 << 30
    ):
        raise ValueError(
            f"chunk_pulses = {chunk_pulses!r} must be a multiple of {BLOCK_PULSES} "
            f"(the kernel's block) between {BLOCK_PULSES} and {1 << 30}"
        )
    _check_emitters(emitters)
    return d


def _kernel_params_of(m, n_mean, with_noise):
    """kernel_params as NumPy leaves (stacked for many NCs on the host, then sent once)."""
    return jax.tree_util.tree_map(np.asarray, kernel_params(m, n_mean, with_noise=with_noise))


def _stack_host(trees):
    return jax.tree_util.tree_map(lambda *xs: jnp.asarray(np.stack(xs)), *trees)


def _make_progress(progress, total_s: float):
    if not progress:
        return None
    if progress is True or progress == "tqdm":
        from tqdm.auto import tqdm

        return tqdm(
            total=round(total_s, 3),
            unit="s",
            desc="simulate",
            leave=False,
            delay=1.0,
            bar_format="{l_bar}{bar}| {n:.3g}/{total:.3g} s [{elapsed}<{remaining}, {rate_fmt}]",
        )
    return progress  # any object with update(n) and close()


def simulate_chunks(
    model: Model,
    duration_s: float,
    power: float = 1.0,
    seed: int = 0,
    *,
    chunk_pulses: int = DEFAULT_CHUNK_PULSES,
    emitters: int = 1,
    progress=None,
    truth: bool = True,
    stage: str = "auto",
) -> Iterator[PhotonStream]:
    """Simulate chunk by chunk; yields time-ordered :class:`PhotonStream` pieces.

    Memory stays bounded by one chunk whatever ``duration_s``. See :func:`simulate`.
    """
    _check_emitters(emitters)
    for spots in _population_chunks(
        [model] * int(emitters),
        duration_s,
        power,
        seed,
        spot=np.zeros(int(emitters), np.int64),
        chunk_pulses=chunk_pulses,
        progress=progress,
        truth=truth,
        stage=stage,
    ):
        yield spots[0]


def simulate_population_chunks(
    models: Sequence[Model],
    duration_s: float,
    power=1.0,
    seed: int = 0,
    *,
    spot=None,
    chunk_pulses: int = DEFAULT_CHUNK_PULSES,
    progress=None,
    truth: bool = True,
    stage: str = "auto",
    ids=None,
) -> Iterator[list[PhotonStream]]:
    """Simulate many, possibly different, NCs at once; yields per chunk one stream per spot.

    ``models[e]`` describes NC ``e`` (all share the laser, detectors and background);
    ``spot[e]`` says in which confocal spot it sits (default: each NC its own spot; spots
    numbered 0..S-1), so a spot holding several NCs (an aggregate) shows their photons
    together on one pair of detectors. ``power`` is one number or one per NC, in units of
    each NC's Psat. Every NC of every spot runs in the same vmapped kernel call per chunk.
    NC ``e`` depends only on (seed, e, its model and power): adding NCs does not change it.
    ``ids`` (one integer in [0, 2**32) per NC) replaces ``e`` by ``ids[e]`` in the key tree,
    so an NC can be run in any batch and still get its own numbers (sweep points).
    """
    return _population_chunks(
        models,
        duration_s,
        power,
        seed,
        spot=spot,
        chunk_pulses=chunk_pulses,
        progress=progress,
        truth=truth,
        stage=stage,
        ids=ids,
    )


def simulate_population(
    models: Sequence[Model],
    duration_s: float,
    power=1.0,
    seed: int = 0,
    *,
    spot=None,
    chunk_pulses: int = DEFAULT_CHUNK_PULSES,
    progress=None,
    truth: bool = True,
    stage: str = "auto",
    ids=None,
) -> list[PhotonStream]:
    """Whole streams of :func:`simulate_population_chunks`, one per spot."""
    opts = dict(spot=spot, chunk_pulses=chunk_pulses, progress=progress, truth=truth, ids=ids)
    parts = list(simulate_population_chunks(models, duration_s, power, seed, **opts, stage=stage))
    return [PhotonStream.concat([p[k] for p in parts]) for k in range(len(parts[0]))]


# what every NC of one call shares: the laser, and the detector behaviour the chunk step
# applies (one dead time, afterpulse law and microtime bin for all); efficiency, jitter,
# IRF offset, split and dark counts enter the kernel per NC, so they, and the background,
# may differ between spots (every NC of one spot shares its spot's detection and background)
_SHARED = {
    "excitation": None,
    "detection": (
        "channels",
        "dead_time_ns",
        "afterpulse_probability",
        "afterpulse_time_constant_ns",
        "resolution_ps",
    ),
}
_PER_SPOT = ("detection", "background")


def _differs(a, b, fields) -> str | None:
    """The first of ``fields`` (all when None) in which the sections ``a`` and ``b``
    differ, or None."""
    names = fields or [f.name for f in dataclasses.fields(a)]
    return next((f for f in names if getattr(a, f) != getattr(b, f)), None)


def _check_population(models, power, spot):
    models = list(models)
    if not models or not all(isinstance(m, Model) for m in models):
        raise ValueError("models must be a non-empty sequence of Model (one per NC)")
    _check_emitters(len(models))
    for m in models[1:]:
        for sec, fields in _SHARED.items():
            key = _differs(getattr(m, sec), getattr(models[0], sec), fields)
            if key is not None:
                raise ValueError(
                    f"all NCs of one call share the laser and the detectors' number, dead "
                    f"time, afterpulsing and microtime bin: {sec}.{key} of model {m.name!r} "
                    f"differs from that of {models[0].name!r}"
                )
    try:
        flat = np.asarray(power, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"power = {power!r}: give numbers in units of Psat") from None
    if np.ndim(power) > 1 or len(flat) not in (1, len(models)):
        raise ValueError(
            f"power: give one number or one per NC ({len(models)}), got shape {np.shape(power)}"
        )
    powers = np.array([check_power(p) for p in np.broadcast_to(flat, (len(models),))])
    spot = np.arange(len(models)) if spot is None else np.asarray(spot)
    if spot.shape != (len(models),) or not np.issubdtype(spot.dtype, np.integer):
        raise ValueError(f"spot: one integer per NC ({len(models)}), got shape {spot.shape}")
    if spot.min() != 0 or set(np.unique(spot)) != set(range(int(spot.max()) + 1)):
        raise ValueError("spot numbers must run from 0 without gaps (each spot holds an NC)")
    firsts = np.unique(spot, return_index=True)[1]
    for e, m in enumerate(models):
        first = models[int(firsts[spot[e]])]
        for sec in _PER_SPOT:
            if getattr(m, sec) == getattr(first, sec):
                continue
            key = _differs(getattr(m, sec), getattr(first, sec), None)
            if key is not None:
                raise ValueError(
                    f"the NCs of one spot share its detectors and background: {sec}.{key} "
                    f"of model {m.name!r} differs from that of {first.name!r} in spot "
                    f"{int(spot[e])}"
                )
    return models, powers, spot.astype(np.int64)


def _population_chunks(
    models,
    duration_s,
    power,
    seed,
    *,
    spot,
    chunk_pulses,
    progress,
    truth,
    stage,
    ids=None,
    columns=False,
):
    """The engine loop; yields per chunk a list of streams (one per spot), a
    :class:`DeviceChunk` (``stage="records"``) or, with ``columns``, a
    :class:`ColumnChunk`."""
    models, powers, spot = _check_population(models, power, spot)
    emitters = len(models)
    ids = emitters if ids is None else np.asarray(ids)
    if not isinstance(ids, int) and (ids.shape != (emitters,) or len(np.unique(ids)) != emitters):
        raise ValueError(f"ids: one distinct integer per NC ({emitters}), got {ids!r}")
    duration = _check_args(duration_s, seed, chunk_pulses, emitters)
    m = models[0]
    cw_mode = m.is_cw  # every NC of a call shares the excitation
    if cw_mode and (columns or stage == "records"):
        raise ValueError(
            "CW excitation: sweeps and device records are pulsed only for now; "
            "simulate CW streams with simsps.simulate"
        )
    clock_hz = m.clock_hz
    period_ps = m.sync_period_ps
    if duration > max_duration_s(m):
        why = "2^46 clock ticks" if max_duration_s(m) < MAX_DURATION_S else "about 11.6 days"
        raise ValueError(
            f"duration_s = {duration_s!r} is out of range: allowed (0, {max_duration_s(m):.3g}] "
            f"seconds ({why})"
        )
    n_pulses = int(round(duration * clock_hz))
    if n_pulses < 1:
        raise ValueError(f"duration_s = {duration_s!r} is shorter than one laser period")
    # CW records are T2: whole ps (the ladder's kernel rounds every interval to the ps)
    res_ps = 1.0 if cw_mode else float(m.detection.resolution_ps)
    n_spots = int(spot.max()) + 1
    first_of_spot = np.zeros(emitters, bool)
    first_of_spot[np.unique(spot, return_index=True)[1]] = True

    root = keys.root(seed)
    emitter_keys = keys.emitter_keys(root, ids)
    # the background and dark counts of a spot ride with its first NC
    # derived once per distinct (model, power): populations repeat a few models
    derived: dict = {}

    def once(fn, *args):
        key = (fn, *args)
        if key not in derived:
            derived[key] = fn(*args)
        return derived[key]

    kps = [
        once(_kernel_params_of, me, float(p), bool(first_of_spot[e]))
        for e, (me, p) in enumerate(zip(models, powers))
    ]
    kp = _stack_host(kps)

    # fast flicker and slow blinking of each NC (the NC is charged while either is grey),
    # drawn chunk by chunk inside the kernel's call from this start
    blink_laws = switching.blink_params(models, powers, root, ids)
    blink = switching.initial_blink_carry(models, powers, root, ids)
    u_bleach = np.asarray(
        jax.vmap(lambda k: jax.random.uniform(k, minval=jnp.finfo(jnp.float32).tiny, maxval=1.0))(
            keys.bleach_keys(root, ids)
        )
    )
    bleach_p = (
        [once(_cw_bleach_per_tick, me, float(p)) for me, p in zip(models, powers)]
        if cw_mode
        else [once(bleach_probability_per_pulse, me, float(p)) for me, p in zip(models, powers)]
    )
    bleach_pulse = np.array(
        [bleach_pulse_from_uniform(u_bleach[e], bleach_p[e]) for e in range(emitters)]
    ).reshape(emitters)
    bleach = np.where(bleach_pulse < n_pulses, bleach_pulse / clock_hz, np.inf)
    if cw_mode:  # the ladder's tables and its level at the start (stationary)
        cwp = _stack_host([once(_cw_params_of, me, float(p)) for me, p in zip(models, powers)])
        level = _cw_start_levels(models, powers, root, ids, np.asarray(blink.state))
        cwp_host = jax.tree_util.tree_map(np.asarray, cwp)
    # one detector pair per spot
    det = detector_params(m.detection, int(period_ps), n_spots, res_ps)
    spot_members = _members(spot, n_spots)
    metas = []
    for k in range(n_spots):
        members = np.flatnonzero(spot == k)
        mk = models[members[0]]
        metas.append(
            dict(
                model=mk.name,
                model_toml=mk.to_toml(),
                seed=int(seed),
                power=float(powers[members[0]]),
                duration_s=duration,
                excitation=mk.excitation.mode,
                detectors=mk.detection.channels,
                emitters=len(members),
                spot=k,
                first_emitter=int(members[0]),
            )
        )

    # the kernel's arrays grow with emitters x chunk: the chunk shrinks to at most 4 / emitters
    # of the asked one (a power of two of blocks, at least one), so memory stays bounded;
    # the stream does not depend on it
    chunk_blocks = chunk_pulses // BLOCK_PULSES
    chunk_blocks = max(
        1, min(chunk_blocks, 1 << max(0, (4 * chunk_blocks // emitters).bit_length() - 1))
    )
    plan = _plan(-(-n_pulses // BLOCK_PULSES), chunk_blocks)
    caps = _capacities(
        max(once(cw_capacity, me, float(p)) for me, p in zip(models, powers))
        if cw_mode
        else max(signal_capacity(float(k.q_max)) for k in kps),
        max(noise_capacity(float(k.bg_lam)) for k in kps),
        chunk_blocks,
        spot_members.shape[1],
        m.detection.afterpulse_probability,
    )
    host_det = {f: np.asarray(getattr(det, f)[0]) for f in DetectorParams._fields}

    blink_caps = {"window": switching.window_capacity(models, powers, BLOCK_PULSES)}
    kinds = switching.dwell_kinds(models)

    def n_dwells(nb):
        if nb not in blink_caps:
            blink_caps[nb] = switching.dwell_capacity(models, powers, nb * BLOCK_PULSES)
        return blink_caps[nb]

    on_host = _use_host(stage)

    def kernel(block, nb, blink, level=None):
        """Queue chunk (block, nb) from the blink carry ``blink`` (and, under CW, the
        ladder's ``level``): (signal, noise, slot overflow, blink carry after it, blink
        overflow, grey pulses of each NC or None, CW level after it or None)."""
        bleach_rel = jnp.asarray(
            np.clip(bleach_pulse - block * BLOCK_PULSES, 0, _INT32_MAX).astype(np.int32)
        )
        sizes = dict(n_blocks=nb, n_slots=caps.slots, n_slots_bg=caps.noise)
        window = blink_caps["window"]
        end = min(nb * BLOCK_PULSES, n_pulses - block * BLOCK_PULSES)
        if not on_host:  # the switches drawn inside the kernel's call
            common = (jnp.int32(block), kp) + ((cwp,) if cw_mode else ())
            args = (blink, blink_laws, bleach_rel) + ((level,) if cw_mode else ())
            out = (cw_chunk_kernel if cw_mode else chunk_kernel)(
                emitter_keys,
                *common,
                *args,
                jnp.int32(end),
                **sizes,
                n_dwells=n_dwells(nb),
                dwell_kinds=kinds,
                window=window,
            )
            return out if cw_mode else (*out, None)
        # on a CPU: XLA draws the dwells, numba accumulates them (XLA's scans are slow there)
        limbs = switching.dwell_limbs(blink, blink_laws, n_dwells=n_dwells(nb), kinds=kinds)
        switch, base, state0, blink_next, blink_over = host_switches(
            limbs,
            blink,
            block,
            n_blocks=nb,
            n_dwells=n_dwells(nb),
            window=window if cw_mode else None,
            block_pulses=BLOCK_PULSES,
        )
        grey = grey_pulses(switch, state0, end) if columns else None
        if cw_mode:  # XLA draws the slots' words, numba walks the ladder
            *words, bg, bg_over = jax.tree_util.tree_map(
                np.asarray, cw_block_words(emitter_keys, jnp.int32(block), kp, **sizes)
            )
            sig, over, level_next = host_cw_chunk(
                words, cwp_host, switch, base, state0, np.asarray(bleach_rel), level, period_ps
            )
            over = over[:, None] | bg_over
            return sig, bg, over, blink_next, blink_over, grey, level_next
        bits = state_bits(switch, state0, n_blocks=nb, block_pulses=BLOCK_PULSES)
        sig, bg, over = chunk_kernel_from_states(
            emitter_keys, jnp.int32(block), kp, bits, bleach_rel, **sizes
        )
        return sig, bg, over, blink_next, blink_over, grey, None

    bar = _make_progress(progress, duration)
    n_ch = m.detection.channels
    carry = (
        HostCarry.initial(n_spots, n_ch) if on_host else initial_carry(n_spots, caps.queue, n_ch)
    )
    spot_members_dev = jnp.asarray(spot_members)
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="simsps-step")
    try:
        # the kernel of chunk k+1 is queued (asynchronously) before chunk k's step runs
        level = level if cw_mode else None
        pending = kernel(*plan[0], blink, level)
        for k, (block, nb) in enumerate(plan):
            sig, bg, over, blink_next, blink_over, grey, level_next = pending
            while True:  # > 6 sigma: the same numbers with more room
                slots_over, dwells_over = (bool(x.any()) for x in (over, blink_over))
                if not (slots_over or dwells_over):
                    break
                if slots_over:
                    caps = caps._replace(slots=2 * caps.slots, noise=2 * caps.noise)
                if dwells_over:
                    blink_caps[nb] = tuple(2 * x for x in n_dwells(nb))
                    blink_caps["window"] *= 2
                sig, bg, over, blink_next, blink_over, grey, level_next = kernel(
                    block, nb, blink, level
                )
            blink, level = blink_next, level_next
            start = block * BLOCK_PULSES
            stop = min(start + nb * BLOCK_PULSES, n_pulses)
            end = stop - start
            if on_host:  # the numba step (no GIL) in a worker, while this thread queues the
                # next chunk's kernel (its blink switches are numba too)
                slots = jax.tree_util.tree_map(np.asarray, (sig, bg))
                done = worker.submit(
                    host_step, carry, slots, spot_members, host_det, end, truth,
                    start=start, res_ps=res_ps,
                )  # fmt: skip
            if k + 1 < len(plan):
                pending = kernel(*plan[k + 1], blink, level)
            if on_host:
                carry, cols = done.result()
            else:
                while True:
                    new, rec, overflow = step(
                        carry,
                        (sig, bg),
                        spot_members_dev,
                        det,
                        jnp.int32(end),
                        caps=caps,
                        truth=truth,
                    )
                    if not bool(overflow):
                        break
                    caps = _grow_step(caps)
                    carry = resize_carry(carry, caps.queue)
                carry = new
            if stage == "records":  # left on the device, for a consumer there
                yield DeviceChunk(start, stop, rec, grey, bleach)
            elif columns:  # the stream's columns, no PhotonStream (sweeps)
                if not on_host:
                    cols = [
                        _columns(r, start, period_ps, res_ps, spot_members[j])
                        for j, r in enumerate(_records_to_host(rec))
                    ]
                yield ColumnChunk(start, stop, cols, np.asarray(grey, np.int64), bleach)
            elif on_host:  # the numba step gave the stream's columns
                yield [
                    _stream_of_columns(c, stop, period_ps, res_ps, bleach, metas[j], cw_mode)
                    for j, c in enumerate(cols)
                ]
            else:
                recs = _records_to_host(rec)
                yield [
                    _stream_of_columns(
                        _columns(r, start, period_ps, res_ps, spot_members[j]),
                        stop,
                        period_ps,
                        res_ps,
                        bleach,
                        metas[j],
                        cw_mode,
                    )  # fmt: skip
                    for j, r in enumerate(recs)
                ]
            if bar is not None:
                bar.update(round((stop - start) / clock_hz, 3))
    finally:
        worker.shutdown(wait=True, cancel_futures=True)
        if bar is not None:
            bar.close()


class _Plan:
    """(first block, number of blocks) of each chunk, computed on demand: a plan of any
    length takes no memory."""

    def __init__(self, total_blocks: int, nb: int):
        self.total, self.nb = total_blocks, nb

    def __len__(self) -> int:
        return -(-self.total // self.nb)

    def __getitem__(self, k: int) -> tuple[int, int]:
        if not 0 <= k < len(self):
            raise IndexError(k)
        return (k * self.nb, self.nb)

    def __iter__(self):
        return (self[k] for k in range(len(self)))


def _plan(total_blocks: int, chunk_blocks: int) -> _Plan:
    """(first block, number of blocks) of each chunk: all of one size, the chunk size or,
    for a shorter run, the power of two of blocks that covers it; the last chunk's pulses
    past the end are dropped. One kernel shape per run: a smaller last chunk would cost a
    new trace (about 1 s, even with the compilation cache) where computing the unused
    blocks of a full one costs about 1/100 of that."""
    return _Plan(total_blocks, min(chunk_blocks, _pow2ceil(total_blocks)))


class ColumnChunk(NamedTuple):
    """One chunk as the stream's columns per spot (sync, dtime, channel and, with truth,
    source, state, emitter, delay, arrival: :func:`simsps.sim.host_step.host_step`'s
    dicts), pulses ``start`` .. ``stop``, the pulses of it each NC spent charged and each
    NC's bleach time (s; inf: not within the run)."""

    start: int
    stop: int
    columns: list
    grey_pulses: np.ndarray  # (E,) int64
    bleach_time_s: np.ndarray  # (E,) float64


class DeviceChunk(NamedTuple):
    """One chunk's records left on the device (:class:`simsps.sim.step.Records`, leading
    axis spot; the first ``records.count[s]`` of spot ``s`` are valid), pulses relative to
    ``start``; ``stop`` is the chunk's end in pulses; the pulses of the chunk each NC spent
    charged (on the device, (E,)) and each NC's bleach time (s, inf: none)."""

    start: int
    stop: int
    records: Records
    grey_pulses: jax.Array | None = None
    bleach_time_s: np.ndarray | None = None


def simulate_device_records(
    models: Sequence[Model],
    duration_s: float,
    power=1.0,
    seed: int = 0,
    *,
    spot=None,
    chunk_pulses: int = DEFAULT_CHUNK_PULSES,
    truth: bool = False,
    progress=None,
) -> Iterator[DeviceChunk]:
    """The chunks of :func:`simulate_population_chunks` as device records, never copied to
    the host: for reductions computed where the photons are (the jitted step runs on any
    backend; the records equal those of the streams)."""
    opts = dict(spot=spot, chunk_pulses=chunk_pulses, progress=progress, truth=truth)
    return _population_chunks(models, duration_s, power, seed, **opts, stage="records")


def _use_host(stage: str) -> bool:
    if stage == "records":
        return False
    if stage not in ("auto", "host", "device"):
        raise ValueError(f"stage = {stage!r}: choose 'auto', 'host' or 'device'")
    if stage == "auto":
        return jax.default_backend() == "cpu"
    return stage == "host"


def _members(spot: np.ndarray, n_spots: int) -> np.ndarray:
    """(S, M) emitter indices of each spot's NCs, -1 padded."""
    counts = np.bincount(spot, minlength=n_spots)
    out = np.full((n_spots, int(counts.max())), -1, np.int32)
    for k in range(n_spots):
        e = np.flatnonzero(spot == k)
        out[k, : len(e)] = e
    return out


def _capacities(slots, noise, chunk_blocks, m_max, p_ap) -> Capacities:
    records = _quantise(chunk_blocks * m_max * (slots + slots // 4 + noise))
    lam = records * p_ap
    return Capacities(
        slots=slots,
        noise=noise,
        late=_quantise(chunk_blocks * m_max * slots / 256),
        queue=SLOT_QUANTUM,
        records=records,
        parents=_quantise(lam + 6 * math.sqrt(lam) + 16),
    )


def _grow_step(caps: Capacities) -> Capacities:
    return caps._replace(
        late=2 * caps.late, queue=2 * caps.queue, records=2 * caps.records, parents=2 * caps.parents
    )


def _records_to_host(rec: Records) -> list[dict]:
    """The device records of each spot as NumPy arrays (a bucket of records is copied,
    few slice shapes to compile, not the whole buffer)."""
    counts = np.asarray(rec.count)
    size = rec.pulse.shape[1]
    top = min(size, _quantise(int(counts.max())))
    host = {
        f: np.asarray(getattr(rec, f) if top == size else getattr(rec, f)[:, :top])
        for f in Records._fields[1:]
        if getattr(rec, f) is not None
    }
    return [{f: a[k, : int(n)] for f, a in host.items()} for k, n in enumerate(counts)]


def _stream_of_columns(c: dict, stop, period_ps, res_ps, bleach, meta, t2=False) -> PhotonStream:
    """One spot's chunk from its columns (as :func:`simsps.sim.host_step.host_step` gives
    them: sync, dtime, channel and, with truth, source, state, emitter, delay, arrival);
    ``t2``: a T2 stream of the absolute times (CW: clock tick x period + ps within it)."""
    truth = None
    if "source" in c:
        truth = Truth(
            source=c["source"],
            state=c["state"],
            emitter=c["emitter"],
            emission_delay_ps=c["delay"],
            arrival_ps=c["arrival"],
            bleach_time_s=bleach,
        )
    if t2:
        return PhotonStream.t2(
            c["sync"] * np.int64(period_ps) + c["dtime"].astype(np.int64),
            c["channel"],
            resolution_ps=1.0,
            duration_ps=int(stop) * int(period_ps),
            truth=truth,
            meta=meta,
        )
    return PhotonStream(
        sync=c["sync"],
        dtime=c["dtime"],
        channel=c["channel"],
        sync_period_ps=float(period_ps),
        resolution_ps=float(res_ps),
        truth=truth,
        meta=meta,
        n_pulses=stop,
    )


def _columns(r: dict, start, period_ps, res_ps, members) -> dict:
    """One spot's device records of a chunk as the columns the numba step gives."""
    sync = r["pulse"].astype(np.int64) + start
    t = r["t"].astype(np.int64)
    if float(res_ps).is_integer():
        dtime = r["dtime"]
    else:
        dtime = np.floor(t / res_ps).astype(np.uint32)
    cols = dict(sync=sync, dtime=dtime, channel=r["channel"])
    if "source" in r:
        source = r["source"]
        photon = source < Source.DARK
        cols.update(
            source=source,
            state=np.where(photon, r["state"], State.NONE),
            emitter=np.where(photon, members[np.asarray(r["emitter"], np.int64)], NO_EMITTER),
            delay=np.where(photon, r["delay"], np.nan),
            arrival=sync * np.int64(period_ps) + t,
        )
    return cols


def simulate(
    model: Model,
    duration_s: float,
    power: float = 1.0,
    seed: int = 0,
    *,
    chunk_pulses: int = DEFAULT_CHUNK_PULSES,
    emitters: int = 1,
    progress=None,
    truth: bool = True,
    stage: str = "auto",
) -> PhotonStream:
    """Simulate a TCSPC acquisition of ``emitters`` identical NCs in one confocal spot.

    ``power`` is in units of the saturation power (mean excitations per pulse ``N``);
    ``seed`` fixes every random number; ``chunk_pulses`` (a multiple of ``BLOCK_PULSES``)
    only trades memory for speed: the stream is the same for any value. ``progress=True``
    shows a tqdm bar. Returns the whole stream in memory; for long runs write it with
    :func:`simulate_chunks` instead.
    """
    parts = list(
        simulate_chunks(
            model,
            duration_s,
            power,
            seed,
            chunk_pulses=chunk_pulses,
            emitters=emitters,
            progress=progress,
            truth=truth,
            stage=stage,
        )
    )
    return PhotonStream.concat(parts)
