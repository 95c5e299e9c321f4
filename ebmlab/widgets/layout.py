"""Small layout pieces shared by the views: captioned pictures and the two groups of metric curves."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets
import plotly.graph_objects as go

from ebmlab.history import labels

from .figures import metric_figure, update_metric_figure


def captioned(title: str, caption: str, widget: ipywidgets.Widget) -> ipywidgets.VBox:
    """``widget`` under a bold title and a small caption saying what it shows."""
    title, caption = html.escape(title, quote=False), html.escape(caption, quote=False)
    head = ipywidgets.HTML(f"<b>{title}</b><br><small>{caption}</small>")
    head.layout.max_width = "340px"
    box = ipywidgets.VBox([head, widget], layout={"margin": "0 12px 8px 0"})
    box.add_class("ebmlab-captioned")
    return box


class MetricCurves:
    """The metric curves of one or more runs: quality panels in ``quality`` (a box), bookkeeping in
    ``bookkeeping`` (a smaller figure in a second box); rebuilt when the metric names change."""

    def __init__(self, runs: Sequence[str] = ("",), width: int = 960) -> None:
        self.runs, self.width = list(runs), width
        self.names: list[str] = []
        self.figures: dict[str, Any] = {labels.QUALITY: None, labels.BOOKKEEPING: None}
        # each group: a title (shown once the group has a panel) above a box holding its figure
        self.titles = {group: ipywidgets.HTML() for group in self.figures}
        self.holders = {group: ipywidgets.Box() for group in self.figures}
        self.boxes = {group: ipywidgets.VBox([self.titles[group], self.holders[group]]) for group in self.figures}
        self.boxes[labels.QUALITY].add_class("ebmlab-curves")
        self.boxes[labels.BOOKKEEPING].add_class("ebmlab-bookkeeping")

    @property
    def quality(self) -> ipywidgets.VBox:
        return self.boxes[labels.QUALITY]

    @property
    def bookkeeping(self) -> ipywidgets.VBox:
        return self.boxes[labels.BOOKKEEPING]

    def update(self, series: Sequence[Mapping[str, tuple[Sequence[float], Sequence[float]]]]) -> None:
        """Draw ``series[run][metric] = (epochs, values)``."""
        names = list(dict.fromkeys(n for s in series for n in s))
        if names != self.names:
            self.names = names
            grouped = labels.panels(names)
            for group, panels in grouped.items():
                fig = None
                if panels:  # filled before it becomes a widget, so the first drawing already has the data
                    plain = metric_figure(panels, self.runs, group, self.width)
                    update_metric_figure(plain, series)
                    fig = go.FigureWidget(plain)
                self.figures[group] = fig
                self.titles[group].value = "" if fig is None else f"<b>{labels.GROUP_TITLES[group]}</b>"
                self.holders[group].children = () if fig is None else (fig,)
            return
        for fig in self.figures.values():
            if fig is not None:
                update_metric_figure(fig, series)

    def trace(self, metric: str, run: int = 0) -> Any:
        """The line of ``metric`` of run ``run`` (KeyError when it is not drawn)."""
        for fig in self.each():
            for t in fig.data:
                if t.meta[0] == run and t.meta[1] == metric:
                    return t
        raise KeyError(f"no curve of metric {metric!r} for run {run}")

    def each(self) -> list[Any]:
        """The figures drawn now (quality first)."""
        return [f for f in self.figures.values() if f is not None]
