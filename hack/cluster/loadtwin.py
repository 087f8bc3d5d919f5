"""The load twin: replays traces against the Running pods of InferenceDeployments and serves
vLLM-compatible metrics for each pod, for Prometheus to scrape.

Every tick (wall seconds) it reads the InferenceDeployments, their pods (label
`costscaler.dev/deployment`) and the nodes they run on from the API, advances each loaded
deployment's trace by `tick x speed` trace seconds (time compression) with the simulator's
serving model (`twinload`: `--serving fluid`, the default, or `batching`), and writes a
Prometheus file_sd target per Running pod with the labels the operator's queries aggregate
by: namespace, deployment, pool, pod. A pod serves
metrics only once Running for `modelLoadSeconds` (trace time); before that it answers 503,
as vLLM does while it loads the model.

    python -m cluster.loadtwin --kubeconfig KC --targets-dir DIR \
        --load default/llama-3-1-8b=../shared/traces/azure-llm-2023-conv/trace.csv --speed 10 \
        [--serving batching]

With `--serving batching` requests are batched one by one on each pod's accelerator and every
pod also exports vllm:time_to_first_token_seconds, vllm:inter_token_latency_seconds,
vllm:prompt_tokens_total and vllm:kv_cache_usage_perc.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from cluster.twinexport import render_pod
from cluster.twinload import SERVING_MODES, DeploymentLoad, PodCounters, ReadyPod, ServingMode
from costscaler.api import InferenceDeployment
from costscaler.sim.traces import load_trace

DEPLOYMENT_LABEL = "costscaler.dev/deployment"
POOL_LABEL = "costscaler.dev/pool"
ACCELERATOR_LABEL = "nvidia.com/gpu.product"


class Twin:
    """The twin's state: loads per deployment, counters per pod, and what to scrape."""

    def __init__(
        self,
        api: client.ApiClient,
        loads: dict[str, Path],
        speed: float,
        tick: float,
        serving: ServingMode = "fluid",
    ) -> None:
        self.api = api
        self.core, self.custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
        self.traces, self.speed, self.tick, self.serving = loads, speed, tick, serving
        self.loads: dict[str, DeploymentLoad] = {}
        self.counters: dict[str, PodCounters] = {}
        self.meta: dict[str, dict[str, str]] = {}  # pod key -> labels, for serving and targets
        self.warm: set[str] = set()
        self.lock = threading.Lock()

    def _list(self, reply: Any) -> list[dict[str, Any]]:
        plain: dict[str, Any] = self.api.sanitize_for_serialization(reply)  # type: ignore[no-untyped-call]
        return list(plain["items"])

    def _deployments(self) -> dict[str, InferenceDeployment]:
        found: dict[str, Any] = self.custom.list_cluster_custom_object(  # type: ignore[assignment]
            "costscaler.dev", "v1alpha1", "inferencedeployments"
        )
        out = {}
        for item in found["items"]:
            key = f"{item['metadata']['namespace']}/{item['metadata']['name']}"
            if key in self.traces:
                out[key] = InferenceDeployment.model_validate(item)
        return out

    def _ready(
        self, spec: InferenceDeployment, pods: list[dict[str, Any]], nodes: dict[str, Any]
    ) -> tuple[list[ReadyPod], dict[str, dict[str, str]]]:
        """Running pods of one deployment (labels to publish); those past their model load are
        returned ready with their profile's capacity and service time."""
        ready, running = [], {}
        now = time.time()
        for pod in pods:
            meta, status = pod["metadata"], pod.get("status", {})
            if status.get("phase") != "Running" or meta.get("deletionTimestamp"):
                continue
            node_name = pod["spec"].get("nodeName", "")
            labels = nodes.get(node_name, {}).get("metadata", {}).get("labels", {})
            profile = spec.spec.workload.profile_for(labels.get(ACCELERATOR_LABEL, ""))
            if profile is None:
                continue
            key = f"{meta['namespace']}/{meta['name']}"
            running[key] = {
                "namespace": meta["namespace"],
                "pod": meta["name"],
                "deployment": spec.metadata.name,
                "pool": labels.get(POOL_LABEL, ""),
                "node": node_name,
            }
            started = datetime.fromisoformat(status["startTime"]).timestamp()
            if (now - started) * self.speed >= spec.spec.workload.model_load_seconds:
                service_s = profile.base_latency_seconds or 0.0
                ready.append(
                    ReadyPod(
                        key,
                        profile.requests_per_second,
                        service_s,
                        profile.accelerator,
                        profile.accelerators_per_replica,
                    )
                )
        return ready, running

    def step(self) -> None:
        """One tick: read the cluster, advance every load, publish the counters."""
        nodes = {n["metadata"]["name"]: n for n in self._list(self.core.list_node())}
        pods = self._list(self.core.list_pod_for_all_namespaces(label_selector=DEPLOYMENT_LABEL))
        meta: dict[str, dict[str, str]] = {}
        warm: set[str] = set()
        for key, spec in self._deployments().items():
            if key not in self.loads:
                trace = load_trace(self.traces[key], dt=self.tick * self.speed)
                self.loads[key] = DeploymentLoad(spec, trace, self.serving)
            mine = [
                p for p in pods
                if p["metadata"]["namespace"] == spec.metadata.namespace
                and p["metadata"]["labels"].get(DEPLOYMENT_LABEL) == spec.metadata.name
            ]  # fmt: skip
            ready, running = self._ready(spec, mine, nodes)
            with self.lock:
                for pod_key in running:
                    self.counters.setdefault(pod_key, PodCounters())
                self.loads[key].advance(ready, self.counters)
            meta.update(running)
            warm.update(p.key for p in ready)
        with self.lock:
            self.counters = {k: v for k, v in self.counters.items() if k in meta}
            self.meta, self.warm = meta, warm

    def status(self) -> dict[str, Any]:
        """Per deployment: steps replayed, requests started, backlog, whether the trace is done."""
        with self.lock:
            return {
                key: {
                    "step": ld.step,
                    "started": ld.started,
                    "backlog": ld.backlog,
                    "done": ld.done,
                }
                for key, ld in self.loads.items()
            }

    def metrics(self, key: str) -> tuple[int, bytes]:
        """HTTP status and exposition text for one pod."""
        with self.lock:
            if key not in self.meta:
                return 404, b"no such pod\n"
            if key not in self.warm:
                return 503, b"model loading\n"
            return 200, render_pod(self.counters[key], self.meta[key]["deployment"])


def write_targets(path: Path, port: int, meta: dict[str, dict[str, str]]) -> None:
    """The file_sd JSON: one target group per Running pod (written atomically)."""
    groups = [
        {
            "targets": [f"127.0.0.1:{port}"],
            "labels": {"__metrics_path__": f"/metrics/{key}", **labels},
        }
        for key, labels in sorted(meta.items())
    ]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(groups, indent=1))
    tmp.replace(path)


def _handler(twin: Twin) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/metrics/"):
                code, body = twin.metrics(self.path.removeprefix("/metrics/"))
                kind = "text/plain; version=0.0.4"
            elif self.path == "/status":
                code, body, kind = 200, json.dumps(twin.status()).encode(), "application/json"
            else:
                code, body, kind = 404, b"not found\n", "text/plain"
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


def _parse_loads(items: list[str]) -> dict[str, Path]:
    loads = {}
    for item in items:
        name, sep, trace = item.partition("=")
        if not sep or not trace:
            raise SystemExit(f"error: --load {item!r}: expected [NAMESPACE/]NAME=TRACE.csv")
        loads[name if "/" in name else f"default/{name}"] = Path(trace)
    return loads


def main(argv: list[str] | None = None) -> int:
    """Run the twin until killed."""
    parser = argparse.ArgumentParser(prog="loadtwin", description=__doc__)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--targets-dir", type=Path, required=True)
    parser.add_argument("--load", action="append", default=[], help="[NS/]NAME=TRACE.csv")
    parser.add_argument("--speed", type=float, default=1.0, help="trace seconds per wall second")
    parser.add_argument("--tick", type=float, default=1.0, help="wall seconds per step")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--serving",
        choices=SERVING_MODES,
        default="fluid",
        help="fluid: one queue at the profiles' rated capacity (no TTFT/ITL); batching: "
        "requests batched per pod on its accelerator, with TTFT and ITL histograms",
    )
    args = parser.parse_args(argv)
    api = config.new_client_from_config(config_file=args.kubeconfig)  # type: ignore[no-untyped-call]
    twin = Twin(api, _parse_loads(args.load), args.speed, args.tick, args.serving)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), _handler(twin))
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    targets = args.targets_dir / f"loadtwin-{port}.json"
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(f"loadtwin serving on 127.0.0.1:{port}", flush=True)
    published: dict[str, dict[str, str]] | None = None
    next_tick = time.monotonic()
    while not stop.is_set():
        try:
            twin.step()
        except (ApiException, OSError, HTTPError) as err:
            # An apiserver restart or a CRD not yet applied: skip the tick (the trace clock
            # does not advance), as a real load generator would keep retrying.
            reason = " ".join(str(err).split())[:200]
            print(f"loadtwin: tick skipped: {reason}", file=sys.stderr, flush=True)
        if twin.meta != published:
            # Rewrite only on change: Prometheus reloads the file whenever it is written.
            write_targets(targets, port, twin.meta)
            published = twin.meta
        next_tick += args.tick
        stop.wait(max(0.0, next_tick - time.monotonic()))
    targets.unlink(missing_ok=True)
    server.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
