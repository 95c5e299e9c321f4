"""``ebmlab batch`` prints only its own lines: the kernels' logs go to each point's ``kernel.log``.

A one-point batch runs through the CLI with captured output on a kernelspec that does not declare
CurveZMQ support: ipykernel logs "Kernel is running over TCP without encryption", which must land in
the point's kernel.log, not in the terminal. A point run on a kernelspec that declares it is
encrypted, so ipykernel has nothing to warn about.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from ebmlab.experiments.runner import KERNEL_LOG_FILE, LOG_FILE, run_point

NOISE = ("without encryption", "KeyboardInterrupt")


def _kernelspec(root: Path, name: str, curve: bool) -> None:
    folder = root / "kernels" / name
    folder.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": name,
        "language": "python",
        "metadata": {"supported_encryption": ["curve"]} if curve else {},
    }
    (folder / "kernel.json").write_text(json.dumps(spec))


def _batch(tmp_path: Path, kernel: str) -> tuple[str, Path]:
    nb = nbformat.v4.new_notebook()
    parameters = nbformat.v4.new_code_cell("seed = 0\nout = '.'")
    parameters.metadata["tags"] = ["parameters"]
    nb.cells = [parameters, nbformat.v4.new_code_cell("print('cell output of seed', seed)")]
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
    nbformat.write(nb, tmp_path / f"{kernel}.ipynb")
    config = {"name": kernel, "template": f"{kernel}.ipynb", "kernel": kernel, "seeds": [3]}
    (tmp_path / f"{kernel}.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "JUPYTER_PATH": str(tmp_path / "jupyter")}
    command = ["batch", f"{kernel}.yaml", "--out", f"out-{kernel}", "--workers", "1", "--no-report"]
    done = subprocess.run(
        [sys.executable, "-m", "ebmlab.cli", *command],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    (point,) = (tmp_path / f"out-{kernel}" / "points").iterdir()
    return output, point


@pytest.mark.slow
def test_batch_output_has_no_kernel_log_lines(tmp_path: Path) -> None:
    _kernelspec(tmp_path / "jupyter", "ebmlab-plain", curve=False)
    output, point = _batch(tmp_path, "ebmlab-plain")
    assert "1 points: 1 finished" in output
    assert not [line for line in output.splitlines() if any(n in line for n in NOISE)], output
    assert "cell output of seed 3" in (point / LOG_FILE).read_text()
    assert "Kernel is running over TCP without encryption" in (point / KERNEL_LOG_FILE).read_text()


def test_kernel_connection_is_encrypted_when_supported(tmp_path: Path, capfd, monkeypatch) -> None:
    _kernelspec(tmp_path / "jupyter", "ebmlab-curve", curve=True)
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("print('encrypted point ran')")]
    nb.metadata["kernelspec"] = {"name": "ebmlab-curve", "display_name": "ebmlab-curve", "language": "python"}
    nbformat.write(nb, tmp_path / "t.ipynb")
    status = run_point(str(tmp_path / "t.ipynb"), str(tmp_path / "point"), {}, kernel_name="ebmlab-curve")
    assert status["status"] == "finished", status.get("error")
    captured = capfd.readouterr()
    assert not any(n in captured.out + captured.err for n in NOISE), captured
    assert "encrypted point ran" in (tmp_path / "point" / LOG_FILE).read_text()
    assert "without encryption" not in (tmp_path / "point" / KERNEL_LOG_FILE).read_text()
