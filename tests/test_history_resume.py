"""Checkpoints: atomic safetensors files, and bit-identical resume (PCD with Adam, on CPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ebmlab import BernoulliLayer, BoltzmannMachine, GaussianLayer
from ebmlab.history import Checkpoint, Recorder, load_checkpoint, open_run, resume, save_checkpoint
from ebmlab.samplers import GibbsLangevin
from ebmlab.train import CD, PCD, PT, Trainer

TIMING = ("wall_seconds", "samples_per_second")


def data() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return (torch.rand(60, 12, generator=g) < 0.3).float()


def trainer(folder: Path) -> Trainer:
    model = BoltzmannMachine([BernoulliLayer(12), BernoulliLayer(5)], seed=1)
    callbacks = [Recorder(folder / "history.zarr", snapshot_every=2, particles=6), Checkpoint(folder / "ckpt")]
    return Trainer(
        model,
        PCD(k=1, chains=10),
        optimizer=torch.optim.Adam,
        lr=1e-2,
        batch_size=10,
        seed=3,
        progress=False,
        callbacks=callbacks,
    )


def test_stopped_and_resumed_run_is_bit_identical_to_an_uninterrupted_one(tmp_path: Path) -> None:
    whole = trainer(tmp_path / "whole")
    whole.fit(data(), 6)
    first = trainer(tmp_path / "split")
    first.fit(data(), 3)  # stopped after epoch 3 (off the snapshot cadence)
    del first
    resumed = resume(trainer(tmp_path / "split"), tmp_path / "split" / "ckpt")
    assert resumed.epoch == 3
    resumed.fit(data(), 6)
    for a, b in zip(whole.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(whole.method.particles, resumed.method.particles, strict=True):
        assert torch.equal(a, b)
    for a, b in zip(whole.optimizer.state.values(), resumed.optimizer.state.values(), strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(whole.generator.get_state(), resumed.generator.get_state())
    assert whole.history.keys() == resumed.history.keys()
    for k in whole.history:
        if k not in TIMING:
            assert whole.history[k] == resumed.history[k], k
    one, two = open_run(tmp_path / "whole" / "history.zarr"), open_run(tmp_path / "split" / "history.zarr")
    assert set(one.variables) == set(two.variables)
    for name in one.variables:
        if not any(t in name for t in TIMING):
            np.testing.assert_array_equal(one[name].values, two[name].values, err_msg=name)
    np.testing.assert_array_equal(two.snapshot_epoch, [0, 2, 4, 6])
    assert two.attrs["status"] == "finished"


def test_checkpoint_holds_the_trainer_state_and_leaves_no_temp_files(tmp_path: Path) -> None:
    t = trainer(tmp_path)
    t.fit(data(), 2)
    state = load_checkpoint(tmp_path / "ckpt")
    assert state["epoch"] == 2 and state["seed"] == 3 and state["step"] == 12
    for k, v in t.model.state_dict().items():
        assert torch.equal(state["model"][k], v)
    assert torch.equal(state["method"]["particles"][0], t.method.particles[0])
    assert torch.equal(state["generator"], t.generator.get_state())
    assert state["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "history.zarr"]


def test_state_tree_round_trip_keeps_types(tmp_path: Path) -> None:
    state = {
        "ints": {0: torch.arange(3), 7: [1.5, float("nan")]},
        "tuple": (1, "a", None, True),
        "array": np.arange(4, dtype=np.int16),
        "scalar": torch.tensor(2.5, dtype=torch.float64),
        "empty": torch.zeros(0, 2),
        "bytes": torch.ByteTensor([1, 2, 255]),
    }
    back = load_checkpoint(save_checkpoint(tmp_path / "s", state))
    assert set(back["ints"]) == {0, 7} and torch.equal(back["ints"][0], torch.arange(3))
    assert back["ints"][7][0] == 1.5 and np.isnan(back["ints"][7][1])
    assert back["tuple"] == (1, "a", None, True)
    assert back["array"].dtype == np.int16 and back["array"].tolist() == [0, 1, 2, 3]
    assert back["scalar"].dtype == torch.float64 and back["scalar"].item() == 2.5
    assert back["empty"].shape == (0, 2)
    assert back["bytes"].dtype == torch.uint8 and back["bytes"].tolist() == [1, 2, 255]


def test_checkpoint_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"state\.f is a function"):
        save_checkpoint(tmp_path / "bad", {"f": lambda: 0})
    assert not any(tmp_path.iterdir())
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing")
    model = BoltzmannMachine([BernoulliLayer(3), BernoulliLayer(2)])
    model.save(tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match="not an ebmlab checkpoint"):
        load_checkpoint(tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match="every"):
        Checkpoint(tmp_path / "c", every=0)


@pytest.mark.parametrize("make", [lambda s: CD(k=2, start="noise", sampler=s), lambda s: PCD(k=2, chains=10, sampler=s),
                                  lambda s: PT(k=1, chains=5, temperatures=3, sampler=s)])
def test_resumed_run_continues_with_the_adapted_langevin_step_size(tmp_path: Path, make) -> None:
    """The Gibbs–Langevin step size adapted during training is method state: resume continues with it."""

    def gaussian_trainer(folder: Path) -> Trainer:
        model = BoltzmannMachine([GaussianLayer(6), BernoulliLayer(4)], seed=1)
        sampler = GibbsLangevin(step_size=1.0, target_acceptance=0.574)
        return Trainer(model, make(sampler), optimizer=torch.optim.Adam, lr=1e-2, batch_size=10, seed=3,
                       progress=False, metrics={}, callbacks=[Checkpoint(folder / "ckpt")])

    x = torch.randn(40, 6, generator=torch.Generator().manual_seed(0))
    whole = gaussian_trainer(tmp_path / "whole")
    whole.fit(x, 4)
    first = gaussian_trainer(tmp_path / "split")
    first.fit(x, 2)
    adapted = first.method.sampler.step_size
    assert adapted < 1.0  # the adaptation moved it
    resumed = resume(gaussian_trainer(tmp_path / "split"), tmp_path / "split" / "ckpt")
    assert resumed.method.sampler.step_size == adapted
    assert resumed.method.sampler.proposed == first.method.sampler.proposed
    resumed.fit(x, 4)
    assert resumed.method.sampler.step_size == whole.method.sampler.step_size
    for a, b in zip(whole.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)
