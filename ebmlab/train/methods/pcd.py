"""Persistent contrastive divergence PCD-k (Tieleman 2008), optionally driven.

``chains`` Markov chains (their number need not equal the batch size) start from the layers'
own biases and are kept between batches; each batch advances them k block-Gibbs sweeps and uses
their states in the negative phase, ⟨F⟩_data − ⟨F_odd⟩_chains (see ``base``).

With ``beta_std > 0`` the chains are *driven*: each runs at its own inverse temperature β_c from
the autoregressive gamma process of ``driven`` (mean 1, std ``beta_std``, lag-one correlation
``beta_correlation``), advanced once per batch, as in Paysage's DrivenSequentialMC; the states
enter the negative phase as they are (at β = 1). ``sampler`` replaces block Gibbs (e.g.
``GibbsLangevin(...)`` for Gaussian units).
"""

from __future__ import annotations

from typing import Any

import torch

from ..._checks import Beta, check_allocation
from ...model import BoltzmannMachine, States
from ...samplers import Sampler, get_sampler
from ._fast import FastRBM, is_bernoulli_rbm
from .base import Method, check_int, model_free_energy, positive_phase
from .driven import GammaProcess


class PCD(Method):
    """PCD-k with ``chains`` persistent chains; ``beta_std > 0`` drives them at random temperatures."""

    name = "pcd"
    particles_kind = "persistent chains"

    def __init__(
        self,
        k: int = 1,
        chains: int = 100,
        beta_std: float = 0.0,
        beta_correlation: float = 0.9,
        mean_field_steps: int = 50,
        sampler: Sampler | None = None,
    ) -> None:
        super().__init__()
        self.k = check_int(k, "k", 1)
        self.chains = check_int(chains, "chains", 1)
        self.sampler = get_sampler(sampler)
        self._custom_sampler = sampler is not None
        if isinstance(beta_std, bool) or not (isinstance(beta_std, (int, float)) and 0 <= beta_std < float("inf")):
            raise ValueError(f"beta_std must be a number >= 0 (0: no driving), got {beta_std!r}")
        self.beta_std = float(beta_std)
        self.driver = GammaProcess(self.chains, beta_std, beta_correlation) if beta_std > 0 else None
        self.beta_correlation = float(beta_correlation)
        self.mean_field_steps = check_int(mean_field_steps, "mean_field_steps", 1)
        self._fast = FastRBM()

    def _start(self, model: BoltzmannMachine, generator: torch.Generator | None) -> tuple[States, Beta]:
        """The current chains (fresh ones when absent or not matching the model) and this batch's β."""
        p = self.particles
        stale = p is None or [s.shape[1] for s in p] != model.sizes or p[0].dtype != model.dtype
        if stale or p[0].device != model.device:
            units = sum(model.sizes)
            nbytes = 2 * self.chains * units * model.weights[0].element_size()
            check_allocation(nbytes, "chains", f"{self.chains} chains of {units} units", model.device)
            with torch.no_grad():
                p = model.random_states(self.chains, generator)
        beta = 1.0 if self.driver is None else self.driver.step(model.dtype, model.device, generator)
        return p, beta

    def loss(self, model: BoltzmannMachine, batch: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        pos, _ = positive_phase(model, batch, self.mean_field_steps)
        chains, beta = self._start(model, generator)
        with torch.no_grad():
            for _ in range(self.k):
                chains = self.sampler.sweep(model, chains, beta, None, generator)
        self.particles = chains
        return pos.mean() - model_free_energy(model, chains).mean()

    def backward(self, model: BoltzmannMachine, batch: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        if not is_bernoulli_rbm(model) or self._custom_sampler:
            return super().backward(model, batch, generator)
        chains, beta = self._start(model, generator)
        self.particles = list(self._fast.sweeps(model, batch, chains[1], self.k, beta, generator, fuse=True))
        return self._fast.gradient(model)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["particles"] = None if self.particles is None else [s.clone() for s in self.particles]
        if self.driver is not None:
            state["beta"] = self.driver.state_dict()["beta"]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        particles = state.get("particles")
        if particles is not None:
            if len(particles) < 2 or any(s.shape[0] != self.chains for s in particles):
                raise ValueError(f"state holds chains that do not match chains={self.chains}")
            particles = [s.clone() for s in particles]
        self.particles = particles
        if self.driver is not None:
            self.driver.load_state_dict({"beta": state.get("beta")})

    def reset(self) -> None:
        super().reset()
        if self.driver is not None:
            self.driver.beta = None

    def metrics(self) -> dict[str, float]:
        if self.driver is None or self.driver.beta is None:
            return self.sampler.metrics()
        return {"beta_mean": float(self.driver.beta.mean()), **self.sampler.metrics()}

    def config(self) -> dict[str, Any]:
        extra = {"sampler": self.sampler.config()} if self._custom_sampler else {}
        return {
            **extra,
            "name": self.name,
            "k": self.k,
            "chains": self.chains,
            "beta_std": self.beta_std,
            "beta_correlation": self.beta_correlation,
            "mean_field_steps": self.mean_field_steps,
        }
