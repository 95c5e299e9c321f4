"""Penalties on parameters, added to the gradient after each backward pass.

    L1(λ):  λ Σ|θ|,      gradient λ sign(θ)
    L2(λ):  (λ/2) Σ θ²,  gradient λ θ        (weight decay λ)

Give them to the Trainer by parameter name or glob, e.g. ``{"weights.0": L2(1e-4)}`` or
``[("weights.*", L1(1e-5)), ("layers.1.bias", L2(1e-3))]``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

import torch


class Penalty(ABC):
    """A differentiable penalty R(θ) with strength λ ≥ 0."""

    def __init__(self, strength: float) -> None:
        if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not math.isfinite(strength):
            raise ValueError(f"strength must be a finite number >= 0, got {strength!r}")
        if strength < 0:
            raise ValueError(f"strength must be >= 0, got {strength}")
        self.strength = float(strength)

    @abstractmethod
    def value(self, param: torch.Tensor) -> torch.Tensor:
        """R(θ)."""

    @abstractmethod
    def grad(self, param: torch.Tensor) -> torch.Tensor:
        """∂R/∂θ."""

    def config(self) -> dict[str, Any]:
        return {"type": type(self).__name__, "strength": self.strength}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.strength!r})"


class L1(Penalty):
    """λ Σ|θ| (sparsity); its subgradient at 0 is 0."""

    def value(self, param: torch.Tensor) -> torch.Tensor:
        return self.strength * param.abs().sum()

    def grad(self, param: torch.Tensor) -> torch.Tensor:
        return self.strength * param.sign()


class L2(Penalty):
    """(λ/2) Σθ² (weight decay)."""

    def value(self, param: torch.Tensor) -> torch.Tensor:
        return 0.5 * self.strength * (param**2).sum()

    def grad(self, param: torch.Tensor) -> torch.Tensor:
        return self.strength * param
