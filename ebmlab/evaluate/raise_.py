"""RAISE: reverse annealed importance sampling of log p(v) per test row (Burda, Grosse & Salakhutdinov 2015).

"Accurate and conservative estimates of MRF log-likelihood using reverse annealing". Forward AIS
(``ais.log_partition``) gives a stochastic *lower* bound on log Z, so the log-likelihood
−F(v) − log Ẑ it yields tends to be an *over*estimate. RAISE gives the other side.

Annealing model. For an RBM the hidden layer is summed out analytically, so the states are visible
rows and the intermediate distributions are those of forward AIS,

    f_k(v) = exp(−(1 − β_k) H_base(v) − β_k H_0(v)) · Σ_h exp(−H_1(h) + β_k r(h)ᵀ Wᵀ r(v)),

with 0 = β_0 < … < β_K = 1, H_base the base-rate model of ``ais.BaseRate`` (visible fit to ``data``),
the hidden biases unscaled; f_0(v) = exp(−H_base(v)) Z_1 gives p_0 = the base model,
Z_0 = Z_base Z_1, and f_K(v) = exp(−F(v)). T_k(v'|v) = Σ_h p_k(h|v) p_k(v'|h) (the block-Gibbs sweep
"h | v, then v | h" at β_k) leaves p_k = f_k / Z_k invariant and, being a data-augmentation kernel,
satisfies detailed balance: p_k(v) T_k(v'|v) = Σ_h p_k(v, h) p_k(v', h) / p_k(h) is symmetric, so T_k
is its own reversal. The forward annealing process is the generative model

    q(v_1, …, v_K) = p_0(v_1) Π_{k=1}^{K−1} T_k(v_{k+1} | v_k),

whose last state has marginal q(v) = q(v_K = v) ≈ p(v) (exactly p(v) for slow enough annealing).

Estimator. For a test row v set v_K = v and run the reversed kernels backwards, v_k ~ T_k(·|v_{k+1})
for k = K−1, …, 1: a proposal r(v_1, …, v_{K−1} | v). Since T_k(v_{k+1}|v_k) / T_k(v_k|v_{k+1})
= f_k(v_{k+1}) / f_k(v_k), the importance weight q(v_1, …, v_K) / r(v_1, …, v_{K−1} | v) is

    p̂(v) = p_0(v_1) Π_{k=1}^{K−1} f_k(v_{k+1}) / f_k(v_k)
         = exp(−F(v) − log Z_0 + Σ_{k=1}^{K} [log f_{k−1}(v_k) − log f_k(v_k)]),

and E_r[p̂(v)] = q(v) exactly; the last sum is the log-weight of a reverse AIS chain started at v
(``ais._anneal`` along the reversed schedule). By Jensen E[log p̂(v)] ≤ log q(v), and by Markov
P(log p̂(v) > log q(v) + t) ≤ e^{−t}: a *stochastic lower bound* on log q(v). For test rows drawn
from the model, E_{v~p}[log q(v)] = E_p[log p(v)] − KL(p ‖ q) ≤ E_p[log p(v)], so the average is
*conservative* for the log-likelihood. For real data it is so to the extent that q, the model
blurred by imperfect annealing, fits the test rows no better than p — typical (Burda et al.), not
guaranteed: an annealing run that misses modes of p away from the data moves their mass elsewhere,
possibly onto the data. (On 16×12 RBMs after 100 PCD-1 updates on the 4×4 bars-and-stripes
patterns, log q of the patterns exceeds log p by more than a nat in the worst seed of 16 with a
10-step schedule; after 300
updates and with the 725-step "fast" schedule RAISE lies below the exact value in 16 seeds of 16.)
Together with forward AIS it brackets the test log-likelihood. Burda et al. write the joint (v, h)
version; summing the hidden layer out, as forward AIS here does, gives the same q(v) with
lower-variance weights.

Each test row gets ``chains`` independent reverse chains; the per-row estimate is the log of the
mean of the chains' p̂ (log-mean-exp, still unbiased for q(v) before the log). The log-weights
accumulate in float64. Deep stacks are refused: starting the reverse chain needs exact samples of
the even hidden layers given v.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch

from .._checks import check_positive_int
from ._common import check_model, row_chunks, visible_rows
from .ais import BaseRate, _anneal, base_log_partition
from .diagnostics import TOLERANCE, Diagnostics, check_tolerance, verdict, warn_if_not_converged
from .schedules import get_schedule

CHUNK = 8192


@dataclass
class RAISEResult:
    """RAISE estimates of log p(v) for each test row.

    ``per_row`` (float64): log of the mean over chains of p̂(v), a stochastic lower bound on log q(v);
    ``mean`` its average over rows and ``stderr`` the standard error of that average over rows
    (sd / √rows); ``log_estimates`` (rows, chains): log p̂(v) of every chain. ``diagnostics``: the
    checks of ``raise_diagnostics`` and ``converged`` their verdict.
    """

    per_row: torch.Tensor
    mean: float
    stderr: float
    log_estimates: torch.Tensor
    log_z_base: float
    steps: int
    seconds: float
    diagnostics: Diagnostics

    @property
    def converged(self) -> bool:
        return self.diagnostics.converged

    def __str__(self) -> str:
        return f"{self.mean:.2f} ± {self.stderr:.2f} nats (RAISE) {verdict(self.diagnostics)}"


def raise_diagnostics(log_est: torch.Tensor, stderr: float, tolerance: float = TOLERANCE) -> Diagnostics:
    """Checks of RAISE's (rows, chains) log p̂: Jensen gap and agreement of chain halves.

    ``stderr`` (over rows) is recorded but not judged: it is the sampling error of the test rows,
    shared by every model scored on them. No check here can tell whether the annealing marginal q
    is close to the model p (one annealing step gives exactly log q = log p_base, with no noise at
    all); only the bracket against an upper estimate (``log_likelihood_bracket``) can.

    - Jensen gap: with σ²(v) the variance of log p̂(v) across a row's chains, the log of their mean
      sits ≈ σ²(v) / (2 · chains) below log q(v) (log-normal weights); its row average must be
      ≤ ``tolerance`` (a wide spread means the annealing is too short for this row);
    - halves: the row means of the even and of the odd chains (the same rows) agree within
      ``tolerance`` + 3 s.e. of their paired difference. Needs at least 2 chains per row.
    ``ess`` is the average over rows of the per-row ESS of the chains' p̂.
    """
    rows, chains = log_est.shape
    w = torch.exp(log_est - log_est.max(1, keepdim=True).values)
    ess = float((w.sum(1) ** 2 / (w**2).sum(1)).mean())
    d = Diagnostics(ess=ess, samples=chains, stderr=stderr)
    if chains >= 2:
        d.log_weight_sd = float(log_est.std(1, unbiased=True).mean())
        d.jensen_gap = float(log_est.var(1, unbiased=True).mean() / (2 * chains))
        half = [torch.logsumexp(log_est[:, k::2], 1) - math.log(log_est[:, k::2].shape[1]) for k in (0, 1)]
        diff = half[0] - half[1]
        d.replica_gap = abs(float(diff.mean()))
        d.replica_stderr = float(diff.std(unbiased=True) / math.sqrt(rows)) if rows > 1 else math.inf
    if d.replica_gap is None:
        d.reasons.append("fewer than 2 chains per row: no spread to judge")
    elif d.replica_gap > tolerance + 3 * d.replica_stderr:
        d.reasons.append(f"chain halves differ by {d.replica_gap:.2f} nats")
    if d.jensen_gap is not None and d.jensen_gap > tolerance:
        d.reasons.append(f"Jensen gap ≈ {d.jensen_gap:.1f} nats (chains of a row disagree)")
    return d


def _log_unnormalised(model: Any, v: torch.Tensor) -> torch.Tensor:
    """log f_K(v) = −F(v) = −H_0(v) + log Z_1(Wᵀ r(v)) in float64 (the hidden layer summed out)."""
    states = [v, model.layers[1].zero_field(v.shape[0])]
    field = model._field(states, 1).to(torch.float64)
    return model.layers[1].log_partition(field) - model.layers[0].energy(v).to(torch.float64)


@torch.no_grad()
def raise_log_likelihood(
    model: Any,
    test: Any,
    chains: int = 10,
    betas: Any = "moderate",
    data: Any = None,
    seed: int | None = 0,
    progress: bool = True,
    chunk: int = CHUNK,
    tolerance: float = TOLERANCE,
    warn: bool = True,
) -> RAISEResult:
    """RAISE estimate of log p(v) for every row of ``test`` (an RBM: one hidden layer).

    ``betas``: a preset (``"sm2008"``, ``"moderate"``, ``"fast"``) or an increasing sequence from 0
    to 1, run backwards from 1 to 0. ``data`` (visible rows) fits the base model, as in forward AIS
    (``ais.log_partition``); without it the base uses the model's own visible parameters.
    ``chains`` reverse chains per test row; ``chunk`` bounds the rows × chains annealed at once.
    The verdict (``converged``, ``diagnostics``) is that of ``raise_diagnostics`` with ``tolerance``;
    a ``ConvergenceWarning`` is emitted when it fails (``warn=False`` silences it).
    """
    model = check_model(model)
    if model.depth != 2:
        raise ValueError(
            f"raise_log_likelihood needs an RBM (2 layers), got a stack of {model.depth}: the reverse chains "
            "would need exact samples of the even hidden layers given v"
        )
    chains = check_positive_int(chains, "chains")
    chunk = check_positive_int(chunk, "chunk")
    tolerance = check_tolerance(tolerance, "tolerance")
    x = visible_rows(model, test, "test")
    fit = None if data is None else visible_rows(model, data, "data")
    betas_list = get_schedule(betas).flip(0).tolist()
    base = BaseRate(model.layers[0], fit)
    log_z0 = base_log_partition(model, base)
    g = model.generator(seed)
    start = time.perf_counter()
    rows_per_pass = max(1, chunk // chains)
    parts = []
    passes = list(row_chunks(x.shape[0], rows_per_pass))
    for n, rows in enumerate(passes, 1):
        v = x[rows].repeat_interleave(chains, 0)
        states = [v, model.layers[1].zero_field(v.shape[0])]
        log_f = _log_unnormalised(model, v)
        desc = f"RAISE {n}/{len(passes)}" if len(passes) > 1 else "RAISE"
        log_w = _anneal(model, base, states, betas_list, g, desc, progress)
        parts.append((log_f - log_z0 + log_w).reshape(-1, chains).cpu())
    log_est = torch.cat(parts)
    per_row = torch.logsumexp(log_est, 1) - math.log(chains)
    rows = per_row.shape[0]
    stderr = float(per_row.std(unbiased=True) / math.sqrt(rows)) if rows > 1 else math.inf
    seconds = time.perf_counter() - start
    diag = raise_diagnostics(log_est, stderr, tolerance)
    result = RAISEResult(per_row, float(per_row.mean()), stderr, log_est, log_z0, len(betas_list) - 1, seconds, diag)
    if warn:
        warn_if_not_converged(str(result), diag)
    return result
