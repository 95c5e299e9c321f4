"""The CD/PCD surrogate gradients against exact gradients from enumeration (float64).

Tolerance: every parameter's gradient term is an average of per-chain values in [−1, 1] (Bernoulli
units), so its Monte-Carlo standard error is at most 1/(2√N); with N = 2¹⁷ chains that is 0.0014,
and we allow TOL = 0.01 (7 standard errors). Chains are burned in for 40 sweeps of a model with
N(0, 0.5²) weights, which mixes in a few sweeps.
"""

from __future__ import annotations

import pytest
import torch

from ebmlab import BernoulliLayer, BoltzmannMachine, GaussianLayer
from ebmlab.train import CD, PCD
from ebmlab.train.methods import data_free_energy
from ebmlab.train.methods._fast import is_bernoulli_rbm

from ._exact import log_z, marginal_free_energy

CHAINS = 2**17
TOL = 0.01


def random_model(sizes: list[int], seed: int = 0) -> BoltzmannMachine:
    model = BoltzmannMachine([BernoulliLayer(n) for n in sizes]).double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


def data_rows(n: int) -> torch.Tensor:
    return torch.tensor([[1, 0, 1, 1], [0, 0, 1, 0], [1, 1, 1, 0]], dtype=torch.float64)[:, :n]


def surrogate_grad(model: BoltzmannMachine, method, batch: torch.Tensor) -> list[torch.Tensor]:
    model.zero_grad()
    method.loss(model, batch, torch.Generator().manual_seed(1)).backward()
    return [p.grad.clone() for p in model.parameters()]


def exact_grad(model: BoltzmannMachine, positive) -> list[torch.Tensor]:
    """∇θ of (positive − log Z), log Z by enumerating every joint state (tests/_exact.py)."""
    model.zero_grad()
    (positive() + log_z(model)).backward()
    return [p.grad.clone() for p in model.parameters()]


def assert_close(got: list[torch.Tensor], want: list[torch.Tensor], tol: float) -> None:
    for g, w in zip(got, want):
        assert (g - w).abs().max().item() < tol, (g, w)


def test_pcd_gradient_of_an_rbm_equals_the_exact_log_likelihood_gradient():
    model = random_model([4, 3])
    v = data_rows(4)
    want = exact_grad(model, lambda: marginal_free_energy(model, v).mean())
    got = surrogate_grad(model, PCD(k=40, chains=CHAINS), v)
    assert_close(got, want, TOL)


def test_cd_gradient_with_long_chains_equals_the_exact_log_likelihood_gradient():
    model = random_model([4, 3], seed=1)
    v = data_rows(4)
    want = exact_grad(model, lambda: marginal_free_energy(model, v).mean())
    got = surrogate_grad(model, CD(k=40), v.repeat(CHAINS // 3, 1))
    assert_close(got, want, TOL)


def mean_field_free_energy(model: BoltzmannMachine, v: torch.Tensor) -> torch.Tensor:
    """Naive mean-field F_MF(v) = ⟨E⟩_q − H(q) of a Bernoulli depth-3 stack, with q at its fixed point.

    The fixed point is found here (200 damped-free sweeps), and q is detached: by the envelope
    theorem ∂F_MF/∂θ equals the partial derivative at fixed q, which autograd then gives.
    """
    w1, w2 = model.weights
    b0, b1, b2 = (layer.bias for layer in model.layers)
    with torch.no_grad():
        m1 = torch.full((v.shape[0], w1.shape[1]), 0.5, dtype=v.dtype)
        m2 = torch.full((v.shape[0], w2.shape[1]), 0.5, dtype=v.dtype)
        for _ in range(200):
            m1 = torch.sigmoid(b1 + v @ w1 + m2 @ w2.T)
            m2 = torch.sigmoid(b2 + m1 @ w2)
    energy = -(v @ b0) - (m1 @ b1) - (m2 @ b2) - ((v @ w1) * m1).sum(1) - ((m1 @ w2) * m2).sum(1)
    entropy = sum(-(m * m.log() + (1 - m) * (1 - m).log()).sum(1) for m in (m1, m2))
    return energy - entropy


def test_pcd_gradient_of_a_depth_3_stack_equals_the_exact_mean_field_bound_gradient():
    """Negative phase: exact ∇log Z by enumeration; positive phase: the mean-field bound (see base.py)."""
    model = random_model([4, 3, 2], seed=2)
    v = data_rows(4)
    want = exact_grad(model, lambda: mean_field_free_energy(model, v).mean())
    got = surrogate_grad(model, PCD(k=40, chains=CHAINS), v)
    assert_close(got, want, TOL)


def test_mean_field_bound_is_below_the_exact_log_likelihood():
    """Sanity of the test's own F_MF: F_MF(v) ≥ F(v) (a lower bound on log p)."""
    model = random_model([4, 3, 2], seed=2)
    v = data_rows(4)
    assert (mean_field_free_energy(model, v) >= marginal_free_energy(model, v) - 1e-12).all()


def test_positive_phase_with_a_gaussian_even_layer_is_the_mean_field_gradient():
    """Top layer Gaussian: q₂ = N(m₂, σ²) with ⟨(h−μ)²⟩ = (m₂−μ)² + σ² (σ² held fixed inside q)."""
    model = BoltzmannMachine([BernoulliLayer(3), BernoulliLayer(2), GaussianLayer(2)]).double()
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.4 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    v = data_rows(3)
    top = model.layers[2]
    w1, w2 = model.weights
    b0, b1 = model.layers[0].bias, model.layers[1].bias
    with torch.no_grad():
        var = top.var
        m1 = torch.full((3, 2), 0.5, dtype=v.dtype)
        for _ in range(300):
            m2 = top.loc + m1 @ w2
            m1 = torch.sigmoid(b1 + v @ w1 + (m2 / var) @ w2.T)
        m2 = top.loc + m1 @ w2
    s = top.var.detach()
    expected_energy = (
        -(v @ b0)
        - (m1 @ b1)
        + (((m2 - top.loc) ** 2 + s) / (2 * top.var)).sum(1)
        - ((v @ w1) * m1).sum(1)
        - ((m1 @ w2) * (m2 / top.var)).sum(1)
    )
    want = torch.autograd.grad(expected_energy.mean(), list(model.parameters()))
    got = torch.autograd.grad(data_free_energy(model, v, mean_field_steps=300).mean(), list(model.parameters()))
    # the model's fixed point stops at a 1e-6 change; without the ⟨H⟩_q − H(m) term the log-variance
    # gradient would be off by ½ per unit
    assert_close(list(got), list(want), 1e-6)


@pytest.mark.parametrize(
    "make",
    [lambda: CD(3), lambda: PCD(2, chains=7), lambda: PCD(2, chains=7, beta_std=0.5)],
    ids=["cd3", "pcd2", "pcd2-driven"],
)
def test_bernoulli_rbm_fast_path_equals_the_autograd_path(make):
    """``backward`` (analytic, fused) and ``loss().backward()`` give the same loss, gradient and chains."""
    results = []
    for fast in (True, False):
        model = random_model([6, 4], seed=4)
        assert is_bernoulli_rbm(model)
        method, g = make(), torch.Generator().manual_seed(3)
        batch = (torch.rand(5, 6, generator=torch.Generator().manual_seed(0)) < 0.5).double()
        for _ in range(3):  # several batches: persistent chains and driven β carry over
            model.zero_grad()
            if fast:
                loss = method.backward(model, batch, g)
            else:
                loss = method.loss(model, batch, g)
                loss.backward()
        results.append((loss.item(), [p.grad.clone() for p in model.parameters()], method.particles))
    (loss_a, grad_a, chains_a), (loss_b, grad_b, chains_b) = results
    assert loss_a == pytest.approx(loss_b, abs=1e-12)
    assert_close(grad_a, grad_b, 1e-12)
    assert all(torch.equal(a, b) for a, b in zip(chains_a, chains_b))


def test_fast_path_adds_to_existing_gradients_like_backward():
    model = random_model([6, 4])
    batch = torch.ones(2, 6, dtype=torch.float64)
    PCD(1, chains=3).backward(model, batch, torch.Generator().manual_seed(0))
    once = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    for _ in range(2):
        method = PCD(1, chains=3)
        method.backward(model, batch, torch.Generator().manual_seed(0))
    assert_close([p.grad for p in model.parameters()], [2 * g for g in once], 1e-12)
