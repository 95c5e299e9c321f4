"""Speed of one PCD-1 epoch of a 784×500 Bernoulli RBM: ebmlab against scikit-learn's BernoulliRBM.

    python benchmarks/speed.py [--rows N] [--device cpu|cuda|auto] [--repeats 3] [--data-dir DIR]

Both train on the same binarized Fashion-MNIST training rows (random binary rows of the same
shape when the files are absent), batch 100, 100 persistent chains, plain SGD with the same
learning rate, in this process, alternating the contenders in each repeat. ebmlab runs in float32
(its default); scikit-learn computes in the dtype of its input, so it runs twice: on float64 rows
(numpy's default, e.g. ``X / 255.0``) and on float32 rows (the same precision as ebmlab).

FLOP count: PCD-1 on a batch of B rows with M chains needs three matmul passes over the 784×500
weights — the chains' visible field (M rows), the hidden field of data and chains ((B + M) rows,
one fused matmul in ebmlab) and the statistics Xᵀ P ((B + M) rows) — so 2·784·500·(3M + 2B)
FLOPs per batch (scikit-learn's five 100-row matmuls are the same count). The throughput is
compared with a plain 100×784 @ 784×500 float32 matmul timed in the same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

VISIBLE, HIDDEN, BATCH, CHAINS, LR = 784, 500, 100, 100, 0.1
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def load_rows(data_dir: Path, rows: int | None) -> tuple[np.ndarray, str]:
    """Binarized Fashion-MNIST training rows (float32), or random binary rows when the files are absent."""
    from ebmlab.data import DatasetNotFoundError, load

    try:
        x = load("fashion-mnist", split="train", data_dir=data_dir, download=False).binarize(0.5).data.numpy()
        source = f"fashion-mnist train (binarized at 0.5) from {data_dir}"
    except (DatasetNotFoundError, FileNotFoundError, ValueError):
        x = (np.random.default_rng(0).random((rows or 60_000, VISIBLE)) < 0.5).astype(np.float32)
        source = "random binary rows (fashion-mnist files not found)"
    return np.ascontiguousarray(x[:rows]), source


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_gflops(device: torch.device, seconds: float = 1.0) -> float:
    """GFLOP/s of a plain (100×784) @ (784×500) float32 matmul, repeated for about ``seconds``."""
    a = torch.rand(BATCH, VISIBLE, device=device)
    b = torch.rand(VISIBLE, HIDDEN, device=device)
    out = torch.empty(BATCH, HIDDEN, device=device)
    for _ in range(20):
        torch.mm(a, b, out=out)
    sync(device)
    reps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(50):
            torch.mm(a, b, out=out)
        reps += 50
        sync(device)
    return 2 * BATCH * VISIBLE * HIDDEN * reps / (time.perf_counter() - start) / 1e9


def epoch_flops(rows: int) -> float:
    full, rest = divmod(rows, BATCH)
    per_batch = [BATCH] * full + ([rest] if rest else [])
    return sum(2 * VISIBLE * HIDDEN * (3 * CHAINS + 2 * b) for b in per_batch)


def ebmlab_trainer(x: torch.Tensor):
    from ebmlab import BernoulliLayer, BoltzmannMachine
    from ebmlab.train import PCD, Trainer

    model = BoltzmannMachine([BernoulliLayer(VISIBLE), BernoulliLayer(HIDDEN)], seed=0).to(x.device)
    model.initialize(x, seed=0)
    return Trainer(
        model, PCD(k=1, chains=CHAINS), optimizer=torch.optim.SGD, lr=LR, batch_size=BATCH, metrics={}, progress=False
    )


def time_ebmlab(trainer, x: torch.Tensor) -> float:
    sync(x.device)
    start = time.perf_counter()
    trainer.fit(x, trainer.epoch + 1)
    sync(x.device)
    return time.perf_counter() - start


def time_sklearn(x: np.ndarray, seed: int) -> float:
    from sklearn.neural_network import BernoulliRBM

    rbm = BernoulliRBM(n_components=HIDDEN, learning_rate=LR, batch_size=BATCH, n_iter=1, random_state=seed)
    start = time.perf_counter()
    rbm.fit(x)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=None, help="use only the first ROWS rows (default: all 60,000)")
    parser.add_argument("--device", default="cpu", help="device for ebmlab: cpu, cuda, or auto (cuda when available)")
    parser.add_argument("--repeats", type=int, default=3, help="alternating repeats of each contender")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA, help="folder holding fashion-mnist/")
    parser.add_argument(
        "--threads", type=int, default=None, help="CPU threads for torch and numpy's BLAS (default: all)"
    )
    args = parser.parse_args(argv)
    if args.threads is not None:
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(args.threads)
        threadpool_limits(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else args.device)
    if device.type == "auto":
        device = torch.device("cpu")

    rows_np, source = load_rows(args.data_dir, args.rows)
    rows = rows_np.shape[0]
    x = torch.from_numpy(rows_np).to(device)
    trainer = ebmlab_trainer(x)
    print(f"data: {rows} rows × {VISIBLE} ({source})")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; torch {torch.__version__}; PCD-1, batch {BATCH}, {CHAINS} chains, SGD lr {LR}, float32")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"load average before the run: {load} on {os.cpu_count()} CPUs (other processes skew wall-clock times)")

    x64 = rows_np.astype(np.float64)
    times: dict[str, list[float]] = {"ebmlab": [], "sklearn64": [], "sklearn32": []}
    matmul = []
    time_ebmlab(trainer, x[: 10 * BATCH])  # warm-up: lazy imports, buffers
    trainer.epoch = 0
    for r in range(args.repeats):
        matmul.append(matmul_gflops(device))
        times["ebmlab"].append(time_ebmlab(trainer, x))
        times["sklearn64"].append(time_sklearn(x64, r))
        times["sklearn32"].append(time_sklearn(rows_np, r))
        shown = ", ".join(f"{k} {v[-1]:.3f} s" for k, v in times.items())
        print(f"repeat {r + 1}: {shown}, matmul {matmul[-1]:.1f} GFLOP/s")

    flops = epoch_flops(rows)
    med = {k: statistics.median(v) for k, v in times.items()}
    peak = statistics.median(matmul)
    labels = {
        "ebmlab": "ebmlab PCD-1 (float32)",
        "sklearn64": "sklearn RBM, float64 X",
        "sklearn32": "sklearn RBM, float32 X",
    }
    print()
    print(f"| {f'median of {args.repeats} repeats':<28} | s / epoch | GFLOP/s | % of matmul | ebmlab time ratio |")
    print("|------------------------------|-----------|---------|-------------|-------------------|")
    for key, label in labels.items():
        gflops = flops / med[key] / 1e9
        ratio = "" if key == "ebmlab" else f"{med['ebmlab'] / med[key]:.3f}"
        print(f"| {label:<28} | {med[key]:>9.3f} | {gflops:>7.1f} | {100 * gflops / peak:>10.0f}% | {ratio:>17} |")
    print(f"| {'plain matmul 100×784×500':<28} | {'':>9} | {peak:>7.1f} | {100:>10.0f}% | {'':>17} |")
    print()
    print(
        f"ebmlab / scikit-learn epoch time: {med['ebmlab'] / med['sklearn64']:.3f} against float64 input (numpy's "
        f"default; target ≤ 0.45), {med['ebmlab'] / med['sklearn32']:.3f} against float32 input"
    )
    print(
        f"FLOPs per epoch: {flops / 1e9:.1f} GFLOP; ebmlab reaches {100 * flops / med['ebmlab'] / 1e9 / peak:.0f}% "
        "of the plain matmul's throughput (target ≥ 60%)"
    )


if __name__ == "__main__":
    main()
