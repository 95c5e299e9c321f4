"""Bernoulli units x ∈ {0,1} with bias b.

H(x) = −bᵀx,   r(x) = x,   p(x_j=1 | f) = σ(β(f_j + b_j)),
log Z(f, β) = Σ_j softplus(β(f_j + b_j)).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .._checks import Beta, check_rows
from .base import Layer, expand_beta


class BernoulliLayer(Layer):
    """n binary units with a learned bias."""

    kind = "bernoulli"

    def __init__(self, n: int, name: str | None = None) -> None:
        super().__init__(n, name)
        self.bias = nn.Parameter(torch.zeros(n))

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        return -(x @ self.bias)

    def logits(self, field: torch.Tensor, beta: Beta = 1.0) -> torch.Tensor:
        return expand_beta(beta, field) * (field + self.bias)

    def conditional(self, field: torch.Tensor, beta: Beta = 1.0) -> torch.distributions.Distribution:
        return torch.distributions.Independent(torch.distributions.Bernoulli(logits=self.logits(field, beta)), 1)

    def mean(self, field: torch.Tensor, beta: Beta = 1.0) -> torch.Tensor:
        return torch.sigmoid(self.logits(field, beta))

    def sample(self, field: torch.Tensor, beta: Beta = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
        p = self.mean(field, beta)
        u = torch.rand(p.shape, dtype=p.dtype, device=p.device, generator=generator)
        return (u < p).to(p.dtype)

    def log_partition(self, field: torch.Tensor, beta: Beta = 1.0) -> torch.Tensor:
        return F.softplus(self.logits(field, beta)).sum(-1)

    def check(self, x: torch.Tensor, name: str = "x") -> None:
        super().check(x, name)
        bad = (x != 0) & (x != 1)
        if bad.any():
            example = x[bad][0].item()
            raise ValueError(
                f"{name} for layer {self.label} must be binary (0 or 1); found {example!r} "
                f"in {int(bad.sum())} entries (binarize the data first)"
            )

    def num_states(self) -> float:
        return 2.0**self.n

    def all_states(self) -> torch.Tensor:
        """All 2ⁿ binary vectors, in binary-counting order (unit 0 is the most significant bit)."""
        if self.n > 30:
            raise ValueError(f"layer {self.label} has 2^{self.n} states: too many to enumerate")
        codes = torch.arange(2**self.n, device=self.bias.device)
        bits = torch.arange(self.n - 1, -1, -1, device=self.bias.device)
        return ((codes.unsqueeze(-1) >> bits) & 1).to(self.bias.dtype)

    # -- TAP terms: q(x) = Π_j m_j^x_j (1 − m_j)^(1−x_j), the independent units with mean m --------
    def tap_mean(self, field: torch.Tensor) -> torch.Tensor:
        """argmin_m Γ₀(m) − fieldᵀm = σ(b + field): the TAP fixed-point map."""
        return self.mean(field)

    def tap_entropy(self, m: torch.Tensor) -> torch.Tensor:
        """S(m) = −Σ_j [m_j ln m_j + (1 − m_j) ln(1 − m_j)] per row (0 ln 0 = 0)."""
        return -(torch.special.xlogy(m, m) + torch.special.xlogy(1 - m, 1 - m)).sum(-1)

    def tap_variance(self, m: torch.Tensor) -> torch.Tensor:
        """Var_q(x_j) = m_j − m_j²."""
        return m - m * m

    def tap_third_moment(self, m: torch.Tensor) -> torch.Tensor:
        """E_q[(x_j − m_j)³] = m_j(1 − m_j)(1 − 2m_j) = 2 s(m_j)(½ − m_j)."""
        return (m - m * m) * (1 - 2 * m)

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor) -> None:
        """b = logit(mean of x), the mean clipped to [1e-3, 1 − 1e-3]."""
        check_rows(x, "x")
        self.bias.copy_(torch.logit(x.mean(0).clamp(1e-3, 1 - 1e-3)))
