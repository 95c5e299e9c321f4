"""RunComparison (and RunViewer) of stored runs in a real JupyterLab."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .conftest import Notebook

pytestmark = pytest.mark.browser

CELLS = [
    "from ebmlab.widgets import RunComparison, RunViewer\n"
    "comp = RunComparison(['pcd.zarr', 'cd.zarr'], labels=['PCD-1', 'CD-1'])\n"
    "display(comp)\n"
    "print('COMPARED')",
    "viewer = RunViewer('pcd.zarr')\ndisplay(viewer)\nprint('VIEWED')",
]


def _record(path, method) -> None:
    import torch

    from ebmlab import BernoulliLayer, BoltzmannMachine
    from ebmlab.data import load
    from ebmlab.history import Recorder
    from ebmlab.train import Trainer

    torch.set_num_threads(1)
    data = load("digits").binarize()
    model = BoltzmannMachine([BernoulliLayer(64), BernoulliLayer(49)], seed=0).initialize(data.data)
    recorder = Recorder(path, snapshot_every=2, particles=36, bins=30)
    metrics = ["reconstruction_error", "pseudo_likelihood"]
    Trainer(model, method, lr=1e-2, batch_size=20, progress=False, metrics=metrics, callbacks=[recorder]).fit(data, 8)


@pytest.fixture(scope="module")
def notebook(lab, page) -> Iterator[Notebook]:
    from ebmlab.train import CD, PCD

    _record(lab.root / "pcd.zarr", PCD(k=1, chains=64))
    _record(lab.root / "cd.zarr", CD(k=1))
    nb = Notebook(page, lab, lab.write_notebook("comparison.ipynb", CELLS))
    nb.run(0, expect="COMPARED", timeout=90)
    yield nb
    nb.close()


def test_comparison_renders_two_runs(notebook: Notebook, screenshots) -> None:
    comp = notebook.root.locator(".ebmlab-run-comparison")
    comp.wait_for(timeout=30_000)
    images = comp.locator(".ebmlab-compare-pictures img")
    assert images.count() == 6  # filters, fantasy particles and the method's negative phase of each run
    for i in range(6):
        images.nth(i).wait_for()
        assert images.nth(i).evaluate("img => img.complete && img.naturalWidth > 0")
    curves = comp.locator(".ebmlab-compare-curves .js-plotly-plot")
    curves.wait_for(timeout=30_000)
    curves.locator(".legendtext").first.wait_for(timeout=30_000)
    legend = curves.locator(".legendtext").all_text_contents()
    assert legend == ["PCD-1", "CD-1"]
    table = comp.locator(".ebmlab-compare-table table")
    assert table.locator("tr").first.locator("th").all_inner_texts()[1:] == ["PCD-1", "CD-1"]  # a column per run
    method = table.locator("tr").filter(has=notebook.page.locator("th", has_text="method")).first
    assert method.locator("td").all_inner_texts() == ["pcd", "cd"]
    assert curves.bounding_box()["y"] < table.bounding_box()["y"] < images.first.bounding_box()["y"]
    pictures = comp.locator(".ebmlab-compare-pictures")
    assert pictures.get_by_text("reconstructions", exact=True).count() == 1  # CD's negative phase, by its name
    assert pictures.get_by_text("persistent chains", exact=True).count() == 1
    comp.screenshot(path=str(screenshots / "comparison.png"))


def test_run_viewer_renders_a_stored_run(notebook: Notebook) -> None:
    notebook.run(1, expect="VIEWED")
    viewer = notebook.root.locator(".ebmlab-run-viewer")
    viewer.wait_for(timeout=30_000)
    assert viewer.get_by_text("8 epochs · 5 snapshots").count() == 1
    assert viewer.locator(".js-plotly-plot").count() >= 2  # energy histograms and metric curves
