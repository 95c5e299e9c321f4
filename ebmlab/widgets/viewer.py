"""RunViewer: replay a stored run (``ebmlab.history``) snapshot by snapshot, and follow a growing one.

A slider picks the snapshot; the view shows that snapshot's weight filters, fantasy particles (the
recorder's own model chains), the method's negative phase under its own name (CD: reconstructions)
and energy histograms, and the metric curves (quality first, bookkeeping in a smaller figure
below; ``ebmlab.history.labels``) with a marker at the snapshot's epoch. "Refresh"
re-reads the store; "follow" polls it every ``poll`` seconds in a daemon thread and keeps the
slider on the newest snapshot while the run is being written (it stops once the run is finished).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ipywidgets
import numpy as np
import xarray as xr

from ebmlab.history import labels, open_run, schema

from .base import View
from .figures import energy_figure, filter_lines_figure, mark_epoch, update_energy, update_filter_lines
from .images import filters_image, grid_png, guess_image_shape, states_png
from .layout import MetricCurves, captioned


def metric_series(run: xr.Dataset) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{metric name: (epochs, values)} of a run, in store order."""
    epochs = run[schema.EPOCH].values
    return {
        str(var.attrs.get("metric", name.removeprefix(schema.METRIC_PREFIX))): (epochs, var.values)
        for name, var in run.data_vars.items()
        if name.startswith(schema.METRIC_PREFIX)
    }


OLD_FANTASY_KIND = "particles (a store from before format 2: the method's negative phase)"


def particle_kinds(run: xr.Dataset) -> dict[str, str]:
    """{particle variable: its kind}: ``fantasy`` and, when recorded, ``negative_phase``."""
    kinds = {}
    for name in (schema.FANTASY, schema.NEGATIVE):
        if name in run:
            default = OLD_FANTASY_KIND if name == schema.FANTASY else "negative-phase states"
            kinds[name] = str(run[name].attrs.get(schema.KIND, default))
    return kinds


def run_normalization(run: xr.Dataset) -> dict[str, Any] | None:
    """The training data's normalization record stored with the run (None for raw data or older stores)."""
    record = run.attrs.get(schema.NORMALIZATION)
    return record if isinstance(record, dict) and {"mean", "std"} <= set(record) else None


def snapshot_pictures(
    run: xr.Dataset, snapshot: int, image_shape: Sequence[int] | None, filters: int, particles: int
) -> tuple[bytes | np.ndarray, dict[str, bytes]]:
    """(filters PNG — or W as an array when there is no image shape —, {particle variable: PNG}) of a snapshot.

    The particle variables are ``fantasy`` and, when the run recorded one, ``negative_phase``.
    """
    snap = {schema.SNAPSHOT: snapshot}
    w = np.asarray(run[schema.weights_var(0)].isel(snap).values)
    spec_layers = run.attrs.get(schema.SPEC, {}).get("layers", [{}])
    scale = {"normalize": spec_layers[0].get("type") == "gaussian", "normalization": run_normalization(run)}
    shown = grid_png(filters_image(w, image_shape, filters)) if image_shape is not None else w
    pictures = {
        name: states_png(np.asarray(run[name].isel(snap).values), image_shape, particles, **scale)
        for name in particle_kinds(run)
    }
    return shown, pictures


def resolve_image_shape(run: xr.Dataset, image_shape: Sequence[int] | None) -> tuple[int, int] | None:
    """The given (height, width), checked against the visible units; else the run's recorded
    ``image_shape`` attribute; else a square guess."""
    units = int(run[schema.weights_var(0)].shape[1])
    if image_shape is None:
        recorded = run.attrs.get(schema.IMAGE_SHAPE)
        if recorded is not None and len(recorded) == 2 and int(recorded[0]) * int(recorded[1]) == units:
            return int(recorded[0]), int(recorded[1])
        return guess_image_shape(units)
    shape = tuple(int(d) for d in image_shape)
    if len(shape) != 2 or shape[0] * shape[1] != units:
        raise ValueError(f"image_shape must be (height, width) with height·width = {units} visible units, got {shape}")
    return shape  # type: ignore[return-value]


class RunViewer(View):
    """Replay the run stored at ``path`` with a snapshot slider.

    ``image_shape`` (height, width) draws visible vectors as images (default: square when the
    number of visible units is a perfect square). ``follow=True`` starts polling right away.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        image_shape: Sequence[int] | None = None,
        follow: bool = False,
        poll: float = 2.0,
        filters: int = 100,
        particles: int = 64,
    ) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
        if isinstance(poll, bool) or not isinstance(poll, (int, float)) or not poll > 0:
            raise ValueError(f"poll must be a positive number of seconds, got {poll!r}")
        self.path, self.poll = Path(path), float(poll)
        self.run = open_run(self.path)
        if self.run.sizes.get(schema.SNAPSHOT, 0) == 0:
            raise ValueError(f"the run at {self.path} has no snapshot yet")
        self.image_shape = resolve_image_shape(self.run, image_shape)
        self.n_filters, self.n_particles = filters, particles
        self._stop_polling = threading.Event()
        self._poller: threading.Thread | None = None
        self._lock = threading.Lock()

        self.slider = ipywidgets.IntSlider(min=0, description="snapshot", continuous_update=True)
        self.slider.add_class("ebmlab-snapshot")
        self.epoch_label = ipywidgets.HTML()
        self.refresh_button = ipywidgets.Button(description="Refresh", icon="refresh")
        self.refresh_button.on_click(lambda _: self.refresh())
        self.follow_box = ipywidgets.Checkbox(value=False, description="follow", indent=False)
        self.follow_box.observe(self._on_follow, names="value")
        self.info = ipywidgets.HTML()
        self.filters_view: Any = (
            ipywidgets.Image(format="png") if self.image_shape is not None else filter_lines_figure()
        )
        self.particle_views = {name: ipywidgets.Image(format="png") for name in (schema.FANTASY, schema.NEGATIVE)}
        self.particles_view = self.particle_views[schema.FANTASY]
        self.particles_view.add_class("ebmlab-particles")
        self.particle_views[schema.NEGATIVE].add_class("ebmlab-negative")
        self.energy = energy_figure()
        self.curves = MetricCurves()
        self.pictures = ipywidgets.HBox(layout={"flex_flow": "row wrap"})
        self._kinds: dict[str, str] | None = None

        self.view = ipywidgets.VBox(
            [
                ipywidgets.HBox([self.slider, self.epoch_label, self.refresh_button, self.follow_box]),
                self.info,
                self.pictures,
                self.curves.quality,
                self.curves.bookkeeping,
            ]
        )
        self.view.add_class("ebmlab-run-viewer")
        self.slider.max = self.snapshots - 1
        self.slider.value = self.snapshots - 1
        self.slider.observe(lambda change: self.show(int(change["new"])), names="value")
        self._draw_curves()
        self.show(self.slider.value)
        self.follow_box.value = follow

    # -- reading -------------------------------------------------------------------------------
    @property
    def snapshots(self) -> int:
        return int(self.run.sizes.get(schema.SNAPSHOT, 0))

    @property
    def status(self) -> str:
        """The store's status attribute: 'running', 'finished', 'stopped' or 'failed'."""
        return str(self.run.attrs.get(schema.STATUS, "?"))

    def refresh(self) -> bool:
        """Re-read the store; True when it has new epochs or snapshots. A slider on the last
        snapshot moves to the newest one."""
        with self._lock:
            run = open_run(self.path)
            grew = (run.sizes.get(schema.EPOCH, 0), run.sizes.get(schema.SNAPSHOT, 0)) != (
                self.run.sizes.get(schema.EPOCH, 0),
                self.snapshots,
            )
            at_end = self.slider.value == self.snapshots - 1
            self.run = run
            if grew:
                self._draw_curves()
                self.slider.max = self.snapshots - 1
                if at_end and self.slider.value != self.snapshots - 1:
                    self.slider.value = self.snapshots - 1  # draws through the observer
                else:
                    self.show(self.slider.value)
            self._show_info()
            return grew

    # -- following -----------------------------------------------------------------------------
    def _on_follow(self, change: dict) -> None:
        if change["new"]:
            self.follow()
        else:
            self.unfollow()

    def follow(self) -> None:
        """Poll the store every ``poll`` seconds until the run has ended or ``unfollow()``."""
        if self._poller is not None and self._poller.is_alive():
            return
        self._stop_polling.clear()
        self._poller = threading.Thread(target=self._poll, daemon=True, name="ebmlab-run-viewer")
        self._poller.start()
        if not self.follow_box.value:
            self.follow_box.value = True

    def unfollow(self) -> None:
        """Stop polling."""
        self._stop_polling.set()
        if self.follow_box.value:
            self.follow_box.value = False

    @property
    def following(self) -> bool:
        return self._poller is not None and self._poller.is_alive()

    def _poll(self) -> None:
        while not self._stop_polling.wait(self.poll):
            self.refresh()
            if self.status in (schema.FINISHED, schema.STOPPED, schema.FAILED):
                break
        self.follow_box.value = False

    # -- drawing -------------------------------------------------------------------------------
    def show(self, snapshot: int) -> None:
        """Draw snapshot ``snapshot`` (pictures, histograms, the epoch marker on the curves)."""
        run = self.run
        filters, particles = snapshot_pictures(run, snapshot, self.image_shape, self.n_filters, self.n_particles)
        if self.image_shape is not None:
            self.filters_view.value = filters
        else:
            update_filter_lines(self.filters_view, filters)
        self._lay_out_pictures()
        for name, png in particles.items():
            self.particle_views[name].value = png
        snap = {schema.SNAPSHOT: snapshot}
        update_energy(
            self.energy,
            run[schema.BIN_EDGES].isel(snap).values,
            run[schema.ENERGY_HIST_DATA].isel(snap).values,
            run[schema.ENERGY_HIST_FANTASY].isel(snap).values,
        )
        epoch = int(run[schema.SNAPSHOT_EPOCH].values[snapshot])
        self.epoch_label.value = f"epoch <b>{epoch}</b>"
        for fig in self.curves.each():
            mark_epoch(fig, epoch)
        self._show_info()

    def _lay_out_pictures(self) -> None:
        """Filters, then each recorded kind of particles under its own caption, then the histograms."""
        kinds = particle_kinds(self.run)
        if self._kinds == kinds:
            return
        self._kinds = kinds
        filters_caption = (
            "columns of W; grey 0, white positive, black negative (each scaled to its largest |w|)"
            if self.image_shape is not None
            else "W[:, j] against the visible unit"
        )
        boxes = [captioned("weight filters", filters_caption, self.filters_view)]
        for name, kind in kinds.items():
            note = labels.particle_note(kind)
            if name == schema.FANTASY and kind == schema.FANTASY_KIND:
                steps = (self.run.attrs.get(schema.RECORDER) or {}).get("sample_steps", "?")
                note = f"the recorder's own chains, +{steps} Gibbs sweeps per snapshot: {note}"
            boxes.append(captioned(kind, note, self.particle_views[name]))
        boxes.append(self.energy)
        self.pictures.children = boxes

    def _draw_curves(self) -> None:
        self.curves.update([metric_series(self.run)])

    def _show_info(self) -> None:
        a = self.run.attrs
        method = (a.get(schema.METHOD) or {}).get("name", "?")
        sizes = "×".join(str(s.get("n", "?")) for s in (a.get(schema.SPEC) or {}).get("layers", []))
        self.info.value = (
            f"{self.path.name} · {self.status} · {method} · {sizes} · {a.get(schema.DATASET, '?')} · "
            f"{self.run.sizes.get(schema.EPOCH, 0)} epochs · {self.snapshots} snapshots"
        )
