"""GibbsStepper: run a block-Gibbs chain by hand and watch the units of each layer flip.

One sweep samples the even layers given the odd ones, then the odd layers given the even ones,

    h_i ~ p(h_i | f_i),   f_i = r(h_{i−1}) W_i + r(h_{i+1}) W_{i+1}ᵀ,

at inverse temperature β. "Half sweep" does one of the two halves, so the two phases can be
watched apart. Each layer is drawn as a grid of cells, one per unit, that reads the same on a light
and on a dark page: every cell sits in a mid-grey frame (luminance 0.5, so the grid stands out
from white and from black backgrounds alike), an "on" unit is white and an "off" unit black
(each differs from the frame by half the luminance range), and a unit that flipped in the last
update gets a thick coloured ring around its fill (orange: turned on, blue: turned off), so its
new state stays readable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import ipywidgets
import numpy as np
import torch

from ebmlab import BernoulliLayer, BoltzmannMachine

from .base import View
from .images import rgb_png

ON, OFF = np.array([1.0, 0.55, 0.0]), np.array([0.1, 0.3, 0.9])  # rings of units that just turned on / off
FRAME = np.array([0.5, 0.5, 0.5])
LEGEND = (
    "<small>each cell is a unit: <b>white</b> on (1), <b>black</b> off (0); a ring marks a unit that flipped in "
    "the last update: <span style='color:#ff8c00'><b>orange</b></span> turned on, "
    "<span style='color:#1a4de6'><b>blue</b></span> turned off</small>"
)


def unit_cells(values: np.ndarray, flipped: np.ndarray, shape: tuple[int, int], pixel: int) -> np.ndarray:
    """An RGB picture (values in [0, 1]) of units on a ``shape`` grid of ``pixel``-wide cells.

    A cell's fill is its value as grey (1 white, 0 black); cells are separated and surrounded by a
    mid-grey frame ``max(2, pixel // 8)`` pixels wide; a flipped unit's fill is inset by a ring of
    ``max(3, pixel // 5)`` pixels in ``ON`` (value > ½) or ``OFF``. Grid slots past the last unit
    stay frame-coloured.
    """
    h, w = shape
    border, ring = max(2, pixel // 8), max(3, pixel // 5)
    img = np.empty((h * pixel + border, w * pixel + border, 3))
    img[:] = FRAME
    inner = pixel - border
    for i, (value, flip) in enumerate(zip(values, flipped)):
        r, c = divmod(i, w)
        cell = img[r * pixel + border : (r + 1) * pixel, c * pixel + border : (c + 1) * pixel]
        if flip and inner > 2 * ring:
            cell[:] = ON if value > 0.5 else OFF
            cell[ring:-ring, ring:-ring] = value
        else:
            cell[:] = value
    return img


def bars_and_stripes_model(size: int = 4, strength: float = 4.0) -> BoltzmannMachine:
    """A hand-set RBM on size×size pixels whose 2·size hidden units each stand for a row or a column.

    W ties hidden unit k to the pixels of row k (k < size) or column k − size with weight s
    (``strength``); visible biases −s/2 keep pixels off unless a line unit is on; hidden biases
    −s·size/2 switch a line unit on when more than half of its pixels are on.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 2:
        raise ValueError(f"size must be an integer ≥ 2, got {size!r}")
    model = BoltzmannMachine([BernoulliLayer(size * size), BernoulliLayer(2 * size)])
    with torch.no_grad():
        w = torch.zeros(size, size, 2 * size)
        for k in range(size):
            w[k, :, k] = strength
            w[:, k, size + k] = strength
        model.weights[0].copy_(w.reshape(size * size, 2 * size))
        model.layers[0].bias.fill_(-strength / 2)
        model.layers[1].bias.fill_(-strength * size / 2)
    return model


def _grid(n: int, image_shape: Sequence[int] | None) -> tuple[int, int]:
    if image_shape is not None:
        return int(image_shape[0]), int(image_shape[1])
    cols = min(n, 16)
    return math.ceil(n / cols), cols


class GibbsStepper(View):
    """Step one block-Gibbs chain of ``model`` by hand; the visible layer is drawn as an image.

    ``model`` defaults to ``bars_and_stripes_model(4)`` with a 4×4 ``image_shape``; hidden layers
    are drawn as rows of 16 units.
    """

    def __init__(
        self,
        model: BoltzmannMachine | None = None,
        image_shape: Sequence[int] | None = None,
        beta: float = 1.0,
        seed: int = 0,
        pixel: int = 36,
    ) -> None:
        if model is None:
            model = bars_and_stripes_model(4)
            image_shape = (4, 4) if image_shape is None else image_shape
        if not isinstance(model, BoltzmannMachine):
            raise TypeError(f"model must be an ebmlab.BoltzmannMachine, got {type(model).__name__}")
        if image_shape is not None and (len(image_shape) != 2 or math.prod(image_shape) != model.sizes[0]):
            raise ValueError(
                f"image_shape must be (height, width) with height·width = {model.sizes[0]} visible units, "
                f"got {tuple(image_shape)}"
            )
        self.model, self.image_shape, self.pixel = model, image_shape, pixel
        self.generator = torch.Generator(device=model.device).manual_seed(seed)
        self.states = [s.detach().clone() for s in model.random_states(1, self.generator)]
        self.flipped = [torch.zeros_like(s, dtype=torch.bool) for s in self.states]
        self.sweeps = 0
        self.next_parity = 0
        self.beta = ipywidgets.FloatSlider(value=beta, min=0.05, max=3.0, step=0.05, description="β")
        buttons = {
            "Half sweep": self.half_sweep,
            "Sweep": self.sweep,
            "10 sweeps": lambda: self.sweep(10),
            "Reset": self.reset,
        }
        self.buttons = {}
        for label, action in buttons.items():
            b = ipywidgets.Button(description=label)
            b.on_click(lambda _, act=action: act())
            self.buttons[label] = b
        self.pictures = [ipywidgets.Image(format="png") for _ in model.layers]
        self.status = ipywidgets.HTML()
        rows = [
            ipywidgets.HBox([ipywidgets.HTML(f"<b>{layer.name}</b><br><small>{layer.n} units</small>"), pic])
            for layer, pic in zip(model.layers, self.pictures)
        ]
        for row in rows:
            row.children[0].layout.width = "90px"
        controls = ipywidgets.HBox([*self.buttons.values(), self.beta])
        self.view = ipywidgets.VBox([controls, *reversed(rows), ipywidgets.HTML(LEGEND), self.status])
        self.view.add_class("ebmlab-gibbs-stepper")
        self._draw()

    # -- the chain -----------------------------------------------------------------------------
    @torch.no_grad()
    def half_sweep(self) -> None:
        """Resample every layer of the next parity (even layers first, then odd) given the others."""
        before = [s.clone() for s in self.states]
        self._resample(self.next_parity)
        self.flipped = [a != b for a, b in zip(before, self.states)]
        self.next_parity = 1 - self.next_parity
        if self.next_parity == 0:
            self.sweeps += 1
        self._draw()

    @torch.no_grad()
    def sweep(self, times: int = 1) -> None:
        """Complete the current sweep, then run ``times − 1`` more full sweeps (even, then odd)."""
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise ValueError(f"times must be a positive integer, got {times!r}")
        before = [s.clone() for s in self.states]
        for _ in range(times):
            for parity in range(self.next_parity, 2):
                self._resample(parity)
            self.next_parity = 0
            self.sweeps += 1
        self.flipped = [a != b for a, b in zip(before, self.states)]
        self._draw()

    def reset(self) -> None:
        """Start a fresh chain from each layer's own bias."""
        self.states = [s.detach().clone() for s in self.model.random_states(1, self.generator)]
        self.flipped = [torch.zeros_like(s, dtype=torch.bool) for s in self.states]
        self.sweeps, self.next_parity = 0, 0
        self._draw()

    def _resample(self, parity: int) -> None:
        for i in range(parity, self.model.depth, 2):
            field = self.model._field(self.states, i)
            self.states[i] = self.model.layers[i].sample(field, float(self.beta.value), self.generator)

    @torch.no_grad()
    def energy(self) -> float:
        """E(h₀, …, h_L) of the current state."""
        return float(self.model._energy(self.states)[0])

    # -- drawing -------------------------------------------------------------------------------
    def _draw(self) -> None:
        for i, (state, flip, pic) in enumerate(zip(self.states, self.flipped, self.pictures)):
            shape = _grid(state.shape[1], self.image_shape if i == 0 else None)
            values = state[0].detach().cpu().double().clamp(0, 1).numpy()
            pic.value = rgb_png(unit_cells(values, flip[0].cpu().numpy(), shape, self.pixel))
        flips = ", ".join(f"{layer.name} {int(f.sum())}" for layer, f in zip(self.model.layers, self.flipped))
        phase = "even layers next" if self.next_parity == 0 else "odd layers next"
        self.status.value = f"sweep {self.sweeps} ({phase}) · flips: {flips} · energy {self.energy():.2f}"
