"""`python -m cluster tools|up|down|env|status` (run with PYTHONPATH=hack; see cluster.mk)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cluster import control, tools


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cluster", description=__doc__)
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=control.default_state_dir(),
        help="where pids, logs, certificates and the kubeconfig live (env COSTSCALER_CLUSTER_DIR)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("tools", help="build or install the binaries (cached per version)")
    up = sub.add_parser("up", help="start the cluster (idempotent)")
    up.add_argument("--pools", type=Path, default=control.REPO / "examples" / "pools")
    up.add_argument("--nodes-per-pool", type=int, default=8)
    up.add_argument("--scrape-interval", default="2s")
    up.add_argument(
        "--static-nodes",
        dest="nodes",
        action="store_const",
        const="static",
        default="karpenter",
        help="pre-create every pool's nodes and run no Karpenter (nothing is ever launched)",
    )
    up.add_argument(
        "--node-cold-start",
        type=float,
        default=None,
        metavar="SECONDS",
        help="launch to Ready for every launched node (default: each pool's nodeSeconds)",
    )
    twin = sub.add_parser("twin", help="start a load twin replaying traces (stopped by down)")
    twin.add_argument("--load", action="append", required=True, help="[NS/]NAME=TRACE.csv")
    twin.add_argument("--speed", type=float, default=10.0, help="trace seconds per wall second")
    twin.add_argument("--tick", type=float, default=1.0, help="wall seconds per step")
    twin.add_argument(
        "--serving",
        choices=("fluid", "batching"),
        default="fluid",
        help="fluid: one queue at rated capacity; batching: per-request batching with TTFT/ITL",
    )
    sub.add_parser("down", help="stop what `up` started and remove its state")
    sub.add_parser("env", help='print export lines: eval "$(make -s cluster-env)"')
    sub.add_parser("status", help="print endpoints and which processes are alive")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Dispatch one subcommand; errors print one line and exit 1."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "tools":
            return tools.main()
        if args.command == "up":
            control.up(
                args.state_dir,
                args.pools,
                args.nodes_per_pool,
                args.scrape_interval,
                nodes=args.nodes,
                node_cold_start=args.node_cold_start,
            )
            print("\n".join(control.env_lines(args.state_dir)))
        elif args.command == "twin":
            port, log = control.start_twin(
                args.state_dir, args.load, args.speed, args.tick, args.serving
            )
            print(f"load twin on http://127.0.0.1:{port}/status (log {log})")
        elif args.command == "down":
            control.down(args.state_dir)
        elif args.command == "env":
            print("\n".join(control.env_lines(args.state_dir)))
        else:
            cluster = control.Cluster.load(args.state_dir)
            print(json.dumps(control.describe(cluster) if cluster else None, indent=2))
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
