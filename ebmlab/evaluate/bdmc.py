"""log Z of an RBM sandwiched by bidirectional Monte Carlo along a screened data-centred path.

Grosse, Ghahramani & Adams (2015), "Sandwiching the marginal likelihood using bidirectional Monte
Carlo": forward AIS gives a stochastic *lower* bound on log Z, reverse AIS started at exact samples of
the model a stochastic *upper* bound; when the two meet, both are accurate. Here both run along the
data-centred path of ``data_path.DataPath``, whose β = 0 end is the mixture (1/K) Σ_k p(h | c_k) of the
hidden conditionals of K centres c_k:

1. **Candidates**: the training rows, plus ``chain_starts`` Markov chains run ``chain_sweeps``
   block-Gibbs sweeps under the model from base-rate draws (the model's own modes away from the data).
2. **Screen**: one short forward-AIS chain (``screen_betas``) from each candidate's hidden conditional,
   with every candidate in the mixture — stratified, so each candidate's mode is visited once. On an
   overfitted 784×500 MNIST RBM the per-centre masses spread over ±5.5 nats (sd), and log Z is carried
   by a small number of modes that a random subset of the centres misses.
3. **Forward**: the ``centres`` candidates with the largest screen weights become the path's centres;
   ``chains`` forward-AIS chains along ``betas`` give

       log Ẑ_fwd = log Z_0 + log mean_s w_s,   E w = Z / Z_0,

   unbiased in Z for any centres chosen before these chains are drawn: a stochastic lower bound on log Z
   (E log Ẑ ≤ log Z; P(log Ẑ > log Z + t) ≤ e^{−t}) that needs no mixing.
4. **Reverse**: the forward chains' last states, resampled in proportion to w and moved by
   ``resample_sweeps`` Gibbs sweeps at β = 1 (approximate samples of the model), anneal back to β = 0:

       log Ẑ_rev = log Z_0 − log mean_s w'_s,   w'_s = Π_k f_{k−1}(x_k) / f_k(x_k),

   a stochastic upper bound on log Z *when the starting states are exact samples* (E w' = Z_0 / Z). They
   are importance samples instead, so this side errs low exactly where the forward run missed mass (a
   mode that no forward chain reached is missing from both); what it does detect is annealing too short
   to equilibrate within the modes found, which pushes the two sides apart.

Verdict: each side's weights pass ``diagnostics.weight_diagnostics``'s s.e. and independent-halves checks
and have ESS ≥ ``MIN_ESS`` (the fraction rule of one-sided AIS is replaced by the sandwich), and
log Ẑ_rev − log Ẑ_fwd ≤ ``max_width`` without crossing by more than three standard errors (plus
``MARKOV_SLACK``, the room a stochastic bound has). Measured on a 784×500 MNIST-5k RBM trained past its
best test likelihood (926 epochs of PCD-1), with these defaults: log Ẑ_fwd … log Ẑ_rev = 727.01 ± 0.11 …
727.10 ± 0.21 and 727.33 ± 0.26 … 727.52 ± 0.18 (seeds 0 and 1, 72–95 s with two threads), against
PT + BAR 727.0–727.1 and a log Z floor 725.1–726.4 (README, "Estimators").

Cost: the screen is (candidates)² × hidden per step (the mixture term), the rest ``chains`` × (steps of
``betas``) sweeps of the RBM plus chains × centres × hidden per step.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from .._checks import check_positive_int
from ._common import check_model, visible_rows
from .base_rate import BaseRate
from .data_path import LAYERS, DataPath
from .diagnostics import (
    MARKOV_SLACK,
    MAX_WIDTH,
    TOLERANCE,
    Diagnostics,
    check_tolerance,
    log_mean_exp,
    verdict,
    warn_if_not_converged,
    weight_diagnostics,
)
from .path import forward, reverse
from .schedules import get_schedule, linear

SCREEN_ROWS = 5000  # training rows screened (a random subset of larger sets): (rows + chains)² × hidden a step


@dataclass
class BDMCResult:
    """log Z between ``lower`` (forward AIS) and ``upper`` (reverse AIS from the resampled forward states).

    ``forward_log_w`` / ``reverse_log_w``: the chains' log-weights; ``centres``: the visible states the
    path was centred on; ``log_z0``: the base's log partition; ``seconds``: wall time of the whole run;
    ``forward`` / ``reverse``: each side's weight checks; ``diagnostics``: both sides' and the sandwich's.
    """

    lower: float
    lower_stderr: float
    upper: float
    upper_stderr: float
    log_z0: float
    forward_log_w: torch.Tensor
    reverse_log_w: torch.Tensor
    centres: torch.Tensor
    seconds: float
    forward: Diagnostics
    reverse: Diagnostics
    diagnostics: Diagnostics

    @property
    def log_z(self) -> float:
        """The forward side: the stochastic lower bound, used as the point estimate."""
        return self.lower

    @property
    def stderr(self) -> float:
        return self.lower_stderr

    @property
    def width(self) -> float:
        return self.upper - self.lower

    @property
    def converged(self) -> bool:
        return self.diagnostics.converged

    def __str__(self) -> str:
        return (
            f"log Z {self.lower:.2f} ± {self.lower_stderr:.2f} … {self.upper:.2f} ± {self.upper_stderr:.2f} nats "
            f"(BDMC, width {self.width:.2f}) {verdict(self.diagnostics)}"
        )


@torch.no_grad()
def log_partition(
    model: Any,
    data: Any,
    centres: int = 50,
    chains: int = 500,
    betas: Any = "fast",
    screen_betas: Any = 50,
    chain_starts: int = 500,
    chain_sweeps: int = 2000,
    resample_sweeps: int = 50,
    seed: int | None = 0,
    progress: bool = True,
    tolerance: float = TOLERANCE,
    max_width: float = MAX_WIDTH,
    warn: bool = True,
) -> BDMCResult:
    """Sandwich log Z of an RBM with Bernoulli or one-hot layers (module docstring).

    ``data``: training rows (they fit the base rates and are the screen's candidates, a random
    ``SCREEN_ROWS`` of them when more). ``centres``: how many candidates centre the path; ``chains``:
    forward and reverse chains along ``betas`` (a preset name or a sequence from 0 to 1);
    ``screen_betas``: the screen's schedule (a number n: ``schedules.linear(n)``); ``chain_starts``
    × ``chain_sweeps``: the model's chains added to the candidates (0 starts: rows only);
    ``resample_sweeps``: Gibbs sweeps at β = 1 after resampling.
    """
    model = check_model(model)
    if model.depth != 2:
        raise ValueError(f"BDMC needs an RBM (2 layers), got a stack of {model.depth}")
    for layer in model.layers:
        if not isinstance(layer, LAYERS):
            raise TypeError(
                f"BDMC runs on the data-centred path, which needs Bernoulli or one-hot layers, got {layer.label}"
            )
    centres = check_positive_int(centres, "centres")
    chains = check_positive_int(chains, "chains", minimum=4)
    chain_starts = check_positive_int(chain_starts, "chain_starts", minimum=0)
    chain_sweeps = check_positive_int(chain_sweeps, "chain_sweeps", minimum=0)
    resample_sweeps = check_positive_int(resample_sweeps, "resample_sweeps", minimum=1)
    tolerance = check_tolerance(tolerance, "tolerance")
    max_width = check_tolerance(max_width, "max_width")
    fine = get_schedule(betas).tolist()
    if isinstance(screen_betas, int) and not isinstance(screen_betas, bool):
        screen = linear(check_positive_int(screen_betas, "screen_betas")).tolist()
    else:
        screen = get_schedule(screen_betas).tolist()
    x = visible_rows(model, data, "data")
    g = model.generator(seed)
    start = time.perf_counter()
    visible, hidden = model.layers
    w = model.weights[0].detach()

    candidates = x[torch.randperm(x.shape[0], generator=g, device=x.device)[:SCREEN_ROWS]]
    if chain_starts:
        v = BaseRate(visible, x).sample(chain_starts, g)
        for _ in tqdm(range(chain_sweeps), desc="BDMC chains", disable=not progress, leave=False, mininterval=1.0):
            h = hidden.sample(visible.rescale(v) @ w, 1.0, g)
            v = visible.sample(hidden.rescale(h) @ w.T, 1.0, g)
        candidates = torch.cat([candidates, v.to(candidates.dtype)])
    path = DataPath(model, x, g=g, centre_rows=candidates)
    screen_w, _, _ = forward(path, hidden.sample(path.field, 1.0, g), screen, g, progress, "BDMC screen")
    top = screen_w.argsort(descending=True)[: min(centres, candidates.shape[0])]

    path = DataPath(model, x, g=g, centre_rows=candidates[top])
    fwd, _, last = forward(path, path.start(chains, g), fine, g, progress, "BDMC forward")
    pick = torch.multinomial(torch.softmax(fwd, 0).to(torch.float64), chains, replacement=True, generator=g)
    state = last[pick]
    ones = torch.ones(chains, dtype=torch.float64, device=state.device)
    for _ in range(resample_sweeps):
        state = path.sweep(path.terms(state), ones, g)
    rev = reverse(path, state, fine, g, progress)

    lower, lower_se, _ = log_mean_exp(fwd.cpu())
    lme, upper_se, _ = log_mean_exp(rev.cpu())
    lower, upper = path.log_z0 + lower, path.log_z0 - lme
    sides = [weight_diagnostics(log_w.cpu(), tolerance, min_ess_fraction=0.0) for log_w in (fwd, rev)]
    diag = _diagnostics(sides, lower, upper, math.hypot(lower_se, upper_se), max_width)
    result = BDMCResult(
        lower, lower_se, upper, upper_se, path.log_z0, fwd.cpu(), rev.cpu(), candidates[top],
        time.perf_counter() - start, *sides, diag,
    )
    if warn:
        warn_if_not_converged(f"BDMC {result}", diag)
    return result


def _diagnostics(sides: list[Diagnostics], lower: float, upper: float, stderr: float, max_width: float) -> Diagnostics:
    """The verdict: the forward and reverse weight checks (``sides``) and the sandwich (module docstring)."""
    d = Diagnostics(samples=sides[0].samples, bracket_width=upper - lower, stderr=stderr)
    d.ess, d.log_weight_sd = sides[0].ess, sides[0].log_weight_sd
    for name, side in zip(("forward", "reverse"), sides):
        d.reasons.extend(f"{name}: {r}" for r in side.reasons)
    if d.bracket_width > max_width:
        d.reasons.append(f"sandwich {d.bracket_width:.1f} nats > {max_width:g}")
    elif d.bracket_width < -(MARKOV_SLACK + 3 * stderr):
        d.reasons.append(f"sides cross by {-d.bracket_width:.1f} nats (the reverse chains missed mass)")
    return d
