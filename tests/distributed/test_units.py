"""Data-parallel pieces that need no process group: bad input refused by name, argv, combining estimates."""

from __future__ import annotations

import math

import pytest
import torch
import torch.distributed as dist

import ebmlab
from ebmlab.cli import main
from ebmlab.commands.train import launch_argv
from ebmlab.evaluate.sharded import ShardedLogLikelihood, combine_log_z
from ebmlab.train import CD, Trainer
from ebmlab.train.distributed import DataParallel, init_process_group

from . import _spawn
from .test_cli import TINY


def test_bad_data_parallel_input_is_refused_by_name(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    dp = DataParallel(None, 0, 2)
    with pytest.raises(ValueError, match=r"batch_size \(25\) must be divisible by the number of ranks \(2\)"):
        dp.check_batches(25, 100)
    with pytest.raises(ValueError, match=r"last batch .* 1 row"):
        dp.check_batches(20, 101)
    dp.check_batches(20, 102)  # a last batch of 2 rows: one each
    assert [DataParallel(None, r, 2).rows(11) for r in (0, 1)] == [(0, 6), (6, 11)]
    model = ebmlab.BoltzmannMachine([ebmlab.BernoulliLayer(4), ebmlab.BernoulliLayer(2)])
    with pytest.raises(TypeError, match=r"process_group must be a torch\.distributed ProcessGroup"):
        Trainer(model, CD(), process_group="gloo")
    with pytest.raises(ValueError, match="backend 'nccl' needs a CUDA device"):
        init_process_group(torch.device("cpu"), backend="nccl")
    assert main([*TINY, "--nproc", "0"]) == 2
    assert "--nproc must be an integer >= 1" in capsys.readouterr().err
    for name, value in _spawn.rank_env(0, 2, 1).items():
        monkeypatch.setenv(name, value)
    assert main([*TINY, "--device", "cpu", "--backend", "nccl"]) == 2
    assert "--backend nccl needs a CUDA device" in capsys.readouterr().err
    assert main([*TINY, "--nproc", "2"]) == 2
    assert "under torchrun leave --nproc out" in capsys.readouterr().err
    assert main([*TINY, "--device", "cuda:1"]) == 2  # rank 0 (LOCAL_RANK 0) must not take another rank's GPU
    assert "--device cuda:1: with 2 ranks each rank trains on the GPU of its LOCAL_RANK, here cuda:0" in (
        capsys.readouterr().err
    )
    assert not dist.is_initialized()  # every refusal came before joining the group


def test_init_process_group_takes_a_device_name(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(TypeError, match="device must be a device name"):
        init_process_group(3.5)
    with pytest.raises(ValueError, match="device 'gpu' is not a device name"):
        init_process_group("gpu")
    env = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1"}
    for name, value in {**env, "MASTER_PORT": str(_spawn.free_port())}.items():
        monkeypatch.setenv(name, value)
    dp = init_process_group("cpu", timeout=20)
    try:
        assert dp == DataParallel(None, 0, 1) and dist.get_backend() == "gloo"
    finally:
        dist.destroy_process_group()


def test_launch_argv_drops_nproc_only() -> None:
    argv = ["train", "--nproc", "2", "--epochs", "3", "--nproc=4", "--npro", "3", "--out", "x"]
    assert launch_argv(argv) == ["train", "--epochs", "3", "--out", "x"]


def test_combine_log_z_is_the_mean_of_z() -> None:
    value, stderr = combine_log_z(torch.tensor([1.0, 1.0]), torch.tensor([0.2, 0.2]))
    assert value == pytest.approx(1.0) and stderr == pytest.approx(0.2 / 2**0.5)
    value, _ = combine_log_z(torch.tensor([0.0, 2.0]), torch.tensor([0.0, 0.0]))
    assert value == pytest.approx(math.log((1 + math.exp(2.0)) / 2))
    # an untrusted rank (infinite s.e.) makes the combination untrusted, even when its share underflows to 0
    assert combine_log_z(torch.tensor([0.0, 1000.0]), torch.tensor([math.inf, 0.1]))[1] == math.inf


@pytest.fixture
def one_rank_group():
    """The default process group with this process as its only rank (gloo on 127.0.0.1): no spawning."""
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{_spawn.free_port()}", rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def test_sharded_live_log_likelihood_reports_an_untrusted_log_z_with_infinite_stderr(one_rank_group) -> None:
    """As ``LiveLogLikelihood`` does: a tracked log Z lifted to the data bound is not trusted, its stderr inf."""
    g = torch.Generator().manual_seed(0)
    data = (torch.rand(100, 16, generator=g) < 0.3).double()
    model = ebmlab.BoltzmannMachine([ebmlab.BernoulliLayer(16), ebmlab.BernoulliLayer(8)], seed=0).double()
    metric = ShardedLogLikelihood(method="tracked", particles=50)
    trusted = metric(model, data)
    assert math.isfinite(trusted.stderr) and metric.log_z.stderr == trusted.stderr
    with torch.no_grad():
        model.weights[0].normal_(generator=g)
    metric._live._log_z -= 100.0  # far too low, as when the particles miss the data's modes: lifted, untrusted
    value = metric(model, data)
    assert not metric._live.trusted and metric._live.floored == 1
    assert math.isinf(value.stderr) and math.isinf(metric.log_z.stderr) and math.isfinite(float(value))


def test_sharded_live_log_likelihood_passes_the_per_step_hook_to_its_rank(one_rank_group) -> None:
    """Through the Trainer each rank's tracked log Z bridges every ``every`` steps, as in one process."""
    g = torch.Generator().manual_seed(0)
    data = (torch.rand(200, 16, generator=g) < 0.3).double()
    model = ebmlab.BoltzmannMachine([ebmlab.BernoulliLayer(16), ebmlab.BernoulliLayer(8)], seed=0).double()
    metric = ShardedLogLikelihood(method="tracked", particles=50, every=5)
    trainer = ebmlab.train.Trainer(model, ebmlab.train.PCD(chains=20), batch_size=20, metrics={"ll": metric},
                                   progress=False, lr=0.01)
    trainer.fit(data, epochs=2)
    assert trainer.step == 20 and metric._live.checkpoints == 4
    assert math.isfinite(trainer.history["ll"][-1])


def test_sharded_live_log_likelihood_passes_settle_to_its_rank(one_rank_group) -> None:
    """The Trainer's ``settle`` before the last epoch's value reaches the rank's metric: once lost, its chain
    centres become a swept copy of the training's chains."""
    g = torch.Generator().manual_seed(0)
    data = (torch.rand(200, 16, generator=g) < 0.3).double()
    model = ebmlab.BoltzmannMachine([ebmlab.BernoulliLayer(16), ebmlab.BernoulliLayer(8)], seed=0).double()
    metric = ShardedLogLikelihood(method="tracked", particles=50, every=5, min_overlap=0.9999)
    trainer = ebmlab.train.Trainer(model, ebmlab.train.PCD(chains=20), batch_size=20, metrics={"ll": metric},
                                   progress=False, lr=0.2)
    trainer.fit(data, epochs=2)
    live = metric._live
    assert live.lost and live._training_chains is None  # settle consumed the training's chains …
    assert live._v.shape == (20, 16)  # … and swept a copy of them: the 20 PCD chains, not its 50 particles
    assert math.isinf(trainer.history["ll_stderr"][-1]) and math.isfinite(trainer.history["ll"][-1])
