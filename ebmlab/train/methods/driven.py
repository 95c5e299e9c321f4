"""Driven sampling: per-chain inverse temperatures from an autoregressive gamma process (Paysage).

With variance σ², correlation φ ∈ [0, 1), shape ν = 1/σ² and scale c = (1 − φ) σ²,

    β_0 ~ Gamma(ν, σ²),    z_t ~ Poisson(φ β_{t−1} / c),    β_t ~ Gamma(ν + z_t, c).

Then E[β_t | β_{t−1}] = (1 − φ) + φ β_{t−1}, and the stationary law is Gamma(ν, σ²): mean 1,
standard deviation σ, lag-one autocorrelation φ (Gouriéroux & Jasiak 2006). Chains that wander
to β < 1 cross energy barriers; the sampler's states are used as they are in the negative phase.

All draws go through the caller's ``torch.Generator`` (gamma variates by Marsaglia–Tsang), so a
run is reproducible and resumable from ``state_dict()``.
"""

from __future__ import annotations

import math
from typing import Any

import torch


def gamma(shape: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Gamma(shape, 1) variates, elementwise, reproducible through ``generator``.

    Marsaglia & Tsang (2000): for a ≥ 1, d = a − 1/3, x ~ N(0,1), v = (1 + x/√(9d))³, accept
    d·v when log u < x²/2 + d − d v + d log v. For a < 1, Gamma(a) = Gamma(a + 1) · u^{1/a}.
    """
    small = shape < 1
    a = torch.where(small, shape + 1, shape)
    d = a - 1.0 / 3.0
    c = 1.0 / torch.sqrt(9.0 * d)
    out = torch.empty_like(a)
    todo = torch.ones_like(a, dtype=torch.bool)
    while bool(todo.any()):
        idx = todo.nonzero().squeeze(-1)
        x = torch.randn(idx.shape, dtype=a.dtype, device=a.device, generator=generator)
        u = torch.rand(idx.shape, dtype=a.dtype, device=a.device, generator=generator)
        di, ci = d[idx], c[idx]
        v = (1 + ci * x) ** 3
        ok = (v > 0) & (torch.log(u) < 0.5 * x**2 + di - di * v + di * torch.log(v.clamp_min(1e-30)))
        out[idx[ok]] = (di * v)[ok]
        todo[idx[ok]] = False
    if bool(small.any()):
        u = torch.rand(shape.shape, dtype=a.dtype, device=a.device, generator=generator)
        out = torch.where(small, out * u ** (1.0 / shape), out)
    return out


class GammaProcess:
    """``chains`` inverse temperatures with stationary mean 1, std ``std`` and correlation ``correlation``."""

    def __init__(self, chains: int, std: float, correlation: float = 0.9) -> None:
        if isinstance(chains, bool) or not isinstance(chains, int) or chains < 1:
            raise ValueError(f"chains must be a positive integer, got {chains!r}")
        if not (isinstance(std, (int, float)) and math.isfinite(std) and std > 0):
            raise ValueError(f"std (beta_std) must be a positive number, got {std!r}")
        if not (isinstance(correlation, (int, float)) and 0 <= correlation < 1):
            raise ValueError(f"correlation (beta_correlation) must be in [0, 1), got {correlation!r}")
        self.chains, self.std, self.correlation = chains, float(std), float(correlation)
        self.beta: torch.Tensor | None = None

    @property
    def shape(self) -> float:
        """ν = 1/σ²."""
        return 1.0 / self.std**2

    @property
    def scale(self) -> float:
        """c = (1 − φ) σ²."""
        return (1.0 - self.correlation) * self.std**2

    def step(self, dtype: torch.dtype, device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
        """Advance the process one step and return β_t (a fresh stationary draw the first time)."""
        if self.beta is None or self.beta.dtype != dtype or self.beta.device != device:
            nu = torch.full((self.chains,), self.shape, dtype=dtype, device=device)
            self.beta = gamma(nu, generator) * self.std**2
        else:
            z = torch.poisson(self.correlation * self.beta / self.scale, generator=generator)
            self.beta = gamma(self.shape + z, generator) * self.scale
        # a Gamma draw can underflow to 0 for tiny shapes; β must stay positive
        self.beta = self.beta.clamp_min(torch.finfo(dtype).tiny)
        return self.beta

    def state_dict(self) -> dict[str, Any]:
        return {"beta": None if self.beta is None else self.beta.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        beta = state.get("beta")
        if beta is not None and tuple(beta.shape) != (self.chains,):
            raise ValueError(f"state beta has shape {tuple(beta.shape)}, expected ({self.chains},)")
        self.beta = None if beta is None else beta.clone()
