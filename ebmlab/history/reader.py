"""Readers of run-history stores: ``open_run``, ``open_runs``, ``to_netcdf``, ``list_runs``, ``snapshot_model``.

A reader takes the counters ``epochs_done`` / ``snapshots_done`` and the variable list from one
read of the group metadata, then slices every array to them, so it sees only finished epochs and
snapshots even while the writer runs (or after it was killed). A damaged store (a deleted, garbage
or truncated chunk, a removed variable, an edited counter) raises ``DamagedStoreError`` naming the
store and the variable, at ``open_run`` or, for arrays read lazily, when the values are read.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
import zarr
from xarray.backends import BackendArray
from xarray.core import indexing

from . import schema
from .errors import DamagedStoreError
from .writer import GROWING, is_store

EAGER_BYTES = 1 << 20
PER_SNAPSHOT_COORDS = (schema.SNAPSHOT_EPOCH, schema.BIN_EDGES)


class _Rows(BackendArray):
    """A zarr array seen through its first ``shape`` rows, read lazily on indexing."""

    def __init__(self, array: zarr.Array, shape: tuple[int, ...], where: str) -> None:
        self.array = array
        self.shape = shape
        self.dtype = np.dtype(array.dtype)
        self.where = where

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(key, self.shape, indexing.IndexingSupport.BASIC, self._get)

    def _get(self, key: tuple) -> np.ndarray:
        window = tuple(slice(0, n) for n in self.shape)
        try:
            return np.asarray(self.array[window][key])
        except (OSError, ValueError, RuntimeError, TypeError) as err:
            raise DamagedStoreError(f"{self.where} cannot be read: {type(err).__name__}: {err}") from err


def open_run(path: str | os.PathLike) -> xr.Dataset:
    """The run at ``path`` (a ``.zarr`` store, or a ``.nc`` file from ``to_netcdf``) as a Dataset.

    Only finished epochs and snapshots are included; arrays above 1 MiB (weights, fantasy
    particles) are read lazily. Dict-valued attributes (``spec``, ``method``, ``optimizer``, …)
    are dicts. Coordinates: ``epoch`` (epoch numbers), ``snapshot`` (0, 1, …), ``snapshot_epoch``
    and ``bin_edges``.
    """
    path = Path(path)
    if path.is_file():
        return _open_netcdf(path)
    if not is_store(path):
        raise ValueError(f"path {path} is not a run-history store (no zarr group with format {schema.FORMAT!r})")
    group = zarr.open_group(path, mode="r")
    attrs = dict(group.attrs)
    done = _counters(path, attrs)
    check_chunks = attrs.get(schema.ALL_CHUNKS) is True
    variables: dict[str, xr.Variable] = {}
    for name, dims in attrs[schema.VARIABLES].items():
        variables[name] = _variable(path, name, dims, done, check_chunks)
    coords = {k: variables.pop(k) for k in schema.COORDINATES if k in variables}
    coords[schema.SNAPSHOT] = xr.Variable(schema.SNAPSHOT, np.arange(done[schema.SNAPSHOT]))
    if schema.EPOCH not in coords:
        coords[schema.EPOCH] = xr.Variable(schema.EPOCH, np.zeros(0, dtype=np.int64))
    _check_counts(path, coords, done)
    return xr.Dataset(variables, coords=coords, attrs=attrs)


def _counters(path: Path, attrs: dict[str, Any]) -> dict[str, int]:
    """The finished-row counters and variable list of a store's attributes, validated."""
    done = {}
    for dim, key in ((schema.EPOCH, schema.EPOCHS_DONE), (schema.SNAPSHOT, schema.SNAPSHOTS_DONE)):
        value = attrs.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise DamagedStoreError(f"run store {path}: counter {key} must be a non-negative integer, got {value!r}")
        done[dim] = value
    variables = attrs.get(schema.VARIABLES)
    if not isinstance(variables, dict) or not all(
        isinstance(d, list) and d and d[0] in GROWING and all(isinstance(x, str) for x in d) for d in variables.values()
    ):
        raise DamagedStoreError(f"run store {path}: attribute {schema.VARIABLES!r} is not a map of names to dims")
    return done


def _variable(path: Path, name: str, dims: list[str], done: dict[str, int], check_chunks: bool) -> xr.Variable:
    """Variable ``name`` sliced to the finished rows; ``DamagedStoreError`` naming it when it is damaged."""
    where = f"run store {path}: variable {name!r}"
    try:
        array = zarr.open_array(path / name, mode="r")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DamagedStoreError(f"{where} is missing or unreadable ({type(err).__name__}: {err})") from err
    if len(dims) != array.ndim:
        raise DamagedStoreError(f"{where} has {array.ndim} dims, the store lists {dims}")
    lead = dims[0]
    if done[lead] > array.shape[0]:
        raise DamagedStoreError(
            f"{where} holds {array.shape[0]} rows along {lead!r}, fewer than the {done[lead]} the store's counter "
            "claims (an edited counter?)"
        )
    shape = tuple(done[d] if d in GROWING else n for d, n in zip(dims, array.shape))
    if check_chunks:
        rows = array.chunks[0]
        for i in range(math.ceil(done[lead] / rows)):
            key = array.metadata.encode_chunk_key((i,) + (0,) * (array.ndim - 1))
            if not (path / name / key).is_file():
                raise DamagedStoreError(f"{where}: chunk {key} (rows {i * rows}..{(i + 1) * rows - 1}) is missing")
    rows_ = _Rows(array, shape, where)
    nbytes = int(np.prod(shape)) * rows_.dtype.itemsize
    data = rows_[indexing.BasicIndexer((slice(None),) * len(shape))] if nbytes <= EAGER_BYTES else None
    data = indexing.LazilyIndexedArray(rows_) if data is None else data
    return xr.Variable(dims, data, attrs=dict(array.attrs))


def _check_counts(path: Path, coords: dict[str, xr.Variable], done: dict[str, int]) -> None:
    """Epoch numbers must rise from 1 and snapshot epochs must not fall: fill values mean unwritten rows."""
    epochs = np.asarray(coords[schema.EPOCH].values)
    if len(epochs) != done[schema.EPOCH] or (len(epochs) and (epochs[0] < 1 or (np.diff(epochs) <= 0).any())):
        raise DamagedStoreError(
            f"run store {path}: variable {schema.EPOCH!r} does not hold {done[schema.EPOCH]} rising epoch numbers "
            f"(got {epochs[:8].tolist()}…); the counter {schema.EPOCHS_DONE} was edited or rows are missing"
        )
    if schema.SNAPSHOT_EPOCH in coords:
        snaps = np.asarray(coords[schema.SNAPSHOT_EPOCH].values)
        if len(snaps) and (snaps[0] < 0 or (np.diff(snaps) < 0).any()):
            raise DamagedStoreError(
                f"run store {path}: variable {schema.SNAPSHOT_EPOCH!r} holds unwritten rows "
                f"(got {snaps[:8].tolist()}…); the counter {schema.SNAPSHOTS_DONE} was edited or rows are missing"
            )


def open_runs(paths: Iterable[str | os.PathLike]) -> xr.Dataset:
    """Several runs concatenated along ``run``, with their parameters as ``run`` coordinates.

    Epochs and snapshots are aligned by number (NaN where a run has fewer). Variables whose shape
    differs between runs (weights, layer parameters and fantasy particles of runs with different
    layer sizes) are left out; their names are in ``attrs["per_run_variables"]`` and each run's
    arrays come from ``open_run(ds.path[i])``. Coordinates on ``run``: ``path``, ``status``,
    ``seed``, ``dataset``, ``layer_sizes`` (e.g. "784x500"), ``method`` and ``method_<setting>``,
    ``optimizer`` and ``optimizer_<hyperparameter>`` (scalar settings only).
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("paths must name at least one run")
    runs = [open_run(p) for p in paths]
    names = set().union(*(set(ds.data_vars) | {c for c in ds.coords if c in PER_SNAPSHOT_COORDS} for ds in runs))
    per_run = sorted(n for n in names if not _shared(n, runs))
    filled = []
    for ds in runs:
        ds = ds.drop_vars([n for n in per_run if n in ds])
        for n in names.difference(per_run).difference(ds.variables):
            ds[n] = xr.full_like(ds[schema.EPOCH], np.nan, dtype=np.float64)
        filled.append(ds.drop_attrs())
    out = xr.concat(
        filled,
        dim=schema.RUN,
        join="outer",
        coords="different",
        data_vars="all",
        compat="equals",
        combine_attrs="drop",
    )
    params = [run_parameters(ds.attrs, p) for ds, p in zip(runs, paths)]
    keys = sorted(set().union(*params), key=lambda k: (k != "path", k))
    for k in keys:
        values = [p.get(k) for p in params]
        out.coords[k] = (schema.RUN, _column(values))
    out.attrs["per_run_variables"] = per_run
    return out


def _shared(name: str, runs: Sequence[xr.Dataset]) -> bool:
    present = [ds[name] for ds in runs if name in ds.variables]
    if len(present) < len(runs):
        return all(v.dims == (schema.EPOCH,) for v in present)
    first = present[0]
    fixed = [(d, n) for d, n in first.sizes.items() if d not in GROWING]
    return all(v.dims == first.dims and [(d, v.sizes[d]) for d, _ in fixed] == fixed for v in present)


def run_parameters(attrs: dict[str, Any], path: Path | None = None) -> dict[str, Any]:
    """Scalar run parameters from a store's attributes (the ``run`` coordinates of ``open_runs``)."""
    out: dict[str, Any] = {}
    if path is not None:
        out["path"] = str(path)
    out["status"] = attrs.get(schema.STATUS)
    out["seed"] = attrs.get(schema.SEED)
    out["dataset"] = attrs.get(schema.DATASET)
    spec = attrs.get(schema.SPEC) or {}
    out["layer_sizes"] = "x".join(str(_layer_size(s)) for s in spec.get("layers", []))
    method = attrs.get(schema.METHOD) or {}
    out["method"] = method.get("name")
    out.update({f"method_{k}": v for k, v in method.items() if k != "name" and _scalar(v)})
    opt = attrs.get(schema.OPTIMIZER) or {}
    out["optimizer"] = opt.get("class")
    out.update({f"optimizer_{k}": v for k, v in (opt.get("hyperparameters") or {}).items() if _scalar(v)})
    return out


def _layer_size(spec: dict[str, Any]) -> int:
    return int(spec["n"]) if "n" in spec else int(spec["sites"]) * int(spec["states"])


def _scalar(v: Any) -> bool:
    return isinstance(v, (bool, int, float, str))


def _column(values: list[Any]) -> np.ndarray:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        if len(present) == len(values):
            return np.array(values)
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    return np.array(["" if v is None else str(v) for v in values])


def to_netcdf(run_path: str | os.PathLike, out_path: str | os.PathLike) -> Path:
    """Export the finished epochs and snapshots of a run to a netCDF-4 file (h5netcdf engine).

    Dict- and list-valued attributes are stored as JSON strings (listed in the ``json_attrs``
    attribute); ``open_run`` on the file decodes them again.
    """
    ds = open_run(run_path).load()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    encoded = [k for k, v in ds.attrs.items() if not isinstance(v, (str, int, float)) or isinstance(v, bool)]
    ds.attrs = {k: json.dumps(v) if k in encoded else v for k, v in ds.attrs.items()} | {"json_attrs": encoded}
    for v in ds.variables.values():
        v.attrs = {k: json.dumps(a) if isinstance(a, (dict, list, bool)) else a for k, a in v.attrs.items()}
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    try:
        ds.to_netcdf(tmp, engine=_netcdf_engine())
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
    return out_path


def _netcdf_engine() -> str:
    try:
        import h5netcdf  # noqa: F401
    except ImportError as err:
        raise ImportError("to_netcdf needs h5netcdf: pip install h5netcdf") from err
    return "h5netcdf"


def _open_netcdf(path: Path) -> xr.Dataset:
    ds = xr.load_dataset(path, engine=_netcdf_engine())
    encoded = ds.attrs.pop("json_attrs", [])
    encoded = [encoded] if isinstance(encoded, str) else list(encoded)
    ds.attrs = {k: json.loads(v) if k in encoded else v for k, v in ds.attrs.items()}
    return ds


def list_runs(directory: str | os.PathLike) -> list[Path]:
    """Every run-history store under ``directory`` (searched recursively), sorted by path."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"directory {directory} is not a directory")
    found = []
    for root, dirs, _ in os.walk(directory):
        if is_store(root):
            found.append(Path(root))
            dirs.clear()
        else:
            dirs.sort()
    return sorted(found)


def snapshot_model(run: xr.Dataset, snapshot: int = -1) -> Any:
    """The model at snapshot ``snapshot`` of an opened run (rebuilt from ``spec`` and the stored parameters)."""
    import torch

    from ..model import BoltzmannMachine

    n = run.sizes.get(schema.SNAPSHOT, 0)
    if not -n <= snapshot < n or n == 0:
        raise ValueError(f"snapshot must index one of the run's {n} snapshots, got {snapshot}")
    model = BoltzmannMachine.from_spec(run.attrs[schema.SPEC])
    state = {}
    for key, value in model.state_dict().items():
        kind, index, *rest = key.split(".")
        if kind == "weights":
            name = schema.weights_var(int(index))
        else:
            name = schema.param_var(model.layers[int(index)].name, ".".join(rest))
        data = run[name].isel({schema.SNAPSHOT: snapshot}).values
        state[key] = torch.as_tensor(np.asarray(data), dtype=value.dtype)
    model.load_state_dict(state)
    return model
