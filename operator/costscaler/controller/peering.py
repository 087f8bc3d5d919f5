"""kopf's peering CRDs (kopf.dev/v1): where operator replicas announce themselves.

kopf does not install them. Replicas write keep-alives with their priority into the status of a
ClusterKopfPeering (cluster-wide operators) or a KopfPeering (namespaced ones); the highest
priority acts and the others pause. The chart ships these; tests apply them from here.
"""

from __future__ import annotations

from typing import Any


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
