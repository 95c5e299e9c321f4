"""How views label a recorded metric: its family (one y-axis per family), axis title with unit, and group.

Metrics of one *family* share a panel and a y-axis: a training value ``X`` and its validation value
``val_X`` are drawn together (validation dashed). Families belong to one of two groups, shown in
this order:

- ``QUALITY``, what the model learned: log-likelihood first, then pseudo-likelihood,
  reconstruction error, free-energy gap, sample-quality metrics, then metrics the catalogue does
  not know (titled by their name);
- ``BOOKKEEPING``, how the training ran, drawn smaller: the surrogate loss (⟨F⟩_data − ⟨F⟩_model,
  whose gradient is the update; it is not a likelihood and may swing widely while training is
  healthy), learning rate (log axis), wall time, throughput, parallel-tempering swap rates.

A metric ``X_stderr`` is the standard error of ``X``: views draw it as ±1 standard-error bars on
``X`` and never give it a panel of its own while ``X`` is recorded. Metric values may be NaN on
epochs where a metric was not computed; views leave those epochs out of the line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from . import schema

QUALITY = "quality"
BOOKKEEPING = "bookkeeping"
GROUP_TITLES = {
    QUALITY: "Quality: what the model learned",
    BOOKKEEPING: "Bookkeeping: how the training ran",
}
STDERR_SUFFIX = "_stderr"
VALIDATION_PREFIX = "val_"


@dataclass(frozen=True)
class Family:
    """A y-axis: ``key`` identifies it, ``name`` and ``unit`` title it, ``log`` asks for a log axis."""

    key: str
    name: str
    unit: str
    group: str
    log: bool = False

    @property
    def title(self) -> str:
        """``name (unit)``: the axis title."""
        return f"{self.name} ({self.unit})"


_KNOWN: list[tuple[str, Family]] = [
    (
        r"(ais_|raise_|test_)?log_likelihood(_lower|_upper)?",
        Family("log_likelihood", "log-likelihood", "nats/sample", QUALITY),
    ),
    (r"pseudo_likelihood", Family("pseudo_likelihood", "pseudo-likelihood", "nats/sample", QUALITY)),
    (r"pseudo_likelihood_per_unit", Family("pseudo_likelihood_per_unit", "pseudo-likelihood", "nats/unit", QUALITY)),
    (
        r"reconstruction_error",
        Family("reconstruction_error", "reconstruction error", "squared error/unit", QUALITY),
    ),
    (r"free_energy_gap", Family("free_energy_gap", "free-energy gap F(valid) − F(train)", "nats", QUALITY)),
    (r"free_energy", Family("free_energy", "mean free energy", "nats/sample", QUALITY)),
    (r"energy_distance", Family("energy_distance", "energy distance to data", "data units", QUALITY)),
    (r"knn_(reverse_)?kl", Family("knn_kl", "k-NN KL divergence", "nats", QUALITY)),
    (r"frechet_distance", Family("frechet_distance", "Fréchet distance to data", "squared data units", QUALITY)),
    (r"heat_capacity", Family("heat_capacity", "heat capacity", "nats²", QUALITY)),
    (r"loss", Family("loss", "surrogate loss, not a likelihood", "nats/sample", BOOKKEEPING)),
    (r"lr", Family("lr", "learning rate", "step size, log axis", BOOKKEEPING, log=True)),
    (r".*_seconds", Family("seconds", "time per epoch", "s", BOOKKEEPING)),
    (r".*per_second", Family("per_second", "throughput", "samples/s", BOOKKEEPING)),
    (r"swap_rate(_\d+)?", Family("swap_rate", "PT swap acceptance rate", "fraction", BOOKKEEPING)),
    (r"beta_(min|mean)", Family("beta", "inverse temperature β", "dimensionless", BOOKKEEPING)),
    (r"tap_log_z", Family("tap_log_z", "TAP estimate of log Z", "nats", BOOKKEEPING)),
    (r"tap_sweeps", Family("tap_sweeps", "TAP fixed-point sweeps", "count", BOOKKEEPING)),
    (r"weight_norm", Family("weight_norm", "weight norm ‖W‖", "weight units", BOOKKEEPING)),
    (r"weight_sparsity", Family("weight_sparsity", "weight sparsity", "fraction", BOOKKEEPING)),
]
_ORDER = {family.key: i for i, (_, family) in enumerate(_KNOWN)}


def family(name: str) -> Family:
    """The family of metric ``name`` (``val_``, ``_stderr`` ignored); an unknown name is a quality family of its own."""
    base = base_name(name)
    for pattern, fam in _KNOWN:
        if re.fullmatch(pattern, base):
            return fam
    return Family(base, base.replace("_", " "), "as recorded", QUALITY)


def base_name(name: str) -> str:
    """``val_X_stderr`` → ``X``."""
    return name.removeprefix(VALIDATION_PREFIX).removesuffix(STDERR_SUFFIX)


def is_validation(name: str) -> bool:
    return name.startswith(VALIDATION_PREFIX)


def trace_label(name: str) -> str:
    """A metric's name inside its panel: ``train`` / ``validation`` for a quality X / val_X, else its name."""
    base = name.removeprefix(VALIDATION_PREFIX)
    fam = family(name)
    if base == fam.key and fam.group == QUALITY:
        return "validation" if is_validation(name) else "train"
    return ("validation " if is_validation(name) else "") + base.replace("_", " ")


@dataclass
class Panel:
    """One y-axis: its family and the metrics drawn on it, each with the name of its standard error or None."""

    family: Family
    metrics: list[tuple[str, str | None]] = field(default_factory=list)


def panels(names: Iterable[str]) -> dict[str, list[Panel]]:
    """``{QUALITY: [...], BOOKKEEPING: [...]}``: the panels for these metric names, in display order.

    Known families come in catalogue order (log-likelihood first), unknown ones after them by name.
    ``X_stderr`` rides on ``X`` when ``X`` is among ``names``.
    """
    names = list(dict.fromkeys(names))
    present = set(names)
    found: dict[str, Panel] = {}
    for name in names:
        if name.endswith(STDERR_SUFFIX) and name.removesuffix(STDERR_SUFFIX) in present:
            continue
        fam = family(name)
        stderr = name + STDERR_SUFFIX
        found.setdefault(fam.key, Panel(fam)).metrics.append((name, stderr if stderr in present else None))
    for panel in found.values():
        panel.metrics.sort(key=lambda m: (is_validation(m[0]), m[0] != panel.family.key, m[0]))
    ordered = sorted(
        found.values(), key=lambda p: (p.family.key not in _ORDER, _ORDER.get(p.family.key, 0), p.family.key)
    )
    return {group: [p for p in ordered if p.family.group == group] for group in (QUALITY, BOOKKEEPING)}


def final_value(values: Sequence[float]) -> tuple[int, float] | None:
    """(index, value) of the last finite entry of a series, or None when it has none."""
    for i in range(len(values) - 1, -1, -1):
        v = float(values[i])
        if v == v and abs(v) != float("inf"):
            return i, v
    return None


def format_with_stderr(series: Mapping[str, Sequence[float]], name: str, digits: int = 4) -> str:
    """The last finite value of ``series[name]``, as ``X ± se`` when ``name_stderr`` holds that epoch's error."""
    last = final_value(series.get(name, ()))
    if last is None:
        return "–"
    i, value = last
    text = f"{value:.{digits}g}"
    se = series.get(name + STDERR_SUFFIX)
    if se is not None and i < len(se):
        s = float(se[i])
        if s == s and abs(s) != float("inf"):
            text += f" ± {s:.2g}"
    return text


# -- particles --------------------------------------------------------------------------------
FANTASY_NOTE = "samples of the model alone: Gibbs chains run from the model, independent of the training data"
PARTICLE_NOTES = {
    schema.FANTASY_KIND: FANTASY_NOTE,
    "reconstructions": (
        "CD's negative phase: Gibbs sweeps started at the training batch; they look like data because "
        "they start there, not because the model generates such samples"
    ),
    "persistent chains": "the method's persistent Gibbs chains (its negative phase)",
    "persistent chains (β = 1 replica)": "the β = 1 replicas of parallel tempering (its negative phase)",
    "TAP magnetizations": "TAP mean-field magnetizations, not samples (the method's negative phase)",
}


def particle_note(kind: str) -> str:
    """What particles of this ``kind`` (``ebmlab.history.schema.KIND``) are; empty for an unknown kind."""
    return PARTICLE_NOTES.get(kind, "")


def particles_caption(kind: str) -> str:
    """``kind: what they are``, the caption of a grid of particles of that kind."""
    note = particle_note(kind)
    return f"{kind}: {note}" if note else kind


def headline(series: Mapping[str, Sequence[float]]) -> tuple[str, str] | None:
    """(name, ``X ± se``) of the first quality metric in display order with a finite value, e.g. for a status line."""
    for panel in panels(series)[QUALITY]:
        for name, _ in panel.metrics:
            if final_value(series[name]) is not None:
                return name.replace("_", " "), format_with_stderr(series, name)
    return None
