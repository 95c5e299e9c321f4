"""ebmlab: energy-based neural networks (RBMs and deep Boltzmann machines) in PyTorch.

The core needs only torch and numpy; it never imports Jupyter, plotly or papermill.
"""

from __future__ import annotations

from ._checks import AllocationError
from .layers import BernoulliLayer, GaussianLayer, Layer, OneHotLayer, parse_layers
from .model import BoltzmannMachine, load

__version__ = "0.1.0"

__all__ = [
    "AllocationError",
    "BernoulliLayer",
    "BoltzmannMachine",
    "GaussianLayer",
    "Layer",
    "OneHotLayer",
    "__version__",
    "load",
    "parse_layers",
]
