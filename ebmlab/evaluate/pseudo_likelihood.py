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
its values jump from call to call (scikit-learn issue #23179). ``pseudo_likelihood`` computes the
sum over every unit exactly.

Estimate over units. The exact total costs rows × G × K hidden fields. ``pseudo_likelihood_estimate``
draws for each row r its own k of the G groups, S_r, uniformly without replacement from a fixed
seed (the same subsets on every call, so a training curve is not jittered by resampling), and
returns the unbiased estimate

    y_r = (G / k) Σ_{g ∈ S_r} log p(v_g | v_{−g}),    PL̂ = mean_r y_r,    E[PL̂] = mean_r log PL(v_r),

with standard error sqrt(Σ_r Var(y_r)) / rows, Var(y_r) = G² (1 − k/G) s_r² / k (sampling without
replacement; s_r² the sample variance of the k terms of row r). With k ≥ G it is the exact total
and its standard error is 0. It costs k/G of the exact computation.

Only discrete visible layers have a pseudo-likelihood of this form; a Gaussian visible layer is
refused. RBMs use a vectorized fast path (the hidden field of each variant is v W minus the
group's row plus the option's row); deeper stacks evaluate the exact free energy of each variant.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from .._checks import check_positive_int
from ..layers import BernoulliLayer, OneHotLayer
from ._common import Estimate, as_float, check_model, row_chunks, visible_rows

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


@functools.lru_cache(maxsize=8)
def _subsets(rows: int, groups: int, k: int, seed: int) -> torch.Tensor:
    """(rows, k) group indices: for each row k distinct groups drawn uniformly from a seeded generator
    (cached: the Trainer asks for the same subsets every epoch)."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(rows, groups, generator=g).topk(k, 1).indices


def _terms(model: Any, v: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """log p(v_g | v_{−g}) for the groups ``idx[r]`` of each row r: shape (rows, k)."""
    visible = model.layers[0]
    G, m, options, actual = _groups(visible, v)
    rows, k = idx.shape
    K = options.shape[0]
    if model.depth == 2 and isinstance(visible, BernoulliLayer):
        # one variant per term: v with unit g flipped, −F = bᵀv + d b_g + log Z_h(vW + d W_g), d = 1 − 2 v_g
        hidden, w = model.layers[1], model.weights[0]
        vw = v @ w
        own = v @ visible.bias + hidden.log_partition(vw)
        d = 1 - 2 * v.gather(1, idx)
        flip = (v @ visible.bias).unsqueeze(1) + d * visible.bias[idx]
        flip = flip + hidden.log_partition(vw.unsqueeze(1) + d.unsqueeze(-1) * w[idx])
        return -torch.nn.functional.softplus(flip - own.unsqueeze(1))
    if model.depth == 2:
        w_g = model.weights[0].reshape(G, m, -1)
        b_g = visible.bias.reshape(G, m)
        v_sel = v.reshape(rows, G, m).gather(1, idx.unsqueeze(-1).expand(rows, k, m))
        w_sel, b_sel = w_g[idx], b_g[idx]
        base = (v @ model.weights[0]).unsqueeze(1) - torch.einsum("rkm,rkmh->rkh", v_sel, w_sel)
        field = base.unsqueeze(2) + torch.einsum("om,rkmh->rkoh", options, w_sel)
        bias = (v @ visible.bias).reshape(-1, 1, 1) - (v_sel * b_sel).sum(-1).unsqueeze(-1)
        neg_f = bias + torch.einsum("om,rkm->rko", options, b_sel) + model.layers[1].log_partition(field)
    else:
        variants = v.reshape(rows, 1, 1, G, m).repeat(1, k, K, 1, 1)
        r = torch.arange(rows, device=v.device).reshape(-1, 1, 1)
        j = torch.arange(k, device=v.device).reshape(1, -1, 1)
        o = torch.arange(K, device=v.device).reshape(1, 1, -1)
        variants[r, j, o, idx.unsqueeze(-1)] = options.expand(rows, k, K, m)
        neg_f = -model._free_energy(variants.reshape(-1, G * m)).reshape(rows, k, K)
    own = neg_f.gather(-1, actual.gather(1, idx).unsqueeze(-1)).squeeze(-1)
    return own - torch.logsumexp(neg_f, -1)


@torch.no_grad()
def pseudo_likelihood_estimate(model: Any, v: Any, units: int = 8, seed: int = 0) -> Estimate:
    """Unbiased estimate of the mean total log PL from ``units`` random units (or one-hot sites) per row.

    Returns an ``Estimate`` (a float with ``.stderr``, the standard error of the unit sampling for
    these rows); exact, with stderr 0, when ``units`` ≥ the number of groups. See the module docstring.
    """
    model = check_model(model)
    units = check_positive_int(units, "units", minimum=2)
    x = model._visible(v)
    G = _groups(model.layers[0], x[:1])[0]
    k = min(units, G)
    idx = _subsets(x.shape[0], G, k, seed).to(x.device)
    K = 1 if isinstance(model.layers[0], BernoulliLayer) else model.layers[0].states
    width = k * K * (model.layers[1].n if model.depth == 2 else model.layers[0].n)
    chunks = row_chunks(x.shape[0], max(1, CHUNK_ELEMENTS // width))
    terms = torch.cat([_terms(model, x[rows], idx[rows]) for rows in chunks]).to(torch.float64)
    y = terms.sum(1) * (G / k)
    if k == G:
        return Estimate(as_float(y.mean()), 0.0)
    var_rows = G**2 * (1 - k / G) * terms.var(1) / k
    return Estimate(as_float(y.mean()), as_float(var_rows.sum().sqrt() / x.shape[0]))


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
