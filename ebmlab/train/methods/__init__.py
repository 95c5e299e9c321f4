"""Gradient methods: each turns a batch into a surrogate loss (see ``base.Method``)."""

from __future__ import annotations

from .base import Method, data_free_energy, model_free_energy, positive_phase
from .cd import CD
from .driven import GammaProcess
from .pcd import PCD

__all__ = ["CD", "PCD", "GammaProcess", "Method", "data_free_energy", "model_free_energy", "positive_phase"]
