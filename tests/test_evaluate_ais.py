"""AIS (forward and reverse) against exact log Z; RAISE against the exact annealing marginal; schedules;
log-likelihood estimates."""

from __future__ import annotations

import math

import pytest
import torch

from ebmlab import BernoulliLayer, BoltzmannMachine, GaussianLayer, OneHotLayer
from ebmlab.data import bars_and_stripes_patterns
from ebmlab.evaluate import ais, estimate_log_likelihood, exact, raise_log_likelihood, schedules
from ebmlab.samplers import GibbsLangevin
from ebmlab.train import PCD, Trainer

SEEDS = range(6)


def hidden_states(n: int) -> torch.Tensor:
    """All 2ⁿ binary vectors (bit k of the code, most significant first)."""
    codes = torch.arange(2**n).unsqueeze(-1)
    return ((codes >> torch.arange(n - 1, -1, -1)) & 1).to(torch.float64)


def random_rbm(seed: int, visible: int = 16) -> BoltzmannMachine:
    """Bernoulli RBM with 12–20 hidden units, W ~ N(0, 1), biases ~ N(−1, 1) (fields of a few units)."""
    g = torch.Generator().manual_seed(seed)
    hidden = 12 + (8 * seed) // (len(SEEDS) - 1)
    model = BoltzmannMachine([BernoulliLayer(visible), BernoulliLayer(hidden)]).to(torch.float64)
    with torch.no_grad():
        model.weights[0].copy_(torch.randn(visible, hidden, generator=g, dtype=torch.float64))
        model.layers[0].bias.copy_(torch.randn(visible, generator=g, dtype=torch.float64) - 1)
        model.layers[1].bias.copy_(torch.randn(hidden, generator=g, dtype=torch.float64) - 1)
    return model


def exact_samples(model: BoltzmannMachine, rows: int, seed: int) -> torch.Tensor:
    """Exact visible draws from a small RBM (``exact.sample``: h enumerated, then v | h)."""
    return exact.sample(model, rows, seed=1000 + seed)[0]


def test_bernoulli_rbm_forward_and_reverse_match_exact_and_bracket() -> None:
    """Moderate schedule, 100 chains, 6 seeds: every estimate within 0.1 nat of the exact log Z.

    The errors here are dominated by noise (a few hundredths of a nat), so a strict bracket
    log Ẑ_fwd ≤ log Z ≤ log Ẑ_rev only holds when both noises fall on the right side; what holds
    in the large majority of seeds (asserted: at least 5 of 6) is the bracket of the test
    log-likelihood widened by two standard errors, LL_rev − 2 s.e. ≤ LL ≤ LL_fwd + 2 s.e.
    """
    bracketed = 0
    for seed in SEEDS:
        model = random_rbm(seed)
        log_z = exact.log_partition(model)
        data = exact_samples(model, 400, seed)
        train, test = data[:300], data[300:]
        fwd = ais.log_partition(model, 100, "moderate", data=train, seed=seed, progress=False)
        rev = ais.log_partition(model, 100, "moderate", data=train, reverse=True, seed=seed, progress=False)
        assert abs(fwd.log_z - log_z) < 0.1, (seed, fwd.log_z, log_z)
        assert abs(rev.log_z - log_z) < 0.1, (seed, rev.log_z, log_z)
        assert fwd.stderr < 0.05 and rev.stderr < 0.05
        ll = float(exact.log_likelihood(model, test, log_z).mean())
        term = float(-model.free_energy(test).mean().detach())
        ll_fwd, ll_rev = term - fwd.log_z, term - rev.log_z
        bracketed += ll_rev - 2 * rev.stderr <= ll <= ll_fwd + 2 * fwd.stderr
    assert bracketed >= 5, bracketed


def test_result_fields() -> None:
    model = random_rbm(0)
    res = ais.log_partition(model, 30, "fast", data=exact_samples(model, 50, 0), progress=False)
    assert res.log_weights.dtype == torch.float64 and res.log_weights.shape == (30,)
    assert 1 <= res.ess <= 30 and res.steps == 725 and res.bound == "lower" and not res.reverse
    w = torch.exp(res.log_weights - res.log_weights.max())
    assert res.log_z == pytest.approx(res.log_z_base + float(res.log_weights.max() + torch.log(w.mean())))
    assert res.stderr == pytest.approx(float(w.std() / (math.sqrt(30) * w.mean())))
    assert res.ess == pytest.approx(float(w.sum() ** 2 / (w**2).sum()))
    again = ais.log_partition(model, 30, "fast", data=exact_samples(model, 50, 0), progress=False)
    assert again.log_z == res.log_z  # seeded


def test_gaussian_bernoulli_rbm_matches_analytic_integral() -> None:
    g = torch.Generator().manual_seed(3)
    model = BoltzmannMachine([GaussianLayer(6), BernoulliLayer(12)]).to(torch.float64)
    with torch.no_grad():
        model.layers[0].loc.copy_(torch.randn(6, generator=g, dtype=torch.float64))
        model.layers[0].log_var.copy_(0.3 * torch.randn(6, generator=g, dtype=torch.float64))
        model.weights[0].copy_(0.5 * torch.randn(6, 12, generator=g, dtype=torch.float64))
        model.layers[1].bias.copy_(torch.randn(12, generator=g, dtype=torch.float64) - 1)
    mu, var = model.layers[0].loc.detach(), model.layers[0].var.detach()
    w, c = model.weights[0].detach(), model.layers[1].bias.detach()
    h = hidden_states(12)
    # log ∫ exp(cᵀh − Σ(v − μ)²/2σ² + (v/σ²)ᵀWh) dv = cᵀh + Σ ½log(2πσ²) + ((μ + Wh)² − μ²)/2σ²
    wh = h @ w.T
    log_terms = h @ c + (0.5 * torch.log(2 * math.pi * var) + ((mu + wh) ** 2 - mu**2) / (2 * var)).sum(1)
    log_z = float(torch.logsumexp(log_terms, 0))
    # exact samples: h from its marginal (the same terms), then v ~ N(μ + Wh, σ²)
    pick = torch.multinomial(torch.softmax(log_terms, 0), 300, replacement=True, generator=g)
    v = mu + wh[pick] + var.sqrt() * torch.randn(300, 6, generator=g, dtype=torch.float64)
    fwd = ais.log_partition(model, 100, "moderate", data=v, progress=False)
    rev = ais.log_partition(model, 100, "moderate", data=v, reverse=True, progress=False)
    assert abs(fwd.log_z - log_z) < 0.1 and abs(rev.log_z - log_z) < 0.1, (fwd.log_z, rev.log_z, log_z)


@pytest.mark.parametrize(
    "layers",
    [
        lambda: [OneHotLayer(4, 3), BernoulliLayer(10)],
        lambda: [BernoulliLayer(10), OneHotLayer(2, 4)],
        lambda: [BernoulliLayer(12), BernoulliLayer(8), BernoulliLayer(6)],
    ],
)
def test_other_layer_types_and_deep_stacks(layers) -> None:
    model = BoltzmannMachine(layers()).to(torch.float64)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    log_z = exact.log_partition(model)
    data = model.sample(300, steps=300, seed=1)[0]
    fwd = ais.log_partition(model, 100, "moderate", data=data, seed=2, progress=False)
    rev = ais.log_partition(model, 100, "moderate", data=data, reverse=True, burn_in=5, seed=2, progress=False)
    assert abs(fwd.log_z - log_z) < 0.1 and abs(rev.log_z - log_z) < 0.15, (fwd.log_z, rev.log_z, log_z)


def annealing_marginal(model: BoltzmannMachine, data: torch.Tensor, betas: list[float]) -> torch.Tensor:
    """q(v_K) of the forward annealing process, by propagating its distribution over every visible state.

    Joint energies E_β(v, h) = (1 − β)(H_base(v) + H_1(h)) + β E(v, h), the base layer fit to ``data``;
    q_1 = p_0 ∝ exp(−H_base), then q_{k+1} = q_k T_k with T_k(v'|v) = Σ_h p_k(h | v) p_k(v' | h).
    """
    base = ais.BaseRate(model.layers[0], data).layer
    v, h = model.layers[0].all_states().to(torch.float64), model.layers[1].all_states().to(torch.float64)
    vv, hh = v.repeat_interleave(h.shape[0], 0), h.repeat(v.shape[0], 1)
    shape = (v.shape[0], h.shape[0])
    joint = model.energy([vv, hh]).detach().reshape(shape)
    free = (base.energy(vv) + model.layers[1].energy(hh)).detach().reshape(shape)
    q = torch.softmax(-base.energy(v).detach(), 0)
    for beta in betas[1:-1]:
        log_f = -((1 - beta) * free + beta * joint)
        q = q @ torch.softmax(log_f, 1) @ torch.softmax(log_f, 0).T
    return q


@pytest.mark.parametrize(
    "layers",
    [
        lambda: [BernoulliLayer(6), BernoulliLayer(4)],  # the Bernoulli fast path
        lambda: [OneHotLayer(2, 3), BernoulliLayer(4)],
        lambda: [BernoulliLayer(5), OneHotLayer(2, 3)],
    ],
)
def test_raise_is_unbiased_for_the_annealing_marginal(layers) -> None:
    """E[p̂(v)] = q(v) exactly, for every visible state, on a 3-step schedule where q is far from p.

    2,000 chains per state: every chain mean lies within 4.5 standard errors of q(v) (a 1e-3 chance
    per run for 64 states if the weights were normal), while q(v) differs from p(v) by far more.
    One step (K = 1) gives p̂ = p_0(v) without noise.
    """
    g = torch.Generator().manual_seed(0)
    model = BoltzmannMachine(layers()).to(torch.float64)
    with torch.no_grad():
        for prm in model.parameters():
            prm.copy_(1.5 * torch.randn(prm.shape, generator=g, dtype=torch.float64))
    data = model.sample(200, steps=50, seed=1)[0]
    v = model.layers[0].all_states().to(torch.float64)
    betas = [0.0, 0.3, 0.7, 1.0]
    q = annealing_marginal(model, data, betas)
    p = exact.log_likelihood(model, v).exp()
    assert ((q - p).abs() / p).max() > 0.3  # the check below can tell q from p
    chains = 2000
    res = raise_log_likelihood(model, v, chains=chains, betas=betas, data=data, seed=3, progress=False)
    assert res.log_estimates.shape == (v.shape[0], chains) and res.per_row.dtype == torch.float64
    w = res.log_estimates.exp()
    z = (w.mean(1) - q) / (w.std(1) / math.sqrt(chains))
    assert z.abs().max() < 4.5, z
    assert ((w.mean(1) - q).abs() / q).max() < 0.1
    assert res.per_row.allclose(torch.logsumexp(res.log_estimates, 1) - math.log(chains))
    assert res.mean == pytest.approx(float(res.per_row.mean()))
    assert res.stderr == pytest.approx(float(res.per_row.std() / math.sqrt(v.shape[0])))
    one = raise_log_likelihood(model, v, chains=3, betas=[0.0, 1.0], data=data, progress=False)
    p0 = annealing_marginal(model, data, [0.0, 1.0])
    assert one.log_estimates.allclose(p0.log().unsqueeze(1).expand(-1, 3))


def test_raise_matches_exact_log_likelihood_with_slow_annealing() -> None:
    """The "fast" schedule (725 steps) anneals well enough that log p̂(v) ≈ log p(v) row by row (within
    0.15 nat, 0.02 on average): Bernoulli (fast path) and Gaussian–Bernoulli (general path, exact log p
    by enumerating h; the Gaussian base is further from the model, so its rows are the noisier)."""
    g = torch.Generator().manual_seed(4)
    rbm = BoltzmannMachine([BernoulliLayer(6), BernoulliLayer(4)]).to(torch.float64)
    grbm = BoltzmannMachine([GaussianLayer(4), BernoulliLayer(6)]).to(torch.float64)
    with torch.no_grad():
        for prm in [*rbm.parameters(), *grbm.parameters()]:
            prm.copy_(torch.randn(prm.shape, generator=g, dtype=torch.float64))
    for model in (rbm, grbm):
        data = model.sample(200, steps=100, seed=2)[0]
        test = data[:20]
        res = raise_log_likelihood(model, test, chains=20, betas="fast", data=data, seed=5, progress=False)
        err = res.per_row - exact.log_likelihood(model, test)
        assert abs(float(err.mean())) < 0.02 and err.abs().max() < 0.15, err
        assert res.steps == 725


def trained_bars_and_stripes_rbm(seed: int) -> BoltzmannMachine:
    """16×12 RBM trained by PCD-1 on the 30 4×4 bars-and-stripes patterns for 300 updates."""
    model = BoltzmannMachine([BernoulliLayer(16), BernoulliLayer(12)], seed=seed)
    trainer = Trainer(
        model, PCD(k=1, chains=50), torch.optim.Adam, lr=0.05, batch_size=30, seed=seed, progress=False, metrics={}
    )
    trainer.fit(bars_and_stripes_patterns(4), 300)
    return model


@torch.no_grad()
def test_forward_ais_and_raise_bracket_the_log_likelihood_of_trained_rbms() -> None:
    """Bars-and-stripes RBMs (8 seeds), "fast" schedule, exact log-likelihood of the 30 patterns by enumeration.

    RAISE (2 chains per row) is *strictly* below the exact value in at least 7 of 8 seeds, and by
    less than a nat. Forward AIS (100 chains) is an upper bound only in expectation: its log Ẑ noise
    (≈ 0.1 nat) swamps its Jensen bias, so its side of the bracket is widened by two standard errors:
    LL_raise ≤ LL ≤ LL_fwd + 2 s.e. in at least 7 of 8 seeds.
    """
    data = bars_and_stripes_patterns(4)
    below = bracketed = 0
    for seed in range(8):
        model = trained_bars_and_stripes_rbm(seed)
        ll = float(exact.log_likelihood(model, data).mean())
        fwd = ais.log_partition(model, 100, "fast", data=data, seed=seed, progress=False)
        ll_fwd = float(-model.free_energy(data).to(torch.float64).mean()) - fwd.log_z
        ll_raise = raise_log_likelihood(model, data, chains=2, betas="fast", data=data, seed=seed, progress=False).mean
        assert ll - ll_raise < 1.0, (seed, ll, ll_raise)
        below += ll_raise <= ll
        bracketed += ll_raise <= ll <= ll_fwd + 2 * fwd.stderr
    assert below >= 7, below
    assert bracketed >= 7, bracketed


def test_estimate_log_likelihood() -> None:
    model = random_rbm(1)
    data = exact_samples(model, 200, 1)
    est = estimate_log_likelihood(model, data[:50], data=data[50:], chains=50, betas="fast", progress=False)
    exact_ll = float(exact.log_likelihood(model, data[:50]).mean())
    assert est.data_term_kind == "exact"
    assert est.forward == pytest.approx(est.data_term - est.log_z_forward.log_z)
    assert est.raise_result is not None and est.reverse == est.raise_result.mean
    assert est.raise_result.per_row.shape == (50,) and est.raise_result.log_estimates.shape == (50, 10)
    assert abs(est.forward - exact_ll) < 0.1 and abs(est.reverse - exact_ll) < 0.1
    sub = estimate_log_likelihood(
        model, data[:50], data=data[50:], chains=5, betas="fast", reverse_rows=20, reverse_chains=3, progress=False
    )
    assert sub.raise_result is not None and sub.raise_result.log_estimates.shape == (20, 3)
    assert abs(sub.reverse - exact_ll) < 4 * sub.raise_result.stderr  # a random fifth of the rows, not all
    deep = BoltzmannMachine([BernoulliLayer(8), BernoulliLayer(4), BernoulliLayer(25)]).to(torch.float64)
    est = estimate_log_likelihood(deep, data[:5, :8], chains=5, betas="fast", progress=False)
    assert est.data_term_kind == "mean-field lower bound" and est.reverse is None and est.raise_result is None
    with pytest.raises(ValueError, match="reverse=True"):
        estimate_log_likelihood(deep, data[:5, :8], chains=5, betas="fast", reverse=True, progress=False)


def test_schedules() -> None:
    sm = schedules.sm2008()
    assert sm.shape == (14_501,) and sm[0] == 0 and sm[-1] == 1
    steps = sm.diff()
    assert steps[:500].allclose(torch.full((500,), 1e-3, dtype=torch.float64))
    assert steps[500:4500].allclose(torch.full((4000,), 1e-4, dtype=torch.float64))
    assert steps[4500:].allclose(torch.full((10_000,), 1e-5, dtype=torch.float64))
    assert schedules.get_schedule("moderate").shape == (2_901,) and schedules.fast().shape == (726,)
    assert schedules.linear(4).tolist() == [0, 0.25, 0.5, 0.75, 1]
    s = schedules.sigmoid(10)
    assert s[0] == 0 and s[-1] == 1 and (s.diff() > 0).all() and s[5] == pytest.approx(0.5)
    for bad in ([0.0, 0.5], [0.2, 1.0], [0.0, 0.7, 0.3, 1.0]):
        with pytest.raises(ValueError, match="betas must start at 0"):
            schedules.get_schedule(bad)
    with pytest.raises(ValueError, match="betas must be one of"):
        schedules.get_schedule("slow")


def test_bad_input() -> None:
    model = random_rbm(0)
    with pytest.raises(ValueError, match="reverse AIS needs data"):
        ais.log_partition(model, 10, "fast", reverse=True, progress=False)
    with pytest.raises(ValueError, match="chains must be an integer"):
        ais.log_partition(model, 0, "fast", progress=False)
    with pytest.raises(ValueError, match="must be binary"):
        ais.log_partition(model, 10, "fast", data=torch.full((3, 16), 0.5, dtype=torch.float64), progress=False)
    with pytest.raises(ValueError, match="chains must be an integer"):
        raise_log_likelihood(model, torch.ones(2, 16, dtype=torch.float64), chains=0, progress=False)
    with pytest.raises(ValueError, match="test has"):
        raise_log_likelihood(model, torch.ones(2, 15, dtype=torch.float64), progress=False)
    deep = BoltzmannMachine([BernoulliLayer(4), BernoulliLayer(3), BernoulliLayer(2)])
    with pytest.raises(ValueError, match="needs an RBM"):
        raise_log_likelihood(deep, torch.ones(2, 4), progress=False)


def test_independent_units_are_exact_in_both_directions() -> None:
    """With W = 0 and the base taken from the model itself, every AIS weight is exactly 1."""
    model = random_rbm(2)
    with torch.no_grad():
        model.weights[0].zero_()
    b, c = model.layers[0].bias.detach(), model.layers[1].bias.detach()
    log_z = float(torch.nn.functional.softplus(b).sum() + torch.nn.functional.softplus(c).sum())
    data = torch.ones(3, 16, dtype=torch.float64)
    for res in (
        ais.log_partition(model, 7, "fast", progress=False),
        ais.log_partition(model, 7, "fast", reverse=True, init=data, burn_in=2, progress=False),
    ):
        assert res.log_z == pytest.approx(log_z, abs=1e-9)
        assert res.log_weights.abs().max() < 1e-9 and res.ess == pytest.approx(7)


def test_gaussian_visible_with_langevin_transitions_matches_exact_log_z() -> None:
    """AIS whose visible moves are MALA steps on the marginal (``sampler=GibbsLangevin``) is still exact."""
    g = torch.Generator().manual_seed(5)
    model = BoltzmannMachine([GaussianLayer(6), BernoulliLayer(10)]).to(torch.float64)
    with torch.no_grad():
        model.layers[0].loc.copy_(torch.randn(6, generator=g, dtype=torch.float64))
        model.layers[0].log_var.copy_(0.3 * torch.randn(6, generator=g, dtype=torch.float64) - 0.5)
        model.weights[0].copy_(0.8 * torch.randn(6, 10, generator=g, dtype=torch.float64))
        model.layers[1].bias.copy_(torch.randn(10, generator=g, dtype=torch.float64) - 1)
    log_z = exact.log_partition(model)
    data = model.sample(200, steps=50, seed=2)[0]
    sampler = GibbsLangevin(step_size=0.5, steps=1, mh=True)
    fwd = ais.log_partition(model, 100, "fast", data=data, progress=False, sampler=sampler)
    assert abs(fwd.log_z - log_z) < max(0.1, 3 * fwd.stderr), (fwd.log_z, fwd.stderr, log_z)
    assert 0.3 < sampler.acceptance < 1.0
    with pytest.raises(ValueError, match="sampler"):
        ais.log_partition(model, 10, "fast", data=data, progress=False, sampler=GibbsLangevin(mh=False))
