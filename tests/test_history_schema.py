"""The run-history store: names, values against the trained model, attrs, open_runs, exports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ebmlab import BernoulliLayer, BoltzmannMachine, GaussianLayer
from ebmlab.data import as_dataset
from ebmlab.history import (
    Recorder,
    list_runs,
    open_run,
    open_runs,
    schema,
    snapshot_model,
    to_netcdf,
)
from ebmlab.train import CD, PCD, Callback, Trainer, TrainState


def binary_data(rows: int, units: int, seed: int = 0, name: str = "toy") -> object:
    g = torch.Generator().manual_seed(seed)
    shape = (2, units // 2) if units % 2 == 0 else None
    ds = as_dataset((torch.rand(rows, units, generator=g) < 0.3).float(), image_shape=shape)
    ds.name = name
    return ds


def train(path: Path, sizes=(6, 3), epochs: int = 4, method=None, **recorder) -> Trainer:
    model = BoltzmannMachine([BernoulliLayer(n) for n in sizes], seed=1)
    method = method or PCD(k=1, chains=10)
    rec = Recorder(path, **{"snapshot_every": 2, "particles": 7, "bins": 5, **recorder})
    trainer = Trainer(
        model, method, torch.optim.Adam, lr=1e-2, batch_size=10, seed=2, progress=False, metrics={}, callbacks=[rec]
    )
    trainer.fit(binary_data(40, sizes[0]), epochs)
    return trainer


def test_names_dims_and_values_match_the_trained_model(tmp_path: Path) -> None:
    t = train(tmp_path / "run.zarr")
    ds = open_run(tmp_path / "run.zarr")
    assert dict(ds.sizes) == {
        "epoch": 4,
        "snapshot": 3,
        "particle": 7,
        "bin": 5,
        "bin_edge": 6,
        "visible_unit": 6,
        "hidden_unit": 3,
    }
    metrics = {f"metric_{k}" for k in ("loss", "lr", "wall_seconds", "samples_per_second")}
    params = {"weights_0", "visible_bias", "hidden_bias", "energy_hist_data", "energy_hist_fantasy"}
    particles = {"fantasy", "fantasy_hidden", "negative_phase"}
    assert set(ds.data_vars) == metrics | params | particles
    assert {"epoch", "snapshot", "snapshot_epoch", "bin_edges"} <= set(ds.coords)
    assert ds.weights_0.dims == ("snapshot", "visible_unit", "hidden_unit")
    assert ds.fantasy.dims == ("snapshot", "particle", "visible_unit")
    assert ds.fantasy_hidden.dims == ("snapshot", "particle", "hidden_unit")
    assert ds.negative_phase.dims == ("snapshot", "particle", "visible_unit")
    assert ds.fantasy.attrs["kind"] == "fantasy particles"
    assert ds.negative_phase.attrs["kind"] == "persistent chains"
    assert ds.energy_hist_data.dims == ("snapshot", "bin")
    assert ds.bin_edges.dims == ("snapshot", "bin_edge")
    np.testing.assert_array_equal(ds.epoch, [1, 2, 3, 4])
    np.testing.assert_array_equal(ds.snapshot_epoch, [0, 2, 4])
    np.testing.assert_array_equal(ds.metric_loss, t.history["loss"])
    assert ds.metric_loss.attrs["metric"] == "loss"
    # the last snapshot is the final model, its negative phase the method's chains
    np.testing.assert_array_equal(ds.weights_0[-1], t.model.weights[0].detach().numpy())
    np.testing.assert_array_equal(ds.hidden_bias[-1], t.model.layers[1].bias.detach().numpy())
    np.testing.assert_array_equal(ds.negative_phase[-1], t.method.particles[0][:7].numpy())
    for i, p in enumerate(snapshot_model(ds).parameters()):
        assert torch.equal(p, list(t.model.parameters())[i])


def test_energy_histograms_are_fractions_of_free_energies_on_shared_bins(tmp_path: Path) -> None:
    t = train(tmp_path / "run.zarr")
    ds = open_run(tmp_path / "run.zarr")
    with torch.no_grad():
        f_data = t.model.free_energy(binary_data(40, 6).data).double().numpy()
        f_fant = t.model.free_energy(torch.from_numpy(ds.fantasy[-1].values)).double().numpy()
    edges = ds.bin_edges[-1].values
    both = np.concatenate([f_data, f_fant])
    np.testing.assert_allclose([edges[0], edges[-1]], [both.min(), both.max()], rtol=1e-6)
    np.testing.assert_allclose(ds.energy_hist_data[-1], np.histogram(f_data, edges)[0] / 40)
    np.testing.assert_allclose(ds.energy_hist_fantasy[-1], np.histogram(f_fant, edges)[0] / 7)


def test_attrs_round_trip_through_zarr_and_netcdf(tmp_path: Path) -> None:
    t = train(tmp_path / "run.zarr")
    ds = open_run(tmp_path / "run.zarr")
    assert ds.attrs["spec"] == t.model.spec()
    assert ds.attrs["method"] == t.method.config()
    assert ds.attrs["optimizer"]["class"] == "Adam"
    assert ds.attrs["optimizer"]["hyperparameters"]["lr"] == 1e-2
    assert ds.attrs["optimizer"]["hyperparameters"]["betas"] == [0.9, 0.999]
    assert ds.attrs["seed"] == 2
    assert ds.attrs["dataset"] == "toy"
    assert ds.attrs["image_shape"] == [2, 3]
    assert set(ds.attrs["versions"]) == {"python", "torch", "numpy", "xarray", "zarr", "ebmlab"}
    assert ds.attrs["versions"]["torch"] == torch.__version__
    assert ds.attrs["status"] == "finished"
    assert ds.attrs["recorder"]["snapshot_every"] == 2
    nc = to_netcdf(tmp_path / "run.zarr", tmp_path / "run.nc")
    back = open_run(nc)
    for key in ("spec", "method", "optimizer", "seed", "dataset", "image_shape", "versions", "status"):
        assert back.attrs[key] == ds.attrs[key], key
    assert json.loads(json.dumps(back.attrs["spec"])) == t.model.spec()
    for name in ds.variables:
        np.testing.assert_array_equal(back[name].values, ds[name].values)


def test_metric_first_seen_later_reads_nan_before(tmp_path: Path) -> None:
    model = BoltzmannMachine([BernoulliLayer(4), BernoulliLayer(2)])
    trainer = Trainer(model, CD(), batch_size=5, progress=False)
    state = TrainState(trainer, model, trainer.method, trainer.optimizer, binary_data(10, 4), epochs=3)
    rec = Recorder(tmp_path / "r.zarr", particles=3, bins=4)
    rec.on_train_begin(state)
    for epoch, metrics in enumerate([{"a": 1.0}, {"a": 2.0, "b": 5.0}, {"b": 6.0}], start=1):
        state.epoch, state.metrics = epoch, metrics
        rec.on_epoch_end(state)
        assert open_run(tmp_path / "r.zarr").sizes["epoch"] == epoch
    rec.on_train_end(state)
    ds = open_run(tmp_path / "r.zarr")
    np.testing.assert_array_equal(ds.metric_a, [1.0, 2.0, np.nan])
    np.testing.assert_array_equal(ds.metric_b, [np.nan, 5.0, 6.0])
    # the fantasy chains are the recorder's own, at every snapshot; CD kept no particles before
    # the first batch (and none ran here): its negative-phase rows are NaN, labelled by what they are
    assert np.isin(ds.fantasy.values, [0.0, 1.0]).all()
    assert np.isnan(ds.negative_phase.values).all()
    assert ds.negative_phase.attrs["kind"] == "reconstructions"
    assert ds.metric_lr.values.tolist() == [trainer.lr] * 3


def test_deep_and_gaussian_models_record_every_weight_and_parameter(tmp_path: Path) -> None:
    model = BoltzmannMachine([GaussianLayer(5), BernoulliLayer(4), BernoulliLayer(3)], seed=0)
    g = torch.Generator().manual_seed(0)
    data = as_dataset(torch.randn(30, 5, generator=g))
    rec = Recorder(tmp_path / "deep.zarr", snapshot_every=1, particles=4, bins=6)
    Trainer(model, PCD(chains=8), batch_size=10, progress=False, metrics={}, callbacks=[rec]).fit(data, 2)
    ds = open_run(tmp_path / "deep.zarr")
    assert ds.weights_0.dims == ("snapshot", "visible_unit", "hidden1_unit")
    assert ds.weights_1.dims == ("snapshot", "hidden1_unit", "hidden2_unit")
    assert {"visible_loc", "visible_log_var", "hidden1_bias", "hidden2_bias"} <= set(ds.data_vars)
    np.testing.assert_allclose(ds.energy_hist_data.sum("bin"), 1.0)
    np.testing.assert_allclose(ds.energy_hist_fantasy.sum("bin"), 1.0)
    np.testing.assert_array_equal(ds.visible_log_var[-1], model.layers[0].log_var.detach().numpy())


def test_open_runs_concatenates_scalars_and_keeps_differently_sized_arrays_per_run(tmp_path: Path) -> None:
    train(tmp_path / "a.zarr", sizes=(6, 3), epochs=3)
    train(tmp_path / "b.zarr", sizes=(8, 3), epochs=4, method=CD(k=2), bins=7)
    ds = open_runs([tmp_path / "a.zarr", tmp_path / "b.zarr"])
    assert ds.sizes["run"] == 2
    assert ds.metric_loss.dims == ("run", "epoch")
    np.testing.assert_array_equal(ds.epoch, [1, 2, 3, 4])
    assert np.isnan(ds.metric_loss[0, 3]) and not np.isnan(ds.metric_loss[1]).any()
    assert ds.attrs["per_run_variables"] == [
        "bin_edges",
        "energy_hist_data",
        "energy_hist_fantasy",
        "fantasy",
        "negative_phase",
        "visible_bias",
        "weights_0",
    ]
    np.testing.assert_array_equal(ds.snapshot_epoch, [[0, 2, 3], [0, 2, 4]])
    assert ds.hidden_bias.dims == ("run", "snapshot", "hidden_unit")
    assert ds.sizes.get("visible_unit") is None
    assert list(ds.layer_sizes.values) == ["6x3", "8x3"]
    assert list(ds.method.values) == ["pcd", "cd"]
    assert list(ds.path.values) == [str(tmp_path / "a.zarr"), str(tmp_path / "b.zarr")]
    assert open_run(ds.path.values[1]).weights_0.shape == (3, 8, 3)


def test_open_runs_of_equal_sizes_keeps_every_array(tmp_path: Path) -> None:
    train(tmp_path / "a.zarr", epochs=2)
    train(tmp_path / "b.zarr", epochs=4)
    ds = open_runs([tmp_path / "a.zarr", tmp_path / "b.zarr"])
    assert ds.attrs["per_run_variables"] == []
    assert ds.weights_0.dims == ("run", "snapshot", "visible_unit", "hidden_unit")
    assert ds.sizes["snapshot"] == 3


def test_recorder_added_to_a_trained_run_fills_earlier_epochs_from_the_history(tmp_path: Path) -> None:
    model = BoltzmannMachine([BernoulliLayer(6), BernoulliLayer(3)])
    t = Trainer(model, CD(), batch_size=10, progress=False, metrics={})
    t.fit(binary_data(40, 6), 2)
    t.callbacks.append(Recorder(tmp_path / "late.zarr", snapshot_every=2, particles=3, bins=4))
    t.fit(binary_data(40, 6), 4)
    ds = open_run(tmp_path / "late.zarr")
    np.testing.assert_array_equal(ds.epoch, [1, 2, 3, 4])
    np.testing.assert_array_equal(ds.metric_loss, t.history["loss"])
    np.testing.assert_array_equal(ds.snapshot_epoch, [2, 4])


def test_status_tells_finished_stopped_and_failed_runs_apart(tmp_path: Path) -> None:
    class StopAt2(Callback):
        def on_epoch_end(self, state: TrainState) -> None:
            if state.epoch == 2:
                state.trainer.stop()

    def boom(model: BoltzmannMachine, x: torch.Tensor) -> float:
        raise ArithmeticError("metric exploded")

    for name, metrics, callbacks, status in [
        ("stopped", {}, [StopAt2()], "stopped"),
        ("failed", {"boom": boom}, [], "failed"),
    ]:
        rec = Recorder(tmp_path / f"{name}.zarr", particles=3, bins=4)
        model = BoltzmannMachine([BernoulliLayer(6), BernoulliLayer(3)])
        t = Trainer(model, CD(), batch_size=10, progress=False, metrics=metrics, callbacks=[rec, *callbacks])
        try:
            t.fit(binary_data(40, 6), 5)
        except ArithmeticError:
            pass
        ds = open_run(tmp_path / f"{name}.zarr")
        assert ds.attrs["status"] == status
        assert (ds.attrs["error"] is None) == (status != "failed")
    assert ds.attrs["error"] == "ArithmeticError: metric exploded"
    assert open_run(tmp_path / "stopped.zarr").sizes["epoch"] == 2


def test_list_runs_finds_stores_and_ignores_other_folders(tmp_path: Path) -> None:
    train(tmp_path / "x" / "history.zarr", epochs=1)
    train(tmp_path / "y.zarr", epochs=1)
    (tmp_path / "z").mkdir()
    (tmp_path / "z" / "notes.txt").write_text("not a run")
    assert list_runs(tmp_path) == [tmp_path / "x" / "history.zarr", tmp_path / "y.zarr"]


def test_store_protection_and_bad_arguments(tmp_path: Path) -> None:
    train(tmp_path / "run.zarr", epochs=1)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        train(tmp_path / "run.zarr", epochs=1)
    train(tmp_path / "run.zarr", epochs=2, overwrite=True)
    assert open_run(tmp_path / "run.zarr").sizes["epoch"] == 2
    t = Trainer(BoltzmannMachine([BernoulliLayer(5), BernoulliLayer(3)]), CD(), batch_size=10, progress=False)
    t.callbacks.append(Recorder(tmp_path / "run.zarr"))
    t.epoch = 1
    with pytest.raises(ValueError, match="different model"):
        t.fit(binary_data(40, 5), 2)
    with pytest.raises(ValueError, match="snapshot_every"):
        Recorder(tmp_path / "r.zarr", snapshot_every=0)
    with pytest.raises(TypeError, match="path"):
        Recorder(3)
    with pytest.raises(ValueError, match="not a run-history store"):
        open_run(tmp_path)
    assert schema.metric_var("val/loss") == "metric_val_loss"


def test_fantasy_particles_are_the_recorders_own_chains_independent_of_the_data(tmp_path: Path) -> None:
    """Each snapshot's fantasy particles follow from the previous ones, the snapshot's model and the seed
    alone: the chains are rebuilt here from the stored parameters, with no data and no trainer."""
    from ebmlab.history.recorder import fantasy_seed

    t = train(tmp_path / "run.zarr", epochs=4, method=CD(k=1), sample_steps=3, seed=7)
    ds = open_run(tmp_path / "run.zarr")
    assert ds.negative_phase.attrs["kind"] == "reconstructions" and t.method.particles_kind == "reconstructions"
    chains = None
    for s, epoch in enumerate(ds.snapshot_epoch.values):
        model = snapshot_model(ds, s)
        g = torch.Generator().manual_seed(fantasy_seed(7, int(epoch)))
        chains = model.random_states(7, g) if chains is None else chains
        for _ in range(3):
            chains = model._gibbs(chains, 1.0, None, g)
        np.testing.assert_array_equal(ds.fantasy[s].values, chains[0].numpy())
        np.testing.assert_array_equal(ds.fantasy_hidden[s].values, chains[1].numpy())
    # CD's negative phase is the last batch's one-sweep reconstruction, not the fantasy chains
    np.testing.assert_array_equal(ds.negative_phase[-1], t.method.particles[0][:7].numpy())


def test_fantasy_particles_sample_the_exact_model_distribution(tmp_path: Path) -> None:
    """Before training (snapshot 0) the fantasy particles of a 5×3 RBM are draws from p(v): total
    variation to the enumerated distribution on 32 states, 4000 particles, 40 sweeps."""
    from tests._exact import randomize, visible_total_variation

    model = randomize(BoltzmannMachine([BernoulliLayer(5), BernoulliLayer(3)]), seed=11, scale=2.0)
    trainer = Trainer(model, CD(), batch_size=5, progress=False, metrics={})
    state = TrainState(trainer, model, trainer.method, trainer.optimizer, binary_data(10, 5), epochs=1)
    rec = Recorder(tmp_path / "r.zarr", particles=4000, bins=4, sample_steps=40)
    rec.on_train_begin(state)
    rec.on_train_end(state)
    v = torch.from_numpy(open_run(tmp_path / "r.zarr").fantasy[0].values)
    # sampling noise alone: E[TV] ≈ ½ Σ √(2p/(πn)) ≤ 0.036 here; a single sweep from the biases gives 0.11
    assert visible_total_variation(model, v) < 0.05
