"""``ebmlab batch experiment.yaml``: run a notebook template over a parameter grid on Dask, then report."""

from __future__ import annotations

import argparse

NAME = "batch"
HELP = "run an experiment (template + parameter grid) with papermill on Dask and write its HTML report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="experiment YAML: template, parameters, grid, repeats or seeds")
    parser.add_argument("--out", default=None, help="batch folder (default: runs/<name>)")
    parser.add_argument("--scheduler", default=None, help="address of a running Dask scheduler, e.g. tcp://host:8786")
    parser.add_argument(
        "--workers", type=int, default=None, help="local worker processes (with --scheduler: wait for N)"
    )
    parser.add_argument("--no-retry-failed", action="store_true", help="skip failed points too when rerunning")
    parser.add_argument("--no-report", action="store_true", help="do not write report.html")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    from ebmlab.experiments import run_batch

    result = run_batch(
        args.config,
        out_dir=args.out,
        scheduler=args.scheduler,
        workers=args.workers,
        progress=not args.no_progress,
        report=not args.no_report,
        retry_failed=not args.no_retry_failed,
    )
    print(
        f"{len(result.points)} points: {len(result.finished)} finished, {len(result.failed)} failed, "
        f"{len(result.executed)} run now, {len(result.skipped)} skipped (already done)"
    )
    for point_id in result.failed:
        print(f"failed: {point_id}: {result.statuses[point_id].get('error')}")
    print(result.report if result.report is not None else result.run_dir)
    return 1 if result.failed else 0
