"""Checkpoints: a trainer's full state in one safetensors file, written atomically; never pickled.

The state (``Trainer.state_dict()``: model, optimizer, scheduler, method state such as persistent
chains, RNG states, epoch, history) is a tree of dicts, lists, tuples, numbers, strings and
tensors. Its tensors go into the safetensors file; the rest of the tree, with a reference in
place of each tensor, goes into the file's metadata as JSON (``ebmlab_checkpoint``). Writing goes
to a temp file in the same directory, is flushed to disk, then ``os.replace``-d over the target,
so a checkpoint on disk is always complete.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._safetensors_io import read_safetensors, write_safetensors
from ..train.state import Callback

FORMAT = "ebmlab.checkpoint"
FORMAT_VERSION = 1
KEY = "ebmlab_checkpoint"

# -- the tree codec ----------------------------------------------------------------------------


def _encode(x: Any, tensors: dict[str, torch.Tensor], where: str) -> Any:
    if isinstance(x, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = x.detach().cpu().clone().contiguous()
        return {"__tensor__": key}
    if isinstance(x, np.ndarray):
        key = f"t{len(tensors)}"
        tensors[key] = torch.from_numpy(np.ascontiguousarray(x)).clone()
        return {"__ndarray__": key}
    if isinstance(x, Mapping):
        for k in x:
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                raise TypeError(f"checkpoint state: key {k!r} at {where} must be a str or an int")
        return {"__dict__": [[k, _encode(v, tensors, f"{where}.{k}")] for k, v in x.items()]}
    if isinstance(x, tuple):
        return {"__tuple__": [_encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(x)]}
    if isinstance(x, list):
        return [_encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(x)]
    if isinstance(x, np.generic):
        return x.item()
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    raise TypeError(
        f"checkpoint state: {where} is a {type(x).__name__}; only tensors, arrays, dicts, lists, tuples, "
        "numbers, strings and None can be saved"
    )


def _decode(x: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    if isinstance(x, list):
        return [_decode(v, tensors) for v in x]
    if isinstance(x, dict):
        if "__tensor__" in x:
            return tensors[x["__tensor__"]]
        if "__ndarray__" in x:
            return tensors[x["__ndarray__"]].numpy()
        if "__tuple__" in x:
            return tuple(_decode(v, tensors) for v in x["__tuple__"])
        return {k: _decode(v, tensors) for k, v in x["__dict__"]}
    return x


# -- files -------------------------------------------------------------------------------------


def save_checkpoint(path: str | os.PathLike, state: Mapping[str, Any], info: Mapping[str, Any] | None = None) -> Path:
    """Write ``state`` (a tree of tensors and plain values) to ``path`` atomically.

    ``info`` (JSON-able; ``describe(trainer)``) records what the state belongs to, so that ``resume``
    can refuse a checkpoint of another model, method or optimizer by name.
    """
    if not isinstance(state, Mapping):
        raise TypeError(f"state must be a dict (a trainer's state_dict), got {type(state).__name__}")
    tensors: dict[str, torch.Tensor] = {}
    tree = _encode(state, tensors, "state")
    doc = {"format": FORMAT, "version": FORMAT_VERSION, "state": tree}
    if info is not None:
        doc["info"] = dict(info)
    return write_safetensors(path, tensors, {KEY: json.dumps(doc)})


def _read(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(state, info or None) of the checkpoint at ``path``, with its structure validated."""
    tensors, meta = read_safetensors(path, "checkpoint")
    if KEY not in meta:
        raise ValueError(f"{path} is a safetensors file but not an ebmlab checkpoint (no {KEY} metadata)")
    try:
        doc = json.loads(meta[KEY])
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: the checkpoint's description is not valid JSON ({err})") from err
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != FORMAT_VERSION:
        got = (doc.get("format"), doc.get("version")) if isinstance(doc, dict) else (type(doc).__name__, None)
        raise ValueError(f"{path}: unsupported checkpoint format {got[0]!r} v{got[1]}")
    try:
        state = _decode(doc["state"], tensors)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ValueError(f"{path}: the checkpoint's description does not match its tensors ({err!r})") from err
    if not isinstance(state, dict):
        raise ValueError(f"{path}: the checkpoint holds a {type(state).__name__}, not a trainer state")
    for key in ("epoch", "step"):
        value = state.get(key)
        if key in state and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ValueError(f"{path}: the checkpoint's {key} must be a non-negative integer, got {value!r}")
    info = doc.get("info")
    return state, info if isinstance(info, dict) else None


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a state written by ``save_checkpoint`` (tensors on the CPU).

    Raises ``FileNotFoundError`` or a ``ValueError`` naming ``path`` for a damaged file (broken JSON,
    tensors that do not match their checksum or description, a negative epoch or step).
    """
    return _read(path)[0]


def describe(trainer: Any) -> dict[str, Any]:
    """What a trainer state belongs to: the model spec, the method's settings, optimizer and scheduler classes."""
    scheduler = getattr(trainer, "scheduler", None)
    return {
        "spec": trainer.model.spec(),
        "method": trainer.method.config(),
        "optimizer": type(trainer.optimizer).__name__,
        "scheduler": None if scheduler is None else type(scheduler).__name__,
    }


def _layers_text(spec: Mapping[str, Any]) -> str:
    def one(layer: Mapping[str, Any]) -> str:
        size = f"{layer.get('sites')}x{layer.get('states')}" if layer.get("type") == "onehot" else layer.get("n")
        return f"{layer.get('type')}:{size}"

    return ",".join(one(layer) for layer in spec.get("layers", []))


def _check_matches(
    path: str | os.PathLike, state: Mapping[str, Any], info: Mapping[str, Any] | None, trainer: Any
) -> None:
    """Raise ``ValueError`` naming ``path`` and what differs when the checkpoint does not fit ``trainer``."""
    if info is not None:
        mine = describe(trainer)
        theirs_layers, my_layers = _layers_text(info.get("spec") or {}), _layers_text(mine["spec"])
        if theirs_layers != my_layers:
            raise ValueError(
                f"{path} holds a model with layers {theirs_layers}, but the trainer's model has {my_layers}"
            )
        if (info.get("spec") or {}).get("dtype") != mine["spec"]["dtype"]:
            raise ValueError(
                f"{path} holds a {info['spec'].get('dtype')} model, but the trainer's model is {mine['spec']['dtype']}"
            )
        theirs_method, my_method = (info.get("method") or {}).get("name"), mine["method"]["name"]
        if theirs_method != my_method:
            raise ValueError(f"{path} was written by method {theirs_method!r}, but the trainer uses {my_method!r}")
        for key in ("optimizer", "scheduler"):
            if info.get(key) != mine[key]:
                raise ValueError(f"{path} was written with {key} {info.get(key)!r}, but the trainer has {mine[key]!r}")
    expected = trainer.model.state_dict()
    model = state.get("model")
    if isinstance(model, Mapping):
        if set(model) != set(expected):
            raise ValueError(
                f"{path} holds model tensors {sorted(model)}, but the trainer's model has {sorted(expected)}"
            )
        for k, t in model.items():
            if not isinstance(t, torch.Tensor) or t.shape != expected[k].shape:
                shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                raise ValueError(
                    f"{path}: model tensor {k} is {shape}, the trainer's model has {tuple(expected[k].shape)}"
                )
    optimizer = state.get("optimizer")
    if isinstance(optimizer, Mapping) and optimizer.get("param_groups"):
        theirs = set(optimizer["param_groups"][0]) - {"params"}
        mine_keys = set(trainer.optimizer.state_dict()["param_groups"][0]) - {"params"}
        if theirs != mine_keys:
            raise ValueError(
                f"{path} holds the state of another kind of optimizer (settings {sorted(theirs)}), "
                f"not of the trainer's {type(trainer.optimizer).__name__}"
            )
    method = state.get("method")
    if isinstance(method, Mapping) and set(method) != set(trainer.method.state_dict()):
        raise ValueError(
            f"{path} holds method state {sorted(method)}, but the trainer's method "
            f"{trainer.method.config().get('name')!r} keeps {sorted(trainer.method.state_dict())}"
        )


def resume(trainer: Any, path: str | os.PathLike) -> Any:
    """Restore ``trainer`` from the checkpoint at ``path`` (``trainer.load_state_dict``); returns it.

    A following ``trainer.fit(data, epochs)`` continues from the checkpoint's epoch. A checkpoint of
    a model with other layers or sizes, of another method or optimizer, is refused with a
    ``ValueError`` naming ``path`` and what differs, checked before anything is restored.
    """
    state, info = _read(path)
    _check_matches(path, state, info, trainer)
    try:
        trainer.load_state_dict(state)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"{path} does not fit this trainer: {err}") from err
    return trainer


# -- the callback ------------------------------------------------------------------------------


class Checkpoint(Callback):
    """Write ``trainer.state_dict()`` to ``path`` every ``every`` epochs and at the end of training (when
    ``fit`` trained at least one epoch since the last write)."""

    def __init__(self, path: str | os.PathLike, every: int = 1) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive integer, got {every!r}")
        self.path = Path(path)
        self.every = every
        self.saved_epoch: int | None = None
        self._began: int | None = None  # the epoch the current fit started from

    def save(self, state: Any) -> None:
        """Write the checkpoint now."""
        save_checkpoint(self.path, state.trainer.state_dict(), describe(state.trainer))
        self.saved_epoch = state.epoch

    def on_train_begin(self, state: Any) -> None:
        self._began = state.epoch

    def on_epoch_end(self, state: Any) -> None:
        if state.epoch % self.every == 0:
            self.save(state)

    def on_train_end(self, state: Any) -> None:
        """Write the final checkpoint; when ``fit`` is unwinding from an error, a failed write is added to
        that error as a note instead of replacing it."""
        began, self._began = self._began, None
        if began is None or state.epoch in (began, self.saved_epoch):
            return  # fit failed before this callback began, trained nothing, or the state is already saved
        error = sys.exc_info()[1]
        try:
            self.save(state)
        except OSError as err:
            if error is None:
                raise
            error.add_note(f"the checkpoint {self.path} could not be written either ({err})")
