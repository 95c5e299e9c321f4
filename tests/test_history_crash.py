"""Crash safety and concurrent reading of a run store written by a separate training process."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from ebmlab.history import load_checkpoint, open_run

# The child trains an RBM with a Recorder (a snapshot every epoch) and a Checkpoint, then after each epoch prints
# the epoch, its loss and a digest of the weights it just recorded, so the parent knows what
# every finished epoch must look like in the store.
CHILD = """
import hashlib, json, sys
import torch
torch.set_num_threads(1)
from ebmlab import BernoulliLayer, BoltzmannMachine
from ebmlab.data import as_dataset
from ebmlab.history import Checkpoint, Recorder
from ebmlab.train import PCD, Callback, Trainer

class Report(Callback):
    def on_epoch_end(self, state):
        w = state.model.weights[0].detach().numpy().tobytes()
        print(json.dumps({"epoch": state.epoch, "loss": state.metrics["loss"],
                          "weights": hashlib.sha1(w).hexdigest()}), flush=True)

path, epochs = sys.argv[1], int(sys.argv[2])
g = torch.Generator().manual_seed(0)
data = as_dataset((torch.rand(300, 40, generator=g) < 0.3).float())
model = BoltzmannMachine([BernoulliLayer(40), BernoulliLayer(30)])
rec = Recorder(path, snapshot_every=1, particles=20, bins=10)
ckpt = Checkpoint(path + ".ckpt")
# metric_budget=None: every metric every epoch (the budget would skip some by measured cost, at random)
trainer = Trainer(model, PCD(chains=20), lr=1e-2, batch_size=30, progress=False, metric_budget=None,
                  callbacks=[rec, ckpt, Report()])
print(json.dumps({"ready": True}), flush=True)
trainer.fit(data, epochs)
"""


def start(path: Path, epochs: int) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(epochs)], stdout=subprocess.PIPE, text=True, env=env
    )


def check_store(path: Path, reports: dict[int, dict]) -> int:
    """Every epoch in the store is whole and matches what the child reported; returns the epoch count."""
    ds = open_run(path)
    n = ds.sizes["epoch"]
    np.testing.assert_array_equal(ds.epoch, np.arange(1, n + 1))
    for name in ("metric_loss", "metric_lr", "metric_wall_seconds", "metric_pseudo_likelihood"):
        assert not np.isnan(ds[name].values).any(), name
    np.testing.assert_array_equal(ds.snapshot_epoch, np.arange(ds.sizes["snapshot"]))
    assert ds.sizes["snapshot"] == n + 1  # epoch 0, then one per epoch, published with the epoch
    weights = ds.weights_0.values
    assert not np.isnan(ds.fantasy.values).any() and not np.isnan(ds.energy_hist_data.values).any()
    for epoch, rep in reports.items():
        if epoch <= n:
            assert ds.metric_loss.values[epoch - 1] == rep["loss"]
            assert hashlib.sha1(weights[epoch].tobytes()).hexdigest() == rep["weights"]
    return n


def test_sigkill_at_random_moments_leaves_every_finished_epoch_and_no_partial_one(tmp_path: Path) -> None:
    rng = random.Random(1234)
    paths = [tmp_path / f"kill{trial}.zarr" for trial in range(4)]
    children = [start(path, 100_000) for path in paths]  # started together: their imports overlap
    firsts = []
    for child in children:
        assert json.loads(child.stdout.readline()) == {"ready": True}
        firsts.append(child.stdout.readline())  # the first epoch is done: the store exists
        time.sleep(rng.uniform(0.0, 0.6))
        child.send_signal(signal.SIGKILL)
    for path, child, first in zip(paths, children, firsts):
        out = first + child.communicate()[0]  # on a loaded machine the kill may come before a second epoch
        assert child.returncode == -signal.SIGKILL
        reports = {r["epoch"]: r for r in map(json.loads, out.splitlines()) if "epoch" in r}
        n = check_store(path, reports)
        printed = max(reports)
        # the child prints after the Recorder commits, so the store holds every printed epoch,
        # and at most the one it was killed before printing
        assert printed <= n <= printed + 1, (printed, n)
        # the checkpoint (written after the store's commit, atomically) is whole and not ahead of the store
        ckpt = load_checkpoint(f"{path}.ckpt")
        assert printed <= ckpt["epoch"] <= n and ckpt["history"]["loss"] == list(
            open_run(path).metric_loss.values[: ckpt["epoch"]]
        )
        assert open_run(path).attrs["status"] == "running"


def test_reader_polling_a_training_process_never_fails_and_sees_epochs_grow(tmp_path: Path) -> None:
    path = tmp_path / "live.zarr"
    epochs = 40
    child = start(path, epochs)
    assert json.loads(child.stdout.readline()) == {"ready": True}
    json.loads(child.stdout.readline())
    counts = []
    while child.poll() is None:
        ds = open_run(path)
        n = ds.sizes["epoch"]
        assert not np.isnan(ds.metric_loss.values).any()
        np.testing.assert_array_equal(ds.epoch, np.arange(1, n + 1))
        assert ds.sizes["snapshot"] == n + 1
        assert not np.isnan(ds.fantasy[-1].values).any()
        counts.append(n)
    out = child.communicate()[0]
    assert child.returncode == 0
    assert counts == sorted(counts) and len(set(counts)) >= 3
    reports = {r["epoch"]: r for r in map(json.loads, out.splitlines()) if "epoch" in r}
    ds = open_run(path)
    assert ds.sizes["epoch"] == epochs and ds.attrs["status"] == "finished"
    assert [ds.metric_loss.values[e - 1] for e in sorted(reports)] == [reports[e]["loss"] for e in sorted(reports)]
