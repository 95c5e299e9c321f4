"""Mean-field variational lower bound on log p(v) for deep Boltzmann machines.

For any factorized q(h) = Π_i q_i(h_i) over the hidden layers (Jensen's inequality),

    log Σ_h exp(−E(v, h)) ≥ E_q[−E(v, h)] + H(q) = −F_q(v),
    log p(v) ≥ −F_q(v) − log Z.

With q_i the mean-field fixed point (``BoltzmannMachine.mean_field``, magnetizations m_i) and
energies linear in each layer's rescaled state, E_q[E(v, h)] = E(v, m_1, …, m_L) plus, for a
Gaussian layer (q_i = N(m_i, σ_i²)), ½ per unit. The entropies are
Bernoulli −Σ[m log m + (1 − m) log(1 − m)], one-hot −Σ m log m, Gaussian Σ ½ log(2πeσ²).
For an RBM q is the exact posterior and the bound is tight (F_q = F). With an *estimated* log Z
(e.g. from AIS) the result inherits that estimate's error, so it is only a bound up to it.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .._checks import check_positive_int, check_real
from ..layers import BernoulliLayer, GaussianLayer, OneHotLayer
from ._common import check_model, visible_rows


def _entropy_minus_excess(layer: Any, m: torch.Tensor) -> torch.Tensor:
    """H(q_i) − (E_q[H_i] − H_i(m)) per row for a factorized q_i with means m."""
    if isinstance(layer, BernoulliLayer):
        return (torch.special.entr(m) + torch.special.entr(1 - m)).sum(-1)
    if isinstance(layer, OneHotLayer):
        return torch.special.entr(m).sum(-1)
    if isinstance(layer, GaussianLayer):
        # entropy Σ ½ log(2πeσ²) minus the variance term Σ ½
        return (0.5 * torch.log(2 * math.pi * layer.var)).sum().expand(m.shape[0])
    raise TypeError(f"no mean-field entropy for layer {layer.label}")


@torch.no_grad()
def variational_free_energy(model: Any, v: Any, steps: int = 50, tol: float = 1e-6) -> torch.Tensor:
    """F_q(v) = E_q[E(v, h)] − H(q) ≥ F(v) per row, q the mean-field posterior (float64)."""
    model = check_model(model)
    x = visible_rows(model, v)
    states = model._mean_field(x, check_positive_int(steps, "steps"), check_real(tol, "tol", minimum=0.0))
    entropy = sum(_entropy_minus_excess(layer, m) for layer, m in zip(model.layers[1:], states[1:]))
    return (model._energy(states) - entropy).to(torch.float64)


def mean_field_lower_bound(model: Any, v: Any, log_z: float, steps: int = 50, tol: float = 1e-6) -> torch.Tensor:
    """log p(v) ≥ −F_q(v) − log Z per row (float64): the mean-field variational lower bound."""
    if isinstance(log_z, bool) or not (isinstance(log_z, (int, float)) and math.isfinite(log_z)):
        raise ValueError(f"log_z must be a finite number, got {log_z!r}")
    return -variational_free_energy(model, v, steps, tol) - float(log_z)
