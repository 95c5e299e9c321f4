"""Experiment configurations: parsing, grid expansion, seeds, stable ids and errors."""

from __future__ import annotations

import itertools
import os
import sys

import pytest

from ebmlab.experiments import TEMPLATES_DIR, load_experiment
from ebmlab.experiments.runner import kernel_python, read_status, write_json_atomic, write_python3_kernel


def test_cartesian_product_with_repeats():
    config = {
        "template": "t.ipynb",
        "parameters": {"epochs": 2, "seed": 10},
        "grid": {"lr": [0.1, 0.01], "method": [{"method": "cd", "k": 1}, {"method": "pcd", "k": 5, "label": "P"}]},
        "repeats": 3,
    }
    points = load_experiment(config).points()
    assert len(points) == 2 * 2 * 3
    expected = list(itertools.product([0.1, 0.01], [("cd", 1), ("pcd", 5)], [10, 11, 12]))
    got = [(p.parameters["lr"], (p.parameters["method"], p.parameters["k"]), p.parameters["seed"]) for p in points]
    assert got == expected
    assert all(p.parameters["epochs"] == 2 and "label" not in p.parameters for p in points)
    assert points[0].axes == {"lr": "0.1", "method": "cd-1", "seed": 10}
    assert points[3].axes["method"] == "P"
    assert len({p.id for p in points}) == len(points)


def test_ids_are_stable_and_follow_parameters():
    config = {"template": "t.ipynb", "grid": {"x": [1, 2]}, "seeds": [5, 7]}
    first = [p.id for p in load_experiment(config).points()]
    assert first == [p.id for p in load_experiment(dict(config)).points()]
    assert first[0].startswith("x-1_seed-5_")
    changed = [p.id for p in load_experiment({**config, "parameters": {"epochs": 3}}).points()]
    assert set(first).isdisjoint(changed)


def test_no_grid_runs_once_with_parameter_seed():
    points = load_experiment({"template": "t.ipynb", "parameters": {"seed": 4}}).points()
    assert len(points) == 1 and points[0].parameters == {"seed": 4} and points[0].axes == {}


def test_yaml_file_and_relative_template(tmp_path):
    (tmp_path / "t.ipynb").write_text("{}")
    (tmp_path / "e.yaml").write_text("template: t.ipynb\nname: sweep\ngrid:\n  lr: [0.1, 0.2]\nrepeats: 2\n")
    experiment = load_experiment(tmp_path / "e.yaml")
    assert experiment.name == "sweep"
    assert experiment.template_path() == tmp_path / "t.ipynb"
    assert [p.parameters["seed"] for p in experiment.points()] == [0, 1, 0, 1]


def test_shipped_templates_resolve_by_name():
    assert load_experiment({"template": "train"}).template_path() == TEMPLATES_DIR / "train.ipynb"
    assert load_experiment({"template": "compare"}).template_path() == TEMPLATES_DIR / "compare.ipynb"


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"grid": {}}, "template"),
        ({"template": "t.ipynb", "gird": {}}, "unknown experiment keys"),
        ({"template": "t.ipynb", "grid": {"lr": []}}, "non-empty list"),
        ({"template": "t.ipynb", "grid": {"lr": 0.1}}, "non-empty list"),
        ({"template": "t.ipynb", "grid": {"lr": [0.1, 0.1]}}, "repeated"),
        ({"template": "t.ipynb", "parameters": {"lr": 1}, "grid": {"lr": [0.1]}}, "both"),
        ({"template": "t.ipynb", "repeats": 2, "seeds": [1]}, "either"),
        ({"template": "t.ipynb", "repeats": 0}, "repeats"),
        ({"template": "t.ipynb", "seeds": [1, 1]}, "repeated"),
        ({"template": "t.ipynb", "parameters": {"out": "x"}}, "out"),
        ({"template": "t.ipynb", "parameters": {"not valid": 1}}, "identifiers"),
        ({"template": "t.ipynb", "grid": {"seed": [1, 2]}, "repeats": 2}, "seed"),
        ({"template": "t.ipynb", "execution_timeout": -1}, "execution_timeout"),
    ],
)
def test_bad_configs_raise_value_error(config, match):
    with pytest.raises(ValueError, match=match):
        load_experiment(config).points()


def test_bad_config_types(tmp_path):
    with pytest.raises(TypeError, match="config"):
        load_experiment(42)
    with pytest.raises(ValueError, match="YAML"):
        load_experiment(tmp_path / "missing.yaml")
    with pytest.raises(ValueError, match="neither a notebook file nor a shipped template"):
        load_experiment({"template": "nope"}).template_path()


def test_status_written_atomically_and_read_back(tmp_path):
    write_json_atomic(tmp_path / "status.json", {"status": "finished", "x": [1, 2]})
    assert read_status(tmp_path) == {"status": "finished", "x": [1, 2]}
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]
    (tmp_path / "status.json").write_text("{truncated")
    assert read_status(tmp_path) is None
    assert read_status(tmp_path / "missing") is None


def test_private_python3_kernel_takes_precedence(tmp_path, monkeypatch):
    other = tmp_path / "other" / "kernels" / "python3"
    other.mkdir(parents=True)
    (other / "kernel.json").write_text(
        '{"argv": ["/opt/elsewhere/bin/python", "-m", "ipykernel_launcher", "-f", "{connection_file}"], '
        '"display_name": "elsewhere", "language": "python"}'
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "other"))
    assert kernel_python("python3") == "/opt/elsewhere/bin/python"
    write_python3_kernel(tmp_path / "mine")
    monkeypatch.setenv("JUPYTER_PATH", os.pathsep.join([str(tmp_path / "mine"), str(tmp_path / "other")]))
    assert kernel_python("python3") == sys.executable
