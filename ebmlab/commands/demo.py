"""``ebmlab demo``: compare CD-1, PCD-1, PT and TAP-2 on digits in a small batch and write the report."""

from __future__ import annotations

import argparse

NAME = "demo"
HELP = "compare CD-1, PCD-1, PT and TAP-2 RBMs on the bundled digits (a small batch) and print the report's path"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/demo", help="batch folder (default: runs/demo)")
    parser.add_argument("--scheduler", default=None, help="address of a running Dask scheduler, e.g. tcp://host:8786")
    parser.add_argument("--workers", type=int, default=None, help="local worker processes (default: one per core)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    from ebmlab.experiments import run_demo

    result = run_demo(args.out, scheduler=args.scheduler, workers=args.workers, progress=not args.no_progress)
    for point_id in result.failed:
        print(f"failed: {point_id}: {result.statuses[point_id].get('error')}")
    print(result.report)
    return 1 if result.failed else 0
