"""A live log-likelihood for training: log Z tracked across parameter updates.

``LiveLogLikelihood()(model, data)`` returns the mean log p(v) = −F(v) − log Z over the rows of
``data`` as an ``Estimate`` (``.stderr`` is the standard error of log Z; the free-energy term is
exact for the given rows). It is a *stateful* metric (``StatefulMetric``): it remembers the
parameters of its last call and carries log Z from one call to the next, so each call pays only
for how far the parameters moved.

Exact mode (``method="exact"``, or ``"auto"`` when enumeration costs at most ``exact_limit``
configurations × units of the other side): ``exact.log_partition`` whenever the parameters change.

Tracked mode (RBMs with Bernoulli/OneHot layers) has two ways to carry log Z forward.

*Per step, through the Trainer* (``after_step``, Desjardins, Courville & Bengio 2011): every ``every``
optimizer steps the metric's own chains (the ``particles`` of the anchor, never the training's
chains: the update that follows them raises F where they sit, which biases any estimate made with
them by tens of nats on 784×500) get ``chain_sweeps`` block-Gibbs sweeps under the current
parameters θ_c, and Bennett's acceptance ratio between the chains before (samples of θ_{c−1}) and
after (samples of θ_c) adds log Z_c − log Z_{c−1} (``bridge``; its asymptotic variance adds to the
standard error). A call between checkpoints adds log Z(θ) − log Z_c by importance sampling with the
checkpoint's samples. Cost: 4 free-energy-sized matrix products of the chains per bridge.

*Per call, without the hook* (the metric called directly, e.g. after ``fit``): sequential Monte Carlo.
Between the parameters A of the last call and B of this one the path

    p_s(v, h_A, h_B) ∝ exp(−(1 − s) E_A(v, h_A) − s E_B(v, h_B)),   s ∈ [0, 1],

has v-marginal p_s(v) ∝ exp(−F_s(v)) with, summing both hidden copies out exactly,

    −F_s(v) = −(1 − s) H_A(v) − s H_B(v) + log Z_hA(v W_A, β = 1 − s) + log Z_hB(v W_B, β = s),

and Z_{s=1} / Z_{s=0} = Z_B / Z_A (the hidden copy at β = 0 contributes the same count of states at
both ends). ``particles`` visible states carry normalized weights W_i; a step s → s' multiplies
them by u_i = exp(F_s(v_i) − F_{s'}(v_i)) and adds log Σ_i W_i u_i to log Z (an unbiased estimate of
Z_{s'}/Z_s given equilibrium particles); s' is the largest value whose conditional effective sample
size (Σ W u)² / Σ W u² stays ≥ ``ess`` × particles (bisection: F_s is cheap in s once v W_A and
v W_B are known). The particles are then moved by a kernel that leaves p_{s'} invariant: h_A at
β = 1 − s' and h_B at β = s' given v; then, once the metric has seen data, ``jumps``
independence Metropolis–Hastings moves of (h_A, h_B) proposing from the data,
q(h_A, h_B) = (1/N) Σ_n p_A(h_A | x_n; 1 − s') p_B(h_B | x_n; s') over ``proposal_rows`` kept rows
(a tractable mixture, so the acceptance ratio π(h')q(h) / π(h)q(h') is exact; it lets particles reach
modes near the data that Gibbs sweeps would not); then v given both. Particles are resampled
(systematic) when their ESS falls below ``resample`` × particles, and get ``sweeps`` more such moves
under B at the end of each call. The anchor is the model of the first call with its weights set to zero: its log Z
is a sum of per-layer log partitions and its visible states are drawn exactly; the first call
anneals from it (the Trainer makes that call before training, when the model is near it).

Error and verdict. SMC: between resamplings the product of the increments is an importance weight
with relative variance ≈ 1/ESS − 1/P per block (delta method); the blocks add up to ``stderr``,
with the bridges' variances. This covers the Monte Carlo noise only: chains that lag behind the
training or miss modes bias the tracked log Z low (the log-likelihood high). Two checks catch
it (``_lift``) at the first call after each change of the parameters, on that call's rows: the certain
bound log Z ≥ log Σ_distinct rows exp(−F), and importance sampling of the hidden marginal centred on
the rows and on the metric's chains (``data_log_partition``, unbiased in Z, so low in log Z; the rows
find the mass near the data that the chains miss, the chains the model's own modes away from the data);
log Z is lifted to the larger when it is above (the sampled one by 3 standard errors). The verdict
``trusted`` turns false, and the reported ``stderr`` becomes ``inf``, once a lift happened or a
bridge's overlap fell below ``min_overlap``; in that last case (``lost``) the chains cannot follow the
training step by step, bridging stops, the training's own negative states (``method.particles``, at no
cost) become the chain centres of the sampled estimate, and each change of parameters gets log Z from
those two estimates alone: a cheap estimate that errs low, not a tracked one. Before the value a ``fit``
ends with, the Trainer calls ``settle``: a copy of those centres gets ``settle_sweeps`` sweeps under the
final parameters (the training's chains lag behind the model: each update raises F where they sit) and
the sampled estimate ``settle_samples`` draws, which brings that last value close to a converged
estimate (still untrusted).

Measured: within 0.5 nat of exact at every epoch on 16×8, 16×16 and 16×20 RBMs (CD-1, PCD-1), within
2 nats on a 784×16 MNIST RBM (PCD-1, lr 1e-3). On the 784×500 MNIST-5k RBM with the Trainer's
defaults (SGD lr 0.05, PCD-1) log Z swings by up to 100 nats per epoch, the first bridge's overlap is
≈ 0.1 (lost); the estimate centred on rows and the training's chains is off by up to ≈ 8 nats at some
epochs, and the settled value the fit ends with is within 0.5 nat of the converged PT + BAR / RAISE
bracket (log Z 411.5 against 411.0; within 1.3 nats on six seeds of the settle alone), at ≈ 10 % of
the training time in all (see ``benchmarks/metrics_cost.py``).
"""

from __future__ import annotations

import abc
import copy
import math
import time
from typing import Any

import torch

from .._checks import check_positive_int
from ..layers import BernoulliLayer, OneHotLayer
from ._common import Estimate, check_model
from .bar import bennett
from .exact import enumeration_cost, log_partition
from .floor import data_log_partition

METHODS = ("auto", "exact", "tracked")
EXACT_LIMIT = 2**22
BISECTION_STEPS = 12

Rows = tuple[torch.Tensor, torch.Tensor]  # data rows' hidden fields through the models A and B


class StatefulMetric(abc.ABC):
    """A metric that keeps state between calls: ``__call__(model, data) -> float``, ``update(model)``
    (advance the state to the model's current parameters without data) and ``reset()`` (forget it).

    A registry entry that is a ``StatefulMetric`` subclass is a factory: ``get_metric`` and the
    Trainer build one instance per use; the Trainer calls ``update`` before its first epoch,
    ``after_step(model, method)`` after every optimizer step when the metric defines it (optional),
    ``settle(model)`` right before the last epoch's values of each ``fit`` when it defines that (optional:
    a chance to spend more on the value a fit ends with), and ``reset`` when its state is loaded from a
    checkpoint.
    """

    @abc.abstractmethod
    def __call__(self, model: Any, data: Any) -> float:
        """The metric's value on ``data`` for the model's current parameters."""

    @abc.abstractmethod
    def update(self, model: Any) -> None:
        """Advance the state to the model's current parameters."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Forget the state."""


def _tracked_layers_ok(model: Any) -> bool:
    return model.depth == 2 and all(isinstance(layer, (BernoulliLayer, OneHotLayer)) for layer in model.layers)


def exact_cost(model: Any) -> float:
    """Configurations enumerated by ``exact.log_partition`` × units on the other side (inf if impossible)."""
    parity, count = enumeration_cost(model)
    other = sum(layer.n for i, layer in enumerate(model.layers) if i % 2 != parity)
    return count * max(other, 1)


class LiveLogLikelihood(StatefulMetric):
    """Mean log p(v) with log Z exact (cheap enumeration) or tracked across calls (see the module docstring).

    Args:
        particles: SMC particles (visible states) of the tracked mode; the chains of the per-step bridges.
        sweeps: extra moves (Gibbs, then the jumps) of the particles under the current model per call.
        jumps: data-driven Metropolis–Hastings moves of the particles per call (see the module docstring).
        proposal_rows: data rows kept (from the first call with data) to propose jumps from.
        ess: target conditional effective sample size per annealing step, as a fraction of ``particles``.
        resample: resample when the ESS falls below this fraction of ``particles``.
        method: ``"auto"`` (exact when cheap, else tracked), ``"exact"`` or ``"tracked"``.
        exact_limit: the largest enumeration cost (``exact_cost``) that ``"auto"`` treats as cheap.
        seed: seeds the particles and their moves (the Trainer's random streams are not used).
        every: optimizer steps between two bridges when the Trainer calls ``after_step``.
        chain_sweeps: block-Gibbs sweeps of the chains under the new parameters per bridge.
        min_overlap: a bridge whose BAR overlap (1: same distribution, 0: disjoint) falls below this makes
            the metric ``lost`` (see the module docstring).
        data_samples: draws of the importance sampler centred on rows and chains per change of parameters (0: off).
        settle_sweeps: sweeps of the chains under the final parameters in ``settle`` (once ``lost``; 0: off).
        settle_samples: draws of that importance sampler at the call after ``settle``.

    Diagnostics: ``trusted``, ``lost``, ``checkpoints`` (bridges), ``overlap`` (the smallest),
    ``floored`` (calls that lifted log Z to a data estimate), ``seconds`` (CPU seconds in ``after_step``).
    """

    def __init__(
        self,
        particles: int = 100,
        sweeps: int = 1,
        jumps: int = 1,
        proposal_rows: int = 256,
        ess: float = 0.9,
        resample: float = 0.5,
        method: str = "auto",
        exact_limit: float = EXACT_LIMIT,
        seed: int = 0,
        every: int = 10,
        chain_sweeps: int = 1,
        min_overlap: float = 0.2,
        data_samples: int = 100,
        settle_sweeps: int = 30,
        settle_samples: int = 1000,
    ) -> None:
        self.particles = check_positive_int(particles, "particles", minimum=2)
        self.sweeps = check_positive_int(sweeps, "sweeps", minimum=0)
        self.jumps = check_positive_int(jumps, "jumps", minimum=0)
        self.proposal_rows = check_positive_int(proposal_rows, "proposal_rows")
        for name, value in (("ess", ess), ("resample", resample)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
                raise ValueError(f"{name} must be a number in (0, 1), got {value!r}")
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        if isinstance(exact_limit, bool) or not isinstance(exact_limit, (int, float)) or exact_limit < 0:
            raise ValueError(f"exact_limit must be a non-negative number, got {exact_limit!r}")
        self.ess, self.resample, self.method = float(ess), float(resample), method
        self.exact_limit = float(exact_limit)
        self.seed = check_positive_int(seed, "seed", minimum=0)
        self.every = check_positive_int(every, "every")
        self.chain_sweeps = check_positive_int(chain_sweeps, "chain_sweeps")
        if isinstance(min_overlap, bool) or not isinstance(min_overlap, (int, float)) or not 0 <= min_overlap <= 1:
            raise ValueError(f"min_overlap must be a number in [0, 1], got {min_overlap!r}")
        self.min_overlap = float(min_overlap)
        self.data_samples = check_positive_int(data_samples, "data_samples", minimum=0)
        self.settle_sweeps = check_positive_int(settle_sweeps, "settle_sweeps", minimum=0)
        self.settle_samples = check_positive_int(settle_samples, "settle_samples")
        self.reset()

    def reset(self) -> None:
        """Forget the tracked log Z, the particles and the remembered parameters."""
        self._params: list[torch.Tensor] | None = None
        self._previous: Any = None
        self._v: torch.Tensor | None = None
        self._log_w: torch.Tensor | None = None
        self._log_z = math.nan
        self._var = 0.0
        self._generator: torch.Generator | None = None
        self._rows: torch.Tensor | None = None
        self.mode: str | None = None
        self._sizes: tuple[int, ...] | None = None  # the layer sizes of the model the mode was chosen for
        self.steps = 0
        self.jump_acceptance = math.nan
        self._hooked = 0  # training steps seen through ``after_step``
        self._f: torch.Tensor | None = None  # F at the checkpoint's parameters of its samples ``_v``
        self._peek = (0.0, 0.0)  # (log Z now − log Z at the checkpoint, its variance)
        self.checkpoints = 0
        self.floored = 0  # calls at which log Z was lifted to a data bound (see ``_lift``)
        self._lifted_at: Any = None
        self.overlap = math.nan  # the smallest BAR overlap of a bridge so far (1: identical, 0: disjoint)
        self.seconds = 0.0  # CPU seconds spent in ``after_step``
        self._settled = False  # ``settle`` ran since the last change of the parameters
        self._training_chains: torch.Tensor | None = None  # the training method's visible negative states, once lost

    # -- public --------------------------------------------------------------------------------
    @property
    def every_epoch(self) -> bool:
        """True in tracked mode: the Trainer then runs it every epoch, outside ``metric_budget`` (skipping
        epochs would save little — a call's work grows with the parameter change since the last one)."""
        return self.mode == "tracked"

    @property
    def log_z(self) -> Estimate:
        """The current log Z estimate with its standard error (NaN before the first update)."""
        if self._v is None:
            return Estimate(self._log_z, 0.0)
        return Estimate(self._log_z + self._peek[0], math.sqrt(self._var + self._block_variance() + self._peek[1]))

    @torch.no_grad()
    def update(self, model: Any) -> None:
        """Bring log Z to the model's current parameters (nothing to do when they did not change)."""
        model = self._check_sizes(model)
        params = [p.detach() for p in model.parameters()]
        if self._params is not None and all(torch.equal(a, b) for a, b in zip(self._params, params)):
            return
        if self.mode is None:
            self.mode, self._sizes = self._choose_mode(model), tuple(layer.n for layer in model.layers)
        if self.mode == "exact":
            self._log_z = log_partition(model)
        elif self._v is None:
            self._anchor(model)
        elif self._hooked and not self.lost:  # once lost, ``__call__`` takes log Z from its rows (``_lift``)
            self._peek = self._importance(model)
        elif not self._hooked:
            self._track(self._previous, model)
        self._params = [p.clone() for p in params]

    @torch.no_grad()
    def after_step(self, model: Any, method: Any = None) -> None:
        """The Trainer's hook after every optimizer step (tracked mode; nothing to do otherwise).

        Every ``every`` steps: ``chain_sweeps`` block-Gibbs sweeps of the metric's own chains under the
        current parameters θ_c, and the bridge-sampling estimate of log Z_c − log Z_{c−1} between the
        chains before and after the sweeps (see ``bridge``), added to log Z. The training's own chains cannot
        serve for the bridges (the update that follows them raises F where they sit); once ``lost``, the
        latest visible negative states of ``method`` are kept as the centres of ``_lift``'s sampler."""
        if self.mode != "tracked" or self._v is None:
            return
        if self.lost:  # no more bridges; the training's latest negative states centre ``_lift``'s sampler
            particles = getattr(method, "particles", None)
            self._training_chains = particles[0] if particles else None
            return
        start = time.process_time()
        self._hooked += 1
        if self._hooked % self.every == 0:
            self._checkpoint(model)
        self.seconds += time.process_time() - start

    @torch.no_grad()
    def settle(self, model: Any) -> None:
        """Spend more on the next call's value (the Trainer calls it before the last epoch's metrics of ``fit``).

        Once ``lost`` (nothing to do otherwise), log Z comes from ``_lift``'s sampled estimate, centred on data
        rows and chains (the training's negative states, which lag behind a fast-moving model and miss its
        modes). Here a copy of those chains gets ``settle_sweeps`` block-Gibbs sweeps under the current
        parameters and becomes the centres, and the next call's sampled estimate takes ``settle_samples`` draws
        instead of ``data_samples``. The verdict stays untrusted: importance sampling cannot vouch for modes
        it missed."""
        model = self._check_sizes(model)
        if not self.lost or self._v is None or not self.settle_sweeps:
            return
        self._v = self._sweep(model, self._centres().clone(), sweeps=self.settle_sweeps)
        self._training_chains = None
        self._settled, self._lifted_at = True, None

    def __call__(self, model: Any, data: Any) -> Estimate:
        """Mean over rows of −F(v) − log Z, with the standard error of log Z."""
        model = self._check_sizes(model)
        x = model._visible(data, "data")
        if self._rows is None:
            self._rows = x[: self.proposal_rows].clone()
            if self.mode == "tracked":
                self._params = None  # move the particles now that there are rows to propose jumps from
        self.update(model)
        with torch.no_grad():
            if self.mode == "tracked":  # an RBM: −F from the hidden field, which ``_lift`` reuses
                field = model.layers[0].rescale(x) @ model.weights[0]
                neg_f = -self._free(model, x, field)
                if self._lifted_at is not self._params:
                    self._lift(model, x, neg_f, field)
                    self._lifted_at = self._params
            else:
                neg_f = -model._free_energy(x).to(torch.float64)
        z = self.log_z
        stderr = z.stderr if self.trusted else math.inf
        return Estimate(float(neg_f.mean()) - float(z), stderr)

    @property
    def lost(self) -> bool:
        """True once a bridge's overlap fell below ``min_overlap``: the chains cannot follow the training, so
        the metric stops bridging and each call's log Z is the larger of the data bounds of ``_lift`` alone."""
        return self.mode == "tracked" and self.checkpoints > 0 and self.overlap < self.min_overlap

    @property
    def trusted(self) -> bool:
        """False once the tracked log Z is known to be off: a bridge's overlap fell below ``min_overlap`` (the
        chains lost track of the model), or log Z fell below the data bound (see ``_lift``). The
        metric's ``stderr`` is then ``inf``; ``reset()`` (or a new Trainer) starts over."""
        if self.mode != "tracked":
            return True
        return not self.floored and (not self.checkpoints or self.overlap >= self.min_overlap)

    def _lift(self, model: Any, x: torch.Tensor, neg_f: torch.Tensor, field: torch.Tensor) -> None:
        """Two estimates of log Z that can only err low (in expectation), from the rows ``x``; when the larger is
        above the tracked log Z (the sampled one by more than 3 of its standard errors while it is trusted), the
        tracked one lifts to it (it is then closer to the truth) and ``floored`` counts it (the verdict turns
        untrusted). Once ``lost``, log Z is the larger of the two, afresh at every change of the parameters.

        * Z = Σ_v exp(−F(v)) ≥ Σ over the distinct rows of exp(−F): a certain bound.
        * Importance sampling of the hidden marginal centred on the rows and on chains c_m (``_centres``):
          h ~ q(h) = ½ (1/N) Σ_n p(h | x_n) + ½ (1/M) Σ_m p(h | c_m), then Ẑ = mean exp(−F_h(h)) / q(h), with
          −F_h(h) = −H_h(h) + log Z_v(W h) (the visible layer summed out; ``data_log_partition``). E Ẑ = Z, so
          log Ẑ errs low (Jensen) and mostly by missing mass that neither the rows nor the chains reach; the
          rows find the modes near the data that lagging chains miss. ``data_samples`` draws (0: off;
          ``settle_samples`` after ``settle``).
        """
        key = x.to(torch.float64) @ torch.rand(x.shape[1], dtype=torch.float64, device=x.device,
                                                generator=torch.Generator(device=x.device).manual_seed(0))
        _, inverse = torch.unique(key, return_inverse=True)  # distinct rows (a random projection tells them apart)
        first = torch.full((int(inverse.max()) + 1,), x.shape[0], dtype=torch.long, device=x.device)
        first.scatter_reduce_(0, inverse, torch.arange(x.shape[0], device=x.device), "amin")
        bound = float(torch.logsumexp(neg_f[first], 0))
        z = self.log_z
        if self.data_samples:  # a sampled estimate: it must clear a trusted tracked one by 3 standard errors
            margin = 3 * z.stderr if self.trusted else 0.0
            draws = self.settle_samples if self._settled else self.data_samples
            sampled = data_log_partition(model, x, draws, self._generator, field, self._centres()) - margin
            self._settled = False
            bound = max(bound, sampled)
        if self.lost:
            self._log_z, self._peek = bound, (0.0, 0.0)
            return
        lift = bound - float(z)
        if lift > 0:
            self._log_z += lift
            self.floored += 1

    # -- modes ---------------------------------------------------------------------------------
    def _centres(self) -> torch.Tensor:
        """The chain centres of ``_lift``'s sampler: the training's negative states once lost (they follow the
        model at no cost to the metric; as centres, not samples, their lag biases nothing), else the metric's."""
        assert self._v is not None
        chains = self._training_chains
        ok = chains is not None and chains.shape[1:] == self._v.shape[1:] and chains.dtype == self._v.dtype
        return chains.detach() if ok else self._v

    def _check_sizes(self, model: Any) -> Any:
        """The checked model; refuse one whose layer sizes differ from those the state was built for."""
        model = check_model(model)
        sizes = tuple(layer.n for layer in model.layers)
        if self._sizes is not None and sizes != self._sizes:
            raise ValueError(
                f"this LiveLogLikelihood tracks a model with layer sizes {list(self._sizes)}, got one with "
                f"{list(sizes)}; call reset() or use a new instance for another model"
            )
        return model

    def _choose_mode(self, model: Any) -> str:
        if self.method == "exact" or (self.method == "auto" and exact_cost(model) <= self.exact_limit):
            return "exact"
        if not _tracked_layers_ok(model):
            raise ValueError(
                "live log_likelihood tracks log Z only for RBMs with Bernoulli/OneHot layers; this model "
                f"({[type(layer).__name__ for layer in model.layers]}) needs exact enumeration "
                f"(cost {exact_cost(model):.3g} > exact_limit={self.exact_limit:.3g}); raise exact_limit or use "
                "ebmlab.evaluate.ais"
            )
        return "tracked"

    def _anchor(self, model: Any) -> None:
        """Start from the model with zero weights (independent layers): exact log Z and exact samples."""
        self._generator = torch.Generator(device=model.device).manual_seed(self.seed)
        base = copy.deepcopy(model)
        for w in base.weights:
            w.zero_()
        self._log_z = sum(float(layer.log_partition(layer.zero_field(1))[0]) for layer in base.layers)
        visible = base.layers[0]
        self._v = visible.sample(visible.zero_field(self.particles), 1.0, self._generator)
        self._log_w = torch.full((self.particles,), -math.log(self.particles), dtype=torch.float64, device=model.device)
        self._var = 0.0
        self._previous = base
        self._track(base, model)

    def _track(self, a: Any, b: Any) -> None:
        """Anneal the particles from the parameters of ``a`` to those of ``b``, adding to log Z."""
        assert self._v is not None and self._log_w is not None
        va, ha = a.layers
        vb, hb = b.layers
        wa, wb = a.weights[0], b.weights[0]
        rows = None if self._rows is None or not self.jumps else (self._rows @ wa, self._rows @ wb)
        s = 0.0
        while s < 1.0:
            v = self._v
            fa, fb = v @ wa, v @ wb
            ea = va.energy(v).to(torch.float64)
            eb = vb.energy(v).to(torch.float64)

            def neg_f(t: float, fa: torch.Tensor = fa, fb: torch.Tensor = fb, ea: torch.Tensor = ea,
                      eb: torch.Tensor = eb) -> torch.Tensor:
                hidden = ha.log_partition(fa, 1.0 - t).to(torch.float64) + hb.log_partition(fb, t).to(torch.float64)
                return -(1.0 - t) * ea - t * eb + hidden

            now = neg_f(s)
            nxt = self._next_s(s, now, neg_f)
            inc = neg_f(nxt) - now
            step = torch.logsumexp(self._log_w + inc, 0)
            self._log_z += float(step)
            self._log_w = self._log_w + inc - step
            self._v = self._move(nxt, fa, fb, a, b, rows)
            self._maybe_resample()
            s = nxt
            self.steps += 1
        for _ in range(self.sweeps):
            v = self._v
            self._v = self._move(1.0, v @ wa, v @ wb, a, b, rows)
        self._previous.load_state_dict(b.state_dict())
        self._f, self._peek = None, (0.0, 0.0)

    def _next_s(self, s: float, now: torch.Tensor, neg_f: Any) -> float:
        """The largest s' ≤ 1 whose conditional ESS is at least ``ess`` × particles (bisection)."""
        assert self._log_w is not None

        def cess(t: float) -> float:
            lu = neg_f(t) - now
            lu = lu - lu.max()
            num = torch.logsumexp(self._log_w + lu, 0) * 2
            den = torch.logsumexp(self._log_w + 2 * lu, 0)
            return float(torch.exp(num - den))

        target = self.ess
        if cess(1.0) >= target:
            return 1.0
        lo, hi = s, 1.0
        for _ in range(BISECTION_STEPS):
            mid = 0.5 * (lo + hi)
            if cess(mid) >= target:
                lo = mid
            else:
                hi = mid
        return lo if lo > s else hi

    def _maybe_resample(self, force: bool = False) -> None:
        """Systematic resampling when the ESS falls below ``resample`` × particles (or ``force``); logs the block
        variance."""
        assert self._log_w is not None and self._v is not None
        n = self._v.shape[0]
        w = torch.exp(self._log_w)
        ess = float(1.0 / (w * w).sum())
        if ess >= self.resample * n and not force:
            return
        self._var += max(1.0 / ess - 1.0 / n, 0.0)
        u = (torch.rand((), dtype=torch.float64, device=w.device, generator=self._generator) + torch.arange(
            n, dtype=torch.float64, device=w.device)) / n
        idx = torch.searchsorted(torch.cumsum(w, 0), u).clamp_max(n - 1)
        self._v = self._v[idx]
        self._log_w = torch.full_like(self._log_w, -math.log(n))

    def _block_variance(self) -> float:
        if self._log_w is None:
            return 0.0
        w = torch.exp(self._log_w)
        return max(float(w.pow(2).sum()) - 1.0 / w.shape[0], 0.0)

    def _move(
        self, s: float, fa: torch.Tensor, fb: torch.Tensor, a: Any, b: Any, rows: Rows | None
    ) -> torch.Tensor:
        """A move leaving p_s invariant, from the hidden fields ``fa`` = v W_A, ``fb`` = v W_B: draw
        h_A at β = 1 − s and h_B at β = s given v; with data ``rows`` (their fields through A and B),
        ``jumps`` Metropolis–Hastings moves of (h_A, h_B); then v given both."""
        ha, hb = a.layers[1], b.layers[1]
        g = self._generator
        h_a, h_b = ha.sample(fa, 1.0 - s, g), hb.sample(fb, s, g)
        field = self._visible_field(s, h_a, h_b, a, b)
        if rows is not None:
            field = self._jump(s, h_a, h_b, field, a, b, rows)
        return b.layers[0].sample(field, 1.0, g)

    @staticmethod
    def _visible_field(s: float, h_a: torch.Tensor, h_b: torch.Tensor, a: Any, b: Any) -> torch.Tensor:
        """f such that p_s(v | h_A, h_B) is B's visible conditional at f:
        (1 − s)(b_A + W_A r(h_A)) + s(b_B + W_B r(h_B)) − b_B (visible energies are linear, −bᵀv)."""
        va, ha = a.layers
        vb, hb = b.layers
        field = (s - 1.0) * vb.bias + s * (hb.rescale(h_b) @ b.weights[0].T)
        if s < 1:
            field = field + (1.0 - s) * (va.bias + ha.rescale(h_a) @ a.weights[0].T)
        return field

    def _jump(
        self, s: float, h_a: torch.Tensor, h_b: torch.Tensor, field: torch.Tensor, a: Any, b: Any, rows: Rows
    ) -> torch.Tensor:
        """Independence Metropolis–Hastings on (h_A, h_B) targeting p_s(h_A, h_B) (v summed out): propose a
        data row x_n at random, then h_A ~ p_A(h | x_n; β = 1 − s) and h_B ~ p_B(h | x_n; β = s), so that
        q(h_A, h_B) = (1/N) Σ_n p_A(h_A | x_n; 1 − s) p_B(h_B | x_n; s) (hidden energies are linear).
        ``field`` is the visible field of (h_A, h_B); returns that of the final states."""
        ha = a.layers[1]
        vb, hb = b.layers
        g, n = self._generator, rows[0].shape[0]
        ra, rb = rows
        nat_a = ((1.0 - s) * (ra + ha.bias)).to(torch.float64)
        nat_b = (s * (rb + hb.bias)).to(torch.float64)
        log_zn = (ha.log_partition(ra, 1.0 - s) + hb.log_partition(rb, s)).to(torch.float64)

        def log_q(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            terms = x.to(torch.float64) @ nat_a.T + y.to(torch.float64) @ nat_b.T - log_zn
            return torch.logsumexp(terms, 1) - math.log(n)

        def log_pi(x: torch.Tensor, y: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
            return (vb.log_partition(f) - (1.0 - s) * ha.energy(x) - s * hb.energy(y)).to(torch.float64)

        old = log_pi(h_a, h_b, field) - log_q(h_a, h_b)
        for _ in range(self.jumps):
            pick = torch.randint(n, (h_a.shape[0],), generator=g, device=ra.device)
            new_a, new_b = ha.sample(ra[pick], 1.0 - s, g), hb.sample(rb[pick], s, g)
            new_field = self._visible_field(s, new_a, new_b, a, b)
            new = log_pi(new_a, new_b, new_field) - log_q(new_a, new_b)
            u = torch.rand(h_a.shape[0], dtype=torch.float64, device=ra.device, generator=g)
            accept = torch.log(u) < new - old
            self.jump_acceptance = float(accept.double().mean())
            keep = accept.unsqueeze(1)
            h_a, h_b = torch.where(keep, new_a, h_a), torch.where(keep, new_b, h_b)
            field, old = torch.where(keep, new_field, field), torch.where(accept, new, old)
        return field

    # -- per-step tracking (Desjardins, Courville & Bengio 2011) -------------------------------------
    @staticmethod
    def _free(model: Any, v: torch.Tensor, field: torch.Tensor) -> torch.Tensor:
        """F(v) = H_v(v) − log Z_h(v W) in float64, from the hidden ``field`` = v W."""
        visible, hidden = model.layers
        return (visible.energy(v) - hidden.log_partition(field)).to(torch.float64)

    def _sweep(
        self, model: Any, v: torch.Tensor, field: torch.Tensor | None = None, sweeps: int | None = None
    ) -> torch.Tensor:
        """``sweeps`` (default ``chain_sweeps``) block-Gibbs sweeps (h given v, then v given h) of the visible
        states ``v`` under ``model``; ``field``: v W when already computed."""
        visible, hidden = model.layers
        w = model.weights[0]
        for sweep in range(self.chain_sweeps if sweeps is None else sweeps):
            if sweep or field is None:
                field = v @ w
            h = hidden.sample(field, 1.0, self._generator)
            v = visible.sample(hidden.rescale(h) @ w.T, 1.0, self._generator)
        return v

    def _checkpoint(self, b: Any) -> None:
        """Bridge from the last checkpoint (``_previous``, its samples ``_v``) to the model ``b``: sweep the
        samples under ``b`` (h given v, then v given h), then Bennett's acceptance ratio between the two sets."""
        a, x_a = self._previous, self._v
        w_a, w_b = a.weights[0], b.weights[0]
        if self._f is None:  # particles from annealing: resample to equal weights first
            self._resample()
            x_a = self._v
            self._f = self._free(a, x_a, x_a @ w_a)
        field = x_a @ w_b
        f_ba = self._free(b, x_a, field)
        x_b = self._sweep(b, x_a, field)
        f_bb = self._free(b, x_b, x_b @ w_b)
        f_ab = self._free(a, x_b, x_b @ w_a)
        delta, var, overlap = bridge(self._f - f_ba, f_ab - f_bb)
        self._log_z += delta
        self._var += var
        self.overlap = min(self.overlap, overlap) if self.checkpoints else overlap
        self.checkpoints += 1
        a.load_state_dict(b.state_dict())
        self._v, self._f = x_b, f_bb
        self._log_w = torch.full((x_b.shape[0],), -math.log(x_b.shape[0]), dtype=torch.float64, device=x_b.device)
        self._peek = (0.0, 0.0)

    def _importance(self, model: Any) -> tuple[float, float]:
        """log Z(model) − log Z at the last checkpoint by importance sampling with its samples, and its
        variance (delta method: Σ w² − 1/n for normalized weights w)."""
        if self._f is None:
            self._f = self._free(self._previous, self._v, self._v @ self._previous.weights[0])
        lw = self._log_w + self._f - self._free(model, self._v, self._v @ model.weights[0])
        delta = torch.logsumexp(lw, 0)
        w = torch.exp(lw - delta)
        return float(delta), max(float(w.pow(2).sum()) - 1.0 / w.shape[0], 0.0)

    def _resample(self) -> None:
        """Systematic resampling to equal weights (a no-op when they are equal already)."""
        assert self._log_w is not None
        if float(self._log_w.max() - self._log_w.min()) > 0:
            self._maybe_resample(force=True)


def bridge(ux: torch.Tensor, uy: torch.Tensor) -> tuple[float, float, float]:
    """Bennett's acceptance ratio for Δ = log Z_1 − log Z_0 from u = log f_1 − log f_0 at n_0 samples of p_0
    (``ux``) and n_1 samples of p_1 (``uy``): Σ_x σ(u_x − Δ + M) = Σ_y σ(Δ − M − u_y), M = log(n_1 / n_0).

    Returns (Δ, its asymptotic variance Σ_sets (⟨s²⟩/⟨s⟩² − 1)/n with s the terms of each side, the
    overlap ⟨s⟩_x + ⟨s⟩_y: 1 when p_0 = p_1, near 0 when they do not overlap)."""
    m = math.log(uy.shape[0] / ux.shape[0])
    shift = float(bennett(ux + m, uy + m, iterations=40))
    sx, sy = torch.sigmoid(ux + m - shift), torch.sigmoid(shift - m - uy)
    var = sum(float(s.pow(2).mean() / s.mean().pow(2) - 1.0) / s.shape[0] for s in (sx, sy))
    return shift, max(var, 0.0), float(sx.mean() + sy.mean())
