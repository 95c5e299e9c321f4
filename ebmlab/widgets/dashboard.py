"""TrainingDashboard: watch and steer a Trainer while it trains in a background thread.

The Trainer runs ``fit`` in a daemon thread; the dashboard listens through a ``Callback`` and
controls the run only through the Trainer's thread controls (``pause``, ``resume``, ``stop``,
``set_lr``), so the kernel stays responsive and the training logic stays in ``ebmlab.train``.

Drawing happens in the training thread between batches, at most once per ``interval`` seconds
for the PNG pictures (filters, particles, status) and once per ``plot_interval`` seconds for the
plotly figures (energy histograms, metric curves, non-image filters), so drawing costs at most
about cost / interval of the training time.

Energies are those of the history store (``ebmlab.history.recorder``): F(v) for an RBM, F(h_even)
with the odd layers summed out for deeper stacks (data rows at their mean-field values).

Particles are labelled by what they are: *fantasy particles* come from the dashboard's own Gibbs
chains (seeded, advanced ``sweeps`` sweeps per drawing, never touched by the data or the
trainer's random streams), and the method's negative phase is shown beside them under its own
name (``Method.particles_kind``: CD's are *reconstructions* of the data batch). Metric curves
lead with quality (log-likelihood ± standard error, pseudo-likelihood, reconstruction error,
free-energy gap); bookkeeping (surrogate loss, lr, time, throughput, swap rates) is a smaller
figure below. The Trainer's own tqdm bar is switched off while the dashboard trains it, since a
bar started from the background thread would land in whichever cell runs next; the dashboard
has its own progress bar.
"""

from __future__ import annotations

import html
import math
import os
import threading
import time
from typing import Any

import ipywidgets
import numpy as np
import torch

from ebmlab.data import Dataset, as_dataset
from ebmlab.history import Recorder, labels
from ebmlab.history.recorder import data_energy, histograms, state_energy
from ebmlab.train import Callback, Trainer, TrainState

from .base import View
from .figures import energy_figure, filter_lines_figure, update_energy, update_filter_lines
from .images import filters_image, grid_png, states_png
from .layout import MetricCurves, captioned
from .throttle import Throttle


class _Listener(Callback):
    """The dashboard's ears inside the training loop."""

    def __init__(self, dashboard: TrainingDashboard) -> None:
        self.dashboard = dashboard

    def on_train_begin(self, state: TrainState) -> None:
        self.dashboard._on_begin(state)

    def on_batch_end(self, state: TrainState) -> None:
        self.dashboard._on_batch(state)

    def on_epoch_end(self, state: TrainState) -> None:
        self.dashboard._on_epoch(state)

    def on_train_end(self, state: TrainState) -> None:
        self.dashboard._on_end(state)


def _format_seconds(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    m, s = divmod(round(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class TrainingDashboard(View):
    """Live view and controls of ``trainer`` fitting ``data`` (a ``Dataset`` or a tensor of rows).

    Start/Pause/Resume/Stop buttons and a learning-rate slider act on the running Trainer. With
    ``data.image_shape`` (height, width), the first ``filters`` weight filters, ``particles``
    fantasy particles (the dashboard's own chains, ``sweeps`` Gibbs sweeps per drawing) and as
    many of the method's negative-phase states show as tiled PNG images; otherwise filters are
    line plots and particles a raster (one row per particle). ``history_path`` adds an
    ``ebmlab.history.Recorder`` (options in ``recorder``) to the Trainer so the run is stored as
    it trains.
    """

    def __init__(
        self,
        trainer: Trainer,
        data: Any,
        epochs: int = 10,
        validation: Any = None,
        history_path: str | os.PathLike | None = None,
        interval: float = 1.0,
        plot_interval: float = 2.0,
        filters: int = 100,
        particles: int = 64,
        energy_rows: int = 500,
        bins: int = 40,
        recorder: dict[str, Any] | None = None,
        sweeps: int = 3,
        seed: int = 0,
    ) -> None:
        if not isinstance(trainer, Trainer):
            raise TypeError(f"trainer must be an ebmlab.train.Trainer, got {type(trainer).__name__}")
        self.data = data if isinstance(data, Dataset) else as_dataset(data)
        counts = {
            "epochs": epochs,
            "filters": filters,
            "particles": particles,
            "energy_rows": energy_rows,
            "bins": bins,
            "sweeps": sweeps,
        }
        for name, value in counts.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.trainer, self.model, self.validation = trainer, trainer.model, validation
        shape = self.data.image_shape
        self.image_shape = tuple(shape) if shape is not None and len(shape) == 2 else None
        self.n_filters, self.n_particles, self.bins, self.sweeps = filters, particles, bins, sweeps
        self.picture_throttle, self.plot_throttle = Throttle(interval), Throttle(plot_interval)
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.stop_requested_at: float | None = None
        self.ended_at: float | None = None
        self.draws = 0
        g = torch.Generator().manual_seed(0)
        rows = torch.randperm(len(self.data), generator=g)[:energy_rows]
        self._energy_data = self.data.data[rows].to(self.model.device, self.model.dtype)
        self._generator = torch.Generator(device=self.model.device).manual_seed(seed)
        self._chains: list[torch.Tensor] = self.model.random_states(particles, self._generator)
        self._begin_step = 0
        self._rate_mark: tuple[float, int] | None = None
        self._rate = float("nan")

        self.recorder = None
        if history_path is not None:
            self.recorder = Recorder(history_path, **(recorder or {}))
            trainer.callbacks.append(self.recorder)
        self.listener = _Listener(self)
        trainer.callbacks.append(self.listener)
        self._build(epochs)
        self._draw_pictures(None)
        self._draw_plots(None)
        self._status(None)

    # -- layout --------------------------------------------------------------------------------
    def _build(self, epochs: int) -> None:
        self.buttons = {
            "start": ipywidgets.Button(description="Start", icon="play", button_style="success"),
            "pause": ipywidgets.Button(description="Pause", icon="pause"),
            "resume": ipywidgets.Button(description="Resume", icon="forward"),
            "stop": ipywidgets.Button(description="Stop", icon="stop", button_style="danger"),
        }
        actions = {"start": self.start, "pause": self.pause, "resume": self.resume, "stop": self.stop}
        for name, button in self.buttons.items():
            button.add_class(f"ebmlab-{name}")
            button.on_click(lambda _, act=actions[name]: act())
        self.epochs = ipywidgets.BoundedIntText(value=epochs, min=1, max=10**7, description="epochs")
        self.epochs.layout.width = "160px"
        self.lr = ipywidgets.FloatLogSlider(
            value=self.trainer.lr,
            base=10,
            min=-6,
            max=0,
            step=0.05,
            description="learning rate",
            readout_format=".2e",
            continuous_update=False,
            style={"description_width": "90px"},
        )
        self.lr.observe(lambda change: self.trainer.set_lr(float(change["new"])), names="value")
        self.status = ipywidgets.HTML()
        self.status.add_class("ebmlab-status")
        self.progress = ipywidgets.FloatProgress(value=0.0, min=0.0, max=1.0, description="progress")
        self.progress.add_class("ebmlab-progress")
        self.filters_view: ipywidgets.Widget
        if self.image_shape is not None:
            self.filters_view = ipywidgets.Image(format="png")
        else:
            self.filters_view = filter_lines_figure()
        self.filters_view.add_class("ebmlab-filters")
        self.particles_view = ipywidgets.Image(format="png")
        self.particles_view.add_class("ebmlab-particles")
        self.negative_view = ipywidgets.Image(format="png")
        self.negative_view.add_class("ebmlab-negative")
        self.energy = energy_figure()
        self.curves = MetricCurves()

        kind = str(getattr(self.trainer.method, "particles_kind", "negative-phase states"))
        name = getattr(self.trainer.method, "name", type(self.trainer.method).__name__)
        self.negative_caption = f"method {name}: {labels.particle_note(kind) or 'its negative-phase states'}"
        filters_caption = (
            f"columns of W for the first {self.n_filters} hidden units; grey 0, white positive, black negative "
            "(each scaled to its largest |w|)"
            if self.image_shape is not None
            else "W[:, j] against the visible unit"
        )
        fantasy_caption = (
            f"{self.n_particles} chains of the dashboard's own, {self.sweeps} Gibbs sweeps per drawing: "
            + labels.FANTASY_NOTE
        )
        controls = ipywidgets.HBox([*self.buttons.values(), self.epochs, self.lr])
        pictures = ipywidgets.HBox(
            [
                captioned("weight filters", filters_caption, self.filters_view),
                captioned("fantasy particles", fantasy_caption, self.particles_view),
                captioned(kind, self.negative_caption, self.negative_view),
                ipywidgets.Box([self.energy]).add_class("ebmlab-energy"),
            ],
            layout={"flex_flow": "row wrap"},
        )
        self.view = ipywidgets.VBox(
            [
                controls,
                ipywidgets.HBox([self.progress, self.status]),
                pictures,
                self.curves.quality,
                self.curves.bookkeeping,
            ]
        )
        self.view.add_class("ebmlab-dashboard")
        self._sync_buttons()

    # -- controls ------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True while the training thread is alive."""
        return self.thread is not None and self.thread.is_alive()

    def start(self) -> None:
        """Train until ``epochs`` epochs in total in a daemon thread (no-op while one runs)."""
        if self.running:
            return
        self.error, self.stop_requested_at, self.ended_at = None, None, None
        self.thread = threading.Thread(target=self._fit, args=(int(self.epochs.value),), daemon=True, name="ebmlab-fit")
        self.thread.start()
        self._sync_buttons()

    def _fit(self, epochs: int) -> None:
        progress, self.trainer.progress = self.trainer.progress, False  # no tqdm bar from this thread
        try:
            self.trainer.fit(self.data, epochs, validation=self.validation)
        except BaseException as err:  # shown in the status line; the thread must end cleanly
            self.error = err
        finally:
            self.trainer.progress = progress
            self.ended_at = time.monotonic()
            self._status(self.trainer.state, final=True)
            self._sync_buttons(finished=True)

    def pause(self) -> None:
        """Hold training before its next batch."""
        self.trainer.pause()
        self._sync_buttons()
        self._status(self.trainer.state)

    def resume(self) -> None:
        """Continue a paused run."""
        self.trainer.resume()
        self._sync_buttons()

    def stop(self) -> None:
        """End training before its next batch (the unfinished epoch is not counted)."""
        self.stop_requested_at = time.monotonic()
        self.trainer.stop()

    @property
    def stop_latency(self) -> float | None:
        """Seconds from ``stop()`` to the end of the training thread (None until both happened)."""
        if self.stop_requested_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.stop_requested_at

    def close(self) -> None:
        """Stop training, detach the dashboard (and its recorder) from the Trainer, close the widgets."""
        if self.running:
            self.stop()
            self.wait()
        for cb in (self.listener, self.recorder):
            if cb in self.trainer.callbacks:
                self.trainer.callbacks.remove(cb)
        super().close()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the training thread ends (or ``timeout`` s); True when it has ended."""
        if self.thread is not None:
            self.thread.join(timeout)
        return not self.running

    def _sync_buttons(self, finished: bool = False) -> None:
        running = self.running and not finished
        paused = running and self.trainer.paused
        self.buttons["start"].disabled = running
        self.buttons["pause"].disabled = not running or paused
        self.buttons["resume"].disabled = not paused
        self.buttons["stop"].disabled = not running

    # -- callback hooks (training thread) ------------------------------------------------------
    def _on_begin(self, state: TrainState) -> None:
        self._begin_step = state.step
        self._rate_mark = (time.perf_counter(), state.step)
        self.picture_throttle.reset()

    def _on_batch(self, state: TrainState) -> None:
        if self.picture_throttle.ready():
            self._measure_rate(state)
            self._draw_pictures(state)
            self._status(state)
        if self.plot_throttle.ready():
            self._draw_plots(state)

    def _on_epoch(self, state: TrainState) -> None:
        if self.plot_throttle.ready():
            self._draw_plots(state)

    def _on_end(self, state: TrainState) -> None:
        self._draw_pictures(state)
        self._draw_plots(state)

    # -- drawing -------------------------------------------------------------------------------
    def _measure_rate(self, state: TrainState) -> None:
        now = time.perf_counter()
        if self._rate_mark is not None and state.step > self._rate_mark[1]:
            self._rate = (state.step - self._rate_mark[1]) * self.trainer.batch_size / (now - self._rate_mark[0])
        self._rate_mark = (now, state.step)

    @torch.no_grad()
    def fantasy(self, state: TrainState | None = None) -> list[torch.Tensor]:
        """The dashboard's fantasy chains: advanced ``sweeps`` Gibbs sweeps under the current model
        when ``state`` is given (a drawing during training), returned as they are otherwise."""
        if state is not None:
            for _ in range(self.sweeps):
                self._chains = self.model._gibbs(self._chains, 1.0, None, self._generator)
        return self._chains

    def negative_phase(self) -> torch.Tensor | None:
        """The visible layer of the method's latest negative-phase states (None when it keeps none)."""
        particles = getattr(self.trainer.method, "particles", None)
        return particles[0][: self.n_particles].detach() if particles else None

    @torch.no_grad()
    def _draw_pictures(self, state: TrainState | None) -> None:
        if self.image_shape is not None:
            w = self.model.weights[0].detach()
            self.filters_view.value = grid_png(filters_image(w, self.image_shape, self.n_filters))
        continuous = not np.isfinite(self.model.layers[0].num_states())
        scale = {"normalize": continuous, "normalization": self.data.normalization}
        v = self.fantasy(state)[0]
        self.particles_view.value = states_png(v, self.image_shape, self.n_particles, **scale)
        negative = self.negative_phase()
        if negative is not None:
            self.negative_view.value = states_png(negative, self.image_shape, self.n_particles, **scale)
        self.draws += 1

    @torch.no_grad()
    def energies(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(bin edges, fraction of data rows per bin, fraction of fantasy particles per bin)."""
        e_data = data_energy(self.model, self._energy_data).double().cpu().numpy()
        e_fantasy = state_energy(self.model, self._chains).double().cpu().numpy()
        return histograms(e_data, e_fantasy, self.bins)

    def _draw_plots(self, state: TrainState | None) -> None:
        update_energy(self.energy, *self.energies())
        if self.image_shape is None:
            update_filter_lines(self.filters_view, self.model.weights[0].detach().cpu().double().numpy())
        history = self.trainer.history
        if history:
            self.curves.update([{k: (range(1, len(v) + 1), list(v)) for k, v in history.items()}])

    def _status(self, state: TrainState | None, final: bool = False) -> None:
        """Epoch, batch, samples/s (the last epoch's training throughput, else measured between
        drawings) and time left = remaining batches × (elapsed time / batches done in this fit)."""
        t = self.trainer
        if state is None:
            self.status.value = f"ready · epoch {t.epoch} of {self.epochs.value}"
            return
        per_epoch = max(state.batches, 1)
        done = state.step - self._begin_step
        left_steps = max(state.epochs * per_epoch - (state.epoch * per_epoch + (0 if final else state.batch + 1)), 0)
        left = left_steps * state.elapsed / done if done > 0 else float("nan")
        total = state.epochs * per_epoch
        self.progress.value = (total - left_steps) / total if total else 0.0
        rate = state.metrics.get("samples_per_second", self._rate)
        if self.error is not None:
            phase = f"<span style='color:#c00'>failed: {type(self.error).__name__}: {self.error}</span>"
        elif final:
            phase = "stopped" if t.epoch < state.epochs else "finished"
        else:
            phase = "paused" if t.paused else "training"
        best = labels.headline(t.history)
        self.status.value = (
            f"<b>{phase}</b> · epoch {t.epoch + (0 if final else 1)} of {state.epochs} · "
            f"batch {state.batch + 1} of {per_epoch} · {rate:,.0f} samples/s · "
            f"time left {_format_seconds(left)}"
            + ("" if best is None else f" · {html.escape(best[0])} <b>{html.escape(best[1])}</b>")
        )
