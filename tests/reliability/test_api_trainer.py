"""Trainer.fit under concurrency and runaway parameters."""

from __future__ import annotations

import math
import threading

import pytest
import torch

from ebmlab import BernoulliLayer, BoltzmannMachine, GaussianLayer
from ebmlab.data import load
from ebmlab.train import CD, PCD, Callback, Constraint, Trainer, TrainingDiverged


def binary_data(rows: int = 60, units: int = 6) -> torch.Tensor:
    return (torch.rand(rows, units, generator=torch.Generator().manual_seed(1)) > 0.5).float()


def rbm(units: int = 6) -> BoltzmannMachine:
    return BoltzmannMachine([BernoulliLayer(units), BernoulliLayer(4)])


class HoldUntil(Callback):
    """Keeps the winning fit inside on_train_begin until the other thread has been refused."""

    def __init__(self, refused: threading.Event) -> None:
        self.refused = refused
        self.waited: list[bool] = []

    def on_train_begin(self, state) -> None:
        self.waited.append(self.refused.wait(10))


def race(seed: int) -> tuple[list[str], list[BaseException], HoldUntil, Trainer]:
    """Two threads released by a barrier both call ``fit`` on one Trainer."""
    refused = threading.Event()
    hold = HoldUntil(refused)
    trainer = Trainer(rbm(), CD(), batch_size=20, metrics={}, progress=False, seed=seed, callbacks=[hold])
    start = threading.Barrier(2)
    outcomes: list[str] = []
    errors: list[BaseException] = []

    def call() -> None:
        start.wait()
        try:
            trainer.fit(binary_data(), 1)
            outcomes.append("trained")
        except RuntimeError as err:
            outcomes.append("refused" if "fit is already running on this Trainer" in str(err) else repr(err))
            refused.set()
        except BaseException as err:  # anything else is a failure of the test
            errors.append(err)

    threads = [threading.Thread(target=call) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return outcomes, errors, hold, trainer


def test_two_threads_calling_fit_at_once_train_exactly_once_in_20_trials() -> None:
    for trial in range(20):
        outcomes, errors, hold, trainer = race(trial)
        assert not errors, errors
        assert sorted(outcomes) == ["refused", "trained"], f"trial {trial}: {outcomes}"
        assert hold.waited == [True]  # on_train_begin ran once, and the refusal came while it was running
        assert trainer.epoch == 1 and trainer.step == 3 and not trainer.running


def test_fit_can_run_again_after_a_refused_or_failed_call() -> None:
    trainer = Trainer(rbm(), CD(), batch_size=20, metrics={}, progress=False)
    with pytest.raises(ValueError, match="data has 5 columns"):
        trainer.fit(torch.zeros(30, 5), 1)
    trainer.fit(binary_data(), 2)
    assert trainer.epoch == 2


class Snapshots(Callback):
    """The parameters after every completed step."""

    def __init__(self) -> None:
        self.after: list[list[torch.Tensor]] = []

    def on_batch_end(self, state) -> None:
        self.after.append([p.detach().clone() for p in state.model.parameters()])


@pytest.mark.parametrize("optimizer", [torch.optim.SGD, torch.optim.Adam])
@pytest.mark.parametrize("model_kind", ["bernoulli", "gaussian"])
def test_a_huge_learning_rate_is_stopped_as_runaway_and_rolled_back(optimizer: type, model_kind: str) -> None:
    """lr 1e6: weights jump to ~1e5–1e6 while every loss stays finite; the growth check stops it."""
    if model_kind == "bernoulli":
        model, x = rbm(), binary_data()
    else:
        model = BoltzmannMachine([GaussianLayer(6), BernoulliLayer(4)])
        x = torch.randn(60, 6, generator=torch.Generator().manual_seed(2))
    model.initialize(x)
    start = [p.detach().clone() for p in model.parameters()]
    snaps = Snapshots()
    trainer = Trainer(
        model, PCD(chains=10), optimizer=optimizer, lr=1e6, batch_size=20, metrics={}, progress=False, callbacks=[snaps]
    )
    limit = 1e4 * max(1.0, max(float(p.abs().max()) for p in start))
    with pytest.raises(TrainingDiverged, match=r"parameters ran away at step \d+ .*max_param_growth"):
        trainer.fit(x, 5)
    last_good = snaps.after[-1] if snaps.after else start  # the state before the step that ran away
    for p, good in zip(model.parameters(), last_good):
        assert torch.equal(p.detach(), good)
    assert max(float(p.detach().abs().max()) for p in model.parameters()) <= limit
    assert not trainer.running


def test_runaway_check_can_be_turned_off() -> None:
    model, x = rbm(), binary_data()
    trainer = Trainer(
        model,
        PCD(chains=10),
        optimizer=torch.optim.SGD,
        lr=1e6,
        batch_size=20,
        metrics={},
        progress=False,
        max_param_growth=None,
    )
    trainer.fit(x, 1)
    assert max(float(p.detach().abs().max()) for p in model.parameters()) > 1e4  # what the default refuses


class PoisonAtStep(Constraint):
    """A projection that writes a NaN into the parameter at one step (a stand-in for any NaN source)."""

    def __init__(self, step: int) -> None:
        self.step, self.calls = step, 0

    def bind(self, param: torch.Tensor, name: str):
        def apply() -> None:
            self.calls += 1
            if self.calls == self.step:
                with torch.no_grad():
                    param[0, 0] = math.nan

        return apply


def test_a_nan_parameter_is_caught_at_its_step_and_rolled_back_to_the_step_before() -> None:
    model, x = rbm(), binary_data()
    snaps = Snapshots()
    trainer = Trainer(
        model,
        CD(),
        batch_size=20,
        metrics={},
        progress=False,
        callbacks=[snaps],
        constraints={"weights.0": PoisonAtStep(5)},
    )
    with pytest.raises(TrainingDiverged, match=r"NaN or Inf at step 5 \(epoch 2\)"):
        trainer.fit(x, 3)
    assert len(snaps.after) == 4
    for p, good in zip(model.parameters(), snaps.after[-1]):
        assert torch.equal(p.detach(), good)


def test_healthy_pcd_training_on_digits_stays_far_below_the_runaway_limit() -> None:
    digits = load("digits").binarize()[:500]
    model = BoltzmannMachine([BernoulliLayer(64), BernoulliLayer(50)])
    model.initialize(digits.data)
    m0 = max(1.0, max(float(p.detach().abs().max()) for p in model.parameters()))
    trainer = Trainer(
        model, PCD(chains=50), optimizer=torch.optim.SGD, lr=0.1, batch_size=50, metrics={}, progress=False
    )
    trainer.fit(digits, 5)
    growth = max(float(p.detach().abs().max()) for p in model.parameters()) / m0
    assert growth < 1e-2 * trainer.max_param_growth


def test_training_data_with_an_autograd_graph_are_used_as_constants() -> None:
    """Inputs keep their graph in energy/free_energy, but fit must not backpropagate into its data."""
    source = torch.full((60, 6), 2.0, requires_grad=True)
    x = torch.randn(60, 6, generator=torch.Generator().manual_seed(3)) * (source / source.detach())
    model = BoltzmannMachine([GaussianLayer(6), BernoulliLayer(4)])  # F(v) of the data enters the loss
    trainer = Trainer(model, CD(), batch_size=20, metrics={}, progress=False)
    trainer.fit(x, 2)  # a second backward through the freed graph of ``x`` would raise here
    assert trainer.epoch == 2 and source.grad is None
