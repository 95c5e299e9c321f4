"""Contrastive divergence CD-k (Hinton 2002).

Each batch starts its own chains at the data: the odd hidden layers are drawn from their
conditionals at the positive-phase (mean-field) field (for an RBM, h ~ p(h | v)), then k
block-Gibbs sweeps follow. The surrogate is ⟨F⟩_data − ⟨F_odd⟩_chains (see ``base``).

``start="noise"`` (CD from noise, Liao et al. 2022) starts the chains instead from the base
distribution, every layer drawn from its own biases (``model.random_states``), so with enough
sweeps (large k) the negative phase approaches samples of the model rather than of the data's
neighbourhood. ``sampler`` replaces block Gibbs, e.g. ``GibbsLangevin(...)`` for Gaussian units.
"""

from __future__ import annotations

from typing import Any

import torch

from ...model import BoltzmannMachine
from ...samplers import Sampler, get_sampler
from ._fast import FastRBM, is_bernoulli_rbm
from .base import Method, check_int, model_free_energy, positive_phase


class CD(Method):
    """CD-k: ``k`` sweeps from the batch (``start="data"``) or from noise (``start="noise"``).

    ``mean_field_steps`` bounds the deep positive phase; ``sampler`` defaults to block Gibbs.
    """

    name = "cd"
    particles_kind = "reconstructions"  # k sweeps from the data batch, not samples of the model

    def __init__(
        self, k: int = 1, mean_field_steps: int = 50, start: str = "data", sampler: Sampler | None = None
    ) -> None:
        super().__init__()
        self.k = check_int(k, "k", 1)
        self.mean_field_steps = check_int(mean_field_steps, "mean_field_steps", 1)
        if start not in ("data", "noise"):
            raise ValueError(f"start must be 'data' or 'noise', got {start!r}")
        self.start = start
        self.sampler = get_sampler(sampler)
        self._custom_sampler = sampler is not None
        self._fast = FastRBM()
        # (rows, start, stop): the batch is rows start:stop of a global batch (set by data-parallel training)
        self.noise_rows: tuple[int, int, int] | None = None

    def fast_path(self, model: BoltzmannMachine) -> bool:
        """True when ``backward`` takes the analytic Bernoulli-RBM route (which honours ``noise_rows``)."""
        return is_bernoulli_rbm(model) and self.start == "data" and not self._custom_sampler

    def loss(self, model: BoltzmannMachine, batch: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        pos, states = positive_phase(model, batch, self.mean_field_steps)
        with torch.no_grad():
            if self.start == "noise":
                chains = model.random_states(batch.shape[0], generator)
            else:
                chains = list(states)
                for i in range(1, model.depth, 2):
                    chains[i] = model.layers[i].sample(model._field(states, i), 1.0, generator)
            for _ in range(self.k):
                chains = self.sampler.sweep(model, chains, 1.0, None, generator)
        self.particles = chains
        return pos.mean() - model_free_energy(model, chains).mean()

    def backward(self, model: BoltzmannMachine, batch: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        if not self.fast_path(model):
            return super().backward(model, batch, generator)
        self._fast.shard = self.noise_rows
        h = self._fast.start(model, batch, generator)
        self.particles = list(self._fast.sweeps(model, batch, h, self.k, 1.0, generator, fuse=False))
        return self._fast.gradient(model)

    def metrics(self) -> dict[str, float]:
        return self.sampler.metrics()

    def config(self) -> dict[str, Any]:
        out = {"name": self.name, "k": self.k, "mean_field_steps": self.mean_field_steps}
        if self.start != "data":
            out["start"] = self.start
        if self._custom_sampler:
            out["sampler"] = self.sampler.config()
        return out
