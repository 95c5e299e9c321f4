"""Atomic safetensors files with JSON metadata: the one on-disk format of models and checkpoints.

Writing goes to a temporary file ``.<name>.<pid>.tmp`` in the target's folder, is flushed to disk,
then ``os.replace``-d over the target, so a file on disk is always complete; temporary files left
by a killed writer (whose pid is gone) are removed by the next write to that target. The metadata
holds a SHA-256 of the tensors (``ebmlab_sha256``: over each name, dtype, shape and raw bytes in
sorted order), verified on reading, so a flipped data byte is an error, not a silently different
model; files without it still load. Reading never unpickles anything.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from ._process import pid_alive

CHECKSUM_KEY = "ebmlab_sha256"


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 (hex) of the CPU tensors: name, dtype, shape and bytes of each, in sorted name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{str(t.dtype).removeprefix('torch.')}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Delete ``.<name>.<pid>.tmp`` files beside ``path`` whose writer process is gone; returns them."""
    removed = []
    prefix = f".{path.name}."
    if not path.parent.is_dir():
        return removed
    for tmp in path.parent.iterdir():
        name = tmp.name
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        pid = name[len(prefix) : -len(".tmp")]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def write_safetensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> Path:
    """Write ``tensors`` (moved to the CPU, made contiguous), ``metadata`` and their checksum to ``path`` atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    cpu = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file(cpu, str(tmp), metadata={**metadata, CHECKSUM_KEY: tensors_digest(cpu)})
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_safetensors(path: str | os.PathLike, what: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of the safetensors file at ``path``; ``what`` names it in errors.

    Raises ``FileNotFoundError`` when there is no file, ``ValueError`` naming ``path`` when it is not
    a readable safetensors file or its tensors do not match the stored checksum.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no {what} file at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise ValueError(f"{path} is not a readable safetensors {what} file ({err})") from err
    expected = metadata.pop(CHECKSUM_KEY, None)
    if expected is not None and tensors_digest(tensors) != expected:
        raise ValueError(
            f"{path} is corrupted: the checksum of its tensors does not match the one stored in the file "
            f"(a changed data byte); the {what} cannot be trusted"
        )
    return tensors, metadata
