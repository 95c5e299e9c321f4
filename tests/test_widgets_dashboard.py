"""TrainingDashboard state tests without a browser: pictures, throttling, thread controls, data kinds."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from ebmlab import BernoulliLayer, BoltzmannMachine
from ebmlab.data import Dataset
from ebmlab.history import open_run
from ebmlab.train import CD, PCD, Callback, Trainer
from ebmlab.widgets import TrainingDashboard
from ebmlab.widgets.images import filters_image, grid_png, states_png

from ._exact import visible_total_variation


def _data(rows: int = 120, image: bool = True) -> Dataset:
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(rows, 16, generator=g) < 0.3).float()
    return Dataset(x, image_shape=(4, 4) if image else None, name="toy")


def _trainer(method=None, **kw) -> Trainer:
    model = BoltzmannMachine([BernoulliLayer(16), BernoulliLayer(6)], seed=1)
    kw.setdefault("metrics", {})
    return Trainer(model, method or PCD(k=1, chains=20), lr=1e-2, batch_size=20, progress=False, **kw)


class Slow(Callback):
    """Makes each batch take ``seconds`` so that thread controls can be watched."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_batch_end(self, state) -> None:
        time.sleep(self.seconds)


def test_pictures_show_the_current_weights_and_particles() -> None:
    trainer = _trainer()
    dash = TrainingDashboard(trainer, _data(), epochs=2, interval=0.0, plot_interval=0.0)
    assert dash.filters_view.value == grid_png(filters_image(trainer.model.weights[0].detach(), (4, 4)))
    dash.start()
    assert dash.wait(30) and dash.error is None
    assert trainer.epoch == 2
    assert dash.filters_view.value == grid_png(filters_image(trainer.model.weights[0].detach(), (4, 4)))
    # the method's negative phase (PCD: its persistent chains) is drawn under its own name
    assert dash.negative_view.value == states_png(trainer.method.particles[0][:64], (4, 4), 64)
    assert "persistent chains" in dash.view.children[2].children[2].children[0].value
    # fantasy particles are the dashboard's own chains, not the method's
    fantasy = dash.fantasy()[0]
    assert fantasy.shape == (64, 16) and dash.particles_view.value == states_png(fantasy, (4, 4), 64)
    _, h_data, h_fantasy = dash.energies()
    assert h_data.sum() == pytest.approx(1.0) and h_fantasy.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(dash.energy.data[0].y, h_data)
    loss = next(t for t in dash.curves.figures["bookkeeping"].data if t.meta[1] == "loss")
    assert list(loss.y) == trainer.history["loss"]
    assert "finished" in dash.status.value and "epoch 2 of 2" in dash.status.value


def test_drawing_is_throttled() -> None:
    trainer = _trainer()
    eager = TrainingDashboard(trainer, _data(), epochs=2, interval=0.0, plot_interval=0.0)
    eager.start()
    eager.wait(30)
    batches = 2 * 6
    assert eager.draws == 1 + batches + 1  # construction, every batch, the end
    lazy_trainer = _trainer()
    lazy = TrainingDashboard(lazy_trainer, _data(), epochs=2, interval=3600.0, plot_interval=3600.0)
    lazy.start()
    lazy.wait(30)
    assert lazy.draws == 1 + 1 + 1  # construction, the first batch, the end


def test_pause_resume_stop_act_on_the_training_thread() -> None:
    trainer = _trainer(callbacks=[Slow(0.01)])
    dash = TrainingDashboard(trainer, _data(), epochs=10_000, interval=0.05)
    assert dash.buttons["stop"].disabled and not dash.buttons["start"].disabled
    dash.buttons["start"].click()
    assert dash.running and dash.buttons["start"].disabled
    time.sleep(0.2)
    dash.buttons["pause"].click()
    assert trainer.paused and not dash.buttons["resume"].disabled
    time.sleep(0.1)  # let the batch in flight finish
    step = trainer.step
    time.sleep(0.3)
    assert trainer.step == step and dash.running  # held between batches
    dash.buttons["resume"].click()
    time.sleep(0.2)
    assert trainer.step > step
    dash.buttons["stop"].click()
    assert dash.wait(2.0), "the training thread should end within 2 s of Stop"
    assert dash.stop_latency is not None and dash.stop_latency < 2.0
    assert trainer.epoch < 10_000 and "stopped" in dash.status.value
    assert not dash.buttons["start"].disabled and dash.buttons["stop"].disabled
    dash.close()
    assert dash.listener not in trainer.callbacks


def test_learning_rate_slider_sets_the_trainer_rate() -> None:
    trainer = _trainer()
    dash = TrainingDashboard(trainer, _data(), epochs=1)
    assert dash.lr.value == pytest.approx(1e-2)
    dash.lr.value = 1e-4
    assert trainer.lr == pytest.approx(1e-4)
    assert all(g["lr"] == pytest.approx(1e-4) for g in trainer.optimizer.param_groups)


def test_non_image_data_draws_filters_as_lines_and_particles_as_a_raster() -> None:
    trainer = _trainer(method=CD(k=1))
    dash = TrainingDashboard(trainer, _data(image=False).data, epochs=1, interval=0.0, plot_interval=0.0)
    dash.start()
    assert dash.wait(30) and dash.error is None
    w = trainer.model.weights[0].detach().double().numpy()
    assert len(dash.filters_view.data) == 6
    for j, trace in enumerate(dash.filters_view.data):
        np.testing.assert_allclose(trace.y, w[:, j])
    from io import BytesIO

    from PIL import Image

    raster = np.asarray(Image.open(BytesIO(dash.negative_view.value)))
    particles = trainer.method.particles[0].numpy()  # CD's particles: reconstructions of the last batch
    scale = raster.shape[1] // 16
    assert raster.shape == (particles.shape[0] * scale, 16 * scale)
    np.testing.assert_array_equal(raster[::scale, ::scale], particles * 255)  # one row per particle


def test_records_to_a_history_store(tmp_path) -> None:
    trainer = _trainer()
    dash = TrainingDashboard(trainer, _data(), epochs=2, history_path=tmp_path / "run.zarr")
    assert dash.recorder in trainer.callbacks
    dash.start()
    assert dash.wait(30) and dash.error is None
    run = open_run(tmp_path / "run.zarr")
    assert list(run.epoch.values) == [1, 2]
    np.testing.assert_allclose(run["metric_loss"].values, trainer.history["loss"])


def test_errors_in_training_end_the_thread_and_show() -> None:
    class Boom(Callback):
        def on_batch_end(self, state) -> None:
            raise RuntimeError("boom")

    trainer = _trainer(callbacks=[Boom()])
    dash = TrainingDashboard(trainer, _data(), epochs=1)
    dash.start()
    assert dash.wait(10)
    assert isinstance(dash.error, RuntimeError) and "boom" in dash.status.value


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="trainer"):
        TrainingDashboard("trainer", _data())
    with pytest.raises(ValueError, match="epochs"):
        TrainingDashboard(_trainer(), _data(), epochs=0)
    with pytest.raises(ValueError, match="energy_rows"):
        TrainingDashboard(_trainer(), _data(), energy_rows=0)
    with pytest.raises(ValueError, match="interval"):
        TrainingDashboard(_trainer(), _data(), interval=-1)


def test_cd_particles_are_labelled_reconstructions_and_fantasy_chains_sample_the_model() -> None:
    """The fantasy grid is the dashboard's own chains: exact p(v) by total variation on 4 visible units."""
    model = BoltzmannMachine([BernoulliLayer(4), BernoulliLayer(3)], seed=3).double()
    with torch.no_grad():
        model.weights[0].copy_(torch.randn(4, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64))
    trainer = Trainer(model, CD(k=1), lr=1e-2, batch_size=20, progress=False, metrics={})
    x = (torch.rand(40, 4, generator=torch.Generator().manual_seed(5)) < 0.5).double()
    dash = TrainingDashboard(trainer, x, particles=4000, sweeps=30, interval=3600.0, plot_interval=3600.0)
    titles = [box.children[0].value for box in dash.view.children[2].children[:3]]
    assert "<b>fantasy particles</b>" in titles[1] and "independent of the training data" in titles[1]
    assert "<b>reconstructions</b>" in titles[2] and "start" in titles[2]
    v = dash.fantasy(object())[0]  # one drawing during training: 30 sweeps under the current model
    assert visible_total_variation(model, v) < 0.05

def test_dashboard_training_prints_no_progress_bar(capsys) -> None:
    trainer = _trainer()
    trainer.progress = True
    dash = TrainingDashboard(trainer, _data(), epochs=1)
    dash.start()
    assert dash.wait(30) and dash.error is None
    err = capsys.readouterr().err
    assert "training" not in err and "batch/s" not in err and "it/s" not in err
    assert trainer.progress  # restored for fits outside the dashboard


def test_curves_lead_with_quality_and_every_axis_has_a_title() -> None:
    trainer = _trainer(metrics=["reconstruction_error", "pseudo_likelihood"])
    dash = TrainingDashboard(trainer, _data(), epochs=2, interval=0.0, plot_interval=0.0)
    dash.start()
    assert dash.wait(30) and dash.error is None
    quality, bookkeeping = dash.curves.figures["quality"], dash.curves.figures["bookkeeping"]
    assert dash.view.children.index(dash.curves.quality) < dash.view.children.index(dash.curves.bookkeeping)
    assert [a.text for a in quality.layout.annotations] == ["pseudo-likelihood", "reconstruction error"]
    assert {t.meta[1] for t in bookkeeping.data} == {"loss", "lr", "wall_seconds", "samples_per_second"}
    for fig in (quality, bookkeeping, dash.energy):
        for axis in [k for k in fig.layout.to_plotly_json() if k.startswith(("xaxis", "yaxis"))]:
            assert fig.layout[axis].title.text, axis
    lr_trace = next(t for t in bookkeeping.data if t.meta[1] == "lr")
    assert bookkeeping.layout["yaxis" + lr_trace.yaxis[1:]].type == "log"
    loss_trace = next(t for t in bookkeeping.data if t.meta[1] == "loss")
    title = next(a.text for a in bookkeeping.layout.annotations if a.text.startswith("surrogate loss"))
    assert title == "surrogate loss, not a likelihood" and loss_trace.xaxis != lr_trace.xaxis
    assert quality.layout.height > bookkeeping.layout.height / 2  # bookkeeping panels are smaller
    assert "pseudo likelihood <b>" in dash.status.value  # the status line leads with a quality metric
