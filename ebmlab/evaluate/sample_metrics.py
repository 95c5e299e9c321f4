"""Two-sample metrics between data x ~ P and model samples y ~ Q (fantasy particles).

- Energy distance (Székely & Rizzo), the V-statistic
  D²(P, Q) = 2 E‖X − Y‖ − E‖X − X'‖ − E‖Y − Y'‖ ≥ 0, zero iff P = Q (zero for identical sets).
- k-nearest-neighbour KL estimate (Wang, Kulkarni & Verdú 2009), with ρ_k(i) the distance from
  x_i to its k-th neighbour among the other x's and ν_k(i) to its k-th neighbour among the y's,
  D̂(P‖Q) = (d/n) Σ_i log(ν_k(i)/ρ_k(i)) + log(m/(n − 1)); the reverse KL D̂(Q‖P) swaps roles.
  It assumes densities: for binary data, ties make distances zero, so distances are floored at
  ``eps`` (dequantize, e.g. add uniform noise, for a meaningful value).
- Fréchet distance between Gaussians fit to the raw units (no feature network):
  ‖μ_x − μ_y‖² + Tr(Σ_x + Σ_y − 2(Σ_x^{1/2} Σ_y Σ_x^{1/2})^{1/2}).

All sets are (rows, units) tensors or arrays; computation is in float64. The ``model_*`` forms
are (model, data) -> float metrics drawing fantasy particles with ``BoltzmannMachine.sample``.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .._checks import as_tensor, check_positive_int
from ._common import check_model, visible_rows

MAX_ROWS = 2000


def _float64(x: Any, name: str) -> torch.Tensor:
    """Any tensor or array as a float64 CPU matrix (sample sets may come from any model dtype/device)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().to(torch.float64)
    return as_tensor(x, name, dtype=torch.float64, device=torch.device("cpu"))


def _pair(x: Any, y: Any, max_rows: int | None, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    if max_rows is not None:
        max_rows = check_positive_int(max_rows, "max_rows", minimum=2)
    a, b = (_float64(t, name) for t, name in ((x, "x"), (y, "y")))
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"x and y must have the same number of columns, got {a.shape[1]} and {b.shape[1]}")
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise ValueError(f"x and y need at least 2 rows each, got {a.shape[0]} and {b.shape[0]}")
    if max_rows is not None:
        g = torch.Generator().manual_seed(seed)
        a = a[torch.randperm(a.shape[0], generator=g)[:max_rows]]
        b = b[torch.randperm(b.shape[0], generator=g)[:max_rows]]
    return a, b


def energy_distance(x: Any, y: Any, max_rows: int | None = MAX_ROWS, seed: int = 0) -> float:
    """Squared energy distance 2E‖X−Y‖ − E‖X−X'‖ − E‖Y−Y'‖ (V-statistic; ≥ 0, 0 for identical sets).

    Sets larger than ``max_rows`` are subsampled (seeded) to bound the O(n²) cost.
    """
    a, b = _pair(x, y, max_rows, seed)
    return float(2 * torch.cdist(a, b).mean() - torch.cdist(a, a).mean() - torch.cdist(b, b).mean())


def knn_kl(x: Any, y: Any, k: int = 1, eps: float = 1e-10, max_rows: int | None = MAX_ROWS, seed: int = 0) -> float:
    """k-NN estimate of KL(P‖Q) from x ~ P and y ~ Q (Wang, Kulkarni & Verdú 2009)."""
    k = check_positive_int(k, "k")
    if isinstance(eps, bool) or not (isinstance(eps, (int, float)) and 0 < eps < math.inf):
        raise ValueError(f"eps must be a positive finite distance floor, got {eps!r}")
    a, b = _pair(x, y, max_rows, seed)
    n, m, d = a.shape[0], b.shape[0], a.shape[1]
    if k >= n or k > m:
        raise ValueError(f"k must be below the number of rows of x ({n}) and at most that of y ({m}), got {k}")
    within = torch.cdist(a, a)
    within.fill_diagonal_(math.inf)
    rho = within.kthvalue(k, dim=1).values.clamp_min(eps)
    nu = torch.cdist(a, b).kthvalue(k, dim=1).values.clamp_min(eps)
    return float(d * torch.log(nu / rho).mean() + math.log(m / (n - 1)))


def knn_reverse_kl(
    x: Any, y: Any, k: int = 1, eps: float = 1e-10, max_rows: int | None = MAX_ROWS, seed: int = 0
) -> float:
    """k-NN estimate of KL(Q‖P) (x ~ P data, y ~ Q model): mode-seeking counterpart of ``knn_kl``."""
    return knn_kl(y, x, k, eps, max_rows, seed)


def _sqrtm_psd(s: torch.Tensor) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh(s)
    return (vecs * vals.clamp_min(0).sqrt()) @ vecs.T


def frechet_distance(x: Any, y: Any) -> float:
    """‖μ_x − μ_y‖² + Tr(Σ_x + Σ_y − 2(Σ_x^{1/2} Σ_y Σ_x^{1/2})^{1/2}) on the raw units."""
    a, b = _pair(x, y, None, 0)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T).reshape(a.shape[1], -1), torch.cov(b.T).reshape(b.shape[1], -1)
    root = _sqrtm_psd(cov_a)
    cross = torch.linalg.eigvalsh(root @ cov_b @ root).clamp_min(0).sqrt().sum()
    return float(((mu_a - mu_b) ** 2).sum() + cov_a.trace() + cov_b.trace() - 2 * cross)


def fantasy_particles(model: Any, rows: int, steps: int = 100, seed: int = 0) -> torch.Tensor:
    """Visible states of ``rows`` Gibbs chains run ``steps`` sweeps from the layer biases."""
    return check_model(model).sample(rows, steps=steps, seed=seed)[0]


def _model_metric(fn: Any, model: Any, data: Any, max_rows: int, steps: int, seed: int) -> float:
    max_rows = check_positive_int(max_rows, "max_rows", minimum=2)
    x = visible_rows(check_model(model), data, "data", minimum=2)[:max_rows]
    return fn(x, fantasy_particles(model, x.shape[0], steps, seed))


def model_energy_distance(model: Any, data: Any, max_rows: int = 500, steps: int = 100, seed: int = 0) -> float:
    """Energy distance between (up to ``max_rows``) data rows and as many fantasy particles."""
    return _model_metric(energy_distance, model, data, max_rows, steps, seed)


def model_knn_kl(model: Any, data: Any, max_rows: int = 500, steps: int = 100, seed: int = 0) -> float:
    """k-NN KL(data ‖ model) against fantasy particles."""
    return _model_metric(knn_kl, model, data, max_rows, steps, seed)


def model_knn_reverse_kl(model: Any, data: Any, max_rows: int = 500, steps: int = 100, seed: int = 0) -> float:
    """k-NN KL(model ‖ data) against fantasy particles."""
    return _model_metric(knn_reverse_kl, model, data, max_rows, steps, seed)


def model_frechet_distance(model: Any, data: Any, max_rows: int = 500, steps: int = 100, seed: int = 0) -> float:
    """Fréchet distance on raw units between data rows and fantasy particles."""
    return _model_metric(frechet_distance, model, data, max_rows, steps, seed)
