"""The training loop: seeded epochs of shuffled mini-batches, any torch.optim optimizer.

Each batch: ``method.backward`` fills ``.grad`` with the surrogate-loss gradient (−∇ of the
log-likelihood estimate), penalties add theirs, the optimizer steps, constraints project.
Epoch e shuffles with a seed drawn from (seed, e) and all sampling uses one ``torch.Generator``
whose state is saved by ``state_dict()``, so a run resumed with ``load_state_dict`` + ``fit``
is bit-identical on CPU to an uninterrupted one.

``pause()``, ``resume()``, ``stop()`` and ``set_lr()`` may be called from another thread; they
take effect before the next batch (pause blocks between batches; a stopped epoch is not counted).
A non-finite loss or parameter, or a parameter that has run away (see ``max_param_growth``),
raises ``TrainingDiverged`` after rolling the parameters back to the state before that step.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .._checks import check_positive_int, check_real
from ..data import Dataset, batches
from ..data.zarr_dataset import ZarrDataset
from ..layers import BernoulliLayer, OneHotLayer
from ..model import BoltzmannMachine
from ._targets import resolve
from .constraints import Constraint
from .distributed import DataParallel, rank_seed, resume_seed, shares_noise
from .groups import layer_projections, param_groups
from .methods import Method
from .penalties import Penalty
from .state import Callback, TrainState

MetricFn = Callable[..., float]
OptimizerArg = torch.optim.Optimizer | type | Callable[..., torch.optim.Optimizer] | None


class TrainingDiverged(RuntimeError):
    """The loss or a parameter became NaN/Inf or ran away; the parameters were rolled back to the last good state."""


def epoch_seed(seed: int, epoch: int) -> int:
    """The shuffling seed of epoch ``epoch`` (0-based) of a run seeded ``seed``."""
    return _derived_seed(seed, epoch)


def _derived_seed(*words: int) -> int:
    """A 63-bit seed mixed from non-negative integers (numpy's SeedSequence)."""
    return int(np.random.SeedSequence(list(words)).generate_state(2).astype(np.int64)[0]) & (2**63 - 1)


def default_metrics(model: BoltzmannMachine) -> list[str]:
    """RBMs: reconstruction error, pseudo-likelihood (estimated over 8 units per row, with its standard
    error; discrete visible units), free-energy gap, and the log-likelihood when exact enumeration is
    cheap (``ebmlab.evaluate.live.exact_cost`` ≤ 2²²). Otherwise ask for ``"log_likelihood"`` by name:
    tracking log Z costs about 10 % of a 784×500 PCD epoch, twice the default metrics' budget.

    Deeper stacks: reconstruction error (their free energy needs enumeration).
    """
    from ..evaluate.live import EXACT_LIMIT, exact_cost

    if model.depth > 2:
        return ["reconstruction_error"]
    names = ["reconstruction_error"]
    discrete = [isinstance(layer, (BernoulliLayer, OneHotLayer)) for layer in model.layers]
    if discrete[0]:
        names.append("pseudo_likelihood")
    names.append("free_energy_gap")
    if all(discrete) and exact_cost(model) <= EXACT_LIMIT:
        names.append("log_likelihood")
    return names


def _postfix(metrics: dict[str, float]) -> dict[str, str]:
    """The progress bar's summary: the loss and the validation metrics (the train ones without validation)."""
    shown = [k for k in metrics if k.startswith("val_")] or [k for k in metrics if k not in _BOOKKEEPING]
    shown = [k for k in shown if not k.endswith("_stderr") and not math.isnan(metrics[k])]
    return {
        k.replace("reconstruction_error", "recon").replace("pseudo_likelihood", "pl"): f"{metrics[k]:.4g}"
        for k in shown
    }


_BOOKKEEPING = frozenset({"loss", "lr", "wall_seconds", "samples_per_second"})

# a metric whose measured cost is below this many seconds is computed every epoch, whatever the budget
METRIC_FLOOR_SECONDS = 0.005


class Trainer:
    """Fit a ``BoltzmannMachine`` with a ``Method`` (``CD``, ``PCD``, …).

    ``optimizer``: an optimizer over the model's parameters, an optimizer class (built with
    ``lr``) or a factory ``params -> optimizer``; default plain ``torch.optim.SGD`` with ``lr`` 0.05
    (chosen by ``benchmarks/defaults.py``: it learns within a few epochs for CD, PCD, PT and TAP on
    digits, MNIST and Fashion-MNIST, where Adam at 1e-3 barely moves on small data and Adam at 1e-2
    or SGD at 0.1 let PCD's chains fall behind).
    ``scheduler``: an ``lr_scheduler`` of that optimizer or a factory ``optimizer -> scheduler``,
    stepped once per epoch. ``penalties`` / ``constraints``: ``{name pattern: Penalty}`` or a list
    of (pattern, item) pairs, patterns being parameter names such as ``"weights.0"`` or globs.
    ``metrics``: ``{name: (model, data) -> float}`` or names from ``ebmlab.evaluate`` (default
    ``default_metrics(model)``), computed after each epoch on ``validation_rows`` rows of the
    training data (a fixed seeded subsample) and, prefixed ``val_``, of the validation data;
    paired metrics (``ebmlab.evaluate.PAIRED_METRICS``, e.g. ``free_energy_gap``) take
    ``(model, train, valid)`` and need validation data.

    ``max_param_growth`` (G, default 1e4; None turns it off) guards against runaway parameters: after
    every optimizer step, max_θ |θ| > G · max(1, max_θ |θ| at the start of ``fit``) raises
    ``TrainingDiverged`` with the parameters rolled back to the state before that step, as a NaN or
    Inf does. Healthy training stays orders of magnitude below it (|W| of 10⁴ freezes every unit of
    a Bernoulli model); a learning rate far too large (SGD or Adam at lr 1e6) crosses it at once.
    Only one ``fit`` may run on a Trainer at a time: a second concurrent call raises ``RuntimeError``.

    A metric may return an ``Estimate`` (a float with ``.stderr``); its standard error is recorded as
    ``<name>_stderr``. Stateful metrics (``ebmlab.evaluate.StatefulMetric``, e.g. the live
    ``log_likelihood``) are built once per Trainer (again when ``metrics`` is assigned), brought to the
    initial parameters before the first epoch, given ``after_step(model, method)`` after every optimizer
    step when they define it, and reset by ``load_state_dict``.

    ``metric_budget``: the fraction of training time the metrics may take on average (default 5 %).
    Each metric's cost (its training and validation calls) is measured in CPU seconds of this
    process (wall seconds on CUDA). Every epoch earns ``metric_budget`` × its training time; the
    metrics run together on the first epoch (to be measured), on the last epoch of ``fit``, and when
    the savings cover twice their last measured cost (one round now, one kept for the last epoch), so
    when they are expensive they run every n-th epoch, and are recorded as NaN on the others (in
    ``state.metrics``, the history and ``<name>_stderr``). A metric that costs under
    5 ms runs every epoch, and so does one whose ``every_epoch`` attribute is true (the tracked live
    log-likelihood), outside the budget. ``None``: every metric every epoch. ``wall_seconds`` and
    ``samples_per_second`` count the time the metrics took.

    ``process_group``: data-parallel training across the ranks of a ``torch.distributed`` group (see
    ``ebmlab.train.distributed`` for the contract). None (default): the default group when
    ``torch.distributed`` is initialized, else this process alone; False: this process alone even then.
    ``batch_size`` is then the global batch (divisible by the number of ranks); only rank 0 computes
    metrics, calls callbacks and shows progress. With more than one rank ``set_lr`` and ``pause`` raise
    ``RuntimeError`` (they would act on one rank): use a ``scheduler`` and ``stop()``.
    """

    def __init__(
        self,
        model: BoltzmannMachine,
        method: Method,
        optimizer: OptimizerArg = None,
        lr: float = 0.05,
        batch_size: int = 100,
        scheduler: Any = None,
        penalties: Mapping[str, Penalty] | Sequence[tuple[str, Penalty]] = (),
        constraints: Mapping[str, Constraint] | Sequence[tuple[str, Constraint]] = (),
        metrics: Mapping[str, MetricFn] | Sequence[str] | None = None,
        callbacks: Sequence[Callback] = (),
        seed: int = 0,
        progress: bool = True,
        validation_rows: int = 500,
        max_param_growth: float | None = 1e4,
        metric_budget: float | None = 0.05,
        process_group: Any = None,
    ) -> None:
        if not isinstance(model, BoltzmannMachine):
            raise TypeError(f"model must be an ebmlab BoltzmannMachine, got {type(model).__name__}")
        if not isinstance(method, Method):
            raise TypeError(f"method must be an ebmlab.train Method such as CD() or PCD(), got {type(method).__name__}")
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
            raise ValueError(f"lr must be a positive finite number, got {lr!r}")
        self.model, self.method = model, method
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.seed = check_positive_int(seed, "seed", minimum=0)
        self.validation_rows = check_positive_int(validation_rows, "validation_rows")
        if not isinstance(progress, bool):
            raise TypeError(f"progress must be True or False, got {progress!r}")
        self.progress = progress
        self.max_param_growth = None if max_param_growth is None else check_real(max_param_growth, "max_param_growth")
        if self.max_param_growth is not None and self.max_param_growth <= 1:
            raise ValueError(f"max_param_growth must be > 1 (or None), got {max_param_growth!r}")
        self._param_limit = math.inf
        if metric_budget is not None and (
            isinstance(metric_budget, bool) or not isinstance(metric_budget, (int, float)) or not metric_budget > 0
            or not math.isfinite(metric_budget)
        ):
            raise ValueError("metric_budget must be a positive fraction of training time or None, "
                             f"got {metric_budget!r}")
        self.metric_budget = None if metric_budget is None else float(metric_budget)
        self.optimizer = self._make_optimizer(optimizer, float(lr))
        self.scheduler = self._make_scheduler(scheduler)
        self.penalties = resolve(model, penalties, Penalty, "penalties")
        self.constraints = resolve(model, constraints, Constraint, "constraints")
        self._bind_constraints()
        self.metrics = metrics
        self.callbacks = list(callbacks)
        for i, cb in enumerate(self.callbacks):
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks[{i}] must be an ebmlab.train.Callback, got {type(cb).__name__}")
        self._dp = DataParallel.resolve(process_group)
        self.generator = torch.Generator(device=model.device).manual_seed(rank_seed(self.seed, method, model, self._dp))
        self._group_stop = False
        self.epoch = 0
        self.step = 0
        self.history: dict[str, list[float]] = {}
        self.state: TrainState | None = None
        self._unpaused = threading.Event()
        self._unpaused.set()
        self._stop = threading.Event()
        self._running = False
        self._fit_lock = threading.Lock()  # makes "is fit running?" and "now it is" one atomic step
        self._pending_lr: float | None = None
        self._paused_seconds = 0.0
        self._validated: dict[str, tuple[Any, torch.Tensor, int, Dataset, torch.Tensor]] = {}
        self._metric_credit = 0.0
        self._stderr_names: set[str] = set()
        self._train_clock = 0.0
        self._step_hooks: list[Callable[..., None]] = []

    # -- construction helpers ------------------------------------------------------------------
    def _make_optimizer(self, optimizer: OptimizerArg, lr: float) -> torch.optim.Optimizer:
        params = list(self.model.parameters())
        if optimizer is None:
            return torch.optim.SGD(param_groups(self.model, lr), lr=lr)
        if isinstance(optimizer, torch.optim.Optimizer):
            opt = optimizer
        elif isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer):
            opt = optimizer(param_groups(self.model, lr), lr=lr)
        elif callable(optimizer):
            opt = optimizer(params)
            if not isinstance(opt, torch.optim.Optimizer):
                raise TypeError(f"optimizer factory must return a torch.optim.Optimizer, got {type(opt).__name__}")
        else:
            raise TypeError(
                "optimizer must be a torch.optim.Optimizer, an optimizer class, or a factory params -> optimizer, "
                f"got {type(optimizer).__name__}"
            )
        ids = {id(p) for p in params}
        if not any(id(p) in ids for g in opt.param_groups for p in g["params"]):
            raise ValueError("optimizer does not optimize any parameter of model; build it from model.parameters()")
        return opt

    def _make_scheduler(self, scheduler: Any) -> Any:
        if scheduler is None:
            return None
        if not isinstance(scheduler, torch.optim.lr_scheduler.LRScheduler) and callable(scheduler):
            scheduler = scheduler(self.optimizer)
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            raise TypeError("scheduler: ReduceLROnPlateau needs a metric; step it from a Callback's on_epoch_end")
        if not isinstance(scheduler, torch.optim.lr_scheduler.LRScheduler):
            raise TypeError(
                f"scheduler must be a torch.optim.lr_scheduler or a factory optimizer -> scheduler, "
                f"got {type(scheduler).__name__}"
            )
        if scheduler.optimizer is not self.optimizer:
            raise ValueError("scheduler was built for another optimizer; pass a factory lambda opt: ... instead")
        return scheduler

    def _bind_constraints(self) -> None:
        self._projections = [c.bind(p, name) for name, p, c in self.constraints] + layer_projections(self.model)

    @property
    def metrics(self) -> dict[str, MetricFn] | list[str] | None:
        """The metrics as given (None: ``default_metrics``); setting them takes effect at the next ``fit``."""
        return self._metrics

    @metrics.setter
    def metrics(self, metrics: Mapping[str, MetricFn] | Sequence[str] | None) -> None:
        self._metrics = self._check_metrics(metrics)
        self._resolved: tuple[dict[str, MetricFn], dict[str, MetricFn]] | None = None  # rebuilt at the next fit
        self._metric_cost: dict[str, float] = {}  # and measured again

    @staticmethod
    def _check_metrics(metrics: Any) -> dict[str, MetricFn] | list[str] | None:
        if metrics is None:
            return None
        if isinstance(metrics, Mapping):
            for name, fn in metrics.items():
                if not isinstance(name, str) or not callable(fn):
                    raise TypeError(f"metrics must map names to callables (model, data) -> float; got {name!r}: {fn!r}")
            return dict(metrics)
        if isinstance(metrics, Sequence) and not isinstance(metrics, str) and all(isinstance(n, str) for n in metrics):
            from ..evaluate import get_metric

            for name in metrics:
                get_metric(name)
            return list(metrics)
        raise TypeError("metrics must be a dict {name: callable}, a list of ebmlab.evaluate metric names, or None")

    def _resolve_metrics(self) -> tuple[dict[str, MetricFn], dict[str, MetricFn]]:
        """(single-set metrics, paired metrics), built once per setting of ``metrics`` (stateful ones keep their
        state)."""
        if self._resolved is None:
            self._resolved = self._build_metrics()
        return self._resolved

    def _stateful(self) -> dict[str, Any]:
        """{name: metric} of the stateful metrics."""
        from ..evaluate import StatefulMetric

        single, paired = self._resolve_metrics()
        return {n: fn for n, fn in [*single.items(), *paired.items()] if isinstance(fn, StatefulMetric)}

    def _build_metrics(self) -> tuple[dict[str, MetricFn], dict[str, MetricFn]]:
        metrics = default_metrics(self.model) if self.metrics is None else self.metrics
        if not metrics:
            return {}, {}
        from ..evaluate import PAIRED_METRICS, get_metric

        items = metrics.items() if isinstance(metrics, dict) else [(n, get_metric(n)) for n in metrics]
        single = {n: f for n, f in items if n not in PAIRED_METRICS}
        paired = {n: f for n, f in items if n in PAIRED_METRICS}
        return single, paired

    # -- thread control ------------------------------------------------------------------------
    def pause(self) -> None:
        """Block the training loop before its next batch until ``resume()`` or ``stop()``."""
        self._refuse_under_data_parallel(
            "pause()", "would block this rank alone while the others wait in the next collective until it times out; "
            "use stop() (it reaches every rank through the next collective) and resume from a checkpoint"
        )
        self._unpaused.clear()

    def resume(self) -> Trainer:
        """Let a paused loop continue; returns the trainer.

        To continue from a checkpoint file use ``ebmlab.history.resume(trainer, path)`` (the training
        floor does not import the history floor).
        """
        self._unpaused.set()
        return self

    def stop(self) -> None:
        """End the running ``fit`` before its next batch (the unfinished epoch is not counted)."""
        self._stop.set()
        self._unpaused.set()

    @property
    def paused(self) -> bool:
        return not self._unpaused.is_set()

    @property
    def running(self) -> bool:
        """True while ``fit`` is executing (also while paused)."""
        return self._running

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def set_lr(self, lr: float) -> None:
        """Set the learning rate of every parameter group (and the scheduler's base), from the next batch."""
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
            raise ValueError(f"lr must be a positive finite number, got {lr!r}")
        self._refuse_under_data_parallel(
            "set_lr()", "would change the learning rate on this rank alone and make the ranks diverge; pass lr to "
            "the Trainer and a scheduler (Trainer(scheduler=...)), which every rank steps alike"
        )
        self._pending_lr = float(lr)
        if not self._running:
            self._apply_lr()

    def _refuse_under_data_parallel(self, what: str, why: str) -> None:
        """Raise ``RuntimeError`` for a control that would act on this rank alone when the group has several."""
        if self._dp is not None and self._dp.world > 1:
            raise RuntimeError(f"{what} is not supported under data-parallel training ({self._dp.where}): it {why}")

    def _apply_lr(self) -> None:
        lr, self._pending_lr = self._pending_lr, None
        if lr is None:
            return
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        if self.scheduler is not None:
            self.scheduler.base_lrs = [lr * g.get("lr_scale", 1.0) for g in self.optimizer.param_groups]

    def _proceed(self) -> bool:
        """Wait while paused; False once stopped."""
        if not self._unpaused.is_set():
            start = time.perf_counter()
            self._unpaused.wait()
            self._paused_seconds += time.perf_counter() - start
        return not self._stopped()

    def _stopped(self) -> bool:
        """Stopped: here, or under data parallelism on any rank as of the last collective (so all ranks agree)."""
        return self._stop.is_set() if self._dp is None else self._group_stop

    def _runs_here(self, fn: Any) -> bool:
        """Whether this rank calls metric ``fn``: always alone or on rank 0; elsewhere only collective ones."""
        return self._dp is None or self._dp.rank == 0 or getattr(fn, "collective", False)

    # -- data ----------------------------------------------------------------------------------
    def _dataset(self, data: Any, name: str) -> tuple[Dataset, torch.Tensor]:
        """(Dataset, validated tensor on the model's device and dtype).

        Data validated by an earlier ``fit`` and not modified since (the same object with the same
        version counter) is not scanned again, so repeated ``fit`` calls on large data stay cheap.
        """
        m = self.model
        raw = data.data.to(dtype=m.dtype, device=m.device) if isinstance(data, Dataset) else data
        seen = self._validated.get(name)
        if seen is not None and seen[0] is data and seen[1] is raw and seen[2] == raw._version:
            return seen[3], seen[4]
        x = m._visible(raw, name).detach()  # training data are constants: no graph back to their source
        ds = data if isinstance(data, Dataset) else Dataset(x, name=name)
        if isinstance(raw, torch.Tensor):
            self._validated[name] = (data, raw, raw._version, ds, x)
        return ds, x

    def _subsample(self, x: torch.Tensor, salt: int) -> torch.Tensor:
        if x.shape[0] <= self.validation_rows:
            return x
        g = torch.Generator().manual_seed(_derived_seed(self.seed, 2**32 + salt))
        idx = torch.randperm(x.shape[0], generator=g)[: self.validation_rows]
        return x[idx.to(x.device)]

    # -- the loop ------------------------------------------------------------------------------
    def fit(self, data: Any, epochs: int, validation: Any = None) -> dict[str, list[float]]:
        """Train until ``epochs`` epochs have been completed in total (continuing from ``self.epoch``).

        ``data`` / ``validation``: a ``Dataset``, tensor or array of visible rows. Returns the
        history: one list per metric name, one entry per completed epoch. A call while another
        thread's ``fit`` runs on this Trainer raises ``RuntimeError`` (checked and set atomically).
        """
        epochs = check_positive_int(epochs, "epochs")
        if not self._fit_lock.acquire(blocking=False):
            raise RuntimeError(
                "fit is already running on this Trainer (called from another thread); "
                "wait for it to return or stop() it first"
            )
        try:
            return self._fit(data, epochs, validation)
        finally:
            self._fit_lock.release()

    def _fit(self, data: Any, epochs: int, validation: Any) -> dict[str, list[float]]:
        """The body of ``fit``, run while holding the fit lock."""
        source = data if isinstance(data, ZarrDataset) else None  # out of core: batches stream from the store
        if source is not None:  # metrics, init and callbacks see a bounded in-memory subsample
            data = source.sample(self.validation_rows, seed=self.seed)
        if isinstance(validation, ZarrDataset):
            validation = validation.sample(self.validation_rows, seed=self.seed + 1)
        ds, x = self._dataset(data, "data")
        val_ds, xv = (None, None) if validation is None else self._dataset(validation, "validation")
        for name, rows in (("data", x), ("validation", xv)):
            if rows is not None and rows.shape[0] == 0:
                raise ValueError(f"{name} must have at least 1 row, got 0")
        rows = x.shape[0] if source is None else len(source)
        if self.batch_size > rows:
            raise ValueError(
                f"batch_size ({self.batch_size}) is larger than the number of data rows ({rows}); "
                "use a smaller batch_size"
            )
        single, paired = self._resolve_metrics()
        if paired and xv is None:
            paired = {}
        if self._dp is not None:
            self._dp.check_batches(self.batch_size, rows)
            single = {n: fn for n, fn in single.items() if self._runs_here(fn)}
            paired = {n: fn for n, fn in paired.items() if self._runs_here(fn)}
        train_sub = self._subsample(x, 0)
        val_sub = None if xv is None else self._subsample(xv, 1)
        per_epoch = math.ceil(rows / self.batch_size)
        self._stop.clear()
        self._group_stop = False
        state = TrainState(self, self.model, self.method, self.optimizer, ds, val_ds, self.epoch, epochs)
        state.batches, state.step, state.history, state.lr = per_epoch, self.step, self.history, self.lr
        state.train_seconds, state.metric_seconds = 0.0, 0.0
        self.state = state
        bar = tqdm(
            total=max(epochs - self.epoch, 0) * per_epoch,
            desc="training",
            unit="batch",
            disable=not self.progress or (self._dp is not None and self._dp.rank != 0),
            dynamic_ncols=True,
        )
        params = list(self.model.parameters())
        if self._dp is not None:
            self._dp.broadcast(params)
        self._good = [p.detach().clone() for p in params]
        if self.max_param_growth is not None:
            self._param_limit = self.max_param_growth * max(1.0, float(self._largest(params)))
        self._running = True
        began = time.perf_counter()
        callbacks = self._callbacks()
        try:
            for cb in callbacks:
                cb.on_train_begin(state)
            self._prepare_stateful(state)
            while self.epoch < epochs and not self._stopped():
                if not self._epoch(x if source is None else source, state, bar, params, began):
                    break
                start = time.perf_counter()
                final = self.epoch >= epochs
                state.metrics = self._epoch_metrics(state.metrics, train_sub, val_sub, single, paired, final)
                spent = time.perf_counter() - start
                state.metric_seconds += spent
                state.metrics["wall_seconds"] += spent
                state.metrics["samples_per_second"] = rows / max(state.metrics["wall_seconds"], 1e-12)
                for name, value in state.metrics.items():
                    column = self.history.setdefault(name, [])
                    column.extend([math.nan] * (self.epoch - 1 - len(column)))
                    column.append(value)
                if self.scheduler is not None:
                    self.scheduler.step()
                state.lr = self.lr
                state.elapsed = time.perf_counter() - began
                bar.set_postfix(_postfix(state.metrics), refresh=False)
                for cb in callbacks:
                    cb.on_epoch_end(state)
                if self._dp is not None:
                    self._group_stop = self._dp.epoch_end(params, self._stop.is_set(), self.epoch)
        finally:
            self._running = False
            bar.close()
            state.elapsed = time.perf_counter() - began
            for cb in callbacks:
                cb.on_train_end(state)
        return self.history

    def _epoch(
        self, x: torch.Tensor | ZarrDataset, state: TrainState, bar: Any, params: list[torch.nn.Parameter], began: float
    ) -> bool:
        """One epoch of batches (of a tensor, or streamed from a store); False when stopped before its end."""
        start = time.perf_counter()
        clock = self._clock()
        self._paused_seconds = 0.0
        total = 0.0
        for b, batch in enumerate(self._batches(x, epoch_seed(self.seed, self.epoch))):
            if not self._proceed():
                return False
            self._apply_lr()
            loss = self._train_step(batch, params)
            for hook in self._step_hooks:
                hook(self.model, self.method)
            total += loss * batch.shape[0]
            state.batch, state.step, state.loss, state.lr = b, self.step, loss, self.lr
            state.elapsed = time.perf_counter() - began
            bar.update(1)
            for cb in self._callbacks():
                cb.on_batch_end(state)
        wall = time.perf_counter() - start - self._paused_seconds
        self._train_clock = self._clock() - clock - (self._paused_seconds if self.model.device.type == "cuda" else 0.0)
        state.train_seconds += wall
        self.epoch += 1
        state.epoch = self.epoch
        state.metrics = {
            "loss": total / len(x),
            "lr": self.lr,
            "wall_seconds": wall,
            "samples_per_second": len(x) / max(wall, 1e-12),
        }
        return True

    def _batches(self, x: torch.Tensor | ZarrDataset, seed: int) -> Iterator[torch.Tensor]:
        """Shuffled batches of an in-memory tensor, or of a store (each cast and checked as it is read)."""
        if not isinstance(x, ZarrDataset):
            return batches(x, self.batch_size, seed=seed)
        m = self.model
        stream = x.to(m.device, m.dtype).batches(self.batch_size, seed=seed)
        return (m._visible(batch, "data").detach() for batch in stream)

    def _callbacks(self) -> list[Callback]:
        """The callbacks this process calls: all of them, or none on a data-parallel rank other than 0."""
        return self.callbacks if self._dp is None or self._dp.rank == 0 else []

    def _train_step(self, batch: torch.Tensor, params: list[torch.nn.Parameter]) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        if self._dp is None:
            loss = float(self.method.backward(self.model, batch, self.generator))
        else:  # this rank's rows; gradients, loss and stop all-reduced (see ``distributed``)
            loss, stop = self._dp.backward(
                self.method, self.model, batch, self.generator, params, self._stop.is_set(), self.step + 1
            )
            self._group_stop = self._group_stop or stop
        if not math.isfinite(loss):
            self._rollback(params)
            raise TrainingDiverged(
                f"the loss became {loss} at step {self.step + 1} (epoch {self.epoch + 1}); {self._advice()}"
            )
        with torch.no_grad():
            for _, p, penalty in self.penalties:
                g = penalty.grad(p)
                if p.grad is None:
                    p.grad = g
                else:
                    p.grad.add_(g)
            for good, p in zip(self._good, params):
                good.copy_(p)
        self.optimizer.step()
        for project in self._projections:
            project()
        self._check_parameters(params)
        self.step += 1
        return loss

    @staticmethod
    def _largest(params: list[torch.nn.Parameter]) -> torch.Tensor:
        """max_θ |θ| over all parameters (NaN if any entry is NaN)."""
        with torch.no_grad():
            return torch.stack([torch.maximum(-lo, hi) for lo, hi in (torch.aminmax(p) for p in params)]).max()

    def _check_parameters(self, params: list[torch.nn.Parameter]) -> None:
        """After a step: roll back and raise ``TrainingDiverged`` on a NaN/Inf or runaway parameter."""
        top = float(self._largest(params))
        if math.isfinite(top) and top <= self._param_limit:
            return
        self._rollback(params)
        where = f"at step {self.step + 1} (epoch {self.epoch + 1})"
        if not math.isfinite(top):
            raise TrainingDiverged(f"a parameter became NaN or Inf {where}; {self._advice()}")
        raise TrainingDiverged(
            f"parameters ran away {where}: max |θ| = {top:.3g} exceeds max_param_growth × max(1, max |θ| at the "
            f"start of fit) = {self._param_limit:.3g}; {self._advice()} (or raise max_param_growth)"
        )

    def _rollback(self, params: list[torch.nn.Parameter]) -> None:
        with torch.no_grad():
            for good, p in zip(self._good, params):
                p.copy_(good)

    def _advice(self) -> str:
        return f"parameters rolled back to the state before that step; try a smaller learning rate than {self.lr:g}"

    def _clock(self) -> float:
        """CPU seconds of this process (not inflated by other processes); wall seconds on CUDA."""
        if self.model.device.type == "cuda":
            torch.cuda.synchronize(self.model.device)
            return time.perf_counter()
        return time.process_time()

    def _prepare_stateful(self, state: TrainState) -> None:
        """Bring stateful metrics (the live log-likelihood) to the current parameters before training; those with
        an ``after_step(model, method)`` hook get it after every optimizer step."""
        self._step_hooks = [fn.after_step for fn in self._stateful().values() if hasattr(fn, "after_step")]
        for fn in self._stateful().values():
            if not self._runs_here(fn):
                continue
            start, wall = self._clock(), time.perf_counter()
            fn.update(self.model)
            state.metric_seconds += time.perf_counter() - wall
            if not getattr(fn, "every_epoch", False):
                self._metric_credit -= self._clock() - start

    def _scheduled(self, names: list[str], final: bool) -> bool:
        """Whether the metrics above the cost floor run this epoch (see ``metric_budget``); saves the budget.

        They run on the last epoch of ``fit``, on their first epoch, and otherwise when the savings
        cover twice their cost: one round now and one kept for the last epoch."""
        if self.metric_budget is None:
            return True
        self._metric_credit += self.metric_budget * self._train_clock
        costs = [self._metric_cost.get(n) for n in names]
        if final or any(c is None for c in costs):
            return True
        return self._metric_credit >= 2 * sum(c for c in costs if c is not None and c > METRIC_FLOOR_SECONDS)

    def _record(self, out: dict[str, float], name: str, value: Any) -> None:
        out[name] = float(value)
        stderr = getattr(value, "stderr", None)
        if stderr is not None:
            self._stderr_names.add(name)
            out[f"{name}_stderr"] = float(stderr)

    @torch.no_grad()
    def _epoch_metrics(
        self,
        metrics: dict[str, float],
        train: torch.Tensor,
        valid: torch.Tensor | None,
        single: dict[str, MetricFn],
        paired: dict[str, MetricFn],
        final: bool = False,
    ) -> dict[str, float]:
        """The epoch's metrics: scheduled ones computed, the others NaN (with their ``_stderr``)."""
        out = dict(metrics)
        every = {
            n for n, fn in [*single.items(), *paired.items()]
            if getattr(fn, "every_epoch", False) or getattr(fn, "collective", False)
        }
        scheduled = self._scheduled([n for n in [*single, *paired] if n not in every], final)
        for name, fn in [*single.items(), *paired.items()]:
            names = [name] if name in paired or valid is None else [name, f"val_{name}"]
            cost = self._metric_cost.get(name)
            if name not in every and not scheduled and cost is not None and cost > METRIC_FLOOR_SECONDS:
                for n in names:
                    out[n] = math.nan
                    if n in self._stderr_names:
                        out[f"{n}_stderr"] = math.nan
                continue
            start = self._clock()
            if final and hasattr(fn, "settle"):  # a stateful metric may spend more on the value a fit ends with
                fn.settle(self.model)
            if name in paired:
                self._record(out, name, fn(self.model, train, valid))
            else:
                self._record(out, name, fn(self.model, train))
                if valid is not None:
                    self._record(out, f"val_{name}", fn(self.model, valid))
            cost = self._clock() - start
            self._metric_cost[name] = cost
            if name not in every:
                self._metric_credit -= cost
        out.update({k: float(v) for k, v in self.method.metrics().items()})
        return out

    # -- persistence ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything a bit-identical resume needs: model, optimizer, scheduler, method, RNG, epoch, history."""
        return {
            "model": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "scheduler": None if self.scheduler is None else copy.deepcopy(self.scheduler.state_dict()),
            "method": self.method.state_dict(),
            "generator": self.generator.get_state(),
            "seed": self.seed,
            "epoch": self.epoch,
            "step": self.step,
            "history": {k: list(v) for k, v in self.history.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore ``state_dict()``; the next ``fit`` continues from its epoch."""
        if self._running:
            raise RuntimeError("cannot load a state while fit is running")
        missing = {"model", "optimizer", "method", "generator", "seed", "epoch", "step", "history"} - set(state)
        if missing:
            raise ValueError(f"state is missing {sorted(missing)}; pass a dict from Trainer.state_dict()")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if (state.get("scheduler") is None) != (self.scheduler is None):
            raise ValueError("state and trainer disagree on having a scheduler")
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.method.load_state_dict(state["method"])
        self.generator.set_state(state["generator"])
        self.seed, self.epoch, self.step = int(state["seed"]), int(state["epoch"]), int(state["step"])
        self.history = {k: list(v) for k, v in state["history"].items()}
        if self._dp is not None and self._dp.world > 1 and not shares_noise(self.method, self.model):
            self.generator.manual_seed(resume_seed(self.seed, self.step, self._dp.rank))  # per-rank chains re-drawn
            self.method.reset()
        self._bind_constraints()
        for fn in self._stateful().values():
            fn.reset()
