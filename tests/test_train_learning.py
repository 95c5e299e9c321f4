"""Training recovers known distributions (float64, seeded)."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.nn import functional as F

from ebmlab import BernoulliLayer, BoltzmannMachine, GaussianLayer, OneHotLayer
from ebmlab.data import bars_and_stripes_patterns
from ebmlab.train import PCD, Callback, Trainer


def mixture_moments(model: BoltzmannMachine) -> tuple[float, float]:
    """Mean and std of p(v) for a Gaussian visible unit with one OneHot hidden site (closed form).

    p(v | h=k) = N(μ + W_k, σ²) and p(h=k) ∝ exp(b_k + ((μ + W_k)² − μ²)/(2σ²)), so p(v) is a
    mixture with mean Σπ_k c_k and variance σ² + Σπ_k c_k² − mean², c_k = μ + W_k.
    """
    with torch.no_grad():
        mu, var = model.layers[0].loc, model.layers[0].var
        centres = mu + model.weights[0][0]
        pi = torch.softmax(model.layers[1].bias + (centres**2 - mu**2) / (2 * var), 0)
        mean = (pi * centres).sum()
        return mean.item(), (var + (pi * centres**2).sum() - mean**2).sqrt().item()


class Moments(Callback):
    def __init__(self) -> None:
        self.seen: list[tuple[float, float]] = []

    def on_epoch_end(self, state) -> None:
        self.seen.append(mixture_moments(state.model))


def normal_data() -> torch.Tensor:
    return 3 + torch.randn(2000, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def within_10_percent(mean: float, std: float) -> bool:
    return abs(mean - 3) < 0.3 and abs(std - 1) < 0.1


def test_gaussian_onehot_rbm_recovers_mean_and_std_from_a_shifted_start():
    model = BoltzmannMachine([GaussianLayer(1, loc=0.0, var=4.0), OneHotLayer(1, 2)]).double()
    assert not within_10_percent(*mixture_moments(model))
    trainer = Trainer(model, PCD(1, chains=200), torch.optim.Adam, lr=0.05, metrics={}, progress=False)
    trainer.fit(normal_data(), 10)
    trainer.set_lr(0.01)
    trainer.fit(normal_data(), 15)
    assert within_10_percent(*mixture_moments(model)), mixture_moments(model)


def test_gaussian_onehot_rbm_stays_at_the_fitted_start():
    model = BoltzmannMachine([GaussianLayer(1, loc=3.0, var=1.0), OneHotLayer(1, 2)]).double()
    with torch.no_grad():
        model.weights[0].zero_()
    assert mixture_moments(model) == pytest.approx((3.0, 1.0))
    moments = Moments()
    trainer = Trainer(model, PCD(1, chains=200), torch.optim.Adam, lr=0.01, metrics={}, callbacks=[moments])
    trainer.fit(normal_data(), 10)
    assert len(moments.seen) == 10
    assert all(within_10_percent(m, s) for m, s in moments.seen), moments.seen


def exact_log_likelihood(model: BoltzmannMachine, x: torch.Tensor) -> float:
    """⟨log p(v)⟩ with F(v) = −bᵀv − Σ softplus(c + vW) and log Z over all 2⁹ visible states."""
    w, b, c = model.weights[0], model.layers[0].bias, model.layers[1].bias
    every = torch.tensor(list(itertools.product([0.0, 1.0], repeat=x.shape[1])), dtype=x.dtype)
    with torch.no_grad():

        def free_energy(v: torch.Tensor) -> torch.Tensor:
            return -(v @ b) - F.softplus(c + v @ w).sum(1)

        return (-free_energy(x) - torch.logsumexp(-free_energy(every), 0)).mean().item()


def test_pcd_raises_the_exact_log_likelihood_of_3x3_bars_and_stripes_by_2_nats():
    """From −6.24 nats (independent pixels at the data means) toward the optimum −log 14 = −2.64."""
    x = bars_and_stripes_patterns(3).double()
    model = BoltzmannMachine([BernoulliLayer(9), BernoulliLayer(16)]).double()
    model.initialize(x)
    before = exact_log_likelihood(model, x)
    trainer = Trainer(model, PCD(5, chains=100), torch.optim.Adam, lr=0.02, batch_size=14, metrics={}, progress=False)
    trainer.fit(x.repeat(4, 1), 150)
    after = exact_log_likelihood(model, x)
    assert after - before > 2.0, (before, after)
    assert after < -torch.log(torch.tensor(14.0)).item()
