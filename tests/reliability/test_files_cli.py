"""CLI battery: refused output folders, mismatched resumes, damaged files, bad experiments and batch folders.

Every case exits with code 2 and prints exactly one line ``ebmlab: error: …`` naming the file, folder,
address or argument at fault (no traceback).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from ebmlab.cli import main
from ebmlab.history import open_run
from ebmlab.history.lock import LOCK_FILE

TRAIN = [
    "train", "--data", "bars-and-stripes", "--layers", "bernoulli:16,bernoulli:6", "--batch-size", "4",
    "--no-progress", "--snapshot-every", "1", "--checkpoint-every", "1", "--validation-fraction", "0",
]  # fmt: skip


@pytest.fixture(scope="module")
def base_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("base") / "run"
    assert main([*TRAIN, "--epochs", "2", "--out", str(out)]) == 0
    return out


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode() + p.read_bytes())
    return h.hexdigest()


def one_error_line(capsys: pytest.CaptureFixture, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("ebmlab: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def checkpoint_doc(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def mutate(out: Path) -> None:
        from safetensors.torch import load_file, safe_open, save_file

        path = out / "checkpoint.safetensors"
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata())
        doc = json.loads(meta["ebmlab_checkpoint"])
        change(doc)
        meta["ebmlab_checkpoint"] = json.dumps(doc)
        meta.pop("ebmlab_sha256")
        save_file(load_file(str(path)), str(path), metadata=meta)

    return mutate


def negative_epoch(doc: dict) -> None:
    for item in doc["state"]["__dict__"]:
        if item[0] == "epoch":
            item[1] = -1


def flip(out: Path) -> None:
    path = out / "checkpoint.safetensors"
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0xFF
    path.write_bytes(bytes(raw))


def not_a_store(out: Path) -> None:
    shutil.rmtree(out / "history.zarr")
    (out / "history.zarr").mkdir()
    (out / "history.zarr" / "notes.txt").write_text("mine")


def locked_by_parent(out: Path) -> None:
    import os

    (out / LOCK_FILE).write_text(str(os.getppid()))


RS = ["--epochs", "3", "--resume"]
OW = ["--epochs", "1", "--overwrite"]

# (extra arguments, how to prepare the copied run folder, texts the one error line must contain)
TRAIN_CASES: dict[str, tuple[list[str], Callable[[Path], None] | None, list[str]]] = {
    "existing run without --resume": (["--epochs", "3"], None, ["already holds a run", "--overwrite"]),
    "existing run, other settings": (["--epochs", "1", "--lr", "0.1"], None, ["already holds a run"]),
    "resume and overwrite together": ([*RS, "--overwrite"], None, ["exclude each other"]),
    "resume with other hidden size": (
        [*RS, "--layers", "bernoulli:16,bernoulli:7"],
        None,
        ["checkpoint.safetensors holds a model with layers bernoulli:16,bernoulli:6", "bernoulli:16,bernoulli:7"],
    ),
    "resume with a gaussian visible layer": (
        [*RS, "--layers", "gaussian:16,bernoulli:6"],
        None,
        ["checkpoint.safetensors holds a model with layers", "gaussian:16,bernoulli:6"],
    ),
    "resume with a deeper model": (
        [*RS, "--layers", "bernoulli:16,bernoulli:6,bernoulli:3"],
        None,
        ["checkpoint.safetensors holds a model with layers"],
    ),
    "resume with CD": ([*RS, "--method", "cd"], None, ["method 'pcd', but the trainer uses 'cd'"]),
    "resume with TAP": ([*RS, "--method", "tap"], None, ["but the trainer uses 'tap'"]),
    "resume with PT": ([*RS, "--method", "pt"], None, ["but the trainer uses 'pt'"]),
    "resume with Adam": ([*RS, "--optimizer", "adam"], None, ["optimizer 'SGD'", "'Adam'"]),
    "resume with other chains": ([*RS, "--chains", "7"], None, ["chains"]),
    "resume with fewer epochs": (
        ["--epochs", "1", "--resume"],
        None,
        ["--epochs 1 is below the epoch 2 of the checkpoint", "checkpoint.safetensors"],
    ),
    "resume from a flipped byte": (RS, flip, ["checkpoint.safetensors is corrupted"]),
    "resume from broken JSON": (
        RS,
        lambda out: (out / "checkpoint.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}"),
        ["checkpoint.safetensors is not a readable safetensors checkpoint file"],
    ),
    "resume from a negative epoch": (
        RS,
        checkpoint_doc(negative_epoch),
        ["checkpoint.safetensors: the checkpoint's epoch must be a non-negative integer, got -1"],
    ),
    "resume without a checkpoint": (
        RS,
        lambda out: (out / "checkpoint.safetensors").unlink(),
        ["no checkpoint file at", "checkpoint.safetensors"],
    ),
    "resume into a garbage epoch chunk": (
        RS,
        lambda out: (out / "history.zarr" / "epoch" / "c" / "0").write_bytes(b"\x00" * 13),
        ["run store", "history.zarr: variable 'epoch' cannot be read"],
    ),
    "resume into a store without a variable": (
        RS,
        lambda out: shutil.rmtree(out / "history.zarr" / "metric_loss"),
        ["run store", "history.zarr cannot be continued", "metric_loss"],
    ),
    "overwrite a folder that is no store": (["--epochs", "1", "--overwrite"], not_a_store, ["history.zarr is not a"]),
    "locked by a live process": (RS, locked_by_parent, ["another training (pid", LOCK_FILE]),
    "out is a file": (["--epochs", "1"], lambda out: (shutil.rmtree(out), out.write_text("x")), ["is a file"]),
    "validation fraction 1.5": ([*OW, "--validation-fraction", "1.5"], None, ["--validation-fraction"]),
    "negative threads": ([*OW, "--threads", "-1"], None, ["--threads must be >= 0"]),
    "negative l2": ([*OW, "--l2", "-1"], None, ["--l2 must be >= 0"]),
    "layer size not a number": ([*OW, "--layers", "bernoulli:16,bernoulli:x"], None, ["SIZE must be an integer"]),
    "unknown layer type": ([*OW, "--layers", "bernoulli:16,relu:4"], None, ["'relu:4' must look like TYPE:SIZE"]),
    "visible size not the data's": ([*OW, "--layers", "bernoulli:15,bernoulli:4"], None, ["has 15 units but"]),
    "one layer only": ([*OW, "--layers", "bernoulli:16"], None, ["--layers must list a visible and"]),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(TRAIN_CASES))
def test_train_refuses_with_one_line(case: str, base_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    extra, prepare, needles = TRAIN_CASES[case]
    out = tmp_path / "run"
    shutil.copytree(base_run, out)
    if prepare is not None:
        prepare(out)
    before = digest(out) if out.is_dir() else None
    capsys.readouterr()
    assert main([*TRAIN, "--out", str(out), *extra]) == 2
    one_error_line(capsys, *needles)
    if out.is_dir():
        assert digest(out) == before  # nothing in the run folder was touched (a lock we did not own stays)


def test_overwrite_replaces_the_run(base_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    shutil.copytree(base_run, out)
    assert main([*TRAIN, "--epochs", "1", "--out", str(out), "--overwrite", "--seed", "3"]) == 0
    ds = open_run(out / "history.zarr")
    np.testing.assert_array_equal(ds.epoch, [1])
    assert ds.attrs["seed"] == 3 and ds.attrs["status"] == "finished"
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.safetensors", "history.zarr", "model.safetensors"]


@pytest.mark.parametrize("content", ["dead pid", "garbage", "empty"])
def test_a_stale_lock_is_taken_over(content: str, base_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    shutil.copytree(base_run, out)
    if content == "dead pid":
        child = subprocess.Popen([sys.executable, "-c", "pass"])
        child.wait()
        text = str(child.pid)
    else:
        text = "" if content == "empty" else "not a pid"
    (out / LOCK_FILE).write_text(text)
    assert main([*TRAIN, "--epochs", "3", "--out", str(out), "--resume"]) == 0
    assert not (out / LOCK_FILE).exists()
    np.testing.assert_array_equal(open_run(out / "history.zarr").epoch, [1, 2, 3])


# -- batch, report, runs -----------------------------------------------------------------------


def yaml_file(text: str) -> Callable[[Path], list[str]]:
    def make(tmp: Path) -> list[str]:
        path = tmp / "experiment.yaml"
        path.write_text(text)
        return ["batch", str(path), "--out", str(tmp / "batch"), "--no-progress"]

    return make


BATCH_CASES: dict[str, tuple[Callable[[Path], list[str]], list[str]]] = {
    "missing config": (lambda tmp: ["batch", str(tmp / "nope.yaml")], ["nope.yaml"]),
    "unclosed list": (yaml_file("template: t\ngrid:\n  lr: [1, 2\n  k: 3\n"), ["YAML at line 4, column 4"]),
    "bad indentation": (yaml_file("template: t\n parameters: 1\n  x: 2\n"), ["experiment.yaml: malformed YAML"]),
    "tab indentation": (yaml_file("template: train\nparameters:\n\tepochs: 1\n"), ["YAML at line 3, column 1"]),
    "unclosed quote": (yaml_file('template: "train\nparameters: {}\n'), ["experiment.yaml: malformed YAML at line"]),
    "a list, not a mapping": (yaml_file("- template\n- train\n"), ["experiment.yaml: expected a YAML mapping"]),
    "empty file": (yaml_file(""), ["experiment.yaml: expected a YAML mapping"]),
    "unknown key": (yaml_file("template: train\ngird: {}\n"), ["unknown experiment keys ['gird']"]),
    "dead scheduler": (
        lambda tmp: [*yaml_file("template: train\nparameters:\n  epochs: 1\n")(tmp), "--scheduler", "tcp://127.0.0.1:9"],
        ["no Dask scheduler answers at tcp://127.0.0.1:9"],
    ),
    "scheduler without a protocol": (
        lambda tmp: [*yaml_file("template: train\nparameters:\n  epochs: 1\n")(tmp), "--scheduler", "localhost:8786"],
        ["scheduler must be an address like 'tcp://host:8786', got 'localhost:8786'"],
    ),
    "report of a missing folder": (lambda tmp: ["report", str(tmp / "nothing")], ["nothing", "not a directory"]),
    "report of an empty folder": (lambda tmp: ["report", str(tmp)], ["holds no points"]),
    "report with a broken experiment.json": (
        lambda tmp: (tmp.joinpath("experiment.json").write_text("{"), ["report", str(tmp)])[1],
        ["experiment.json is not valid JSON"],
    ),
    "report with points that are no objects": (
        lambda tmp: (tmp.joinpath("experiment.json").write_text('{"points": [1]}'), ["report", str(tmp)])[1],
        ["experiment.json must be a JSON object whose 'points'"],
    ),
    "runs of a missing folder": (lambda tmp: ["runs", str(tmp / "none")], ["none is not a folder"]),
    "runs of a file": (lambda tmp: (tmp.joinpath("f").write_text(""), ["runs", str(tmp / "f")])[1], ["not a folder"]),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BATCH_CASES))
def test_batch_report_runs_errors_are_one_line(case: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    make, needles = BATCH_CASES[case]
    argv = make(tmp_path)
    capsys.readouterr()
    assert main(argv) == 2
    one_error_line(capsys, *needles)


def test_runs_lists_the_good_runs_and_marks_the_broken_one(
    base_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    for name in ("a", "b", "c"):
        shutil.copytree(base_run / "history.zarr", tmp_path / name / "history.zarr")
    (tmp_path / "b" / "history.zarr" / "metric_loss" / "c" / "0").write_bytes(b"\x00" * 3)
    shutil.rmtree(tmp_path / "c" / "history.zarr" / "epoch")
    capsys.readouterr()
    assert main(["runs", str(tmp_path), "--metrics", "loss"]) == 0
    captured = capsys.readouterr()
    table = [line.split() for line in captured.out.strip().splitlines()]
    assert table[0] == ["run", "status", "epochs", "dataset", "method", "layer_sizes", "loss"]
    assert table[1][:3] == ["a/history.zarr", "finished", "2"] and table[1][4:6] == ["pcd", "16x6"]
    assert table[2][:2] == ["b/history.zarr", "broken"] and table[3][:2] == ["c/history.zarr", "broken"]
    problems = captured.err.strip().splitlines()
    assert len(problems) == 2
    assert problems[0].startswith("broken: b/history.zarr: run store") and "'metric_loss'" in problems[0]
    assert problems[1].startswith("broken: c/history.zarr: run store") and "'epoch' is missing" in problems[1]
