"""Tiling many small images (weight filters, fantasy particles) into one PNG.

A grid of k images of shape (h, w) becomes one picture of (rows·(h+pad)+pad) × (cols·(w+pad)+pad)
pixels, cols = ⌈√k⌉, rows = ⌈k / cols⌉. Encoding one PNG is far cheaper to send and draw than a
plot per filter, so live views show filters and particles this way.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from ebmlab.data import denormalize


def _as_array(x: torch.Tensor | np.ndarray, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float32).numpy()
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    return np.asarray(x, dtype=np.float32)


def _check_shape(image_shape: Sequence[int], units: int, name: str) -> tuple[int, int]:
    shape = tuple(int(d) for d in image_shape)
    if len(shape) != 2 or math.prod(shape) != units:
        raise ValueError(f"image_shape must be (height, width) with height·width = {units} ({name}), got {shape}")
    return shape  # type: ignore[return-value]


def tile(images: np.ndarray, cols: int | None = None, pad: int = 1, background: float = 0.5) -> np.ndarray:
    """Arrange ``images`` (k, h, w) with values in [0, 1] on a grid; returns a (H, W) float array."""
    if images.ndim != 3:
        raise ValueError(f"images must have shape (count, height, width), got {images.shape}")
    k, h, w = images.shape
    if k == 0:
        raise ValueError("images must hold at least one image")
    cols = math.ceil(math.sqrt(k)) if cols is None else cols
    if cols < 1:
        raise ValueError(f"cols must be a positive integer, got {cols}")
    rows = math.ceil(k / cols)
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad), background, dtype=np.float32)
    for i in range(k):
        r, c = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        out[y : y + h, x : x + w] = images[i]
    return out


def png(gray: np.ndarray, scale: int = 1) -> bytes:
    """Encode a 2-D array with values in [0, 1] as an 8-bit grey PNG, each pixel ``scale``×``scale``."""
    if gray.ndim != 2:
        raise ValueError(f"gray must be a 2-D array, got shape {gray.shape}")
    if scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale}")
    pixels = (np.clip(gray, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if scale > 1:
        pixels = np.kron(pixels, np.ones((scale, scale), dtype=np.uint8))
    buf = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def auto_scale(height: int, width: int, target: int = 320) -> int:
    """Integer pixel magnification so the longer side of a picture is about ``target`` pixels."""
    return max(1, target // max(height, width, 1))


def filters_image(weights: torch.Tensor | np.ndarray, image_shape: Sequence[int], limit: int = 100) -> np.ndarray:
    """Tile the first ``limit`` columns of W (visible × hidden) as filters.

    Each filter w_j is shown as 0.5 + w_j / (2 max|w_j|): grey is zero, white positive, black
    negative, scaled per filter so weak filters still show their shape.
    """
    w = _as_array(weights, "weights")
    if w.ndim != 2:
        raise ValueError(f"weights must be 2-D (visible, hidden), got shape {w.shape}")
    h, wd = _check_shape(image_shape, w.shape[0], "the visible units")
    f = w[:, :limit].T
    peak = np.abs(f).max(axis=1, keepdims=True)
    f = 0.5 + f / (2.0 * np.where(peak > 0, peak, 1.0))
    return tile(f.reshape(-1, h, wd))


def in_pixels(x: np.ndarray, normalize: bool, normalization: dict[str, Any] | None) -> np.ndarray:
    """Rows of visible states as pixels in [0, 1].

    With the data's ``normalization`` record ({"mean", "std", ...}, see ``ebmlab.data.normalization``)
    the states are mapped back to data units, x = s·x̃ + m, and clipped to [0, 1] (image data are
    loaded as pixels in [0, 1]): a model trained on normalized pixels is shown on the data's own
    scale. Otherwise ``normalize=True`` maps each row's [min, max] onto [0, 1] (Gaussian units of
    unknown scale) and values already in [0, 1] are shown as they are.
    """
    if normalization is not None:
        return np.clip(denormalize(x, normalization).numpy(), 0.0, 1.0)
    if normalize:
        lo, hi = x.min(axis=1, keepdims=True), x.max(axis=1, keepdims=True)
        return (x - lo) / np.where(hi > lo, hi - lo, 1.0)
    return x


def particles_image(
    samples: torch.Tensor | np.ndarray,
    image_shape: Sequence[int],
    limit: int = 100,
    normalize: bool = False,
    normalization: dict[str, Any] | None = None,
) -> np.ndarray:
    """Tile the first ``limit`` rows of visible states as pixels (see ``in_pixels`` for the scale)."""
    x = _as_array(samples, "samples")
    if x.ndim != 2:
        raise ValueError(f"samples must be 2-D (rows, visible), got shape {x.shape}")
    h, wd = _check_shape(image_shape, x.shape[1], "the visible units")
    return tile(in_pixels(x[:limit], normalize, normalization).reshape(-1, h, wd))


def grid_png(picture: np.ndarray, target: int = 320) -> bytes:
    """PNG bytes of a tiled picture magnified to about ``target`` pixels on its longer side."""
    return png(picture, auto_scale(*picture.shape, target=target))


def rgb_png(rgb: np.ndarray, scale: int = 1) -> bytes:
    """Encode an (H, W, 3) array with values in [0, 1] as an RGB PNG, each pixel ``scale``×``scale``."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb must have shape (height, width, 3), got {rgb.shape}")
    if scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale}")
    pixels = (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    pixels = pixels.repeat(scale, axis=0).repeat(scale, axis=1)
    buf = io.BytesIO()
    Image.fromarray(pixels, mode="RGB").save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def states_png(
    samples: torch.Tensor | np.ndarray,
    image_shape: Sequence[int] | None,
    limit: int = 100,
    normalize: bool = False,
    normalization: dict[str, Any] | None = None,
) -> bytes:
    """PNG of visible states: tiled images with an ``image_shape``, else a raster (one row per state).

    Rows holding NaN (unfilled particle slots of a stored run) are left out; ``normalize`` and
    ``normalization`` set the pixel scale as in ``in_pixels``.
    """
    x = _as_array(samples, "samples")
    x = x[~np.isnan(x).any(axis=1)][:limit]
    if x.shape[0] == 0:
        x = np.full((1, x.shape[1]), 0.5, dtype=np.float32)
    if image_shape is not None:
        return grid_png(particles_image(x, image_shape, limit, normalize, normalization))
    return grid_png(in_pixels(x, normalize, normalization))


def guess_image_shape(units: int) -> tuple[int, int] | None:
    """(√n, √n) when ``units`` is a perfect square above 3, else None."""
    side = math.isqrt(units)
    return (side, side) if side * side == units and side > 1 else None
