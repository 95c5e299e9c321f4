"""A tempering path of an RBM from a data-centred base: the training rows' hidden conditionals.

An overfitted RBM keeps its mass in sharp modes near the training rows, which a path from the
base-rate model (``path.RBMPath``) crosses only through a first-order-like transition that
tempering chains rarely pass. This path starts *at* those modes. With N centre rows x_n, their hidden
conditionals q_n(h) = p(h | x_n) = exp(−H_1(h) + r(h)ᵀ f_n) / Z_1(f_n) (f_n = r(x_n) W), the base-rate
visible energy H_base and a mixture index n as an extra variable,

    f_β(v, h, n) = (1/N) q_n(h)^{1−β} exp(−(1 − β) H_base(v) − β E(v, h)),   E(v, h) = H_0(v) + H_1(h) − r(v)ᵀ W r(h),

so at β = 0 the units are independent (v from the base rates, h from the mixture (1/N) Σ_n q_n(h)),
Z_0 = Z_base exactly, and at β = 1 the index drops out: Z_1 = Z. With v and n summed out (state: h),

    log f_β(h) = logsumexp_n((1 − β) log q_n(h)) − log N − β H_1(h) + V_β(h),
    V_β(h) = log Σ_v exp(−(1 − β) H_base(v) − β H_0(v) + β r(v)ᵀ W r(h))

(V_β a softplus sum for Bernoulli units). A sweep at β draws n ~ p_β(n | h) ∝ q_n(h)^{1−β}, v ~ p_β(v | h) and then
h ~ p_β(h | v, n), whose field is (1 − β) f_n + β r(v) W. It follows the protocol of ``path.RBMPath``,
so PT + BAR (``bar.log_partition(..., path="data")``) runs on it unchanged: its ladder still spaces the
rungs by thermodynamic length, and the β = 1 end is the same model, so the estimate is of the same log Z.
The log Z floor of ``ebmlab.evaluate.floor`` is a short forward AIS along this path; its one-step limit
(β from 0 to 1 at once) is importance sampling of the hidden marginal with proposal (1/N) Σ_n q_n(h).

Linear-energy layers only (Bernoulli, one-hot): their conditionals at a mixed field are again of the
layer's own form. Cost of a sweep: the RBM's, plus a (rows × hidden) · (hidden × N) product for log q_n(h).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..layers import BernoulliLayer, OneHotLayer
from .base_rate import BaseRate

CENTRES = 1000  # centre rows: the base's cover of the training set against the cost of log q_n(h)
LAYERS = (BernoulliLayer, OneHotLayer)  # linear-energy layers: the ones this path takes


class DataPath:
    """log f_β and Gibbs sweeps along the data-centred path of the module docstring (state: h)."""

    @torch.no_grad()
    def __init__(
        self,
        model: Any,
        x: torch.Tensor,
        centres: int = CENTRES,
        g: torch.Generator | None = None,
        centre_rows: torch.Tensor | None = None,
    ) -> None:
        """``x``: training rows (they fit the base-rate visible model); the centres are ``centres`` random
        rows of ``x``, or the visible states ``centre_rows`` when given (e.g. chosen by ``bdmc``'s screen)."""
        if model.depth != 2:
            raise ValueError(f"the data-centred path needs an RBM (2 layers), got a stack of {model.depth}")
        for layer in model.layers:
            if not isinstance(layer, LAYERS):
                raise TypeError(
                    f"the data-centred path needs Bernoulli or one-hot layers, got {layer.label}; "
                    "use path='rate'"
                )
        self.visible, self.hidden = model.layers
        self.w = model.weights[0].detach()
        self.base = BaseRate(self.visible, x)
        rows = centre_rows
        if rows is None:
            rows = x[torch.randperm(x.shape[0], generator=g, device=x.device)[:centres]]
        self.field = self.visible.rescale(rows) @ self.w  # f_n = r(x_n) W, (N, hidden)
        self.log_norm = self.hidden.log_partition(self.field)  # log Z_1(f_n)
        self.shift = (self.base.layer.bias - self.visible.bias).detach()  # H_base − H_0 = −(b_base − b)ᵀ v
        self.log_z0 = self.base.log_partition()

    def start(self, rows: int, g: torch.Generator | None) -> torch.Tensor:
        """``rows`` exact draws of the β = 0 hidden marginal: n uniform, h ~ q_n."""
        n = torch.randint(self.field.shape[0], (rows,), generator=g, device=self.field.device)
        return self.hidden.sample(self.field[n], 1.0, g)

    def from_data(self, x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        """h ~ p(h | x) for the data rows ``x``."""
        return self.hidden.sample(self.visible.rescale(x) @ self.w, 1.0, g)

    def terms(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(log q_n(h) for every centre (rows × N), W r(h), both in the model's dtype; H_1(h) in float64)."""
        r = self.hidden.rescale(h)
        energy = self.hidden.energy(h)
        log_q = r @ self.field.T - energy.unsqueeze(-1) - self.log_norm
        return log_q, r @ self.w.T, energy.to(torch.float64)

    def log_f(self, terms: tuple[torch.Tensor, ...], beta: torch.Tensor | float) -> torch.Tensor:
        """log f_β(h) per row (float64); ``beta`` a number or one value per row."""
        log_q, down, energy = terms
        b = torch.as_tensor(beta, dtype=torch.float64, device=log_q.device)
        col = b.unsqueeze(-1) if b.dim() == 1 else b
        # in the model's dtype: float32 rounding of log q_n (hundreds of nats) costs ~1e-5 nat per value
        mixture = torch.logsumexp((1 - col.to(log_q.dtype)) * log_q, -1).to(torch.float64) - math.log(log_q.shape[-1])
        # softplus((1 − β) b_base + β (b + W r(h))) = the visible layer's log Z at field β W r(h) + (1 − β)(b_base − b)
        visible = self.visible.log_partition(col * down.to(torch.float64) + (1 - col) * self.shift.to(torch.float64))
        return mixture - b * energy + visible

    def sweep(self, terms: tuple[torch.Tensor, ...], beta: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        """One Gibbs sweep at per-row β: n | h and v | h (independent given h), then h | v, n."""
        log_q, down, _ = terms
        n = self.centre(log_q, beta, g)
        c = beta.to(down.dtype).unsqueeze(-1)
        v = self.visible.sample(c * down + (1 - c) * self.shift, 1.0, g)
        return self.hidden.sample(c * (self.visible.rescale(v) @ self.w) + (1 - c) * self.field[n], 1.0, g)

    def centre(self, log_q: torch.Tensor, beta: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        """n ~ p_β(n | h) ∝ q_n(h)^{1−β} per row (inverse CDF), from ``log_q`` = log q_n(h) of ``terms``.

        At β = 0 n is drawn uniformly instead, ignoring h: then h ~ q_n is an exact, independent draw of
        p_0, where the Gibbs step would keep a chain at the centre it came from (the q_n barely overlap),
        so the β = 0 end of a tempering ladder refreshes its chains."""
        b = beta.to(log_q.dtype).unsqueeze(-1)
        cdf = torch.softmax(torch.where(b == 0, 0.0, (1 - b) * log_q), -1).cumsum(-1)
        u = torch.rand((log_q.shape[0], 1), dtype=log_q.dtype, device=log_q.device, generator=g)
        return torch.searchsorted(cdf, u * cdf[:, -1:]).squeeze(-1).clamp(max=log_q.shape[-1] - 1)
