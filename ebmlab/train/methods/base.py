"""The ``Method`` protocol and the two phases of the surrogate loss shared by sampling methods.

A method turns a data batch into a scalar surrogate loss whose gradient estimates minus the
log-likelihood gradient. With F_odd the free energy with the odd layers summed out exactly
(``model._partial_free_energy(states, 1)``),

    −∂⟨log p(v)⟩_data/∂θ = ⟨∂F(v)/∂θ⟩_data − ⟨∂F_odd(h_even)/∂θ⟩_model,

so the surrogate is  L = ⟨F⟩_data − ⟨F_odd⟩_model  with the model (negative-phase) states detached.

Positive phase (``data_free_energy``):

- RBM (depth 2): F(v) exactly, the hidden layer summed out (no sampling noise).
- Deeper stacks: the mean-field free energy F_MF(v) = min_q ⟨E⟩_q − H(q) over factorized q with
  v clamped. At its minimum q* (magnetizations m from ``model._mean_field``, held fixed), the
  envelope theorem gives ∂F_MF/∂θ = ⟨∂E/∂θ⟩_{q*}. We evaluate this as F_odd(v, m_2, m_4, …): the
  odd layers summed out exactly given the even layers at their means. Its θ-gradient is
  ⟨∂E/∂θ⟩ under p(h_odd | v, m_even), which *is* q* on the odd layers (q*_i is layer i's
  conditional at the mean-field field) — exact for every unit type, including the quadratic
  energy of Gaussian units. On the even hidden layers the energy is evaluated at the means:
  exact for Bernoulli and one-hot units (energy linear in the state); a Gaussian even hidden
  layer misses ⟨H⟩_q − H(m) = Σ_j s_j / (2σ_j²) with q's variance s = σ² held fixed, which we add
  (value n/2, gradient −½ per unit in log σ²). The result is the gradient of the mean-field
  lower bound on log p(v), the standard DBM positive phase (Salakhutdinov & Hinton 2009).

Negative phase (``model_free_energy``): F_odd(h_even) of the detached chain states at β = 1;
since p(h_even) ∝ exp(−F_odd(h_even)), ⟨∂F_odd/∂θ⟩ over equilibrium chains is ∂ log Z/∂θ exactly,
with less variance than the energy of the sampled joint state.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch

from ...layers import GaussianLayer
from ...model import BoltzmannMachine, States
from ...samplers import Sampler


class Method(ABC):
    """A gradient method: ``loss(model, batch, generator)`` is a surrogate whose gradient is the estimate.

    Subclasses set ``name`` and implement ``loss``; they may expose ``particles`` (the latest
    negative-phase states of every layer, detached), ``metrics()``, ``state_dict()`` /
    ``load_state_dict()`` (tensors and plain values only) and ``config()`` (JSON-able settings).
    ``backward`` is what the Trainer calls; a method may override it with a faster route to the
    same gradient.
    """

    name: str = ""
    # what ``particles`` are, for the labels of views and stores (``ebmlab.history.schema``)
    particles_kind: str = "negative-phase states"
    # the transition of the negative-phase chains, for methods that sample (``ebmlab.samplers``)
    sampler: Sampler | None = None

    def __init__(self) -> None:
        self.particles: list[torch.Tensor] | None = None

    @abstractmethod
    def loss(self, model: BoltzmannMachine, batch: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Scalar ⟨F⟩_data − ⟨F⟩_model with model states detached; ``backward()`` gives −∇ log-likelihood."""

    def backward(self, model: BoltzmannMachine, batch: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Accumulate the gradient of ``loss`` into the parameters' ``.grad``; return the loss, detached."""
        loss = self.loss(model, batch, generator)
        loss.backward()
        return loss.detach()

    def metrics(self) -> dict[str, float]:
        """Extra per-epoch numbers this method exposes (none by default)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs besides the model (e.g. persistent chains); here the state of the method's
        ``sampler`` when it has one (e.g. an adapted Gibbs–Langevin step size). Subclasses extend it."""
        sampler = self.sampler.state_dict() if self.sampler is not None else {}
        return {"sampler": sampler} if sampler else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict()``."""
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict from state_dict(), got {type(state).__name__}")
        if self.sampler is not None and state.get("sampler"):
            self.sampler.load_state_dict(state["sampler"])

    def reset(self) -> None:
        """Forget chains and other state (e.g. after the model was changed by hand)."""
        self.particles = None

    def config(self) -> dict[str, Any]:
        """JSON-able settings, recorded with a run."""
        return {"name": self.name}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "name")
        return f"{type(self).__name__}({args})"


def positive_phase(model: BoltzmannMachine, v: torch.Tensor, mean_field_steps: int = 50) -> tuple[torch.Tensor, States]:
    """(F per row, detached states [v, m_1, …, m_L]); see the module docstring for the math.

    For an RBM the hidden entry is left at zero: F(v) sums it out and nothing needs its mean.
    """
    if model.depth == 2:
        states = [v, model.layers[1].zero_field(v.shape[0])]
        return model._partial_free_energy(states, 1), states
    with torch.no_grad():
        states = [s.detach() for s in model._mean_field(v, mean_field_steps, 1e-6)]
    f = model._partial_free_energy(states, 1)
    for i in range(2, model.depth, 2):
        layer = model.layers[i]
        if isinstance(layer, GaussianLayer):
            f = f + 0.5 * (layer.log_var.detach() - layer.log_var).exp().sum()
    return f, states


def data_free_energy(model: BoltzmannMachine, v: torch.Tensor, mean_field_steps: int = 50) -> torch.Tensor:
    """Positive-phase free energy per row: exact F(v) for an RBM, the mean-field F_MF(v) otherwise."""
    return positive_phase(model, v, mean_field_steps)[0]


def model_free_energy(model: BoltzmannMachine, states: States) -> torch.Tensor:
    """Negative-phase F_odd(h_even) per row of detached chain states (odd entries are ignored)."""
    return model._partial_free_energy([s.detach() for s in states], 1)


def check_int(value: Any, name: str, minimum: int) -> int:
    """An integer >= ``minimum`` (ValueError naming ``name`` otherwise)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value
