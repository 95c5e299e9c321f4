"""Optimizer parameter groups with per-parameter learning-rate scales declared by the layers.

A layer may define ``lr_scales() -> {parameter name: scale}`` (``GaussianLayer(log_var_lr_scale=…)``
does for ``log_var``); ``param_groups(model, lr)`` gives one group at ``lr`` for everything else and
one group per distinct scale at ``lr · scale``, each group remembering its ``lr_scale`` so that a
later ``Trainer.set_lr(lr)`` keeps the ratios. A layer may also define ``project_()`` (bounds on its
own parameters, e.g. the variance floor and ceiling), which the Trainer calls after every step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..model import BoltzmannMachine


def param_groups(model: BoltzmannMachine, lr: float) -> list[dict[str, Any]]:
    """[{"params", "lr", "lr_scale"}]: the scale-1 group first (it is the Trainer's ``lr``)."""
    scaled: dict[int, float] = {}
    for layer in model.layers:
        scales = layer.lr_scales() if hasattr(layer, "lr_scales") else {}
        for name, scale in scales.items():
            scaled[id(getattr(layer, name))] = float(scale)
    groups: dict[float, list[torch.nn.Parameter]] = {1.0: []}
    for p in model.parameters():
        groups.setdefault(scaled.get(id(p), 1.0), []).append(p)
    return [{"params": ps, "lr": lr * s, "lr_scale": s} for s, ps in groups.items() if ps or s == 1.0]


def layer_projections(model: BoltzmannMachine) -> list[Callable[[], None]]:
    """The in-place ``project_`` of every layer that bounds its own parameters."""
    return [layer.project_ for layer in model.layers if hasattr(layer, "project_")]
