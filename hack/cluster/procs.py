"""Start, find and stop the cluster's processes by pid (never by name), and pick free ports."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import time
from pathlib import Path

# How long a SIGKILLed process may take to disappear before stop() gives up on it.
KILL_WAIT_SECONDS = 10.0


def _ephemeral_floor() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, below the kernel's ephemeral
    range. A port the kernel hands out (bind to 0) is one it also gives the next outgoing
    connection: between picking and binding, an apiserver's connection to etcd took
    Karpenter's metrics port in CI ("bind: address already in use")."""
    top = _ephemeral_floor()
    for _ in range(200):
        port = random.randrange(min(10000, top // 2), top)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free TCP port on 127.0.0.1 below {top} after 200 tries")


def start_time(pid: int) -> int | None:
    """The kernel's start time of a pid (to tell our process from a reused pid), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22; the command name in field 2 may contain spaces, so split after its ')'.
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


def spawn(cmd: list[str], log: Path, cwd: Path, env: dict[str, str] | None = None) -> list[int]:
    """Start a detached process writing to log; returns [pid, start time]."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    started = start_time(proc.pid)
    if started is None:
        raise RuntimeError(f"{cmd[0]} exited at once; see {log}")
    return [proc.pid, started]


def alive(ident: list[int]) -> bool:
    """Whether the process we started (pid plus start time) still runs."""
    pid, started = ident
    return start_time(pid) == started


def _reap(pid: int) -> None:
    # Our own children would stay zombies (and look alive) until waited for.
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def stop(idents: list[list[int]], grace: float = 10.0) -> None:
    """SIGTERM each process we started, then SIGKILL whatever is left after grace seconds."""
    running = [i for i in idents if alive(i)]
    for pid, _ in running:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while running and time.monotonic() < deadline:
        time.sleep(0.1)
        for pid, _ in running:
            _reap(pid)
        running = [i for i in running if alive(i)]
    for pid, _ in running:
        os.kill(pid, signal.SIGKILL)
    # SIGKILL is delivered asynchronously: until the kernel has torn the process down it
    # still looks alive, so wait for that rather than report a stopped cluster too early.
    deadline = time.monotonic() + KILL_WAIT_SECONDS
    while running:
        for pid, _ in running:
            _reap(pid)
        running = [i for i in running if alive(i)]
        if not running:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"pids {[pid for pid, _ in running]} survived SIGKILL")
        time.sleep(0.05)
