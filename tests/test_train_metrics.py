"""How the Trainer runs metrics: the cost budget (NaN on skipped epochs), standard errors, stateful
metrics, and throughput figures that count the metrics' time."""

from __future__ import annotations

import math
import time

import pytest
import torch

from ebmlab import BernoulliLayer, BoltzmannMachine
from ebmlab.evaluate import Estimate, LiveLogLikelihood, mean_log_likelihood
from ebmlab.train import CD, PCD, Callback, Trainer, default_metrics
from ebmlab.train.trainer import _postfix


def binary(rows: int, cols: int, seed: int = 0) -> torch.Tensor:
    return (torch.rand(rows, cols, generator=torch.Generator().manual_seed(seed)) < 0.3).float()


def rbm(visible: int = 8, hidden: int = 4) -> BoltzmannMachine:
    return BoltzmannMachine([BernoulliLayer(visible), BernoulliLayer(hidden)], seed=0)


class FakeClock:
    """Stands in for ``Trainer._clock``: every epoch of training takes 1 s, each metric what it says."""

    def __init__(self) -> None:
        self.now = 0.0

    def metric(self, cost: float, value: float):
        def fn(model, data) -> float:
            self.now += cost
            return value

        return fn


class Tick(Callback):
    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    def on_batch_end(self, state) -> None:
        self.clock.now += 1.0 / state.batches


def test_an_expensive_metric_runs_every_nth_epoch_within_the_budget(monkeypatch) -> None:
    """Budget 25 %, a metric costing 1 s per 1 s epoch: it runs at epoch 1 (to be measured, leaving a debt
    of 0.75 s), then when the savings (0.25 s per epoch) cover twice its cost (one round kept for the last
    epoch): epoch 13, and at the last epoch; it reads NaN in between. Within the budget overall. A metric
    under the 5 ms floor runs every epoch."""
    clock = FakeClock()
    monkeypatch.setattr(Trainer, "_clock", lambda self: clock.now)
    metrics = {"slow": clock.metric(1.0, 1.0), "cheap": clock.metric(0.001, 2.0)}
    trainer = Trainer(rbm(), CD(), batch_size=10, metrics=metrics, metric_budget=0.25, callbacks=[Tick(clock)],
                      progress=False)  # fmt: skip
    history = trainer.fit(binary(40, 8), 16)
    ran = [e + 1 for e, v in enumerate(history["slow"]) if not math.isnan(v)]
    assert ran == [1, 13, 16]
    assert all(history["slow"][e - 1] == 1.0 for e in ran)
    assert history["cheap"] == [2.0] * 16
    # what the Trainer charged against the 0.25 s earned per epoch is what the metrics took on the clock
    charged = 0.25 * 16 - trainer._metric_credit
    assert charged == pytest.approx(len(ran) * 1.0 + 16 * 0.001) and trainer._metric_credit >= 0
    assert trainer._metric_cost == pytest.approx({"slow": 1.0, "cheap": 0.001})


def test_without_a_budget_every_metric_runs_every_epoch(monkeypatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(Trainer, "_clock", lambda self: clock.now)
    trainer = Trainer(rbm(), CD(), batch_size=10, metrics={"slow": clock.metric(5.0, 1.0)}, metric_budget=None,
                      callbacks=[Tick(clock)], progress=False)  # fmt: skip
    assert trainer.fit(binary(40, 8), 4)["slow"] == [1.0] * 4
    with pytest.raises(ValueError, match="metric_budget must be a positive fraction"):
        Trainer(rbm(), CD(), metric_budget=0)


def test_standard_errors_are_recorded_beside_their_metric_and_skipped_epochs_read_nan(monkeypatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(Trainer, "_clock", lambda self: clock.now)

    def estimated(model, data) -> Estimate:
        clock.now += 1.0
        return Estimate(-3.0, 0.5)

    v = binary(20, 8, 2)
    trainer = Trainer(rbm(), CD(), batch_size=10, metrics={"x": estimated}, metric_budget=0.5, callbacks=[Tick(clock)],
                      progress=False)  # fmt: skip
    history = trainer.fit(binary(40, 8), 4, validation=v)
    # epochs 1 (to measure: train + validation calls, 2 s) and 4 (the last) run; 0.5 s saved per epoch
    # does not cover twice 2 s in between
    for epoch in (1, 4):
        assert history["x"][epoch - 1] == -3.0 and history["x_stderr"][epoch - 1] == 0.5
        assert history["val_x_stderr"][epoch - 1] == 0.5
    for name in ("x", "x_stderr", "val_x", "val_x_stderr"):
        assert len(history[name]) == 4 and all(math.isnan(v) for v in history[name][1:3]), name
    # the progress bar shows neither skipped metrics nor standard errors
    assert _postfix({"loss": 1.0, "x": math.nan, "x_stderr": math.nan, "y": 2.0, "y_stderr": 0.1}) == {"y": "2"}




def test_throughput_counts_the_time_metrics_take() -> None:
    def sleepy(model, data) -> float:
        time.sleep(0.05)
        return 0.0

    seen = []

    class Watch(Callback):
        def on_epoch_end(self, state) -> None:
            seen.append((state.metrics["wall_seconds"], state.metrics["samples_per_second"], state.metric_seconds,
                         state.train_seconds))  # fmt: skip

    x = binary(40, 8)
    Trainer(rbm(), CD(), batch_size=10, metrics={"sleepy": sleepy}, metric_budget=None, callbacks=[Watch()],
            progress=False).fit(x, 2)  # fmt: skip
    for epoch, (wall, rate, metric_seconds, train_seconds) in enumerate(seen, start=1):
        assert wall >= 0.05 and rate == pytest.approx(40 / wall)
        assert metric_seconds >= 0.05 * epoch and train_seconds > 0


def test_default_metrics_include_the_live_log_likelihood_exact_on_a_small_rbm() -> None:
    model = rbm()
    assert default_metrics(model) == ["reconstruction_error", "pseudo_likelihood", "free_energy_gap", "log_likelihood"]
    x, v = binary(40, 8, 1), binary(20, 8, 2)
    trainer = Trainer(model, PCD(chains=10), batch_size=10, progress=False)
    history = trainer.fit(x, 2, validation=v)
    assert history["log_likelihood"][-1] == pytest.approx(mean_log_likelihood(model, x), abs=1e-4)
    assert history["val_log_likelihood"][-1] == pytest.approx(mean_log_likelihood(model, v), abs=1e-4)
    assert history["log_likelihood_stderr"] == [0.0, 0.0] and history["pseudo_likelihood_stderr"] == [0.0, 0.0]


def test_a_stateful_metric_is_built_once_and_reset_when_a_state_is_loaded() -> None:
    x = binary(40, 8)
    trainer = Trainer(rbm(), CD(), batch_size=10, metrics=["log_likelihood"], progress=False)
    trainer.fit(x, 1)
    live = trainer._resolve_metrics()[0]["log_likelihood"]
    assert isinstance(live, LiveLogLikelihood) and live.mode == "exact"
    state = trainer.state_dict()
    trainer.fit(x, 2)
    assert trainer._resolve_metrics()[0]["log_likelihood"] is live
    trainer.load_state_dict(state)
    assert live.mode is None
