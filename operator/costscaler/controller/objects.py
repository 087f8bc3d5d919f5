"""Reading the watched bodies and indexes: parsed models, pools by name, the clock's second.

Shared by the index, deployment and pool handlers; no I/O.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import kopf
from pydantic import ValidationError

from costscaler.adapters.promql import SeriesLabels, build_queries
from costscaler.adapters.promql_scope import UnscopedQueryError
from costscaler.api import CapacityPool, InferenceDeployment
from costscaler.api.loader import format_validation_error

log = logging.getLogger(__name__)


def compact_body(body: kopf.Body) -> None:
    """Shrink the body kopf keeps for an object's timer: no managedFields, keys shared.

    kopf keeps the latest body of every object with a timer until the next event replaces it,
    and hands handlers that same mapping. At 300 InferenceDeployments those bodies held
    11.7 MB, 6.2 MB of it managedFields (the field owners of server-side apply), which neither
    kopf nor the operator reads (issue 18 item 7: memory at 1,000 deployments). Each body is
    parsed from its own watch event, so each held its own copy of every key (~100 distinct,
    5.6 KB of 23 KB); interned, all bodies share one.
    """
    meta = body.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
    # A loop, not recursion: a nested spec must not exhaust the stack here.
    stack: list[Any] = [body.get(part) for part in ("metadata", "spec", "status")]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            items = list(node.items())
            node.clear()  # the same mapping kopf holds, rebuilt in the same order
            node.update((sys.intern(k) if type(k) is str else k, v) for k, v in items)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def parse_infd(body: kopf.Body) -> InferenceDeployment:
    """The InferenceDeployment in `body`; PermanentError naming the field when it is invalid
    or a user query cannot be confined to its namespace."""
    raw: dict[str, Any] = {k: body.get(k) for k in ("apiVersion", "kind", "spec")}
    meta = dict(body.get("metadata") or {})
    keep = ("name", "namespace", "uid", "generation")
    raw["metadata"] = {k: meta[k] for k in keep if meta.get(k) is not None}
    try:
        infd = InferenceDeployment.model_validate(raw)
    except ValidationError as exc:
        raise kopf.PermanentError(format_validation_error(exc, "spec")) from None
    try:  # a user query that cannot be confined to its namespace is never run (promql_scope)
        build_queries(infd.spec.metrics, SeriesLabels(), "1m", meta.get("namespace", ""))
    except UnscopedQueryError as exc:
        raise kopf.PermanentError(f"spec.metrics: query refused: {exc}") from None
    return infd


def parse_pool(body: kopf.Body, report: bool = True) -> CapacityPool | None:
    """The CapacityPool in `body`, or None when invalid (logged when `report`)."""
    raw: dict[str, Any] = {k: body.get(k) for k in ("apiVersion", "kind", "spec")}
    raw["metadata"] = {"name": dict(body.get("metadata") or {}).get("name", "")}
    try:
        return CapacityPool.model_validate(raw)
    except ValidationError as exc:
        if report:  # once per change of the pool (its index event), not per status timer
            log.warning("CapacityPool %s is invalid: %s", raw["metadata"]["name"], exc)
        return None


def now() -> datetime:
    """Now, to the second (status timestamps carry no microseconds)."""
    return datetime.now(UTC).replace(microsecond=0)


def pools_of(kw: dict[str, Any]) -> dict[str, CapacityPool]:
    """The valid CapacityPools by name, from the handler's `pools_index` kwarg."""
    return {name: pool for name, store in kw["pools_index"].items() for pool in store}
