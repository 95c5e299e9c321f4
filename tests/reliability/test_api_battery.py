"""A table of bad inputs to the public API: each must raise the named exception type with a message
that names the argument (a regex), never a deep torch/numpy traceback or a silent NaN."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch

from ebmlab import AllocationError, BernoulliLayer, BoltzmannMachine, GaussianLayer, OneHotLayer, parse_layers
from ebmlab.data import Dataset, as_dataset, batches, load, transforms
from ebmlab.evaluate import (
    energy_distance,
    estimate_log_likelihood,
    exact,
    free_energy_gap,
    get_metric,
    heat_capacity,
    knn_kl,
    log_likelihood_bracket,
    mean_field_lower_bound,
    mean_free_energy,
    mean_log_likelihood,
    model_energy_distance,
    model_frechet_distance,
    model_heat_capacity,
    model_knn_kl,
    pseudo_likelihood,
    raise_log_likelihood,
    reconstruction_error,
    weight_sparsity,
)
from ebmlab.train import CD, L1, L2, PCD, PT, TAP, Callback, FixedMask, MaxNorm, Trainer

HUGE = 10**13  # units: 40 TB of float32, more than any test machine has


@dataclass(frozen=True)
class Case:
    label: str
    call: Callable[[], Any]
    error: type[BaseException]
    match: str


def rbm() -> BoltzmannMachine:
    return BoltzmannMachine([BernoulliLayer(4), BernoulliLayer(3)])


def grbm() -> BoltzmannMachine:
    return BoltzmannMachine([GaussianLayer(4), BernoulliLayer(3)])


def potts() -> BoltzmannMachine:
    return BoltzmannMachine([OneHotLayer(2, 2), BernoulliLayer(2)])


def v(rows: int = 2, fill: float = 0.0) -> torch.Tensor:
    return torch.full((rows, 4), fill)


def states(rows: int = 2, hidden: float = 0.0) -> list[torch.Tensor]:
    return [v(rows), torch.full((rows, 3), hidden)]


def data(rows: int = 20) -> torch.Tensor:
    return (torch.rand(rows, 4, generator=torch.Generator().manual_seed(0)) > 0.5).float()


def trainer(**kwargs: Any) -> Trainer:
    args = {"method": CD(), "batch_size": 5, "metrics": {}, "progress": False, **kwargs}
    return Trainer(kwargs.pop("model", rbm()), **{k: a for k, a in args.items() if k != "model"})


def bad_float(x: torch.Tensor, value: float) -> torch.Tensor:
    x = x.clone()
    x[0, 0] = value
    return x


LAYERS = [
    Case("BernoulliLayer(0)", lambda: BernoulliLayer(0), ValueError, r"n \(the number of units\) must be a positive"),
    Case("BernoulliLayer(-2)", lambda: BernoulliLayer(-2), ValueError, r"n \(the number of units\)"),
    Case("BernoulliLayer(2.5)", lambda: BernoulliLayer(2.5), ValueError, r"n \(the number of units\).*2\.5"),
    Case("BernoulliLayer(True)", lambda: BernoulliLayer(True), ValueError, r"n \(the number of units\).*True"),
    Case("BernoulliLayer('3')", lambda: BernoulliLayer("3"), ValueError, r"n \(the number of units\).*'3'"),
    Case("BernoulliLayer(name=5)", lambda: BernoulliLayer(3, name=5), TypeError, r"name must be a str or None"),
    Case(
        "BernoulliLayer(huge)",
        lambda: BernoulliLayer(HUGE),
        AllocationError,
        r"^n: .*40\.0 TB \(40000000000000 bytes\)",
    ),
    Case("GaussianLayer(loc=nan)", lambda: GaussianLayer(3, loc=math.nan), ValueError, r"loc must be a finite number"),
    Case("GaussianLayer(loc=inf)", lambda: GaussianLayer(3, loc=math.inf), ValueError, r"loc must be a finite number"),
    Case("GaussianLayer(loc='a')", lambda: GaussianLayer(3, loc="a"), TypeError, r"loc must be a real number"),
    Case("GaussianLayer(loc=True)", lambda: GaussianLayer(3, loc=True), TypeError, r"loc must be a real number"),
    Case("GaussianLayer(var=0)", lambda: GaussianLayer(3, var=0.0), ValueError, r"var must be a positive finite"),
    Case("GaussianLayer(var=-1)", lambda: GaussianLayer(3, var=-1.0), ValueError, r"var must be a positive finite"),
    Case(
        "GaussianLayer(var=nan)", lambda: GaussianLayer(3, var=math.nan), ValueError, r"var must be a positive finite"
    ),
    Case(
        "GaussianLayer(var=inf)", lambda: GaussianLayer(3, var=math.inf), ValueError, r"var must be a positive finite"
    ),
    Case("GaussianLayer(var=True)", lambda: GaussianLayer(3, var=True), ValueError, r"var must be a positive finite"),
    Case("OneHotLayer(0, 3)", lambda: OneHotLayer(0, 3), ValueError, r"sites must be a positive integer"),
    Case("OneHotLayer(2, 1)", lambda: OneHotLayer(2, 1), ValueError, r"states must be at least 2"),
    Case("OneHotLayer(2, 2.5)", lambda: OneHotLayer(2, 2.5), ValueError, r"states must be a positive integer"),
    Case("OneHotLayer(True, 3)", lambda: OneHotLayer(True, 3), ValueError, r"sites must be a positive integer"),
    Case("parse_layers(5)", lambda: parse_layers(5), TypeError, r"layers must be a string"),
    Case(
        "parse_layers('bernoulli')",
        lambda: parse_layers("bernoulli"),
        ValueError,
        r"'bernoulli' must look like TYPE:SIZE",
    ),
    Case("parse_layers('bernoulli:x')", lambda: parse_layers("bernoulli:x"), ValueError, r"SIZE must be an integer"),
    Case("parse_layers('potts:3')", lambda: parse_layers("potts:3"), ValueError, r"'potts:3' must look like TYPE:SIZE"),
    Case("parse_layers('bernoulli:0')", lambda: parse_layers("bernoulli:0"), ValueError, r"n \(the number of units\)"),
]

MODEL = [
    Case("one layer", lambda: BoltzmannMachine([BernoulliLayer(4)]), ValueError, r"layers must list at least 2"),
    Case(
        "layers as a string", lambda: BoltzmannMachine("bernoulli:4,bernoulli:3"), TypeError, r"layers must be a list"
    ),
    Case("layers=None", lambda: BoltzmannMachine(None), TypeError, r"layers must be a list"),
    Case(
        "a torch module as a layer",
        lambda: BoltzmannMachine([BernoulliLayer(4), torch.nn.Linear(2, 2)]),
        TypeError,
        r"layers\[1\] must be an ebmlab layer",
    ),
    Case(
        "one layer twice",
        lambda: (lambda a: BoltzmannMachine([a, a]))(BernoulliLayer(3)),
        ValueError,
        r"layers must be distinct",
    ),
    Case(
        "duplicate names",
        lambda: BoltzmannMachine([BernoulliLayer(3, "a"), BernoulliLayer(3, "a")]),
        ValueError,
        r"layer names must be unique",
    ),
    Case(
        "seed=1.5",
        lambda: BoltzmannMachine([BernoulliLayer(3), BernoulliLayer(2)], seed=1.5),
        TypeError,
        r"seed must be an integer",
    ),
    Case(
        "weights too large",
        lambda: BoltzmannMachine([BernoulliLayer(10**6), BernoulliLayer(10**6)]),
        AllocationError,
        r"^layers: the weights \(1000000×1000000\) would take 4\.0 TB \(4000000000000 bytes\)",
    ),
    Case("model.to('foo')", lambda: rbm().to("foo"), ValueError, r"device 'foo' is not a device name"),
]

INPUTS = [
    Case(
        "free_energy: wrong width",
        lambda: rbm().free_energy(torch.zeros(3, 5)),
        ValueError,
        r"v has 5 columns, but the visible layer",
    ),
    Case("free_energy: 1-D", lambda: rbm().free_energy(torch.zeros(4)), ValueError, r"v must be 2-D"),
    Case("free_energy: 3-D", lambda: rbm().free_energy(torch.zeros(1, 2, 4)), ValueError, r"v must be 2-D"),
    Case("free_energy: NaN", lambda: rbm().free_energy(bad_float(v(), math.nan)), ValueError, r"v contains NaN or Inf"),
    Case("free_energy: Inf", lambda: rbm().free_energy(bad_float(v(), math.inf)), ValueError, r"v contains NaN or Inf"),
    Case(
        "free_energy: 0.3 for Bernoulli",
        lambda: rbm().free_energy(v(fill=0.3)),
        ValueError,
        r"v for layer visible .* must be binary",
    ),
    Case(
        "free_energy: not one-hot",
        lambda: potts().free_energy(torch.ones(1, 4)),
        ValueError,
        r"v for layer visible .* must be one-hot",
    ),
    Case(
        "free_energy: float64 into float32",
        lambda: rbm().free_energy(v().double()),
        TypeError,
        r"v has dtype torch.float64, but the model uses torch.float32",
    ),
    Case(
        "free_energy: other device",
        lambda: rbm().free_energy(torch.zeros(2, 4, device="meta")),
        ValueError,
        r"v is on device meta, but the model is on cpu",
    ),
    Case("free_energy: strings", lambda: rbm().free_energy([["a", "b", "c", "d"]]), TypeError, r"v must hold numbers"),
    Case(
        "free_energy: complex",
        lambda: rbm().free_energy(np.zeros((2, 4), dtype=complex)),
        TypeError,
        r"v must hold numbers",
    ),
    Case(
        "free_energy: complex tensor",
        lambda: rbm().free_energy(torch.zeros(2, 4, dtype=torch.complex64)),
        TypeError,
        r"v must hold real numbers",
    ),
    Case("free_energy: None", lambda: rbm().free_energy(None), TypeError, r"v must hold numbers"),
    Case(
        "energy: Bernoulli state 0.3",
        lambda: rbm().energy(states(hidden=0.3)),
        ValueError,
        r"states\[1\] for layer hidden .* must be binary .* 0\.3",
    ),
    Case(
        "energy: one tensor per layer",
        lambda: rbm().energy([v()]),
        ValueError,
        r"states must hold one tensor per layer \(2\)",
    ),
    Case("energy: a tensor, not a list", lambda: rbm().energy(v()), TypeError, r"states must be a list of 2 tensors"),
    Case(
        "energy: rows differ",
        lambda: rbm().energy([v(2), torch.zeros(3, 3)]),
        ValueError,
        r"states\[1\] has 3 rows, but states\[0\] has 2",
    ),
    Case(
        "energy: hidden width",
        lambda: rbm().energy([v(), torch.zeros(2, 4)]),
        ValueError,
        r"states\[1\] has 4 columns, but layer hidden",
    ),
    Case(
        "gibbs_step: state 0.3",
        lambda: rbm().gibbs_step(states(hidden=0.3)),
        ValueError,
        r"states\[1\] .* must be binary",
    ),
    Case(
        "gibbs_step: beta='hot'",
        lambda: rbm().gibbs_step(states(), beta="hot"),
        TypeError,
        r"beta must be a positive number .* got str 'hot'",
    ),
    Case(
        "gibbs_step: beta=True",
        lambda: rbm().gibbs_step(states(), beta=True),
        TypeError,
        r"beta must be a positive number .* boolean True",
    ),
    Case(
        "gibbs_step: beta bool tensor",
        lambda: rbm().gibbs_step(states(), beta=torch.tensor([True, True])),
        TypeError,
        r"beta must be a positive number",
    ),
    Case(
        "gibbs_step: beta per row, wrong length",
        lambda: rbm().gibbs_step(states(3), beta=torch.ones(2)),
        ValueError,
        r"beta must be a number or a 1-D tensor with one value per row \(3\)",
    ),
    Case(
        "gibbs_step: beta=-1",
        lambda: rbm().gibbs_step(states(), beta=-1.0),
        ValueError,
        r"beta must be a positive finite number, got -1",
    ),
    Case(
        "gibbs_step: beta=nan",
        lambda: rbm().gibbs_step(states(), beta=math.nan),
        ValueError,
        r"beta must be a positive finite number, got nan",
    ),
    Case(
        "gibbs_step: beta=[1, -1]",
        lambda: rbm().gibbs_step(states(), beta=[1.0, -1.0]),
        ValueError,
        r"beta must be positive and finite in every row",
    ),
    Case(
        "gibbs_step: beta=['a', 'b']",
        lambda: rbm().gibbs_step(states(), beta=["a", "b"]),
        TypeError,
        r"beta must hold numbers",
    ),
    Case(
        "gibbs_step: clamp length",
        lambda: rbm().gibbs_step(states(), clamp=[None]),
        ValueError,
        r"clamp must be a list of 2 masks",
    ),
    Case(
        "gibbs_step: clamp not boolean",
        lambda: rbm().gibbs_step(states(), clamp=[torch.ones(4), None]),
        TypeError,
        r"clamp\[0\] must be a boolean mask",
    ),
    Case("sample: n=0", lambda: rbm().sample(0), ValueError, r"n must be an integer >= 1, got 0"),
    Case("sample: n=2.5", lambda: rbm().sample(2.5), ValueError, r"n must be an integer >= 1, got 2\.5"),
    Case("sample: n=True", lambda: rbm().sample(True), ValueError, r"n must be an integer >= 1, got True"),
    Case("sample: steps=-1", lambda: rbm().sample(2, steps=-1), ValueError, r"steps must be an integer >= 0"),
    Case(
        "sample: beta=0",
        lambda: rbm().sample(2, steps=1, beta=0.0),
        ValueError,
        r"beta must be a positive finite number",
    ),
    Case(
        "sample: beta='hot'", lambda: rbm().sample(2, steps=1, beta="hot"), TypeError, r"beta must be a positive number"
    ),
    Case(
        "sample: beta=True",
        lambda: rbm().sample(2, steps=1, beta=True),
        TypeError,
        r"beta must be a positive number .* boolean",
    ),
    Case("sample: seed=1.5", lambda: rbm().sample(2, steps=1, seed=1.5), TypeError, r"seed must be an integer index"),
    Case(
        "sample: n too large",
        lambda: rbm().sample(10**12, steps=1),
        AllocationError,
        r"^n: 1000000000000 chains of 7 units would take .*TB \(\d+ bytes\)",
    ),
    Case(
        "sample: init not binary",
        lambda: rbm().sample(2, steps=1, init=states(hidden=0.5)),
        ValueError,
        r"init\[1\] .* must be binary",
    ),
    Case(
        "partial_free_energy: parity=2",
        lambda: rbm().partial_free_energy(states(), parity=2),
        ValueError,
        r"parity must be 0 \(even layers\) or 1",
    ),
    Case(
        "partial_free_energy: parity=True",
        lambda: rbm().partial_free_energy(states(), parity=True),
        ValueError,
        r"parity must be 0",
    ),
    Case(
        "partial_free_energy: kept layer 0.3",
        lambda: rbm().partial_free_energy([v(fill=0.3), torch.zeros(2, 3)]),
        ValueError,
        r"states\[0\] .* must be binary",
    ),
    Case("field: i=5", lambda: rbm().field(states(), 5), ValueError, r"i must index a layer \(0\.\.1\)"),
    Case("field: i=1.5", lambda: rbm().field(states(), 1.5), TypeError, r"i must be an integer index"),
    Case(
        "mean_field: beta=-1",
        lambda: rbm().mean_field(v(), beta=-1),
        ValueError,
        r"beta must be a positive finite number, got -1",
    ),
    Case(
        "mean_field: beta=0",
        lambda: rbm().mean_field(v(), beta=0),
        ValueError,
        r"beta must be a positive finite number, got 0",
    ),
    Case(
        "mean_field: tol=nan",
        lambda: rbm().mean_field(v(), tol=math.nan),
        ValueError,
        r"tol must be a finite number, got nan",
    ),
    Case("mean_field: tol=-1", lambda: rbm().mean_field(v(), tol=-1.0), ValueError, r"tol must be >= 0"),
    Case("mean_field: tol='a'", lambda: rbm().mean_field(v(), tol="a"), TypeError, r"tol must be a real number"),
    Case("mean_field: steps=0", lambda: rbm().mean_field(v(), steps=0), ValueError, r"steps must be an integer >= 1"),
    Case(
        "predict: layer=1.5",
        lambda: rbm().predict(v(), layer=1.5),
        TypeError,
        r"layer must be an integer index, got float 1\.5",
    ),
    Case("predict: layer=0", lambda: rbm().predict(v(), layer=0), ValueError, r"layer must index a hidden layer"),
    Case("predict: layer=2", lambda: rbm().predict(v(), layer=2), ValueError, r"layer must index a hidden layer"),
    Case("predict: layer=True", lambda: rbm().predict(v(), layer=True), TypeError, r"layer must be an integer index"),
    Case(
        "initialize: 0 rows",
        lambda: rbm().initialize(torch.zeros(0, 4)),
        ValueError,
        r"data must have at least 1 row, got 0",
    ),
    Case(
        "initialize: 0 rows Gaussian",
        lambda: grbm().initialize(torch.zeros(0, 4)),
        ValueError,
        r"data must have at least 1 row",
    ),
    Case(
        "initialize: method",
        lambda: rbm().initialize(v(), method="xavier"),
        ValueError,
        r"method must be 'hinton', 'glorot' or 'pca'",
    ),
    Case("initialize: seed='a'", lambda: rbm().initialize(v(), seed="a"), TypeError, r"seed must be an integer"),
    Case(
        "impute: method",
        lambda: rbm().impute(v(), torch.ones(4, dtype=torch.bool), method="median"),
        ValueError,
        r"method must be 'mean' or 'sample'",
    ),
    Case(
        "impute: steps=0",
        lambda: rbm().impute(v(), torch.ones(4, dtype=torch.bool), steps=0),
        ValueError,
        r"steps must be an integer >= 1",
    ),
    Case(
        "impute: burn_in=-1",
        lambda: rbm().impute(v(), torch.ones(4, dtype=torch.bool), burn_in=-1),
        ValueError,
        r"burn_in must be an integer >= 0",
    ),
    Case(
        "sample_conditional: mask shape",
        lambda: rbm().sample_conditional(v(), torch.ones(3, dtype=torch.bool)),
        ValueError,
        r"mask must have shape \(4,\) or \(2, 4\)",
    ),
    Case(
        "sample_conditional: mask dtype",
        lambda: rbm().sample_conditional(v(), torch.ones(4)),
        TypeError,
        r"mask must be a boolean mask",
    ),
    Case(
        "sample_conditional: fixed 0.3",
        lambda: rbm().sample_conditional(v(fill=0.3), torch.ones(4, dtype=torch.bool)),
        ValueError,
        r"v \(at the entries where mask is True\) .* must be binary",
    ),
    Case(
        "sample_conditional: half a one-hot site",
        lambda: potts().sample_conditional(torch.tensor([[1.0, 0, 0, 1]]), torch.tensor([True, False, True, True])),
        ValueError,
        r"mask must fix or free whole sites",
    ),
    Case(
        "free_energy: deep stack too large",
        lambda: BoltzmannMachine([BernoulliLayer(3), BernoulliLayer(3), BernoulliLayer(30)]).free_energy(
            torch.zeros(1, 3)
        ),
        ValueError,
        r"enumerates 1\.07e\+09 states",
    ),
]

DATA = [
    Case(
        "binarize(nan)",
        lambda: load("digits").binarize(math.nan),
        ValueError,
        r"threshold must be a finite number, got nan",
    ),
    Case(
        "binarize(2.0)",
        lambda: load("digits").binarize(2.0),
        ValueError,
        r"threshold=2 lies outside the data's range \[0, 1\]: every entry would become 0",
    ),
    Case(
        "binarize(-1)",
        lambda: load("digits").binarize(-1),
        ValueError,
        r"threshold=-1 lies outside .* every entry would become 1",
    ),
    Case("binarize('a')", lambda: load("digits").binarize("a"), TypeError, r"threshold must be a number"),
    Case(
        "threshold(x with NaN)",
        lambda: transforms.threshold(torch.tensor([0.2, math.nan])),
        ValueError,
        r"x must be finite",
    ),
    Case(
        "threshold(t=inf)",
        lambda: transforms.threshold(torch.tensor([0.2, 0.7]), math.inf),
        ValueError,
        r"t must be a finite number",
    ),
    Case(
        "stochastic_binarize(x=2)",
        lambda: transforms.stochastic_binarize(torch.tensor([0.5, 2.0])),
        ValueError,
        r"x must be probabilities in \[0, 1\]",
    ),
    Case(
        "stochastic_binarize(generator and seed)",
        lambda: transforms.stochastic_binarize(torch.rand(3), generator=torch.Generator(), seed=0),
        ValueError,
        r"either generator or seed",
    ),
    Case("scale01(NaN)", lambda: transforms.scale01(torch.tensor([math.nan, 1.0])), ValueError, r"x must be finite"),
    Case("standardize(1-D)", lambda: transforms.standardize(torch.zeros(3)), ValueError, r"x must be a 2-D"),
    Case(
        "standardize(0 rows)",
        lambda: transforms.standardize(torch.zeros(0, 3)),
        ValueError,
        r"x must have at least one row",
    ),
    Case(
        "standardize(mean shape)",
        lambda: transforms.standardize(torch.zeros(2, 3), mean=torch.zeros(2), std=torch.ones(3)),
        ValueError,
        r"mean must have shape \(3,\)",
    ),
    Case(
        "standardize(std NaN)",
        lambda: transforms.standardize(torch.zeros(2, 3), mean=torch.zeros(3), std=torch.tensor([1.0, math.nan, 1.0])),
        ValueError,
        r"std must be finite",
    ),
    Case(
        "one_hot(negative)",
        lambda: transforms.one_hot(torch.tensor([[0], [-1]])),
        ValueError,
        r"columns must hold non-negative",
    ),
    Case(
        "one_hot(non-integer)",
        lambda: transforms.one_hot(torch.tensor([[0.5]])),
        ValueError,
        r"columns must hold integer",
    ),
    Case(
        "one_hot(num_categories too small)",
        lambda: transforms.one_hot(torch.tensor([[3]]), 2),
        ValueError,
        r"num_categories\[0\]=2 is too small",
    ),
    Case(
        "one_hot(0 rows, no num_categories)",
        lambda: transforms.one_hot(torch.zeros(0, 2, dtype=torch.int64)),
        ValueError,
        r"num_categories must be given",
    ),
    Case("batches(batch_size=0)", lambda: batches(torch.zeros(4, 2), 0), ValueError, r"batch_size must be >= 1"),
    Case(
        "batches(batch_size=2.5)", lambda: batches(torch.zeros(4, 2), 2.5), TypeError, r"batch_size must be an integer"
    ),
    Case("batches(seed=-1)", lambda: batches(torch.zeros(4, 2), 2, seed=-1), ValueError, r"seed must be >= 0"),
    Case("batches(0-d)", lambda: batches(torch.tensor(1.0), 1), ValueError, r"x must have at least one dimension"),
    Case(
        "batches('abc')", lambda: batches("abc", 1), TypeError, r"x must be a torch.Tensor, numpy array or nested list"
    ),
    Case("Dataset(numpy)", lambda: Dataset(np.zeros((2, 2))), TypeError, r"data must be a torch.Tensor"),
    Case("Dataset(1-D)", lambda: Dataset(torch.zeros(3)), ValueError, r"data must be 2-D"),
    Case(
        "Dataset(int64)",
        lambda: Dataset(torch.zeros(2, 2, dtype=torch.int64)),
        TypeError,
        r"data must have a floating dtype",
    ),
    Case("Dataset(NaN)", lambda: Dataset(torch.tensor([[math.nan, 0.0]])), ValueError, r"data must be finite"),
    Case(
        "Dataset(float labels)",
        lambda: Dataset(torch.zeros(2, 2), labels=torch.zeros(2)),
        TypeError,
        r"labels must be an int64",
    ),
    Case(
        "Dataset(labels shape)",
        lambda: Dataset(torch.zeros(2, 2), labels=torch.zeros(3, dtype=torch.int64)),
        ValueError,
        r"labels must have shape \(2,\)",
    ),
    Case(
        "Dataset(image_shape)",
        lambda: Dataset(torch.zeros(2, 4), image_shape=(3, 3)),
        ValueError,
        r"image_shape \(3, 3\) has 9 pixels",
    ),
    Case("Dataset(name=5)", lambda: Dataset(torch.zeros(2, 2), name=5), TypeError, r"name must be a str"),
    Case("split(1.5)", lambda: load("digits").split(1.5), ValueError, r"fraction must be in \(0, 1\)"),
    Case("split(True)", lambda: load("digits").split(True), TypeError, r"fraction must be a number"),
    Case(
        "split leaves a part empty",
        lambda: load("digits")[:3].split(0.01),
        ValueError,
        r"fraction=0\.01 of 3 rows leaves one part empty",
    ),
    Case(
        "Dataset.to(int64)", lambda: load("digits").to(dtype=torch.int64), TypeError, r"dtype must be a floating dtype"
    ),
    Case(
        "as_dataset(labels 0.5)",
        lambda: as_dataset(np.zeros((2, 2)), labels=[0.5, 1]),
        ValueError,
        r"labels must be integers",
    ),
    Case("as_dataset(3-D)", lambda: as_dataset(np.zeros((2, 2, 2))), ValueError, r"x must be 2-D"),
    Case("load('nope')", lambda: load("nope"), ValueError, r"unknown dataset name 'nope'"),
]

EVALUATE = [
    Case(
        "raise_log_likelihood: 0 test rows",
        lambda: raise_log_likelihood(rbm(), torch.zeros(0, 4), progress=False),
        ValueError,
        r"test must have at least 1 row, got 0",
    ),
    Case(
        "estimate_log_likelihood: 0 test rows",
        lambda: estimate_log_likelihood(rbm(), torch.zeros(0, 4), progress=False),
        ValueError,
        r"test must have at least 1 row, got 0",
    ),
    Case(
        "log_likelihood_bracket: 0 rows",
        lambda: log_likelihood_bracket(rbm(), torch.zeros(0, 4)),
        ValueError,
        r"data must have at least 1 row, got 0",
    ),
    Case(
        "reconstruction_error: 0 rows",
        lambda: reconstruction_error(rbm(), torch.zeros(0, 4)),
        ValueError,
        r"v must have at least 1 row, got 0",
    ),
    Case(
        "pseudo_likelihood: 0 rows",
        lambda: pseudo_likelihood(rbm(), torch.zeros(0, 4)),
        ValueError,
        r"v must have at least 1 row, got 0",
    ),
    Case(
        "mean_free_energy: 0 rows",
        lambda: mean_free_energy(rbm(), torch.zeros(0, 4)),
        ValueError,
        r"v must have at least 1 row, got 0",
    ),
    Case(
        "free_energy_gap: valid 0 rows",
        lambda: free_energy_gap(rbm(), v(), torch.zeros(0, 4)),
        ValueError,
        r"valid must have at least 1 row, got 0",
    ),
    Case(
        "free_energy_gap: train 0 rows",
        lambda: free_energy_gap(rbm(), torch.zeros(0, 4), v()),
        ValueError,
        r"train must have at least 1 row, got 0",
    ),
    Case(
        "log_likelihood metric: 0 rows",
        lambda: mean_log_likelihood(rbm(), torch.zeros(0, 4)),
        ValueError,
        r"data must have at least 1 row, got 0",
    ),
    Case(
        "energy_distance metric: 1 row",
        lambda: model_energy_distance(rbm(), v(1)),
        ValueError,
        r"data must have at least 2 rows, got 1",
    ),
    Case(
        "knn_kl metric: 0 rows",
        lambda: model_knn_kl(rbm(), torch.zeros(0, 4)),
        ValueError,
        r"data must have at least 2 rows, got 0",
    ),
    Case(
        "frechet metric: 0 rows",
        lambda: model_frechet_distance(rbm(), torch.zeros(0, 4)),
        ValueError,
        r"data must have at least 2 rows, got 0",
    ),
    Case(
        "energy_distance metric: max_rows=1",
        lambda: model_energy_distance(rbm(), v(4), max_rows=1),
        ValueError,
        r"max_rows must be an integer >= 2",
    ),
    Case(
        "registry metrics: 0 rows",
        lambda: [
            get_metric(n)(rbm(), torch.zeros(0, 4))
            for n in (
                "reconstruction_error",
                "pseudo_likelihood",
                "pseudo_likelihood_per_unit",
                "free_energy",
                "log_likelihood",
            )
        ],
        ValueError,
        r"at least 1 row, got 0",
    ),
    Case(
        "energy_distance: widths",
        lambda: energy_distance(torch.zeros(3, 2), torch.zeros(3, 3)),
        ValueError,
        r"x and y must have the same number of columns",
    ),
    Case(
        "knn_kl: k=0", lambda: knn_kl(torch.rand(5, 2), torch.rand(5, 2), k=0), ValueError, r"k must be an integer >= 1"
    ),
    Case(
        "knn_kl: k too large",
        lambda: knn_kl(torch.rand(5, 2), torch.rand(5, 2), k=5),
        ValueError,
        r"k must be below the number of rows of x",
    ),
    Case(
        "heat_capacity: beta=0",
        lambda: heat_capacity(torch.rand(5), beta=0),
        ValueError,
        r"beta must be a positive finite number",
    ),
    Case(
        "heat_capacity: beta=True",
        lambda: heat_capacity(torch.rand(5), beta=True),
        ValueError,
        r"beta must be a positive finite number",
    ),
    Case(
        "heat_capacity: one value",
        lambda: heat_capacity(torch.rand(1)),
        ValueError,
        r"energies must hold at least 2 values",
    ),
    Case(
        "heat_capacity: NaN energy",
        lambda: heat_capacity(torch.tensor([1.0, math.nan])),
        ValueError,
        r"energies must be finite",
    ),
    Case(
        "model_heat_capacity: rows=1",
        lambda: model_heat_capacity(rbm(), rows=1),
        ValueError,
        r"rows must be an integer >= 2",
    ),
    Case(
        "weight_sparsity: tol=1.5",
        lambda: weight_sparsity(rbm(), tol=1.5),
        ValueError,
        r"tol must be a number in \[0, 1\)",
    ),
    Case(
        "exact.log_partition: max_configurations=0",
        lambda: exact.log_partition(rbm(), max_configurations=0),
        ValueError,
        r"max_configurations must be an integer >= 1",
    ),
    Case(
        "exact.log_partition: too many",
        lambda: exact.log_partition(BoltzmannMachine([BernoulliLayer(30), BernoulliLayer(30)])),
        ValueError,
        r"would enumerate .* max_configurations",
    ),
    Case(
        "exact.log_likelihood: log_z=nan",
        lambda: exact.log_likelihood(rbm(), v(), log_z=math.nan),
        ValueError,
        r"log_z must be a finite number",
    ),
    Case("get_metric('nope')", lambda: get_metric("nope"), ValueError, r"unknown metric 'nope'"),
    Case("get_metric(5)", lambda: get_metric(5), TypeError, r"name must be a metric name"),
    Case(
        "pseudo_likelihood: Gaussian visible",
        lambda: pseudo_likelihood(grbm(), torch.zeros(2, 4)),
        ValueError,
        r"pseudo_likelihood needs a discrete visible layer",
    ),
    Case(
        "metric on a non-model",
        lambda: reconstruction_error("model", v()),
        TypeError,
        r"model must be an ebmlab BoltzmannMachine",
    ),
]

TRAIN = [
    Case(
        "Trainer: progress is not a bool",
        lambda: trainer(progress="no"),
        TypeError,
        r"progress must be True or False, got 'no'",
    ),
    Case("Trainer(model='x')", lambda: Trainer("x", CD()), TypeError, r"model must be an ebmlab BoltzmannMachine"),
    Case("Trainer(method='pcd')", lambda: Trainer(rbm(), "pcd"), TypeError, r"method must be an ebmlab.train Method"),
    Case("Trainer(lr=0)", lambda: trainer(lr=0.0), ValueError, r"lr must be a positive finite number"),
    Case("Trainer(lr=nan)", lambda: trainer(lr=math.nan), ValueError, r"lr must be a positive finite number"),
    Case("Trainer(lr=True)", lambda: trainer(lr=True), ValueError, r"lr must be a positive finite number"),
    Case("Trainer(batch_size=0)", lambda: trainer(batch_size=0), ValueError, r"batch_size must be an integer >= 1"),
    Case("Trainer(seed=-1)", lambda: trainer(seed=-1), ValueError, r"seed must be an integer >= 0"),
    Case(
        "Trainer(validation_rows=0)",
        lambda: trainer(validation_rows=0),
        ValueError,
        r"validation_rows must be an integer >= 1",
    ),
    Case(
        "Trainer(optimizer='adam')",
        lambda: trainer(optimizer="adam"),
        TypeError,
        r"optimizer must be a torch.optim.Optimizer",
    ),
    Case(
        "Trainer(optimizer factory -> 3)",
        lambda: trainer(optimizer=lambda params: 3),
        TypeError,
        r"optimizer factory must return a torch.optim.Optimizer",
    ),
    Case(
        "Trainer(optimizer of other params)",
        lambda: trainer(optimizer=torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)),
        ValueError,
        r"optimizer does not optimize any parameter of model",
    ),
    Case(
        "Trainer(scheduler=ReduceLROnPlateau)",
        lambda: trainer(scheduler=lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(o)),
        TypeError,
        r"scheduler: ReduceLROnPlateau needs a metric",
    ),
    Case(
        "Trainer(scheduler='x')",
        lambda: trainer(scheduler="x"),
        TypeError,
        r"scheduler must be a torch.optim.lr_scheduler",
    ),
    Case(
        "Trainer(penalties: no match)",
        lambda: trainer(penalties={"nothing.*": L2(1e-3)}),
        ValueError,
        r"penalties: pattern 'nothing\.\*' matches no parameter",
    ),
    Case(
        "Trainer(penalties: not a Penalty)",
        lambda: trainer(penalties={"weights.*": 0.1}),
        TypeError,
        r"penalties\['weights\.\*'\] must be a Penalty",
    ),
    Case("Trainer(penalties='x')", lambda: trainer(penalties="x"), TypeError, r"penalties must be a dict"),
    Case(
        "Trainer(constraints: not a Constraint)",
        lambda: trainer(constraints={"weights.0": L2(1.0)}),
        TypeError,
        r"constraints\['weights\.0'\] must be a Constraint",
    ),
    Case("Trainer(metrics: unknown)", lambda: trainer(metrics=["nope"]), ValueError, r"unknown metric 'nope'"),
    Case(
        "Trainer(metrics: not callable)",
        lambda: trainer(metrics={"m": 3}),
        TypeError,
        r"metrics must map names to callables",
    ),
    Case(
        "Trainer(callbacks: not a Callback)",
        lambda: trainer(callbacks=[print]),
        TypeError,
        r"callbacks\[0\] must be an ebmlab.train.Callback",
    ),
    Case(
        "Trainer(max_param_growth=0.5)",
        lambda: trainer(max_param_growth=0.5),
        ValueError,
        r"max_param_growth must be > 1",
    ),
    Case(
        "Trainer(max_param_growth=nan)",
        lambda: trainer(max_param_growth=math.nan),
        ValueError,
        r"max_param_growth must be a finite number",
    ),
    Case(
        "Trainer(max_param_growth='big')",
        lambda: trainer(max_param_growth="big"),
        TypeError,
        r"max_param_growth must be a real number",
    ),
    Case("fit(epochs=0)", lambda: trainer().fit(data(), 0), ValueError, r"epochs must be an integer >= 1"),
    Case(
        "fit: batch larger than data",
        lambda: trainer(batch_size=50).fit(data(), 1),
        ValueError,
        r"batch_size \(50\) is larger than the number of data rows \(20\)",
    ),
    Case(
        "fit: data NaN", lambda: trainer().fit(bad_float(data(), math.nan), 1), ValueError, r"data contains NaN or Inf"
    ),
    Case(
        "fit: data 0.3",
        lambda: trainer().fit(torch.full((20, 4), 0.3), 1),
        ValueError,
        r"data for layer visible .* must be binary",
    ),
    Case(
        "fit: data 0 rows",
        lambda: trainer().fit(torch.zeros(0, 4), 1),
        ValueError,
        r"data must have at least 1 row, got 0",
    ),
    Case(
        "fit: PCD chains too many",
        lambda: trainer(method=PCD(chains=10**12)).fit(data(), 1),
        AllocationError,
        r"^chains: 1000000000000 chains of 7 units would take .* TB",
    ),
    Case(
        "fit: validation 0 rows",
        lambda: trainer().fit(data(), 1, validation=torch.zeros(0, 4)),
        ValueError,
        r"validation must have at least 1 row",
    ),
    Case(
        "fit: validation width",
        lambda: trainer().fit(data(), 1, validation=torch.zeros(3, 5)),
        ValueError,
        r"validation has 5 columns",
    ),
    Case("set_lr(-1)", lambda: trainer().set_lr(-1.0), ValueError, r"lr must be a positive finite number"),
    Case("load_state_dict({})", lambda: trainer().load_state_dict({}), ValueError, r"state is missing \["),
    Case("L1(-1)", lambda: L1(-1.0), ValueError, r"strength must be >= 0"),
    Case("L2(nan)", lambda: L2(math.nan), ValueError, r"strength must be a finite number"),
    Case("L2(True)", lambda: L2(True), ValueError, r"strength must be a finite number"),
    Case("MaxNorm(0)", lambda: MaxNorm(0.0), ValueError, r"max_norm must be > 0"),
    Case("MaxNorm(nan)", lambda: MaxNorm(math.nan), ValueError, r"max_norm must be a positive number"),
    Case(
        "MaxNorm(dim=5) on weights",
        lambda: trainer(constraints={"weights.0": MaxNorm(1.0, dim=5)}),
        ValueError,
        r"MaxNorm for weights\.0: dim 5 is out of range",
    ),
    Case("FixedMask(float mask)", lambda: FixedMask(torch.ones(4, 3)), TypeError, r"mask must be a boolean array"),
    Case(
        "FixedMask(shape) on weights",
        lambda: trainer(constraints={"weights.0": FixedMask(torch.ones(2, 2, dtype=torch.bool))}),
        ValueError,
        r"FixedMask for weights\.0: mask has shape \(2, 2\)",
    ),
    Case("CD(k=0)", lambda: CD(k=0), ValueError, r"k must be an integer >= 1"),
    Case("CD(k=1.5)", lambda: CD(k=1.5), ValueError, r"k must be an integer >= 1"),
    Case("PCD(chains=0)", lambda: PCD(chains=0), ValueError, r"chains must be an integer >= 1"),
    Case("PCD(beta_std=-1)", lambda: PCD(beta_std=-1.0), ValueError, r"beta_std must be a number >= 0"),
    Case("PCD(beta_std=True)", lambda: PCD(beta_std=True), ValueError, r"beta_std must be a number >= 0"),
    Case("PCD(beta_std=nan)", lambda: PCD(beta_std=math.nan), ValueError, r"beta_std must be a number >= 0"),
    Case("TAP(order=4)", lambda: TAP(order=4), ValueError, r"order must be 1, 2 or 3"),
]


MORE = [
    Case("PT(betas=[1, nan])", lambda: PT(betas=[1.0, math.nan]), ValueError, r"betas must list at least 2 positive"),
    Case("PT(betas=[1, inf])", lambda: PT(betas=[1.0, math.inf]), ValueError, r"betas must list at least 2 positive"),
    Case("random_states(-1)", lambda: rbm().random_states(-1), ValueError, r"rows must be an integer >= 0"),
    Case("random_states(2.5)", lambda: rbm().random_states(2.5), ValueError, r"rows must be an integer >= 0"),
    Case(
        "gibbs_step: generator='g'",
        lambda: rbm().gibbs_step(states(), generator="g"),
        TypeError,
        r"generator must be a torch.Generator or None",
    ),
    Case(
        "BernoulliLayer.init_from_data(0 rows)",
        lambda: BernoulliLayer(3).init_from_data(torch.zeros(0, 3)),
        ValueError,
        r"x must have at least 1 row",
    ),
    Case(
        "GaussianLayer.init_from_data(0 rows)",
        lambda: GaussianLayer(3).init_from_data(torch.zeros(0, 3)),
        ValueError,
        r"x must have at least 1 row",
    ),
    Case(
        "OneHotLayer.init_from_data(0 rows)",
        lambda: OneHotLayer(2, 2).init_from_data(torch.zeros(0, 4)),
        ValueError,
        r"x must have at least 1 row",
    ),
    Case("predict: steps=0", lambda: rbm().predict(v(), steps=0), ValueError, r"steps must be an integer >= 1"),
    Case(
        "knn_kl: eps=-1",
        lambda: knn_kl(torch.rand(5, 2), torch.rand(5, 2), eps=-1.0),
        ValueError,
        r"eps must be a positive finite",
    ),
    Case(
        "knn_kl: eps=nan",
        lambda: knn_kl(torch.rand(5, 2), torch.rand(5, 2), eps=math.nan),
        ValueError,
        r"eps must be a positive finite",
    ),
    Case(
        "energy_distance: max_rows=0",
        lambda: energy_distance(torch.rand(3, 2), torch.rand(3, 2), max_rows=0),
        ValueError,
        r"max_rows must be an integer >= 2",
    ),
    Case(
        "energy_distance: max_rows=1",
        lambda: energy_distance(torch.rand(3, 2), torch.rand(3, 2), max_rows=1),
        ValueError,
        r"max_rows must be an integer >= 2",
    ),
    Case(
        "exact.log_likelihood: log_z=True",
        lambda: exact.log_likelihood(rbm(), v(), log_z=True),
        ValueError,
        r"log_z must be a finite number",
    ),
    Case(
        "reconstruction_error: steps=0",
        lambda: reconstruction_error(rbm(), v(), steps=0),
        ValueError,
        r"steps must be an integer >= 1",
    ),
    Case(
        "mean_field_lower_bound: 0 rows",
        lambda: mean_field_lower_bound(rbm(), torch.zeros(0, 4), 0.0),
        ValueError,
        r"v must have at least 1 row",
    ),
    Case(
        "mean_field_lower_bound: tol=nan",
        lambda: mean_field_lower_bound(rbm(), v(), 0.0, tol=math.nan),
        ValueError,
        r"tol must be a finite number",
    ),
    Case("MaxNorm(dim=1.5)", lambda: MaxNorm(1.0, dim=1.5), TypeError, r"dim must be an integer axis"),
    Case("FixedMask('x')", lambda: FixedMask("x"), TypeError, r"mask must be a boolean array"),
    Case("FixedMask([[1, 0]])", lambda: FixedMask([[1, 0]]), TypeError, r"mask must be a boolean array"),
    Case(
        "parse_layers('onehot:2x3x4')",
        lambda: parse_layers("onehot:2x3x4"),
        ValueError,
        r"'onehot:2x3x4': SIZE must be one integer",
    ),
    Case(
        "parse_layers('bernoulli:2x3')",
        lambda: parse_layers("bernoulli:2x3"),
        ValueError,
        r"'bernoulli:2x3': SIZE must be one integer",
    ),
]

CASES = LAYERS + MODEL + INPUTS + DATA + EVALUATE + TRAIN + MORE


def test_the_battery_is_large_enough() -> None:
    assert len(CASES) >= 110
    assert len({c.label for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.label for c in CASES])
def test_bad_input_is_refused_naming_the_argument(case: Case) -> None:
    with pytest.raises(case.error, match=case.match):
        case.call()


class _Unused(Callback):
    """Callbacks are checked by type, not by duck typing: a Callback subclass is accepted."""


def test_accepted_neighbours_of_the_refused_inputs() -> None:
    """The exact behaviour just inside each boundary: these are accepted and give the right values."""
    model = rbm()
    assert BernoulliLayer(np.int64(3)).n == 3 and OneHotLayer(np.int64(2), 3).n == 6
    assert GaussianLayer(2, loc=-1.5, var=2).loc.tolist() == [-1.5, -1.5]
    assert model.free_energy(np.zeros((2, 4))).dtype == torch.float32  # numpy float64 is converted
    assert model.free_energy(torch.zeros(0, 4)).shape == (0,)  # an empty batch has empty free energies
    # the summed-out layer of partial_free_energy is ignored, so any finite placeholder is fine there
    pf = model.partial_free_energy([v(), torch.full((2, 3), 0.3)], parity=1)
    torch.testing.assert_close(pf, model.free_energy(v()))
    # field() takes magnetizations, not only states
    m = model.mean_field(v())
    torch.testing.assert_close(model.field(m, 0), m[1] @ model.weights[0].T)
    # beta as numpy scalar, int, per-row list
    assert len(model.gibbs_step(states(), beta=np.float32(0.5))) == 2
    assert len(model.gibbs_step(states(), beta=[0.5, 2.0])) == 2
    assert model.predict(v(), layer=np.int64(1)).shape == (2, 3)
    assert model.mean_field(v(), tol=0.0, beta=2)[1].shape == (2, 3)
    # threshold at the edge of the data's range, and any threshold of constant data
    x = torch.tensor([[0.0, 0.5, 1.0]])
    assert transforms.threshold(x, 1.0).tolist() == [[0.0, 0.0, 0.0]]
    assert transforms.threshold(x, 0.0).tolist() == [[0.0, 1.0, 1.0]]
    assert transforms.threshold(torch.zeros(2, 2), 0.5).sum() == 0
    assert trainer(max_param_growth=None, callbacks=[_Unused()]).max_param_growth is None
