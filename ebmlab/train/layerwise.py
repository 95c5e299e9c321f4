"""Greedy layerwise pretraining of a deep Boltzmann machine, then joint fine-tuning.

Salakhutdinov & Hinton (2009): a DBM layer l (0 < l < L) receives input from below and above,
while an RBM's hidden layer sees only one side. So the stack of RBMs is trained with the missing
side compensated by doubling:

- bottom RBM (v, h_1): the visible layer is duplicated, [v, v], so p(h_1 | v) = σ(2 W_1ᵀ v + c)
  while each copy is reconstructed with W_1 alone;
- top RBM (h_{L−1}, h_L): the top layer is duplicated, so p(h_{L−1} | h_L) uses 2 W_L;
- middle RBMs are plain RBMs whose weights are halved in the DBM.

The copies start equal and see equal data, so their weights stay equal in expectation; the DBM
takes their average. Each RBM is trained on one binary sample of the activities of the layer
below (computed with the doubled up-pass, as the DBM's mean-field initialisation does); a layer
between two RBMs takes the average of its two biases. Then the whole stack is fine-tuned with
the Trainer (e.g. PCD: mean-field positive phase, persistent Gibbs chains).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..layers import Layer, OneHotLayer, layer_from_spec
from ..model import BoltzmannMachine
from .methods import Method
from .trainer import Trainer


def _doubled(layer: Layer) -> Layer:
    """A layer of the same type with every unit (or one-hot site) duplicated."""
    spec = dict(layer.spec())
    if isinstance(layer, OneHotLayer):
        spec["sites"] = 2 * layer.sites
    else:
        spec["n"] = 2 * layer.n
    spec["name"] = f"{layer.name}_x2"
    return layer_from_spec(spec)


def _copy_layer(layer: Layer) -> Layer:
    return layer_from_spec(layer.spec())


class LayerwiseTrainer:
    """``LayerwiseTrainer(model, method_factory).fit(data)``: greedy RBM stacking, then fine-tuning.

    ``method_factory()`` returns a fresh ``Method`` for each RBM and for the fine-tuning
    (``finetune_factory`` overrides the latter). ``trainer_kwargs`` (lr, batch_size, optimizer,
    …) are passed to every ``Trainer``; ``pretrain_epochs`` per RBM, ``finetune_epochs`` for the
    whole stack. ``rbms`` holds the trained RBMs; ``trainer`` the fine-tuning Trainer.
    """

    def __init__(
        self,
        model: BoltzmannMachine,
        method_factory: Callable[[], Method],
        pretrain_epochs: int = 10,
        finetune_epochs: int = 10,
        finetune_factory: Callable[[], Method] | None = None,
        seed: int = 0,
        progress: bool = True,
        **trainer_kwargs: Any,
    ) -> None:
        if not isinstance(model, BoltzmannMachine):
            raise TypeError(f"model must be an ebmlab BoltzmannMachine, got {type(model).__name__}")
        if not callable(method_factory):
            raise TypeError("method_factory must be a callable returning a Method, e.g. lambda: PCD(k=1)")
        for name, value in (("pretrain_epochs", pretrain_epochs), ("finetune_epochs", finetune_epochs)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        self.model = model
        self.method_factory = method_factory
        self.finetune_factory = finetune_factory or method_factory
        self.pretrain_epochs, self.finetune_epochs = pretrain_epochs, finetune_epochs
        self.seed, self.progress = seed, progress
        self.trainer_kwargs = {"metrics": {}, **trainer_kwargs}
        self.rbms: list[BoltzmannMachine] = []
        self.trainer: Trainer | None = None

    def _method(self, factory: Callable[[], Method]) -> Method:
        method = factory()
        if not isinstance(method, Method):
            raise TypeError(f"the method factory must return an ebmlab.train Method, got {type(method).__name__}")
        return method

    def _train(self, rbm: BoltzmannMachine, data: torch.Tensor, index: int) -> None:
        rbm.layers[0].init_from_data(data)
        trainer = Trainer(
            rbm,
            self._method(self.method_factory),
            seed=self.seed + index,
            progress=self.progress,
            **self.trainer_kwargs,
        )
        trainer.fit(data, self.pretrain_epochs)

    def pretrain(self, data: Any) -> list[BoltzmannMachine]:
        """Train the RBM stack bottom-up and write its parameters into ``model``; returns the RBMs."""
        model = self.model
        x = model._visible(data, "data")
        depth = model.depth
        g = model.generator(self.seed)
        self.rbms = []
        for i in range(depth - 1):
            bottom, top = i == 0, i == depth - 2
            lower = _doubled(model.layers[i]) if bottom and depth > 2 else _copy_layer(model.layers[i])
            upper = _doubled(model.layers[i + 1]) if top and depth > 2 else _copy_layer(model.layers[i + 1])
            rbm = BoltzmannMachine([lower, upper], seed=self.seed + i).to(dtype=model.dtype, device=model.device)
            with torch.no_grad():  # the two copies start equal
                w = rbm.weights[0]
                if bottom and depth > 2:
                    w[w.shape[0] // 2 :] = w[: w.shape[0] // 2]
                if top and depth > 2:
                    w[:, w.shape[1] // 2 :] = w[:, : w.shape[1] // 2]
            inputs = torch.cat([x, x], 1) if bottom and depth > 2 else x
            self._train(rbm, inputs, i)
            self.rbms.append(rbm)
            if not top:
                with torch.no_grad():
                    field = rbm.layers[0].rescale(inputs) @ rbm.weights[0]
                    x = rbm.layers[1].sample(field, 1.0, g)
        self._assign()
        return self.rbms

    @torch.no_grad()
    def _assign(self) -> None:
        """Copy the RBMs' parameters into the DBM: averaged copies, halved middle weights, averaged biases."""
        model, depth = self.model, self.model.depth
        contributions: list[list[dict[str, torch.Tensor]]] = [[] for _ in range(depth)]
        for i, rbm in enumerate(self.rbms):
            bottom, top = i == 0, i == depth - 2
            w = rbm.weights[0]
            if depth == 2:
                model.weights[i].copy_(w)
            elif bottom:
                model.weights[i].copy_(w.reshape(2, -1, w.shape[1]).mean(0))
            elif top:
                model.weights[i].copy_(w.reshape(w.shape[0], 2, -1).mean(1))
            else:
                model.weights[i].copy_(w / 2)
            for j, layer in ((i, rbm.layers[0]), (i + 1, rbm.layers[1])):
                doubled = depth > 2 and ((bottom and j == i) or (top and j == i + 1))
                params = {k: p.reshape(2, -1).mean(0) if doubled else p for k, p in layer.named_parameters()}
                contributions[j].append(params)
        for layer, params in zip(model.layers, contributions):
            for name, p in layer.named_parameters():
                p.copy_(torch.stack([c[name] for c in params]).mean(0))

    def finetune(self, data: Any, epochs: int | None = None, validation: Any = None) -> dict[str, list[float]]:
        """Train the whole stack jointly; ``epochs`` defaults to ``finetune_epochs`` (counted in total)."""
        if self.trainer is None:
            self.trainer = Trainer(
                self.model,
                self._method(self.finetune_factory),
                seed=self.seed,
                progress=self.progress,
                **self.trainer_kwargs,
            )
        return self.trainer.fit(data, self.finetune_epochs if epochs is None else epochs, validation)

    def fit(self, data: Any, validation: Any = None) -> dict[str, list[float]]:
        """``pretrain(data)`` then ``finetune(data)``; returns the fine-tuning history."""
        self.pretrain(data)
        return self.finetune(data, validation=validation)
