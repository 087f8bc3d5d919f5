"""The `costscaler` command: one subcommand per module in `costscaler.commands`."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from costscaler import __version__
from costscaler.errors import UserError

# Each name is a module in costscaler.commands exposing register(subparsers).
COMMANDS: tuple[str, ...] = ("crds", "validate", "plan", "report", "run", "simulate")


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """Build the argument parser: with `argv` naming a subcommand first, only that one is
    registered; otherwise (no argv, `--help`, a typo) every subcommand.

    Registering a subcommand imports its module: `simulate`'s imports the simulator and
    scipy, 38.9 MB of the operator's resident memory if `costscaler run` loaded it too.
    """
    parser = argparse.ArgumentParser(
        prog="costscaler",
        description="Autoscale ML inference deployments on total cost of ownership.",
    )
    parser.add_argument("--version", action="version", version=f"costscaler {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    first = next(iter(argv), None) if argv is not None else None
    for name in (first,) if first in COMMANDS else COMMANDS:
        importlib.import_module(f"costscaler.commands.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; user errors print one line and exit 2, never a traceback."""
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    try:
        return int(args.func(args))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
