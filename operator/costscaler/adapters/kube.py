"""Kubernetes writes: child Deployments, scale, drain and delete, with retries on conflicts.

The official `kubernetes` client is used rather than kopf's internal API client, which is not
a public interface; its calls are synchronous, so each one runs in a worker thread. Reads that
every tick needs (pools, children, nodes) come from kopf's watch-fed indexes instead, so a tick
costs no GET per deployment.

Writes are optimistic: read, change, replace with the read resourceVersion; a 409 Conflict
(someone wrote in between) re-reads and tries again, a few times.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from costscaler.adapters.children import ANNOTATION_HASH, ChildNameTakenError
from costscaler.api import GROUP, VERSION

log = logging.getLogger(__name__)
T = TypeVar("T")
CONFLICT_ATTEMPTS = 5


class ConflictError(Exception):
    """Still conflicting after every retry: the caller should try again next tick."""


def load_config(kubeconfig: str | None = None) -> Any:
    """An ApiClient from a kubeconfig file, or the in-cluster ServiceAccount when there is none."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
        return client.ApiClient()
    except config.ConfigException:
        return config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]


# What a call to the API server raises when it fails: an HTTP error status (ApiException),
# or no answer at all (urllib3's errors, or the socket's). Anything else is a bug to surface.
API_ERRORS = (ApiException, HTTPError, OSError)


def _status(exc: ApiException) -> int | None:
    return getattr(exc, "status", None)


def with_conflict_retry(write: Callable[[], T], attempts: int = CONFLICT_ATTEMPTS) -> T:
    """Run `write` (which must re-read what it changes) until it does not hit a 409."""
    for attempt in range(1, attempts + 1):
        try:
            return write()
        except ApiException as exc:
            if _status(exc) != 409 or attempt == attempts:
                if _status(exc) == 409:
                    raise ConflictError(str(exc)) from exc
                raise
            log.info("conflict writing, retrying (%d/%d)", attempt, attempts)
    raise AssertionError("unreachable")


def _check_owner(live: Any, wanted: dict[str, Any]) -> None:
    """Refuse to overwrite a Deployment another object controls (or nothing does).

    Two InferenceDeployments can derive the same child name, and a user's own Deployment may
    hold it: replacing it would hijack that workload, and the two owners would rewrite it in
    turn every tick.
    """
    (owner,) = wanted["ownerReferences"]
    refs = live.owner_references or []
    if any(ref.uid == owner["uid"] for ref in refs):
        return
    holder = next(
        (f"{r.kind} {r.name}" for r in refs if r.controller), "another workload (no controller)"
    )
    raise ChildNameTakenError(wanted["namespace"], wanted["name"], holder)


class Kube:
    """Deployment writes for the controller (the `Actuator` protocol).

    Calls run on a small dedicated thread pool, so a burst (a thousand deployments at start-up)
    queues here instead of flooding the API server; a child already being written is not
    written again by a concurrent handler (the timer and the create handler race at start).
    """

    def __init__(self, api_client: Any, workers: int = 8) -> None:
        from kubernetes import client

        # One kept-alive connection per worker (the client's default pool holds 10).
        api_client.rest_client.pool_manager.connection_pool_kw["maxsize"] = workers
        self.apps = client.AppsV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.conflicts_retried = 0
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="kube")
        self.inflight: set[str] = set()
        self.pending_status: dict[tuple[str, str], dict[str, Any]] = {}
        self.writing: set[tuple[str, str]] = set()
        self.status_tasks: set[asyncio.Task[None]] = set()

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    async def apply_child(self, manifest: dict[str, Any], replicas: int | None) -> str:
        """Create the child, or update it when its template hash differs. Returns what it did.

        `replicas` None leaves the count alone (Recommend mode; a new child then starts at 0).
        """
        key = f"{manifest['metadata']['namespace']}/{manifest['metadata']['name']}"
        if key in self.inflight:
            return "in-flight"
        self.inflight.add(key)
        try:
            return await self._call(with_conflict_retry, lambda: self._apply(manifest, replicas))
        finally:
            self.inflight.discard(key)

    def _apply(self, manifest: dict[str, Any], replicas: int | None) -> str:
        meta = manifest["metadata"]
        ns, name = meta["namespace"], meta["name"]
        try:
            live = self.apps.read_namespaced_deployment(name, ns)
        except ApiException as exc:
            if _status(exc) != 404:
                raise
            body: Any = {**manifest, "spec": {**manifest["spec"], "replicas": replicas or 0}}
            self.apps.create_namespaced_deployment(ns, body)
            return "created"
        live_meta: Any = live.metadata
        _check_owner(live_meta, meta)
        live_hash = (live_meta.annotations or {}).get(ANNOTATION_HASH)
        same_replicas = replicas is None or live.spec.replicas == replicas
        if live_hash == meta["annotations"][ANNOTATION_HASH] and same_replicas:
            return "unchanged"
        body = {**manifest, "metadata": {**meta, "resourceVersion": live_meta.resource_version}}
        keep = live.spec.replicas if replicas is None else replicas
        body["spec"] = {**manifest["spec"], "replicas": keep}
        self._replace(name, ns, body)
        return "updated"

    def _replace(self, name: str, ns: str, body: Any) -> None:
        try:
            self.apps.replace_namespaced_deployment(name, ns, body)
        except ApiException as exc:
            if _status(exc) == 409:
                self.conflicts_retried += 1
            raise

    def write_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Queue a merge-patch of an InferenceDeployment's status; the tick does not wait.

        Latest wins: while an object's write is in flight, a newer status replaces any not yet
        sent, so an API server slower than the ticks gets one write per object at a time rather
        than a backlog of stale ones (and the ticks keep their cadence). Writes go through this
        bounded pool, not kopf's client. A failed write is logged; the next tick writes again.
        """
        key = (namespace, name)
        self.pending_status[key] = status
        if key not in self.writing:
            self.writing.add(key)
            task = asyncio.get_running_loop().create_task(self._drain_status(key))
            self.status_tasks.add(task)
            task.add_done_callback(self.status_tasks.discard)

    async def _drain_status(self, key: tuple[str, str]) -> None:
        try:
            while key in self.pending_status:
                status = self.pending_status.pop(key)
                try:
                    await self._call(self._patch_status, key[0], key[1], status)
                except API_ERRORS as exc:
                    log.warning("status of %s/%s not written: %s", *key, exc)
        finally:
            self.writing.discard(key)

    async def flush_status(self) -> None:
        """Wait until every queued status write is done."""
        while self.status_tasks:
            await asyncio.gather(*list(self.status_tasks))

    def _patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        try:
            # The reply is the whole object (managedFields included, ~16 KB): drained unparsed.
            reply: Any = self.custom.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                namespace,
                "inferencedeployments",
                name,
                {"status": status},
                _content_type="application/merge-patch+json",
                _preload_content=False,
            )
            reply.drain_conn()
            reply.release_conn()
        except ApiException as exc:
            if _status(exc) != 404:  # a deleted object needs no status
                raise

    async def scale(self, namespace: str, name: str, replicas: int) -> None:
        """Set a Deployment's replicas through its scale subresource."""
        body = {"spec": {"replicas": replicas}}
        await self._call(self.apps.patch_namespaced_deployment_scale, name, namespace, body)

    async def delete(self, namespace: str, name: str) -> None:
        """Delete a Deployment (already drained); a missing one is fine."""

        def call() -> None:
            try:
                self.apps.delete_namespaced_deployment(name, namespace)
            except ApiException as exc:
                if _status(exc) != 404:
                    raise

        await self._call(call)

    async def read(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A Deployment as a plain dict (camelCase, as on the wire), or None when absent."""

        def call() -> dict[str, Any] | None:
            try:
                obj = self.apps.read_namespaced_deployment(name, namespace)
            except ApiException as exc:
                if _status(exc) == 404:
                    return None
                raise
            return self.apps.api_client.sanitize_for_serialization(obj)  # type: ignore[no-any-return]

        return await self._call(call)
