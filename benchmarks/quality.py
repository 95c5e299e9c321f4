"""Quality benchmark: test log-likelihood of 784×500 Bernoulli RBMs, ebmlab against scikit-learn.

    python benchmarks/quality.py [--budget 180] [--datasets mnist,fashion-mnist] [--method auto|bdmc|bar]
                                 [--chains 100] [--threads 2] [--data-dir DIR] [--out FILE.json]

Data: MNIST (the 5,000-row ``train5k`` split, the 10,000 ``t10k`` test rows) and Fashion-MNIST
(60,000 / 10,000), from ``../shared/data``, binarized at 0.5.

Contenders, each given the same training budget (``--budget`` seconds of wall clock, or of this process's CPU
time with ``--clock cpu``: fair on a shared machine with ``--threads 1``) in this process:

- ebmlab PCD-1 (100 persistent chains) and CD-1, batch 100, plain SGD (lr 0.05), weight decay
  (L2) on the weights, visible biases from the data (``initialize(..., "hinton")``), and a learning
  rate decayed linearly to 2 % of its start over the budget (the budget callback below);
- ``sklearn.neural_network.BernoulliRBM`` with its defaults (learning_rate 0.1, batch 10; it is
  PCD-1 with one persistent chain per batch row), fed shuffled mini-batches through
  ``partial_fit`` until the budget is spent. Its ``components_`` (→ W = components_ᵀ),
  ``intercept_visible_`` and ``intercept_hidden_`` are loaded into an ebmlab model for scoring.
  ``sklearn-b100`` is the same with ebmlab's batch size 100 and starting learning rate ``--lr``.

Scoring, identical for all: ``ebmlab.evaluate.log_likelihood_bracket`` on the 10,000 test rows. By default
(``--method auto``, the bracket's default for Bernoulli RBMs) both sides come from ``bdmc.log_partition``,
bidirectional Monte Carlo along a screened data-centred path: forward AIS gives the upper side, reverse AIS
from its resampled last states the conservative one. ``--method bar`` takes the upper side from BAR on
parallel-tempering samples (``--bar-chains``, ``--bar-sweeps``; base-rate model fit to the training rows)
and the conservative side from RAISE (``--raise-rows`` random test rows × ``--raise-chains`` chains along
``--raise-schedule``, the exact −F of all rows as a control variate). The printed table lists method,
epochs, updates, the estimator, the conservative and upper test LL ± s.e., the bracket width, train LL
(upper), log Ẑ ± s.e., the log Z
floor (``floor.log_z_floor``), the estimator seconds and the verdict (``converged`` or the failed checks).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits

import ebmlab
from ebmlab import BernoulliLayer, BoltzmannMachine
from ebmlab.data import load
from ebmlab.evaluate import ConvergenceWarning, log_likelihood_bracket
from ebmlab.evaluate.bracket import BAR_OPTIONS
from ebmlab.train import CD, L2, PCD, Callback, Trainer

VISIBLE, HIDDEN = 784, 500
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SPLITS = {"mnist": ("train5k", "t10k"), "fashion-mnist": ("train", "t10k")}


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


class Budget(Callback):
    """Stops training after ``seconds`` on ``clock``; decays the learning rate linearly to ``floor``·lr₀.

    ``clock``: ``"wall"`` (perf_counter) or ``"cpu"`` (this process's CPU seconds: with one thread a
    fair budget on a machine shared with other jobs).
    """

    def __init__(self, seconds: float, lr: float, floor: float = 0.02, clock: str = "wall") -> None:
        self.seconds, self.lr, self.floor = seconds, lr, floor
        self.now = CLOCKS[clock]
        self.start = self.now()

    def on_train_begin(self, state: Any) -> None:
        self.start = self.now()

    def on_batch_end(self, state: Any) -> None:
        done = (self.now() - self.start) / self.seconds
        if done >= 1:
            state.trainer.stop()
        else:
            state.trainer.set_lr(self.lr * max(1 - done, self.floor))


def train_ebmlab(method: str, x: torch.Tensor, budget: float, args: argparse.Namespace) -> tuple[Any, dict]:
    model = BoltzmannMachine([BernoulliLayer(VISIBLE), BernoulliLayer(HIDDEN)], seed=args.seed)
    model.initialize(x, method="hinton", seed=args.seed)
    negative = PCD(k=1, chains=args.pcd_chains) if method == "pcd" else CD(k=1)
    trainer = Trainer(
        model,
        negative,
        optimizer=(
            (lambda params: torch.optim.Adam(params, lr=args.lr))
            if args.optimizer == "adam"
            else (lambda params: torch.optim.SGD(params, lr=args.lr, momentum=args.momentum))
        ),
        batch_size=100,
        penalties={"weights.0": L2(args.weight_decay)},
        metrics={},
        callbacks=[Budget(budget, args.lr, clock=args.clock)],
        seed=args.seed,
        progress=False,
    )
    start = CLOCKS[args.clock]()
    trainer.fit(x, epochs=10**6)
    seconds = CLOCKS[args.clock]() - start
    updates = trainer.step
    return model, {"epochs": updates * 100 / x.shape[0], "updates": updates, "seconds": seconds}


def train_sklearn(
    x: torch.Tensor, budget: float, args: argparse.Namespace, lr: float = 0.1, batch: int = 10
) -> tuple[Any, dict]:
    from sklearn.neural_network import BernoulliRBM

    rbm = BernoulliRBM(n_components=HIDDEN, learning_rate=lr, batch_size=batch, random_state=args.seed)
    data = x.numpy()
    rng = np.random.default_rng(args.seed)
    now = CLOCKS[args.clock]
    start = now()
    updates = 0
    while now() - start < budget:
        order = rng.permutation(data.shape[0])
        for i in range(0, data.shape[0], rbm.batch_size):
            rbm.partial_fit(data[order[i : i + rbm.batch_size]])
            updates += 1
            if now() - start >= budget:
                break
    seconds = now() - start
    model = BoltzmannMachine([BernoulliLayer(VISIBLE), BernoulliLayer(HIDDEN)])
    with torch.no_grad():
        model.weights[0].copy_(torch.from_numpy(rbm.components_.T.astype(np.float32)))
        model.layers[0].bias.copy_(torch.from_numpy(rbm.intercept_visible_.astype(np.float32)))
        model.layers[1].bias.copy_(torch.from_numpy(rbm.intercept_hidden_.astype(np.float32)))
    return model, {"epochs": updates * rbm.batch_size / data.shape[0], "updates": updates, "seconds": seconds}


PT_RAISE_OPTIONS = ("bar_chains", "bar_sweeps", "raise_rows", "raise_chains", "raise_schedule")  # --method bar only
SIDES = {"bdmc": ("BDMC reverse", "BDMC forward"), "bar": ("RAISE", "PT+BAR")}  # (conservative, upper) labels


@torch.no_grad()
def score(model: Any, train: torch.Tensor, test: torch.Tensor, args: argparse.Namespace) -> dict:
    """``log_likelihood_bracket`` on the test rows (BDMC's two sides, or PT+BAR and RAISE); train LL upper."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the verdict goes into the table instead
        b = log_likelihood_bracket(
            model,
            test,
            train,
            **bracket_settings(args),
            seed=args.seed,
            progress=args.progress,
        )
    train_term = float(-model.free_energy(train).double().mean())
    return {
        "estimator": "bar" if b.raise_result is not None else "bdmc",
        "test_ll_lower": b.lower,
        "test_ll_lower_se": b.lower_stderr,
        "test_ll_upper": b.upper,
        "test_ll_upper_se": b.upper_stderr,
        "width": b.width,
        "train_ll_upper": train_term - b.log_z.log_z,
        "log_z": b.log_z.log_z,
        "log_z_se": b.log_z.stderr,
        "log_z_floor": b.log_z_floor,
        "estimator_seconds": b.log_z.seconds + (0.0 if b.raise_result is None else b.raise_result.seconds),
        "verdict": b.diagnostics.summary(),
    }


def bracket_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The estimator options given on the command line, the others ``log_likelihood_bracket``'s defaults."""
    if args.method != "bar":
        given = [f"--{k.replace('_', '-')}" for k in PT_RAISE_OPTIONS if getattr(args, k) is not None]
        if given:
            raise SystemExit(
                f"{', '.join(given)} only apply to --method bar (PT+BAR with RAISE), got --method {args.method}"
            )
        return {"method": args.method}
    default = inspect.signature(log_likelihood_bracket).parameters
    given = {"chains": args.bar_chains, "sweeps": args.bar_sweeps}
    return {
        "method": "bar",
        "options": {**BAR_OPTIONS, **{k: v for k, v in given.items() if v is not None}},
        "raise_rows": args.raise_rows or default["raise_rows"].default,
        "raise_chains": args.raise_chains or default["raise_chains"].default,
        "raise_betas": args.raise_schedule or default["raise_betas"].default,
    }


def describe(settings: dict[str, Any]) -> str:
    """'PT+BAR 16 chains × 10000 sweeps; RAISE 50 rows × 6 chains, schedule sm2008', or the BDMC default."""
    if settings["method"] != "bar":
        return f"method {settings['method']} (BDMC with bdmc.log_partition's defaults for Bernoulli RBMs)"
    o = settings["options"]
    return (
        f"PT+BAR {o['chains']} chains × {o['sweeps']} sweeps; RAISE {settings['raise_rows']} rows × "
        f"{settings['raise_chains']} chains, schedule {settings['raise_betas']}"
    )


def table(rows: list[dict]) -> str:
    head = (
        "| data | method | epochs | updates | estimator | test LL conservative ± s.e. | test LL upper ± s.e. "
        "| width | train LL upper | log Z ± s.e. | log Z floor | estimator s | verdict |"
    )
    lines = [head, "|" + "---|" * 13]
    for r in rows:
        lower, upper = SIDES[r["estimator"]]
        lines.append(
            f"| {r['data']} | {r['method']} | {r['epochs']:.1f} | {r['updates']} | {lower} … {upper} "
            f"| {r['test_ll_lower']:.2f} ± {r['test_ll_lower_se']:.2f} | {r['test_ll_upper']:.2f} ± "
            f"{r['test_ll_upper_se']:.2f} | {r['width']:.1f} | {r['train_ll_upper']:.2f} "
            f"| {r['log_z']:.2f} ± {r['log_z_se']:.2f} | {r['log_z_floor']:.2f} "
            f"| {r['estimator_seconds']:.0f} | {r['verdict']} |"
        )
    return "\n".join(lines)


def trained(name: str, method: str, train: torch.Tensor, args: argparse.Namespace) -> tuple[Any, dict]:
    """Train ``method`` on ``train``, or load it from ``args.models`` when trained there before with this budget."""
    stem = f"{name}_{method}_{args.clock}{args.budget:g}_s{args.seed}"
    if args.models is not None and (args.models / f"{stem}.json").exists():
        return ebmlab.load(args.models / f"{stem}.safetensors"), json.loads((args.models / f"{stem}.json").read_text())
    if method == "sklearn":
        model, info = train_sklearn(train, args.budget, args)
    elif method == "sklearn-b100":
        model, info = train_sklearn(train, args.budget, args, lr=args.lr, batch=100)
    else:
        model, info = train_ebmlab(method.removeprefix("ebmlab-"), train, args.budget, args)
    if args.models is not None:
        args.models.mkdir(parents=True, exist_ok=True)
        model.save(args.models / f"{stem}.safetensors")
        (args.models / f"{stem}.json").write_text(json.dumps(info))
    return model, info


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--budget", type=float, default=180.0, help="training seconds per contender (default 180)")
    p.add_argument("--datasets", default="mnist,fashion-mnist", help="comma-separated: mnist, fashion-mnist")
    p.add_argument("--methods", default="ebmlab-pcd,ebmlab-cd,sklearn", help="comma-separated contenders")
    p.add_argument(
        "--raise-schedule", default=None, help="RAISE schedule preset: sm2008, moderate, fast (default: the bracket's)"
    )
    p.add_argument("--bar-chains", type=int, default=None, help="PT+BAR chains (default: log_likelihood_bracket's)")
    p.add_argument("--bar-sweeps", type=int, default=None, help="PT+BAR sweeps (default: log_likelihood_bracket's)")
    p.add_argument(
        "--raise-rows", type=int, default=None, help="test rows scored by RAISE (default: log_likelihood_bracket's)"
    )
    p.add_argument(
        "--raise-chains", type=int, default=None, help="RAISE chains per test row (default: log_likelihood_bracket's)"
    )
    p.add_argument(
        "--method", choices=("auto", "bdmc", "bar"), default="auto",
        help="bracket estimator: auto (the bracket's default: BDMC here), bdmc, or bar (PT+BAR with RAISE)",
    )
    p.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd", help="ebmlab optimizer")
    p.add_argument("--lr", type=float, default=0.05, help="ebmlab learning rate at the start")
    p.add_argument("--momentum", type=float, default=0.0, help="ebmlab SGD momentum")
    p.add_argument("--weight-decay", type=float, default=1e-4, help="ebmlab L2 strength on W")
    p.add_argument("--pcd-chains", type=int, default=100, help="ebmlab PCD persistent chains")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument(
        "--clock", choices=tuple(CLOCKS), default="wall", help="budget in wall seconds (default) or CPU seconds"
    )
    p.add_argument("--models", type=Path, default=None, help="save trained models here; reuse them when present")
    p.add_argument("--train-only", action="store_true", help="train (and save with --models), do not score")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    p.add_argument("--out", type=Path, default=None, help="also write the rows as JSON here")
    p.add_argument("--progress", action="store_true", help="show AIS progress bars")
    args = p.parse_args(argv)
    bracket_settings(args)  # refuse options the chosen estimator would ignore before any training
    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)  # numpy's BLAS (scikit-learn) gets the same number of threads
    rows = []
    for name in args.datasets.split(","):
        train_split, test_split = SPLITS[name]
        train = load(name, train_split, data_dir=args.data_dir, download=False).binarize(0.5).data
        test = load(name, test_split, data_dir=args.data_dir, download=False).binarize(0.5).data
        for method in args.methods.split(","):
            model, info = trained(name, method, train, args)
            if args.train_only:
                print(json.dumps({"data": name, "method": method, **info}), flush=True)
                continue
            start = time.perf_counter(), time.process_time()
            row = {"data": name, "method": method, **info, **score(model, train, test, args)}
            row["score_wall_s"] = time.perf_counter() - start[0]
            row["score_cpu_s"] = time.process_time() - start[1]
            row["load"] = os.getloadavg()[0]
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.train_only:
        return
    print()
    settings = bracket_settings(args)
    print(f"{describe(settings)}; budget {args.budget:.0f} {args.clock} s, {args.threads} threads")
    print(table(rows))
    if args.out is not None:
        args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
