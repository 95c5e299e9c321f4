"""The Trainer loop: callbacks, history, penalties, constraints, schedulers, thread control,
divergence guard, resume and argument errors."""

from __future__ import annotations

import io
import math
import threading
import time

import pytest
import torch

from ebmlab import BernoulliLayer, BoltzmannMachine, GaussianLayer
from ebmlab.data import Dataset
from ebmlab.train import (
    CD,
    L1,
    L2,
    PCD,
    Callback,
    FixedMask,
    GammaProcess,
    MaxNorm,
    Method,
    NonNegative,
    Trainer,
    TrainingDiverged,
)
from ebmlab.train.distributed import DataParallel


def binary(rows: int, cols: int, seed: int = 0) -> torch.Tensor:
    return (torch.rand(rows, cols, generator=torch.Generator().manual_seed(seed)) < 0.3).float()


def rbm(visible: int = 8, hidden: int = 4, seed: int = 0) -> BoltzmannMachine:
    return BoltzmannMachine([BernoulliLayer(visible), BernoulliLayer(hidden)], seed=seed)


class Zero(Method):
    """A method whose gradient is zero, so that parameter updates come from penalties alone."""

    name = "zero"

    def loss(self, model, batch, generator):
        return sum((p * 0).sum() for p in model.parameters())


class Recorder(Callback):
    def __init__(self) -> None:
        self.events: list[tuple[str, int, int]] = []

    def on_train_begin(self, state):
        self.events.append(("begin", state.epoch, state.step))

    def on_batch_end(self, state):
        self.events.append(("batch", state.epoch, state.step))

    def on_epoch_end(self, state):
        self.events.append(("epoch", state.epoch, state.step))

    def on_train_end(self, state):
        self.events.append(("end", state.epoch, state.step))


# -- callbacks, history, metrics ------------------------------------------------------------------
def test_callbacks_see_every_batch_and_epoch_in_order():
    rec = Recorder()
    trainer = Trainer(rbm(), CD(), batch_size=10, metrics={}, callbacks=[rec], progress=False)
    history = trainer.fit(binary(30, 8), 2)
    batches = [("batch", 0, s) for s in (1, 2, 3)] + [("batch", 1, s) for s in (4, 5, 6)]
    assert rec.events == [("begin", 0, 0), *batches[:3], ("epoch", 1, 3), *batches[3:], ("epoch", 2, 6), ("end", 2, 6)]
    assert history["lr"] == [0.05, 0.05] and len(history["loss"]) == 2
    assert trainer.epoch == 2 and trainer.step == 6


def test_exceptions_in_callbacks_propagate():
    class Boom(Callback):
        def on_batch_end(self, state):
            raise KeyError("boom")

    trainer = Trainer(rbm(), CD(), batch_size=10, metrics={}, callbacks=[Boom()], progress=False)
    with pytest.raises(KeyError, match="boom"):
        trainer.fit(binary(30, 8), 1)
    assert not trainer.running


def test_custom_metrics_on_training_and_validation_rows():
    x, v = binary(40, 8, 1), binary(20, 8, 2)
    metrics = {"mean": lambda model, data: float(data.mean())}
    history = Trainer(rbm(), CD(), batch_size=10, metrics=metrics, progress=False).fit(x, 2, validation=v)
    assert history["mean"] == [pytest.approx(x.mean().item())] * 2
    assert history["val_mean"] == [pytest.approx(v.mean().item())] * 2


def test_metrics_set_after_a_fit_are_used_by_the_next_one():
    x = binary(40, 8, 1)
    trainer = Trainer(rbm(), CD(), batch_size=10, metrics={"mean": lambda model, data: 0.5}, progress=False)
    trainer.fit(x, 1)
    trainer.metrics = {"rows": lambda model, data: float(data.shape[0])}
    history = trainer.fit(x, 2)
    assert history["mean"] == [0.5] and history["rows"][1] == 40.0 and math.isnan(history["rows"][0])
    with pytest.raises(TypeError, match="metrics must map names to callables"):
        trainer.metrics = {"bad": 3}
    assert list(trainer.metrics) == ["rows"]


def test_default_metrics_of_an_rbm_include_the_free_energy_gap():
    x, v = binary(40, 8, 1), binary(20, 8, 2)
    model = rbm()
    history = Trainer(model, PCD(chains=10), batch_size=10, progress=False).fit(x, 1, validation=v)
    for name in ("reconstruction_error", "pseudo_likelihood"):
        assert name in history and f"val_{name}" in history
    with torch.no_grad():
        gap = (model.free_energy(v).mean() - model.free_energy(x).mean()).item()
    assert history["free_energy_gap"] == [pytest.approx(gap, abs=1e-5)]


def test_metrics_subsample_training_rows():
    seen = []
    Trainer(rbm(), CD(), batch_size=10, metrics={"rows": lambda m, d: seen.append(len(d)) or 0.0},
            validation_rows=7, progress=False).fit(binary(30, 8), 1)  # fmt: skip
    assert seen == [7]


def test_dataset_of_another_dtype_is_converted():
    model = rbm().double()
    Trainer(model, CD(), batch_size=10, metrics={}, progress=False).fit(Dataset(binary(20, 8)), 1)
    assert model.dtype == torch.float64


# -- optimizers, schedulers, penalties, constraints ----------------------------------------------
def test_l2_and_l1_penalties_give_their_exact_update():
    model = rbm()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = Trainer(
        model,
        Zero(),
        optimizer=torch.optim.SGD,
        lr=0.1,
        batch_size=20,
        penalties=[("weights.0", L2(0.5)), ("layers.*.bias", L1(0.5))],
        metrics={},
        progress=False,
    )
    trainer.fit(binary(20, 8), 1)
    after = dict(model.named_parameters())
    torch.testing.assert_close(after["weights.0"], before["weights.0"] * (1 - 0.1 * 0.5))
    for name in ("layers.0.bias", "layers.1.bias"):
        torch.testing.assert_close(after[name], before[name] - 0.1 * 0.5 * before[name].sign())
    assert L2(0.5).value(torch.tensor([2.0])).item() == 1.0 and L1(0.5).value(torch.tensor([-2.0])).item() == 1.0


def test_constraints_hold_after_every_step():
    model = rbm(seed=1)
    mask = torch.zeros(8, 4, dtype=torch.bool)
    mask[0] = True
    fixed = model.weights[0][0].detach().clone()
    assert (model.weights[0] < 0).any()

    class Check(Callback):
        def on_batch_end(self, state):
            w = state.model.weights[0]
            assert (w[1:] >= 0).all()
            assert torch.equal(w[0], fixed)
            assert (state.model.layers[1].bias.norm() <= 0.05 + 1e-6).all()

    constraints = [("weights.0", NonNegative()), ("weights.0", FixedMask(mask)), ("layers.1.bias", MaxNorm(0.05))]
    Trainer(model, PCD(chains=10), lr=0.05, batch_size=10, constraints=constraints, metrics={}, callbacks=[Check()],
            progress=False).fit(binary(40, 8), 3)  # fmt: skip
    assert (model.weights[0][1:] > 0).any()


def test_max_norm_clips_columns():
    w = torch.nn.Parameter(torch.tensor([[3.0, 0.1], [4.0, 0.1]]))
    MaxNorm(1.0).bind(w, "w")()
    torch.testing.assert_close(w.detach(), torch.tensor([[0.6, 0.1], [0.8, 0.1]]))


def test_scheduler_factory_steps_once_per_epoch():
    trainer = Trainer(
        rbm(),
        CD(),
        lr=0.01,
        batch_size=10,
        scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5),
        metrics={},
        progress=False,
    )
    assert trainer.fit(binary(20, 8), 3)["lr"] == pytest.approx([0.01, 0.005, 0.0025])


def test_set_lr_from_a_callback_applies_from_the_next_batch():
    seen = []

    class Change(Callback):
        def on_batch_end(self, state):
            seen.append(state.trainer.optimizer.param_groups[0]["lr"])
            if state.step == 2:
                state.trainer.set_lr(0.5)

    trainer = Trainer(rbm(), CD(), batch_size=10, metrics={}, callbacks=[Change()], progress=False)
    trainer.fit(binary(40, 8), 1)
    assert seen == [0.05, 0.05, 0.5, 0.5]
    trainer.set_lr(0.25)
    assert trainer.lr == 0.25


# -- thread control -------------------------------------------------------------------------------
class Steps(Callback):
    def __init__(self) -> None:
        self.count = 0
        self.started = threading.Event()

    def on_batch_end(self, state):
        self.count += 1
        if self.count >= 5:
            self.started.set()


def wait_for(condition, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.005)


def test_pause_resume_and_stop_from_another_thread_act_within_one_batch():
    steps = Steps()
    trainer = Trainer(rbm(16, 8), PCD(chains=10), batch_size=10, metrics={}, callbacks=[steps], progress=False)
    thread = threading.Thread(target=trainer.fit, args=(binary(2000, 16), 10_000), daemon=True)
    thread.start()
    assert steps.started.wait(10)
    trainer.pause()
    at_pause = steps.count
    time.sleep(0.2)
    paused_at = steps.count
    assert paused_at <= at_pause + 1
    time.sleep(0.2)
    assert steps.count == paused_at and trainer.paused and trainer.running
    trainer.resume()
    wait_for(lambda: steps.count >= paused_at + 5)
    trainer.stop()
    at_stop = steps.count
    thread.join(10)
    assert not thread.is_alive() and not trainer.running
    assert steps.count <= at_stop + 1
    assert trainer.epoch < 10_000


def test_stop_while_paused_ends_fit():
    steps = Steps()
    trainer = Trainer(rbm(16, 8), CD(), batch_size=10, metrics={}, callbacks=[steps], progress=False)
    thread = threading.Thread(target=trainer.fit, args=(binary(2000, 16), 10_000), daemon=True)
    thread.start()
    assert steps.started.wait(10)
    trainer.pause()
    time.sleep(0.1)
    count = steps.count
    trainer.stop()
    thread.join(10)
    assert not thread.is_alive() and steps.count == count


def test_set_lr_and_pause_refuse_under_data_parallelism_with_several_ranks():
    """They would act on the calling rank alone (ranks diverge, or the others hang in a collective)."""
    trainer = Trainer(rbm(), CD(), metrics={}, progress=False, process_group=False)
    trainer._dp = DataParallel(None, 0, 2)  # as Trainer(process_group=...) resolves rank 0 of a 2-rank group
    with pytest.raises(RuntimeError, match=r"set_lr\(\) is not supported .*rank 0 of 2.*scheduler"):
        trainer.set_lr(0.1)
    with pytest.raises(RuntimeError, match=r"pause\(\) is not supported .*rank 0 of 2.*use stop\(\)"):
        trainer.pause()
    assert trainer.lr == 0.05 and not trainer.paused
    trainer._dp = DataParallel(None, 0, 1)  # one rank: nothing to diverge from
    trainer.set_lr(0.1)
    assert trainer.lr == 0.1


# -- divergence ------------------------------------------------------------------------------------
def test_huge_learning_rate_raises_training_diverged_and_leaves_finite_parameters():
    model = BoltzmannMachine([GaussianLayer(4), BernoulliLayer(3)])
    x = torch.randn(200, 4, generator=torch.Generator().manual_seed(0))
    trainer = Trainer(model, PCD(chains=20), lr=1e6, batch_size=20, metrics={}, progress=False)
    with pytest.raises(TrainingDiverged, match="rolled back"):
        trainer.fit(x, 50)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert not trainer.running


# -- resume ----------------------------------------------------------------------------------------
def make_run(kind: str) -> Trainer:
    if kind == "rbm":
        model, method = rbm(8, 5), PCD(2, chains=15, beta_std=0.4)
    else:
        model = BoltzmannMachine([BernoulliLayer(8), BernoulliLayer(4), BernoulliLayer(3)])
        method = PCD(1, chains=15)
    return Trainer(
        model,
        method,
        lr=0.01,
        batch_size=7,
        seed=3,
        scheduler=lambda opt: torch.optim.lr_scheduler.ExponentialLR(opt, 0.9),
        metrics={"mean": lambda m, d: float(m.weights[0].sum())},
        progress=False,
    )


@pytest.mark.parametrize("kind", ["rbm", "deep"])
def test_state_dict_resume_is_bit_identical(kind):
    x = binary(40, 8)
    straight = make_run(kind)
    straight.fit(x, 4)
    first = make_run(kind)
    first.fit(x, 2)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    resumed = make_run(kind)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    resumed.fit(x, 4)
    for a, b in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)
    timing = {"wall_seconds", "samples_per_second"}
    assert {k: v for k, v in straight.history.items() if k not in timing} == {
        k: v for k, v in resumed.history.items() if k not in timing
    }
    assert all(torch.equal(a, b) for a, b in zip(straight.method.particles, resumed.method.particles))
    assert resumed.epoch == 4 and resumed.step == straight.step


# -- driven sampling -------------------------------------------------------------------------------
def test_gamma_process_has_mean_1_the_chosen_std_and_correlation():
    process = GammaProcess(chains=20_000, std=0.5, correlation=0.8)
    g = torch.Generator().manual_seed(0)
    betas = torch.stack([process.step(torch.float64, torch.device("cpu"), g) for _ in range(12)])
    assert (betas > 0).all()
    assert betas.mean().item() == pytest.approx(1.0, abs=0.01)
    assert betas.std().item() == pytest.approx(0.5, abs=0.01)
    a, b = betas[:-1].flatten(), betas[1:].flatten()
    assert torch.corrcoef(torch.stack([a, b]))[0, 1].item() == pytest.approx(0.8, abs=0.02)


def test_driven_pcd_uses_one_temperature_per_chain():
    method = PCD(1, chains=6, beta_std=0.3)
    method.loss(rbm(), binary(4, 8), torch.Generator().manual_seed(0))
    assert method.driver.beta.shape == (6,) and set(method.metrics()) == {"beta_mean"}


# -- errors ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda t, x: t.fit(x, 0), ValueError, "epochs"),
        (lambda t, x: t.fit(x[:5], 1), ValueError, r"batch_size \(10\) is larger"),
        (lambda t, x: t.fit(torch.ones(20, 5), 1), ValueError, "data has 5 columns"),
        (lambda t, x: t.fit(x + 0.5, 1), ValueError, "binary"),
        (lambda t, x: t.fit(x, 1, validation=torch.ones(3, 7)), ValueError, "validation has 7 columns"),
        (lambda t, x: t.set_lr(-1.0), ValueError, "lr"),
    ],
)
def test_fit_refuses_bad_arguments(call, error, match):
    trainer = Trainer(rbm(), CD(), batch_size=10, metrics={}, progress=False)
    with pytest.raises(error, match=match):
        call(trainer, binary(20, 8))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"method": "pcd"}, TypeError, "method"),
        ({"lr": 0.0}, ValueError, "lr"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"optimizer": "adam"}, TypeError, "optimizer"),
        ({"penalties": {"nope": L2(1.0)}}, ValueError, "matches no parameter"),
        ({"penalties": {"weights.0": 1.0}}, TypeError, "Penalty"),
        ({"constraints": {"weights.0": FixedMask(torch.ones(2, 2, dtype=torch.bool))}}, ValueError, "mask"),
        ({"metrics": ["nope"]}, ValueError, "unknown metric"),
        ({"callbacks": [print]}, TypeError, "callbacks"),
        ({"scheduler": "step"}, TypeError, "scheduler"),
    ],
)
def test_trainer_refuses_bad_arguments(kwargs, error, match):
    args = {"model": rbm(), "method": CD(), **kwargs}
    with pytest.raises(error, match=match):
        Trainer(**args)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: CD(k=0), "k must be"),
        (lambda: PCD(chains=0), "chains must be"),
        (lambda: PCD(beta_std=-1.0), "beta_std"),
        (lambda: PCD(beta_std=0.5, beta_correlation=1.0), "correlation"),
        (lambda: L2(-1.0), "strength"),
        (lambda: MaxNorm(0.0), "max_norm"),
    ],
)
def test_methods_and_penalties_refuse_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()
