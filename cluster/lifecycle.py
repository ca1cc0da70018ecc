"""`actorflow up` / `down`: a local Ray head and nats-server (or a JetStream cluster of
several, `up(nats_servers=3)`) that outlive the command.

`up` starts both detached and records them in ``$ACTORFLOW_HOME/run/cluster.json``; every
later client on this machine finds them there (see `wiring`). `down` stops only what `up`
recorded, by pid — never `ray stop`, which would also kill other users' Ray clusters.

Ray runs in its own process group (``ray start --block`` leads it, the GCS, raylet,
dashboard and workers are its descendants), so killing the group removes all of it. It
also gets its own ``--temp-dir``: ``ray start`` writes the address of "the current
cluster" there, and a ``ray.init()`` elsewhere on the machine would otherwise join ours.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import ray

from actorflow.cluster import nats_process, ray_auth, wiring
from actorflow.cluster.settings import Settings
from actorflow.definitions.errors import ActorflowError, ClusterUnavailableError

log = logging.getLogger(__name__)

_DEFAULT_DASHBOARD_PORT = 8265
_RAY_START_TIMEOUT = 90.0  # a 2-core machine takes ~10-20 s to bring a head up
_STOP_TIMEOUT = 20.0


def up(settings: Settings, *, nats_servers: int | None = None) -> dict[str, Any]:
    """Start nats-server and a Ray head (whichever is not already up), record them, and
    warm the controller. Returns the recorded state with ``already_up`` set when nothing
    had to be started.

    `nats_servers` above 1 starts that many nats-servers on loopback as one JetStream
    cluster, and — unless ``ACTORFLOW_STREAM_REPLICAS`` says otherwise — the engine's
    streams and buckets get ``min(nats_servers, 3)`` replicas. None: whatever is up, else 1.
    """
    if settings.ray_address or settings.nats_url:
        raise ActorflowError(
            "ACTORFLOW_RAY_ADDRESS / ACTORFLOW_NATS_URL point at an existing cluster; "
            "`actorflow up` starts a local one: unset them first"
        )
    if nats_servers is not None and nats_servers < 1:
        raise ActorflowError(f"--nats-servers {nats_servers}: at least one server is needed")
    state = wiring.read_state(settings)
    if "nats" in state and nats_servers is not None:
        running = len(state["nats"].get("servers") or [state["nats"]])
        if running != nats_servers:
            raise ActorflowError(
                f"actorflow is up with {running} nats-server(s), not {nats_servers}: "
                "run `actorflow down` first"
            )
    servers = nats_servers or 1
    if servers > 1 and "stream_replicas" not in settings.model_fields_set:
        settings = settings.model_copy(update={"stream_replicas": min(servers, 3)})
    if "nats" in state and "ray" in state:
        return {**state, "already_up": True}
    logs = settings.home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    started: list[str] = []
    try:
        if "nats" not in state:
            state["nats"] = _start_nats(settings, servers, logs)
            started.append("nats")
        if "ray" not in state:
            state["ray"] = _start_ray(settings, logs / "ray.log")
            started.append("ray")
        wiring.write_state(settings, state)
        _warm_controller(settings, str(state["nats"]["url"]))
        # The REST API last, over the cluster just recorded; a port already taken is
        # reported, not fatal (the engine is up without it).
        state["api"] = _start_api(logs / "api.log", settings.stream_replicas)
        wiring.write_state(settings, state)
    except BaseException:
        # Leave nothing half up: stop what this call started, keep what was there.
        if "pid" in state.get("api", {}):
            _kill_group(int(state["api"]["pid"]))
        if "ray" in started:
            _kill_group(int(state["ray"]["pid"]))
        if "nats" in started:
            for pid in wiring.entry_pids(state["nats"]):
                nats_process.stop(pid)
        kept = {k: v for k, v in state.items() if k not in [*started, "api"]}
        if kept:
            wiring.write_state(settings, kept)
        else:
            wiring.state_file(settings).unlink(missing_ok=True)
        raise
    return {**state, "already_up": False}


def down(settings: Settings) -> dict[str, Any]:
    """Stop what `up` recorded (and nothing else); returns what was stopped."""
    state = _recorded(settings)
    stopped: dict[str, int] = {}
    leftover: list[int] = []
    api_pid = int(state.get("api", {}).get("pid", 0))
    if api_pid and _is_api(api_pid):
        leftover += _kill_group(api_pid)
        stopped["api"] = api_pid
    ray_pid = int(state.get("ray", {}).get("pid", 0))
    if ray_pid and _is_ray_head(ray_pid):
        leftover += _kill_group(ray_pid)
        stopped["ray"] = ray_pid
    nats_pids = wiring.entry_pids(state["nats"]) if "nats" in state else []
    for i, nats_pid in enumerate(nats_pids):
        if nats_pid and _is_nats(nats_pid):
            if not nats_process.stop(nats_pid):
                leftover.append(nats_pid)
            stopped["nats" if len(nats_pids) == 1 else f"nats {i}"] = nats_pid
    if not leftover:
        wiring.state_file(settings).unlink(missing_ok=True)
    return {"stopped": stopped, "leftover": leftover, "was_up": bool(state)}


def status(settings: Settings) -> dict[str, Any]:
    """The recorded processes with a liveness flag each (no connection is made). A NATS
    cluster is alive while any of its servers is (each has its own flag)."""
    out: dict[str, Any] = {}
    for name, entry in _recorded(settings).items():
        out[name] = {
            **entry,
            "alive": any(nats_process.alive(pid) for pid in wiring.entry_pids(entry)),
        }
        if "servers" in entry:
            out[name]["servers"] = [
                {**server, "alive": nats_process.alive(int(server.get("pid", 0)))}
                for server in entry["servers"]
            ]
    return out


# --- nats-server(s) -----------------------------------------------------------------------
def _start_nats(settings: Settings, servers: int, logs: Path) -> dict[str, Any]:
    """One nats-server (store ``$ACTORFLOW_HOME/jetstream``), or a cluster of `servers`
    (stores under ``$ACTORFLOW_HOME/jetstream-cluster/<name>``: a cluster's store is not
    a single server's, so switching between the two starts from the other's data)."""
    if servers == 1:
        proc = nats_process.start(
            settings.jetstream_dir,
            settings.run_dir,
            detached=True,
            log_file=logs / "nats-server.log",
            sync_interval=settings.nats_sync_interval,
        )
        return {"pid": proc.pid, "url": proc.url}
    procs = nats_process.start_cluster(
        settings.home / "jetstream-cluster",
        settings.run_dir,
        nats_process.plan_cluster(servers),
        detached=True,
        log_dir=logs,
        sync_interval=settings.nats_sync_interval,
    )
    return {
        "pid": procs[0].pid,
        "url": nats_process.cluster_url(procs),
        "servers": [{"name": p.name, "pid": p.pid, "url": p.url} for p in procs],
        "stream_replicas": settings.stream_replicas,
    }


# --- Ray head -----------------------------------------------------------------------------
def _start_ray(settings: Settings, log_file: Path) -> dict[str, Any]:
    port = _free_port()
    dashboard_port = _DEFAULT_DASHBOARD_PORT if _bindable(_DEFAULT_DASHBOARD_PORT) else _free_port()
    temp_dir = _ray_temp_dir(settings)
    # The mode is always explicit: left unset, `ray start` turns token auth on by itself
    # when ~/.ray/auth_token exists, a file that Ray creates readable by everyone.
    auth_mode = settings.ray_auth
    ray_auth.check_dashboard_host(settings.dashboard_host, auth_mode)
    token_file = ray_auth.ensure_token(settings.ray_token_path) if auth_mode == "token" else None
    args = [
        _ray_binary(), "start", "--head", "--block",
        "--port", str(port),
        "--temp-dir", str(temp_dir),
        "--disable-usage-stats",
        "--include-dashboard=true",
        "--dashboard-host", settings.dashboard_host,
        "--dashboard-port", str(dashboard_port),
        # Fixed defaults (10001, 52365) would collide with any other Ray on this machine.
        "--ray-client-server-port", str(_free_port()),
        "--dashboard-agent-listen-port", str(_free_port()),
    ]  # fmt: skip
    if settings.ray_num_cpus is not None:
        args += ["--num-cpus", str(settings.ray_num_cpus)]
    if settings.ray_num_gpus is not None:
        args += ["--num-gpus", str(settings.ray_num_gpus)]
    env = {
        **ray_auth.server_env(auth_mode, token_file),
        "RAY_USAGE_STATS_ENABLED": "0",
        # Ray drains a node for 30 s on SIGTERM (for Serve); nothing here needs it.
        "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
    }
    env.pop("RAY_ADDRESS", None)
    with log_file.open("ab") as out:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    deadline = time.monotonic() + _RAY_START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _kill_group(proc.pid)
            raise ClusterUnavailableError(
                "Ray", f"127.0.0.1:{port}",
                f"`ray start` exited with {proc.returncode}; see {log_file}: {_tail(log_file)}",
            )  # fmt: skip
        if _listening(port):
            return {
                "pid": proc.pid,
                "address": f"127.0.0.1:{port}",
                "dashboard": f"http://{_local_host(settings.dashboard_host)}:{dashboard_port}",
                "temp_dir": str(temp_dir),
                "auth_mode": auth_mode,
                # Where clients of this machine read the token (`wiring` presents it).
                **({"token_file": str(token_file)} if token_file else {}),
            }
        time.sleep(0.2)
    _kill_group(proc.pid)
    raise ClusterUnavailableError(
        "Ray", f"127.0.0.1:{port}",
        f"the Ray head did not listen within {_RAY_START_TIMEOUT:.0f}s; see {log_file}",
    )  # fmt: skip


def _local_host(host: str) -> str:
    """The dashboard's address as this machine reaches it (a wildcard bind: loopback)."""
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host


_API_START_TIMEOUT = 90.0
_API_READY = "actorflow API on "


def _start_api(log_file: Path, stream_replicas: int) -> dict[str, Any]:
    """`actorflow serve`, detached, on the cluster `up` recorded: its pid and URL (read
    from the line it prints when it listens), or the reason it is not serving. Its bucket
    gets the replicas `up` gave the engine's."""
    start = log_file.stat().st_size if log_file.exists() else 0
    with log_file.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "actorflow.cli", "serve"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={
                **os.environ,
                "COLUMNS": "200",
                "ACTORFLOW_STREAM_REPLICAS": str(stream_replicas),
            },
        )
    deadline = time.monotonic() + _API_START_TIMEOUT
    while time.monotonic() < deadline:
        with log_file.open("rb") as logged:
            logged.seek(start)
            text = logged.read().decode(errors="replace")
        if _API_READY in text:
            url = text.split(_API_READY, 1)[1].split()[0]
            return {"pid": proc.pid, "url": url}
        if proc.poll() is not None:
            return {"error": f"`actorflow serve` exited with {proc.returncode}: {_tail(log_file)}"}
        time.sleep(0.2)
    _kill_group(proc.pid)
    return {"error": f"the API did not listen within {_API_START_TIMEOUT:.0f}s; see {log_file}"}


def _is_api(pid: int) -> bool:
    try:
        cmdline = psutil.Process(pid).cmdline()
    except psutil.Error:
        return False
    return "actorflow.cli" in cmdline and "serve" in cmdline


def _warm_controller(settings: Settings, url: str) -> None:
    """Create the detached controller now so the first run does not pay for it."""
    wiring.ensure_ray(settings, log_to_driver=False)
    try:
        ray.get(wiring.controller(settings, url).start.remote(), timeout=120)
    finally:
        ray.shutdown()


def _ray_binary() -> str:
    beside = Path(sys.executable).parent / "ray"
    if beside.exists():
        return str(beside)
    found = shutil.which("ray")
    if not found:
        raise ClusterUnavailableError("Ray", "local", "no `ray` command: pip install ray")
    return found


def _ray_temp_dir(settings: Settings) -> Path:
    # Ray's unix socket paths (<temp>/session_<date>_<pid>/sockets/plasma_store) must fit
    # in 107 bytes, so the dir is short and derived from the home rather than inside it.
    digest = hashlib.sha1(str(settings.home.resolve()).encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"actorflow-ray-{digest}"


def _kill_group(pgid: int, timeout: float = _STOP_TIMEOUT) -> list[int]:
    """Stop the Ray head led by `pgid`: SIGTERM, then SIGKILL whatever is left after
    `timeout`. Returns the pids still running after that (normally none).

    Ray workers put themselves in process groups of their own, so besides the group the
    leader's descendants (taken before anything dies and gets re-parented) are signalled.
    """
    procs = _tree(pgid)
    _signal(pgid, procs, signal.SIGTERM)
    alive = _wait_gone(pgid, procs, timeout)
    if alive:
        _signal(pgid, alive, signal.SIGKILL)
        alive = _wait_gone(pgid, alive, 5.0)
    return [p.pid for p in alive]


def _wait_gone(pgid: int, procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until none of `procs` runs; zombies count as gone (the container's init may
    never reap them). Returns those still running at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        # Reap the leader if it is this process's child (when `up` fails here).
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pgid, os.WNOHANG)
        alive = [p for p in procs if _running(p)]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def _tree(pgid: int) -> list[psutil.Process]:
    procs: dict[int, psutil.Process] = {}
    with contextlib.suppress(psutil.Error):
        leader = psutil.Process(pgid)
        procs[leader.pid] = leader
        procs.update((c.pid, c) for c in leader.children(recursive=True))
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if os.getpgid(proc.pid) == pgid:
                procs[proc.pid] = proc
    return list(procs.values())


def _signal(pgid: int, procs: list[psutil.Process], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(sig)


def _running(proc: psutil.Process) -> bool:
    try:
        return bool(proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


# --- pids and ports ---------------------------------------------------------------------------
def _recorded(settings: Settings) -> dict[str, Any]:
    """cluster.json as written, dead entries included."""
    try:
        data = json.loads(wiring.state_file(settings).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _cmdline(pid: int) -> str:
    try:
        return " ".join(psutil.Process(pid).cmdline())
    except (psutil.Error, OSError):
        return ""


def _is_ray_head(pid: int) -> bool:
    """Guards against a recycled pid: only a `ray start` process is killed."""
    cmd = _cmdline(pid)
    return "ray" in cmd and " start" in cmd


def _is_nats(pid: int) -> bool:
    return "nats-server" in _cmdline(pid)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _tail(path: Path, chars: int = 400) -> str:
    try:
        return path.read_text(errors="replace")[-chars:].strip()
    except OSError:
        return ""
