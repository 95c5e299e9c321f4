"""Every notebook in notebooks/ and notebooks/templates/ runs headless under papermill with its CI parameters.

A notebook keeps its small CI settings in its metadata (``metadata.ebmlab.ci_parameters``). The
templates write into a temporary folder; ``compare.ipynb`` compares two runs of ``train.ipynb``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
import papermill
import pytest

from ebmlab.experiments import TEMPLATES_DIR
from ebmlab.experiments.runner import kernel_python

from .conftest import SHARED_DATA

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
TEACHING = sorted(NOTEBOOKS.glob("*.ipynb"))
TIME_LIMIT = 120.0


pytestmark = pytest.mark.usefixtures("python3_kernel")


def ci_parameters(path: Path) -> dict:
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert all(not cell.get("outputs") for cell in nb.cells if cell.cell_type == "code"), "outputs not stripped"
    assert any("parameters" in cell.metadata.get("tags", []) for cell in nb.cells), "no 'parameters' cell"
    return dict(nb.metadata["ebmlab"]["ci_parameters"])


def execute(path: Path, folder: Path, **extra) -> nbformat.NotebookNode:
    assert Path(kernel_python("python3")).resolve() == Path(sys.executable).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    nb = papermill.execute_notebook(
        str(path),
        str(folder / path.name),
        parameters={**ci_parameters(path), **extra},
        kernel_name="python3",
        cwd=str(folder),
        progress_bar=False,
    )
    seconds = time.perf_counter() - start
    assert seconds < TIME_LIMIT, f"{path.name} took {seconds:.0f} s with its CI parameters"
    return nb


@pytest.fixture(autouse=True)
def headless(monkeypatch):
    monkeypatch.setenv("EBMLAB_HEADLESS", "1")


def test_notebooks_exist():
    assert len(TEACHING) == 6
    assert (NOTEBOOKS / "templates" / "train.ipynb").resolve() == (TEMPLATES_DIR / "train.ipynb").resolve()


@pytest.mark.parametrize("path", TEACHING, ids=[p.stem for p in TEACHING])
def test_teaching_notebook_runs(path, tmp_path):
    extra = {}
    if "data_dir" in ci_parameters(path):  # a notebook on real MNIST reads the shared IDX files
        if not (SHARED_DATA / "mnist").is_dir():
            pytest.skip(f"{path.name} needs the MNIST IDX files, not found at {SHARED_DATA}")
        extra["data_dir"] = str(SHARED_DATA)
    execute(path, tmp_path, **extra)


@pytest.fixture(scope="module")
def trained_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for method in ("cd", "pcd"):
        execute(NOTEBOOKS / "templates" / "train.ipynb", root / "nb", method=method, out=str(root / method))
    return root


def test_train_template_writes_model_history_and_figures(trained_runs):
    for method in ("cd", "pcd"):
        folder = trained_runs / method
        assert (folder / "model.safetensors").is_file()
        assert (folder / "history.zarr" / "zarr.json").is_file()
        assert (folder / "figures" / "filters.png").is_file() and (folder / "figures" / "particles.png").is_file()


def test_compare_template_reads_a_folder_of_runs(trained_runs, tmp_path):
    nb = execute(NOTEBOOKS / "templates" / "compare.ipynb", tmp_path, runs=str(trained_runs))
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "2 runs" in text
