"""A minimal HTTPS client for the local apiserver (admin client certificate), and the kubeconfig."""

from __future__ import annotations

import base64
import json
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from cluster.pki import Pki


class Api:
    """Admin access to one apiserver: enough for readiness checks and creating objects."""

    def __init__(self, server: str, pki: Pki) -> None:
        self.server = server
        self._ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
        self._ctx.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """Send one request; returns (HTTP status, decoded JSON or text)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, context=self._ctx, timeout=10) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")

    def create(self, path: str, body: dict[str, Any]) -> None:
        """POST an object; an existing one (409) is fine, anything else raises."""
        status, reply = self.request("POST", path, body)
        if status not in (200, 201, 409):
            raise RuntimeError(f"POST {path} {body['metadata']['name']}: {status} {reply}")

    def ready(self) -> bool:
        """Whether /readyz answers ok (the apiserver may not listen yet)."""
        try:
            status, _ = self.request("GET", "/readyz")
        except OSError:
            return False
        return status == 200


def wait_for(what: str, check: Any, timeout: float, log: Path | None = None) -> None:
    """Poll check() until it is true, or raise naming what did not come up and its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    where = f"; see {log}" if log else ""
    raise RuntimeError(f"{what} not ready after {timeout:.0f} s{where}")


def http_ok(url: str) -> bool:
    """Whether a plain or self-signed HTTPS endpoint answers 200."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=2) as resp:
            return bool(resp.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def write_kubeconfig(path: Path, server: str, pki: Pki, name: str = "costscaler-local") -> None:
    """A kubeconfig with the CA and admin credentials embedded, so it works from anywhere."""

    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": name,
                "cluster": {"server": server, "certificate-authority-data": b64(pki.ca_cert)},
            }
        ],
        "users": [
            {
                "name": "admin",
                "user": {
                    "client-certificate-data": b64(pki.admin_cert),
                    "client-key-data": b64(pki.admin_key),
                },
            }
        ],
        "contexts": [{"name": name, "context": {"cluster": name, "user": "admin"}}],
        "current-context": name,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
