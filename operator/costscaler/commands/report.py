"""`costscaler report [--namespace NS] [--by LABEL] [--json]`: chargeback from live status."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from costscaler.api import GROUP, VERSION, CostBudget, InferenceDeployment
from costscaler.api.money import format_money
from costscaler.core.chargeback import ChargebackRow, chargeback
from costscaler.errors import UserError


def register(subparsers: Any) -> None:
    """Add the `report` subcommand."""
    parser = subparsers.add_parser(
        "report", help="chargeback: spend, forecast and unit costs per team from live status"
    )
    parser.add_argument("-n", "--namespace", help="only this namespace (default: all)")
    parser.add_argument("--by", default="team", help="group by this label (default: team)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, in-cluster)")
    parser.set_defaults(func=run)


def _list(plural: str, namespace: str | None, kubeconfig: str | None) -> list[dict[str, Any]]:
    from kubernetes import client, config  # imported here: only `report` needs a cluster
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException

    try:
        try:
            config.load_kube_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
        except ConfigException:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
        api = client.CustomObjectsApi()
        found: Any
        if namespace:
            found = api.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)
        else:
            found = api.list_cluster_custom_object(GROUP, VERSION, plural)
    except ConfigException as exc:
        raise UserError(f"no cluster configured: {exc} (set KUBECONFIG or --kubeconfig)") from None
    except ApiException as exc:
        raise UserError(f"listing {plural} failed: {exc.status} {exc.reason}") from None
    except OSError as exc:
        raise UserError(f"cannot reach the API server: {exc}") from None
    return list(found.get("items", []))


def _money(value: Decimal | None) -> str:
    return "-" if value is None else format_money(value, 4)


def _as_dict(row: ChargebackRow) -> dict[str, Any]:
    return {
        "group": row.group,
        "deployments": row.names,
        "spent": _money(row.spent),
        "forecast": _money(row.forecast),
        "cost_per_hour": _money(row.cost_per_hour),
        "marginal_cost_per_hour": _money(row.marginal_cost_per_hour),
        "cost_per_1k_requests": _money(row.cost_per_1k_requests),
        "cost_per_million_tokens": _money(row.cost_per_million_tokens),
        "cost_per_million_input_tokens": _money(row.cost_per_million_input_tokens),
        "cost_per_million_output_tokens": _money(row.cost_per_million_output_tokens),
    }


def run(args: argparse.Namespace) -> int:
    """Print the chargeback table (or JSON) for the deployments and budgets in scope."""
    budgets = [
        CostBudget.model_validate(o) for o in _list("costbudgets", args.namespace, args.kubeconfig)
    ]
    deployments = [
        InferenceDeployment.model_validate(o)
        for o in _list("inferencedeployments", args.namespace, args.kubeconfig)
    ]
    rows = chargeback(budgets, deployments, args.by, datetime.now(UTC))
    if args.json:
        print(json.dumps([_as_dict(r) for r in rows], indent=2))
        return 0
    # $/H is allocated (owned capacity at full TCO, for chargeback); MARGINAL $/H is what
    # decisions pay, which budgets accrue (SPENT) and project (FORECAST).
    header = (
        args.by.upper(),
        "DEPLOYMENTS",
        "SPENT",
        "FORECAST",
        "$/H",
        "MARGINAL $/H",
        "$/1K REQ",
        "$/1M TOK",
        "$/1M IN",
        "$/1M OUT",
    )
    lines = [header] + [
        (
            r.group,
            str(r.deployments),
            _money(r.spent),
            _money(r.forecast),
            _money(r.cost_per_hour),
            _money(r.marginal_cost_per_hour),
            _money(r.cost_per_1k_requests),
            _money(r.cost_per_million_tokens),
            _money(r.cost_per_million_input_tokens),
            _money(r.cost_per_million_output_tokens),
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
    return 0
