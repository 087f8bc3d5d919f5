"""kopf's connection to the API server, with a bounded connection pool.

kopf's own session has no connection limit (`aiohttp.TCPConnector(limit=0)`): a start-up burst
of a thousand finalizer patches, handler-progress patches and Events opened one TLS connection
per concurrent request, and the process kept the memory of that peak (hundreds of MB at 1,000
InferenceDeployments). The login handler hands kopf a session of its own instead (kopf's
documented `AiohttpSession` credentials), with a pool of `requests + watches` connections:
every watch stream holds one connection for as long as it lasts, so the limit leaves room for
all of them plus `requests` concurrent API calls, which queue beyond that.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import kopf

from costscaler.controller.settings import Settings

# kopf's watches besides the per-namespace ones: CapacityPools, Nodes, the CRDs it watches to
# discover resources, Namespaces (cluster-wide operators), and one spare.
CLUSTER_WATCHES = 5
# Per served namespace: InferenceDeployments, child Deployments, CostBudgets, KopfPeering.
NAMESPACE_WATCHES = 4


def connection_limit(settings: Settings) -> int:
    """Connections kopf may open: its concurrent requests plus one per watch stream."""
    namespaces = 1 if settings.all_namespaces else max(1, len(settings.namespaces))
    return settings.kube_connections + CLUSTER_WATCHES + NAMESPACE_WATCHES * namespaces


def login(ours: Settings, **kwargs: Any) -> kopf.AiohttpSession | None:
    """kopf's credentials (in-cluster first, then kubeconfig) on a bounded aiohttp session."""
    info = kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
    if info is None:
        return None
    connector = aiohttp.TCPConnector(limit=connection_limit(ours), ssl=info.as_ssl_context())
    session = aiohttp.ClientSession(
        connector=connector,
        headers=info.as_http_headers(),
        proxy=info.proxy_url,
        trust_env=info.trust_env,
    )
    return kopf.AiohttpSession(
        server=info.server,
        default_namespace=info.default_namespace,
        priority=info.priority,
        expiration=info.expiration,
        aiohttp_session=session,
    )
