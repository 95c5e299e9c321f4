"""Minimizing the TAP Gibbs free energy over the magnetizations.

Each half-sweep updates the layers of one parity (odd, then even: they do not interact with each
other) by the damped fixed point

    m_l ← m_l + t (c_l − m_l),   c_l = tap_mean_l(−∂Γ_int/∂m_l)  = argmin_x Γ₀_l(x) + ∇Γ_intᵀx,

where Γ = Γ₀ + Γ_int and Γ₀ is each layer's convex own term. The step is accepted per row only if
Γ does not increase; otherwise t is halved (backtracking). The segment direction is always a
descent direction: by convexity of Γ₀, ∇Γ(m)ᵀ(c − m) ≤ Γ₀(c) + ∇Γ_intᵀc − Γ₀(m) − ∇Γ_intᵀm ≤ 0,
with equality only at a fixed point. So the backtracking is a (mirror-)gradient descent with a
line search that never increases Γ; rows where no step lowers Γ keep their magnetizations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from .._checks import check_positive_int
from .gibbs_free_energy import check_order, check_tap_layer, gibbs_free_energy, interaction

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
    gamma = gibbs_free_energy(model, mags, order, clamped)
    history = [gamma.clone()] if record else []
    sweeps, converged = 0, False
    for _ in range(steps):
        before = [m.clone() for m in mags]
        for parity in (1, 0):
            block = [i for i in free if i % 2 == parity]
            if block:
                gamma = _block_step(model, mags, block, gamma, order, clamped, damping)
        sweeps += 1
        if record:
            history.append(gamma.clone())
        change = max(float((m - b).abs().max()) for m, b in zip(mags, before))
        if change < tol:
            converged = True
            break
    return TAPResult([m.detach() for m in mags], gamma.detach(), sweeps, converged, history)


def _block_step(
    model: torch.nn.Module,
    mags: list[torch.Tensor],
    block: list[int],
    gamma: torch.Tensor,
    order: int,
    clamped: bool,
    damping: float,
) -> torch.Tensor:
    """One damped fixed-point update of the layers in ``block`` with per-row backtracking."""
    with torch.enable_grad():
        leaves = [mags[i].detach().requires_grad_(True) for i in block]
        trial = list(mags)
        for i, leaf in zip(block, leaves):
            trial[i] = leaf
        grads = torch.autograd.grad(interaction(model, trial, order, clamped).sum(), leaves)
    target = {i: model.layers[i].tap_mean(-g).detach() for i, g in zip(block, grads)}
    rows = gamma.shape[0]
    t = torch.full((rows, 1), damping, dtype=gamma.dtype, device=gamma.device)
    pending = torch.ones(rows, dtype=torch.bool, device=gamma.device)
    for _ in range(MAX_HALVINGS):
        trial = list(mags)
        for i in block:
            trial[i] = mags[i] + t * (target[i] - mags[i])
        new = gibbs_free_energy(model, trial, order, clamped)
        ok = pending & (new <= gamma)
        if ok.any():
            for i in block:
                mags[i] = torch.where(ok.unsqueeze(-1), trial[i], mags[i])
            gamma = torch.where(ok, new, gamma)
            pending = pending & ~ok
        if not pending.any():
            break
        t = torch.where(pending.unsqueeze(-1), t / 2, t)
    return gamma
