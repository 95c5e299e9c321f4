"""``ebmlab demo``: compare CD-1, PCD-1, PT and TAP-2 on bars-and-stripes in a small batch and write the report."""

from __future__ import annotations

import argparse

NAME = "demo"
HELP = "compare CD-1, PCD-1, PT and TAP-2 RBMs on bars-and-stripes by exact log-likelihood and print the report's path"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", default=None, help="batch folder (default: runs/demo, or runs/demo-seed-S for --seed S other than 0)"
    )
    parser.add_argument("--scheduler", default=None, help="address of a running Dask scheduler, e.g. tcp://host:8786")
    parser.add_argument("--workers", type=int, default=None, help="local worker processes (default: one per core)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the data split, initialization and sampling of every run"
    )


def run(args: argparse.Namespace) -> int:
    from ebmlab.experiments import run_demo

    out = args.out or ("runs/demo" if args.seed == 0 else f"runs/demo-seed-{args.seed}")
    result = run_demo(
        out, scheduler=args.scheduler, workers=args.workers, progress=not args.no_progress, seed=args.seed
    )
    for point_id in result.failed:
        print(f"failed: {point_id}: {result.statuses[point_id].get('error')}")
    print(result.report)
    return 1 if result.failed else 0
