"""The batch report without Dask or papermill: figure layout, metric groups, X ± stderr, particle captions."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch

from ebmlab import BernoulliLayer, BoltzmannMachine
from ebmlab.data import Dataset
from ebmlab.experiments import write_report
from ebmlab.history import Recorder
from ebmlab.train import CD, PCD, Trainer

DATA = Dataset((torch.rand(40, 16, generator=torch.Generator().manual_seed(0)) < 0.3).float(), name="toy")


def _live_log_likelihood():
    """A stand-in for a sparse live metric: NaN on odd epochs; a standard error beside it."""
    calls = {"n": 0}

    def value(model, x) -> float:
        calls["n"] += 1
        return math.nan if calls["n"] % 2 else -float(model.free_energy(x).mean())

    def stderr(model, x) -> float:
        return math.nan if calls["n"] % 2 else 0.25

    return {"log_likelihood": value, "log_likelihood_stderr": stderr}


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("batch")
    for point, method in (("cd", CD(k=1)), ("pcd", PCD(k=1, chains=8))):
        folder = root / "points" / point
        folder.mkdir(parents=True)
        model = BoltzmannMachine([BernoulliLayer(16), BernoulliLayer(4)], seed=1)
        recorder = Recorder(folder / "history.zarr", snapshot_every=2, particles=8, bins=5)
        metrics = {**_live_log_likelihood(), "reconstruction_error": lambda m, x: 0.1}
        Trainer(model, method, lr=1e-2, batch_size=10, progress=False, metrics=metrics, callbacks=[recorder]).fit(
            DATA, 4
        )
        status = {"id": point, "status": "finished", "axes": {"method": point}, "seconds": 1.0}
        (folder / "status.json").write_text(json.dumps(status))
    return root


def _figures(page: str) -> list[dict]:
    return [json.loads(m) for m in re.findall(r"var f=(\{.*?\});Plotly", page)]


def test_report_leads_with_quality_and_labels_every_axis(batch: Path, tmp_path: Path) -> None:
    page = write_report(batch, tmp_path / "r.html").read_text()
    metrics = re.findall(r'class="figure (\w+)" id="curve-\d+" data-metric="(\w+)"', page)
    assert metrics == [
        ("quality", "log_likelihood"),
        ("quality", "reconstruction_error"),
        ("bookkeeping", "loss"),
        ("bookkeeping", "lr"),
        ("bookkeeping", "seconds"),
        ("bookkeeping", "per_second"),
    ]
    figures = _figures(page)
    assert len(figures) == len(metrics)
    for fig in figures:
        layout = fig["layout"]
        assert layout["xaxis"]["title"]["text"] == "epoch" and layout["yaxis"]["title"]["text"]
    ll, _, loss, lr = figures[:4]
    assert ll["layout"]["yaxis"]["title"]["text"] == "nats/sample"
    assert loss["layout"]["title"]["text"] == "surrogate loss, not a likelihood"
    assert lr["layout"]["yaxis"]["type"] == "log"
    # the log-likelihood: only its computed (even) epochs, with ± standard-error bars; one curve per run
    assert [t["name"] for t in ll["data"]] == ["cd", "pcd"]
    for trace in ll["data"]:
        assert trace["x"] == [2.0, 4.0]
        assert trace["error_y"]["array"] == [0.25, 0.25]
    assert "log_likelihood_stderr" not in {m for _, m in metrics}
    # the table follows the curves; its cells show X ± se
    assert page.index('id="curve-0"') < page.index('<table id="points"')
    assert re.search(r"<td>-?\d+(\.\d+)? ± 0\.25</td>", page)


def test_report_captions_say_what_particles_are(batch: Path, tmp_path: Path) -> None:
    page = write_report(batch, tmp_path / "r.html").read_text()
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", page)
    assert len(captions) == 6  # filters, fantasy particles, negative phase per run
    assert sum(c.startswith("fantasy particles: samples of the model alone") for c in captions) == 2
    assert sum(c.startswith("reconstructions: CD's negative phase") for c in captions) == 1
    assert sum(c.startswith("persistent chains:") for c in captions) == 1
