"""Crash-safe, concurrently readable zarr v3 store: pre-allocated arrays and a counter written last.

Arrays along ``epoch`` and ``snapshot`` are allocated ahead and grown a chunk at a time. A row is
written into its region first; only then does ``commit`` rewrite the group attributes with the
counts of finished rows (``epochs_done``, ``snapshots_done``) and the list of variables. Every
file zarr writes is replaced atomically (temp file + rename), so a reader that takes the counters
from one read of the group metadata and slices each array to them sees only finished rows, and a
process killed at any moment leaves every committed row intact. Every chunk is written, even one
that holds only fill values, so a reader can tell a deleted chunk from an empty one; temporary
``*.partial`` files left by a killed writer are removed when the store is reopened. A store that
vanishes or cannot be written while training raises ``StoreWriteError`` naming it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.core.sync import sync

from . import schema
from .errors import DamagedStoreError, StoreWriteError

GROWING = (schema.EPOCH, schema.SNAPSHOT)
ARRAY_CONFIG = {"write_empty_chunks": True}


def is_store(path: str | os.PathLike) -> bool:
    """True when ``path`` is a run-history store (a zarr group with the ebmlab.history format)."""
    path = Path(path)
    if not (path / "zarr.json").is_file():
        return False
    try:
        attrs = zarr.open_group(path, mode="r").attrs
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return attrs.get(schema.FORMAT_ATTR) == schema.FORMAT


class StoreWriter:
    """Owns one run store: creates variables, writes rows into pre-allocated regions, commits.

    ``chunks`` gives, per growing dimension, the rows per chunk; arrays grow by at least 16 rows
    at a time, and new arrays start with room for ``capacity[dim]`` rows (set it ahead of time).
    """

    def __init__(self, path: str | os.PathLike, chunks: Mapping[str, int] | None = None) -> None:
        self.path = Path(path)
        self.chunks = {schema.EPOCH: 256, schema.SNAPSHOT: 1, **(chunks or {})}
        self.group: zarr.Group | None = None
        self.arrays: dict[str, zarr.Array] = {}
        self.variables: dict[str, list[str]] = {}
        self.done = dict.fromkeys(GROWING, 0)
        self.capacity = dict.fromkeys(GROWING, 0)

    # -- opening -------------------------------------------------------------------------------
    def create(self, attrs: Mapping[str, Any], overwrite: bool = False) -> None:
        """Start a new store at ``path`` with ``attrs``; an existing one is removed when ``overwrite``."""
        if self.path.exists():
            if not overwrite:
                raise FileExistsError(f"{self.path} already exists; pass overwrite=True to replace it")
            if not is_store(self.path):
                raise ValueError(f"{self.path} exists and is not a run-history store; refusing to delete it")
            shutil.rmtree(self.path)
        with self._writing():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.group = zarr.create_group(
                self.path,
                zarr_format=3,
                attributes={
                    **attrs,
                    schema.FORMAT_ATTR: schema.FORMAT,
                    schema.FORMAT_VERSION_ATTR: schema.FORMAT_VERSION,
                    schema.EPOCHS_DONE: 0,
                    schema.SNAPSHOTS_DONE: 0,
                    schema.VARIABLES: {},
                    schema.ALL_CHUNKS: True,
                },
            )

    def open(self) -> dict[str, Any]:
        """Reopen an existing store for appending; returns its attributes."""
        if not is_store(self.path):
            raise ValueError(f"{self.path} is not a run-history store")
        for partial in self.path.rglob("*.partial"):
            partial.unlink(missing_ok=True)
        self.group = zarr.open_group(self.path, mode="r+")
        attrs = dict(self.group.attrs)
        try:
            self.variables = {k: list(v) for k, v in attrs[schema.VARIABLES].items()}
            self.arrays = {name: self.group[name].with_config(ARRAY_CONFIG) for name in self.variables}
            self.done = {
                schema.EPOCH: int(attrs[schema.EPOCHS_DONE]),
                schema.SNAPSHOT: int(attrs[schema.SNAPSHOTS_DONE]),
            }
        except (KeyError, TypeError, ValueError, AttributeError, OSError) as err:
            raise DamagedStoreError(
                f"run store {self.path} cannot be continued: its metadata is damaged ({type(err).__name__}: {err})"
            ) from err
        return attrs

    def read(self, name: str) -> np.ndarray:
        """The committed rows of variable ``name`` (empty when it does not exist yet)."""
        if name not in self.arrays:
            return np.zeros(0)
        arr = self.arrays[name]
        dims = self.variables[name]
        try:
            return arr[tuple(slice(0, self.done[d]) if d in GROWING else slice(None) for d in dims)]
        except (OSError, ValueError, RuntimeError, TypeError) as err:
            raise DamagedStoreError(
                f"run store {self.path}: variable {name!r} cannot be read ({type(err).__name__}: {err})"
            ) from err

    # -- variables -----------------------------------------------------------------------------
    def ensure(
        self,
        name: str,
        dims: Sequence[str],
        shape: Sequence[int],
        dtype: Any,
        fill_value: Any,
        attrs: Mapping[str, Any] | None = None,
        compress: bool = True,
    ) -> zarr.Array:
        """The array ``name``; created (pre-allocated along its leading growing dim) if missing.

        ``shape`` gives the sizes of the non-growing dims, in order.
        """
        if name in self.arrays:
            return self.arrays[name]
        dims = list(dims)
        lead = dims[0]
        if lead not in GROWING or any(d in GROWING for d in dims[1:]):
            raise ValueError(f"dims of {name} must start with one of {GROWING} and hold no other, got {dims}")
        chunk = self.chunks[lead]
        rows = _round_up(max(self.done[lead] + 1, self.capacity[lead]), self._growth(lead))
        kwargs: dict[str, Any] = {} if compress else {"compressors": None}
        self._check_present()
        with self._writing():
            arr = self.group.create_array(
                name,
                shape=(rows, *shape),
                chunks=(chunk, *shape),
                dtype=dtype,
                fill_value=fill_value,
                dimension_names=dims,
                attributes=dict(attrs or {}),
                config=ARRAY_CONFIG,
                **kwargs,
            )
        self.arrays[name] = arr
        self.variables[name] = dims
        return arr

    def _growth(self, dim: str) -> int:
        return max(self.chunks[dim], 16)

    def write(self, name: str, start: int, values: np.ndarray) -> None:
        """Write rows ``start : start + len(values)`` of ``name``, growing the array when needed."""
        self.write_many([(name, start, values)])

    def write_many(self, items: Sequence[tuple[str, int, np.ndarray]]) -> None:
        """Several ``write`` calls at once: arrays are grown first, then written concurrently.

        Rows for the same array are merged into contiguous runs and written one run after
        another (concurrent writes into one chunk would race).
        """
        self._check_present()
        with self._writing():
            self._write_many(items)

    def _write_many(self, items: Sequence[tuple[str, int, np.ndarray]]) -> None:
        runs: dict[str, list[tuple[int, np.ndarray]]] = {}
        for name, start, values in sorted(items, key=lambda item: (item[0], item[1])):
            arr = self.arrays[name]
            stop = start + len(values)
            if stop > arr.shape[0]:
                arr.resize((_round_up(stop, self._growth(self.variables[name][0])), *arr.shape[1:]))
            mine = runs.setdefault(name, [])
            if mine and mine[-1][0] + len(mine[-1][1]) == start:
                mine[-1] = (mine[-1][0], np.concatenate([mine[-1][1], values]))
            else:
                mine.append((start, values))

        async def put(name: str, parts: list[tuple[int, np.ndarray]]) -> None:
            for start, values in parts:
                await self.arrays[name].async_array.setitem(slice(start, start + len(values)), values)

        async def put_all() -> None:
            await asyncio.gather(*(put(name, parts) for name, parts in runs.items()))

        sync(put_all())

    def clear(self, dim: str, start: int, stop: int) -> None:
        """Reset rows ``start:stop`` of every variable along ``dim`` to its fill value."""
        for name, dims in self.variables.items():
            if dims[0] == dim and start < stop:
                arr = self.arrays[name]
                stop_ = min(stop, arr.shape[0])
                if start < stop_:
                    with self._writing():
                        arr[start:stop_] = arr.fill_value

    # -- committing ----------------------------------------------------------------------------
    def commit(self, epochs: int, snapshots: int, **attrs: Any) -> None:
        """Publish ``epochs`` finished epochs and ``snapshots`` snapshots (and ``attrs``): the last write."""
        self.done = {schema.EPOCH: int(epochs), schema.SNAPSHOT: int(snapshots)}
        self._check_present()
        with self._writing():
            self.group.update_attributes(  # one atomic rewrite of the group's zarr.json
                {
                    **attrs,
                    schema.VARIABLES: self.variables,
                    schema.EPOCHS_DONE: self.done[schema.EPOCH],
                    schema.SNAPSHOTS_DONE: self.done[schema.SNAPSHOT],
                }
            )

    # -- failures ------------------------------------------------------------------------------
    def _check_present(self) -> None:
        """Raise ``StoreWriteError`` when the store or one of its arrays was removed behind the writer's back
        (zarr would silently recreate the folders and leave a store without metadata)."""
        needed = [self.path / "zarr.json", *(self.path / name / "zarr.json" for name in self.arrays)]
        gone = next((p for p in needed if not p.is_file()), None)
        if gone is not None:
            raise StoreWriteError(
                f"the run history store {self.path} was deleted or damaged while it was written ({gone} is gone)"
            )

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Turn any OSError of a write (read-only or full folder, vanished store) into ``StoreWriteError``."""
        try:
            yield
        except StoreWriteError:
            raise
        except OSError as err:
            raise StoreWriteError(f"cannot write the run history store {self.path}: {err}") from err


def _round_up(n: int, step: int) -> int:
    return int(math.ceil(n / step) * step)
