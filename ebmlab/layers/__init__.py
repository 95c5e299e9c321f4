"""Unit types of a Boltzmann machine; each owns the math of its units (see ``Layer``)."""

from __future__ import annotations

from typing import Any

from .base import Layer
from .bernoulli import BernoulliLayer
from .gaussian import GaussianLayer
from .onehot import OneHotLayer, OneHotSites

LAYER_TYPES: dict[str, type[Layer]] = {
    "bernoulli": BernoulliLayer,
    "gaussian": GaussianLayer,
    "onehot": OneHotLayer,
}


def layer_from_spec(spec: dict[str, Any]) -> Layer:
    """Rebuild a layer from ``Layer.spec()``."""
    kind = spec.get("type")
    if kind not in LAYER_TYPES:
        raise ValueError(f"unknown layer type {kind!r}; expected one of {sorted(LAYER_TYPES)}")
    if kind == "onehot":
        return OneHotLayer(int(spec["sites"]), int(spec["states"]), name=spec.get("name"))
    if kind == "gaussian":
        options = {k: spec[k] for k in ("var_min", "var_max", "learn_var", "log_var_lr_scale") if k in spec}
        return GaussianLayer(int(spec["n"]), name=spec.get("name"), **options)
    return LAYER_TYPES[kind](int(spec["n"]), name=spec.get("name"))


def parse_layers(text: str) -> list[Layer]:
    """Parse ``"bernoulli:64,bernoulli:100"`` (``onehot:SITESxSTATES`` or ``onehot:STATES``)."""
    if not isinstance(text, str):
        raise TypeError(f"layers must be a string such as 'bernoulli:64,bernoulli:100', got {type(text).__name__}")
    layers: list[Layer] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, _, size = part.partition(":")
        kind = kind.lower()
        if kind not in LAYER_TYPES or not size:
            raise ValueError(
                f"layer {part!r} must look like TYPE:SIZE with TYPE in {sorted(LAYER_TYPES)}, "
                f"e.g. bernoulli:100 or onehot:1x10"
            )
        try:
            dims = [int(s) for s in size.lower().split("x")]
        except ValueError as err:
            raise ValueError(f"layer {part!r}: SIZE must be an integer (or SITESxSTATES)") from err
        if len(dims) > (2 if kind == "onehot" else 1):
            raise ValueError(f"layer {part!r}: SIZE must be one integer (onehot: STATES or SITESxSTATES)")
        if kind == "onehot":
            layers.append(OneHotLayer(*dims) if len(dims) == 2 else OneHotLayer(1, dims[0]))
        else:
            layers.append(LAYER_TYPES[kind](dims[0]))
    return layers


__all__ = [
    "LAYER_TYPES",
    "BernoulliLayer",
    "GaussianLayer",
    "Layer",
    "OneHotLayer",
    "OneHotSites",
    "layer_from_spec",
    "parse_layers",
]
