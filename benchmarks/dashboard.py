"""How much a live TrainingDashboard slows training (target: ≤ 10 %).

Trains the same model twice per repeat from the same seed — once with ``Trainer.fit`` alone,
once driven by a ``TrainingDashboard`` (training thread, throttled PNG pictures, plotly energy
histograms and metric curves) — alternating the two so that load on the machine hits both
alike. Each run's time is taken inside the training thread from ``on_train_begin`` to the end
of ``on_train_end``, both as wall time and as that thread's CPU time (``time.thread_time``: the
drawing runs in the training thread, and CPU time is not inflated by other processes sharing the
machine). Overhead = median(dashboard time) / median(plain time) − 1, for both clocks. As
a direct, low-noise figure, the CPU time spent inside the dashboard's callback hooks is also
summed: drawing share = hook CPU time / (run CPU time − hook CPU time).

Outside a kernel the widgets have no frontend, so widget state is serialised but not sent;
the drawing work (PNG encoding, histograms, figure updates) is all counted.

    python benchmarks/dashboard.py [--data digits|mnist] [--epochs 60] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from ebmlab import BernoulliLayer, BoltzmannMachine
from ebmlab.data import load
from ebmlab.train import PCD, Callback, Trainer
from ebmlab.widgets import TrainingDashboard

DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"


def _dataset(name: str):
    if name == "mnist":
        return load("mnist", split="train5k", data_dir=DATA_DIR).binarize(), 500
    return load("digits").binarize(), 100


class Clock(Callback):
    """Wall and CPU seconds of the training thread over one ``fit`` (callbacks included)."""

    def on_train_begin(self, state) -> None:
        self.wall, self.cpu = time.perf_counter(), time.thread_time()

    def on_train_end(self, state) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.thread_time() - self.cpu


def _timed_hooks(listener: Callback, spent: list[float]) -> None:
    """Wrap the listener's hooks so that their thread CPU time adds up in ``spent[0]``."""
    for hook in ("on_train_begin", "on_batch_end", "on_epoch_end", "on_train_end"):
        inner = getattr(listener, hook)

        def timed(state, inner=inner) -> None:
            start = time.thread_time()
            inner(state)
            spent[0] += time.thread_time() - start

        setattr(listener, hook, timed)


def _trainer(data, hidden: int, batch_size: int, metrics: bool) -> Trainer:
    model = BoltzmannMachine([BernoulliLayer(data.data.shape[1]), BernoulliLayer(hidden)], seed=0)
    model.initialize(data.data)
    return Trainer(
        model, PCD(k=1, chains=100), lr=1e-3, batch_size=batch_size, progress=False, metrics=None if metrics else {}
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", choices=["digits", "mnist"], default="digits")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--interval", type=float, default=1.0, help="seconds between picture updates")
    p.add_argument("--plot-interval", type=float, default=2.0, help="seconds between plotly updates")
    p.add_argument("--metrics", action="store_true", help="compute the Trainer's default metrics each epoch")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "dashboard.json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    data, hidden = _dataset(args.data)

    times: dict[str, dict[str, list[float]]] = {k: {"wall": [], "cpu": []} for k in ("plain", "dashboard")}
    draws, shares = [], []
    for _ in range(args.repeats):
        trainer = _trainer(data, hidden, args.batch_size, args.metrics)
        clock = Clock()
        trainer.callbacks.append(clock)
        trainer.fit(data, args.epochs)
        times["plain"]["wall"].append(clock.wall)
        times["plain"]["cpu"].append(clock.cpu)

        trainer = _trainer(data, hidden, args.batch_size, args.metrics)
        dash = TrainingDashboard(
            trainer, data, epochs=args.epochs, interval=args.interval, plot_interval=args.plot_interval
        )
        spent = [0.0]
        _timed_hooks(dash.listener, spent)
        clock = Clock()
        trainer.callbacks.append(clock)  # after the dashboard's listener: its final drawing is counted
        dash.start()
        dash.wait()
        if dash.error is not None:
            raise dash.error
        times["dashboard"]["wall"].append(clock.wall)
        times["dashboard"]["cpu"].append(clock.cpu)
        draws.append(dash.draws)
        shares.append(spent[0] / (clock.cpu - spent[0]))
        dash.close()
        print(
            f"plain {times['plain']['wall'][-1]:.2f} s wall / {times['plain']['cpu'][-1]:.2f} s cpu · "
            f"dashboard {clock.wall:.2f} s wall / {clock.cpu:.2f} s cpu ({dash.draws} picture updates, "
            f"drawing {spent[0]:.2f} s cpu = {100 * shares[-1]:.1f} %)"
        )

    overhead = {
        k: statistics.median(times["dashboard"][k]) / statistics.median(times["plain"][k]) - 1 for k in ("wall", "cpu")
    }
    result = {
        "data": args.data,
        "model": f"{data.data.shape[1]}x{hidden}",
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "interval": args.interval,
        "plot_interval": args.plot_interval,
        "metrics": args.metrics,
        "seconds": times,
        "picture_updates": draws,
        "overhead": overhead,
        "drawing_share": shares,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(
        f"dashboard overhead: {100 * overhead['cpu']:+.1f} % CPU time, {100 * overhead['wall']:+.1f} % wall time; "
        f"drawing share {100 * statistics.median(shares):.1f} % (target ≤ 10 %) → {args.out}"
    )


if __name__ == "__main__":
    main()
