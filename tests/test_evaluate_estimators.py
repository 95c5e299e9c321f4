"""Verdicts, PT+BAR and the log-likelihood bracket, against exact enumeration on tiny RBMs."""

from __future__ import annotations

import dataclasses
import math
import warnings

import pytest
import torch

from ebmlab import BernoulliLayer, BoltzmannMachine
from ebmlab.evaluate import (
    ConvergenceWarning,
    ais,
    bar,
    estimate_log_likelihood,
    exact,
    log_likelihood_bracket,
    raise_log_likelihood,
    schedules,
)
from ebmlab.evaluate.diagnostics import weight_diagnostics

from .test_evaluate_ais import exact_samples, random_rbm


def strong_rbm(seed: int, scale: float = 2.5) -> BoltzmannMachine:
    """16×12 RBM with W ~ N(0, scale²): several separated modes, a long tempering path."""
    g = torch.Generator().manual_seed(seed)
    model = BoltzmannMachine([BernoulliLayer(16), BernoulliLayer(12)]).to(torch.float64)
    with torch.no_grad():
        model.weights[0].copy_(scale * torch.randn(16, 12, generator=g, dtype=torch.float64))
        model.layers[0].bias.copy_(-0.5 * model.weights[0].sum(1))
        model.layers[1].bias.copy_(-0.5 * model.weights[0].sum(0))
    return model


@pytest.mark.parametrize("seed", range(4))
def test_bar_matches_exact_log_z(seed: int) -> None:
    """PT+BAR within 0.1 nat of exact log Z (12–20 hidden units, 4 seeds), converged, no warning."""
    model = random_rbm(seed)
    log_z = exact.log_partition(model)
    data = exact_samples(model, 300, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        res = bar.log_partition(model, data, seed=seed, progress=False)
    assert abs(res.log_z - log_z) < 0.1, (res.log_z, log_z)
    assert res.converged and res.diagnostics.reasons == [] and "[converged]" in str(res)
    assert abs(res.diagnostics.drift) < 0.1  # the two halves of the kept sweeps agree
    assert res.betas[0] == 0 and res.betas[-1] == 1 and (res.betas.diff() >= 0).all()
    assert res.replica_log_z.shape == (8,) and res.deltas.shape == (res.betas.shape[0] - 1,)
    assert res.log_z == pytest.approx(res.log_z_base + float(res.deltas.sum()))


def test_bar_on_multimodal_model_uses_a_longer_ladder_and_stays_exact() -> None:
    """Strong couplings (W ~ N(0, 2.5²)): more rungs, error within 3 s.e. for two seeds (exact data rows:
    Gibbs chains stuck in one of the mirror modes would give a base rate that never reaches the other)."""
    model = strong_rbm(7)
    log_z = exact.log_partition(model)
    data = exact_samples(model, 200, 1)
    for seed in (0, 1):
        res = bar.log_partition(model, data, chains=64, sweeps=400, spacing=0.5, seed=seed, progress=False, warn=False)
        assert res.betas.shape[0] > 5, res.betas.shape
        # mode hopping is slow here: the replica s.e. (0.1–0.3 nat) is what the error must respect
        assert abs(res.log_z - log_z) < 3 * res.stderr + 0.02, (seed, res.log_z, log_z, str(res))
        assert res.stderr < 0.35 and res.converged


def test_bennett_solves_the_acceptance_ratio_equation() -> None:
    """Two Gaussians N(0,1) (f_0 = e^{−x²/2}) and N(1,1) (f_1 = 3·e^{−(x−1)²/2}): Δ = log 3."""
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(20000, generator=g, dtype=torch.float64)
    x1 = 1 + torch.randn(20000, generator=g, dtype=torch.float64)

    def u(x: torch.Tensor) -> torch.Tensor:
        return math.log(3) - (x - 1) ** 2 / 2 + x**2 / 2

    delta = bar.bennett(u(x0).unsqueeze(0), u(x1).unsqueeze(0))
    left = torch.sigmoid(u(x0) - delta).sum()
    right = torch.sigmoid(delta - u(x1)).sum()
    assert float(left - right) == pytest.approx(0.0, abs=1e-6)
    assert abs(float(delta) - math.log(3)) < 0.03


def test_ais_verdict_flips_on_a_short_schedule_and_warns() -> None:
    model = strong_rbm(3)
    data = exact_samples(model, 200, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        good = ais.log_partition(model, 200, "moderate", data=data, progress=False)
    assert good.converged, str(good)
    with pytest.warns(ConvergenceWarning, match="NOT CONVERGED") as caught:
        short = ais.log_partition(model, 200, schedules.linear(3), data=data, progress=False)
    assert caught[0].filename == __file__  # the warning points at the caller
    assert str(caught[0].message).count("NOT CONVERGED") == 1
    assert not short.converged
    assert short.diagnostics.ess < 0.1 * 200 and any("ESS" in r for r in short.diagnostics.reasons)
    assert "NOT CONVERGED: ESS" in str(short)


def test_weight_diagnostics_flags_a_dominant_chain_and_split_halves() -> None:
    flat = weight_diagnostics(torch.zeros(100, dtype=torch.float64))
    assert flat.converged and flat.ess == pytest.approx(100.0) and flat.replica_gap == pytest.approx(0.0)
    spiky = torch.zeros(100, dtype=torch.float64)
    spiky[0] = 20.0
    d = weight_diagnostics(spiky)
    assert not d.converged and d.ess == pytest.approx(1.0, abs=1e-6)
    assert d.replica_gap > 10 and any("halves" in r for r in d.reasons)


def test_raise_verdict_flips_on_a_short_schedule_and_warns() -> None:
    """3 annealing steps: the chains of a row disagree (Jensen gap) → not converged; "moderate" passes and,
    against the exact mean log-likelihood, stays conservative."""
    model = strong_rbm(3, scale=4.0)
    data = exact_samples(model, 200, 0)
    with pytest.warns(ConvergenceWarning, match="Jensen gap"):
        short = raise_log_likelihood(model, data[:50], 4, schedules.linear(3), data=data, progress=False, tolerance=0.5)
    assert not short.converged and short.diagnostics.jensen_gap > 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        good = raise_log_likelihood(model, data[:50], 4, "moderate", data=data, progress=False, tolerance=0.5)
    assert good.converged and good.diagnostics.jensen_gap < short.diagnostics.jensen_gap
    assert good.mean <= float(exact.log_likelihood(model, data[:50]).mean()) + 2 * good.stderr


def test_bar_verdict_flips_when_the_ladder_is_too_coarse() -> None:
    """One rung for a multimodal model: no overlap, replicas disagree → not converged, warning."""
    model = strong_rbm(7)
    data = exact_samples(model, 200, 1)
    with pytest.warns(ConvergenceWarning, match="PT\\+BAR"):
        res = bar.log_partition(model, data, chains=8, sweeps=20, max_rungs=1, progress=False)
    assert not res.converged and res.betas.tolist() == [0.0, 1.0]


def test_bracket_contains_exact_log_likelihood() -> None:
    """PT + BAR and RAISE: lower ≤ exact mean LL ≤ upper within 2 s.e. (3 seeds); narrow and converged. Seed 0
    runs their defaults (PT+BAR 16 × 10,000, RAISE ``sm2008`` × 6 chains × 50 rows), the others shorter settings."""
    short = {"options": {"chains": 32, "sweeps": 400}, "raise_rows": 100, "raise_chains": 4, "raise_betas": "moderate"}
    for seed in range(3):
        model = random_rbm(seed)
        data = exact_samples(model, 400, seed)
        train, test = data[:300], data[300:]
        ll = float(exact.log_likelihood(model, test).mean())
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)
            b = log_likelihood_bracket(
                model, test, train, method="bar", seed=seed, progress=False, **({} if seed == 0 else short)
            )
        assert b.lower - 2 * b.lower_stderr - 0.05 <= ll <= b.upper + 2 * b.upper_stderr + 0.05, (seed, ll, str(b))
        assert abs(b.upper - ll) < 0.1 and abs(b.lower - ll) < 0.1, (seed, ll, str(b))
        assert b.width == pytest.approx(b.upper - b.lower) and b.converged
        assert b.diagnostics.bracket_width == pytest.approx(b.width)
        if seed == 0:  # the defaults: PT+BAR 16 × 10,000, RAISE sm2008 × 6 chains × 50 rows
            assert b.log_z.sweeps == 10000 and b.log_z.replica_log_z.shape == (8,)
            assert b.raise_result.log_estimates.shape == (50, 6) and b.raise_result.steps == 14500


def test_bracket_with_forward_ais_and_reused_log_z() -> None:
    model = random_rbm(1)
    data = exact_samples(model, 300, 1)
    fast = {"raise_rows": 50, "raise_chains": 4, "raise_betas": "moderate", "progress": False}
    first = log_likelihood_bracket(model, data, method="ais", options={"chains": 100, "betas": "moderate"}, **fast)
    again = log_likelihood_bracket(model, data[:100], data, log_z=first.log_z, **fast)
    assert again.log_z is first.log_z and isinstance(first.log_z, ais.AISResult)
    ll = exact.log_likelihood(model, data).mean()
    assert abs(first.upper - float(ll)) < 0.1


def test_log_z_floor_is_a_lower_bound_that_flags_an_upper_side_that_missed_mass() -> None:
    """Importance sampling from the training rows is within 0.05 nat of exact log Z here; an upper side 20 nats
    below it (chains that missed mass) fails the verdict, though its own checks passed."""
    model = random_rbm(1)
    data = exact_samples(model, 300, 1)
    fast = {"raise_rows": 50, "raise_chains": 4, "raise_betas": "moderate", "progress": False}
    good = log_likelihood_bracket(model, data, method="ais", options={"chains": 100, "betas": "moderate"}, **fast)
    log_z = float(exact.log_partition(model))
    assert abs(good.log_z_floor - log_z) < 0.05 and good.converged
    missed = dataclasses.replace(good.log_z, log_z=good.log_z.log_z - 20)
    with pytest.warns(ConvergenceWarning, match="below the floor"):
        bad = log_likelihood_bracket(model, data, log_z=missed, **fast)
    assert not bad.converged and bad.upper == pytest.approx(good.upper + 20)
    assert any("missed mass near those rows" in r for r in bad.diagnostics.reasons)


def test_ais_and_bar_check_themselves_against_the_floor() -> None:
    """A 1-step forward AIS (20 chains) on a multimodal RBM lands 11 nats below the floor and says so; a long
    PT+BAR run keeps its floor (within 0.1 nat of exact) and passes; ``floor_samples=0`` skips the floor."""
    model = strong_rbm(7)
    data = exact_samples(model, 300, 0)
    log_z = float(exact.log_partition(model))
    short = ais.log_partition(model, 20, schedules.linear(1), data=data, progress=False, warn=False)
    assert short.floor is not None and abs(short.floor - log_z) < 0.1 and short.log_z < short.floor - 3
    assert any("below the floor" in r for r in short.diagnostics.reasons)
    good = bar.log_partition(model, data, chains=16, sweeps=400, progress=False, warn=False)
    assert good.floor is not None and abs(good.floor - log_z) < 0.1
    assert not any("floor" in r for r in good.diagnostics.reasons)
    assert ais.log_partition(model, 20, "fast", data=data, progress=False, warn=False, floor_samples=0).floor is None


def test_conservative_side_above_the_floor_bound_is_flagged() -> None:
    """RAISE on rows far from the model's samples (uniform noise) with a 2-step schedule rates them 6 nats above
    their exact log-likelihood; the upper bound data term − log Z floor exposes it."""
    model = strong_rbm(3)
    train = exact_samples(model, 300, 0)
    far = torch.bernoulli(torch.full((100, 16), 0.5, dtype=torch.float64), generator=torch.Generator().manual_seed(0))
    with pytest.warns(ConvergenceWarning, match="over-rates"):
        b = log_likelihood_bracket(
            model, far, train, method="ais", options={"chains": 100, "betas": "moderate"},
            raise_rows=100, raise_chains=4, raise_betas=schedules.linear(2), progress=False,
        )
    ll = float(exact.log_likelihood(model, far).mean())
    assert b.lower > ll + 3 and b.data_term - b.log_z_floor == pytest.approx(ll, abs=0.1)
    assert any(r.startswith("conservative side:") and "above the upper bound" in r for r in b.diagnostics.reasons)


def test_bracket_verdict_flips_on_short_schedules() -> None:
    model = strong_rbm(3)
    data = exact_samples(model, 300, 0)
    with pytest.warns(ConvergenceWarning, match="bracket"):
        b = log_likelihood_bracket(
            model,
            data,
            method="ais",
            options={"chains": 50, "betas": schedules.linear(3)},
            raise_betas=schedules.linear(3),
            raise_rows=50,
            progress=False,
        )
    assert not b.converged and "NOT CONVERGED" in str(b)


def test_likelihood_estimate_carries_bracket_width_and_verdict() -> None:
    model = random_rbm(2)
    data = exact_samples(model, 300, 2)
    est = estimate_log_likelihood(
        model,
        data[:100],
        data,
        chains=100,
        betas="moderate",
        reverse_chains=4,
        reverse_rows=40,
        progress=False,
        warn=False,
    )
    assert est.diagnostics.bracket_width == pytest.approx(est.forward - est.reverse)
    # a tiny RBM: both sides pass their checks and cross by less than three standard errors
    assert est.converged and est.diagnostics.reasons == [] and "(RAISE)" in str(est) and "[converged]" in str(est)


def test_bad_arguments_are_named() -> None:
    model = random_rbm(0)
    data = exact_samples(model, 50, 0)
    with pytest.raises(ValueError, match="method"):
        log_likelihood_bracket(model, data, method="tap", progress=False)
    with pytest.raises(TypeError, match="log_z"):
        log_likelihood_bracket(model, data, log_z=3.0, progress=False)
    with pytest.raises(ValueError, match="tolerance"):
        ais.log_partition(model, 10, "fast", data=data, tolerance=0, progress=False)
    with pytest.raises(ValueError, match="multiple of replicas"):
        bar.log_partition(model, data, chains=10, replicas=4, progress=False)
    with pytest.raises(ValueError, match="burn_in"):
        bar.log_partition(model, data, sweeps=10, burn_in=10, progress=False)
    deep = BoltzmannMachine([BernoulliLayer(6), BernoulliLayer(4), BernoulliLayer(3)])
    with pytest.raises(ValueError, match="RBM"):
        bar.log_partition(deep, progress=False)
    with pytest.raises(ValueError, match="RBM"):
        log_likelihood_bracket(deep, torch.zeros(2, 6), progress=False)
