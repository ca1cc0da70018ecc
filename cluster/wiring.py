"""Find or start Ray and nats-server, then find or create the controller.

Resolution order for each service: an explicit address in settings, then the one
`actorflow up` recorded in ``$ACTORFLOW_HOME/run/cluster.json`` (if its process is alive),
then an embedded one owned by this program.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from pathlib import Path
from typing import Any

import ray

from actorflow.actors.controller import CONTROLLER_NAME, Controller
from actorflow.cluster import nats_process, ray_auth
from actorflow.cluster.settings import Settings
from actorflow.definitions.errors import ActorflowError, ClusterUnavailableError
from actorflow.triggers.service import TriggerService

log = logging.getLogger(__name__)

_embedded_nats: dict[Path, str] = {}
_dashboard: dict[str, str] = {}


def state_file(settings: Settings) -> Path:
    return settings.run_dir / "cluster.json"


def read_state(settings: Settings) -> dict[str, Any]:
    """What `actorflow up` started, keeping only entries whose process still runs."""
    try:
        data = json.loads(state_file(settings).read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if any(nats_process.alive(p) for p in entry_pids(v))}


def entry_pids(entry: dict[str, Any]) -> list[int]:
    """The processes of one recorded entry: each server of a NATS cluster, else its pid."""
    servers = entry.get("servers") or [entry]
    return [int(server.get("pid", 0)) for server in servers]


def write_state(settings: Settings, state: dict[str, Any]) -> None:
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    tmp = state_file(settings).with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(state_file(settings))


def nats_url(settings: Settings) -> str:
    if settings.nats_url:
        return settings.nats_url
    up = read_state(settings).get("nats")
    if up:
        return str(up["url"])
    home = settings.home.resolve()
    if home not in _embedded_nats:
        proc = nats_process.start(
            settings.jetstream_dir,
            settings.run_dir,
            detached=False,
            sync_interval=settings.nats_sync_interval,
        )
        log.info("started embedded nats-server pid %d at %s", proc.pid, proc.url)
        _embedded_nats[home] = proc.url
    return _embedded_nats[home]


def ensure_ray(settings: Settings, *, log_to_driver: bool = True) -> None:
    """Join or start Ray. `log_to_driver=False` is for CLIs: no worker logs, no Ray warnings."""
    if ray.is_initialized():
        return
    up = read_state(settings).get("ray", {})
    address = settings.ray_address or up.get("address")
    if not settings.ray_address and up.get("dashboard"):
        _dashboard["url"] = str(up["dashboard"])
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address:
        _check_reachable(address, settings.connect_timeout)
        try:
            source = _join_auth(settings, up)
        except ActorflowError as exc:  # the token file: say which and how to fix it
            raise ClusterUnavailableError("Ray", address, str(exc)) from None
        if not address.startswith("ray://"):  # a Ray Client server is no GCS to ask
            ray_auth.check(address, settings.connect_timeout, source)
    else:
        _embedded_auth(settings)
    try:
        if address:
            ray.init(
                address=address,
                namespace=settings.namespace,
                log_to_driver=log_to_driver,
                logging_level=logging.WARNING if log_to_driver else logging.ERROR,
            )
        else:
            # The dashboard (and with it `ray.util.state`) on, to this machine only unless
            # ACTORFLOW_DASHBOARD_HOST says otherwise; Ray takes 8265 or, when that is
            # taken, the next free port.
            context = ray.init(
                address="local",  # never join a cluster some `ray start` left on the machine
                namespace=settings.namespace,
                num_cpus=settings.ray_num_cpus,
                num_gpus=settings.ray_num_gpus,
                include_dashboard=True,
                dashboard_host=settings.dashboard_host,
                log_to_driver=log_to_driver,
                logging_level=logging.WARNING if log_to_driver else logging.ERROR,
            )
            if context.dashboard_url:
                _dashboard["url"] = f"http://{context.dashboard_url}"
                log.info("Ray dashboard at %s", _dashboard["url"])
    except Exception as exc:
        raise ClusterUnavailableError("Ray", address or "local", str(exc)) from exc


def _join_auth(settings: Settings, up: dict[str, Any]) -> str:
    """Present the token the cluster being joined expects; returns where it comes from.

    `actorflow up`'s cluster says in cluster.json whether it wants a token and which file
    holds it; an explicit address takes ``ACTORFLOW_RAY_TOKEN_FILE``, else whatever Ray's
    own variables say.
    """
    if settings.ray_address:
        if settings.ray_token_file:
            ray_auth.present(settings.ray_token_file)
            return str(settings.ray_token_file)
        return "RAY_AUTH_TOKEN / RAY_AUTH_TOKEN_PATH / ~/.ray/auth_token (RAY_AUTH_MODE=token)"
    if up.get("auth_mode") == "token":
        path = Path(str(up["token_file"]))
        ray_auth.present(path)
        return str(path)
    ray_auth.disable()
    return "nowhere (`actorflow up` started it without a token)"


def _embedded_auth(settings: Settings) -> None:
    """The Ray this program is about to start: token or not, as settings say, with the
    token file under ``ACTORFLOW_HOME`` rather than Ray's ``~/.ray/auth_token``."""
    ray_auth.check_dashboard_host(settings.dashboard_host, settings.ray_auth)
    if settings.ray_auth == "token":
        ray_auth.present(ray_auth.ensure_token(settings.ray_token_path))
    else:
        ray_auth.disable()


def dashboard_url() -> str:
    """The Ray dashboard's URL when this program started Ray or `actorflow up` did."""
    return _dashboard.get("url", "")


def _check_reachable(address: str, timeout: float) -> None:
    """Ray retries an unreachable address for minutes; say so in seconds instead."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return
    except (OSError, ValueError) as exc:
        raise ClusterUnavailableError("Ray", address, str(exc) or "unreachable") from None


def controller(settings: Settings, url: str) -> Any:
    """The detached controller, created on first use and started (idempotent) every time."""
    remote = ray.remote(Controller)
    return remote.options(
        name=CONTROLLER_NAME,
        namespace=settings.namespace,
        lifetime="detached",
        get_if_exists=True,
        num_cpus=0,
        max_concurrency=10_000,
        max_restarts=-1,
    ).remote(settings.engine(url), TriggerService)
