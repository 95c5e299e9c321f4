"""Weight statistics: size and sparsity of the couplings W_1 … W_L (data-independent monitors).

norm = sqrt(Σ_i ‖W_i‖_F²),      sparsity = fraction of entries with |W| < tol · max|W|.
"""

from __future__ import annotations

from typing import Any

import torch

from ._common import as_float, check_model


@torch.no_grad()
def weight_norm(model: Any, data: Any = None) -> float:
    """Frobenius norm of all coupling matrices together; ``data`` is ignored (metric signature)."""
    model = check_model(model)
    return as_float(torch.sqrt(sum((w.detach() ** 2).sum() for w in model.weights)))


@torch.no_grad()
def weight_sparsity(model: Any, data: Any = None, tol: float = 0.01) -> float:
    """Fraction of coupling entries with |W| < ``tol`` · max |W| (1.0 when all weights are zero)."""
    model = check_model(model)
    if not (isinstance(tol, (int, float)) and 0 <= tol < 1):
        raise ValueError(f"tol must be a number in [0, 1), got {tol!r}")
    flat = torch.cat([w.detach().abs().flatten() for w in model.weights])
    top = flat.max()
    if top == 0:
        return 1.0
    return as_float((flat < tol * top).to(torch.float64).mean())
