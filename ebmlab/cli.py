"""The ``ebmlab`` command line: one subcommand per module in ``ebmlab.commands``.

Each module there defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``.
Errors a user can act on (bad input, unreadable or damaged files, a refused output folder, an
unreachable scheduler, a diverged run) are printed as one line ``ebmlab: error: …`` with exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from . import __version__, commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ebmlab", description="Train, evaluate and compare energy-based neural networks."
    )
    parser.add_argument("--version", action="version", version=f"ebmlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(handler=module.run)
    return parser


def error_line(err: BaseException) -> str:
    """An exception (and its notes) as one line: ``ebmlab: error: <message>``."""
    text = " ".join([str(err) or type(err).__name__, *getattr(err, "__notes__", [])])
    return "ebmlab: error: " + " ".join(text.split())


def main(argv: Sequence[str] | None = None) -> int:
    """Run a subcommand; bad input, files and failed runs print one line ``ebmlab: error: …`` and return 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # the words as given, for a subcommand that relaunches itself (train --nproc)
    try:
        return int(args.handler(args) or 0)
    except (ValueError, TypeError, OSError, RuntimeError, LookupError) as err:
        print(error_line(err), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
