"""Parallel tempering: mixing on a bimodal model, swap rates, the adaptive ladder, training."""

from __future__ import annotations

import math

import pytest
import torch

from ebmlab import BernoulliLayer, BoltzmannMachine
from ebmlab.data import bars_and_stripes_patterns
from ebmlab.train import PT, Trainer

from ._exact import log_z, marginal_free_energy


def bimodal() -> BoltzmannMachine:
    """6 visible units and 1 hidden switch: modes v = 1…1 (h = 1) and v = 0…0 (h = 0), odds about 3:1.

    Given h = 0 each visible unit is on with σ(−4) ≈ 0.018, and h turns on only when 3 of them
    are: a Gibbs chain leaves a mode about once in 10⁴ sweeps.
    """
    model = BoltzmannMachine([BernoulliLayer(6), BernoulliLayer(1)]).double()
    with torch.no_grad():
        model.weights[0].fill_(8.0)
        model.layers[0].bias.fill_(-4.0)
        model.layers[1].bias.fill_(-24.0 + math.log(3))
    return model


def exact_visible_distribution(model: BoltzmannMachine) -> torch.Tensor:
    """p(v) over all 64 visible states in binary-counting order, by enumeration."""
    with torch.no_grad():
        states = model.layers[0].all_states()
        return torch.exp(-marginal_free_energy(model, states) - log_z(model))


def total_variation(samples: torch.Tensor, p: torch.Tensor) -> float:
    codes = (samples * 2 ** torch.arange(samples.shape[1] - 1, -1, -1, dtype=samples.dtype)).sum(-1).long()
    freq = torch.bincount(codes, minlength=p.numel()).double() / codes.numel()
    return float(0.5 * (freq - p).abs().sum())


def test_pt_mixes_a_bimodal_model_where_gibbs_is_stuck() -> None:
    model = bimodal()
    p = exact_visible_distribution(model)
    chains, rungs, sweeps, burn_in = 20, 8, 300, 50
    g = torch.Generator().manual_seed(0)
    pt = PT(chains=chains, betas=torch.logspace(0, -1.5, rungs).tolist())
    pt.start(model, g, init=[torch.zeros(chains, 6, dtype=torch.float64), torch.zeros(chains, 1, dtype=torch.float64)])
    kept = []
    for sweep in range(sweeps):
        states = pt.advance(model, 1, g)
        if sweep >= burn_in:
            kept.append(states[0])
    tv_pt = total_variation(torch.cat(kept), p)
    # plain Gibbs at the same cost: rungs × chains chains, the same number of sweeps, the same start
    states = [torch.zeros(rungs * chains, 6, dtype=torch.float64), torch.zeros(rungs * chains, 1, dtype=torch.float64)]
    kept = []
    for sweep in range(sweeps):
        states = model._gibbs(states, 1.0, None, g)
        if sweep >= burn_in:
            kept.append(states[0])
    tv_gibbs = total_variation(torch.cat(kept), p)
    assert tv_pt < 0.08
    assert tv_gibbs > 0.5
    rates = pt.metrics()
    assert {f"swap_rate_{t}" for t in range(rungs - 1)} <= set(rates)
    assert all(0 <= rates[k] <= 1 for k in rates if k.startswith("swap_rate"))
    assert rates["beta_min"] == pytest.approx(10**-1.5)


def test_swap_keeps_the_tempered_product_distribution() -> None:
    """Two rungs of a 3×2 RBM: the swap move alone preserves Π_t p_{β_t}, so after Gibbs + swaps the
    β = 1 replica's visible frequencies match the exact p(v)."""
    g = torch.Generator().manual_seed(3)
    model = BoltzmannMachine([BernoulliLayer(3), BernoulliLayer(2)]).double()
    with torch.no_grad():
        model.weights[0].copy_(torch.randn(3, 2, generator=g, dtype=torch.float64) * 2)
        model.layers[0].bias.copy_(torch.randn(3, generator=g, dtype=torch.float64))
    p = exact_visible_distribution(model)
    pt = PT(chains=2000, betas=[1.0, 0.3])
    pt.start(model, g)
    pt.advance(model, 20, g)
    kept = [pt.advance(model, 1, g)[0] for _ in range(20)]
    assert total_variation(torch.cat(kept), p) < 0.02


def test_auto_ladder_adapts_to_the_target_acceptance() -> None:
    model = bimodal()
    g = torch.Generator().manual_seed(1)
    pt = PT(chains=50, betas="auto", temperatures=3, beta_min=0.9, target_acceptance=0.3)
    pt.start(model, g)
    pt.advance(model, 20, g)
    assert (pt.acceptance > 0.6).all()  # the initial ladder is far too narrow
    pt.advance(model, 2000, g)
    assert pt.betas[-1] < 0.2
    assert ((pt.acceptance - 0.3).abs() < 0.1).all()
    assert (pt.betas[1:] < pt.betas[:-1]).all() and float(pt.betas[0]) == 1.0


def test_pt_training_improves_exact_log_likelihood_and_resumes() -> None:
    x = bars_and_stripes_patterns(3).double()
    model = BoltzmannMachine([BernoulliLayer(9), BernoulliLayer(8)]).double()
    model.initialize(x)

    def ll() -> float:
        with torch.no_grad():
            return float(-marginal_free_energy(model, x).mean() - log_z(model))

    before = ll()
    method = PT(k=1, chains=20, temperatures=4)
    trainer = Trainer(model, method, torch.optim.Adam, lr=0.05, batch_size=7, progress=False, metrics={})
    history = trainer.fit(x, 200)
    assert ll() > before + 0.5
    assert 0 <= history["swap_rate"][-1] <= 1
    clone = PT(k=1, chains=20, temperatures=4)
    clone.load_state_dict(method.state_dict())
    torch.testing.assert_close(clone.betas, method.betas)
    torch.testing.assert_close(clone.replicas[0], method.replicas[0])


def test_bad_ladders_are_refused() -> None:
    with pytest.raises(ValueError, match="betas"):
        PT(betas=[0.5, 0.2])
    with pytest.raises(ValueError, match="betas"):
        PT(betas=[1.0, 0.5, 0.7])
    with pytest.raises(ValueError, match="betas"):
        PT(betas="geometric")
    with pytest.raises(ValueError, match="target_acceptance"):
        PT(target_acceptance=1.5)
