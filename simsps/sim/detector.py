"""Everything between an incident photon and a TTTR record, on int64 absolute times.

Per channel, in time order (non-paralysable detectors):

1. incident events (emitter photons, dark counts, background) pass the dead time filter:
   an event within ``dead_time`` of the last *kept* event on its channel is lost;
2. each kept avalanche afterpulses with probability ``p`` at ``t + dead + Exp(tau_ap)``;
   an afterpulse afterpulses again with ``p`` (two generations; a third, ``p^3 ~ 3e-7``, is
   dropped);
3. a second dead-time pass over avalanches and afterpulses together keeps the record
   dead-time consistent. (Afterpulses are drawn from the first pass, so an avalanche removed
   by an afterpulse in step 3 may still have afterpulsed: an error of order
   ``p * rate * dead``, ~1e-6 for the presets. The reference model does it exactly.)

Events are processed chunk by chunk; anything at or after the end of a chunk waits for the
next one, so the stream is the same whatever the chunk size. Randomness of afterpulses comes
from keys folded with the event's channel and absolute time, likewise chunk-independent.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..stream import NO_EMITTER, Source, State

__all__ = ["Events", "dead_time_filter", "DetectorChain", "process_chains"]

EVENT_FIELDS = {
    "abs_ps": np.int64,
    "channel": np.uint8,
    "source": np.uint8,
    "state": np.uint8,
    "emitter": np.uint16,
    "delay_ps": np.float32,
    "uap": np.float32,
}


class Events(dict):
    """Columns of events (a dict of equal-length numpy arrays)."""

    @staticmethod
    def empty() -> "Events":
        return Events({k: np.empty(0, dt) for k, dt in EVENT_FIELDS.items()})

    @staticmethod
    def concat(parts) -> "Events":
        parts = [p for p in parts if len(p)]
        if not parts:
            return Events.empty()
        return Events({k: np.concatenate([p[k] for p in parts]) for k in EVENT_FIELDS})

    def __len__(self) -> int:
        return len(self["abs_ps"])

    def take(self, idx) -> "Events":
        return Events({k: v[idx] for k, v in self.items()})

    def sorted(self) -> "Events":
        order = np.argsort(self["abs_ps"], kind="stable")
        return self.take(order)


def dead_time_filter(t: np.ndarray, dead_ps: int, last_kept: int) -> tuple[np.ndarray, int]:
    """Keep-mask of a sorted time series for a non-paralysable dead time.

    ``last_kept``: time of the last kept event before ``t[0]``. Events further than the dead
    time from their predecessor are kept outright; the rare close ones are resolved in order.
    """
    n = len(t)
    if n == 0:
        return np.zeros(0, bool), last_kept
    if dead_ps <= 0:
        return np.ones(n, bool), int(t[-1])
    prev = np.empty(n, np.int64)
    prev[0] = last_kept
    prev[1:] = t[:-1]
    keep = (t - prev) >= dead_ps
    close = np.flatnonzero(~keep)
    for i in close.tolist():
        j = i - 1
        while j >= 0 and not keep[j]:
            j -= 1
        ref = t[j] if j >= 0 else last_kept
        keep[i] = t[i] - ref >= dead_ps
    kept = np.flatnonzero(keep)
    return keep, int(t[kept[-1]]) if len(kept) else last_kept


def _dead_time_keep(
    t: np.ndarray, channel: np.ndarray, dead_ps: int, last: np.ndarray
) -> np.ndarray:
    """Keep-mask of time-sorted events, per channel; updates ``last`` in place."""
    keep = np.ones(len(t), bool)
    for c in range(len(last)):
        idx = np.flatnonzero(channel == c)
        if not len(idx):
            continue
        k, last[c] = dead_time_filter(t[idx], dead_ps, int(last[c]))
        if not k.all():
            keep[idx[~k]] = False
    return keep


@jax.jit
def _event_uniforms(key_data, channel, hi, lo):
    """Three uniforms on (0, 1] per event, keyed by (detector pair, channel, absolute time):
    ``key_data`` holds each event's detector-pair key."""

    def one(kd, c, h, l):
        k = jax.random.wrap_key_data(kd, impl="threefry2x32")
        k = jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(k, c), h), l)
        return jax.random.uniform(k, (3,), minval=jnp.finfo(jnp.float32).tiny, maxval=1.0)

    return jax.vmap(one)(key_data, channel, hi, lo)


def event_uniforms(key, channel: np.ndarray, abs_ps: np.ndarray) -> np.ndarray:
    """Afterpulse random numbers of one detector pair's events (see
    :func:`batched_event_uniforms`)."""
    return batched_event_uniforms([key], [(channel, abs_ps)])[0]


def batched_event_uniforms(keys, events) -> list[np.ndarray]:
    """(n, 3) uniforms for each detector pair's events ``(channel, abs_ps)``, all in one
    device call: an event's numbers depend only on its pair's key, channel and time."""
    sizes = [len(t) for _, t in events]
    n = sum(sizes)
    if n == 0:
        return [np.empty((0, 3), np.float32) for _ in events]
    size = 1 << max(6, (n - 1).bit_length())  # pad: few distinct shapes to compile
    t = np.zeros(size, np.uint64)
    c = np.zeros(size, np.uint32)
    kd = np.zeros((size, 2), np.uint32)
    pos = 0
    for key, (ch, ts), k in zip(keys, events, sizes):
        t[pos : pos + k] = ts.astype(np.uint64)
        c[pos : pos + k] = ch
        kd[pos : pos + k] = np.asarray(jax.random.key_data(key))
        pos += k
    hi = (t >> np.uint64(32)).astype(np.uint32)
    lo = (t & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    out = np.asarray(_event_uniforms(kd, c, hi, lo))
    return np.split(out[:n], np.cumsum(sizes)[:-1])


class DetectorChain:
    """Stateful dead time + afterpulsing over consecutive chunks of incident events."""

    def __init__(
        self,
        key,
        *,
        dead_time_ns,
        afterpulse_probability,
        afterpulse_time_constant_ns,
        n_channels=2,
    ):
        self.key = key
        self.dead_ps = int(round(dead_time_ns * 1e3))
        self.p_ap = float(afterpulse_probability)
        self.tau_ap_ps = float(afterpulse_time_constant_ns * 1e3)
        far_past = np.iinfo(np.int64).min // 2
        self.last1 = np.full(n_channels, far_past, np.int64)
        self.last3 = np.full(n_channels, far_past, np.int64)
        self.pending_in = Events.empty()
        self.pending_ap = Events.empty()

    def _parents(self, primaries: Events) -> Events:
        """The avalanches that afterpulse (their uniform below the probability)."""
        if self.p_ap <= 0 or not len(primaries):
            return Events.empty()
        return primaries.take(primaries["uap"] < self.p_ap)

    def _afterpulses(self, parents: Events, w: np.ndarray) -> Events:
        if not len(parents):
            return Events.empty()
        step1 = self.dead_ps + np.rint(-np.log(w[:, 0]) * self.tau_ap_ps).astype(np.int64)
        t1 = parents["abs_ps"] + step1
        second = w[:, 1] < self.p_ap
        step2 = self.dead_ps + np.rint(-np.log(w[second, 2]) * self.tau_ap_ps).astype(np.int64)
        t = np.concatenate([t1, t1[second] + step2])
        ch = np.concatenate([parents["channel"], parents["channel"][second]])
        n = len(t)
        return Events(
            abs_ps=t,
            channel=ch,
            source=np.full(n, Source.AFTERPULSE, np.uint8),
            state=np.full(n, State.NONE, np.uint8),
            emitter=np.full(n, NO_EMITTER, np.uint16),
            delay_ps=np.full(n, np.nan, np.float32),
            uap=np.ones(n, np.float32),
        )

    def first_pass(self, incident: Events, end_ps: int) -> tuple[Events, Events]:
        """Dead-time pass over the incident events before ``end_ps`` (later ones wait):
        (kept avalanches, those of them that afterpulse)."""
        ev = Events.concat([self.pending_in, incident]) if len(self.pending_in) else incident
        order = np.argsort(ev["abs_ps"], kind="stable")
        t = ev["abs_ps"][order]
        n_ready = int(np.searchsorted(t, end_ps, side="left"))
        self.pending_in = ev.take(order[n_ready:])
        order, t = order[:n_ready], t[:n_ready]
        keep = _dead_time_keep(t, ev["channel"][order], self.dead_ps, self.last1)
        prim = ev.take(order[keep])
        return prim, self._parents(prim)

    def finish(self, prim: Events, parents: Events, w: np.ndarray, end_ps: int) -> Events:
        """Afterpulses of ``parents`` (random numbers ``w``), merged, second dead-time pass."""
        ap = Events.concat([self.pending_ap, self._afterpulses(parents, w)])
        if len(ap):
            ap_ready = ap["abs_ps"] < end_ps
            self.pending_ap = ap.take(~ap_ready)
            merged = Events.concat([prim, ap.take(ap_ready)])
            merged = merged.take(np.argsort(merged["abs_ps"], kind="stable"))
        else:
            merged = prim
        keep = _dead_time_keep(merged["abs_ps"], merged["channel"], self.dead_ps, self.last3)
        return merged if keep.all() else merged.take(keep)

    def process(self, incident: Events, end_ps: int) -> Events:
        """Detections with time < ``end_ps``; later events are held for the next call."""
        return process_chains([self], [incident], end_ps)[0]


def process_chains(chains, incidents, end_ps: int) -> list[Events]:
    """:meth:`DetectorChain.process` for several detector pairs at once: one device call
    for all their afterpulse random numbers."""
    firsts = [c.first_pass(ev, end_ps) for c, ev in zip(chains, incidents)]
    w = batched_event_uniforms(
        [c.key for c in chains], [(par["channel"], par["abs_ps"]) for _, par in firsts]
    )
    return [c.finish(prim, par, wk, end_ps) for c, (prim, par), wk in zip(chains, firsts, w)]
