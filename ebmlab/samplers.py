"""Markov-chain samplers for a ``BoltzmannMachine``: one ``sweep`` moves every layer once.

``Gibbs()`` is block Gibbs (``model._gibbs``): even layers drawn from their conditionals, then odd.

``GibbsLangevin(step_size, steps, mh, target)`` moves the real-valued (Gaussian) layers by Langevin
dynamics and draws every other layer by Gibbs (Liao, Kornblith, Ren, Fleet & Hinton 2022). With a
Gaussian layer x (variance σ², mean μ) the target is log π(x) = −β U(x) where

- ``target="marginal"`` (even layers, e.g. the visible layer of a GRBM): U = F_odd, the free energy
  with the odd layers summed out, given the other even layers; afterwards the odd layers are drawn
  exactly, so the sweep keeps p(h) invariant. Odd Gaussian layers are drawn by Gibbs.
- ``target="conditional"``: U = E(h), the joint energy given the neighbouring layers (a Gaussian
  conditional; useful to study the discretisation, since Gibbs samples it exactly).

Since ∂ log Z(f, β)/∂f = β E[r(h) | f] for every layer type with a linear r, the gradient is

    ∇ log π(x) = β (μ + f̄ − x) / σ²,

with f̄ the field from the neighbours at their conditional means E[r(h)] (marginal) or at their
current states (conditional). A step preconditioned by D = σ²/β is

    y = x + α (μ + f̄(x) − x) + √(2α σ²/β) ξ,   ξ ~ N(0, I),

(the unadjusted Langevin algorithm, biased by O(α)); with ``mh=True`` (MALA) y is accepted with
probability min(1, π(y) q(x | y) / (π(x) q(y | x))), q(y | x) = N(y; x + α D ∇log π(x), 2α D),
which makes π exactly invariant. Units clamped by a mask never move.

``target_acceptance`` (with ``mh``) adapts α after every step by Robbins–Monro on log α,
log α += 0.05 (acceptance of the step − target), α ≤ 1 (0.574 is optimal for MALA in high
dimension, Roberts & Rosenthal 1998). An adapting chain is not exactly invariant: use it during
training or burn-in, then ``freeze()`` (or pass None) for exact sampling.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from ._checks import Beta
from .layers import GaussianLayer
from .layers.base import expand_beta

if TYPE_CHECKING:
    from .model import BoltzmannMachine, States

Clamp = Sequence[torch.Tensor | None] | None
ADAPT_RATE = 0.05


class Sampler(ABC):
    """``sweep(model, states, beta, clamp, generator)`` returns the states after one sweep."""

    name = ""

    @abstractmethod
    def sweep(
        self,
        model: BoltzmannMachine,
        states: States,
        beta: Beta = 1.0,
        clamp: Clamp = None,
        generator: torch.Generator | None = None,
    ) -> States:
        """One sweep at inverse temperature ``beta`` (a number or one value per row)."""

    def metrics(self) -> dict[str, float]:
        """Diagnostics of the sampler (e.g. an acceptance rate); none by default."""
        return {}

    def config(self) -> dict[str, Any]:
        """JSON-able settings, recorded with a run."""
        return {"name": self.name}

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs to continue this sampler (e.g. an adapted step size); none by default."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict()``."""
        if not isinstance(state, dict):
            raise TypeError(f"sampler state must be a dict from state_dict(), got {type(state).__name__}")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "name")
        return f"{type(self).__name__}({args})"


class Gibbs(Sampler):
    """Block Gibbs: every layer drawn exactly from its conditional, even layers first."""

    name = "gibbs"

    def sweep(
        self,
        model: BoltzmannMachine,
        states: States,
        beta: Beta = 1.0,
        clamp: Clamp = None,
        generator: torch.Generator | None = None,
    ) -> States:
        return model._gibbs(states, beta, clamp, generator)


class GibbsLangevin(Sampler):
    """Langevin steps (``mh``: Metropolis-adjusted) on Gaussian layers, Gibbs on the rest.

    ``step_size`` α ∈ (0, 1] in units of the conditional variance σ²/β; ``steps`` Langevin steps
    per sweep; ``target`` "marginal" or "conditional" (see the module docstring).
    """

    name = "gibbs_langevin"

    def __init__(
        self,
        step_size: float = 0.1,
        steps: int = 1,
        mh: bool = True,
        target: str = "marginal",
        target_acceptance: float | None = None,
    ) -> None:
        if isinstance(step_size, bool) or not isinstance(step_size, (int, float)) or not 0 < step_size <= 1:
            raise ValueError(f"step_size must be a number in (0, 1], got {step_size!r}")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
        if not isinstance(mh, bool):
            raise TypeError(f"mh must be True or False, got {mh!r}")
        if target not in ("marginal", "conditional"):
            raise ValueError(f"target must be 'marginal' or 'conditional', got {target!r}")
        if target_acceptance is not None and not (
            mh and isinstance(target_acceptance, (int, float)) and 0 < target_acceptance < 1
        ):
            raise ValueError(f"target_acceptance must be None or in (0, 1) with mh=True, got {target_acceptance!r}")
        self.step_size, self.steps, self.mh, self.target = float(step_size), steps, mh, target
        self.target_acceptance = None if target_acceptance is None else float(target_acceptance)
        self.accepted = 0.0
        self.proposed = 0

    @property
    def acceptance(self) -> float:
        """Fraction of accepted Metropolis–Hastings proposals so far (NaN before any, or without MH)."""
        return self.accepted / self.proposed if self.proposed else float("nan")

    def freeze(self) -> GibbsLangevin:
        """Stop adapting the step size (the chain is then exactly invariant); returns self."""
        self.target_acceptance = None
        return self

    def metrics(self) -> dict[str, float]:
        if not self.proposed:
            return {}
        return {"langevin_acceptance": self.acceptance, "langevin_step_size": self.step_size}

    def state_dict(self) -> dict[str, Any]:
        """The (adapted) step size and the acceptance counts, so a resumed run continues with them."""
        return {"step_size": self.step_size, "accepted": self.accepted, "proposed": self.proposed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        step = state.get("step_size")
        if isinstance(step, bool) or not isinstance(step, (int, float)) or not 0 < step <= 1:
            raise ValueError(f"sampler state: step_size must be a number in (0, 1], got {step!r}")
        self.step_size = float(step)
        self.accepted, self.proposed = float(state.get("accepted", 0.0)), int(state.get("proposed", 0))

    def config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "step_size": self.step_size,
            "steps": self.steps,
            "mh": self.mh,
            "target": self.target,
            "target_acceptance": self.target_acceptance,
        }

    def sweep(
        self,
        model: BoltzmannMachine,
        states: States,
        beta: Beta = 1.0,
        clamp: Clamp = None,
        generator: torch.Generator | None = None,
    ) -> States:
        states = list(states)
        for parity in (0, 1):
            langevin = [
                i
                for i in range(parity, model.depth, 2)
                if isinstance(model.layers[i], GaussianLayer) and (parity == 0 or self.target == "conditional")
            ]
            for i in range(parity, model.depth, 2):
                if i not in langevin:
                    new = model.layers[i].sample(model._field(states, i), beta, generator)
                    states[i] = new if clamp is None or clamp[i] is None else torch.where(clamp[i], states[i], new)
            for i in langevin:
                for _ in range(self.steps):
                    states[i] = self._step(model, states, i, beta, None if clamp is None else clamp[i], generator)
        return states

    # -- one Langevin step on layer i ----------------------------------------------------------
    def _log_target(self, model: BoltzmannMachine, states: States, beta: Beta) -> torch.Tensor:
        """log π up to a constant, per row: −β F_odd (marginal) or −β E (conditional)."""
        if self.target == "marginal":
            return -beta * model._partial_free_energy(states, 1, beta)
        return -beta * model._energy(states)

    def _drift_target(self, model: BoltzmannMachine, states: States, i: int, beta: Beta) -> torch.Tensor:
        """μ + f̄: the point the preconditioned gradient β(μ + f̄ − x)/σ² · σ²/β pulls x toward."""
        if self.target == "marginal":
            states = list(states)
            for j in (i - 1, i + 1):
                if 0 <= j < model.depth:
                    states[j] = model.layers[j].mean(model._field(states, j), beta)
        return model.layers[i].mean(model._field(states, i), beta)

    def _step(
        self,
        model: BoltzmannMachine,
        states: States,
        i: int,
        beta: Beta,
        mask: torch.Tensor | None,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        layer = model.layers[i]
        x = states[i]
        a = self.step_size
        b = expand_beta(beta, x)
        var = layer.var / b  # the preconditioner D = σ²/β (per unit, per row when β is)
        target_x = self._drift_target(model, states, i, beta)
        noise = torch.randn(x.shape, dtype=x.dtype, device=x.device, generator=generator)
        y = x + a * (target_x - x) + (2 * a * var).sqrt() * noise
        if mask is not None:
            y = torch.where(mask, x, y)
        if not self.mh:
            return y
        proposal = list(states)
        proposal[i] = y
        target_y = self._drift_target(model, proposal, i, beta)
        free = torch.ones_like(x) if mask is None else (~mask).to(x.dtype)

        def log_q(to: torch.Tensor, frm: torch.Tensor, drift_to: torch.Tensor) -> torch.Tensor:
            mean = frm + a * (drift_to - frm)
            return -((to - mean) ** 2 / (4 * a * var) * free).sum(-1)

        log_ratio = (
            self._log_target(model, proposal, beta)
            - self._log_target(model, states, beta)
            + log_q(x, y, target_y)
            - log_q(y, x, target_x)
        )
        u = torch.rand(log_ratio.shape, dtype=x.dtype, device=x.device, generator=generator)
        accept = torch.log(u) < log_ratio
        self.accepted += float(accept.sum())
        self.proposed += accept.numel()
        if self.target_acceptance is not None:
            rate = float(log_ratio.clamp(max=0).exp().mean())
            self.step_size = min(1.0, self.step_size * math.exp(ADAPT_RATE * (rate - self.target_acceptance)))
        return torch.where(accept.unsqueeze(-1), y, x)


def get_sampler(sampler: Sampler | None) -> Sampler:
    """``sampler`` itself, or ``Gibbs()`` for None; TypeError for anything else."""
    if sampler is None:
        return Gibbs()
    if not isinstance(sampler, Sampler):
        raise TypeError(f"sampler must be an ebmlab.samplers.Sampler (Gibbs(), GibbsLangevin(...)), got {sampler!r}")
    return sampler


__all__ = ["Gibbs", "GibbsLangevin", "Sampler", "get_sampler"]
