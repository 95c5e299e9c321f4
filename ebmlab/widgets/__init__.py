"""ebmlab's Jupyter views: live training dashboard, run viewer, run comparison, teaching widgets.

Needs the ``jupyter`` extras (ipywidgets, plotly, anywidget, Pillow). The core ``ebmlab`` never
imports this package.
"""

from __future__ import annotations

from .comparison import RunComparison
from .dashboard import TrainingDashboard
from .landscape import EnergyLandscape
from .stepper import GibbsStepper, bars_and_stripes_model
from .throttle import Throttle
from .viewer import RunViewer

__all__ = [
    "EnergyLandscape",
    "GibbsStepper",
    "RunComparison",
    "RunViewer",
    "Throttle",
    "TrainingDashboard",
    "bars_and_stripes_model",
]
