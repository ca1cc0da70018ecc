"""Serving the API with uvicorn on 127.0.0.1: the engine client lives as long as the server."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path

import uvicorn

from actorflow._client import AsyncClient
from actorflow.cluster.settings import Settings
from actorflow.server.app import create_app
from actorflow.server.ratelimit import RateLimiter
from actorflow.server.store import AccessStore, bootstrap

HOST = "127.0.0.1"


class ApiServer(uvicorn.Server):
    """uvicorn's server, saying when it listens (`ready`) and where (`url`)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()

    @property
    def url(self) -> str:
        port = int(self.servers[0].sockets[0].getsockname()[1])
        return f"http://{HOST}:{port}"


def server(client: AsyncClient, access: AccessStore, settings: Settings) -> ApiServer:
    """A uvicorn server of the API over a connected `client`, on `settings.api_port` (0:
    any free one), each token limited to `settings.api_rate_limit` requests a second."""
    limiter = (
        RateLimiter(settings.api_rate_limit, settings.api_rate_burst)
        if settings.api_rate_limit > 0
        else None
    )
    config = uvicorn.Config(
        create_app(client, access, limiter),
        host=HOST,
        port=settings.api_port,
        log_level="warning",
        lifespan="off",
    )
    return ApiServer(config)


async def serve(
    settings: Settings, on_ready: Callable[[str, Path | None], None] | None = None
) -> None:
    """Connect to (or start) the engine and answer requests until cancelled; `on_ready`
    gets the URL and, at the first start, where the admin token was written."""
    async with AsyncClient(settings, log_to_driver=False) as client:
        access = await AccessStore.open(
            client.js,
            settings.home,
            settings.stream_replicas,
            audit_max_age_days=settings.api_audit_max_age_days,
            audit_max_entries=settings.api_audit_max_entries,
        )
        admin_token = await bootstrap(access, settings.home)
        srv = server(client, access, settings)
        task = asyncio.create_task(srv.serve())
        ready = asyncio.create_task(srv.ready.wait())
        await asyncio.wait([task, ready], return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if srv.ready.is_set() and on_ready is not None:
            on_ready(srv.url, admin_token)
        await task
