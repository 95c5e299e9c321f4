"""Out-of-core datasets: the two-level shuffle, bounded chunk reads, Trainer equivalence, conversion, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ebmlab import BernoulliLayer, BoltzmannMachine
from ebmlab.cli import main
from ebmlab.data import Dataset, ZarrDataset, batches, load, open_zarr, write_zarr
from ebmlab.train import CD, Trainer


def numbered(rows: int, units: int = 3) -> np.ndarray:
    """Rows whose first column is the row number (so a batch tells which rows it holds)."""
    x = np.random.default_rng(0).random((rows, units)).astype(np.float32)
    x[:, 0] = np.arange(rows)
    return x


@pytest.fixture
def store(tmp_path):
    x = numbered(103)
    return open_zarr(write_zarr(tmp_path / "s.zarr", x, np.arange(103) % 10, chunk_rows=10)), x


def ids(batch: torch.Tensor) -> list[int]:
    return batch[:, 0].long().tolist()


@pytest.mark.parametrize(
    "batch_size, buffer, drop_last", [(7, 4, False), (10, 1, False), (16, 3, True), (200, 2, False)]
)
def test_every_row_exactly_once_per_epoch(store, batch_size, buffer, drop_last):
    ds, x = store
    out = list(ds.with_buffer(buffer).batches(batch_size, seed=3, drop_last=drop_last))
    seen = [i for b in out for i in ids(b)]
    assert all(b.shape[0] == batch_size for b in out[:-1])
    if drop_last:
        assert len(seen) == 103 - 103 % batch_size and len(set(seen)) == len(seen)
    else:
        assert sorted(seen) == list(range(103))
    rows = torch.cat(out)
    assert torch.equal(rows, torch.from_numpy(x)[torch.tensor(seen)])


def test_same_seed_same_order_different_seeds_differ(store):
    ds, _ = store
    order = [ids(b) for b in ds.batches(8, seed=1)]
    assert order == [ids(b) for b in ds.batches(8, seed=1)]
    assert order != [ids(b) for b in ds.batches(8, seed=2)]
    assert [i for b in ds.batches(8, shuffle=False) for i in ids(b)] == list(range(103))


def test_shuffle_is_two_level_chunks_then_rows_within_a_buffer(tmp_path):
    ds = open_zarr(write_zarr(tmp_path / "even.zarr", numbered(100), chunk_rows=10), buffer_chunks=2)
    seen = [i for b in ds.batches(5, seed=0) for i in ids(b)]
    for start in range(0, 100, 20):  # each buffer: rows of exactly two chunks, shuffled across both
        buffer = seen[start : start + 20]
        chunks = {i // 10 for i in buffer}
        assert len(chunks) == 2 and sorted(buffer) == sorted(i for c in chunks for i in range(10 * c, 10 * c + 10))
        assert buffer != sorted(buffer)
    assert [i // 10 for i in seen[::10]] != sorted(i // 10 for i in seen[::10])  # chunk order is shuffled


def test_a_batch_never_needs_more_than_the_buffers_chunks(store, monkeypatch):
    ds, _ = store
    reads: list[int] = []
    original = ZarrDataset.read_chunk

    def counting(self, chunk):
        reads.append(chunk)
        return original(self, chunk)

    monkeypatch.setattr(ZarrDataset, "read_chunk", counting)
    buffer, batch_size = 3, 7
    yielded = 0
    for batch in ds.with_buffer(buffer).batches(batch_size, seed=5):
        held = sum(ds.chunk_size(c) for c in reads) - yielded  # rows read but not yet handed out
        assert held <= buffer * ds.chunk_rows + batch_size - 1
        yielded += batch.shape[0]
    assert sorted(reads) == list(range(11))  # each chunk read exactly once per epoch


def test_one_row_chunks_reproduce_the_in_memory_shuffle_exactly(tmp_path):
    x = numbered(37)
    ds = open_zarr(write_zarr(tmp_path / "rows.zarr", x, chunk_rows=1), buffer_chunks=1)
    for seed in (0, 9):
        expected = list(batches(torch.from_numpy(x), 5, seed=seed))
        got = list(ds.batches(5, seed=seed))
        assert len(got) == len(expected) and all(torch.equal(a, b) for a, b in zip(got, expected))


def fit(data, validation=None, epochs=2):
    model = BoltzmannMachine([BernoulliLayer(6), BernoulliLayer(4)], seed=0)
    trainer = Trainer(model, CD(k=1), lr=0.05, batch_size=8, seed=4, progress=False)
    history = trainer.fit(data, epochs, validation=validation)
    return model, history


def test_trainer_fit_on_a_store_equals_fit_on_the_in_memory_dataset(tmp_path):
    x = (np.random.default_rng(1).random((40, 6)) < 0.4).astype(np.float32)
    ds = open_zarr(write_zarr(tmp_path / "b.zarr", x, chunk_rows=1), buffer_chunks=1)
    model_a, hist_a = fit(ds)
    model_b, hist_b = fit(Dataset(torch.from_numpy(x)))
    for p, q in zip(model_a.parameters(), model_b.parameters()):
        assert torch.equal(p, q)
    timing = ("wall_seconds", "samples_per_second")
    assert {k: v for k, v in hist_a.items() if k not in timing} == {k: v for k, v in hist_b.items() if k not in timing}


def test_trainer_trains_from_large_chunks_with_a_validation_store(tmp_path):
    x = (np.random.default_rng(2).random((300, 6)) < 0.3).astype(np.float32)
    ds = open_zarr(write_zarr(tmp_path / "c.zarr", x, chunk_rows=32))
    valid, train = ds.split(0.2, seed=0)
    assert set(valid.chunks).isdisjoint(train.chunks) and len(valid) + len(train) == 300
    before = [p.detach().clone() for p in BoltzmannMachine([BernoulliLayer(6), BernoulliLayer(4)], seed=0).parameters()]
    model, history = fit(train, validation=valid, epochs=3)
    assert len(history["loss"]) == 3 and "val_reconstruction_error" in history
    assert all(np.isfinite(history["reconstruction_error"]))
    assert any(not torch.equal(p, q) for p, q in zip(before, model.parameters()))


def test_transforms_are_applied_per_chunk_like_the_in_memory_ones(store):
    ds, x = store
    scaled = ds.with_transform(lambda rows, _chunk: rows / 103)
    mem = Dataset(torch.from_numpy(x) / 103)
    assert torch.equal(scaled.binarize(0.5).load().data, mem.binarize(0.5).data)
    stoch = scaled.binarize_stochastic(seed=3)
    by_row = {int(r[0] * 103 + 0.5): r for r in torch.cat(list(scaled.batches(9, seed=1)))}
    rows = torch.cat(list(stoch.batches(9, seed=1)))
    assert set(rows.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(torch.cat(list(stoch.batches(9, seed=1))), rows)
    assert torch.equal(stoch.load().data, stoch.load().data)  # a row's sample does not depend on the epoch
    assert len(by_row) == 103
    mean, std = x.mean(0), x.std(0)
    assert torch.allclose(ds.normalize(mean, std).load().data, torch.from_numpy((x - mean) / std), atol=1e-5)


def test_sample_is_bounded_and_keeps_labels_aligned(store):
    ds, x = store
    sample = ds.sample(25, seed=0)
    assert len(sample) == 25 and sample.labels is not None
    assert torch.equal(sample.labels, sample.data[:, 0].long() % 10)
    assert torch.equal(ds.sample(500).data, torch.from_numpy(x))  # small data: every row, in order


def test_convert_round_trips_named_npy_and_netcdf_exactly(tmp_path, capsys):
    assert main(["data", "convert", "digits", str(tmp_path / "d.zarr"), "--chunk-rows", "100"]) == 0
    assert "1500 rows x 64 units in chunks of 100 rows" in capsys.readouterr().out
    digits, stored = load("digits"), open_zarr(tmp_path / "d.zarr").load()
    assert torch.equal(stored.data, digits.data) and torch.equal(stored.labels, digits.labels)
    assert stored.image_shape == (8, 8)
    x = numbered(20, 4)
    np.save(tmp_path / "a.npy", x.reshape(20, 2, 2))
    assert main(["data", "convert", str(tmp_path / "a.npy"), str(tmp_path / "a.zarr")]) == 0
    a = open_zarr(tmp_path / "a.zarr").load()
    assert torch.equal(a.data, torch.from_numpy(x)) and a.image_shape == (2, 2)
    xr = pytest.importorskip("xarray")
    pytest.importorskip("h5netcdf")
    xr.Dataset({"pixels": (("row", "unit"), x), "labels": (("row",), np.arange(20))}).to_netcdf(
        tmp_path / "a.nc", engine="h5netcdf"
    )
    lazy = open_zarr(tmp_path / "a.nc")
    assert torch.equal(lazy.load().data, torch.from_numpy(x))
    assert main(["data", "convert", str(tmp_path / "a.nc"), str(tmp_path / "n.zarr"), "--chunk-rows", "6"]) == 0
    n = open_zarr(tmp_path / "n.zarr")
    assert n.chunk_rows == 6 and torch.equal(n.load().data, torch.from_numpy(x))
    assert torch.equal(n.load().labels, torch.arange(20))


def test_convert_idx_matches_load(tmp_path, shared_data):
    src = shared_data / "fashion-mnist" / "t10k-images-idx3-ubyte.gz"
    assert main(["data", "convert", str(src), str(tmp_path / "f.zarr")]) == 0
    stored = open_zarr(tmp_path / "f.zarr").load()
    ref = load("fashion-mnist", split="t10k", data_dir=shared_data / "fashion-mnist")
    assert torch.equal(stored.data, ref.data) and torch.equal(stored.labels, ref.labels)
    assert stored.image_shape == (28, 28)


def test_a_failed_conversion_leaves_nothing_behind(tmp_path):
    class Broken:
        shape, dtype = (30, 2), np.dtype(np.float32)

        def __getitem__(self, rows):
            if rows.start >= 10:
                raise OSError("disk went away")
            return np.zeros((10, 2), np.float32)

    with pytest.raises(OSError, match="disk went away"):
        write_zarr(tmp_path / "x.zarr", Broken(), chunk_rows=10)
    assert list(tmp_path.iterdir()) == []


def test_train_cli_from_a_store(tmp_path, capsys):
    x = (np.random.default_rng(3).random((200, 6)) < 0.5).astype(np.float32)
    write_zarr(tmp_path / "t.zarr", x, chunk_rows=20)
    args = ["train", "--data", str(tmp_path / "t.zarr"), "--layers", "bernoulli:6,bernoulli:4", "--epochs", "2"]
    assert main([*args, "--out", str(tmp_path / "run"), "--no-progress", "--no-history"]) == 0
    assert "epoch 2:" in capsys.readouterr().out
    assert (tmp_path / "run" / "model.safetensors").exists()


def test_bad_paths_and_variables_name_the_argument(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match=r"path .*missing\.zarr"):
        open_zarr(tmp_path / "missing.zarr")
    with pytest.raises(TypeError, match="path must be"):
        open_zarr(3)
    write_zarr(tmp_path / "s.zarr", numbered(10), np.arange(10), chunk_rows=4)
    with pytest.raises(ValueError, match="variable 'pixels' not found"):
        open_zarr(tmp_path / "s.zarr", variable="pixels")
    with pytest.raises(ValueError, match="variable 'labels' must be 2-D"):
        open_zarr(tmp_path / "s.zarr", variable="labels")
    with pytest.raises(ValueError, match="buffer_chunks must be >= 1"):
        open_zarr(tmp_path / "s.zarr", buffer_chunks=0)
    (tmp_path / "plain").mkdir()
    with pytest.raises(ValueError, match=r"path .* is not a zarr store"):
        open_zarr(tmp_path / "plain")
    with pytest.raises(FileExistsError, match="already exists"):
        write_zarr(tmp_path / "s.zarr", numbered(3))
    with pytest.raises(ValueError, match="leaves one part empty"):
        open_zarr(tmp_path / "s.zarr").split(0.01)
    assert main(["data", "convert", "nosuch", str(tmp_path / "o.zarr")]) == 2
    assert "SRC 'nosuch'" in capsys.readouterr().err
    assert main(["data", "convert", "digits", str(tmp_path / "o.npy")]) == 2
    assert "DEST must end in .zarr" in capsys.readouterr().err


def test_a_float64_model_trains_from_a_float32_store(tmp_path):
    x = (np.random.default_rng(4).random((60, 6)) < 0.5).astype(np.float32)
    ds = open_zarr(write_zarr(tmp_path / "f.zarr", x, chunk_rows=16))
    model = BoltzmannMachine([BernoulliLayer(6), BernoulliLayer(4)], seed=0).to(dtype=torch.float64)
    history = Trainer(model, CD(k=1), lr=0.05, batch_size=8, seed=0, progress=False).fit(ds, 1)
    assert len(history["loss"]) == 1 and all(p.dtype == torch.float64 for p in model.parameters())
    assert ds.to(dtype=torch.float64).read_chunk(0).dtype == torch.float64
    with pytest.raises(TypeError, match="dtype must be a floating dtype"):
        ds.to(dtype=torch.int64)


def test_samples_per_second_counts_the_rows_streamed_from_a_store(tmp_path):
    """The metrics see a 10-row subsample of the 40-row store; the throughput counts the 40 rows trained."""
    x = (np.random.default_rng(3).random((40, 6)) < 0.4).astype(np.float32)
    ds = open_zarr(write_zarr(tmp_path / "t.zarr", x, chunk_rows=8))
    model = BoltzmannMachine([BernoulliLayer(6), BernoulliLayer(4)], seed=0)
    history = Trainer(model, CD(k=1), batch_size=8, validation_rows=10, progress=False).fit(ds, 2)
    for rate, wall in zip(history["samples_per_second"], history["wall_seconds"]):
        assert rate == pytest.approx(40 / wall)
