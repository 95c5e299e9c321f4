"""Heat capacity of a Boltzmann machine: the fluctuation of its energy at inverse temperature β.

    C(β) = β² Var_β[E] = Var[E] / T²,   p_β(h) ∝ exp(−β E(h)).

A peak of C(β) near β = 1 signals a model close to a phase transition (a multimodal, slowly
mixing energy landscape). Estimated from the energies of joint samples drawn at β.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .._checks import check_positive_int
from ._common import check_model


def heat_capacity(energies: Any, beta: float = 1.0) -> float:
    """β² times the (unbiased) sample variance of ``energies`` drawn at inverse temperature ``beta``."""
    if isinstance(beta, bool) or not (isinstance(beta, (int, float)) and math.isfinite(beta) and beta > 0):
        raise ValueError(f"beta must be a positive finite number, got {beta!r}")
    e = torch.as_tensor(energies).detach().to(torch.float64).flatten()
    if e.numel() < 2:
        raise ValueError(f"energies must hold at least 2 values, got {e.numel()}")
    if not torch.isfinite(e).all():
        raise ValueError("energies must be finite, but they contain NaN or Inf")
    return float(beta**2 * e.var())


@torch.no_grad()
def model_heat_capacity(
    model: Any, data: Any = None, beta: float = 1.0, rows: int = 500, steps: int = 200, seed: int = 0
) -> float:
    """C(β) from ``rows`` Gibbs chains run ``steps`` sweeps at β (``data`` is ignored: metric signature)."""
    model = check_model(model)
    rows = check_positive_int(rows, "rows", minimum=2)
    states = model.sample(rows, steps=steps, beta=beta, seed=seed)
    return heat_capacity(model._energy(states), beta)
