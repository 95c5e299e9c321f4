"""Gaussian units with learned mean μ and variance σ² = exp(log_var).

H(x) = Σ_j (x_j − μ_j)² / (2σ_j²),   r(x) = x / σ²,
p(x | f) = N(μ + f, σ²/β),
log Z(f, β) = Σ_j [β((μ_j + f_j)² − μ_j²) / (2σ_j²) + ½ log(2πσ_j²/β)].

Options that keep the variance well behaved on real images (Liao et al. 2022): ``var_min`` /
``var_max`` bound σ² (``var`` clamps log σ² into [log var_min, log var_max], and ``project_()``,
called by the Trainer after every optimizer step, moves the parameter back inside), ``learn_var=False``
fixes σ² at its initial value (``log_var`` then has ``requires_grad=False``), and ``log_var_lr_scale``
multiplies the learning rate of ``log_var`` (the Trainer puts it in its own parameter group).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .._checks import Beta, check_real, check_rows
from .base import Layer, expand_beta


class GaussianLayer(Layer):
    """n real-valued units with a learned mean and log-variance."""

    kind = "gaussian"

    def __init__(
        self,
        n: int,
        name: str | None = None,
        loc: float = 0.0,
        var: float = 1.0,
        var_min: float | None = None,
        var_max: float | None = None,
        learn_var: bool = True,
        log_var_lr_scale: float = 1.0,
    ) -> None:
        super().__init__(n, name)
        loc = check_real(loc, "loc")
        if not _positive(var):
            raise ValueError(f"var must be a positive finite variance, got {var!r}")
        for arg, value in (("var_min", var_min), ("var_max", var_max)):
            if value is not None and not _positive(value):
                raise ValueError(f"{arg} must be None or a positive finite variance, got {value!r}")
        if var_min is not None and var_max is not None and var_min > var_max:
            raise ValueError(f"var_min ({var_min}) must not exceed var_max ({var_max})")
        if not isinstance(learn_var, bool):
            raise TypeError(f"learn_var must be True or False, got {learn_var!r}")
        if not _positive(log_var_lr_scale):
            raise ValueError(f"log_var_lr_scale must be a positive finite number, got {log_var_lr_scale!r}")
        self.var_min = None if var_min is None else float(var_min)
        self.var_max = None if var_max is None else float(var_max)
        self.learn_var = learn_var
        self.log_var_lr_scale = float(log_var_lr_scale)
        self.loc = nn.Parameter(torch.full((n,), float(loc)))
        self.log_var = nn.Parameter(torch.full((n,), math.log(var)), requires_grad=learn_var)
        with torch.no_grad():
            self.project_()

    @property
    def _log_bounds(self) -> tuple[float | None, float | None]:
        lo = None if self.var_min is None else math.log(self.var_min)
        hi = None if self.var_max is None else math.log(self.var_max)
        return lo, hi

    @property
    def var(self) -> torch.Tensor:
        """σ² = exp(clamp(log_var, log var_min, log var_max))."""
        lo, hi = self._log_bounds
        if lo is None and hi is None:
            return self.log_var.exp()
        return self.log_var.clamp(lo, hi).exp()

    @torch.no_grad()
    def project_(self) -> None:
        """Move ``log_var`` into [log var_min, log var_max] in place (no-op without bounds)."""
        lo, hi = self._log_bounds
        if lo is not None or hi is not None:
            self.log_var.clamp_(lo, hi)

    def lr_scales(self) -> dict[str, float]:
        """Learning-rate multipliers by parameter name (the Trainer's parameter groups)."""
        return {"log_var": self.log_var_lr_scale} if self.log_var_lr_scale != 1.0 else {}

    def spec(self) -> dict[str, Any]:
        out = super().spec()
        out.update(
            var_min=self.var_min, var_max=self.var_max, learn_var=self.learn_var, log_var_lr_scale=self.log_var_lr_scale
        )
        return out

    def extra_repr(self) -> str:
        extra = "" if self.learn_var else ", learn_var=False"
        if self.var_min is not None or self.var_max is not None:
            extra += f", var_min={self.var_min}, var_max={self.var_max}"
        return super().extra_repr() + extra

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
        """μ_j = mean of column j; σ_j² = max(var_j, 0.01 · mean_k var_k), then into [var_min, var_max].

        The floor relative to the average column variance keeps constant columns (e.g. the border
        pixels of MNIST) from starting at σ² ≈ 0, where r(x) = x/σ² would blow the couplings up.
        With ``learn_var=False`` only μ is set: the variance stays fixed.
        """
        check_rows(x, "x")
        self.loc.copy_(x.mean(0))
        if not self.learn_var:
            return
        var = x.var(0, unbiased=False)
        floor = max(float(var.mean()) * INIT_VAR_FLOOR, 1e-12)
        self.log_var.copy_(var.clamp_min(floor).log())
        self.project_()


INIT_VAR_FLOOR = 0.01


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
