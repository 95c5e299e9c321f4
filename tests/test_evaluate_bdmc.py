"""Bidirectional Monte Carlo along the screened data-centred path (``ebmlab.evaluate.bdmc``) and the
forward/reverse annealing it is built from, against exact log Z on tiny RBMs."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from ebmlab import BernoulliLayer, BoltzmannMachine, GaussianLayer
from ebmlab.evaluate import ConvergenceWarning, bdmc, exact, log_likelihood_bracket
from ebmlab.evaluate.data_path import DataPath
from ebmlab.evaluate.diagnostics import log_mean_exp
from ebmlab.evaluate.path import forward, reverse
from ebmlab.evaluate.schedules import linear

from .test_evaluate_ais import exact_samples, random_rbm
from .test_evaluate_estimators import strong_rbm

FAST = {"chains": 100, "chain_starts": 50, "chain_sweeps": 20, "centres": 20, "betas": linear(200), "progress": False}


def test_reverse_ais_from_exact_samples_is_unbiased_for_the_inverse_partition_function() -> None:
    """Reverse chains started at exact samples of the model: mean w' = Z_0 / Z (within 3 s.e.), so
    log Z_0 − log mean w' lands on exact log Z; forward chains from the base give Z / Z_0 likewise."""
    model = random_rbm(1)
    data = exact_samples(model, 300, 1)
    g = torch.Generator().manual_seed(3)
    path = DataPath(model, data, centres=30, g=g)
    log_z = float(exact.log_partition(model))
    h = exact.sample(model, 2000, seed=4)[1]  # exact hidden states: the path's state at β = 1
    betas = linear(20).tolist()
    rev = reverse(path, h.to(torch.float64), betas, g)
    lme, se, _ = log_mean_exp(rev)
    assert abs(path.log_z0 - lme - log_z) < 3 * se + 1e-3, (path.log_z0 - lme, log_z, se)
    fwd, spread, last = forward(path, path.start(2000, g), betas, g)
    lme, se, _ = log_mean_exp(fwd)
    assert abs(path.log_z0 + lme - log_z) < 3 * se + 1e-3, (path.log_z0 + lme, log_z, se)
    assert len(spread) == len(betas) - 1 and last.shape == h.shape


@pytest.mark.parametrize("seed", range(2))
def test_bdmc_sandwich_matches_exact_log_z(seed: int) -> None:
    """Both sides within 0.1 nat of exact log Z (12–20 hidden units), converged, no warning."""
    model = random_rbm(seed)
    data = exact_samples(model, 300, seed)
    log_z = float(exact.log_partition(model))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        res = bdmc.log_partition(model, data, seed=seed, **FAST)
    assert abs(res.lower - log_z) < 0.1 and abs(res.upper - log_z) < 0.1, (res.lower, res.upper, log_z)
    assert res.converged and "[converged]" in str(res) and res.width == pytest.approx(res.upper - res.lower)
    assert res.centres.shape == (20, 16) and res.forward_log_w.shape == res.reverse_log_w.shape == (100,)
    assert res.log_z == res.lower and res.stderr == res.lower_stderr


def test_bdmc_verdict_flips_when_the_annealing_is_too_short() -> None:
    """A multimodal model (W ~ N(0, 2.5²)) annealed in two steps from two centres: the sides split or the
    weights degenerate, the verdict says NOT CONVERGED and a ConvergenceWarning names it."""
    model = strong_rbm(3)
    data = exact_samples(model, 300, 3)
    log_z = float(exact.log_partition(model))
    with pytest.warns(ConvergenceWarning, match="BDMC"):
        res = bdmc.log_partition(model, data, centres=2, chains=40, betas=[0.0, 0.5, 1.0], screen_betas=1,
                                 chain_starts=0, resample_sweeps=1, progress=False)
    assert not res.converged and res.diagnostics.reasons
    assert res.lower < log_z + 3.0  # the forward side stays a stochastic lower bound


def test_bracket_defaults_to_bdmc_on_both_sides() -> None:
    """The default ``method="auto"`` on Bernoulli layers: BDMC's forward side gives ``upper``, its reverse side
    ``lower``, both within 0.1 nat of the exact mean log-likelihood, and no RAISE run."""
    model = random_rbm(2)
    data = exact_samples(model, 300, 2)
    exact_ll = float(exact.log_likelihood(model, data).mean())
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        b = log_likelihood_bracket(model, data, options={k: v for k, v in FAST.items() if k != "progress"},
                                   progress=False)
    assert isinstance(b.log_z, bdmc.BDMCResult) and b.raise_result is None
    assert b.lower == pytest.approx(b.data_term - b.log_z.upper)
    assert b.upper == pytest.approx(b.data_term - b.log_z.lower)
    assert abs(b.lower - exact_ll) < 0.1 and abs(b.upper - exact_ll) < 0.1, (b.lower, b.upper, exact_ll)
    assert b.converged and abs(b.log_z_floor - float(exact.log_partition(model))) < 0.1
    again = log_likelihood_bracket(model, data[:100], data, log_z=b.log_z, progress=False)  # reused: no new run
    assert again.log_z is b.log_z and again.raise_result is None


def test_bdmc_names_bad_arguments() -> None:
    model = random_rbm(0)
    data = exact_samples(model, 50, 0)
    with pytest.raises(ValueError, match="centres"):
        bdmc.log_partition(model, data, centres=0)
    with pytest.raises(ValueError, match="chains"):
        bdmc.log_partition(model, data, chains=2)
    with pytest.raises(ValueError, match="resample_sweeps"):
        bdmc.log_partition(model, data, resample_sweeps=0)
    with pytest.raises(ValueError, match="screen_betas"):
        bdmc.log_partition(model, data, screen_betas=0)
    with pytest.raises(ValueError, match="data"):
        bdmc.log_partition(model, torch.full((3, 16), math.nan, dtype=torch.float64))
    with pytest.raises(TypeError, match="Bernoulli or one-hot"):
        bdmc.log_partition(BoltzmannMachine([GaussianLayer(4), BernoulliLayer(3)]), torch.zeros(5, 4))
    with pytest.raises(ValueError, match="RBM"):
        deep = BoltzmannMachine([BernoulliLayer(4), BernoulliLayer(3), BernoulliLayer(2)])
        bdmc.log_partition(deep, torch.zeros(5, 4))
    with pytest.raises(ValueError, match="method"):
        log_likelihood_bracket(model, data, method="aise")
