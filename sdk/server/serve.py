"""Serving the API with uvicorn on 127.0.0.1: the engine client lives as long as the server."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import uvicorn

from actorflow._client import AsyncClient
from actorflow.cluster.settings import Settings
from actorflow.server.app import create_app

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


def server(client: AsyncClient, port: int) -> ApiServer:
    """A uvicorn server of the API over a connected `client` (port 0: any free one)."""
    config = uvicorn.Config(
        create_app(client), host=HOST, port=port, log_level="warning", lifespan="off"
    )
    return ApiServer(config)


async def serve(settings: Settings, on_ready: Callable[[str], None] | None = None) -> None:
    """Connect to (or start) the engine and answer requests until cancelled."""
    async with AsyncClient(settings, log_to_driver=False) as client:
        srv = server(client, settings.api_port)
        task = asyncio.create_task(srv.serve())
        ready = asyncio.create_task(srv.ready.wait())
        await asyncio.wait([task, ready], return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if srv.ready.is_set() and on_ready is not None:
            on_ready(srv.url)
        await task
