"""Exact log Z and log-likelihood against brute force over every joint state; the mean-field bound."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from ebmlab import BernoulliLayer, BoltzmannMachine, GaussianLayer, OneHotLayer
from ebmlab.evaluate import exact
from ebmlab.evaluate.bounds import mean_field_lower_bound, variational_free_energy

from ._exact import randomize


def states_of(layer) -> torch.Tensor:
    """Every state of a discrete layer, built here with itertools (not with the library)."""
    if isinstance(layer, OneHotLayer):
        eye = torch.eye(layer.states, dtype=torch.float64)
        combos = itertools.product(range(layer.states), repeat=layer.sites)
        return torch.stack([torch.cat([eye[k] for k in c]) for c in combos])
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=layer.n)), dtype=torch.float64)


@torch.no_grad()
def brute_log_z(model: BoltzmannMachine) -> float:
    """logsumexp of −E over the full cartesian product of all layers' states."""
    per_layer = [states_of(layer) for layer in model.layers]
    idx = torch.cartesian_prod(*[torch.arange(s.shape[0]) for s in per_layer])
    if idx.dim() == 1:
        idx = idx.unsqueeze(-1)
    joint = [s[idx[:, i]] for i, s in enumerate(per_layer)]
    return float(torch.logsumexp(-model.energy(joint), 0))


MODELS = {
    "rbm bernoulli": lambda: [BernoulliLayer(6), BernoulliLayer(3)],
    "rbm onehot visible": lambda: [OneHotLayer(2, 3), BernoulliLayer(4)],
    "rbm onehot hidden": lambda: [BernoulliLayer(5), OneHotLayer(2, 3)],
    "depth 3 bernoulli": lambda: [BernoulliLayer(4), BernoulliLayer(5), BernoulliLayer(3)],
    "depth 3 wide middle": lambda: [BernoulliLayer(2), BernoulliLayer(7), BernoulliLayer(2)],
    "depth 3 onehot": lambda: [OneHotLayer(2, 3), BernoulliLayer(3), OneHotLayer(1, 4)],
    "depth 4 mixed": lambda: [BernoulliLayer(3), OneHotLayer(1, 3), BernoulliLayer(2), BernoulliLayer(3)],
}


@pytest.mark.parametrize("name", list(MODELS))
def test_log_partition_matches_brute_force(name: str) -> None:
    model = randomize(BoltzmannMachine(MODELS[name]()), seed=len(name))
    expected = brute_log_z(model)
    assert exact.log_partition(model) == pytest.approx(expected, abs=1e-10)
    assert exact.log_partition(model, chunk=5) == pytest.approx(expected, abs=1e-10)


def test_enumerates_the_cheaper_parity() -> None:
    wide_middle = BoltzmannMachine([BernoulliLayer(2), BernoulliLayer(30), BernoulliLayer(2)])
    assert exact.enumeration_cost(wide_middle) == (0, 16)
    wide_ends = BoltzmannMachine([BernoulliLayer(30), BernoulliLayer(3), BernoulliLayer(30)])
    assert exact.enumeration_cost(wide_ends) == (1, 8)


def test_too_large_is_refused_with_size() -> None:
    model = BoltzmannMachine([BernoulliLayer(784), BernoulliLayer(500)])
    with pytest.raises(ValueError, match=r"3\.273e\+150 configurations .*hidden"):
        exact.log_partition(model)
    with pytest.raises(ValueError, match="max_configurations=100"):
        exact.log_partition(BoltzmannMachine([BernoulliLayer(10), BernoulliLayer(8)]), max_configurations=100)


@pytest.mark.parametrize("name", ["rbm onehot visible", "depth 3 onehot", "depth 4 mixed"])
def test_sample_matches_the_brute_force_joint(name: str) -> None:
    """40,000 exact draws (chunks of 4 configurations, so the two-pass chunk choice is exercised)
    against the brute-force joint: Pearson χ² over the joint states (cells with expected count < 5
    pooled) within 5 standard deviations of its degrees of freedom."""
    model = randomize(BoltzmannMachine(MODELS[name]()), seed=3)
    per_layer = [states_of(layer) for layer in model.layers]
    idx = torch.cartesian_prod(*[torch.arange(s.shape[0]) for s in per_layer])
    joint = torch.cat([s[idx[:, i]] for i, s in enumerate(per_layer)], 1)
    with torch.no_grad():
        p = torch.softmax(-model.energy([s[idx[:, i]] for i, s in enumerate(per_layer)]), 0)
    n = 40_000
    draws = torch.cat(exact.sample(model, n, seed=0, chunk=4), 1)
    assert draws.shape == (n, joint.shape[1])
    cell = (draws.unsqueeze(1) == joint.unsqueeze(0)).all(-1).double().argmax(1)
    counts = torch.bincount(cell, minlength=joint.shape[0]).double()
    expected = n * p
    big = expected >= 5
    observed = torch.cat([counts[big], counts[~big].sum().reshape(1)])
    wanted = torch.cat([expected[big], expected[~big].sum().reshape(1)])
    keep = wanted > 0
    chi2 = float(((observed[keep] - wanted[keep]) ** 2 / wanted[keep]).sum())
    dof = int(keep.sum()) - 1
    assert chi2 < dof + 5 * math.sqrt(2 * dof), (chi2, dof)
    again = torch.cat(exact.sample(model, n, seed=0, chunk=4), 1)
    assert torch.equal(draws, again)  # seeded


def test_sample_refuses_what_it_cannot_enumerate() -> None:
    with pytest.raises(ValueError, match="exact sample would enumerate"):
        exact.sample(BoltzmannMachine([BernoulliLayer(10), BernoulliLayer(8)]), 5, max_configurations=100)
    with pytest.raises(ValueError, match="exact sample needs the even or the odd layers"):
        exact.sample(BoltzmannMachine([GaussianLayer(3), GaussianLayer(2)]), 5)
    with pytest.raises(ValueError, match="n must be"):
        exact.sample(BoltzmannMachine([BernoulliLayer(3), BernoulliLayer(2)]), 0)


def test_log_likelihood_normalizes() -> None:
    model = randomize(BoltzmannMachine([BernoulliLayer(5), BernoulliLayer(2), OneHotLayer(1, 3)]), seed=4)
    ll = exact.log_likelihood(model, states_of(model.layers[0]))
    assert float(torch.logsumexp(ll, 0)) == pytest.approx(0.0, abs=1e-10)
    assert exact.mean_log_likelihood(model, states_of(model.layers[0])) == pytest.approx(float(ll.mean()))


def test_gaussian_bernoulli_rbm_exact_by_analytic_integral() -> None:
    model = BoltzmannMachine([GaussianLayer(4), BernoulliLayer(5)]).to(torch.float64)
    randomize(model, seed=9, scale=0.5)
    mu, var = model.layers[0].loc.detach(), model.layers[0].var.detach()
    w, c = model.weights[0].detach(), model.layers[1].bias.detach()
    # ∫ exp(−Σ(v−μ)²/2σ² + (v/σ²)·(Wh)) dv = Π √(2πσ²) exp(((μ + Wh)² − μ²)/2σ²)
    terms = []
    for h in itertools.product([0.0, 1.0], repeat=5):
        wh = w @ torch.tensor(h, dtype=torch.float64)
        gauss = (0.5 * torch.log(2 * math.pi * var) + ((mu + wh) ** 2 - mu**2) / (2 * var)).sum()
        terms.append(float(c @ torch.tensor(h, dtype=torch.float64) + gauss))
    assert exact.log_partition(model) == pytest.approx(
        float(torch.logsumexp(torch.tensor(terms, dtype=torch.float64), 0)), abs=1e-10
    )


def test_mean_field_bound_below_exact_and_tight_for_rbm() -> None:
    dbm = randomize(BoltzmannMachine([BernoulliLayer(6), BernoulliLayer(4), BernoulliLayer(3)]), seed=2)
    v = states_of(dbm.layers[0])[::5]
    log_z = exact.log_partition(dbm)
    bound = mean_field_lower_bound(dbm, v, log_z)
    ll = exact.log_likelihood(dbm, v, log_z)
    assert (bound <= ll + 1e-12).all()
    assert (ll - bound).max() > 1e-3  # a factorized q is not the posterior of a DBM
    rbm = randomize(BoltzmannMachine([OneHotLayer(2, 3), BernoulliLayer(4)]), seed=1)
    v = states_of(rbm.layers[0])
    torch.testing.assert_close(variational_free_energy(rbm, v), rbm.free_energy(v).detach())
    with pytest.raises(ValueError, match="log_z must be a finite number"):
        mean_field_lower_bound(dbm, v[:, :6] * 0, float("nan"))
