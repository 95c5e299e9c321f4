"""scikit-learn's example "Restricted Boltzmann Machine features for digit classification", twice.

    python benchmarks/sklearn_example.py [--seeds 0 1 2] [--threads 1] [--out benchmarks/results/sklearn_example.md]

The example's settings: the 8×8 digits, each image also shifted by one pixel in the four
directions (5 × 1797 rows), scaled to [0, 1] by ``minmax_scale``, 80/20 train/test split
(``random_state=0``); a Pipeline of an RBM (100 hidden units, learning_rate 0.06, 10 iterations,
batch 10) and ``LogisticRegression(solver="newton-cg", C=6000)``; the baseline is a logistic
regression on the raw pixels (C=100). The example sets ``tol=1``; with scikit-learn 1.9 that stops
newton-cg before its first iteration (every row gets one class, accuracy 0.097), so both logistic
regressions here keep the default tolerance. The same pipeline runs with
``sklearn.neural_network.BernoulliRBM`` and with ``ebmlab.sklearn.BernoulliRBM`` (the one changed
import; then two ebmlab extras), for each seed of the RBM. Reported: test accuracy, the RBM's fit
time (wall and process CPU seconds), and the exact log pseudo-likelihood per test row of each
fitted RBM (computed by ebmlab's ``score_samples`` for both, so it is comparable).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import shift
from sklearn import datasets
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neural_network import BernoulliRBM as SklearnRBM
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import minmax_scale
from threadpoolctl import threadpool_limits

from ebmlab.sklearn import BernoulliRBM

EXAMPLE = {"n_components": 100, "learning_rate": 0.06, "n_iter": 10, "batch_size": 10}
CONTENDERS = {
    "scikit-learn BernoulliRBM": lambda seed: SklearnRBM(random_state=seed, **EXAMPLE),
    "ebmlab BernoulliRBM (import changed)": lambda seed: BernoulliRBM(random_state=seed, **EXAMPLE),
    "ebmlab, dtype='float32'": lambda seed: BernoulliRBM(random_state=seed, dtype="float32", **EXAMPLE),
    "ebmlab, optimizer='adam', lr 0.003": lambda seed: BernoulliRBM(
        random_state=seed, **{**EXAMPLE, "learning_rate": 0.003}, optimizer="adam"
    ),
}


def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The example's data: originals plus one-pixel shifts up, down, left and right; scaled; split."""
    x, y = datasets.load_digits(return_X_y=True)
    images = x.reshape(-1, 8, 8).astype(np.float32)  # the example works in float32
    moved = [images] + [shift(images, (0, dy, dx), order=0) for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1))]
    x = minmax_scale(np.concatenate(moved).reshape(-1, 64), feature_range=(0, 1))
    y = np.tile(y, 5)
    return train_test_split(x, y, test_size=0.2, random_state=0)


def pseudo_likelihood(rbm, x_test: np.ndarray, x_train: np.ndarray) -> float:
    """Mean exact log pseudo-likelihood of the test rows under ``rbm``'s parameters (ebmlab's score)."""
    if isinstance(rbm, BernoulliRBM):
        return float(rbm.score_samples(x_test).mean())
    twin = BernoulliRBM(n_components=rbm.n_components, n_iter=0).fit(x_train)
    twin.components_, twin.intercept_hidden_ = rbm.components_, rbm.intercept_hidden_
    twin.intercept_visible_ = rbm.intercept_visible_
    return float(twin.score_samples(x_test).mean())


def run(name: str, seed: int, data: tuple) -> dict[str, float]:
    x_train, x_test, y_train, y_test = data
    rbm = CONTENDERS[name](seed)
    wall, cpu = time.perf_counter(), time.process_time()
    features = rbm.fit_transform(x_train)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    logistic = LogisticRegression(solver="newton-cg", C=6000).fit(features, y_train)
    pipeline = Pipeline([("rbm", rbm), ("logistic", logistic)])  # fitted parts: predict runs both
    accuracy = float((pipeline.predict(x_test) == y_test).mean())
    return {"accuracy": accuracy, "wall": wall, "cpu": cpu, "pl": pseudo_likelihood(rbm, x_test, x_train)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "sklearn_example.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = digits()
    rows = []
    with threadpool_limits(args.threads):
        raw = LogisticRegression(solver="newton-cg", C=100).fit(data[0], data[2])
        raw_accuracy = float((raw.predict(data[1]) == data[3]).mean())
        runs = {name: [] for name in CONTENDERS}
        load_before = os.getloadavg()
        for seed in args.seeds:
            for name in CONTENDERS:  # alternate the contenders within each seed
                runs[name].append(run(name, seed, data))
                print(name, seed, runs[name][-1], flush=True)
        load_after = os.getloadavg()
    for name, results in runs.items():
        acc = [r["accuracy"] for r in results]
        wall = statistics.median(r["wall"] for r in results)
        cpu = statistics.median(r["cpu"] for r in results)
        pl = statistics.mean(r["pl"] for r in results)
        spread = f"{statistics.mean(acc):.4f} ({min(acc):.4f}–{max(acc):.4f})"
        rows.append(f"| {name} | {spread} | {wall:.2f} | {cpu:.2f} | {pl:.2f} |")
    table = "\n".join(
        [
            f"RBM features for digit classification (scikit-learn's example settings), "
            f"{len(data[0])} train / {len(data[1])} test rows, seeds {args.seeds}, {args.threads} thread(s).",
            f"Shared machine (8 agents on {os.cpu_count()} cores): load average {load_before[0]:.1f} before, "
            f"{load_after[0]:.1f} after; wall times are inflated by the load, CPU seconds less so. "
            f"torch {torch.__version__}, Python {platform.python_version()}.",
            "",
            "| RBM | test accuracy, mean (min–max) | RBM fit wall s (median) | RBM fit CPU s (median) "
            "| exact log PL per test row |",
            "|---|---|---|---|---|",
            *rows,
            f"| logistic regression on raw pixels (C=100) | {raw_accuracy:.4f} | – | – | – |",
        ]
    )
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
