"""Parallel tempering (replica exchange; Swendsen & Wang 1986, Desjardins et al. 2010 for RBMs).

``chains`` persistent chains at each rung of an inverse-temperature ladder 1 = β_0 > β_1 > … > β_{T−1}.
Every sweep runs one block-Gibbs update of every replica at its own β (target p_β(h) ∝ exp(−β E(h)),
E the joint energy of all layers) and then proposes to exchange the states of adjacent rungs
(t, t+1), the even pairs on even sweeps and the odd pairs on odd ones (``sampler`` may replace the
Gibbs update, e.g. ``GibbsLangevin(...)`` for Gaussian units), accepting with

    min(1, exp((β_t − β_{t+1}) (E(h_t) − E(h_{t+1})))),

which keeps the product of the p_{β_t} invariant. The negative phase uses the β = 1 replicas
(⟨F_odd⟩ over them, as PCD does).

``betas="auto"`` starts from a geometric ladder 1 … ``beta_min`` of ``temperatures`` rungs and
adapts it during training (Robbins–Monro on the log-gaps): with a_t the acceptance probability of
pair t averaged over the chains, log(log β_t − log β_{t+1}) += ``adapt_rate`` · (a_t − target),
so gaps that swap too often widen and gaps that swap too rarely shrink; β_0 stays 1 and β_min
stays above 10⁻³ (all gaps shrink in proportion when it would pass).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import torch

from ...model import BoltzmannMachine, States
from ...samplers import Sampler, get_sampler
from .base import Method, check_int, model_free_energy, positive_phase

BETA_FLOOR = 1e-3


class PT(Method):
    """PT-k: k tempered sweeps (Gibbs + swaps) per batch; ``betas`` = "auto" or a decreasing list from 1."""

    name = "pt"
    particles_kind = "persistent chains (β = 1 replica)"

    def __init__(
        self,
        k: int = 1,
        chains: int = 100,
        betas: str | Sequence[float] = "auto",
        temperatures: int = 10,
        beta_min: float = 0.5,
        target_acceptance: float = 0.3,
        adapt_rate: float = 0.05,
        mean_field_steps: int = 50,
        sampler: Sampler | None = None,
    ) -> None:
        super().__init__()
        self.k = check_int(k, "k", 1)
        self.chains = check_int(chains, "chains", 1)
        self.sampler = get_sampler(sampler)
        self._custom_sampler = sampler is not None
        self.mean_field_steps = check_int(mean_field_steps, "mean_field_steps", 1)
        if not 0 < target_acceptance < 1:
            raise ValueError(f"target_acceptance must be in (0, 1), got {target_acceptance!r}")
        if not (isinstance(adapt_rate, (int, float)) and adapt_rate >= 0):
            raise ValueError(f"adapt_rate must be a number >= 0, got {adapt_rate!r}")
        self.target_acceptance, self.adapt_rate = float(target_acceptance), float(adapt_rate)
        if isinstance(betas, str):
            if betas != "auto":
                raise ValueError(f"betas must be 'auto' or a list of inverse temperatures, got {betas!r}")
            self.adaptive = True
            t = check_int(temperatures, "temperatures", 2)
            if not 0 < beta_min < 1:
                raise ValueError(f"beta_min must be in (0, 1), got {beta_min!r}")
            ladder = [beta_min ** (i / (t - 1)) for i in range(t)]
        else:
            self.adaptive = False
            ladder = [float(b) for b in betas]
            if len(ladder) < 2 or ladder[0] != 1.0 or not all(0 < b < float("inf") for b in ladder):
                raise ValueError(f"betas must list at least 2 positive values starting at 1.0, got {list(betas)!r}")
            if any(b >= a for a, b in itertools.pairwise(ladder)):
                raise ValueError(f"betas must decrease strictly from 1.0, got {ladder!r}")
        self.betas = torch.tensor(ladder, dtype=torch.float64)
        self.acceptance = torch.full((len(ladder) - 1,), float("nan"), dtype=torch.float64)
        self.replicas: States | None = None
        self._sweep = 0

    @property
    def temperatures(self) -> int:
        return self.betas.numel()

    # -- the sampler ---------------------------------------------------------------------------
    def start(self, model: BoltzmannMachine, generator: torch.Generator | None, init: States | None = None) -> None:
        """Fresh replicas: ``init`` (one row per chain, copied to every rung) or the layers' biases."""
        rows = self.temperatures * self.chains
        with torch.no_grad():
            if init is None:
                self.replicas = model.random_states(rows, generator)
            else:
                if len(init) != model.depth or any(s.shape[0] != self.chains for s in init):
                    raise ValueError(f"init must hold one ({self.chains}, n) tensor per layer")
                self.replicas = [s.detach().repeat(self.temperatures, 1) for s in init]
        self.particles = [s[: self.chains] for s in self.replicas]

    def _stale(self, model: BoltzmannMachine) -> bool:
        r = self.replicas
        return (
            r is None
            or [s.shape[1] for s in r] != model.sizes
            or r[0].shape[0] != self.temperatures * self.chains
            or r[0].dtype != model.dtype
            or r[0].device != model.device
        )

    @torch.no_grad()
    def advance(self, model: BoltzmannMachine, sweeps: int, generator: torch.Generator | None) -> States:
        """Run ``sweeps`` tempered sweeps; return the β = 1 replicas."""
        if self._stale(model):
            self.start(model, generator)
        states = self.replicas
        for _ in range(sweeps):
            beta_rows = self.betas.to(model.dtype).to(model.device).repeat_interleave(self.chains)
            states = self.sampler.sweep(model, states, beta_rows, None, generator)
            states = self._swap(model, states, generator)
        self.replicas = states
        self.particles = [s[: self.chains] for s in states]
        return self.particles

    def _swap(self, model: BoltzmannMachine, states: States, generator: torch.Generator | None) -> States:
        t, c = self.temperatures, self.chains
        first = self._sweep % 2
        self._sweep += 1
        pairs = torch.arange(first, t - 1, 2)
        if pairs.numel() == 0:
            return states
        energy = model._energy(states).reshape(t, c).to(torch.float64)
        betas = self.betas.to(energy.device)
        log_acc = (betas[pairs] - betas[pairs + 1]).unsqueeze(-1) * (energy[pairs] - energy[pairs + 1])
        prob = log_acc.clamp(max=0).exp()
        u = torch.rand(prob.shape, dtype=torch.float64, device=energy.device, generator=generator)
        accept = u < prob
        self._record(pairs, prob.mean(-1).cpu())
        order = torch.arange(t * c, device=energy.device).reshape(t, c)
        lo, hi = order[pairs], order[pairs + 1]
        perm = order.clone()
        perm[pairs] = torch.where(accept, hi, lo)
        perm[pairs + 1] = torch.where(accept, lo, hi)
        index = perm.flatten().to(states[0].device)
        return [s[index] for s in states]

    def _record(self, pairs: torch.Tensor, rate: torch.Tensor) -> None:
        """Running acceptance per pair (mean of min(1, ratio)); adapt the ladder toward the target."""
        old = self.acceptance[pairs]
        self.acceptance[pairs] = torch.where(torch.isnan(old), rate, 0.9 * old + 0.1 * rate)
        if not self.adaptive or self.adapt_rate == 0:
            return
        log_gaps = torch.log(torch.log(self.betas[:-1]) - torch.log(self.betas[1:]))
        log_gaps[pairs] += self.adapt_rate * (rate - self.target_acceptance)
        gaps = log_gaps.exp()
        span = float(gaps.sum())
        if span > -math.log(BETA_FLOOR):  # β_min would pass the floor: shrink every gap in proportion
            gaps = gaps * (-math.log(BETA_FLOOR) / span)
        self.betas = torch.cat([torch.zeros(1, dtype=torch.float64), -torch.cumsum(gaps, 0)]).exp()

    # -- the Method ------------------------------------------------------------------------------
    def loss(self, model: BoltzmannMachine, batch: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        pos, _ = positive_phase(model, batch, self.mean_field_steps)
        chains = self.advance(model, self.k, generator)
        return pos.mean() - model_free_energy(model, chains).mean()

    def metrics(self) -> dict[str, float]:
        """``swap_rate`` (mean over pairs), ``swap_rate_<t>`` per adjacent pair (t, t+1), ``beta_min``."""
        if torch.isnan(self.acceptance).all():
            return self.sampler.metrics()
        out = {"swap_rate": float(self.acceptance.nanmean()), "beta_min": float(self.betas[-1])}
        out.update(self.sampler.metrics())
        out.update({f"swap_rate_{t}": float(a) for t, a in enumerate(self.acceptance) if not math.isnan(float(a))})
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "replicas": None if self.replicas is None else [s.clone() for s in self.replicas],
            "betas": self.betas.clone(),
            "acceptance": self.acceptance.clone(),
            "sweep": self._sweep,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        betas = state.get("betas")
        if betas is not None:
            if betas.numel() != self.temperatures:
                raise ValueError(f"state holds {betas.numel()} temperatures, this PT has {self.temperatures}")
            self.betas = betas.clone().to(torch.float64)
        if state.get("acceptance") is not None:
            self.acceptance = state["acceptance"].clone().to(torch.float64)
        replicas = state.get("replicas")
        if replicas is not None and any(s.shape[0] != self.temperatures * self.chains for s in replicas):
            raise ValueError(f"state holds replicas that do not match chains={self.chains} × {self.temperatures}")
        self.replicas = None if replicas is None else [s.clone() for s in replicas]
        self.particles = None if replicas is None else [s[: self.chains] for s in self.replicas]
        self._sweep = int(state.get("sweep", 0))

    def reset(self) -> None:
        super().reset()
        self.replicas = None
        self.acceptance = torch.full_like(self.acceptance, float("nan"))

    def config(self) -> dict[str, Any]:
        extra = {"sampler": self.sampler.config()} if self._custom_sampler else {}
        return {
            **extra,
            "name": self.name,
            "k": self.k,
            "chains": self.chains,
            "betas": "auto" if self.adaptive else [float(b) for b in self.betas],
            "temperatures": self.temperatures,
            "target_acceptance": self.target_acceptance,
            "adapt_rate": self.adapt_rate,
            "mean_field_steps": self.mean_field_steps,
        }
