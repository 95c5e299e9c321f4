"""Methods benchmark: test log-likelihood against training seconds for every gradient method.

    python benchmarks/methods.py [--budget 120] [--checkpoints 2] [--rbm cd1,pcd1,pcd10,pt,tap2,tap3]
                                 [--dbm layerwise-pcd1] [--schedule fast] [--chains 100] [--threads 1]

Data: binarized MNIST (the 5,000-row ``train5k`` split for training, ``--test-rows`` rows of
``t10k`` for testing) from ``../shared/data/mnist``.

Contenders, each with the same wall-clock training budget (``--budget`` seconds, evaluation not
counted): a 784×500 Bernoulli RBM trained with CD-1, PCD-1, PCD-10 (100 persistent chains),
PT (1 sweep of 100 chains on each rung of an adaptive 5-rung ladder) and TAP-2 / TAP-3
(100 warm-started magnetizations, 3 damped fixed-point sweeps per batch); and a 784-500-500
DBM pretrained layerwise (Salakhutdinov–Hinton doubling, PCD-1, 40 % of the budget split over the
RBMs) then fine-tuned with PCD-1 (mean-field positive phase). All: batch 100, SGD with momentum
0.9, L2 1e-4 on the weights, visible biases from the data, learning rate decayed linearly to
2 % of ``--lr`` over the budget.

Scoring at ``--checkpoints`` evenly spaced times: forward AIS (``ebmlab.evaluate.ais``, base-rate
model from the training rows) gives log Ẑ_fwd, a stochastic lower bound, so LL_fwd tends to
overestimate; RAISE (``ebmlab.evaluate.raise_``, reverse annealing from ``--raise-rows`` random test
rows, ``--raise-chains`` chains each) gives LL_rev, conservative. For the DBM the data term is the
mean-field lower bound on −F(v), so LL_fwd is a lower-bound estimate there, and RAISE (RBMs only)
leaves LL_rev empty.

Writes ``benchmarks/results/methods.md`` (the table), ``methods.csv`` (every checkpoint),
``methods.png`` (plotly via kaleido; ``methods.html`` with plotly.js from the CDN if PNG export
is unavailable) and ``methods.json`` (everything, git-ignored).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from pathlib import Path
from typing import Any

import torch

from ebmlab import BernoulliLayer, BoltzmannMachine
from ebmlab.data import load
from ebmlab.evaluate import ais
from ebmlab.train import CD, L2, PCD, PT, TAP, Callback, LayerwiseTrainer, Method, Trainer

ROOT = Path(__file__).resolve().parent
DEFAULT_DATA = ROOT.parents[1] / "shared" / "data"
RBM_METHODS = {
    "cd1": lambda: CD(k=1),
    "pcd1": lambda: PCD(k=1, chains=100),
    "pcd10": lambda: PCD(k=10, chains=100),
    "pt": lambda: PT(k=1, chains=100, betas="auto", temperatures=5, beta_min=0.8),
    "tap2": lambda: TAP(order=2, chains=100, steps=3),
    "tap3": lambda: TAP(order=3, chains=100, steps=3),
}
LABELS = {"cd1": "CD-1", "pcd1": "PCD-1", "pcd10": "PCD-10", "pt": "PT", "tap2": "TAP-2", "tap3": "TAP-3"}


class Budget(Callback):
    """Stops a fit when ``used + elapsed`` reaches ``until``; decays the lr linearly over ``total`` seconds.

    ``used`` accumulates training seconds across fits (evaluation between them is not counted);
    with ``per_fit=True`` each fit starts from zero (one budget per layerwise RBM).
    """

    def __init__(self, total: float, lr: float, per_fit: bool = False, floor: float = 0.02) -> None:
        self.total, self.lr, self.per_fit, self.floor = total, lr, per_fit, floor
        self.until, self.used, self.start = total, 0.0, time.perf_counter()

    def on_train_begin(self, state: Any) -> None:
        if self.per_fit:
            self.used = 0.0
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return self.used + time.perf_counter() - self.start

    def on_batch_end(self, state: Any) -> None:
        spent = self.elapsed()
        if spent >= self.until:
            state.trainer.stop()
        state.trainer.set_lr(self.lr * max(1 - spent / self.total, self.floor))

    def on_train_end(self, state: Any) -> None:
        self.used += time.perf_counter() - self.start


def trainer_kwargs(args: argparse.Namespace, budget: Budget) -> dict[str, Any]:
    return {
        "optimizer": lambda params: torch.optim.SGD(params, lr=args.lr, momentum=0.9),
        "batch_size": 100,
        "penalties": {"weights.0": L2(args.weight_decay)},
        "metrics": {},
        "callbacks": [budget],
        "seed": args.seed,
        "progress": False,
    }


@torch.no_grad()
def score(model: BoltzmannMachine, train: torch.Tensor, test: torch.Tensor, args: argparse.Namespace) -> dict:
    est = ais.estimate_log_likelihood(
        model,
        test,
        data=train,
        chains=args.chains,
        betas=args.schedule,
        reverse_chains=args.raise_chains,
        reverse_rows=args.raise_rows,
        seed=args.seed,
        progress=False,
    )
    rev = est.raise_result
    return {
        "test_ll_fwd": est.forward,
        "test_ll_rev": est.reverse,
        "test_ll_rev_se": None if rev is None else rev.stderr,
        "data_term": est.data_term_kind,
        "log_z_fwd": est.log_z_forward.log_z,
        "log_z_fwd_se": est.log_z_forward.stderr,
        "ais_seconds": est.log_z_forward.seconds + (0.0 if rev is None else rev.seconds),
    }


def run_rbm(name: str, train: torch.Tensor, test: torch.Tensor, args: argparse.Namespace) -> list[dict]:
    model = BoltzmannMachine([BernoulliLayer(784), BernoulliLayer(args.hidden)], seed=args.seed)
    model.initialize(train, method="hinton", seed=args.seed)
    budget = Budget(args.budget, args.lr)
    method: Method = RBM_METHODS[name]()
    trainer = Trainer(model, method, **trainer_kwargs(args, budget))
    return checkpoints("rbm", LABELS[name], trainer, train, test, budget, args, method)


def run_dbm(name: str, train: torch.Tensor, test: torch.Tensor, args: argparse.Namespace) -> list[dict]:
    if name != "layerwise-pcd1":
        raise ValueError(f"unknown DBM contender {name!r} (known: layerwise-pcd1)")
    model = BoltzmannMachine([BernoulliLayer(784), BernoulliLayer(args.hidden), BernoulliLayer(args.hidden)])
    pre = Budget(0.4 * args.budget / 2, args.lr, per_fit=True)
    layerwise = LayerwiseTrainer(
        model, lambda: PCD(k=1, chains=100), pretrain_epochs=10**6, **trainer_kwargs(args, pre)
    )
    start = time.perf_counter()
    layerwise.pretrain(train)
    pretrain_seconds = time.perf_counter() - start
    fine = Budget(args.budget - pretrain_seconds, args.lr)
    trainer = Trainer(model, PCD(k=1, chains=100), **trainer_kwargs(args, fine))
    rows = checkpoints("dbm", "layerwise + PCD-1", trainer, train, test, fine, args, trainer.method)
    for row in rows:
        row["seconds"] += pretrain_seconds
    return rows


def checkpoints(
    model_name: str,
    label: str,
    trainer: Trainer,
    train: torch.Tensor,
    test: torch.Tensor,
    budget: Budget,
    args: argparse.Namespace,
    method: Method,
) -> list[dict]:
    rows = []
    for k in range(1, args.checkpoints + 1):
        budget.until = budget.total * k / args.checkpoints
        trainer.fit(train, epochs=10**6)
        row = {
            "model": model_name,
            "method": label,
            "seconds": budget.used,
            "epochs": trainer.step * 100 / train.shape[0],
            "updates": trainer.step,
            **score(trainer.model, train, test, args),
            **{k: v for k, v in method.metrics().items() if k in ("swap_rate", "beta_min", "tap_log_z")},
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def table(rows: list[dict]) -> str:
    head = "| model | method | seconds | epochs | test LL fwd | test LL rev (RAISE) ± s.e. | log Z fwd ± s.e. |"
    lines = [head, "|" + "---|" * 7]
    for r in rows:
        rev = (
            "—" if r.get("test_ll_rev") is None else f"{r['test_ll_rev']:.2f} ± {r.get('test_ll_rev_se', math.nan):.2f}"
        )
        lines.append(
            f"| {r['model']} | {r['method']} | {r['seconds']:.0f} | {r['epochs']:.1f} "
            f"| {r['test_ll_fwd']:.2f} | {rev} | {r['log_z_fwd']:.2f} ± {r['log_z_fwd_se']:.2f} |"
        )
    return "\n".join(lines)


def plot(curves: list[dict], out: Path, hidden: int = 500) -> Path:
    import plotly.graph_objects as go
    from plotly.colors import qualitative
    from plotly.subplots import make_subplots

    models = sorted({r["model"] for r in curves}, key=["rbm", "dbm"].index)
    fig = make_subplots(
        rows=1,
        cols=len(models),
        subplot_titles=[f"784-{hidden} RBM" if m == "rbm" else f"784-{hidden}-{hidden} DBM" for m in models],
    )
    colors = dict(zip(dict.fromkeys(r["method"] for r in curves), qualitative.Plotly))
    for col, name in enumerate(models, 1):
        for method in dict.fromkeys(r["method"] for r in curves if r["model"] == name):
            pts = [r for r in curves if r["model"] == name and r["method"] == method]
            x = [r["seconds"] for r in pts]
            for key, dash in (("test_ll_fwd", "solid"), ("test_ll_rev", "dash")):
                fig.add_trace(
                    go.Scatter(
                        x=x,
                        y=[r[key] for r in pts],
                        mode="lines+markers",
                        name=f"{method} ({'fwd' if key.endswith('fwd') else 'rev'})",
                        line={"color": colors[method], "dash": dash},
                        legendgroup=method,
                        showlegend=key.endswith("fwd") or col > 1,
                    ),
                    row=1,
                    col=col,
                )
        fig.update_xaxes(title_text="training seconds", row=1, col=col)
    fig.update_yaxes(title_text="test log-likelihood (nats; AIS fwd solid, rev dashed)", row=1, col=1)
    fig.update_layout(width=560 * len(models) + 200, height=480, title="Binarized MNIST-5k: methods at equal budget")
    try:
        path = out / "methods.png"
        fig.write_image(path)
    except Exception as err:  # kaleido or Chrome missing: fall back to a small HTML file
        print(f"PNG export unavailable ({err}); writing HTML with plotly.js from the CDN")
        path = out / "methods.html"
        fig.write_html(path, include_plotlyjs="cdn")
    return path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--budget", type=float, default=120.0, help="training seconds per contender (default 120)")
    p.add_argument("--checkpoints", type=int, default=2, help="evaluations per contender, evenly spaced (default 2)")
    p.add_argument("--rbm", default=",".join(RBM_METHODS), help=f"RBM methods among {','.join(RBM_METHODS)}")
    p.add_argument("--dbm", default="layerwise-pcd1", help="DBM contenders ('' for none)")
    p.add_argument("--hidden", type=int, default=500, help="hidden units per layer (default 500)")
    p.add_argument("--schedule", default="fast", help="AIS schedule preset: sm2008, moderate, fast (default)")
    p.add_argument("--chains", type=int, default=100, help="AIS chains (default 100)")
    p.add_argument("--test-rows", type=int, default=2000, help="t10k rows scored (default 2000)")
    p.add_argument("--raise-rows", type=int, default=200, help="test rows scored by RAISE (default 200)")
    p.add_argument("--raise-chains", type=int, default=5, help="RAISE chains per test row (default 5)")
    p.add_argument("--lr", type=float, default=0.05, help="SGD learning rate at the start (default 0.05)")
    p.add_argument("--weight-decay", type=float, default=1e-4, help="L2 strength on the weights")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: on a busy machine TAP's and PT's many small tensor operations lose more "
        "to thread synchronisation than they gain, which would skew an equal-time comparison)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    p.add_argument("--out", type=Path, default=ROOT / "results")
    p.add_argument("--replot", type=Path, default=None, help="rebuild table and plot from a methods.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.replot is None:
        train = load("mnist", "train5k", data_dir=args.data_dir, download=False).binarize(0.5).data
        test = load("mnist", "t10k", data_dir=args.data_dir, download=False).binarize(0.5).data[: args.test_rows]
    if args.replot is not None:
        stored = json.loads(args.replot.read_text())
        curves, meta = stored["rows"], stored["args"]
    else:
        curves = []
        for name in filter(None, args.rbm.split(",")):
            curves += run_rbm(name, train, test, args)
        for name in filter(None, args.dbm.split(",")):
            curves += run_dbm(name, train, test, args)
        meta = {k: str(v) for k, v in vars(args).items()}
    text = (
        f"Binarized MNIST-5k, {float(meta['budget']):.0f} s training budget per contender, {meta['threads']} threads "
        f"(shared machine), AIS schedule {meta['schedule']} with {meta['chains']} chains, {meta['test_rows']} t10k "
        "rows. DBM rows: the data term is the mean-field lower bound. Seconds count training only.\n\n"
        + table(final_rows(curves))
        + "\n"
    )
    print()
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "methods.md").write_text(text)
    with open(args.out / "methods.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=sorted({k for r in curves for k in r}))
        writer.writeheader()
        writer.writerows(curves)
    if args.replot is None:
        (args.out / "methods.json").write_text(json.dumps({"args": meta, "rows": curves}, indent=1))
    print(f"plot: {plot(curves, args.out, args.hidden)}")


def final_rows(curves: list[dict]) -> list[dict]:
    """The last checkpoint of every contender."""
    last: dict[tuple[str, str], dict] = {}
    for r in curves:
        last[(r["model"], r["method"])] = r
    return list(last.values())


if __name__ == "__main__":
    main()
