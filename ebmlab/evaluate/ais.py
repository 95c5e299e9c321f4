"""Annealed importance sampling (Neal 2001) for log Z, forward and reverse.

Path. The base model has independent visible units fit to the data (the "base-rate" model of
Salakhutdinov & Murray 2008: Bernoulli biases logit(mean), one-hot log-frequencies, Gaussian
mean/variance) and the hidden layers free with their own biases. The intermediate models
interpolate the visible energy and switch the couplings on:

    E_β(h) = (1 − β) H_base(v) + β H_0(v) + Σ_{i≥1} H_i(h_i) − β Σ_i r(h_{i−1})ᵀ W_i r(h_i),

so E_0 is the base model (log Z_0 is a sum of per-layer log partitions) and E_1 the target. The
odd layers are summed out analytically, leaving the even ones (for an RBM, just v):

    f_β(x) = −(1 − β) H_base(v) − β H_0(v) − Σ_{even i≥2} H_i(h_i) + Σ_{odd i} log Z_i(β f_i(x)).

Forward AIS draws x_1 ~ p_0, then for k = 1 … K adds f_k(x_k) − f_{k−1}(x_k) to the log-weight
and moves x by a block-Gibbs sweep T_k that leaves p_{β_k} invariant. E[w] = Z_K / Z_0 exactly,
so by Jensen log Ẑ is a *stochastic lower bound* on log Z: E[log Ẑ] ≤ log Z, and Markov's
inequality gives P(log Ẑ > log Z + t) ≤ e^{−t}. A log-likelihood −F(v) − log Ẑ computed from it
therefore tends to be an *overestimate*.

Reverse AIS runs the same chain backwards from β = 1 to 0; the weights Π f_{k−1}(x_k)/f_k(x_k)
estimate Z_0 / Z_K without bias *when the chains start at exact samples of the target*, and
log Z_0 − log(mean w) is then a stochastic *upper* bound on log Z. ``log_partition(reverse=True)``
starts them at data rows instead (the even hidden layers of a deep stack drawn by visible-clamped
Gibbs sweeps), optionally followed by ``burn_in`` free Gibbs sweeps at β = 1: that is *not* a bound
for a trained model, whose samples the data rows are not — on RBMs trained on bars-and-stripes it
lands on either side of the exact log Z. For a conservative log-likelihood use RAISE
(``raise_.raise_log_likelihood``, Burda, Grosse & Salakhutdinov 2015), which anneals backwards from
each test row and estimates log p(v) per row; ``estimate_log_likelihood`` pairs it with forward AIS.

Per temperature an RBM costs two matrix products (v W for the hidden field, used by both the
weight and the hidden sample, and h Wᵀ for the visible field); sampling runs in the model's
dtype while the log-weights accumulate in float64 from float64 hidden log-partitions.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from .._checks import check_positive_int
from ..layers import BernoulliLayer, GaussianLayer
from ..model import MAX_ENUMERATION
from ..samplers import GibbsLangevin
from ._common import check_model, is_discrete, visible_rows
from .base_rate import BaseRate, base_log_partition
from .bounds import variational_free_energy
from .data_path import DataPath
from .diagnostics import (
    MAX_WIDTH,
    TOLERANCE,
    Diagnostics,
    bracket_diagnostics,
    check_tolerance,
    log_mean_exp,
    verdict,
    warn_if_not_converged,
    weight_diagnostics,
)
from .floor import FLOOR_SAMPLES, floor_reason, log_z_floor
from .path import PATHS, anneal
from .schedules import get_schedule

if TYPE_CHECKING:
    from .raise_ import RAISEResult

CLAMPED_SWEEPS = 50


@dataclass
class AISResult:
    """An AIS estimate of log Z.

    ``log_weights`` (float64, one per chain) are log(Z_K/Z_0) estimates for a forward run and
    log(Z_0/Z_K) estimates for a reverse one; ``stderr`` is the delta-method standard error of
    log Ẑ, sd(w) / (√n · mean(w)); ``ess`` = (Σw)² / Σw² is the effective number of chains.
    ``diagnostics`` holds the convergence checks (ESS fraction, s.e., agreement of the even and odd
    chains, see ``ebmlab.evaluate.diagnostics``; for an RBM with ``data``, also not lying below the
    log Z ``floor`` of ``ebmlab.evaluate.floor``) and ``converged`` their verdict.
    """

    log_z: float
    stderr: float
    ess: float
    log_weights: torch.Tensor
    log_z_base: float
    reverse: bool
    steps: int
    seconds: float
    diagnostics: Diagnostics
    floor: float | None = None

    @property
    def bound(self) -> str:
        """Which side of log Z the estimate lies on in expectation."""
        return "upper" if self.reverse else "lower"

    @property
    def converged(self) -> bool:
        return self.diagnostics.converged

    def __str__(self) -> str:
        return f"log Z {self.log_z:.2f} ± {self.stderr:.2f} nats {verdict(self.diagnostics)}"


def _initial_forward(model: Any, base: BaseRate, chains: int, g: torch.Generator | None) -> list[torch.Tensor]:
    states = [layer.random(chains, g) for layer in model.layers]
    states[0] = base.sample(chains, g)
    return states


def _initial_reverse(
    model: Any, init: torch.Tensor, chains: int, burn_in: int, g: torch.Generator | None
) -> list[torch.Tensor]:
    rows = init.shape[0]
    if rows >= chains:
        pick = torch.randperm(rows, generator=g, device=init.device)[:chains]
    else:
        pick = torch.randint(rows, (chains,), generator=g, device=init.device)
    states = model.random_states(chains, g)
    states[0] = init[pick]
    if model.depth > 2:
        clamp = [torch.ones(model.layers[0].n, dtype=torch.bool, device=init.device)] + [None] * (model.depth - 1)
        for _ in range(CLAMPED_SWEEPS):
            states = model._gibbs(states, 1.0, clamp, g)
    for _ in range(burn_in):  # odd layers first, so the first sweep starts from the data rows
        for parity in (1, 0):
            for i in range(parity, model.depth, 2):
                states[i] = model.layers[i].sample(model._field(states, i), 1.0, g)
    return states


def _anneal_bernoulli_rbm(
    model: Any,
    base: BaseRate,
    v: torch.Tensor,
    betas: list[float],
    g: torch.Generator | None,
    desc: str,
    progress: bool,
) -> torch.Tensor:
    """The RBM fast path of ``_anneal`` for Bernoulli visible and hidden layers.

    Per temperature: a = vW; log w += Σ_j softplus(β_k a_j + c_j) − softplus(β_{k−1} a_j + c_j)
    − (β_k − β_{k−1})(b_B − b)ᵀv in float64; h ~ σ(β_k a + c); v ~ σ(β_k hWᵀ + b + (1 − β_k)(b_B − b)).
    """
    w = model.weights[0].detach()
    wt = w.T.contiguous()
    c = model.layers[1].bias.detach()
    c64 = c.to(torch.float64)
    b = model.layers[0].bias.detach()
    shift = base.layer.bias.detach() - b
    shift64 = shift.to(torch.float64)
    softplus = torch.nn.functional.softplus
    log_w = torch.zeros(v.shape[0], dtype=torch.float64, device=v.device)
    gap = v.to(torch.float64) @ shift64
    last = len(betas) - 1
    for k in tqdm(range(1, last + 1), desc=desc, disable=not progress, leave=False, mininterval=1.0):
        prev, cur = betas[k - 1], betas[k]
        a = v @ w
        a64 = a.to(torch.float64)
        log_w += softplus(torch.add(c64, a64, alpha=cur)).sum(1) - softplus(torch.add(c64, a64, alpha=prev)).sum(1)
        log_w -= (cur - prev) * gap
        if k == last:
            break
        p_h = torch.sigmoid(torch.add(c, a, alpha=cur))
        h = torch.rand(p_h.shape, dtype=p_h.dtype, device=p_h.device, generator=g).lt_(p_h).to(p_h.dtype)
        p_v = torch.sigmoid(torch.addmm(torch.add(b, shift, alpha=1 - cur), h, wt, alpha=cur))
        v = torch.rand(p_v.shape, dtype=p_v.dtype, device=p_v.device, generator=g).lt_(p_v).to(p_v.dtype)
        gap = v.to(torch.float64) @ shift64
    return log_w


def _visible_log_target(model: Any, base: BaseRate, states: list[torch.Tensor], beta: float) -> torch.Tensor:
    """log p_β(v | even layers ≥ 2) up to a constant: −(1 − β) H_base(v) − β H_0(v) + log Z_1(β f_1)."""
    v = states[0]
    hidden = model.layers[1].log_partition(beta * model._field(states, 1))
    return -(1 - beta) * base.layer.energy(v) - beta * base.target.energy(v) + hidden


def _langevin_visible(
    model: Any, base: BaseRate, states: list[torch.Tensor], beta: float, sampler: GibbsLangevin,
    g: torch.Generator | None,
) -> torch.Tensor:
    """``sampler.steps`` MALA steps on the Gaussian visible layer, layer 1 summed out (its marginal at β).

    Preconditioner D = 1/λ, λ = (1 − β)/σ_B² + β/σ² (the precision of v given the hidden layer), step
    y = x + α D ∇log π(x) + √(2αD) ξ accepted with the Metropolis–Hastings ratio, so p_β stays invariant;
    α is ``sampler.step_size`` (not adapted here). Counts go to ``sampler.accepted`` / ``proposed``.
    """
    a = sampler.step_size
    precision = (1 - beta) / base.layer.var.detach() + beta / base.target.var.detach()
    d = 1 / precision

    def log_target_and_grad(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            value = _visible_log_target(model, base, [x, *states[1:]], beta)
            (grad,) = torch.autograd.grad(value.sum(), x)
        return value.detach(), grad

    x = states[0]
    log_x, grad_x = log_target_and_grad(x)
    for _ in range(sampler.steps):
        noise = torch.randn(x.shape, dtype=x.dtype, device=x.device, generator=g)
        y = x + a * d * grad_x + (2 * a * d).sqrt() * noise
        log_y, grad_y = log_target_and_grad(y)
        forward = ((y - x - a * d * grad_x) ** 2 / (4 * a * d)).sum(-1)
        backward = ((x - y - a * d * grad_y) ** 2 / (4 * a * d)).sum(-1)
        log_ratio = log_y - log_x - backward + forward
        u = torch.rand(log_ratio.shape, dtype=log_ratio.dtype, device=x.device, generator=g)
        accept = torch.log(u) < log_ratio
        sampler.accepted += float(accept.sum())
        sampler.proposed += accept.numel()
        x = torch.where(accept.unsqueeze(-1), y, x)
        log_x = torch.where(accept, log_y, log_x)
        grad_x = torch.where(accept.unsqueeze(-1), grad_y, grad_x)
    return x


def _anneal(
    model: Any,
    base: BaseRate,
    states: list[torch.Tensor],
    betas: list[float],
    g: torch.Generator | None,
    desc: str,
    progress: bool,
    sampler: GibbsLangevin | None = None,
) -> torch.Tensor:
    """Σ_k f_{β_k}(x_k) − f_{β_{k−1}}(x_k) along ``betas``, with Gibbs moves at β_k in between.

    With ``sampler`` a Gaussian visible layer moves by its Metropolis-adjusted Langevin steps
    (``_langevin_visible``) instead of an exact Gibbs draw; every other layer still moves by Gibbs.
    """
    if sampler is not None and not isinstance(base.target, GaussianLayer):
        sampler = None  # as in GibbsLangevin: Langevin moves only real-valued units
    if sampler is None and model.depth == 2 and all(type(layer) is BernoulliLayer for layer in model.layers):
        return _anneal_bernoulli_rbm(model, base, states[0], betas, g, desc, progress)
    odd = list(range(1, model.depth, 2))
    even = list(range(0, model.depth, 2))
    log_w = torch.zeros(states[0].shape[0], dtype=torch.float64, device=states[0].device)
    gap = base.energy_gap(states[0])
    last = len(betas) - 1
    for k in tqdm(range(1, last + 1), desc=desc, disable=not progress, leave=False, mininterval=1.0):
        prev, cur = betas[k - 1], betas[k]
        fields = [model._field(states, i) for i in odd]
        log_w -= (cur - prev) * gap
        for i, f in zip(odd, fields):
            f64 = f.to(torch.float64)
            layer = model.layers[i]
            log_w += layer.log_partition(cur * f64) - layer.log_partition(prev * f64)
        if k == last:
            break
        for i, f in zip(odd, fields):
            states[i] = model.layers[i].sample(cur * f, 1.0, g)
        for i in even:
            f = model._field(states, i)
            if i == 0 and sampler is not None:
                states[0] = _langevin_visible(model, base, states, cur, sampler, g)
            else:
                states[i] = base.mixed_sample(f, cur, g) if i == 0 else model.layers[i].sample(cur * f, 1.0, g)
        gap = base.energy_gap(states[0])
    return log_w


@torch.no_grad()
def log_partition(
    model: Any,
    chains: int = 100,
    betas: Any = "sm2008",
    data: Any = None,
    reverse: bool = False,
    init: Any = None,
    burn_in: int = 0,
    seed: int | None = 0,
    progress: bool = True,
    tolerance: float = TOLERANCE,
    warn: bool = True,
    sampler: GibbsLangevin | None = None,
    floor_samples: int = FLOOR_SAMPLES,
    path: str = "rate",
) -> AISResult:
    """Estimate log Z of ``model`` by AIS from the base-rate model fit to ``data``.

    ``betas``: a preset name (``"sm2008"``, ``"moderate"``, ``"fast"``, see ``schedules``) or an
    increasing sequence from 0 to 1. ``data`` (visible rows) fits the base model; without it the
    base uses the model's own visible parameters. ``reverse=True`` anneals from β = 1 to 0 with
    chains started at rows of ``init`` (default ``data``; required) followed by ``burn_in`` Gibbs
    sweeps at β = 1. That is a stochastic *upper* bound on log Z only when those rows are exact
    samples of the model; from data rows of a trained model it can fall on either side (see the
    module docstring) — use ``raise_.raise_log_likelihood`` for a conservative log-likelihood.

    Verdict (``result.converged``, ``result.diagnostics``): ESS ≥ 10 % of the chains (and ≥ 10),
    2√2 · s.e. ≤ ``tolerance`` nats, and the even and odd chains agree within ``tolerance`` + 3 s.e.
    (``ebmlab.evaluate.diagnostics``); otherwise a ``ConvergenceWarning`` is emitted (``warn=False``
    silences it). Passing these checks does not prove that the chains found every mode. For an RBM
    with ``data``, ``floor_samples`` AIS chains annealed from the rows give ``result.floor``, a
    lower bound on log Z that needs no mixing (``ebmlab.evaluate.floor``; 0 skips it), and the
    verdict fails when log Ẑ lies more than 3 nats + 3 s.e. below it.

    ``sampler``: None (block Gibbs, exact Gaussian draws for a Gaussian visible layer) or a
    ``GibbsLangevin(mh=True)``: its ``steps`` Metropolis-adjusted Langevin steps of size ``step_size``
    (fixed) move a Gaussian visible layer on its marginal at each β (the hidden layer summed out).

    ``path="data"`` (forward, RBMs with Bernoulli or one-hot layers, needs ``data``) anneals instead from
    the mixture of the rows' hidden conditionals (``data_path.DataPath``): the same Z, reached from the
    modes of an overfitted model rather than from the base rates (on a 784×500 MNIST RBM trained past
    its test optimum: 681–683 against 667–670 from the base rates, 100 chains, ``moderate`` schedule).
    """
    model = check_model(model)
    if sampler is not None and not (isinstance(sampler, GibbsLangevin) and sampler.mh):
        raise ValueError(f"sampler must be None or GibbsLangevin(mh=True) (an exact transition), got {sampler!r}")
    chains = check_positive_int(chains, "chains")
    tolerance = check_tolerance(tolerance, "tolerance")
    burn_in = check_positive_int(burn_in, "burn_in", minimum=0)
    floor_samples = check_positive_int(floor_samples, "floor_samples", minimum=0)
    schedule = get_schedule(betas)
    x = None if data is None else model._visible(data, "data")
    g = model.generator(seed)
    start = time.perf_counter()
    if path not in PATHS:
        raise ValueError(f"path must be one of {PATHS}, got {path!r}")
    if path == "data":
        if x is None or reverse or sampler is not None or model.depth != 2:
            raise ValueError("path='data' is forward AIS on an RBM with data (training rows), block Gibbs only")
        tempering = DataPath(model, x, g=g)
        desc, betas_list, log_z0 = "AIS forward (data path)", schedule.tolist(), tempering.log_z0
        log_w = anneal(tempering, chains, betas_list, g, progress, desc)[0].cpu()
    else:
        base = BaseRate(model.layers[0], x)
        if reverse:
            if init is None and x is None:
                raise ValueError("reverse AIS needs data (or init) to start its chains from")
            start_rows = x if init is None else model._visible(init, "init")
            states = _initial_reverse(model, start_rows, chains, burn_in, g)
            betas_list = schedule.flip(0).tolist()
        else:
            states = _initial_forward(model, base, chains, g)
            betas_list = schedule.tolist()
        log_z0 = base_log_partition(model, base)
        desc = "AIS reverse" if reverse else "AIS forward"
        log_w = _anneal(model, base, states, betas_list, g, desc, progress, sampler).cpu()
    lme, stderr, ess = log_mean_exp(log_w)
    log_z = log_z0 - lme if reverse else log_z0 + lme
    diag = weight_diagnostics(log_w, tolerance)
    floor = None
    if x is not None and model.depth == 2 and floor_samples:
        floor = log_z_floor(model, x, floor_samples, g)
        missed = floor_reason(log_z, stderr, floor)
        diag.reasons.extend([missed] if missed else [])
    result = AISResult(
        log_z, stderr, ess, log_w, log_z0, reverse, len(betas_list) - 1, time.perf_counter() - start, diag, floor
    )
    if warn:
        warn_if_not_converged(f"{desc} {result}", diag)
    return result


@dataclass
class LikelihoodEstimate:
    """Average test log-likelihood: forward AIS above, RAISE below.

    ``forward`` = data_term − log Ẑ_forward tends to *overestimate* log p (log Ẑ_forward is a
    stochastic lower bound on log Z); ``reverse`` is the RAISE mean of log p̂(v) over the test rows
    (``raise_result``; None for deep stacks or when not asked for), a stochastic lower bound on the
    log-likelihood of the annealing model q, which *underestimates* log p when q fits the test data
    no better than the model does (always in expectation over v ~ p, see ``raise_``).
    ``data_term`` is the mean of −F(v) when the free energy is exact ("exact"), or of the
    mean-field lower bound −F_q(v) for deep stacks whose even hidden layers cannot be enumerated
    ("mean-field lower bound"): that term is then itself a lower bound, which shifts ``forward``
    down by the bound's gap.

    ``diagnostics``: both sides' checks plus the bracket ``forward − reverse`` (at most 2 nats, not
    crossed); forward only (deep stacks) it is the forward checks alone, which cannot see missed modes.
    """

    forward: float
    reverse: float | None
    data_term: float
    data_term_kind: str
    log_z_forward: AISResult
    raise_result: RAISEResult | None
    diagnostics: Diagnostics

    @property
    def converged(self) -> bool:
        return self.diagnostics.converged

    def __str__(self) -> str:
        fwd = f"{self.forward:.2f} ± {self.log_z_forward.stderr:.2f} (forward AIS)"
        if self.raise_result is None:
            return f"{fwd} nats {verdict(self.diagnostics)}"
        rev = f"{self.raise_result.mean:.2f} ± {self.raise_result.stderr:.2f} (RAISE)"
        return f"{rev} … {fwd} nats {verdict(self.diagnostics)}"


def data_term(model: Any, v: Any) -> tuple[torch.Tensor, str]:
    """(−F(v) per row, "exact") or, for deep stacks too large to enumerate, the mean-field bound."""
    even = [model.layers[i] for i in range(2, model.depth, 2)]
    if all(map(is_discrete, even)) and math.prod(layer.num_states() for layer in even) <= MAX_ENUMERATION:
        return -model.free_energy(v).to(torch.float64), "exact"
    return -variational_free_energy(model, v), "mean-field lower bound"


@torch.no_grad()
def estimate_log_likelihood(
    model: Any,
    test: Any,
    data: Any = None,
    chains: int = 100,
    betas: Any = "sm2008",
    reverse: bool | None = None,
    reverse_chains: int = 10,
    reverse_rows: int | None = None,
    seed: int | None = 0,
    progress: bool = True,
    tolerance: float = TOLERANCE,
    max_width: float = MAX_WIDTH,
    warn: bool = True,
) -> LikelihoodEstimate:
    """Mean log p(v) over ``test``: forward AIS (``chains`` chains) and RAISE (``reverse_chains`` per row).

    ``data`` fits the base model of both (default: ``test``). ``reverse``: run RAISE (default: when
    the model is an RBM; ``True`` on a deeper stack is refused). RAISE costs rows × ``reverse_chains``
    annealing runs, so on a large test set ``reverse_rows`` limits it to that many rows drawn at random
    (seeded): their mean is an unbiased estimate of the mean over all rows, with ``raise_result.stderr``
    its standard error. Other arguments as in ``log_partition``; RAISE anneals along the same ``betas``.
    Verdict: both sides pass their checks (``tolerance``) and the bracket is at most ``max_width`` nats;
    a ``ConvergenceWarning`` otherwise. ``log_likelihood_bracket`` is the sharper two-sided estimate.
    """
    from .raise_ import raise_log_likelihood  # raise_ builds on this module's annealing

    model = check_model(model)
    if reverse is None:
        reverse = model.depth == 2
    elif not isinstance(reverse, bool):
        raise TypeError(f"reverse must be True, False or None, got {type(reverse).__name__}")
    elif reverse and model.depth != 2:
        raise ValueError(f"reverse=True (RAISE) needs an RBM, got a stack of {model.depth} layers; pass reverse=False")
    x = visible_rows(model, test, "test")
    fit = x if data is None else visible_rows(model, data, "data")
    term, kind = data_term(model, x)
    mean_term = float(term.mean())
    tolerance = check_tolerance(tolerance, "tolerance")
    max_width = check_tolerance(max_width, "max_width")
    fwd = log_partition(model, chains, betas, fit, False, None, 0, seed, progress, tolerance, warn=False)
    forward = mean_term - fwd.log_z
    rev = None
    if reverse:
        rows = x
        if reverse_rows is not None and check_positive_int(reverse_rows, "reverse_rows") < x.shape[0]:
            pick = torch.randperm(x.shape[0], generator=model.generator(seed), device=x.device)[:reverse_rows]
            rows = x[pick.sort().values]
        rev = raise_log_likelihood(
            model, rows, reverse_chains, betas, fit, seed, progress, tolerance=tolerance, warn=False
        )
        diag = bracket_diagnostics(
            rev.mean, rev.stderr, forward, fwd.stderr, [rev.diagnostics, fwd.diagnostics], max_width
        )
    else:
        diag = Diagnostics(**{**fwd.diagnostics.__dict__, "reasons": list(fwd.diagnostics.reasons)})
    result = LikelihoodEstimate(forward, None if rev is None else rev.mean, mean_term, kind, fwd, rev, diag)
    if warn:
        warn_if_not_converged(f"test log-likelihood {result}", diag)
    return result
