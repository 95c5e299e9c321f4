"""Demo ranking benchmark: does ``ebmlab demo --seed S`` rank the methods the same way for every seed?

    python benchmarks/demo_ranking.py [--seeds 0,1,2] [--threads 1]

Replays each point of the demo (``ebmlab/experiments/configs/demo.yaml``, seeded S as ``ebmlab demo
--seed S`` does) in this process, with the same data, model, initialization, method, optimizer,
learning rate, batch size, epochs and seed as the ``train`` template, without papermill, and prints
per seed the final exact log-likelihood of the training patterns (nats per image; log Z by
enumeration), the reconstruction error, and the ranking by log-likelihood; then whether the
ranking is the same for every seed.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

import ebmlab
from ebmlab.data import as_dataset, load
from ebmlab.evaluate import reconstruction_error
from ebmlab.evaluate.exact import mean_log_likelihood
from ebmlab.experiments import load_experiment
from ebmlab.experiments.demo import demo_config
from ebmlab.train import CD, PCD, PT, TAP, Trainer

METHODS = {"cd": CD, "pcd": PCD, "pt": PT, "tap": TAP}
OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}


def replay(p: dict) -> tuple[float, float, float]:
    """(exact log-likelihood, reconstruction error, CPU seconds) of one demo point, as the train template runs it."""
    ds = load(p["dataset"])
    ds = ds.binarize(0.5) if p.get("binarize", True) else ds
    fraction = p.get("validation_fraction", 0.1)
    _, train = ds.split(fraction, seed=p["seed"]) if fraction > 0 else (None, ds)
    if p.get("repeat", 1) > 1:
        train = as_dataset(train.data.repeat(p["repeat"], 1), image_shape=train.image_shape, name=train.name)
    model = ebmlab.BoltzmannMachine(ebmlab.parse_layers(p["layers"]), seed=p["seed"])
    model.initialize(train.data, method=p.get("init", "glorot"), seed=p["seed"])
    trainer = Trainer(
        model,
        METHODS[p["method"]](**p.get("method_options", {})),
        optimizer=OPTIMIZERS[p.get("optimizer", "adam")],
        lr=p["lr"],
        batch_size=p["batch_size"],
        metrics={},
        seed=p["seed"],
        progress=False,
    )
    cpu = time.process_time()
    trainer.fit(train, p["epochs"])
    cpu = time.process_time() - cpu
    return mean_log_likelihood(model, train.data), reconstruction_error(model, train.data), cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    rankings = {}
    print("| seed | method | exact LL (nats/image) | reconstruction error (squared error/pixel) | CPU s |")
    print("|---|---|---|---|---|")
    for seed in seeds:
        results = {}
        for point in load_experiment(demo_config(seed)).points():
            ll, recon, cpu = replay(point.parameters)
            results[point.axes["method"]] = ll
            print(f"| {seed} | {point.axes['method']} | {ll:.3f} | {recon:.4f} | {cpu:.1f} |", flush=True)
        rankings[seed] = sorted(results, key=results.get, reverse=True)
    print()
    for seed, ranking in rankings.items():
        print(f"seed {seed}: {' > '.join(ranking)}")
    same = len({tuple(r) for r in rankings.values()}) == 1
    load_avg = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"same ranking for seeds {args.seeds}: {same}")
    print(f"{args.threads} thread(s); shared 2-core machine, load average {load_avg}")


if __name__ == "__main__":
    main()
