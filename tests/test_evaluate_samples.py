"""Sample metrics (energy distance, k-NN KL, Fréchet) and heat capacity against closed forms."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from ebmlab import BernoulliLayer, BoltzmannMachine
from ebmlab.evaluate import (
    energy_distance,
    frechet_distance,
    get_metric,
    heat_capacity,
    knn_kl,
    knn_reverse_kl,
    model_heat_capacity,
)


def normal(rows: int, dim: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    return scale * torch.randn(rows, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def abs_normal_mean(m: float, s: float) -> float:
    """E|Z| for Z ~ N(m, s²)."""
    return s * math.sqrt(2 / math.pi) * math.exp(-(m**2) / (2 * s**2)) + m * math.erf(m / (s * math.sqrt(2)))


def test_identical_sets_give_zero() -> None:
    x = normal(300, 3, 0)
    assert energy_distance(x, x) == pytest.approx(0.0, abs=1e-12)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-9)
    y = normal(1500, 2, 1)
    same = normal(1500, 2, 2)
    assert abs(knn_kl(y, same)) < 0.05 and abs(knn_reverse_kl(y, same)) < 0.05


def test_energy_distance_grows_with_shift_as_closed_form() -> None:
    x = normal(2000, 1, 3)
    previous = 0.0
    for mu in (0.5, 1.0, 2.0):
        y = normal(2000, 1, 4) + mu
        # 2E|X − Y| − E|X − X'| − E|Y − Y'| with X − Y ~ N(−μ, 2), X − X' ~ N(0, 2)
        expected = 2 * abs_normal_mean(mu, math.sqrt(2)) - 2 * abs_normal_mean(0.0, math.sqrt(2))
        value = energy_distance(x, y)
        assert value == pytest.approx(expected, abs=0.05)
        assert value > previous
        previous = value


def test_knn_kl_matches_gaussian_kl() -> None:
    p = normal(2000, 2, 5)
    shifted = normal(2000, 2, 6) + torch.tensor([1.0, 0.0], dtype=torch.float64)
    assert knn_kl(p, shifted) == pytest.approx(0.5, abs=0.1)  # ‖μ‖²/2
    wide = normal(2000, 1, 7, scale=1.5)
    narrow = normal(2000, 1, 8)
    # KL(N(0,1) ‖ N(0,s²)) = ½(1/s² − 1 + ln s²); KL(N(0,s²) ‖ N(0,1)) = ½(s² − 1 − ln s²)
    var = 1.5**2
    forward, reverse = 0.5 * (1 / var - 1 + math.log(var)), 0.5 * (var - 1 - math.log(var))
    assert knn_kl(narrow, wide, k=3) == pytest.approx(forward, abs=0.04)
    assert knn_reverse_kl(narrow, wide, k=3) == pytest.approx(reverse, abs=0.04)


def test_frechet_distance_closed_form() -> None:
    x = normal(500, 3, 9)
    mu = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    assert frechet_distance(x, x + mu) == pytest.approx(float(mu @ mu), abs=1e-8)
    # scaling by 2: Tr(Σ + 4Σ − 2·2Σ) = Tr Σ
    cov_trace = float(torch.cov(x.T).trace())
    assert frechet_distance(x, 2 * x) == pytest.approx(float(x.mean(0) @ x.mean(0)) + cov_trace, abs=1e-8)


def test_bad_sets_are_refused() -> None:
    with pytest.raises(ValueError, match="same number of columns"):
        energy_distance(torch.zeros(3, 2), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="k must be below"):
        knn_kl(normal(5, 2, 0), normal(5, 2, 1), k=5)


def test_heat_capacity_against_enumeration() -> None:
    g = torch.Generator().manual_seed(0)
    model = BoltzmannMachine([BernoulliLayer(4), BernoulliLayer(3)]).to(torch.float64)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    v = torch.tensor(list(itertools.product([0.0, 1.0], repeat=4)), dtype=torch.float64)
    h = torch.tensor(list(itertools.product([0.0, 1.0], repeat=3)), dtype=torch.float64)
    joint = [v.repeat_interleave(8, 0), h.repeat(16, 1)]
    with torch.no_grad():
        e = model.energy(joint)
    for beta in (1.0, 0.5):
        p = torch.softmax(-beta * e, 0)
        mean = (p * e).sum()
        exact = beta**2 * float((p * (e - mean) ** 2).sum())
        estimate = model_heat_capacity(model, beta=beta, rows=4000, steps=30, seed=1)
        assert estimate == pytest.approx(exact, rel=0.1)
    assert heat_capacity(torch.tensor([1.0, 3.0]), beta=2.0) == pytest.approx(4 * 2.0)
    assert get_metric("heat_capacity") is model_heat_capacity


def test_model_sample_metrics_in_registry() -> None:
    model = BoltzmannMachine([BernoulliLayer(6), BernoulliLayer(4)]).to(torch.float64)
    data = torch.bernoulli(torch.full((60, 6), 0.5, dtype=torch.float64), generator=torch.Generator().manual_seed(0))
    for name in ("energy_distance", "frechet_distance", "knn_kl", "knn_reverse_kl"):
        assert math.isfinite(get_metric(name)(model, data)), name
