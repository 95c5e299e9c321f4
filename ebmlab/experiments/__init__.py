"""Reproducible experiments: notebook templates run with papermill over a parameter grid on Dask.

- ``load_experiment(config)`` / ``Experiment.points()``: a YAML or dict configuration expanded into
  points with stable ids (``ebmlab.experiments.grid``);
- ``run_point(...)``: one point, executed into its own folder with a ``status.json``
  (``ebmlab.experiments.runner``);
- ``run_batch(config, out_dir, scheduler, workers)``: all points on a Dask ``LocalCluster`` or an
  existing scheduler, skipping finished points (``ebmlab.experiments.batch``);
- ``write_report(run_dir)``: one self-contained offline HTML page (``ebmlab.experiments.report``);
- ``run_demo(out_dir)``: CD-1, PCD-1, PT and TAP-2 on bars-and-stripes, then the report (``ebmlab demo``);
  ``find_runs(runs)``: the stores under a folder, by default ``runs/demo`` here or in a folder above.

Papermill, Dask and plotly are imported only when these functions run.
"""

from __future__ import annotations

from .batch import BatchResult, point_dir, run_batch
from .demo import DEMO_CONFIG, find_runs, run_demo
from .grid import TEMPLATES_DIR, Experiment, Point, expand, load_experiment
from .report import write_report
from .runner import read_status, run_point

__all__ = [
    "DEMO_CONFIG",
    "TEMPLATES_DIR",
    "BatchResult",
    "Experiment",
    "Point",
    "expand",
    "find_runs",
    "load_experiment",
    "point_dir",
    "read_status",
    "run_batch",
    "run_demo",
    "run_point",
    "write_report",
]
