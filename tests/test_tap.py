"""TAP Gibbs free energy: accuracy against exact log Z, monotone minimization, envelope gradients."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from ebmlab import BernoulliLayer, BoltzmannMachine, GaussianLayer, OneHotLayer
from ebmlab.tap import gibbs_free_energy, minimize, pair_moments, tap_free_energy, tap_log_partition

from ._exact import log_z, marginal_free_energy

STACKS = {
    "bernoulli-bernoulli": lambda: [BernoulliLayer(8), BernoulliLayer(6)],
    "gaussian-bernoulli": lambda: [GaussianLayer(5), BernoulliLayer(6)],
    "onehot-bernoulli": lambda: [OneHotLayer(3, 3), BernoulliLayer(5)],
    "bernoulli-onehot": lambda: [BernoulliLayer(6), OneHotLayer(2, 3)],
    "onehot-onehot": lambda: [OneHotLayer(2, 3), OneHotLayer(2, 3)],
    "deep-bernoulli": lambda: [BernoulliLayer(6), BernoulliLayer(5), BernoulliLayer(4)],
    "deep-label": lambda: [BernoulliLayer(6), BernoulliLayer(5), OneHotLayer(1, 4)],
}


def random_model(layers: list, scale: float, seed: int) -> BoltzmannMachine:
    """Weights scale·N(0,1), biases N(0, 0.5²), Gaussian means N(0, 0.5²), log-variances N(0, 0.3²)."""
    g = torch.Generator().manual_seed(seed)
    model = BoltzmannMachine(layers).double()
    with torch.no_grad():
        for w in model.weights:
            w.copy_(scale * torch.randn(w.shape, generator=g, dtype=torch.float64))
        for layer in model.layers:
            for name, p in layer.named_parameters():
                p.copy_((0.3 if name == "log_var" else 0.5) * torch.randn(p.shape, generator=g, dtype=torch.float64))
    return model


def gaussian_bernoulli_log_z(model: BoltzmannMachine) -> float:
    """Σ_h exp(bᵀh) Π_i ∫ dx exp(−(x−μ)²/2σ² + x (Wh)_i/σ²) = Σ_h exp(bᵀh) Π_i √(2πσ²) exp(((μ+Wh)² − μ²)/2σ²)."""
    vis, hid = model.layers
    h = hid.all_states()
    mu, var = vis.loc, vis.var
    shifted = mu + h @ model.weights[0].T
    terms = h @ hid.bias + ((shifted**2 - mu**2) / (2 * var) + 0.5 * torch.log(2 * math.pi * var)).sum(-1)
    return float(torch.logsumexp(terms, 0))


@torch.no_grad()
def exact_log_z(model: BoltzmannMachine) -> float:
    if isinstance(model.layers[0], GaussianLayer):
        return gaussian_bernoulli_log_z(model)
    return float(log_z(model))


def tap_errors(kind: str, scale: float, seeds: range = range(2)) -> list[float]:
    """Mean |−min Γ − log Z| over seeds for orders 1, 2, 3."""
    errors = [0.0, 0.0, 0.0]
    for seed in seeds:
        model = random_model(STACKS[kind](), scale, seed)
        exact = exact_log_z(model)
        for k, order in enumerate((1, 2, 3)):
            errors[k] += abs(tap_log_partition(model, order, chains=2, steps=500, tol=1e-11) - exact) / len(seeds)
    return errors


@pytest.mark.parametrize("kind", sorted(STACKS))
def test_tap_log_partition_approaches_exact_with_order(kind: str) -> None:
    coarse, fine = tap_errors(kind, 0.1), tap_errors(kind, 0.05)
    for errors in (coarse, fine):
        assert errors[0] > 10 * errors[1], "the Onsager term must beat naive mean field at weak coupling"
    # halving the couplings: naive mean field errs like W², the 2nd order at least like W³
    assert coarse[0] / fine[0] > 3
    assert coarse[1] / fine[1] > 7
    if kind.startswith("gaussian"):
        # a Gaussian's third central moment vanishes: the 3rd-order term is zero on its connections
        assert fine[2] == pytest.approx(fine[1], rel=1e-6, abs=1e-12)
        assert coarse[1] / fine[1] > 12  # the first non-zero correction is of 4th order
    else:
        assert coarse[2] / fine[2] > 12  # the 3rd order errs like W⁴
        assert fine[2] < fine[1]


def test_third_order_matches_gabrie_bernoulli_formula() -> None:
    """Γ₃ − Γ₂ = −(2/3) Σ_ij W_ij³ s_i(½ − m_i) s_j(½ − μ_j) for a Bernoulli RBM."""
    model = random_model(STACKS["bernoulli-bernoulli"](), 0.7, 3)
    m, mu = torch.rand(4, 8, dtype=torch.float64), torch.rand(4, 6, dtype=torch.float64)
    s, t = m * (1 - m), mu * (1 - mu)
    w = model.weights[0]
    expected = -(2 / 3) * torch.einsum("ij,ci,cj->c", w**3, s * (0.5 - m), t * (0.5 - mu))
    diff = gibbs_free_energy(model, [m, mu], 3) - gibbs_free_energy(model, [m, mu], 2)
    torch.testing.assert_close(diff, expected)


def product_moments(a, ma: torch.Tensor, b, mb: torch.Tensor, w: torch.Tensor) -> tuple[float, float]:
    """E_q[U²], E_q[U³] with U = (x − m)ᵀ W (y − μ), by enumerating every state of the product q."""
    xs, ys = a.all_states(), b.all_states()

    def probs(layer, states, m):
        return torch.prod(torch.where(states == 1, m, 1 - m if isinstance(layer, BernoulliLayer) else 1), -1)

    px, py = probs(a, xs, ma), probs(b, ys, mb)
    u = (xs - ma) @ w @ (ys - mb).T
    weight = px.unsqueeze(1) * py.unsqueeze(0)
    return float((weight * u**2).sum()), float((weight * u**3).sum())


@pytest.mark.parametrize("kind", ["bernoulli-bernoulli", "onehot-bernoulli", "bernoulli-onehot", "onehot-onehot"])
def test_pair_moments_equal_enumerated_moments(kind: str) -> None:
    a, b = STACKS[kind]()
    g = torch.Generator().manual_seed(1)
    w = torch.randn(a.n, b.n, generator=g, dtype=torch.float64)

    def mags(layer):
        if isinstance(layer, OneHotLayer):
            return torch.softmax(torch.randn(layer.sites, layer.states, generator=g, dtype=torch.float64), -1).flatten()
        return torch.rand(layer.n, generator=g, dtype=torch.float64)

    ma, mb = mags(a), mags(b)
    second, third = pair_moments(a, ma.unsqueeze(0), b, mb.unsqueeze(0), w, 3)
    exact2, exact3 = product_moments(a, ma, b, mb, w)
    assert float(second) == pytest.approx(exact2, rel=1e-10)
    assert float(third) == pytest.approx(exact3, rel=1e-10)


def test_onehot_second_order_is_categorical_covariance() -> None:
    """−½ Σ_j Var_j Σ_ik W_ij W_kj Cov_ik with Cov = diag(m) − m mᵀ per site (OneHot–Bernoulli)."""
    a, b = OneHotLayer(2, 4).double(), BernoulliLayer(3).double()
    g = torch.Generator().manual_seed(2)
    w = torch.randn(a.n, b.n, generator=g, dtype=torch.float64)
    ma = torch.softmax(torch.randn(5, 2, 4, generator=g, dtype=torch.float64), -1).flatten(-2)
    mb = torch.rand(5, 3, generator=g, dtype=torch.float64)
    cov = a.tap_covariance(ma)  # (rows, sites, states, states)
    wr = w.reshape(2, 4, 3)
    expected = torch.einsum("skj,rskl,slj,rj->r", wr, cov, wr, mb * (1 - mb))
    second, _ = pair_moments(a, ma, b, mb, w, 2)
    torch.testing.assert_close(second, expected)


@pytest.mark.parametrize("order", [2, 3])
def test_minimization_never_increases_gamma(order: int) -> None:
    """Strong couplings make the undamped fixed point oscillate; the backtracking keeps Γ monotone."""
    model = random_model([BernoulliLayer(12), BernoulliLayer(10), BernoulliLayer(6)], 1.5, 4)
    g = torch.Generator().manual_seed(0)
    result = minimize(model, order=order, chains=16, steps=60, damping=1.0, generator=g, record=True)
    gammas = torch.stack(result.history)
    assert torch.isfinite(gammas).all()
    assert (gammas[1:] - gammas[:-1]).max() <= 1e-12  # float64 rounding of Γ ≈ 40 is ~1e-14
    assert (gammas[-1] < gammas[0]).all()


def test_plain_fixed_point_can_increase_gamma_where_backtracking_does_not() -> None:
    """The guard matters: an undamped fixed-point step (no line search) raises Γ on this model."""
    from ebmlab.tap import interaction

    model = random_model([BernoulliLayer(12), BernoulliLayer(10)], 1.5, 4)
    g = torch.Generator().manual_seed(0)
    start = minimize(model, order=2, chains=16, steps=0, generator=g).mags
    mags = [m.clone() for m in start]
    rose = False
    for _ in range(20):
        for i in (1, 0):
            before = gibbs_free_energy(model, mags, 2)
            leaf = mags[i].clone().requires_grad_(True)
            trial = list(mags)
            trial[i] = leaf
            (grad,) = torch.autograd.grad(interaction(model, trial, 2).sum(), leaf)
            mags[i] = model.layers[i].tap_mean(-grad).detach()
            rose |= bool((gibbs_free_energy(model, mags, 2) > before + 1e-9).any())
    assert rose


@pytest.mark.parametrize("kind", ["bernoulli-bernoulli", "gaussian-bernoulli", "onehot-bernoulli", "deep-bernoulli"])
@pytest.mark.parametrize("order", [2, 3])
def test_envelope_gradient_equals_finite_difference_of_min_gamma(kind: str, order: int) -> None:
    """d/dθ min_m Γ(m; θ) = ∂Γ/∂θ at m* (magnetizations detached)."""
    model = random_model(STACKS[kind](), 0.4, 5)
    start = minimize(model, order=order, chains=1, steps=300, tol=1e-12).mags

    def min_gamma() -> float:
        return float(minimize(model, start, order=order, steps=300, tol=1e-12).gamma[0])

    mags = minimize(model, start, order=order, steps=300, tol=1e-12).mags
    gamma = gibbs_free_energy(model, [m.detach() for m in mags], order)[0]
    params = dict(model.named_parameters())
    grads = dict(zip(params, torch.autograd.grad(gamma, list(params.values()))))
    eps = 1e-5
    for name, p in params.items():
        for idx in itertools.islice(itertools.product(*map(range, p.shape)), 2):
            with torch.no_grad():
                p[idx] += eps
            up = min_gamma()
            with torch.no_grad():
                p[idx] -= 2 * eps
            down = min_gamma()
            with torch.no_grad():
                p[idx] += eps
            assert float(grads[name][idx]) == pytest.approx((up - down) / (2 * eps), abs=1e-6), name


@pytest.mark.parametrize("order", [2, 3])
def test_clamped_minimum_is_exact_free_energy_of_an_rbm(order: int) -> None:
    """With v clamped the hidden units are independent: min_h Γ(v, h) = F(v) exactly."""
    model = random_model([BernoulliLayer(7), BernoulliLayer(5)], 1.0, 6)
    v = torch.randint(0, 2, (6, 7), generator=torch.Generator().manual_seed(0)).double()
    torch.testing.assert_close(tap_free_energy(model, v, order), marginal_free_energy(model, v))


def test_clamped_minimum_approximates_dbm_free_energy() -> None:
    model = random_model([BernoulliLayer(6), BernoulliLayer(5), BernoulliLayer(4)], 0.2, 7)
    v = torch.randint(0, 2, (5, 6), generator=torch.Generator().manual_seed(0)).double()
    exact = marginal_free_energy(model, v)
    err2 = (tap_free_energy(model, v, 2) - exact).abs().max()
    err1 = (tap_free_energy(model, v, 1) - exact).abs().max()
    assert err2 < 2e-3
    assert err2 < err1 / 5


def test_bad_arguments_are_refused() -> None:
    model = BoltzmannMachine([BernoulliLayer(3), BernoulliLayer(2)])
    with pytest.raises(ValueError, match="order"):
        tap_log_partition(model, order=4)
    with pytest.raises(ValueError, match="damping"):
        minimize(model, damping=0.0)
    with pytest.raises(ValueError, match="mags"):
        minimize(model, [torch.zeros(1, 3)])
