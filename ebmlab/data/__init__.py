"""Datasets for Boltzmann machines: containers, named datasets, transforms and batching.

Imports only torch and numpy; scikit-learn (digits), xarray and zarr are used lazily.
"""

from __future__ import annotations

from . import transforms
from .bars_and_stripes import (
    bars_and_stripes,
    bars_and_stripes_log_prob,
    bars_and_stripes_patterns,
)
from .batching import batches
from .dataset import Dataset, as_dataset
from .fetch import DatasetNotFoundError, download
from .idx import read_idx
from .normalization import denormalize
from .registry import DATASET_NAMES, load
from .zarr_dataset import ZarrDataset, open_zarr, write_zarr

__all__ = [
    "DATASET_NAMES",
    "Dataset",
    "DatasetNotFoundError",
    "ZarrDataset",
    "as_dataset",
    "bars_and_stripes",
    "bars_and_stripes_log_prob",
    "bars_and_stripes_patterns",
    "batches",
    "denormalize",
    "download",
    "load",
    "open_zarr",
    "read_idx",
    "transforms",
    "write_zarr",
]
