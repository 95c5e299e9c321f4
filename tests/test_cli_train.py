"""``ebmlab train`` end to end on the bundled digits."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

import ebmlab
from ebmlab.cli import main

FLAGS = [
    "--data", "--data-dir", "--split", "--binarize", "--validation-fraction", "--layers", "--init", "--device",
    "--threads", "--method", "--mc-steps", "--chains", "--beta-std", "--epochs", "--batch-size", "--lr",
    "--optimizer", "--l2", "--seed", "--out", "--no-progress",
]  # fmt: skip


def test_train_on_digits_saves_the_model_and_prints_the_final_metrics(tmp_path, capsys):
    began = time.perf_counter()
    args = ["train", "--data", "digits", "--layers", "bernoulli:64,bernoulli:50", "--method", "pcd", "--mc-steps", "1"]
    args += ["--epochs", "3", "--lr", "1e-2", "--seed", "0", "--l2", "1e-4", "--out", str(tmp_path / "run")]
    assert main([*args, "--no-progress"]) == 0
    assert time.perf_counter() - began < 60
    out = capsys.readouterr().out
    line = next(s for s in out.splitlines() if s.startswith("epoch 3:"))
    for name in ("reconstruction_error", "val_pseudo_likelihood", "free_energy_gap"):
        assert re.search(rf"\b{name}=-?[0-9.e+-]+", line), line
    model = ebmlab.load(tmp_path / "run" / "model.safetensors")
    assert model.sizes == [64, 50]


def test_cd_with_sgd_and_default_layers(tmp_path, capsys):
    args = [
        "train",
        "--method",
        "cd",
        "--optimizer",
        "sgd",
        "--init",
        "pca",
        "--validation-fraction",
        "0",
        "--no-history",
    ]
    assert main([*args, "--epochs", "1", "--out", str(tmp_path), "--no-progress"]) == 0
    assert ebmlab.load(tmp_path / "model.safetensors").sizes == [64, 100]
    assert "val_" not in capsys.readouterr().out


@pytest.mark.parametrize(("method", "metric"), [("pt", "swap_rate="), ("tap", "tap_log_z=")])
def test_parallel_tempering_and_tap_from_the_cli(tmp_path, capsys, method, metric):
    args = ["train", "--method", method, "--layers", "bernoulli:64,bernoulli:16", "--epochs", "1", "--no-history"]
    assert main([*args, "--out", str(tmp_path), "--no-progress"]) == 0
    assert metric in capsys.readouterr().out
    assert ebmlab.load(tmp_path / "model.safetensors").sizes == [64, 16]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--layers", "bernoulli:10,bernoulli:5"], "--layers: the visible layer has 10 units"),
        (["--validation-fraction", "1.5"], "--validation-fraction"),
        (["--batch-size", "100000"], "batch_size"),
    ],
)
def test_bad_arguments_exit_with_a_clear_message(tmp_path, capsys, extra, message):
    assert main(["train", "--epochs", "1", "--out", str(tmp_path), "--no-progress", *extra]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "model.safetensors").exists()


def test_help_explains_every_flag(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    usage, _, options = text.partition("options:")
    flags = set(re.findall(r"--[a-z][a-z0-9-]*", usage))
    assert set(FLAGS) <= flags
    for flag in flags:
        # each option line "  --flag VALUE   help…" (or help on the next line) carries a description
        entry = re.search(rf"^  {flag}(?![a-z0-9-]).*(\n {{10,}}\S.*)*", options, re.MULTILINE)
        assert entry and len(re.sub(rf"{flag}\s*[A-Z_{{}},a-z-]*", "", entry.group(0), count=1).split()) >= 3, flag


def test_the_ebmlab_entry_point_trains_in_a_subprocess(tmp_path):
    script = Path(sys.executable).with_name("ebmlab")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "ebmlab.cli"]
    args = ["train", "--data", "digits", "--epochs", "2", "--seed", "1", "--out", str(tmp_path), "--no-progress"]
    args.append("--no-history")
    began = time.perf_counter()
    result = subprocess.run([*command, *args], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert time.perf_counter() - began < 60
    assert "epoch 2:" in result.stdout and "model saved to" in result.stdout
    assert (tmp_path / "model.safetensors").is_file()
