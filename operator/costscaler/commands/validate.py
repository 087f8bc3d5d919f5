"""`costscaler validate PATH...`: check manifests against the API before `kubectl apply`."""

from __future__ import annotations

import argparse
from typing import Any

from costscaler.api import load_manifests


def register(subparsers: Any) -> None:
    """Add the `validate` subcommand."""
    parser = subparsers.add_parser(
        "validate", help="validate costscaler manifests (files or folders)"
    )
    parser.add_argument("paths", nargs="+", help="YAML files or folders")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print one line per valid resource; the first invalid one raises a UserError."""
    for path in args.paths:
        for resource in load_manifests(path):
            print(f"ok  {path}: {resource.kind} {resource.metadata.name}")
    return 0
