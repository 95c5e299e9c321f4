"""log Z of an RBM by Bennett's acceptance ratio on parallel-tempering samples (PT + BAR).

Krause, Fischer & Igel (2020), "Algorithms for estimating the partition function of restricted
Boltzmann machines", compared AIS, reverse AIS, BAR and others on RBMs and found BAR on samples of
parallel tempering the most reliable. Here:

1. **Ladder.** A pilot forward-AIS run (``pilot_chains`` chains along ``pilot_betas``) along the
   tempering path (below) measures the spread of its log-weight increments,
   i.e. the thermodynamic length L ≈ Σ sd(log f_{β_k} − log f_{β_{k−1}}). Rungs 0 = β_0 < … < β_K = 1
   are placed at equal shares of L, with K = ⌈L / ``spacing``⌉ (clipped to ``max_rungs``), so
   that neighbours overlap alike everywhere. The pilot's log Ẑ is a stochastic lower bound on log Z
   (kept as ``result.pilot``) and serves as a check below.
2. **Parallel tempering.** ``chains`` independent columns, each a PT run over all K + 1 rungs:
   a block-Gibbs sweep at every rung, then Metropolis swaps between neighbours (even pairs, then
   odd pairs, alternating), accepted with probability
   min(1, f_k(x_{k+1}) f_{k+1}(x_k) / (f_k(x_k) f_{k+1}(x_{k+1}))). The columns are split into
   ``replicas`` groups with *overdispersed starts*: even groups start every rung at a training row
   (where a trained model's mass sits), odd groups at draws of the path's β = 0 distribution.
3. **BAR.** For neighbours k, k+1 with samples x ~ p_k, y ~ p_{k+1} (all sweeps after
   ``burn_in``), u = log f_{k+1} − log f_k, the ratio Δ_k = log Z_{k+1} − log Z_k solves
   (Bennett 1976; equal sample counts)

       Σ_x σ(u(x) − Δ_k) = Σ_y σ(Δ_k − u(y)),

   the minimum-variance estimator among all acceptance-ratio ones; log Ẑ = log Z_0 + Σ_k Δ_k.
   Its identity: with a = f_0/Z_0, b = f_1/Z_1, E_0[b/(a + b)] = Σ ab/(a + b) = E_1[a/(a + b)].

Standard error and verdict. Each replica group is an independent PT run, so the spread of the
groups' BAR estimates (sd / √replicas) is an honest standard error that includes autocorrelation
and the effect of the different starts — but not a bias that all groups share while it decays
(see the drift check). Converged when (``ebmlab.evaluate.diagnostics``):
2√2 · s.e. ≤ ``tolerance``; the replica groups (data-started and base-started) agree within
``tolerance`` + 3 s.e. of their difference; the estimates from the first and the second half of the
kept sweeps agree within ``tolerance`` + 4 s.e. (a Geweke-style drift check: on an overfitted MNIST
RBM the estimate fell from 547 to 540 to 535 as the run grew from 200 to 400 to 1,000 sweeps, the
data-started chains' start bias decaying slowly, while each run's replica s.e. stayed below 1 nat);
every neighbour pair swapped at least ``MIN_SWAP`` of the time (otherwise rungs do not exchange and
BAR's overlap is poor); and log Ẑ does not lie more than 3 nats + 3 s.e. below the pilot's
forward-AIS lower bound (Markov: the pilot exceeds log Z by t with probability ≤ e^{−t}), nor below
the log Z floor of ``ebmlab.evaluate.floor`` (annealed importance sampling from the training rows, also a
lower bound; on an overfitted MNIST RBM whose ladder did not mix, PT + BAR gave 775 against a floor of 798).
RBMs only (the hidden layer is summed out).

Path. ``path="rate"`` tempers from the base-rate model (``path.RBMPath``, state v). ``path="data"``
tempers from the hidden conditionals of training rows (``data_path.DataPath``, state h): on an
overfitted model, whose mass sits in sharp modes near the training rows, the base-rate ladder has to
cross a transition that its swaps rarely pass, while the data-centred ladder starts inside those modes.
Both end at the same model, so both estimate the same log Z, and every check above applies to either.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .._checks import check_positive_int
from ._common import check_model
from .ais import AISResult
from .base_rate import BaseRate
from .data_path import CENTRES, DataPath
from .diagnostics import (
    MARKOV_SLACK,
    TOLERANCE,
    Diagnostics,
    check_tolerance,
    log_mean_exp,
    verdict,
    warn_if_not_converged,
    weight_diagnostics,
)
from .floor import FLOOR_SAMPLES, floor_reason, log_z_floor
from .path import PATHS, Path, RBMPath, anneal
from .schedules import get_schedule

MIN_SWAP = 0.1


@dataclass
class BARResult:
    """A PT + BAR estimate of log Z.

    ``betas``: the ladder; ``deltas``: log Z_{k+1} − log Z_k per neighbour pair (pooled over all
    chains); ``replica_log_z``: the estimate of every replica group (even groups started at data
    rows, odd ones at base-rate draws); ``swap_rate``: mean swap acceptance per pair; ``pilot``:
    the forward-AIS pilot run (a stochastic lower bound on log Z); ``floor``: the log Z floor from the
    training rows (``ebmlab.evaluate.floor``; None without ``data`` or with ``floor_samples=0``).
    """

    log_z: float
    stderr: float
    log_z_base: float
    betas: torch.Tensor
    deltas: torch.Tensor
    replica_log_z: torch.Tensor
    swap_rate: torch.Tensor
    pilot: AISResult
    sweeps: int
    seconds: float
    diagnostics: Diagnostics
    floor: float | None = None

    @property
    def converged(self) -> bool:
        return self.diagnostics.converged

    def __str__(self) -> str:
        return f"log Z {self.log_z:.2f} ± {self.stderr:.2f} nats (PT+BAR) {verdict(self.diagnostics)}"


def bennett(ux: torch.Tensor, uy: torch.Tensor, iterations: int = 100) -> torch.Tensor:
    """Δ solving Σ_x σ(u(x) − Δ) = Σ_y σ(Δ − u(y)) along the last dim, by bisection (float64).

    ``ux`` = log f_1 − log f_0 at samples of p_0, ``uy`` the same at samples of p_1 (equal counts);
    the left side falls and the right side rises with Δ, and the root lies within the range of u.
    """
    lo = torch.minimum(ux.min(-1).values, uy.min(-1).values) - 1.0
    hi = torch.maximum(ux.max(-1).values, uy.max(-1).values) + 1.0
    for _ in range(iterations):
        mid = (lo + hi) / 2
        m = mid.unsqueeze(-1)
        excess = torch.sigmoid(ux - m).sum(-1) - torch.sigmoid(m - uy).sum(-1)
        lo = torch.where(excess > 0, mid, lo)
        hi = torch.where(excess > 0, hi, mid)
    return (lo + hi) / 2


def ladder(betas: list[float], spread: list[float], spacing: float, max_rungs: int) -> torch.Tensor:
    """Rungs at equal shares of the thermodynamic length Σ spread (at least 2 rungs: 0 and 1)."""
    length = np.concatenate([[0.0], np.cumsum(spread)])
    total = float(length[-1])
    rungs = int(min(max(math.ceil(total / spacing), 1), max_rungs))
    if total <= 0:
        return torch.linspace(0.0, 1.0, rungs + 1, dtype=torch.float64)
    out = np.interp(np.linspace(0.0, total, rungs + 1), length, np.asarray(betas))
    out[0], out[-1] = 0.0, 1.0
    return torch.from_numpy(np.maximum.accumulate(out))


@torch.no_grad()
def log_partition(
    model: Any,
    data: Any = None,
    chains: int = 32,
    sweeps: int = 200,
    burn_in: int | None = None,
    spacing: float = 1.0,
    max_rungs: int = 400,
    replicas: int = 8,
    pilot_chains: int = 32,
    pilot_betas: Any = "fast",
    seed: int | None = 0,
    progress: bool = True,
    tolerance: float = TOLERANCE,
    warn: bool = True,
    floor_samples: int = FLOOR_SAMPLES,
    path: str = "rate",
    centres: int = CENTRES,
) -> BARResult:
    """log Z of an RBM by BAR on parallel-tempering samples (see the module docstring).

    ``data`` (visible rows) fits the base-rate model and starts the data-started replica groups
    (without it every group starts at base draws). ``chains`` PT columns (a multiple of
    ``replicas``) run ``sweeps`` sweeps of every rung, the first ``burn_in`` (default a quarter)
    discarded. ``spacing``: thermodynamic length per rung (smaller: more rungs, better overlap);
    ``max_rungs`` caps the ladder. Cost ≈ (rungs + 1) × chains × sweeps block-Gibbs row-sweeps.
    With ``data``, ``floor_samples`` AIS chains annealed from the rows give ``result.floor`` (0 skips
    it), and the verdict fails when log Ẑ lies more than 3 nats + 3 s.e. below it. ``path``: ``"rate"``
    tempers from the base-rate model (``path.RBMPath``); ``"data"`` (needs ``data``) from the hidden
    conditionals of ``centres`` random rows of ``data`` (``data_path.DataPath``), which reaches the sharp
    modes of an overfitted model that the base-rate path misses.
    """
    model = check_model(model)
    if model.depth != 2:
        raise ValueError(f"PT+BAR needs an RBM (2 layers), got a stack of {model.depth}")
    chains = check_positive_int(chains, "chains", minimum=2)
    sweeps = check_positive_int(sweeps, "sweeps", minimum=2)
    burn_in = sweeps // 4 if burn_in is None else check_positive_int(burn_in, "burn_in", minimum=0)
    if burn_in >= sweeps:
        raise ValueError(f"burn_in must be smaller than sweeps ({sweeps}), got {burn_in}")
    replicas = check_positive_int(replicas, "replicas", minimum=2)
    if chains % replicas:
        raise ValueError(f"chains must be a multiple of replicas ({replicas}), got {chains}")
    max_rungs = check_positive_int(max_rungs, "max_rungs")
    floor_samples = check_positive_int(floor_samples, "floor_samples", minimum=0)
    pilot_chains = check_positive_int(pilot_chains, "pilot_chains", minimum=2)
    spacing = check_tolerance(spacing, "spacing")
    tolerance = check_tolerance(tolerance, "tolerance")
    x = None if data is None else model._visible(data, "data")
    g = model.generator(seed)
    start = time.perf_counter()
    if path not in PATHS:
        raise ValueError(f"path must be one of {PATHS}, got {path!r}")
    if path == "data" and x is None:
        raise ValueError("path='data' anneals from the training rows' hidden conditionals: pass data (training rows)")
    centres = check_positive_int(centres, "centres")
    tempering: Path = RBMPath(model, BaseRate(model.layers[0], x)) if path == "rate" else DataPath(model, x, centres, g)
    log_z0 = tempering.log_z0

    fine = get_schedule(pilot_betas).tolist()
    pilot_w, spread = anneal(tempering, pilot_chains, fine, g, progress, "PT+BAR pilot")
    lme, se, ess = log_mean_exp(pilot_w.cpu())
    pilot = AISResult(
        log_z0 + lme,
        se,
        ess,
        pilot_w.cpu(),
        log_z0,
        False,
        len(fine) - 1,
        time.perf_counter() - start,
        weight_diagnostics(pilot_w.cpu(), tolerance),
    )
    betas = ladder(fine, spread, spacing, max_rungs)
    k1 = betas.shape[0]
    dev = model.device
    beta_rows = betas.to(dev).repeat_interleave(chains)
    up = torch.cat([betas[1:], betas[-1:]]).to(dev).repeat_interleave(chains)
    down = torch.cat([betas[:1], betas[:-1]]).to(dev).repeat_interleave(chains)

    # columns: group = chain % replicas; even groups start at data rows, odd ones at exact draws of the β = 0 end
    s0 = tempering.start(chains, g)
    if x is not None:
        from_data = (torch.arange(chains, device=dev) % replicas) % 2 == 0
        rows = torch.randint(x.shape[0], (chains,), generator=g, device=dev)
        s0 = torch.where(from_data.unsqueeze(-1), tempering.from_data(x[rows], g), s0)
    state = s0.repeat(k1, 1)
    kept = sweeps - burn_in  # u of each adjacent pair at every kept sweep, on the device until the end
    u_up = torch.empty(k1 - 1, kept, chains, dtype=torch.float64, device=dev)
    u_down = torch.empty(k1 - 1, kept, chains, dtype=torch.float64, device=dev)
    accepted = torch.zeros(k1 - 1, dtype=torch.float64, device=dev)
    tried = torch.zeros(k1 - 1, dtype=torch.float64, device=dev)
    order = torch.arange(k1 * chains, device=dev).reshape(k1, chains)
    for sweep in tqdm(range(sweeps), desc="PT+BAR", disable=not progress, leave=False, mininterval=1.0):
        terms = tempering.terms(state)
        here = tempering.log_f(terms, beta_rows)
        du = (tempering.log_f(terms, up) - here).reshape(k1, chains)
        dd = (tempering.log_f(terms, down) - here).reshape(k1, chains)
        if sweep >= burn_in:
            u_up[:, sweep - burn_in] = du[:-1]
            u_down[:, sweep - burn_in] = dd[1:]
        pairs = torch.arange(sweep % 2, k1 - 1, 2, device=dev)
        if pairs.numel():
            log_acc = du[pairs] + dd[pairs + 1]
            prob = log_acc.clamp(max=0).exp()
            accept = torch.rand(prob.shape, dtype=torch.float64, device=dev, generator=g) < prob
            accepted[pairs] += prob.mean(-1)
            tried[pairs] += 1
            perm = order.clone()
            lo, hi = order[pairs], order[pairs + 1]
            perm[pairs] = torch.where(accept, hi, lo)
            perm[pairs + 1] = torch.where(accept, lo, hi)
            index = perm.flatten()
            terms = tuple(t[index] for t in terms)  # rows keep their rung; the states move
        state = tempering.sweep(terms, beta_rows, g)

    ux = u_up.cpu()  # (pairs, samples, chains): u at p_k samples
    uy = -u_down.cpu()  # u = log f_{k+1} − log f_k at p_{k+1} samples
    accepted, tried = accepted.cpu(), tried.cpu()
    pairs_n = k1 - 1
    deltas = bennett(ux.reshape(pairs_n, -1), uy.reshape(pairs_n, -1))
    log_z = log_z0 + float(deltas.sum())
    group = torch.arange(chains) % replicas
    replica_log_z = torch.tensor(
        [
            log_z0
            + float(bennett(ux[..., group == r].reshape(pairs_n, -1), uy[..., group == r].reshape(pairs_n, -1)).sum())
            for r in range(replicas)
        ],
        dtype=torch.float64,
    )
    stderr = float(replica_log_z.std(unbiased=True) / math.sqrt(replicas))
    swap_rate = accepted / tried.clamp(min=1)
    diag = _diagnostics(log_z, stderr, replica_log_z, x is not None, swap_rate, pilot, tolerance)
    half = ux.shape[1] // 2
    if half:
        early = float(bennett(ux[:, :half].reshape(pairs_n, -1), uy[:, :half].reshape(pairs_n, -1)).sum())
        late = float(bennett(ux[:, half:].reshape(pairs_n, -1), uy[:, half:].reshape(pairs_n, -1)).sum())
        diag.drift = late - early
        if abs(diag.drift) > tolerance + 4 * stderr:
            diag.reasons.append(f"drift {diag.drift:+.2f} nats from the first to the second half of the sweeps")
    floor = None
    if x is not None and floor_samples:
        floor = log_z_floor(model, x, floor_samples, g)
        missed = floor_reason(log_z, stderr, floor)
        diag.reasons.extend([missed] if missed else [])
    result = BARResult(
        log_z,
        stderr,
        log_z0,
        betas,
        deltas,
        replica_log_z,
        swap_rate,
        pilot,
        sweeps,
        time.perf_counter() - start,
        diag,
        floor,
    )
    if warn:
        warn_if_not_converged(f"PT+BAR {result}", diag)
    return result


def _diagnostics(
    log_z: float,
    stderr: float,
    replica_log_z: torch.Tensor,
    two_starts: bool,
    swap_rate: torch.Tensor,
    pilot: AISResult,
    tolerance: float,
) -> Diagnostics:
    """The checks of the module docstring. With two kinds of start, ``replica_gap`` is the difference of
    the data-started and base-started group means and ``replica_stderr`` its s.e. from the spread
    within each kind (a two-sample comparison); otherwise the range of the groups."""
    g = replica_log_z.shape[0]
    d = Diagnostics(samples=g, stderr=stderr)
    if not math.isfinite(stderr) or 2 * math.sqrt(2) * stderr > tolerance:
        d.reasons.append(f"s.e. {stderr:.2f} nats (two runs would differ by > {tolerance:g})")
    data_started, base_started = replica_log_z[0::2], replica_log_z[1::2]
    if two_starts and data_started.numel() >= 2 and base_started.numel() >= 2:
        within = (data_started.var(unbiased=True) + base_started.var(unbiased=True)) / 2
        d.replica_gap = float(data_started.mean() - base_started.mean())
        d.replica_stderr = float(within.sqrt() * math.sqrt(1 / data_started.numel() + 1 / base_started.numel()))
        if abs(d.replica_gap) > tolerance + 3 * d.replica_stderr:
            d.reasons.append(f"data-started and base-started replicas differ by {d.replica_gap:+.2f} nats")
    else:
        d.replica_gap = float(replica_log_z.max() - replica_log_z.min())
        d.replica_stderr = stderr * math.sqrt(2 * g)
    worst = float(swap_rate.min()) if swap_rate.numel() else 1.0
    if worst < MIN_SWAP:
        d.reasons.append(f"swap rate {worst:.2f} < {MIN_SWAP} between some rungs")
    below = pilot.log_z - log_z
    if below > MARKOV_SLACK + 3 * stderr:
        d.reasons.append(f"{below:.1f} nats below the forward-AIS lower bound")
    return d
