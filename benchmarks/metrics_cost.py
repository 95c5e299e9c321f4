"""What the Trainer's default metrics cost, and how far the live log-likelihood is from a long AIS.

Trains a 784×500 Bernoulli RBM with PCD-1 (100 chains, batch 100, Adam lr 1e-3) on MNIST
``train5k`` (``--data-dir``; random binary rows of the same shape when absent) for ``--epochs``
epochs, with a 10 % validation split, three ways in one run, alternating so that load on the
machine hits them alike: no metrics (``metrics={}``), the default metrics under the default
``metric_budget`` (5 %), and the live ``log_likelihood`` alone (tracked, so it runs every epoch, on
1,000 training and the 500 validation rows). Each fit is
timed in wall and process CPU seconds (CPU time is not inflated by other processes sharing the
machine), and split by the Trainer itself (``TrainState.metric_seconds`` / ``train_seconds``, wall
seconds inside the same fit: the least noisy figure on a shared machine). Prints seconds per epoch,
the ratios to the plain fit, how often each metric ran, and the
last live log-likelihood beside forward AIS (``ebmlab.evaluate.ais``, ``--ais-chains`` chains,
``--ais-steps`` temperatures) on the same rows.

    python benchmarks/metrics_cost.py [--epochs 20] [--repeats 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from pathlib import Path

import torch

from ebmlab import BernoulliLayer, BoltzmannMachine
from ebmlab.data import as_dataset, load
from ebmlab.evaluate import ais
from ebmlab.train import PCD, Callback, Trainer

DATA_DIR = Path(os.environ.get("EBMLAB_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def dataset(data_dir: Path):
    if (data_dir / "mnist").is_dir():
        return load("mnist", split="train5k", data_dir=data_dir).binarize(), "MNIST train5k"
    g = torch.Generator().manual_seed(0)
    return as_dataset((torch.rand(5000, 784, generator=g) < 0.13).float()), "random rows (MNIST absent)"


class Inside(Callback):
    """Reads the Trainer's own split of this fit's wall time into training and metrics."""

    def on_train_end(self, state) -> None:
        self.train, self.metrics = state.train_seconds, state.metric_seconds


def fit(x: torch.Tensor, v: torch.Tensor, epochs: int, kind: str) -> tuple[float, float, Trainer]:
    """(wall, cpu) seconds of the whole fit, and the trainer (``trainer.inside``: its time split)."""
    model = BoltzmannMachine([BernoulliLayer(784), BernoulliLayer(500)], seed=0)
    model.initialize(x)
    metrics = {"none": {}, "default": None, "live": ["log_likelihood"]}[kind]
    inside = Inside()
    trainer = Trainer(model, PCD(k=1, chains=100), lr=1e-3, batch_size=100, progress=False, metrics=metrics,
                      callbacks=[inside])
    trainer.inside = inside
    wall, cpu = time.perf_counter(), time.process_time()
    trainer.fit(x, epochs, validation=v)
    return time.perf_counter() - wall, time.process_time() - cpu, trainer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--ais-chains", type=int, default=200)
    p.add_argument("--ais-steps", type=int, default=20000, help="0 skips the AIS comparison")
    p.add_argument("--data-dir", type=Path, default=DATA_DIR)
    p.add_argument("--kinds", default="none,default,live", help="comma-separated subset of none,default,live")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "metrics_cost.json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    data, name = dataset(args.data_dir)
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(data), generator=g)
    x, v = data.data[perm[500:]], data.data[perm[:500]]
    kinds = tuple(args.kinds.split(","))
    if "none" not in kinds or not set(kinds) <= {"none", "default", "live"}:
        raise ValueError(f"--kinds must list none and any of default, live; got {args.kinds!r}")
    times = {k: {"wall": [], "cpu": []} for k in kinds}
    inside: dict[str, list[float]] = {k: [] for k in kinds}
    trainers: dict[str, Trainer] = {}
    print(f"784x500 RBM, PCD-1, batch 100, {name}: {len(x)} training / {len(v)} validation rows, "
          f"{args.epochs} epochs, {args.threads} thread(s); load average before: {os.getloadavg()}")
    print("seconds per epoch, wall (cpu)")
    for r in range(args.repeats):
        for kind in kinds:
            wall, cpu, trainers[kind] = fit(x, v, args.epochs, kind)
            times[kind]["wall"].append(wall / args.epochs)
            times[kind]["cpu"].append(cpu / args.epochs)
            inside[kind].append(trainers[kind].inside.metrics / trainers[kind].inside.train)
        cells = [f"{k} {times[k]['wall'][-1]:.3f} ({times[k]['cpu'][-1]:.3f})" for k in kinds]
        print(f"repeat {r + 1}: " + "  ".join(cells))
    med = {k: {c: statistics.median(t[c]) for c in t} for k, t in times.items()}
    ratio = {k: {c: med[k][c] / med["none"][c] for c in ("wall", "cpu")} for k in kinds}
    print(f"{'metrics':>8}  {'wall s/epoch':>12}  {'cpu s/epoch':>11}  {'wall ratio':>10}  {'cpu ratio':>9}")
    for k in kinds:
        m, q = med[k], ratio[k]
        print(f"{k:>8}  {m['wall']:>12.3f}  {m['cpu']:>11.3f}  {q['wall']:>10.3f}  {q['cpu']:>9.3f}  "
              f"metrics/training inside the fit (wall): {[round(f, 3) for f in inside[k]]}")
    runs = {}
    for k in [k for k in ("default", "live") if k in kinds]:
        h = trainers[k].history
        runs[k] = {n: [e + 1 for e, val in enumerate(h[n]) if not math.isnan(val)] for n in h
                   if not n.startswith("val_") and not n.endswith("_stderr")
                   and n not in ("loss", "lr", "wall_seconds", "samples_per_second")}
        print(f"{k}: epochs at which each metric ran: {runs[k]}")
    result = {"data": name, "epochs": args.epochs, "threads": args.threads, "seconds_per_epoch": times,
              "median": med, "ratio": ratio, "inside": inside, "ran_at": runs, "load_average_after": os.getloadavg()}
    if "live" in kinds:
        live_versus_ais(args, trainers["live"], x, v, result)
    print(f"load average after: {os.getloadavg()} (machine shared with other jobs)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))


def live_versus_ais(args: argparse.Namespace, t: Trainer, x: torch.Tensor, v: torch.Tensor, result: dict) -> None:
    """The live log-likelihood's last value and, on the final model, beside forward AIS."""
    ll, se = t.history["val_log_likelihood"], t.history["val_log_likelihood_stderr"]
    last = max(i for i, val in enumerate(ll) if not math.isnan(val))
    live = t._resolve_metrics()[0]["log_likelihood"]
    print(f"live: {live.steps} annealing steps in all; validation LL at epoch {last + 1}: "
          f"{ll[last]:.2f} ± {se[last]:.2f}")
    result["live_val_ll"] = [ll[last], se[last], last + 1]
    if args.ais_steps > 0:
        model = t.model
        t0 = time.perf_counter()
        betas = torch.linspace(0, 1, args.ais_steps + 1, dtype=torch.float64) ** 2
        res = ais.log_partition(model, args.ais_chains, betas, data=x, progress=False)
        with torch.no_grad():
            neg_f = float(-model.free_energy(v).double().mean())
        live_now = live(model, v)
        print(f"final model: live LL {float(live_now):.2f} ± {live_now.stderr:.2f}; forward AIS ({args.ais_chains} "
              f"chains, {args.ais_steps} steps, {time.perf_counter() - t0:.0f} s): LL {neg_f - res.log_z:.2f} "
              f"± {res.stderr:.2f} (ESS {res.ess:.1f}); live − AIS = {float(live_now) - (neg_f - res.log_z):+.2f} nats")
        result["final"] = {"live": [float(live_now), live_now.stderr], "ais": [neg_f - res.log_z, res.stderr, res.ess]}


if __name__ == "__main__":
    main()
