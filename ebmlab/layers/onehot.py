"""One-hot (Potts / categorical) units: ``sites`` variables, each taking one of ``states`` values.

A state batch has shape (batch, sites·states), site s occupying columns s·states … s·states+states−1
with exactly one 1. With bias b,

    H(x) = −bᵀx,   r(x) = x,   p(x_s = k | f) = softmax_k(β(f_sk + b_sk)),
    log Z(f, β) = Σ_s logsumexp_k β(f_sk + b_sk).

``OneHotLayer(1, 10)`` is a single label unit with ten classes.
"""

from __future__ import annotations

import numbers
from typing import Any

import torch
from torch import nn
from torch.distributions import constraints

from .._checks import Beta, check_rows
from .base import Layer, expand_beta


class OneHotSites(torch.distributions.Distribution):
    """Independent categorical sites, with events flattened to (sites·states,) one-hot vectors."""

    arg_constraints = {"logits": constraints.real}  # noqa: RUF012 (torch.distributions protocol)
    has_rsample = False

    def __init__(self, logits: torch.Tensor, sites: int, states: int) -> None:
        self.logits = logits
        self.sites, self.states = sites, states
        self._cat = torch.distributions.OneHotCategorical(
            logits=logits.reshape(*logits.shape[:-1], sites, states), validate_args=False
        )
        super().__init__(logits.shape[:-1], logits.shape[-1:], validate_args=False)

    @property
    def mean(self) -> torch.Tensor:
        return self._cat.probs.flatten(-2)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:  # noqa: B008
        return self._cat.sample(sample_shape).flatten(-2)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        v = value.reshape(*value.shape[:-1], self.sites, self.states)
        return self._cat.log_prob(v).sum(-1)

    def entropy(self) -> torch.Tensor:
        return self._cat.entropy().sum(-1)


class OneHotLayer(Layer):
    """``sites`` categorical units of ``states`` values each, with a learned bias per value."""

    kind = "onehot"

    def __init__(self, sites: int, states: int | None = None, name: str | None = None) -> None:
        if states is None:  # OneHotLayer(k): one site with k values
            sites, states = 1, sites
        for arg, value in (("sites", sites), ("states", states)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{arg} must be a positive integer, got {value!r}")
        sites, states = int(sites), int(states)
        if states < 2:
            raise ValueError(f"states must be at least 2 for a categorical unit, got {states}")
        super().__init__(sites * states, name)
        self.sites, self.states = sites, states
        self.bias = nn.Parameter(torch.zeros(sites * states))

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        return -(x @ self.bias)

    def logits(self, field: torch.Tensor, beta: Beta = 1.0) -> torch.Tensor:
        return expand_beta(beta, field) * (field + self.bias)

    def _sites(self, t: torch.Tensor) -> torch.Tensor:
        return t.reshape(*t.shape[:-1], self.sites, self.states)

    def conditional(self, field: torch.Tensor, beta: Beta = 1.0) -> OneHotSites:
        return OneHotSites(self.logits(field, beta), self.sites, self.states)

    def mean(self, field: torch.Tensor, beta: Beta = 1.0) -> torch.Tensor:
        return torch.softmax(self._sites(self.logits(field, beta)), -1).flatten(-2)

    def sample(self, field: torch.Tensor, beta: Beta = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
        """Gumbel-max: argmax_k (logit_k + G_k) with G standard Gumbel is a categorical draw."""
        logits = self._sites(self.logits(field, beta))
        u = torch.rand(logits.shape, dtype=logits.dtype, device=logits.device, generator=generator)
        gumbel = -torch.log(-torch.log(u.clamp_min(torch.finfo(u.dtype).tiny)))
        idx = (logits + gumbel).argmax(-1, keepdim=True)
        return torch.zeros_like(logits).scatter_(-1, idx, 1.0).flatten(-2)

    def log_partition(self, field: torch.Tensor, beta: Beta = 1.0) -> torch.Tensor:
        return torch.logsumexp(self._sites(self.logits(field, beta)), -1).sum(-1)

    # -- TAP terms: q = independent categoricals, site s taking value k with probability m_sk ------
    def tap_mean(self, field: torch.Tensor) -> torch.Tensor:
        """argmin_m Γ₀(m) − fieldᵀm over the per-site simplices = softmax_k(b_sk + field_sk)."""
        return self.mean(field)

    def tap_entropy(self, m: torch.Tensor) -> torch.Tensor:
        """S(m) = −Σ_s Σ_k m_sk ln m_sk per row."""
        return -torch.special.xlogy(m, m).sum(-1)

    def tap_variance(self, m: torch.Tensor) -> torch.Tensor:
        """Diagonal of the per-site covariance, Var_q(x_sk) = m_sk − m_sk²."""
        return m - m * m

    def tap_covariance(self, m: torch.Tensor) -> torch.Tensor:
        """Per-site covariance Cov_q(x_sk, x_sl) = δ_kl m_sk − m_sk m_sl, shape (..., sites, states, states)."""
        p = self._sites(m)
        return torch.diag_embed(p) - p.unsqueeze(-1) * p.unsqueeze(-2)

    def check(self, x: torch.Tensor, name: str = "x") -> None:
        super().check(x, name)
        if ((x != 0) & (x != 1)).any():
            raise ValueError(f"{name} for layer {self.label} must be one-hot: entries 0 or 1")
        counts = self._sites(x).sum(-1)
        if (counts != 1).any():
            row = int((counts != 1).any(-1).nonzero()[0])
            raise ValueError(
                f"{name} for layer {self.label} must be one-hot: row {row} does not have exactly "
                f"one 1 in each of its {self.sites} sites of {self.states} states"
            )

    def num_states(self) -> float:
        return float(self.states) ** self.sites

    def all_states(self) -> torch.Tensor:
        """All statesˢⁱᵗᵉˢ configurations, one-hot encoded, the first site varying slowest."""
        if self.num_states() > 2**30:
            raise ValueError(f"layer {self.label} has too many states to enumerate")
        eye = torch.eye(self.states, dtype=self.bias.dtype, device=self.bias.device)
        grids = torch.cartesian_prod(*[torch.arange(self.states)] * self.sites).reshape(-1, self.sites)
        return eye[grids.to(self.bias.device)].flatten(-2)

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor) -> None:
        """b_sk = log of the frequency of value k at site s (smoothed by 1e-3)."""
        check_rows(x, "x")
        freq = self._sites(x.mean(0)) + 1e-3
        self.bias.copy_(torch.log(freq / freq.sum(-1, keepdim=True)).flatten())

    def spec(self) -> dict[str, Any]:
        return {"type": self.kind, "sites": self.sites, "states": self.states, "name": self.name}

    def extra_repr(self) -> str:
        return f"sites={self.sites}, states={self.states}, name={self.name!r}"
