"""Build or find every binary the local control plane needs, once per version.

kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and etcd are built from
the Go module in k8s/ (pinned versions, version ldflags); kwok, helm and Karpenter's KWOK
provider (as `karpenter-kwok`, with its CRDs) are `go install`ed; all land in
~/.cache/costscaler/bin/<kubernetes version>/ and are reused. Prometheus and
promtool come from Debian and are installed with apt when missing.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

KUBERNETES_VERSION = "v1.36.4"
KWOK_VERSION = "v0.8.0"
HELM_VERSION = "v4.3.1"
KARPENTER_VERSION = "v1.15.0"
KARPENTER_MODULE = "sigs.k8s.io/karpenter"
# Karpenter's go.mod asks for a newer Go than the control plane needs; `go` fetches this
# toolchain through the module proxy on first use.
KARPENTER_TOOLCHAIN = "go1.27.3"
KARPENTER_BINARY = "karpenter-kwok"  # its main package builds `kwok`, which sigs.k8s.io/kwok owns
# NodePool, NodeClaim, NodeOverlay, CapacityBuffer, then the KWOK provider's node class.
KARPENTER_CRDS = (
    "kwok/charts/crds/karpenter.sh_nodepools.yaml",
    "kwok/charts/crds/karpenter.sh_nodeclaims.yaml",
    "kwok/charts/crds/karpenter.sh_nodeoverlays.yaml",
    "kwok/charts/crds/autoscaling.x-k8s.io_capacitybuffers.yaml",
    "kwok/apis/crds/karpenter.kwok.sh_kwoknodeclasses.yaml",
)
K8S_MODULE = Path(__file__).resolve().parent / "k8s"
K8S_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "etcd")
# Stages from the kwok module: nodes become Ready and keep a lease; pods run, complete and
# are really deleted once they carry a deletionTimestamp (there is no kubelet to do it).
KWOK_STAGES = (
    "kustomize/stage/node/fast/node-initialize.yaml",
    "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "kustomize/stage/pod/fast/pod-ready.yaml",
    "kustomize/stage/pod/fast/pod-complete.yaml",
    "kustomize/stage/pod/fast/pod-delete.yaml",
)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Tools:
    """Absolute paths of the binaries, plus the kwok stages file."""

    bin_dir: Path
    prometheus: Path
    promtool: Path
    kwok_stages: Path
    karpenter_crds: Path

    def binary(self, name: str) -> Path:
        """Path of a cached binary such as `kubectl` or `kube-apiserver`."""
        return self.bin_dir / name


def _stderr(message: str) -> None:
    print(f"[cluster-tools] {message}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    """Root of the costscaler cache (XDG_CACHE_HOME respected)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "costscaler"


def bin_dir() -> Path:
    """Where this Kubernetes version's binaries live."""
    return cache_dir() / "bin" / KUBERNETES_VERSION


def _go_env() -> dict[str, str]:
    env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-buildvcs=false -mod=readonly")
    return env


def _go() -> str:
    # CI images often have Go in its default location without it being on PATH.
    go = shutil.which("go") or shutil.which("go", path="/usr/local/go/bin")
    if go is None:
        raise RuntimeError(
            "go is not on PATH: install Go 1.26 or newer (the control plane is built from source)"
        )
    return go


def _run(cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


def _k8s_ldflags() -> str:
    major, minor = KUBERNETES_VERSION.lstrip("v").split(".")[:2]
    flags = ["-s", "-w"]
    # Without these the binaries report v0.0.0-master, which breaks helm's kubeVersion
    # checks and anything that picks flags from `--version`.
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={KUBERNETES_VERSION}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
        ]
    return " ".join(flags)


def _build_kubernetes(target: Path, progress: Progress) -> None:
    missing = [b for b in K8S_BINARIES if not (target / b).exists()]
    if not missing:
        return
    progress(
        f"building {', '.join(missing)} {KUBERNETES_VERSION} from the Go module proxy "
        "(first time only: about 6-10 min on 2 cores)"
    )
    start = time.monotonic()
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        cmd = [_go(), "build", "-p", str(os.cpu_count() or 2), "-trimpath"]
        cmd += ["-ldflags", _k8s_ldflags(), "-o", tmp + "/", "./cmd/..."]
        _run(cmd, cwd=K8S_MODULE, env=_go_env())
        for name in K8S_BINARIES:
            os.replace(Path(tmp) / name, target / name)
    progress(f"built kubernetes binaries in {time.monotonic() - start:.0f} s")


def _go_install(
    target: Path,
    name: str,
    package: str,
    version: str,
    ldflags: str,
    built: str | None = None,
    toolchain: str | None = None,
) -> bool:
    """`go install package@version` as target/name (`built`: the name go gives it)."""
    stamp = target / f".{name}.version"
    if (target / name).exists() and stamp.exists() and stamp.read_text() == version:
        return False
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        env = dict(_go_env(), GOBIN=tmp, GOFLAGS="-buildvcs=false")
        if toolchain:
            env["GOTOOLCHAIN"] = toolchain
        _run([_go(), "install", "-trimpath", "-ldflags", ldflags, f"{package}@{version}"], env=env)
        os.replace(Path(tmp) / (built or name), target / name)
    stamp.write_text(version)
    return True


def _install_go_tools(target: Path, progress: Progress) -> None:
    if _go_install(target, "kwok", "sigs.k8s.io/kwok/cmd/kwok", KWOK_VERSION, "-s -w"):
        progress(f"installed kwok {KWOK_VERSION}")
    helm_ldflags = f"-s -w -X helm.sh/helm/v4/internal/version.version={HELM_VERSION}"
    if _go_install(target, "helm", "helm.sh/helm/v4/cmd/helm", HELM_VERSION, helm_ldflags):
        progress(f"installed helm {HELM_VERSION}")
    if not (target / KARPENTER_BINARY).exists():
        progress(
            f"building Karpenter {KARPENTER_VERSION} (KWOK provider) with {KARPENTER_TOOLCHAIN} "
            "(first time only: about 10 min on 2 cores)"
        )
    start = time.monotonic()
    package = f"{KARPENTER_MODULE}/kwok"
    if _go_install(
        target,
        KARPENTER_BINARY,
        package,
        KARPENTER_VERSION,
        "-s -w",
        built="kwok",
        toolchain=KARPENTER_TOOLCHAIN,
    ):
        progress(f"built Karpenter {KARPENTER_VERSION} in {time.monotonic() - start:.0f} s")


def _apt_install(package: str) -> None:
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # The package would start a system service on port 9090; we run our own on a free port.
    # Debian's policy-rc.d hook (exit 101) stops maintainer scripts from starting services.
    policy = Path("/usr/sbin/policy-rc.d")
    added = not policy.exists()
    if added:
        _run(
            [*sudo, "sh", "-c", f"printf '#!/bin/sh\\nexit 101\\n' > {policy} && chmod +x {policy}"]
        )
    try:
        _run([*sudo, "apt-get", "update", "-qq"], env=env)
        _run(
            [*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", package], env=env
        )
    finally:
        if added:
            _run([*sudo, "rm", "-f", str(policy)])


def _ensure_prometheus(progress: Progress) -> tuple[Path, Path]:
    found = shutil.which("prometheus"), shutil.which("promtool")
    if not (found[0] and found[1]):
        progress("installing prometheus and promtool from Debian (apt-get)")
        _apt_install("prometheus")
        found = shutil.which("prometheus"), shutil.which("promtool")
    if not (found[0] and found[1]):
        raise RuntimeError("apt-get installed prometheus but prometheus/promtool are not on PATH")
    return Path(found[0]), Path(found[1])


def _kwok_stages(target: Path) -> Path:
    stages = target / f"kwok-stages-{KWOK_VERSION}.yaml"
    if stages.exists():
        return stages
    cmd = [_go(), "mod", "download", "-json", f"sigs.k8s.io/kwok@{KWOK_VERSION}"]
    info = json.loads(_run(cmd, cwd=target))
    module_dir = Path(info["Dir"])
    text = "\n---\n".join((module_dir / rel).read_text().strip() for rel in KWOK_STAGES)
    stages.write_text(text + "\n")
    return stages


def _karpenter_crds(target: Path) -> Path:
    crds = target / f"karpenter-crds-{KARPENTER_VERSION}.yaml"
    if crds.exists():
        return crds
    cmd = [_go(), "mod", "download", "-json", f"{KARPENTER_MODULE}@{KARPENTER_VERSION}"]
    env = dict(os.environ, GOTOOLCHAIN=KARPENTER_TOOLCHAIN)
    info = json.loads(_run(cmd, cwd=target, env=env))
    module_dir = Path(info["Dir"])
    text = "\n---\n".join(
        (module_dir / rel).read_text().strip().removeprefix("---").strip() for rel in KARPENTER_CRDS
    )
    crds.write_text(text + "\n")
    return crds


def ensure_tools(progress: Progress = _stderr) -> Tools:
    """Build or install whatever is missing (under a lock) and return the paths."""
    target = bin_dir()
    target.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{KUBERNETES_VERSION}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _build_kubernetes(target, progress)
        _install_go_tools(target, progress)
        stages = _kwok_stages(target)
        crds = _karpenter_crds(target)
    prometheus, promtool = _ensure_prometheus(progress)
    return Tools(
        bin_dir=target,
        prometheus=prometheus,
        promtool=promtool,
        kwok_stages=stages,
        karpenter_crds=crds,
    )


def main() -> int:
    """Entry point of `make cluster-tools`: build everything, print the bin directory."""
    start = time.monotonic()
    tools = ensure_tools()
    _stderr(f"tools ready in {time.monotonic() - start:.0f} s")
    print(tools.bin_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
