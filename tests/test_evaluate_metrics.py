"""Pseudo-likelihood, reconstruction error, free-energy gap, weight metrics and the registry."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from ebmlab import BernoulliLayer, BoltzmannMachine, GaussianLayer, OneHotLayer
from ebmlab.evaluate import (
    PAIRED_METRICS,
    LiveLogLikelihood,
    free_energy_gap,
    get_metric,
    list_metrics,
    mean_log_likelihood,
    pseudo_likelihood,
    pseudo_likelihood_estimate,
    pseudo_likelihood_rows,
    reconstruction_error,
    weight_norm,
    weight_sparsity,
)

from ._exact import randomize


def layer_states(layer) -> list[tuple[float, ...]]:
    """Every state of a tiny discrete layer, listed independently of the library."""
    if isinstance(layer, OneHotLayer):
        sites = [[tuple(1.0 if j == k else 0.0 for j in range(layer.states)) for k in range(layer.states)]]
        return [sum(c, ()) for c in itertools.product(*(sites * layer.sites))]
    return list(itertools.product([0.0, 1.0], repeat=layer.n))


def log_unnormalized(model: BoltzmannMachine, v: tuple[float, ...]) -> float:
    """log Σ_hidden exp(−E(v, h)) by listing every hidden configuration."""
    hidden = [layer_states(layer) for layer in model.layers[1:]]
    terms = []
    for combo in itertools.product(*hidden):
        states = [torch.tensor([v], dtype=torch.float64)] + [torch.tensor([h], dtype=torch.float64) for h in combo]
        terms.append(-float(model.energy(states).detach()))
    return math.log(sum(math.exp(t) for t in terms))


def brute_pseudo_likelihood(model: BoltzmannMachine, v: tuple[float, ...]) -> float:
    """Σ_g log p(v_g | v_{−g}) with each conditional obtained by enumeration."""
    layer = model.layers[0]
    if isinstance(layer, OneHotLayer):
        groups = [list(range(s * layer.states, (s + 1) * layer.states)) for s in range(layer.sites)]
        options = [tuple(1.0 if j == k else 0.0 for j in range(layer.states)) for k in range(layer.states)]
    else:
        groups = [[i] for i in range(layer.n)]
        options = [(0.0,), (1.0,)]
    total = 0.0
    for cols in groups:
        logs = []
        for o in options:
            w = list(v)
            for c, x in zip(cols, o):
                w[c] = x
            logs.append(log_unnormalized(model, tuple(w)))
        total += log_unnormalized(model, v) - math.log(sum(math.exp(x) for x in logs))
    return total


@pytest.mark.parametrize(
    "layers",
    [
        lambda: [BernoulliLayer(5), BernoulliLayer(3)],
        lambda: [OneHotLayer(2, 3), BernoulliLayer(3)],
        lambda: [BernoulliLayer(4), OneHotLayer(1, 3)],
        lambda: [BernoulliLayer(4), BernoulliLayer(2), BernoulliLayer(2)],
        lambda: [OneHotLayer(2, 3), BernoulliLayer(2), OneHotLayer(1, 3)],
    ],
)
def test_pseudo_likelihood_matches_enumeration(layers) -> None:
    model = randomize(BoltzmannMachine(layers()), seed=3)
    vs = layer_states(model.layers[0])
    g = torch.Generator().manual_seed(0)
    pick = [vs[i] for i in torch.randint(len(vs), (6,), generator=g)]
    data = torch.tensor(pick, dtype=torch.float64)
    expected = torch.tensor([brute_pseudo_likelihood(model, v) for v in pick], dtype=torch.float64)
    torch.testing.assert_close(pseudo_likelihood_rows(model, data), expected)
    torch.testing.assert_close(pseudo_likelihood_rows(model, data, chunk=1), expected)
    assert pseudo_likelihood(model, data) == pytest.approx(float(expected.mean()))
    layer = model.layers[0]
    groups = layer.sites if isinstance(layer, OneHotLayer) else layer.n
    assert pseudo_likelihood(model, data, per_unit=True) == pytest.approx(float(expected.mean()) / groups)


def test_pseudo_likelihood_of_independent_units_is_log_likelihood() -> None:
    model = randomize(BoltzmannMachine([BernoulliLayer(6), BernoulliLayer(3)]), seed=1)
    with torch.no_grad():
        model.weights[0].zero_()
    data = torch.tensor(layer_states(model.layers[0])[:10], dtype=torch.float64)
    b = model.layers[0].bias
    exact = (data * b - torch.nn.functional.softplus(b)).sum(-1)
    torch.testing.assert_close(pseudo_likelihood_rows(model, data), exact)


def test_pseudo_likelihood_refuses_gaussian_visible() -> None:
    model = BoltzmannMachine([GaussianLayer(3), BernoulliLayer(2)])
    with pytest.raises(ValueError, match="discrete visible layer"):
        pseudo_likelihood(model, torch.zeros(2, 3))


def test_reconstruction_error_closed_form() -> None:
    model = randomize(BoltzmannMachine([BernoulliLayer(4), BernoulliLayer(3)]), seed=2)
    v = torch.tensor([[1.0, 0, 1, 1], [0, 0, 1, 0]], dtype=torch.float64)
    W, a, c = model.weights[0], model.layers[0].bias, model.layers[1].bias
    h = torch.sigmoid(v @ W + c)
    recon = torch.sigmoid(h @ W.T + a)
    assert reconstruction_error(model, v) == pytest.approx(float(((v - recon) ** 2).mean().detach()))


def test_free_energy_gap_is_difference_of_log_likelihoods() -> None:
    model = randomize(BoltzmannMachine([BernoulliLayer(4), BernoulliLayer(3)]), seed=5)
    train = torch.tensor([[1.0, 0, 1, 1], [0, 0, 1, 0]], dtype=torch.float64)
    valid = torch.tensor([[1.0, 1, 1, 1], [0, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.float64)
    mean_log = [sum(log_unnormalized(model, tuple(r.tolist())) for r in d) / len(d) for d in (train, valid)]
    assert free_energy_gap(model, train, valid) == pytest.approx(mean_log[0] - mean_log[1])


def test_weight_metrics() -> None:
    model = BoltzmannMachine([BernoulliLayer(2), BernoulliLayer(2), BernoulliLayer(1)]).to(torch.float64)
    with torch.no_grad():
        model.weights[0].copy_(torch.tensor([[3.0, 0.0], [0.0, 1e-4]]))
        model.weights[1].copy_(torch.tensor([[4.0], [0.0]]))
    assert weight_norm(model) == pytest.approx(math.sqrt(9 + 16 + 1e-8))
    assert weight_sparsity(model) == pytest.approx(4 / 6)  # 0, 0, 1e-4, 0 are below 0.01 · 4
    assert weight_sparsity(model, tol=0.8) == pytest.approx(5 / 6)
    with torch.no_grad():
        for w in model.weights:
            w.zero_()
    assert weight_sparsity(model) == 1.0


def test_registry() -> None:
    assert {"reconstruction_error", "pseudo_likelihood", "free_energy_gap", "weight_norm"} <= set(list_metrics())
    assert get_metric("pseudo_likelihood") is pseudo_likelihood_estimate
    assert get_metric("pseudo_likelihood_exact") is pseudo_likelihood
    assert get_metric("log_likelihood_exact") is mean_log_likelihood
    live = get_metric("log_likelihood")
    assert isinstance(live, LiveLogLikelihood) and get_metric("log_likelihood") is not live
    assert "free_energy_gap" in PAIRED_METRICS
    model = randomize(BoltzmannMachine([BernoulliLayer(4), BernoulliLayer(3)]), seed=0)
    data = torch.tensor([[1.0, 0, 1, 1], [0, 0, 1, 0]], dtype=torch.float64)
    for name in list_metrics():
        if name not in PAIRED_METRICS:
            assert math.isfinite(get_metric(name)(model, data)), name
    with pytest.raises(ValueError, match="unknown metric 'nope'"):
        get_metric("nope")
    with pytest.raises(TypeError, match="model must be an ebmlab BoltzmannMachine"):
        reconstruction_error("model", data)
