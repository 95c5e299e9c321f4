"""RunViewer and RunComparison state tests (no browser) on small stored runs."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from ebmlab import BernoulliLayer, BoltzmannMachine
from ebmlab.data import Dataset
from ebmlab.history import Recorder, open_run
from ebmlab.train import CD, PCD, Callback, Trainer
from ebmlab.widgets import RunComparison, RunViewer
from ebmlab.widgets.images import filters_image, grid_png, states_png

DATA = Dataset((torch.rand(60, 16, generator=torch.Generator().manual_seed(0)) < 0.3).float(), name="toy")


def _train(path, method, epochs: int = 3, hidden: int = 6, callbacks=(), trainer=None) -> Trainer:
    if trainer is None:
        model = BoltzmannMachine([BernoulliLayer(16), BernoulliLayer(hidden)], seed=1)
        trainer = Trainer(
            model,
            method,
            lr=1e-2,
            batch_size=20,
            progress=False,
            metrics={"mean_weight": lambda m, x: float(m.weights[0].mean())},
            callbacks=[Recorder(path, snapshot_every=1, particles=8, bins=10), *callbacks],
        )
    trainer.fit(DATA, epochs)
    return trainer


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    pcd = _train(base / "pcd.zarr", PCD(k=1, chains=8))
    cd = _train(base / "cd.zarr", CD(k=1), epochs=2, hidden=4)
    return {"pcd": (base / "pcd.zarr", pcd), "cd": (base / "cd.zarr", cd)}


def test_viewer_shows_each_snapshot(runs) -> None:
    path, trainer = runs["pcd"]
    viewer = RunViewer(path)
    stored = open_run(path)
    assert viewer.image_shape == (4, 4)  # 16 visible units guessed square
    assert viewer.slider.max == 3 and viewer.slider.value == 3  # snapshots at epochs 0, 1, 2, 3
    viewer.slider.value = 1
    w = stored["weights_0"].isel(snapshot=1).values
    assert viewer.filters_view.value == grid_png(filters_image(w, (4, 4)))
    assert "epoch <b>1</b>" in viewer.epoch_label.value
    for fig in viewer.curves.each():
        assert {s.x0 for s in fig.layout.shapes} == {1}
        assert len(fig.layout.shapes) == len({t.xaxis for t in fig.data})  # one marker per panel
    np.testing.assert_allclose(viewer.energy.data[0].y, stored["energy_hist_data"].isel(snapshot=1).values)
    assert list(viewer.curves.trace("mean_weight").y) == trainer.history["mean_weight"]
    assert "finished" in viewer.info.value
    # fantasy particles and PCD's persistent chains, each under its own caption
    assert viewer.particle_views["fantasy"].value == states_png(stored["fantasy"].isel(snapshot=1).values, (4, 4))
    assert viewer.particle_views["negative_phase"].value == states_png(
        stored["negative_phase"].isel(snapshot=1).values, (4, 4)
    )
    captions = [box.children[0].value for box in viewer.pictures.children[1:3]]
    assert "<b>fantasy particles</b>" in captions[0] and "recorder's own chains" in captions[0]
    assert "<b>persistent chains</b>" in captions[1]


def test_viewer_refresh_picks_up_new_epochs(tmp_path) -> None:
    path = tmp_path / "grow.zarr"
    trainer = _train(path, PCD(k=1, chains=8), epochs=1)
    viewer = RunViewer(path)
    assert viewer.slider.max == 1
    assert not viewer.refresh()
    _train(path, None, epochs=3, trainer=trainer)  # the same Recorder continues the store
    assert viewer.refresh()
    assert viewer.slider.max == 3 and viewer.slider.value == 3
    assert len(viewer.curves.trace("loss").y) == 3


def test_viewer_follows_a_run_being_written(tmp_path) -> None:
    path = tmp_path / "live.zarr"
    first_epoch = threading.Event()

    class Signal(Callback):
        def on_epoch_end(self, state) -> None:
            first_epoch.set()
            time.sleep(0.1)

    thread = threading.Thread(target=_train, args=(path, PCD(k=1, chains=8), 5), kwargs={"callbacks": [Signal()]})
    thread.start()
    assert first_epoch.wait(20)
    viewer = RunViewer(path, follow=True, poll=0.05)
    assert viewer.following and viewer.follow_box.value
    thread.join(30)
    deadline = time.monotonic() + 10
    while viewer.following and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not viewer.following and not viewer.follow_box.value  # stops once the run is finished
    assert viewer.status == "finished"
    assert viewer.slider.max == 5 and viewer.slider.value == 5


def test_viewer_bad_arguments(tmp_path, runs) -> None:
    with pytest.raises(ValueError, match="not a run-history store"):
        RunViewer(tmp_path)
    with pytest.raises(ValueError, match="image_shape"):
        RunViewer(runs["pcd"][0], image_shape=(3, 5))
    with pytest.raises(ValueError, match="poll"):
        RunViewer(runs["pcd"][0], poll=0)


def test_comparison_overlays_runs_and_tabulates_them(runs) -> None:
    (p_pcd, t_pcd), (p_cd, t_cd) = runs["pcd"], runs["cd"]
    comp = RunComparison([p_pcd, p_cd])
    assert comp.labels == ["pcd", "cd"]
    assert comp.epochs() == [0, 1, 2, 3] and comp.epoch.value == 3
    assert list(comp.curves.trace("mean_weight", 0).y) == t_pcd.history["mean_weight"]
    assert list(comp.curves.trace("mean_weight", 1).y) == t_cd.history["mean_weight"]
    # curves, then the table, then the pictures
    order = [comp.curves.quality, comp.curves.bookkeeping, comp.table, comp.pictures]
    assert [comp.view.children.index(w) for w in order] == sorted(comp.view.children.index(w) for w in order)
    # CD's negative phase is labelled "reconstructions", PCD's "persistent chains"
    assert "<b>persistent chains</b>" in comp._panels[0][0].children[1].children[2].children[0].value
    assert "<b>reconstructions</b>" in comp._panels[1][0].children[1].children[2].children[0].value
    assert "reconstructions</b>: CD's negative phase" in comp.legend.value
    # at epoch 3 the CD run (2 epochs) shows its last snapshot, taken at epoch 2
    assert "epoch 3" in comp._panels[0][1].value and "epoch 2" in comp._panels[1][1].value
    comp.epoch.value = 1
    assert "epoch 1" in comp._panels[1][1].value
    w = open_run(p_cd)["weights_0"].isel(snapshot=1).values
    assert comp._panels[1][2].value == grid_png(filters_image(w, (4, 4), 36))
    table = comp.table.value
    assert "<td>pcd</td><td>cd</td>" in table and "<td>16x6</td><td>16x4</td>" in table
    assert f"{t_cd.history['mean_weight'][-1]:.4g}" in table
    # quality metrics above the parameters, bookkeeping below them
    assert table.index("final mean_weight") < table.index("<th style='text-align:left'>method") < table.index(
        "final loss"
    )


def test_comparison_bad_arguments(runs) -> None:
    with pytest.raises(TypeError, match="paths"):
        RunComparison(runs["pcd"][0])
    with pytest.raises(ValueError, match="labels"):
        RunComparison([runs["pcd"][0]], labels=["a", "b"])


def test_viewer_uses_the_recorded_image_shape(tmp_path) -> None:
    wide = Dataset(DATA.data, image_shape=(2, 8), name="wide")
    model = BoltzmannMachine([BernoulliLayer(16), BernoulliLayer(4)], seed=1)
    rec = Recorder(tmp_path / "wide.zarr", snapshot_every=1, particles=4, bins=5)
    Trainer(model, CD(k=1), lr=1e-2, batch_size=20, progress=False, metrics={}, callbacks=[rec]).fit(wide, 1)
    assert RunViewer(tmp_path / "wide.zarr").image_shape == (2, 8)  # not the square guess (4, 4)
