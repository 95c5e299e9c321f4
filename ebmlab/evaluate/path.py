"""The tempering path of an RBM from the base-rate model (β = 0) to the model (β = 1), hidden layer summed out.

With H_base the base-rate visible energy (``base_rate.BaseRate``), H_0 / H_1 the model's visible / hidden
energies and a(v) = r(v) W the field on the hidden layer,

    log f_β(v) = −(1 − β) H_base(v) − β H_0(v) + log Z_1(β a(v)),        Z_β = Σ_v f_β(v),

the same path as forward AIS and RAISE: Z_0 = Z_base · Z_1(0) is known, Z_1 is the model's Z. For
Bernoulli hidden units log Z_1(β a) = Σ_j softplus(β a_j + c_j), and the slope of the path is

    U_β(v) = ∂ log f_β / ∂β = H_base(v) − H_0(v) + a(v)ᵀ E_β[h | v],

whose spread under p_β sets the thermodynamic length L = ∫ sd_β(U) dβ ≈ Σ_k sd(log f_{β_k} − log f_{β_{k−1}})
on a fine grid: rungs spaced so that each holds an equal share of L keep the overlap of neighbouring
p_β (for swaps and for BAR) uniform along the path (Gelman & Meng 1998; Shenfeld et al. 2009).

A sweep at β draws h ~ p_β(h | v) then v ~ p_β(v | h); every row may carry its own β.

Every path (this one and ``data_path.DataPath``) has one protocol, used by PT + BAR: ``log_z0``;
``start(rows, g)`` draws exact β = 0 states; ``from_data(x, g)`` gives states near data rows;
``terms(state)`` returns per-row tensors (permuted with the rows by swaps); ``log_f(terms, β)``;
``sweep(terms, β, g)`` returns the next states.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from tqdm.auto import tqdm

from .base_rate import BaseRate, base_log_partition

PATHS = ("rate", "data")  # from the base-rate model (RBMPath), from the training rows (data_path.DataPath)


class Path(Protocol):
    """The tempering-path protocol (module docstring)."""

    log_z0: float

    def start(self, rows: int, g: torch.Generator | None) -> torch.Tensor: ...

    def from_data(self, x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor: ...

    def terms(self, state: torch.Tensor) -> tuple[torch.Tensor, ...]: ...

    def log_f(self, terms: tuple[torch.Tensor, ...], beta: torch.Tensor | float) -> torch.Tensor: ...

    def sweep(self, terms: tuple[torch.Tensor, ...], beta: torch.Tensor, g: torch.Generator | None) -> torch.Tensor: ...


@torch.no_grad()
def anneal(
    path: Path, chains: int, betas: list[float], g: torch.Generator | None, progress: bool = False, desc: str = "AIS"
) -> tuple[torch.Tensor, list[float]]:
    """Forward AIS along ``path`` (Neal 2001) from ``chains`` exact β = 0 draws: ``forward``'s log-weights
    and step spreads."""
    log_w, spread, _ = forward(path, path.start(chains, g), betas, g, progress, desc)
    return log_w, spread


@torch.no_grad()
def forward(
    path: Path,
    state: torch.Tensor,
    betas: list[float],
    g: torch.Generator | None,
    progress: bool = False,
    desc: str = "AIS",
) -> tuple[torch.Tensor, list[float], torch.Tensor]:
    """Forward AIS from β = 0 states x_1 (one chain per row of ``state``): for k = 1 … K the log-weight
    gains log f_{β_k}(x_k) − log f_{β_{k−1}}(x_k) and x_{k+1} = sweep at β_k. E exp(log w) = Z_1 / Z_0 when
    x_1 ~ p_0, so path.log_z0 + log mean exp(log w) is a stochastic lower bound on log Z. Returns the
    log-weights (float64), the sd of each step's increments (the thermodynamic length's pieces) and the
    last states x_K (weighted by exp(log w), they are importance samples of the model)."""
    rows = state.shape[0]
    log_w = torch.zeros(rows, dtype=torch.float64, device=state.device)
    spread: list[float] = []
    terms = path.terms(state)
    for k in tqdm(range(1, len(betas)), desc=desc, disable=not progress, leave=False, mininterval=1.0):
        step = path.log_f(terms, betas[k]) - path.log_f(terms, betas[k - 1])
        log_w += step
        spread.append(float(step.std(unbiased=True)) if rows > 1 else 0.0)
        if k < len(betas) - 1:
            beta = torch.full((rows,), betas[k], dtype=torch.float64, device=state.device)
            state = path.sweep(terms, beta, g)
            terms = path.terms(state)
    return log_w, spread, state


@torch.no_grad()
def reverse(
    path: Path, state: torch.Tensor, betas: list[float], g: torch.Generator | None, progress: bool = False
) -> torch.Tensor:
    """Reverse AIS from β = 1 states x_K (one chain per row of ``state``): for k = K … 1 the log-weight
    gains log f_{β_{k−1}}(x_k) − log f_{β_k}(x_k), and x_{k−1} = sweep at β_{k−1}. When x_K ~ p_1 exactly,
    E exp(log w) = Z_0 / Z_1, so path.log_z0 − log mean exp(log w) is a stochastic *upper* bound on log Z
    (Jensen; Grosse, Ghahramani & Adams 2015, "Sandwiching the marginal likelihood using bidirectional
    Monte Carlo"). Returns the log-weights (float64)."""
    rows = state.shape[0]
    log_w = torch.zeros(rows, dtype=torch.float64, device=state.device)
    terms = path.terms(state)
    for k in tqdm(range(len(betas) - 1, 0, -1), desc="reverse AIS", disable=not progress, leave=False, mininterval=1.0):
        log_w += path.log_f(terms, betas[k - 1]) - path.log_f(terms, betas[k])
        if k > 1:
            beta = torch.full((rows,), betas[k - 1], dtype=torch.float64, device=state.device)
            terms = path.terms(path.sweep(terms, beta, g))
    return log_w


class RBMPath:
    """log f_β and block-Gibbs sweeps along the base-rate → model path of an RBM (state: v)."""

    def __init__(self, model: Any, base: BaseRate) -> None:
        if model.depth != 2:
            raise ValueError(f"the tempering path needs an RBM (2 layers), got a stack of {model.depth}")
        self.base = base
        self.visible, self.hidden = model.layers[0], model.layers[1]
        self.w = model.weights[0].detach()
        self.log_z0 = base_log_partition(model, base)

    def start(self, rows: int, g: torch.Generator | None) -> torch.Tensor:
        """``rows`` exact draws of p_0: the base-rate model."""
        return self.base.sample(rows, g)

    def from_data(self, x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        """States at the data rows ``x`` themselves."""
        return x

    def terms(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(a(v) = r(v) W in the model's dtype, H_base(v), H_0(v) in float64): what log f_β and a sweep need."""
        a = self.visible.rescale(v) @ self.w
        return a, self.base.layer.energy(v).to(torch.float64), self.visible.energy(v).to(torch.float64)

    def log_f(self, terms: tuple[torch.Tensor, ...], beta: torch.Tensor | float) -> torch.Tensor:
        """log f_β(v) per row (float64); ``beta`` a number or one value per row."""
        a, h_base, h_0 = terms
        b = torch.as_tensor(beta, dtype=torch.float64, device=a.device)
        col = b.unsqueeze(-1) if b.dim() == 1 else b
        return -(1 - b) * h_base - b * h_0 + self.hidden.log_partition(col * a.to(torch.float64))

    def sweep(self, terms: tuple[torch.Tensor, ...], beta: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        """One block-Gibbs sweep at per-row β (a (rows,) tensor): h | v, then v | h."""
        a = terms[0]
        col = beta.to(a.dtype).unsqueeze(-1)
        h = self.hidden.sample(col * a, 1.0, g)
        down = self.hidden.rescale(h) @ self.w.T
        return self.base.mixed_sample(down, col, g)
