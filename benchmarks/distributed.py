"""Data-parallel PCD-1 on a 784×500 Bernoulli RBM: 1 process against N processes (gloo on 127.0.0.1).

    python benchmarks/distributed.py [--nproc 2] [--epochs 6] [--threads 1] [--data-dir DIR] [--json PATH]

Trains on binarized MNIST-5k (``ebmlab.data.load("mnist", split="train5k")``; random binary rows when
the files are absent), global batch 100, plain SGD lr 0.05, no metrics. The persistent chains are 100
in all: 100 on one process, 100 / N per rank on N ranks, so N ranks do the work of one process split N
ways (strong scaling) and the comparison is fair. Each process uses ``--threads`` torch threads.

Measured per process (medians over the epochs after the first): epoch wall and CPU seconds,
samples/s, and the wall (and CPU) time spent inside ``torch.distributed.all_reduce`` during training
(the gradient reduction, including any wait for a slower rank) as a share of the epoch. Then a
microbenchmark of gloo's all_reduce here: the latency α (one float) and the time of the gradient
buffer (784·500 + 784 + 500 + 2 floats, 1.58 MB), whose ring-all-reduce bus bandwidth is 2(N−1)/N · S / t.

Scaling model (strong scaling at global batch 100): one step on N ranks takes
T_N = T_1 / N + 2(N−1)·α + 2(N−1)/N · S / BW, so the efficiency T_1 / (N · T_N) is
1 / (1 + N · T_comm / T_1); it is printed for N = 2, 4, 8, 16 at 1, 10 and 100 Gbit/s, with α the
fastest measured latency (loopback: real networks add tens of µs) and T_1 the measured 1-process CPU seconds per
step (one thread; on a shared machine the wall time is inflated by other processes).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

VISIBLE, HIDDEN, BATCH, CHAINS, LR = 784, 500, 100, 100, 0.05
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ROOT = Path(__file__).resolve().parents[1]
FLOATS = VISIBLE * HIDDEN + VISIBLE + HIDDEN + 2  # the gradient buffer: W, b, c, loss and stop flag


def load_rows(data_dir: Path) -> tuple[torch.Tensor, str]:
    """Binarized MNIST-5k rows (float32), or 5000 random binary rows when the files are absent."""
    from ebmlab.data import DatasetNotFoundError, load

    try:
        x = load("mnist", split="train5k", data_dir=data_dir, download=False).binarize(0.5).data
        return x, f"mnist train5k (binarized at 0.5) from {data_dir}"
    except (DatasetNotFoundError, FileNotFoundError, ValueError):
        x = (torch.rand(5000, VISIBLE, generator=torch.Generator().manual_seed(0)) < 0.5).float()
        return x, "5000 random binary rows (mnist files not found)"


def timed_all_reduce(repeats: int, floats: int) -> tuple[float, float]:
    """(median, minimum) seconds of one gloo all_reduce of ``floats`` float32 values (after 3 warm-up calls)."""
    import torch.distributed as dist

    buf = torch.zeros(floats)
    times = []
    for i in range(repeats + 3):
        dist.barrier()
        start = time.perf_counter()
        dist.all_reduce(buf)
        if i >= 3:
            times.append(time.perf_counter() - start)
    return float(np.median(times)), float(np.min(times))


def rank_main(args: argparse.Namespace) -> None:
    """One rank: train with all_reduce timed, then the microbenchmark; writes RESULT/rank<r>.json."""
    import torch.distributed as dist

    from ebmlab.train.distributed import init_process_group

    torch.set_num_threads(args.threads)
    dp = init_process_group(torch.device("cpu"), "gloo", timeout=300)
    x, _ = load_rows(Path(args.data_dir))
    spent = [0.0, 0.0]
    reduce = dist.all_reduce

    def counted(*a: object, **k: object) -> object:
        start, cpu = time.perf_counter(), time.process_time()
        try:
            return reduce(*a, **k)
        finally:
            spent[0] += time.perf_counter() - start
            spent[1] += time.process_time() - cpu

    dist.all_reduce = counted
    out = train_counted(x, args.epochs, dp.world, spent)
    dist.all_reduce = reduce
    out["latency_seconds"] = timed_all_reduce(200, 1)
    out["buffer_seconds"] = timed_all_reduce(30, FLOATS)
    Path(args.result, f"rank{dp.rank}.json").write_text(json.dumps(out))
    dist.destroy_process_group()


def train_counted(x: torch.Tensor, epochs: int, world: int, spent: list[float]) -> dict[str, float]:
    """Train ``epochs`` epochs; medians over the epochs after the first of wall, CPU and all_reduce seconds."""
    import ebmlab
    from ebmlab.train import PCD, Trainer

    model = ebmlab.BoltzmannMachine([ebmlab.BernoulliLayer(VISIBLE), ebmlab.BernoulliLayer(HIDDEN)], seed=0)
    model.initialize(x, method="glorot", seed=0)
    trainer = Trainer(model, PCD(k=1, chains=CHAINS // world), lr=LR, batch_size=BATCH, metrics={},
                      progress=False, seed=0)
    trainer.fit(x, 1)  # warm-up
    walls, cpus, reduces, reduce_cpus = [], [], [], []
    for epoch in range(2, epochs + 1):
        spent[:] = [0.0] * len(spent)
        wall, cpu = time.perf_counter(), time.process_time()
        trainer.fit(x, epoch)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        reduces.append(spent[0])
        reduce_cpus.append(spent[-1])
    wall, cpu = float(np.median(walls)), float(np.median(cpus))
    steps = -(-x.shape[0] // BATCH)
    return {"epoch_seconds": wall, "cpu_seconds": cpu, "samples_per_second": x.shape[0] / wall,
            "step_seconds": wall / steps, "steps": steps, "all_reduce_seconds": float(np.median(reduces)),
            "all_reduce_cpu_seconds": float(np.median(reduce_cpus)),
            "epoch_walls": walls}


def spawn(args: argparse.Namespace) -> list[dict[str, float]]:
    """Run ``--nproc`` ranks of this script; return every rank's measurements."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp)
        procs = []
        for rank in range(args.nproc):
            env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(args.nproc),
                       MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS=str(args.threads),
                       PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
            command = [sys.executable, __file__, "--rank", "--result", str(result), "--epochs", str(args.epochs),
                       "--threads", str(args.threads), "--data-dir", str(args.data_dir)]
            procs.append(subprocess.Popen(command, env=env))
        codes = [p.wait(timeout=1800) for p in procs]
        if any(codes):
            raise SystemExit(f"a rank failed: exit codes {codes}")
        return [json.loads((result / f"rank{r}.json").read_text()) for r in range(args.nproc)]


def efficiency(step: float, latency: float, n: int, gbit: float) -> tuple[float, float]:
    """(communication seconds per step, strong-scaling efficiency) on n ranks at ``gbit`` Gbit/s."""
    comm = 2 * (n - 1) * latency + 2 * (n - 1) / n * FLOATS * 4 * 8 / (gbit * 1e9)
    return comm, 1 / (1 + n * comm / step)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nproc", type=int, default=2, help="processes of the data-parallel run")
    parser.add_argument("--epochs", type=int, default=6, help="epochs per run; medians over all but the first")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA, help="folder with mnist/train5k-*")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    parser.add_argument("--rank", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--result", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be >= 2 (the first epoch warms up)")
    if args.rank:
        rank_main(args)
        return
    torch.set_num_threads(args.threads)
    x, source = load_rows(args.data_dir)
    load_before = os.getloadavg()
    print(f"data: {source}, {x.shape[0]} rows; PCD-1, 784×500, global batch {BATCH}, {CHAINS} chains in all, "
          f"{args.threads} thread(s) per process; load average before: {load_before[0]:.2f} (shared 2-core machine)")
    one = train_counted(x, args.epochs, 1, [0.0, 0.0])
    ranks = spawn(args)
    load_after = os.getloadavg()
    slow = max(ranks, key=lambda r: r["epoch_seconds"])
    print("\n| processes | epoch s (wall) | CPU s per process | samples/s | step ms | all_reduce share (CPU s) |")
    print("|---|---|---|---|---|---|")
    print(f"| 1 | {one['epoch_seconds']:.2f} | {one['cpu_seconds']:.2f} | {one['samples_per_second']:.0f} | "
          f"{1e3 * one['step_seconds']:.1f} | – |")
    share = slow["all_reduce_seconds"] / slow["epoch_seconds"]
    cpu = "/".join(f"{r['cpu_seconds']:.2f}" for r in ranks)
    print(f"| {args.nproc} | {slow['epoch_seconds']:.2f} | {cpu} | {slow['samples_per_second']:.0f} | "
          f"{1e3 * slow['step_seconds']:.1f} | {100 * share:.1f} % ({slow['all_reduce_cpu_seconds']:.2f}) |")
    speedup = one["epoch_seconds"] / slow["epoch_seconds"]
    print(f"\nspeed-up {speedup:.2f}× on {args.nproc} processes; load average after: {load_after[0]:.2f}")
    latency_median = float(np.median([r["latency_seconds"][0] for r in ranks]))
    buffer_median = float(np.median([r["buffer_seconds"][0] for r in ranks]))
    latency = float(max(r["latency_seconds"][1] for r in ranks))  # the fastest call: least disturbed by load
    buffer = float(max(r["buffer_seconds"][1] for r in ranks))
    n = args.nproc
    bandwidth = 2 * (n - 1) / n * FLOATS * 4 / buffer
    print(f"gloo all_reduce here (127.0.0.1, {n} ranks), fastest (median) of the repeats: latency α = "
          f"{1e6 * latency:.0f} µs ({1e6 * latency_median:.0f} µs) for 1 float; the {FLOATS * 4 / 1e6:.2f} MB "
          f"gradient buffer in {1e3 * buffer:.2f} ms ({1e3 * buffer_median:.2f} ms) "
          f"→ bus bandwidth {bandwidth * 8 / 1e9:.2f} Gbit/s")
    step = one["cpu_seconds"] / one["steps"]  # CPU time: the wall time of a shared machine is inflated
    print(f"\nprojected strong-scaling efficiency T_1/(N·T_N), T_1 = {1e3 * step:.1f} ms per step (1-process CPU "
          f"seconds / steps), α = {1e6 * latency:.0f} µs:")
    print("| N | 1 Gbit/s | 10 Gbit/s | 100 Gbit/s |")
    print("|---|---|---|---|")
    table = {}
    for nodes in (2, 4, 8, 16):
        cells = []
        for gbit in (1, 10, 100):
            comm, eff = efficiency(step, latency, nodes, gbit)
            table[f"{nodes}@{gbit}"] = eff
            cells.append(f"{100 * eff:.0f} % ({1e3 * comm:.2f} ms comm)")
        print(f"| {nodes} | " + " | ".join(cells) + " |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "source": source, "threads": args.threads, "load_average": [load_before[0], load_after[0]],
            "one_process": one, "ranks": ranks, "latency_seconds": latency, "buffer_seconds": buffer,
            "bus_gbit_per_s": bandwidth * 8 / 1e9, "efficiency": table,
        }, indent=2))


if __name__ == "__main__":
    main()
