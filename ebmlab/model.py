"""BoltzmannMachine: a stack of layers h_0 = v, h_1, …, h_L joined by weights W_1 … W_L.

    E(h) = Σ_i H_i(h_i) − Σ_{i≥1} r_{i−1}(h_{i−1})ᵀ W_i r_i(h_i)

Only adjacent layers interact, so given the even layers the odd ones are independent (and vice
versa): block Gibbs sampling alternates the two sets, and either set can be summed out exactly,

    F_odd(h_even) = Σ_{i even} H_i(h_i) − Σ_{i odd} log Z_i(f_i(h_even)),
    f_i = r_{i−1}(h_{i−1}) W_i + r_{i+1}(h_{i+1}) W_{i+1}ᵀ   (the field on layer i).
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ._checks import (
    AllocationError,
    Beta,
    as_tensor,
    check_allocation,
    check_beta,
    check_device,
    check_generator,
    check_index,
    check_positive_int,
    check_real,
    check_rows,
    check_width,
)
from ._model_file import check_spec, check_tensors
from ._safetensors_io import read_safetensors, write_safetensors
from .layers import Layer, OneHotLayer, layer_from_spec
from .samplers import Sampler, get_sampler

States = list[torch.Tensor]
FORMAT = "ebmlab.BoltzmannMachine"
FORMAT_VERSION = 1
MAX_ENUMERATION = 2**20


class BoltzmannMachine(nn.Module):
    """A Boltzmann machine of any depth; ``BoltzmannMachine([v, h])`` is an RBM.

    Weights start as N(0, 0.01²) drawn from ``seed``; call ``initialize(data)`` to set biases
    from the data as well.
    """

    def __init__(self, layers: Sequence[Layer], seed: int = 0) -> None:
        super().__init__()
        if isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence):
            raise TypeError(f"layers must be a list of ebmlab layers, got {type(layers).__name__}")
        layers = list(layers)
        seed = check_index(seed, "seed")
        if len(layers) < 2:
            raise ValueError(f"layers must list at least 2 layers (visible, hidden), got {len(layers)}")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(
                    f"layers[{i}] must be an ebmlab layer (BernoulliLayer, GaussianLayer, "
                    f"OneHotLayer), got {type(layer).__name__}"
                )
        if len({id(layer) for layer in layers}) != len(layers):
            raise ValueError("layers must be distinct objects; the same layer appears twice")
        for i, layer in enumerate(layers):
            if layer.name is None:
                layer.name = default_layer_name(i, len(layers))
        names = [layer.name for layer in layers]
        if len(set(names)) != len(names):
            raise ValueError(f"layer names must be unique, got {names}")
        self.layers = nn.ModuleList(layers)
        pairs = list(itertools.pairwise(layers))
        sizes = " and ".join(f"{a.n}×{b.n}" for a, b in pairs)
        itemsize = torch.empty(0).element_size()
        check_allocation(sum(a.n * b.n for a, b in pairs) * itemsize, "layers", f"the weights ({sizes})")
        g = torch.Generator().manual_seed(seed)
        try:
            self.weights = nn.ParameterList(nn.Parameter(0.01 * torch.randn(a.n, b.n, generator=g)) for a, b in pairs)
        except RuntimeError as err:  # the allocator refused although the memory seemed available
            raise AllocationError(f"layers: could not allocate the weights ({sizes}): {err}") from err

    # -- basic facts -------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        """Number of layers (2 for an RBM)."""
        return len(self.layers)

    @property
    def dtype(self) -> torch.dtype:
        return self.weights[0].dtype

    @property
    def device(self) -> torch.device:
        return self.weights[0].device

    @property
    def sizes(self) -> list[int]:
        return [layer.n for layer in self.layers]

    def generator(self, seed: int | None) -> torch.Generator | None:
        """A torch.Generator on the model's device seeded with ``seed`` (None: global RNG)."""
        if seed is None:
            return None
        return torch.Generator(device=self.device).manual_seed(check_index(seed, "seed"))

    def to(self, *args: Any, **kwargs: Any) -> BoltzmannMachine:
        """``nn.Module.to``, refusing with a ``ValueError`` a device that does not exist on this machine."""
        for arg in (*args[:1], kwargs.get("device")):
            if isinstance(arg, (str, torch.device)) or (isinstance(arg, int) and not isinstance(arg, bool)):
                check_device(arg)
        return super().to(*args, **kwargs)

    def cuda(self, device: int | torch.device | None = None) -> BoltzmannMachine:
        """Move to a CUDA device (``ValueError`` when CUDA is not available)."""
        return self.to(torch.device("cuda") if device is None else torch.device("cuda", device))

    # -- validation ----------------------------------------------------------------------------
    def _tensor(self, x: Any, name: str, allow_nan: bool = False) -> torch.Tensor:
        return as_tensor(x, name, dtype=self.dtype, device=self.device, allow_nan=allow_nan)

    def _visible(self, v: Any, name: str = "v") -> torch.Tensor:
        t = self._tensor(v, name)
        check_width(t, self.layers[0].n, name, f"the visible layer {self.layers[0].label}")
        self.layers[0].check(t, name)
        return t

    def _states(self, states: Any, name: str = "states", check: Sequence[int] = ()) -> States:
        """Validated tensors, one per layer; the layers listed in ``check`` must hold valid states
        (binary, one-hot, …); the others only finite numbers (e.g. mean-field magnetizations)."""
        if isinstance(states, torch.Tensor) or not isinstance(states, Sequence):
            raise TypeError(f"{name} must be a list of {self.depth} tensors, one per layer")
        if len(states) != self.depth:
            raise ValueError(f"{name} must hold one tensor per layer ({self.depth}), got {len(states)}")
        out = [self._tensor(s, f"{name}[{i}]") for i, s in enumerate(states)]
        rows = out[0].shape[0]
        for i, (s, layer) in enumerate(zip(out, self.layers)):
            check_width(s, layer.n, f"{name}[{i}]", f"layer {layer.label}")
            if s.shape[0] != rows:
                raise ValueError(f"{name}[{i}] has {s.shape[0]} rows, but {name}[0] has {rows}")
        for i in check:
            self.layers[i].check(out[i], f"{name}[{i}]")
        return out

    def _clamp(self, clamp: Any, rows: int) -> list[torch.Tensor | None]:
        if clamp is None:
            return [None] * self.depth
        if isinstance(clamp, torch.Tensor) or not isinstance(clamp, Sequence) or len(clamp) != self.depth:
            raise ValueError(f"clamp must be a list of {self.depth} masks (None for a free layer)")
        return [None if m is None else self._mask(m, rows, i, f"clamp[{i}]") for i, m in enumerate(clamp)]

    def _mask(self, mask: Any, rows: int, index: int, name: str) -> torch.Tensor:
        layer = self.layers[index]
        m = torch.as_tensor(np.asarray(mask) if not isinstance(mask, torch.Tensor) else mask)
        if m.dtype != torch.bool:
            raise TypeError(f"{name} must be a boolean mask, got dtype {m.dtype}")
        if m.shape not in ((layer.n,), (rows, layer.n)):
            raise ValueError(
                f"{name} must have shape ({layer.n},) or ({rows}, {layer.n}) to match layer "
                f"{layer.label}, got {tuple(m.shape)}"
            )
        m = m.to(self.device).expand(rows, layer.n)
        if isinstance(layer, OneHotLayer):
            sites = m.reshape(rows, layer.sites, layer.states)
            if (sites.any(-1) != sites.all(-1)).any():
                raise ValueError(f"{name} must fix or free whole sites of one-hot layer {layer.label}")
        return m

    # -- energies ------------------------------------------------------------------------------
    def _field(self, states: States, i: int) -> torch.Tensor:
        f = None
        if i > 0:
            f = self.layers[i - 1].rescale(states[i - 1]) @ self.weights[i - 1]
        if i < self.depth - 1:
            up = self.layers[i + 1].rescale(states[i + 1]) @ self.weights[i].T
            f = up if f is None else f + up
        return f

    def field(self, states: Sequence[Any], i: int) -> torch.Tensor:
        """f_i = r_{i−1}(h_{i−1}) W_i + r_{i+1}(h_{i+1}) W_{i+1}ᵀ, the field on layer ``i``.

        ``states`` may hold magnetizations (any finite values), not only valid states.
        """
        i = check_index(i, "i")
        if not -self.depth <= i < self.depth:
            raise ValueError(f"i must index a layer (0..{self.depth - 1}), got {i}")
        return self._field(self._states(states), i % self.depth)

    def _energy(self, states: States) -> torch.Tensor:
        e = sum(layer.energy(s) for layer, s in zip(self.layers, states))
        for i, w in enumerate(self.weights):
            lo = self.layers[i].rescale(states[i])
            hi = self.layers[i + 1].rescale(states[i + 1])
            e = e - ((lo @ w) * hi).sum(-1)
        return e

    def energy(self, states: Sequence[Any]) -> torch.Tensor:
        """E(h_0, …, h_L) per row; every state must be valid for its layer (binary, one-hot, finite).

        Differentiable with respect to the states and the parameters.
        """
        return self._energy(self._states(states, check=range(self.depth)))

    def _partial_free_energy(self, states: States, parity: int, beta: Beta = 1.0) -> torch.Tensor:
        out = 0.0
        for i, layer in enumerate(self.layers):
            if i % 2 == parity:
                field = self._field(states, i)
                out = out - layer.log_partition(field, beta) / beta
            else:
                out = out + layer.energy(states[i])
        return out

    def partial_free_energy(self, states: Sequence[Any], parity: int = 1) -> torch.Tensor:
        """F(h_other) = −log Σ_{layers of ``parity``} exp(−E): one parity summed out exactly.

        The entries of ``states`` at the summed-out layers are ignored (pass zeros).
        """
        if isinstance(parity, bool) or parity not in (0, 1):
            raise ValueError(f"parity must be 0 (even layers) or 1 (odd layers), got {parity!r}")
        kept = range(1 - parity, self.depth, 2)
        return self._partial_free_energy(self._states(states, check=kept), parity)

    def free_energy(self, v: Any) -> torch.Tensor:
        """F(v) = −log Σ_h exp(−E(v, h)), exact, per row.

        An RBM sums its hidden layer analytically. A deeper stack sums the odd layers analytically
        and enumerates the even hidden layers (h_2, h_4, …), so these must be small and discrete.
        """
        v = self._visible(v)
        return self._free_energy(v)

    def _free_energy(self, v: torch.Tensor) -> torch.Tensor:
        rows = v.shape[0]
        states = [v] + [layer.zero_field(rows) for layer in self.layers[1:]]
        even = list(range(2, self.depth, 2))
        if not even:
            return self._partial_free_energy(states, 1)
        count = math.prod(self.layers[i].num_states() for i in even)
        if count > MAX_ENUMERATION:
            raise ValueError(
                f"free_energy of a depth-{self.depth} model enumerates {count:.3g} states of the "
                f"even hidden layers (limit {MAX_ENUMERATION}); use mean_field for a bound instead"
            )
        terms = []
        for combo in itertools.product(*[self.layers[i].all_states() for i in even]):
            for i, h in zip(even, combo):
                states[i] = h.expand(rows, -1)
            terms.append(-self._partial_free_energy(states, 1))
        return -torch.logsumexp(torch.stack(terms), 0)

    # -- sampling ------------------------------------------------------------------------------
    def _gibbs(
        self,
        states: States,
        beta: Beta = 1.0,
        clamp: Sequence[torch.Tensor | None] | None = None,
        generator: torch.Generator | None = None,
    ) -> States:
        states = list(states)
        for parity in (0, 1):
            for i in range(parity, self.depth, 2):
                new = self.layers[i].sample(self._field(states, i), beta, generator)
                if clamp is not None and clamp[i] is not None:
                    new = torch.where(clamp[i], states[i], new)
                states[i] = new
        return states

    @torch.no_grad()
    def gibbs_step(
        self,
        states: Sequence[Any],
        beta: Any = 1.0,
        clamp: Sequence[Any] | None = None,
        generator: torch.Generator | None = None,
    ) -> States:
        """One block-Gibbs sweep at inverse temperature β: even layers, then odd layers.

        ``beta`` is a number or one value per row. ``clamp`` lists a boolean mask (or None) per
        layer; units where the mask is True keep their current value.
        """
        s = self._states(states, check=range(self.depth))
        check_generator(generator)
        rows = s[0].shape[0]
        return self._gibbs(s, check_beta(beta, rows, self.dtype, self.device), self._clamp(clamp, rows), generator)

    def random_states(self, rows: int, generator: torch.Generator | None = None) -> States:
        """Independent draws from each layer's own bias: the start of fresh chains."""
        rows = check_positive_int(rows, "rows", minimum=0)
        check_generator(generator)
        return [layer.random(rows, generator) for layer in self.layers]

    @torch.no_grad()
    def sample(
        self,
        n: int,
        steps: int = 100,
        beta: Any = 1.0,
        init: Sequence[Any] | None = None,
        seed: int | None = None,
        progress: bool = False,
        sampler: Sampler | None = None,
    ) -> States:
        """Fantasy particles: ``n`` chains run ``steps`` sweeps; returns every layer's state.

        ``samples[0]`` is the visible layer. Chains start from ``init`` or from the layer biases.
        ``sampler``: ``ebmlab.samplers.Gibbs()`` (default) or ``GibbsLangevin(...)`` for Gaussian units.
        """
        n = check_positive_int(n, "n")
        steps = check_positive_int(steps, "steps", minimum=0)
        itemsize = self.weights[0].element_size()
        check_allocation(2 * n * sum(self.sizes) * itemsize, "n", f"{n} chains of {sum(self.sizes)} units", self.device)
        sampler = get_sampler(sampler)
        g = self.generator(seed)
        states = self.random_states(n, g) if init is None else self._states(init, "init", check=range(self.depth))
        b = check_beta(beta, states[0].shape[0], self.dtype, self.device)
        for _ in tqdm(range(steps), desc="sampling", disable=not progress, leave=False):
            states = sampler.sweep(self, states, b, None, g)
        return states

    @torch.no_grad()
    def sample_conditional(
        self,
        v: Any,
        mask: Any,
        steps: int = 100,
        beta: Any = 1.0,
        seed: int | None = None,
        sampler: Sampler | None = None,
    ) -> torch.Tensor:
        """Visible samples from p(v_free | v_fixed): units where ``mask`` is True stay as in ``v``.

        Entries of ``v`` where the mask is False are ignored (they may be NaN). ``sampler`` as in ``sample``.
        """
        return self._clamped_chain(v, mask, steps, 0, beta, seed, average=False, sampler=sampler)

    @torch.no_grad()
    def impute(
        self,
        v: Any,
        mask: Any = None,
        steps: int = 100,
        burn_in: int = 100,
        method: str = "mean",
        seed: int | None = None,
    ) -> torch.Tensor:
        """Fill the missing entries of ``v`` from the model given the observed ones.

        ``mask`` is True where an entry is observed (None: wherever ``v`` is not NaN). After
        ``burn_in`` clamped Gibbs sweeps, ``method="mean"`` averages E[v_missing | h] over
        ``steps`` more sweeps (a Rao–Blackwellised estimate of E[v_missing | v_observed]);
        ``method="sample"`` returns one draw instead.
        """
        if method not in ("mean", "sample"):
            raise ValueError(f"method must be 'mean' or 'sample', got {method!r}")
        if mask is None:
            t = self._tensor(v, "v", allow_nan=True)
            mask = ~torch.isnan(t)
        return self._clamped_chain(v, mask, steps, burn_in, 1.0, seed, average=method == "mean")

    def _clamped_chain(
        self,
        v: Any,
        mask: Any,
        steps: int,
        burn_in: int,
        beta: Any,
        seed: int | None,
        average: bool,
        sampler: Sampler | None = None,
    ) -> torch.Tensor:
        sampler = get_sampler(sampler)
        steps = check_positive_int(steps, "steps", minimum=1)
        burn_in = check_positive_int(burn_in, "burn_in", minimum=0)
        t = self._tensor(v, "v", allow_nan=True)
        check_width(t, self.layers[0].n, "v", f"the visible layer {self.layers[0].label}")
        rows = t.shape[0]
        m = self._mask(mask, rows, 0, "mask")
        g = self.generator(seed)
        states = self.random_states(rows, g)
        states[0] = torch.where(m, t, states[0])
        self.layers[0].check(states[0], "v (at the entries where mask is True)")
        b = check_beta(beta, rows, self.dtype, self.device)
        clamp = [m] + [None] * (self.depth - 1)
        for _ in range(burn_in if average else burn_in + steps):
            states = sampler.sweep(self, states, b, clamp, g)
        if not average:
            return states[0]
        total = torch.zeros_like(t)
        for _ in range(steps):
            states = sampler.sweep(self, states, b, clamp, g)
            total += self.layers[0].mean(self._field(states, 0), b)
        return torch.where(m, states[0], total / steps)

    # -- mean field and prediction -------------------------------------------------------------
    @torch.no_grad()
    def mean_field(self, v: Any, steps: int = 50, tol: float = 1e-6, beta: float = 1.0) -> States:
        """Mean-field magnetizations of the hidden layers with v clamped: [v, m_1, …, m_L].

        Fixed point m_i = E[h_i | f_i(m)], iterated odd layers then even ones, starting from a
        bottom-up pass with doubled upward weights (Salakhutdinov & Hinton), until no unit moves by
        more than ``tol`` (a finite number >= 0) or ``steps`` sweeps. Exact for an RBM.
        """
        v = self._visible(v)
        steps = check_positive_int(steps, "steps")
        tol = check_real(tol, "tol", minimum=0.0)
        return self._mean_field(v, steps, tol, check_beta(beta, v.shape[0], self.dtype, self.device))

    def _mean_field(self, v: torch.Tensor, steps: int, tol: float, beta: Beta = 1.0) -> States:
        states: States = [v]
        for i in range(1, self.depth):
            below = self.layers[i - 1].rescale(states[i - 1]) @ self.weights[i - 1]
            scale = 2.0 if i < self.depth - 1 else 1.0
            states.append(self.layers[i].mean(scale * below, beta))
        if self.depth == 2:
            return states
        for _ in range(steps):
            change = 0.0
            for i in [*range(1, self.depth, 2), *range(2, self.depth, 2)]:
                new = self.layers[i].mean(self._field(states, i), beta)
                change = max(change, float((new - states[i]).abs().max()))
                states[i] = new
            if change < tol:
                break
        return states

    @torch.no_grad()
    def predict(self, v: Any, layer: int = -1, steps: int = 50) -> torch.Tensor:
        """Probabilities (for discrete units) or means of layer ``layer`` given visible data ``v``.

        Exact when the target is the top of a three-layer stack [v, h, y] with a discrete y of at
        most 4096 states, e.g. a label unit OneHotLayer(1, K):

            log p(y | v) = −H_y(y) + log Z_h(r(v) W_1 + r(y) W_2ᵀ) + const,

        which for Bernoulli h is d_y + Σ_j softplus(c_j + (vW_1)_j + (W_2)_{jy}); the result is
        the marginal probability of each unit (each one-hot value). Exact for the hidden layer of
        an RBM; mean field otherwise.
        """
        layer = check_index(layer, "layer")
        steps = check_positive_int(steps, "steps")
        if not -self.depth < layer < self.depth or layer % self.depth == 0:
            raise ValueError(f"layer must index a hidden layer (1..{self.depth - 1} or negative), got {layer}")
        t = layer % self.depth
        v = self._visible(v)
        target = self.layers[t]
        if self.depth == 3 and t == 2 and target.num_states() <= 4096:
            ys = target.all_states()
            rows = v.shape[0]
            up = self.layers[0].rescale(v) @ self.weights[0]
            down = target.rescale(ys) @ self.weights[1].T
            hidden = self.layers[1]
            logits = torch.stack([hidden.log_partition(up + down[k]) for k in range(ys.shape[0])], -1) - target.energy(
                ys
            ).expand(rows, -1)
            return torch.softmax(logits, -1) @ ys
        return self._mean_field(v, steps, 1e-6)[t]

    # -- initialization ------------------------------------------------------------------------
    @torch.no_grad()
    def initialize(self, data: Any, method: str = "hinton", seed: int = 0) -> BoltzmannMachine:
        """Set the visible layer from data moments and draw the weights.

        - ``"hinton"``: W ~ N(0, 0.01²), hidden biases at zero (Hinton's practical guide);
        - ``"glorot"``: W ~ U(±√(6/(n_in + n_out)));
        - ``"pca"``: W_1's columns are the data's principal directions, whitened so each hidden
          field has unit variance, hidden biases centring the fields; deeper weights as hinton.
        """
        if method not in ("hinton", "glorot", "pca"):
            raise ValueError(f"method must be 'hinton', 'glorot' or 'pca', got {method!r}")
        x = check_rows(self._visible(data, "data"), "data")
        g = self.generator(seed)
        self.layers[0].init_from_data(x)
        for layer in self.layers[1:]:
            for p in layer.parameters():
                p.zero_()
        for w in self.weights:
            n_in, n_out = w.shape
            if method == "glorot":
                a = math.sqrt(6.0 / (n_in + n_out))
                w.copy_((2 * torch.rand(w.shape, generator=g, dtype=w.dtype, device=w.device) - 1) * a)
            else:
                w.copy_(0.01 * torch.randn(w.shape, generator=g, dtype=w.dtype, device=w.device))
        if method == "pca":
            self._pca_init(x)
        return self

    def _pca_init(self, x: torch.Tensor) -> None:
        r = self.layers[0].rescale(x)
        centred = r - r.mean(0)
        _, s, vh = torch.linalg.svd(centred, full_matrices=False)
        k = min(self.layers[1].n, int((s > 1e-6 * s.max()).sum()))
        std = s[:k] / math.sqrt(max(x.shape[0] - 1, 1))
        self.weights[0][:, :k] = vh[:k].T / std
        field = r.mean(0) @ self.weights[0]
        if hasattr(self.layers[1], "bias"):
            self.layers[1].bias.copy_(-field)

    # -- persistence ---------------------------------------------------------------------------
    def spec(self) -> dict[str, Any]:
        """JSON-able description: layer types, sizes and names (enough to rebuild the model)."""
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "layers": [layer.spec() for layer in self.layers],
            "dtype": str(self.dtype).removeprefix("torch."),
        }

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> BoltzmannMachine:
        """Build an (untrained) model from ``spec()``."""
        dtype = check_spec(spec, "spec", FORMAT, FORMAT_VERSION)
        return cls([layer_from_spec(s) for s in spec["layers"]]).to(dtype)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model to ``path`` (safetensors with the JSON spec in its metadata), atomically."""
        return write_safetensors(path, dict(self.state_dict()), {"ebmlab_spec": json.dumps(self.spec())})


def default_layer_name(index: int, depth: int) -> str:
    """'visible', then 'hidden' for an RBM or 'hidden1', 'hidden2', … for a deep stack."""
    if index == 0:
        return "visible"
    return "hidden" if depth == 2 else f"hidden{index}"


def load(path: str | os.PathLike, device: str | torch.device | None = None) -> BoltzmannMachine:
    """Read a model written by ``BoltzmannMachine.save`` (never unpickles anything).

    ``device`` is checked before the file is read (``ValueError`` for an unknown or absent device).
    """
    if device is not None:
        check_device(device)
    tensors, meta = read_safetensors(path, "model")
    if "ebmlab_spec" not in meta:
        raise ValueError(f"{path} is a safetensors file but not an ebmlab model (no ebmlab_spec)")
    try:
        spec = json.loads(meta["ebmlab_spec"])
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} has a corrupted model description ({err})") from err
    dtype = check_spec(spec, f"{path}: the model description", FORMAT, FORMAT_VERSION)
    model = BoltzmannMachine([layer_from_spec(s) for s in spec["layers"]]).to(dtype)
    check_tensors(tensors, model.state_dict(), str(path))
    model.load_state_dict(tensors)
    return model if device is None else model.to(device)
