"""Deep Boltzmann machines: mean-field bound, PCD gradient, layerwise pretraining."""

from __future__ import annotations

import pytest
import torch

from ebmlab import BernoulliLayer, BoltzmannMachine
from ebmlab.data import bars_and_stripes
from ebmlab.evaluate.bounds import mean_field_lower_bound
from ebmlab.train import PCD, LayerwiseTrainer, Trainer

from ._exact import log_z, marginal_free_energy


def tiny_dbm(scale: float, seed: int) -> BoltzmannMachine:
    g = torch.Generator().manual_seed(seed)
    model = BoltzmannMachine([BernoulliLayer(4), BernoulliLayer(3), BernoulliLayer(2)]).double()
    with torch.no_grad():
        for w in model.weights:
            w.copy_(scale * torch.randn(w.shape, generator=g, dtype=torch.float64))
        for layer in model.layers:
            layer.bias.copy_(0.5 * torch.randn(layer.n, generator=g, dtype=torch.float64))
    return model


def test_mean_field_bound_is_below_the_exact_log_likelihood() -> None:
    for seed in range(3):
        model = tiny_dbm(1.5, seed)
        v = model.layers[0].all_states()
        with torch.no_grad():
            lz = float(log_z(model))
            exact = -marginal_free_energy(model, v) - lz
            bound = mean_field_lower_bound(model, v, lz)
        assert (bound <= exact + 1e-10).all()
        assert (exact - bound).max() > 1e-4  # a real gap somewhere: the posterior is not factorized


def test_pcd_gradient_matches_the_exact_gradient_in_expectation() -> None:
    """E[∇ PCD loss] = ∇⟨F_MF(v)⟩_data + ∇ log Z once the chains are at equilibrium.

    F_MF(v) = E(v, m) − H(m) at the mean-field fixed point m (held fixed: envelope theorem);
    ∇ log Z by autograd through brute-force enumeration.
    """
    model = tiny_dbm(1.0, 7)
    v = model.layers[0].all_states()[torch.tensor([0, 5, 10, 15, 3])]
    params = list(model.parameters())
    with torch.no_grad():
        m = model.mean_field(v, steps=200, tol=1e-12)

    def entropy(p: torch.Tensor) -> torch.Tensor:
        return -(torch.special.xlogy(p, p) + torch.special.xlogy(1 - p, 1 - p)).sum(-1)

    f_mf = model._energy(m) - entropy(m[1]) - entropy(m[2])  # E at the magnetizations (not states)
    exact = torch.autograd.grad(f_mf.mean() + log_z(model), params)
    method = PCD(k=50, chains=40000)
    g = torch.Generator().manual_seed(0)
    estimate = torch.autograd.grad(method.loss(model, v, g), params)
    for e, a in zip(exact, estimate):
        torch.testing.assert_close(a, e, atol=0.02, rtol=0.0)


def exact_test_ll(model: BoltzmannMachine, x: torch.Tensor) -> float:
    """Mean log p(v): h_1 (8 units) enumerated for log Z, the model's exact F(v) (h_2 enumerated)."""
    with torch.no_grad():
        h1 = model.layers[1].all_states()
        states = [layer.zero_field(h1.shape[0]) for layer in model.layers]
        states[1] = h1
        lz = torch.logsumexp(-model._partial_free_energy(states, 0), 0)
        return float(-model.free_energy(x).mean() - lz)


@pytest.mark.parametrize("seed", [0, 2])
def test_layerwise_pretraining_beats_random_initialization(seed: int) -> None:
    train = bars_and_stripes(3, 140, seed=0).data.double()
    test = bars_and_stripes(3, 100, seed=1).data.double()
    sizes = [9, 8, 4]
    kwargs = {"optimizer": torch.optim.Adam, "lr": 0.02, "batch_size": 14, "progress": False, "seed": seed}

    pretrained = BoltzmannMachine([BernoulliLayer(n) for n in sizes], seed=seed).double()
    layerwise = LayerwiseTrainer(
        pretrained, lambda: PCD(k=1, chains=50), pretrain_epochs=30, finetune_epochs=30, **kwargs
    )
    layerwise.fit(train)
    assert len(layerwise.rbms) == 2
    assert layerwise.rbms[0].sizes == [18, 8] and layerwise.rbms[1].sizes == [8, 8]  # doubled v, doubled h_2

    random = BoltzmannMachine([BernoulliLayer(n) for n in sizes], seed=seed).double()
    random.initialize(train, seed=seed)
    Trainer(random, PCD(k=1, chains=50), metrics={}, **kwargs).fit(train, 30)
    assert exact_test_ll(pretrained, test) > exact_test_ll(random, test) + 0.1


def test_layerwise_assigns_averaged_copies_and_halves_middle_weights() -> None:
    x = bars_and_stripes(3, 28, seed=0).data.double()
    model = BoltzmannMachine([BernoulliLayer(9), BernoulliLayer(6), BernoulliLayer(5), BernoulliLayer(3)]).double()
    layerwise = LayerwiseTrainer(model, lambda: PCD(k=1, chains=10), pretrain_epochs=2, batch_size=14, progress=False)
    bottom, middle, top = layerwise.pretrain(x)
    assert bottom.sizes == [18, 6] and middle.sizes == [6, 5] and top.sizes == [5, 6]
    w = bottom.weights[0].detach()
    torch.testing.assert_close(model.weights[0].detach(), (w[:9] + w[9:]) / 2)
    torch.testing.assert_close(model.weights[1].detach(), middle.weights[0].detach() / 2)
    w = top.weights[0].detach()
    torch.testing.assert_close(model.weights[2].detach(), (w[:, :3] + w[:, 3:]) / 2)
    b = bottom.layers[0].bias.detach()
    torch.testing.assert_close(model.layers[0].bias.detach(), (b[:9] + b[9:]) / 2)
    expected = (bottom.layers[1].bias + middle.layers[0].bias).detach() / 2
    torch.testing.assert_close(model.layers[1].bias.detach(), expected)
    with pytest.raises(TypeError, match="method_factory"):
        LayerwiseTrainer(model, PCD())
