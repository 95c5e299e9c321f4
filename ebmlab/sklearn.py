"""scikit-learn estimators: ``BernoulliRBM`` (a drop-in for ``sklearn.neural_network.BernoulliRBM``)
and ``GaussianRBM`` for real-valued data, built on ``BoltzmannMachine`` and ``Trainer``.

Change one import and a pipeline trains with ebmlab::

    from ebmlab.sklearn import BernoulliRBM        # was: from sklearn.neural_network import BernoulliRBM

The constructor parameters, their defaults and the fitted attributes are scikit-learn's. The
default training is its algorithm: PCD-1 with ``batch_size`` persistent chains and plain SGD at
``learning_rate`` on the mean gradient ⟨∂F/∂θ⟩_data − ⟨∂F/∂θ⟩_chains; the extra keyword parameters
choose another ``method`` (``"pcd"``, ``"cd"``, ``"pt"``, ``"tap"``), ``k``, ``chains`` and
``optimizer``. Differences on purpose:

- ``score_samples`` is the exact log pseudo-likelihood Σ_i log σ(F(ṽ_i) − F(v)), ṽ_i = v with
  v_i ← 1 − v_i, summed over *every* unit i; scikit-learn returns n · (the term of one random i),
  an unbiased but noisy estimate of the same sum.
- mini-batches are reshuffled every epoch (scikit-learn keeps one fixed order), and the random
  numbers come from a ``torch.Generator`` seeded from ``random_state``, so numbers that depend on
  scikit-learn's exact random stream differ.
- computations run in ``dtype`` (float64 by default) whatever the input dtype; outputs and
  fitted attributes take the input's float dtype, so float32 and float64 inputs give the same fit.

As in scikit-learn, the visible values of ``BernoulliRBM`` are read as probabilities of the units
being on (binary data or values in [0, 1]); the energy is linear in them, so any finite value is
accepted. ``log_likelihood(X)`` adds what scikit-learn lacks: log p(v) with the exact log Z when
it can be enumerated, otherwise a forward-AIS estimate with its standard error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data
from torch.nn import functional as F

from .evaluate import ais, exact
from .layers import BernoulliLayer, GaussianLayer, Layer
from .model import BoltzmannMachine
from .train import CD, PCD, PT, TAP, Callback, Trainer, TrainState

__all__ = ["BernoulliRBM", "GaussianRBM", "LogLikelihood"]

METHODS = ("pcd", "cd", "pt", "tap")
OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}
DTYPES = {"float32": torch.float32, "float64": torch.float64}
# elements of the (rows, visible, hidden) field tensor of the pseudo-likelihood processed at once
CHUNK_ELEMENTS = 2**22


class ProbabilityBernoulliLayer(BernoulliLayer):
    """Bernoulli units whose data rows may hold probabilities (scikit-learn's convention).

    Same energy −bᵀv, conditionals and sampling as ``BernoulliLayer``; ``check`` refuses only a
    wrong shape and NaN/Inf, since H and the coupling are linear in v and defined for any value.
    """

    def check(self, x: torch.Tensor, name: str = "x") -> None:
        Layer.check(self, x, name)


@dataclass
class LogLikelihood:
    """log p(v) = −F(v) − log Z per row, and how log Z was obtained.

    ``exact``: log Z by enumeration (``log_z_stderr`` = 0). Otherwise forward AIS: log Ẑ is a
    stochastic lower bound on log Z, so ``per_row`` tends to overestimate log p(v);
    ``log_z_stderr`` is its standard error, shared by every row. ``mean_stderr`` adds the
    sampling error of the mean over rows.
    """

    per_row: np.ndarray
    log_z: float
    log_z_stderr: float
    exact: bool

    @property
    def mean(self) -> float:
        return float(self.per_row.mean())

    @property
    def mean_stderr(self) -> float:
        n = self.per_row.shape[0]
        spread = float(self.per_row.std(ddof=1)) / math.sqrt(n) if n > 1 else 0.0
        return math.hypot(spread, self.log_z_stderr)


class _Verbose(Callback):
    """Print scikit-learn's per-iteration line: ``[Name] Iteration i, <score> = s, time = t s``."""

    def __init__(self, estimator: _RBM, x: torch.Tensor) -> None:
        self.estimator, self.x = estimator, x

    def on_epoch_end(self, state: TrainState) -> None:
        est = self.estimator
        score = float(est._score_rows(self.x).mean())
        seconds = state.metrics["wall_seconds"]
        print(f"[{type(est).__name__}] Iteration {state.epoch}, {est._score_name} = {score:.2f}, time = {seconds:.2f}s")


class _RBM(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """What both estimators share; subclasses set the visible layer and the score."""

    _score_name = "score"

    # -- parameters ----------------------------------------------------------------------------
    def _check_params(self) -> None:
        for name, minimum in (("n_components", 1), ("batch_size", 1), ("n_iter", 0), ("k", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
        lr = self.learning_rate
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
            raise ValueError(f"learning_rate must be a positive finite number, got {lr!r}")
        if self.chains is not None and (
            isinstance(self.chains, bool) or not isinstance(self.chains, (int, np.integer)) or self.chains < 1
        ):
            raise ValueError(f"chains must be None (batch_size chains) or an integer >= 1, got {self.chains!r}")
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}, got {self.method!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        self._optimizer_class()
        if self.verbose is None or isinstance(self.verbose, str):
            raise TypeError(f"verbose must be an int or a bool, got {self.verbose!r}")

    def _optimizer_class(self) -> type:
        opt = self.optimizer
        if isinstance(opt, str) and opt in OPTIMIZERS:
            return OPTIMIZERS[opt]
        if isinstance(opt, type) and issubclass(opt, torch.optim.Optimizer):
            return opt
        raise ValueError(f"optimizer must be 'sgd', 'adam' or a torch.optim.Optimizer class, got {opt!r}")

    def _make_method(self) -> Any:
        chains = self.batch_size if self.chains is None else int(self.chains)
        k = int(self.k)
        if self.method == "pcd":
            return PCD(k=k, chains=chains)
        if self.method == "cd":
            return CD(k=k)
        if self.method == "pt":
            return PT(k=k, chains=chains)
        return TAP(order=2, chains=chains)

    # -- data ----------------------------------------------------------------------------------
    def _validate(self, X: Any, reset: bool) -> tuple[torch.Tensor, np.dtype]:
        """(tensor in the model's dtype on its device, the float dtype of the outputs)."""
        X = validate_data(self, X, accept_sparse=("csr", "csc"), dtype=(np.float64, np.float32), reset=reset)
        out = X.dtype
        if sp.issparse(X):
            X = X.toarray()
        return torch.tensor(X, dtype=DTYPES[self.dtype], device=self.device), out

    def _tensor(self, v: Any) -> torch.Tensor:
        """An unvalidated array (1-D or 2-D) as a 2-D tensor in the model's dtype (private helpers)."""
        a = v.toarray() if sp.issparse(v) else np.asarray(v, dtype=np.float64)
        m = self.model_
        return torch.tensor(np.atleast_2d(a), dtype=m.dtype, device=m.device)

    @staticmethod
    def _numpy(t: torch.Tensor, dtype: Any, like: Any = None) -> np.ndarray:
        a = t.detach().cpu().numpy().astype(dtype, copy=False)
        return a.reshape(-1) if like is not None and np.ndim(like) == 1 else a

    # -- building and training -----------------------------------------------------------------
    def _build(self, x: torch.Tensor, rng: np.random.RandomState) -> None:
        seeds = rng.randint(0, 2**31 - 1, size=3)
        layers = [self._visible_layer(x.shape[1], x), BernoulliLayer(int(self.n_components))]
        model = BoltzmannMachine(layers, seed=int(seeds[0])).to(dtype=DTYPES[self.dtype], device=self.device)
        self.model_ = model
        self._trainer = self._new_trainer(int(seeds[1]))
        self._sampler = torch.Generator(device=model.device).manual_seed(int(seeds[2]))
        self._trainer_state = None

    def _new_trainer(self, seed: int) -> Trainer:
        """A Trainer of ``model_`` with the estimator's method and optimizer, no metrics, no progress bar."""
        return Trainer(
            self.model_,
            self._make_method(),
            optimizer=self._optimizer_class(),
            lr=float(self.learning_rate),
            batch_size=int(self.batch_size),
            metrics=[],
            seed=seed,
            progress=False,
        )

    @property
    def trainer_(self) -> Trainer:
        """The ebmlab ``Trainer`` of this fit (rebuilt from its state after unpickling)."""
        check_is_fitted(self, "model_")
        if self._trainer is None:
            self._trainer = self._new_trainer(0)
            self._trainer.load_state_dict(self._trainer_state)
            self._trainer_state = None
        return self._trainer

    def _train(self, x: torch.Tensor, epochs: int, batch_size: int, callbacks: list[Callback]) -> None:
        trainer = self.trainer_
        trainer.batch_size = batch_size
        trainer.callbacks = callbacks
        try:
            trainer.fit(x, epochs=trainer.epoch + epochs)
        finally:
            trainer.callbacks = []  # the verbose callback holds the training data

    def fit(self, X: Any, y: Any = None) -> _RBM:
        """Fit the model to ``X`` (n_samples, n_features): ``n_iter`` epochs of mini-batches."""
        self._check_params()
        x, self._fit_dtype = self._validate(X, reset=True)
        self._build(x, check_random_state(self.random_state))
        if self.n_iter > 0:
            callbacks = [_Verbose(self, x)] if self.verbose else []
            self._train(x, int(self.n_iter), min(int(self.batch_size), x.shape[0]), callbacks)
        return self

    def partial_fit(self, X: Any, y: Any = None) -> _RBM:
        """One gradient step with all rows of ``X`` as the mini-batch (builds the model on the first call)."""
        first = not hasattr(self, "model_")
        if first:
            self._check_params()
        x, dtype = self._validate(X, reset=first)
        if first:
            self._fit_dtype = dtype
            if not hasattr(self, "_partial_rng"):
                self._partial_rng = check_random_state(self.random_state)
            self._build(x, self._partial_rng)
        self._train(x, 1, x.shape[0], [])
        return self

    # -- fitted attributes (views of the model's parameters) -----------------------------------
    @property
    def _out_dtype(self) -> Any:
        return getattr(self, "_fit_dtype", np.float64)

    def _param(self, t: torch.Tensor) -> np.ndarray:
        return t.detach().cpu().numpy().astype(self._out_dtype, copy=False)

    def _assign(self, t: torch.Tensor, value: Any, name: str) -> None:
        a = np.asarray(value, dtype=np.float64)
        if a.shape != tuple(t.shape):
            raise ValueError(f"{name} must have shape {tuple(t.shape)}, got {a.shape}")
        with torch.no_grad():
            t.copy_(torch.as_tensor(a, dtype=t.dtype, device=t.device))

    @property
    def components_(self) -> np.ndarray:
        """Weights W, shape (n_components, n_features) (scikit-learn's layout: ``model_.weights[0].T``)."""
        check_is_fitted(self, "model_")
        return self._param(self.model_.weights[0]).T

    @components_.setter
    def components_(self, value: Any) -> None:
        self._assign(self.model_.weights[0], np.asarray(value).T, "components_")

    @property
    def intercept_hidden_(self) -> np.ndarray:
        """Biases of the hidden units, shape (n_components,)."""
        check_is_fitted(self, "model_")
        return self._param(self.model_.layers[1].bias)

    @intercept_hidden_.setter
    def intercept_hidden_(self, value: Any) -> None:
        self._assign(self.model_.layers[1].bias, value, "intercept_hidden_")

    @property
    def h_samples_(self) -> np.ndarray:
        """The hidden states of the negative phase after the last step (PCD: the persistent chains).

        Shape (chains, n_components); ``method="tap"`` gives the hidden magnetizations instead.
        """
        check_is_fitted(self, "model_")
        particles = self.trainer_.method.particles
        if particles is None:
            return np.zeros((0, int(self.n_components)), dtype=self._out_dtype)
        return self._param(particles[1])

    @property
    def _n_features_out(self) -> int:
        return int(self.n_components)

    # -- inference -----------------------------------------------------------------------------
    def _hidden_field(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model_
        return m.field([x, m.layers[1].zero_field(x.shape[0])], 1)

    @torch.no_grad()
    def _mean_hiddens(self, v: Any) -> np.ndarray:
        """p(h_j = 1 | v) (scikit-learn's private helper, used by its tests)."""
        x = self._tensor(v)
        p = self.model_.layers[1].mean(self._hidden_field(x))
        return self._numpy(p, np.asarray(v).dtype if np.asarray(v).dtype.kind == "f" else np.float64, like=v)

    def _sample_hiddens(self, v: Any, rng: np.random.RandomState) -> np.ndarray:
        """h ~ p(h | v) drawn with the numpy ``rng`` (scikit-learn's private helper, used by its tests)."""
        p = self._mean_hiddens(v)
        return rng.uniform(size=p.shape) < p

    def transform(self, X: Any) -> np.ndarray:
        """Hidden unit probabilities p(h_j = 1 | v), shape (n_samples, n_components)."""
        check_is_fitted(self, "model_")
        x, dtype = self._validate(X, reset=False)
        with torch.no_grad():
            p = self.model_.layers[1].mean(self._hidden_field(x))
        return self._numpy(p, dtype)

    def score_samples(self, X: Any) -> np.ndarray:
        """Per-row score (see the subclass)."""
        check_is_fitted(self, "model_")
        x, dtype = self._validate(X, reset=False)
        return self._numpy(self._score_rows(x), dtype)

    @torch.no_grad()
    def gibbs(self, v: Any) -> np.ndarray:
        """One Gibbs sweep from the visible rows ``v``: h ~ p(h | v), then v' ~ p(v | h)."""
        check_is_fitted(self, "model_")
        x, dtype = self._validate(v, reset=False)
        m, g = self.model_, self._sampler
        h = m.layers[1].sample(self._hidden_field(x), 1.0, g)
        new = m.layers[0].sample(m.field([x, h], 0), 1.0, g)
        return self._gibbs_output(new, dtype)

    def _gibbs_output(self, v: torch.Tensor, dtype: Any) -> np.ndarray:
        return self._numpy(v, dtype)

    @torch.no_grad()
    def log_likelihood(self, X: Any, chains: int = 100, betas: Any = "sm2008", seed: int = 0) -> LogLikelihood:
        """log p(v) per row: exact log Z when enumerable (≤ 2^26 states), else forward AIS (see ``LogLikelihood``).

        ``chains``, ``betas`` and ``seed`` set the AIS run (``ebmlab.evaluate.ais.log_partition``,
        its base model fit to ``X``).
        """
        check_is_fitted(self, "model_")
        x, _ = self._validate(X, reset=False)
        self._check_likelihood_data(x)
        m = self.model_
        if exact.enumeration_cost(m)[1] <= exact.MAX_CONFIGURATIONS:
            log_z, stderr, is_exact = exact.log_partition(m), 0.0, True
        else:
            result = ais.log_partition(m, chains=chains, betas=betas, data=x, seed=seed, progress=False)
            log_z, stderr, is_exact = result.log_z, result.stderr, False
        rows = (-m.free_energy(x).to(torch.float64) - log_z).cpu().numpy()
        return LogLikelihood(rows, float(log_z), float(stderr), is_exact)

    def _check_likelihood_data(self, x: torch.Tensor) -> None:
        """Refuse rows that have no likelihood under the model (nothing to refuse by default)."""

    # -- scikit-learn protocol -----------------------------------------------------------------
    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    def __getstate__(self) -> dict[str, Any]:
        """Picklable state: the live Trainer (threads, events) is replaced by its ``state_dict()``."""
        state = self.__dict__.copy()
        trainer = state.get("_trainer")
        if trainer is not None:
            state["_trainer_state"] = trainer.state_dict()
            state["_trainer"] = None
        return state


class BernoulliRBM(_RBM):
    """Bernoulli RBM with binary hidden units; a drop-in for ``sklearn.neural_network.BernoulliRBM``.

    scikit-learn's parameters: ``n_components`` hidden units, ``learning_rate``, ``batch_size``,
    ``n_iter`` epochs, ``verbose``, ``random_state``. ebmlab's: ``method`` (``"pcd"``: persistent
    chains; ``"cd"``: chains from the batch; ``"pt"``: parallel tempering; ``"tap"``: TAP-2, no
    sampling), ``k`` Gibbs sweeps per step, ``chains`` (default ``batch_size``), ``optimizer``
    (``"sgd"``, ``"adam"`` or a ``torch.optim.Optimizer`` class, built with ``learning_rate``),
    ``dtype`` and ``device`` of the computation.

    Fitted: ``components_`` (n_components, n_features), ``intercept_hidden_``,
    ``intercept_visible_``, ``h_samples_``, ``n_features_in_``, and the ebmlab ``model_``
    (a ``BoltzmannMachine``; the attributes above are views of its parameters) and ``trainer_``.
    """

    _score_name = "pseudo-likelihood"

    def __init__(
        self,
        n_components: int = 256,
        *,
        learning_rate: float = 0.1,
        batch_size: int = 10,
        n_iter: int = 10,
        verbose: int = 0,
        random_state: Any = None,
        method: str = "pcd",
        k: int = 1,
        chains: int | None = None,
        optimizer: Any = "sgd",
        dtype: str = "float64",
        device: str = "cpu",
    ) -> None:
        self.n_components = n_components
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.verbose = verbose
        self.random_state = random_state
        self.method = method
        self.k = k
        self.chains = chains
        self.optimizer = optimizer
        self.dtype = dtype
        self.device = device

    def _visible_layer(self, n: int, x: torch.Tensor) -> Layer:
        return ProbabilityBernoulliLayer(n)

    @property
    def intercept_visible_(self) -> np.ndarray:
        """Biases of the visible units, shape (n_features,)."""
        check_is_fitted(self, "model_")
        return self._param(self.model_.layers[0].bias)

    @intercept_visible_.setter
    def intercept_visible_(self, value: Any) -> None:
        self._assign(self.model_.layers[0].bias, value, "intercept_visible_")

    def score_samples(self, X: Any) -> np.ndarray:
        """Log pseudo-likelihood per row, Σ_i log σ(F(ṽ_i) − F(v)) over every visible unit i.

        ṽ_i is v with v_i ← 1 − v_i; for binary v the term is log p(v_i | v_{−i}) exactly.
        scikit-learn returns n_features times the term of one random unit instead (same mean).
        """
        return super().score_samples(X)

    @torch.no_grad()
    def _score_rows(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model_
        w, b, hidden = m.weights[0], m.layers[0].bias, m.layers[1]
        step = max(1, CHUNK_ELEMENTS // (w.shape[0] * w.shape[1]))
        out = []
        for start in range(0, x.shape[0], step):
            v = x[start : start + step]
            field = v @ w
            flip = 1 - 2 * v  # ṽ_i − v_i
            # −F(ṽ_i) + F(v) = b_i (ṽ_i − v_i) + log Z_h(vW + (ṽ_i − v_i) W_i) − log Z_h(vW)
            gain = flip * b + hidden.log_partition(field.unsqueeze(1) + flip.unsqueeze(-1) * w)
            gain = gain - hidden.log_partition(field).unsqueeze(1)
            out.append(-F.softplus(gain).sum(1))  # log σ(−gain) = log p(v_i | v_{−i})
        return torch.cat(out) if out else x.new_zeros(0)

    def _gibbs_output(self, v: torch.Tensor, dtype: Any) -> np.ndarray:
        return v.detach().cpu().numpy() > 0.5  # boolean, as scikit-learn's

    def _check_likelihood_data(self, x: torch.Tensor) -> None:
        if ((x != 0) & (x != 1)).any():
            raise ValueError("X must be binary (0/1) for log_likelihood: values in between are not states of the model")


class GaussianRBM(_RBM):
    """RBM with Gaussian visible units (learned mean and variance) and binary hidden units.

    The same interface as ``BernoulliRBM`` for real-valued data. The visible means and variances
    start at the data's (``GaussianLayer.init_from_data``); the defaults train with Adam at
    ``learning_rate=1e-3`` (plain SGD at scikit-learn's 0.1 is unstable with learned variances).
    ``score_samples`` is −F(v), the log-density up to the constant log Z (differences between rows
    are exact; ``log_likelihood`` normalises it). Fitted: ``components_`` (the weights W of
    E = Σ (v−μ)²/(2σ²) − (v/σ²)ᵀW h − cᵀh), ``intercept_hidden_`` (c), ``intercept_visible_`` (μ),
    ``variance_`` (σ²), ``h_samples_``, ``n_features_in_``, ``model_``, ``trainer_``.
    """

    _score_name = "mean -free energy"

    def __init__(
        self,
        n_components: int = 256,
        *,
        learning_rate: float = 1e-3,
        batch_size: int = 10,
        n_iter: int = 10,
        verbose: int = 0,
        random_state: Any = None,
        method: str = "pcd",
        k: int = 1,
        chains: int | None = None,
        optimizer: Any = "adam",
        dtype: str = "float64",
        device: str = "cpu",
    ) -> None:
        self.n_components = n_components
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.verbose = verbose
        self.random_state = random_state
        self.method = method
        self.k = k
        self.chains = chains
        self.optimizer = optimizer
        self.dtype = dtype
        self.device = device

    def _visible_layer(self, n: int, x: torch.Tensor) -> Layer:
        layer = GaussianLayer(n).to(dtype=x.dtype, device=x.device)
        layer.init_from_data(x)
        return layer

    @property
    def intercept_visible_(self) -> np.ndarray:
        """Means μ of the visible units, shape (n_features,)."""
        check_is_fitted(self, "model_")
        return self._param(self.model_.layers[0].loc)

    @intercept_visible_.setter
    def intercept_visible_(self, value: Any) -> None:
        self._assign(self.model_.layers[0].loc, value, "intercept_visible_")

    @property
    def variance_(self) -> np.ndarray:
        """Variances σ² of the visible units, shape (n_features,)."""
        check_is_fitted(self, "model_")
        return self._param(self.model_.layers[0].var)

    def score_samples(self, X: Any) -> np.ndarray:
        """−F(v) per row: log p(v) + log Z (see ``log_likelihood`` for the normalised value)."""
        return super().score_samples(X)

    @torch.no_grad()
    def _score_rows(self, x: torch.Tensor) -> torch.Tensor:
        return -self.model_.free_energy(x)
