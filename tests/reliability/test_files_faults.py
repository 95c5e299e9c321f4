"""Faults while a run is written: a history deleted, full or unwritable mid-run; locks; stale temporaries;
and the floors rule that learning never imports storage (issue 15.3)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import zarr.storage._local as zarr_local

import ebmlab.commands.train as train_command
from ebmlab import BernoulliLayer, BoltzmannMachine
from ebmlab.cli import main
from ebmlab.history import Checkpoint, Recorder, RunLock, RunLockedError, StoreWriteError, open_run, resume
from ebmlab.history.lock import LOCK_FILE
from ebmlab.train import PCD, Callback, Trainer


def data() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return (torch.rand(40, 6, generator=g) < 0.4).float()


def trainer(*callbacks: Any) -> Trainer:
    model = BoltzmannMachine([BernoulliLayer(6), BernoulliLayer(4)], seed=1)
    return Trainer(model, PCD(chains=8), lr=1e-2, batch_size=10, progress=False, metrics={}, callbacks=list(callbacks))


def recorder(path: Path) -> Recorder:
    return Recorder(path, snapshot_every=1, particles=4, bins=3, energy_rows=10)


class AtEpoch(Callback):
    """Run ``action`` at the end of epoch ``epoch`` (after the Recorder committed it)."""

    def __init__(self, epoch: int, action: Any) -> None:
        self.epoch, self.action = epoch, action

    def on_epoch_end(self, state: Any) -> None:
        if state.epoch == self.epoch:
            self.action()


def failing_writes(monkeypatch: pytest.MonkeyPatch, code: int, metadata_too: bool) -> None:
    """From now on zarr's file writes fail with ``code`` (chunks only, or metadata too)."""
    put = zarr_local._put

    def broken(path: Path, value: Any, exclusive: bool = False) -> int:
        if metadata_too or path.name != "zarr.json":
            raise OSError(code, os.strerror(code), str(path))
        return put(path, value, exclusive)

    monkeypatch.setattr(zarr_local, "_put", broken)


def test_history_deleted_mid_run_stops_training_with_one_error_naming_the_store(tmp_path: Path) -> None:
    path = tmp_path / "h.zarr"
    run = trainer(recorder(path), AtEpoch(2, lambda: shutil.rmtree(path)))
    with pytest.raises(StoreWriteError, match=f"the run history store {path} was deleted") as info:
        run.fit(data(), 6)
    assert run.epoch == 3  # stopped at the first epoch it could not record
    assert not path.exists()  # not recreated as a store without metadata
    assert any("could not be marked failed" in note for note in info.value.__notes__)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EIO])
def test_full_disk_mid_run_marks_the_run_failed_and_keeps_the_recorded_epochs(
    code: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "h.zarr"
    run = trainer(recorder(path), AtEpoch(2, lambda: failing_writes(monkeypatch, code, metadata_too=False)))
    with pytest.raises(StoreWriteError, match=f"cannot write the run history store {path}: .*{os.strerror(code)}"):
        run.fit(data(), 6)
    monkeypatch.undo()
    ds = open_run(path)
    assert ds.attrs["status"] == "failed" and "StoreWriteError" in ds.attrs["error"]
    np.testing.assert_array_equal(ds.epoch, [1, 2])
    np.testing.assert_array_equal(ds.metric_loss, run.history["loss"][:2])
    np.testing.assert_array_equal(ds.snapshot_epoch, [0, 1, 2])


@pytest.mark.parametrize("code", [errno.EACCES, errno.EROFS, errno.ENOSPC])
def test_unwritable_store_fails_once_and_leaves_the_committed_epochs(
    code: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "h.zarr"
    run = trainer(recorder(path), AtEpoch(3, lambda: failing_writes(monkeypatch, code, metadata_too=True)))
    with pytest.raises(StoreWriteError, match=str(path)) as info:
        run.fit(data(), 6)
    monkeypatch.undo()
    assert any("could not be marked failed" in note for note in info.value.__notes__)
    ds = open_run(path)  # still readable: status "running", as after a kill, never "finished"
    assert ds.attrs["status"] == "running"
    np.testing.assert_array_equal(ds.epoch, [1, 2, 3])


def test_failure_of_the_final_commit_is_raised_and_marked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "h.zarr"
    rec = Recorder(path, snapshot_every=10, particles=4, bins=3, energy_rows=10)
    run = trainer(rec, AtEpoch(3, lambda: failing_writes(monkeypatch, errno.ENOSPC, metadata_too=False)))
    with pytest.raises(StoreWriteError, match="No space left"):
        run.fit(data(), 3)  # epoch 3's row is written by on_train_end (snapshot) and fails there
    monkeypatch.undo()
    assert open_run(path).attrs["status"] == "failed"


def test_another_error_is_not_hidden_by_a_failing_store_or_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "h.zarr"

    def boom() -> None:
        failing_writes(monkeypatch, errno.EROFS, metadata_too=True)
        shutil.rmtree(tmp_path / "ckpt-dir", ignore_errors=True)
        (tmp_path / "ckpt-dir").write_text("a file where the checkpoint folder was")
        raise RuntimeError("the original problem")

    run = trainer(recorder(path), Checkpoint(tmp_path / "ckpt-dir" / "c.safetensors", every=10), AtEpoch(2, boom))
    with pytest.raises(RuntimeError, match="the original problem") as info:
        run.fit(data(), 5)
    assert not isinstance(info.value, OSError)
    notes = " ".join(info.value.__notes__)
    assert "could not be marked failed" in notes and "the checkpoint" in notes and "could not be written" in notes


def test_cli_history_deleted_mid_run_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "run"
    history = out / "history.zarr"
    callbacks = train_command.history_callbacks
    monkeypatch.setattr(
        train_command,
        "history_callbacks",
        lambda args: [*callbacks(args), AtEpoch(1, lambda: shutil.rmtree(history))],
    )
    argv = ["train", "--data", "bars-and-stripes", "--layers", "bernoulli:16,bernoulli:4", "--batch-size", "8"]
    assert main([*argv, "--epochs", "4", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"ebmlab: error: the run history store {history} was deleted"), err
    assert not (out / "model.safetensors").exists() and not history.exists() and not (out / LOCK_FILE).exists()


# -- locks -------------------------------------------------------------------------------------


def test_a_lock_of_a_live_process_is_refused_and_taken_over_once_it_died(tmp_path: Path) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / LOCK_FILE).write_text(str(sleeper.pid))
        with pytest.raises(RunLockedError, match=f"another training \\(pid {sleeper.pid}\\) is writing to {tmp_path}"):
            RunLock(tmp_path).acquire()
    finally:
        sleeper.kill()
        sleeper.wait()
    with RunLock(tmp_path) as lock:
        assert (tmp_path / LOCK_FILE).read_text() == str(os.getpid()) and lock.held
    assert not (tmp_path / LOCK_FILE).exists()


def test_one_process_cannot_hold_one_folder_twice(tmp_path: Path) -> None:
    with RunLock(tmp_path):
        with pytest.raises(RunLockedError, match=f"pid {os.getpid()}"):
            RunLock(tmp_path).acquire()
        assert (tmp_path / LOCK_FILE).read_text() == str(os.getpid())
    assert not (tmp_path / LOCK_FILE).exists()


def test_two_trainings_into_one_out_at_once_one_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "ebmlab.cli", "train", "--data", "bars-and-stripes", "--layers"]
    argv += ["bernoulli:16,bernoulli:4", "--batch-size", "4", "--epochs", "8", "--no-progress", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    runs = [subprocess.Popen(argv, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env) for _ in "ab"]
    results = [(p.wait(timeout=240), p.communicate()[1]) for p in runs]
    assert sorted(code for code, _ in results) == [0, 2], results
    refused = next(err for code, err in results if code == 2).strip()
    assert refused.startswith("ebmlab: error: ") and len(refused.splitlines()) == 1
    assert "another training (pid" in refused or "already holds a run" in refused
    np.testing.assert_array_equal(open_run(out / "history.zarr").epoch, np.arange(1, 9))


# -- stale temporary files ---------------------------------------------------------------------


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_temporaries_of_dead_writers_are_removed_by_the_next_write(tmp_path: Path) -> None:
    model = BoltzmannMachine([BernoulliLayer(3), BernoulliLayer(2)])
    stale = tmp_path / f".m.safetensors.{dead_pid()}.tmp"
    live = tmp_path / f".m.safetensors.{os.getppid()}.tmp"
    other = tmp_path / f".n.safetensors.{dead_pid()}.tmp"
    for p in (stale, live, other):
        p.write_bytes(b"half a file")
    model.save(tmp_path / "m.safetensors")
    assert not stale.exists() and live.exists() and other.exists()


def test_partial_files_of_a_killed_writer_are_removed_when_the_store_is_continued(tmp_path: Path) -> None:
    path = tmp_path / "h.zarr"
    ckpt = tmp_path / "c.safetensors"
    trainer(recorder(path), Checkpoint(ckpt)).fit(data(), 2)
    for rel in ("metric_loss/c/0.1f2e.partial", "zarr.77aa.partial", "weights_0/c/2/0/0.3b.partial"):
        (path / rel).write_bytes(b"half")
    resume(trainer(recorder(path), Checkpoint(ckpt)), ckpt).fit(data(), 3)
    assert not list(path.rglob("*.partial"))
    np.testing.assert_array_equal(open_run(path).epoch, [1, 2, 3])


# -- floors (issue 15.3) -----------------------------------------------------------------------


def test_learning_never_imports_storage() -> None:
    code = (
        "import sys, ebmlab.train\n"
        "from ebmlab.train import Trainer\n"
        "t = Trainer.__init__\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('ebmlab.history', 'zarr', 'xarray')))\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.replace("'", '"')) == []


def test_trainer_resume_without_a_path_still_unpauses() -> None:
    run = trainer()
    run.pause()
    assert run.paused
    assert run.resume() is run and not run.paused
    with pytest.raises(TypeError):
        run.resume("checkpoint.safetensors")  # type: ignore[call-arg]
