"""Learning (floor 2): the Trainer loop, callbacks, gradient methods, penalties and constraints."""

from __future__ import annotations

from .constraints import Constraint, FixedMask, MaxNorm, NonNegative
from .layerwise import LayerwiseTrainer
from .methods import CD, PCD, PT, TAP, GammaProcess, Method
from .penalties import L1, L2, Penalty
from .state import Callback, TrainState
from .trainer import Trainer, TrainingDiverged, default_metrics, epoch_seed

__all__ = [
    "CD",
    "L1",
    "L2",
    "PCD",
    "PT",
    "TAP",
    "Callback",
    "Constraint",
    "FixedMask",
    "GammaProcess",
    "LayerwiseTrainer",
    "MaxNorm",
    "Method",
    "NonNegative",
    "Penalty",
    "TrainState",
    "Trainer",
    "TrainingDiverged",
    "default_metrics",
    "epoch_seed",
]
