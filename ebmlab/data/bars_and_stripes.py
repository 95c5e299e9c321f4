"""Bars-and-stripes: binary n x n images whose rows all equal (bars: vertical lines, each column
on or off) or whose columns all equal (stripes: horizontal lines, each row on or off).

There are 2^n stripe patterns and 2^n bar patterns; the all-off and all-on images are both, so
there are 2^(n+1) - 2 distinct patterns. The reference distribution is uniform over them.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ._validate import check_int, seeded_generator, to_tensor
from .dataset import Dataset


def num_patterns(n: int) -> int:
    """Number of distinct n x n bars-and-stripes patterns, ``2^(n+1) - 2``."""
    return 2 ** (check_int(n, "n", minimum=1) + 1) - 2


def bars_and_stripes_patterns(n: int) -> torch.Tensor:
    """All ``2^(n+1) - 2`` distinct patterns as a float32 tensor of shape (patterns, n * n).

    Rows come as: the 2^n stripe patterns (row subset ``k`` sets row ``i`` on when bit ``i`` of
    ``k`` is 1, so all-off first and all-on last), then the bar patterns that are not all-off or
    all-on (column subsets ``k = 1 .. 2^n - 2``).
    """
    n = check_int(n, "n", minimum=1)
    subsets = torch.arange(2**n).unsqueeze(1)
    bits = ((subsets >> torch.arange(n)) & 1).to(torch.float32)
    stripes = bits.unsqueeze(2).expand(-1, n, n)
    bars = bits[1:-1].unsqueeze(1).expand(-1, n, n)
    return torch.cat([stripes, bars]).reshape(-1, n * n).contiguous()


def bars_and_stripes(n: int, rows: int, seed: int = 0) -> Dataset:
    """A Dataset of ``rows`` patterns drawn uniformly (with replacement) from the distinct ones."""
    rows = check_int(rows, "rows", minimum=1)
    patterns = bars_and_stripes_patterns(n)
    pick = torch.randint(len(patterns), (rows,), generator=seeded_generator(seed))
    return Dataset(patterns[pick], None, (n, n), f"bars-and-stripes-{n}")


def bars_and_stripes_log_prob(n: int, x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Exact log-probability of each row of ``x`` (rows, n * n) under the uniform distribution
    over distinct patterns: ``-log(2^(n+1) - 2)`` for a pattern, ``-inf`` otherwise."""
    count = num_patterns(n)
    x = to_tensor(x, "x")
    if x.ndim != 2 or x.shape[1] != n * n:
        raise ValueError(f"x must have shape (rows, {n * n}) for n={n}, got {tuple(x.shape)}")
    images = x.reshape(-1, n, n)
    binary = ((images == 0) | (images == 1)).flatten(1).all(dim=1)
    stripes = (images == images[:, :, :1]).flatten(1).all(dim=1)
    bars = (images == images[:, :1, :]).flatten(1).all(dim=1)
    dtype = x.dtype if x.is_floating_point() else torch.float32
    inside = torch.full((len(x),), -math.log(count), dtype=dtype, device=x.device)
    return torch.where(binary & (stripes | bars), inside, torch.full_like(inside, -math.inf))
