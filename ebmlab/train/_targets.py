"""Resolve parameter-name patterns ("weights.0", "weights.*", "layers.1.bias") against a model."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from torch import nn

T = TypeVar("T")


def resolve(model: nn.Module, spec: Any, kind: type[T], what: str) -> list[tuple[str, nn.Parameter, T]]:
    """Expand ``{pattern: item}`` or ``[(pattern, item), …]`` into (name, parameter, item) triples.

    A pattern is a parameter name from ``model.named_parameters()`` or an fnmatch glob of names.
    A pattern that matches nothing, or an item that is not a ``kind``, raises naming ``what``.
    """
    if spec is None:
        return []
    if isinstance(spec, Mapping):
        pairs = list(spec.items())
    elif isinstance(spec, Sequence) and not isinstance(spec, (str, bytes)):
        pairs = list(spec)
    else:
        raise TypeError(f"{what} must be a dict {{name pattern: item}} or a list of (name pattern, item) pairs")
    params = dict(model.named_parameters())
    out = []
    for entry in pairs:
        if not (isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], str)):
            raise TypeError(f"{what} entries must be (name pattern, {kind.__name__}) pairs, got {entry!r}")
        pattern, item = entry
        if not isinstance(item, kind):
            raise TypeError(f"{what}[{pattern!r}] must be a {kind.__name__}, got {type(item).__name__}")
        names = [n for n in params if fnmatch.fnmatchcase(n, pattern)]
        if not names:
            raise ValueError(f"{what}: pattern {pattern!r} matches no parameter; the model has {sorted(params)}")
        out.extend((n, params[n], item) for n in names)
    return out
