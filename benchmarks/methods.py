"""Methods benchmark: test log-likelihood against training seconds for every gradient method.

    python benchmarks/methods.py [--budget 120] [--checkpoints 2] [--rbm cd1,pcd1,pcd10,pt,tap2,tap3]
                                 [--dbm layerwise-pcd1] [--schedule fast] [--chains 100] [--threads 1]

Data: binarized MNIST (the 5,000-row ``train5k`` split for training, ``--test-rows`` rows of
``t10k`` for testing) from ``../shared/data/mnist``.

Contenders, each with the same training budget (``--budget`` seconds of wall clock, or of CPU time with
``--clock cpu``; evaluation not counted): a 784×500 Bernoulli RBM trained with CD-1, PCD-1,
PCD-10 (100 persistent chains),
PT (1 sweep of 100 chains on each rung of an adaptive 5-rung ladder) and TAP-2 / TAP-3
(100 warm-started magnetizations, 3 damped fixed-point sweeps per batch); and a 784-500-500
DBM pretrained layerwise (Salakhutdinov–Hinton doubling, PCD-1, 40 % of the budget split over the
RBMs) then fine-tuned with PCD-1 (mean-field positive phase). All: batch 100, SGD with momentum
``--momentum`` (default 0.9), L2 1e-4 on the weights, visible biases from the data, learning rate
decayed linearly to
2 % of ``--lr`` over the budget.

Scoring at ``--checkpoints`` evenly spaced times, with verdicts (``ebmlab.evaluate.diagnostics``): for
RBMs ``log_likelihood_bracket`` — by default (``--method auto``) both sides from BDMC (``bdmc.log_partition``:
forward AIS the upper side, reverse AIS the conservative one); with ``--method bar`` the upper side from
PT+BAR log Ẑ (``--bar-chains``, ``--bar-sweeps``) and the conservative side from RAISE (``--raise-rows``
random test rows, ``--raise-chains`` chains each, ``--raise-schedule``) — with the log Z floor (forward
AIS from the training rows, ``floor.log_z_floor``: mean −F minus it is a stochastic upper bound on the
test LL, plotted as its own marker) — and for the DBM forward AIS only, its data term the mean-field
lower bound on −F(v), so no conservative side there.

Writes ``benchmarks/results/methods.md`` (the table), ``methods.csv`` (every checkpoint),
``methods.png`` (plotly via kaleido; ``methods.html`` with plotly.js from the CDN if PNG export
is unavailable) and ``methods.json`` (everything, git-ignored).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch

import ebmlab
from ebmlab import BernoulliLayer, BoltzmannMachine
from ebmlab.data import load
from ebmlab.evaluate import ConvergenceWarning, ais, log_likelihood_bracket
from ebmlab.train import CD, L2, PCD, PT, TAP, Callback, LayerwiseTrainer, Method, Trainer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import bracket_settings, describe  # the estimator settings both benchmarks share

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


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


class Budget(Callback):
    """Stops a fit when ``used + elapsed`` reaches ``until``; decays the lr linearly over ``total`` seconds.

    ``used`` accumulates training seconds across fits (evaluation between them is not counted);
    with ``per_fit=True`` each fit starts from zero (one budget per layerwise RBM). ``clock``:
    ``"wall"`` (perf_counter) or ``"cpu"`` (this process's CPU seconds: with one thread a fair
    budget on a machine shared with other jobs).
    """

    def __init__(
        self, total: float, lr: float, per_fit: bool = False, floor: float = 0.02, clock: str = "wall"
    ) -> None:
        self.total, self.lr, self.per_fit, self.floor = total, lr, per_fit, floor
        self.now = CLOCKS[clock]
        self.until, self.used, self.start = total, 0.0, self.now()

    def on_train_begin(self, state: Any) -> None:
        if self.per_fit:
            self.used = 0.0
        self.start = self.now()

    def elapsed(self) -> float:
        return self.used + self.now() - self.start

    def on_batch_end(self, state: Any) -> None:
        spent = self.elapsed()
        if spent >= self.until:
            state.trainer.stop()
        state.trainer.set_lr(self.lr * max(1 - spent / self.total, self.floor))

    def on_train_end(self, state: Any) -> None:
        self.used += self.now() - self.start


def trainer_kwargs(args: argparse.Namespace, budget: Budget) -> dict[str, Any]:
    return {
        "optimizer": lambda params: torch.optim.SGD(params, lr=args.lr, momentum=args.momentum),
        "batch_size": 100,
        "penalties": {"weights.0": L2(args.weight_decay)},
        "metrics": {},
        "callbacks": [budget],
        "seed": args.seed,
        "progress": False,
    }


@torch.no_grad()
def score(model: BoltzmannMachine, train: torch.Tensor, test: torch.Tensor, args: argparse.Namespace) -> dict:
    """RBM: ``log_likelihood_bracket`` (``--method``: BDMC's two sides, or PT+BAR and RAISE); DBM: forward AIS
    only."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the verdict goes into the table instead
        if model.depth == 2:
            b = log_likelihood_bracket(
                model,
                test,
                train,
                **bracket_settings(args),
                seed=args.seed,
                progress=False,
            )
            return {
                "estimator": "BDMC" if b.raise_result is None else "PT+BAR / RAISE",
                "test_ll_upper": b.upper,
                "test_ll_upper_se": b.upper_stderr,
                "test_ll_lower": b.lower,
                "test_ll_lower_se": b.lower_stderr,
                "width": b.width,
                "log_z": b.log_z.log_z,
                "log_z_se": b.log_z.stderr,
                "log_z_ais_pilot": b.log_z.pilot.log_z if b.raise_result is not None else None,
                "log_z_floor": b.log_z_floor,
                "test_ll_floor_bound": b.data_term - b.log_z_floor,
                "verdict": b.diagnostics.summary(),
                "estimator_seconds": b.log_z.seconds + (0.0 if b.raise_result is None else b.raise_result.seconds),
            }
        est = ais.estimate_log_likelihood(
            model,
            test,
            data=train,
            chains=args.chains,
            betas=args.schedule,
            reverse=False,
            seed=args.seed,
            progress=False,
        )
    return {
        "estimator": f"forward AIS ({est.data_term_kind} data term)",
        "test_ll_upper": est.forward,
        "test_ll_upper_se": est.log_z_forward.stderr,
        "test_ll_lower": None,
        "test_ll_lower_se": None,
        "width": None,
        "log_z": est.log_z_forward.log_z,
        "log_z_se": est.log_z_forward.stderr,
        "verdict": est.diagnostics.summary() + "; forward only: no conservative side",
        "estimator_seconds": est.log_z_forward.seconds,
    }


def run_rbm(name: str, train: torch.Tensor, test: torch.Tensor, args: argparse.Namespace) -> list[dict]:
    model = BoltzmannMachine([BernoulliLayer(784), BernoulliLayer(args.hidden)], seed=args.seed)
    model.initialize(train, method="hinton", seed=args.seed)
    budget = Budget(args.budget, args.lr, clock=args.clock)
    method: Method = RBM_METHODS[name]()
    trainer = Trainer(model, method, **trainer_kwargs(args, budget))
    return checkpoints("rbm", LABELS[name], trainer, train, test, budget, args, method)


def run_dbm(name: str, train: torch.Tensor, test: torch.Tensor, args: argparse.Namespace) -> list[dict]:
    if name != "layerwise-pcd1":
        raise ValueError(f"unknown DBM contender {name!r} (known: layerwise-pcd1)")
    model = BoltzmannMachine([BernoulliLayer(784), BernoulliLayer(args.hidden), BernoulliLayer(args.hidden)])
    pre = Budget(0.4 * args.budget / 2, args.lr, per_fit=True, clock=args.clock)
    layerwise = LayerwiseTrainer(
        model, lambda: PCD(k=1, chains=100), pretrain_epochs=10**6, **trainer_kwargs(args, pre)
    )
    start = CLOCKS[args.clock]()
    layerwise.pretrain(train)
    pretrain_seconds = CLOCKS[args.clock]() - start
    fine = Budget(args.budget - pretrain_seconds, args.lr, clock=args.clock)
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
    stems = [
        f"{model_name}_{label}_{args.clock}{args.budget:g}_s{args.seed}_{k}of{args.checkpoints}"
        for k in range(1, args.checkpoints + 1)
    ]
    cached = args.models is not None and all((args.models / f"{s}.json").exists() for s in stems)
    for k, stem in enumerate(stems, 1):
        if cached:  # trained before with these settings: score the saved checkpoint
            model = ebmlab.load(args.models / f"{stem}.safetensors")
            info = json.loads((args.models / f"{stem}.json").read_text())
        else:
            budget.until = budget.total * k / args.checkpoints
            trainer.fit(train, epochs=10**6)
            model = trainer.model
            info = {
                "seconds": budget.used,
                "epochs": trainer.step * 100 / train.shape[0],
                "updates": trainer.step,
                **{k: v for k, v in method.metrics().items() if k in ("swap_rate", "beta_min", "tap_log_z")},
            }
            if args.models is not None:
                args.models.mkdir(parents=True, exist_ok=True)
                model.save(args.models / f"{stem}.safetensors")
                (args.models / f"{stem}.json").write_text(json.dumps(info))
        if args.train_only:
            print(json.dumps({"model": model_name, "method": label, **info}), flush=True)
            continue
        start = time.perf_counter(), time.process_time()
        row = {"model": model_name, "method": label, **info, **score(model, train, test, args)}
        row["score_wall_s"] = time.perf_counter() - start[0]
        row["score_cpu_s"] = time.process_time() - start[1]
        row["load"] = os.getloadavg()[0]
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def sides(rows: list[dict]) -> tuple[str, str]:
    """(upper, conservative) estimator names of the RBM rows: BDMC's two sides, or PT+BAR and RAISE."""
    if {r.get("estimator") for r in rows if r["model"] == "rbm"} == {"BDMC"}:
        return "BDMC forward", "BDMC reverse"
    return "PT+BAR", "RAISE"


def table(rows: list[dict]) -> str:
    upper, conservative = sides(rows)
    head = (
        f"| model | method | seconds | epochs | test LL conservative ({conservative}) ± s.e. "
        f"| test LL upper ({upper}; DBM: forward AIS) ± s.e. | width | log Z ± s.e. | log Z floor | verdict |"
    )
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        low = "—" if r.get("test_ll_lower") is None else f"{r['test_ll_lower']:.2f} ± {r['test_ll_lower_se']:.2f}"
        width = "—" if r.get("width") is None else f"{r['width']:.1f}"
        floor = "—" if r.get("log_z_floor") is None else f"{r['log_z_floor']:.2f}"
        lines.append(
            f"| {r['model']} | {r['method']} | {r['seconds']:.0f} | {r['epochs']:.1f} | {low} "
            f"| {r['test_ll_upper']:.2f} ± {r['test_ll_upper_se']:.2f} | {width} "
            f"| {r['log_z']:.2f} ± {r['log_z_se']:.2f} | {floor} "
            f"| {r['verdict']} |"
        )
    return "\n".join(lines)


def plot(curves: list[dict], out: Path, hidden: int = 500, clock: str = "wall") -> Path:
    """Test log-likelihood against training seconds per method; one checkpoint each: a dot chart by method."""
    import plotly.graph_objects as go
    from plotly.colors import qualitative
    from plotly.subplots import make_subplots

    if len({(r["model"], r["method"]) for r in curves}) == len(curves):
        return export(dots(curves, hidden, clock), out)
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
            for key, dash in (("test_ll_upper", "solid"), ("test_ll_lower", "dash")):
                if all(r.get(key) is None for r in pts):  # the DBM has no conservative side
                    continue
                fig.add_trace(
                    go.Scatter(
                        x=x,
                        y=[r[key] for r in pts],
                        mode="lines+markers",
                        name=f"{method} ({'upper' if key.endswith('upper') else sides(curves)[1]})",
                        line={"color": colors[method], "dash": dash},
                        legendgroup=method,
                        showlegend=key.endswith("upper") or col > 1,
                    ),
                    row=1,
                    col=col,
                )
        fig.update_xaxes(title_text=f"training seconds ({clock} clock)", row=1, col=col)
    fig.update_yaxes(title_text=f"test log-likelihood (nats; upper solid, {sides(curves)[1]} dashed)", row=1, col=1)
    fig.update_layout(width=560 * len(models) + 200, height=480, title="Binarized MNIST-5k: methods at equal budget")
    return export(fig, out)


def dots(rows: list[dict], hidden: int, clock: str) -> Any:
    """One column per contender: both sides of its test log-likelihood with their standard errors."""
    import plotly.graph_objects as go

    names = [f"{'RBM' if r['model'] == 'rbm' else 'DBM'} {r['method']}" for r in rows]
    fig = go.Figure()
    upper, conservative = sides(rows)
    markers = (
        ("test_ll_upper", "circle", f"upper side ({upper}; DBM: forward AIS)"),
        ("test_ll_lower", "diamond-open", f"conservative side ({conservative})"),
        ("test_ll_floor_bound", "triangle-down-open", "upper bound from the log Z floor"),
    )
    for key, symbol, label in markers:
        pts = [(n, r) for n, r in zip(names, rows) if r.get(key) is not None]
        fig.add_trace(
            go.Scatter(
                x=[n for n, _ in pts],
                y=[r[key] for _, r in pts],
                error_y={"type": "data", "array": [r.get(f"{key}_se") or 0.0 for _, r in pts]},
                mode="markers",
                marker={"symbol": symbol, "size": 11},
                name=label,
            )
        )
    seconds = round(max(r["seconds"] for r in rows))
    what = f"method (784-{hidden} RBM, 784-{hidden}-{hidden} DBM), {seconds} {clock} s of training each"
    fig.update_xaxes(title_text=what)
    fig.update_yaxes(title_text="test log-likelihood (nats per image, higher is better)")
    fig.update_layout(width=900, height=480, title="Binarized MNIST-5k: methods at equal budget")
    return fig


def export(fig: Any, out: Path) -> Path:
    """``out/methods.png`` (kaleido), or ``methods.html`` with plotly.js from the CDN when PNG export fails."""
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
    p.add_argument("--raise-schedule", default=None, help="RAISE schedule preset (default: log_likelihood_bracket's)")
    p.add_argument(
        "--raise-rows", type=int, default=None, help="test rows scored by RAISE (default: log_likelihood_bracket's)"
    )
    p.add_argument(
        "--raise-chains", type=int, default=None, help="RAISE chains per test row (default: log_likelihood_bracket's)"
    )
    p.add_argument(
        "--method", choices=("auto", "bdmc", "bar"), default="auto",
        help="RBM bracket estimator: auto (the bracket's default: BDMC here), bdmc, or bar (PT+BAR with RAISE)",
    )
    p.add_argument("--bar-chains", type=int, default=None, help="PT+BAR chains (default: log_likelihood_bracket's)")
    p.add_argument("--bar-sweeps", type=int, default=None, help="PT+BAR sweeps (default: log_likelihood_bracket's)")
    p.add_argument("--lr", type=float, default=0.05, help="SGD learning rate at the start (default 0.05)")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default 0.9)")
    p.add_argument("--weight-decay", type=float, default=1e-4, help="L2 strength on the weights")
    p.add_argument(
        "--clock", choices=tuple(CLOCKS), default="wall", help="budget in wall seconds (default) or CPU seconds"
    )
    p.add_argument("--models", type=Path, default=None, help="save trained models here; reuse them when present")
    p.add_argument("--train-only", action="store_true", help="train (and save with --models), do not score")
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
    bracket_settings(args)  # refuse options the chosen estimator would ignore before any training
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
        if args.train_only:
            return
        meta = {k: str(v) for k, v in vars(args).items()}
        meta["estimator"] = describe(bracket_settings(args))
    text = (
        f"Binarized MNIST-5k, {float(meta['budget']):.0f} {meta.get('clock', 'wall')} s training budget per "
        f"contender, {meta['threads']} thread(s) (shared machine), SGD lr {meta['lr']} momentum "
        f"{meta.get('momentum', '0.9')}, {meta['test_rows']} t10k rows. RBMs: log_likelihood_bracket, "
        f"{meta.get('estimator')}. "
        + (
            f"DBM rows: forward AIS ({meta['chains']} chains, schedule {meta['schedule']}) with the mean-field lower "
            "bound as data term, no conservative side. "
            if any(r["model"] == "dbm" for r in curves)
            else ""
        )
        + "Seconds count training only.\n\n"
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
    print(f"plot: {plot(curves, args.out, args.hidden, meta.get('clock', 'wall'))}")


def final_rows(curves: list[dict]) -> list[dict]:
    """The last checkpoint of every contender."""
    last: dict[tuple[str, str], dict] = {}
    for r in curves:
        last[(r["model"], r["method"])] = r
    return list(last.values())


if __name__ == "__main__":
    main()
