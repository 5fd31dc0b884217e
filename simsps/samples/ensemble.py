"""Populations of NCs on a substrate: sizes, emission wavelengths, Auger rates, clusters.

What is modelled (the [ensemble] section of a preset, PHYSICS.md section 5):

* a single NC of cube edge ``L`` emits at ``E(L) = E_bulk + C / L^2`` (weak-to-intermediate
  confinement), with ``C`` fixed by the reference NC (``reference_edge_nm`` emits at
  ``reference_cew_nm``); the edges are normal around ``edge_mean_nm``, cut to the
  size-selection window ``[edge_min_nm, edge_max_nm]`` (the seed discards the largest
  particles, so no single NC emits beyond ~515 nm);
* its biexciton Auger time scales with the volume, ``tau_A ~ (L / L_ref)^(3 x)``
  (``auger_volume_exponent`` x = 1), radiative rates unchanged: bigger NCs are redder and
  have brighter biexcitons, so g2(0) rises with the wavelength - but only a few-fold over
  504-518 nm (PHYSICS.md: volume scaling alone cannot reach g2(0) ~ 1);
* the red end without antibunching is therefore made by *clusters*: a spot holding
  ``cluster_min_ncs`` + Poisson(``cluster_extra_ncs_mean``) independent NCs, whose
  electronic coupling red-shifts their emission by ``cluster_redshift_mev`` (empirical,
  labelled so in the preset). k independent NCs give ``g2(0) = 1 - (1 - g2_1) / k``.

Draws use ``jax.random`` keys folded with the spot index, so spot ``s`` is the same whatever
the number of spots drawn.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from ..params.model import Model
from ..params.sample import HC_EV_NM, Ensemble
from ..sim import keys
from ..sim.engine import simulate_population

__all__ = ["Population", "nc_model", "draw_population", "simulate_ensemble"]


@dataclasses.dataclass(frozen=True)
class Population:
    """NCs and the spots they sit in. Per NC: ``models``, ``spot``, ``edge_nm``, ``cew_nm``
    (the centre of its line, cluster shift included); per spot: ``spot_size`` (NCs)."""

    models: tuple[Model, ...]
    spot: np.ndarray
    edge_nm: np.ndarray
    cew_nm: np.ndarray
    seed: int

    @property
    def n_spots(self) -> int:
        return int(self.spot.max()) + 1

    @property
    def spot_size(self) -> np.ndarray:
        return np.bincount(self.spot, minlength=self.n_spots)

    def members(self, spot: int) -> np.ndarray:
        return np.flatnonzero(self.spot == spot)


def nc_model(model: Model, ens: Ensemble, edge_nm: float) -> Model:
    """``model`` (the reference NC) for an NC of edge ``edge_nm``: the non-radiative (Auger)
    rate of the biexciton and of the charged biexciton scaled by ``(L_ref / L)^(3 x)``,
    their radiative rates kept; lifetimes and yields follow."""
    scale = (ens.reference_edge_nm / float(edge_nm)) ** (3.0 * ens.auger_volume_exponent)
    out = {}
    for sec in ("biexciton", "charged_biexciton"):
        st = getattr(model, sec)
        k_r = st.quantum_yield / st.lifetime_ns
        k_a = (1.0 - st.quantum_yield) / st.lifetime_ns
        tau = 1.0 / (k_r + k_a * scale)
        out[f"{sec}.lifetime_ns"] = tau
        out[f"{sec}.quantum_yield"] = k_r * tau
    return model.replace(out)


def draw_population(model: Model, ens: Ensemble, n_spots: int, seed: int = 0) -> Population:
    """``n_spots`` spots: single NCs, or with probability ``cluster_fraction`` clusters."""
    if not isinstance(n_spots, (int, np.integer)) or n_spots < 1:
        raise ValueError(f"n_spots = {n_spots!r} must be a positive integer")
    root = keys.stream(keys.root(seed), keys.ENSEMBLE)
    edges, spots, cews = [], [], []
    for s in range(int(n_spots)):
        k = jax.random.fold_in(root, s)
        u = np.asarray(jax.random.uniform(jax.random.fold_in(k, 0), (2,)))
        n = 1
        if u[0] < ens.cluster_fraction:
            n = int(ens.cluster_min_ncs) + int(
                jax.random.poisson(jax.random.fold_in(k, 1), ens.cluster_extra_ncs_mean)
            )
        lo = (ens.edge_min_nm - ens.edge_mean_nm) / ens.edge_std_nm
        hi = (ens.edge_max_nm - ens.edge_mean_nm) / ens.edge_std_nm
        z = np.asarray(jax.random.truncated_normal(jax.random.fold_in(k, 2), lo, hi, (n,)))
        edge = ens.edge_mean_nm + ens.edge_std_nm * z
        gap = ens.gap_ev(edge) - (ens.cluster_redshift_mev * 1e-3 if n > 1 else 0.0)
        edges.append(edge)
        cews.append(HC_EV_NM / gap)
        spots.append(np.full(n, s))
    edge = np.concatenate(edges)
    models = tuple(nc_model(model, ens, e) for e in edge)
    return Population(
        models=models,
        spot=np.concatenate(spots),
        edge_nm=edge,
        cew_nm=np.concatenate(cews),
        seed=int(seed),
    )


def simulate_ensemble(pop: Population, duration_s: float, power: float = 1.0, seed: int = 0, **kw):
    """One TCSPC stream per spot of ``pop`` (every NC in one vmapped kernel call per
    chunk), each spot at ``power`` x its NCs' Psat; see :func:`simsps.simulate_population`."""
    return simulate_population(pop.models, duration_s, power, seed, spot=pop.spot, **kw)
