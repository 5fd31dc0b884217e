"""Plan chunks, derive keys, run the kernel, assemble int64 times: ``simulate``.

Keys: ``root = key(seed)``; emitter ``e`` draws its pulses from
``fold_in(fold_in(fold_in(root, 0), e), block)``, its blinking from ``fold_in(root, 1)``,
its bleach time from ``fold_in(root, 2)``; the detectors from ``fold_in(root, 3)``. Blocks
have a fixed size (``BLOCK_PULSES``), so a stream does not depend on ``chunk_pulses`` nor on
how many emitters are simulated together.
"""

from __future__ import annotations

import math
from typing import Iterator

import jax
import jax.numpy as jnp
import numpy as np

from .detector import DetectorChain, Events
from .kernel import BLOCK_PULSES, KernelParams, chunk_kernel, noise_capacity, signal_capacity
from .model import Model
from .physics.blinking import BlinkTrajectory
from .physics.bleaching import bleach_probability_per_pulse, bleach_pulse_from_uniform
from .physics.cascade import outcome_probabilities, state_yields
from .physics.excitation import check_power
from .stream import NO_EMITTER, PhotonStream, State, Truth

__all__ = ["simulate", "simulate_chunks", "DEFAULT_CHUNK_PULSES", "kernel_params"]

DEFAULT_CHUNK_PULSES = 1 << 24
_INT32_MAX = np.iinfo(np.int32).max


def _pow2ceil(n: int) -> int:
    return 1 << max(0, (int(n) - 1).bit_length())


def kernel_params(m: Model, n_mean: float, *, with_noise: bool = True) -> KernelParams:
    probs = outcome_probabilities(m, n_mean)
    q = probs.sum(axis=1)
    q_max = float(q.max() if m.blinking.enabled else q[0])
    y = state_yields(m)
    period_s = 1.0 / m.excitation.rep_rate_hz
    det, bg = m.detection, m.background
    rates = np.array([det.dark_cps, det.dark_cps, bg.rate_cps, bg.prompt_cps]) if with_noise else np.zeros(4)
    total = rates.sum()
    bg_cum = np.cumsum(rates) / total if total > 0 else np.array([0.25, 0.5, 0.75, 1.0])
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
        period_ps=f32(m.sync_period_ps),
        bg_lam=f32(total * BLOCK_PULSES * period_s),
        bg_cum=f32(bg_cum),
        prompt_tau_ps=f32(bg.prompt_lifetime_ns * 1e3),
    )


def _check_args(duration_s, seed, chunk_pulses, emitters):
    d = float(duration_s)
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
    if isinstance(emitters, bool) or not isinstance(emitters, (int, np.integer)) or not 1 <= emitters < 65535:
        raise ValueError(f"emitters = {emitters!r} must be an integer in [1, 65534]")
    return d


def _stack(trees):
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)


def _make_progress(progress, total_s: float):
    if not progress:
        return None
    if progress is True or progress == "tqdm":
        from tqdm.auto import tqdm

        return tqdm(total=round(total_s, 3), unit="s", desc="simulate", leave=False, delay=1.0)
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
) -> Iterator[PhotonStream]:
    """Simulate chunk by chunk; yields time-ordered :class:`PhotonStream` pieces.

    Memory stays bounded by one chunk whatever ``duration_s``. See :func:`simulate`.
    """
    duration = _check_args(duration_s, seed, chunk_pulses, emitters)
    n_mean = check_power(power)
    m = model
    period_ps = m.sync_period_ps
    n_pulses = int(round(duration * m.excitation.rep_rate_hz))
    if n_pulses < 1:
        raise ValueError(f"duration_s = {duration_s!r} is shorter than one laser period")
    res_ps = float(m.detection.resolution_ps)

    root = jax.random.key(int(seed), impl="threefry2x32")
    ids = jnp.arange(emitters, dtype=jnp.uint32)
    emitter_keys = jax.vmap(jax.random.fold_in, (None, 0))(jax.random.fold_in(root, 0), ids)
    kps = [kernel_params(m, n_mean, with_noise=(e == 0)) for e in range(emitters)]
    kp = _stack(kps)

    blink_key = jax.random.fold_in(root, 1)
    trajectories = [
        BlinkTrajectory(jax.random.fold_in(blink_key, e), m.blinking, n_mean, m.excitation.rep_rate_hz)
        for e in range(emitters)
    ]
    bleach_key = jax.random.fold_in(root, 2)
    u_bleach = np.asarray(
        jax.vmap(lambda k: jax.random.uniform(k, minval=jnp.finfo(jnp.float32).tiny, maxval=1.0))(
            jax.vmap(jax.random.fold_in, (None, 0))(bleach_key, ids)
        )
    )
    bleach_pulse = bleach_pulse_from_uniform(u_bleach, bleach_probability_per_pulse(m, n_mean))
    bleach_time_s = np.where(
        bleach_pulse < n_pulses, bleach_pulse / m.excitation.rep_rate_hz, np.inf
    )
    chain = DetectorChain(
        jax.random.fold_in(root, 3),
        dead_time_ns=m.detection.dead_time_ns,
        afterpulse_probability=m.detection.afterpulse_probability,
        afterpulse_time_constant_ns=m.detection.afterpulse_time_constant_ns,
    )
    meta = dict(model=m.name, model_toml=m.to_toml(), seed=int(seed), power=n_mean,
                duration_s=duration, emitters=int(emitters))

    chunk_blocks = chunk_pulses // BLOCK_PULSES
    total_blocks = -(-n_pulses // BLOCK_PULSES)
    plan = []  # (first block, number of blocks): powers of two, so few compiled shapes
    block = 0
    while block < total_blocks:
        nb = min(chunk_blocks, 1 << ((total_blocks - block).bit_length() - 1))
        plan.append((block, nb))
        block += nb
    capacity = [signal_capacity(float(kps[0].q_max)), noise_capacity(float(kps[0].bg_lam))]

    def inputs(block, nb):
        start = block * BLOCK_PULSES
        windows = [t.window(start, start + nb * BLOCK_PULSES) for t in trajectories]
        size = _pow2ceil(max(64, max(len(w[1]) for w in windows) + 1))
        switch = np.full((emitters, size), _INT32_MAX, np.int32)
        for e, (_, rel) in enumerate(windows):
            switch[e, : len(rel)] = rel
        state0 = np.array([w[0] for w in windows], np.int32)
        bleach_rel = np.clip(bleach_pulse - start, 0, _INT32_MAX).astype(np.int32)
        return (emitter_keys, jnp.int32(block), kp, jnp.asarray(switch), jnp.asarray(state0),
                jnp.asarray(bleach_rel))

    def launch(block, nb):
        args = inputs(block, nb)
        return args, nb, chunk_kernel(*args, n_blocks=nb, n_slots=capacity[0], n_slots_bg=capacity[1])

    bar = _make_progress(progress, duration)
    try:
        # depth-1 pipeline: the kernel of chunk k+1 runs (asynchronously) while the host
        # assembles chunk k and runs the detectors on it
        pending = launch(*plan[0])
        for k, (block, nb) in enumerate(plan):
            args, nb, (sig, bg, overflow) = pending
            if k + 1 < len(plan):
                pending = launch(*plan[k + 1])
            while bool(np.asarray(overflow).any()):  # > 6 sigma: same numbers, more slots
                capacity[:] = [2 * c for c in capacity]
                sig, bg, overflow = chunk_kernel(*args, n_blocks=nb, n_slots=capacity[0],
                                                 n_slots_bg=capacity[1])
            start = block * BLOCK_PULSES
            stop = min(start + nb * BLOCK_PULSES, n_pulses)
            incident = _assemble(sig, bg, start, n_pulses, period_ps)
            det = chain.process(incident, stop * period_ps)
            yield _to_stream(det, period_ps, res_ps, bleach_time_s, meta, stop)
            if bar is not None:
                bar.update(round((stop - start) / m.excitation.rep_rate_hz, 3))
    finally:
        if bar is not None:
            bar.close()


def _assemble(sig, bg, start: int, n_pulses: int, period_ps: int) -> Events:
    """Valid kernel slots -> incident events with int64 absolute times (host side)."""
    # signal: valid/t/delay/channel/source (E, NB, 2, C), pos/state (E, NB, C); noise (E, NB, C)
    valid = np.asarray(sig["valid"])
    _, n_b, _, c = valid.shape
    f = np.flatnonzero(valid)
    take = lambda a: np.asarray(a).reshape(-1)[f]  # noqa: E731
    slot = (f // (2 * c)) * c + f % c  # index into the (E, NB, C) arrays
    block = slot // c
    sig_ev = _events(start, n_pulses, block % n_b, np.asarray(sig["pos"]).reshape(-1)[slot],
                     take(sig["t_ps"]), period_ps,
                     channel=take(sig["channel"]), source=take(sig["source"]),
                     state=np.asarray(sig["state"]).reshape(-1)[slot],
                     emitter=(block // n_b).astype(np.uint16), delay_ps=take(sig["delay_ps"]),
                     uap=take(sig["uap"]))
    valid = np.asarray(bg["valid"])
    f = np.flatnonzero(valid)
    n = len(f)
    bg_ev = _events(start, n_pulses, (f // valid.shape[2]) % n_b, take(bg["pos"]), take(bg["t_ps"]),
                    period_ps, channel=take(bg["channel"]), source=take(bg["source"]),
                    state=np.full(n, State.NONE, np.uint8),
                    emitter=np.full(n, NO_EMITTER, np.uint16),
                    delay_ps=np.full(n, np.nan, np.float32), uap=take(bg["uap"]))
    return Events.concat([sig_ev, bg_ev])


def _events(start, n_pulses, b_idx, pos, t_ps, period_ps, **cols) -> Events:
    """Events of the pulses before ``n_pulses`` (the last block runs past the end)."""
    pulse = start + b_idx.astype(np.int64) * BLOCK_PULSES + pos
    ev = Events(abs_ps=pulse * period_ps + np.rint(t_ps).astype(np.int64), **cols)
    inside = pulse < n_pulses
    return ev if inside.all() else ev.take(inside)


def _to_stream(det: Events, period_ps: int, res_ps: float, bleach_time_s, meta, n_pulses) -> PhotonStream:
    truth = Truth(
        source=det["source"], state=det["state"], emitter=det["emitter"],
        emission_delay_ps=det["delay_ps"], arrival_ps=det["abs_ps"], bleach_time_s=bleach_time_s,
    )
    return PhotonStream.from_arrivals(det["abs_ps"], det["channel"], period_ps, res_ps,
                                      truth=truth, meta=meta, n_pulses=n_pulses)


def simulate(
    model: Model,
    duration_s: float,
    power: float = 1.0,
    seed: int = 0,
    *,
    chunk_pulses: int = DEFAULT_CHUNK_PULSES,
    emitters: int = 1,
    progress=None,
) -> PhotonStream:
    """Simulate a TCSPC acquisition of ``emitters`` identical NCs in one confocal spot.

    ``power`` is in units of the saturation power (mean excitations per pulse ``N``);
    ``seed`` fixes every random number; ``chunk_pulses`` (a multiple of ``BLOCK_PULSES``)
    only trades memory for speed: the stream is the same for any value. ``progress=True``
    shows a tqdm bar. Returns the whole stream in memory; for long runs write it with
    :func:`simulate_chunks` instead.
    """
    parts = list(
        simulate_chunks(model, duration_s, power, seed, chunk_pulses=chunk_pulses,
                        emitters=emitters, progress=progress)
    )
    return PhotonStream.concat(parts)
