"""The data-centred tempering path (``ebmlab.evaluate.data_path``) against brute-force enumeration, and
PT + BAR on it against exact log Z."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ebmlab import BernoulliLayer, BoltzmannMachine, GaussianLayer
from ebmlab.evaluate import ConvergenceWarning, ais, bar, exact, floor
from ebmlab.evaluate.data_path import DataPath

from .test_evaluate_ais import exact_samples, random_rbm
from .test_evaluate_estimators import strong_rbm


def tiny_rbm(seed: int = 0) -> BoltzmannMachine:
    g = torch.Generator().manual_seed(seed)
    model = BoltzmannMachine([BernoulliLayer(5), BernoulliLayer(4)]).to(torch.float64)
    with torch.no_grad():
        model.weights[0].copy_(1.5 * torch.randn(5, 4, generator=g, dtype=torch.float64))
        model.layers[0].bias.copy_(torch.randn(5, generator=g, dtype=torch.float64))
        model.layers[1].bias.copy_(torch.randn(4, generator=g, dtype=torch.float64))
    return model


def brute_log_f(model: BoltzmannMachine, path: DataPath, h: torch.Tensor, beta: float) -> torch.Tensor:
    """log Σ_{v,n} (1/N) q_n(h)^{1−β} exp(−(1 − β) H_base(v) − β E(v, h)) by enumerating v and n."""
    visible, hidden = model.layers
    vs = visible.all_states().to(torch.float64)
    logits = path.field + hidden.bias  # q_n(h) = Π_j Bern(h_j; σ(c_j + f_nj))
    log_q = h @ logits.T - torch.nn.functional.softplus(logits).sum(-1)  # (states, N)
    energy = (  # E(v, h) for every (h, v) pair
        visible.energy(vs).unsqueeze(0) + hidden.energy(h).unsqueeze(1) - h @ model.weights[0].T @ vs.T
    )
    log_v = -(1 - beta) * path.base.layer.energy(vs).unsqueeze(0) - beta * energy  # (h, v)
    mixture = torch.logsumexp((1 - beta) * log_q, -1) - math.log(log_q.shape[-1])
    return mixture + torch.logsumexp(log_v, -1)


@pytest.mark.parametrize("beta", [0.0, 0.3, 0.8, 1.0])
def test_log_f_is_the_joint_summed_over_visible_states_and_centres(beta: float) -> None:
    model = tiny_rbm()
    data = exact_samples(model, 40, 0)
    path = DataPath(model, data, centres=3, g=torch.Generator().manual_seed(0))
    h = model.layers[1].all_states().to(torch.float64)
    with torch.no_grad():
        got = path.log_f(path.terms(h), beta)
    torch.testing.assert_close(got, brute_log_f(model, path, h, beta), rtol=0, atol=1e-10)
    log_z = float(torch.logsumexp(got, 0))
    if beta == 0.0:  # Z_0 = Z_base: the base rates times a normalised mixture
        assert log_z == pytest.approx(path.log_z0, abs=1e-10)
    if beta == 1.0:  # the index drops out: Z_1 = Z
        assert log_z == pytest.approx(float(exact.log_partition(model)), abs=1e-10)


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])
def test_sweep_leaves_the_tempered_distribution_invariant(beta: float) -> None:
    """4,000 exact draws of p_β(h) ∝ f_β(h), two sweeps each (every row its β): the histogram over the 16
    hidden states stays within total variation 0.03 of p_β (a broken conditional moves it by > 0.1)."""
    model = tiny_rbm(1)
    data = exact_samples(model, 40, 1)
    g = torch.Generator().manual_seed(2)
    path = DataPath(model, data, centres=5, g=g)
    states = model.layers[1].all_states().to(torch.float64)
    p = torch.softmax(path.log_f(path.terms(states), beta), 0)
    pick = torch.multinomial(p, 4000, replacement=True, generator=g)
    h = states[pick]
    betas = torch.full((4000,), beta, dtype=torch.float64)
    for _ in range(2):
        h = path.sweep(path.terms(h), betas, g)
    codes = (h * 2 ** torch.arange(3, -1, -1, dtype=torch.float64)).sum(-1).long()
    freq = torch.bincount(codes, minlength=16).to(torch.float64) / 4000
    tv = 0.5 * float((freq - p).abs().sum())
    assert tv < 0.03, tv


def test_centre_index_follows_the_tempered_mixture_weights() -> None:
    """n | h ∝ q_n(h)^{1−β}: 40,000 draws for one hidden state at β = 0.4 within TV 0.02 of the exact weights."""
    model = tiny_rbm(3)
    data = exact_samples(model, 20, 3)
    g = torch.Generator().manual_seed(4)
    path = DataPath(model, data, centres=6, g=g)
    log_q = path.terms(torch.tensor([[1.0, 0.0, 1.0, 1.0]], dtype=torch.float64))[0]
    exact_w = torch.softmax(0.6 * log_q[0], 0)
    n = path.centre(log_q.expand(40_000, -1), torch.full((40_000,), 0.4, dtype=torch.float64), g)
    freq = torch.bincount(n, minlength=6).to(torch.float64) / 40_000
    assert 0.5 * float((freq - exact_w).abs().sum()) < 0.02
    assert 0.5 * float((torch.softmax(log_q[0], 0) - exact_w).abs().sum()) > 0.05  # β matters here
    uniform = path.centre(log_q.expand(40_000, -1), torch.zeros(40_000, dtype=torch.float64), g)
    assert (torch.bincount(uniform, minlength=6) / 40_000 - 1 / 6).abs().max() < 0.01  # β = 0: exact draws of p_0


def test_start_draws_the_base_and_from_data_the_rows_conditionals() -> None:
    model = tiny_rbm(2)
    data = exact_samples(model, 30, 2)
    g = torch.Generator().manual_seed(3)
    path = DataPath(model, data, centres=30, g=g)
    h = path.start(20_000, g)
    states = model.layers[1].all_states().to(torch.float64)
    p0 = torch.softmax(path.log_f(path.terms(states), 0.0), 0)  # the mixture (1/N) Σ_n p(h | x_n)
    codes = (h * 2 ** torch.arange(3, -1, -1, dtype=torch.float64)).sum(-1).long()
    freq = torch.bincount(codes, minlength=16).to(torch.float64) / h.shape[0]
    assert 0.5 * float((freq - p0).abs().sum()) < 0.02
    field = model.layers[0].rescale(data) @ model.weights[0]
    mean = torch.stack([path.from_data(data, g) for _ in range(2000)]).mean(0)
    torch.testing.assert_close(mean, torch.sigmoid(field + model.layers[1].bias), rtol=0, atol=0.04)


@pytest.mark.parametrize("seed", range(4))
def test_bar_on_the_data_path_matches_exact_log_z(seed: int) -> None:
    """PT + BAR from the training rows: within 0.1 nat of exact log Z (12–20 hidden units), converged."""
    model = random_rbm(seed)
    data = exact_samples(model, 300, seed)
    res = bar.log_partition(model, data, seed=seed, progress=False, warn=False, path="data")
    assert abs(res.log_z - float(exact.log_partition(model))) < 0.1, str(res)
    assert res.converged, str(res)


def test_bar_on_the_data_path_is_exact_on_a_multimodal_model() -> None:
    """Strong couplings (W ~ N(0, 2.5²)): the base-rate path's ladder crosses a transition (error 0.2 nat,
    s.e. 0.15 with these settings); starting at the rows' modes leaves nothing to cross."""
    model = strong_rbm(7)
    data = exact_samples(model, 300, 1)
    log_z = float(exact.log_partition(model))
    for seed in (0, 1):
        res = bar.log_partition(model, data, seed=seed, progress=False, warn=False, path="data")
        assert abs(res.log_z - log_z) < max(3 * res.stderr, 0.05), (seed, str(res), log_z)
        assert res.converged and res.stderr < 0.05


def test_data_path_arguments_are_named() -> None:
    model = random_rbm(0)
    data = exact_samples(model, 20, 0)
    with pytest.raises(ValueError, match="pass data"):
        bar.log_partition(model, path="data", progress=False)
    with pytest.raises(ValueError, match="path must be one of"):
        bar.log_partition(model, data, path="uniform", progress=False)
    with pytest.raises(ValueError, match="centres"):
        bar.log_partition(model, data, path="data", centres=0, progress=False)
    gauss = BoltzmannMachine([GaussianLayer(4), BernoulliLayer(3)])
    with pytest.raises(TypeError, match="Bernoulli or one-hot"):
        DataPath(gauss, torch.zeros(5, 4))


def test_floor_anneals_from_the_rows_and_falls_back_for_gaussian_units() -> None:
    """The floor (forward AIS from the rows, 100 chains) within 0.05 nat of exact log Z on a multimodal RBM; on a
    Gaussian-visible RBM (which the data-centred path does not take) the one-step floor, within 0.1 nat."""
    model = strong_rbm(3)
    data = exact_samples(model, 300, 2)
    g = torch.Generator().manual_seed(5)
    assert abs(floor.log_z_floor(model, data, generator=g) - float(exact.log_partition(model))) < 0.05
    gauss = BoltzmannMachine([GaussianLayer(3), BernoulliLayer(6)]).to(torch.float64)
    with torch.no_grad():
        gauss.weights[0].copy_(0.5 * torch.randn(3, 6, generator=g, dtype=torch.float64))
    rows = exact.sample(gauss, 300, seed=6)[0]
    got = floor.log_z_floor(gauss, rows, 2000, g)
    assert abs(got - float(exact.log_partition(gauss))) < 0.1, got


def test_floor_names_bad_arguments() -> None:
    """``log_z_floor`` called directly checks its rows and counts like every estimator: NaN, a wrong number of
    columns, text, no rows, a deep stack and a non-positive ``samples`` each get an error that names them."""
    model = strong_rbm(3)
    rows = exact_samples(model, 20, 1)
    for bad, error, match in (
        (torch.full((3, 16), float("nan"), dtype=torch.float64), ValueError, "rows contains NaN"),
        (rows[:, :15], ValueError, "rows has 15 columns"),
        (np.array([["a"] * 16]), TypeError, "rows must hold numbers"),
        (rows[:0], ValueError, "rows must have at least 1 row"),
    ):
        with pytest.raises(error, match=match):
            floor.log_z_floor(model, bad)
    with pytest.raises(ValueError, match="samples"):
        floor.log_z_floor(model, rows, 0)
    deep = BoltzmannMachine([BernoulliLayer(4), BernoulliLayer(3), BernoulliLayer(2)])
    with pytest.raises(ValueError, match="needs an RBM"):
        floor.log_z_floor(deep, torch.zeros(5, 4))


def test_forward_ais_on_the_data_path_matches_exact_log_z_and_says_so() -> None:
    """Forward AIS from the rows (``ais.log_partition(path="data")``) on a multimodal RBM: within 3 s.e. (and
    0.05 nat) of exact log Z with a converged verdict; a 1-step run from rows far from the model's modes (uniform
    noise) is flagged by its weights."""
    model = strong_rbm(7)
    data = exact_samples(model, 300, 3)
    log_z = float(exact.log_partition(model))
    res = ais.log_partition(model, 200, "fast", data=data, path="data", progress=False, warn=False)
    assert abs(res.log_z - log_z) < max(3 * res.stderr, 0.05) and res.converged, str(res)
    assert res.floor is not None and res.steps == 725
    with pytest.warns(ConvergenceWarning):
        noise = (torch.rand(5, 16, generator=torch.Generator().manual_seed(0)) < 0.5).to(torch.float64)
        short = ais.log_partition(model, 200, [0.0, 1.0], data=noise, path="data", progress=False)
    assert not short.converged
    with pytest.raises(ValueError, match="path='data' is forward AIS"):
        ais.log_partition(model, 10, "fast", data=data, path="data", reverse=True, progress=False)
    with pytest.raises(ValueError, match="path must be"):
        ais.log_partition(model, 10, "fast", data=data, path="base", progress=False)
