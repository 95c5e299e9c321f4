"""Argument checks and conversions shared by the data modules."""

from __future__ import annotations

import numbers

import numpy as np
import torch


def check_int(value: object, arg: str, minimum: int = 0) -> int:
    """Return ``value`` as an ``int``, requiring an integer (not a bool) that is >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{arg} must be an integer, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{arg} must be >= {minimum}, got {value}")
    return int(value)


def to_tensor(x: object, arg: str) -> torch.Tensor:
    """Return a tensor, numpy array or rectangular nested list as a real-valued tensor.

    Tensors are returned unchanged and numpy arrays share memory when they can; nested lists
    follow torch's default dtypes (Python floats -> float32, ints -> int64).
    """
    if isinstance(x, torch.Tensor):
        tensor = x
    elif isinstance(x, np.ndarray):
        if x.dtype.kind not in "biuf":
            raise TypeError(f"{arg} must hold real numbers, got a numpy array of dtype {x.dtype}")
        native = x.dtype.newbyteorder("=")
        tensor = torch.from_numpy(np.require(x, dtype=native, requirements=["C", "W"]))
    elif isinstance(x, (list, tuple)):
        try:
            tensor = torch.tensor(x)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(f"{arg} must be a rectangular nested list of numbers ({exc})") from exc
    else:
        raise TypeError(
            f"{arg} must be a torch.Tensor, numpy array or nested list, got {type(x).__name__}"
        )
    if tensor.is_complex():
        raise TypeError(f"{arg} must hold real numbers, got dtype {tensor.dtype}")
    return tensor


def as_float(x: torch.Tensor) -> torch.Tensor:
    """Return ``x`` unchanged when floating point, else cast to float32."""
    return x if x.is_floating_point() else x.to(torch.float32)


def check_finite(x: torch.Tensor, arg: str) -> None:
    """Raise ``ValueError`` when ``x`` has a NaN or infinite entry."""
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{arg} must be finite, but it contains NaN or infinite values")


def seeded_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """Return a ``torch.Generator`` on ``device`` seeded with ``seed`` (a non-negative int)."""
    return torch.Generator(device=device).manual_seed(check_int(seed, "seed"))
