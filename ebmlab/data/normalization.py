"""Affine normalization of visible units, x̃ = (x − m) / s, and its inverse x = s·x̃ + m.

``global`` (the default, as in Liao et al. 2022 for MNIST: m = 0.1307, s = 0.3081 on [0, 1]
pixels) uses one mean and one standard deviation for every unit, so all pixels share a scale and
constant border pixels stay constant instead of blowing up; ``per_feature`` uses one per column
(z-scores). The record ``{"mean", "std", "per_feature"}`` (floats or lists of floats) is JSON-able:
a ``Dataset`` carries it as ``normalization``, the run history stores it in its attrs, and
``denormalize(x, record)`` maps model samples back to pixels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ._validate import as_float, check_finite, to_tensor

STD_FLOOR = 1e-8


def statistics(
    x: torch.Tensor, mean: Any = None, std: Any = None, per_feature: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """(m, s) as tensors broadcastable against ``x`` (0-d when global, (units,) per feature).

    Missing values are computed from ``x`` (population std); s is floored at 1e-8.
    """
    if not isinstance(per_feature, bool):
        raise TypeError(f"per_feature must be True or False, got {per_feature!r}")
    if (mean is None or std is None) and x.shape[0] == 0:
        raise ValueError("data must have at least one row to compute mean and std")
    dims = 0 if per_feature else None
    stats = []
    for arg, value, compute in (
        ("mean", mean, lambda: x.mean(dim=dims) if per_feature else x.mean()),
        ("std", std, lambda: x.std(dim=dims, correction=0) if per_feature else x.std(correction=0)),
    ):
        stats.append(compute() if value is None else _given(value, arg, x, per_feature))
    m, s = stats
    if bool((s <= 0).any()) and std is not None:
        raise ValueError(f"std must be positive, got a minimum of {float(s.min())}")
    return m, s.clamp_min(STD_FLOOR)


def _given(value: Any, arg: str, x: torch.Tensor, per_feature: bool) -> torch.Tensor:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number, list, tuple, np.ndarray, torch.Tensor)):
        raise TypeError(f"{arg} must be a number, a list or an array of numbers, got {type(value).__name__}")
    if isinstance(value, (int, float, np.number)):
        value = np.asarray(value, dtype=float)
    t = as_float(to_tensor(value, arg)).to(device=x.device, dtype=x.dtype)
    shape = (x.shape[1],) if per_feature else ()
    if t.shape != shape and not (per_feature and t.dim() == 0):
        expected = f"a number or shape ({x.shape[1]},)" if per_feature else "a single number (per_feature=False)"
        raise ValueError(f"{arg} must be {expected}, got shape {tuple(t.shape)}")
    check_finite(t, arg)
    return t.expand(shape) if per_feature else t


def record(mean: torch.Tensor, std: torch.Tensor, per_feature: bool) -> dict[str, Any]:
    """The JSON-able normalization record."""
    return {"mean": mean.tolist(), "std": std.tolist(), "per_feature": per_feature}


def compose(outer: dict[str, Any], inner: dict[str, Any] | None) -> dict[str, Any]:
    """The record of normalizing with ``inner`` and then with ``outer``: x = s_i(s_o x̃ + m_o) + m_i."""
    if inner is None:
        return outer
    mi, si = np.asarray(inner["mean"], float), np.asarray(inner["std"], float)
    mo, so = np.asarray(outer["mean"], float), np.asarray(outer["std"], float)
    per_feature = bool(inner["per_feature"] or outer["per_feature"])
    return {"mean": (si * mo + mi).tolist(), "std": (si * so).tolist(), "per_feature": per_feature}


def denormalize(x: Any, normalization: dict[str, Any] | None) -> torch.Tensor:
    """x · s + m for a normalization record (identity for None): model units back to data units."""
    t = as_float(to_tensor(x, "x"))
    if normalization is None:
        return t
    if not isinstance(normalization, dict) or not {"mean", "std"} <= set(normalization):
        raise ValueError(f"normalization must be a record with 'mean' and 'std', got {normalization!r}")
    m = torch.as_tensor(np.asarray(normalization["mean"], float), dtype=t.dtype, device=t.device)
    s = torch.as_tensor(np.asarray(normalization["std"], float), dtype=t.dtype, device=t.device)
    if m.dim() and m.shape[0] != t.shape[-1]:
        raise ValueError(f"x has {t.shape[-1]} columns but the normalization has {m.shape[0]} features")
    return t * s + m
