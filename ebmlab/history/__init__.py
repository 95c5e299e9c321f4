"""Run histories (zarr v3 stores readable while they grow), checkpoints and resuming.

``Recorder`` and ``Checkpoint`` are Trainer callbacks; ``open_run``, ``open_runs``, ``to_netcdf``
and ``list_runs`` read what they wrote. Store names are listed in ``ebmlab.history.schema``.
"""

from __future__ import annotations

from . import schema
from .checkpoint import Checkpoint, load_checkpoint, resume, save_checkpoint
from .reader import list_runs, open_run, open_runs, run_parameters, snapshot_model, to_netcdf
from .recorder import Recorder

__all__ = [
    "Checkpoint",
    "Recorder",
    "list_runs",
    "load_checkpoint",
    "open_run",
    "open_runs",
    "resume",
    "run_parameters",
    "save_checkpoint",
    "schema",
    "snapshot_model",
    "to_netcdf",
]
