"""Every bad input to the core raises a ValueError/TypeError naming the argument and the expectation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ebmlab import BernoulliLayer, BoltzmannMachine, GaussianLayer, OneHotLayer


@pytest.fixture
def rbm() -> BoltzmannMachine:
    return BoltzmannMachine([BernoulliLayer(4), BernoulliLayer(3)])


def test_layer_list_must_have_two_layers() -> None:
    with pytest.raises(ValueError, match="at least 2 layers"):
        BoltzmannMachine([BernoulliLayer(4)])


def test_layer_list_must_hold_layers() -> None:
    with pytest.raises(TypeError, match=r"layers\[1\] must be an ebmlab layer"):
        BoltzmannMachine([BernoulliLayer(4), torch.nn.Linear(2, 2)])  # type: ignore[list-item]


def test_same_layer_twice_and_duplicate_names() -> None:
    layer = BernoulliLayer(3)
    with pytest.raises(ValueError, match="distinct"):
        BoltzmannMachine([layer, layer])
    with pytest.raises(ValueError, match="unique"):
        BoltzmannMachine([BernoulliLayer(3, name="a"), BernoulliLayer(3, name="a")])


def test_wrong_unit_count(rbm: BoltzmannMachine) -> None:
    with pytest.raises(ValueError, match=r"v has 5 columns, but the visible layer .* has 4 units"):
        rbm.free_energy(torch.zeros(3, 5))


def test_wrong_rank(rbm: BoltzmannMachine) -> None:
    with pytest.raises(ValueError, match="v must be 2-D"):
        rbm.free_energy(torch.zeros(4))


def test_nan_and_inf(rbm: BoltzmannMachine) -> None:
    for bad in (float("nan"), float("inf")):
        v = torch.zeros(2, 4)
        v[1, 2] = bad
        with pytest.raises(ValueError, match="v contains NaN or Inf"):
            rbm.free_energy(v)


def test_non_binary_data_for_bernoulli(rbm: BoltzmannMachine) -> None:
    with pytest.raises(ValueError, match="must be binary"):
        rbm.free_energy(torch.full((2, 4), 0.3))


def test_rows_that_are_not_one_hot() -> None:
    model = BoltzmannMachine([OneHotLayer(2, 2), BernoulliLayer(2)])
    with pytest.raises(ValueError, match="must be one-hot"):
        model.free_energy(torch.ones(1, 4))


def test_gaussian_variance_must_be_positive() -> None:
    with pytest.raises(ValueError, match="var must be a positive finite variance"):
        GaussianLayer(2, var=0.0)


def test_mask_shape_and_dtype(rbm: BoltzmannMachine) -> None:
    v = torch.zeros(2, 4)
    with pytest.raises(ValueError, match=r"mask must have shape \(4,\) or \(2, 4\)"):
        rbm.sample_conditional(v, torch.ones(3, dtype=torch.bool))
    with pytest.raises(TypeError, match="mask must be a boolean mask"):
        rbm.sample_conditional(v, torch.ones(4))
    with pytest.raises(ValueError, match="clamp must be a list of 2 masks"):
        rbm.gibbs_step(rbm.random_states(2), clamp=[None])


def test_onehot_mask_must_cover_whole_sites() -> None:
    model = BoltzmannMachine([OneHotLayer(2, 2), BernoulliLayer(2)])
    v = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    with pytest.raises(ValueError, match="whole sites"):
        model.sample_conditional(v, torch.tensor([True, False, True, True]))


def test_dtype_mismatch(rbm: BoltzmannMachine) -> None:
    with pytest.raises(TypeError, match=r"v has dtype torch.float64, but the model uses torch.float32"):
        rbm.free_energy(torch.zeros(2, 4, dtype=torch.float64))
    # numpy float64 arrays are converted: users should not fight numpy's default dtype
    assert rbm.free_energy(np.zeros((2, 4))).dtype == torch.float32


def test_device_mismatch(rbm: BoltzmannMachine) -> None:
    with pytest.raises(ValueError, match="v is on device meta, but the model is on cpu"):
        rbm.free_energy(torch.zeros(2, 4, device="meta"))


def test_non_numeric_input(rbm: BoltzmannMachine) -> None:
    with pytest.raises(TypeError, match="v must hold numbers"):
        rbm.free_energy([["a", "b", "c", "d"]])


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"n": 0}, "n must be an integer >= 1"), ({"n": 2, "steps": -1}, "steps")]
)
def test_sample_arguments(rbm: BoltzmannMachine, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        rbm.sample(**kwargs)


def test_beta_must_be_positive(rbm: BoltzmannMachine) -> None:
    with pytest.raises(ValueError, match="beta must be a positive"):
        rbm.sample(2, steps=1, beta=0.0)
    with pytest.raises(ValueError, match="one value per row"):
        rbm.gibbs_step(rbm.random_states(3), beta=torch.ones(2))


def test_other_arguments(rbm: BoltzmannMachine) -> None:
    v = torch.zeros(2, 4)
    with pytest.raises(ValueError, match="method must be 'mean' or 'sample'"):
        rbm.impute(v, torch.ones(4, dtype=torch.bool), method="median")
    with pytest.raises(ValueError, match="method must be 'hinton', 'glorot' or 'pca'"):
        rbm.initialize(v, method="xavier")
    with pytest.raises(ValueError, match="layer must index a hidden layer"):
        rbm.predict(v, layer=0)
    with pytest.raises(ValueError, match="parity must be 0"):
        rbm.partial_free_energy([v, torch.zeros(2, 3)], parity=2)
    with pytest.raises(ValueError, match=r"states must hold one tensor per layer \(2\)"):
        rbm.energy([v])


def test_deep_free_energy_too_large_to_enumerate() -> None:
    model = BoltzmannMachine([BernoulliLayer(3), BernoulliLayer(3), BernoulliLayer(30)])
    with pytest.raises(ValueError, match=r"enumerates 1.07e\+09 states"):
        model.free_energy(torch.zeros(1, 3))
