"""A two-sided estimate of an RBM's mean log-likelihood: conservative (``lower``) and ``upper``.

    log p(v) = −F(v) − log Z,   F exact for an RBM,

so both sides are mean −F(v) minus an estimate of log Z, except RAISE's, which scores rows.

**BDMC, the default** (``method="auto"`` on Bernoulli and one-hot layers, or ``"bdmc"``;
``bdmc.log_partition``): bidirectional Monte Carlo along a data-centred path screened for the modes that
carry log Z. Its forward AIS is unbiased in Z, a stochastic *lower* bound on log Z (E log Ẑ ≤ log Z by
Jensen, P(log Ẑ > log Z + t) ≤ e^{−t} by Markov) that needs no mixing: ``upper`` = mean −F − log Ẑ_fwd is
a stochastic *upper* bound on the log-likelihood. Reverse AIS from the forward run's resampled last states
gives log Ẑ_rev, and ``lower`` = mean −F − log Ẑ_rev: conservative to the extent that those states are
samples of the model (exactly so for exact samples; Grosse, Ghahramani & Adams 2015). Chosen by
measurement: on a 784×500 MNIST-5k RBM trained for 926 epochs the two sides lie 0.1–0.2 nat apart and
two seeds within 0.5 nat, PT + BAR agrees (727.0–727.1 against 727.0–727.5), and RAISE lies 6 nats
lower: its annealing from the base rates lags behind the model's sharp modes (README, "Estimators").

**PT + BAR and RAISE** (``method="bar"``, and ``"auto"`` for Gaussian units; ``"ais"``: forward AIS
for the upper side). ``upper`` = mean −F(v) − log Ẑ with log Ẑ from ``bar.log_partition``, which is
consistent rather than a bound, but fails the same way as forward AIS: chains that never reach some of
the model's mass make log Ẑ too small and ``upper`` too large. ``lower`` comes from RAISE
(``raise_.raise_log_likelihood``, Burda, Grosse & Salakhutdinov 2015): log p̂(v) is a stochastic lower
bound on log q(v), the marginal of the forward annealing process, which lies below log p(v) in
expectation over v ~ p, so it errs low when the annealing is too short. RAISE runs on ``raise_rows``
random rows; their mean is combined with the exact mean of −F over *all* rows as a control variate:

    lower = mean_all(−F(v)) + mean_rows(log p̂(v) + F(v)),

unbiased for the all-rows RAISE mean, with standard error sd(log p̂ + F) / √rows, much smaller than
that of log p̂ itself because −F carries most of the row-to-row variation.

**Floor on log Z.** Forward AIS from the training rows (``floor.log_z_floor``: annealed from the mixture
(1/N) Σ_n p(h | x_n) of the rows' hidden conditionals to the model along ``data_path.DataPath``, 100
chains, about 3 s on a 784×500 RBM) is unbiased in Z, so its ``log_z_floor`` is a stochastic *lower* bound on
log Z that needs no mixing (P(log Ẑ > log Z + t) ≤ e^{−t}), and ``data_term − log_z_floor`` a
stochastic upper bound on the mean log-likelihood. On an overfitted model, whose mass sits in sharp
modes near the training rows, it can lie far above what chains that never found those modes report,
so the verdict fails when log Ẑ of the upper side lies more than ``MARKOV_SLACK`` + 3 s.e. below it
(on a scikit-learn model of the README's quality table: PT + BAR 775, floor ≈ 800), and when the
conservative side lies that far above ``data_term − log_z_floor``: RAISE is a lower bound in
expectation only for rows drawn from the model, and for test rows far from an overfitted model's
samples its annealing marginal can put more mass on them than the model does; BDMC's reverse side is
an upper bound on log Z only from exact samples, and from states that missed mass it errs low.

The true mean log-likelihood lies (up to the standard errors) in [``lower``, ``upper``];
``width`` = upper − lower measures how much the two estimators still disagree. Verdict: both sides
converged and width ≤ ``max_width`` (default 2 nats) and the sides not crossed by more than three
standard errors (``diagnostics.bracket_diagnostics``); a ``ConvergenceWarning`` otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from .._checks import check_positive_int
from ._common import check_model, visible_rows
from .ais import AISResult
from .ais import log_partition as ais_log_partition
from .bar import BARResult
from .bar import log_partition as bar_log_partition
from .bdmc import BDMCResult
from .bdmc import log_partition as bdmc_log_partition
from .data_path import LAYERS as DATA_PATH_LAYERS
from .diagnostics import (
    MARKOV_SLACK,
    MAX_WIDTH,
    TOLERANCE,
    Diagnostics,
    bracket_diagnostics,
    check_tolerance,
    verdict,
    warn_if_not_converged,
)
from .floor import FLOOR_SAMPLES, floor_reason, log_z_floor
from .raise_ import RAISEResult, raise_diagnostics, raise_log_likelihood

METHODS = ("auto", "bdmc", "bar", "ais")
BAR_OPTIONS = {"chains": 16, "sweeps": 10000}  # PT+BAR defaults of the upper side (``options`` overrides them)


@dataclass
class LikelihoodBracket:
    """Mean log-likelihood between ``lower`` (conservative, RAISE) and ``upper`` (−F − log Ẑ), in nats."""

    lower: float
    lower_stderr: float
    upper: float
    upper_stderr: float
    data_term: float
    log_z: AISResult | BARResult | BDMCResult
    raise_result: RAISEResult | None
    log_z_floor: float
    diagnostics: Diagnostics

    @property
    def width(self) -> float:
        """upper − lower: how far apart the two sides still are (nats)."""
        return self.upper - self.lower

    @property
    def converged(self) -> bool:
        return self.diagnostics.converged

    def __str__(self) -> str:
        return (
            f"{self.lower:.2f} ± {self.lower_stderr:.2f} … {self.upper:.2f} ± {self.upper_stderr:.2f} nats "
            f"(width {self.width:.2f}) {verdict(self.diagnostics)}"
        )


@torch.no_grad()
def log_likelihood_bracket(
    model: Any,
    data: Any,
    train: Any = None,
    method: str = "auto",
    log_z: AISResult | BARResult | BDMCResult | None = None,
    raise_rows: int = 50,
    raise_chains: int = 6,
    raise_betas: Any = "sm2008",
    options: dict[str, Any] | None = None,
    floor_samples: int = FLOOR_SAMPLES,
    seed: int | None = 0,
    progress: bool = True,
    tolerance: float = TOLERANCE,
    max_width: float = MAX_WIDTH,
    warn: bool = True,
) -> LikelihoodBracket:
    """Bracket the mean log-likelihood of ``data`` under an RBM (see the module docstring).

    ``train`` (default ``data``) fits the base-rate model of every annealing path, centres the data-centred
    ones and starts the data-started PT replicas. ``method``: ``"auto"`` (``"bdmc"`` when every layer is
    Bernoulli or one-hot, else ``"bar"``), ``"bdmc"`` (both sides from ``bdmc.log_partition``), ``"bar"``
    (PT + BAR, ``bar.log_partition`` with ``BAR_OPTIONS``: 16 chains × 10,000 sweeps, the first 2,500
    discarded) or ``"ais"`` (forward AIS, ``ais.log_partition``) for the upper side, with keyword
    ``options`` passed to the estimator (overriding those defaults); or pass a ready ``log_z`` result (e.g. to
    score train and test rows against the same log Ẑ; a ``BDMCResult`` brings its conservative side too).
    With PT + BAR or AIS, RAISE scores ``raise_rows`` random rows of ``data`` (all when fewer) with
    ``raise_chains`` chains each along ``raise_betas``. ``floor_samples`` AIS chains annealed from the rows
    of ``train`` give ``log_z_floor`` (module docstring).

    Cost on a 784×500 MNIST-5k RBM with two threads: BDMC 72–95 s of wall time; PT + BAR and RAISE
    314–362 CPU s, 2.6–3.0 minutes (520 CPU s, 4.4 minutes on a slower machine). Their defaults were chosen
    on the model of ``benchmarks/estimators.py`` (README "Estimators"): PT + BAR with few, long chains sheds
    the start bias of the data-started chains (log Ẑ 535 at 64 × 1,000 sweeps, 530–531.4 at 16 × 4,000,
    529.6–529.9 at 16 × 10,000: two seeds within 0.25 nat), and RAISE along the long ``sm2008`` schedule
    with 6 chains per row beats more chains on a shorter schedule (conservative side −87.7 instead of
    −90.8 nats at similar cost).
    """
    model = check_model(model)
    if model.depth != 2:
        raise ValueError(f"log_likelihood_bracket needs an RBM (2 layers), got a stack of {model.depth}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if log_z is not None and not isinstance(log_z, (AISResult, BARResult, BDMCResult)):
        raise TypeError(f"log_z must be an AISResult, BARResult or BDMCResult (or None), got {type(log_z).__name__}")
    if isinstance(log_z, AISResult) and log_z.reverse:
        raise ValueError("log_z must come from a forward run (reverse AIS is not the upper side)")
    if options is not None and not isinstance(options, dict):
        raise TypeError(f"options must be a dict of keyword arguments, got {type(options).__name__}")
    raise_rows = check_positive_int(raise_rows, "raise_rows")
    raise_chains = check_positive_int(raise_chains, "raise_chains", minimum=2)
    floor_samples = check_positive_int(floor_samples, "floor_samples")
    tolerance = check_tolerance(tolerance, "tolerance")
    max_width = check_tolerance(max_width, "max_width")
    x = visible_rows(model, data, "data")
    fit = x if train is None else visible_rows(model, train, "train")
    neg_f = -model._free_energy(x).to(torch.float64)
    data_term = float(neg_f.mean())
    if method == "auto":
        method = "bdmc" if all(isinstance(layer, DATA_PATH_LAYERS) for layer in model.layers) else "bar"
    if log_z is None:
        kwargs = {"seed": seed, "progress": progress, "tolerance": tolerance, "warn": False}
        if method == "bdmc":
            log_z = bdmc_log_partition(model, fit, **{**kwargs, **(options or {})})
        else:
            estimator = bar_log_partition if method == "bar" else ais_log_partition
            kwargs.update(data=fit, floor_samples=floor_samples)
            log_z = estimator(model, **{**kwargs, **(BAR_OPTIONS if method == "bar" else {}), **(options or {})})
    upper = data_term - log_z.log_z
    rev = None
    if isinstance(log_z, BDMCResult):
        lower, lower_se, conservative_diag = data_term - log_z.upper, log_z.upper_stderr, log_z.reverse
        upper_diag = log_z.forward
    else:
        upper_diag = log_z.diagnostics
        pick = torch.randperm(x.shape[0], generator=model.generator(seed), device=x.device)[:raise_rows].sort().values
        rev = raise_log_likelihood(
            model, x[pick], raise_chains, raise_betas, fit, seed, progress, tolerance=tolerance, warn=False
        )
        gap = rev.per_row - neg_f[pick].cpu()
        rows = gap.shape[0]
        lower = data_term + float(gap.mean())
        lower_se = float(gap.std(unbiased=True) / math.sqrt(rows)) if rows > 1 else math.inf
        conservative_diag = raise_diagnostics(rev.log_estimates, lower_se, tolerance)
        if not math.isfinite(lower_se) or 2 * math.sqrt(2) * lower_se > tolerance:  # rows sampled: judge their s.e.
            conservative_diag.reasons.append(f"s.e. {lower_se:.2f} nats over {rows} rows (score more rows)")
    diag = bracket_diagnostics(lower, lower_se, upper, log_z.stderr, [conservative_diag, upper_diag], max_width)
    floor = getattr(log_z, "floor", None)  # the upper side's estimator drew it around the same rows, when it had them
    if floor is None:
        floor = log_z_floor(model, fit, floor_samples, model.generator(None if seed is None else seed + 1))
    missed = floor_reason(log_z.log_z, log_z.stderr, floor)
    if missed and f"upper side: {missed}" not in diag.reasons:  # not already failed by the estimator itself
        diag.reasons.append(f"upper side: {missed}")
    above = lower - (data_term - floor)
    if above > MARKOV_SLACK + 3 * lower_se:
        diag.reasons.append(
            f"conservative side: {lower:.1f} lies {above:.1f} nats above the upper bound {data_term - floor:.1f} "
            "from the log Z floor (the conservative estimate over-rates the rows)"
        )
    result = LikelihoodBracket(lower, lower_se, upper, log_z.stderr, data_term, log_z, rev, floor, diag)
    if warn:
        warn_if_not_converged(f"log-likelihood bracket {result}", diag)
    return result
