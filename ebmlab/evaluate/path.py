"""The tempering path of an RBM from the base-rate model (β = 0) to the model (β = 1), hidden layer summed out.

With H_base the base-rate visible energy (``ais.BaseRate``), H_0 / H_1 the model's visible / hidden
energies and a(v) = r(v) W the field on the hidden layer,

    log f_β(v) = −(1 − β) H_base(v) − β H_0(v) + log Z_1(β a(v)),        Z_β = Σ_v f_β(v),

the same path as forward AIS and RAISE: Z_0 = Z_base · Z_1(0) is known, Z_1 is the model's Z. For
Bernoulli hidden units log Z_1(β a) = Σ_j softplus(β a_j + c_j), and the slope of the path is

    U_β(v) = ∂ log f_β / ∂β = H_base(v) − H_0(v) + a(v)ᵀ E_β[h | v],

whose spread under p_β sets the thermodynamic length L = ∫ sd_β(U) dβ ≈ Σ_k sd(log f_{β_k} − log f_{β_{k−1}})
on a fine grid: rungs spaced so that each holds an equal share of L keep the overlap of neighbouring
p_β (for swaps and for BAR) uniform along the path (Gelman & Meng 1998; Shenfeld et al. 2009).

A sweep at β draws h ~ p_β(h | v) then v ~ p_β(v | h); every row may carry its own β.
"""

from __future__ import annotations

from typing import Any

import torch

from .ais import BaseRate


class RBMPath:
    """log f_β, its β-slope and block-Gibbs sweeps along the base-rate → model path of an RBM."""

    def __init__(self, model: Any, base: BaseRate) -> None:
        if model.depth != 2:
            raise ValueError(f"the tempering path needs an RBM (2 layers), got a stack of {model.depth}")
        self.model, self.base = model, base
        self.visible, self.hidden = model.layers[0], model.layers[1]
        self.w = model.weights[0].detach()

    def fields(self, v: torch.Tensor) -> torch.Tensor:
        """a(v) = r(v) W, the hidden field, in the model's dtype."""
        return self.visible.rescale(v) @ self.w

    def terms(self, v: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(a = a(v), H_base(v), H_0(v), all float64): what log f_β needs for any β."""
        return (
            a.to(torch.float64),
            self.base.layer.energy(v).to(torch.float64),
            self.visible.energy(v).to(torch.float64),
        )

    def log_f(self, terms: tuple[torch.Tensor, torch.Tensor, torch.Tensor], beta: torch.Tensor | float) -> torch.Tensor:
        """log f_β(v) per row (float64); ``beta`` a number or one value per row."""
        a, h_base, h_0 = terms
        b = torch.as_tensor(beta, dtype=torch.float64, device=a.device)
        col = b.unsqueeze(-1) if b.dim() == 1 else b
        return -(1 - b) * h_base - b * h_0 + self.hidden.log_partition(col * a)

    def sweep(self, a: torch.Tensor, beta: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        """One block-Gibbs sweep at per-row β (a (rows,) tensor) from hidden fields a = a(v): h | v, then v | h."""
        col = beta.to(a.dtype).unsqueeze(-1)
        h = self.hidden.sample(col * a, 1.0, g)
        down = self.hidden.rescale(h) @ self.w.T
        return self.base.mixed_sample(down, col, g)
