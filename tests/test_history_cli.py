"""``ebmlab train --out DIR`` records history and checkpoints; ``ebmlab runs DIR`` lists them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ebmlab.cli import main
from ebmlab.history import load_checkpoint, open_run

TRAIN = ["train", "--data", "bars-and-stripes", "--batch-size", "4", "--no-progress", "--snapshot-every", "2"]


def test_train_records_history_and_checkpoint_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "runs" / "bas"
    assert main([*TRAIN, "--epochs", "2", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.safetensors", "history.zarr", "model.safetensors"]
    assert load_checkpoint(out / "checkpoint.safetensors")["epoch"] == 2
    assert main([*TRAIN, "--epochs", "3", "--out", str(out), "--resume"]) == 0
    ds = open_run(out / "history.zarr")
    np.testing.assert_array_equal(ds.epoch, [1, 2, 3])
    np.testing.assert_array_equal(ds.snapshot_epoch, [0, 2, 3])
    assert ds.attrs["dataset"].startswith("bars-and-stripes") and ds.attrs["status"] == "finished"
    assert ds.attrs["trainer"]["epochs"] == 3 and ds.attrs["trainer"]["batch_size"] == 4
    assert main([*TRAIN, "--epochs", "1", "--out", str(tmp_path / "runs" / "other"), "--no-history"]) == 0
    assert not (tmp_path / "runs" / "other" / "history.zarr").exists()
    capsys.readouterr()
    assert main(["runs", str(tmp_path / "runs"), "--metrics", "loss,reconstruction_error"]) == 0
    header, row = capsys.readouterr().out.strip().splitlines()
    assert header.split() == [
        "run",
        "status",
        "epochs",
        "dataset",
        "method",
        "layer_sizes",
        "loss",
        "reconstruction_error",
    ]
    cells = row.split()
    assert cells[:3] == ["bas/history.zarr", "finished", "3"] and cells[4:6] == ["pcd", "16x100"]
    assert float(cells[6]) == pytest.approx(float(ds.metric_loss[-1]), rel=1e-4)


def test_runs_on_an_empty_or_missing_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["runs", str(tmp_path)]) == 0
    assert "no runs" in capsys.readouterr().out
    assert main(["runs", str(tmp_path / "nope")]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_resume_without_a_checkpoint_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main([*TRAIN, "--epochs", "1", "--out", str(tmp_path), "--resume"]) == 2
    assert "no checkpoint file" in capsys.readouterr().err
