"""TAP / extended mean field (Gabrié, Tramel & Krzakala 2015): a sampling-free log Z.

    log Z ≈ −min_m Γ(m),    log p(v) ≈ −min_h Γ(v, h) + min_m Γ(m)

with Γ the Gibbs free energy expanded to 2nd or 3rd order in the couplings
(``gibbs_free_energy``), minimized by damped fixed-point sweeps (``minimize``).
"""

from __future__ import annotations

from typing import Any

import torch

from .._checks import check_positive_int
from .gibbs_free_energy import check_order, gibbs_free_energy, interaction, pair_moments
from .minimize import TAPResult, minimize, random_magnetizations


@torch.no_grad()
def tap_log_partition(
    model: torch.nn.Module, order: int = 2, chains: int = 8, steps: int = 200, tol: float = 1e-7, seed: int = 0
) -> float:
    """−min Γ over ``chains`` starts (the first at the biases alone, the others random)."""
    order = check_order(order)
    chains = check_positive_int(chains, "chains")
    g = torch.Generator(device=model.device).manual_seed(seed)
    mags = random_magnetizations(model, chains, g)
    for layer, m in zip(model.layers, mags):
        m[0] = layer.tap_mean(torch.zeros_like(m[0]))
    result = minimize(model, mags, order=order, steps=steps, tol=tol)
    return float(-result.gamma.min())


@torch.no_grad()
def tap_free_energy(
    model: torch.nn.Module, v: Any, order: int = 2, steps: int = 100, tol: float = 1e-7
) -> torch.Tensor:
    """F(v) ≈ min_h Γ(v, h) per row (exact for an RBM, whose hidden units are independent given v)."""
    order = check_order(order)
    v = model._visible(v)
    start = model._mean_field(v, 1, tol)
    return minimize(model, start, order=order, steps=steps, tol=tol, clamp=v).gamma


def tap_log_likelihood(
    model: torch.nn.Module, data: Any, order: int = 2, chains: int = 8, steps: int = 200, seed: int = 0
) -> float:
    """Mean TAP estimate of log p(v) over the rows of ``data``: −⟨F_TAP(v)⟩ − log Z_TAP."""
    log_z = tap_log_partition(model, order, chains=chains, steps=steps, seed=seed)
    return float(-tap_free_energy(model, data, order, steps).mean()) - log_z


__all__ = [
    "TAPResult",
    "gibbs_free_energy",
    "interaction",
    "minimize",
    "pair_moments",
    "random_magnetizations",
    "tap_free_energy",
    "tap_log_likelihood",
    "tap_log_partition",
]
