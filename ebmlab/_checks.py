"""Input validation shared by the public entry points.

Every check raises ``ValueError`` or ``TypeError`` whose message names the argument and
what was expected, so that users never see a deep torch traceback for bad input.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

Beta = float | torch.Tensor


def as_tensor(
    x: Any,
    name: str,
    *,
    dtype: torch.dtype,
    device: torch.device,
    ndim: int | None = 2,
    allow_nan: bool = False,
) -> torch.Tensor:
    """Convert ``x`` (tensor, numpy array, nested list, xarray) to a tensor of ``dtype`` on ``device``.

    numpy arrays, lists and integer/bool tensors are cast silently; a floating tensor of another
    dtype or a tensor on another device is refused, so precision and placement never change
    behind the user's back.
    """
    if hasattr(x, "data") and hasattr(x, "dims") and not isinstance(x, torch.Tensor):
        x = np.asarray(x)  # xarray.DataArray
    elif hasattr(x, "data") and isinstance(x.data, torch.Tensor):
        x = x.data  # ebmlab.data.Dataset
    if isinstance(x, torch.Tensor):
        if x.device.type != device.type:
            raise ValueError(
                f"{name} is on device {x.device}, but the model is on {device}; move it with {name}.to({str(device)!r})"
            )
        if x.is_floating_point() and x.dtype != dtype:
            raise TypeError(
                f"{name} has dtype {x.dtype}, but the model uses {dtype}; "
                f"convert it with {name}.to({dtype}) or the model with model.to({x.dtype})"
            )
        t = x.to(dtype=dtype, device=device)
    else:
        try:
            arr = np.asarray(x)
        except (TypeError, ValueError) as err:
            raise TypeError(f"{name} must be a tensor or array, got {type(x).__name__}") from err
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            raise TypeError(f"{name} must hold numbers, got an array of dtype {arr.dtype}")
        t = torch.as_tensor(arr.astype(np.float64, copy=False), device=device).to(dtype)
    if ndim is not None and t.dim() != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {tuple(t.shape)}")
    if not allow_nan and not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or Inf values")
    return t


def check_width(x: torch.Tensor, n: int, name: str, what: str) -> None:
    """Refuse a batch whose number of columns differs from the ``n`` units of ``what``."""
    if x.shape[-1] != n:
        raise ValueError(f"{name} has {x.shape[-1]} columns, but {what} has {n} units")


def check_beta(beta: Any, rows: int, dtype: torch.dtype, device: torch.device) -> Beta:
    """Inverse temperature: a positive float, or a tensor of one positive value per row."""
    if isinstance(beta, (int, float)) and not isinstance(beta, bool):
        if not np.isfinite(beta) or beta <= 0:
            raise ValueError(f"beta must be a positive finite number, got {beta}")
        return float(beta)
    b = torch.as_tensor(beta, dtype=dtype, device=device)
    if b.dim() == 0:
        return check_beta(float(b), rows, dtype, device)
    if b.dim() != 1 or b.shape[0] != rows:
        raise ValueError(
            f"beta must be a number or a 1-D tensor with one value per row ({rows}), got shape {tuple(b.shape)}"
        )
    if not (torch.isfinite(b).all() and (b > 0).all()):
        raise ValueError("beta must be positive and finite in every row")
    return b


def check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """An integer ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)
