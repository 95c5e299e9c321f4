"""GaussianLayer variance options (floor, ceiling, fixed, learning-rate scale), the init on constant
columns, and Dataset.normalize / standardize / denormalize."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import ebmlab
from ebmlab import BernoulliLayer, BoltzmannMachine, GaussianLayer
from ebmlab.data import as_dataset, denormalize
from ebmlab.train import PCD, Trainer
from ebmlab.train.groups import param_groups


def grbm(**options) -> BoltzmannMachine:
    return BoltzmannMachine([GaussianLayer(4, **options), BernoulliLayer(3)]).double()


def data(rows: int = 40) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(rows, 4, generator=g, dtype=torch.float64)
    x[:, 0] = 0.25  # a constant column, like the border pixels of MNIST
    return x


def test_var_is_clamped_into_the_bounds_and_projection_moves_the_parameter() -> None:
    layer = GaussianLayer(3, var_min=0.1, var_max=2.0).double()
    with torch.no_grad():
        layer.log_var.copy_(torch.tensor([math.log(0.01), 0.0, math.log(5.0)], dtype=torch.float64))
    torch.testing.assert_close(layer.var, torch.tensor([0.1, 1.0, 2.0], dtype=torch.float64))
    # the energy and the conditional use the clamped variance
    x = torch.ones(1, 3, dtype=torch.float64)
    torch.testing.assert_close(layer.energy(x), ((x - layer.loc) ** 2 / (2 * layer.var)).sum(-1))
    layer.project_()
    torch.testing.assert_close(layer.log_var.exp(), torch.tensor([0.1, 1.0, 2.0], dtype=torch.float64))


def test_init_does_not_collapse_on_constant_columns() -> None:
    """σ_j² = max(var_j, 0.01 · mean_k var_k): the constant column gets 1 % of the average variance."""
    model = grbm()
    x = data()
    model.initialize(x)
    var = x.var(0, unbiased=False)
    expected = var.clamp_min(0.01 * float(var.mean()))
    torch.testing.assert_close(model.layers[0].var.detach(), expected)
    assert float(model.layers[0].var.detach()[0]) > 1e-3
    floored = grbm(var_min=0.5)
    floored.initialize(x)
    assert float(floored.layers[0].var.detach().min()) == pytest.approx(0.5)


def test_training_keeps_the_variance_inside_its_bounds() -> None:
    model = grbm(var_min=0.2, var_max=1.5)
    x = data()
    model.initialize(x)
    Trainer(model, PCD(k=1, chains=10), lr=0.05, batch_size=10, seed=0, metrics={}, progress=False).fit(x, epochs=3)
    var = model.layers[0].log_var.detach().exp()
    assert float(var.min()) >= 0.2 - 1e-12 and float(var.max()) <= 1.5 + 1e-12
    assert float(var[0]) == pytest.approx(0.2)  # the constant column sits on the floor, not at 1e-6


def test_fixed_variance_does_not_move_in_training_or_init() -> None:
    model = grbm(var=0.5, learn_var=False)
    x = data()
    model.initialize(x)
    torch.testing.assert_close(model.layers[0].var.detach(), torch.full((4,), 0.5, dtype=torch.float64))
    Trainer(model, PCD(k=1, chains=10), lr=0.05, batch_size=10, seed=0, metrics={}, progress=False).fit(x, epochs=2)
    torch.testing.assert_close(model.layers[0].var.detach(), torch.full((4,), 0.5, dtype=torch.float64))
    assert not model.layers[0].log_var.requires_grad


def test_log_var_learning_rate_scale_is_its_own_parameter_group() -> None:
    """With plain SGD the log-variance step is exactly scale × the step it would take at lr."""
    x = data()
    steps = {}
    for scale in (1.0, 0.1):
        model = grbm(log_var_lr_scale=scale)
        model.initialize(x)
        before = model.layers[0].log_var.detach().clone()
        trainer = Trainer(
            model, PCD(k=1, chains=10), optimizer=torch.optim.SGD, lr=0.01, batch_size=40, seed=0, metrics={},
            progress=False,
        )
        trainer.fit(x, epochs=1)
        steps[scale] = model.layers[0].log_var.detach() - before
        if scale != 1.0:
            assert [g["lr"] for g in trainer.optimizer.param_groups] == [0.01, 0.01 * scale]
            trainer.set_lr(0.5)
            assert [g["lr"] for g in trainer.optimizer.param_groups] == [0.5, 0.5 * scale]
            assert trainer.lr == 0.5
    torch.testing.assert_close(steps[0.1], 0.1 * steps[1.0])


def test_param_groups_hold_every_parameter_once() -> None:
    model = grbm(log_var_lr_scale=0.3)
    groups = param_groups(model, 1e-3)
    listed = [id(p) for g in groups for p in g["params"]]
    assert sorted(listed) == sorted(id(p) for p in model.parameters())
    assert groups[1]["params"] == [model.layers[0].log_var]


def test_options_survive_save_and_load(tmp_path) -> None:
    model = grbm(var_min=0.05, var_max=3.0, learn_var=False, log_var_lr_scale=0.2)
    path = model.save(tmp_path / "m.safetensors")
    layer = ebmlab.load(path).layers[0]
    assert (layer.var_min, layer.var_max, layer.learn_var, layer.log_var_lr_scale) == (0.05, 3.0, False, 0.2)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"var_min": 0.0}, "var_min must be None or a positive"),
        ({"var_max": float("inf")}, "var_max must be None or a positive"),
        ({"var_min": 2.0, "var_max": 1.0}, "must not exceed"),
        ({"log_var_lr_scale": -1.0}, "log_var_lr_scale"),
    ],
)
def test_bad_options_are_refused(options: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        GaussianLayer(3, **options)
    with pytest.raises(TypeError, match="learn_var"):
        GaussianLayer(3, learn_var=1)


# -- Dataset.normalize ---------------------------------------------------------------------------
def pixels() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(50, 6, generator=g, dtype=torch.float64)
    x[:, 0] = 0.0
    return x


def test_normalize_is_global_by_default_and_invertible() -> None:
    ds = as_dataset(pixels())
    out = ds.normalize()
    assert float(out.data.mean()) == pytest.approx(0.0, abs=1e-12)
    assert float(out.data.std(correction=0)) == pytest.approx(1.0)
    assert out.normalization["per_feature"] is False
    assert bool((out.data[:, 0] == out.data[0, 0]).all())  # a constant column stays constant and finite
    torch.testing.assert_close(out.denormalize(out.data), ds.data)
    fixed = ds.normalize(0.1307, 0.3081)
    torch.testing.assert_close(fixed.data, (ds.data - 0.1307) / 0.3081)


def test_standardize_is_per_feature_and_reusable_on_test_data() -> None:
    train, test = as_dataset(pixels()[:30]), as_dataset(pixels()[30:])
    z = train.standardize()
    torch.testing.assert_close(z.data[:, 1:].mean(0), torch.zeros(5, dtype=torch.float64))
    again = test.normalize(**z.normalization)
    std = train.data.std(0, correction=0).clamp_min(1e-8)
    torch.testing.assert_close(again.data, (test.data - train.data.mean(0)) / std)
    torch.testing.assert_close(again.denormalize(again.data), test.data)


def test_normalizing_twice_composes_and_denormalize_takes_the_record() -> None:
    ds = as_dataset(pixels())
    twice = ds.normalize().normalize(mean=1.0, std=2.0)
    torch.testing.assert_close(twice.denormalize(twice.data), ds.data)
    torch.testing.assert_close(denormalize(twice.data.numpy(), twice.normalization), ds.data)
    torch.testing.assert_close(denormalize(ds.data, None), ds.data)


def test_normalize_refuses_bad_statistics() -> None:
    ds = as_dataset(pixels())
    with pytest.raises(ValueError, match="std must be positive"):
        ds.normalize(std=0.0)
    with pytest.raises(ValueError, match="mean must be a single number"):
        ds.normalize(mean=np.zeros(6))
    with pytest.raises(TypeError, match="std must be a number"):
        ds.normalize(std="1")
    with pytest.raises(TypeError, match="per_feature"):
        ds.normalize(per_feature=1)


def test_normalization_is_recorded_with_the_run(tmp_path) -> None:
    from ebmlab.history import Recorder, open_run

    ds = as_dataset(pixels()[:, :4]).normalize()
    model = BoltzmannMachine([GaussianLayer(4), BernoulliLayer(2)]).double()
    model.initialize(ds.data)
    trainer = Trainer(
        model, PCD(k=1, chains=5), lr=1e-3, batch_size=10, seed=0, metrics={}, progress=False,
        callbacks=[Recorder(tmp_path / "h.zarr")],
    )
    trainer.fit(ds, epochs=1)
    run = open_run(tmp_path / "h.zarr")
    assert run.attrs["normalization"] == ds.normalization
