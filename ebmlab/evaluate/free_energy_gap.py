"""Free energy of data and the train/validation free-energy gap (an overfitting monitor).

    F(v) = −log Σ_h exp(−E(v, h)),
    gap = ⟨F⟩_valid − ⟨F⟩_train.

log Z cancels in the gap, so it is the difference of the average log-likelihoods of the two sets,
⟨log p⟩_train − ⟨log p⟩_valid, computed without log Z (Hinton, "A practical guide to training
RBMs", §6). It grows when the model starts to fit the training rows better than held-out ones.
"""

from __future__ import annotations

from typing import Any

import torch

from ._common import as_float, check_model, visible_rows


@torch.no_grad()
def mean_free_energy(model: Any, v: Any) -> float:
    """⟨F(v)⟩ over the rows of ``v`` (exact; deep stacks enumerate their even hidden layers)."""
    return _mean_free_energy(check_model(model), v, "v")


def _mean_free_energy(model: Any, v: Any, name: str) -> float:
    return as_float(model._free_energy(visible_rows(model, v, name)).mean())


@torch.no_grad()
def free_energy_gap(model: Any, train: Any, valid: Any) -> float:
    """⟨F(valid)⟩ − ⟨F(train)⟩: positive when training rows are more probable than held-out ones."""
    model = check_model(model)
    return _mean_free_energy(model, valid, "valid") - _mean_free_energy(model, train, "train")
