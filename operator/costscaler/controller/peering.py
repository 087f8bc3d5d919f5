"""kopf's peering CRDs (kopf.dev/v1): where operator replicas announce themselves.

kopf does not install them. Replicas write keep-alives with their priority into the status of a
ClusterKopfPeering (cluster-wide operators) or a KopfPeering (namespaced ones); the highest
priority acts and the others pause. The chart ships these; tests apply them from here.

Without the CRD kopf pauses every handler until it appears and says so only at debug level: a
newcomer's `costscaler run` after `kubectl apply -f crds/` logged its start and then did
nothing. `missing_peering_crd` is asked before kopf starts, so that the run stops with an error
naming the fixes instead.
"""

from __future__ import annotations

import logging
from typing import Any

from costscaler.errors import UserError

log = logging.getLogger(__name__)


def _crd(kind: str, plural: str, scope: str) -> dict[str, Any]:
    free = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.kopf.dev"},
        "spec": {
            "group": "kopf.dev",
            "scope": scope,
            "names": {"kind": kind, "plural": plural, "singular": plural[:-1]},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {"spec": free, "status": free},
                        }
                    },
                }
            ],
        },
    }


def peering_crds() -> list[dict[str, Any]]:
    """The ClusterKopfPeering and KopfPeering CRDs."""
    return [
        _crd("ClusterKopfPeering", "clusterkopfpeerings", "Cluster"),
        _crd("KopfPeering", "kopfpeerings", "Namespaced"),
    ]


def peering_object(name: str, namespace: str | None = None) -> dict[str, Any]:
    """The peering object replicas meet in (kopf needs it to exist)."""
    kind = "KopfPeering" if namespace else "ClusterKopfPeering"
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": "kopf.dev/v1", "kind": kind, "metadata": meta}


def peering_plural(clusterwide: bool) -> str:
    """The peering resource kopf needs: cluster-wide operators meet in a ClusterKopfPeering."""
    return "clusterkopfpeerings" if clusterwide else "kopfpeerings"


def missing_peering_crd(api_client: Any, clusterwide: bool) -> str | None:
    """The peering CRD's name when the API server does not serve it, else None.

    Asks API discovery (`/apis/kopf.dev/v1`), which every authenticated user may read: the
    chart's ServiceAccount has no right to read CRDs. An error other than 404 (the API server
    unreachable, say) is left to kopf, which reports and retries it.
    """
    from kubernetes import client

    plural = peering_plural(clusterwide)
    try:
        found = client.CustomObjectsApi(api_client).get_api_resources("kopf.dev", "v1")
    except client.ApiException as exc:
        if exc.status == 404:
            return f"{plural}.kopf.dev"
        log.warning("could not check for kopf's peering CRD: %s", exc)
        return None
    served = {r.name for r in found.resources or []}
    return None if plural in served else f"{plural}.kopf.dev"


def require_peering_crd(api_client: Any, clusterwide: bool) -> None:
    """Raise a `UserError` naming the fixes when kopf's peering CRD is not installed."""
    name = missing_peering_crd(api_client, clusterwide)
    if name is not None:
        raise UserError(
            f"kopf's peering CRD {name} is not installed, and without it the operator waits "
            "and does nothing. Install the Helm chart (charts/costscaler ships it) or apply "
            "charts/costscaler/crds/kopf.dev_peerings.yaml, or run a single replica with "
            "`costscaler run --peering standalone`"
        )
