"""Convergence diagnostics and verdicts for stochastic estimates of log Z and of log-likelihoods.

An estimate is declared *converged* only when every check below passes; each failed check adds a
reason, the verdict prints beside the number ("… [NOT CONVERGED: ESS 1.0/100]") and the estimator
emits a ``ConvergenceWarning``. The checks, and why they are principled:

- **ESS fraction** (importance weights w_i, forward AIS / SMC): ESS = (Σw)² / Σw² (Kong 1992).
  ESS ≥ ``MIN_ESS_FRACTION`` · n and ≥ ``MIN_ESS``. When a few chains carry the weight, the
  sample variance of w — hence the delta-method standard error — is itself unreliable, and the
  estimate is dominated by whichever rare chain happened to find the mass.
- **Standard error**: 2√2 · s.e. ≤ ``tolerance`` (default 1 nat), i.e. two independent runs are
  expected to agree within ``tolerance`` at about 2.8 standard deviations of their difference.
- **Independent halves / replicas**: the chains split into two independent halves (or G replicas
  of a sampler) each give their own estimate; they must agree within ``tolerance`` plus three
  standard errors of their difference. Heavy-tailed weights make halves disagree long before the
  pooled standard error notices.
- **Jensen gap** (RAISE, chains per row): if log p̂ has spread σ² across the chains of one row, the
  log of their mean lies below the log of its expectation by about σ² / (2 · chains) (log-normal
  approximation); the row-averaged gap must stay below ``tolerance``.
- **Bracket** (both directions run): the conservative and the upper estimate of the same
  log-likelihood must lie within ``max_width`` (default 2 nats) of each other, and not cross by more
  than three standard errors (if they cross, at least one side is wrong).

No diagnostic run in one direction only can detect modes that no chain ever reached: all chains
then agree on the wrong value. Only the bracket (which needs both directions) closes that gap,
which is why ``log_likelihood_bracket`` is the estimate to trust.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import torch

MIN_ESS_FRACTION = 0.1
MIN_ESS = 10.0
TOLERANCE = 1.0
MAX_WIDTH = 2.0
MARKOV_SLACK = 3.0  # nats a stochastic lower bound may exceed its target: P(log Ẑ > log Z + t) ≤ e^{−t}


class ConvergenceWarning(UserWarning):
    """A stochastic estimate (AIS, RAISE, SMC, BAR, a bracket) failed its convergence checks."""


@dataclass
class Diagnostics:
    """What the convergence checks saw. ``reasons`` is empty exactly when the estimate converged.

    ``ess`` / ``samples``: effective and actual number of chains (or particles, or rows × chains);
    ``log_weight_sd``: standard deviation of the log-weights (nats); ``replica_gap``: the largest
    difference between independent halves/replicas (nats) and ``replica_stderr`` the standard
    error of that difference; ``jensen_gap``: estimated downward bias of a log of a mean (nats);
    ``bracket_width``: upper − conservative estimate when both directions ran; ``drift``: the estimate
    from the second half of a sampler's kept sweeps minus that from the first half (nats).
    """

    ess: float | None = None
    samples: int | None = None
    log_weight_sd: float | None = None
    replica_gap: float | None = None
    replica_stderr: float | None = None
    jensen_gap: float | None = None
    bracket_width: float | None = None
    drift: float | None = None
    stderr: float | None = None
    reasons: list[str] = field(default_factory=list)

    @property
    def converged(self) -> bool:
        return not self.reasons

    def summary(self) -> str:
        """ "converged" or "NOT CONVERGED: reason; reason"."""
        return "converged" if self.converged else "NOT CONVERGED: " + "; ".join(self.reasons)


def check_tolerance(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number of nats, got {value!r}")
    return float(value)


def log_mean_exp(log_w: torch.Tensor) -> tuple[float, float, float]:
    """(log mean exp w, delta-method s.e. of it = sd(w)/(√n mean w), ESS = (Σw)²/Σw²)."""
    n = log_w.shape[0]
    top = log_w.max()
    w = torch.exp(log_w - top)
    mean = w.mean()
    lme = float(top + torch.log(mean))
    stderr = float(w.std(unbiased=True) / (math.sqrt(n) * mean)) if n > 1 else math.inf
    ess = float(w.sum() ** 2 / (w**2).sum())
    return lme, stderr, ess


def weight_diagnostics(
    log_w: torch.Tensor, tolerance: float = TOLERANCE, min_ess_fraction: float = MIN_ESS_FRACTION
) -> Diagnostics:
    """Checks of importance weights (forward or reverse AIS): ESS fraction, s.e., agreement of two halves.

    The halves are the even and odd chains, which are independent runs of half the size. ESS must reach
    ``MIN_ESS`` and ``min_ess_fraction`` of the chains.
    """
    n = int(log_w.shape[0])
    _, stderr, ess = log_mean_exp(log_w)
    d = Diagnostics(ess=ess, samples=n, stderr=stderr)
    d.log_weight_sd = float(log_w.std(unbiased=True)) if n > 1 else math.nan
    if n >= 4:
        (a, se_a, _), (b, se_b, _) = log_mean_exp(log_w[0::2]), log_mean_exp(log_w[1::2])
        d.replica_gap, d.replica_stderr = abs(a - b), math.hypot(se_a, se_b)
    if n < MIN_ESS:
        d.reasons.append(f"only {n} chains (at least {MIN_ESS:g} are needed to judge the weights)")
    elif ess < max(MIN_ESS, min_ess_fraction * n):
        d.reasons.append(f"ESS {ess:.1f}/{n}")
    add_stderr_checks(d, stderr, tolerance)
    return d


def add_stderr_checks(d: Diagnostics, stderr: float, tolerance: float) -> None:
    """Append the s.e. and the independent-halves reasons to ``d`` (fields already filled)."""
    if not math.isfinite(stderr) or 2 * math.sqrt(2) * stderr > tolerance:
        d.reasons.append(f"s.e. {stderr:.2f} nats (two runs would differ by > {tolerance:g})")
    if d.replica_gap is None:
        d.reasons.append("too few chains to compare independent halves")
    elif d.replica_gap > tolerance + 3 * d.replica_stderr:
        d.reasons.append(f"independent halves differ by {d.replica_gap:.2f} nats")


def bracket_diagnostics(
    lower: float,
    lower_se: float,
    upper: float,
    upper_se: float,
    sides: list[Diagnostics],
    max_width: float = MAX_WIDTH,
) -> Diagnostics:
    """Verdict of a two-sided estimate: both sides converged, width ≤ ``max_width``, sides not crossed."""
    width = upper - lower
    d = Diagnostics(bracket_width=width, stderr=math.hypot(lower_se, upper_se))
    for name, side in zip(("conservative", "upper"), sides):
        d.reasons.extend(f"{name} side: {r}" for r in side.reasons)
    if width > max_width:
        d.reasons.append(f"bracket {width:.1f} nats > {max_width:g}")
    elif width < -3 * d.stderr:
        d.reasons.append(f"sides cross by {-width:.1f} nats (at least one is wrong)")
    return d


def warn_if_not_converged(what: str, d: Diagnostics, stacklevel: int = 4) -> None:
    """Emit a ``ConvergenceWarning`` with ``what`` (the printed estimate, its verdict included).

    The default ``stacklevel`` points at the caller of an estimator decorated with ``torch.no_grad``.
    """
    if not d.converged:
        message = what if d.summary() in what else f"{what}: {d.summary()}"
        warnings.warn(message, ConvergenceWarning, stacklevel=stacklevel)


def verdict(d: Diagnostics) -> str:
    """The bracketed verdict appended to printed estimates."""
    return f"[{d.summary()}]"
