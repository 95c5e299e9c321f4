"""Minimizing the TAP Gibbs free energy over the magnetizations.

Each half-sweep updates the layers of one parity (odd, then even: they do not interact with each
other) by the damped fixed point

    m_l ← m_l + t (c_l − m_l),   c_l = tap_mean_l(−∂Γ_int/∂m_l)  = argmin_x Γ₀_l(x) + ∇Γ_intᵀx,

where Γ = Γ₀ + Γ_int and Γ₀ is each layer's convex own term. The step is accepted per row only if
Γ does not increase (only the terms that involve the block change, so only those are evaluated);
otherwise t is halved (backtracking). The segment direction is always a
descent direction: by convexity of Γ₀, ∇Γ(m)ᵀ(c − m) ≤ Γ₀(c) + ∇Γ_intᵀc − Γ₀(m) − ∇Γ_intᵀm ≤ 0,
with equality only at a fixed point. So the backtracking is a (mirror-)gradient descent with a
line search that never increases Γ; rows where no step lowers Γ keep their magnetizations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from .._checks import check_positive_int
from ..layers import OneHotLayer
from .gibbs_free_energy import check_order, check_tap_layer, edge_terms, gibbs_free_energy, layer_terms

MAX_HALVINGS = 12


@dataclass
class TAPResult:
    """Magnetizations at the (local) minimum, Γ there per row, and Γ after every sweep."""

    mags: list[torch.Tensor]
    gamma: torch.Tensor
    sweeps: int
    converged: bool
    history: list[torch.Tensor] = field(default_factory=list)


def random_magnetizations(
    model: torch.nn.Module, rows: int, generator: torch.Generator | None = None, scale: float = 1.0
) -> list[torch.Tensor]:
    """m_l = tap_mean_l(scale·ξ) with ξ ~ N(0, 1): independent starts around each layer's bias."""
    out = []
    for layer in model.layers:
        check_tap_layer(layer)
        noise = torch.randn(rows, layer.n, generator=generator, dtype=model.dtype, device=model.device)
        out.append(layer.tap_mean(scale * noise).detach())
    return out


@torch.no_grad()
def minimize(
    model: torch.nn.Module,
    mags: Sequence[torch.Tensor] | None = None,
    order: int = 2,
    chains: int = 1,
    steps: int = 100,
    tol: float = 1e-6,
    damping: float = 0.5,
    clamp: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    record: bool = False,
) -> TAPResult:
    """Minimize Γ over the magnetizations by damped fixed-point sweeps with backtracking.

    ``mags`` warm-starts the iteration (one (chains, n_l) tensor per layer); otherwise ``chains``
    random starts are drawn. ``clamp`` fixes the visible layer to data (one row per chain), so that
    min Γ approximates the free energy F(v). Stops after ``steps`` sweeps or when no
    magnetization moves by more than ``tol``. ``record`` keeps Γ after every sweep.
    """
    order = check_order(order)
    steps = check_positive_int(steps, "steps", minimum=0)
    if not 0 < damping <= 1:
        raise ValueError(f"damping must be in (0, 1], got {damping!r}")
    for layer in model.layers:
        check_tap_layer(layer)
    if mags is None:
        rows = check_positive_int(chains, "chains") if clamp is None else clamp.shape[0]
        mags = random_magnetizations(model, rows, generator)
    else:
        if len(mags) != len(model.layers):
            raise ValueError(f"mags must hold one tensor per layer ({len(model.layers)}), got {len(mags)}")
        mags = [m.detach().clone() for m in mags]
    clamped = clamp is not None
    if clamped:
        if clamp.shape != mags[0].shape:
            raise ValueError(
                f"clamp must have shape {tuple(mags[0].shape)} (one row per chain), got {tuple(clamp.shape)}"
            )
        mags[0] = clamp.detach()
    free = [i for i in range(len(mags)) if not (clamped and i == 0)]
    history = [gibbs_free_energy(model, mags, order, clamped)] if record else []
    sweeps, converged = 0, False
    for _ in range(steps):
        before = [m.clone() for m in mags]
        for parity in (1, 0):
            block = [i for i in free if i % 2 == parity]
            if block:
                _block_step(model, mags, block, order, clamped, damping)
        sweeps += 1
        if record:
            history.append(gibbs_free_energy(model, mags, order, clamped))
        change = max(float((m - b).abs().max()) for m, b in zip(mags, before))
        if change < tol:
            converged = True
            break
    gamma = gibbs_free_energy(model, mags, order, clamped)
    return TAPResult([m.detach() for m in mags], gamma.detach(), sweeps, converged, history)


class _BlockTerms:
    """The part of Γ that involves the layers of one block (one parity), the others held fixed.

    Layers of a block are never adjacent, so every connection touches at most one of them. When
    a block layer and its neighbours all have independent units (no one-hot sites), each of its
    connection terms is separable given the neighbours' fixed magnetizations:

        Γ_l(m) = Γ₀_l(m) − r(m)·A − ½ s(m)·B − ⅙ κ(m)·C,
        A = Σ_nbr W r(m_nbr),  B = Σ_nbr W∘² s(m_nbr),  C = Σ_nbr W∘³ κ(m_nbr),

    so the matrix products are done once per block and each trial step costs O(units).
    Otherwise the connection terms are evaluated in full.
    """

    def __init__(
        self, model: torch.nn.Module, mags: list[torch.Tensor], block: list[int], order: int, clamped: bool
    ) -> None:
        self.model, self.block, self.order, self.clamped = model, block, order, clamped
        layers, depth = model.layers, len(model.layers)
        self.edges = sorted({e for i in block for e in (i - 1, i) if 0 <= e < depth - 1})
        near = {j for i in block for j in (i - 1, i, i + 1) if 0 <= j < depth}
        self.fast = not any(isinstance(layers[j], OneHotLayer) for j in near)
        self.fixed = list(mags)
        self.coef: dict[int, list[torch.Tensor | None]] = {}
        if self.fast:
            for i in block:
                self.coef[i] = self._coefficients(i)

    def _coefficients(self, i: int) -> list[torch.Tensor | None]:
        model, mags, order = self.model, self.fixed, self.order
        layers, weights = model.layers, model.weights
        out: list[torch.Tensor | None] = [None, None, None]
        for j in (i - 1, i + 1):
            if not 0 <= j < len(layers):
                continue
            w = weights[j] if j < i else weights[i].T
            nbr = layers[j]
            terms = [nbr.rescale(mags[j]) @ w]
            if order >= 2 and not (self.clamped and 0 in (i, j)):
                terms.append(nbr.tap_variance(mags[j]) @ (w * w))
                if order >= 3:
                    terms.append(nbr.tap_third_moment(mags[j]) @ (w * w * w))
            for k, t in enumerate(terms):
                out[k] = t if out[k] is None else out[k] + t
        return out

    def interaction(self, trial: list[torch.Tensor]) -> torch.Tensor:
        if not self.fast:
            return sum(edge_terms(self.model, trial, e, self.order, self.clamped) for e in self.edges)
        total = 0.0
        for i in self.block:
            layer, m = self.model.layers[i], trial[i]
            a, b, c = self.coef[i]
            total = total - (layer.rescale(m) * a).sum(-1)
            if b is not None:
                total = total - 0.5 * (layer.tap_variance(m) * b).sum(-1)
            if c is not None:
                total = total - (layer.tap_third_moment(m) * c).sum(-1) / 6
        return total

    def total(self, trial: list[torch.Tensor]) -> torch.Tensor:
        own = sum(layer_terms(self.model.layers[i], trial[i]) for i in self.block)
        return own + self.interaction(trial)


def _block_step(
    model: torch.nn.Module,
    mags: list[torch.Tensor],
    block: list[int],
    order: int,
    clamped: bool,
    damping: float,
) -> None:
    """One damped fixed-point update of the layers in ``block`` (in place) with per-row backtracking."""
    terms = _BlockTerms(model, mags, block, order, clamped)
    with torch.enable_grad():
        leaves = [mags[i].detach().requires_grad_(True) for i in block]
        trial = list(mags)
        for i, leaf in zip(block, leaves):
            trial[i] = leaf
        grads = torch.autograd.grad(terms.interaction(trial).sum(), leaves)
    target = {i: model.layers[i].tap_mean(-g).detach() for i, g in zip(block, grads)}
    current = terms.total(mags)
    rows = current.shape[0]
    t = torch.full((rows, 1), damping, dtype=current.dtype, device=current.device)
    pending = torch.ones(rows, dtype=torch.bool, device=current.device)
    for _ in range(MAX_HALVINGS):
        trial = list(mags)
        for i in block:
            trial[i] = mags[i] + t * (target[i] - mags[i])
        new = terms.total(trial)
        ok = pending & (new <= current)
        if ok.any():
            for i in block:
                mags[i] = torch.where(ok.unsqueeze(-1), trial[i], mags[i])
            current = torch.where(ok, new, current)
            pending = pending & ~ok
        if not pending.any():
            break
        t = torch.where(pending.unsqueeze(-1), t / 2, t)
