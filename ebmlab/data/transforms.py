"""Elementwise and per-column transforms; each accepts numpy or torch input and returns torch.

Floating inputs keep their dtype; integer and bool inputs become float32 (``one_hot`` always
returns float32).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np
import torch

from ._validate import as_float, check_finite, check_int, seeded_generator, to_tensor

ArrayLike = torch.Tensor | np.ndarray


def threshold(x: ArrayLike, t: float = 0.5) -> torch.Tensor:
    """Deterministic binarization: ``1`` where ``x > t``, else ``0``.

    ``t`` must be a finite number within the range [min x, max x] of non-constant data: outside
    it every entry would become the same value (a NaN threshold would silently give all zeros).
    """
    x = as_float(to_tensor(x, "x"))
    check_finite(x, "x")
    return (x > check_threshold(x, t, "t")).to(x.dtype)


def check_threshold(x: torch.Tensor, t: object, arg: str) -> float:
    """A finite threshold inside the range of ``x`` (unless ``x`` is empty or constant)."""
    if isinstance(t, (bool, np.bool_)) or not isinstance(t, numbers.Real):
        raise TypeError(f"{arg} must be a number, got {type(t).__name__} {t!r}")
    t = float(t)
    if not math.isfinite(t):
        raise ValueError(f"{arg} must be a finite number, got {t}")
    if x.numel():
        lo, hi = float(x.min()), float(x.max())
        if lo < hi and not lo <= t <= hi:
            every = 0 if t > hi else 1
            raise ValueError(
                f"{arg}={t:g} lies outside the data's range [{lo:g}, {hi:g}]: every entry would become {every}"
            )
    return t


def stochastic_binarize(
    x: ArrayLike, generator: torch.Generator | None = None, seed: int | None = None
) -> torch.Tensor:
    """Sample ``b ~ Bernoulli(p=x)`` elementwise; ``x`` must lie in ``[0, 1]``.

    Randomness comes from ``generator``, or a new generator seeded with ``seed``, or torch's
    global generator when both are ``None``.
    """
    x = as_float(to_tensor(x, "x"))
    if generator is not None and seed is not None:
        raise ValueError("pass either generator or seed to stochastic_binarize, not both")
    if x.numel() and not (bool((x >= 0).all()) and bool((x <= 1).all())):
        raise ValueError(
            "x must be probabilities in [0, 1] for stochastic_binarize, got values in "
            f"[{x.min().item()}, {x.max().item()}]"
        )
    if seed is not None:
        generator = seeded_generator(seed, x.device)
    return torch.bernoulli(x, generator=generator)


def scale01(x: ArrayLike) -> torch.Tensor:
    """Min-max scale the whole array: ``(x - min) / (max - min)``; a constant array maps to 0."""
    x = as_float(to_tensor(x, "x"))
    check_finite(x, "x")
    if x.numel() == 0:
        return x.clone()
    lo, hi = x.min(), x.max()
    return (x - lo) / (hi - lo) if hi > lo else torch.zeros_like(x)


def standardize(
    x: ArrayLike, mean: ArrayLike | None = None, std: ArrayLike | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-column standardization ``(x - mean) / std``; returns ``(x_std, mean, std)``.

    ``mean`` and ``std`` (population std, ``correction=0``) are computed from the rows of ``x``
    when not given, e.g. to reuse training statistics on test data. ``std`` is floored at 1e-8.
    """
    x = as_float(to_tensor(x, "x"))
    if x.ndim != 2:
        raise ValueError(f"x must be a 2-D (rows, columns) matrix, got shape {tuple(x.shape)}")
    check_finite(x, "x")
    if (mean is None or std is None) and x.shape[0] == 0:
        raise ValueError("x must have at least one row to compute mean and std")
    mean = x.mean(dim=0) if mean is None else _column_stat(mean, "mean", x)
    std = x.std(dim=0, correction=0) if std is None else _column_stat(std, "std", x)
    std = std.clamp_min(1e-8)
    return (x - mean) / std, mean, std


def _column_stat(value: ArrayLike, arg: str, x: torch.Tensor) -> torch.Tensor:
    """Return a given per-column statistic as a ``(columns,)`` tensor matching ``x``."""
    stat = to_tensor(value, arg).to(device=x.device, dtype=x.dtype)
    if stat.shape != (x.shape[1],):
        raise ValueError(f"{arg} must have shape ({x.shape[1]},), got {tuple(stat.shape)}")
    check_finite(stat, arg)
    return stat


def one_hot(
    columns: ArrayLike, num_categories: int | Sequence[int] | None = None
) -> torch.Tensor:
    """Encode an integer categorical matrix ``(rows, cols)`` as concatenated one-hot blocks.

    Column ``j`` with ``K_j`` categories becomes a block of ``K_j`` indicator columns, so the
    result has shape ``(rows, sum_j K_j)`` (float32). ``num_categories`` is one int for all
    columns, one int per column, or ``None`` to use ``max + 1`` of each column. A 1-D input is a
    single column.
    """
    values = to_tensor(columns, "columns")
    if values.ndim == 1:
        values = values.unsqueeze(1)
    if values.ndim != 2:
        raise ValueError(f"columns must be a 2-D (rows, cols) matrix, got shape {tuple(values.shape)}")
    check_finite(values, "columns")
    if values.is_floating_point() and not bool((values == values.round()).all()):
        raise ValueError("columns must hold integer category indices, got non-integer values")
    values = values.to(torch.int64)
    if values.numel() and bool((values < 0).any()):
        raise ValueError("columns must hold non-negative category indices, got negative values")
    sizes = _category_sizes(values, num_categories)
    blocks = [
        torch.nn.functional.one_hot(values[:, j], size) for j, size in enumerate(sizes)
    ]
    return torch.cat(blocks, dim=1).to(torch.float32)


def _category_sizes(values: torch.Tensor, num_categories: int | Sequence[int] | None) -> list[int]:
    """Resolve ``num_categories`` to one size per column, checking each covers the column's max."""
    cols = values.shape[1]
    if num_categories is None:
        if values.shape[0] == 0:
            raise ValueError("num_categories must be given when columns has no rows")
        return [int(m) + 1 for m in values.max(dim=0).values.tolist()]
    if isinstance(num_categories, Sequence):
        if len(num_categories) != cols:
            raise ValueError(
                f"num_categories must have one entry per column ({cols}), got {len(num_categories)}"
            )
        sizes = [check_int(k, "num_categories", minimum=1) for k in num_categories]
    else:
        sizes = [check_int(num_categories, "num_categories", minimum=1)] * cols
    if values.shape[0]:
        for j, (size, top) in enumerate(zip(sizes, values.max(dim=0).values.tolist())):
            if top >= size:
                raise ValueError(
                    f"num_categories[{j}]={size} is too small: column {j} contains {top}"
                )
    return sizes
