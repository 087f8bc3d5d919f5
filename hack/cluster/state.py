"""The recorded state of a local cluster: endpoints, ports and the processes started (pid and
start time), kept as JSON in a state directory so that any later command finds them."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STATE_FILE = "state.json"


@dataclass
class Cluster:
    """What a running cluster is: where its state lives, its endpoints and its processes."""

    state_dir: Path
    bin_dir: Path
    kubeconfig: Path
    server: str
    prometheus_url: str
    targets_dir: Path
    ports: dict[str, int] = field(default_factory=dict)
    pids: dict[str, list[int]] = field(default_factory=dict)

    def save(self) -> None:
        """Write state.json (called after every process start, so a failed up can be undone)."""
        data = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}
        (self.state_dir / STATE_FILE).write_text(json.dumps(data, indent=2))

    @classmethod
    def load(cls, state_dir: Path) -> Cluster | None:
        """The cluster recorded in state_dir, or None if there is none."""
        try:
            data = json.loads((state_dir / STATE_FILE).read_text())
        except (OSError, ValueError):
            return None
        for key in ("state_dir", "bin_dir", "kubeconfig", "targets_dir"):
            data[key] = Path(data[key])
        return cls(**data)

    def env(self) -> dict[str, str]:
        """The environment a shell or test needs to use this cluster."""
        return {
            "KUBECONFIG": str(self.kubeconfig),
            "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "PROMETHEUS_URL": self.prometheus_url,
        }


def default_state_dir() -> Path:
    """One state directory per checkout, so `make cluster-env` finds what `up` started."""
    override = os.environ.get("COSTSCALER_CLUSTER_DIR")
    if override:
        return Path(override)
    digest = hashlib.sha256(str(REPO).encode()).hexdigest()[:8]
    return Path(tempfile.gettempdir()) / f"costscaler-cluster-{os.getuid()}-{digest}"
