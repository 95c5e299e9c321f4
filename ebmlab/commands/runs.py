"""``ebmlab runs DIR``: list the run histories stored under a folder with their final metrics.

ebmlab runs runs/            # every *.zarr run store below runs/, one line each
ebmlab runs runs/ --metrics loss,val_reconstruction_error

A damaged store is listed with status ``broken`` and its error printed below the table; the other
runs are listed as usual.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

NAME = "runs"
HELP = "list the runs stored under a folder (status, epochs, final metrics)"
HIDDEN = ("wall_seconds", "samples_per_second")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", help="folder searched recursively for run histories (e.g. runs/)")
    parser.add_argument(
        "--metrics",
        default=None,
        help="comma-separated metric names to show (default: every recorded metric but wall_seconds, "
        "samples_per_second)",
    )


def rows(directory: Path, metrics: list[str] | None) -> tuple[list[str], list[list[str]], list[str]]:
    """The table: header, one row per run (run, status, epochs, dataset, method, layer sizes, metrics), and
    one message per broken run (whose row has status ``broken``)."""
    from ebmlab.history import list_runs, open_run, run_parameters

    records: list[tuple[dict[str, Any], dict[str, float]]] = []
    names: list[str] = []
    broken: list[str] = []
    for path in list_runs(directory):
        run_name = str(path.relative_to(directory))
        try:
            ds = open_run(path)
            info = run_parameters(ds.attrs)
            info["epochs"] = int(ds.epoch.values[-1]) if ds.sizes["epoch"] else 0
            final = {}
            for var in ds.data_vars:
                name = ds[var].attrs.get("metric")
                if name is not None and ds.sizes["epoch"]:
                    final[name] = float(ds[var].values[-1])
                    if name not in names:
                        names.append(name)
        except (ValueError, OSError, KeyError, TypeError) as err:
            info, final = {"status": "broken"}, {}
            broken.append(f"broken: {run_name}: {' '.join(str(err).split())}")
        info["run"] = run_name
        records.append((info, final))
    shown = metrics if metrics is not None else [n for n in names if n not in HIDDEN]
    header = ["run", "status", "epochs", "dataset", "method", "layer_sizes", *shown]
    table = [
        [str(info[k] if info.get(k) is not None else "") for k in header[:6]] + [_number(final.get(m)) for m in shown]
        for info, final in records
    ]
    return header, table, broken


def _number(x: float | None) -> str:
    return "-" if x is None or math.isnan(x) else f"{x:.5g}"


def format_table(header: list[str], table: list[list[str]]) -> str:
    """Columns padded to their widest cell, separated by two spaces."""
    widths = [max(len(r[i]) for r in [header, *table]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in [header, *table])


def run(args: argparse.Namespace) -> int:
    directory = Path(args.dir)
    if not directory.is_dir():
        raise ValueError(f"{directory} is not a folder")
    metrics = None if args.metrics is None else [m.strip() for m in args.metrics.split(",") if m.strip()]
    header, table, broken = rows(directory, metrics)
    if not table:
        print(f"no runs under {directory}")
        return 0
    print(format_table(header, table))
    for line in broken:
        print(line, file=sys.stderr)
    return 0
