"""``ebmlab train`` on 2 ranks: the ``--nproc`` shortcut (torchrun) resuming a one-process run, a killed rank,
and the errors of bad data-parallel input (those in-process, no group needed)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import ebmlab
from ebmlab.cli import main
from ebmlab.commands.train import launch_argv
from ebmlab.history import open_run
from ebmlab.train import CD, Trainer
from ebmlab.train.distributed import DataParallel, init_process_group

from . import _spawn

TINY = ["train", "--data", "digits", "--layers", "bernoulli:64,bernoulli:16", "--method", "cd", "--no-progress"]


def test_nproc_resumes_a_one_process_run_on_two_ranks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """1 epoch alone, then epoch 2 via ``--nproc 2`` (torchrun): one history of 2 epochs, written by rank 0
    alone, one summary line, and the parameters of 2 epochs on one process (CD shares the noise)."""
    out, alone = tmp_path / "run", tmp_path / "alone"
    assert main([*TINY, "--epochs", "1", "--out", str(out)]) == 0
    assert main([*TINY, "--epochs", "2", "--out", str(alone)]) == 0
    capsys.readouterr()
    command = [sys.executable, "-m", "ebmlab", *TINY, "--epochs", "2", "--out", str(out), "--resume", "--nproc", "2"]
    env = _spawn.rank_env(0, 1, 0)
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name)
    done = subprocess.run(command, env=env, cwd=_spawn.ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("epoch 2:") == 1 and done.stdout.count("model saved to") == 1
    run = open_run(out / "history.zarr")
    assert run.sizes["epoch"] == 2 and bool(torch.isfinite(torch.as_tensor(run["metric_loss"].values)).all())
    a, b = ebmlab.load(out / "model.safetensors"), ebmlab.load(alone / "model.safetensors")
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_a_killed_rank_makes_rank_0_fail_with_one_clear_error(tmp_path: Path) -> None:
    out = tmp_path / "run"
    procs = _spawn.start(["-m", "ebmlab", *TINY, "--epochs", "100000", "--out", str(out), "--dist-timeout", "30"], 2)
    try:
        deadline = time.monotonic() + 120
        while not (out / "history.zarr").exists():  # rank 0's recorder starts with training
            assert time.monotonic() < deadline and procs[0].poll() is None, "training did not start"
            time.sleep(0.1)
        time.sleep(0.5)
        procs[1].kill()
        began = time.monotonic()
        (rc, _, err), = _spawn.finish(procs[:1], timeout=60)
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert time.monotonic() - began < 60
    assert rc == 2
    lines = [line for line in err.splitlines() if line.startswith("ebmlab: error:")]
    assert len(lines) == 1 and "rank 0 of 2" in lines[0] and "--resume" in lines[0], err[-2000:]


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
    assert os.environ["WORLD_SIZE"] == "2"


def test_launch_argv_drops_nproc_only() -> None:
    argv = ["train", "--nproc", "2", "--epochs", "3", "--nproc=4", "--npro", "3", "--out", "x"]
    assert launch_argv(argv) == ["train", "--epochs", "3", "--out", "x"]
