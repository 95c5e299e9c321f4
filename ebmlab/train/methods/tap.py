"""Sampling-free training with the TAP free energy (Gabrié, Tramel & Krzakala 2015).

    −log p(v) = F(v) + log Z ≈ F(v) − min_m Γ(m),

so the surrogate is  L = ⟨F(v)⟩_data − ⟨Γ(m*; θ)⟩_restarts  with the minimizers m* detached: by
the envelope theorem d/dθ min_m Γ = ∂Γ/∂θ at m*, so ``loss.backward()`` gives the TAP estimate of
−∇ log-likelihood. F(v) is exact for an RBM; for a deeper stack it is the clamped TAP free energy
min_h Γ(v, h) (the mean-field bound plus the Onsager terms of the hidden connections).

``chains`` restarts of the magnetizations are kept between batches and warm-start the next
minimization (``steps`` damped fixed-point sweeps, monotone in Γ, see ``ebmlab.tap.minimize``);
their gradients are averaged, as Gabrié et al. average over TAP solutions.
"""

from __future__ import annotations

from typing import Any

import torch

from ...model import BoltzmannMachine
from ...tap import gibbs_free_energy, minimize, random_magnetizations
from ...tap.gibbs_free_energy import check_order, check_tap_layer
from .base import Method, check_int, positive_phase


class TAP(Method):
    """TAP-``order`` negative phase (2 or 3) from ``chains`` warm-started magnetizations."""

    name = "tap"
    particles_kind = "TAP magnetizations"

    def __init__(
        self,
        order: int = 2,
        chains: int = 10,
        steps: int = 20,
        damping: float = 0.5,
        tol: float = 1e-6,
        positive_steps: int = 20,
    ) -> None:
        super().__init__()
        self.order = check_order(order)
        self.chains = check_int(chains, "chains", 1)
        self.steps = check_int(steps, "steps", 1)
        self.positive_steps = check_int(positive_steps, "positive_steps", 1)
        if not (isinstance(damping, (int, float)) and 0 < damping <= 1):
            raise ValueError(f"damping must be in (0, 1], got {damping!r}")
        if not (isinstance(tol, (int, float)) and tol >= 0):
            raise ValueError(f"tol must be a number >= 0, got {tol!r}")
        self.damping, self.tol = float(damping), float(tol)
        self._gamma: torch.Tensor | None = None
        self._sweeps = 0

    def _start(self, model: BoltzmannMachine, generator: torch.Generator | None) -> list[torch.Tensor]:
        p = self.particles
        if (
            p is None
            or [m.shape[1] for m in p] != model.sizes
            or p[0].dtype != model.dtype
            or p[0].device != model.device
        ):
            for layer in model.layers:
                check_tap_layer(layer)
            p = random_magnetizations(model, self.chains, generator)
        return p

    def data_term(self, model: BoltzmannMachine, batch: torch.Tensor) -> torch.Tensor:
        """F(v) per row: exact for an RBM, min_h Γ(v, h) with the hidden magnetizations detached otherwise."""
        if model.depth == 2:
            return positive_phase(model, batch)[0]
        with torch.no_grad():
            start = model._mean_field(batch, 1, self.tol)
        mags = minimize(model, start, self.order, steps=self.positive_steps, tol=self.tol, clamp=batch).mags
        return gibbs_free_energy(model, [batch, *mags[1:]], self.order, clamped=True)

    def loss(self, model: BoltzmannMachine, batch: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        result = minimize(
            model, self._start(model, generator), self.order, steps=self.steps, tol=self.tol, damping=self.damping
        )
        self.particles = result.mags
        self._gamma, self._sweeps = result.gamma, result.sweeps
        gamma = gibbs_free_energy(model, result.mags, self.order)
        return self.data_term(model, batch).mean() - gamma.mean()

    def metrics(self) -> dict[str, float]:
        """``tap_log_z``: −min Γ over the restarts at the last batch; ``tap_sweeps``: sweeps it took."""
        if self._gamma is None:
            return {}
        return {"tap_log_z": float(-self._gamma.min()), "tap_sweeps": float(self._sweeps)}

    def state_dict(self) -> dict[str, Any]:
        return {"mags": None if self.particles is None else [m.clone() for m in self.particles]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        mags = state.get("mags")
        if mags is not None and any(m.shape[0] != self.chains for m in mags):
            raise ValueError(f"state holds magnetizations that do not match chains={self.chains}")
        self.particles = None if mags is None else [m.clone() for m in mags]

    def reset(self) -> None:
        super().reset()
        self._gamma, self._sweeps = None, 0

    def config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "order": self.order,
            "chains": self.chains,
            "steps": self.steps,
            "damping": self.damping,
            "tol": self.tol,
            "positive_steps": self.positive_steps,
        }
