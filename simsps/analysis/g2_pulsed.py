"""Pulsed g2: the HBT cross-correlation around zero delay, its peak areas and g2(0).

g2(0) is the area of the centre peak over the mean area of the ``n_side_peaks`` side peaks
on each side (the seed paper's definition: side peaks near zero carry the blinking
bunching, so they, not the long-delay level, are the reference). Each peak is integrated
over the whole laser period centred on it (and on the detectors' relative delay), which
makes the areas immune to dead time and jitter (PHYSICS.md section 6).

What is taken out of the areas, in this order (PHYSICS.md section 9):

afterpulses
    A detector's afterpulse repeats its parent's timing ``dead + Exp(tau_ap)`` later, so
    its coincidences are a smeared copy of the parent's: ``X(d) -> p_a E[X(d + delta)]``
    for channel a's afterpulses, ``p_b E[X(d - delta)]`` for b's. They fill the floor and
    the side peaks but largely miss the centre (the parent's own pulse is antibunched), so
    a flat-floor correction over-subtracts. With ``afterpulsing="auto"`` the law of each
    detector is measured from its own forward pairs (:func:`afterpulsing`) and the copy is
    subtracted from the histogram (first order in ``p``).
independent background
    Photons that are independent of the other detector's (dark counts, room light,
    substrate luminescence *and* laser scatter, uniform or prompt) add to every window
    ``F = [N_a N_b - (N_a - B_a)(N_b - B_b)] T / D`` coincidences whatever the blinking,
    with ``B`` their counts (Brouri et al. 2000, written with counts so the side peaks'
    bunching is not mistaken for accidentals). ``background`` = rates in cps (one number
    split by the channels' count rates, or one per channel) or a :class:`PhotonStream` of
    an empty spot measured beside the emitter (its count error is propagated).
    ``background="floor"`` (default) measures the uniform part from the middle of the
    gaps between peaks instead; a *prompt* background (it follows the laser) never reaches
    the floor and is indistinguishable from the emitter's own biexciton cascade in one
    stream (both put one fast photon in every centre-peak pair), so the floor default
    assumes there is none: give the empty spot's rate when there is.
overlapping peaks
    A decay that does not finish within the period spills each peak into its neighbours'
    windows and into the floor. The shape of a peak (the delay between two photons of one
    pulse) is then built from ex-Gaussian fits of both channels' decays (periodic, so the
    earlier pulses' decay is included), and the areas and the floor are solved for the
    centre and side peaks and the flat accidentals together: ``C_m = M_0 q_m + M_s (1 - q_m)
    + F`` (``q_m`` the centre peak's share in window m), ``G = M_s (Gamma - gamma_0) +
    M_0 gamma_0 + F w`` for the floor. Decays with lifetimes below a twentieth of the
    period leave ``q_0 = 1`` to 1e-4 and are not fitted.

Corrections: ``"brouri"`` (default) ``g = M_0 / M_s``, exact; ``"peak-area"`` the
consistent peak-area form ``(M0 + Mb - 2 sqrt(M1 Mb)) / (sqrt(M1) - sqrt(Mb))^2`` on the
raw areas ``M = M_signal + F`` with ``Mb`` the background-background coincidences (exact
only when both detectors have the same signal fraction); ``"seed-si"`` the seed SI's
peak-by-peak ``Mc = M + Mb - 2 sqrt(M Mb)``, which overstates g2(0) (b/s = 0.1: true 0 reads
0.128), offered to reproduce the paper's own numbers.

Uncertainties: the delete-one-block jackknife over ``n_blocks`` time blocks
(:mod:`simsps.analysis._blocks`), which holds under blinking (pairs within a dwell are
correlated), plus the error of the afterpulse probabilities and of an empty spot's count,
propagated to first order. ``interval()`` uses Student's t with the jackknife's degrees of
freedom.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ._blocks import DEFAULT_BLOCKS, block_edges
from ._common import (
    AnalysisError,
    Warnings,
    background_rates,
    channel_times,
    check_stream,
    interval,
    require_t3,
)
from ._common import channel_delay_ps as measure_channel_delay

CORRECTIONS = ("brouri", "peak-area", "seed-si")
SUB = 400  # histogram bins per laser period (window edges fall on bin edges)
PRONE_FLOOR = (
    "no laser-synchronous (prompt) background: it cannot be told from the "
    "emitter in one stream; give background= the count rate of an empty spot "
    "if there is one"
)


@dataclasses.dataclass(frozen=True)
class PulsedG2:
    delay_ns: np.ndarray  # display histogram bin centres (ns)
    counts: np.ndarray  # coincidences per display bin
    bin_ns: float
    peak_index: np.ndarray  # -n .. n
    peak_area: np.ndarray  # raw coincidences per whole-period window
    side_mean: float  # M1: mean raw side-peak area
    floor_per_peak: float  # F: independent (accidental) coincidences per window
    floor_counts: int  # coincidences in the floor regions (0 if not used)
    afterpulse_per_peak: tuple[float, float]  # afterpulse coincidences removed: centre, side mean
    peak_fraction_inside: float  # q_0: share of a peak inside its own window
    g2_zero: float  # raw M0 / M1
    g2_zero_stderr_raw: float
    g2_zero_corrected: float
    g2_zero_stderr: float  # of the corrected value
    dof: float  # degrees of freedom of the error (jackknife blocks - 1)
    correction: str
    background: str  # "floor", "rates" or "empty spot"
    signal_fraction: tuple[float, float]  # rho of channel a, b
    channel_delay_ns: float
    period_ns: float
    duration_s: float
    assumptions: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        """Confidence interval of the corrected g2(0) (Student's t, jackknife dof)."""
        return interval(self.g2_zero_corrected, self.g2_zero_stderr, self.dof, level)

    def plot(self, ax=None, **kw):
        from .plots import plot_pulsed_g2

        return plot_pulsed_g2(self, ax=ax, **kw)


@dataclasses.dataclass(frozen=True)
class PulsedGeometry:
    """Where pulsed_g2 counts: a fine histogram of ``t_b - t_a - delay`` in ``SUB`` bins
    per laser period, ``half`` bins on each side of zero (the side peaks, one period more
    and the afterpulse correction's reach), pairs closer than ``window``, and the
    jackknife's time blocks (``block_ps`` edges). Bins are integer arithmetic on ps
    (``floor((d - delay) SUB / period)``, the period and the delay as whole ps), so any
    counter (the numba pair walk here, a sweep's on-device reduction) puts a pair in the
    same bin."""

    period_ps: int
    k: int  # side peaks on each side
    reach: int  # bins of the afterpulse correction's reach
    delay_ps: int  # detector b's timing relative to a's
    n_blocks: int
    block_ps: np.ndarray  # (n_blocks + 1,) float64 block edges in ps

    @property
    def half(self) -> int:
        return (self.k + 1) * SUB + self.reach

    @property
    def n_fine(self) -> int:
        return 2 * self.half

    @property
    def bin_ps(self) -> float:
        return self.period_ps / SUB

    @property
    def window_ps(self) -> int:
        """Pairs with ``|t_b - t_a|`` below this reach the histogram."""
        return int(self.half * self.bin_ps + abs(self.delay_ps)) + 1


def pulsed_geometry(
    period_ps: float, k: int, ap, n_pulses: int, n_blocks: int, delay_ps: float
) -> PulsedGeometry:
    """The :class:`PulsedGeometry` of an acquisition of ``n_pulses`` laser periods with the
    afterpulse law ``ap`` (an ``Afterpulsing`` result or None)."""
    period = int(round(period_ps))
    w = period / SUB
    reach = 0
    if ap is not None:
        reach = max(
            int(math.ceil((d.dead_time_ns + 12 * d.time_constant_ns) * 1e3 / w)) + 1
            for d in ap.detectors
        )
        reach = min(reach, 40 * SUB)
    return PulsedGeometry(
        period_ps=period,
        k=int(k),
        reach=reach,
        delay_ps=int(round(delay_ps)),
        n_blocks=int(n_blocks),
        block_ps=block_edges(int(round(n_pulses)), n_blocks) * float(period_ps),
    )


@dataclasses.dataclass(frozen=True)
class PulsedCounts:
    """What pulsed_g2 needs of the photons: ``rows`` (1 + n_blocks, n_fine) pairs per fine
    bin, row 0 all of them, row 1 + j those that leave with block j (a photon or b photon
    in it); ``counts`` (n_blocks, 3): a photons, b photons and laser periods per block."""

    rows: np.ndarray
    counts: np.ndarray


def pulsed_counts(ta, tb, geo: PulsedGeometry) -> PulsedCounts:
    """:class:`PulsedCounts` of the sorted channel times ``ta``, ``tb`` (int64 ps)."""
    from ._kernels import signed_pairs

    n_blocks, n_fine, half = geo.n_blocks, geo.n_fine, geo.half
    edges_ps = geo.block_ps
    # pairs by block, for the delete-one-block jackknife: a photon in block j (A), b photon
    # in block j (B), both in block j (W); leaving block j out removes A_j + B_j - W_j
    cuts_a = np.searchsorted(ta, edges_ps, side="left")
    cuts_b = np.searchsorted(tb, edges_ps, side="left")

    def binned(d, offsets):
        idx = np.floor_divide((d - geo.delay_ps) * SUB, geo.period_ps) + half
        block = np.repeat(np.arange(n_blocks), np.diff(offsets))
        ok = (idx >= 0) & (idx < n_fine)
        return np.bincount(block[ok] * n_fine + idx[ok], minlength=n_blocks * n_fine).reshape(
            n_blocks, n_fine
        )

    window = geo.window_ps
    hist_a = binned(*signed_pairs(ta, tb, window, cuts=cuts_a))
    d_b, off_b = signed_pairs(tb, ta, window, cuts=cuts_b)
    hist_b = binned(-d_b, off_b)  # t_b - t_a
    within = [
        signed_pairs(
            ta[cuts_a[j] : cuts_a[j + 1]], tb[cuts_b[j] : cuts_b[j + 1]], window, threads=1
        )
        for j in range(n_blocks)
    ]
    hist_w = binned(
        np.concatenate(within), np.concatenate([[0], np.cumsum([len(x) for x in within])])
    )
    rows = np.vstack([hist_a.sum(axis=0)[None, :], hist_a + hist_b - hist_w])
    counts = np.column_stack(
        [np.diff(cuts_a), np.diff(cuts_b), np.diff(edges_ps) / float(geo.period_ps)]
    )
    return PulsedCounts(rows=rows, counts=counts)


def pulsed_g2(
    stream,
    *,
    n_side_peaks: int = 10,
    channels: tuple[int, int] = (0, 1),
    background="floor",
    correction: str = "brouri",
    afterpulsing="auto",
    floor_fraction: float = 0.5,
    n_blocks: int = DEFAULT_BLOCKS,
    bin_ps: float | None = None,
    channel_delay_ps: float | None = None,
) -> PulsedG2:
    """Pulsed HBT cross-correlation and g2(0) with background, afterpulse and overlap
    corrections (module doc). ``afterpulsing``: "auto" (measured), None (no correction) or
    an :class:`~simsps.analysis.afterpulsing.Afterpulsing` result. ``channel_delay_ps``:
    the second detector's timing relative to the first (default: measured from the
    microtime histograms, :func:`~simsps.analysis._common.channel_delay_ps`); it is
    rounded to whole ps."""
    from .afterpulsing import Afterpulsing
    from .afterpulsing import afterpulsing as measure_afterpulsing

    a, b = channels
    check_stream(stream, need_channels=(a, b), min_photons=2)
    require_t3(stream, "pulsed_g2")
    k = _check_options(n_side_peaks, correction, floor_fraction)
    warn = Warnings()
    if afterpulsing == "auto":
        try:
            ap = measure_afterpulsing(stream, channels=channels)
        except AnalysisError as e:
            ap = None
            warn.append(f"afterpulsing not measured ({e}); no afterpulse correction")
    elif afterpulsing is None or afterpulsing is False:
        ap = None
    elif isinstance(afterpulsing, Afterpulsing):
        ap = afterpulsing
    else:
        raise AnalysisError(
            f"afterpulsing = {afterpulsing!r}: 'auto', None or an Afterpulsing result"
        )
    if ap is not None:
        warn.extend(ap.warnings)
    period = float(stream.sync_period_ps)
    n_pulses = stream.duration_s * 1e12 / period
    ta, tb = channel_times(stream, a, b)
    delay = measure_channel_delay(stream, a, b) if channel_delay_ps is None else channel_delay_ps
    geo = pulsed_geometry(period, k, ap, int(round(n_pulses)), n_blocks, delay)
    counts = pulsed_counts(ta, tb, geo)
    bg = background_rates(background, stream, channels, len(ta), len(tb))

    def decay_of(c, ap_law):
        from .decay import decay

        return decay(stream, channels=c, afterpulsing=ap_law)

    return pulsed_g2_from_counts(
        counts,
        geo,
        ap=ap,
        background=bg,
        correction=correction,
        floor_fraction=floor_fraction,
        decay_of=lambda j, ap_law: decay_of(channels[j], ap_law),
        duration_s=float(stream.duration_s),
        resolution_ps=float(stream.resolution_ps),
        bin_ps=bin_ps,
        warnings=warn,
    )


def _check_options(n_side_peaks, correction, floor_fraction) -> int:
    if correction not in CORRECTIONS:
        raise AnalysisError(f"correction {correction!r}: choose one of {', '.join(CORRECTIONS)}")
    k = int(n_side_peaks)
    if k < 1:
        raise AnalysisError(f"n_side_peaks = {n_side_peaks!r} must be at least 1")
    if not 0 < floor_fraction <= 0.9:
        raise AnalysisError(f"floor_fraction = {floor_fraction!r} must be in (0, 0.9]")
    return k


def pulsed_g2_from_counts(
    pc: PulsedCounts,
    geo: PulsedGeometry,
    *,
    ap,
    background,
    correction: str = "brouri",
    floor_fraction: float = 0.5,
    decay_of,
    duration_s: float,
    resolution_ps: float,
    bin_ps: float | None = None,
    warnings=(),
) -> PulsedG2:
    """The estimate of :func:`pulsed_g2` from its counts (whoever counted them, e.g. a
    sweep's reduction where the photons are): ``background`` as
    :func:`~simsps.analysis._common.background_rates` returns it, ``decay_of(j, ap)`` the
    :class:`~simsps.analysis.decay.Decay` of channel ``j`` (0: a, 1: b) with the afterpulse
    law ``ap`` (for the overlap of long decays)."""
    k = _check_options(geo.k, correction, floor_fraction)
    warn = Warnings(warnings)
    assumptions = []
    n_blocks = geo.n_blocks
    period = float(geo.period_ps)
    w = geo.bin_ps
    half, reach = geo.half, geo.reach
    delay = float(geo.delay_ps)
    rows = pc.rows.astype(np.float64)
    counts = pc.counts

    # regions in bins relative to zero: whole-period windows and the gaps' middles
    zero = half
    win = [(zero + m * SUB - SUB // 2, zero + m * SUB + SUB // 2) for m in range(-k, k + 1)]
    g_half = int(round(floor_fraction * SUB / 2))
    gaps = [
        (zero + m * SUB + SUB // 2 - g_half, zero + m * SUB + SUB // 2 + g_half)
        for m in range(-k, k)
    ]
    gap_width = len(gaps) * 2 * g_half / SUB  # in periods

    starts = np.array([s for s, _ in win] + [s for s, _ in gaps])
    ends = np.array([e for _, e in win] + [e for _, e in gaps])
    # row 0: every pair; row 1 + j: the pairs that leave with block j (A_j + B_j - W_j).
    # Region sums are linear, so they are taken once on these rows.
    cum_rows = np.concatenate([np.zeros((len(rows), 1)), np.cumsum(rows, axis=1)], axis=1)
    raw_rows = cum_rows[:, ends] - cum_rows[:, starts]
    rem_rows = (
        [
            _afterpulse_regions(
                rows, cum_rows, det.delay_weights(w, reach + 1, centred=True), starts, ends, sign
            )
            for det, sign in zip(ap.detectors, (1, -1))
        ]
        if ap is not None
        else [np.zeros_like(raw_rows)] * 2
    )
    n_win = 2 * k + 1
    raw_total = raw_rows[0]
    areas = raw_total[:n_win]
    m0_raw, sides_raw = areas[k], np.delete(areas, k)
    m1_raw = float(sides_raw.mean())
    if m1_raw <= 0:
        raise AnalysisError("no coincidences in the side peaks: too few photons for g2")
    floor_counts = int(raw_total[n_win:].sum())
    ap_frac = (0.0, 0.0) if ap is None else (ap[0].probability, ap[1].probability)

    def stats(p_scale=(1.0, 1.0), raw=False):
        """Summed statistics of the whole stream and of each block's removal: regions
        (afterpulses taken out unless ``raw``), channel counts, pulses."""
        p0, p1 = (0.0, 0.0) if raw else p_scale
        regions = raw_rows - p0 * rem_rows[0] - p1 * rem_rows[1]
        return (
            np.concatenate([regions[0], counts.sum(axis=0)]),
            np.column_stack([regions[1:], counts]),
        )

    # ---- independent background ------------------------------------------------------
    bg_mode, bg_rates, bg_rate_var = background
    if bg_mode == "floor":
        assumptions.append(PRONE_FLOOR)

    # ---- peak shape when the decay does not finish within the period -------------------
    shape = _overlap(decay_of, period, k, g_half / SUB, delay, ap, warn)
    q0 = shape["q"][k]

    def solve(st, rates=bg_rates, p=ap_frac):
        """(g2 corrected, M0, Ms, F, rho_a, rho_b) from summed statistics."""
        corrected = st[: n_win + len(gaps)]
        n_a, n_b, n_pul = st[-3], st[-2], st[-1]
        cw = corrected[:n_win]
        c0, cbar = cw[k], float(np.delete(cw, k).mean())
        g_floor = float(corrected[n_win:].sum())
        qbar = float(np.delete(shape["q"], k).mean())
        # non-afterpulse photons of each channel
        a_eff, b_eff = n_a * (1 - p[0]), n_b * (1 - p[1])
        if bg_mode == "floor":
            mat = np.array(
                [
                    [q0, 1 - q0, 1.0],
                    [qbar, 1 - qbar, 1.0],
                    [shape["gamma0"], shape["gamma_all"] - shape["gamma0"], gap_width],
                ]
            )
            m0, ms, f = np.linalg.solve(mat, [c0, cbar, g_floor])
            rho = (math.sqrt(max(1 - f / (ms + f), 0.0)) if ms + f > 0 else 0.0,) * 2
        else:
            seconds = n_pul * period * 1e-12
            ba, bb = rates[0] * seconds, rates[1] * seconds  # independent photons
            f = (a_eff * b_eff - (a_eff - ba) * (b_eff - bb)) / n_pul
            mat = np.array([[q0, 1 - q0], [qbar, 1 - qbar]])
            m0, ms = np.linalg.solve(mat, [c0 - f, cbar - f])
            rho = (1 - ba / a_eff if a_eff > 0 else 0.0, 1 - bb / b_eff if b_eff > 0 else 0.0)
        if correction == "brouri":
            g = m0 / ms
        else:
            g = _legacy(correction, m0 + f, ms + f, f, rho, cw, k, bg_mode)
        return np.array([g, m0, ms, f, rho[0], rho[1]])

    def jackknifed(estimate, full, removals):
        loo = np.array([estimate(full - r) for r in removals])
        spread = loo - loo.mean()
        return estimate(full), math.sqrt((n_blocks - 1) / n_blocks * np.sum(spread**2))

    full_stats, removals = stats()
    g, se = jackknifed(lambda st: solve(st)[0], full_stats, removals)
    _, m0, ms, f, rho_a, rho_b = solve(full_stats)
    if f >= 0.95 * (ms + f):
        raise AnalysisError(
            f"the uncorrelated floor ({f:.4g} per peak window) is as large as "
            f"the side peaks ({ms + f:.4g}): no signal to correct"
        )
    var = float(se) ** 2
    # afterpulse probabilities and an empty spot's count: independent errors, first order
    if ap is not None:
        for i, det in enumerate(ap.detectors):
            if det.probability != 0 and det.probability_stderr > 0:
                scale = [1.0, 1.0]
                scale[i] = 1 + det.probability_stderr / det.probability
                p2 = list(ap_frac)
                p2[i] = ap_frac[i] * scale[i]
                var += (solve(stats(tuple(scale))[0], p=tuple(p2))[0] - g) ** 2
    if bg_rate_var is not None:
        for i in (0, 1):
            h = math.sqrt(bg_rate_var[i])
            if h > 0:
                r2 = list(bg_rates)
                r2[i] += h
                var += (solve(full_stats, rates=tuple(r2))[0] - g) ** 2
    stderr = math.sqrt(var)
    dof = float(n_blocks - 1)

    # raw g2(0) and its jackknife error
    raw_full, raw_removals = stats(raw=True)
    g_raw, se_raw = jackknifed(
        lambda st: st[k] / np.delete(st[:n_win], k).mean(), raw_full, raw_removals
    )

    ap_removed = (raw_total - full_stats[: len(raw_total)])[:n_win]
    if not warn.add(
        g + 2 * stderr < 0,
        f"the corrected g2(0) = {g:.3g} +- {stderr:.2g} is below zero beyond its "
        "error: more was subtracted than the centre peak holds (background rates "
        "too high, or a peak shape the corrections do not describe)",
    ):
        warn.add(
            g < 0,
            f"the corrected g2(0) = {g:.3g} +- {stderr:.2g} is negative, which no "
            "emitter gives; it is consistent with a small positive value within "
            "its error",
        )
    warn.add(
        f < 0,
        f"the accidental floor came out negative ({f:.3g} per window): the floor "
        "between the peaks holds fewer coincidences than the peak shape predicts",
    )
    warn.add(
        m0_raw < 10,
        f"only {int(m0_raw)} coincidences in the centre peak: g2(0) and its "
        "error rest on very few counts",
    )
    warn.add(
        m1_raw < 30,
        f"only {m1_raw:.3g} coincidences per side peak on average: too few "
        "for a reliable normalisation",
    )
    bin_ns, centres, shown = _display(pc.rows[0], w, half, k, period, bin_ps, resolution_ps)
    return PulsedG2(
        delay_ns=centres,
        counts=shown,
        bin_ns=bin_ns,
        peak_index=np.arange(-k, k + 1),
        peak_area=areas.astype(np.float64),
        side_mean=m1_raw,
        floor_per_peak=float(f),
        floor_counts=floor_counts if bg_mode == "floor" else 0,
        afterpulse_per_peak=(float(ap_removed[k]), float(np.delete(ap_removed, k).mean())),
        peak_fraction_inside=float(q0),
        g2_zero=float(g_raw),
        g2_zero_stderr_raw=float(se_raw),
        g2_zero_corrected=float(g),
        g2_zero_stderr=stderr,
        dof=dof,
        correction=correction,
        background=bg_mode,
        signal_fraction=(float(rho_a), float(rho_b)),
        channel_delay_ns=delay / 1e3,
        period_ns=period / 1e3,
        duration_s=float(duration_s),
        assumptions=tuple(assumptions),
        warnings=tuple(warn),
    )


def _afterpulse_regions(rows, cum_rows, wts, starts, ends, sign):
    """Afterpulse coincidences of one detector in each region [s, e) of the fine histogram
    ``rows``: channel a's afterpulses (sign +1) put a parent pair at d + delta into d,
    channel b's (-1) one at d - delta; ``wts[j]`` is the probability of a shift of j bins.

    With ``U[y]`` the weights of shifts below y (0 for y <= 0, all for y >= len(wts)),
    sign +1: region r receives ``G(s) - G(e)``, ``G(x) = sum_i h[i] U[i - x + 1]``;
    sign -1: ``H(e) - H(s)``, ``H(x) = sum_i h[i] U[x - i]``; each a dot product over the
    shifts plus a tail sum (``cum_rows[:, x]`` = pairs in bins below x)."""
    n_rows, n = rows.shape
    cum_w = np.cumsum(wts)  # cum_w[j] = U[j + 1]
    total = cum_w[-1]
    big = len(wts)
    padded = np.concatenate([np.zeros((n_rows, big)), rows, np.zeros((n_rows, big))], axis=1)
    points = np.unique(np.concatenate([starts, ends]))
    rev_w = cum_w[: big - 1][::-1].copy()
    value = {}
    for x in points:
        if sign > 0:  # sum_{j < L - 1} h[x + j] U[j + 1] + total * sum_{i >= x + L - 1} h[i]
            seg = padded[:, big + x : big + x + big - 1]
            tail = cum_rows[:, -1] - cum_rows[:, min(max(x + big - 1, 0), n)]
            value[x] = seg @ cum_w[: big - 1] + total * tail
        else:  # sum_{1 <= j < L} h[x - j] U[j] + total * sum_{i <= x - L} h[i]
            seg = padded[:, x + 1 : big + x]  # h[x - L + 1] .. h[x - 1]
            head = cum_rows[:, min(max(x - big + 1, 0), n)]
            value[x] = seg @ rev_w + total * head
    lo = np.column_stack([value[x] for x in starts])
    hi = np.column_stack([value[x] for x in ends])
    return lo - hi if sign > 0 else hi - lo


def _legacy(correction, m0, m1, f, rho, windows, k, bg_mode):
    """The peak-area and seed-SI forms on raw areas ``M = M_signal + F``; ``Mb`` the
    background-background coincidences per window."""
    if bg_mode == "floor":  # equal signal fractions: Mb = (1 - rho)^2 M1
        mb = (1 - math.sqrt(max(1 - f / m1, 0.0))) ** 2 * m1
    else:
        mb = (1 - rho[0]) * (1 - rho[1]) * m1
    if correction == "peak-area":
        return (m0 + mb - 2 * math.sqrt(m1 * mb)) / (math.sqrt(m1) - math.sqrt(mb)) ** 2
    sides = np.delete(windows, k)
    s = sides * (m1 / sides.mean())
    return (m0 + mb - 2 * math.sqrt(max(m0, 0.0) * mb)) / float(
        np.mean(s + mb - 2 * np.sqrt(np.maximum(s, 0.0) * mb))
    )


def _overlap(decay_of, period_ps: float, k: int, gap_half: float, delay_ps: float, ap, warn):
    """Window shares ``q_m`` of the centre peak, its mass in the floor regions
    (``gamma0``) and the periodic comb's (``gamma_all``), from the decays of both channels
    (``decay_of(j, afterpulsing)``, j = 0, 1; module doc)."""
    from ._shapes import pair_delay_cdf
    from .decay import fit_decay

    period_ns = period_ps / 1e3
    short = {"q": np.eye(2 * k + 1)[k], "gamma0": 0.0, "gamma_all": 0.0}
    comps, centres, widths = [], [], []
    for c in (0, 1):
        try:  # the decision needs no afterpulse model (their hump is slow and small)
            # on bins of about a nanosecond (enough to tell a lifetime from a twentieth
            # of the period, ten times cheaper than the card's bins)
            d = decay_of(c, None)
            quick = fit_decay(d.rebinned(max(1, int(1.0 / d.resolution_ns))), n_exp=1)
        except AnalysisError:
            return short
        tau, err = quick.lifetimes_ns[0], quick.lifetimes_stderr_ns[0]
        if tau < period_ns / 20 or not err < 0.3 * tau:  # short, or no decay to speak of
            return short
        try:
            d = decay_of(c, ap)
            fit = fit_decay(d, n_exp=2, irf="gaussian")
        except AnalysisError as e:
            warn.append(
                f"the decay does not finish within the period but its fit failed ({e}); "
                "peaks are treated as separate"
            )
            return short
        amp = np.maximum(fit.amplitudes, 0.0)
        comps.append([(x / amp.sum(), t) for x, t in zip(amp, fit.lifetimes_ns)])
        centres.append(fit.irf_centre_ns)
        widths.append(fit.irf_fwhm_ns / 2.35482)
    shift = centres[1] - centres[0]
    sigma = math.hypot(*widths)
    delay_ns = delay_ps / 1e3  # the windows are centred on the measured channel delay

    def mass(lo, hi):
        return pair_delay_cdf(hi + delay_ns, comps[0], comps[1], shift, sigma) - pair_delay_cdf(
            lo + delay_ns, comps[0], comps[1], shift, sigma
        )

    m = np.arange(-k, k + 1)
    q = mass((m - 0.5) * period_ns, (m + 0.5) * period_ns)
    g_lo = (np.arange(-k, k) + 0.5 - gap_half) * period_ns
    g_hi = (np.arange(-k, k) + 0.5 + gap_half) * period_ns
    gamma0 = float(np.sum(mass(g_lo, g_hi)))
    # the periodic comb's mass in one gap region, summed over all peaks (j), times the gaps
    js = np.arange(-60, 61)[:, None] * period_ns
    per_gap = np.sum(
        mass(
            0.5 * period_ns - gap_half * period_ns + js, 0.5 * period_ns + gap_half * period_ns + js
        )
    )
    gamma_all = float(per_gap) * 2 * k
    longest = max(t for cs in comps for _, t in cs)
    warn.append(
        f"the decay does not finish within the period (longest fitted lifetime "
        f"{longest:.3g} ns, period {period_ns:.4g} ns): a peak keeps {q[k]:.1%} of its "
        f"coincidences in its own window and the floor holds signal; both are "
        "corrected with the fitted decay shapes"
    )
    return {"q": q, "gamma0": gamma0, "gamma_all": gamma_all}


def _display(h, w, half, k, period, bin_ps, resolution_ps):
    """A histogram for the eye: bins of ~1 ns (whole fine bins), widened until the side
    peaks' tallest bins hold at least 25 coincidences (or a sixteenth of the period)."""
    edge = (2 * k + 1) * SUB // 2  # -(k + 1/2) .. (k + 1/2) periods
    fine = h[half - edge : half + edge]
    if bin_ps:
        factor = max(1, int(round(bin_ps / w)))
    else:
        factor = max(1, int(round(1000.0 / w)))
        while factor < SUB // 16:
            nb = len(fine) // factor
            c = fine[: nb * factor].reshape(nb, factor).sum(axis=1)
            if np.sort(c)[-max(1, 2 * k) :].min() >= 25:
                break
            factor *= 2
    nb = len(fine) // factor
    counts = fine[: nb * factor].reshape(nb, factor).sum(axis=1)
    lo = -(k + 0.5) * period
    centres = (lo + (np.arange(nb) + 0.5) * factor * w) / 1e3
    return factor * w / 1e3, centres, counts
