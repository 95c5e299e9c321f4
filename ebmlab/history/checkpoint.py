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


def save_checkpoint(path: str | os.PathLike, state: Mapping[str, Any]) -> Path:
    """Write ``state`` (a tree of tensors and plain values) to ``path`` atomically."""
    if not isinstance(state, Mapping):
        raise TypeError(f"state must be a dict (a trainer's state_dict), got {type(state).__name__}")
    tensors: dict[str, torch.Tensor] = {}
    tree = _encode(state, tensors, "state")
    meta = {KEY: json.dumps({"format": FORMAT, "version": FORMAT_VERSION, "state": tree})}
    return write_safetensors(path, tensors, meta)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a state written by ``save_checkpoint`` (tensors on the CPU)."""
    tensors, meta = read_safetensors(path, "checkpoint")
    if KEY not in meta:
        raise ValueError(f"{path} is a safetensors file but not an ebmlab checkpoint (no {KEY} metadata)")
    doc = json.loads(meta[KEY])
    if doc.get("format") != FORMAT or doc.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported checkpoint format {doc.get('format')!r} v{doc.get('version')}")
    return _decode(doc["state"], tensors)


def resume(trainer: Any, path: str | os.PathLike) -> Any:
    """Restore ``trainer`` from the checkpoint at ``path`` (``trainer.load_state_dict``); returns it.

    A following ``trainer.fit(data, epochs)`` continues from the checkpoint's epoch.
    """
    trainer.load_state_dict(load_checkpoint(path))
    return trainer


# -- the callback ------------------------------------------------------------------------------


class Checkpoint(Callback):
    """Write ``trainer.state_dict()`` to ``path`` every ``every`` epochs and at the end of training."""

    def __init__(self, path: str | os.PathLike, every: int = 1) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive integer, got {every!r}")
        self.path = Path(path)
        self.every = every
        self.saved_epoch: int | None = None

    def save(self, state: Any) -> None:
        """Write the checkpoint now."""
        save_checkpoint(self.path, state.trainer.state_dict())
        self.saved_epoch = state.epoch

    def on_epoch_end(self, state: Any) -> None:
        if state.epoch % self.every == 0:
            self.save(state)

    def on_train_end(self, state: Any) -> None:
        if self.saved_epoch != state.epoch:
            self.save(state)
