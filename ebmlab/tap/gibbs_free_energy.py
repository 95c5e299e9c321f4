"""The TAP Gibbs free energy Γ(m) of a stack, to 2nd or 3rd order in the couplings.

Plefka / Georges–Yedidia expansion around independent units: each layer l is replaced by the
independent distribution q_l with magnetization m_l (Bernoulli: means; OneHot: per-site category
probabilities; Gaussian: means, variance kept at σ²), and with δ_l = r_l(x_l) − r_l(m_l),

    Γ(m) = Σ_l [⟨H_l⟩_q − S(q_l)]                          (Γ₀: each layer's own terms)
           − Σ_e r(m_l)ᵀ W_e r(m_{l+1})                     (1st order: naive mean field)
           − ½ Σ_e ⟨(δ_lᵀ W_e δ_{l+1})²⟩_q                   (2nd order: Onsager reaction)
           − ⅙ Σ_e ⟨(δ_lᵀ W_e δ_{l+1})³⟩_q                   (3rd order)

with −log Z ≈ min_m Γ(m). The stack is a chain, so every cross term between different
connections has a lone zero-mean δ and vanishes: the pair terms simply add up over connections.
Per connection, with one-hot sites s, t (a Bernoulli or Gaussian unit is a one-state site),

    ⟨U²⟩ = Σ_{s,t} tr(W_stᵀ C_s W_st C_t),   C = per-site covariance of r(x) under q,

which is Σ_ij W_ij² s_i s_j for independent units (s = m − m² for Bernoulli, 1/σ² for Gaussian),
and −½ Σ_j Var_j Σ_{i,k} W_ij W_kj Cov_ik with Cov = diag(m) − m mᵀ per site for OneHot–X.
The 3rd order needs the third central moments: for independent units Σ_ij W_ij³ κ_i κ_j with
κ = m(1−m)(1−2m) (Bernoulli) or 0 (Gaussian); a one-hot site contributes the third cumulant of
the scalar W_{X j} with X ~ Cat(m_s). For a Bernoulli RBM this is Gabrié, Tramel & Krzakala (2015):
Γ₃ = Γ₂ − (2/3) Σ_ij W_ij³ s_i(½ − m_i) s_j(½ − μ_j).

With the visible layer clamped to data v (``clamped=True``), q_0 is a point mass at v: its term is
H_0(v), it has no entropy and no fluctuations, and min Γ approximates the free energy F(v).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..layers import Layer, OneHotLayer

ORDERS = (1, 2, 3)


def check_order(order: int) -> int:
    """Expansion order 1 (naive mean field), 2 (TAP) or 3."""
    if isinstance(order, bool) or order not in ORDERS:
        raise ValueError(f"order must be 1, 2 or 3 (the order of the TAP expansion), got {order!r}")
    return int(order)


def check_tap_layer(layer: Layer) -> None:
    """Refuse a layer type that does not state its TAP terms."""
    needed = ("tap_mean", "tap_entropy", "tap_variance")
    if not all(hasattr(layer, name) for name in needed):
        raise TypeError(f"layer {layer.label} does not define the TAP terms {needed}")


def layer_terms(layer: Layer, m: torch.Tensor, clamped: bool = False) -> torch.Tensor:
    """Γ₀ of one layer, ⟨H⟩_q − S(q), per row (H(m) alone when the layer is clamped)."""
    if clamped:
        return layer.energy(m)
    return layer.tap_energy(m) - layer.tap_entropy(m)


def pair_moments(
    a: Layer, ma: torch.Tensor, b: Layer, mb: torch.Tensor, w: torch.Tensor, order: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(⟨U²⟩_q, ⟨U³⟩_q or None) per row for U = δ_aᵀ W δ_b, the fluctuation of one connection."""
    a_cat, b_cat = isinstance(a, OneHotLayer), isinstance(b, OneHotLayer)
    if a_cat and b_cat:
        return _categorical_pair(a, ma, b, mb, w, order)
    if b_cat:
        return _categorical_diagonal(b, mb, a, ma, w.T, order)
    if a_cat:
        return _categorical_diagonal(a, ma, b, mb, w, order)
    second = ((a.tap_variance(ma) @ (w * w)) * b.tap_variance(mb)).sum(-1)
    third = None
    if order >= 3:
        third = ((a.tap_third_moment(ma) @ (w * w * w)) * b.tap_third_moment(mb)).sum(-1)
    return second, third


def _categorical_diagonal(
    a: OneHotLayer, ma: torch.Tensor, b: Layer, mb: torch.Tensor, w: torch.Tensor, order: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One-hot sites s of ``a`` against independent units j of ``b``.

    With e_k(s, j) = Σ_{x∈s} m_x W_xj^k: ⟨U²⟩ = Σ_j Var_j Σ_s (e_2 − e_1²) and
    ⟨U³⟩ = Σ_j κ_j Σ_s (e_3 − 3 e_2 e_1 + 2 e_1³), the 2nd and 3rd central moments of W_{X j}.
    """
    p = ma.reshape(*ma.shape[:-1], a.sites, a.states)
    wr = w.reshape(a.sites, a.states, -1)
    e1 = torch.einsum("...sk,skj->...sj", p, wr)
    e2 = torch.einsum("...sk,skj->...sj", p, wr * wr)
    second = ((e2 - e1 * e1).sum(-2) * b.tap_variance(mb)).sum(-1)
    third = None
    if order >= 3:
        e3 = torch.einsum("...sk,skj->...sj", p, wr * wr * wr)
        kappa = (e3 - 3 * e2 * e1 + 2 * e1**3).sum(-2)
        third = (kappa * b.tap_third_moment(mb)).sum(-1)
    return second, third


def _categorical_pair(
    a: OneHotLayer, ma: torch.Tensor, b: OneHotLayer, mb: torch.Tensor, w: torch.Tensor, order: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Two one-hot layers: ⟨U^k⟩ = Σ_{s,t} Σ_{x,y} p_sx q_ty M_sxty^k by enumerating each site pair,
    M_sxty = (e_x − p_s)ᵀ W_st (e_y − q_t) = W_sxty − (p_sᵀW_st)_y − (W_st q_t)_x + p_sᵀ W_st q_t."""
    p = ma.reshape(*ma.shape[:-1], a.sites, a.states)
    q = mb.reshape(*mb.shape[:-1], b.sites, b.states)
    wr = w.reshape(a.sites, a.states, b.sites, b.states)
    pw = torch.einsum("...sx,sxty->...sty", p, wr)
    wq = torch.einsum("sxty,...ty->...sxt", wr, q)
    pwq = torch.einsum("...sty,...ty->...st", pw, q)
    m = wr - pw.unsqueeze(-3) - wq.unsqueeze(-1) + pwq.unsqueeze(-2).unsqueeze(-1)
    weight = p.unsqueeze(-1).unsqueeze(-1) * q.unsqueeze(-3).unsqueeze(-3)
    second = (weight * m * m).flatten(-4).sum(-1)
    third = (weight * m**3).flatten(-4).sum(-1) if order >= 3 else None
    return second, third


def edge_terms(
    model: torch.nn.Module, mags: Sequence[torch.Tensor], i: int, order: int = 2, clamped: bool = False
) -> torch.Tensor:
    """The terms of connection i (layers i, i+1) in Γ per row: −r(m_i)ᵀW r(m_{i+1}) − ½⟨U²⟩ − ⅙⟨U³⟩."""
    a, b, w = model.layers[i], model.layers[i + 1], model.weights[i]
    out = -((a.rescale(mags[i]) @ w) * b.rescale(mags[i + 1])).sum(-1)
    if order < 2 or (clamped and i == 0):
        return out
    second, third = pair_moments(a, mags[i], b, mags[i + 1], w, order)
    out = out - 0.5 * second
    return out if third is None else out - third / 6


def interaction(
    model: torch.nn.Module, mags: Sequence[torch.Tensor], order: int = 2, clamped: bool = False
) -> torch.Tensor:
    """Γ − Γ₀ per row: the coupling terms of every connection up to ``order``."""
    return sum(edge_terms(model, mags, i, order, clamped) for i in range(len(model.weights)))


def gibbs_free_energy(
    model: torch.nn.Module, mags: Sequence[torch.Tensor], order: int = 2, clamped: bool = False
) -> torch.Tensor:
    """Γ(m) per row for magnetizations ``mags`` (one (rows, n_l) tensor per layer); differentiable
    in the magnetizations and in the model's parameters. ``clamped``: ``mags[0]`` is data v."""
    own = sum(layer_terms(layer, m, clamped and i == 0) for i, (layer, m) in enumerate(zip(model.layers, mags)))
    return own + interaction(model, mags, order, clamped)
