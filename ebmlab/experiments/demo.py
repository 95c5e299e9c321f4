"""``ebmlab demo``: CD-1, PCD-1, PT and TAP-2 on a Bernoulli RBM on the bundled digits, then the report.

The configuration ships with the package (``configs/demo.yaml``); small epochs keep the whole demo
within about three minutes on two cores.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .batch import BatchResult, run_batch

DEMO_CONFIG = Path(__file__).resolve().parent / "configs" / "demo.yaml"


def run_demo(
    out_dir: str | os.PathLike = "runs/demo",
    scheduler: Any = None,
    workers: int | None = None,
    progress: bool = True,
) -> BatchResult:
    """Run the demo batch into ``out_dir`` and write its report (``result.report``)."""
    return run_batch(DEMO_CONFIG, out_dir=out_dir, scheduler=scheduler, workers=workers, progress=progress)
