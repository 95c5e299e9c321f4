"""The plotly figures shared by the dashboard, the run viewer and the comparison.

- metric curves: one small panel per metric name (``make_subplots``), one trace per run;
- energy histograms: the fraction of data rows and of fantasy particles per energy bin;
- filter lines: W's first columns as line plots, for visible units that are not an image.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

MARGIN = {"l": 40, "r": 10, "t": 30, "b": 30}
COLORS = qualitative.Plotly


def curves_figure(
    names: Sequence[str], runs: Sequence[str] = ("",), cols: int = 3, width: int = 960
) -> go.FigureWidget:
    """Panels for ``names`` (``cols`` per row) holding one line per run (legend only for several runs)."""
    cols = max(1, min(cols, len(names)))
    rows = max(1, math.ceil(len(names) / cols))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=list(names), horizontal_spacing=0.06)
    for i, _ in enumerate(names):
        for k, run in enumerate(runs):
            fig.add_scatter(
                name=run,
                legendgroup=run,
                showlegend=i == 0 and len(runs) > 1,
                mode="lines+markers",
                marker={"size": 4},
                line={"color": COLORS[k % len(COLORS)]},
                row=i // cols + 1,
                col=i % cols + 1,
            )
    fig.update_layout(height=210 * rows + 20, width=width, margin=MARGIN, showlegend=len(runs) > 1)
    fig.update_annotations(font_size=12)
    return go.FigureWidget(fig)


def update_curves(
    fig: go.FigureWidget, series: Sequence[Mapping[str, tuple[Sequence[float], Sequence[float]]]]
) -> None:
    """Set the (x, y) of every panel: ``series[run][name]``; traces are ordered panel-major."""
    names = [a.text for a in fig.layout.annotations]
    runs = len(series)
    with fig.batch_update():
        for i, name in enumerate(names):
            for k in range(runs):
                x, y = series[k].get(name, ((), ()))
                trace = fig.data[i * runs + k]
                trace.x, trace.y = list(x), list(y)


def energy_figure(title: str = "free energy", width: int = 420) -> go.FigureWidget:
    """Overlaid histograms of the energy of data rows and of fantasy particles."""
    fig = go.FigureWidget(
        data=[go.Bar(name="data", opacity=0.6), go.Bar(name="fantasy particles", opacity=0.6)],
        layout=go.Layout(
            height=300,
            width=width,
            barmode="overlay",
            bargap=0,
            margin=MARGIN,
            title={"text": title, "font": {"size": 13}},
            legend={"x": 0.55, "y": 1},
        ),
    )
    return fig


def update_energy(fig: go.FigureWidget, edges: np.ndarray, h_data: np.ndarray, h_fantasy: np.ndarray) -> None:
    """Bars at the bin centres, as wide as the bins; heights are fractions of rows per bin."""
    centres, width = (edges[:-1] + edges[1:]) / 2, float(edges[1] - edges[0])
    with fig.batch_update():
        for trace, h in zip(fig.data, (h_data, h_fantasy)):
            trace.x, trace.y, trace.width = centres, h, width


def filter_lines_figure(width: int = 420) -> go.FigureWidget:
    """An empty figure for ``update_filter_lines``."""
    return go.FigureWidget(
        layout=go.Layout(height=300, width=width, margin=MARGIN, showlegend=False, xaxis_title="visible unit")
    )


def update_filter_lines(fig: go.FigureWidget, weights: np.ndarray, limit: int = 12) -> None:
    """W[:, j] against the visible unit for the first ``limit`` hidden units j."""
    w = np.asarray(weights, dtype=np.float64)[:, :limit]
    if len(fig.data) != w.shape[1]:
        fig.data = ()
        for j in range(w.shape[1]):
            fig.add_scatter(name=f"filter {j}", mode="lines+markers", marker={"size": 4})
    with fig.batch_update():
        for j, trace in enumerate(fig.data):
            trace.x, trace.y = np.arange(w.shape[0]), w[:, j]
