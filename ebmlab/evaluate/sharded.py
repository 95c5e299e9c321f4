"""AIS and the live log-likelihood with their chains split across the ranks of a ``torch.distributed`` group.

``log_partition(model, chains, ...)``: every rank runs forward (or reverse) AIS with ``chains``
chains from its own stream, seeded ``shard_seed(seed, rank)``; the float64 log-weights are gathered
(``all_gather``, rank order) and every rank computes the same estimate from all N × ``chains``
weights: log Ẑ = log Z_0 ± log mean exp(w), its delta-method standard error, the ESS and the
convergence checks, exactly as ``ais.log_partition`` does on one process. So the result equals one
process's estimate from the concatenated weights of ``ais.log_partition(seed=shard_seed(seed, r))``
for r = 0 … N−1, bit for bit on CPU, and N ranks buy N times the chains for the time of one.

``ShardedLogLikelihood``: a Trainer metric (``collective = True``: the Trainer calls it on every
rank) holding one ``LiveLogLikelihood`` per rank with its own particles (seeded per rank). Each
rank's tracked Ẑ_r is an unbiased estimate of Z, so their mean is one too: with gathered log Ẑ_r
and standard errors σ_r, log Ẑ = log mean_r exp(log Ẑ_r) and, by the delta method over
independent ranks, s.e.² = Σ_r (Ẑ_r / Σ Ẑ)² σ_r², infinite when a rank's tracked log Z is not
``trusted`` (as ``LiveLogLikelihood`` reports it). In exact mode every rank holds the same exact log Z
and the combination returns it. The free energy of the rows is split across the ranks too (rank r
takes its share of the rows; sums all-reduced).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from . import ais
from ._common import Estimate, check_model
from .diagnostics import TOLERANCE, log_mean_exp, warn_if_not_converged, weight_diagnostics
from .live import LiveLogLikelihood, StatefulMetric

SHARD_STREAM = 2**35  # salt of the per-rank seeds


def shard_seed(seed: int, rank: int) -> int:
    """The seed of rank ``rank``'s chains: a 63-bit seed mixed from (seed, salt, rank) by numpy's SeedSequence."""
    state = np.random.SeedSequence([int(seed), SHARD_STREAM, int(rank)]).generate_state(2)
    return int(state.astype(np.int64)[0]) & (2**63 - 1)


def _group(process_group: Any) -> tuple[Any, int, int]:
    """(group, rank, world) of ``process_group`` or of the initialized default group."""
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError("sharded estimators need an initialized torch.distributed process group "
                           "(torch.distributed.init_process_group, or launch with torchrun)")
    if process_group is not None and not isinstance(process_group, dist.ProcessGroup):
        raise TypeError(f"process_group must be a torch.distributed ProcessGroup or None, "
                        f"got {type(process_group).__name__}")
    return process_group, dist.get_rank(process_group), dist.get_world_size(process_group)


def _all_gather(values: torch.Tensor, group: Any, device: torch.device) -> torch.Tensor:
    """(world, n) float64 CPU tensor of every rank's ``values`` (n equal on all ranks). Gathered on the CPU for
    gloo; for NCCL (CUDA tensors only) on ``device``, the model's GPU, or the current one for a model off CUDA."""
    if dist.get_backend(group) != "nccl":
        device = torch.device("cpu")
    elif device.type != "cuda":
        device = torch.device("cuda", torch.cuda.current_device())
    local = values.detach().to(device=device, dtype=torch.float64).contiguous()
    parts = [torch.empty_like(local) for _ in range(dist.get_world_size(group))]
    dist.all_gather(parts, local, group=group)
    return torch.stack(parts).cpu()


@torch.no_grad()
def log_partition(
    model: Any,
    chains: int = 100,
    betas: Any = "sm2008",
    data: Any = None,
    reverse: bool = False,
    seed: int = 0,
    progress: bool = True,
    tolerance: float = TOLERANCE,
    warn: bool = True,
    process_group: Any = None,
    **kwargs: Any,
) -> ais.AISResult:
    """AIS for log Z with ``chains`` chains on each rank, weights gathered; the same result on every rank.

    Arguments as ``ais.log_partition`` (``kwargs``: ``init``, ``burn_in``); ``chains`` is per rank, the
    result's ``log_weights`` hold all N × ``chains`` in rank order. All ranks must call it. Only rank 0
    shows progress and warns when the combined estimate has not converged."""
    group, rank, _ = _group(process_group)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer (each rank's seed is derived from it), got {seed!r}")
    local = ais.log_partition(
        model, chains=chains, betas=betas, data=data, reverse=reverse, seed=shard_seed(seed, rank),
        progress=progress and rank == 0, tolerance=tolerance, warn=False, floor_samples=0, **kwargs,
    )
    device = check_model(model).device
    log_w = _all_gather(local.log_weights, group, device).reshape(-1)
    lme, stderr, ess = log_mean_exp(log_w)
    diag = weight_diagnostics(log_w, tolerance)
    log_z = local.log_z_base - lme if reverse else local.log_z_base + lme
    seconds = float(_all_gather(torch.tensor([local.seconds]), group, device).max())
    result = ais.AISResult(log_z, stderr, ess, log_w, local.log_z_base, reverse, local.steps, seconds, diag)
    if warn and rank == 0:
        warn_if_not_converged(f"sharded AIS {'reverse' if reverse else 'forward'} {result}", diag)
    return result


def combine_log_z(log_z: torch.Tensor, stderr: torch.Tensor) -> tuple[float, float]:
    """(log mean exp of independent estimates log Ẑ_r, delta-method s.e. √Σ (Ẑ_r/ΣẐ)² σ_r²); an infinite σ_r
    (an untrusted estimate) makes the s.e. infinite, whatever its share."""
    log_z, stderr = log_z.to(torch.float64), stderr.to(torch.float64)
    n = log_z.shape[0]
    share = torch.softmax(log_z, 0)
    value = float(torch.logsumexp(log_z, 0) - math.log(n))
    if torch.isinf(stderr).any():
        return value, math.inf
    return value, float(torch.sqrt((share**2 * stderr**2).sum()))


class ShardedLogLikelihood(StatefulMetric):
    """Mean log p(v) with log Z tracked by one ``LiveLogLikelihood`` per rank (``particles`` each), combined.

    ``kwargs`` go to each rank's ``LiveLogLikelihood`` (``particles``, ``sweeps``, ``jumps``, ``method`` …);
    its seed is ``shard_seed(seed, rank)``. Every rank must call it with the same rows (the Trainer does:
    ``collective`` is true). ``log_z`` is the combined estimate of the last call."""

    collective = True

    def __init__(self, seed: int = 0, process_group: Any = None, **kwargs: Any) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.seed, self.process_group, self.kwargs = seed, process_group, kwargs
        self._live: LiveLogLikelihood | None = None
        self.log_z = Estimate(math.nan, math.nan)
        LiveLogLikelihood(**kwargs)  # refuse bad settings now, on every rank

    def _local(self) -> LiveLogLikelihood:
        if self._live is None:
            _, rank, _ = _group(self.process_group)
            self._live = LiveLogLikelihood(seed=shard_seed(self.seed, rank), **self.kwargs)
        return self._live

    @property
    def every_epoch(self) -> bool:
        return self._live is not None and self._live.every_epoch

    def reset(self) -> None:
        if self._live is not None:
            self._live.reset()
        self.log_z = Estimate(math.nan, math.nan)

    def update(self, model: Any) -> None:
        """Bring every rank's log Z to the model's parameters (no collective: ranks update independently)."""
        self._local().update(model)

    def after_step(self, model: Any, method: Any = None) -> None:
        """The Trainer's per-step hook, passed to this rank's ``LiveLogLikelihood`` (its bridges are local)."""
        self._local().after_step(model, method)

    def settle(self, model: Any) -> None:
        """Before the value a fit ends with: this rank's ``LiveLogLikelihood.settle`` (local, like its bridges)."""
        self._local().settle(model)

    @torch.no_grad()
    def __call__(self, model: Any, data: Any) -> Estimate:
        """Mean over all rows of −F(v) − log Ẑ, with the combined standard error of log Z."""
        group, rank, world = _group(self.process_group)
        model = check_model(model)
        x = model._visible(data, "data")
        base, extra = divmod(x.shape[0], world)
        start = rank * base + min(rank, extra)
        rows = x[start : start + base + (rank < extra)]
        live = self._local()
        if rows.shape[0]:
            value = live(model, rows)  # its own proposal rows come from this rank's share
            neg_f = (float(value) + float(live.log_z)) * rows.shape[0]
        else:
            live.update(model)
            neg_f = 0.0
        z = live.log_z
        stderr = z.stderr if live.trusted else math.inf  # as ``LiveLogLikelihood`` reports an untrusted log Z
        parts = _all_gather(torch.tensor([neg_f, float(rows.shape[0]), float(z), stderr]), group, model.device)
        log_z, stderr = combine_log_z(parts[:, 2], parts[:, 3])
        self.log_z = Estimate(log_z, stderr)
        return Estimate(float(parts[:, 0].sum() / parts[:, 1].sum()) - log_z, stderr)
