"""SIGKILL of ``ebmlab train --out`` at random moments, then ``--resume``: every recorded epoch is whole
(bit-equal to an uninterrupted run's), and the resumed run ends bit-identical to it, with no stray
temporary file or lock left behind."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from ebmlab.cli import main
from ebmlab.history import open_run
from ebmlab.history.lock import LOCK_FILE

EPOCHS = 40
ARGS = [
    "train", "--data", "bars-and-stripes", "--layers", "bernoulli:16,bernoulli:8", "--batch-size", "4",
    "--epochs", str(EPOCHS), "--snapshot-every", "1", "--checkpoint-every", "1", "--no-progress", "--seed", "5",
    "--validation-fraction", "0",
]  # fmt: skip


def epochs_done(out: Path) -> int:
    try:
        return int(json.loads((out / "history.zarr" / "zarr.json").read_text())["attributes"]["epochs_done"])
    except (OSError, ValueError, KeyError):
        return 0


def kill_after(out: Path, resume: bool, epoch: int, rng: random.Random) -> int:
    """Start ``ebmlab train`` into ``out``, SIGKILL it once ``epoch`` epochs are recorded (plus a random
    moment); returns the epochs recorded before the kill."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-m", "ebmlab.cli", *ARGS, "--out", str(out), *(["--resume"] if resume else [])]
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    while epochs_done(out) < epoch and child.poll() is None:
        time.sleep(0.01)
    time.sleep(rng.uniform(0.0, 0.08))
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL, child.stderr.read() if child.stderr else ""
    child.stderr.close()
    return epochs_done(out)


def check_whole(out: Path, reference: Path) -> int:
    """Every epoch and snapshot in ``out``'s store equals the uninterrupted run's; returns the epoch count."""
    ds, ref = open_run(out / "history.zarr"), open_run(reference / "history.zarr")
    n = ds.sizes["epoch"]
    assert ds.attrs["status"] == "running"
    np.testing.assert_array_equal(ds.epoch, np.arange(1, n + 1))
    np.testing.assert_array_equal(ds.snapshot_epoch, np.arange(n + 1))
    for name in ("metric_loss", "metric_reconstruction_error", "metric_pseudo_likelihood", "metric_lr"):
        np.testing.assert_array_equal(ds[name].values, ref[name].values[:n], err_msg=name)
    for name in ("weights_0", "visible_bias", "hidden_bias", "fantasy", "energy_hist_data"):
        np.testing.assert_array_equal(ds[name].values, ref[name].values[: n + 1], err_msg=name)
    return n


@pytest.mark.slow
def test_random_kills_of_train_out_lose_no_epoch_and_resume_bit_identically(tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    assert main([*ARGS, "--out", str(reference)]) == 0
    out = tmp_path / "killed"
    rng = random.Random(11)
    recorded = 0
    for kill in range(3):
        recorded = kill_after(out, resume=kill > 0, epoch=recorded + rng.randint(2, 6), rng=rng)
        assert 0 < recorded < EPOCHS
        assert check_whole(out, reference) == recorded
        assert (out / LOCK_FILE).is_file()  # left by the killed process; the next run takes it over
    assert main([*ARGS, "--out", str(out), "--resume"]) == 0
    ours, theirs = load_file(str(out / "model.safetensors")), load_file(str(reference / "model.safetensors"))
    assert ours.keys() == theirs.keys() and all(ours[k].equal(theirs[k]) for k in ours)
    ds, ref = open_run(out / "history.zarr"), open_run(reference / "history.zarr")
    assert ds.attrs["status"] == "finished"
    np.testing.assert_array_equal(ds.metric_loss, ref.metric_loss)
    np.testing.assert_array_equal(ds.weights_0, ref.weights_0)
    leftovers = [p for p in out.rglob("*") if p.name.endswith((".tmp", ".partial")) or p.name == LOCK_FILE]
    assert leftovers == []
