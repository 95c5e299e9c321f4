"""Log pseudo-likelihood (Besag 1975), exact over every visible unit.

    log PL(v) = Σ_g log p(v_g | v_{−g}),    p(v_g = o | v_{−g}) = exp(−F(v^{g←o})) / Σ_{o'} exp(−F(v^{g←o'}))

where g runs over the visible *units* of a Bernoulli layer (o ∈ {0, 1}) or the *sites* of a
one-hot layer (o one of its ``states`` values), and F is the exact free energy, so log Z cancels.

Normalization. ``pseudo_likelihood(model, v)`` returns the **total** Σ_g per row, averaged over
rows (comparable in scale to a log-likelihood in nats; it is ≤ 0 and, for a fully factorized
model, equals the log-likelihood). ``per_unit=True`` divides by the number of groups G (units or
sites), giving the average log conditional probability of one unit. scikit-learn's
``BernoulliRBM.score_samples`` is neither: it flips **one random unit** i per row and returns
n · log σ(F(ṽ_i) − F(v)), an unbiased but noisy one-sample estimate of the total — which is why
its values jump from call to call (scikit-learn issue #23179). This module computes the sum over
every unit exactly.

Only discrete visible layers have a pseudo-likelihood of this form; a Gaussian visible layer is
refused. RBMs use a vectorized fast path (the hidden field of each variant is v W minus the
group's row plus the option's row); deeper stacks evaluate the exact free energy of each variant.
"""

from __future__ import annotations

from typing import Any

import torch

from .._checks import check_positive_int
from ..layers import BernoulliLayer, OneHotLayer
from ._common import as_float, check_model, row_chunks, visible_rows

# elements of the (rows, groups, options, hidden) field tensor processed at once
CHUNK_ELEMENTS = 2**22


def _groups(layer: Any, v: torch.Tensor) -> tuple[int, int, torch.Tensor, torch.Tensor]:
    """(G groups, m columns per group, options O (K, m), index of each row's actual option (rows, G))."""
    if isinstance(layer, BernoulliLayer):
        options = torch.tensor([[0.0], [1.0]], dtype=v.dtype, device=v.device)
        return layer.n, 1, options, v.long()
    if isinstance(layer, OneHotLayer):
        options = torch.eye(layer.states, dtype=v.dtype, device=v.device)
        return layer.sites, layer.states, options, v.reshape(-1, layer.sites, layer.states).argmax(-1)
    raise ValueError(
        f"pseudo_likelihood needs a discrete visible layer (Bernoulli or OneHot); layer {layer.label} is not"
    )


@torch.no_grad()
def pseudo_likelihood_rows(model: Any, v: Any, chunk: int | None = None) -> torch.Tensor:
    """log PL(v) = Σ_g log p(v_g | v_{−g}) for each row (the total over units, not the average)."""
    model = check_model(model)
    x = model._visible(v)
    visible = model.layers[0]
    G, m, options, actual = _groups(visible, x)
    K = options.shape[0]
    if model.depth == 2:
        width = G * K * model.layers[1].n
    else:
        width = G * K * visible.n
    step = check_positive_int(chunk, "chunk") if chunk is not None else max(1, CHUNK_ELEMENTS // width)
    out = []
    for rows in row_chunks(x.shape[0], step):
        if model.depth == 2:
            neg_f = _rbm_variants(model, x[rows], G, m, options)
        else:
            neg_f = _deep_variants(model, x[rows], G, m, options)
        own = neg_f.gather(-1, actual[rows].unsqueeze(-1)).squeeze(-1)
        out.append((own - torch.logsumexp(neg_f, -1)).sum(-1))
    return torch.cat(out)


def _rbm_variants(model: Any, v: torch.Tensor, G: int, m: int, options: torch.Tensor) -> torch.Tensor:
    """−F(v^{g←o}) for every row, group g and option o: shape (rows, G, K).

    With linear visible energy −bᵀv and hidden field vW,
    −F(v^{g←o}) = bᵀv − b_gᵀv_g + b_gᵀo + log Z_h(vW − v_g W_g + o W_g).
    """
    visible, hidden = model.layers
    w_g = model.weights[0].reshape(G, m, -1)
    b_g = visible.bias.reshape(G, m)
    v_g = v.reshape(-1, G, m)
    base = (v @ model.weights[0]).unsqueeze(1) - torch.einsum("rgm,gmh->rgh", v_g, w_g)
    field = base.unsqueeze(2) + torch.einsum("km,gmh->gkh", options, w_g).unsqueeze(0)
    bias = (v @ visible.bias).reshape(-1, 1, 1) - (v_g * b_g).sum(-1).unsqueeze(-1)
    return bias + torch.einsum("km,gm->gk", options, b_g).unsqueeze(0) + hidden.log_partition(field)


def _deep_variants(model: Any, v: torch.Tensor, G: int, m: int, options: torch.Tensor) -> torch.Tensor:
    """−F(v^{g←o}) by the model's exact free energy of each variant: shape (rows, G, K)."""
    rows, K = v.shape[0], options.shape[0]
    variants = v.reshape(rows, 1, 1, G, m).repeat(1, G, K, 1, 1)
    idx = torch.arange(G, device=v.device)
    variants[:, idx, :, idx, :] = options.expand(G, rows, K, m)
    return -model._free_energy(variants.reshape(-1, G * m)).reshape(rows, G, K)


def pseudo_likelihood(model: Any, v: Any, per_unit: bool = False) -> float:
    """Mean over rows of log PL(v); ``per_unit=True`` divides by the number of units (or one-hot sites).

    The default is the total Σ_g log p(v_g | v_{−g}) per row (see the module docstring for how
    this differs from scikit-learn's one-random-unit ``score_samples``).
    """
    rows = pseudo_likelihood_rows(model, visible_rows(check_model(model), v))
    value = rows.mean()
    if per_unit:
        layer = model.layers[0]
        value = value / (layer.sites if isinstance(layer, OneHotLayer) else layer.n)
    return as_float(value)
