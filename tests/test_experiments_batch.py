"""Batches on Dask: a LocalCluster and a separately started scheduler + worker; status, reruns, report.

Each batch has four points of a throwaway template that trains a tiny RBM on digits for one epoch
with a Recorder; the fourth point is asked to fail. Every point starts a Jupyter kernel, which
dominates the run time.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from ebmlab.experiments import run_batch, write_report
from ebmlab.experiments.runner import kernel_python

from .conftest import CHROMIUM_ARGS, require_chromium

PARAMETERS = "epochs = 1\nseed = 0\nfail = False\nout = '.'"
BODY = """\
if fail:
    raise RuntimeError(f"point with seed {seed} was asked to fail")
import torch
torch.set_num_threads(1)
from ebmlab import BernoulliLayer, BoltzmannMachine
from ebmlab.data import load
from ebmlab.history import Recorder
from ebmlab.train import CD, Trainer

data = load("digits", "train").binarize()
model = BoltzmannMachine([BernoulliLayer(64), BernoulliLayer(8)], seed=seed).initialize(data.data)
recorder = Recorder(f"{out}/history.zarr", snapshot_every=1, particles=8, energy_rows=100)
trainer = Trainer(model, CD(1), lr=1e-2, batch_size=250, seed=seed, progress=False,
                  metrics=["reconstruction_error"], callbacks=[recorder])
trainer.fit(data, epochs)
"""
SEEDS = [0, 1, 2]


pytestmark = pytest.mark.usefixtures("python3_kernel")


def write_template(path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    parameters = nbformat.v4.new_code_cell(PARAMETERS)
    parameters.metadata["tags"] = ["parameters"]
    nb.cells = [parameters, nbformat.v4.new_code_cell(BODY)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def config(template: Path, seeds: list[int] = SEEDS) -> dict:
    cases = [{"seed": s} for s in seeds] + [{"seed": 9, "fail": True, "label": "broken"}]
    return {"name": "tiny", "template": str(template), "grid": {"case": cases}}


def test_python3_kernel_is_this_interpreter():
    assert Path(kernel_python("python3")).resolve() == Path(sys.executable).resolve()


def check_batch(result, run_dir: Path, runs: int = len(SEEDS)) -> None:
    assert len(result.points) == runs + 1
    assert len(result.finished) == runs and len(result.failed) == 1
    failed = result.statuses[result.failed[0]]
    assert failed["axes"] == {"case": "broken"}
    assert "RuntimeError: point with seed 9 was asked to fail" in failed["error"]
    assert "asked to fail" in failed["traceback"] and "\x1b[" not in failed["traceback"]
    for point_id in result.finished:
        folder = run_dir / "points" / point_id
        status = json.loads((folder / "status.json").read_text())
        assert status["status"] == "finished" and status["parameters"]["out"] == str(folder)
        assert (folder / "notebook.ipynb").is_file() and (folder / "history.zarr").is_dir()
    page = result.report.read_text()
    assert all(f'data-run="{p.id}"' in page for p in result.points)
    assert page.count('<details class="failure"') == 1 and "asked to fail" in page
    assert f'data-metric="reconstruction_error" data-traces="{runs}"' in page


@pytest.fixture(scope="module")
def local_batch(tmp_path_factory):
    root = tmp_path_factory.mktemp("local")
    template = write_template(root / "template.ipynb")
    result = run_batch(config(template), out_dir=root / "batch", workers=2, progress=False)
    return result, root / "batch", template


def test_local_cluster_batch_records_failure_and_reports_all(local_batch):
    result, run_dir, _ = local_batch
    check_batch(result, run_dir)
    assert sorted(result.executed) == sorted(p.id for p in result.points) and result.skipped == []


def test_rerun_runs_nothing_new(local_batch):
    result, run_dir, template = local_batch
    before = {p: (run_dir / "points" / p / "status.json").stat().st_mtime_ns for p in result.statuses}
    again = run_batch(config(template), out_dir=run_dir, progress=False, report=False, retry_failed=False)
    assert again.executed == [] and sorted(again.skipped) == sorted(before)
    assert {p: (run_dir / "points" / p / "status.json").stat().st_mtime_ns for p in before} == before


def _wait_for(path: Path, process: subprocess.Popen, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not path.is_file():
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[:3]} exited with code {process.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} not written within {seconds} s")
        time.sleep(0.2)


def test_batch_on_separately_started_scheduler_and_worker(tmp_path):
    template = write_template(tmp_path / "template.ipynb")
    scheduler_file = tmp_path / "scheduler.json"
    python_m = [sys.executable, "-m"]
    common = ["--scheduler-file", str(scheduler_file)]
    processes = []
    try:
        processes.append(
            subprocess.Popen(
                [
                    *python_m,
                    "distributed.cli.dask_scheduler",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--no-dashboard",
                    *common,
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        _wait_for(scheduler_file, processes[0], 60)
        address = json.loads(scheduler_file.read_text())["address"]
        assert re.fullmatch(r"tcp://127\.0\.0\.1:\d+", address)
        processes.append(
            subprocess.Popen(
                [
                    *python_m,
                    "distributed.cli.dask_worker",
                    address,
                    "--host",
                    "127.0.0.1",
                    "--nthreads",
                    "1",
                    "--nworkers",
                    "2",
                    "--no-dashboard",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env={**os.environ, "OMP_NUM_THREADS": "1"},
            )
        )
        run_dir = tmp_path / "batch"
        # one good point and the broken one: one round on the two workers (the local-cluster test runs all)
        result = run_batch(config(template, SEEDS[:1]), out_dir=run_dir, scheduler=address, workers=2, progress=False)
        check_batch(result, run_dir, runs=1)
        assert os.getpid() not in {result.statuses[p]["pid"] for p in result.finished}

        failed = result.failed[0]
        again = run_batch(config(template, SEEDS[:1]), out_dir=run_dir, scheduler=address, progress=False, report=False)
        assert again.executed == [failed] and sorted(again.skipped) == sorted(result.finished)
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in reversed(processes):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def test_report_rewritten_from_folder(local_batch, tmp_path):
    _, run_dir, _ = local_batch
    page = write_report(run_dir, tmp_path / "r.html").read_text()
    assert page.count("<script>") == 2 and page.count("Plotly.newPlot(") >= 1
    assert "<script src=" not in page and 'src="http' not in page and "<link" not in page
    assert page.count('<img class="tiles" alt="filters" src="data:image/png;base64,') == 3
    assert page.count('<img class="tiles" alt="particles" src="data:image/png;base64,') == 3
    assert page.count('<img class="tiles" alt="negative phase" src="data:image/png;base64,') == 3
    assert page.count("<figcaption>reconstructions: CD's negative phase") == 3
    # the curves come before the table of points, quality before bookkeeping
    assert page.index('id="curve-0"') < page.index('<table id="points"')
    assert page.index('class="figure quality"') < page.index('class="figure bookkeeping"')


@pytest.mark.browser
def test_report_opens_offline_in_chromium_with_one_curve_per_run(local_batch):
    chromium = require_chromium()
    from playwright.sync_api import sync_playwright

    result, _, _ = local_batch
    blocked: list[str] = []

    def block(route):
        blocked.append(route.request.url)
        route.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.route(re.compile(r"^(?!file:|data:).*"), block)
            page.goto(result.report.as_uri())
            page.wait_for_selector("#curve-0 .scatterlayer .trace", timeout=20_000)
            traces = page.evaluate("document.querySelectorAll('#curve-0 .scatterlayer .trace').length")
            rows = page.evaluate("document.querySelectorAll('#points tbody tr').length")
            images = page.evaluate("[...document.images].filter(i => i.complete && i.naturalWidth > 0).length")
        finally:
            browser.close()
    assert traces == 3 and rows == 4 and images == 9  # filters, fantasy particles, reconstructions per run
    assert blocked == []
