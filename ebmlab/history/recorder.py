"""``Recorder``: a Trainer callback that writes a run's history to a zarr v3 store as it trains.

Per recorded epoch, every number in ``state.metrics`` (a metric first seen later reads NaN at the
earlier epochs). Per snapshot (before training, every ``snapshot_every`` epochs and at the end):
the weights and layer parameters; ``particles`` **fantasy particles**; the method's own
negative-phase states (``negative_phase``, labelled by what they are); and histograms of the
energy of data rows and of fantasy particles on shared bins,

    RBM:    F(v) = −log Σ_h exp(−E(v, h))                      (free energy, exact);
    deeper: F(h_even) = −log Σ_{h_odd} exp(−E(h))             (odd layers summed out; for data
            the even hidden layers are the mean-field magnetizations given v).

Fantasy particles are samples of the model alone: the recorder keeps its own ``particles``
persistent block-Gibbs chains, never touched by the training data or the trainer's random
streams, started from the layer biases and advanced ``sample_steps`` sweeps at each snapshot
with a generator seeded by (``seed``, epoch). Their hidden states are stored too
(``fantasy_<layer>``), so a resumed run continues the same chains and its store is identical to
an uninterrupted one. The method's negative phase is something else for most methods: CD's are
*reconstructions* (k Gibbs sweeps from the data batch), PCD's and PT's persistent chains, TAP's
magnetizations; its ``kind`` attribute says which (``Method.particles_kind``).

A histogram holds the fraction of rows per bin. See ``schema`` for the names and ``writer`` for
the crash-safety protocol.
"""

from __future__ import annotations

import datetime
import os
import platform
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..train.state import Callback
from ..train.trainer import _derived_seed
from . import schema
from .errors import StoreWriteError
from .writer import StoreWriter, is_store

TIMING_METRICS = ("wall_seconds", "samples_per_second")
FANTASY_ATTRS = {schema.KIND: schema.FANTASY_KIND}
FANTASY_SALT = 0x46414E54  # keeps the fantasy chains' seeds apart from the trainer's (same seed words)


class Recorder(Callback):
    """Record a run into the zarr store at ``path`` (a directory, conventionally ``*.zarr``).

    Args:
        path: the store. An existing store of the same model is continued from ``state.epoch``
            (rows after it are discarded), which is how a resumed run keeps one history; a fresh
            run (epoch 0) over an existing store needs ``overwrite=True``.
        every: record the metrics of every ``every``-th epoch (and of the last one).
        snapshot_every: take a snapshot every ``snapshot_every`` epochs (and before and after training).
        particles: fantasy particles (the recorder's own chains) and negative-phase states kept per snapshot.
        bins: energy-histogram bins.
        energy_rows: data rows (a fixed random subset) whose energies are histogrammed.
        sample_steps: Gibbs sweeps the fantasy chains advance at each snapshot.
        seed: seeds the data subset and the fantasy chains; the trainer's random streams are never used.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        every: int = 1,
        snapshot_every: int = 5,
        particles: int = 64,
        bins: int = 50,
        energy_rows: int = 500,
        sample_steps: int = 20,
        seed: int = 0,
        overwrite: bool = False,
    ) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
        for name, value in [
            ("every", every),
            ("snapshot_every", snapshot_every),
            ("particles", particles),
            ("bins", bins),
            ("energy_rows", energy_rows),
            ("sample_steps", sample_steps),
        ]:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        self.path = Path(path)
        self.every = every
        self.snapshot_every = snapshot_every
        self.particles = particles
        self.bins = bins
        self.energy_rows = energy_rows
        self.sample_steps = sample_steps
        self.seed = seed
        self.overwrite = overwrite
        self.writer: StoreWriter | None = None
        self._data: torch.Tensor | None = None
        self._last_epoch = -1
        self._last_snapshot = -1
        self._ready = False
        self._pending: list[tuple[str, int, np.ndarray]] = []
        self._committed = (0, 0)
        self._broken = False
        self._chains: list[torch.Tensor] | None = None

    def config(self) -> dict[str, Any]:
        """The recorder's settings (stored in the ``recorder`` attribute)."""
        return {
            "every": self.every,
            "snapshot_every": self.snapshot_every,
            "particles": self.particles,
            "bins": self.bins,
            "energy_rows": self.energy_rows,
            "sample_steps": self.sample_steps,
            "seed": self.seed,
        }

    # -- callback hooks ------------------------------------------------------------------------
    def on_train_begin(self, state: Any) -> None:
        model = state.model
        self._ready = False
        self._broken = False
        self._pending: list[tuple[str, int, np.ndarray]] = []
        self.writer = StoreWriter(self.path)
        epochs = int(getattr(state, "epochs", 0) or 0)
        self.writer.capacity = {
            schema.EPOCH: epochs // self.every + 1,
            schema.SNAPSHOT: epochs // self.snapshot_every + 2,
        }
        attrs = run_attrs(state, self.config())
        self._chains = None
        if is_store(self.path) and not (state.epoch == 0 and self.overwrite):
            self._continue(state)
        else:
            self.writer.create(attrs, overwrite=self.overwrite)
            self._last_epoch, self._last_snapshot = 0, -1
        self._fill_from_history(state)
        self._data = _subset(state.data, self.energy_rows, self.seed).to(model.device, model.dtype)
        if self.writer.done[schema.SNAPSHOT] == 0:
            self._snapshot(state)
        self._commit(**{schema.STATUS: schema.RUNNING, schema.TRAINER: attrs[schema.TRAINER]})
        self._ready = True

    def on_epoch_end(self, state: Any) -> None:
        if not self._ready:
            raise RuntimeError("Recorder.on_epoch_end before a successful on_train_begin")
        try:
            self._epoch_end(state)
        except StoreWriteError:
            self._broken = True
            raise

    def _epoch_end(self, state: Any) -> None:
        wrote = False
        if state.epoch % self.every == 0:
            self._row(state)
            wrote = True
        if state.epoch % self.snapshot_every == 0:
            self._snapshot(state)
            wrote = True
        if wrote:
            self._commit()

    def on_train_end(self, state: Any) -> None:
        """Record the last epoch and snapshot; status ``finished``, ``stopped`` or ``failed``.

        When the store could not be written, only the status ``failed`` is written (best effort, over
        the rows committed before); a write failure here never hides the error ``fit`` is unwinding from.
        """
        if not self._ready:
            return
        error = sys.exc_info()[1]  # fit is unwinding from this exception (e.g. TrainingDiverged)
        if self._broken:
            self._mark_failed(error)
            return
        try:
            self._train_end(state, error)
        except StoreWriteError as err:
            self._broken = True
            self._mark_failed(err if error is None else error)
            if error is None:
                raise

    def _mark_failed(self, error: BaseException | None) -> None:
        """Publish the rows committed before a failure with status ``failed``; notes on ``error`` if even that fails."""
        self._pending = []
        try:
            self.writer.commit(
                *self._committed,
                **{schema.STATUS: schema.FAILED, schema.ERROR: f"{type(error).__name__}: {error}"},
            )
        except StoreWriteError as err:
            if error is not None:
                error.add_note(f"the run could not be marked failed in {self.path} either ({err})")

    def _train_end(self, state: Any, error: BaseException | None) -> None:
        if self._last_epoch != state.epoch and state.epoch > 0:
            self._row(state)
        if self._last_snapshot != state.epoch:
            self._snapshot(state)
        if error is not None:
            self._commit(**{schema.STATUS: schema.FAILED, schema.ERROR: f"{type(error).__name__}: {error}"})
        else:
            self._commit(
                **{schema.STATUS: schema.STOPPED if state.epoch < state.epochs else schema.FINISHED, schema.ERROR: None}
            )

    # -- continuing a store --------------------------------------------------------------------
    def _continue(self, state: Any) -> None:
        attrs = self.writer.open()
        if attrs.get(schema.SPEC) != _jsonable(state.model.spec()):
            raise ValueError(f"the store {self.path} records a different model; use another path")
        epochs = self.writer.read(schema.EPOCH)
        if state.epoch == 0 and len(epochs):
            raise FileExistsError(f"{self.path} already holds a run; pass overwrite=True to replace it")
        snaps = self.writer.read(schema.SNAPSHOT_EPOCH)
        keep_e = _prefix((epochs <= state.epoch) & (epochs % self.every == 0))
        keep_s = _prefix((snaps <= state.epoch) & ((snaps % self.snapshot_every == 0) | (np.arange(len(snaps)) == 0)))
        self.writer.commit(keep_e, keep_s, status=schema.RUNNING)
        self.writer.clear(schema.EPOCH, keep_e, len(epochs))
        self.writer.clear(schema.SNAPSHOT, keep_s, len(snaps))
        self._last_epoch = int(epochs[keep_e - 1]) if keep_e else 0
        self._last_snapshot = int(snaps[keep_s - 1]) if keep_s else -1
        self._chains = self._stored_chains(state.model, keep_s)

    def _stored_chains(self, model: Any, snapshots: int) -> list[torch.Tensor] | None:
        """The fantasy chains as the last kept snapshot left them (None when the store has none)."""
        names = [schema.FANTASY, *(schema.fantasy_var(layer.name) for layer in model.layers[1:])]
        if snapshots == 0 or any(name not in self.writer.arrays for name in names):
            return None
        rows = [np.asarray(self.writer.arrays[name][snapshots - 1]) for name in names]
        if any(r.shape[0] != self.particles or np.isnan(r).any() for r in rows):
            return None
        return [torch.from_numpy(r.copy()).to(model.device, model.dtype) for r in rows]

    def _fill_from_history(self, state: Any) -> None:
        """Rows for epochs trained before this recorder saw them, from ``state.history``."""
        history = getattr(state, "history", None) or {}
        for epoch in range(self._last_epoch + 1, state.epoch + 1):
            if epoch % self.every == 0 or epoch == state.epoch:
                row = {k: v[epoch - 1] for k, v in history.items() if len(v) >= epoch}
                if row:
                    self._write_row(epoch, row)

    # -- rows ----------------------------------------------------------------------------------
    def _row(self, state: Any) -> None:
        metrics = dict(state.metrics)
        if "lr" not in metrics:
            lr = getattr(state, "lr", None)
            if (lr is None or np.isnan(lr)) and state.optimizer is not None:
                lr = state.optimizer.param_groups[0]["lr"]
            metrics["lr"] = lr
        self._write_row(state.epoch, metrics)

    def _write_row(self, epoch: int, metrics: Mapping[str, Any]) -> None:
        w = self.writer
        i = w.done[schema.EPOCH]
        w.ensure(schema.EPOCH, [schema.EPOCH], [], "int64", -1, compress=False)
        self._pending.append((schema.EPOCH, i, np.array([epoch], dtype=np.int64)))
        for name, value in metrics.items():
            var = schema.metric_var(name)
            w.ensure(var, [schema.EPOCH], [], "float64", np.nan, attrs={"metric": name}, compress=False)
            self._pending.append((var, i, np.array([_float(name, value)], dtype=np.float64)))
        w.done[schema.EPOCH] = i + 1
        self._last_epoch = epoch

    # -- snapshots -----------------------------------------------------------------------------
    @torch.no_grad()
    def _snapshot(self, state: Any) -> None:
        model, w = state.model, self.writer
        s = w.done[schema.SNAPSHOT]
        dtype = str(model.dtype).removeprefix("torch.")
        units = [schema.unit_dim(layer.name) for layer in model.layers]
        put = self._pending.append
        w.ensure(schema.SNAPSHOT_EPOCH, [schema.SNAPSHOT], [], "int64", -1)
        put((schema.SNAPSHOT_EPOCH, s, np.array([state.epoch], dtype=np.int64)))
        for i, weight in enumerate(model.weights):
            name = schema.weights_var(i)
            w.ensure(name, [schema.SNAPSHOT, units[i], units[i + 1]], weight.shape, dtype, 0.0, compress=False)
            put((name, s, _numpy(weight)[None].copy()))
        for layer, dim in zip(model.layers, units):
            for pname, p in layer.named_parameters(recurse=False):
                if tuple(p.shape) == (layer.n,):
                    name = schema.param_var(layer.name, pname)
                    w.ensure(name, [schema.SNAPSHOT, dim], [layer.n], dtype, 0.0)
                    put((name, s, _numpy(p)[None].copy()))
        chains = self._advance_chains(state)
        for layer, dim, chain in zip(model.layers, units, chains):
            name = schema.FANTASY if layer is model.layers[0] else schema.fantasy_var(layer.name)
            w.ensure(name, [schema.SNAPSHOT, schema.PARTICLE, dim], chain.shape, dtype, np.nan, attrs=FANTASY_ATTRS)
            put((name, s, _numpy(chain)[None].copy()))
        negative = getattr(state.method, "particles", None)
        if hasattr(state.method, "particles") or schema.NEGATIVE in w.arrays:
            # a row per snapshot from the first one on (NaN while the method has no states yet), so every
            # chunk of a committed row exists even when a later write fails
            rows = np.full((self.particles, model.layers[0].n), np.nan, dtype=dtype)
            if negative:
                shown = _numpy(negative[0][: self.particles].detach().to(model.dtype))
                rows[: shown.shape[0]] = shown
            kind = str(getattr(state.method, "particles_kind", "negative-phase states"))
            dims = [schema.SNAPSHOT, schema.PARTICLE, units[0]]
            first = schema.NEGATIVE not in w.arrays
            w.ensure(schema.NEGATIVE, dims, rows.shape, dtype, np.nan, attrs={schema.KIND: kind})
            if first and s > 0:
                put((schema.NEGATIVE, 0, np.full((s, *rows.shape), np.nan, dtype=dtype)))
            put((schema.NEGATIVE, s, rows[None]))
        e_data = _numpy(data_energy(model, self._data)).astype(np.float64)
        e_fant = _numpy(state_energy(model, chains)).astype(np.float64)
        edges, h_data, h_fant = histograms(e_data, e_fant, self.bins)
        w.ensure(schema.BIN_EDGES, [schema.SNAPSHOT, schema.BIN_EDGE], [self.bins + 1], "float64", np.nan)
        put((schema.BIN_EDGES, s, edges[None]))
        for name, h in [(schema.ENERGY_HIST_DATA, h_data), (schema.ENERGY_HIST_FANTASY, h_fant)]:
            w.ensure(name, [schema.SNAPSHOT, schema.BIN], [self.bins], "float64", np.nan)
            put((name, s, h[None]))
        w.done[schema.SNAPSHOT] = s + 1
        self._last_snapshot = state.epoch

    def _advance_chains(self, state: Any) -> list[torch.Tensor]:
        """Advance the fantasy chains ``sample_steps`` sweeps under the current model (started from
        the layer biases the first time), with a generator seeded by (seed, epoch)."""
        model = state.model
        g = torch.Generator(device=model.device).manual_seed(fantasy_seed(self.seed, int(state.epoch)))
        if self._chains is None:
            self._chains = model.random_states(self.particles, g)
        chains = list(self._chains)
        for _ in range(self.sample_steps):
            chains = model._gibbs(chains, 1.0, None, g)
        self._chains = chains
        return chains

    def _commit(self, **attrs: Any) -> None:
        w = self.writer
        w.write_many(self._pending)
        self._pending = []
        w.commit(w.done[schema.EPOCH], w.done[schema.SNAPSHOT], **attrs)
        self._committed = (w.done[schema.EPOCH], w.done[schema.SNAPSHOT])


# -- energies and histograms -------------------------------------------------------------------
def data_energy(model: Any, v: torch.Tensor) -> torch.Tensor:
    """F(v) for an RBM; for deeper stacks F(h_even) with the even hidden layers at their mean-field values."""
    if model.depth == 2:
        return model._free_energy(v)
    return model._partial_free_energy(model._mean_field(v, 50, 1e-6), 1)


def state_energy(model: Any, states: list[torch.Tensor]) -> torch.Tensor:
    """F(v) of the visible states for an RBM; F(h_even) with the odd layers summed out for deeper stacks."""
    if model.depth == 2:
        return model._free_energy(states[0])
    return model._partial_free_energy(list(states), 1)


def histograms(a: np.ndarray, b: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shared edges spanning the finite values of ``a`` and ``b``, and the fraction of each per bin."""
    finite = np.concatenate([a[np.isfinite(a)], b[np.isfinite(b)]])
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    out = []
    for x in (a, b):
        x = x[np.isfinite(x)]
        counts = np.histogram(x, edges)[0].astype(np.float64)
        out.append(counts / max(x.size, 1))
    return edges, out[0], out[1]


# -- attributes --------------------------------------------------------------------------------
def run_attrs(state: Any, recorder: Mapping[str, Any]) -> dict[str, Any]:
    """Everything needed to rerun: model spec, method, optimizer, scheduler, seed, dataset, versions."""
    trainer, method, optimizer = state.trainer, state.method, state.optimizer
    method_attrs = {"name": getattr(method, "name", type(method).__name__)}
    if hasattr(method, "config"):
        method_attrs.update(method.config())
    optimizer_attrs: dict[str, Any] = {"class": type(optimizer).__name__ if optimizer is not None else None}
    if optimizer is not None and optimizer.param_groups:
        optimizer_attrs["hyperparameters"] = {k: v for k, v in optimizer.param_groups[0].items() if k != "params"}
    scheduler = getattr(trainer, "scheduler", None)
    data = state.data
    attrs = {
        schema.SPEC: state.model.spec(),
        schema.METHOD: method_attrs,
        schema.OPTIMIZER: optimizer_attrs,
        schema.SCHEDULER: None if scheduler is None else {"class": type(scheduler).__name__},
        schema.TRAINER: {
            k: getattr(trainer, k) for k in ("batch_size", "seed") if getattr(trainer, k, None) is not None
        }
        | {"epochs": getattr(state, "epochs", None)},
        schema.SEED: getattr(trainer, "seed", None),
        schema.DATASET: getattr(data, "name", type(data).__name__),
        schema.IMAGE_SHAPE: getattr(data, "image_shape", None),
        schema.NORMALIZATION: getattr(data, "normalization", None),
        schema.VERSIONS: versions(),
        schema.RECORDER: dict(recorder),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    return _jsonable(attrs)


def versions() -> dict[str, str]:
    """Versions of python, torch, numpy, xarray, zarr and ebmlab (xarray is not imported for it)."""
    from importlib.metadata import PackageNotFoundError, version

    from .. import __version__

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "xarray": installed("xarray"),
        "zarr": installed("zarr"),
        "ebmlab": __version__,
    }


def _jsonable(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, torch.Tensor):
        return _jsonable(x.tolist())
    if isinstance(x, np.generic):
        return x.item()
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    return repr(x)


def _float(name: str, value: Any) -> float:
    if value is None:
        return float("nan")
    try:
        return float(value)
    except (TypeError, ValueError) as err:
        raise TypeError(f"metric {name!r} must be a number, got {type(value).__name__}") from err


def fantasy_seed(seed: int, epoch: int) -> int:
    """Seed of the generator that advances the fantasy chains at the snapshot of ``epoch``."""
    return _derived_seed(FANTASY_SALT, seed, epoch)


def _prefix(mask: np.ndarray) -> int:
    """Length of the leading run of True in ``mask``."""
    return int(np.argmin(mask)) if not mask.all() else len(mask)


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _subset(data: Any, rows: int, seed: int) -> torch.Tensor:
    x = data.data if hasattr(data, "data") else torch.as_tensor(data)
    if x.shape[0] <= rows:
        return x
    g = torch.Generator().manual_seed(seed)
    return x[torch.randperm(x.shape[0], generator=g)[:rows]]
