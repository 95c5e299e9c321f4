"""Experiments as a notebook template plus a parameter grid, expanded into points with stable ids.

An experiment configuration (YAML or a dict) has the keys

- ``template``: a notebook path (relative paths are resolved against the YAML file's folder) or the
  name of a template shipped with ebmlab (``train``, ``compare``);
- ``parameters``: fixed notebook parameters shared by every point;
- ``grid``: name -> list of values; the points are the cartesian product of the lists. A value that
  is a mapping sets several parameters at once (e.g. ``{method: pcd, k: 1}``) and is labelled by its
  ``label`` entry when present (the entry itself is not passed to the notebook);
- ``repeats: n`` (seeds ``seed, seed + 1, …, seed + n − 1`` from ``parameters.seed``, 0 by default) or
  ``seeds: [..]``; with neither, each grid point runs once with ``parameters.seed``;
- optional ``name`` (the batch's title), ``description`` (a paragraph the report prints under the
  title: what the figures show and why), ``kernel`` (``python3``), ``execution_timeout`` (seconds
  per cell).

A point's id joins its grid labels and seed, plus a short hash of all its parameters, so an id names
the same computation across reruns and changes whenever any parameter does.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KEYS = frozenset(
    {"template", "parameters", "grid", "repeats", "seeds", "name", "description", "kernel", "execution_timeout"}
)
RESERVED_PARAMETERS = frozenset({"out"})
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Point:
    """One notebook run: its stable ``id``, the grid labels that vary (``axes``) and all ``parameters``."""

    id: str
    axes: dict[str, Any]
    parameters: dict[str, Any]


@dataclass
class Experiment:
    """A parsed experiment configuration (see the module docstring)."""

    template: str
    parameters: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    seeds: list[int] | None = None
    name: str = "batch"
    kernel: str = "python3"
    execution_timeout: float | None = None
    base_dir: Path = field(default_factory=Path.cwd)
    description: str = ""

    def points(self) -> list[Point]:
        """The cartesian product of the grid times the seeds, in grid order (first key slowest)."""
        return expand(self)

    def template_path(self) -> Path:
        """The template notebook: a shipped template by name, else a path relative to ``base_dir``."""
        shipped = TEMPLATES_DIR / f"{self.template}.ipynb"
        if "/" not in self.template and shipped.is_file():
            return shipped
        path = Path(self.template).expanduser()
        path = path if path.is_absolute() else self.base_dir / path
        if not path.is_file():
            names = sorted(p.stem for p in TEMPLATES_DIR.glob("*.ipynb"))
            raise ValueError(f"template {self.template!r} is neither a notebook file nor a shipped template {names}")
        return path

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able copy of the configuration."""
        return {
            "template": self.template,
            "parameters": self.parameters,
            "grid": self.grid,
            "seeds": self.seeds,
            "name": self.name,
            "kernel": self.kernel,
            "execution_timeout": self.execution_timeout,
            "description": self.description,
        }


def load_experiment(config: Mapping[str, Any] | str | os.PathLike) -> Experiment:
    """Parse an experiment from a mapping or a YAML file; raises ``ValueError`` naming any bad key."""
    if isinstance(config, (str, os.PathLike)):
        import yaml

        path = Path(config)
        if not path.is_file():
            raise ValueError(f"config must be an existing YAML file or a mapping, got path {str(path)!r}")
        with path.open() as f:
            try:
                loaded = yaml.safe_load(f)
            except yaml.YAMLError as err:
                mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
                where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "unknown position"
                problem = getattr(err, "problem", None) or str(err).splitlines()[0]
                raise ValueError(f"{path}: malformed YAML at {where}: {problem}") from err
        if not isinstance(loaded, Mapping):
            raise ValueError(f"{path}: expected a YAML mapping with a 'template' key, got {type(loaded).__name__}")
        return _parse(loaded, path.resolve().parent)
    if isinstance(config, Mapping):
        return _parse(config, Path.cwd())
    raise TypeError(f"config must be a mapping or a path to a YAML file, got {type(config).__name__}")


def _parse(config: Mapping[str, Any], base_dir: Path) -> Experiment:
    unknown = sorted(set(config) - KEYS)
    if unknown:
        raise ValueError(f"unknown experiment keys {unknown}; known keys: {sorted(KEYS)}")
    template = config.get("template")
    if not isinstance(template, str) or not template:
        raise ValueError(f"'template' must be a notebook path or a shipped template name, got {template!r}")
    parameters = dict(config.get("parameters") or {})
    _check_names(parameters, "parameters")
    grid = _parse_grid(config.get("grid") or {})
    overlap = sorted(set(parameters) & {name for key, values in grid.items() for name in _assigned(key, values)})
    if overlap:
        raise ValueError(f"parameters {overlap} are set both in 'parameters' and in 'grid'; set each in one place")
    if "repeats" in config and "seeds" in config:
        raise ValueError("give either 'repeats' or 'seeds', not both")
    seeds = _parse_seeds(config, parameters)
    if seeds is not None and any("seed" in _assigned(key, values) for key, values in grid.items()):
        raise ValueError("'seed' is set in 'grid'; remove 'repeats'/'seeds' or the seed grid axis")
    timeout = config.get("execution_timeout")
    if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
        raise ValueError(f"'execution_timeout' must be a positive number of seconds, got {timeout!r}")
    kernel = config.get("kernel", "python3")
    if not isinstance(kernel, str) or not kernel:
        raise ValueError(f"'kernel' must be a kernel name such as 'python3', got {kernel!r}")
    name = config.get("name", "batch")
    if not isinstance(name, str) or not name:
        raise ValueError(f"'name' must be a non-empty string, got {name!r}")
    description = config.get("description", "")
    if not isinstance(description, str):
        raise ValueError(f"'description' must be a string (a paragraph for the report), got {description!r}")
    return Experiment(template, parameters, grid, seeds, name, kernel, timeout, base_dir, description.strip())


def _check_names(parameters: Mapping[str, Any], where: str) -> None:
    for key in parameters:
        if not isinstance(key, str) or not key.isidentifier():
            raise ValueError(f"{where}: parameter names must be Python identifiers, got {key!r}")
        if key in RESERVED_PARAMETERS:
            raise ValueError(f"{where}: {key!r} is set by the runner to each point's folder; do not set it")


def _parse_grid(grid: Any) -> dict[str, list[Any]]:
    if not isinstance(grid, Mapping):
        raise ValueError(f"'grid' must map names to lists of values, got {type(grid).__name__}")
    parsed: dict[str, list[Any]] = {}
    for key, values in grid.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise ValueError(f"grid: axis names must be Python identifiers, got {key!r}")
        if not isinstance(values, list) or not values:
            raise ValueError(f"grid: {key!r} must be a non-empty list of values, got {values!r}")
        for value in values:
            if isinstance(value, Mapping):
                _check_names({k: v for k, v in value.items() if k != "label"}, f"grid.{key}")
            else:
                _check_names({key: value}, "grid")
        labels = [_label(value) for value in values]
        if len(set(labels)) != len(labels):
            raise ValueError(f"grid: {key!r} has repeated values/labels {labels}")
        parsed[key] = list(values)
    return parsed


def _parse_seeds(config: Mapping[str, Any], parameters: Mapping[str, Any]) -> list[int] | None:
    if "repeats" in config:
        repeats = config["repeats"]
        if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
            raise ValueError(f"'repeats' must be a positive integer, got {repeats!r}")
        base = parameters.get("seed", 0)
        if not isinstance(base, int):
            raise ValueError(f"parameters.seed must be an integer when 'repeats' is given, got {base!r}")
        return [base + i for i in range(repeats)]
    if "seeds" in config:
        seeds = config["seeds"]
        if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
            raise ValueError(f"'seeds' must be a non-empty list of integers, got {seeds!r}")
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"'seeds' has repeated values: {seeds}")
        return list(seeds)
    return None


def _assigned(key: str, values: list[Any]) -> set[str]:
    """Parameter names a grid axis sets: a plain axis sets its own name, a mapping its keys."""
    names: set[str] = set()
    for value in values:
        names |= set(_values(key, value))
    return names


def _label(value: Any) -> str:
    if isinstance(value, Mapping):
        if "label" in value:
            return str(value["label"])
        return "-".join(str(v) for v in value.values())
    return str(value)


def _values(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return {k: v for k, v in value.items() if k != "label"}
    return {key: value}


def point_id(axes: Mapping[str, Any], parameters: Mapping[str, Any]) -> str:
    """``<axis>-<label>_…_<8 hex digits of sha256(parameters as sorted JSON)>``, safe as a folder name."""
    digest = hashlib.sha256(json.dumps(parameters, sort_keys=True, default=str).encode()).hexdigest()[:8]
    parts = [_UNSAFE.sub("-", f"{key}={label}") for key, label in axes.items()]
    return "_".join([*parts, digest])


def expand(experiment: Experiment) -> list[Point]:
    """All points of an experiment: grid product (first axis slowest) × seeds (fastest)."""
    axes_values = [[(key, value) for value in values] for key, values in experiment.grid.items()]
    seeds: list[int | None] = list(experiment.seeds) if experiment.seeds is not None else [None]
    points = []
    for combination in itertools.product(*axes_values):
        for seed in seeds:
            parameters = dict(experiment.parameters)
            axes: dict[str, Any] = {}
            for key, value in combination:
                parameters.update(_values(key, value))
                axes[key] = _label(value)
            if seed is not None:
                parameters["seed"] = seed
                axes["seed"] = seed
            points.append(Point(point_id(axes, parameters), axes, parameters))
    ids = [p.id for p in points]
    if len(set(ids)) != len(ids):
        raise ValueError("two grid points have the same parameters; remove the duplicate grid values")
    return points
