"""Input tensors keep their autograd graph: energy, free_energy and partial_free_energy are
differentiable with respect to their inputs, checked against central finite differences (float64)
and, for RBMs, against the closed form ∂F/∂v = ∂H_v/∂v − r'(v) ⊙ (W E[r(h) | f]), f = r(v) W."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ebmlab import BernoulliLayer, BoltzmannMachine, GaussianLayer, OneHotLayer
from ebmlab.data import Dataset

STACKS = {
    "bernoulli-bernoulli": lambda: [BernoulliLayer(4), BernoulliLayer(3)],
    "gaussian-bernoulli": lambda: [GaussianLayer(3, var=0.7), BernoulliLayer(4)],
    "onehot-bernoulli": lambda: [OneHotLayer(2, 3), BernoulliLayer(3)],
    "bernoulli-gaussian": lambda: [BernoulliLayer(4), GaussianLayer(2, var=1.3)],
    "bernoulli-onehot": lambda: [BernoulliLayer(4), OneHotLayer(1, 3)],
    "deep bernoulli-bernoulli-onehot": lambda: [BernoulliLayer(3), BernoulliLayer(3), OneHotLayer(1, 3)],
}


def model_of(key: str) -> BoltzmannMachine:
    model = BoltzmannMachine(STACKS[key](), seed=3).to(torch.float64)
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.6 * torch.randn(p.shape, generator=g, dtype=torch.float64))
    return model


def valid_states(model: BoltzmannMachine, rows: int = 5) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    return [
        layer.sample(torch.randn(rows, layer.n, generator=g, dtype=torch.float64), 1.0, g).detach()
        for layer in model.layers
    ]


def finite_difference(f, x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Central differences of sum(f(x)) with respect to every entry of x (float64)."""
    out = torch.zeros_like(x)
    flat = x.detach().clone().reshape(-1)
    for k in range(flat.numel()):
        up, down = flat.clone(), flat.clone()
        up[k] += eps
        down[k] -= eps
        out.view(-1)[k] = (f(up.view_as(x)).sum() - f(down.view_as(x)).sum()) / (2 * eps)
    return out


@pytest.mark.parametrize("key", list(STACKS))
def test_free_energy_gradient_in_v_matches_finite_differences(key: str) -> None:
    """The public F(v) at a valid v; the differences perturb v off the valid set, so they use the
    same function without the input validation (model._free_energy), which F(v) calls."""
    model = model_of(key)
    v = valid_states(model)[0].requires_grad_(True)
    (grad,) = torch.autograd.grad(model.free_energy(v).sum(), v)
    torch.testing.assert_close(grad, finite_difference(model._free_energy, v), atol=1e-6, rtol=1e-6)
    model.free_energy(v).sum().backward()
    assert v.grad is not None
    torch.testing.assert_close(v.grad, grad)


@pytest.mark.parametrize("key", [k for k in STACKS if not k.startswith("deep")])
def test_free_energy_gradient_in_v_matches_the_closed_form(key: str) -> None:
    model = model_of(key)
    visible, hidden = model.layers
    v = valid_states(model)[0].requires_grad_(True)
    (grad,) = torch.autograd.grad(model.free_energy(v).sum(), v)
    with torch.no_grad():
        field = visible.rescale(v) @ model.weights[0]
        mean = hidden.mean(field)  # E[h | f]
        back = hidden.rescale(mean) @ model.weights[0].T  # W E[r(h) | f]: r is linear for every layer type
        if isinstance(visible, GaussianLayer):
            expected = (v - visible.loc) / visible.var - back / visible.var
        else:
            expected = -visible.bias - back
    torch.testing.assert_close(grad, expected, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("key", list(STACKS))
def test_energy_gradient_in_every_state_matches_finite_differences(key: str) -> None:
    model = model_of(key)
    states = [s.requires_grad_(True) for s in valid_states(model)]
    grads = torch.autograd.grad(model.energy(states).sum(), states)
    for i, (s, g) in enumerate(zip(states, grads)):

        def energy_in(x: torch.Tensor, i: int = i) -> torch.Tensor:
            return model._energy([x if j == i else t.detach() for j, t in enumerate(states)])

        torch.testing.assert_close(g, finite_difference(energy_in, s), atol=1e-6, rtol=1e-6)
    model.energy(states).sum().backward()
    assert all(s.grad is not None for s in states)


@pytest.mark.parametrize("key", list(STACKS))
@pytest.mark.parametrize("parity", [0, 1])
def test_partial_free_energy_gradient_matches_finite_differences(key: str, parity: int) -> None:
    model = model_of(key)
    states = [s.requires_grad_(True) for s in valid_states(model)]
    kept = [i for i in range(model.depth) if i % 2 != parity]
    grads = torch.autograd.grad(model.partial_free_energy(states, parity).sum(), [states[i] for i in kept])
    for i, g in zip(kept, grads):

        def partial_in(x: torch.Tensor, i: int = i) -> torch.Tensor:
            return model._partial_free_energy([x if j == i else t.detach() for j, t in enumerate(states)], parity)

        torch.testing.assert_close(g, finite_difference(partial_in, states[i]), atol=1e-6, rtol=1e-6)


def test_score_of_a_gaussian_rbm_by_autograd_is_the_langevin_drift() -> None:
    """−∇_v F(v) by autograd on a leaf built by the user, and gradcheck on the public function itself."""
    model = model_of("gaussian-bernoulli")
    v = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: model.free_energy(x), (v,))
    assert torch.autograd.gradcheck(lambda x: model.energy([x, valid_states(model, 4)[1]]), (v,))


def test_non_tensor_inputs_are_still_converted() -> None:
    """numpy arrays, Datasets and nested lists keep working (no graph to keep there)."""
    model = model_of("bernoulli-bernoulli")
    v = valid_states(model)[0]
    expected = model.free_energy(v)
    torch.testing.assert_close(model.free_energy(v.numpy()), expected)
    torch.testing.assert_close(model.free_energy(Dataset(v)), expected)
    torch.testing.assert_close(model.free_energy(v.tolist()), expected)
    torch.testing.assert_close(model.free_energy(np.asarray(v.tolist(), dtype=np.int64)), expected)
