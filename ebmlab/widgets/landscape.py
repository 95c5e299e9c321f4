"""EnergyLandscape: the exact distribution of a tiny Boltzmann machine beside Gibbs samples.

With every unit discrete and at most ``MAX_UNITS`` units in all, every state can be listed:

    p(h) = exp(−E(h)) / Z,   Z = Σ_h exp(−E(h))            (``over="joint"``)
    p(v) = exp(−F(v)) / Z,   F(v) = −log Σ_{h₁…} exp(−E)   (``over="visible"``)

Sliders set each weight W_ij and each layer parameter (the biases); the bars show p beside the
frequencies of the same states among ``chains`` independent Gibbs chains run ``steps`` sweeps,
and the total-variation distance ½ Σ |p − q| between the two.
"""

from __future__ import annotations

import itertools

import ipywidgets
import numpy as np
import plotly.graph_objects as go
import torch

from ebmlab import BernoulliLayer, BoltzmannMachine

from .base import View

MAX_UNITS = 10


def _state_label(values: torch.Tensor, layer: torch.nn.Module) -> str:
    sites = getattr(layer, "sites", None)
    if sites is not None:
        return "".join(str(int(k)) for k in values.reshape(sites, layer.states).argmax(-1))
    return "".join(str(int(x)) for x in values)


class EnergyLandscape(View):
    """Exact probabilities of every state of a model with ≤ 10 discrete units, and sampled ones.

    ``model`` defaults to a Bernoulli RBM with ``visible`` and ``hidden`` units and weights
    N(0, 1) drawn from ``seed``. ``over`` is ``"visible"`` (p(v), hidden units summed out) or
    ``"joint"`` (p of every state of every layer).
    """

    def __init__(
        self,
        model: BoltzmannMachine | None = None,
        visible: int = 3,
        hidden: int = 2,
        over: str = "visible",
        chains: int = 2000,
        steps: int = 50,
        seed: int = 0,
        limit: float = 4.0,
    ) -> None:
        if model is None:
            model = BoltzmannMachine([BernoulliLayer(visible), BernoulliLayer(hidden)], seed=seed).double()
            with torch.no_grad():
                g = torch.Generator().manual_seed(seed)
                model.weights[0].copy_(torch.randn(visible, hidden, generator=g, dtype=torch.float64))
        if not isinstance(model, BoltzmannMachine):
            raise TypeError(f"model must be an ebmlab.BoltzmannMachine, got {type(model).__name__}")
        if sum(model.sizes) > MAX_UNITS:
            raise ValueError(f"model must have at most {MAX_UNITS} units in all to enumerate, got {sum(model.sizes)}")
        for layer in model.layers:
            if not np.isfinite(layer.num_states()):
                raise ValueError(f"model layer {layer.label} is continuous; EnergyLandscape needs discrete units")
        if over not in ("visible", "joint"):
            raise ValueError(f"over must be 'visible' or 'joint', got {over!r}")
        for name, value in (("chains", chains), ("steps", steps)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.model, self.over, self.chains, self.steps, self.seed = model, over, chains, steps, seed
        self._states = self._enumerate()
        self.labels = [self._label(i) for i in range(self._states[0].shape[0])]
        self.sliders = self._make_sliders(limit)
        self.figure = go.FigureWidget(
            data=[
                go.Bar(name="exact p", x=self.labels, y=self.exact()),
                go.Bar(name="sampled frequency", x=self.labels, y=self.sampled()),
            ],
            layout=go.Layout(
                barmode="group",
                height=340,
                width=600,
                legend={"orientation": "h", "x": 0, "y": 1.12},
                margin={"l": 40, "r": 10, "t": 30, "b": 60},
                xaxis_title=(
                    "joint state (unit values per layer, layers split by |)"
                    if over == "joint"
                    else "visible state v (unit values, unit 0 first)"
                ),
                yaxis_title="probability (sampled: fraction of chains)",
            ),
        )
        self.distance = ipywidgets.HTML()
        self.resample_button = ipywidgets.Button(description="Resample", icon="refresh")
        self.resample_button.on_click(lambda _: self.refresh())
        self._show_distance()
        panel = ipywidgets.VBox(list(self.sliders.values()), layout={"width": "360px", "overflow": "auto"})
        self.view = ipywidgets.HBox(
            [panel, ipywidgets.VBox([self.figure, ipywidgets.HBox([self.resample_button, self.distance])])]
        )
        self.view.add_class("ebmlab-landscape")

    # -- the math ------------------------------------------------------------------------------
    def _enumerate(self) -> list[torch.Tensor]:
        """Every state as rows of per-layer tensors (visible states only for ``over="visible"``)."""
        layers = self.model.layers if self.over == "joint" else self.model.layers[:1]
        combos = list(itertools.product(*[range(int(layer.num_states())) for layer in layers]))
        tables = [layer.all_states() for layer in layers]
        return [tables[i][[c[i] for c in combos]] for i in range(len(layers))]

    def _label(self, row: int) -> str:
        return "|".join(_state_label(s[row], layer) for s, layer in zip(self._states, self.model.layers))

    @torch.no_grad()
    def exact(self) -> np.ndarray:
        """p of every listed state: softmax of −E (joint) or of −F(v) (visible)."""
        if self.over == "joint":
            minus = -self.model._energy(self._states)
        else:
            minus = -self.model._free_energy(self._states[0])
        return torch.softmax(minus.double(), 0).cpu().numpy()

    @torch.no_grad()
    def sampled(self) -> np.ndarray:
        """Frequency of each listed state among the chains' final states (``steps`` Gibbs sweeps)."""
        final = self.model.sample(self.chains, steps=self.steps, seed=self.seed)
        final = final if self.over == "joint" else final[:1]
        index = {}
        for row in range(self._states[0].shape[0]):
            index[tuple(torch.cat([s[row] for s in self._states]).tolist())] = row
        counts = np.zeros(len(index))
        for row in torch.cat(final, dim=1).tolist():
            counts[index[tuple(row)]] += 1
        return counts / self.chains

    def total_variation(self) -> float:
        """½ Σ |p − q| between the exact distribution and the sampled frequencies on display."""
        return 0.5 * float(np.abs(np.asarray(self.figure.data[0].y) - np.asarray(self.figure.data[1].y)).sum())

    # -- the controls --------------------------------------------------------------------------
    def _make_sliders(self, limit: float) -> dict[str, ipywidgets.FloatSlider]:
        sliders: dict[str, ipywidgets.FloatSlider] = {}
        targets: list[tuple[str, torch.nn.Parameter]] = [(f"W{i + 1}", w) for i, w in enumerate(self.model.weights)] + [
            (f"{layer.name}.{n}", p) for layer in self.model.layers for n, p in layer.named_parameters()
        ]
        for name, param in targets:
            for idx in itertools.product(*[range(d) for d in param.shape]):
                key = f"{name}[{','.join(map(str, idx))}]"
                value = float(param.detach()[idx])
                bound = max(limit, abs(value))
                s = ipywidgets.FloatSlider(
                    value=value,
                    min=-bound,
                    max=bound,
                    step=0.05,
                    description=key,
                    continuous_update=False,
                    style={"description_width": "110px"},
                )
                s.observe(self._setter(param, idx), names="value")
                sliders[key] = s
        return sliders

    def _setter(self, param: torch.nn.Parameter, idx: tuple[int, ...]):
        def set_value(change: dict) -> None:
            with torch.no_grad():
                param[idx] = float(change["new"])
            self.refresh()

        return set_value

    def refresh(self) -> None:
        """Recompute the exact distribution and draw fresh samples (new seed each time)."""
        self.seed += 1
        with self.figure.batch_update():
            self.figure.data[0].y = self.exact()
            self.figure.data[1].y = self.sampled()
        self._show_distance()

    def _show_distance(self) -> None:
        self.distance.value = (
            f"total variation ½Σ|p−q| = <b>{self.total_variation():.3f}</b> "
            f"({self.chains} chains × {self.steps} sweeps)"
        )
