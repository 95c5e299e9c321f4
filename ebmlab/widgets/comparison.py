"""RunComparison: several stored runs side by side — how trainers (CD, PCD, TAP, PT, …) compare.

From the top: overlaid metric curves (one panel and y-axis per metric family, one colour per run),
quality first (log-likelihood ± standard error, pseudo-likelihood, reconstruction error,
free-energy gap) and bookkeeping (surrogate loss, lr, time, throughput, swap rates) in a smaller
figure below; a table of each run's final quality metrics and parameters
(``ebmlab.history.run_parameters``); then, at a chosen epoch (each run's latest snapshot at or
before it), every run's weight filters, fantasy particles (model chains) and the method's own
negative phase under its name (CD: reconstructions).
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ipywidgets
import numpy as np
import xarray as xr

from ebmlab.history import labels as catalog
from ebmlab.history import open_run, run_parameters, schema

from .base import View
from .figures import COLORS, filter_lines_figure, update_filter_lines
from .layout import MetricCurves
from .viewer import metric_series, particle_kinds, resolve_image_shape, snapshot_pictures


def _labels(paths: Sequence[Path]) -> list[str]:
    stems = [p.name.removesuffix(".zarr").removesuffix(".nc") for p in paths]
    if len(set(stems)) == len(stems):
        return stems
    return [f"{p.parent.name}/{s}" for p, s in zip(paths, stems)]


def _format(value: Any) -> str:
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.4g}"
    return html.escape("–" if value is None else str(value))


OPTIMIZER_SHOWN = ("optimizer_lr", "optimizer_momentum", "optimizer_weight_decay")


def _shown(key: str, values: list[Any]) -> bool:
    """Table columns: set parameters, leaving out flags and the optimizer's rarely-changed settings."""
    if key.startswith("optimizer_") and key not in OPTIMIZER_SHOWN:
        return False
    return any(v is not None and not isinstance(v, bool) for v in values)


def final_metrics(run: xr.Dataset) -> dict[str, float]:
    """The last finite value of every metric of a run (NaN when it never had one)."""
    out = {}
    for name, (_, values) in metric_series(run).items():
        last = catalog.final_value(np.asarray(values, dtype=np.float64))
        out[name] = float("nan") if last is None else last[1]
    return out


def final_rows(series: Sequence[dict[str, Any]]) -> list[tuple[str, str, list[str]]]:
    """(group, metric, cell per run) for the table: quality metrics first, ``X ± se`` where a standard error exists."""
    values = [{k: v[1] for k, v in s.items()} for s in series]
    grouped = catalog.panels(dict.fromkeys(k for s in series for k in s))
    return [
        (group, name, [catalog.format_with_stderr(v, name) for v in values])
        for group in (catalog.QUALITY, catalog.BOOKKEEPING)
        for panel in grouped[group]
        for name, _ in panel.metrics
    ]


def _text(text: str) -> str:
    return html.escape(text, quote=False)


def _cell(title: str, widget: Any) -> ipywidgets.VBox:
    if isinstance(widget, ipywidgets.Image):
        widget.layout.width = "170px"
    head = ipywidgets.HTML(f"<small><b>{html.escape(title)}</b></small>", layout={"max_width": "170px"})
    return ipywidgets.VBox([head, widget])


class RunComparison(View):
    """Compare the runs stored at ``paths`` (at least one); ``labels`` name them (default: file names).

    ``image_shape`` applies to every run whose visible units match it; other runs get a square
    guess or, failing that, line plots of their filters.
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike],
        labels: Sequence[str] | None = None,
        image_shape: Sequence[int] | None = None,
        filters: int = 36,
        particles: int = 36,
    ) -> None:
        if isinstance(paths, (str, os.PathLike)) or not isinstance(paths, Sequence) or not paths:
            raise TypeError("paths must be a non-empty list of run-history paths")
        self.paths = [Path(p) for p in paths]
        self.labels = list(labels) if labels is not None else _labels(self.paths)
        if len(self.labels) != len(self.paths):
            raise ValueError(f"labels must name each of the {len(self.paths)} runs, got {len(self.labels)}")
        self.requested_shape, self.n_filters, self.n_particles = image_shape, filters, particles
        self.runs = [open_run(p) for p in self.paths]
        for path, run in zip(self.paths, self.runs):
            if run.sizes.get(schema.SNAPSHOT, 0) == 0:
                raise ValueError(f"the run at {path} has no snapshot yet")
        self.image_shapes = [self._shape(run) for run in self.runs]

        epochs = self.epochs()
        self.epoch = ipywidgets.SelectionSlider(
            options=epochs, value=epochs[-1], description="epoch", continuous_update=False
        )
        self.epoch.add_class("ebmlab-compare-epoch")
        self.refresh_button = ipywidgets.Button(description="Refresh", icon="refresh")
        self.refresh_button.on_click(lambda _: self.refresh())
        self.table = ipywidgets.HTML()
        self.table.add_class("ebmlab-compare-table")
        self.pictures = ipywidgets.HBox(layout={"flex_flow": "row wrap"})
        self.pictures.add_class("ebmlab-compare-pictures")
        self.curves = MetricCurves(runs=self.labels)
        self.curves.quality.add_class("ebmlab-compare-curves")
        self._panels = [self._panel(k) for k in range(len(self.runs))]
        self.pictures.children = [p[0] for p in self._panels]
        kinds = dict.fromkeys(kind for run in self.runs for kind in particle_kinds(run).values())
        notes = "".join(
            f"<li><b>{_text(kind)}</b>: {_text(catalog.particle_note(kind) or kind)}</li>" for kind in kinds
        )
        self.legend = ipywidgets.HTML(
            "<small><ul style='margin:0;padding-left:18px'>"
            "<li><b>weight filters</b>: columns of W; grey 0, white positive, black negative "
            f"(each scaled to its largest |w|)</li>{notes}</ul></small>"
        )
        self.view = ipywidgets.VBox(
            [
                self.refresh_button,
                self.curves.quality,
                self.curves.bookkeeping,
                self.table,
                ipywidgets.HTML("<b>Weights and particles</b>"),
                self.epoch,
                self.pictures,
                self.legend,
            ]
        )
        self.view.add_class("ebmlab-run-comparison")
        self.epoch.observe(lambda change: self.show(int(change["new"])), names="value")
        self._redraw()

    def _shape(self, run: xr.Dataset) -> tuple[int, int] | None:
        try:
            return resolve_image_shape(run, self.requested_shape)
        except ValueError:
            return resolve_image_shape(run, None)

    def _panel(self, k: int) -> tuple[ipywidgets.VBox, ipywidgets.HTML, Any, dict[str, ipywidgets.Image]]:
        """A run's pictures: its filters, then each kind of particles it recorded, each with a caption."""
        title = ipywidgets.HTML()
        filters: Any = ipywidgets.Image(format="png") if self.image_shapes[k] is not None else filter_lines_figure(300)
        kinds = particle_kinds(self.runs[k])
        particles = {name: ipywidgets.Image(format="png") for name in kinds}
        cells = [_cell("weight filters", filters)]
        for name, kind in kinds.items():
            particles[name].add_class("ebmlab-negative" if name == schema.NEGATIVE else "ebmlab-particles")
            cells.append(_cell(kind, particles[name]))
        box = ipywidgets.VBox([title, ipywidgets.HBox(cells)], layout={"margin": "0 16px 8px 0"})
        return box, title, filters, particles

    # -- content -------------------------------------------------------------------------------
    def epochs(self) -> list[int]:
        """Every epoch at which some run took a snapshot, ascending."""
        return sorted({int(e) for run in self.runs for e in run[schema.SNAPSHOT_EPOCH].values})

    @staticmethod
    def snapshot_at(run: xr.Dataset, epoch: int) -> int:
        """Index of the run's latest snapshot taken at or before ``epoch`` (its first one if none)."""
        taken = np.asarray(run[schema.SNAPSHOT_EPOCH].values)
        before = np.flatnonzero(taken <= epoch)
        return int(before[-1]) if before.size else 0

    def show(self, epoch: int) -> None:
        """Filters and particles of every run at ``epoch``."""
        for k, (run, (_, title, filters, particles)) in enumerate(zip(self.runs, self._panels)):
            s = self.snapshot_at(run, epoch)
            w, pictures = snapshot_pictures(run, s, self.image_shapes[k], self.n_filters, self.n_particles)
            if self.image_shapes[k] is not None:
                filters.value = w
            else:
                update_filter_lines(filters, w)
            for name, png in pictures.items():
                if name in particles:
                    particles[name].value = png
            taken = int(run[schema.SNAPSHOT_EPOCH].values[s])
            colour = COLORS[k % len(COLORS)]
            title.value = f"<b style='color:{colour}'>{html.escape(self.labels[k])}</b> · epoch {taken}"

    def refresh(self) -> None:
        """Re-read every store (runs may still be growing) and redraw."""
        self.runs = [open_run(p) for p in self.paths]
        self._redraw()

    def _redraw(self) -> None:
        self.curves.update([metric_series(run) for run in self.runs])
        epochs = self.epochs()
        current = self.epoch.value if self.epoch.value in epochs else epochs[-1]
        if list(self.epoch.options) != epochs:
            self.epoch.options = epochs  # resets the value to the first option
        if self.epoch.value != current:
            self.epoch.value = current  # drawn by the observer
        else:
            self.show(current)
        self.table.value = self._table()

    def _table(self) -> str:
        """One column per run; rows: the final quality metrics (``X ± se``), the run's parameters,
        then the final bookkeeping metrics."""
        params = [run_parameters(run.attrs) for run in self.runs]
        pkeys = [k for k in dict.fromkeys(k for p in params for k in p) if _shown(k, [p.get(k) for p in params])]
        finals = final_rows([metric_series(run) for run in self.runs])
        head = "".join(
            f"<th style='color:{COLORS[k % len(COLORS)]}'>{html.escape(label)}</th>"
            for k, label in enumerate(self.labels)
        )
        rows = [f"<tr><th></th>{head}</tr>"]

        def metric_rows(group: str) -> None:
            for g, key, cells in finals:
                if g == group:
                    tds = "".join(f"<td>{html.escape(c)}</td>" for c in cells)
                    rows.append(f"<tr class='{g}'><th style='text-align:left'>final {html.escape(key)}</th>{tds}</tr>")

        metric_rows(catalog.QUALITY)
        for key in pkeys:
            cells = "".join(f"<td>{_format(p.get(key))}</td>" for p in params)
            rows.append(f"<tr><th style='text-align:left'>{html.escape(key)}</th>{cells}</tr>")
        metric_rows(catalog.BOOKKEEPING)
        style = "border-collapse:collapse;font-size:12px"
        return f"<table class='ebmlab-table' style='{style}' border='1' cellpadding='3'>{''.join(rows)}</table>"
