"""Analytic gradient of the CD/PCD surrogate for Bernoulli–Bernoulli RBMs, without autograd.

With A = X W + c for the stacked rows X = [data; chains], P = σ(A), and row weights
s_r = −1/B for the B data rows and +1/M for the M chain rows, the surrogate
L = ⟨F⟩_data − ⟨F⟩_model, F(v) = −bᵀv − Σ_j softplus((vW + c)_j), has

    L = bᵀ(Xᵀs) + Σ_r s_r Σ_j softplus(A_rj),
    ∂L/∂W = Xᵀ (s ⊙ P),    ∂L/∂b = Xᵀ s,    ∂L/∂c = Σ_r s_r P_r.

So the hidden field of the data rows and of the chains' last visible state is one matmul, and
the positive and negative statistics are one more. The sampling draws the same uniforms in the
same order as the generic ``model._gibbs`` path, so both paths agree to rounding.
"""

from __future__ import annotations

import functools

import torch
from torch.nn import functional as F

from ..._checks import Beta
from ...layers import BernoulliLayer
from ...model import BoltzmannMachine

_BERNOULLI_MATH = ("energy", "rescale", "logits", "mean", "sample", "log_partition")


@functools.cache
def _computes_as_bernoulli(cls: type) -> bool:
    if not issubclass(cls, BernoulliLayer):
        return False
    return all(getattr(cls, m) is getattr(BernoulliLayer, m) for m in _BERNOULLI_MATH)


def is_bernoulli_rbm(model: BoltzmannMachine) -> bool:
    """True for a depth-2 model whose both layers compute as ``BernoulliLayer`` does.

    A subclass qualifies when it keeps every method the gradient and the sampling use (it may
    differ in, e.g., ``check``, as ``ebmlab.sklearn``'s visible layer does).
    """
    return model.depth == 2 and all(_computes_as_bernoulli(type(layer)) for layer in model.layers)


def _bernoulli(
    logits: torch.Tensor, beta: Beta, generator: torch.Generator | None, shard: tuple[int, int, int] | None = None
) -> torch.Tensor:
    """Draw x ~ Bernoulli(σ(β·logits)) with one uniform per unit (as ``BernoulliLayer.sample``).

    ``shard`` = (rows, start, stop): ``logits`` are rows start:stop of a batch of ``rows``; the uniforms
    of all ``rows`` are drawn and rows start:stop kept, so the draws equal those of the whole batch."""
    p = torch.sigmoid(logits if isinstance(beta, float) and beta == 1.0 else _scale(logits, beta))
    if shard is None:
        return torch.rand(p.shape, dtype=p.dtype, device=p.device, generator=generator).lt_(p)
    rows, start, stop = shard
    u = torch.rand((rows, *p.shape[1:]), dtype=p.dtype, device=p.device, generator=generator)
    return u[start:stop].lt_(p)


def _scale(x: torch.Tensor, beta: Beta) -> torch.Tensor:
    return x * (beta.unsqueeze(-1) if isinstance(beta, torch.Tensor) else beta)


class FastRBM:
    """Preallocated buffers for one batch size and chain count; rebuilt when either changes."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        # (rows, start, stop) when the batch is rows start:stop of a larger one (data-parallel CD)
        self.shard: tuple[int, int, int] | None = None

    def _buffers(self, model: BoltzmannMachine, rows: int, chains: int) -> None:
        key = (rows, chains, model.dtype, model.device, *model.sizes)
        if key == self._key:
            return
        nv, nh = model.sizes
        opts = {"dtype": model.dtype, "device": model.device}
        self.x = torch.empty(rows + chains, nv, **opts)
        self.a = torch.empty(rows + chains, nh, **opts)
        self.s = torch.cat([torch.full((rows,), -1.0 / rows, **opts), torch.full((chains,), 1.0 / chains, **opts)])
        self._key = key

    @torch.no_grad()
    def start(self, model: BoltzmannMachine, data: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """CD: store the data's hidden field and return h ~ p(h | data), the chains' start."""
        w, c = model.weights[0], model.layers[1].bias
        rows = data.shape[0]
        self._buffers(model, rows, rows)
        self.x[:rows].copy_(data)
        torch.addmm(c, data, w, out=self.a[:rows])
        return _bernoulli(self.a[:rows], 1.0, generator, self.shard)

    @torch.no_grad()
    def sweeps(
        self,
        model: BoltzmannMachine,
        data: torch.Tensor,
        h: torch.Tensor,
        steps: int,
        beta: Beta,
        generator: torch.Generator | None,
        fuse: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``steps`` ≥ 1 block-Gibbs sweeps (v | h, then h | v) of the chains from hidden states ``h``.

        Returns the chains' (v, h). The hidden field of the last visible state goes to the buffer
        for ``gradient``; with ``fuse`` (PCD) the data's field is computed in the same matmul,
        otherwise (CD) ``start`` has stored it already.
        """
        w, b, c = model.weights[0], model.layers[0].bias, model.layers[1].bias
        rows = data.shape[0]
        if fuse:
            self._buffers(model, rows, h.shape[0])
        for step in range(steps):
            v = _bernoulli(torch.addmm(b, h, w.T), beta, generator, self.shard)
            if step < steps - 1:
                h = _bernoulli(torch.addmm(c, v, w), beta, generator, self.shard)
        self.x[rows:].copy_(v)
        if fuse:
            self.x[:rows].copy_(data)
            torch.addmm(c, self.x, w, out=self.a)
        else:
            torch.addmm(c, v, w, out=self.a[rows:])
        return v, _bernoulli(self.a[rows:], beta, generator, self.shard)

    @torch.no_grad()
    def gradient(self, model: BoltzmannMachine) -> torch.Tensor:
        """Write ∂L/∂θ into (or add it to) ``.grad`` from the buffers filled by ``sweeps``; return L."""
        w, b, c = model.weights[0], model.layers[0].bias, model.layers[1].bias
        x, a, s = self.x, self.a, self.s
        db = x.T @ s
        loss = b @ db + F.softplus(a).sum(1) @ s
        p = a.sigmoid_().mul_(s.unsqueeze(-1))
        for param, grad in ((w, x.T @ p), (b, db), (c, p.sum(0))):
            if param.grad is None:
                param.grad = grad
            else:
                param.grad += grad
        return loss
