"""The plotly figures shared by the dashboard, the run viewer, the comparison and the batch report.

- metric curves: small multiples, one panel and y-axis per metric family (``ebmlab.history.labels``),
  quality metrics in one figure and bookkeeping (loss, lr, time, throughput, swap rates) in a
  smaller second one; one trace per (run, metric), standard errors as error bars;
- energy histograms: the fraction of data rows and of fantasy particles per free-energy bin;
- filter lines: W's first columns as line plots, for visible units that are not an image.

Every axis has a title with its unit. This module needs plotly only (not ipywidgets).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from ebmlab.history import labels

COLORS = qualitative.Plotly
EPOCH_AXIS = "epoch"
# panel sizes (pixels) per group: quality metrics lead and are drawn larger than bookkeeping
PANEL_HEIGHT = {labels.QUALITY: 250, labels.BOOKKEEPING: 170}
PANEL_COLUMNS = {labels.QUALITY: 3, labels.BOOKKEEPING: 4}
Series = Mapping[str, tuple[Sequence[float], Sequence[float]]]
MAX_POINTS = 2000  # points drawn per curve at most (``thin``): a 100,000-epoch run redraws in kilobytes


def metric_figure(
    panels: Sequence[labels.Panel],
    runs: Sequence[str] = ("",),
    group: str = labels.QUALITY,
    width: int | None = 960,
) -> go.Figure:
    """Small multiples: one panel (and y-axis) per metric family, one line per (run, metric).

    The panel title names the family, its y-axis the unit, the x-axis is ``epoch``; a log axis for
    the learning rate. With several runs the colour is the run (legend: runs) and validation
    metrics are dashed; with one run the colour is the metric. A metric with a standard error
    gets ±1 s.e. error bars. Each trace's ``meta`` is ``[run index, metric name, stderr name]``
    for ``update_metric_figure``.
    """
    cols = max(1, min(PANEL_COLUMNS[group], len(panels)))
    rows = max(1, math.ceil(len(panels) / cols))
    height = PANEL_HEIGHT[group] * rows + 40
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=[p.family.name for p in panels] or ["(no metrics yet)"],
        horizontal_spacing=0.3 / cols,
        vertical_spacing=min(0.3, 80 / height),
    )
    shown: set[str] = set()
    for i, panel in enumerate(panels):
        row, col = i // cols + 1, i % cols + 1
        for j, (name, stderr) in enumerate(panel.metrics):
            label = labels.trace_label(name)
            for k, run in enumerate(runs):
                legend = run if len(runs) > 1 else label
                shown_as = label if len(runs) == 1 else run if len(panel.metrics) == 1 else f"{run} · {label}"
                fig.add_scatter(
                    name=shown_as,
                    legendgroup=legend,
                    showlegend=legend not in shown,
                    mode="lines+markers",
                    marker={"size": 4},
                    line={
                        "color": COLORS[(k if len(runs) > 1 else j) % len(COLORS)],
                        "dash": "dash" if labels.is_validation(name) else "solid",
                    },
                    meta=[k, name, stderr],
                    row=row,
                    col=col,
                )
                shown.add(legend)
        fig.update_yaxes(title_text=panel.family.unit, type="log" if panel.family.log else "linear", row=row, col=col)
        fig.update_xaxes(title_text=EPOCH_AXIS, row=row, col=col)
    fig.update_layout(
        height=height,
        width=width,
        margin={"l": 60, "r": 10, "t": 30, "b": 40},
        showlegend=len(runs) > 1 or any(len(p.metrics) > 1 for p in panels),
        legend={"font": {"size": 10}},
        font={"size": 11},
    )
    fig.update_annotations(font_size=12 if group == labels.QUALITY else 11)
    return fig


def _finite(x: Sequence[float], y: Sequence[float], e: Sequence[float] | None) -> tuple[list, list, list | None]:
    """Keep the epochs where y is finite (a metric skipped at an epoch is NaN there), thinned to
    their envelope when there are more than ``MAX_POINTS`` (``thin``); a missing or non-finite
    standard error is None (no bar)."""
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = min(xs.shape[0], ys.shape[0])
    xs, ys = xs[:n], ys[:n]
    keep = np.flatnonzero(np.isfinite(ys))
    keep = keep[thin(ys[keep])]
    if e is None:
        return xs[keep].tolist(), ys[keep].tolist(), None
    es = np.full(n, np.nan)
    given = np.asarray(e, dtype=float)[:n]
    es[: given.shape[0]] = given
    bars = [float(s) if math.isfinite(s) else None for s in es[keep]]
    return xs[keep].tolist(), ys[keep].tolist(), bars


def thin(y: np.ndarray, limit: int = MAX_POINTS) -> np.ndarray:
    """Indices of at most about ``limit`` points of the curve ``y`` that keep its envelope: the
    points are cut into ``limit // 2`` consecutive buckets and each keeps its lowest and its highest
    point (in their order), so a one-epoch spike still shows; the first and last points always stay."""
    n = y.shape[0]
    if n <= limit:
        return np.arange(n)
    keep = [0, n - 1]
    for a, b in itertools.pairwise(np.linspace(0, n, limit // 2 + 1).astype(int)):  # n > limit: no bucket is empty
        keep += [a + int(np.argmin(y[a:b])), a + int(np.argmax(y[a:b]))]
    return np.unique(keep)


def update_metric_figure(fig: go.Figure, series: Sequence[Series]) -> None:
    """Set every trace of a ``metric_figure`` from ``series[run][metric] = (epochs, values)``; a curve
    longer than ``MAX_POINTS`` is thinned to its envelope (``thin``), so a long run's redraws stay small."""
    with fig.batch_update():
        for trace in fig.data:
            k, name, stderr = trace.meta
            x, y = series[k].get(name, ((), ())) if k < len(series) else ((), ())
            e = series[k].get(stderr, (None, None))[1] if stderr is not None and k < len(series) else None
            xs, ys, es = _finite(x, y, e)
            trace.x, trace.y = xs, ys
            if es is not None:
                trace.error_y = {"type": "data", "array": es, "visible": True, "thickness": 1, "width": 2}


def mark_epoch(fig: go.Figure, epoch: float) -> None:
    """A dotted vertical line at ``epoch`` in every panel of a ``metric_figure``."""
    axes = sorted({(t.xaxis, t.yaxis) for t in fig.data})
    fig.layout.shapes = [
        {
            "type": "line",
            "xref": x,
            "yref": f"{y} domain",
            "x0": epoch,
            "x1": epoch,
            "y0": 0,
            "y1": 1,
            "line": {"color": "#888", "dash": "dot", "width": 1},
        }
        for x, y in axes
    ]


def energy_figure(title: str = "free energy of data and fantasy particles", width: int = 420) -> go.FigureWidget:
    """Overlaid histograms of the free energy of data rows and of fantasy particles (model chains)."""
    fig = go.FigureWidget(
        data=[go.Bar(name="data", opacity=0.6), go.Bar(name="fantasy particles", opacity=0.6)],
        layout=go.Layout(
            height=300,
            width=width,
            barmode="overlay",
            bargap=0,
            margin={"l": 55, "r": 10, "t": 30, "b": 45},
            title={"text": title, "font": {"size": 13}},
            legend={"x": 0.55, "y": 1},
            xaxis_title="free energy F (nats)",
            yaxis_title="fraction of rows per bin",
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
        layout=go.Layout(
            height=300,
            width=width,
            margin={"l": 55, "r": 10, "t": 30, "b": 45},
            showlegend=False,
            xaxis_title="visible unit (index)",
            yaxis_title="weight W_ij (nats per unit pair)",
            title={"text": "weight filters: W[:, j] of the first hidden units", "font": {"size": 13}},
        )
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
