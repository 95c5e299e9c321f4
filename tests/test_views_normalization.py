"""Views show a model trained on normalized data in the data's own pixels (issue 14.3)."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from ebmlab import BernoulliLayer, BoltzmannMachine, GaussianLayer
from ebmlab.data import Dataset
from ebmlab.experiments.report import tiles_png
from ebmlab.history import Recorder, open_run
from ebmlab.train import PCD, Trainer
from ebmlab.widgets import TrainingDashboard
from ebmlab.widgets.images import in_pixels, states_png
from ebmlab.widgets.viewer import run_normalization, snapshot_pictures

MNIST = {"mean": 0.1307, "std": 0.3081, "per_feature": False}


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)), dtype=np.float64) / 255


def test_in_pixels_inverts_the_normalization_and_clips() -> None:
    raw = np.linspace(0, 1, 32, dtype=np.float32).reshape(2, 16)
    normalized = (raw - 0.1307) / 0.3081
    np.testing.assert_allclose(in_pixels(normalized, True, MNIST), raw, atol=1e-6)
    per_feature = {"mean": list(np.linspace(-1, 1, 16)), "std": list(np.linspace(0.5, 2, 16)), "per_feature": True}
    z = (raw - np.array(per_feature["mean"])) / np.array(per_feature["std"])
    np.testing.assert_allclose(in_pixels(z, True, per_feature), raw, atol=1e-6)
    far = np.array([[-50.0, 50.0]])  # samples beyond the data's range are clipped to black and white
    np.testing.assert_array_equal(in_pixels(far, True, MNIST), [[0.0, 1.0]])
    # without a record: per-row min–max for continuous units, as-is otherwise
    np.testing.assert_allclose(in_pixels(np.array([[2.0, 4.0, 3.0]]), True, None), [[0.0, 1.0, 0.5]])
    np.testing.assert_array_equal(in_pixels(np.array([[0.2, 0.7]]), False, None), [[0.2, 0.7]])


def test_states_png_differs_from_per_row_scaling_only_through_the_record() -> None:
    g = torch.Generator().manual_seed(0)
    raw = torch.rand(4, 16, generator=g) * 0.5  # dim images: per-row scaling would stretch them to white
    z = (raw - 0.1307) / 0.3081
    shown = _pixels(states_png(z, (4, 4), normalization=MNIST, normalize=True))
    expected = _pixels(states_png(raw, (4, 4)))
    np.testing.assert_array_equal(shown, expected)
    assert not np.array_equal(_pixels(states_png(z, (4, 4), normalize=True)), expected)


def _gaussian_run(path) -> tuple[Trainer, Dataset]:
    g = torch.Generator().manual_seed(1)
    data = Dataset((torch.rand(40, 16, generator=g) < 0.3).float(), name="toy", image_shape=(4, 4)).normalize()
    model = BoltzmannMachine([GaussianLayer(16, learn_var=False), BernoulliLayer(4)], seed=0)
    trainer = Trainer(model, PCD(k=1, chains=8), lr=1e-2, batch_size=20, progress=False, metrics={},
                      callbacks=[Recorder(path, snapshot_every=1, particles=8, bins=10)])  # fmt: skip
    trainer.fit(data, 1)
    return trainer, data


def test_viewer_and_report_denormalize_stored_particles(tmp_path) -> None:
    _, data = _gaussian_run(tmp_path / "run.zarr")
    run = open_run(tmp_path / "run.zarr")
    record = run_normalization(run)
    assert record is not None
    np.testing.assert_allclose([record["mean"], record["std"]], [data.normalization["mean"], data.normalization["std"]])
    _, pictures = snapshot_pictures(run, 1, (4, 4), filters=4, particles=8)
    rows = run["fantasy"].isel(snapshot=1).values
    assert pictures["fantasy"] == states_png(rows, (4, 4), 8, normalize=True, normalization=record)
    uri = tiles_png(rows, (4, 4), False, record)
    plain = tiles_png(np.clip(data.denormalize(torch.as_tensor(rows)).numpy(), 0, 1), (4, 4), False)
    assert uri == plain and uri != tiles_png(rows, (4, 4), False)


def test_dashboard_draws_particles_in_data_pixels(tmp_path) -> None:
    trainer, data = _gaussian_run(tmp_path / "run.zarr")
    dash = TrainingDashboard(trainer, data, particles=8)
    dash._draw_pictures(None)
    v = dash.fantasy()[0]
    assert dash.particles_view.value == states_png(v, (4, 4), 8, normalize=True, normalization=data.normalization)
