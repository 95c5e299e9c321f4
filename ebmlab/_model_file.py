"""Validation of model descriptions (``BoltzmannMachine.spec()``) and of the tensors stored with them.

A model file is trusted only after its description is well formed (a format tag, a list of at least
two layers of known types with positive integer sizes, a floating dtype) and every stored tensor
has the name, shape and dtype the description implies and holds only finite numbers. Each error
names ``where`` (the file, or ``spec``) and the offending entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from .layers import LAYER_TYPES


def _positive_int(value: Any, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{where} must be a positive integer, got {value!r} ({type(value).__name__})")
    if value < 1:
        raise ValueError(f"{where} must be a positive integer, got {value}")


def check_spec(spec: Any, where: str, fmt: str, version: int) -> torch.dtype:
    """Raise ``ValueError`` unless ``spec`` describes a model of format ``fmt``/``version``; returns its dtype."""
    if not isinstance(spec, Mapping) or spec.get("format") != fmt:
        raise ValueError(f"{where} is not an ebmlab model description (expected a dict with format {fmt!r})")
    if spec.get("version") != version:
        raise ValueError(f"{where}: model format version {spec.get('version')!r} is not supported (expected {version})")
    layers = spec.get("layers")
    if not isinstance(layers, list):
        raise ValueError(f"{where}: 'layers' must be a list of layer descriptions, got {type(layers).__name__}")
    if len(layers) < 2:
        raise ValueError(f"{where}: 'layers' must describe at least 2 layers, got {len(layers)}")
    for i, layer in enumerate(layers):
        at = f"{where}: layers[{i}]"
        if not isinstance(layer, Mapping):
            raise ValueError(f"{at} must be a dict with 'type' and a size, got {type(layer).__name__}")
        kind = layer.get("type")
        if kind not in LAYER_TYPES:
            raise ValueError(f"{at} has unknown layer type {kind!r}; expected one of {sorted(LAYER_TYPES)}")
        for key in ("sites", "states") if kind == "onehot" else ("n",):
            if key not in layer:
                raise ValueError(f"{at} ({kind}) is missing its size {key!r}")
            _positive_int(layer[key], f"{at}.{key}")
        name = layer.get("name")
        if name is not None and not isinstance(name, str):
            raise ValueError(f"{at}.name must be a string, got {type(name).__name__}")
    dtype_name = spec.get("dtype", "float32")
    dtype = getattr(torch, dtype_name, None) if isinstance(dtype_name, str) else None
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"{where} names an unknown dtype {dtype_name!r}; expected float16, float32, float64 …")
    return dtype


def check_tensors(tensors: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], where: str) -> None:
    """Raise ``ValueError`` unless ``tensors`` match ``expected`` (a model's state_dict) in names, shapes and dtypes
    and hold only finite values."""
    if set(tensors) != set(expected):
        missing, extra = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
        raise ValueError(
            f"{where} does not match its description: tensors missing {missing}, unexpected {extra} "
            f"(the model needs {sorted(expected)})"
        )
    for k in sorted(tensors):
        t, e = tensors[k], expected[k]
        if t.shape != e.shape:
            raise ValueError(f"{where}: tensor {k} has shape {tuple(t.shape)}, expected {tuple(e.shape)}")
        if t.dtype != e.dtype:
            raise ValueError(
                f"{where}: tensor {k} is {str(t.dtype).removeprefix('torch.')} but the description says "
                f"{str(e.dtype).removeprefix('torch.')}"
            )
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{where}: tensor {k} holds NaN or Inf values")
