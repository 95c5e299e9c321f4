"""Out-of-core datasets: rows read chunk by chunk from a zarr store or a lazily opened netCDF file.

``open_zarr(path, variable=None)`` returns a ``ZarrDataset``. Its epochs are shuffled at two
levels (Paysage's chunk-aware shuffler): a seeded random order of the row chunks, then the rows of
a buffer of ``buffer_chunks`` consecutive chunks (in that order) are permuted, and the buffer is
cut into mini-batches. Every row appears exactly once per epoch, and at most ``buffer_chunks``
chunks plus one partial batch are held in memory. Transforms (binarize, normalize) are applied to
each block of rows as it is read, so a row's transformed value does not depend on the shuffle.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import transforms as _tf
from ._validate import check_int, seeded_generator
from .dataset import Dataset

NETCDF_SUFFIXES = (".nc", ".nc4", ".netcdf", ".h5", ".hdf5")
DEFAULT_BUFFER_CHUNKS = 4
CPU = torch.device("cpu")


@dataclass(frozen=True)
class _Source:
    """A lazily read 2-D array: ``read(start, stop)`` returns rows ``start:stop`` as numpy."""

    path: str
    variable: str
    rows: int
    units: int
    chunk_rows: int
    read: Callable[[int, int], np.ndarray]
    read_labels: Callable[[np.ndarray], np.ndarray] | None
    image_shape: tuple[int, ...] | None


Transform = Callable[[torch.Tensor, int], torch.Tensor]  # (rows of one chunk, chunk index) -> rows


@dataclass(frozen=True, eq=False)
class ZarrDataset:
    """A dataset whose rows stay on disk; see the module docstring for the two-level shuffle.

    ``chunks`` are the indices of the row chunks this dataset covers (``split`` divides them);
    ``dtype``/``device`` are those of the tensors it yields.
    """

    source: _Source
    chunks: tuple[int, ...]
    buffer_chunks: int = DEFAULT_BUFFER_CHUNKS
    transforms: tuple[Transform, ...] = ()
    dtype: torch.dtype = torch.float32
    device: torch.device = CPU
    name: str = "zarr"

    # -- shape ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return sum(self.chunk_size(c) for c in self.chunks)

    def __repr__(self) -> str:
        return (
            f"ZarrDataset(path={self.source.path!r}, variable={self.source.variable!r}, rows={len(self)}, "
            f"units={self.n_units}, chunk_rows={self.chunk_rows}, buffer_chunks={self.buffer_chunks})"
        )

    @property
    def n_units(self) -> int:
        """Number of visible units (columns)."""
        return self.source.units

    @property
    def chunk_rows(self) -> int:
        """Rows per chunk (the last chunk of the store may be shorter)."""
        return self.source.chunk_rows

    @property
    def image_shape(self) -> tuple[int, ...] | None:
        """How a row reshapes into an image (the store's ``image_shape`` attribute), if known."""
        return self.source.image_shape

    def chunk_size(self, chunk: int) -> int:
        """Rows in chunk ``chunk``."""
        start = chunk * self.chunk_rows
        return min(start + self.chunk_rows, self.source.rows) - start

    # -- reading -------------------------------------------------------------------------------
    def read_chunk(self, chunk: int) -> torch.Tensor:
        """The transformed rows of one chunk as a tensor of ``dtype`` on ``device``."""
        start = chunk * self.chunk_rows
        block = torch.from_numpy(np.asarray(self.source.read(start, start + self.chunk_size(chunk))))
        block = block.to(self.device, self.dtype)
        for transform in self.transforms:
            block = transform(block, chunk)
        return block

    def batches(
        self, batch_size: int, seed: int = 0, shuffle: bool = True, drop_last: bool = False
    ) -> Iterator[torch.Tensor]:
        """One epoch in mini-batches: chunk order ``randperm`` (seeded), then rows permuted per buffer.

        Equal seeds give equal batches; without ``shuffle`` chunks and rows come in store order.
        """
        batch_size = check_int(batch_size, "batch_size", minimum=1)
        g = seeded_generator(seed)
        order = [self.chunks[i] for i in torch.randperm(len(self.chunks), generator=g)] if shuffle else self.chunks
        return self._stream(list(order), batch_size, g if shuffle else None, drop_last)

    def _stream(
        self, order: list[int], batch_size: int, g: torch.Generator | None, drop_last: bool
    ) -> Iterator[torch.Tensor]:
        left = torch.empty(0, self.n_units, dtype=self.dtype, device=self.device)
        for first in range(0, len(order), self.buffer_chunks):
            buffer = torch.cat([self.read_chunk(c) for c in order[first : first + self.buffer_chunks]])
            if g is not None:
                buffer = buffer[torch.randperm(buffer.shape[0], generator=g).to(buffer.device)]
            buffer = torch.cat([left, buffer])
            stop = buffer.shape[0] - buffer.shape[0] % batch_size
            for start in range(0, stop, batch_size):
                yield buffer[start : start + batch_size]
            left = buffer[stop:]
            del buffer
        if left.shape[0] and not drop_last:
            yield left

    def sample(self, rows: int, seed: int = 0) -> Dataset:
        """A bounded in-memory subsample of about ``rows`` rows, as a ``Dataset`` (for metrics, init).

        Whole chunks are read in a seeded random order until ``rows`` rows are in hand and ``rows``
        of them are drawn at random; a dataset of at most ``rows`` rows is returned whole, in order.
        """
        rows = check_int(rows, "rows", minimum=1)
        if len(self) <= rows:
            picked = list(self.chunks)
        else:
            g = seeded_generator(seed)
            picked, held = [], 0
            for i in torch.randperm(len(self.chunks), generator=g).tolist():
                picked.append(self.chunks[i])
                held += self.chunk_size(self.chunks[i])
                if held >= rows:
                    break
            picked.sort()
        data = torch.cat([self.read_chunk(c) for c in picked])
        index = np.concatenate([c * self.chunk_rows + np.arange(self.chunk_size(c)) for c in picked])
        if data.shape[0] > rows:
            keep = torch.randperm(data.shape[0], generator=seeded_generator(seed + 1))[:rows].sort().values
            data, index = data[keep.to(data.device)], index[keep.numpy()]
        labels = None
        if self.source.read_labels is not None:
            labels = torch.from_numpy(np.asarray(self.source.read_labels(index)).astype(np.int64))
        return Dataset(data, labels, self.image_shape, f"{self.name}-sample")

    def load(self) -> Dataset:
        """Every row of this dataset in memory (in store order), transformed, as a ``Dataset``."""
        return self.sample(max(len(self), 1))

    # -- derived datasets ----------------------------------------------------------------------
    def with_transform(self, transform: Transform) -> ZarrDataset:
        """A dataset applying ``transform(rows, chunk_index)`` to each chunk after the current ones."""
        if not callable(transform):
            raise TypeError(f"transform must be callable (rows, chunk) -> rows, got {type(transform).__name__}")
        return dataclasses.replace(self, transforms=(*self.transforms, transform))

    def binarize(self, threshold: float = 0.5) -> ZarrDataset:
        """Threshold binarization per chunk: ``1`` where ``x > threshold``, else ``0``."""
        t = _tf.check_threshold(torch.empty(0), threshold, "threshold")
        return self.with_transform(lambda x, _chunk: (x > t).to(x.dtype))

    def binarize_stochastic(self, seed: int = 0) -> ZarrDataset:
        """Bernoulli(p=x) per unit; chunk ``c`` uses a generator seeded from (seed, c), so a row's
        sample is the same in every epoch and whatever the shuffle."""
        seed = check_int(seed, "seed")
        return self.with_transform(lambda x, chunk: _tf.stochastic_binarize(x, seed=seed * 1_000_003 + chunk))

    def normalize(self, mean: object, std: object) -> ZarrDataset:
        """(x − mean) / std per chunk with given (global or per-column) ``mean`` and ``std``.

        Unlike ``Dataset.normalize`` they must be given (e.g. from ``sample(...).normalization``
        after ``Dataset.normalize``), since computing them would take a pass over the store.
        """
        m = torch.as_tensor(mean, dtype=torch.float64)
        s = torch.as_tensor(std, dtype=torch.float64)
        for arg, v in (("mean", m), ("std", s)):
            if v.ndim > 1 or (v.ndim == 1 and v.shape[0] != self.n_units) or not bool(torch.isfinite(v).all()):
                raise ValueError(
                    f"{arg} must be a finite number or {self.n_units} finite numbers, got shape {tuple(v.shape)}"
                )
        if not bool((s > 0).all()):
            raise ValueError("std must be > 0")
        return self.with_transform(lambda x, _chunk: ((x - m.to(x)) / s.to(x)))

    def split(self, fraction: float, seed: int = 0) -> tuple[ZarrDataset, ZarrDataset]:
        """Split by whole chunks (seeded): about ``fraction`` of the chunks, then the rest."""
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
            raise TypeError(f"fraction must be a number in (0, 1), got {fraction!r}")
        if not 0 < fraction < 1:
            raise ValueError(f"fraction must be in (0, 1), got {fraction}")
        first = round(fraction * len(self.chunks))
        if not 0 < first < len(self.chunks):
            raise ValueError(
                f"fraction={fraction} of {len(self.chunks)} chunks leaves one part empty; "
                "convert the store with smaller chunks"
            )
        order = torch.randperm(len(self.chunks), generator=seeded_generator(seed)).tolist()
        pick = [sorted(self.chunks[i] for i in part) for part in (order[:first], order[first:])]
        return dataclasses.replace(self, chunks=tuple(pick[0])), dataclasses.replace(self, chunks=tuple(pick[1]))

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> ZarrDataset:
        """Yield batches on ``device`` and/or of the floating ``dtype``."""
        if dtype is not None and not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating dtype, got {dtype}")
        return dataclasses.replace(
            self,
            device=self.device if device is None else torch.device(device),
            dtype=self.dtype if dtype is None else dtype,
        )

    def with_buffer(self, buffer_chunks: int) -> ZarrDataset:
        """The same dataset shuffling within buffers of ``buffer_chunks`` chunks."""
        return dataclasses.replace(self, buffer_chunks=check_int(buffer_chunks, "buffer_chunks", minimum=1))


def open_zarr(
    path: str | os.PathLike, variable: str | None = None, buffer_chunks: int = DEFAULT_BUFFER_CHUNKS
) -> ZarrDataset:
    """Open a zarr store (group or array) or a netCDF/HDF5 file lazily as a ``ZarrDataset``.

    ``variable`` names the 2-D (rows, units) array; by default ``data``, else the only 2-D array.
    A 1-D ``labels`` array with one entry per row, if present, supplies labels for ``sample``.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    if variable is not None and not isinstance(variable, str):
        raise TypeError(f"variable must be a str or None, got {type(variable).__name__}")
    buffer_chunks = check_int(buffer_chunks, "buffer_chunks", minimum=1)
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"path {str(p)!r} does not exist")
    netcdf = p.is_file() and p.suffix.lower() in NETCDF_SUFFIXES
    source = _open_netcdf(p, variable) if netcdf else _open_zarr(p, variable)
    if source.rows == 0:
        raise ValueError(f"path {str(p)!r}: variable {source.variable!r} has no rows")
    chunks = tuple(range(math.ceil(source.rows / source.chunk_rows)))
    return ZarrDataset(source, chunks, buffer_chunks, name=p.stem)


def _pick(path: Path, arrays: dict[str, tuple[int, ...]], variable: str | None) -> str:
    """The 2-D variable to read: ``variable``, else ``data``, else the only 2-D array."""
    two_d = sorted(k for k, shape in arrays.items() if len(shape) == 2)
    if variable is None:
        if "data" in two_d:
            return "data"
        if len(two_d) != 1:
            raise ValueError(
                f"variable: {str(path)!r} holds {len(two_d)} 2-D arrays {two_d}; name one with variable=..."
            )
        return two_d[0]
    if variable not in arrays:
        raise ValueError(f"variable {variable!r} not found in {str(path)!r}; it holds {sorted(arrays)}")
    if len(arrays[variable]) != 2:
        raise ValueError(f"variable {variable!r} must be 2-D (rows, units), got shape {arrays[variable]}")
    return variable


def _labels_reader(arrays: dict[str, tuple[int, ...]], rows: int, get: Callable) -> Callable | None:
    if arrays.get("labels") != (rows,):
        return None
    return lambda index: get("labels", index)


def _attr_shape(attrs: dict) -> tuple[int, ...] | None:
    shape = attrs.get("image_shape")
    return None if shape is None else tuple(int(d) for d in np.atleast_1d(shape))


def _open_zarr(path: Path, variable: str | None) -> _Source:
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except Exception as exc:  # zarr raises several types for "not a store"
        raise ValueError(f"path {str(path)!r} is not a zarr store or netCDF file ({exc})") from exc
    if isinstance(node, zarr.Array):
        if variable is not None:
            raise ValueError(f"variable must be None for {str(path)!r}, which is a single zarr array")
        members = {"": node}
    else:
        members = {k: v for k, v in node.arrays()}
    arrays = {k: tuple(v.shape) for k, v in members.items()}
    name = "" if "" in members else _pick(path, arrays, variable)
    arr = members[name]
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"variable {name!r} must hold real numbers, got dtype {arr.dtype}")
    rows, units = arr.shape
    shape = _attr_shape(dict(arr.attrs)) or _attr_shape(dict(node.attrs))
    if shape is not None and int(np.prod(shape)) != units:
        shape = None
    return _Source(
        path=str(path),
        variable=name or "(array)",
        rows=rows,
        units=units,
        chunk_rows=int(arr.chunks[0]),
        read=lambda start, stop: arr[start:stop],
        read_labels=_labels_reader(arrays, rows, lambda k, index: members[k].get_orthogonal_selection(index)),
        image_shape=shape,
    )


def _open_netcdf(path: Path, variable: str | None) -> _Source:
    import xarray as xr

    try:
        ds = xr.open_dataset(path)  # lazy: values are read only when indexed
    except Exception as exc:  # backends raise many types for unreadable files
        raise ValueError(f"path {str(path)!r} could not be opened as netCDF ({exc})") from exc
    arrays = {str(k): tuple(v.shape) for k, v in ds.variables.items()}
    name = _pick(path, {k: s for k, s in arrays.items() if k in ds.data_vars}, variable)
    da = ds[name]
    if da.dtype.kind not in "biuf":
        raise TypeError(f"variable {name!r} must hold real numbers, got dtype {da.dtype}")
    rows, units = da.shape
    stored = da.encoding.get("chunksizes")
    chunk_rows = int(stored[0]) if stored else default_chunk_rows(units)
    shape = _attr_shape(da.attrs) or _attr_shape(ds.attrs)
    return _Source(
        path=str(path),
        variable=name,
        rows=rows,
        units=units,
        chunk_rows=chunk_rows,
        read=lambda start, stop: da[start:stop].values,
        read_labels=_labels_reader(arrays, rows, lambda k, index: ds[k].values[index]),
        image_shape=shape if shape is None or int(np.prod(shape)) == units else None,
    )


def default_chunk_rows(units: int, itemsize: int = 4, target_bytes: int = 4 * 2**20) -> int:
    """Rows per chunk so a chunk holds about ``target_bytes`` (4 MiB): large enough for fast reads,
    small enough that a buffer of several chunks stays a few tens of MiB."""
    return max(1, target_bytes // max(1, units * itemsize))


def write_zarr(
    path: str | os.PathLike,
    data: np.ndarray | torch.Tensor | Any,
    labels: np.ndarray | torch.Tensor | None = None,
    image_shape: Sequence[int] | None = None,
    chunk_rows: int | None = None,
) -> Path:
    """Write rows (and labels) as a zarr group ``{data, labels}`` atomically: into a temporary
    folder beside ``path``, renamed to ``path`` once complete. ``path`` must not exist.

    ``data`` may be any array-like with ``shape``, ``dtype`` and row slicing (a memory map, a lazy
    reader): it is copied ``chunk_rows`` rows at a time."""
    import shutil
    import tempfile

    import zarr

    p = Path(path)
    if p.exists():
        raise FileExistsError(f"path {str(p)!r} already exists; remove it or choose another destination")
    x = data.numpy() if isinstance(data, torch.Tensor) else data
    if not (hasattr(x, "shape") and hasattr(x, "dtype")):
        x = np.asarray(x)
    if len(x.shape) != 2:
        raise ValueError(f"data must be 2-D (rows, units), got shape {tuple(x.shape)}")
    if chunk_rows is None:
        chunk_rows = default_chunk_rows(x.shape[1], x.dtype.itemsize)
    rows = min(check_int(chunk_rows, "chunk_rows", minimum=1), max(1, x.shape[0]))
    tmp = Path(tempfile.mkdtemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent))
    try:
        group = zarr.open_group(str(tmp), mode="w")
        arr = group.create_array("data", shape=x.shape, dtype=x.dtype, chunks=(rows, x.shape[1]))
        for start in range(0, x.shape[0], rows):
            arr[start : start + rows] = np.asarray(x[start : start + rows])
        if labels is not None:
            y = labels.numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
            group.create_array("labels", data=y.astype(np.int64))
        if image_shape is not None:
            group.attrs["image_shape"] = [int(d) for d in image_shape]
        os.replace(tmp, p)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return p
