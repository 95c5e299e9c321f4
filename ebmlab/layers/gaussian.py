"""Gaussian units with learned mean μ and variance σ² = exp(log_var).

H(x) = Σ_j (x_j − μ_j)² / (2σ_j²),   r(x) = x / σ²,
p(x | f) = N(μ + f, σ²/β),
log Z(f, β) = Σ_j [β((μ_j + f_j)² − μ_j²) / (2σ_j²) + ½ log(2πσ_j²/β)].
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .._checks import Beta, check_real, check_rows
from .base import Layer, expand_beta


class GaussianLayer(Layer):
    """n real-valued units with a learned mean and log-variance."""

    kind = "gaussian"

    def __init__(self, n: int, name: str | None = None, loc: float = 0.0, var: float = 1.0) -> None:
        super().__init__(n, name)
        loc = check_real(loc, "loc")
        if isinstance(var, bool) or not (isinstance(var, (int, float)) and math.isfinite(var) and var > 0):
            raise ValueError(f"var must be a positive finite variance, got {var!r}")
        self.loc = nn.Parameter(torch.full((n,), float(loc)))
        self.log_var = nn.Parameter(torch.full((n,), math.log(var)))

    @property
    def var(self) -> torch.Tensor:
        return self.log_var.exp()

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - self.loc) ** 2 / (2 * self.var)).sum(-1)

    def rescale(self, x: torch.Tensor) -> torch.Tensor:
        return x / self.var

    def conditional(self, field: torch.Tensor, beta: Beta = 1.0) -> torch.distributions.Distribution:
        b = expand_beta(beta, field)
        scale = (self.var / b).sqrt().expand_as(field)
        return torch.distributions.Independent(torch.distributions.Normal(self.loc + field, scale), 1)

    def mean(self, field: torch.Tensor, beta: Beta = 1.0) -> torch.Tensor:
        return self.loc + field

    def sample(self, field: torch.Tensor, beta: Beta = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
        b = expand_beta(beta, field)
        noise = torch.randn(field.shape, dtype=field.dtype, device=field.device, generator=generator)
        return self.loc + field + noise * (self.var / b).sqrt()

    def log_partition(self, field: torch.Tensor, beta: Beta = 1.0) -> torch.Tensor:
        b = expand_beta(beta, field)
        var = self.var
        quad = b * ((self.loc + field) ** 2 - self.loc**2) / (2 * var)
        return (quad + 0.5 * torch.log(2 * math.pi * var / b)).sum(-1)

    # -- TAP terms, fixed-variance approximation: q(x) = Π_j N(x_j; m_j, σ_j²), only the mean m is a
    # TAP variable; the coupled quantity r(x) = x/σ² then has mean m/σ² and variance 1/σ². ----------
    def tap_mean(self, field: torch.Tensor) -> torch.Tensor:
        """argmin_m Γ₀(m) − fieldᵀm = μ + σ² field (field: −∂Γ_int/∂m)."""
        return self.loc + self.var * field

    def tap_energy(self, m: torch.Tensor) -> torch.Tensor:
        """⟨H(x)⟩_q = Σ_j [(m_j − μ_j)² + σ_j²] / (2σ_j²) = H(m) + n/2."""
        return self.energy(m) + 0.5 * self.n

    def tap_entropy(self, m: torch.Tensor) -> torch.Tensor:
        """S(q) = Σ_j ½ ln(2πe σ_j²), independent of m."""
        return (0.5 * torch.log(2 * math.pi * math.e * self.var)).sum().expand(m.shape[:-1])

    def tap_variance(self, m: torch.Tensor) -> torch.Tensor:
        """Var_q(r(x_j)) = Var_q(x_j / σ_j²) = 1/σ_j²."""
        return (1 / self.var).expand_as(m)

    def tap_third_moment(self, m: torch.Tensor) -> torch.Tensor:
        """E_q[(r(x_j) − r(m_j))³] = 0 for a Gaussian."""
        return torch.zeros_like(m)

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor) -> None:
        """μ = mean of x, σ² = variance of x (floored at 1e-6)."""
        check_rows(x, "x")
        self.loc.copy_(x.mean(0))
        self.log_var.copy_(x.var(0, unbiased=False).clamp_min(1e-6).log())
