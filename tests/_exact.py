"""Brute-force enumeration of tiny models, written independently of the library's shortcuts."""

from __future__ import annotations

import itertools

import torch

from ebmlab import BoltzmannMachine


def joint_states(model: BoltzmannMachine) -> list[torch.Tensor]:
    """Every joint configuration (all layers discrete), as one tensor per layer with a row each."""
    per_layer = [layer.all_states() for layer in model.layers]
    combos = list(itertools.product(*[range(s.shape[0]) for s in per_layer]))
    idx = torch.tensor(combos)
    return [s[idx[:, i]] for i, s in enumerate(per_layer)]


def joint_energy(model: BoltzmannMachine, states: list[torch.Tensor]) -> torch.Tensor:
    """E = Σ H_i(h_i) − Σ r(h_{i−1})ᵀ W_i r(h_i), spelled out with einsum."""
    e = sum(layer.energy(s) for layer, s in zip(model.layers, states))
    for i, w in enumerate(model.weights):
        a = model.layers[i].rescale(states[i])
        b = model.layers[i + 1].rescale(states[i + 1])
        e = e - torch.einsum("bi,ij,bj->b", a, w, b)
    return e


def log_z(model: BoltzmannMachine, beta: float = 1.0) -> torch.Tensor:
    return torch.logsumexp(-beta * joint_energy(model, joint_states(model)), 0)


def marginal_free_energy(model: BoltzmannMachine, v: torch.Tensor) -> torch.Tensor:
    """F(v) = −log Σ_h exp(−E(v, h)) by enumerating every hidden configuration."""
    hidden = [layer.all_states() for layer in model.layers[1:]]
    out = []
    for row in v:
        terms = []
        for combo in itertools.product(*hidden):
            states = [row.unsqueeze(0)] + [h.unsqueeze(0) for h in combo]
            terms.append(-joint_energy(model, states))
        out.append(-torch.logsumexp(torch.cat(terms), 0))
    return torch.stack(out)


def randomize(model: BoltzmannMachine, seed: int, scale: float = 1.0) -> BoltzmannMachine:
    """The model in float64 with every parameter drawn from N(0, scale²)."""
    g = torch.Generator().manual_seed(seed)
    model = model.to(torch.float64)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


def visible_total_variation(model: BoltzmannMachine, v: torch.Tensor) -> float:
    """½ Σ_x |p(x) − q(x)| between the exact p(v) (enumerated) and the frequencies of the rows of ``v``."""
    states = model.layers[0].all_states().to(torch.float64)
    with torch.no_grad():
        p = torch.softmax(-marginal_free_energy(model.to(torch.float64), states), 0)
    index = {tuple(row.tolist()): i for i, row in enumerate(states)}
    q = torch.zeros_like(p)
    for row in v.to(torch.float64):
        q[index[tuple(row.tolist())]] += 1.0 / v.shape[0]
    return 0.5 * float((p - q).abs().sum())
