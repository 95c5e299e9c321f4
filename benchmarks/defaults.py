"""Defaults benchmark: which optimizer and learning rate make a default run learn in its first epochs.

    python benchmarks/defaults.py [--datasets digits,mnist,fashion-mnist] [--methods cd,pcd,pt,tap]
                                  [--candidates adam:0.001,adam:0.01,sgd:0.1,...] [--epochs 5]
                                  [--threads 1] [--out FILE.json]

Each run is what ``ebmlab train`` builds by default apart from the optimizer and learning rate: a
Bernoulli RBM with the data's width and 100 hidden units, ``hinton`` initialization (W ~ N(0, 0.01²),
visible biases from the data), batch 100, the method with its CLI options (CD-1; PCD-1 and PT with 100
chains; TAP-2), binarized data (threshold 0.5). Candidates are ``optimizer:lr[:batch[:init]]`` with optimizer
``adam``, ``sgd`` (plain) or ``sgdm`` (SGD with momentum 0.9), batch size (default 100) and
initialization (``hinton``, ``glorot`` or ``pca``; default ``hinton``).

Data: scikit-learn's 8×8 digits (1,500 training rows, 297 test rows); MNIST-5k (the 5,000-row
``train5k`` split, 10,000 test rows) and Fashion-MNIST (its first 10,000 training rows, 10,000 test
rows) from ``../shared/data`` (skipped with a message when absent).

Scored after epoch 1 and after ``--epochs`` epochs on the test rows: the average log-likelihood
(nats per image) from forward AIS (``--schedule``, default ``fast``: 725 temperatures; 100 chains, base
rates from the training rows), and the exact pseudo-likelihood Σᵢ log p(vᵢ | v₋ᵢ) (nats per image, on
the first 1,000 test rows). ``Δ`` is the gain in AIS log-likelihood over the initial model (epoch 0).
A run that raises ``TrainingDiverged`` or ends below its epoch-1 likelihood is flagged. The table
closes with the mean gain per candidate over every (dataset, method) pair, and the number of pairs
where the candidate was within 2 nats of the best.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import torch

from ebmlab import BernoulliLayer, BoltzmannMachine
from ebmlab.data import as_dataset, load
from ebmlab.evaluate import ais, pseudo_likelihood
from ebmlab.evaluate.exact import mean_log_likelihood
from ebmlab.train import CD, PCD, PT, TAP, Trainer, TrainingDiverged

ROOT = Path(__file__).resolve().parent
DEFAULT_DATA = ROOT.parents[1] / "shared" / "data"
METHODS = {
    "cd": ("CD-1", lambda: CD(k=1)),
    "pcd": ("PCD-1", lambda: PCD(k=1, chains=100)),
    "pt": ("PT", lambda: PT(k=1, chains=100)),
    "tap": ("TAP-2", lambda: TAP(order=2)),
}
OPTIMIZERS = {
    "adam": lambda params, lr: torch.optim.Adam(params, lr=lr),
    "sgd": lambda params, lr: torch.optim.SGD(params, lr=lr),
    "sgdm": lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=0.9),
}
CANDIDATES = "adam:0.001,adam:0.01:100:glorot,sgd:0.1:100:glorot,sgd:0.05:100:glorot"


def datasets(names: list[str], data_dir: Path) -> dict[str, tuple[Any, Any]]:
    """{name: (train, test)} binarized at 0.5; MNIST / Fashion-MNIST skipped when their files are absent."""
    out = {}
    for name in names:
        if name == "digits":
            out[name] = (load("digits", "train").binarize(0.5), load("digits", "test").binarize(0.5))
        elif name in ("mnist", "fashion-mnist"):
            folder = data_dir / name
            if not folder.is_dir():
                print(f"skipped {name}: no IDX files in {folder}")
                continue
            split = "train5k" if name == "mnist" else "train"
            train = load(name, split, data_dir=folder)
            train = as_dataset(train.data[:10_000], image_shape=train.image_shape)
            out["MNIST-5k" if name == "mnist" else "Fashion-MNIST-10k"] = (
                train.binarize(0.5),
                load(name, "t10k", data_dir=folder).binarize(0.5),
            )
        else:
            raise ValueError(f"--datasets: unknown dataset {name!r}; use digits, mnist, fashion-mnist")
    return out


PL_ROWS = 1000  # the exact pseudo-likelihood costs one free energy per visible unit: a subsample of the test rows


def score(model: BoltzmannMachine, train: Any, test: Any, seed: int, schedule: str) -> tuple[float, float]:
    """(AIS test log-likelihood, pseudo-likelihood), nats per image."""
    log_z = ais.log_partition(model, chains=100, betas=schedule, data=train.data, seed=seed, progress=False)
    pl = float(pseudo_likelihood(model, test.data[:PL_ROWS]))
    return mean_log_likelihood(model, test.data, log_z.log_z), pl


def parse_candidate(text: str) -> tuple[str, float, int, str]:
    """``optimizer:lr[:batch[:init]]`` -> (optimizer, lr, batch size, init); batch 100 and hinton by default."""
    parts = text.split(":")
    if not 2 <= len(parts) <= 4 or parts[0] not in OPTIMIZERS:
        raise ValueError(
            f"--candidates: expected optimizer:lr[:batch[:init]] with optimizer in {sorted(OPTIMIZERS)}, got {text!r}"
        )
    batch = int(parts[2]) if len(parts) > 2 else 100
    init = parts[3] if len(parts) > 3 else "hinton"
    return parts[0], float(parts[1]), batch, init


def run_one(
    train: Any, test: Any, method: str, candidate: str, epochs: int, seed: int, schedule: str
) -> dict[str, Any]:
    opt_name, lr, batch, init = parse_candidate(candidate)
    model = BoltzmannMachine([BernoulliLayer(train.n_units), BernoulliLayer(100)], seed=seed)
    model.initialize(train.data, method=init, seed=seed)
    ll0, _ = score(model, train, test, seed, schedule)
    trainer = Trainer(
        model,
        METHODS[method][1](),
        optimizer=lambda params: OPTIMIZERS[opt_name](params, lr),
        batch_size=batch,
        metrics={},
        seed=seed,
        progress=False,
    )
    row: dict[str, Any] = {"method": METHODS[method][0], "candidate": candidate, "ll0": ll0}
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        trainer.fit(train, 1)
        row["ll1"], row["pl1"] = score(model, train, test, seed, schedule)
        trainer.fit(train, epochs)
        row["ll"], row["pl"] = score(model, train, test, seed, schedule)
        row["status"] = "ok" if row["ll"] >= row["ll1"] else "falls"
    except TrainingDiverged:
        row["ll1"], row["pl1"], row["ll"], row["pl"], row["status"] = (float("nan"),) * 4 + ("diverged",)
    row["wall_s"], row["cpu_s"] = time.perf_counter() - wall, time.process_time() - cpu
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="digits,mnist,fashion-mnist")
    parser.add_argument("--methods", default="cd,pcd,pt,tap")
    parser.add_argument("--candidates", default=CANDIDATES, help="optimizer:lr pairs, optimizer adam, sgd or sgdm")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--schedule", default="fast", help="AIS schedule: fast (725 steps), moderate, sm2008")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=None, help="also write the rows as JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    methods = args.methods.split(",")
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"--methods: unknown method {m!r}; use {', '.join(METHODS)}")
    candidates = args.candidates.split(",")
    for c in candidates:
        parse_candidate(c)
    rows = []
    for data_name, (train, test) in datasets(args.datasets.split(","), args.data_dir).items():
        for m in methods:
            for c in candidates:
                row = {"data": data_name, **run_one(train, test, m, c, args.epochs, args.seed, args.schedule)}
                rows.append(row)
                print(
                    f"{data_name} {row['method']} {c}: LL {row['ll0']:.2f} -> {row['ll1']:.2f} -> {row['ll']:.2f} "
                    f"({row['status']}, {row['cpu_s']:.0f} s CPU)",
                    flush=True,
                )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"\nRBM with 100 hidden units, batch 100, {args.epochs} epochs, {args.threads} thread(s), seed {args.seed}; "
        f"shared 2-core machine, load average at the end {load}. Test log-likelihood by forward AIS "
        f"({args.schedule} schedule, 100 chains) and pseudo-likelihood, nats per image (higher is better).\n"
    )
    print(
        f"| data | method | optimizer:lr | LL epoch 0 | LL epoch 1 | LL epoch {args.epochs} | Δ "
        f"| PL epoch {args.epochs} | status | wall s | CPU s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['data']} | {r['method']} | {r['candidate']} | {r['ll0']:.2f} | {r['ll1']:.2f} | {r['ll']:.2f} "
            f"| {r['ll'] - r['ll0']:+.2f} | {r['pl']:.2f} | {r['status']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} |"
        )
    pairs = {(r["data"], r["method"]) for r in rows}
    best = {
        p: max((r["ll"] for r in rows if (r["data"], r["method"]) == p and r["ll"] == r["ll"]), default=None)
        for p in pairs
    }
    print("\n| optimizer:lr | mean Δ over (data, method) | within 2 nats of the best | diverged or falling |")
    print("|---|---|---|---|")
    for c in candidates:
        mine = [r for r in rows if r["candidate"] == c]
        gains = [r["ll"] - r["ll0"] for r in mine if r["status"] != "diverged"]
        near = sum(
            1
            for r in mine
            if best[(r["data"], r["method"])] is not None and r["ll"] >= best[(r["data"], r["method"])] - 2
        )
        bad = sum(1 for r in mine if r["status"] != "ok")
        mean = sum(gains) / len(gains) if gains else float("nan")
        print(f"| {c} | {mean:+.2f} | {near} / {len(mine)} | {bad} |")
    if args.out is not None:
        args.out.write_text(
            json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "load": load, "rows": rows})
        )


if __name__ == "__main__":
    main()
