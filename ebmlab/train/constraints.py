"""Constraints projected onto parameters after every optimizer step.

- ``NonNegative()``: θ ← max(θ, 0).
- ``FixedMask(mask)``: entries where ``mask`` is True keep the values they had when training
  began (e.g. zeros for a fixed connectivity pattern).
- ``MaxNorm(max_norm, dim=0)``: each slice along ``dim`` is rescaled to norm ≤ ``max_norm``
  (``dim=0`` on weights (visible, hidden): the incoming weight vector of each hidden unit).

Give them to the Trainer by parameter name or glob, like penalties: ``{"weights.0": NonNegative()}``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np
import torch


class Constraint(ABC):
    """``bind(param, name)`` checks the parameter and returns a function projecting it in place."""

    @abstractmethod
    def bind(self, param: torch.Tensor, name: str) -> Callable[[], None]:
        """Validate against ``param`` and return the in-place projection for it."""

    def config(self) -> dict[str, Any]:
        return {"type": type(self).__name__}

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class NonNegative(Constraint):
    """θ ≥ 0."""

    def bind(self, param: torch.Tensor, name: str) -> Callable[[], None]:
        @torch.no_grad()
        def apply() -> None:
            param.clamp_(min=0)

        return apply


class FixedMask(Constraint):
    """Entries where ``mask`` is True never change from their value when training starts."""

    def __init__(self, mask: Any) -> None:
        arr = mask if isinstance(mask, torch.Tensor) else np.asarray(mask)
        if not isinstance(arr, torch.Tensor) and arr.dtype != np.bool_:
            raise TypeError(f"mask must be a boolean array (True = fixed), got dtype {arr.dtype}")
        m = torch.as_tensor(arr)
        if m.dtype != torch.bool:
            raise TypeError(f"mask must be a boolean array (True = fixed), got dtype {m.dtype}")
        self.mask = m

    def bind(self, param: torch.Tensor, name: str) -> Callable[[], None]:
        if self.mask.shape != param.shape:
            raise ValueError(
                f"FixedMask for {name}: mask has shape {tuple(self.mask.shape)}, the parameter {tuple(param.shape)}"
            )
        mask = self.mask.to(param.device)
        fixed = param.detach()[mask].clone()

        @torch.no_grad()
        def apply() -> None:
            param[mask] = fixed

        return apply

    def config(self) -> dict[str, Any]:
        return {"type": "FixedMask", "fixed_entries": int(self.mask.sum())}


class MaxNorm(Constraint):
    """‖θ‖₂ ≤ ``max_norm`` along ``dim`` (θ·min(1, max_norm/‖θ‖))."""

    def __init__(self, max_norm: float, dim: int = 0) -> None:
        if isinstance(max_norm, bool) or not isinstance(max_norm, (int, float)) or not math.isfinite(max_norm):
            raise ValueError(f"max_norm must be a positive number, got {max_norm!r}")
        if max_norm <= 0:
            raise ValueError(f"max_norm must be > 0, got {max_norm}")
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
            raise TypeError(f"dim must be an integer axis, got {type(dim).__name__} {dim!r}")
        self.max_norm, self.dim = float(max_norm), int(dim)

    def bind(self, param: torch.Tensor, name: str) -> Callable[[], None]:
        if not -param.dim() <= self.dim < param.dim():
            raise ValueError(f"MaxNorm for {name}: dim {self.dim} is out of range for shape {tuple(param.shape)}")

        @torch.no_grad()
        def apply() -> None:
            norm = param.norm(dim=self.dim, keepdim=True)
            param.mul_((self.max_norm / norm.clamp_min(1e-12)).clamp(max=1.0))

        return apply

    def config(self) -> dict[str, Any]:
        return {"type": "MaxNorm", "max_norm": self.max_norm, "dim": self.dim}

    def __repr__(self) -> str:
        return f"MaxNorm({self.max_norm!r}, dim={self.dim})"
