"""Subcommands of the `costscaler` CLI, one module each with `register(subparsers)`."""
