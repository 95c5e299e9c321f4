"""``ebmlab report DIR``: write a batch folder's self-contained offline HTML report."""

from __future__ import annotations

import argparse

NAME = "report"
HELP = "write one self-contained HTML report (opens offline) of a batch folder"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", help="batch folder written by 'ebmlab batch'")
    parser.add_argument("--out", default=None, help="HTML file to write (default: DIR/report.html)")


def run(args: argparse.Namespace) -> int:
    from ebmlab.experiments import write_report

    print(write_report(args.dir, args.out))
    return 0
