"""How much a Recorder slows training at its default snapshot cadence (target: ≤ 5 % of epoch time).

Trains a 784×500 Bernoulli RBM with PCD-1 on MNIST (``train5k`` from ../shared/data; random
binary rows of the same shape when absent) for ``--epochs`` epochs, once with ``Trainer.fit``
alone and once with a ``Recorder`` (defaults: metrics every epoch, a snapshot every 5 epochs —
weights, biases, 64 fantasy particles, energy histograms of 500 data rows — plus one before
and one after training), alternating the two so that load on the machine hits both alike.
Each fit is timed in the training thread from the first ``on_train_begin`` to the last
``on_train_end`` (so the Recorder's set-up, snapshots and final commit are counted), in wall
time and in the process's CPU time (``time.process_time``: all threads, zarr's I/O threads
included; not inflated by other processes sharing the machine).
Overhead = median(recorded) / median(plain) − 1. As that difference is noisy on a shared
machine, the time spent inside the Recorder's hooks is also clocked directly and reported as a
fraction of the plain epoch time.

    python benchmarks/history.py [--epochs 20] [--repeats 3] [--metrics]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from ebmlab import BernoulliLayer, BoltzmannMachine
from ebmlab.data import as_dataset, load
from ebmlab.history import Recorder
from ebmlab.train import PCD, Callback, Trainer

DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"


class Start(Callback):
    """First callback: starts the clocks."""

    def on_train_begin(self, state) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()


class Stop(Callback):
    """Last callback: reads the clocks."""

    def __init__(self, start: Start) -> None:
        self.start = start

    def on_train_end(self, state) -> None:
        self.wall = time.perf_counter() - self.start.wall
        self.cpu = time.process_time() - self.start.cpu


class Timed(Callback):
    """Runs a callback's hooks, adding up the wall and CPU seconds they take."""

    def __init__(self, inner: Callback) -> None:
        self.inner, self.wall, self.cpu = inner, 0.0, 0.0

    def _call(self, hook: str, state) -> None:
        w, c = time.perf_counter(), time.process_time()
        getattr(self.inner, hook)(state)
        self.wall += time.perf_counter() - w
        self.cpu += time.process_time() - c

    def on_train_begin(self, state) -> None:
        self._call("on_train_begin", state)

    def on_epoch_end(self, state) -> None:
        self._call("on_epoch_end", state)

    def on_train_end(self, state) -> None:
        self._call("on_train_end", state)


def dataset():
    if (DATA_DIR / "mnist").is_dir():
        return load("mnist", split="train5k", data_dir=DATA_DIR).binarize()
    g = torch.Generator().manual_seed(0)
    return as_dataset((torch.rand(5000, 784, generator=g) < 0.13).float())


def fit(data, epochs: int, batch_size: int, metrics: bool, store: Path | None) -> tuple[float, float, float, float]:
    """(wall, cpu) seconds of the whole fit and (wall, cpu) seconds inside the Recorder."""
    model = BoltzmannMachine([BernoulliLayer(784), BernoulliLayer(500)], seed=0)
    model.initialize(data.data)
    start = Start()
    middle = [Timed(Recorder(store, overwrite=True))] if store is not None else []
    stop = Stop(start)
    trainer = Trainer(
        model,
        PCD(k=1, chains=100),
        lr=1e-3,
        batch_size=batch_size,
        progress=False,
        metrics=None if metrics else {},
        callbacks=[start, *middle, stop],
    )
    trainer.fit(data, epochs)
    inside = (middle[0].wall, middle[0].cpu) if middle else (0.0, 0.0)
    return stop.wall, stop.cpu, *inside


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--metrics", action="store_true", help="compute the Trainer's default metrics each epoch")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "history.json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    data = dataset()
    folder = Path(tempfile.mkdtemp(prefix="ebmlab-history-bench-"))
    kinds = ("plain", "recorded", "inside")
    times: dict[str, dict[str, list[float]]] = {k: {"wall": [], "cpu": []} for k in kinds}
    print("seconds per epoch, wall (cpu); 'inside': time spent in the Recorder's hooks")
    print(f"{'repeat':>6}  {'plain':>15}  {'recorded':>15}  {'inside':>15}")
    try:
        for r in range(args.repeats):
            for kind, store in (("plain", None), ("recorded", folder / "run.zarr")):
                wall, cpu, in_wall, in_cpu = fit(data, args.epochs, args.batch_size, args.metrics, store)
                times[kind]["wall"].append(wall / args.epochs)
                times[kind]["cpu"].append(cpu / args.epochs)
                if store is not None:
                    times["inside"]["wall"].append(in_wall / args.epochs)
                    times["inside"]["cpu"].append(in_cpu / args.epochs)
            print(f"{r + 1:>6}  " + "  ".join(cell(times[k], -1) for k in kinds))
        store_bytes = sum(f.stat().st_size for f in (folder / "run.zarr").rglob("*") if f.is_file())
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    med = {k: {c: statistics.median(v[c]) for c in v} for k, v in times.items()}
    overhead = {c: med["recorded"][c] / med["plain"][c] - 1 for c in ("wall", "cpu")}
    inside = {c: med["inside"][c] / med["plain"][c] for c in ("wall", "cpu")}
    print(f"{'median':>6}  " + "  ".join(f"{med[k]['wall']:>6.3f} ({med[k]['cpu']:.3f})" for k in kinds))
    print(
        f"recorded vs plain: {100 * overhead['wall']:+.1f} % wall, {100 * overhead['cpu']:+.1f} % cpu; "
        f"inside the Recorder: {100 * inside['wall']:.1f} % wall, {100 * inside['cpu']:.1f} % cpu of a plain epoch "
        f"(target ≤ 5 %); store {store_bytes / 1e6:.1f} MB for {args.epochs} epochs"
    )
    result = {
        "model": "784x500",
        "data_rows": len(data),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "metrics": args.metrics,
        "seconds_per_epoch": times,
        "overhead": overhead,
        "inside_fraction": inside,
        "store_bytes": store_bytes,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))


def cell(t: dict[str, list[float]], i: int) -> str:
    return f"{t['wall'][i]:>6.3f} ({t['cpu'][i]:.3f})".rjust(15)


if __name__ == "__main__":
    main()
