"""A floor under log Z of an RBM: annealed importance sampling from the training rows.

Forward AIS (``path.anneal``) along the data-centred path of ``data_path.DataPath``: its β = 0 end
is the mixture (1/N) Σ_n p(h | x_n) of the rows' hidden conditionals (times the base-rate visible
model), its β = 1 end the model, so each chain's weight w satisfies E w = Z / Z_0 with Z_0 known. Hence

    log Ẑ = log Z_0 + log mean_s w_s

is unbiased in Z for any rows chosen before the chains are drawn: a stochastic *lower* bound on log Z
(E log Ẑ ≤ log Z by Jensen; P(log Ẑ > log Z + t) ≤ e^{−t} by Markov) that needs no Markov chain to
mix. On an overfitted model, whose mass sits in sharp modes near the training rows, it finds mass that
annealing and tempering chains started elsewhere never reach: ``floor_reason`` turns that into a
failed check of any other log Z estimate (PT + BAR, AIS, the log-likelihood bracket). Its one-step limit
is importance sampling of the hidden marginal from the rows (``data_log_partition``, also the floor of
RBMs whose layers the data-centred path does not take, e.g. Gaussian visible units); on a 784×500
MNIST RBM the 726-step ``fast`` schedule raised the floor by 6–9 nats over 2,000 one-step draws, at
about 3 s for 100 chains.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .._checks import check_positive_int
from ._common import check_model, visible_rows
from .data_path import LAYERS, DataPath
from .diagnostics import MARKOV_SLACK, log_mean_exp
from .path import anneal
from .schedules import get_schedule

FLOOR_ROWS = 5000  # rows (a random subset of larger sets) that centre the one-step floor's proposal
FLOOR_SAMPLES = 100  # AIS chains: about 3 s on a 784×500 RBM along the fast schedule
FLOOR_BETAS = "fast"  # the floor's annealing schedule (726 steps)


@torch.no_grad()
def data_log_partition(
    model: Any,
    x: torch.Tensor,
    samples: int,
    generator: torch.Generator | None = None,
    field: torch.Tensor | None = None,
    chains: torch.Tensor | None = None,
) -> float:
    """log Ẑ by importance sampling of an RBM's hidden marginal from data rows ``x`` (and the visible states
    ``chains`` of Markov chains run under the model, when given): h ~ q(h), Ẑ = mean exp(−F_h(h)) / q(h) with
    −F_h(h) = −H_h(h) + log Z_v(W r(h)). E Ẑ = Z (unbiased in Z, low in log Z) for any centres chosen before h.

    Without chains q(h) = (1/N) Σ_n p(h | x_n); with M chain states c_m (and at least 2 draws) it is the
    mixture q(h) = a (1/N) Σ_n p(h | x_n) + (1 − a) (1/M) Σ_m p(h | c_m) with a = ⌈S/2⌉/S, S − ⌊S/2⌋ draws
    from the rows' part and ⌊S/2⌋ from the chains' (a deterministic mixture: unbiased because each part
    gets exactly its weight's share of the draws). The data find the mass near the rows;
    the chains find the model's own modes away from them, which the data part misses by tens of nats on a
    784×500 MNIST RBM. ``field``: the rows' hidden field r(x) W when already computed."""
    visible, hidden = model.layers
    w = model.weights[0]
    if field is None:
        field = visible.rescale(x) @ w
    parts = [(field, samples)]
    if chains is not None and chains.shape[0] and samples >= 2:
        parts = [(field, samples - samples // 2), (visible.rescale(chains) @ w, samples // 2)]
    h = torch.cat([hidden.sample(f[_picks(f.shape[0], k, generator, f.device)], 1.0, generator) for f, k in parts])
    energy = hidden.energy(h).to(torch.float64)
    neg_fh = visible.log_partition(hidden.rescale(h) @ w.T).to(torch.float64) - energy
    log_q = torch.stack([  # log of each part's weighted density (weight = its share of the draws) at every draw
        torch.logsumexp((hidden.rescale(h) @ f.T).to(torch.float64) - energy.unsqueeze(1)
                        - hidden.log_partition(f).to(torch.float64), 1) - math.log(f.shape[0]) + math.log(k / samples)
        for f, k in parts
    ])
    log_q = torch.logsumexp(log_q, 0)
    return float(torch.logsumexp(neg_fh - log_q, 0)) - math.log(samples)


def _picks(n: int, samples: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """``samples`` indices into ``n`` centres, each marginally uniform: distinct ones first (less variance),
    then at random."""
    pick = torch.randperm(n, generator=generator, device=device)[:samples]
    if samples > n:
        pick = torch.cat([pick, torch.randint(n, (samples - n,), generator=generator, device=device)])
    return pick


@torch.no_grad()
def log_z_floor(
    model: Any,
    rows: torch.Tensor,
    samples: int = FLOOR_SAMPLES,
    generator: torch.Generator | None = None,
    betas: Any = FLOOR_BETAS,
) -> float:
    """log Ẑ by forward AIS from ``rows`` along ``betas`` with ``samples`` chains (the module docstring);
    for layers other than Bernoulli and one-hot, ``data_log_partition`` with ``samples`` draws centred on
    up to ``FLOOR_ROWS`` random ``rows``. ``rows``: visible rows of an RBM (checked like every estimator's data)."""
    model = check_model(model)
    if model.depth != 2:
        raise ValueError(f"log_z_floor needs an RBM (2 layers), got a stack of {model.depth}")
    rows = visible_rows(model, rows, "rows")
    samples = check_positive_int(samples, "samples")
    if all(isinstance(layer, LAYERS) for layer in model.layers):
        path = DataPath(model, rows, g=generator)
        log_w, _ = anneal(path, samples, get_schedule(betas).tolist(), generator)
        return path.log_z0 + log_mean_exp(log_w)[0]
    centres = rows[torch.randperm(rows.shape[0], generator=generator, device=rows.device)[:FLOOR_ROWS]]
    return data_log_partition(model, centres, samples, generator)


def floor_reason(log_z: float, stderr: float, floor: float) -> str | None:
    """The failed check when ``log_z`` lies more than ``MARKOV_SLACK`` + 3 s.e. below the ``floor``, else None."""
    below = floor - log_z
    if not below > MARKOV_SLACK + 3 * (stderr if math.isfinite(stderr) else 0.0):
        return None
    return (
        f"log Ẑ {log_z:.1f} lies {below:.1f} nats below the floor {floor:.1f} (annealed importance sampling from the "
        "training rows, a lower bound on log Z): its chains missed mass near those rows"
    )
