"""The ``Dataset`` container (a float matrix of rows x units plus optional labels) and
``as_dataset``, which builds one from tensors, numpy arrays, nested lists or xarray objects."""

from __future__ import annotations

import dataclasses
import numbers
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .._checks import check_device
from . import normalization as _norm
from . import transforms
from ._validate import check_finite, check_int, seeded_generator, to_tensor
from .batching import batches

Index = int | slice | Sequence[int] | np.ndarray | torch.Tensor


@dataclass(eq=False, repr=False)
class Dataset:
    """Rows of visible-unit values: ``data`` is a finite floating tensor of shape (rows, units).

    ``labels`` are optional int64 class labels of shape (rows,); ``image_shape`` (e.g. (28, 28))
    says how a row reshapes into an image, so its product must equal ``units``. ``normalization``
    records ``normalize``/``standardize`` ({"mean", "std", "per_feature"}; None for raw data).
    """

    data: torch.Tensor
    labels: torch.Tensor | None = None
    image_shape: tuple[int, ...] | None = None
    name: str = "dataset"
    normalization: dict | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.data, torch.Tensor):
            raise TypeError(
                f"data must be a torch.Tensor, got {type(self.data).__name__}; "
                "use ebmlab.data.as_dataset to convert arrays"
            )
        if self.data.ndim != 2:
            raise ValueError(
                f"data must be 2-D (rows, units), got shape {tuple(self.data.shape)}"
            )
        if not self.data.is_floating_point():
            raise TypeError(f"data must have a floating dtype, got {self.data.dtype}")
        check_finite(self.data, "data")
        if self.labels is not None:
            self._check_labels(self.labels)
        if self.image_shape is not None:
            self.image_shape = self._check_image_shape(self.image_shape)
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a str, got {type(self.name).__name__}")

    def _check_labels(self, labels: object) -> None:
        if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64:
            found = labels.dtype if isinstance(labels, torch.Tensor) else type(labels).__name__
            raise TypeError(f"labels must be an int64 torch.Tensor, got {found}")
        if labels.shape != (len(self),):
            raise ValueError(
                f"labels must have shape ({len(self)},) to match the rows of data, "
                f"got {tuple(labels.shape)}"
            )

    def _check_image_shape(self, image_shape: Sequence[int]) -> tuple[int, ...]:
        if isinstance(image_shape, (str, bytes)) or not isinstance(image_shape, Sequence):
            raise TypeError(f"image_shape must be a tuple of ints, got {image_shape!r}")
        shape = tuple(check_int(d, "image_shape entries", minimum=1) for d in image_shape)
        if int(np.prod(shape)) != self.n_units:
            raise ValueError(
                f"image_shape {shape} has {int(np.prod(shape))} pixels but data has "
                f"{self.n_units} units per row"
            )
        return shape

    def __len__(self) -> int:
        return self.data.shape[0]

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, rows={len(self)}, units={self.n_units}, "
            f"dtype={self.data.dtype}, labels={self.labels is not None}, "
            f"image_shape={self.image_shape})"
        )

    @property
    def n_units(self) -> int:
        """Number of visible units (columns of ``data``)."""
        return self.data.shape[1]

    def __getitem__(self, index: Index) -> Dataset:
        """Rows selected by an int, slice, index sequence/tensor or boolean mask, as a Dataset."""
        if isinstance(index, (int, np.integer)) and not isinstance(index, bool):
            index = [int(index)]
        elif isinstance(index, torch.Tensor):
            index = index.to(self.data.device)
        data = self.data[index]
        labels = None if self.labels is None else self.labels[index]
        return dataclasses.replace(self, data=data, labels=labels)

    def binarize(self, threshold: float = 0.5) -> Dataset:
        """Threshold binarization: units become ``1`` where ``x > threshold``, else ``0``.

        ``threshold`` must be finite and within the data's range (see ``transforms.threshold``).
        """
        transforms.check_threshold(self.data, threshold, "threshold")
        return dataclasses.replace(self, data=transforms.threshold(self.data, threshold))

    def binarize_stochastic(self, seed: int = 0) -> Dataset:
        """Sample each unit from ``Bernoulli(p=x)`` with a generator seeded by ``seed``."""
        return dataclasses.replace(
            self, data=transforms.stochastic_binarize(self.data, seed=seed)
        )

    def normalize(self, mean: object = None, std: object = None, per_feature: bool = False) -> Dataset:
        """(x − m) / s with one global m, s (default) or one per column; recorded in ``normalization``.

        m and s are computed from these rows when not given (give the training set's to normalize
        test data alike, e.g. ``test.normalize(**train.normalization)``); ``denormalize`` inverts it.
        """
        m, s = _norm.statistics(self.data, mean, std, per_feature)
        rec = _norm.compose(_norm.record(m, s, per_feature), self.normalization)
        return dataclasses.replace(self, data=(self.data - m) / s, normalization=rec)

    def standardize(self, mean: object = None, std: object = None) -> Dataset:
        """Per-column z-scores: ``normalize(mean, std, per_feature=True)``."""
        return self.normalize(mean, std, per_feature=True)

    def denormalize(self, x: object) -> torch.Tensor:
        """Map rows in this dataset's (normalized) units back to the raw units: x · s + m."""
        return _norm.denormalize(x, self.normalization)

    def split(self, fraction: float, seed: int = 0) -> tuple[Dataset, Dataset]:
        """Shuffle rows (seeded) and split them: ``round(fraction * rows)`` rows, then the rest."""
        if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real):
            raise TypeError(f"fraction must be a number in (0, 1), got {fraction!r}")
        if not 0 < fraction < 1:
            raise ValueError(f"fraction must be in (0, 1), got {fraction}")
        first = round(fraction * len(self))
        if not 0 < first < len(self):
            raise ValueError(
                f"fraction={fraction} of {len(self)} rows leaves one part empty"
            )
        order = torch.randperm(len(self), generator=seeded_generator(seed))
        return self[order[:first]], self[order[first:]]

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> Dataset:
        """Copy onto ``device`` and/or cast ``data`` to the floating ``dtype`` (labels stay int64)."""
        if dtype is not None and not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating dtype, got {dtype}")
        if device is not None:
            device = check_device(device)
        labels = None if self.labels is None else self.labels.to(device)
        return dataclasses.replace(self, data=self.data.to(device, dtype), labels=labels)

    def batches(
        self, batch_size: int, seed: int = 0, shuffle: bool = True, drop_last: bool = False
    ) -> Iterator[torch.Tensor]:
        """One epoch of ``data`` mini-batches; see ``ebmlab.data.batches``."""
        return batches(self.data, batch_size, seed=seed, shuffle=shuffle, drop_last=drop_last)


def as_dataset(
    x: object,
    labels: object | None = None,
    image_shape: Sequence[int] | None = None,
    name: str = "array",
) -> Dataset:
    """Build a ``Dataset`` from a Dataset, tensor, numpy array, nested list or xarray object.

    A ``Dataset`` is returned as-is (``labels``/``image_shape``, if given, replace its own). An
    ``xarray.DataArray`` must be 2-D and may carry an ``image_shape`` attribute; an
    ``xarray.Dataset`` needs a 2-D variable ``data`` and may have ``labels``. Data are cast to
    float32 unless already float64; labels to int64.
    """
    if isinstance(x, Dataset):
        changes = {"labels": _labels(labels), "image_shape": image_shape}
        changes = {k: v for k, v in changes.items() if v is not None}
        return dataclasses.replace(x, **changes) if changes else x
    x, labels, image_shape = _unwrap_xarray(x, labels, image_shape)
    data = to_tensor(x, "x")
    if data.ndim != 2:
        raise ValueError(f"x must be 2-D (rows, units), got shape {tuple(data.shape)}")
    if data.dtype != torch.float64:
        data = data.to(torch.float32)
    check_finite(data, "x")
    return Dataset(data, _labels(labels), image_shape, name)


def _labels(labels: object | None) -> torch.Tensor | None:
    """Convert labels to an int64 tensor, rejecting non-integer values."""
    if labels is None:
        return None
    tensor = to_tensor(labels, "labels")
    if tensor.is_floating_point() and not bool((tensor == tensor.round()).all()):
        raise ValueError("labels must be integers, got non-integer values")
    return tensor.to(torch.int64)


def _unwrap_xarray(
    x: object, labels: object | None, image_shape: Sequence[int] | None
) -> tuple[object, object | None, Sequence[int] | None]:
    """Turn xarray inputs into ``(array, labels, image_shape)``; other inputs pass through.

    xarray is only consulted when already imported, since an xarray object implies it is.
    """
    xr = sys.modules.get("xarray")
    if xr is None:
        return x, labels, image_shape
    if isinstance(x, xr.Dataset):
        if "data" not in x.data_vars:
            raise ValueError(
                "x is an xarray.Dataset without a 'data' variable; it has "
                f"{sorted(map(str, x.data_vars))}"
            )
        if labels is None and "labels" in x.variables:
            labels = x["labels"].values
        if image_shape is None:
            image_shape = _attr_shape(x.attrs)
        x = x["data"]
    if isinstance(x, xr.DataArray):
        if x.ndim != 2:
            raise ValueError(f"x must be a 2-D xarray.DataArray, got dims {x.dims}")
        if image_shape is None:
            image_shape = _attr_shape(x.attrs)
        x = x.values
    return x, labels, image_shape


def _attr_shape(attrs: dict) -> list[int] | None:
    """The ``image_shape`` attribute as a list of ints (file formats may store it as an array)."""
    shape = attrs.get("image_shape")
    return None if shape is None else [int(d) for d in np.atleast_1d(shape)]
