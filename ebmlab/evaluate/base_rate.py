"""The base-rate model: independent visible units fit to data, the β = 0 end of the annealing paths.

Salakhutdinov & Murray (2008): Bernoulli biases logit(mean), one-hot log-frequencies, Gaussian
mean/variance, so H_base has the same form as the model's visible energy H_0, and the mixed energy
(1 − β) H_base + β H_0 of every intermediate model is again of that form.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from ..layers import BernoulliLayer, GaussianLayer, Layer, OneHotLayer


class BaseRate:
    """Independent visible units fit to data: the β = 0 end of the AIS path.

    ``layer`` is a copy of the model's visible layer with ``init_from_data(data)`` applied (or the
    model's own visible parameters when ``data`` is None), so H_base has the same form as H_0.
    """

    def __init__(self, visible: Layer, data: torch.Tensor | None) -> None:
        self.layer = copy.deepcopy(visible)
        if data is not None:
            self.layer.init_from_data(data)
        self.target = visible

    def log_partition(self) -> float:
        """log Σ_v exp(−H_base(v))."""
        return float(self.layer.log_partition(self.layer.zero_field(1)).to(torch.float64)[0])

    def sample(self, rows: int, generator: torch.Generator | None) -> torch.Tensor:
        return self.layer.random(rows, generator)

    def energy_gap(self, v: torch.Tensor) -> torch.Tensor:
        """H_0(v) − H_base(v) in float64: the slope of the visible energy along the path."""
        return (self.target.energy(v) - self.layer.energy(v)).to(torch.float64)

    def mixed_sample(self, field: torch.Tensor, beta: float, generator: torch.Generator | None) -> torch.Tensor:
        """v ~ exp(−(1 − β) H_base(v) − β H_0(v) + β fᵀr(v)) / Z."""
        layer, base = self.target, self.layer
        if isinstance(layer, (BernoulliLayer, OneHotLayer)):
            # linear energies −bᵀv: the mixture is the target layer with bias shifted by (1 − β)(b_base − b)
            return layer.sample(beta * field + (1 - beta) * (base.bias - layer.bias), 1.0, generator)
        if isinstance(layer, GaussianLayer):
            # precision λ = (1 − β)/σ_B² + β/σ², mean ((1 − β)μ_B/σ_B² + β(μ + f)/σ²)/λ
            precision = (1 - beta) / base.var + beta / layer.var
            mean = ((1 - beta) * base.loc / base.var + beta * (layer.loc + field) / layer.var) / precision
            noise = torch.randn(field.shape, dtype=field.dtype, device=field.device, generator=generator)
            return mean + noise / precision.sqrt()
        raise TypeError(f"AIS does not know how to anneal visible layer {layer.label}")


def base_log_partition(model: Any, base: BaseRate) -> float:
    """log Z_0 = log Z_base + Σ_{i≥1} log Z_i(0): the β = 0 model's visible base rates and free hidden layers."""
    return base.log_partition() + sum(
        float(layer.log_partition(layer.zero_field(1)).to(torch.float64)[0]) for layer in model.layers[1:]
    )
