"""``ebmlab demo``: CD-1, PCD-1, PT and TAP-2 on a 16×16 Bernoulli RBM on bars-and-stripes, then the report.

The configuration ships with the package (``configs/demo.yaml``): the exact log-likelihood of the 30
patterns per epoch ranks the methods PT > PCD-1 > CD-1 > TAP-2 for seeds 0, 1 and 2
(``benchmarks/demo_ranking.py``), and its ``description`` tells the report's reader why. About
150 CPU-seconds in all (TAP-2's point is the longest), so within three minutes on two cores.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .batch import BatchResult, run_batch

DEMO_CONFIG = Path(__file__).resolve().parent / "configs" / "demo.yaml"
DEMO_OUT = "runs/demo"


def demo_config(seed: int = 0) -> dict[str, Any]:
    """The demo's experiment configuration (``configs/demo.yaml``) with every run seeded ``seed``."""
    import yaml

    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    config = yaml.safe_load(DEMO_CONFIG.read_text())
    config["parameters"]["seed"] = seed
    if seed:
        config["name"] = f"{config['name']} (seed {seed})"
    return config


def run_demo(
    out_dir: str | os.PathLike = DEMO_OUT,
    scheduler: Any = None,
    workers: int | None = None,
    progress: bool = True,
    seed: int = 0,
) -> BatchResult:
    """Run the demo batch seeded ``seed`` into ``out_dir`` and write its report (``result.report``)."""
    return run_batch(demo_config(seed), out_dir=out_dir, scheduler=scheduler, workers=workers, progress=progress)


def find_runs(runs: str | os.PathLike | None = None, start: str | os.PathLike | None = None) -> list[Path]:
    """The run-history stores to compare, found where a user runs the compare template.

    ``runs`` given: the stores under that folder (relative paths from ``start``, default the current
    folder). ``runs=None``: the stores under ``runs/demo`` — where ``ebmlab demo`` writes — in ``start``
    or the nearest folder above it that has one, so the default works from the folder the demo ran in
    and from any folder below it (e.g. ``notebooks/templates`` of the repository).
    Raises ``FileNotFoundError`` naming every folder searched and the command that creates the runs.
    """
    from ..history import list_runs

    here = Path.cwd() if start is None else Path(start)
    if runs is not None:
        candidates = [here / Path(runs)]
    else:
        candidates = [folder / DEMO_OUT for folder in (here.resolve(), *here.resolve().parents)]
    for folder in candidates:
        if folder.is_dir():
            found = list_runs(folder)
            if found:
                return found
    searched = ", ".join(str(f.resolve()) for f in candidates)
    make = f"ebmlab demo --out {runs}" if runs is not None else "ebmlab demo"
    raise FileNotFoundError(
        f"no run-history stores (history.zarr) in {searched}; create them with `{make}` (run in the folder "
        "you start the notebook from, or a folder above it) or `ebmlab batch experiment.yaml --out FOLDER`, "
        "or set the parameter runs to a folder of runs"
    )
