"""Reconstruction error: how well one deterministic up–down pass reproduces the data.

    err = mean over rows and visible units of (v − E[v | m])²,   m = E[h | v]

For an RBM m = E[h_1 | v] exactly; for a deeper stack m are the mean-field magnetizations of the
hidden layers with v clamped, and only h_1 feeds back to v. A cheap training monitor, not a
likelihood: a model can reconstruct well and still have a poor p(v).
"""

from __future__ import annotations

from typing import Any

import torch

from .._checks import check_positive_int
from ._common import as_float, check_model, visible_rows


@torch.no_grad()
def reconstruction_error(model: Any, v: Any, steps: int = 10) -> float:
    """Mean squared error of v against E[v | E[h | v]], averaged over rows and visible units.

    ``steps`` mean-field iterations are used for deep stacks (an RBM needs none).
    """
    model = check_model(model)
    x = visible_rows(model, v)
    states = model._mean_field(x, check_positive_int(steps, "steps"), 1e-6)
    recon = model.layers[0].mean(model._field(states, 0))
    return as_float(((x - recon) ** 2).mean())
