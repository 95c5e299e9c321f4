"""The TAP method: its gradient against the exact one, and training RBMs and a DBM on bars-and-stripes."""

from __future__ import annotations

import pytest
import torch

from ebmlab import BernoulliLayer, BoltzmannMachine, GaussianLayer, OneHotLayer
from ebmlab.data import bars_and_stripes_patterns
from ebmlab.tap import tap_log_likelihood
from ebmlab.train import TAP, Trainer


def log_z(model: BoltzmannMachine) -> torch.Tensor:
    """log Z = log Σ_{h_1} exp(−F_even(h_1)): h_1 enumerated, v and h_2 summed out analytically (differentiable)."""
    h1 = model.layers[1].all_states()
    states = [layer.zero_field(h1.shape[0]) for layer in model.layers]
    states[1] = h1
    return torch.logsumexp(-model._partial_free_energy(states, 0), 0)


def exact_ll(model: BoltzmannMachine, x: torch.Tensor) -> float:
    with torch.no_grad():
        return float(-model.free_energy(x).mean() - log_z(model))


def flat(grads) -> torch.Tensor:
    return torch.cat([g.flatten() for g in grads])


@pytest.mark.parametrize("sizes", [[9, 8], [9, 8, 4]])
@pytest.mark.parametrize("order", [2, 3])
def test_tap_gradient_approaches_exact_gradient_at_weak_coupling(sizes: list[int], order: int) -> None:
    """−∇ log-likelihood = ∇(⟨F⟩ + log Z); TAP's surrogate gradient agrees to O(W²) relative error."""
    x = bars_and_stripes_patterns(3).double()
    model = BoltzmannMachine([BernoulliLayer(n) for n in sizes]).double()
    model.initialize(x)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for w in model.weights:
            w.copy_(0.3 * torch.randn(w.shape, generator=g, dtype=torch.float64))
    params = list(model.parameters())
    exact = flat(torch.autograd.grad(model.free_energy(x).mean() + log_z(model), params))
    method = TAP(order=order, chains=4, steps=300, tol=1e-10, positive_steps=300)
    tap = flat(torch.autograd.grad(method.loss(model, x, g), params))
    assert float((tap - exact).norm() / exact.norm()) < 0.03
    assert 0 < method.metrics()["tap_sweeps"] <= 300


@pytest.mark.parametrize("visible", ["gaussian", "onehot"])
def test_tap_gradient_of_other_unit_types_at_weak_coupling(visible: str) -> None:
    """Gaussian visible units (their mean and log-variance too) and one-hot visible sites."""
    g = torch.Generator().manual_seed(1)
    if visible == "gaussian":
        model = BoltzmannMachine([GaussianLayer(5), BernoulliLayer(6)]).double()
        x = torch.randn(20, 5, generator=g, dtype=torch.float64)
    else:
        model = BoltzmannMachine([OneHotLayer(3, 4), BernoulliLayer(6)]).double()
        x = torch.nn.functional.one_hot(torch.randint(0, 4, (20, 3), generator=g), 4).flatten(1).double()
    model.initialize(x)
    with torch.no_grad():
        model.weights[0].copy_(0.2 * torch.randn(model.weights[0].shape, generator=g, dtype=torch.float64))
    params = list(model.parameters())
    exact = flat(torch.autograd.grad(model.free_energy(x).mean() + log_z(model), params))
    method = TAP(order=3, chains=2, steps=300, tol=1e-10)
    tap = flat(torch.autograd.grad(method.loss(model, x, g), params))
    assert float((tap - exact).norm() / exact.norm()) < 0.02


@pytest.mark.parametrize("order", [2, 3])
def test_tap_training_improves_exact_log_likelihood_of_an_rbm(order: int) -> None:
    x = bars_and_stripes_patterns(3).double()
    model = BoltzmannMachine([BernoulliLayer(9), BernoulliLayer(8)]).double()
    model.initialize(x)
    before = exact_ll(model, x)
    method = TAP(order=order, chains=10, steps=30)
    Trainer(model, method, torch.optim.Adam, lr=0.05, batch_size=14, progress=False, metrics={}).fit(x, 60)
    assert exact_ll(model, x) > before + 0.3
    assert method.particles is not None and method.particles[0].shape == (10, 9)


def test_tap_trains_a_deep_boltzmann_machine() -> None:
    x = bars_and_stripes_patterns(3).double()
    model = BoltzmannMachine([BernoulliLayer(9), BernoulliLayer(8), BernoulliLayer(4)]).double()
    model.initialize(x, method="glorot")
    before = exact_ll(model, x)
    tap = TAP(order=2, steps=10, positive_steps=10)
    Trainer(model, tap, torch.optim.Adam, lr=0.05, batch_size=14, progress=False, metrics={}).fit(x, 80)
    assert exact_ll(model, x) > before + 0.3


def test_tap_log_likelihood_of_an_rbm_at_weak_coupling_is_close_to_exact() -> None:
    x = bars_and_stripes_patterns(3).double()
    model = BoltzmannMachine([BernoulliLayer(9), BernoulliLayer(8)]).double()
    model.initialize(x)
    with torch.no_grad():
        model.weights[0].mul_(10)  # N(0, 0.1²)
    assert tap_log_likelihood(model, x, order=3) == pytest.approx(exact_ll(model, x), abs=1e-4)


def test_tap_state_round_trip_and_bad_arguments() -> None:
    x = bars_and_stripes_patterns(3).double()
    model = BoltzmannMachine([BernoulliLayer(9), BernoulliLayer(8)]).double()
    method = TAP(chains=3, steps=2)
    method.loss(model, x, torch.Generator().manual_seed(0))
    clone = TAP(chains=3)
    clone.load_state_dict(method.state_dict())
    for a, b in zip(clone.particles, method.particles):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="chains"):
        TAP(chains=4).load_state_dict(method.state_dict())
    with pytest.raises(ValueError, match="order"):
        TAP(order=5)
    with pytest.raises(ValueError, match="damping"):
        TAP(damping=2.0)
