"""Contrastive divergence CD-k (Hinton 2002).

Each batch starts its own chains at the data: the odd hidden layers are drawn from their
conditionals at the positive-phase (mean-field) field (for an RBM, h ~ p(h | v)), then k
block-Gibbs sweeps follow. The surrogate is ⟨F⟩_data − ⟨F_odd⟩_chains (see ``base``).
"""

from __future__ import annotations

from typing import Any

import torch

from ...model import BoltzmannMachine
from ._fast import FastRBM, is_bernoulli_rbm
from .base import Method, check_int, model_free_energy, positive_phase


class CD(Method):
    """CD-k: ``k`` Gibbs sweeps from the batch; ``mean_field_steps`` bounds the deep positive phase."""

    name = "cd"
    particles_kind = "reconstructions"  # k sweeps from the data batch, not samples of the model

    def __init__(self, k: int = 1, mean_field_steps: int = 50) -> None:
        super().__init__()
        self.k = check_int(k, "k", 1)
        self.mean_field_steps = check_int(mean_field_steps, "mean_field_steps", 1)
        self._fast = FastRBM()

    def loss(self, model: BoltzmannMachine, batch: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        pos, states = positive_phase(model, batch, self.mean_field_steps)
        with torch.no_grad():
            chains = list(states)
            for i in range(1, model.depth, 2):
                chains[i] = model.layers[i].sample(model._field(states, i), 1.0, generator)
            for _ in range(self.k):
                chains = model._gibbs(chains, 1.0, None, generator)
        self.particles = chains
        return pos.mean() - model_free_energy(model, chains).mean()

    def backward(self, model: BoltzmannMachine, batch: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        if not is_bernoulli_rbm(model):
            return super().backward(model, batch, generator)
        h = self._fast.start(model, batch, generator)
        self.particles = list(self._fast.sweeps(model, batch, h, self.k, 1.0, generator, fuse=False))
        return self._fast.gradient(model)

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "k": self.k, "mean_field_steps": self.mean_field_steps}
