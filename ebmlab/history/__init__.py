"""Run histories (zarr v3 stores readable while they grow), checkpoints and resuming.

``Recorder`` and ``Checkpoint`` are Trainer callbacks; ``resume(trainer, path)`` restores a trainer
from a checkpoint (the training floor never imports this one); ``open_run``, ``open_runs``, ``to_netcdf``,
``list_runs`` and ``snapshot_model`` read what they wrote (imported on first use, so a training
process does not load xarray). Store names are listed in ``ebmlab.history.schema``.
"""

from __future__ import annotations

from typing import Any

from . import schema
from .checkpoint import Checkpoint, describe, load_checkpoint, resume, save_checkpoint
from .errors import DamagedStoreError, StoreWriteError
from .lock import RunLock, RunLockedError
from .recorder import Recorder

_READERS = ("list_runs", "open_run", "open_runs", "run_parameters", "snapshot_model", "to_netcdf")

__all__ = [
    "Checkpoint",
    "DamagedStoreError",
    "Recorder",
    "RunLock",
    "RunLockedError",
    "StoreWriteError",
    "describe",
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


def __getattr__(name: str) -> Any:
    if name in _READERS:
        from . import reader

        return getattr(reader, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
