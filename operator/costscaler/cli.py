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


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="costscaler",
        description="Autoscale ML inference deployments on total cost of ownership.",
    )
    parser.add_argument("--version", action="version", version=f"costscaler {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"costscaler.commands.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; user errors print one line and exit 2, never a traceback."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
