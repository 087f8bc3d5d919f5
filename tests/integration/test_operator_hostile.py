"""Hostile InferenceDeployments on the real API server (issue 18, item 2).

No single object may stop the operator: each one the API server accepts gets `Ready=False`
with a reason, logged once, while a well-formed deployment next to them keeps being served.
Every test here failed on main at 65b33e7: the nesting was stored, the bad objects got a
traceback per tick and no status, the second of two colliding owners failed forever, and a
spec over 256 KB could not lose its finalizer.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import pytest
import yaml
from operator_harness import (  # noqa: F401 - kube_fixture provides the `kube` fixture
    ROOT,
    Operator,
    apply,
    get,
    kube_fixture,
    llama,
    new_namespace,
    wait_for,
)

from costscaler.adapters.children import child_names

pytestmark = pytest.mark.integration

SPOT, OD = "g6-xlarge-l4-spot", "g6-xlarge-l4-ondemand"
TWIN_POOL = "xlarge-l4-spot"  # `col-g6` + this runs together with `col` + SPOT
NO_PROMETHEUS = "http://127.0.0.1:9"
BASE = ROOT / "tests" / "integration" / "invalid" / "base" / "infd.yaml"


def _nested_template(depth: int) -> str:
    """A base InferenceDeployment whose template carries `depth` nested objects, as JSON text.

    Built as text: Python's own json module cannot write (or read) 3,000 levels.
    """
    doc = yaml.safe_load(BASE.read_text())
    doc["metadata"]["name"] = "deep"
    doc["spec"]["template"]["spec"]["deep"] = "@@"
    return json.dumps(doc).replace('"@@"', '{"a":' * depth + "{}" + "}" * depth)


def test_a_template_nested_3000_levels_never_reaches_etcd(crds_installed, tmp_path: Path):
    path = tmp_path / "deep.json"
    path.write_text(_nested_template(3000))
    strict = crds_installed.kubectl("create", "--dry-run=server", "-f", str(path), check=False)
    assert strict.returncode != 0, strict.stdout
    assert 'unknown field "spec.template.spec.deep"' in strict.stderr, strict.stderr
    # A client that skips field validation gets the field pruned: nothing deep is stored.
    lax = crds_installed.kubectl(
        "create", "--dry-run=server", "--validate=false", "-o", "json", "-f", str(path)
    )
    stored = json.loads(lax.stdout)
    assert "deep" not in stored["spec"]["template"]["spec"]
    assert len(lax.stdout) < 10_000


def _twin_pool(kube) -> None:
    """A copy of the L4 spot pool named so that two owners' child names run together."""
    docs = yaml.safe_load_all((ROOT / "examples" / "pools" / "aws-g6-xlarge-l4.yaml").read_text())
    (pool,) = [d for d in docs if d and d["metadata"]["name"] == SPOT]
    pool = copy.deepcopy(pool)
    pool["metadata"] = {"name": TWIN_POOL}
    apply(kube, pool)


def _named(ns: str, name: str, pools: list[str], **changes) -> dict:
    doc = llama(ns, "Recommend", pools)
    doc["metadata"]["name"] = name
    doc["metadata"].pop("labels", None)
    template = doc["spec"]["template"]
    template["metadata"]["labels"] = {"app": name}
    container = template["spec"]["containers"][0]
    container.update(changes)
    return doc


def _plain_deployment(ns: str, name: str) -> dict:
    """A Deployment of another workload, with no owner."""
    labels = {"app": name}
    pod = {
        "metadata": {"labels": labels},
        "spec": {"containers": [{"name": "c", "image": "theirs"}]},
    }
    spec = {"replicas": 0, "selector": {"matchLabels": labels}, "template": pod}
    meta = {"name": name, "namespace": ns}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": spec}


def _ready(kube, ns: str, name: str) -> dict:
    conds = (get(kube, "infd", name, "-n", ns).get("status") or {}).get("conditions") or []
    return next((c for c in conds if c["type"] == "Ready"), {})


def _children(kube, ns: str) -> dict[str, str]:
    """Child Deployment name -> owner label, in `ns`."""
    items = get(kube, "deployments", "-n", ns, "-l", "costscaler.dev/deployment")["items"]
    return {d["metadata"]["name"]: d["metadata"]["labels"]["costscaler.dev/deployment"]
            for d in items}  # fmt: skip


def test_bad_objects_get_a_reason_and_the_good_one_is_still_served(kube, tmp_path: Path):
    ns = new_namespace(kube)
    _twin_pool(kube)
    op = Operator(kube, ns, tmp_path / "op.log", NO_PROMETHEUS)
    try:
        wait_for("/healthz", op.healthy, timeout=30)
        apply(kube, _named(ns, "no-pools", ["gone-pool"]))
        apply(kube, _named(ns, "col-g6", [TWIN_POOL]))
        apply(kube, _named(ns, "col", [SPOT]))
        # A port name the schema carries but the Deployment API refuses (422).
        ports = [{"name": "Bad_Name", "containerPort": 8000}]
        apply(kube, _named(ns, "refused", [OD], ports=ports))
        # Someone else's Deployments hold both names the child of `squat` could take.
        for taken in child_names("squat", OD):
            apply(kube, _plain_deployment(ns, taken))
        apply(kube, _named(ns, "squat", [OD]))
        apply(kube, llama(ns, "Recommend", [OD]))

        reasons = (
            ("no-pools", "PoolNotFound"),
            ("refused", "ChildRejected"),
            ("squat", "ChildNameConflict"),
        )
        for name, reason in reasons:
            ready = wait_for(
                f"{name} Ready=False {reason}",
                lambda n=name, r=reason: (c := _ready(kube, ns, n)).get("reason") == r and c,
            )
            assert ready["status"] == "False" and ready["message"], ready
        assert "gone-pool" in _ready(kube, ns, "no-pools")["message"]
        assert "ports[0].name" in _ready(kube, ns, "refused")["message"]
        assert child_names("squat", OD)[1] in _ready(kube, ns, "squat")["message"]
        # ... and they are left as they were, not taken over.
        for taken in child_names("squat", OD):
            kept = get(kube, "deployment", taken, "-n", ns)
            assert kept["spec"]["template"]["spec"]["containers"][0]["image"] == "theirs"
            assert not kept["metadata"].get("ownerReferences")
        # Both colliding owners get a child of their own, under different names.
        kids = wait_for(
            "a child for each of col and col-g6",
            lambda: (k := _children(kube, ns)) and {"col", "col-g6"} <= set(k.values()) and k,
        )
        assert len([o for o in kids.values() if o in ("col", "col-g6")]) == 2, kids

        def decided_at() -> str | None:
            status = get(kube, "infd", "llama-3-1-8b", "-n", ns).get("status") or {}
            return (status.get("lastDecision") or {}).get("time")

        first = wait_for("the good deployment decides", decided_at)
        wait_for("it keeps deciding", lambda: (t := decided_at()) and t != first, timeout=30)
        assert op.healthy() and op.p.poll() is None
    except BaseException:
        op.stop()
        raise
    # SIGTERM with the bad objects still there: a clean exit well inside a pod's 30 s grace.
    started = time.monotonic()
    op.stop(timeout=25)
    assert (op.p.returncode, time.monotonic() - started < 20) == (0, True), op.tail(20)
    text = op.log.read_text()
    assert "Traceback" not in text, op.tail(80)
    # Logged once per change of reason, not once per tick (the test ran dozens of ticks).
    for reason in ("PoolNotFound", "ChildRejected", "ChildNameConflict"):
        assert text.count(f"({reason})") == 1, op.tail(80)


def test_a_spec_over_256_kb_is_served_and_deleted(kube, tmp_path: Path):
    ns = new_namespace(kube)
    op = Operator(kube, ns, tmp_path / "op.log", NO_PROMETHEUS)
    try:
        wait_for("/healthz", op.healthy, timeout=30)
        env = [{"name": f"V{i}", "value": "x" * 3000} for i in range(100)]
        big = _named(ns, "big", [OD], env=env)
        assert len(json.dumps(big["spec"])) > 256 * 1024
        path = tmp_path / "big.json"
        path.write_text(json.dumps(big))
        kube.kubectl("create", "-f", str(path))  # create: no last-applied copy of 300 KB
        wait_for("a child of big", lambda: "big" in _children(kube, ns).values())
        wait_for(
            "kopf handled big",
            lambda: (
                "kopf.zalando.org/last-handled-configuration"
                in get(kube, "infd", "big", "-n", ns)["metadata"].get("annotations", {})
            ),
        )
        kube.kubectl("delete", "infd", "big", "-n", ns, "--wait=true", "--timeout=30s")
    finally:
        op.stop()


def test_a_rich_template_makes_a_child_the_deployment_api_accepts(kube, tmp_path: Path):
    # The typed template must not lose or mangle what the Deployment API needs.
    from costscaler.adapters.children import Owner, child_manifest
    from costscaler.api import CapacityPool, InferenceDeployment, load_manifests

    rich = BASE.parent / "infd-rich-template.yaml"
    infd = InferenceDeployment.model_validate(yaml.safe_load(rich.read_text()))
    pools = {p.name: p for p in load_manifests(ROOT / "examples" / "pools")}
    pool: CapacityPool = pools[OD]
    uid = "00000000-0000-0000-0000-000000000001"
    manifest = child_manifest(Owner("default", "rich-infd", uid), infd.spec.template or {}, pool)
    path = tmp_path / "child.json"
    path.write_text(json.dumps({**manifest, "spec": {**manifest["spec"], "replicas": 0}}))
    done = kube.kubectl("create", "--dry-run=server", "-o", "json", "-f", str(path))
    pod = json.loads(done.stdout)["spec"]["template"]["spec"]
    assert pod["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"] == 15
    assert pod["serviceAccountName"] == "inference-models"
