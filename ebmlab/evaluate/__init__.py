"""Judgement: how good is a Boltzmann machine?

Likelihood (exact enumeration, annealed importance sampling forward and reverse, the mean-field
lower bound for deep stacks), pseudo-likelihood, reconstruction error, free-energy gap, sample
quality (energy distance, k-NN KL estimates, Fréchet distance), heat capacity and weight
statistics.

Log Z: ``exact.log_partition(model)`` (enumeration), ``ais.log_partition(model, chains, betas,
data=..., reverse=...)``; ``raise_log_likelihood(model, test, data=...)`` (RAISE: reverse annealing from
each test row, a conservative estimate of log p(v)); ``estimate_log_likelihood(model, test, data)``
combines forward AIS and RAISE into a bracket of the test log-likelihood; ``bar.log_partition(model,
data)`` (BAR on parallel-tempering samples, Krause, Fischer & Igel 2020) is the better log Z (both take
``path="data"``: anneal from the training rows' hidden conditionals, ``data_path``, instead of the
base rates; ``floor.log_z_floor`` is a short forward AIS along it, a lower bound every estimate is checked
against), and
``log_likelihood_bracket(model, test, train)`` the two-sided estimate to trust: ``.lower``
(conservative: by default reverse AIS of ``bdmc.log_partition``, which sandwiches log Z by bidirectional
Monte Carlo along a screened data-centred path; RAISE with ``method="bar"``), ``.upper``,
``.width``, ``.converged``. Every stochastic estimate carries
``.diagnostics`` and a ``.converged`` verdict, printed beside the number, and emits a
``ConvergenceWarning`` when its checks fail (``diagnostics``).

Every metric in the registry is a callable ``(model, data) -> float`` usable as a Trainer
validation metric, looked up by name with ``get_metric(name)``. Estimated metrics return an
``Estimate`` (a float with ``.stderr``): ``"pseudo_likelihood"`` (8 random units per row, unbiased;
``"pseudo_likelihood_exact"`` sums every unit) and the live ``"log_likelihood"`` (a
``LiveLogLikelihood``: log Z exact when enumeration is cheap, else tracked across calls;
``"log_likelihood_exact"`` enumerates on every call). A registry entry that is a
``StatefulMetric`` subclass is a factory: ``get_metric`` returns a fresh instance. The one exception is
``"free_energy_gap"``, which compares two data sets: ``free_energy_gap(model, train, valid)``
(its name is listed in ``PAIRED_METRICS``); the per-set quantity ``"free_energy"`` is a
regular metric, and the gap is the difference of its validation and training values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import ais, bar, bdmc, data_path, exact, floor, raise_, schedules
from ._common import Estimate
from .ais import AISResult, LikelihoodEstimate, estimate_log_likelihood
from .bar import BARResult
from .bounds import mean_field_lower_bound, variational_free_energy
from .bracket import LikelihoodBracket, log_likelihood_bracket
from .diagnostics import ConvergenceWarning, Diagnostics
from .exact import log_likelihood, mean_log_likelihood
from .free_energy_gap import free_energy_gap, mean_free_energy
from .heat_capacity import heat_capacity, model_heat_capacity
from .live import LiveLogLikelihood, StatefulMetric
from .pseudo_likelihood import pseudo_likelihood, pseudo_likelihood_estimate, pseudo_likelihood_rows
from .raise_ import RAISEResult, raise_log_likelihood
from .reconstruction import reconstruction_error
from .sample_metrics import (
    energy_distance,
    fantasy_particles,
    frechet_distance,
    knn_kl,
    knn_reverse_kl,
    model_energy_distance,
    model_frechet_distance,
    model_knn_kl,
    model_knn_reverse_kl,
)
from .weights import weight_norm, weight_sparsity

Metric = Callable[..., float]


def _pseudo_likelihood_per_unit(model: Any, data: Any) -> float:
    """Average log p(v_i | v_{−i}) per visible unit (or one-hot site)."""
    return pseudo_likelihood(model, data, per_unit=True)


METRICS: dict[str, Metric | type[StatefulMetric]] = {
    "reconstruction_error": reconstruction_error,
    "pseudo_likelihood": pseudo_likelihood_estimate,
    "pseudo_likelihood_exact": pseudo_likelihood,
    "pseudo_likelihood_per_unit": _pseudo_likelihood_per_unit,
    "free_energy": mean_free_energy,
    "free_energy_gap": free_energy_gap,
    "log_likelihood": LiveLogLikelihood,
    "log_likelihood_exact": mean_log_likelihood,
    "weight_norm": weight_norm,
    "weight_sparsity": weight_sparsity,
    "energy_distance": model_energy_distance,
    "knn_kl": model_knn_kl,
    "knn_reverse_kl": model_knn_reverse_kl,
    "frechet_distance": model_frechet_distance,
    "heat_capacity": model_heat_capacity,
}

PAIRED_METRICS = frozenset({"free_energy_gap"})


def get_metric(name: str) -> Metric:
    """The metric registered under ``name``: ``(model, data) -> float``.

    ``"free_energy_gap"`` (see ``PAIRED_METRICS``) takes ``(model, train, valid)`` instead. A
    stateful entry (``"log_likelihood"``) is built afresh on each call, with its default settings.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a metric name (str), got {type(name).__name__}")
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; available: {', '.join(sorted(METRICS))}")
    entry = METRICS[name]
    if isinstance(entry, type) and issubclass(entry, StatefulMetric):
        return entry()
    return entry


def list_metrics() -> list[str]:
    """Names accepted by ``get_metric``."""
    return sorted(METRICS)


__all__ = [
    "METRICS",
    "PAIRED_METRICS",
    "AISResult",
    "BARResult",
    "ConvergenceWarning",
    "Diagnostics",
    "Estimate",
    "LikelihoodBracket",
    "LikelihoodEstimate",
    "LiveLogLikelihood",
    "RAISEResult",
    "StatefulMetric",
    "ais",
    "bar",
    "bdmc",
    "data_path",
    "energy_distance",
    "estimate_log_likelihood",
    "exact",
    "fantasy_particles",
    "floor",
    "frechet_distance",
    "free_energy_gap",
    "get_metric",
    "heat_capacity",
    "knn_kl",
    "knn_reverse_kl",
    "list_metrics",
    "log_likelihood",
    "log_likelihood_bracket",
    "mean_field_lower_bound",
    "mean_free_energy",
    "mean_log_likelihood",
    "model_energy_distance",
    "model_frechet_distance",
    "model_heat_capacity",
    "model_knn_kl",
    "model_knn_reverse_kl",
    "pseudo_likelihood",
    "pseudo_likelihood_estimate",
    "pseudo_likelihood_rows",
    "raise_",
    "raise_log_likelihood",
    "reconstruction_error",
    "schedules",
    "variational_free_energy",
    "weight_norm",
    "weight_sparsity",
]
