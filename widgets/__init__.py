"""ebmlab's Jupyter views: live training dashboard, run viewer, run comparison, teaching widgets.

Needs the ``jupyter`` extras (ipywidgets, plotly, anywidget, Pillow). The core ``ebmlab`` never
imports this package.
"""

from __future__ import annotations

from .dashboard import TrainingDashboard
from .landscape import EnergyLandscape
from .stepper import GibbsStepper, bars_and_stripes_model
from .throttle import Throttle

__all__ = ["EnergyLandscape", "GibbsStepper", "Throttle", "TrainingDashboard", "bars_and_stripes_model"]
