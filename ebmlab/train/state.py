"""What callbacks see: ``TrainState``, and the ``Callback`` base class."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..data import Dataset
    from ..model import BoltzmannMachine
    from .methods import Method
    from .trainer import Trainer


@dataclass
class TrainState:
    """The live state of a ``Trainer.fit`` call, passed to every callback hook.

    ``epoch`` counts completed epochs (at ``on_epoch_end`` it includes the epoch just finished,
    so the first call sees 1); ``batch`` is the index within the current epoch and ``step`` the
    global batch count; ``metrics`` holds the last finished epoch's numbers (train metrics,
    ``val_*`` validation metrics, ``loss``, ``lr``, ``wall_seconds``, ``samples_per_second`` and
    the method's own); ``history`` one list per metric name; ``elapsed`` seconds since fit began.
    A metric not computed at an epoch (see ``Trainer(metric_budget=...)``) reads NaN there, and
    ``<name>_stderr`` holds the standard error of an estimated metric. ``wall_seconds`` and
    ``samples_per_second`` count the metrics' time; ``train_seconds`` and ``metric_seconds`` split the
    wall seconds of this fit between the batches and the metrics.
    """

    trainer: Trainer
    model: BoltzmannMachine
    method: Method
    optimizer: Any
    data: Dataset
    validation: Dataset | None = None
    epoch: int = 0
    epochs: int = 0
    batch: int = 0
    batches: int = 0
    step: int = 0
    loss: float = float("nan")
    lr: float = float("nan")
    elapsed: float = 0.0
    train_seconds: float = 0.0
    metric_seconds: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)
    history: dict[str, list[float]] = field(default_factory=dict)


class Callback:
    """Hooks called by ``Trainer.fit``; override any. Exceptions raised here propagate."""

    def on_train_begin(self, state: TrainState) -> None:
        """Before the first batch of ``fit``."""

    def on_batch_end(self, state: TrainState) -> None:
        """After each optimizer step (and constraints)."""

    def on_epoch_end(self, state: TrainState) -> None:
        """After each epoch's metrics are computed and appended to the history."""

    def on_train_end(self, state: TrainState) -> None:
        """When ``fit`` returns: finished, stopped, or failed (also after ``TrainingDiverged``)."""
