"""The demo's configuration, its seed, the report's description, and where the compare template finds runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ebmlab.experiments import DEMO_CONFIG, find_runs, load_experiment, write_report
from ebmlab.experiments.demo import demo_config
from ebmlab.history import Recorder
from ebmlab.layers import BernoulliLayer
from ebmlab.model import BoltzmannMachine
from ebmlab.train import CD, Trainer


def test_demo_config_is_seeded_and_describes_its_figure():
    for seed in (0, 1, 2):
        experiment = load_experiment(demo_config(seed))
        assert {p.parameters["seed"] for p in experiment.points()} == {seed}
        assert [p.axes["method"] for p in experiment.points()] == ["CD-1", "PCD-1", "PT", "TAP-2"]
    text = load_experiment(DEMO_CONFIG).description
    assert text.count(". ") + text.endswith(".") == 2, "the description is two sentences"
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        demo_config(-1)


def test_experiment_description_must_be_text():
    with pytest.raises(ValueError, match="'description' must be a string"):
        load_experiment({"template": "train", "description": ["not", "text"]})


def test_report_prints_the_description(tmp_path):
    (tmp_path / "experiment.json").write_text(json.dumps({"name": "demo", "description": "PCD <wins> here."}))
    point = tmp_path / "points" / "a"
    point.mkdir(parents=True)
    (point / "status.json").write_text(json.dumps({"status": "failed", "error": "boom", "axes": {}}))
    page = write_report(tmp_path).read_text()
    assert '<p class="description">PCD &lt;wins&gt; here.</p>' in page


def _store(folder: Path) -> None:
    model = BoltzmannMachine([BernoulliLayer(4), BernoulliLayer(2)], seed=0)
    data = torch.tensor([[0.0, 1.0, 0.0, 1.0], [1.0, 0.0, 1.0, 0.0]] * 4)
    Trainer(model, CD(), batch_size=4, progress=False, metrics={}, callbacks=[Recorder(folder / "history.zarr")]).fit(
        data, 1
    )


def test_find_runs_looks_for_runs_demo_here_and_in_the_folders_above(tmp_path):
    _store(tmp_path / "runs" / "demo" / "points" / "a")
    below = tmp_path / "notebooks" / "templates"
    below.mkdir(parents=True)
    expected = [tmp_path / "runs" / "demo" / "points" / "a" / "history.zarr"]
    assert [p.resolve() for p in find_runs(start=tmp_path)] == [p.resolve() for p in expected]
    assert [p.resolve() for p in find_runs(start=below)] == [p.resolve() for p in expected]
    assert [p.resolve() for p in find_runs("../../runs/demo", start=below)] == [p.resolve() for p in expected]


def test_find_runs_error_names_the_folders_searched_and_the_command(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        find_runs(start=tmp_path)
    message = str(err.value)
    assert str((tmp_path / "runs" / "demo").resolve()) in message and "`ebmlab demo`" in message
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no run-history stores .*empty"):
        find_runs("empty", start=tmp_path)
