"""Tests for ebmlab.data: datasets, IDX files, download, bars-and-stripes, transforms, batching."""

from __future__ import annotations

import gzip
import math
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from ebmlab.data import (
    Dataset,
    DatasetNotFoundError,
    as_dataset,
    bars_and_stripes,
    bars_and_stripes_log_prob,
    bars_and_stripes_patterns,
    batches,
    download,
    load,
    read_idx,
    transforms,
)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MNIST_T10K = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def shared(name: str) -> Path:
    """Folder of a dataset in the shared data folder beside the repo; skip when absent."""
    folder = SHARED_DATA / name
    if not folder.is_dir():
        pytest.skip(f"shared data folder {folder} is absent (real {name} files not available)")
    return folder


def write_idx(path: Path, array: np.ndarray, code: int = 0x08) -> None:
    """Write ``array`` as a gzipped IDX file (big-endian, type ``code``)."""
    dtype = {0x08: ">u1", 0x0B: ">i2", 0x0D: ">f4"}[code]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(dtype).tobytes()))


def isolate_search(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Point HOME/XDG_CACHE_HOME into ``tmp_path`` and unset EBMLAB_DATA; return the cache root."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("EBMLAB_DATA", raising=False)
    return tmp_path / "cache"


# --- digits -----------------------------------------------------------------------------------


def test_digits_splits_shapes_and_range():
    train, test, full = (load("digits", split=s) for s in ("train", "test", "all"))
    assert (len(train), len(test), len(full)) == (1500, 297, 1797)
    assert train.n_units == 64 and train.image_shape == (8, 8)
    assert train.data.dtype == torch.float32 and train.labels.dtype == torch.int64
    assert float(full.data.min()) == 0.0 and float(full.data.max()) == 1.0
    assert set(full.labels.tolist()) == set(range(10))
    assert torch.equal(torch.cat([train.data, test.data]), full.data)
    with pytest.raises(ValueError, match="split"):
        load("digits", split="valid")


# --- IDX format -------------------------------------------------------------------------------


def test_idx_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 3, 4), dtype=np.uint8)
    write_idx(tmp_path / "x.gz", images)
    np.testing.assert_array_equal(read_idx(tmp_path / "x.gz"), images)
    values = rng.normal(size=(5, 2)).astype(np.float32)
    write_idx(tmp_path / "f.gz", values, code=0x0D)
    out = read_idx(tmp_path / "f.gz")
    assert out.dtype == np.float32 and out.dtype.isnative
    np.testing.assert_array_equal(out, values)


def test_idx_rejects_truncated_and_bad_magic(tmp_path):
    write_idx(tmp_path / "x.gz", np.zeros((4, 2, 2), np.uint8))
    raw = gzip.decompress((tmp_path / "x.gz").read_bytes())
    (tmp_path / "short.gz").write_bytes(gzip.compress(raw[:-3]))
    with pytest.raises(ValueError, match=r"short\.gz.*truncated"):
        read_idx(tmp_path / "short.gz")
    (tmp_path / "cut.gz").write_bytes((tmp_path / "x.gz").read_bytes()[:-10])
    with pytest.raises(ValueError, match=r"cut\.gz.*gzip"):
        read_idx(tmp_path / "cut.gz")
    (tmp_path / "magic").write_bytes(b"\x01\x02" + raw[2:])
    with pytest.raises(ValueError, match="magic number"):
        read_idx(tmp_path / "magic")


def test_custom_prefix_in_data_dir(tmp_path, monkeypatch):
    isolate_search(monkeypatch, tmp_path)
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    images = np.arange(3 * 28 * 28, dtype=np.int64).reshape(3, 28, 28) % 256
    write_idx(folder / "tiny-images-idx3-ubyte.gz", images)
    write_idx(folder / "tiny-labels-idx1-ubyte.gz", np.array([3, 1, 4]))
    ds = load("mnist", split="tiny", data_dir=tmp_path / "data")
    assert ds.data.shape == (3, 784) and ds.image_shape == (28, 28)
    assert torch.equal(ds.labels, torch.tensor([3, 1, 4]))
    assert torch.allclose(ds.data * 255, torch.from_numpy(images.reshape(3, -1)).float())
    monkeypatch.setenv("EBMLAB_DATA", str(folder))
    assert len(load("mnist", split="tiny")) == 3
    write_idx(folder / "bad-images-idx3-ubyte.gz", images)
    write_idx(folder / "bad-labels-idx1-ubyte.gz", np.array([1, 2]))
    with pytest.raises(ValueError, match="labels"):
        load("mnist", split="bad")


# --- real MNIST / Fashion-MNIST files -----------------------------------------------------------


def test_mnist_train5k_from_shared_data():
    shared("mnist")
    ds = load("mnist", split="train5k", data_dir=SHARED_DATA)
    assert ds.data.shape == (5000, 784) and ds.data.dtype == torch.float32
    assert ds.image_shape == (28, 28) and ds.labels.dtype == torch.int64
    assert 0.0 <= float(ds.data.min()) and float(ds.data.max()) <= 1.0
    assert torch.equal(torch.bincount(ds.labels), torch.full((10,), 500))


def test_mnist_test_alias_and_env_var(monkeypatch, tmp_path):
    folder = shared("mnist")
    isolate_search(monkeypatch, tmp_path)
    monkeypatch.setenv("EBMLAB_DATA", str(folder.parent))
    ds = load("mnist", split="test")
    assert ds.data.shape == (10000, 784) and ds.name == "mnist-t10k"
    assert set(ds.labels.tolist()) == set(range(10))


def test_corrupted_known_file_fails_checksum(tmp_path, monkeypatch):
    folder = shared("mnist")
    isolate_search(monkeypatch, tmp_path)
    copy = tmp_path / "mnist"
    copy.mkdir()
    shutil.copy(folder / MNIST_T10K[1], copy / MNIST_T10K[1])
    raw = bytearray(gzip.decompress((folder / MNIST_T10K[0]).read_bytes()))
    raw[5000] ^= 0xFF
    (copy / MNIST_T10K[0]).write_bytes(gzip.compress(bytes(raw), compresslevel=1))
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte.*2646ac647ad5339dbf082846283269ea"):
        load("mnist", split="t10k", data_dir=tmp_path)


def test_truncated_real_file_raises(tmp_path, monkeypatch):
    folder = shared("mnist")
    isolate_search(monkeypatch, tmp_path)
    shutil.copy(folder / MNIST_T10K[1], tmp_path / MNIST_T10K[1])
    data = (folder / MNIST_T10K[0]).read_bytes()
    (tmp_path / MNIST_T10K[0]).write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated"):
        load("mnist", split="t10k", data_dir=tmp_path)


def test_download_from_file_mirror(tmp_path, monkeypatch):
    folder = shared("mnist")
    cache = isolate_search(monkeypatch, tmp_path)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for filename in MNIST_T10K:
        shutil.copy(folder / filename, mirror / filename)
    ds = load("mnist", split="test", mirrors=["file:///nonexistent/", mirror.as_uri()])
    assert ds.data.shape == (10000, 784)
    stored = sorted(p.name for p in (cache / "ebmlab" / "mnist").iterdir())
    assert stored == sorted(MNIST_T10K)
    for filename in MNIST_T10K:
        (mirror / filename).unlink()
    assert len(load("mnist", split="test", mirrors=[mirror.as_uri()])) == 10000


def test_download_rejects_bad_checksum_and_cleans_up(tmp_path):
    folder = shared("mnist")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    shutil.copy(folder / MNIST_T10K[1], mirror / MNIST_T10K[0])
    dest = tmp_path / "dest"
    with pytest.raises(DatasetNotFoundError, match="checksum mismatch"):
        download("mnist", "t10k", dest, mirrors=[mirror.as_uri()])
    assert list(dest.iterdir()) == []


def test_failing_mirror_names_searched_folders(tmp_path, monkeypatch):
    cache = isolate_search(monkeypatch, tmp_path)
    monkeypatch.setenv("EBMLAB_DATA", str(tmp_path / "env"))

    def offline(url, timeout):
        raise OSError(f"network unreachable for {url}")

    with pytest.raises(DatasetNotFoundError) as info:
        download("fashion-mnist", "train", tmp_path / "dest", urlopen=offline)
    assert "network unreachable" in str(info.value)
    with pytest.raises(DatasetNotFoundError) as info:
        load("mnist", data_dir=tmp_path / "given", mirrors=[(tmp_path / "empty").as_uri()])
    message = str(info.value)
    for folder in ("given/mnist", "given", "env/mnist", "env", "cache/ebmlab/mnist"):
        assert str(tmp_path / folder) in message
    assert "EBMLAB_DATA" in message and "data_dir" in message
    assert isinstance(info.value, OSError)
    assert not any((cache / "ebmlab" / "mnist").iterdir())


def test_fashion_mnist_test_split():
    shared("fashion-mnist")
    ds = load("fashion-mnist", split="t10k", data_dir=SHARED_DATA)
    assert ds.data.shape == (10000, 784) and ds.image_shape == (28, 28)
    assert torch.equal(torch.bincount(ds.labels), torch.full((10,), 1000))


# --- bars and stripes ---------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 3, 4])
def test_bars_and_stripes_patterns(n):
    patterns = bars_and_stripes_patterns(n)
    assert patterns.shape == (2 ** (n + 1) - 2, n * n)
    assert len(torch.unique(patterns, dim=0)) == len(patterns)
    images = patterns.reshape(-1, n, n)
    rows_equal = (images == images[:, :1, :]).flatten(1).all(1)
    cols_equal = (images == images[:, :, :1]).flatten(1).all(1)
    assert bool((rows_equal | cols_equal).all())
    log_prob = bars_and_stripes_log_prob(n, patterns)
    assert math.isclose(float(log_prob.exp().sum()), 1.0, rel_tol=1e-6)
    corner = torch.zeros(1, n * n)
    corner[0, 0] = 1.0
    assert bars_and_stripes_log_prob(n, corner).item() == -math.inf


def test_bars_and_stripes_sampling_and_load():
    ds = bars_and_stripes(3, 200, seed=1)
    assert ds.data.shape == (200, 9) and ds.image_shape == (3, 3)
    assert bool(torch.isfinite(bars_and_stripes_log_prob(3, ds.data)).all())
    assert torch.equal(ds.data, bars_and_stripes(3, 200, seed=1).data)
    loaded = load("bars-and-stripes", size=3)
    assert torch.equal(loaded.data, bars_and_stripes_patterns(3)) and loaded.image_shape == (3, 3)
    assert bars_and_stripes_log_prob(2, torch.full((1, 4), 0.5)).item() == -math.inf


# --- transforms -----------------------------------------------------------------------------------


def test_threshold_scale_standardize():
    x = np.array([[0.2, 0.6], [0.9, 0.5]])
    assert torch.equal(transforms.threshold(x), torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64))
    scaled = transforms.scale01(torch.tensor([[2.0, 4.0], [6.0, 10.0]]))
    assert torch.allclose(scaled, torch.tensor([[0.0, 0.25], [0.5, 1.0]]))
    assert torch.equal(transforms.scale01(torch.ones(2, 2)), torch.zeros(2, 2))
    data = torch.tensor([[1.0, 5.0], [3.0, 5.0]])
    z, mean, std = transforms.standardize(data)
    assert torch.allclose(mean, torch.tensor([2.0, 5.0]))
    assert torch.allclose(std, torch.tensor([1.0, 1e-8]))
    assert torch.allclose(z, torch.tensor([[-1.0, 0.0], [1.0, 0.0]]))
    z2, _, _ = transforms.standardize(data + 1, mean, std)
    assert torch.allclose(z2[:, 0], torch.tensor([0.0, 2.0]))


def test_stochastic_binarize():
    p = torch.full((2000, 5), 0.3)
    a = transforms.stochastic_binarize(p, seed=3)
    assert torch.equal(a, transforms.stochastic_binarize(p, seed=3))
    assert set(a.unique().tolist()) <= {0.0, 1.0}
    assert abs(float(a.mean()) - 0.3) < 0.02
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        transforms.stochastic_binarize(np.array([[1.5]]))


def test_one_hot():
    cols = np.array([[0, 2], [1, 0]])
    expected = torch.tensor([[1.0, 0, 0, 0, 1], [0, 1, 1, 0, 0]])
    assert torch.equal(transforms.one_hot(cols), expected)
    assert transforms.one_hot(cols, num_categories=4).shape == (2, 8)
    assert transforms.one_hot(cols, num_categories=[2, 5]).shape == (2, 7)
    with pytest.raises(ValueError, match="negative"):
        transforms.one_hot(np.array([[0, -1]]))
    with pytest.raises(ValueError, match="integer"):
        transforms.one_hot(np.array([[0.5]]))
    with pytest.raises(ValueError, match="num_categories"):
        transforms.one_hot(cols, num_categories=[2, 2])


# --- Dataset and batching ------------------------------------------------------------------------


def test_batches_cover_each_row_once_and_depend_on_seed():
    x = torch.arange(23, dtype=torch.float32).unsqueeze(1)
    epoch = list(batches(x, 5, seed=7))
    assert [len(b) for b in epoch] == [5, 5, 5, 5, 3]
    assert sorted(torch.cat(epoch).squeeze(1).tolist()) == list(range(23))
    again = torch.cat(list(batches(x, 5, seed=7)))
    assert torch.equal(torch.cat(epoch), again)
    assert not torch.equal(torch.cat(epoch), torch.cat(list(batches(x, 5, seed=8))))
    assert [len(b) for b in batches(x, 5, drop_last=True)] == [5, 5, 5, 5]
    assert torch.equal(torch.cat(list(batches(x, 4, shuffle=False))), x)
    with pytest.raises(ValueError, match="batch_size"):
        batches(x, 0)


def test_dataset_methods():
    ds = load("digits", split="test")
    sub = ds[10:20]
    assert len(sub) == 10 and torch.equal(sub.labels, ds.labels[10:20])
    assert len(ds[3]) == 1 and len(ds[torch.tensor([1, 4, 5])]) == 3
    binary = ds.binarize()
    assert set(binary.data.unique().tolist()) == {0.0, 1.0} and binary.image_shape == (8, 8)
    assert torch.equal(ds.binarize_stochastic(seed=2).data, ds.binarize_stochastic(seed=2).data)
    a, b = ds.split(0.8, seed=0)
    assert (len(a), len(b)) == (238, 59)
    assert sorted(torch.cat([a.data, b.data]).sum(1).tolist()) == sorted(ds.data.sum(1).tolist())
    assert ds.to(dtype=torch.float64).data.dtype == torch.float64
    assert sum(len(batch) for batch in ds.batches(32)) == len(ds)
    assert "rows=297" in repr(ds)


def test_as_dataset_from_numpy_lists_and_xarray():
    xr = pytest.importorskip("xarray")
    array = np.random.default_rng(0).random((6, 4))
    ds = as_dataset(array, labels=[0, 1, 0, 1, 0, 1], image_shape=(2, 2))
    assert ds.data.dtype == torch.float64 and ds.labels.dtype == torch.int64
    assert as_dataset(array.astype(np.float32)).data.dtype == torch.float32
    assert as_dataset([[0, 1], [1, 1]]).data.dtype == torch.float32
    assert as_dataset(ds) is ds
    da = xr.DataArray(array, dims=("row", "unit"), attrs={"image_shape": [2, 2]})
    assert as_dataset(da).image_shape == (2, 2)
    xds = xr.Dataset({"data": (("row", "unit"), array), "labels": ("row", np.arange(6))})
    from_xds = as_dataset(xds, name="xr")
    assert torch.equal(from_xds.labels, torch.arange(6)) and from_xds.name == "xr"


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="known names: digits"):
        load("cifar")
    with pytest.raises(TypeError, match="size"):
        load("digits", size=3)
    with pytest.raises(ValueError, match="x must be 2-D"):
        as_dataset(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="x must be finite"):
        as_dataset(np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="data must be finite"):
        Dataset(torch.tensor([[math.inf]]))
    with pytest.raises(ValueError, match="labels must have shape"):
        Dataset(torch.zeros(3, 2), labels=torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError, match="image_shape"):
        Dataset(torch.zeros(3, 4), image_shape=(3, 3))
    with pytest.raises(TypeError, match="batch_size"):
        batches(torch.zeros(4, 2), 2.5)
    with pytest.raises(ValueError, match="fraction"):
        load("digits").split(1.5)
