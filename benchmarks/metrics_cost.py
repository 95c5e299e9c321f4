"""What the Trainer's default metrics cost, and how far the live log-likelihood is from a converged estimate.

Trains a 784×500 Bernoulli RBM with PCD-1 (100 chains, batch 100, the Trainer's SGD at ``--lr``) on MNIST
``train5k`` (``--data-dir``; random binary rows of the same shape when absent) for ``--epochs``
epochs, with a 10 % validation split, three ways in one run, alternating in ABBA order (none,
default, default, none, ...) so that drifts in the load on the machine hit them alike: no metrics
(``metrics={}``), the default metrics under the default ``metric_budget`` (5 %), and the live
``log_likelihood`` alone (tracked, so it runs every epoch, on 1,000 training and the 500
validation rows). Each fit is timed in wall and process CPU seconds (CPU time is not inflated by other
processes sharing the machine), and split by the Trainer itself (``TrainState.metric_seconds`` /
``train_seconds``, wall
seconds inside the same fit: the least noisy figure on a shared machine). Prints seconds per epoch,
the ratios to the plain fit, how often each metric ran, the live log-likelihood curve (train and
validation, with its standard error: ``inf`` when the metric does not trust itself) and, on the
final model, the validation log-likelihood bracket of ``ebmlab.evaluate.log_likelihood_bracket``
(PT + BAR upper side, RAISE conservative side; ``--bracket-chains`` PT chains; -1 skips it) beside
the live value.

    python benchmarks/metrics_cost.py [--epochs 20] [--repeats 2] [--threads 1] [--kinds none,live]
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
from ebmlab.evaluate import log_likelihood_bracket
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


def fit(x: torch.Tensor, v: torch.Tensor, epochs: int, kind: str, lr: float) -> tuple[float, float, Trainer]:
    """(wall, cpu) seconds of the whole fit, and the trainer (``trainer.inside``: its time split)."""
    model = BoltzmannMachine([BernoulliLayer(784), BernoulliLayer(500)], seed=0)
    model.initialize(x)
    metrics = {"none": {}, "default": None, "live": ["log_likelihood"]}[kind]
    inside = Inside()
    trainer = Trainer(model, PCD(k=1, chains=100), lr=lr, batch_size=100, progress=False, metrics=metrics,
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
    p.add_argument("--lr", type=float, default=0.05, help="SGD learning rate (the Trainer's default 0.05)")
    p.add_argument("--bracket-chains", type=int, default=0,
                   help="PT chains of the final bracket (0: log_likelihood_bracket's default); -1 skips it")
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
    print(f"784x500 RBM, PCD-1, batch 100, SGD lr {args.lr}, {name}: {len(x)} training / {len(v)} validation rows, "
          f"{args.epochs} epochs, {args.threads} thread(s); load average before: {os.getloadavg()}")
    print("seconds per epoch, wall (cpu)")
    for r in range(args.repeats):
        for kind in kinds if r % 2 == 0 else kinds[::-1]:  # ABBA order: a drift in load hits every kind alike
            wall, cpu, trainers[kind] = fit(x, v, args.epochs, kind, args.lr)
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
    result = {"data": name, "epochs": args.epochs, "threads": args.threads, "lr": args.lr, "seconds_per_epoch": times,
              "median": med, "ratio": ratio, "inside": inside, "ran_at": runs, "load_average_after": os.getloadavg()}
    if "live" in kinds:
        live_versus_bracket(args, trainers["live"], x, v, result)
    print(f"load average after: {os.getloadavg()} (machine shared with other jobs)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))


def live_versus_bracket(args: argparse.Namespace, t: Trainer, x: torch.Tensor, v: torch.Tensor, result: dict) -> None:
    """The live log-likelihood curve and, on the final model, the validation bracket beside it."""
    h = t.history
    live = t._resolve_metrics()[0]["log_likelihood"]
    print("epoch  train LL ± s.e.      validation LL ± s.e.")
    for e, cells in enumerate(zip(h["log_likelihood"], h["log_likelihood_stderr"], h["val_log_likelihood"],
                                  h["val_log_likelihood_stderr"])):  # fmt: skip
        print(f"{e + 1:>5}  {cells[0]:9.2f} ± {cells[1]:<6.2f}  {cells[2]:9.2f} ± {cells[3]:.2f}")
    print(f"live: {live.checkpoints} bridges, smallest overlap {live.overlap:.3f}, lost: {live.lost}, trusted: "
          f"{live.trusted}, lifted to the data estimate at {live.floored} calls; {live.seconds:.2f} CPU s in "
          f"after_step; final log Z {float(live.log_z):.2f}")
    result["live_curve"] = {k: h[k] for k in ("log_likelihood", "log_likelihood_stderr", "val_log_likelihood",
                                              "val_log_likelihood_stderr")}  # fmt: skip
    result["live"] = {"bridges": live.checkpoints, "overlap": live.overlap, "lost": live.lost, "trusted": live.trusted,
                      "lifted": live.floored, "after_step_cpu_seconds": live.seconds, "log_z": float(live.log_z)}
    if args.bracket_chains >= 0:
        model = t.model
        cpu, wall = time.process_time(), time.perf_counter()
        options = {"chains": args.bracket_chains} if args.bracket_chains else None
        b = log_likelihood_bracket(model, v, x, method="bar", options=options, progress=False, warn=False)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        final = h["val_log_likelihood"][-1]
        print(f"final model, validation rows: live {final:.2f}; bracket {b} ({cpu:.0f} CPU s, {wall:.0f} wall s); "
              f"live − upper = {final - b.upper:+.2f}, live − lower = {final - b.lower:+.2f} nats; "
              f"bracket log Z {b.log_z.log_z:.2f} ± {b.log_z.stderr:.2f}")
        result["final"] = {"live_val_ll": final, "bracket": [b.lower, b.upper], "bracket_converged": b.converged,
                           "bracket_log_z": [b.log_z.log_z, b.log_z.stderr], "bracket_cpu_seconds": cpu}


if __name__ == "__main__":
    main()
