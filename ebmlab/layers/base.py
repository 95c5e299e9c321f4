"""The protocol every layer type follows.

A layer with units x and parameters θ contributes H_θ(x) to the energy and enters the couplings
through its rescale r(x). Given the field f (the coefficient of r(x) collected from the
neighbouring layers) and inverse temperature β, its units are conditionally independent with

    p(x | f) = exp(β (f·r(x) − H(x))) / Z(f, β),    log Z(f, β) = ``log_partition(f, β)``.
"""

from __future__ import annotations

import numbers
from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import nn

from .._checks import Beta, check_allocation


class Layer(nn.Module, ABC):
    """Base class: subclasses implement the math of one unit type."""

    kind: str = ""

    def __init__(self, n: int, name: str | None = None) -> None:
        super().__init__()
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise ValueError(f"n (the number of units) must be a positive integer, got {n!r}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str or None, got {type(name).__name__} {name!r}")
        n = int(n)
        check_allocation(n * torch.empty(0).element_size(), "n", f"a layer of {n} units")
        self.n = n
        self.name = name

    # -- the math each type states -------------------------------------------------------------
    @abstractmethod
    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """H(x), shape (batch,): a sum over units."""

    def rescale(self, x: torch.Tensor) -> torch.Tensor:
        """r(x), the form in which the units enter the couplings (identity by default)."""
        return x

    @abstractmethod
    def conditional(self, field: torch.Tensor, beta: Beta = 1.0) -> torch.distributions.Distribution:
        """p(x | field) at inverse temperature β as a ``torch.distributions`` object."""

    @abstractmethod
    def mean(self, field: torch.Tensor, beta: Beta = 1.0) -> torch.Tensor:
        """E[x | field]."""

    @abstractmethod
    def sample(self, field: torch.Tensor, beta: Beta = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
        """One draw x ~ p(x | field), reproducible through ``generator``."""

    @abstractmethod
    def log_partition(self, field: torch.Tensor, beta: Beta = 1.0) -> torch.Tensor:
        """log Σ_x exp(β(field·r(x) − H(x))) per row, shape (batch,)."""

    def check(self, x: torch.Tensor, name: str = "x") -> None:
        """Raise ``ValueError`` naming this layer when ``x`` is not a valid state batch."""
        if x.dim() != 2 or x.shape[1] != self.n:
            raise ValueError(f"{name} for layer {self.label} must have shape (batch, {self.n}), got {tuple(x.shape)}")
        if not torch.isfinite(x).all():
            raise ValueError(f"{name} for layer {self.label} contains NaN or Inf")

    def tap_energy(self, m: torch.Tensor) -> torch.Tensor:
        """⟨H(x)⟩ under the independent-unit distribution q with mean m (TAP Γ₀ = ⟨H⟩_q − S(q)).

        Equals H(m) when H is linear in x (Bernoulli, OneHot); layers with a nonlinear H override it.
        A layer takes part in TAP by also defining ``tap_mean(field)``, ``tap_entropy(m)``,
        ``tap_variance(m)`` and ``tap_third_moment(m)`` (or ``tap_covariance(m)`` for one-hot sites).
        """
        return self.energy(m)

    @abstractmethod
    def init_from_data(self, x: torch.Tensor) -> None:
        """Set the layer's own parameters from the moments of data ``x``."""

    # -- shared helpers ------------------------------------------------------------------------
    @property
    def label(self) -> str:
        return f"{self.name or '?'} ({type(self).__name__}, {self.n} units)"

    def zero_field(self, rows: int) -> torch.Tensor:
        p = next(self.parameters())
        return torch.zeros(rows, self.n, dtype=p.dtype, device=p.device)

    def random(self, rows: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """A draw from the layer alone (zero field): the start of a fresh Markov chain."""
        return self.sample(self.zero_field(rows), 1.0, generator)

    def all_states(self) -> torch.Tensor:
        """Every state of a discrete layer, one per row (used by exact enumeration)."""
        raise ValueError(f"layer {self.label} has continuous units and cannot be enumerated")

    def num_states(self) -> float:
        """How many states ``all_states`` would list (inf for continuous units)."""
        return float("inf")

    def spec(self) -> dict[str, Any]:
        """A JSON-able description from which ``layer_from_spec`` rebuilds the layer."""
        return {"type": self.kind, "n": self.n, "name": self.name}

    def extra_repr(self) -> str:
        return f"n={self.n}, name={self.name!r}"


def expand_beta(beta: Beta, like: torch.Tensor) -> Beta:
    """Broadcast a per-row β of shape (batch,) against a (batch, units) tensor."""
    if isinstance(beta, torch.Tensor) and beta.dim() == 1:
        return beta.unsqueeze(-1).to(like.dtype)
    return beta
