"""Cheap default metrics: the pseudo-likelihood estimate over random units, and the live log-likelihood
(log Z exact when enumeration is cheap, else tracked across parameter updates), checked against exact
enumeration."""

from __future__ import annotations

import copy
import math
import statistics

import pytest
import torch

from ebmlab import BernoulliLayer, BoltzmannMachine, GaussianLayer, OneHotLayer
from ebmlab.evaluate import (
    Estimate,
    LiveLogLikelihood,
    StatefulMetric,
    exact,
    mean_log_likelihood,
    pseudo_likelihood,
    pseudo_likelihood_estimate,
)
from ebmlab.train import CD, PCD, Callback, Trainer

from ._exact import randomize


def prototypes(rows: int, units: int, seed: int = 0) -> torch.Tensor:
    """Noisy copies (5 % flips) of 4 random binary prototypes: a data set with 4 sharp modes."""
    g = torch.Generator().manual_seed(seed)
    proto = (torch.rand(4, units, generator=g) < 0.5).double()
    x = proto[torch.randint(0, 4, (rows,), generator=g)]
    return torch.where(torch.rand(x.shape, generator=g, dtype=torch.float64) < 0.05, 1 - x, x)


# -- Estimate ------------------------------------------------------------------------------------
def test_estimate_is_a_float_with_a_standard_error() -> None:
    e = Estimate(-3.5, 0.25)
    assert isinstance(e, float) and float(e) == -3.5 and e.stderr == 0.25
    assert e + 1 == -2.5 and "stderr=0.25" in repr(e)
    assert math.isnan(Estimate(1.0).stderr)


# -- pseudo-likelihood over random units -----------------------------------------------------------
MODELS = {
    "bernoulli rbm": lambda: BoltzmannMachine([BernoulliLayer(12), BernoulliLayer(5)]),
    "one-hot rbm": lambda: BoltzmannMachine([OneHotLayer(4, 3), BernoulliLayer(4)]),
    "deep": lambda: BoltzmannMachine([BernoulliLayer(10), BernoulliLayer(4), BernoulliLayer(3)]),
}


def visible_rows(model: BoltzmannMachine, rows: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    layer = model.layers[0]
    if isinstance(layer, OneHotLayer):
        idx = torch.randint(0, layer.states, (rows, layer.sites), generator=g)
        return torch.nn.functional.one_hot(idx, layer.states).reshape(rows, -1).double()
    return (torch.rand(rows, layer.n, generator=g) < 0.4).double()


@pytest.mark.parametrize("name", list(MODELS))
def test_pseudo_likelihood_estimate_is_exact_when_it_covers_every_unit(name: str) -> None:
    model = randomize(MODELS[name]().double(), seed=2)
    v = visible_rows(model, 30)
    est = pseudo_likelihood_estimate(model, v, units=100)
    assert float(est) == pytest.approx(pseudo_likelihood(model, v), abs=1e-10) and est.stderr == 0.0


@pytest.mark.parametrize("name", list(MODELS))
def test_pseudo_likelihood_estimate_is_unbiased_and_its_stderr_is_calibrated(name: str) -> None:
    """Over 300 seeds (independent unit subsets) the mean is within 4 standard errors of the exact
    value, and the reported stderr matches the spread of the estimates within 15 %."""
    model = randomize(MODELS[name]().double(), seed=3)
    v = visible_rows(model, 40)
    truth = pseudo_likelihood(model, v)
    estimates = [pseudo_likelihood_estimate(model, v, units=3, seed=s) for s in range(300)]
    spread = statistics.stdev(estimates)
    assert abs(statistics.fmean(estimates) - truth) < 4 * spread / math.sqrt(len(estimates))
    assert statistics.fmean(e.stderr for e in estimates) == pytest.approx(spread, rel=0.15)


def test_pseudo_likelihood_estimate_uses_the_same_units_on_every_call() -> None:
    model = randomize(MODELS["bernoulli rbm"]().double(), seed=4)
    v = visible_rows(model, 20)
    assert float(pseudo_likelihood_estimate(model, v, units=4)) == float(pseudo_likelihood_estimate(model, v, units=4))
    with pytest.raises(ValueError, match="units must be an integer >= 2"):
        pseudo_likelihood_estimate(model, v, units=1)


# -- live log-likelihood ---------------------------------------------------------------------------
def test_live_log_likelihood_is_exact_when_enumeration_is_cheap() -> None:
    model = randomize(BoltzmannMachine([BernoulliLayer(9), BernoulliLayer(6)]).double(), seed=5)
    v = visible_rows(model, 25)
    live = LiveLogLikelihood()
    value = live(model, v)
    assert live.mode == "exact" and value.stderr == 0.0
    assert float(value) == pytest.approx(mean_log_likelihood(model, v), abs=1e-10)


def tracked_errors(model: BoltzmannMachine, method, data: torch.Tensor, epochs: int, **options) -> list[float]:
    """After each epoch of training (the live metric called once per epoch), the larger of |tracked log Z − exact
    log Z| and |live mean log-likelihood − exact one|."""
    live = LiveLogLikelihood(method="tracked", **options)
    live(model, data)
    trainer = Trainer(model, method, lr=0.01, batch_size=20, metrics={}, progress=False)
    errors = []
    for epoch in range(1, epochs + 1):
        trainer.fit(data, epoch)
        value = live(model, data)
        assert live.mode == "tracked"
        truth = mean_log_likelihood(model, data)
        errors.append(max(abs(float(value) - truth), abs(float(live.log_z) - exact.log_partition(model))))
    return errors


@pytest.mark.parametrize("hidden", [8, 16])
def test_tracked_log_partition_follows_the_exact_one_at_every_epoch_cd(hidden: int) -> None:
    """CD-1 on 4 sharp modes, default settings but 200 particles: within 0.5 nat of exact log Z at all 10 epochs."""
    data = prototypes(200, 16)
    model = BoltzmannMachine([BernoulliLayer(16), BernoulliLayer(hidden)], seed=0).double()
    model.initialize(data)
    errors = tracked_errors(model, CD(1), data, 10, particles=200)
    assert max(errors) < 0.5, errors


@pytest.mark.parametrize("hidden", [8, 16])
def test_tracked_log_partition_follows_the_exact_one_at_every_epoch_pcd(hidden: int) -> None:
    """PCD-1 (sharper modes than CD): 300 particles, 4 data-driven jumps per move; within 0.5 nat at all 10 epochs."""
    data = prototypes(200, 16)
    model = BoltzmannMachine([BernoulliLayer(16), BernoulliLayer(hidden)], seed=0).double()
    model.initialize(data)
    errors = tracked_errors(model, PCD(k=1, chains=50), data, 10, particles=300, jumps=4)
    assert max(errors) < 0.5, errors


def test_tracked_log_partition_at_the_anchor_is_the_independent_model() -> None:
    """With zero weights the tracked log Z is the sum of the layers' log partitions, exactly."""
    model = BoltzmannMachine([BernoulliLayer(30), BernoulliLayer(25)], seed=0).double()
    with torch.no_grad():
        model.weights[0].zero_()
        model.layers[0].bias.normal_()
    live = LiveLogLikelihood()
    live.update(model)
    assert live.mode == "tracked"
    with torch.no_grad():
        expected = sum(float(layer.log_partition(layer.zero_field(1))[0]) for layer in model.layers)
    assert float(live.log_z) == pytest.approx(expected, abs=1e-9) and live.log_z.stderr == 0.0


def test_live_metric_skips_work_when_the_parameters_did_not_change() -> None:
    model = BoltzmannMachine([BernoulliLayer(30), BernoulliLayer(25)], seed=0).double()
    live = LiveLogLikelihood()
    data = prototypes(20, 30)
    first = live(model, data)
    steps = live.steps
    assert live(model, data) == first and live.steps == steps
    live.reset()
    assert live.mode is None and math.isnan(float(live.log_z))


def test_live_metric_refuses_what_it_cannot_track() -> None:
    gaussian = BoltzmannMachine([GaussianLayer(30), BernoulliLayer(30)])
    with pytest.raises(ValueError, match="tracks log Z only for RBMs with Bernoulli/OneHot layers"):
        LiveLogLikelihood().update(gaussian)
    with pytest.raises(ValueError, match="method must be one of"):
        LiveLogLikelihood(method="ais")
    with pytest.raises(ValueError, match="ess must be a number in"):
        LiveLogLikelihood(ess=1.5)


@pytest.mark.parametrize("method", ["exact", "tracked"])
def test_live_metric_refuses_a_model_of_other_sizes_until_reset(method: str) -> None:
    small, other = (BoltzmannMachine([BernoulliLayer(n), BernoulliLayer(6)], seed=0).double() for n in (8, 10))
    live = LiveLogLikelihood(method=method)
    live(small, visible_rows(small, 10))
    with pytest.raises(ValueError, match=r"layer sizes \[8, 6\], got one with \[10, 6\]; call reset\(\)"):
        live(other, visible_rows(other, 10))
    with pytest.raises(ValueError, match=r"layer sizes \[8, 6\]"):
        live.update(other)
    live.reset()
    value = live(other, visible_rows(other, 10))
    assert math.isfinite(float(value)) and live.mode == method


def test_live_log_likelihood_on_mnist_matches_exact_at_the_end(shared_data) -> None:
    """784×16 RBM, PCD-1 at lr 1e-3 for 6 epochs on 2,000 MNIST rows (live metric every epoch through the
    Trainer): the final tracked log-likelihood is within 2 nats of the exact one (2^16 hidden states)."""
    from ebmlab.data import load

    x = load("mnist", split="train5k", data_dir=shared_data).binarize().data[:2000]
    model = BoltzmannMachine([BernoulliLayer(784), BernoulliLayer(16)], seed=0)
    model.initialize(x)
    live = LiveLogLikelihood(method="tracked")
    trainer = Trainer(model, PCD(k=1, chains=100), lr=1e-3, batch_size=100, metrics={"log_likelihood": live},
                      metric_budget=None, validation_rows=500, progress=False)  # fmt: skip
    history = trainer.fit(x, 6)
    assert len(history["log_likelihood_stderr"]) == 6
    rows = trainer._subsample(x, 0)
    truth = float(exact.log_likelihood(model, rows).mean())
    assert history["log_likelihood"][-1] == pytest.approx(truth, abs=2.0)


def test_lost_live_log_likelihood_on_mnist_settles_near_exact_at_the_end(shared_data) -> None:
    """784×16 RBM, PCD-1 at the Trainer's default lr 0.05 on 2,000 MNIST rows, the metric made to lose track
    at its first bridge (``min_overlap`` near 1): every value is untrusted (inf), and the settled one the fit
    ends with (importance sampling centred on rows and swept training chains) is within 0.5 nat of exact."""
    from ebmlab.data import load

    x = load("mnist", split="train5k", data_dir=shared_data).binarize().data[:2000]
    model = BoltzmannMachine([BernoulliLayer(784), BernoulliLayer(16)], seed=0)
    model.initialize(x)
    live = LiveLogLikelihood(method="tracked", min_overlap=0.9999)
    trainer = Trainer(model, PCD(k=1, chains=100), batch_size=100, metrics={"log_likelihood": live},
                      metric_budget=None, validation_rows=500, progress=False)  # fmt: skip
    history = trainer.fit(x, 6)
    assert live.lost and all(math.isinf(se) for se in history["log_likelihood_stderr"])
    truth = float(exact.log_likelihood(model, trainer._subsample(x, 0)).mean())
    assert history["log_likelihood"][-1] == pytest.approx(truth, abs=0.5)


# -- per-step tracking through the Trainer (bridge sampling between checkpoints) ---------------------
class ExactEachEpoch(Callback):
    """Records |live log-likelihood − exact| (on the Trainer's metric rows) after every epoch."""

    def __init__(self, data: torch.Tensor) -> None:
        self.data, self.errors, self.stderrs = data, [], []

    def on_epoch_end(self, state) -> None:
        truth = mean_log_likelihood(state.model, self.data)
        self.errors.append(abs(state.metrics["log_likelihood"] - truth))
        self.stderrs.append(state.metrics["log_likelihood_stderr"])


@pytest.mark.parametrize(("kind", "hidden"), [("pcd", 8), ("pcd", 20), ("cd", 20)])
def test_live_log_likelihood_through_the_trainer_is_within_half_a_nat_of_exact_at_every_epoch(
    kind: str, hidden: int
) -> None:
    """16×8 and 16×20 RBMs on 4 sharp modes, PCD-1 / CD-1 at lr 0.2 (the LL rises by ≈ 2 nats over 10 epochs):
    log Z tracked step by step (a bridge every 10 steps) stays within 0.5 nat of exact enumeration at every
    epoch, with a finite standard error (trusted), at one checkpoint per 10 optimizer steps."""
    data = prototypes(200, 16)
    model = BoltzmannMachine([BernoulliLayer(16), BernoulliLayer(hidden)], seed=0).double()
    model.initialize(data)
    live = LiveLogLikelihood(method="tracked")
    check = ExactEachEpoch(data)
    method = PCD(k=1, chains=100) if kind == "pcd" else CD(1)
    trainer = Trainer(model, method, lr=0.2, batch_size=20, metrics={"log_likelihood": live}, metric_budget=None,
                      progress=False, callbacks=[check])  # fmt: skip
    trainer.fit(data, 10)
    assert live.mode == "tracked" and live.trusted and live.checkpoints == trainer.step // live.every == 10
    assert max(check.errors) < 0.5, check.errors
    assert all(0 < se < 0.5 for se in check.stderrs), check.stderrs
    first, last = trainer.history["log_likelihood"][0], trainer.history["log_likelihood"][-1]
    assert last - first > 1.0  # the model did learn: the test is not about a model standing still


def exact_samples(model: BoltzmannMachine, n: int, seed: int) -> torch.Tensor:
    """n visible rows drawn from the exact distribution of a small RBM (``exact.sample``)."""
    return exact.sample(model, n, seed=seed)[0]


def test_bridge_recovers_the_exact_log_partition_ratio_with_a_calibrated_stderr() -> None:
    """Bennett's acceptance ratio between a 10×6 RBM and a perturbed copy (N(0, 0.3²) added to every parameter)
    from exact samples of each (unequal counts): over 40 seeds the mean is within 4 standard errors of
    log Z_1 − log Z_0 and the reported stderr matches the spread within 30 %."""
    from ebmlab.evaluate.live import bridge

    a = randomize(BoltzmannMachine([BernoulliLayer(10), BernoulliLayer(6)]).double(), seed=7)
    b = copy.deepcopy(a)
    with torch.no_grad():
        for p, q in zip(b.parameters(), randomize(copy.deepcopy(a), seed=8, scale=0.3).parameters()):
            p.add_(q)  # a parameter step, as between checkpoints
    truth = exact.log_partition(b) - exact.log_partition(a)
    deltas, ses = [], []
    for seed in range(40):
        x, y = exact_samples(a, 300, seed), exact_samples(b, 200, 100 + seed)
        with torch.no_grad():
            delta, var, overlap = bridge(a.free_energy(x) - b.free_energy(x), a.free_energy(y) - b.free_energy(y))
        deltas.append(delta)
        ses.append(math.sqrt(var))
        assert 0.2 < overlap < 1
    spread = statistics.stdev(deltas)
    assert abs(statistics.fmean(deltas) - truth) < 4 * spread / math.sqrt(len(deltas))
    assert statistics.fmean(ses) == pytest.approx(spread, rel=0.3)


def test_live_log_likelihood_says_when_it_is_not_trustworthy() -> None:
    """Its stderr becomes inf when a bridge's overlap is below ``min_overlap`` (it then stops bridging and takes
    log Z from the data rows), and when the tracked log Z falls below the data bound log Σ_distinct rows exp(−F)
    (it is then lifted to the bound)."""
    data = prototypes(200, 16)
    model = BoltzmannMachine([BernoulliLayer(16), BernoulliLayer(8)], seed=0).double()
    model.initialize(data)
    strict = LiveLogLikelihood(method="tracked", min_overlap=0.9999, settle_sweeps=0)
    trainer = Trainer(model, PCD(), lr=0.2, batch_size=20, metrics={"log_likelihood": strict}, progress=False)
    trainer.fit(data, 2)  # lost at step 10, the last of epoch 1
    assert not strict.trusted and strict.lost and strict.floored == 0
    assert strict.checkpoints == 1  # lost at the first bridge: no more bridging
    assert torch.equal(strict._centres(), trainer.method.particles[0])  # the training chains centre the estimate
    strict.settle_sweeps = 30
    value = strict(model, data)
    assert math.isinf(value.stderr)
    # once lost, log Z comes from the data rows alone (importance sampling of the hidden marginal): close here
    assert float(value) == pytest.approx(mean_log_likelihood(model, data), abs=0.5)
    strict.settle(model)  # a swept copy of those chains and more draws for the next value: still untrusted
    assert strict._centres() is strict._v and not torch.equal(strict._v, trainer.method.particles[0])
    settled = strict(model, data)
    assert math.isinf(settled.stderr) and not strict._settled
    assert float(settled) == pytest.approx(mean_log_likelihood(model, data), abs=0.1)

    live = LiveLogLikelihood(method="tracked")
    live.update(model)
    assert live.trusted
    live._log_z -= 100.0  # a tracked log Z far too low, as when the particles miss the data's modes
    value = live(model, data)
    with torch.no_grad():
        neg_f = -model.free_energy(torch.unique(data, dim=0))
    assert live.floored == 1 and not live.trusted and math.isinf(value.stderr)
    assert float(live.log_z) >= float(torch.logsumexp(neg_f, 0)) - 1e-9


def test_data_log_partition_is_unbiased_in_z() -> None:
    """Importance sampling of the hidden marginal from data rows: over 200 seeds the mean of Ẑ / Z is 1 within
    4 standard errors, and log Ẑ is within 1 nat of exact log Z (a 10×6 RBM, rows drawn from the model)."""
    from ebmlab.evaluate.live import data_log_partition

    model = randomize(BoltzmannMachine([BernoulliLayer(10), BernoulliLayer(6)]).double(), seed=9)
    log_z = exact.log_partition(model)
    rows = exact_samples(model, 100, 0)
    ratios = [math.exp(data_log_partition(model, rows, 50, torch.Generator().manual_seed(s)) - log_z)
              for s in range(200)]  # fmt: skip
    spread = statistics.stdev(ratios)
    assert abs(statistics.fmean(ratios) - 1) < 4 * spread / math.sqrt(len(ratios))
    assert max(abs(math.log(r)) for r in ratios) < 1.0


def two_mode_rbm() -> BoltzmannMachine:
    """12 visible units, 1 hidden unit: p(v) ∝ e^{bᵀv} (1 + e^{c + wᵀv}) with b = −2, w = 4, c = −24 has two
    modes of nearly equal mass, all zeros (h = 0: Σ_v e^{bᵀv} = (1 + e^{−2})^12 ≈ e^{1.52}) and all ones
    (h = 1: e^{c} (1 + e^{2})^12 ≈ e^{1.53})."""
    model = BoltzmannMachine([BernoulliLayer(12), BernoulliLayer(1)]).double()
    with torch.no_grad():
        model.layers[0].bias.fill_(-2.0)
        model.layers[1].bias.fill_(-24.0)
        model.weights[0].fill_(4.0)
    return model


def test_data_log_partition_centred_on_chains_finds_the_mode_the_rows_miss() -> None:
    """Rows from one of two equal modes only: importance sampling from the rows alone misses the other half of Z
    (log Ẑ ≈ log Z − log 2); with chains in the other mode as centres too (the even mixture of both parts) log Ẑ
    is within 0.05 nat of exact, and over 200 seeds the mean of Ẑ / Z is 1 within 4 standard errors."""
    from ebmlab.evaluate.live import data_log_partition

    model = two_mode_rbm()
    log_z = exact.log_partition(model)
    samples = exact_samples(model, 400, 0)
    rows, chains = samples[samples.sum(1) < 6][:100], samples[samples.sum(1) > 6][:20]
    assert rows.shape[0] == 100 and chains.shape[0] == 20  # both modes were drawn
    alone = data_log_partition(model, rows, 200, torch.Generator().manual_seed(0))
    assert alone - log_z == pytest.approx(-math.log(2), abs=0.05)
    ratios = [math.exp(data_log_partition(model, rows, 200, torch.Generator().manual_seed(s), chains=chains) - log_z)
              for s in range(200)]  # fmt: skip
    spread = statistics.stdev(ratios)
    assert abs(statistics.fmean(ratios) - 1) < 4 * spread / math.sqrt(len(ratios))
    assert max(abs(math.log(r)) for r in ratios) < 0.05


class SettleProbe(StatefulMetric):
    """A stateful metric that logs the Trainer's calls to it."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def __call__(self, model, data) -> float:
        self.events.append("value")
        return 0.0

    def update(self, model) -> None:
        self.events.append("update")

    def reset(self) -> None:
        self.events.clear()

    def settle(self, model) -> None:
        self.events.append("settle")


def test_trainer_settles_a_stateful_metric_before_the_last_epoch_of_each_fit() -> None:
    """``settle`` runs once per ``fit``, right before the value the fit ends with (train rows, then validation)."""
    data = prototypes(60, 8)
    model = BoltzmannMachine([BernoulliLayer(8), BernoulliLayer(4)], seed=0).double()
    probe = SettleProbe()
    trainer = Trainer(model, PCD(), lr=0.1, batch_size=20, metrics={"probe": probe}, metric_budget=None,
                      progress=False)  # fmt: skip
    trainer.fit(data, 3, validation=data[:20])
    assert probe.events == ["update", "value", "value", "value", "value", "settle", "value", "value"]
    probe.events.clear()
    trainer.fit(data, 4)
    assert probe.events == ["update", "settle", "value"]
