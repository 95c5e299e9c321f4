"""Data-parallel training on ``torch.distributed`` (gloo on CPU, NCCL on CUDA).

Contract of ``Trainer(..., process_group=...)`` with N ranks (``DataParallel``):

- Every rank shuffles with the same ``epoch_seed`` and so sees the same *global* batches of
  ``batch_size`` rows; rank r keeps rows [start_r, stop_r) of each (``DataParallel.rows``: equal
  shares, the first ``B mod N`` ranks one more row in a smaller last batch).
- Rank r computes the gradient g_r of the surrogate on its b_r rows; one ``all_reduce`` (sum) of
  the flattened (b_r / B) · g_r gives Σ_r (b_r/B) g_r: for the data term (a mean over rows) that is
  exactly the gradient of the global batch. The same buffer carries the loss and a stop flag, so a
  step costs one collective. We reduce explicitly rather than wrap the model in
  ``DistributedDataParallel``: methods fill ``.grad`` themselves (the analytic CD/PCD path has no
  autograd graph for DDP's hooks), and the row weights of an uneven last batch are explicit.
- Parameters are broadcast from rank 0 when ``fit`` starts, every rank applies the same reduced
  gradient, penalties and optimizer step, so they stay bit-identical; a checksum compared once per
  epoch (one tiny ``all_reduce``, which also carries ``stop()`` from rank 0) proves it.
- Randomness. CD-k from the data on a Bernoulli RBM (``CD.fast_path``) *shares* the noise: every
  rank's generator is seeded with ``seed`` as a single process's is, draws the uniforms of the
  whole global batch and keeps its rows, so N ranks give the parameters of one process to float
  rounding (the extra draws are O(B × units), small beside the O(B × V × H / N) matmuls). Every
  other method (PCD, PT, TAP, CD on other layers) draws from a per-rank stream seeded
  ``_derived_seed(seed, RANK_STREAM, rank)`` (rank 0 keeps ``seed``) and keeps its own persistent
  chains: ``chains`` per rank, N × ``chains`` in all.
- Only rank 0 computes metrics, calls callbacks (history, checkpoints, dashboards) and shows the
  progress bar; a metric whose ``collective`` attribute is true (e.g.
  ``ebmlab.evaluate.sharded.ShardedLogLikelihood``) is called on every rank, every epoch.
- Resume: a checkpoint holds rank 0's state (model, optimizer, epoch, step, history, generator).
  All ranks load the same file; with N > 1 ranks a method with per-rank streams gets its generator
  re-derived from (seed, step, rank) and its chains re-drawn (not re-split), so resuming with the
  same or a different number of ranks works; shared-noise CD keeps the shared stream exactly.
- Failures: a collective that fails (a rank died, or did not answer within the group's
  ``timeout``) raises ``DistributedError`` naming this rank, the world size and what to do.
"""

from __future__ import annotations

import datetime
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from .._checks import check_device
from ..model import BoltzmannMachine
from .methods import CD, Method

RANK_STREAM = 2**33  # salt of the per-rank random streams
RESUME_STREAM = 2**34  # salt of the streams re-derived on resume
DEFAULT_TIMEOUT = 120.0  # seconds a collective may wait for the other ranks
T = TypeVar("T")


class DistributedError(RuntimeError):
    """A collective failed: another rank died or did not answer within the timeout."""


def shares_noise(method: Method, model: BoltzmannMachine) -> bool:
    """Whether ``method`` draws the noise of the global batch on every rank (CD-k on its analytic RBM path)."""
    return isinstance(method, CD) and method.fast_path(model)


@dataclass(frozen=True)
class DataParallel:
    """This process's place in a process group: ``rank`` of ``world`` (``group`` None: the default group)."""

    group: Any
    rank: int
    world: int

    @classmethod
    def resolve(cls, process_group: Any) -> DataParallel | None:
        """``False``: none. ``None``: the default group when ``torch.distributed`` is initialized. A group: it."""
        if process_group is False:
            return None
        if process_group is None:
            if not (dist.is_available() and dist.is_initialized()):
                return None
            return cls(None, dist.get_rank(), dist.get_world_size())
        if not (dist.is_available() and isinstance(process_group, dist.ProcessGroup)):
            raise TypeError(
                "process_group must be a torch.distributed ProcessGroup, None (the default group when initialized) "
                f"or False (train in this process alone), got {type(process_group).__name__}"
            )
        return cls(process_group, dist.get_rank(process_group), dist.get_world_size(process_group))

    @property
    def where(self) -> str:
        return f"rank {self.rank} of {self.world}"

    def rows(self, total: int) -> tuple[int, int]:
        """[start, stop) of this rank's rows in a batch of ``total``: equal shares, the first total mod N one more."""
        base, extra = divmod(total, self.world)
        start = self.rank * base + min(self.rank, extra)
        return start, start + base + (self.rank < extra)

    def check_batches(self, batch_size: int, rows: int) -> None:
        """Refuse a ``batch_size`` not divisible by the world size, or a last batch that leaves a rank no row."""
        if batch_size % self.world:
            raise ValueError(
                f"batch_size ({batch_size}) must be divisible by the number of ranks ({self.world}): it is the global "
                f"batch, split evenly across ranks; use e.g. {self.world * max(1, round(batch_size / self.world))}"
            )
        last = rows % batch_size
        if 0 < last < self.world:
            raise ValueError(
                f"the last batch of each epoch would hold {last} row(s) of {rows}, fewer than the {self.world} ranks; "
                "choose a batch_size for which the data rows modulo batch_size is 0 or at least the number of ranks"
            )

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except RuntimeError as err:
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise DistributedError(
                f"{self.where}: {what} failed ({reason}); another rank has probably died or stopped answering "
                "(see its own output). Training stopped here; rerun, or continue from the last checkpoint "
                "(ebmlab train --resume)"
            ) from None

    def _src(self) -> int:
        """The global rank of the group's rank 0."""
        return 0 if self.group is None else dist.get_global_rank(self.group, 0)

    def broadcast(self, tensors: Sequence[torch.Tensor]) -> None:
        """Copy rank 0's values into ``tensors`` on every rank (one collective)."""
        with torch.no_grad():
            flat = torch.cat([t.detach().reshape(-1) for t in tensors])
            self._call("broadcasting the parameters from rank 0", lambda: dist.broadcast(flat, self._src(), self.group))
            offset = 0
            for t in tensors:
                t.copy_(flat[offset : offset + t.numel()].view_as(t))
                offset += t.numel()

    def backward(
        self,
        method: Method,
        model: BoltzmannMachine,
        batch: torch.Tensor,
        generator: torch.Generator | None,
        params: Sequence[torch.nn.Parameter],
        stop: bool,
        step: int,
    ) -> tuple[float, bool]:
        """This rank's gradient on its rows, all-reduced with row weights into ``.grad``: (global loss, any stop)."""
        total = batch.shape[0]
        start, end = self.rows(total)
        shared = shares_noise(method, model)
        if shared:
            method.noise_rows = (total, start, end)
        try:
            loss = method.backward(model, batch[start:end], generator)
        finally:
            if shared:
                method.noise_rows = None
        with torch.no_grad():
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
            like = {"dtype": grads[0].dtype, "device": grads[0].device}  # the loss and the stop flag, beside them
            extra = torch.stack([loss.detach().to(**like).reshape(()), torch.zeros((), **like)])
            flat = torch.cat([*(g.reshape(-1) for g in grads), extra])
            flat.mul_((end - start) / total)
            flat[-1] = float(stop)
            what = f"the all_reduce of the gradients at step {step}"
            self._call(what, lambda: dist.all_reduce(flat, group=self.group))
            offset = 0
            for p in params:
                if p.grad is not None:
                    p.grad.copy_(flat[offset : offset + p.numel()].view_as(p))
                offset += p.numel()
        return float(flat[-2]), bool(flat[-1] > 0)

    def epoch_end(self, params: Sequence[torch.nn.Parameter], stop: bool, epoch: int) -> bool:
        """Check that the parameters agree on every rank and share rank 0's stop: True when any rank stops.

        One all_reduce (max) of [c, −c, stop] with c the float64 sum of each parameter: max c = −max(−c)
        on every entry exactly when all ranks hold the same sums."""
        with torch.no_grad():
            sums = torch.stack([p.detach().to(torch.float64).sum() for p in params])
            flag = torch.tensor([float(stop)], dtype=torch.float64, device=sums.device)
            buf = torch.cat([sums, -sums, flag])
            self._call(f"the end-of-epoch check after epoch {epoch}", lambda: dist.all_reduce(buf, dist.ReduceOp.MAX,
                                                                                            group=self.group))
            n = len(params)
            if not torch.equal(buf[:n], -buf[n : 2 * n]):
                raise DistributedError(
                    f"{self.where}: the parameters differ between ranks after epoch {epoch}; data-parallel training "
                    "needs deterministic, identical updates on every rank"
                )
        return bool(buf[-1] > 0)


def rank_seed(seed: int, method: Method, model: BoltzmannMachine, dp: DataParallel | None) -> int:
    """The seed of this rank's generator (see the module docstring): ``seed`` itself unless a per-rank stream."""
    from .trainer import _derived_seed

    if dp is None or dp.rank == 0 or shares_noise(method, model):
        return seed
    return _derived_seed(seed, RANK_STREAM, dp.rank)


def resume_seed(seed: int, step: int, rank: int) -> int:
    """The per-rank stream re-derived when a checkpoint is resumed on more than one rank."""
    from .trainer import _derived_seed

    return _derived_seed(seed, RESUME_STREAM, step, rank)


def env_world() -> tuple[int, int, int] | None:
    """(rank, world size, local rank) from the variables torchrun sets, or None outside torchrun."""
    if "WORLD_SIZE" not in os.environ:
        return None
    try:
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local = int(os.environ.get("LOCAL_RANK", rank))
    except (KeyError, ValueError) as err:
        raise ValueError(
            f"WORLD_SIZE is set but RANK/WORLD_SIZE/LOCAL_RANK are not all integers ({err}); launch with torchrun"
        ) from None
    if not 0 <= rank < world:
        raise ValueError(f"RANK ({rank}) must be in [0, WORLD_SIZE={world})")
    return rank, world, local


def init_process_group(
    device: torch.device | str, backend: str = "auto", timeout: float = DEFAULT_TIMEOUT
) -> DataParallel:
    """Join the group described by torchrun's environment (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT).

    ``device``: this rank's device (``torch.device`` or a name such as ``"cpu"``, ``"cuda:1"``). A CUDA device
    (``"cuda"`` alone: ``cuda:LOCAL_RANK``) becomes this process's current device before the group is
    created, so that NCCL and ``torch.cuda.current_device()`` use this rank's GPU, not GPU 0 on every rank.
    ``backend``: ``"auto"`` (nccl for a CUDA ``device``, gloo otherwise), ``"gloo"`` or ``"nccl"`` (CUDA only).
    ``timeout``: seconds a collective waits for the other ranks before failing."""
    device = check_device(device, "device")
    if backend not in ("auto", "gloo", "nccl"):
        raise ValueError(f"backend must be 'auto', 'gloo' or 'nccl', got {backend!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not (0 < timeout < math.inf):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if backend == "auto":
        backend = "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl" and (device.type != "cuda" or not torch.cuda.is_available()):
        raise ValueError(f"backend 'nccl' needs a CUDA device, got device {device}; use gloo on CPU")
    world = env_world()
    if world is None:
        raise ValueError("no process group to join: WORLD_SIZE/RANK are not set; launch with torchrun "
                         "(or ebmlab train --nproc N)")
    if device.type == "cuda":
        if device.index is None:  # this rank's GPU under torchrun
            device = check_device(torch.device("cuda", world[2]), "device 'cuda' (cuda:LOCAL_RANK)")
        torch.cuda.set_device(device)
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=float(timeout)))
    return DataParallel(None, dist.get_rank(), dist.get_world_size())
