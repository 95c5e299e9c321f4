"""One property suite run over every layer type (in the spirit of scikit-learn's estimator checks)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate

from ebmlab.layers import BernoulliLayer, GaussianLayer, Layer, OneHotLayer, layer_from_spec, parse_layers


def make_layer(kind: str) -> Layer:
    g = torch.Generator().manual_seed(1)
    layer = {
        "bernoulli": lambda: BernoulliLayer(4),
        "onehot": lambda: OneHotLayer(2, 3),
        "gaussian": lambda: GaussianLayer(3),
    }[kind]().double()
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(0.7 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    layer.name = kind
    return layer


KINDS = ["bernoulli", "onehot", "gaussian"]


def valid_states(layer: Layer, rows: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(2)
    return layer.sample(torch.randn(rows, layer.n, generator=g, dtype=torch.float64), 1.0, g)


def conditional_energy(layer: Layer, x: torch.Tensor, field: torch.Tensor) -> torch.Tensor:
    """E(x | field) = H(x) − field·r(x)."""
    return layer.energy(x) - (field * layer.rescale(x)).sum(-1)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("beta", [1.0, 0.4])
def test_energy_differences_match_log_probabilities(kind: str, beta: float) -> None:
    layer = make_layer(kind)
    field = torch.randn(6, layer.n, dtype=torch.float64)
    x1, x2 = valid_states(layer, 6), valid_states(layer, 6).flip(0)
    dist = layer.conditional(field, beta)
    lhs = beta * (conditional_energy(layer, x1, field) - conditional_energy(layer, x2, field))
    rhs = -(dist.log_prob(x1) - dist.log_prob(x2))
    torch.testing.assert_close(lhs, rhs)
    # and the normalizer is log_partition: log p = −β E(x|f) − log Z(f, β)
    torch.testing.assert_close(
        dist.log_prob(x1), -beta * conditional_energy(layer, x1, field) - layer.log_partition(field, beta)
    )


@pytest.mark.parametrize("kind", ["bernoulli", "onehot"])
@pytest.mark.parametrize("beta", [1.0, 2.5])
def test_log_partition_equals_enumeration(kind: str, beta: float) -> None:
    layer = make_layer(kind)
    field = torch.randn(5, layer.n, dtype=torch.float64)
    states = layer.all_states()
    assert states.shape[0] == layer.num_states()
    assert torch.unique(states, dim=0).shape[0] == states.shape[0]
    for s in states:
        layer.check(s.unsqueeze(0))
    exponent = beta * (field @ states.T - layer.energy(states))
    torch.testing.assert_close(layer.log_partition(field, beta), torch.logsumexp(exponent, -1))


@pytest.mark.parametrize("beta", [1.0, 0.3])
def test_gaussian_log_partition_equals_numerical_integration(beta: float) -> None:
    layer = make_layer("gaussian")
    field = torch.randn(2, layer.n, dtype=torch.float64)
    mu, var = layer.loc.detach().numpy(), layer.var.detach().numpy()
    for row in range(2):
        total = 0.0
        for j in range(layer.n):
            f = float(field[row, j])

            def integrand(x: float, j: int = j, f: float = f) -> float:
                return math.exp(beta * (f * x / var[j] - (x - mu[j]) ** 2 / (2 * var[j])))

            value, _ = integrate.quad(integrand, -np.inf, np.inf)
            total += math.log(value)
        assert float(layer.log_partition(field[row : row + 1], beta).detach()) == pytest.approx(total, rel=1e-7)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("beta", [1.0, 0.5])
def test_samples_follow_the_conditional(kind: str, beta: float) -> None:
    layer = make_layer(kind)
    field = torch.randn(1, layer.n, dtype=torch.float64).expand(40000, -1)
    g = torch.Generator().manual_seed(3)
    x = layer.sample(field, beta, g)
    dist = layer.conditional(field[:1], beta)
    torch.testing.assert_close(layer.mean(field[:1], beta), dist.mean)
    torch.testing.assert_close(x.mean(0), dist.mean[0], atol=0.02, rtol=0)
    if kind == "gaussian":
        torch.testing.assert_close(x.var(0), dist.variance[0], atol=0.03, rtol=0.03)
    else:
        layer.check(x)


@pytest.mark.parametrize("kind", KINDS)
def test_init_from_data_matches_moments(kind: str) -> None:
    layer = make_layer(kind)
    data = valid_states(layer, 500)
    layer.init_from_data(data)
    zero = layer.zero_field(1)
    if kind == "gaussian":
        torch.testing.assert_close(layer.mean(zero)[0], data.mean(0))
        torch.testing.assert_close(layer.var, data.var(0, unbiased=False))
    else:
        torch.testing.assert_close(layer.mean(zero)[0], data.mean(0), atol=2e-3, rtol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_check_rejects_wrong_shape_and_nan(kind: str) -> None:
    layer = make_layer(kind)
    with pytest.raises(ValueError, match=rf"x for layer {kind}.*shape \(batch, {layer.n}\)"):
        layer.check(torch.zeros(2, layer.n + 1, dtype=torch.float64))
    bad = valid_states(layer, 2)
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        layer.check(bad)


def test_bernoulli_check_rejects_non_binary() -> None:
    with pytest.raises(ValueError, match="must be binary"):
        make_layer("bernoulli").check(torch.full((2, 4), 0.5, dtype=torch.float64))


def test_onehot_check_rejects_rows_that_are_not_one_hot() -> None:
    layer = make_layer("onehot")
    x = torch.zeros(2, 6, dtype=torch.float64)
    x[:, [0, 3]] = 1
    layer.check(x)
    x[1, 4] = 1
    with pytest.raises(ValueError, match="row 1 does not have exactly one 1"):
        layer.check(x)


@pytest.mark.parametrize("var", [0.0, -1.0, float("nan")])
def test_gaussian_rejects_non_positive_variance(var: float) -> None:
    with pytest.raises(ValueError, match="var must be a positive"):
        GaussianLayer(3, var=var)


@pytest.mark.parametrize("bad", [0, -2, 2.5, True])
def test_layers_reject_bad_sizes(bad: object) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        BernoulliLayer(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive integer"):
        OneHotLayer(bad, 3)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", KINDS)
def test_spec_round_trip(kind: str) -> None:
    layer = make_layer(kind)
    again = layer_from_spec(layer.spec())
    assert type(again) is type(layer) and again.spec() == layer.spec()


def test_parse_layers() -> None:
    layers = parse_layers("bernoulli:64, gaussian:3,onehot:2x5,onehot:10")
    assert [type(x).__name__ for x in layers] == ["BernoulliLayer", "GaussianLayer", "OneHotLayer", "OneHotLayer"]
    assert [x.n for x in layers] == [64, 3, 10, 10]
    for bad in ["bernoulli", "relu:5", "bernoulli:x"]:
        with pytest.raises(ValueError, match="layer"):
            parse_layers(bad)
