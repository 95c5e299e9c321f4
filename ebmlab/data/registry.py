"""Named datasets and ``load``.

- ``digits``: scikit-learn's bundled 8x8 digits (1797 rows, offline), pixels / 16 in [0, 1].
  Splits: ``train`` = first 1500 rows, ``test`` = remaining 297, ``all``.
- ``mnist``, ``fashion-mnist``: 28x28 IDX files (see ``ebmlab.data.fetch``), pixels / 255 in
  [0, 1]. ``split`` is the file prefix: ``train``, ``t10k`` (alias ``test``) or any other prefix
  present in a searched folder (e.g. ``train5k``). Keyword options: ``download=True``,
  ``mirrors=None``, ``timeout=30.0``.
- ``bars-and-stripes``: every distinct ``size`` x ``size`` pattern once (``size=4`` by default);
  all splits are the same full set.
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np
import torch

from . import fetch
from .bars_and_stripes import bars_and_stripes_patterns
from .dataset import Dataset

DIGITS_TRAIN_ROWS = 1500
_SPLIT_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def load_digits(split: str = "train") -> Dataset:
    """scikit-learn's 8x8 digits: ``train`` (rows 0-1499), ``test`` (1500-1796) or ``all``."""
    from sklearn.datasets import load_digits as sklearn_digits

    rows = {
        "train": slice(0, DIGITS_TRAIN_ROWS),
        "test": slice(DIGITS_TRAIN_ROWS, None),
        "all": slice(None),
    }
    if split not in rows:
        raise ValueError(f"split must be one of {sorted(rows)} for digits, got {split!r}")
    bunch = sklearn_digits()
    data = torch.from_numpy(bunch.data[rows[split]] / 16.0).to(torch.float32)
    labels = torch.from_numpy(bunch.target[rows[split]].astype(np.int64))
    return Dataset(data, labels, (8, 8), f"digits-{split}")


def load_idx_dataset(
    name: str,
    split: str = "train",
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    mirrors: Sequence[str] | None = None,
    timeout: float = 30.0,
) -> Dataset:
    """An MNIST-format dataset: uint8 images / 255 as float32 rows, int64 labels."""
    if not isinstance(split, str) or not _SPLIT_PATTERN.fullmatch(split):
        raise ValueError(
            f"split must be a file prefix such as 'train', 't10k' or 'test', got {split!r}"
        )
    prefix = "t10k" if split == "test" else split
    images_path, labels_path = fetch.locate(
        name, prefix, data_dir, allow_download=download, mirrors=mirrors, timeout=timeout
    )
    images = fetch.read_verified(images_path, name)
    labels = fetch.read_verified(labels_path, name)
    if images.dtype != np.uint8 or images.ndim < 2:
        raise ValueError(
            f"{images_path}: expected uint8 images of shape (rows, height, width), "
            f"got {images.dtype} of shape {images.shape}"
        )
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(
            f"{labels_path}: expected {len(images)} labels to match {images_path}, "
            f"got shape {labels.shape}"
        )
    data = torch.from_numpy(images.reshape(len(images), -1)).to(torch.float32).div_(255.0)
    labels_t = torch.from_numpy(labels.astype(np.int64))
    return Dataset(data, labels_t, tuple(images.shape[1:]), f"{name}-{prefix}")


def load_bars_and_stripes(split: str = "train", size: int = 4) -> Dataset:
    """Every distinct ``size`` x ``size`` bars-and-stripes pattern once, for any split."""
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    return Dataset(bars_and_stripes_patterns(size), None, (size, size), f"bars-and-stripes-{size}")


LOADERS: dict[str, Callable[..., Dataset]] = {
    "digits": load_digits,
    "mnist": partial(load_idx_dataset, "mnist"),
    "fashion-mnist": partial(load_idx_dataset, "fashion-mnist"),
    "bars-and-stripes": load_bars_and_stripes,
}
DATASET_NAMES = tuple(LOADERS)


def load(
    name: str, split: str = "train", data_dir: str | os.PathLike | None = None, **kwargs: object
) -> Dataset:
    """Load the named dataset (one of ``DATASET_NAMES``; ``_`` may replace ``-``).

    ``data_dir`` is used by the file-based datasets (mnist, fashion-mnist) and ignored by the
    bundled or generated ones. Extra keyword arguments go to the dataset's loader; see the module
    docstring for each dataset's splits and options.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    key = name.lower().replace("_", "-")
    if key not in LOADERS:
        raise ValueError(f"unknown dataset name {name!r}; known names: {', '.join(DATASET_NAMES)}")
    loader = LOADERS[key]
    params = inspect.signature(loader).parameters
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        options = sorted(set(params) - {"split", "data_dir"})
        raise TypeError(
            f"unexpected keyword arguments {unknown} for dataset {key!r}; accepted: {options}"
        )
    if "data_dir" in params:
        kwargs["data_dir"] = data_dir
    return loader(split=split, **kwargs)
