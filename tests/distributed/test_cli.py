"""``ebmlab train`` on 2 ranks: the ``--nproc`` shortcut (torchrun) resuming a one-process run, and a killed rank."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import ebmlab
from ebmlab.cli import main
from ebmlab.history import open_run

from . import _spawn

TINY = ["train", "--data", "digits", "--layers", "bernoulli:64,bernoulli:16", "--method", "cd", "--no-progress"]


@pytest.mark.slow
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


@pytest.mark.slow
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
