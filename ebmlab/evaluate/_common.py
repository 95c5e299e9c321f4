"""Helpers shared by the evaluation metrics: input checks, row chunking, estimates with a standard error."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from .._checks import check_positive_int, check_rows
from ..layers import BernoulliLayer, OneHotLayer
from ..model import BoltzmannMachine


def check_model(model: Any, name: str = "model") -> BoltzmannMachine:
    """Refuse anything that is not an ebmlab ``BoltzmannMachine``."""
    if not isinstance(model, BoltzmannMachine):
        raise TypeError(f"{name} must be an ebmlab BoltzmannMachine, got {type(model).__name__}")
    return model


def visible_rows(model: BoltzmannMachine, v: Any, name: str = "v", minimum: int = 1) -> torch.Tensor:
    """Validated visible rows, at least ``minimum`` of them: an average over no rows is NaN, not a number."""
    return check_rows(model._visible(v, name), name, minimum)


def is_discrete(layer: Any) -> bool:
    """True for layers whose states can be enumerated (Bernoulli, OneHot)."""
    return isinstance(layer, (BernoulliLayer, OneHotLayer))


def row_chunks(rows: int, chunk: int) -> Iterator[slice]:
    """Consecutive slices of at most ``chunk`` rows covering ``range(rows)``."""
    chunk = check_positive_int(chunk, "chunk")
    for start in range(0, rows, chunk):
        yield slice(start, min(start + chunk, rows))


def as_float(x: torch.Tensor) -> float:
    """A scalar tensor as a Python float."""
    return float(x.detach().to(torch.float64).cpu())


class Estimate(float):
    """A metric value that carries its standard error: ``float(x)`` is the estimate, ``x.stderr`` its
    standard error. It is a ``float``, so ``(model, data) -> float`` callers need no change; the
    Trainer records ``x.stderr`` as ``<name>_stderr`` beside ``<name>`` (NaN: unknown)."""

    stderr: float

    def __new__(cls, value: float, stderr: float = float("nan")) -> Estimate:
        obj = super().__new__(cls, value)
        obj.stderr = float(stderr)
        return obj

    def __repr__(self) -> str:
        return f"Estimate({float(self)!r}, stderr={self.stderr!r})"
