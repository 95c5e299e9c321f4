"""Gradient methods: each turns a batch into a surrogate loss (see ``base.Method``)."""

from __future__ import annotations

from .base import Method, data_free_energy, model_free_energy, positive_phase
from .cd import CD
from .driven import GammaProcess
from .pcd import PCD
from .pt import PT
from .tap import TAP

__all__ = [
    "CD",
    "PCD",
    "PT",
    "TAP",
    "GammaProcess",
    "Method",
    "data_free_energy",
    "model_free_energy",
    "positive_phase",
]
