"""ebmlab.sklearn: scikit-learn's estimator checks, and every output against exact math."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from ebmlab import BernoulliLayer, BoltzmannMachine
from ebmlab.evaluate import exact, pseudo_likelihood_rows
from ebmlab.sklearn import BernoulliRBM, GaussianRBM
from ebmlab.train.methods._fast import is_bernoulli_rbm
from tests._exact import log_z, marginal_free_energy


@parametrize_with_checks([BernoulliRBM(n_components=4, n_iter=3), GaussianRBM(n_components=4, n_iter=3)])
def test_sklearn_estimator_checks(estimator, check) -> None:
    check(estimator)


def _binary(rows: int, cols: int, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random((rows, cols)) < 0.4).astype(np.float64)


def _randomized(est, seed: int, scale: float = 1.0):
    """The fitted estimator with every parameter of its model drawn from N(0, scale²)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in est.model_.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return est


def test_score_samples_is_the_exact_pseudo_likelihood() -> None:
    x = _binary(20, 6, 0)
    rbm = _randomized(BernoulliRBM(n_components=3, n_iter=1, random_state=0).fit(x), 1)
    plain = BoltzmannMachine([BernoulliLayer(6), BernoulliLayer(3)]).double()
    plain.load_state_dict(rbm.model_.state_dict())
    plain.requires_grad_(False)
    np.testing.assert_allclose(rbm.score_samples(x), pseudo_likelihood_rows(plain, x).numpy(), rtol=1e-12)
    # values in [0, 1]: Σ_i log σ(F(ṽ_i) − F(v)), ṽ_i = v with v_i ← 1 − v_i, F by enumerating h
    soft = np.random.default_rng(2).random((4, 6))
    v = torch.tensor(soft)
    f = marginal_free_energy(plain, v)
    expected = torch.zeros(4, dtype=torch.float64)
    for i in range(6):
        flipped = v.clone()
        flipped[:, i] = 1 - flipped[:, i]
        expected += torch.nn.functional.logsigmoid(marginal_free_energy(plain, flipped) - f)
    np.testing.assert_allclose(rbm.score_samples(soft), expected.numpy(), rtol=1e-10)


def test_default_step_is_scikit_learns_pcd_update() -> None:
    """partial_fit: W += lr (⟨v hᵀ⟩_batch − ⟨v hᵀ⟩_chains) with h = σ(vW + c), as scikit-learn's PCD-1 with SGD."""
    x = _binary(40, 7, 3)
    rbm = BernoulliRBM(n_components=5, learning_rate=0.05, batch_size=8, random_state=0)
    rbm.partial_fit(x[:8])
    w, b, c = rbm.components_.T.copy(), rbm.intercept_visible_.copy(), rbm.intercept_hidden_.copy()
    batch = x[8:16]
    rbm.partial_fit(batch)
    v_neg = rbm.trainer_.method.particles[0].numpy()
    assert v_neg.shape == (8, 7) and set(np.unique(v_neg)) <= {0.0, 1.0}

    def sig(a):
        return 1 / (1 + np.exp(-a))

    h_pos, h_neg = sig(batch @ w + c), sig(v_neg @ w + c)
    lr = 0.05
    np.testing.assert_allclose(rbm.components_.T, w + lr * (batch.T @ h_pos / 8 - v_neg.T @ h_neg / 8), atol=1e-12)
    np.testing.assert_allclose(rbm.intercept_visible_, b + lr * (batch.mean(0) - v_neg.mean(0)), atol=1e-12)
    np.testing.assert_allclose(rbm.intercept_hidden_, c + lr * (h_pos.mean(0) - h_neg.mean(0)), atol=1e-12)
    assert rbm.h_samples_.shape == (8, 5)
    assert is_bernoulli_rbm(rbm.model_)  # the analytic fast path serves the probability-valued visible layer


def test_transform_is_the_hidden_mean() -> None:
    x = np.random.default_rng(4).normal(size=(15, 4))
    g = GaussianRBM(n_components=3, n_iter=2, random_state=0).fit(x)
    w, c, var = g.components_.T, g.intercept_hidden_, g.variance_
    np.testing.assert_allclose(g.transform(x), 1 / (1 + np.exp(-((x / var) @ w + c))), rtol=1e-12)
    b = BernoulliRBM(n_components=3, n_iter=2, random_state=0).fit(_binary(15, 4, 5))
    np.testing.assert_allclose(b.transform(x), 1 / (1 + np.exp(-(x @ b.components_.T + b.intercept_hidden_))))


def test_log_likelihood_exact_and_ais() -> None:
    x = _binary(30, 6, 6)
    rbm = _randomized(BernoulliRBM(n_components=4, n_iter=1, random_state=0).fit(x), 7, scale=0.5)
    with torch.no_grad():
        truth = -marginal_free_energy(rbm.model_, torch.tensor(x)) - log_z(rbm.model_)
    ll = rbm.log_likelihood(x)
    assert ll.exact and ll.log_z_stderr == 0.0
    np.testing.assert_allclose(ll.per_row, truth.numpy(), rtol=1e-10)
    # AIS when enumeration is refused: within a few standard errors of the exact log Z
    limit = exact.MAX_CONFIGURATIONS
    try:
        exact.MAX_CONFIGURATIONS = 4
        est = rbm.log_likelihood(x, chains=200, betas="fast", seed=0)
    finally:
        exact.MAX_CONFIGURATIONS = limit
    assert not est.exact and est.log_z_stderr > 0
    assert abs(est.log_z - ll.log_z) < 5 * est.log_z_stderr + 0.02
    with pytest.raises(ValueError, match="binary"):
        rbm.log_likelihood(x * 0.5)


def test_gaussian_density_integrates_to_one() -> None:
    """GaussianRBM on one feature: ∫ exp(log_likelihood) dv = 1, and score_samples = −F(v)."""
    x = np.random.default_rng(8).normal(2.0, 1.5, size=(50, 1))
    g = GaussianRBM(n_components=3, n_iter=3, random_state=0, learning_rate=0.01).fit(x)
    grid = np.linspace(-25, 30, 20001).reshape(-1, 1)
    density = np.exp(g.log_likelihood(grid).per_row)
    assert abs(np.trapezoid(density, grid[:, 0]) - 1) < 1e-6
    with torch.no_grad():
        f = marginal_free_energy(g.model_, torch.tensor(x[:5]))
    np.testing.assert_allclose(g.score_samples(x[:5]), -f.numpy(), rtol=1e-10)


def test_pickle_resumes_training_identically() -> None:
    x = _binary(30, 5, 9)
    a = BernoulliRBM(n_components=3, n_iter=2, batch_size=5, random_state=1, optimizer="adam", learning_rate=0.01)
    a.fit(x)
    b = pickle.loads(pickle.dumps(a))
    a.partial_fit(x[:10])
    b.partial_fit(x[:10])
    np.testing.assert_array_equal(a.components_, b.components_)
    np.testing.assert_array_equal(a.h_samples_, b.h_samples_)


@pytest.mark.parametrize("method", ["pcd", "cd", "pt", "tap"])
def test_every_method_learns(method: str) -> None:
    """Two repeated patterns: training raises the pseudo-likelihood far above the untrained model's."""
    x = np.tile(np.array([[1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1]], dtype=float), (20, 1))
    untrained = BernoulliRBM(n_components=4, n_iter=0, random_state=0).fit(x).score_samples(x).mean()
    rbm = BernoulliRBM(n_components=4, n_iter=10, random_state=0, method=method, optimizer="adam", learning_rate=0.1)
    assert rbm.fit(x).score_samples(x).mean() > untrained + 1.0


def test_pipeline_with_logistic_regression() -> None:
    x = np.vstack([_binary(30, 8, 10) * [1, 1, 1, 1, 0, 0, 0, 0], _binary(30, 8, 11) * [0, 0, 0, 0, 1, 1, 1, 1]])
    y = np.repeat([0, 1], 30)
    rbm = BernoulliRBM(n_components=6, n_iter=40, random_state=0, optimizer="adam", learning_rate=0.05)
    model = Pipeline([("rbm", rbm), ("lr", LogisticRegression(C=100.0))])
    assert model.fit(x, y).score(x, y) > 0.9


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"method": "gibbs"}, "method must be one of"),
        ({"optimizer": "rmsprop"}, "optimizer must be"),
        ({"n_components": 0}, "n_components must be"),
        ({"learning_rate": -1.0}, "learning_rate must be"),
        ({"chains": 0}, "chains must be"),
        ({"dtype": "float16"}, "dtype must be"),
    ],
)
def test_bad_parameters_are_named(params: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        BernoulliRBM(**params).fit(_binary(10, 3, 0))
