"""Seeded mini-batch iteration over the rows of a matrix."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from ._validate import check_int, seeded_generator, to_tensor


def batches(
    x: torch.Tensor | np.ndarray,
    batch_size: int,
    seed: int = 0,
    shuffle: bool = True,
    drop_last: bool = False,
) -> Iterator[torch.Tensor]:
    """Iterate once (one epoch) over the rows of ``x`` in mini-batches of ``batch_size`` rows.

    With ``shuffle`` the row order is ``torch.randperm(len(x))`` drawn from a CPU
    ``torch.Generator`` seeded with ``seed``, so equal seeds give equal batches; every row
    appears exactly once per epoch. The last batch is smaller unless ``drop_last`` drops it.
    """
    x = to_tensor(x, "x")
    if x.ndim < 1:
        raise ValueError(f"x must have at least one dimension (rows), got shape {tuple(x.shape)}")
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    rows = x.shape[0]
    order = torch.randperm(rows, generator=seeded_generator(seed)) if shuffle else None
    stop = rows - rows % batch_size if drop_last else rows
    return _iterate(x, order, batch_size, stop)


def _iterate(
    x: torch.Tensor, order: torch.Tensor | None, batch_size: int, stop: int
) -> Iterator[torch.Tensor]:
    """Yield ``x[order[i:i + batch_size]]`` (or contiguous slices without ``order``) up to ``stop``."""
    if order is not None:
        order = order.to(x.device)
    for start in range(0, stop, batch_size):
        end = min(start + batch_size, stop)
        yield x[start:end] if order is None else x[order[start:end]]
