"""Ray token authentication: the token file of the Ray actorflow starts, and presenting a
token before this process joins a Ray cluster.

A Ray head listens on every interface (its GCS port), and whoever reaches it can run code
on the cluster, so the Ray that `actorflow up` and the embedded default start requires a
token (``ACTORFLOW_RAY_AUTH=token``, the default). The token lives in one file under
``ACTORFLOW_HOME``, created with mode 0600 and reused across restarts; clients on this
machine read it from there.

Ray takes its mode and token from the environment (``RAY_AUTH_MODE``; ``RAY_AUTH_TOKEN``,
else ``RAY_AUTH_TOKEN_PATH``, else ``~/.ray/auth_token``) into a config it caches when the
``ray`` package is imported, so a process that changes them must refresh that cache — as
Ray's own ``_enable_token_auth`` does — before ``ray.init``.

Ray reports a missing or wrong token by retrying for ~20 s, logging a warning a second,
then a bare ``ConnectionError``; `check` asks the GCS once instead and says which file or
setting to fix.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import secrets
import stat
from pathlib import Path

import grpc

# Both are in ray._raylet but not in the stub file Ray ships for it.
from ray._raylet import AuthenticationTokenLoader, Config  # type: ignore[attr-defined]

from actorflow.definitions.errors import ActorflowError, ClusterUnavailableError

log = logging.getLogger(__name__)

_TOKEN_BYTES = 32  # 64 hex characters, as long as the tokens Ray generates itself
_RAY_VARIABLES = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
# The GCS call asked first: Ray's first call of every client (its request is an empty
# message, so no generated code is needed to send it), behind the same token check.
_GET_CLUSTER_ID = "/ray.rpc.NodeInfoGcsService/GetClusterId"


def ensure_token(path: Path) -> Path:
    """The token file at `path`, created when missing; an existing one is reused, so a
    restarted cluster keeps the token its clients know.

    The file is born with mode 0600 (written under a private temporary name, then linked
    into place, which fails rather than overwrites when another `up` was quicker).
    """
    if path.exists():
        read_token(path)  # refuse a token others can read before a cluster trusts it
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(_TOKEN_BYTES))
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileExistsError):  # a concurrent `up` made one: use that
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    read_token(path)
    return path


def read_token(path: Path) -> str:
    """The token in `path`; `ActorflowError` naming the file and the fix when it is
    missing, unreadable, empty or readable by other users."""
    try:
        mode = path.stat().st_mode
        token = path.read_text().strip()
    except OSError as exc:
        raise ActorflowError(
            f"cannot read the Ray token file {path} ({exc.strerror or exc}): restore it, or "
            "restart the cluster with `actorflow down` and `actorflow up` to make a new one"
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ActorflowError(
            f"the Ray token file {path} is open to other users (mode {stat.S_IMODE(mode):04o}): "
            f"run `chmod 600 {path}`"
        )
    if not token:
        raise ActorflowError(
            f"the Ray token file {path} is empty: restore it, or restart the cluster with "
            "`actorflow down` and `actorflow up` to make a new one"
        )
    return token


def server_env(mode: str, path: Path | None) -> dict[str, str]:
    """What a `ray start` of ours gets in its environment (and drops every other Ray
    token variable, which would take precedence over the file)."""
    env = {k: v for k, v in os.environ.items() if k not in _RAY_VARIABLES}
    env["RAY_AUTH_MODE"] = mode
    if mode == "token" and path is not None:
        env["RAY_AUTH_TOKEN_PATH"] = str(path)
    return env


def present(path: Path) -> None:
    """Make this process (and the Ray processes it starts) use the token in `path`."""
    read_token(path)
    os.environ.pop("RAY_AUTH_TOKEN", None)
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(path)
    _refresh()


def disable() -> None:
    """Make the Ray this process starts run without token authentication."""
    os.environ["RAY_AUTH_MODE"] = "disabled"
    _refresh()


def _refresh() -> None:
    # The order is Ray's own: the config first, then the token cache, which reads it.
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def check_dashboard_host(host: str, mode: str) -> None:
    """A dashboard beyond loopback takes job submissions from the network: only behind a
    token."""
    if mode == "token" or _loopback(host):
        return
    raise ActorflowError(
        f"ACTORFLOW_DASHBOARD_HOST={host} exposes the Ray dashboard (it runs submitted jobs) "
        "without a token: set ACTORFLOW_RAY_AUTH=token, or keep the dashboard on 127.0.0.1"
    )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check(address: str, timeout: float, token_source: str) -> None:
    """Ask the GCS at `address` once, with the token this process now presents, whether
    it lets us in; `ClusterUnavailableError` saying what to fix when it refuses.

    `token_source` names where the token came from (a file or Ray's variables), for the
    error.
    """
    headers = AuthenticationTokenLoader.instance().get_token_for_http_header()
    metadata = [(k.lower(), v) for k, v in headers.items()]
    with grpc.insecure_channel(address) as channel:
        try:
            channel.unary_unary(_GET_CLUSTER_ID)(b"", metadata=metadata, timeout=timeout)
        except grpc.RpcError as exc:
            call = exc if isinstance(exc, grpc.Call) else None
            if call is not None and call.code() == grpc.StatusCode.UNAUTHENTICATED:
                raise ClusterUnavailableError(
                    "Ray", address, _refused(metadata, token_source)
                ) from None
            # Anything else (a GCS slow to answer, a Ray without this call) is no answer
            # about the token: `ray.init` waits and reports as it does.
            log.debug("Ray at %s did not answer the token check: %s", address, exc)


def _refused(metadata: list[tuple[str, str]], token_source: str) -> str:
    if metadata:
        return (
            f"it refused the token from {token_source}: that is not this cluster's token; "
            "use the token file the cluster was started with"
        )
    return (
        "it requires a token: set ACTORFLOW_RAY_TOKEN_FILE to its token file (or Ray's "
        "RAY_AUTH_MODE=token with RAY_AUTH_TOKEN_PATH)"
    )
