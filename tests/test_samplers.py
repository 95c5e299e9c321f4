"""Gibbs–Langevin (MALA) on Gaussian units against exact moments of tiny Gaussian–Bernoulli RBMs.

With H Bernoulli hidden units the visible marginal is a mixture of 2^H Gaussians,
p(v) = Σ_h p(h) N(v; μ + W h, diag σ²), p(h) ∝ exp(−F(h)), so its mean and covariance are exact.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from ebmlab import BernoulliLayer, BoltzmannMachine, GaussianLayer
from ebmlab.samplers import Gibbs, GibbsLangevin, get_sampler
from ebmlab.train import CD, PCD, PT


def tiny_grbm(seed: int = 0, nv: int = 3, nh: int = 3, scale: float = 1.2) -> BoltzmannMachine:
    g = torch.Generator().manual_seed(seed)
    model = BoltzmannMachine([GaussianLayer(nv), BernoulliLayer(nh)]).double()
    with torch.no_grad():
        model.weights[0].copy_(scale * torch.randn(nv, nh, generator=g, dtype=torch.float64))
        model.layers[0].loc.copy_(torch.randn(nv, generator=g, dtype=torch.float64))
        model.layers[0].log_var.copy_(0.5 * torch.randn(nv, generator=g, dtype=torch.float64))
        model.layers[1].bias.copy_(torch.randn(nh, generator=g, dtype=torch.float64))
    return model


def exact_moments(model: BoltzmannMachine, beta: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and covariance of p_β(v) = Σ_h p_β(h) N(v; μ + W h, σ²/β), p_β(h) ∝ exp(−β F(h)), by enumeration."""
    nv, nh = model.sizes
    hs = torch.tensor(list(itertools.product([0.0, 1.0], repeat=nh)), dtype=torch.float64)
    with torch.no_grad():
        f = model._partial_free_energy([torch.zeros(len(hs), nv, dtype=torch.float64), hs], 0, beta)
        p = torch.softmax(-beta * f, 0)
        means = model.layers[0].mean(hs @ model.weights[0].T)
        mean = p @ means
        cov = torch.diag(model.layers[0].var / beta) + (means * p[:, None]).T @ means - torch.outer(mean, mean)
    return mean, cov


@pytest.mark.parametrize("beta", [1.0, 0.6])
@pytest.mark.parametrize("target", ["marginal", "conditional"])
def test_mala_reproduces_exact_mixture_moments(target: str, beta: float) -> None:
    model = tiny_grbm(scale=0.9)
    mean, cov = exact_moments(model, beta)
    sampler = GibbsLangevin(step_size=0.4, steps=2, mh=True, target=target)
    rows = 2000
    v = model.sample(rows, steps=40, beta=beta, seed=1, sampler=sampler)[0]
    sd = (cov.diag() / rows).sqrt()  # Monte Carlo standard error of each mean (independent chains)
    assert ((v.mean(0) - mean).abs() < 4 * sd).all(), (v.mean(0), mean)
    # the covariance entries have standard error ≈ √((Σ_ii Σ_jj + Σ_ij²)/rows)
    se = ((torch.outer(cov.diag(), cov.diag()) + cov**2) / rows).sqrt()
    assert ((torch.cov(v.T) - cov).abs() < 4 * se).all(), (torch.cov(v.T), cov)
    assert 0.3 < sampler.acceptance < 1.0


def test_unadjusted_langevin_has_its_exact_discretisation_bias_and_mh_removes_it() -> None:
    """Conditional target with h clamped: y = (1−α)x + α m + √(2ασ²) ξ is AR(1) with stationary
    variance σ²/(1 − α/2) (ULA); with the MH correction the variance is σ² exactly."""
    model = tiny_grbm(nh=2)
    rows, alpha = 3000, 0.5
    h = torch.tensor([[1.0, 0.0]], dtype=torch.float64).expand(rows, -1)
    clamp = [None, torch.ones(rows, 2, dtype=torch.bool)]
    var = model.layers[0].var.detach()
    mean = model.layers[0].mean(h[:1] @ model.weights[0].T)[0].detach()
    g = torch.Generator().manual_seed(0)
    for mh, expected in ((False, var / (1 - alpha / 2)), (True, var)):
        sampler = GibbsLangevin(step_size=alpha, steps=1, mh=mh, target="conditional")
        states = [model.layers[0].random(rows, g), h.clone()]
        with torch.no_grad():
            for _ in range(25):
                states = sampler.sweep(model, states, 1.0, clamp, g)
        torch.testing.assert_close(states[1], h)
        torch.testing.assert_close(states[0].mean(0), mean, atol=0.06, rtol=0)
        torch.testing.assert_close(states[0].var(0), expected, rtol=0.07, atol=0)


@pytest.mark.parametrize("target", ["marginal", "conditional"])
def test_langevin_drift_is_the_preconditioned_gradient_of_log_target(target: str) -> None:
    """α D ∇log π with D = σ²/β equals α(μ + f̄ − x), checked by autograd, with one β per row."""
    model = tiny_grbm()
    sampler = GibbsLangevin(target=target)
    g = torch.Generator().manual_seed(3)
    states = model.random_states(5, g)
    beta = torch.tensor([1.0, 0.5, 0.8, 0.3, 1.0], dtype=torch.float64)
    x = states[0].clone().requires_grad_(True)
    log_pi = sampler._log_target(model, [x, states[1]], beta).sum()
    (grad,) = torch.autograd.grad(log_pi, x)
    with torch.no_grad():
        drift = sampler._drift_target(model, states, 0, beta) - states[0]
    torch.testing.assert_close(drift, grad * model.layers[0].var.detach() / beta[:, None])


def test_conditional_sampling_with_langevin_matches_the_exact_conditional_mean() -> None:
    """p(v₂ | v₀, v₁) = Σ_h p(h | v₀, v₁) N(v₂; μ₂ + (W h)₂, σ₂²): clamped units stay, free ones match."""
    model = tiny_grbm(seed=2)
    v = torch.tensor([[0.5, -0.3, 0.0]], dtype=torch.float64).expand(3000, -1)
    mask = torch.tensor([True, True, False])
    out = model.sample_conditional(v, mask, steps=60, seed=4, sampler=GibbsLangevin(step_size=0.5))
    torch.testing.assert_close(out[:, :2], v[:, :2])
    nh = model.sizes[1]
    hs = torch.tensor(list(itertools.product([0.0, 1.0], repeat=nh)), dtype=torch.float64)
    with torch.no_grad():
        means = model.layers[0].mean(hs @ model.weights[0].T)
        var = model.layers[0].var
        log_w = model.layers[1].energy(hs).neg() - ((v[0, :2] - means[:, :2]) ** 2 / (2 * var[:2])).sum(-1)
        log_w = log_w + (means**2 / (2 * var)).sum(-1) - (model.layers[0].loc ** 2 / (2 * var)).sum()
        exact = torch.softmax(log_w, 0) @ means[:, 2]
    assert abs(float(out[:, 2].mean()) - float(exact)) < 0.06


def test_adaptation_moves_the_step_size_toward_the_target_acceptance_and_freeze_stops_it() -> None:
    model = tiny_grbm(nv=6, nh=4)
    sampler = GibbsLangevin(step_size=1.0, target_acceptance=0.574)
    model.sample(500, steps=100, seed=0, sampler=sampler)
    assert sampler.step_size < 1.0
    before = sampler.step_size
    sampler.freeze()
    model.sample(100, steps=5, seed=1, sampler=sampler)
    assert sampler.step_size == before
    assert set(sampler.metrics()) == {"langevin_acceptance", "langevin_step_size"}


def test_gibbs_langevin_on_a_bernoulli_rbm_is_block_gibbs() -> None:
    model = BoltzmannMachine([BernoulliLayer(4), BernoulliLayer(3)]).double()
    a = model.sample(7, steps=5, seed=3, sampler=GibbsLangevin())
    b = model.sample(7, steps=5, seed=3, sampler=Gibbs())
    c = model.sample(7, steps=5, seed=3)
    for x, y, z in zip(a, b, c):
        torch.testing.assert_close(x, y)
        torch.testing.assert_close(y, z)


def test_sampler_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="step_size"):
        GibbsLangevin(step_size=0)
    with pytest.raises(ValueError, match="steps"):
        GibbsLangevin(steps=0)
    with pytest.raises(ValueError, match="target must be"):
        GibbsLangevin(target="joint")
    with pytest.raises(ValueError, match="target_acceptance"):
        GibbsLangevin(mh=False, target_acceptance=0.5)
    with pytest.raises(TypeError, match="sampler must be"):
        get_sampler("langevin")
    with pytest.raises(ValueError, match="start must be"):
        CD(start="zeros")


def _chains(method, model, batch, seed=0):
    g = torch.Generator().manual_seed(seed)
    method.loss(model, batch, g)
    return method.particles


@pytest.mark.parametrize("make", [lambda s: CD(k=3, sampler=s), lambda s: PCD(k=3, chains=5, sampler=s)])
def test_methods_use_the_sampler_they_are_given(make) -> None:
    """With an exact MH step of size α the chains differ from Gibbs but the loss stays finite."""
    model = tiny_grbm()
    batch = model.sample(5, steps=10, seed=0)[0]
    gibbs = _chains(make(None), model, batch)
    langevin_method = make(GibbsLangevin(step_size=0.3))
    langevin = _chains(langevin_method, model, batch)
    assert not torch.equal(gibbs[0], langevin[0])
    assert "langevin_acceptance" in langevin_method.metrics()
    assert langevin_method.config()["sampler"]["name"] == "gibbs_langevin"


def test_pt_runs_langevin_at_every_rung() -> None:
    model = tiny_grbm()
    method = PT(k=2, chains=4, betas=[1.0, 0.5], sampler=GibbsLangevin(step_size=0.3))
    loss = method.loss(model, model.sample(4, steps=5, seed=0)[0], torch.Generator().manual_seed(0))
    assert torch.isfinite(loss)
    assert {"langevin_acceptance", "swap_rate"} <= set(method.metrics())


def test_cd_from_noise_starts_chains_from_the_base_distribution() -> None:
    """CD(start="noise") particles = k sweeps from model.random_states, whatever the batch."""
    model = tiny_grbm()
    batch = model.sample(6, steps=5, seed=0)[0]
    got = _chains(CD(k=4, start="noise"), model, batch, seed=9)
    g = torch.Generator().manual_seed(9)
    with torch.no_grad():
        expected = model.random_states(6, g)
        for _ in range(4):
            expected = model._gibbs(expected, 1.0, None, g)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b)
    assert _chains(CD(k=4, start="noise"), model, batch + 5.0, seed=9)[0].equal(got[0])


def test_cd_from_noise_on_a_bernoulli_rbm_leaves_the_fast_path_with_the_same_gradient_rule() -> None:
    """The generic route is used (the fast path starts at the data); its gradient is ⟨∂F⟩_data − ⟨∂F⟩_chains."""
    model = BoltzmannMachine([BernoulliLayer(5), BernoulliLayer(3)]).double()
    batch = (torch.rand(8, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64) < 0.5).double()
    method = CD(k=2, start="noise")
    loss = method.backward(model, batch, torch.Generator().manual_seed(1))
    chains = method.particles
    manual = model.free_energy(batch).mean() - model.free_energy(chains[0]).mean()
    torch.testing.assert_close(loss, manual.detach())
