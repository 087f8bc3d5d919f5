"""Stopping processes by pid: `stop` returns only once every process it was given is gone."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

from cluster import procs

# A child that ignores SIGTERM, so stop() has to escalate to SIGKILL.
_STUBBORN = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('up', flush=True); time.sleep(600)"
)


def test_stop_escalates_to_sigkill_and_returns_only_when_the_process_is_gone(tmp_path: Path):
    log = tmp_path / "stubborn.log"
    idents = [procs.spawn([sys.executable, "-c", _STUBBORN], log, cwd=tmp_path) for _ in range(3)]
    # Wait until the handler is installed, or SIGTERM could land before it.
    deadline = time.monotonic() + 30
    while log.read_text().count("up") < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    procs.stop(idents, grace=0.2)
    # Checked right away: the CI failure this covers saw a SIGKILLed pid still alive here.
    assert not any(procs.alive(ident) for ident in idents)


def test_stop_of_processes_already_gone_is_a_no_op(tmp_path: Path):
    # It must outlive spawn's own check (a bare `pass` could exit first, as it once did in
    # CI), then be gone before stop is asked.
    quick = [sys.executable, "-c", "import time; time.sleep(0.3)"]
    ident = procs.spawn(quick, tmp_path / "quick.log", cwd=tmp_path)
    deadline = time.monotonic() + 10
    while procs.alive(ident) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not procs.alive(ident)
    procs.stop([ident], grace=0.2)
    procs.stop([ident], grace=0.2)
    assert not procs.alive(ident)


def test_free_ports_lie_below_the_kernels_ephemeral_range():
    """Outgoing connections take ports from the ephemeral range: a port picked there can be
    gone before the component binds it (Karpenter's metrics port, in CI)."""
    floor = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(50):
        port = procs.free_port()
        assert 1024 <= port < floor
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
