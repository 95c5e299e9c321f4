"""Exact log partition function and log-likelihood of small discrete Boltzmann machines.

Given the even layers, the odd layers of a stack are independent, and vice versa, so

    log Z = log Σ_{h_S} exp(−F_S̄(h_S)),

where S is the even or the odd set of layers, enumerated, and F_S̄ sums the other set out
analytically (``BoltzmannMachine._partial_free_energy``). The set with fewer configurations is
enumerated; it must hold only discrete (Bernoulli, OneHot) layers, while the summed-out set may
contain Gaussian layers (so a Gaussian–Bernoulli RBM with few hidden units is exact too).
Configurations are decoded from integer codes in chunks and combined by a running log-sum-exp in
float64, so memory stays bounded; about 2²⁴ configurations of a small model take seconds on a CPU.

    log p(v) = −F(v) − log Z.

Exact samples (``sample``) come from the same enumeration: a configuration h_S of the enumerated set
is drawn with probability exp(−F_S̄(h_S)) / Z (chunk masses first, then a configuration within each
chosen chunk), and the other set given h_S is a product of independent layer conditionals.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .._checks import check_positive_int
from ..layers import BernoulliLayer, OneHotLayer
from ._common import check_model, is_discrete, visible_rows

MAX_CONFIGURATIONS = 2**26
CHUNK = 2**15


def enumeration_cost(model: Any) -> tuple[int, float]:
    """(parity, configurations) of the cheaper layer set to enumerate (inf if neither is discrete)."""
    model = check_model(model)
    costs = []
    for parity in (0, 1):
        layers = [layer for i, layer in enumerate(model.layers) if i % 2 == parity]
        costs.append(math.prod(layer.num_states() for layer in layers) if all(map(is_discrete, layers)) else math.inf)
    parity = 0 if costs[0] <= costs[1] else 1
    return parity, costs[parity]


def _decode(layer: Any, codes: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """States of ``layer`` with integer codes ``codes`` (most significant unit/site first)."""
    if isinstance(layer, BernoulliLayer):
        shifts = torch.arange(layer.n - 1, -1, -1, device=codes.device)
        return ((codes.unsqueeze(-1) >> shifts) & 1).to(dtype)
    assert isinstance(layer, OneHotLayer)
    powers = layer.states ** torch.arange(layer.sites - 1, -1, -1, device=codes.device)
    digits = (codes.unsqueeze(-1) // powers) % layer.states
    onehot = torch.nn.functional.one_hot(digits, layer.states)
    return onehot.reshape(codes.shape[0], layer.n).to(dtype)


def _enumeration(model: Any, max_configurations: int, chunk: int, what: str) -> tuple[int, list[int], int]:
    """(parity, enumerated layer indices, configurations) after checking the set is discrete and small."""
    max_configurations = check_positive_int(max_configurations, "max_configurations")
    check_positive_int(chunk, "chunk")
    parity, count = enumeration_cost(model)
    if math.isinf(count):
        raise ValueError(
            f"exact {what} needs the even or the odd layers to be all discrete (Bernoulli/OneHot); "
            f"layers are {[type(layer).__name__ for layer in model.layers]}"
        )
    enumerated = [i for i in range(model.depth) if i % 2 == parity]
    if count > max_configurations:
        names = ", ".join(model.layers[i].label for i in enumerated)
        raise ValueError(
            f"exact {what} would enumerate {count:.4g} configurations (≈2^{math.log2(count):.1f}) of "
            f"{names}; the limit is max_configurations={max_configurations} — use ebmlab.evaluate.ais instead"
        )
    return parity, enumerated, int(count)


def _configurations(model: Any, parity: int, enumerated: list[int], codes: torch.Tensor) -> list[torch.Tensor]:
    """Full state lists whose enumerated layers hold the configurations ``codes`` (others zero)."""
    states = [layer.zero_field(codes.shape[0]) for layer in model.layers]
    rest = codes
    for i in reversed(enumerated):
        size = int(model.layers[i].num_states())
        states[i] = _decode(model.layers[i], rest % size, model.dtype)
        rest = rest // size
    return states


def _chunk_masses(model: Any, parity: int, enumerated: list[int], count: int, chunk: int):
    """(codes, −F_S̄(h_S)) of every chunk of configurations, in order."""
    for start in range(0, count, chunk):
        codes = torch.arange(start, min(start + chunk, count), device=model.device)
        states = _configurations(model, parity, enumerated, codes)
        yield codes, -model._partial_free_energy(states, 1 - parity).to(torch.float64)


@torch.no_grad()
def log_partition(model: Any, max_configurations: int = MAX_CONFIGURATIONS, chunk: int = CHUNK) -> float:
    """log Z by enumerating the cheaper of the even/odd layer sets, the other summed out exactly.

    Raises ``ValueError`` naming the number of configurations when it exceeds
    ``max_configurations``, or when neither set is entirely discrete.
    """
    model = check_model(model)
    parity, enumerated, count = _enumeration(model, max_configurations, chunk, "log_partition")
    total = torch.tensor(-math.inf, dtype=torch.float64)
    for _, neg_f in _chunk_masses(model, parity, enumerated, count, chunk):
        total = torch.logaddexp(total, torch.logsumexp(neg_f, 0).cpu())
    return float(total)


@torch.no_grad()
def sample(
    model: Any, n: int, seed: int | None = None, max_configurations: int = MAX_CONFIGURATIONS, chunk: int = CHUNK
) -> list[torch.Tensor]:
    """``n`` independent exact draws from p(h_0, …, h_L) ∝ exp(−E); returns every layer's state.

    ``samples[0]`` is the visible layer. The cheaper even/odd set S is enumerated: each chunk's mass
    Σ exp(−F_S̄(h_S)) picks how many draws fall in it (one multinomial over chunks), a second pass
    picks configurations within the chosen chunks, and every layer outside S is drawn from its exact
    conditional given S. Same limits as ``log_partition``.
    """
    model = check_model(model)
    n = check_positive_int(n, "n")
    parity, enumerated, count = _enumeration(model, max_configurations, chunk, "sample")
    g = model.generator(seed)
    masses = torch.stack(
        [torch.logsumexp(neg_f, 0) for _, neg_f in _chunk_masses(model, parity, enumerated, count, chunk)]
    )
    per_chunk = torch.bincount(
        torch.multinomial(torch.softmax(masses, 0), n, replacement=True, generator=g),
        minlength=masses.shape[0],
    ).tolist()
    picked = []
    for (codes, neg_f), k in zip(_chunk_masses(model, parity, enumerated, count, chunk), per_chunk):
        if k:
            picked.append(codes[torch.multinomial(torch.softmax(neg_f, 0), k, replacement=True, generator=g)])
    codes = torch.cat(picked)
    codes = codes[torch.randperm(n, generator=g, device=codes.device)]  # chunks arrive in order: shuffle rows
    states = _configurations(model, parity, enumerated, codes)
    for i in range(1 - parity, model.depth, 2):
        states[i] = model.layers[i].sample(model._field(states, i), 1.0, g)
    return states


@torch.no_grad()
def log_likelihood(model: Any, data: Any, log_z: float | None = None) -> torch.Tensor:
    """log p(v) = −F(v) − log Z per row (float64); ``log_z`` defaults to the exact value.

    F is exact: an RBM sums its hidden layer analytically; a deeper stack enumerates its even
    hidden layers (see ``BoltzmannMachine.free_energy``). Take ``.mean()`` for the average.
    """
    model = check_model(model)
    if log_z is None:
        log_z = log_partition(model)
    if isinstance(log_z, bool) or not (isinstance(log_z, (int, float)) and math.isfinite(log_z)):
        raise ValueError(f"log_z must be a finite number, got {log_z!r}")
    return -model.free_energy(data).to(torch.float64) - float(log_z)


def mean_log_likelihood(model: Any, data: Any, log_z: float | None = None) -> float:
    """Average of ``log_likelihood`` over the rows of ``data`` (a (model, data) -> float metric)."""
    return float(log_likelihood(model, visible_rows(check_model(model), data, "data"), log_z).mean())
