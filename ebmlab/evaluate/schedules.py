"""Inverse-temperature schedules 0 = β_0 < β_1 < … < β_K = 1 for annealed importance sampling.

- ``sm2008()``: Salakhutdinov & Murray (2008), "On the quantitative analysis of deep belief
  networks": β from 0 to 0.5 in steps of 1e-3, 0.5 to 0.9 in steps of 1e-4, 0.9 to 1 in steps of
  1e-5 — 14,500 transitions, spending most of them near β = 1 where the distribution changes most.
- ``"moderate"`` (2,900 transitions) and ``"fast"`` (725): the same shape with steps 5× and 20×
  larger.
- ``linear(n)``: n equal steps. ``sigmoid(n, delta=4)``: Grosse, Maddison & Salakhutdinov (2013),
  β̃_t = σ(δ(2t/n − 1)), rescaled to start at 0 and end at 1.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .._checks import check_positive_int


def _piecewise(step0: float, step1: float, step2: float) -> torch.Tensor:
    counts = (round(0.5 / step0), round(0.4 / step1), round(0.1 / step2))
    parts = [
        np.linspace(0.0, 0.5, counts[0] + 1)[:-1],
        np.linspace(0.5, 0.9, counts[1] + 1)[:-1],
        np.linspace(0.9, 1.0, counts[2] + 1),
    ]
    return torch.from_numpy(np.concatenate(parts))


def sm2008() -> torch.Tensor:
    """Salakhutdinov–Murray 2008: steps 1e-3 / 1e-4 / 1e-5 on [0, .5] / [.5, .9] / [.9, 1] (14,501 values)."""
    return _piecewise(1e-3, 1e-4, 1e-5)


def moderate() -> torch.Tensor:
    """The S&M shape with 5× larger steps: 2,900 transitions."""
    return _piecewise(5e-3, 5e-4, 5e-5)


def fast() -> torch.Tensor:
    """The S&M shape with 20× larger steps: 725 transitions."""
    return _piecewise(2e-2, 2e-3, 2e-4)


def linear(n: int) -> torch.Tensor:
    """n equal steps from 0 to 1 (n + 1 values)."""
    n = check_positive_int(n, "n")
    return torch.linspace(0.0, 1.0, n + 1, dtype=torch.float64)


def sigmoid(n: int, delta: float = 4.0) -> torch.Tensor:
    """Grosse et al. (2013) sigmoid schedule with n steps: denser at both ends (n + 1 values)."""
    n = check_positive_int(n, "n")
    if not (isinstance(delta, (int, float)) and delta > 0):
        raise ValueError(f"delta must be a positive number, got {delta!r}")
    s = torch.sigmoid(delta * (2 * torch.arange(n + 1, dtype=torch.float64) / n - 1))
    return (s - s[0]) / (s[-1] - s[0])


PRESETS = {"sm2008": sm2008, "moderate": moderate, "fast": fast}


def get_schedule(betas: Any) -> torch.Tensor:
    """A preset name (``"sm2008"``, ``"moderate"``, ``"fast"``) or a sequence of β: validated float64 tensor.

    An explicit sequence must start at 0, end at 1 and be non-decreasing.
    """
    if isinstance(betas, str):
        if betas not in PRESETS:
            raise ValueError(f"betas must be one of {sorted(PRESETS)} or a sequence of numbers, got {betas!r}")
        return PRESETS[betas]()
    try:
        b = torch.as_tensor(np.asarray(betas, dtype=np.float64))
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"betas must be a preset name or a 1-D sequence of numbers, got {type(betas).__name__}"
        ) from err
    if b.dim() != 1 or b.shape[0] < 2:
        raise ValueError(f"betas must be a 1-D sequence of at least 2 values, got shape {tuple(b.shape)}")
    if b[0] != 0 or b[-1] != 1 or (b.diff() < 0).any():
        raise ValueError("betas must start at 0, end at 1 and never decrease")
    return b
