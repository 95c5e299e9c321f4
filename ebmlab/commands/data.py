"""``ebmlab data convert SRC DEST.zarr``: turn a dataset into a chunked zarr store for out-of-core training.

ebmlab data convert fashion-mnist fmnist.zarr --split train   # any name ``ebmlab.data.load`` knows
ebmlab data convert train-images-idx3-ubyte.gz train.zarr      # IDX (uint8 pixels / 255, labels beside it)
ebmlab data convert rows.npy rows.zarr --chunk-rows 4096       # .npy (memory-mapped, copied chunk by chunk)
ebmlab data convert rows.nc rows.zarr --variable data          # netCDF, read lazily chunk by chunk

The store is written into a temporary folder beside DEST and renamed to DEST once complete; train
from it with ``ebmlab train --data DEST.zarr`` or ``ebmlab.data.open_zarr(DEST)``.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np

NAME = "data"
HELP = "convert datasets (IDX, .npy, netCDF or a dataset name) into chunked zarr stores for out-of-core training"
IMAGE_SUFFIX = re.compile(r"images-idx3-ubyte")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    convert = sub.add_parser("convert", help="write SRC as a zarr store DEST (atomically)", description=__doc__)
    convert.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    convert.add_argument("src", help="an IDX file, a .npy file, a netCDF file, or a dataset name (e.g. mnist)")
    convert.add_argument("dest", help="the zarr store to create (must not exist), e.g. mnist.zarr")
    convert.add_argument("--split", default="train", help="split of a named dataset")
    convert.add_argument("--data-dir", default=None, help="folder with the IDX files of a named dataset")
    convert.add_argument("--variable", default=None, help="2-D variable of a netCDF file (default: data)")
    convert.add_argument(
        "--chunk-rows", type=int, default=None, help="rows per chunk (default: about 4 MiB per chunk)"
    )


def source_rows(args: argparse.Namespace) -> tuple[object, object, object]:
    """(rows as an array-like with ``shape`` and slicing, labels or None, image_shape or None) for SRC."""
    from ebmlab.data import DATASET_NAMES, load, read_idx

    src = Path(args.src)
    if not src.exists():
        if args.src in DATASET_NAMES:
            ds = load(args.src, split=args.split, data_dir=args.data_dir)
            return ds.data.numpy(), None if ds.labels is None else ds.labels.numpy(), ds.image_shape
        raise FileNotFoundError(f"SRC {args.src!r} is neither an existing file nor one of {list(DATASET_NAMES)}")
    if src.is_dir():
        raise ValueError(f"SRC {args.src!r} is a folder; give an IDX, .npy or netCDF file, or a dataset name")
    if src.suffix == ".npy":
        x = np.load(src, mmap_mode="r", allow_pickle=False)
        if x.ndim < 2:
            raise ValueError(f"SRC {args.src!r} must hold a 2-D (rows, units) or image array, got shape {x.shape}")
        image_shape = tuple(x.shape[1:]) if x.ndim > 2 else None
        return x.reshape(x.shape[0], -1), None, image_shape
    if "idx" in src.name:
        return _idx(src, read_idx)
    from ebmlab.data.zarr_dataset import open_zarr

    store = open_zarr(src, variable=args.variable)
    labels = store.source.read_labels(np.arange(len(store))) if store.source.read_labels else None
    return _Lazy(store), labels, store.image_shape


def _idx(src: Path, read_idx: object) -> tuple[np.ndarray, np.ndarray | None, tuple[int, ...] | None]:
    """IDX images as rows (uint8 scaled by 1/255 in float32, as ``load`` does) and the labels file beside them."""
    import torch

    images = read_idx(src)
    if images.ndim < 2:
        raise ValueError(f"SRC {str(src)!r} holds a {images.ndim}-D IDX array; give the images file")
    rows = torch.from_numpy(np.ascontiguousarray(images.reshape(len(images), -1)))
    rows = rows.to(torch.float32).div_(255.0) if images.dtype == np.uint8 else rows.to(torch.float32)
    labels_path = src.with_name(IMAGE_SUFFIX.sub("labels-idx1-ubyte", src.name))
    labels = read_idx(labels_path) if labels_path != src and labels_path.exists() else None
    if labels is not None and labels.shape != (len(images),):
        labels = None
    return rows.numpy(), labels, tuple(images.shape[1:]) if images.ndim > 2 else None


class _Lazy:
    """Rows of a lazily opened file, sliced chunk by chunk while writing (never all in memory)."""

    def __init__(self, store: object) -> None:
        self.store = store
        self.shape = (len(store), store.n_units)
        self.dtype = np.dtype(np.float32)

    def __getitem__(self, rows: slice) -> np.ndarray:
        return np.asarray(self.store.source.read(rows.start, rows.stop), dtype=np.float32)


def run(args: argparse.Namespace) -> int:
    from ebmlab.data import open_zarr, write_zarr

    if not args.dest.endswith(".zarr"):
        raise ValueError(f"DEST must end in .zarr, got {args.dest!r}")
    rows, labels, image_shape = source_rows(args)
    path = write_zarr(args.dest, rows, labels, image_shape, chunk_rows=args.chunk_rows)
    store = open_zarr(path)
    print(f"wrote {path}: {len(store)} rows x {store.n_units} units in chunks of {store.chunk_rows} rows")
    return 0
