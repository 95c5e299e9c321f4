"""Input validation shared by the public entry points.

Every check raises ``ValueError`` or ``TypeError`` whose message names the argument and
what was expected, so that users never see a deep torch traceback for bad input.
"""

from __future__ import annotations

import numbers
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

Beta = float | torch.Tensor


class AllocationError(ValueError, MemoryError):
    """A size or count asks for more memory than the device has; raised before torch tries.

    Both a ``ValueError`` (bad input) and a ``MemoryError``, so either ``except`` catches it.
    """


def as_tensor(
    x: Any,
    name: str,
    *,
    dtype: torch.dtype,
    device: torch.device,
    ndim: int | None = 2,
    allow_nan: bool = False,
) -> torch.Tensor:
    """Convert ``x`` (tensor, numpy array, nested list, xarray) to a tensor of ``dtype`` on ``device``.

    numpy arrays, lists and integer/bool tensors are cast silently; a floating tensor of another
    dtype or a tensor on another device is refused, so precision and placement never change
    behind the user's back. A tensor keeps its autograd graph (it is never detached), so
    ``torch.autograd.grad(model.free_energy(v).sum(), v)`` works.
    """
    if isinstance(x, torch.Tensor):
        pass  # never ``x.data``: that would detach the tensor from its autograd graph
    elif hasattr(x, "data") and hasattr(x, "dims"):
        x = np.asarray(x)  # xarray.DataArray
    elif hasattr(x, "data") and isinstance(x.data, torch.Tensor):
        x = x.data  # ebmlab.data.Dataset
    if isinstance(x, torch.Tensor):
        if x.is_complex():
            raise TypeError(f"{name} must hold real numbers, got dtype {x.dtype}")
        if x.device.type != device.type:
            raise ValueError(
                f"{name} is on device {x.device}, but the model is on {device}; move it with {name}.to({str(device)!r})"
            )
        if x.is_floating_point() and x.dtype != dtype:
            raise TypeError(
                f"{name} has dtype {x.dtype}, but the model uses {dtype}; "
                f"convert it with {name}.to({dtype}) or the model with model.to({x.dtype})"
            )
        t = x.to(dtype=dtype, device=device)
    else:
        try:
            arr = np.asarray(x)
        except (TypeError, ValueError) as err:
            raise TypeError(f"{name} must be a tensor or array, got {type(x).__name__}") from err
        numeric = np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_
        if arr.dtype == object or np.iscomplexobj(arr) or not numeric:
            raise TypeError(f"{name} must hold numbers, got an array of dtype {arr.dtype}")
        t = torch.as_tensor(arr.astype(np.float64, copy=False), device=device).to(dtype)
    if ndim is not None and t.dim() != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {tuple(t.shape)}")
    if not allow_nan and not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or Inf values")
    return t


def check_width(x: torch.Tensor, n: int, name: str, what: str) -> None:
    """Refuse a batch whose number of columns differs from the ``n`` units of ``what``."""
    if x.shape[-1] != n:
        raise ValueError(f"{name} has {x.shape[-1]} columns, but {what} has {n} units")


def check_beta(beta: Any, rows: int, dtype: torch.dtype, device: torch.device) -> Beta:
    """Inverse temperature: a positive float, or a tensor of one positive value per row."""
    if isinstance(beta, (bool, np.bool_)) or (isinstance(beta, torch.Tensor) and beta.dtype == torch.bool):
        raise TypeError(f"beta must be a positive number (an inverse temperature), got the boolean {beta!r}")
    if isinstance(beta, numbers.Real):
        if not np.isfinite(beta) or beta <= 0:
            raise ValueError(f"beta must be a positive finite number, got {beta}")
        return float(beta)
    if not isinstance(beta, (torch.Tensor, np.ndarray, list, tuple)):
        raise TypeError(
            f"beta must be a positive number or a 1-D tensor of one value per row, got {type(beta).__name__} {beta!r}"
        )
    try:
        b = torch.as_tensor(np.asarray(beta, dtype=np.float64) if not isinstance(beta, torch.Tensor) else beta)
    except (TypeError, ValueError) as err:
        raise TypeError(f"beta must hold numbers, got {beta!r}") from err
    if b.dtype == torch.bool or b.is_complex():
        raise TypeError(f"beta must hold real numbers, got dtype {b.dtype}")
    b = b.to(dtype=dtype, device=device)
    if b.dim() == 0:
        return check_beta(float(b), rows, dtype, device)
    if b.dim() != 1 or b.shape[0] != rows:
        raise ValueError(
            f"beta must be a number or a 1-D tensor with one value per row ({rows}), got shape {tuple(b.shape)}"
        )
    if not (torch.isfinite(b).all() and (b > 0).all()):
        raise ValueError("beta must be positive and finite in every row")
    return b


def check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """An integer ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_real(value: Any, name: str, *, minimum: float | None = None, positive: bool = False) -> float:
    """A finite real number (not a bool), optionally ``>= minimum`` or ``> 0``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_index(value: Any, name: str) -> int:
    """An integer index (Python or numpy int, not a bool or a float)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer index, got {type(value).__name__} {value!r}")
    return int(value)


def check_generator(generator: Any, name: str = "generator") -> None:
    """None or a ``torch.Generator``."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"{name} must be a torch.Generator or None, got {type(generator).__name__}")


def check_rows(x: torch.Tensor, name: str, minimum: int = 1) -> torch.Tensor:
    """Refuse a batch with fewer than ``minimum`` rows (an average over no rows is NaN, not a number)."""
    if x.shape[0] < minimum:
        raise ValueError(f"{name} must have at least {minimum} row{'s' * (minimum > 1)}, got {x.shape[0]}")
    return x


def check_device(device: Any, name: str = "device") -> torch.device:
    """A ``torch.device`` that exists on this machine; else ``ValueError`` naming ``name`` and the device.

    Refuses an unknown device string (``"foo"``), ``"cuda"`` without CUDA (or an index beyond the
    GPUs present) and ``"mps"`` / other accelerators that are not available.
    """
    if isinstance(device, torch.device):
        d = device
    elif isinstance(device, str) or (isinstance(device, int) and not isinstance(device, bool)):
        try:
            d = torch.device(device)
        except RuntimeError as err:
            raise ValueError(
                f"{name} {device!r} is not a device name; expected 'cpu', 'cuda', 'cuda:N', 'mps', …"
            ) from err
    else:
        raise TypeError(f"{name} must be a device name such as 'cpu' or 'cuda', got {type(device).__name__}")
    if d.type in ("cpu", "meta"):
        return d
    if d.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise ValueError(f"{name} {str(d)!r} is not available: {why} (torch {torch.__version__}); use 'cpu'")
        count = torch.cuda.device_count()
        if d.index is not None and d.index >= count:
            raise ValueError(f"{name} {str(d)!r} is not available: this machine has {count} CUDA device(s)")
        return d
    if d.type == "mps":
        available = torch.backends.mps.is_available()
    else:
        available = bool(getattr(getattr(torch, d.type, None), "is_available", lambda: False)())
    if not available:
        raise ValueError(f"{name} {str(d)!r} is not available on this machine; use 'cpu'")
    return d


def available_bytes(device: torch.device) -> int | None:
    """Memory that an allocation on ``device`` may use now (None: unknown).

    CPU: MemAvailable + SwapFree from /proc/meminfo (Linux), else the physical memory size, and
    at most what this process's cgroup memory limit leaves (containers); CUDA: the free memory
    reported by the driver.
    """
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo") as f:
            info = {k: int(v.split()[0]) * 1024 for k, v in (line.split(":", 1) for line in f if ":" in line)}
        free: int | None = info["MemAvailable"] + info.get("SwapFree", 0)
    except (OSError, KeyError, ValueError):
        try:
            free = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            free = None
    limited = cgroup_free_bytes()
    return limited if free is None else free if limited is None else min(free, limited)


CGROUP = Path("/sys/fs/cgroup")
CGROUP_FILES = (("memory.max", "memory.current"), ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes"))


def cgroup_free_bytes(root: Path = CGROUP) -> int | None:
    """Bytes left under the cgroup memory limit (v2 ``memory.max``, v1 ``memory.limit_in_bytes``); None if unlimited."""
    for limit_file, usage_file in CGROUP_FILES:
        try:
            limit = (root / limit_file).read_text().strip()
            usage = int((root / usage_file).read_text())
            if limit == "max" or int(limit) >= 2**60:  # v1 writes "no limit" as a huge number
                return None
            return max(int(limit) - usage, 0)
        except (OSError, ValueError):
            continue
    return None


def format_bytes(n: float) -> str:
    """1.5e10 -> '15.0 GB' (decimal units)."""
    units = ("bytes", "kB", "MB", "GB", "TB", "PB", "EB")
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n, i = n / 1000, i + 1
    return f"{n:.0f} bytes" if i == 0 else f"{n:.1f} {units[i]}"


def check_allocation(nbytes: int, name: str, what: str, device: torch.device | str = "cpu") -> None:
    """Refuse, before torch tries, an allocation of ``nbytes`` that the device cannot hold.

    Raises ``AllocationError`` naming the argument ``name``, what needs the memory and both sizes.
    """
    device = torch.device(device)
    free = available_bytes(device)
    if free is not None and nbytes > free:
        raise AllocationError(
            f"{name}: {what} would take {format_bytes(nbytes)} ({nbytes} bytes), but only {format_bytes(free)} "
            f"are available on {device}; use smaller sizes"
        )
